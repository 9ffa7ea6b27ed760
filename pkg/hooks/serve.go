package hooks

import (
	"fmt"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// LogLevelEnv is the environment variable through which respawner tells a
// plugin its own log level ("debug"), so that NewLogger does not make the
// plugin format lines that respawner would drop.
const LogLevelEnv = "RESPAWNER_PLUGIN_LOG_LEVEL"

// Serve runs impl as a hook plugin until respawner stops it; it is the whole
// of a plugin's main. impl implements at least one of Notifier, Vetoer and
// Prober, and may implement Configurer, ProbeConfigurer, Subscriber and
// Versioner. Serve logs through NewLogger. It does not return when impl is
// unusable or the binary was not started by respawner: it says why on
// stderr and exits 1.
//
// Serve prints the go-plugin handshake on stdout and then points os.Stdout
// and os.Stderr at streams that respawner logs; write logs through an
// hclog.Logger (NewLogger) rather than fmt.Print.
func Serve(impl any) {
	ServeWithLogger(impl, NewLogger())
}

// ServeWithLogger is Serve with the logger that go-plugin and the panic
// handler use. Give it a logger that writes JSON to the original stderr
// (NewLogger does), which respawner reads line by line into its own log.
func ServeWithLogger(impl any, logger hclog.Logger) {
	if err := checkImpl(impl); err != nil {
		fmt.Fprintf(os.Stderr, "hooks.Serve: %v\n", err)
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(impl, logger),
		GRPCServer:       newGRPCServerFunc,
		Logger:           logger,
	})
}

// newGRPCServerFunc builds the plugin's gRPC server. Static flow-control
// windows (on both sides) turn off gRPC's bandwidth-delay estimation, whose
// pings otherwise ride along with the small messages of hook calls: under
// strace a RestartPending round trip went from 3.5 write(2)s to 2.2. Hook
// messages are far smaller than the window.
func newGRPCServerFunc(opts []grpc.ServerOption) *grpc.Server {
	return grpc.NewServer(append(opts,
		grpc.InitialWindowSize(windowSize),
		grpc.InitialConnWindowSize(windowSize),
	)...)
}

// windowSize is the static gRPC flow-control window on both sides.
const windowSize = 1 << 20

func checkImpl(impl any) error {
	if impl == nil {
		return fmt.Errorf("nil implementation")
	}
	_, n := impl.(Notifier)
	_, v := impl.(Vetoer)
	_, p := impl.(Prober)
	if !n && !v && !p {
		return fmt.Errorf("%T implements none of hooks.Notifier, hooks.Vetoer, hooks.Prober", impl)
	}
	return nil
}

// NewLogger returns the logger a plugin should use: JSON lines on stderr,
// which respawner re-logs under the plugin's name with their level and
// fields, at the level respawner asks for (LogLevelEnv), info by default.
// Call it before Serve, which replaces os.Stderr.
func NewLogger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{
		Output:     os.Stderr,
		Level:      level,
		JSONFormat: true,
	})
}

package hooks

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/respawner/respawner/pkg/hooks/durlog"
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
// stderr and exits 1. Unusable includes an impl that misses a capability it
// was plainly meant to have: a method with a capability's name and another
// signature (RestartPending without its error), or the methods declared on
// *T and a T passed.
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

// checkImpl refuses an implementation that is no plugin: one with none of
// Notifier, Vetoer and Prober, and one that misses a capability it was
// plainly meant to have, which would otherwise go unnoticed (respawner only
// sees a plugin that never vetoes, say): a method with a capability's name
// and another signature, or methods declared on the pointer of a value
// passed.
func checkImpl(impl any) error {
	if impl == nil {
		return fmt.Errorf("nil implementation")
	}
	var errs []string
	t := reflect.TypeOf(impl)
	for _, c := range capabilities {
		if t.Implements(c) {
			continue
		}
		want := c.Method(0)
		if m, ok := t.MethodByName(want.Name); ok {
			errs = append(errs, fmt.Sprintf("%v has %s%s, not hooks.%s's %s%s, so it is no %s",
				t, want.Name, signature(m.Type, 1), c.Name(), want.Name, signature(want.Type, 0), c.Name()))
		} else if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(c) {
			errs = append(errs, fmt.Sprintf("%v has %s on its pointer only, so it is no %s: pass a pointer (&%v{...})",
				t, want.Name, c.Name(), t))
		}
	}
	if len(errs) > 0 {
		return errors.New(strings.Join(errs, "; "))
	}
	_, n := impl.(Notifier)
	_, v := impl.(Vetoer)
	_, p := impl.(Prober)
	if !n && !v && !p {
		return fmt.Errorf("%T implements none of hooks.Notifier, hooks.Vetoer, hooks.Prober", impl)
	}
	return nil
}

// capabilities are the interfaces Serve looks for, each of one method.
var capabilities = []reflect.Type{
	reflect.TypeFor[Configurer](),
	reflect.TypeFor[Notifier](),
	reflect.TypeFor[Vetoer](),
	reflect.TypeFor[Prober](),
	reflect.TypeFor[ProbeConfigurer](),
	reflect.TypeFor[Subscriber](),
	reflect.TypeFor[Versioner](),
}

// signature spells a method's type as Go source would, without the receiver
// (the first skip parameters) and with the names a plugin uses (hooks.Event,
// not hookspec.Event, which it is an alias of).
func signature(ft reflect.Type, skip int) string {
	var in, out []string
	for i := skip; i < ft.NumIn(); i++ {
		in = append(in, ft.In(i).String())
	}
	for i := range ft.NumOut() {
		out = append(out, ft.Out(i).String())
	}
	s := "(" + strings.Join(in, ", ") + ")"
	switch len(out) {
	case 0:
	case 1:
		s += " " + out[0]
	default:
		s += " (" + strings.Join(out, ", ") + ")"
	}
	return strings.ReplaceAll(s, "hookspec.", "hooks.")
}

// NewLogger returns the logger a plugin should use: JSON lines on stderr,
// which respawner re-logs under the plugin's name with their level and
// fields, at the level respawner asks for (LogLevelEnv), info by default.
// A time.Duration value is written as a string ("2s"), as respawner writes
// its own, not as hclog's integer of nanoseconds. Call it before Serve,
// which replaces os.Stderr.
func NewLogger() hclog.Logger {
	level := hclog.LevelFromString(os.Getenv(LogLevelEnv))
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	return durlog.Wrap(hclog.New(&hclog.LoggerOptions{
		Output:     os.Stderr,
		Level:      level,
		JSONFormat: true,
	}))
}

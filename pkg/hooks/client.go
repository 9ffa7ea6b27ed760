package hooks

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/respawner/respawner/pkg/hooks/pluginproc"
	pb "github.com/respawner/respawner/pkg/hooks/proto"
)

// DefaultStartTimeout is how long Launch waits for a plugin's handshake when
// LaunchOptions.StartTimeout is zero.
const DefaultStartTimeout = 10 * time.Second

// LaunchOptions configure Launch. The zero value is usable.
type LaunchOptions struct {
	// Logger receives go-plugin's lifecycle lines and the plugin's own log
	// lines, under Logger.Named(base name of the binary). nil discards them.
	// Its level is passed to the plugin (LogLevelEnv). go-plugin's own lines
	// about the process come at debug before the handshake (a failed launch
	// is Launch's error) and after Kill.
	Logger hclog.Logger
	// SHA256, when set, pins the binary: Launch refuses to start it unless
	// its SHA-256 is this 32-byte sum (ErrChecksum).
	SHA256 []byte
	// StartTimeout bounds the wait for the plugin's handshake;
	// DefaultStartTimeout when zero.
	StartTimeout time.Duration
	// Env holds extra KEY=VALUE variables for the plugin, on top of
	// respawner's own environment (which the plugin inherits, and through
	// which secrets reach it rather than through argv). The plugin also gets
	// LogLevelEnv and, unless respawner's environment sets it, GOMAXPROCS=1;
	// Env overrides both.
	Env []string
	// SocketDir is the existing directory in which go-plugin makes the
	// plugin's own directory (plugin-dirNNN, mode 0700) for its unix socket
	// (go-plugin's UnixSocketConfig.TempDir); os.TempDir() when empty. Kill,
	// or a failed Launch, removes the plugin's directory; a caller that may
	// be killed before it calls Kill should pass a directory of its own and
	// remove it once its plugins are gone, as respawner-hookhost does. A unix
	// socket's path has at most 107 bytes, and a go-plugin server's is
	// SocketDir's plus up to 38.
	SocketDir string
}

// Client is respawner's handle on one running hook plugin. Its methods are
// safe for concurrent use. Each call takes the caller's context, whose
// deadline bounds it; a Client adds none of its own.
type Client struct {
	g      *grpcClient
	pc     *plugin.Client // nil for an InProcess client
	pid    int
	stop   func() // InProcess only, run once
	once   sync.Once
	killed atomic.Bool
	quiet  *atomic.Bool // go-plugin's own lines at debug (see goPluginLog); nil in process
}

// Info is what a plugin says about itself.
type Info struct {
	Version string // the plugin's own version (Versioner); may be empty
	// Events are the kinds Notify wants: every kind unless the plugin is a
	// Subscriber; nil when Notify is false.
	Events    []Kind
	Configure bool // the plugin takes options (Configurer)
	Notify    bool // Notify is implemented (Notifier)
	Veto      bool // RestartPending is implemented (Vetoer)
	Probe     bool // Probe is implemented (Prober); Configure returns its schedule
}

// Wants reports whether an event of kind k should be sent to Notify.
func (in Info) Wants(k Kind) bool { return in.Notify && slices.Contains(in.Events, k) }

// Launch starts the plugin binary at path and connects to it: go-plugin over
// gRPC with automatic mutual TLS, on a unix socket. go-plugin owns the child
// process: it reaps it, and Kill ends it. The plugin is not configured yet;
// the host calls Configure, then Info.
//
// A plugin built for another hook protocol is refused with an error wrapping
// a *VersionError, a binary that does not match LaunchOptions.SHA256 with one
// wrapping ErrChecksum.
func Launch(path string, o LaunchOptions) (*Client, error) {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.SHA256 != nil && len(o.SHA256) != sha256.Size {
		return nil, fmt.Errorf("launch %s: SHA256 pin is %d bytes, want %d", path, len(o.SHA256), sha256.Size)
	}
	// A relative path names a file from here, never one looked up in $PATH
	// (as exec.Command does with a bare name).
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("launch %s: %w", path, err)
		}
		path = abs
	}
	// The plugin's environment: respawner's own (secrets reach plugins
	// through it, not argv), then ours, then go-plugin's (the handshake).
	env := os.Environ()
	level := o.Logger.GetLevel()
	if level == hclog.NoLevel { // a logger that does not say (hclog.NewNullLogger)
		level = hclog.Info
	}
	env = append(env, LogLevelEnv+"="+level.String())
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		// Hook work is waiting on I/O. A Go plugin with a P per core keeps
		// a spinning thread that competes with respawner for the CPU at
		// each call: on 2 cores, GOMAXPROCS=1 took RestartPending from
		// ~135/440 µs to ~100/380 µs (p50/p99). Env may still override it.
		env = append(env, "GOMAXPROCS=1")
	}
	env = append(env, o.Env...)
	var run *pluginproc.Runner
	gpLog, quiet := newGoPluginLog(o.Logger, filepath.Base(path))
	var sockDir string // go-plugin's directory for this plugin's socket
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  Handshake,
		VersionedPlugins: pluginSets(nil, nil),
		// Our own runner (go-plugin's is internal to it): it records the
		// plugin's pid for the host's orphan reaper, checks the sha256 pin
		// right before the exec, and passes stderr through
		// pluginproc.Sanitize, since go-plugin's log parser panics on a
		// line whose "@message" is not a string.
		RunnerFunc: func(_ hclog.Logger, spec *exec.Cmd, dir string) (runner.Runner, error) {
			sockDir = dir
			r, err := pluginproc.New(path, env, o.SHA256, spec)
			run = r
			return r, err
		},
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		UnixSocketConfig: &plugin.UnixSocketConfig{TempDir: o.SocketDir},
		AutoMTLS:         true,
		Logger:           gpLog,
		StartTimeout:     o.StartTimeout,
		// The runner passes the host environment first, so Env overrides it.
		SkipHostEnv: true,
		// See newGRPCServerFunc.
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithInitialWindowSize(windowSize),
			grpc.WithInitialConnWindowSize(windowSize),
		},
	}
	// What the plugin writes to os.Stdout or os.Stderr after Serve reaches
	// us over go-plugin's stdio stream; log it rather than lose it.
	named := o.Logger.Named(filepath.Base(path))
	cfg.SyncStdout = named.StandardWriter(&hclog.StandardLoggerOptions{ForceLevel: hclog.Info})
	cfg.SyncStderr = named.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true})

	// go-plugin logs what a plugin writes to stderr before its handshake at
	// debug level only, so a plugin that fails its own start-up ("cannot read
	// /etc/x.conf") would leave just "plugin exited before we could connect".
	tail := &stderrTail{}
	cfg.Stderr = tail

	pc := plugin.NewClient(cfg)
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill() // returns once go-plugin has read the plugin's stderr to the end
		// Kill removes the socket directory only of a plugin that started:
		// go-plugin makes it before the exec, and keeps it when the exec
		// fails (a missing binary, a wrong sha256 pin).
		if sockDir != "" {
			os.RemoveAll(sockDir)
		}
		return nil, fmt.Errorf("launch %s: %w%s", path, launchError(path, o.SHA256, err), tail.suffix())
	}
	tail.stop()
	raw, err := rpc.Dispense(PluginName)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("launch %s: %w", path, err)
	}
	quiet.Store(false) // in service: an exit from now on is news
	return &Client{g: raw.(*grpcClient), pc: pc, pid: run.PID(), quiet: quiet}, nil
}

// stderrTail keeps the last lines a plugin wrote to its stderr until its
// handshake is done.
type stderrTail struct {
	mu      sync.Mutex
	lines   []string
	cur     []byte
	stopped bool
}

const (
	tailLines   = 5
	tailLineMax = 240
)

func (t *stderrTail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return len(p), nil
	}
	for _, b := range p {
		switch {
		case b == '\n':
			t.push()
		case len(t.cur) < tailLineMax:
			t.cur = append(t.cur, b)
		}
	}
	return len(p), nil
}

func (t *stderrTail) push() {
	line := strings.TrimSpace(string(t.cur))
	t.cur = t.cur[:0]
	if line == "" {
		return
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[1:]
	}
}

// stop ends the capture: after the handshake, stderr is the plugin's log,
// which go-plugin passes on at its level.
func (t *stderrTail) stop() {
	t.mu.Lock()
	t.stopped, t.lines, t.cur = true, nil, nil
	t.mu.Unlock()
}

// suffix is "; its stderr: LINE | LINE" for an error, or "".
func (t *stderrTail) suffix() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.push()
	if len(t.lines) == 0 {
		return ""
	}
	return "; its stderr: " + strings.Join(t.lines, " | ")
}

// goPluginVersionMismatch matches the error go-plugin's Client.Start returns
// when the plugin answered a protocol version we did not offer. go-plugin
// has no typed error for it, and its handshake is read inside Start, so the
// text is all there is; TestLaunchOldProtocol pins it.
var goPluginVersionMismatch = regexp.MustCompile(`^incompatible API version with plugin\. Plugin version: (-?\d+),`)

func launchError(path string, pin []byte, err error) error {
	if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
		if sum, herr := fileSHA256(path); herr == nil {
			return fmt.Errorf("%w: sha256 is %x, want %x", ErrChecksum, sum, pin)
		}
		return fmt.Errorf("%w: want sha256 %x", ErrChecksum, pin)
	}
	if m := goPluginVersionMismatch.FindStringSubmatch(err.Error()); m != nil {
		if v, aerr := strconv.Atoi(m[1]); aerr == nil {
			return &VersionError{Plugin: v, Host: ProtocolVersion}
		}
	}
	// go-plugin's own text for a bad handshake runs to a dozen lines of
	// generic advice (architecture, libraries, permissions); say what
	// happened in one.
	if line, ok := strings.CutPrefix(err.Error(), goPluginUnrecognized); ok {
		line, _, _ = strings.Cut(line, "\n")
		if line = strings.TrimSpace(line); line != "" {
			return fmt.Errorf("not a hook plugin: it printed %q on stdout where go-plugin's handshake belongs", line)
		}
		return errors.New("no handshake on its stdout: it exited at start, or is not a hook plugin")
	}
	return err
}

// goPluginUnrecognized starts go-plugin's error for a first stdout line that
// is not its handshake (empty when the plugin wrote none).
const goPluginUnrecognized = "Unrecognized remote plugin message: "

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// InProcess serves impl inside this process and returns a Client connected
// to it over a real gRPC connection (on a unix socket, without TLS), through
// the same shims as a launched plugin. It is for tests: of a plugin's
// implementation, and of host code that needs a plugin without building one.
// Kill stops it; PID is 0. Panics in impl are recovered and logged through
// hclog.Default().
func InProcess(impl any) (*Client, error) {
	if err := checkImpl(impl); err != nil {
		return nil, fmt.Errorf("in-process hook: %w", err)
	}
	dir, err := os.MkdirTemp("", "respawner-hook-")
	if err != nil {
		return nil, fmt.Errorf("in-process hook: %w", err)
	}
	sock := filepath.Join(dir, "hook.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("in-process hook: %w", err)
	}
	srv := grpc.NewServer()
	pb.RegisterHookServer(srv, newGRPCServer(impl, hclog.Default().Named("hook")))
	go srv.Serve(lis) //nolint:errcheck // ends with Stop
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		srv.Stop()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("in-process hook: %w", err)
	}
	return &Client{
		g: &grpcClient{c: pb.NewHookClient(conn)},
		stop: func() {
			conn.Close()
			srv.Stop()
			os.RemoveAll(dir)
		},
	}, nil
}

// Info asks the plugin for its version, events and capabilities. Call it
// after Configure: the events a plugin wants may depend on its options.
func (c *Client) Info(ctx context.Context) (Info, error) { return c.g.info(ctx) }

// Configure passes the plugin its options (see ParseSpec) and, for a probe
// plugin, returns its schedule with zero fields defaulted; the schedule is
// nil when the plugin has no probe. A bad option is a *PluginError whose
// message names it.
func (c *Client) Configure(ctx context.Context, opts map[string][]string) (*ProbeConfig, error) {
	return c.g.configure(ctx, opts)
}

// Notify tells the plugin about ev. Send only the kinds Info.Wants.
func (c *Client) Notify(ctx context.Context, ev Event) error { return c.g.notify(ctx, ev) }

// RestartPending asks the plugin whether the program may restart now. On any
// error (ErrUnimplemented, ErrPanic, ErrUnavailable, ErrBadVerdict, the
// context's deadline, a *PluginError) the verdict is Allow, so a caller may
// log the error and use the verdict as it is.
func (c *Client) RestartPending(ctx context.Context, ev Event) (Verdict, error) {
	return c.g.restartPending(ctx, ev)
}

// Probe runs the plugin's health check once. On error the result is
// unhealthy with the error as its reason.
func (c *Client) Probe(ctx context.Context) (ProbeResult, error) { return c.g.probe(ctx) }

// Kill ends the plugin: it asks it to shut down, kills it after two seconds,
// and returns once the process has been reaped. It may be called more than
// once, and after the plugin has exited by itself.
func (c *Client) Kill() {
	c.killed.Store(true)
	if c.quiet != nil {
		c.quiet.Store(true) // ended on purpose: go-plugin's account of it is detail
	}
	if c.pc != nil {
		c.pc.Kill()
	} else if c.stop != nil {
		c.once.Do(c.stop)
	}
}

// Exited reports whether the plugin process has exited (or, in process, been
// killed). A plugin that has exited by itself needs Kill, then a new Launch.
func (c *Client) Exited() bool {
	if c.pc != nil {
		return c.pc.Exited()
	}
	return c.killed.Load()
}

// PID returns the plugin process's pid, 0 for an InProcess client.
func (c *Client) PID() int { return c.pid }

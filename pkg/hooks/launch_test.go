package hooks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The test plugins, built once per test binary into binDir.
var (
	binDir   string
	buildMu  sync.Mutex
	builtBin = map[string]string{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hooks-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// buildPlugin runs `go build` on internal/hooktest/NAME into
// respawner-plugin-NAME and returns its path.
func buildPlugin(tb testing.TB, name string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := builtBin[name]; ok {
		return p
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		tb.Fatalf("building the test plugin needs the go command: %v", err)
	}
	out := filepath.Join(binDir, "respawner-plugin-"+name)
	cmd := exec.Command(gobin, "build", "-o", out, "github.com/respawner/respawner/internal/hooktest/"+name)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", name, err, b)
	}
	builtBin[name] = out
	return out
}

// syncBuffer is a log destination safe for go-plugin's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func launch(t *testing.T, name string, o LaunchOptions) *Client {
	t.Helper()
	c, err := Launch(buildPlugin(t, name), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	return c
}

// gone reports whether no process has the pid (go-plugin has reaped it).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

func TestLaunch(t *testing.T) {
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "respawner", Level: hclog.Debug, Output: logs})
	c := launch(t, "testhook", LaunchOptions{Logger: logger})
	ctx := ctx(t)
	pid := c.PID()
	if pid <= 0 || gone(pid) {
		t.Fatalf("PID() = %d, not a live process", pid)
	}

	record := filepath.Join(t.TempDir(), "events")
	pc, err := c.Configure(ctx, map[string][]string{
		"record": {record}, "version": {"1.2.3"}, "events": {"started,exited,gave-up"},
	})
	if err != nil || pc != nil {
		t.Fatalf("Configure = %v, %v", pc, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Version: "1.2.3", Events: []Kind{Started, Exited, GaveUp}, Configure: true, Notify: true, Veto: true}
	if fmt.Sprint(info) != fmt.Sprint(want) {
		t.Errorf("Info = %+v, want %+v", info, want)
	}

	for _, ev := range []Event{{Kind: Started, PID: 99, Time: time.Now()}, {Kind: Exited, ExitCode: 3, Uptime: time.Second}} {
		if err := c.Notify(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	v, err := c.RestartPending(ctx, Event{Kind: RestartPending, Attempt: 1})
	if err != nil || v != Allow() {
		t.Errorf("RestartPending = %v, %v; want allow", v, err)
	}
	b, err := os.ReadFile(record)
	if err != nil || string(b) != "started\nexited\nrestart-pending\n" {
		t.Errorf("recorded %q, %v", b, err)
	}

	if _, err := c.Configure(ctx, map[string][]string{"decision": {"deny"}, "reason": {"on hold"}}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.RestartPending(ctx, Event{Kind: RestartPending}); err != nil || v != Deny("on hold") {
		t.Errorf("RestartPending = %v, %v; want deny: on hold", v, err)
	}
	if v, _ := c.Probe(ctx); v.Healthy {
		t.Error("testhook probes")
	}

	_, err = c.Configure(ctx, map[string][]string{"colour": {"red"}, "delay": {"abc"}})
	if err == nil || err.Error() != `configure: option delay: "abc" is not a duration; unknown option "colour"` {
		t.Errorf("Configure with bad options: %v", err)
	}

	c.Kill()
	if !c.Exited() {
		t.Error("not Exited after Kill")
	}
	if !gone(pid) {
		t.Errorf("plugin process %d still exists after Kill", pid)
	}
	c.Kill() // a second Kill is harmless
	if _, err := c.RestartPending(ctx, Event{Kind: RestartPending}); err == nil {
		t.Error("RestartPending after Kill succeeded")
	}
	// The plugin's own debug line reached the host's logger under its name.
	// go-plugin re-logs the plugin's JSON fields in map order: look for the
	// line's parts, not one spelling of it.
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "respawner.respawner-plugin-testhook: event:") && strings.Contains(line, "kind=exited") {
			found = true
		}
	}
	if l := logs.String(); !found {
		t.Errorf("the plugin's log lines did not reach the host logger:\n%s", l)
	}
}

func TestLaunchPanicAndDeadline(t *testing.T) {
	c := launch(t, "testhook", LaunchOptions{})
	ctx := ctx(t)
	if _, err := c.Configure(ctx, map[string][]string{"panic": {"true"}, "decision": {"give-up"}}); err != nil {
		t.Fatal(err)
	}
	v, err := c.RestartPending(ctx, Event{Kind: RestartPending})
	if v != Allow() || !errors.Is(err, ErrPanic) {
		t.Errorf("RestartPending of a panicking plugin = %v, %v; want allow, ErrPanic", v, err)
	}
	if c.Exited() {
		t.Fatal("the plugin died of a recovered panic")
	}

	if _, err := c.Configure(ctx, map[string][]string{"sleep": {"3s"}, "decision": {"deny"}}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	v, err = c.RestartPending(short, Event{Kind: RestartPending})
	if v != Allow() || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RestartPending of a stuck plugin = %v, %v; want allow, deadline exceeded", v, err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the host waited %v for a plugin past a 100ms deadline", d)
	}
	// Kill does not wait for the stuck call.
	pid := c.PID()
	start = time.Now()
	c.Kill()
	if d := time.Since(start); d > 2500*time.Millisecond || !gone(pid) {
		t.Errorf("Kill took %v; process gone: %v", d, gone(pid))
	}
}

func TestLaunchCrash(t *testing.T) {
	c := launch(t, "testhook", LaunchOptions{})
	ctx := ctx(t)
	if _, err := c.Configure(ctx, map[string][]string{"crash-on": {"exited"}}); err != nil {
		t.Fatal(err)
	}
	err := c.Notify(ctx, Event{Kind: Exited})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Notify to a crashing plugin = %v, want ErrUnavailable", err)
	}
	// go-plugin notices the exit once it has read the plugin's last output.
	for !c.Exited() {
		select {
		case <-ctx.Done():
			t.Fatal("Exited() never became true")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if v, err := c.RestartPending(ctx, Event{Kind: RestartPending}); v != Allow() || !errors.Is(err, ErrUnavailable) {
		t.Errorf("RestartPending after the crash = %v, %v", v, err)
	}
	pid := c.PID()
	c.Kill()
	if !gone(pid) {
		t.Errorf("crashed plugin %d not reaped", pid)
	}
}

func TestLaunchOldProtocol(t *testing.T) {
	path := buildPlugin(t, "oldproto")
	c, err := Launch(path, LaunchOptions{})
	if err == nil {
		c.Kill()
		t.Fatal("a protocol 2 plugin was launched")
	}
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Plugin != 2 || ve.Host != ProtocolVersion {
		t.Fatalf("error = %v, want a *VersionError{2, 1}", err)
	}
	want := "launch " + path + ": plugin speaks hook protocol 2, respawner speaks 1: rebuild it against this respawner's pkg/hooks"
	if err.Error() != want {
		t.Errorf("error =\n%s\nwant\n%s", err, want)
	}
}

func TestLaunchSHA256(t *testing.T) {
	path := buildPlugin(t, "testhook")
	sum, err := fileSHA256(path)
	if err != nil {
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("not the plugin"))
	_, err = Launch(path, LaunchOptions{SHA256: wrong[:]})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong pin: error = %v, want ErrChecksum", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("sha256 is %x, want %x", sum, wrong)) {
		t.Errorf("wrong pin: error %q does not show both sums", err)
	}
	if _, err := Launch(path, LaunchOptions{SHA256: []byte("abc")}); err == nil || !strings.Contains(err.Error(), "SHA256 pin is 3 bytes, want 32") {
		t.Errorf("short pin: error = %v", err)
	}

	c := launch(t, "testhook", LaunchOptions{SHA256: sum})
	if _, err := c.Info(ctx(t)); err != nil {
		t.Errorf("right pin: Info: %v", err)
	}
}

func TestLaunchNotAPlugin(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "respawner-plugin-liar")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho hello\nexec sleep 30\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "respawner-plugin-broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho starting >&2\necho 'cannot read /etc/broken.conf: permission denied' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{broken, "no handshake on its stdout: it exited at start, or is not a hook plugin; its stderr: starting | cannot read /etc/broken.conf: permission denied"},
		{"/bin/true", ""}, // "plugin exited before we could connect" or "Unrecognized remote plugin message", by timing
		{script, `not a hook plugin: it printed "hello" on stdout where go-plugin's handshake belongs`},
	} {
		start := time.Now()
		c, err := Launch(tt.path, LaunchOptions{StartTimeout: 5 * time.Second})
		if err == nil {
			c.Kill()
			t.Errorf("Launch(%s) succeeded", tt.path)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "launch "+tt.path+": ") {
			t.Errorf("Launch(%s) = %v, want %q", tt.path, err, tt.want)
		}
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("Launch(%s) took %v", tt.path, d)
		}
	}
}

func TestLaunchProbe(t *testing.T) {
	c := launch(t, "testprobe", LaunchOptions{})
	ctx := ctx(t)
	flag := filepath.Join(t.TempDir(), "sick")
	pc, err := c.Configure(ctx, map[string][]string{"unhealthy-while": {flag}, "interval": {"2s"}, "failures": {"5"}})
	if err != nil {
		t.Fatal(err)
	}
	want := ProbeConfig{Interval: 2 * time.Second, Timeout: time.Second, FailureThreshold: 5, SuccessThreshold: 1}
	if pc == nil || *pc != want {
		t.Errorf("Configure = %+v, want %+v", pc, want)
	}
	info, err := c.Info(ctx)
	if err != nil || !info.Probe || info.Notify || info.Veto || info.Events != nil {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if r, err := c.Probe(ctx); err != nil || !r.Healthy {
		t.Errorf("Probe = %+v, %v; want healthy", r, err)
	}
	if err := os.WriteFile(flag, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Probe(ctx); err != nil || r.Healthy || r.Reason != flag+" exists" {
		t.Errorf("Probe = %+v, %v; want unhealthy", r, err)
	}
	if err := c.Notify(ctx, sampleEvent); !errors.Is(err, ErrUnimplemented) {
		t.Errorf("Notify = %v, want ErrUnimplemented", err)
	}
}

func TestLaunchEnvAndLogLevel(t *testing.T) {
	// A plugin launched by a host at warn level does not send its debug
	// lines; Env reaches it even when the host has the same variable.
	t.Setenv(LogLevelEnv, "trace")
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: logs})
	c := launch(t, "testhook", LaunchOptions{Logger: logger, Env: []string{LogLevelEnv + "=warn", "HOOKS_TEST=1"}})
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", c.PID()))
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(b), "\x00")
	want := []string{LogLevelEnv + "=warn", "HOOKS_TEST=1"}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		want = append(want, "GOMAXPROCS=1")
	}
	for _, kv := range want {
		if !slices.Contains(env, kv) {
			t.Errorf("the plugin's environment lacks %s", kv)
		}
	}
	if slices.Contains(env, LogLevelEnv+"=trace") {
		t.Errorf("the plugin's environment has the host's %s=trace too", LogLevelEnv)
	}
	if err := c.Notify(ctx(t), Event{Kind: Exited}); err != nil {
		t.Fatal(err)
	}
	c.Kill()
	if l := logs.String(); strings.Contains(l, "kind=exited") {
		t.Errorf("debug line from a plugin told to log at warn:\n%s", l)
	}
}

func TestLaunchConcurrentCalls(t *testing.T) {
	c := launch(t, "testhook", LaunchOptions{})
	ctx := ctx(t)
	if _, err := c.Configure(ctx, map[string][]string{"decision": {"delay"}, "delay": {"2s"}}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			if i%2 == 0 {
				errs <- c.Notify(ctx, Event{Kind: Started, PID: i})
				return
			}
			v, err := c.RestartPending(ctx, Event{Kind: RestartPending, Attempt: i})
			if err == nil && v != DelayBy(2*time.Second) {
				err = fmt.Errorf("verdict %v", v)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// What go-plugin logs about a plugin reaches the host's log only when it is
// news: a launch that fails is Launch's error alone, a plugin ended by Kill
// leaves no line above debug, and the plugin's own lines carry their fields
// without the "timestamp" go-plugin used to add.
func TestLaunchLogLines(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "respawner-plugin-broken")
	if err := os.WriteFile(broken, []byte("#!/bin/sh\necho 'cannot read /etc/broken.conf' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Name: "hooks", Level: hclog.Info, Output: logs})
	if c, err := Launch(broken, LaunchOptions{Logger: logger}); err == nil {
		c.Kill()
		t.Fatal("the broken plugin was launched")
	} else if !strings.Contains(err.Error(), "its stderr: cannot read /etc/broken.conf") {
		t.Fatalf("error %v", err)
	}
	if l := logs.String(); l != "" {
		t.Errorf("a failed launch logged lines besides its error:\n%s", l)
	}

	logs = &syncBuffer{}
	logger = hclog.New(&hclog.LoggerOptions{Name: "hooks", Level: hclog.Debug, Output: logs, JSONFormat: true})
	c := launch(t, "testhook", LaunchOptions{Logger: logger})
	ctx := ctx(t)
	if err := c.Notify(ctx, Event{Kind: Exited, PID: 42}); err != nil {
		t.Fatal(err)
	}
	c.Kill()
	var event map[string]any
	for l := range strings.Lines(logs.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		switch rec["@message"] {
		case "event": // the plugin's own, at debug
			event = rec
		case "plugin process exited", "plugin failed to exit gracefully":
			if rec["@level"] != "debug" {
				t.Errorf("after Kill, go-plugin logged %q at %v, want debug", rec["@message"], rec["@level"])
			}
		}
	}
	if event == nil {
		t.Fatalf("the plugin's line did not reach the host's log:\n%s", logs)
	}
	if event["@module"] != "hooks.respawner-plugin-testhook" || event["kind"] != "exited" || event["pid"] != float64(42) {
		t.Errorf("the plugin's line: %v", event)
	}
	if _, ok := event["timestamp"]; ok {
		t.Errorf("the plugin's line carries go-plugin's timestamp field: %v", event)
	}
}

// A relative path names a file from the working directory, as it would for a
// shell, not one looked up in $PATH.
func TestLaunchRelativePath(t *testing.T) {
	path := buildPlugin(t, "testhook")
	t.Chdir(filepath.Dir(path))
	c, err := Launch(filepath.Base(path), LaunchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if _, err := c.Info(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// Each plugin's socket goes into a directory of its own under SocketDir,
// which Kill removes; a launch that fails removes it too, even when the
// plugin never ran (go-plugin makes the directory before the exec, and its
// Kill keeps it when the exec failed).
func TestLaunchSocketDir(t *testing.T) {
	entries := func(base string) []string {
		t.Helper()
		var names []string
		err := filepath.WalkDir(base, func(p string, _ os.DirEntry, err error) error {
			if p != base {
				names = append(names, strings.TrimPrefix(p, base+"/"))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	base := t.TempDir()
	c := launch(t, "testhook", LaunchOptions{SocketDir: base})
	if _, err := c.Info(ctx(t)); err != nil {
		t.Fatal(err)
	}
	got := entries(base)
	if len(got) != 2 || !strings.HasPrefix(got[0], "plugin-dir") || !strings.HasPrefix(got[1], got[0]+"/plugin") {
		t.Fatalf("SocketDir holds %q while the plugin runs, want plugin-dirNNN/pluginNNN", got)
	}
	c.Kill()
	if got := entries(base); len(got) != 0 {
		t.Fatalf("SocketDir holds %q after Kill", got)
	}

	dir := t.TempDir()
	noexec := filepath.Join(dir, "respawner-plugin-noexec")
	if err := os.WriteFile(noexec, []byte("\x00\x01 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrong := sha256.Sum256([]byte("not the plugin"))
	for _, tt := range []struct {
		name, path string
		pin        []byte
	}{
		{"missing binary", filepath.Join(dir, "missing"), nil},
		{"exec format error", noexec, nil},
		{"wrong sha256 pin", buildPlugin(t, "testhook"), wrong[:]},
		{"no handshake", "/bin/true", nil},
	} {
		base := t.TempDir()
		if _, err := Launch(tt.path, LaunchOptions{SocketDir: base, SHA256: tt.pin}); err == nil {
			t.Fatalf("%s: Launch succeeded", tt.name)
		}
		if got := entries(base); len(got) != 0 {
			t.Errorf("%s: SocketDir holds %q after the failed Launch", tt.name, got)
		}
	}
}

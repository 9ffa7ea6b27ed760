package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/eventschema"
	"golang.org/x/sys/unix"
)

// debianPython is the interpreter the Python example's launcher names: the
// one that Debian's python3-grpcio and friends are installed for.
const debianPython = "/usr/bin/python3"

// pyEvent is one line of the Python hook's event log: the JSON form of an
// event (docs/writing-hooks.md §4), which the hook writes itself.
type pyEvent struct {
	Kind     string   `json:"kind"`
	Instance string   `json:"instance"`
	Program  string   `json:"program"`
	Args     []string `json:"args"`
	PID      int      `json:"pid"`
	Time     string   `json:"time"`
	ExitCode int      `json:"exit_code"`
	Signal   string   `json:"signal"`
	UptimeMS int64    `json:"uptime_ms"`
	Attempt  int      `json:"attempt"`
	Limit    int      `json:"limit"`
	Reason   string   `json:"reason"`
	Clean    bool     `json:"clean"`
	Output   []string `json:"output"`
	Host     string   `json:"host"`
}

// TestPythonHook runs examples/hooks/python, a hook written in Python from
// docs/writing-hooks.md §9 (go-plugin's handshake, AutoMTLS, the Hook service
// and go-plugin's controller, without any Go), under a daemonized respawner:
// `respawner plugins` lists it, a crash while its maintenance file exists
// is held and announced once, removing the file releases it, the events it
// logs carry their fields, and `respawner stop` ends it through Shutdown
// (no go-plugin SIGKILL after 2 s) and leaves no socket behind.
func TestPythonHook(t *testing.T) {
	if _, err := os.Stat(debianPython); err != nil {
		t.Skipf("no %s: the Python hook example needs Debian's python3 (apt-get install python3)", debianPython)
	}
	if out, err := exec.Command(debianPython, "-c", "import grpc, grpc_tools.protoc, google.protobuf, cryptography").CombinedOutput(); err != nil {
		t.Skipf("the Python hook example needs apt-get install python3-grpcio python3-grpc-tools python3-protobuf python3-cryptography: %s: %v: %s",
			debianPython, err, bytes.TrimSpace(out))
	}
	tmp := t.TempDir()
	src, err := filepath.Abs("../../examples/hooks/python")
	if err != nil {
		t.Fatal(err)
	}

	// Install it as the README says: the hook and its stubs in a directory
	// of their own, the launcher linked into a plugin directory.
	lib := filepath.Join(tmp, "lib", "maintenance-py")
	plugins := filepath.Join(tmp, "plugins")
	for _, d := range []string{lib, plugins} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"maintenance.py", "respawner-plugin-maintenance-py"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(lib, f), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("sh", filepath.Join(src, "gen.sh"), filepath.Join(lib, "build")).CombinedOutput(); err != nil {
		t.Fatalf("gen.sh: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(lib, "respawner-plugin-maintenance-py"), filepath.Join(plugins, "respawner-plugin-maintenance-py")); err != nil {
		t.Fatal(err)
	}

	// The plugin's socket directory is made under respawner's TMPDIR: a
	// directory of the test's own shows that nothing is left there. Its
	// path is short: a unix socket's has at most 107 bytes, and this one's
	// is two directories (respawner's for the host, go-plugin's for the
	// plugin) and maintenance-py.PID.sock further down.
	sockTmp, err := os.MkdirTemp("", "py-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockTmp) })
	t.Setenv("TMPDIR", sockTmp)
	// This machine's environment may set PYTHONUNBUFFERED, which would hide
	// a handshake line left in Python's buffer: test what a system has.
	t.Setenv("PYTHONUNBUFFERED", "")
	os.Unsetenv("PYTHONUNBUFFERED")

	dir := runtimeDir(t)
	r := respawner(t, dir, "plugins", "--plugin-dir", plugins)
	if r.code != 0 {
		t.Fatalf("plugins: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if row := tableRow(r.stdout, "maintenance-py"); !slices.Equal(row, []string{"maintenance-py", "1.0.0", "events,veto", filepath.Join(plugins, "respawner-plugin-maintenance-py")}) {
		t.Fatalf("plugins: row %q:\n%s%s", row, r.stdout, r.stderr)
	}

	maint := filepath.Join(tmp, "maintenance")
	events := filepath.Join(tmp, "events.jsonl")
	logFile := filepath.Join(tmp, "respawner.log")
	mark := filepath.Join(tmp, "crashed")
	if err := os.WriteFile(maint, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// It crashes once, after 100 ms (an uptime to check), then runs.
	prog := script(t, tmp, "svc", fmt.Sprintf("[ -e %[1]s ] && exec sleep 1000\n: > %[1]s\necho crashing on purpose\nsleep 0.1\nexit 3", mark))
	const name = "pyhook"
	cleanupInstance(t, dir, name)
	r = respawner(t, dir, "start", "--name", name, "--start-check", "0", "-t", "200ms",
		"--log-file", logFile, "--log-format", "json",
		"--plugin-dir", plugins, "--plugin", "maintenance-py:file="+maint+",event-log="+events, prog)
	if r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}

	// Held, and asked again (at most once a second) without a new event.
	st := waitState(t, dir, name, "held", -1, 10*time.Second) // no pid while held
	if want := "maintenance-py: " + maint + " exists"; !strings.Contains(st.Reason, want) {
		t.Fatalf("held for %q, want %q", st.Reason, want)
	}
	waitContent(t, logFile, 10*time.Second, "a re-ask while held", func(b []byte) bool {
		return bytes.Count(b, []byte(`"restart-pending answered"`)) >= 2
	})
	if st, code := statusOf(t, dir, name); code != 3 || st.State != "held" {
		t.Fatalf("status after a re-ask: exit %d %+v, want 3 and held", code, st)
	}
	if err := os.Remove(maint); err != nil {
		t.Fatal(err)
	}
	st = waitState(t, dir, name, "running", 0, 10*time.Second)

	// status shows a run before the hook has heard of it: wait for the line.
	evs := waitEvents(t, events, 10*time.Second, func(evs []pyEvent) bool {
		return countKind(evs, "started") >= 2
	})
	if got, want := kinds(evs), []string{"starting", "started", "exited", "held", "released", "restarting", "started"}; !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	host, _ := os.Hostname()
	for _, ev := range evs {
		if ev.Instance != name || ev.Program != prog || ev.Args == nil || ev.Output == nil {
			t.Errorf("%s: instance %q program %q args %v output %v; want %q %q [] and a list",
				ev.Kind, ev.Instance, ev.Program, ev.Args, ev.Output, name, prog)
		}
		if ev.Host != host {
			t.Errorf("%s: host %q, want %q", ev.Kind, ev.Host, host)
		}
		if tm, err := time.Parse(time.RFC3339Nano, ev.Time); err != nil || time.Since(tm) > time.Minute || time.Since(tm) < 0 {
			t.Errorf("%s: time %q: %v", ev.Kind, ev.Time, err)
		}
	}
	if ex := evs[2]; ex.PID <= 0 || ex.ExitCode != 3 || ex.Signal != "" || ex.Clean || ex.UptimeMS < 100 || !slices.Contains(ex.Output, "crashing on purpose") {
		t.Errorf("exited: %+v; want its pid, status 3, not clean, an uptime of 100 ms or more, output with the program's line", ex)
	}
	if held := evs[3]; !strings.Contains(held.Reason, maint+" exists") {
		t.Errorf("held: reason %q, want the hook's", held.Reason)
	}
	if re := evs[5]; re.Attempt != 1 {
		t.Errorf("restarting: attempt %d, want 1", re.Attempt)
	}
	if s := evs[6]; s.PID != st.PID || s.Attempt != 1 {
		t.Errorf("second started: pid %d attempt %d; want %d and 1", s.PID, s.Attempt, st.PID)
	}

	// A clean stop: the plugin gets stopping, exited and stopped, then
	// Shutdown, and exits by itself well before go-plugin's 2 s.
	plugin := pythonPlugin(t, st.RespawnerPID, lib)
	fd := watchPID(t, plugin)
	start := time.Now()
	if r := respawnerWithin(t, dir, 10*time.Second, "stop", name); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	took := time.Since(start)
	if !gone(fd, 0) {
		t.Fatalf("the plugin (pid %d) outlived respawner", plugin)
	}
	t.Logf("stop took %s", took.Round(time.Millisecond))
	log, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(log, []byte("plugin failed to exit gracefully")) || bytes.Contains(log, []byte("signal: killed")) {
		t.Errorf("the plugin did not exit by itself at Shutdown:\n%s", log)
	}
	if took >= 2*time.Second {
		t.Errorf("stop took %s, as long as go-plugin's wait before SIGKILL", took)
	}
	if left, _ := os.ReadDir(sockTmp); len(left) != 0 {
		t.Errorf("left in TMPDIR after stop: %v", left)
	}
	evs = readEvents(t, events)
	if got, want := kinds(evs[len(evs)-3:]), []string{"stopping", "exited", "stopped"}; !slices.Equal(got, want) {
		t.Errorf("last events %v, want %v", kinds(evs), want)
	} else if ex := evs[len(evs)-2]; ex.Signal != "SIGTERM" || !ex.Clean {
		t.Errorf("exited at stop: signal %q clean %v; want SIGTERM, clean", ex.Signal, ex.Clean)
	}
	if countKind(evs, "held") != 1 || countKind(evs, "released") != 1 {
		t.Errorf("events %v: want one held and one released", kinds(evs))
	}
}

// tableRow returns the fields of the line of `respawner plugins` for name.
func tableRow(out, name string) []string {
	for l := range strings.SplitSeq(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] == name {
			return f
		}
	}
	return nil
}

// pythonPlugin finds the Python hook's process below respawner: its exe is
// python, so it is told by the script in its command line.
func pythonPlugin(t *testing.T, respawnerPID int, lib string) int {
	t.Helper()
	for _, p := range descendantsOf(respawnerPID) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if bytes.Contains(cmd, []byte(filepath.Join(lib, "maintenance.py"))) {
			return p
		}
	}
	t.Fatalf("no Python hook below respawner %d:\n%s", respawnerPID, treeDump(respawnerPID))
	return 0
}

func kinds(evs []pyEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

func countKind(evs []pyEvent, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// readEvents parses the hook's event log, each line checked against the
// published schema of an event.
func readEvents(t *testing.T, path string) []pyEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var evs []pyEvent
	for l := range bytes.SplitSeq(bytes.TrimSpace(b), []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if err := eventschema.Validate(l); err != nil {
			t.Errorf("event log line %s: not the JSON form of docs/event.schema.json: %v", l, err)
		}
		var ev pyEvent
		if err := json.Unmarshal(l, &ev); err != nil {
			t.Fatalf("event log line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// waitEvents waits until the hook's event log satisfies ok, and returns it.
func waitEvents(t *testing.T, path string, timeout time.Duration, ok func([]pyEvent) bool) []pyEvent {
	t.Helper()
	var evs []pyEvent
	waitContent(t, path, timeout, "the events wanted", func([]byte) bool {
		evs = readEvents(t, path)
		return ok(evs)
	})
	return evs
}

// waitContent waits, on inotify rather than a sleep, until ok accepts the
// content of path (empty while it does not exist).
func waitContent(t *testing.T, path string, timeout time.Duration, what string, ok func([]byte) bool) {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_MODIFY|unix.IN_CLOSE_WRITE|unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(path)
		if ok(b) {
			return
		}
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			t.Fatalf("no %s in %s after %s:\n%s", what, path, timeout, b)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err == nil && fds[0].Revents != 0 {
			var buf [4096]byte
			unix.Read(fd, buf[:])
		}
	}
}

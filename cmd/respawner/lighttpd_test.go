package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
)

// lighttpdBin is Debian's lighttpd; .ci/run installs it.
func lighttpdBin(t *testing.T) string {
	t.Helper()
	return debianTool(t, "/usr/sbin/lighttpd", "lighttpd")
}

// debianTool is the program at path (or of its name in PATH), from Debian's
// package pkg, which .ci/run installs; the test fails without it.
func debianTool(t *testing.T, path, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(filepath.Base(path)); err == nil {
		return p
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("%s is not installed: apt-get install %s (.ci/run does)", filepath.Base(path), pkg)
	}
	return path
}

// site is a lighttpd configuration of a test: its own port on 127.0.0.1, its
// own document root and pidfile.
type site struct {
	dir, conf, pidfile string
	port               int
}

func newSite(t *testing.T, pidfile string) *site {
	t.Helper()
	dir := t.TempDir()
	if pidfile == "" {
		pidfile = filepath.Join(dir, "lighttpd.pid")
	}
	s := &site{dir: dir, conf: filepath.Join(dir, "lighttpd.conf"), pidfile: pidfile, port: freePort(t)}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
	conf := fmt.Sprintf(`server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
server.pid-file = %q
server.errorlog = %q
index-file.names = ("index.html")
`, dir, s.port, pidfile, filepath.Join(dir, "error.log"))
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get fetches / and returns the status code (0 when nothing answers).
func (s *site) get() int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.port))
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// closed reports whether nothing listens on the port any more.
func (s *site) closed() bool {
	c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return true
}

func statusOf(t *testing.T, dir, name string) (control.Status, int) {
	t.Helper()
	r := respawner(t, dir, "status", "--json", name)
	var st control.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %q %q", err, r.stdout, r.stderr)
	}
	return st, r.code
}

// waitState waits for the instance to report state with a pid other than notPID.
func waitState(t *testing.T, dir, name, state string, notPID int, timeout time.Duration) control.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := statusOf(t, dir, name)
		if st.State == state && st.PID != notPID {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become %s (pid != %d) within %s; last status %+v", name, state, notPID, timeout, st)
		}
		time.Sleep(50 * time.Millisecond) // the test polls status the way an operator would; respawner does not poll
	}
}

// waitDaemon waits until the status names the pid lighttpd wrote to its
// pidfile: without -p respawner reports the launcher as running until it
// exits and the daemon it left is followed.
func waitDaemon(t *testing.T, dir string, s *site, st control.Status, timeout time.Duration) control.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(s.pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid == st.PID {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never named the daemon of pidfile %s: %+v", s.pidfile, st)
		}
		time.Sleep(20 * time.Millisecond) // the test polls as an operator would
		st, _ = statusOf(t, dir, "lighttpd")
	}
}

// cleanupInstance stops whatever an instance left running, whatever the test did.
func cleanupInstance(t *testing.T, dir, name string) {
	t.Cleanup(func() {
		if pid, live := control.Live(dir, name); live {
			for _, c := range descendantsOf(pid) {
				syscall.Kill(c, syscall.SIGKILL)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			control.WaitGone(pid, 5*time.Second)
		}
	})
}

// assertNothingLeft checks that no lighttpd of the site runs, its port is
// closed, and the runtime dir holds no instance files (the log may stay).
func assertNothingLeft(t *testing.T, dir string, s *site) {
	t.Helper()
	if !s.closed() {
		t.Errorf("port %d still open", s.port)
	}
	if b, err := os.ReadFile(s.pidfile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && alive(pid) {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); strings.Contains(exe, "lighttpd") {
				t.Errorf("lighttpd pid %d still running", pid)
			}
		}
	}
	assertRuntimeDirEmpty(t, dir)
}

func TestLighttpdModes(t *testing.T) {
	bin := lighttpdBin(t)
	tests := []struct {
		name string
		args func(s *site) []string
	}{
		{"daemonizing with -p", func(s *site) []string { return []string{"--pidfile=" + s.pidfile, bin, "--", "-f", s.conf} }},
		{"daemonizing without -p", func(s *site) []string { return []string{bin, "--", "-f", s.conf} }},
		{"foreground -D", func(s *site) []string { return []string{bin, "--", "-D", "-f", s.conf} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSite(t, "")
			dir := runtimeDir(t)
			cleanupInstance(t, dir, "lighttpd")
			args := append([]string{"start", "-t", "1"}, tt.args(s)...)
			if r := respawner(t, dir, args...); r.code != 0 {
				t.Fatalf("start: exit %d: %s", r.code, r.stderr)
			}
			if code := s.get(); code != 200 {
				t.Fatalf("GET / = %d after start, want 200", code)
			}
			st, code := statusOf(t, dir, "lighttpd")
			if code != 0 || st.State != "running" || st.PID == 0 {
				t.Fatalf("status after start: exit %d, %+v", code, st)
			}
			st = waitDaemon(t, dir, s, st, 10*time.Second)
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", st.PID)); !strings.HasSuffix(exe, "lighttpd") {
				t.Fatalf("status names pid %d, which is %q, not lighttpd", st.PID, exe)
			}
			killed := st.PID
			if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			st = waitState(t, dir, "lighttpd", "running", killed, 10*time.Second)
			st = waitDaemon(t, dir, s, st, 10*time.Second)
			if st.Restarts != 1 {
				t.Fatalf("restarts = %d after one kill, want 1", st.Restarts)
			}
			if st.LastExit == nil || st.LastExit.Signal != "SIGKILL" {
				t.Fatalf("last_exit = %+v, want SIGKILL", st.LastExit)
			}
			if code := s.get(); code != 200 {
				t.Fatalf("GET / = %d after the restart, want 200", code)
			}
			line := respawner(t, dir, "status", "lighttpd").stdout
			if !strings.Contains(line, "lighttpd is running (pid "+strconv.Itoa(st.PID)) || !strings.Contains(line, "restarts 1") {
				t.Fatalf("status line %q", line)
			}
			if r := respawner(t, dir, "stop", "lighttpd"); r.code != 0 {
				t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
			}
			if alive(st.PID) {
				t.Fatalf("lighttpd %d survived stop", st.PID)
			}
			if r := respawner(t, dir, "status", "lighttpd"); r.code != 3 || r.stdout != "lighttpd is not running\n" {
				t.Fatalf("status after stop: exit %d %q", r.code, r.stdout)
			}
			assertNothingLeft(t, dir, s)
		})
	}
}

// The original C respawner's lighttpd scenario: -e 0,1 -p, status, kill -9,
// status, running again, kill -TERM of lighttpd ends supervision.
func TestOriginalLighttpdScenario(t *testing.T) {
	bin := lighttpdBin(t)
	name := fmt.Sprintf("lt-%d", os.Getpid())
	// -p alone means /run/NAME.pid (root) or /tmp/NAME.pid.
	s := newSite(t, defaultPidfile(name))
	t.Cleanup(func() { os.Remove(s.pidfile) })
	dir := runtimeDir(t)
	cleanupInstance(t, dir, name)
	if r := respawner(t, dir, "start", "-t", "1", "-e", "0,1", "-p", "--name", name, bin, "--", "-f", s.conf); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	st, code := statusOf(t, dir, name)
	if code != 0 {
		t.Fatalf("status exit %d, want 0 (running): %+v", code, st)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	control.WaitGone(st.PID, 5*time.Second)
	if r := respawner(t, dir, "status", name); r.code != 3 || !strings.HasPrefix(r.stdout, name+" is not running") {
		t.Fatalf("status right after kill -9: exit %d %q, want 3 and not running", r.code, r.stdout)
	}
	st = waitState(t, dir, name, "running", st.PID, 10*time.Second)
	if s.get() != 200 {
		t.Fatal("lighttpd does not serve after the restart")
	}
	rpid := st.RespawnerPID
	syscall.Kill(st.PID, syscall.SIGTERM)
	if !control.WaitGone(rpid, 10*time.Second) {
		t.Fatal("kill -TERM of lighttpd did not end supervision")
	}
	if r := respawner(t, dir, "status", name); r.code != 3 {
		t.Fatalf("status after TERM: exit %d, want 3", r.code)
	}
	assertNothingLeft(t, dir, s)
}

// start of lighttpd that cannot start (no configuration) says what lighttpd
// said and leaves nothing running.
func TestStartCheckReportsProgramError(t *testing.T) {
	bin := lighttpdBin(t)
	dir := runtimeDir(t)
	cleanupInstance(t, dir, "lighttpd")
	r := respawner(t, dir, "start", bin)
	if r.code != 1 {
		t.Fatalf("start of lighttpd without config: exit %d, want 1: %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "during the start check") || !strings.Contains(r.stderr, "No configuration available") {
		t.Fatalf("stderr %q should give lighttpd's exit and its message", r.stderr)
	}
	if _, live := control.Live(dir, "lighttpd"); live {
		t.Fatal("an instance is left running")
	}
	assertRuntimeDirEmpty(t, dir)
}

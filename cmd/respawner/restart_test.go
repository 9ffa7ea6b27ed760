package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// TestRestartCommand: restart stops the program (its whole tree is gone
// before the new run starts: the program holds a lock that a second copy
// could not take), starts it again at once, and starts the count, backoff
// and the respawn limit over. The hooks hear stopping and restarting for
// the reason "requested", and are not asked.
func TestRestartCommand(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	lock, rec := filepath.Join(tmp, "lock"), filepath.Join(tmp, "events")
	// -n 3, backoff from 200ms doubling: three failures use the budget up
	// and make the next delay 1.6s.
	startDaemon(t, dir, "locked", hookArgs("--plugin", "testhook:record-json="+rec, "-t", "0.2", "--respawn-max-delay", "1m", "-n", "3",
		"/usr/bin/flock", "--", "-n", "-E", "99", lock, "sleep", "1000")...)
	st := waitState(t, dir, "locked", "running", 0, 10*time.Second)
	for range 3 {
		syscall.Kill(st.PID, syscall.SIGKILL)
		st = waitState(t, dir, "locked", "running", st.PID, 10*time.Second)
	}
	if st.Restarts != 3 {
		t.Fatalf("after three failures: %+v", st)
	}

	r := respawnerWithin(t, dir, 30*time.Second, "restart", "locked")
	if r.code != 0 {
		t.Fatalf("restart: exit %d: %s", r.code, r.stderr)
	}
	now, code := statusOf(t, dir, "locked")
	if code != 0 || now.State != "running" || now.PID == st.PID || now.Restarts != 0 {
		t.Fatalf("after restart: exit %d %+v, want running, a new pid, restarts 0", code, now)
	}
	if alive(st.PID) {
		t.Errorf("the old run (pid %d) still lives", st.PID)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "locked.log")); strings.Contains(string(b), "exit status 99") {
		t.Errorf("a run could not take the lock: two ran at once\n%s", b)
	}

	// The budget is whole again and the delay back at -t: a fourth
	// failure is restarted (not given up), 200ms after it, not 1.6s.
	syscall.Kill(now.PID, syscall.SIGKILL)
	after := waitState(t, dir, "locked", "running", now.PID, 10*time.Second)
	if after.Restarts != 1 {
		t.Errorf("the failure after the restart: %+v, want restarts 1", after)
	}
	evs := recorded(t, rec)
	var died time.Time
	var told []string
	for i, ev := range evs {
		if ev.Kind == hookspec.Stopping {
			for _, e := range evs[i:] {
				told = append(told, string(e.Kind)+":"+e.Reason)
				if e.Kind == hookspec.Started {
					break
				}
			}
		}
		if ev.Kind == hookspec.Exited && ev.PID == now.PID {
			died = ev.Time
		}
		if ev.Kind == hookspec.Restarting && !died.IsZero() {
			if d := ev.Time.Sub(died); d > time.Second {
				t.Errorf("the first failure after the restart waited %s: backoff did not start over", d)
			}
			break
		}
	}
	want := []string{"stopping:requested", "exited:", "restarting:requested", "started:"}
	if strings.Join(told, " ") != strings.Join(want, " ") {
		t.Errorf("the hooks heard %q, want %q", told, want)
	}
}

// TestRestartNotPutToTheVeto: a restart held by a hook starts at once on
// an operator's restart, which the hook is not asked about.
func TestRestartNotPutToTheVeto(t *testing.T) {
	dir := runtimeDir(t)
	rec := filepath.Join(t.TempDir(), "events")
	startDaemon(t, dir, "held", hookArgs("--plugin", "testhook:decision=deny,reason=maintenance,record="+rec, "-t", "0.2",
		"/bin/sleep", "--", "1000")...)
	st := waitState(t, dir, "held", "running", 0, 10*time.Second)
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitState(t, dir, "held", "held", -1, 10*time.Second)
	asked := strings.Count(readFile(t, rec), "restart-pending")
	if r := respawnerWithin(t, dir, 30*time.Second, "restart", "held"); r.code != 0 {
		t.Fatalf("restart: exit %d: %s", r.code, r.stderr)
	}
	if now, _ := statusOf(t, dir, "held"); now.State != "running" || now.PID == st.PID {
		t.Fatalf("after restart: %+v", now)
	}
	got := readFile(t, rec)
	if n := strings.Count(got, "restart-pending"); n != asked {
		t.Errorf("the hook was asked %d more times", n-asked)
	}
	if !strings.Contains(got, "released\nrestarting\nstarted\n") {
		t.Errorf("the hook did not hear released, restarting, started:\n%s", got)
	}
}

// TestRestartFails: a new run that dies under the start check makes
// restart exit 1 with its status; supervision goes on, and the program is
// restarted as usual once it can run again.
func TestRestartFails(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	broken := filepath.Join(tmp, "broken")
	prog := script(t, tmp, "conf.sh", "[ -e "+broken+" ] && { echo 'bad configuration' >&2; exit 3; }\nexec sleep 1000")
	startDaemon(t, dir, "conf", "-t", "0.5", prog)
	st := waitState(t, dir, "conf", "running", 0, 10*time.Second)
	os.WriteFile(broken, nil, 0o644)
	r := respawnerWithin(t, dir, 30*time.Second, "restart", "conf")
	if r.code != 1 || !strings.Contains(r.stderr, "exit status 3") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("restart into a broken configuration: exit %d %q, want 1 and one line with exit status 3", r.code, r.stderr)
	}
	os.Remove(broken)
	if now := waitState(t, dir, "conf", "running", st.PID, 10*time.Second); now.Restarts < 1 {
		t.Errorf("not restarted as usual: %+v", now)
	}
	if r := respawner(t, dir, "restart", "nosuch"); r.code != 3 || !strings.Contains(r.stderr, "nosuch is not running") {
		t.Errorf("restart of no instance: exit %d %q, want 3", r.code, r.stderr)
	}
	if r := respawner(t, dir, "restart"); r.code != 2 {
		t.Errorf("restart without a name: exit %d, want 2", r.code)
	}
}

// TestStopSignal: --stop-signal is what stop and restart send first; the
// program's handler of it runs (SIGCONT follows, for a stopped program).
func TestStopSignal(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	got := filepath.Join(tmp, "got")
	prog := script(t, tmp, "graceful.sh", "trap 'echo QUIT >> "+got+"; exit 0' QUIT\ntrap 'echo TERM >> "+got+"; exit 0' TERM\nwhile :; do sleep 1; done")
	startDaemon(t, dir, "graceful", "--stop-signal", "quit", prog)
	st := waitState(t, dir, "graceful", "running", 0, 10*time.Second)
	if r := respawnerWithin(t, dir, 30*time.Second, "restart", "graceful"); r.code != 0 {
		t.Fatalf("restart: exit %d: %s", r.code, r.stderr)
	}
	now := waitState(t, dir, "graceful", "running", st.PID, 10*time.Second)
	syscall.Kill(now.PID, syscall.SIGSTOP) // stopped: it acts on QUIT once continued
	if r := respawnerWithin(t, dir, 30*time.Second, "stop", "graceful"); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	if b := readFile(t, got); b != "QUIT\nQUIT\n" {
		t.Errorf("the program got %q, want QUIT at the restart and at the stop", b)
	}
	for _, bad := range []string{"SIGNOPE", "0", "65"} {
		if r := respawner(t, dir, "start", "--stop-signal", bad, "/bin/true"); r.code != 2 || !strings.Contains(r.stderr, "--stop-signal") {
			t.Errorf("--stop-signal %s: exit %d %q, want 2", bad, r.code, r.stderr)
		}
	}
}

// TestSignalCommand: signal sends to the program's main process, or its
// process group; a program that is down is exit 1, no instance 3.
func TestSignalCommand(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	got, child := filepath.Join(tmp, "got"), filepath.Join(tmp, "child")
	prog := script(t, tmp, "sig.sh", "trap 'echo USR1 >> "+got+"' USR1\nsleep 1000 &\necho $! > "+child+"\nwhile :; do wait; done")
	startDaemon(t, dir, "sig", "-t", "1m", prog)
	st := waitState(t, dir, "sig", "running", 0, 10*time.Second)
	kid := waitFile(t, child, 10*time.Second)
	for _, sig := range []string{"USR1", "sigusr1", "10"} {
		if r := respawner(t, dir, "signal", "sig", sig); r.code != 0 {
			t.Fatalf("signal %s: exit %d: %s", sig, r.code, r.stderr)
		}
	}
	eventually(t, 10*time.Second, "three USR1 handled", func() bool { return fileText(got) == "USR1\nUSR1\nUSR1\n" })
	kpid, err := strconv.Atoi(kid)
	if err != nil || !alive(kpid) {
		t.Fatalf("the program's child %q died of a signal for its main process", kid)
	}
	if r := respawner(t, dir, "signal", "--group", "sig", "USR2"); r.code != 0 { // not a clean exit: restarted
		t.Fatalf("signal --group: exit %d: %s", r.code, r.stderr)
	}
	down := waitState(t, dir, "sig", "backoff", -1, 10*time.Second)
	if alive(kpid) {
		t.Errorf("the program's child (pid %d) did not get the group's signal", kpid)
	}
	if down.PID != 0 || st.PID == 0 {
		t.Fatalf("status %+v", down)
	}
	if r := respawner(t, dir, "signal", "sig", "HUP"); r.code != 1 || !strings.Contains(r.stderr, "not running") {
		t.Errorf("signal to a program that is down: exit %d %q, want 1", r.code, r.stderr)
	}
	if r := respawner(t, dir, "signal", "nosuch", "HUP"); r.code != 3 {
		t.Errorf("signal to no instance: exit %d %q, want 3", r.code, r.stderr)
	}
	for _, args := range [][]string{{"signal", "sig", "NOPE"}, {"signal", "sig"}, {"signal", "sig", "0"}} {
		if r := respawner(t, dir, args...); r.code != 2 {
			t.Errorf("%q: exit %d %q, want 2", args, r.code, r.stderr)
		}
	}
}

// TestSignalHUPReachesLighttpd: lighttpd cycles its logs on SIGHUP from
// respawner signal and keeps serving, under the same pid.
func TestSignalHUPReachesLighttpd(t *testing.T) {
	dir := runtimeDir(t)
	s := newSite(t, "")
	startDaemon(t, dir, "lighttpd", lighttpdBin(t), "--", "-f", s.conf)
	st := waitDaemon(t, dir, s, waitState(t, dir, "lighttpd", "running", 0, 10*time.Second), 10*time.Second)
	if r := respawner(t, dir, "signal", "lighttpd", "HUP"); r.code != 0 {
		t.Fatalf("signal HUP: exit %d: %s", r.code, r.stderr)
	}
	eventually(t, 10*time.Second, "lighttpd's 'logfiles cycled'", func() bool {
		return strings.Contains(fileText(filepath.Join(s.dir, "error.log")), "logfiles cycled")
	})
	if code := s.get(); code != 200 {
		t.Errorf("after HUP lighttpd answers %d", code)
	}
	if now, _ := statusOf(t, dir, "lighttpd"); now.PID != st.PID || now.Restarts != 0 {
		t.Errorf("after HUP: %+v, want pid %d and no restart", now, st.PID)
	}
	respawner(t, dir, "stop", "lighttpd")
}

// eventually waits until cond holds, polling as an operator would (the test
// does; respawner does not).
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, timeout)
		}
	}
}

// fileText is the file's content, "" when it cannot be read.
func fileText(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

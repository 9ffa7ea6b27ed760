package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestRestartAfterSIGKILL(t *testing.T) {
	in := startRespawner(t, "-t", "1", "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 5*time.Second).int("pid")
	killed := time.Now()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	ex := in.waitFor("killed by signal", 5*time.Second)
	if ex.str("signal") != "SIGKILL" || ex.int("pid") != pid {
		t.Fatalf("exit logged as %v, want SIGKILL of pid %d", ex, pid)
	}
	re := in.waitFor("restarted", 5*time.Second)
	after := time.Since(killed)
	if re.int("pid") == pid || re.int("pid") == 0 {
		t.Fatalf("restarted with pid %d, the killed one was %d", re.int("pid"), pid)
	}
	if after < 900*time.Millisecond || after > 4*time.Second {
		t.Fatalf("restart came %s after the kill, want about 1s (-t 1)", after)
	}
	if !alive(re.int("pid")) {
		t.Fatalf("new child %d is not alive", re.int("pid"))
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0:\n%s", code, in.log())
	}
	if alive(re.int("pid")) {
		t.Fatalf("child %d outlived respawner", re.int("pid"))
	}
}

func TestExitPolicies(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		exitWith int
		wantRuns int
		wantCode int
	}{
		{"failure restarted until -n is used up", []string{"-n", "2"}, 1, 3, 1},
		{"exit 0 ends supervision", nil, 0, 1, 0},
		{"-e 0,7 makes 7 clean", []string{"-e", "0,7"}, 7, 1, 0},
		{"7 is a failure without -e", []string{"-n", "1"}, 7, 2, 1},
		{"-e replaces 0", []string{"-e", "7", "-n", "1"}, 0, 2, 1},
		{"always restarts after exit 0", []string{"--restart", "always", "-n", "2"}, 0, 3, 1},
		{"never ends at the first failure", []string{"--restart", "never"}, 1, 1, 1},
		{"never ends at the first clean exit", []string{"--restart", "never"}, 0, 1, 0},
		{"window: quick restarts give up", []string{"-n", "2", "--respawn-window", "1m"}, 1, 3, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			runs := filepath.Join(dir, "runs")
			prog := script(t, dir, "job.sh", fmt.Sprintf("echo run >> %s\nexit %d", runs, tt.exitWith))
			args := append(append([]string{"-t", "0"}, tt.args...), prog)
			in := startRespawner(t, args...)
			if code := in.wait(20 * time.Second); code != tt.wantCode {
				t.Fatalf("exit code %d, want %d:\n%s", code, tt.wantCode, in.log())
			}
			if n := lines(t, runs); n != tt.wantRuns {
				t.Fatalf("program ran %d times, want %d:\n%s", n, tt.wantRuns, in.log())
			}
		})
	}
}

func TestGiveUpIsLogged(t *testing.T) {
	in := startRespawner(t, "-t", "200ms", "-n", "1", "/bin/false")
	in.waitFor("started", 5*time.Second)
	in.waitFor("exited", 5*time.Second)
	in.waitFor("respawn scheduled", 5*time.Second)
	if l := in.waitFor("restarted", 5*time.Second); l.str("restart") != "1/1" {
		t.Fatalf("restart logged as %q, want 1/1", l.str("restart"))
	}
	in.waitFor("gave up: respawn limit reached", 5*time.Second)
	if code := in.wait(5 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
}

func TestCleanSignalsEndSupervision(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE} {
		t.Run(sig.String(), func(t *testing.T) {
			in := startRespawner(t, "-t", "0", "/bin/sleep", "--", "1000")
			pid := in.waitFor("started", 5*time.Second).int("pid")
			syscall.Kill(pid, sig)
			if code := in.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d after the program died of %s, want 0:\n%s", code, sig, in.log())
			}
		})
	}
}

// The program must not inherit what respawner itself inherited: blocked and
// ignored signals and open descriptors beyond 0, 1, 2.
func TestChildHygiene(t *testing.T) {
	for _, hostile := range []bool{false, true} {
		t.Run(fmt.Sprintf("hostile-parent=%v", hostile), func(t *testing.T) {
			var prefix []string
			if hostile {
				t.Setenv("RSPTEST_HELPER", "hostile-parent")
				prefix = []string{os.Args[0]}
			}
			// cat echoes a line from the test: once the echo is back, cat is
			// past its start-up (the dynamic loader's descriptors are closed).
			var stdin io.WriteCloser
			var stdout *bufio.Reader
			in := startWith(t, prefix, func(c *exec.Cmd) {
				w, _ := c.StdinPipe()
				r, _ := c.StdoutPipe()
				stdin, stdout = w, bufio.NewReader(r)
			}, "start", "-D", "--log-format", "json", "-t", "0", "/bin/cat")
			t.Setenv("RSPTEST_HELPER", "")
			pid := in.waitFor("started", 5*time.Second).int("pid")
			fmt.Fprintln(stdin, "ping")
			if line, err := stdout.ReadString('\n'); err != nil || line != "ping\n" {
				t.Fatalf("cat echoed %q, %v", line, err)
			}
			if hostile {
				// The hostile parent really did hand respawner a blocked mask and fd 7:
				// other threads than the loop's still block what it blocked.
				if !anyThreadBlocks(t, in.cmd.Process.Pid) {
					t.Fatal("respawner was started without blocked signals")
				}
				if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/7", in.cmd.Process.Pid)); err != nil {
					t.Fatalf("respawner did not inherit fd 7: %v", err)
				}
			}
			st := procStatus(t, pid)
			for _, k := range []string{"SigBlk", "SigIgn"} {
				if st[k] != "0000000000000000" {
					t.Errorf("child %s = %s, want all zero", k, st[k])
				}
			}
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			if err != nil {
				t.Fatal(err)
			}
			var fds []string
			for _, e := range ents {
				fds = append(fds, e.Name())
			}
			if strings.Join(fds, ",") != "0,1,2" {
				l3, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/3", pid))
				t.Errorf("child fds = %v (3 is %s), want only 0,1,2", fds, l3)
			}
			pgid, _ := syscall.Getpgid(pid)
			if pgid != pid {
				t.Errorf("child pgid = %d, want its own group %d", pgid, pid)
			}
			stdin.Close() // cat ends cleanly at EOF, and supervision with it
			if code := in.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit code %d, want 0:\n%s", code, in.log())
			}
		})
	}
}

// The helper itself must be hostile, or the test above proves nothing.
func TestHostileParentIsHostile(t *testing.T) {
	cmd := exec.Command(os.Args[0], "/bin/sleep", "1000")
	cmd.Env = append(os.Environ(), "RSPTEST_HELPER=hostile-parent")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// /proc/PID/exe turns into sleep once the helper has exec'ed.
	deadline := time.Now().Add(5 * time.Second)
	for exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)); !strings.HasSuffix(exe, "sleep"); exe, _ = os.Readlink(fmt.Sprintf("/proc/%d/exe", cmd.Process.Pid)) {
		if time.Now().After(deadline) {
			t.Fatal("helper did not exec sleep")
		}
		runtime.Gosched()
	}
	st := procStatus(t, cmd.Process.Pid)
	if st["SigBlk"] == "0000000000000000" || st["SigIgn"] == "0000000000000000" {
		t.Fatalf("hostile parent leaves SigBlk=%s SigIgn=%s, want both non-zero", st["SigBlk"], st["SigIgn"])
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/7", cmd.Process.Pid)); err != nil {
		t.Fatalf("hostile parent leaves no fd 7: %v", err)
	}
}

func anyThreadBlocks(t *testing.T, pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "SigBlk:\t"); ok && v != "0000000000000000" {
				return true
			}
		}
	}
	return false
}

func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// Stop reaches the whole tree: a grandchild in the background, and a
// descendant that left the process group with setsid.
func TestStopKillsWholeTree(t *testing.T) {
	dir := t.TempDir()
	prog := script(t, dir, "tree.sh", fmt.Sprintf(`
sh -c 'echo $$ > %[1]s/bg.tmp; mv %[1]s/bg.tmp %[1]s/bg; exec sleep 1000' &
setsid sh -c 'echo $$ > %[1]s/sid.tmp; mv %[1]s/sid.tmp %[1]s/sid; exec sleep 1000' &
exec sleep 1000`, dir))
	// Each process writes its own pid once it runs, so the stop comes after
	// the forks (a signal racing a fork is a different matter: the stop
	// timeout's SIGKILL covers it).
	in := startRespawner(t, "--stop-timeout", "3s", "-t", "0", prog)
	main := in.waitFor("started", 5*time.Second).int("pid")
	bg, _ := strconv.Atoi(waitFile(t, filepath.Join(dir, "bg"), 5*time.Second))
	sid, _ := strconv.Atoi(waitFile(t, filepath.Join(dir, "sid"), 5*time.Second))
	fds := map[string]int{"program": watchPID(t, main), "background grandchild": watchPID(t, bg), "setsid descendant": watchPID(t, sid)}
	if pg, _ := syscall.Getpgid(sid); pg == main {
		t.Fatalf("setsid descendant %d is still in the program's group", sid)
	}
	in.signal(syscall.SIGINT)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, in.log())
	}
	for what, fd := range fds {
		if !gone(fd, time.Second) {
			t.Errorf("%s outlived the stop", what)
		}
	}
}

// startStubborn supervises a program that ignores SIGTERM and returns the
// instance and a pidfd of the program, once the program's trap is set.
func startStubborn(t *testing.T, stopTimeout string) (*instance, int) {
	t.Helper()
	dir := t.TempDir()
	prog := script(t, dir, "stubborn.sh", "trap '' TERM\necho ready > "+dir+"/ready\nexec sleep 1000")
	in := startRespawner(t, "--stop-timeout", stopTimeout, prog)
	pid := in.waitFor("started", 5*time.Second).int("pid")
	waitFile(t, filepath.Join(dir, "ready"), 5*time.Second)
	return in, watchPID(t, pid)
}

func TestStopTimeoutEscalatesToSIGKILL(t *testing.T) {
	in, fd := startStubborn(t, "500ms")
	asked := time.Now()
	in.signal(syscall.SIGTERM)
	in.waitFor("killing", 5*time.Second)
	if code := in.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, in.log())
	}
	if d := time.Since(asked); d < 400*time.Millisecond {
		t.Fatalf("stopped after %s: SIGKILL came before --stop-timeout 500ms", d)
	}
	if !gone(fd, time.Second) {
		t.Fatal("program ignoring SIGTERM survived the stop")
	}
}

// A second SIGTERM (or Ctrl-C) during a stop means "now": SIGKILL at once,
// not after --stop-timeout.
func TestSecondStopSignalKillsAtOnce(t *testing.T) {
	in, fd := startStubborn(t, "1m")
	in.signal(syscall.SIGTERM)
	in.waitFor("stopping", 5*time.Second)
	if gone(fd, 300*time.Millisecond) {
		t.Fatal("the program ignoring SIGTERM died on the first signal")
	}
	in.signal(syscall.SIGINT)
	in.waitFor("killing", 5*time.Second)
	if !gone(fd, 5*time.Second) {
		t.Fatal("the program survived the second stop signal")
	}
	if code := in.wait(5 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, in.log())
	}
}

// A run that crashed leaves its background processes; they are terminated
// before the restart so that two generations never run side by side.
func TestLeftoversOfCrashedRunAreTerminated(t *testing.T) {
	dir := t.TempDir()
	prog := script(t, dir, "crash.sh", fmt.Sprintf(`
sleep 1000 &
echo $! >> %s/bg
sleep 0.2
exit 3`, dir))
	in := startRespawner(t, "-t", "0", "-n", "1", prog)
	in.waitFor("exited", 5*time.Second)
	in.waitFor("terminating processes left behind", 5*time.Second)
	first, _ := strconv.Atoi(strings.Fields(waitFile(t, filepath.Join(dir, "bg"), 5*time.Second))[0])
	in.waitFor("restarted", 5*time.Second)
	if alive(first) {
		t.Fatalf("background process %d of the crashed run still alive at the restart", first)
	}
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, in.log())
	}
}

func TestSIGHUPDoesNotEndSupervision(t *testing.T) {
	in := startRespawner(t, "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 5*time.Second).int("pid")
	in.signal(syscall.SIGHUP)
	in.waitFor("SIGHUP received; nothing to reopen, supervision goes on", 5*time.Second)
	in.signal(syscall.SIGUSR1)
	in.waitFor("signal ignored", 5*time.Second)
	if !alive(pid) {
		t.Fatal("program died on respawner's SIGHUP")
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0", code)
	}
}

// A launcher's process group is empty once its daemon called setsid; its
// number can then be reused by anyone, so a stop must not signal it.
func TestStopNeverSignalsAnEmptiedGroup(t *testing.T) {
	dir := t.TempDir()
	prog := script(t, dir, "launcher.sh", fmt.Sprintf(`setsid sh -c 'echo $$ > %[1]s/d.tmp; mv %[1]s/d.tmp %[1]s/daemon; exec sleep 1000' &
while [ ! -s %[1]s/daemon ]; do sleep 0.05; done
exit 0`, dir))
	in := startRespawner(t, "--log-level", "debug", prog)
	launcher := in.waitFor("started", 5*time.Second).int("pid")
	daemon := in.waitFor("following daemon", 5*time.Second).int("pid")
	if pg, _ := syscall.Getpgid(daemon); pg == launcher {
		t.Fatalf("daemon %d still in the launcher's group", daemon)
	}
	fd := watchPID(t, daemon)
	in.signal(syscall.SIGTERM)
	l := in.waitFor("process group gone; not signalling it", 5*time.Second)
	if l.int("pgid") != launcher {
		t.Fatalf("pgid %d, want the launcher's %d", l.int("pgid"), launcher)
	}
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !gone(fd, time.Second) {
		t.Fatal("the daemon survived the stop")
	}
}

// --log-format json writes every duration as a string with its unit
// ("delay":"200ms"), never hclog's integer of nanoseconds: the delay of a
// restart, the uptime of an exit, the timeout of a stop.
func TestJSONLogDurationsAreStrings(t *testing.T) {
	in := startRespawner(t, "-t", "0.2", "--stop-timeout", "3s", "/bin/sleep", "--", "1000")
	started := in.waitFor("started", 10*time.Second)
	syscall.Kill(started.int("pid"), syscall.SIGKILL)
	for _, mk := range [][2]string{{"killed by signal", "uptime"}, {"respawn scheduled", "delay"}} {
		msg, key := mk[0], mk[1]
		l := in.waitFor(msg, 10*time.Second)
		if _, err := time.ParseDuration(l.str(key)); err != nil {
			t.Errorf("%s: %s is %#v, want a duration string", msg, key, l[key])
		}
	}
	in.waitFor("restarted", 10*time.Second)
	in.signal(syscall.SIGTERM)
	if l := in.waitFor("stopping", 10*time.Second); l.str("timeout") != "3s" {
		t.Errorf("stopping: timeout is %#v, want \"3s\"", l["timeout"])
	}
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
}

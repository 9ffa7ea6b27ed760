package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// Faults and attacks that once stopped supervision; docs/reliability.md
// lists them with the test that shows each one handled.

// vmRSS is the resident memory of pid in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	st := procStatus(t, pid)
	kb, _ := strconv.Atoi(strings.TrimSuffix(st["VmRSS"], " kB"))
	return kb
}

// A program that writes as fast as it can (yes) must not stop supervision:
// start returns, status and stop answer, memory stays bounded, and a kill of
// the program is restarted. Before, the output reader drained the pipe until
// EAGAIN, which with yes never came.
func TestFastWriterKeepsSupervising(t *testing.T) {
	dir := runtimeDir(t)
	cleanupInstance(t, dir, "yes")
	r := respawnerWithin(t, dir, 20*time.Second, "start", "-t", "200ms", "--log-file", os.DevNull, "/usr/bin/yes")
	if r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	var st control.Status
	for range 5 {
		begun := time.Now()
		r := respawnerWithin(t, dir, 10*time.Second, "status", "--json", "yes")
		if r.code != 0 {
			t.Fatalf("status: exit %d %s", r.code, r.stderr)
		}
		if d := time.Since(begun); d > time.Second {
			t.Fatalf("status took %s while yes writes", d)
		}
		st = parseStatus(t, r.stdout)
	}
	if kb := vmRSS(t, st.RespawnerPID); kb > 16<<10 {
		t.Fatalf("respawner's RSS is %d KiB with yes writing, want under 16 MiB", kb)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	st2 := waitState(t, dir, "yes", "running", st.PID, 10*time.Second)
	if st2.Restarts != st.Restarts+1 {
		t.Fatalf("after a kill of yes: restarts %d, want %d", st2.Restarts, st.Restarts+1)
	}
	begun := time.Now()
	if r := respawnerWithin(t, dir, 10*time.Second, "stop", "yes"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
	if d := time.Since(begun); d > 5*time.Second {
		t.Fatalf("stop took %s while yes writes", d)
	}
}

// A log sink that takes nothing (stderr a pipe nobody reads, as in
// `respawner start -D ... 2>&1 | sleep 30`) must not stall the loop: the
// program is still restarted, status still answers, a stop still ends it,
// and the lines that could not go out are counted.
func TestBlockedLogSinkDoesNotStallTheLoop(t *testing.T) {
	dir := runtimeDir(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close() // never read: the pipe fills after 64 KiB
	cmd := exec.Command(respawnerBin, "start", "-D", "-t", "0", "--log-level", "debug", "--name", "blocked", "/bin/false")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		for _, c := range descendantsOf(cmd.Process.Pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		<-done
	})
	first := -1
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, code := statusOfWithin(t, dir, "blocked", 3*time.Second)
		if code != 0 && code != 3 && st.Name == "" {
			t.Fatalf("status: exit %d: the loop is stuck behind its log", code)
		}
		if first < 0 {
			first = st.Restarts
		}
		// Each restart logs ~500 bytes at debug: 5000 fill the pipe and the
		// queue several times over.
		if st.Restarts > first+5000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarts went from %d to %d only: the loop is stuck behind its log", first, st.Restarts)
		}
		time.Sleep(100 * time.Millisecond) // the test polls as an operator would
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("respawner after SIGTERM: %v, want exit 0", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("respawner did not exit within 15 s of SIGTERM with its log blocked")
	}
	assertRuntimeDirEmpty(t, dir)
}

// statusOfWithin asks for the status, failing the test if it takes longer than limit.
func statusOfWithin(t *testing.T, dir, name string, limit time.Duration) (control.Status, int) {
	t.Helper()
	r := respawnerWithin(t, dir, limit, "status", "--json", name)
	if r.code != 0 {
		if r.code != 3 {
			t.Logf("status: exit %d: %s%s", r.code, r.stdout, r.stderr)
		}
		return control.Status{}, r.code
	}
	return parseStatus(t, r.stdout), 0
}

func parseStatus(t *testing.T, s string) control.Status {
	t.Helper()
	var st control.Status
	if err := json.Unmarshal([]byte(s), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, s)
	}
	return st
}

// A storm of SIGTERMs, some arriving after the loop has ended, must never
// kill respawner by the signal's default action (exit 143) half way through
// its clean-up: it exits 0 and leaves no stale file.
func TestSignalStormLeavesNoStaleFiles(t *testing.T) {
	for round := range 3 {
		in := startRespawner(t, "--name", "storm", "/bin/sleep", "--", "1000")
		in.waitFor("started", 5*time.Second)
		// SIGTERMs until respawner is gone: through its pidfd, so that
		// none can reach a process that reused its pid.
		fd := watchPID(t, in.cmd.Process.Pid)
		for sent := 0; sent < 100000; sent++ {
			if unix.PidfdSendSignal(fd, syscall.SIGTERM, nil, 0) != nil || gone(fd, 0) {
				break
			}
		}
		if code := in.wait(10 * time.Second); code != 0 {
			t.Fatalf("round %d: exit %d after a SIGTERM storm, want 0:\n%s", round, code, in.log())
		}
		assertRuntimeDirEmpty(t, in.dir)
	}
}

// A status reply larger than the socket buffer (a long argument list) is
// sent whole, not cut at the first non-blocking write.
func TestStatusOfLongArgumentList(t *testing.T) {
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "long.sh", "exec sleep 1000") // ignores its arguments
	args := []string{"start", "--name", "long", prog, "--"}
	for i := range 201 { // 800 KB of arguments, far over a socket's buffer
		args = append(args, fmt.Sprintf("arg%d-%s", i, strings.Repeat("x", 4000)))
	}
	cleanupInstance(t, dir, "long")
	if r := respawner(t, dir, args...); r.code != 0 {
		t.Fatalf("start: exit %d %s", r.code, r.stderr)
	}
	r := respawnerWithin(t, dir, 10*time.Second, "status", "--json", "long")
	if r.code != 0 {
		t.Fatalf("status of a long argument list: exit %d %s", r.code, r.stderr)
	}
	st := parseStatus(t, r.stdout)
	if len(st.Args) != 201 || st.Args[200] != args[len(args)-1] {
		t.Fatalf("status returned %d arguments, want 201 (the last intact)", len(st.Args))
	}
	if r := respawner(t, dir, "stop", "long"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
}

// killRespawner SIGKILLs the respawner of instance name and waits until it is gone.
func killRespawner(t *testing.T, dir, name string) control.Status {
	t.Helper()
	st, code := statusOf(t, dir, name)
	if code != 0 {
		t.Fatalf("status before the kill: exit %d", code)
	}
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	if !control.WaitGone(st.RespawnerPID, 5*time.Second) {
		t.Fatal("respawner survived SIGKILL")
	}
	return st
}

// The program must outlive a respawner killed with SIGKILL, even though it
// writes: before, respawner held the only read end of its output pipe and
// the program died of SIGPIPE within a second. The keeper holds the pipe;
// the next start adopts the program, and every line written meanwhile
// reaches the log.
func TestProgramOutlivesKilledRespawner(t *testing.T) {
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "ticker.sh", `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done`)
	startDaemon(t, dir, "ticker", prog)
	st := killRespawner(t, dir, "ticker")
	defer syscall.Kill(st.PID, syscall.SIGKILL) // if adoption fails
	fd := watchPID(t, st.PID)
	if gone(fd, 1500*time.Millisecond) {
		t.Fatal("the program died with its respawner (SIGPIPE on its output?)")
	}
	if r := respawner(t, dir, "start", "--name", "ticker", prog); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	if st2, code := statusOf(t, dir, "ticker"); code != 0 || st2.PID != st.PID {
		t.Fatalf("after the new start: %+v, want pid %d adopted", st2, st.PID)
	}
	waitLogged(t, control.LogPath(dir, "ticker"), "tick 30", 10*time.Second)
	if r := respawner(t, dir, "stop", "ticker"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	log, _ := os.ReadFile(control.LogPath(dir, "ticker"))
	last := 0
	for _, l := range strings.Split(string(log), "\n") {
		_, rest, ok := strings.Cut(l, "ticker: tick ")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(rest)
		if n != last+1 {
			t.Fatalf("tick %d follows tick %d: lines lost while respawner was dead\n%s", n, last, log)
		}
		last = n
	}
	if last < 30 {
		t.Fatalf("only %d ticks logged", last)
	}
	assertRuntimeDirEmpty(t, dir)
}

// waitLogged waits until the file at path contains s.
func waitLogged(t *testing.T, path, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if b, _ := os.ReadFile(path); strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(path)
			t.Fatalf("%q not in %s after %s:\n%s", s, path, timeout, b)
		}
		time.Sleep(50 * time.Millisecond) // a log file has no event to wait on but its writes
	}
}

// A respawner killed while it was terminating what a crashed run left (a
// worker that ignores SIGTERM) must not leave that worker running beside the
// next generation for ever: the next start terminates it first.
func TestLeftoverOfKilledCleanupIsTerminated(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	// The first run starts a stubborn worker and fails; later runs just run.
	prog := script(t, tmp, "crashy.sh", fmt.Sprintf(`
if [ -e %[1]s/worker.pid ]; then exec sleep 1000; fi
sh -c 'trap "" TERM; echo $$ > %[1]s/worker.tmp; mv %[1]s/worker.tmp %[1]s/worker.pid; exec sleep 1000' &
while [ ! -e %[1]s/worker.pid ]; do sleep 0.05; done
exit 1`, tmp))
	startDaemon(t, dir, "crashy", "--start-check", "0", "--stop-timeout", "1m", "-t", "0", prog)
	worker, _ := strconv.Atoi(waitFile(t, filepath.Join(tmp, "worker.pid"), 10*time.Second))
	defer syscall.Kill(worker, syscall.SIGKILL)
	fd := watchPID(t, worker)
	// The run has failed: the worker got SIGTERM (ignored) and respawner
	// waits a minute before SIGKILL. Kill respawner now.
	waitLogged(t, control.LogPath(dir, "crashy"), "terminating processes left behind", 10*time.Second)
	st, _ := statusOf(t, dir, "crashy")
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	if !control.WaitGone(st.RespawnerPID, 5*time.Second) {
		t.Fatal("respawner survived SIGKILL")
	}
	if gone(fd, 500*time.Millisecond) {
		t.Fatal("the worker died with respawner: nothing to test")
	}
	if r := respawner(t, dir, "start", "--name", "crashy", "--start-check", "0", "--stop-timeout", "500ms", prog); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	if !gone(fd, 10*time.Second) {
		t.Fatalf("the stubborn worker of the killed respawner's run still runs beside the new one:\n%s", readFile(t, control.LogPath(dir, "crashy")))
	}
	waitState(t, dir, "crashy", "running", 0, 10*time.Second)
	if r := respawner(t, dir, "stop", "crashy"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
}

// After adoption, stop must still reach every process of the instance,
// including a grandchild that left the program's process group and session.
func TestStopAfterAdoptionReachesSetsidGrandchild(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	prog := script(t, tmp, "forker.sh", fmt.Sprintf(`
setsid sh -c 'echo $$ > %[1]s/gc.tmp; mv %[1]s/gc.tmp %[1]s/gc.pid; exec sleep 1000' &
exec sleep 1000`, tmp))
	startDaemon(t, dir, "forker", prog)
	gc, _ := strconv.Atoi(waitFile(t, filepath.Join(tmp, "gc.pid"), 10*time.Second))
	defer syscall.Kill(gc, syscall.SIGKILL)
	fd := watchPID(t, gc)
	st := killRespawner(t, dir, "forker")
	defer syscall.Kill(st.PID, syscall.SIGKILL)
	if r := respawner(t, dir, "start", "--name", "forker", prog); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	if r := respawner(t, dir, "stop", "forker"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if !gone(fd, 5*time.Second) {
		t.Fatalf("the setsid'd grandchild %d survived the stop after adoption; its ppid %v; the log:\n%s",
			gc, procStatus(t, gc)["PPid"], readFile(t, control.LogPath(dir, "forker")))
	}
}

// A second SIGTERM while respawner waits for a slow plugin to shut down
// must not kill it half way (exit 143, stale files): the signals respawner
// handles stay taken until it exits. The plugin takes 2 s over each event,
// within its 5 s deadline, so the host's shutdown (which waits one deadline
// for the last events) lasts about 4 s after "stopped": time enough for the
// test to see it and signal even on a loaded machine (a 1.5 s window once
// found respawner gone already).
func TestSignalDuringSlowPluginShutdown(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:sleep=2s,timeout=5s", "--name", "slowplug", "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	in.waitFor("started", 5*time.Second)
	in.signal(syscall.SIGTERM)
	in.waitFor("stopped", 10*time.Second) // the loop is done; the host shuts down
	in.signal(syscall.SIGTERM)
	in.signal(syscall.SIGINT)
	if code := in.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after a SIGTERM during the plugins' shutdown, want 0:\n%s", code, in.log())
	}
	assertRuntimeDirEmpty(t, in.dir)
}

// A start that fails after respawner was killed (a plugin option the plugin
// refuses) must leave the program running, its output held by the keeper,
// and adoptable by the next start: before, the failed start told the keeper
// "bye" and removed NAME.state and NAME.keep, and the program died of
// SIGPIPE or ran on unreachable beside a second copy.
func TestFailedStartKeepsTheKeptProgram(t *testing.T) {
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "ticker.sh", `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done`)
	startDaemon(t, dir, "kept", prog)
	st := killRespawner(t, dir, "kept")
	defer syscall.Kill(st.PID, syscall.SIGKILL)
	fd := watchPID(t, st.PID)
	r := respawner(t, dir, append(hookArgs("start", "--name", "kept", "--plugin", "healthcheck-http:bogus=1"), prog)...)
	if gone(fd, 1500*time.Millisecond) {
		t.Fatal("the program died after a failed start (its keeper was told to go?)")
	}
	if r.code != 1 || !strings.Contains(r.stderr, "still runs") {
		t.Fatalf("start with a bad plugin option: exit %d %q, want 1 saying the program still runs", r.code, r.stderr)
	}
	if r := respawner(t, dir, "status", "kept"); r.code != 4 || !strings.Contains(r.stdout+r.stderr, "adopts it") {
		t.Fatalf("status after the failed start: exit %d %q, want 4 and adoptable", r.code, r.stdout+r.stderr)
	}
	if r := respawner(t, dir, "start", "--name", "kept", prog); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	if st2, code := statusOf(t, dir, "kept"); code != 0 || st2.PID != st.PID {
		t.Fatalf("after the good start: %+v, want pid %d adopted", st2, st.PID)
	}
	if r := respawner(t, dir, "stop", "kept"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if !gone(fd, 5*time.Second) {
		t.Fatal("the program outlived the stop")
	}
	assertRuntimeDirEmpty(t, dir)
}

// SIGHUP (logrotate) while the log cannot take lines (a FIFO whose reader
// stopped reading) must not stall the loop: the reopen happens on the
// loop's thread and used to wait for the writer stuck in the old file.
func TestReopenWithBlockedLogDoesNotStall(t *testing.T) {
	dir := runtimeDir(t)
	fifo := filepath.Join(t.TempDir(), "log")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	reader, err := os.OpenFile(fifo, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close() // never read: the FIFO fills after 64 KiB
	cmd := exec.Command(respawnerBin, "start", "-D", "-t", "0", "--log-level", "debug", "--log-file", fifo, "--name", "hup", "/bin/false")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		for _, c := range descendantsOf(cmd.Process.Pid) {
			syscall.Kill(c, syscall.SIGKILL)
		}
		cmd.Process.Kill()
		<-done
	})
	waitRestarts := func(more int) {
		t.Helper()
		first := -1
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, code := statusOfWithin(t, dir, "hup", 3*time.Second)
			if code != 0 && st.Name == "" && code != 3 {
				t.Fatalf("status: exit %d: the loop is stuck", code)
			}
			if first < 0 {
				first = st.Restarts
			}
			if st.Restarts > first+more {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("restarts went from %d to %d only: the loop is stuck", first, st.Restarts)
			}
			time.Sleep(50 * time.Millisecond) // the test polls as an operator would
		}
	}
	waitRestarts(3000) // the FIFO and the queue are full well before
	cmd.Process.Signal(syscall.SIGHUP)
	waitRestarts(500)
}

// TestDaemonizingWithSlowMiddleProcess: a program that daemonizes as
// lighttpd does (its launcher waits for the daemon's word, the middle
// process of the double fork exits on its own), where the middle process
// is still there when the launcher exits: it is followed, and when it
// exits cleanly the daemon it leaves is followed in turn. Before, the
// middle process's clean exit ended supervision and killed the daemon
// (seen on a loaded machine with lighttpd, once in a dozen restarts).
func TestDaemonizingWithSlowMiddleProcess(t *testing.T) {
	tmp := t.TempDir()
	fifo, daemon := filepath.Join(tmp, "ready"), filepath.Join(tmp, "daemon")
	prog := script(t, tmp, "dbl.sh", fmt.Sprintf(`rm -f %[1]s; mkfifo %[1]s
( exec setsid sh -c '( exec sleep 1000 ) & echo $! > %[2]s; echo ready > %[1]s; sleep 0.5; exit 0' ) &
read word < %[1]s
exit 0`, fifo, daemon))
	in := startRespawner(t, "-t", "0.2", prog)
	first := in.waitFor("following daemon", 10*time.Second).int("pid")
	d, _ := strconv.Atoi(waitFile(t, daemon, 10*time.Second))
	if got := in.waitFor("following daemon", 10*time.Second).int("pid"); got != d || got == first {
		t.Fatalf("followed %d then %d; want the middle process, then the daemon %d", first, got, d)
	}
	if !alive(d) {
		t.Fatal("the daemon was killed")
	}
	syscall.Kill(d, syscall.SIGKILL)
	in.waitFor("restarted", 10*time.Second)
	in.stopOK()
}

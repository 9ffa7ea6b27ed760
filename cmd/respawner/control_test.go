package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// startDaemon runs a daemonizing `respawner start ARGS` and registers cleanup.
func startDaemon(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cleanupInstance(t, dir, name)
	if r := respawner(t, dir, append([]string{"start", "--name", name}, args...)...); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
}

func TestDuplicateStartRefused(t *testing.T) {
	dir := runtimeDir(t)
	startDaemon(t, dir, "dup", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "dup")
	r := respawner(t, dir, "start", "--name", "dup", "/bin/sleep", "--", "1000")
	if r.code != 1 || !strings.Contains(r.stderr, "dup is already running") {
		t.Fatalf("second start: exit %d %q, want 1 and already running", r.code, r.stderr)
	}
	r = respawner(t, dir, "start", "-D", "--name", "dup", "/bin/sleep", "--", "1000")
	if r.code != 1 || !strings.Contains(r.stderr, "already running") {
		t.Fatalf("second start -D: exit %d %q, want 1", r.code, r.stderr)
	}
	if st2, code := statusOf(t, dir, "dup"); code != 0 || st2.PID != st.PID {
		t.Fatalf("first instance disturbed: %+v", st2)
	}
	if r := respawner(t, dir, "stop", "dup"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if r := respawner(t, dir, "stop", "dup"); r.code != 3 || !strings.Contains(r.stderr, "dup is not running") {
		t.Fatalf("second stop: exit %d %q, want 3", r.code, r.stderr)
	}
}

// stop and status take the program's path too: they match its base name.
func TestStopByProgramPath(t *testing.T) {
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "forever.sh", "while :; do sleep 1; done")
	cleanupInstance(t, dir, "forever.sh")
	if r := respawner(t, dir, "start", prog); r.code != 0 {
		t.Fatalf("start: %d %s", r.code, r.stderr)
	}
	if r := respawner(t, dir, "status", "./test/forever.sh"); r.code != 0 {
		t.Fatalf("status by path: exit %d %q", r.code, r.stdout)
	}
	r := respawner(t, dir, "list")
	if !strings.HasPrefix(r.stdout, "forever.sh is running (pid ") || strings.Count(r.stdout, "\n") != 1 {
		t.Fatalf("list: %q", r.stdout)
	}
	if r := respawner(t, dir, "stop", prog); r.code != 0 {
		t.Fatalf("stop by path: exit %d %s", r.code, r.stderr)
	}
	if r := respawner(t, dir, "list"); r.stdout != "" {
		t.Fatalf("list after stop: %q", r.stdout)
	}
}

// A respawner killed with SIGKILL leaves its program running; the next start
// of that name adopts it instead of starting a second copy.
func TestAdoption(t *testing.T) {
	dir := runtimeDir(t)
	// A unique argument tells this test's sleep from any other.
	mark := fmt.Sprintf("0.%09d", time.Now().UnixNano()%1e9)
	prog := script(t, t.TempDir(), "svc.sh", "exec sleep 1000 "+mark)
	startDaemon(t, dir, "svc", prog)
	st, _ := statusOf(t, dir, "svc")
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	if !control.WaitGone(st.RespawnerPID, 5*time.Second) {
		t.Fatal("respawner survived SIGKILL")
	}
	if !alive(st.PID) {
		t.Fatal("program died with its respawner")
	}
	defer syscall.Kill(st.PID, syscall.SIGKILL) // if adoption fails
	if r := respawner(t, dir, "status", "svc"); r.code != 4 {
		t.Fatalf("status with respawner dead: exit %d %q, want 4", r.code, r.stdout)
	}
	if r := respawner(t, dir, "start", "--name", "svc", prog); r.code != 0 {
		t.Fatalf("start again: %d %s", r.code, r.stderr)
	}
	st2, code := statusOf(t, dir, "svc")
	if code != 0 || st2.PID != st.PID {
		t.Fatalf("after the new start: %+v, want the adopted pid %d running", st2, st.PID)
	}
	if n := countProcs("1000\x00" + mark); n != 1 {
		t.Fatalf("%d copies of the program run, want 1", n)
	}
	log, _ := os.ReadFile(control.LogPath(dir, "svc"))
	if !strings.Contains(string(log), "adopting running program") {
		t.Fatalf("no adoption in the log:\n%s", log)
	}
	fd := watchPID(t, st.PID)
	if r := respawner(t, dir, "stop", "svc"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if !gone(fd, 5*time.Second) {
		t.Fatal("adopted program survived stop")
	}
}

// A recycled pid is never adopted: the state file must match the start time.
func TestAdoptionRefusesReusedPID(t *testing.T) {
	dir := runtimeDir(t)
	other := exec.Command("/bin/sleep", "1000")
	other.Start()
	defer func() { other.Process.Kill(); other.Wait() }()
	ticks, _ := control.ProcStartTime(other.Process.Pid)
	os.WriteFile(control.StatePath(dir, "svc"), fmt.Appendf(nil, "%d %d %d\n", other.Process.Pid, ticks+1, other.Process.Pid), 0o600)
	startDaemon(t, dir, "svc", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "svc")
	if st.PID == other.Process.Pid {
		t.Fatal("adopted an unrelated process whose pid matched")
	}
	respawner(t, dir, "stop", "svc")
	if !alive(other.Process.Pid) {
		t.Fatal("the unrelated process was killed")
	}
}

// countProcs counts the live processes whose command line mentions s.
func countProcs(s string) int {
	n := 0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if strings.Contains(string(b), s) && alive(pid) {
			n++
		}
	}
	return n
}

// Files of a dead respawner (killed with its program) are detected as stale,
// cleaned, and never trusted.
func TestStaleFiles(t *testing.T) {
	dir := runtimeDir(t)
	startDaemon(t, dir, "stale", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "stale")
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	syscall.Kill(st.PID, syscall.SIGKILL)
	control.WaitGone(st.RespawnerPID, 5*time.Second)
	control.WaitGone(st.PID, 5*time.Second)
	for _, f := range []string{"stale.sock", "stale.pid"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Fatalf("%s not left behind by SIGKILL: %v", f, err)
		}
	}
	if r := respawner(t, dir, "status", "stale"); r.code != 3 || r.stdout != "stale is not running\n" {
		t.Fatalf("status of a dead instance: exit %d %q", r.code, r.stdout)
	}
	for _, f := range []string{"stale.sock", "stale.pid"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("stale %s not cleaned", f)
		}
	}
	// A pidfile of garbage and a socket nobody listens on do not block a start.
	os.WriteFile(filepath.Join(dir, "stale.pid"), []byte("garbage\n"), 0o600)
	l, _ := net.Listen("unix", filepath.Join(dir, "stale.sock"))
	l.Close()
	if r := respawner(t, dir, "stop", "stale"); r.code != 3 {
		t.Fatalf("stop of a stale instance: exit %d, want 3", r.code)
	}
	startDaemon(t, dir, "stale", "/bin/sleep", "--", "1000")
	if _, code := statusOf(t, dir, "stale"); code != 0 {
		t.Fatal("start over stale files did not run")
	}
	respawner(t, dir, "stop", "stale")
	assertRuntimeDirEmpty(t, dir)
}

func assertRuntimeDirEmpty(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".log") {
			t.Errorf("runtime dir still holds %s", e.Name())
		}
	}
}

// SO_PEERCRED: a request from another uid is refused even when the file
// permissions were opened up by mistake, and the instance keeps running.
func TestPeerCredentialsRefused(t *testing.T) {
	dir := runtimeDir(t)
	startDaemon(t, dir, "guarded", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "guarded")
	// Open the path for uid 65534 so that only SO_PEERCRED stands in its way:
	// run, the test's temp dir and its root (TMPDIR/TestNameNNN/001/run), and
	// nothing above, which is not the test's (a TMPDIR of "/tmp/x/" never
	// compares equal to a parent, and a walk up to it once left /tmp 0755).
	for i, p := 0, dir; i < 3; i, p = i+1, filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chmod(control.SockPath(dir, "guarded"), 0o666)
	// The test binary sits in a private build dir: give uid 65534 a copy.
	helper := filepath.Join(t.TempDir(), "helper")
	os.Chmod(filepath.Dir(helper), 0o755)
	if b, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(helper, b, 0o755) != nil {
		t.Fatalf("copy test binary: %v", err)
	}
	for _, req := range []string{"stop", "status"} {
		cmd := exec.Command(helper, control.SockPath(dir, "guarded"), req)
		cmd.Env = append(os.Environ(), "RSPTEST_HELPER=control-request")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("request as uid 65534: %v: %s", err, out)
		}
		if !strings.Contains(string(out), "permission denied") {
			t.Fatalf("%s as uid 65534 answered %q, want a refusal", req, out)
		}
	}
	os.Chmod(dir, 0o700)
	if st2, code := statusOf(t, dir, "guarded"); code != 0 || st2.PID != st.PID {
		t.Fatalf("instance disturbed by the refused requests: %+v", st2)
	}
	log, _ := os.ReadFile(control.LogPath(dir, "guarded"))
	if !strings.Contains(string(log), "control request refused: uid=65534") {
		t.Fatalf("refusal not logged:\n%s", log)
	}
	respawner(t, dir, "stop", "guarded")
}

// controlRequest is a helper process: connect to args[0], send args[1], print the reply.
func controlRequest(args []string) {
	c, err := net.Dial("unix", args[0])
	if err != nil {
		fmt.Println("dial:", err)
		os.Exit(0)
	}
	fmt.Fprintln(c, args[1])
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	os.Exit(0)
}

func TestStopOfStoppedProgram(t *testing.T) {
	dir := runtimeDir(t)
	startDaemon(t, dir, "frozen", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "frozen")
	syscall.Kill(st.PID, syscall.SIGSTOP)
	fd := watchPID(t, st.PID)
	begun := time.Now()
	if r := respawner(t, dir, "stop", "frozen"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if !gone(fd, time.Second) {
		t.Fatal("SIGSTOPped program survived stop")
	}
	if d := time.Since(begun); d > 5*time.Second {
		t.Fatalf("stop took %s: SIGTERM did not reach the stopped program (SIGCONT missing?)", d)
	}
	log, _ := os.ReadFile(control.LogPath(dir, "frozen"))
	if strings.Contains(string(log), "killing") {
		t.Fatalf("stop needed SIGKILL:\n%s", log)
	}
}

// Daemonized, the program's output lands in the log with its name.
func TestDaemonLogsProgramOutput(t *testing.T) {
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "chatty.sh", "echo hello from stdout\necho trouble on stderr >&2\nexec sleep 1000")
	startDaemon(t, dir, "chatty", prog)
	respawner(t, dir, "stop", "chatty")
	log, _ := os.ReadFile(control.LogPath(dir, "chatty"))
	for _, want := range []string{"[INFO]  chatty: hello from stdout", "[WARN]  chatty: trouble on stderr", "respawner.chatty: started: pid="} {
		if !strings.Contains(string(log), want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}

// With /dev/log present (here: a socket the test owns), a daemon logs to syslog, facility daemon.
func TestDaemonLogsToSyslog(t *testing.T) {
	dir := runtimeDir(t)
	pc := fakeSyslog(t)
	startDaemon(t, dir, "sl", "/bin/sleep", "--", "1000")
	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := pc.Read(buf)
	if err != nil {
		t.Fatalf("nothing reached syslog: %v", err)
	}
	msg := string(buf[:n])
	// <30> is facility daemon (3) * 8 + severity info (6).
	if !strings.HasPrefix(msg, "<30>") || !strings.Contains(msg, "respawner.sl: started: pid=") {
		t.Fatalf("syslog message %q", msg)
	}
	if _, err := os.Stat(control.LogPath(dir, "sl")); err == nil {
		t.Fatal("logged to a file although syslog is there")
	}
	respawner(t, dir, "stop", "sl")
}

// A syslog message's severity is the level the line was logged at, never a
// guess from its text, and its tag is the instance's name: the program's
// stdout is info (<30>: facility daemon 3*8 + 6) even when it prints
// "[ERROR]", its stderr warning (<28>), respawner's own errors err (<27>).
func TestSyslogSeverityIsTheLevel(t *testing.T) {
	dir := runtimeDir(t)
	pc := fakeSyslog(t)
	prog := script(t, t.TempDir(), "sev.sh", "echo '[ERROR] only text on stdout'\necho 'careful on stderr' >&2\nexit 1")
	startDaemon(t, dir, "sev", "--start-check", "0", "-t", "0", "-n", "1", prog)
	got := map[string]string{} // what each line arrived as: its priority and tag
	want := map[string]string{
		"sev: [ERROR] only text on stdout":              "<30> sev",
		"sev: careful on stderr":                        "<28> sev",
		"respawner.sev: gave up: respawn limit reached": "<27> sev",
	}
	buf := make([]byte, 8192)
	for len(got) < len(want) {
		pc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := pc.Read(buf)
		if err != nil {
			t.Fatalf("syslog got %v, then: %v", got, err)
		}
		m := syslogMsg.FindStringSubmatch(string(buf[:n]))
		if m == nil {
			t.Fatalf("malformed syslog message %q", buf[:n])
		}
		for line := range want {
			if strings.Contains(m[3], line) {
				got[line] = "<" + m[1] + "> " + m[2]
			}
		}
	}
	for line, w := range want {
		if got[line] != w {
			t.Errorf("%q arrived as %q, want %q", line, got[line], w)
		}
	}
}

// syslogMsg is an RFC 3164 message as respawner sends it to /dev/log:
// <PRI>Mmm dd hh:mm:ss TAG[PID]: LINE.
var syslogMsg = regexp.MustCompile(`^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d (\S+)\[\d+\]: (.*)$`)

// Two starts of one name at the same moment: one wins, the other says why.
func TestConcurrentStartsOneWins(t *testing.T) {
	dir := runtimeDir(t)
	cleanupInstance(t, dir, "race")
	results := make(chan result, 2)
	for range 2 {
		go func() { results <- respawner(t, dir, "start", "--name", "race", "/bin/sleep", "--", "1000") }()
	}
	a, b := <-results, <-results
	if a.code+b.code != 1 {
		t.Fatalf("exit codes %d and %d, want one 0 and one 1: %q %q", a.code, b.code, a.stderr, b.stderr)
	}
	loser := a
	if a.code == 0 {
		loser = b
	}
	if !strings.Contains(loser.stderr, "race is already running") {
		t.Fatalf("the losing start said %q", loser.stderr)
	}
	if r := respawner(t, dir, "stop", "race"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
}

// A syslog daemon that stops reading must not stop supervision: log lines
// that cannot go out in time are dropped.
func TestStalledSyslogDoesNotStallTheLoop(t *testing.T) {
	dir := runtimeDir(t)
	fakeSyslog(t) // never read: its queue fills after a few hundred lines
	startDaemon(t, dir, "loud", "--start-check", "0", "-t", "0", "/bin/false")
	deadline := time.Now().Add(20 * time.Second)
	first, _ := statusOf(t, dir, "loud")
	for {
		begun := time.Now()
		st, _ := statusOf(t, dir, "loud")
		if d := time.Since(begun); d > 3*time.Second {
			t.Fatalf("status took %s: the loop is stuck behind syslog", d)
		}
		if st.Restarts > first.Restarts+2000 {
			break // well past what the socket's queue can hold
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarts went from %d to %d only: the loop is stuck behind syslog", first.Restarts, st.Restarts)
		}
		time.Sleep(100 * time.Millisecond) // the test polls as an operator would
	}
	if r := respawner(t, dir, "stop", "loud"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
}

// openFDs counts the descriptors pid has open.
func openFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// limitFDs lowers pid's RLIMIT_NOFILE to n (no privilege needed to lower).
func limitFDs(t *testing.T, pid, n int) {
	t.Helper()
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(n), Max: uint64(n)}, nil); err != nil {
		t.Fatal(err)
	}
}

// dialIdle opens n control connections that never send a request.
func dialIdle(t *testing.T, sock string, n int) []net.Conn {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() { closeAll(conns) })
	deadline := time.Now().Add(5 * time.Second)
	for len(conns) < n {
		c, err := net.Dial("unix", sock)
		if errors.Is(err, syscall.EAGAIN) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // the backlog is full until respawner accepts
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	return conns
}

// startSettled supervises /bin/sleep as NAME and returns once set-up is
// over (a status round trip has been answered, which also makes the control
// timer, and its connection has closed): respawner's pid and the program's.
func startSettled(t *testing.T, name string, args ...string) (in *instance, pid, child int) {
	t.Helper()
	in = startRespawner(t, append(append([]string{"--name", name}, args...), "/bin/sleep", "--", "1000")...)
	child = in.waitFor("started", 5*time.Second).int("pid")
	if _, code := statusOf(t, in.dir, name); code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	time.Sleep(100 * time.Millisecond)
	return in, in.cmd.Process.Pid, child
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// Idle clients hold at most 16 connections (maxConns in internal/loop), so
// they can never take the descriptors a restart needs, and a client that
// sends no request is closed after 10 s.
func TestControlConnectionsAreBounded(t *testing.T) {
	in, pid, child := startSettled(t, "conns", "-t", "0")
	base := openFDs(t, pid)
	limitFDs(t, pid, base+16+10) // the cap, and room for a restart
	conns := dialIdle(t, control.SockPath(in.dir, "conns"), 24)
	in.waitFor("control socket: too many connections; not accepting until one closes", 5*time.Second)
	// 16 connections, and one in passing.
	if n := openFDs(t, pid); n > base+16+1 {
		t.Fatalf("%d descriptors open with idle clients, want at most %d", n, base+16+1)
	}
	unix.Kill(child, unix.SIGKILL)
	if p := in.waitFor("restarted", 5*time.Second).int("pid"); p == child {
		t.Fatal("same pid after the restart")
	}
	conns[0].SetReadDeadline(time.Now().Add(15 * time.Second))
	reply, err := bufio.NewReader(conns[0]).ReadString('\n')
	if err != nil || !strings.Contains(reply, "no request within 10s") {
		t.Fatalf("idle client got %q, %v; want the request timeout", reply, err)
	}
	closeAll(conns)
	st, code := statusOf(t, in.dir, "conns")
	if code != 0 || st.State != "running" || st.Restarts != 1 {
		t.Fatalf("status once the clients are gone: exit %d %+v", code, st)
	}
	in.stopOK()
}

// Out of descriptors, the control socket stops accepting rather than spin on
// a listener that stays readable, and serves again once a connection closes.
func TestControlSocketOutOfDescriptors(t *testing.T) {
	in, pid, _ := startSettled(t, "fds")
	limitFDs(t, pid, openFDs(t, pid)+3)
	conns := dialIdle(t, control.SockPath(in.dir, "fds"), 8)
	in.waitFor("control socket: out of descriptors; not accepting until one is free", 5*time.Second)
	cpu0 := cpuTicks(t, pid)
	time.Sleep(time.Second)
	if d := cpuTicks(t, pid) - cpu0; d > 20 { // a spinning loop burns ~100 ticks a second
		t.Fatalf("respawner used %d ticks in 1s while out of descriptors: spinning", d)
	}
	if n := strings.Count(in.log(), "out of descriptors"); n != 1 {
		t.Fatalf("%d out-of-descriptors warnings, want 1 (a pause, not a loop)", n)
	}
	closeAll(conns)
	if st, code := statusOf(t, in.dir, "fds"); code != 0 || st.State != "running" {
		t.Fatalf("status once descriptors are free: exit %d %+v", code, st)
	}
	in.stopOK()
}

// Out of descriptors with no connection open, nothing will close to free
// one: the listener tries again every second.
func TestControlSocketResumesWithoutConnections(t *testing.T) {
	in, pid, _ := startSettled(t, "starved")
	var old unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &old); err != nil {
		t.Fatal(err)
	}
	// Not one free: the limit is the lowest unused descriptor number (the
	// kernel hands out the lowest free one). The soft limit only, so that it
	// can be raised again without CAP_SYS_RESOURCE.
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(lowestFreeFD(t, pid)), Max: old.Max}, nil); err != nil {
		t.Fatal(err)
	}
	c := dialIdle(t, control.SockPath(in.dir, "starved"), 1)[0]
	if _, err := c.Write([]byte("status\n")); err != nil {
		t.Fatal(err)
	}
	in.waitFor("control socket: out of descriptors; not accepting until one is free", 5*time.Second)
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if reply, err := bufio.NewReader(c).ReadString('\n'); err == nil {
		t.Fatalf("answered %q with no descriptor free: the test did not starve respawner", reply)
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &old, nil); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(reply, `"state":"running"`) {
		t.Fatalf("status reply %q, %v: the listener did not come back", reply, err)
	}
	in.stopOK()
}

// lowestFreeFD is the lowest descriptor number pid does not use.
func lowestFreeFD(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	used := map[int]bool{}
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		used[n] = true
	}
	n := 0
	for used[n] {
		n++
	}
	return n
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	u, _ := strconv.Atoi(f[11])
	s, _ := strconv.Atoi(f[12])
	return u + s
}

// fakeSyslog is a datagram socket standing in for /dev/log: respawner logs
// to it (RESPAWNER_SYSLOG_SOCKET) for the rest of the test.
func fakeSyslog(t *testing.T) *net.UnixConn {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", sock)
	return pc
}

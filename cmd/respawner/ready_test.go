package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// Readiness (--ready notify), the watchdog (--watchdog) and respawner under
// a service manager, with real clients: systemd's systemd-notify, and the
// notify-client helper below, which writes its datagrams itself.

// notifyClient is the helper program of these tests: it runs the steps of
// its arguments in order.
//
//	env:PATH              write its pid, NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID to PATH
//	send:TEXT             one datagram to $NOTIFY_SOCKET (\n in TEXT is a newline)
//	stamp:PATH            append CLOCK_MONOTONIC (ns) to PATH
//	ping:EVERY:N:PATH     WATCHDOG=1 N times (0: for ever) EVERY apart, each followed by a stamp
//	barrier:TIMEOUT       BARRIER=1 with a pipe's write end; exit 3 unless it is closed in time
//	setuid:UID            become UID (the process's every thread)
//	mainpid-child         start `sleep 1000` and send MAINPID= of it
//	once:PATH             the first run creates PATH and goes on; later runs block here for ever
//	await:FIFO            block until a byte can be read from FIFO
//	sleep:DUR             sleep
//	exit:N                exit N
//	wait                  block until killed
//
// It sets RLIMIT_CORE to 0 first: the watchdog kills with SIGABRT, and a
// core dump of the test binary is not wanted.
func notifyClient(args []string) {
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	// SIGABRT kills it as it kills a C program (the Go runtime would print
	// every goroutine and exit 2).
	dfl := [4]uintptr{} // handler SIG_DFL, flags 0, restorer 0, mask 0
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGABRT), uintptr(unsafe.Pointer(&dfl)), 0, 8, 0, 0)
	fail := func(format string, a ...any) {
		fmt.Fprintf(os.Stderr, "notify-client: "+format+"\n", a...)
		os.Exit(3)
	}
	for _, step := range args {
		verb, arg, _ := strings.Cut(step, ":")
		switch verb {
		case "env":
			s := fmt.Sprintf("pid=%d\nNOTIFY_SOCKET=%s\nWATCHDOG_USEC=%s\nWATCHDOG_PID=%s\n", os.Getpid(),
				os.Getenv("NOTIFY_SOCKET"), os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID"))
			writeAtomic(arg, s)
		case "send":
			if err := notifySend(os.Getenv("NOTIFY_SOCKET"), strings.ReplaceAll(arg, `\n`, "\n"), nil); err != nil {
				fail("send %q: %v", arg, err)
			}
		case "stamp":
			appendStamp(arg)
		case "ping":
			f := strings.SplitN(arg, ":", 3)
			every, _ := time.ParseDuration(f[0])
			n, _ := strconv.Atoi(f[1])
			for i := 0; n == 0 || i < n; i++ {
				if err := notifySend(os.Getenv("NOTIFY_SOCKET"), "WATCHDOG=1", nil); err != nil {
					fail("ping: %v", err)
				}
				appendStamp(f[2])
				time.Sleep(every)
			}
		case "barrier":
			d, _ := time.ParseDuration(arg)
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				fail("pipe: %v", err)
			}
			err := notifySend(os.Getenv("NOTIFY_SOCKET"), "BARRIER=1", unix.UnixRights(p[1]))
			unix.Close(p[1])
			if err != nil {
				fail("barrier: %v", err)
			}
			fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, int(d/time.Millisecond)); err != nil || n != 1 || fds[0].Revents&unix.POLLHUP == 0 {
				fail("barrier: not closed within %s", d)
			}
			unix.Close(p[0])
		case "setuid":
			uid, _ := strconv.Atoi(arg)
			if err := syscall.Setgid(uid); err != nil {
				fail("setgid: %v", err)
			}
			if err := syscall.Setuid(uid); err != nil {
				fail("setuid: %v", err)
			}
		case "mainpid-child":
			c := exec.Command("/bin/sleep", "1000")
			if err := c.Start(); err != nil {
				fail("start child: %v", err)
			}
			if err := notifySend(os.Getenv("NOTIFY_SOCKET"), "MAINPID="+strconv.Itoa(c.Process.Pid), nil); err != nil {
				fail("send MAINPID: %v", err)
			}
		case "once":
			if _, err := os.Stat(arg); err == nil {
				for {
					time.Sleep(time.Hour)
				}
			}
			writeAtomic(arg, "1\n")
		case "await":
			f, err := os.Open(arg)
			if err != nil {
				fail("await: %v", err)
			}
			f.Read(make([]byte, 1))
			f.Close()
		case "sleep":
			d, _ := time.ParseDuration(arg)
			time.Sleep(d)
		case "exit":
			n, _ := strconv.Atoi(arg)
			os.Exit(n)
		case "wait":
			for {
				time.Sleep(time.Hour)
			}
		default:
			fail("unknown step %q", step)
		}
	}
	os.Exit(0)
}

// notifySend sends one sd_notify datagram to addr (a path, or an abstract
// name with a leading '@'), with oob (descriptors) when given.
func notifySend(addr, msg string, oob []byte) error {
	if addr == "" {
		return fmt.Errorf("no NOTIFY_SOCKET")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendmsg(fd, []byte(msg), oob, &unix.SockaddrUnix{Name: addr}, 0)
}

func monotonic() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

func appendStamp(path string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err == nil {
		fmt.Fprintln(f, monotonic())
		f.Close()
	}
}

func writeAtomic(path, s string) {
	os.WriteFile(path+".tmp", []byte(s), 0o644)
	os.Rename(path+".tmp", path)
}

// lastStamp is the last CLOCK_MONOTONIC stamp in path.
func lastStamp(t *testing.T, path string) (int64, int) {
	t.Helper()
	f := strings.Fields(readFile(t, path))
	if len(f) == 0 {
		t.Fatalf("no stamps in %s", path)
	}
	n, _ := strconv.ParseInt(f[len(f)-1], 10, 64)
	return n, len(f)
}

// readEnvFile reads what the env step wrote.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, l := range strings.Split(waitFile(t, path, 10*time.Second), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			out[k] = v
		}
	}
	return out
}

// notifyClientCmd runs the helper as the program: respawner passes its own
// environment (RSPTEST_HELPER included) on.
func notifyClientCmd(t *testing.T, steps ...string) []string {
	t.Setenv("RSPTEST_HELPER", "notify-client")
	// Under -race the helper would sleep a second at exit, longer than
	// some start timeouts here.
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	return append([]string{os.Args[0], "--"}, steps...)
}

func systemdNotify(t *testing.T) string {
	t.Helper()
	return debianTool(t, "/usr/bin/systemd-notify", "systemd")
}

// TestReadyNotifySystemdNotify: a daemonizing start returns only once the
// program said READY=1 with systemd's own client, which sends BARRIER=1 and
// waits for respawner to close its descriptor; status shows the program's
// STATUS= text.
func TestReadyNotifySystemdNotify(t *testing.T) {
	sn := systemdNotify(t)
	dir, tmp := runtimeDir(t), t.TempDir()
	marker := filepath.Join(tmp, "notifying")
	rc := filepath.Join(tmp, "rc")
	prog := script(t, tmp, "svc.sh", fmt.Sprintf(`sleep 1
: > %s
%s --ready --status="serving 3 clients"
echo $? > %s
exec sleep 1000`, marker, sn, rc))
	cleanupInstance(t, dir, "svc")
	begun := time.Now()
	r := respawnerWithin(t, dir, 20*time.Second, "start", "--name", "svc", "--ready", "notify", "--start-timeout", "10s", prog)
	took := time.Since(begun)
	if r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err != nil || took < time.Second {
		t.Fatalf("start returned after %s, before the program said READY=1", took)
	}
	st, code := statusOf(t, dir, "svc")
	if code != 0 || st.State != "running" || st.Ready == nil || !*st.Ready || st.StatusText != "serving 3 clients" {
		t.Fatalf("status: exit %d %+v", code, st)
	}
	// systemd-notify waited for its barrier to be closed, and succeeded.
	if got := strings.TrimSpace(waitFile(t, rc, 10*time.Second)); got != "0" {
		t.Fatalf("systemd-notify exited %s: the barrier was not honoured", got)
	}
	line := respawner(t, dir, "status", "svc").stdout
	if !strings.Contains(line, `svc is running (pid `) || !strings.Contains(line, `"serving 3 clients"`) {
		t.Errorf("status line %q", line)
	}
	if r := respawnerWithin(t, dir, 20*time.Second, "stop", "svc"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
}

// TestReadyNotifyOwnDatagrams: the same with a program that writes its
// datagrams itself; its environment names the socket and the watchdog, and
// a barrier of its own is closed. READY=1 comes 2.5 s after the start, well
// past the 1 s --start-check a start without --ready would return after.
func TestReadyNotifyOwnDatagrams(t *testing.T) {
	dir, tmp := runtimeDir(t), t.TempDir()
	envFile, sent := filepath.Join(tmp, "env"), filepath.Join(tmp, "sent")
	cleanupInstance(t, dir, "own")
	begun := time.Now()
	args := append([]string{"start", "--name", "own", "--ready", "notify", "--watchdog", "30s"},
		notifyClientCmd(t, "env:"+envFile, "sleep:2500ms", "send:STATUS=warming up", "barrier:5s", "stamp:"+sent, "send:READY=1\nSTATUS=up", "wait")...)
	r := respawnerWithin(t, dir, 20*time.Second, args...)
	took := time.Since(begun)
	if r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(sent); err != nil || took < 2500*time.Millisecond {
		t.Fatalf("start returned after %s, before READY=1", took)
	}
	env := readEnvFile(t, envFile)
	if !strings.HasPrefix(env["NOTIFY_SOCKET"], "@respawner/own/") || env["WATCHDOG_USEC"] != "30000000" || env["WATCHDOG_PID"] != env["pid"] {
		t.Errorf("the program's environment: %v (WATCHDOG_PID must be its own pid)", env)
	}
	st, code := statusOf(t, dir, "own")
	if code != 0 || st.StatusText != "up" || st.Watchdog != "30s" || st.NotifyIgnored != 0 || strconv.Itoa(st.PID) != env["pid"] {
		t.Errorf("status: exit %d %+v", code, st)
	}
	if r := respawnerWithin(t, dir, 20*time.Second, "stop", "own"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
}

// TestReadyNotifyFailures: a program that never says READY=1 fails start
// after --start-timeout, one that exits first fails it at once, each with
// the reason, and nothing is left running.
func TestReadyNotifyFailures(t *testing.T) {
	dir := runtimeDir(t)
	for _, tc := range []struct {
		name  string
		steps []string
		want  string
		min   time.Duration
	}{
		{"silent", []string{"send:STATUS=thinking", "wait"}, "no READY=1 within 1s", time.Second},
		{"exits", []string{"sleep:200ms", "exit:3"}, "exit status 3 before READY=1", 0},
		{"exits cleanly", []string{"exit:0"}, "exit status 0 before READY=1", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := strings.ReplaceAll(tc.name, " ", "-")
			cleanupInstance(t, dir, name)
			begun := time.Now()
			args := append([]string{"start", "--name", name, "--ready", "notify", "--start-timeout", "1s", "--stop-timeout", "2s"},
				notifyClientCmd(t, tc.steps...)...)
			r := respawnerWithin(t, dir, 20*time.Second, args...)
			took := time.Since(begun)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("start: exit %d %q, want 1 and %q", r.code, r.stderr, tc.want)
			}
			if took < tc.min || took > tc.min+5*time.Second {
				t.Errorf("start failed after %s, want about %s", took, tc.min)
			}
			if _, live := control.Live(dir, name); live {
				t.Errorf("the instance still runs")
			}
		})
	}
}

// fifo makes a named pipe in dir; poke writes one byte to it (the helper's
// await step reads it).
func fifo(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func poke(t *testing.T, p string) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{1})
	f.Close()
}

// TestReadyNotifyUnrelatedSender: READY=1 (or WATCHDOG=trigger) from a
// process that is not the instance's is ignored and counted, also with a
// barrier; the program's own READY=1 counts, also from a process of the
// instance that runs as another user.
func TestReadyNotifyUnrelatedSender(t *testing.T) {
	tmp := t.TempDir()
	envFile, gate := filepath.Join(tmp, "env"), fifo(t, tmp, "gate")
	in := startRespawner(t, append([]string{"--ready", "notify", "--start-timeout", "60s"},
		notifyClientCmd(t, "env:"+envFile, "await:"+gate, "setuid:65534", "send:READY=1", "wait")...)...)
	env := readEnvFile(t, envFile)
	sock := env["NOTIFY_SOCKET"]
	// This test process is no process of the instance.
	for _, msg := range []string{"READY=1", "WATCHDOG=trigger", "STATUS=hijacked\nREADY=1"} {
		if err := notifySend(sock, msg, nil); err != nil {
			t.Fatalf("send %q: %v", msg, err)
		}
	}
	// A stranger's barrier is closed too (its descriptor is never kept),
	// and once it is, everything sent before has been handled.
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	err := notifySend(sock, "BARRIER=1", unix.UnixRights(p[1]))
	unix.Close(p[1])
	if err != nil {
		t.Fatal(err)
	}
	fds := []unix.PollFd{{Fd: int32(p[0]), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 5000); err != nil || n != 1 || fds[0].Revents&unix.POLLHUP == 0 {
		t.Fatalf("barrier not closed within 5s")
	}
	unix.Close(p[0])
	st, code := statusOf(t, in.dir, filepath.Base(os.Args[0]))
	if code != 3 || st.State != "starting" || st.Ready == nil || *st.Ready || st.StatusText != "" || st.NotifyIgnored != 4 ||
		strconv.Itoa(st.PID) != env["pid"] {
		t.Fatalf("after a stranger's READY=1: exit %d %+v, want starting, 4 messages ignored", code, st)
	}
	if line := respawner(t, in.dir, "status", filepath.Base(os.Args[0])).stdout; !strings.Contains(line, "is starting (pid "+env["pid"]) ||
		!strings.Contains(line, "waiting for READY=1") {
		t.Errorf("status line %q", line)
	}
	// Now the program, as uid 65534, says it.
	poke(t, gate)
	in.waitFor("ready", 10*time.Second)
	st, code = statusOf(t, in.dir, filepath.Base(os.Args[0]))
	if code != 0 || st.State != "running" || !*st.Ready || st.Restarts != 0 {
		t.Fatalf("after the program's READY=1: exit %d %+v", code, st)
	}
	in.stopOK()
}

// TestReadyNotifyRestartNeverReady: a restarted run that does not say
// READY=1 within --start-timeout is a failed run: killed, then restarted
// after the respawn timeout.
func TestReadyNotifyRestartNeverReady(t *testing.T) {
	once := filepath.Join(t.TempDir(), "once")
	in := startRespawner(t, append([]string{"--ready", "notify", "--start-timeout", "1s", "-t", "1", "--stop-timeout", "2s"},
		notifyClientCmd(t, "once:"+once, "send:READY=1", "sleep:300ms", "exit:1")...)...)
	in.waitFor("ready", 10*time.Second)
	in.waitFor("exited", 10*time.Second)
	second := in.waitFor("restarted", 10*time.Second)
	// The second run blocks in its once step: no READY=1.
	if w := in.waitFor("terminating the failed run", 10*time.Second); w.str("reason") != "no READY=1 within 1s" {
		t.Errorf("terminated: %v", w)
	}
	l := in.waitFor("killed by signal", 10*time.Second)
	if l.int("pid") != second.int("pid") || l.str("signal") != "SIGTERM" {
		t.Fatalf("killed %v, want pid %d by SIGTERM", l, second.int("pid"))
	}
	sched := in.waitFor("respawn scheduled", 5*time.Second)
	if sched.str("delay") != "1s" {
		t.Errorf("respawn delay %v, want 1s", sched["delay"])
	}
	in.waitFor("restarted", 10*time.Second)
	in.stopOK()
}

// TestReadyNotifyMainPID: MAINPID= is followed when it names a descendant
// of respawner, and ignored otherwise.
func TestReadyNotifyMainPID(t *testing.T) {
	// This test process is alive and no descendant of respawner.
	in := startRespawner(t, append([]string{"--ready", "notify"},
		notifyClientCmd(t, "send:MAINPID="+strconv.Itoa(os.Getpid()), "send:READY=1", "mainpid-child", "wait")...)...)
	started := in.waitFor("started", 10*time.Second)
	w := in.waitFor("MAINPID= names a process that is not a live descendant of respawner; ignored", 10*time.Second)
	if w.int("mainpid") != os.Getpid() {
		t.Errorf("refused %v", w)
	}
	in.waitFor("ready", 10*time.Second)
	f := in.waitFor("following main pid", 10*time.Second)
	child := f.int("pid")
	if child == started.int("pid") || child == 0 {
		t.Fatalf("following %v", f)
	}
	st, _ := statusOf(t, in.dir, filepath.Base(os.Args[0]))
	if st.PID != child {
		t.Errorf("status pid %d, want the main pid %d", st.PID, child)
	}
	in.stopOK()
}

// waitDead waits until the process behind pidfd has ended and returns
// CLOCK_MONOTONIC then.
func waitDead(t *testing.T, pidfd int, timeout time.Duration) int64 {
	t.Helper()
	if !gone(pidfd, timeout) {
		t.Fatalf("the program still runs after %s", timeout)
	}
	return monotonic()
}

// TestWatchdog: a program that pings every 100 ms stays up; one that stops
// is killed (SIGABRT) within the watchdog period + 50 ms of its last ping,
// reported to the hooks as unhealthy with the reason "watchdog timeout", and
// restarted after the respawn timeout; WATCHDOG=trigger kills at once.
func TestWatchdog(t *testing.T) {
	tmp := t.TempDir()
	stamps, rec := filepath.Join(tmp, "stamps"), filepath.Join(tmp, "events")
	const period = 500 * time.Millisecond
	in := startRespawner(t, hookArgs(append([]string{"--plugin", "testhook:record-json=" + rec + ",events=unhealthy",
		"--ready", "notify", "--watchdog", period.String(), "-t", "1", "--stop-timeout", "5s"},
		notifyClientCmd(t, "send:READY=1", "ping:100ms:10:"+stamps, "wait")...)...)...)
	first := in.waitFor("started", 10*time.Second)
	pidfd := watchPID(t, first.int("pid"))
	dead := waitDead(t, pidfd, 10*time.Second)
	last, n := lastStamp(t, stamps)
	if n != 10 {
		t.Fatalf("%d pings before the kill, want all 10", n)
	}
	late := time.Duration(dead - last)
	t.Logf("killed %s after the last ping (watchdog %s)", late, period)
	if late < period-20*time.Millisecond || late > period+50*time.Millisecond {
		t.Errorf("killed %s after the last ping, want %s (+50ms at most)", late, period)
	}
	k := in.waitFor("killed by signal", 5*time.Second)
	if k.str("signal") != "SIGABRT" || k.int("pid") != first.int("pid") {
		t.Errorf("the program ended %v, want SIGABRT", k)
	}
	restarted := in.waitFor("restarted", 10*time.Second)
	ago := time.Duration(monotonic() - dead)
	t.Logf("restarted %s after the kill (-t 1)", ago)
	if ago < time.Second-10*time.Millisecond || ago > 2*time.Second {
		t.Errorf("restarted %s after the kill, want the 1s respawn timeout (a loose bound of 2s, read from the log)", ago)
	}
	if !strings.Contains(in.log(), "watchdog timeout (no WATCHDOG=1 within 500ms)") {
		t.Errorf("no reason in the log:\n%s", in.log())
	}
	// The plugin records the restart-pending it is asked too, which may
	// reach it before the unhealthy it is told (two calls in flight).
	var ev struct {
		Kind, Reason string
		PID          int
	}
	eventually(t, 10*time.Second, "unhealthy event recorded", func() bool {
		for _, l := range strings.Split(fileText(rec), "\n") {
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Kind == "unhealthy" {
				return true
			}
		}
		return false
	})
	if !strings.HasPrefix(ev.Reason, "watchdog timeout") || ev.PID != first.int("pid") {
		t.Errorf("the hooks heard %+v, want unhealthy: watchdog timeout of pid %d", ev, first.int("pid"))
	}
	// The second run pings again, ten times, and is killed the same way.
	second := watchPID(t, restarted.int("pid"))
	waitDead(t, second, 10*time.Second)
	in.stopOK()
}

// TestWatchdogKeepsPingingProgram: pings every 100 ms keep a program with a
// 1 s watchdog up for 10 s.
func TestWatchdogKeepsPingingProgram(t *testing.T) {
	stamps := filepath.Join(t.TempDir(), "stamps")
	in := startRespawner(t, append([]string{"--watchdog", "1s", "-t", "0"},
		notifyClientCmd(t, "ping:100ms:0:"+stamps)...)...)
	started := in.waitFor("started", 10*time.Second)
	pidfd := watchPID(t, started.int("pid"))
	if gone(pidfd, 10*time.Second) {
		t.Fatalf("the pinging program ended:\n%s", in.log())
	}
	st, code := statusOf(t, in.dir, filepath.Base(os.Args[0]))
	if code != 0 || st.PID != started.int("pid") || st.Restarts != 0 || st.Watchdog != "1s" {
		t.Errorf("after 10s: exit %d %+v", code, st)
	}
	if _, n := lastStamp(t, stamps); n < 50 {
		t.Errorf("only %d pings in 10s", n)
	}
	in.stopOK()
}

// TestWatchdogTrigger: WATCHDOG=trigger kills at once, without --watchdog too.
func TestWatchdogTrigger(t *testing.T) {
	trig := filepath.Join(t.TempDir(), "trigger")
	in := startRespawner(t, append([]string{"--ready", "notify", "-t", "1"},
		notifyClientCmd(t, "send:READY=1", "sleep:300ms", "stamp:"+trig, "send:WATCHDOG=trigger", "wait")...)...)
	started := in.waitFor("started", 10*time.Second)
	dead := waitDead(t, watchPID(t, started.int("pid")), 10*time.Second)
	sent, _ := lastStamp(t, trig)
	d := time.Duration(dead - sent)
	t.Logf("killed %s after WATCHDOG=trigger", d)
	if d > 200*time.Millisecond {
		t.Errorf("killed %s after WATCHDOG=trigger", d)
	}
	in.waitFor("the program triggered its watchdog", 5*time.Second)
	if k := in.waitFor("killed by signal", 5*time.Second); k.str("signal") != "SIGABRT" {
		t.Errorf("ended %v, want SIGABRT", k)
	}
	in.waitFor("restarted", 10*time.Second)
	in.stopOK()
}

// notifyReceiver is a fake service manager's NOTIFY_SOCKET.
type notifyReceiver struct {
	path string
	conn *net.UnixConn
}

func newNotifyReceiver(t *testing.T) *notifyReceiver {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &notifyReceiver{path: path, conn: c}
}

// next returns the next message, failing after timeout.
func (r *notifyReceiver) next(t *testing.T, timeout time.Duration) string {
	t.Helper()
	r.conn.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, 4096)
	n, err := r.conn.Read(buf)
	if err != nil {
		t.Fatalf("no message on NOTIFY_SOCKET within %s: %v", timeout, err)
	}
	return string(buf[:n])
}

// TestUnderServiceManager: respawner -D with a NOTIFY_SOCKET of its own
// sends READY=1 once its program is ready, and only then; the program gets
// the socket respawner made for it, never respawner's. Without --ready or
// --watchdog there is no notify socket at all, and the manager hears
// READY=1 once the program started.
func TestUnderServiceManager(t *testing.T) {
	tmp := t.TempDir()
	mgr := newNotifyReceiver(t)
	envFile, gate := filepath.Join(tmp, "env"), fifo(t, tmp, "gate")
	in := startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "NOTIFY_SOCKET="+mgr.path) },
		append([]string{"start", "-D", "--log-format", "json", "--ready", "notify"},
			notifyClientCmd(t, "env:"+envFile, "await:"+gate, "send:READY=1", "wait")...)...)
	env := readEnvFile(t, envFile)
	if !strings.HasPrefix(env["NOTIFY_SOCKET"], "@respawner/") {
		t.Fatalf("the program's NOTIFY_SOCKET is %q", env["NOTIFY_SOCKET"])
	}
	mgr.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	if n, err := mgr.conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("the manager heard %d bytes before the program was ready", n)
	}
	poke(t, gate)
	if msg := mgr.next(t, 10*time.Second); !strings.Contains(msg, "READY=1") {
		t.Fatalf("the manager heard %q", msg)
	}
	in.stopOK()

	// No --ready, no --watchdog: the program inherits no NOTIFY_SOCKET and
	// respawner opens no notify socket.
	in = startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "NOTIFY_SOCKET="+mgr.path, "WATCHDOG_USEC=1000") },
		append([]string{"start", "-D", "--log-format", "json", "--name", "plain"},
			notifyClientCmd(t, "env:"+envFile+"2", "wait")...)...)
	if msg := mgr.next(t, 10*time.Second); !strings.HasPrefix(msg, "READY=1") {
		t.Fatalf("the manager heard %q", msg)
	}
	env = readEnvFile(t, envFile+"2")
	if env["NOTIFY_SOCKET"] != "" || env["WATCHDOG_USEC"] != "" {
		t.Errorf("the program inherited respawner's manager variables: %v", env)
	}
	if b, _ := os.ReadFile("/proc/net/unix"); bytes.Contains(b, []byte("@respawner/plain/")) {
		t.Errorf("a notify socket exists without --ready or --watchdog")
	}
	in.stopOK()
}

// TestDaemonUnderServiceManager: a daemonizing start under a service
// manager names the daemon as the main process with its READY=1.
func TestDaemonUnderServiceManager(t *testing.T) {
	dir := runtimeDir(t)
	mgr := newNotifyReceiver(t)
	t.Setenv("NOTIFY_SOCKET", mgr.path)
	startDaemon(t, dir, "managed", append([]string{"--ready", "notify"}, notifyClientCmd(t, "send:READY=1", "wait")...)...)
	msg := mgr.next(t, 5*time.Second)
	st, _ := statusOf(t, dir, "managed")
	if want := fmt.Sprintf("MAINPID=%d\nREADY=1", st.RespawnerPID); msg != want {
		t.Errorf("the manager heard %q, want %q", msg, want)
	}
	if r := respawnerWithin(t, dir, 20*time.Second, "stop", "managed"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
}

// TestWatchdogAdoption: a respawner killed with SIGKILL leaves its pinging
// program running; the next start adopts it and takes its notify socket
// over (the same name, read from the program's environment), so its pings
// reach the new respawner and the watchdog does not kill it.
func TestWatchdogAdoption(t *testing.T) {
	dir := runtimeDir(t)
	stamps := filepath.Join(t.TempDir(), "stamps")
	args := append([]string{"start", "--name", "pinger", "--ready", "notify", "--watchdog", "1s", "--log-level", "debug"},
		notifyClientCmd(t, "send:READY=1", "ping:100ms:0:"+stamps)...)
	cleanupInstance(t, dir, "pinger")
	if r := respawnerWithin(t, dir, 20*time.Second, args...); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	st := killRespawner(t, dir, "pinger")
	defer syscall.Kill(st.PID, syscall.SIGKILL) // if adoption fails
	if r := respawnerWithin(t, dir, 20*time.Second, args...); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	fd := watchPID(t, st.PID)
	if gone(fd, 3*time.Second) {
		t.Fatalf("the adopted program was killed:\n%s", readFile(t, control.LogPath(dir, "pinger")))
	}
	st2, code := statusOf(t, dir, "pinger")
	if code != 0 || st2.PID != st.PID || st2.Watchdog != "1s" || st2.Restarts != 0 {
		t.Fatalf("after adoption: exit %d %+v, want pid %d", code, st2, st.PID)
	}
	if r := respawnerWithin(t, dir, 20*time.Second, "stop", "pinger"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
}

// TestExampleUnit: the ExecStart= of docs/respawner.service, run the way
// systemd runs it (a NOTIFY_SOCKET of its own), with a program that says
// READY=1 through systemd-notify: the manager hears READY=1 only after the
// program said it.
func TestExampleUnit(t *testing.T) {
	sn := systemdNotify(t)
	unit := readFile(t, "../../docs/respawner.service")
	var execStart string
	for _, l := range strings.Split(strings.ReplaceAll(unit, "\\\n", " "), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			execStart = v
		}
	}
	argv := strings.Fields(execStart)
	if len(argv) < 4 || argv[0] != "/usr/local/bin/respawner" || argv[1] != "start" || argv[2] != "-D" {
		t.Fatalf("ExecStart=%s", execStart)
	}
	tmp := t.TempDir()
	said := filepath.Join(tmp, "said")
	prog := script(t, tmp, "myserver", fmt.Sprintf("sleep 0.5\n: > %s\n%s --ready\nexec sleep 1000", said, sn))
	for i, a := range argv {
		if a == "/usr/local/bin/myserver" {
			argv[i] = prog
		}
	}
	mgr := newNotifyReceiver(t)
	in := startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "NOTIFY_SOCKET="+mgr.path) },
		append([]string{"start", "-D", "--log-format", "json"}, argv[3:]...)...)
	if msg := mgr.next(t, 20*time.Second); !strings.Contains(msg, "READY=1") {
		t.Fatalf("the manager heard %q", msg)
	}
	if _, err := os.Stat(said); err != nil {
		t.Fatalf("READY=1 before the program said it")
	}
	in.stopOK()
}

// TestReadyNotifyAsUser: a program running as --user nobody reaches the
// notify socket (respawner's runtime dir is closed to it), says READY=1
// and pings; WATCHDOG_PID, set by the exec shim, is its own pid, after a
// restart too.
func TestReadyNotifyAsUser(t *testing.T) {
	needRoot(t)
	nobodyAccount(t)
	shared := openDir(t, 0o777) // the helper, as nobody, writes its files here
	prog := filepath.Join(shared, "notify-client")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prog, b, 0o755); err != nil {
		t.Fatal(err)
	}
	envFile, stamps := filepath.Join(shared, "env"), filepath.Join(shared, "stamps")
	args := notifyClientCmd(t, "env:"+envFile, "send:READY=1\nSTATUS=as nobody", "ping:100ms:15:"+stamps, "exit:1")
	args[0] = prog
	in := startRespawner(t, append([]string{"--user", "nobody", "--ready", "notify", "--watchdog", "1s", "-t", "0", "--chdir", "/"}, args...)...)
	for run := 0; run < 2; run++ {
		ready := in.waitFor("ready", 10*time.Second)
		env := readEnvFile(t, envFile)
		os.Remove(envFile)
		if env["pid"] != strconv.Itoa(ready.int("pid")) || env["WATCHDOG_PID"] != env["pid"] || env["WATCHDOG_USEC"] != "1000000" {
			t.Errorf("run %d: pid %d, environment %v: WATCHDOG_PID must be the program's own pid", run, ready.int("pid"), env)
		}
		if uid := procStatus(t, ready.int("pid"))["Uid"]; !strings.HasPrefix(uid, "65534\t") {
			t.Errorf("run %d runs as uid %q, want nobody", run, uid)
		}
		// It pings 15 times, 100 ms apart, over a 1 s watchdog, and exits 1.
		if l := in.waitFor("exited", 10*time.Second); l.int("status") != 1 {
			t.Fatalf("run %d ended %v, want its own exit 1 (not the watchdog)", run, l)
		}
	}
	in.stopOK()
}

// TestUnreachableServiceManager: a NOTIFY_SOCKET nobody listens on is
// logged (through the log's queue, never a blocking write of the loop's
// own) and supervision goes on.
func TestUnreachableServiceManager(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "no-manager")
	in := startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "NOTIFY_SOCKET="+gone) },
		"start", "-D", "--log-format", "json", "/bin/sleep", "--", "1000")
	if l := in.waitFor("cannot notify the service manager", 10*time.Second); l.str("socket") != gone {
		t.Errorf("logged %v", l)
	}
	if st, code := statusOf(t, in.dir, "sleep"); code != 0 || st.State != "running" {
		t.Fatalf("status: exit %d %+v", code, st)
	}
	in.stopOK()
}

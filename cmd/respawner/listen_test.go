package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/httpload"
)

// listenServer is a program that takes its sockets as sd_listen_fds(3)
// does: LISTEN_PID must be its own pid, LISTEN_FDS says how many start at
// fd 3, LISTEN_FDNAMES names them. It writes "NAME ADDRESS" a line for
// each to args[0], then answers every connection to a stream socket with
// its name, and every datagram with its name.
func listenServer(args []string) {
	fail := func(format string, a ...any) {
		os.WriteFile(args[0], []byte("ERROR "+fmt.Sprintf(format, a...)+"\n"), 0o644)
		os.Exit(1)
	}
	if os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		fail("LISTEN_PID=%q, pid %d", os.Getenv("LISTEN_PID"), os.Getpid())
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	names := strings.Split(os.Getenv("LISTEN_FDNAMES"), ":")
	if err != nil || n != len(names) {
		fail("LISTEN_FDS=%q LISTEN_FDNAMES=%q", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES"))
	}
	var report strings.Builder
	for i := range n {
		f := os.NewFile(uintptr(3+i), names[i])
		name := names[i]
		if l, err := net.FileListener(f); err == nil {
			fmt.Fprintf(&report, "%s %s:%s\n", name, l.Addr().Network(), l.Addr())
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Write([]byte(name + "\n"))
					c.Close()
				}
			}()
		} else if pc, err := net.FilePacketConn(f); err == nil {
			fmt.Fprintf(&report, "%s %s:%s\n", name, pc.LocalAddr().Network(), pc.LocalAddr())
			go func() {
				buf := make([]byte, 64)
				for {
					_, from, err := pc.ReadFrom(buf)
					if err != nil {
						return
					}
					pc.WriteTo([]byte(name+"\n"), from)
				}
			}()
		} else {
			fail("fd %d: %v", 3+i, err)
		}
	}
	os.WriteFile(args[0]+".tmp", []byte(report.String()), 0o644)
	os.Rename(args[0]+".tmp", args[0])
	select {}
}

// listenServerCmd runs the helper as the program.
func listenServerCmd(t *testing.T, report string) []string {
	t.Setenv("RSPTEST_HELPER", "listen-server")
	t.Setenv("GORACE", "atexit_sleep_ms=0")
	return []string{os.Args[0], "--", report}
}

// TestListenSockets: the program gets the named sockets in order as fds 3,
// 4, 5 with LISTEN_PID its own pid; a unix socket has the mode asked for;
// status --json lists them; and after a crash the next run gets the same
// sockets (what connected meanwhile is answered by it).
func TestListenSockets(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	report, sock := filepath.Join(tmp, "report"), filepath.Join(tmp, "admin.sock")
	web, udp := freePort(t), freeUDPPort(t)
	startDaemon(t, dir, "ls", append([]string{"-t", "1", "--listen", "web=tcp:127.0.0.1:" + strconv.Itoa(web),
		"--listen", "admin=unix:" + sock + ",mode=0660", "--listen", "udp:127.0.0.1:" + strconv.Itoa(udp)}, listenServerCmd(t, report)...)...)
	got := waitFile(t, report, 10*time.Second)
	want := fmt.Sprintf("web tcp:127.0.0.1:%d\nadmin unix:%s\nls udp:127.0.0.1:%d", web, sock, udp)
	if got != want {
		t.Fatalf("the program got:\n%s\nwant:\n%s", got, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil || st.Mode&0o777 != 0o660 {
		t.Errorf("%s: mode %o, %v; want 0660", sock, st.Mode&0o777, err)
	}
	status, _ := statusOf(t, dir, "ls")
	if len(status.Listen) != 3 || status.Listen[0].Name != "web" || status.Listen[1].Address != "unix:"+sock || status.Listen[2].FD != 5 {
		t.Errorf("status --json listen: %+v", status.Listen)
	}
	if answer(t, "tcp", "127.0.0.1:"+strconv.Itoa(web)) != "web" || answer(t, "unix", sock) != "admin" || answerUDP(t, udp) != "ls" {
		t.Error("a socket is not served by its name")
	}

	// Down for a second (-t 1): a connection made meanwhile waits in the
	// backlog, and the next run answers it.
	os.Remove(report)
	syscall.Kill(status.PID, syscall.SIGKILL)
	waitState(t, dir, "ls", "backoff", -1, 10*time.Second)
	if a := answer(t, "tcp", "127.0.0.1:"+strconv.Itoa(web)); a != "web" {
		t.Errorf("a connection made while the program was down: %q", a)
	}
	if got := waitFile(t, report, 10*time.Second); got != want {
		t.Errorf("the next run got:\n%s", got)
	}
	if r := respawner(t, dir, "stop", "ls"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(web), time.Second); err == nil {
		c.Close()
		t.Error("the port is still open after the stop")
	}
}

// answer reads the first line a connection to addr gets.
func answer(t *testing.T, network, addr string) string {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Errorf("connect %s %s: %v", network, addr, err)
		return ""
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line)
}

func answerUDP(t *testing.T, port int) string {
	t.Helper()
	c, err := net.Dial("udp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("?"))
	buf := make([]byte, 64)
	n, _ := c.Read(buf)
	return strings.TrimSpace(string(buf[:n]))
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestListenErrors: an address in use fails start with exit 1 naming it,
// and nothing is left running; a malformed --listen is a usage error.
func TestListenErrors(t *testing.T) {
	dir := runtimeDir(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	addr := "tcp:" + l.Addr().String()
	for _, fg := range []bool{false, true} {
		args := []string{"start", "--name", "busy", "--listen", addr, "/bin/sleep", "--", "1000"}
		if fg {
			args = append([]string{"start", "-D"}, args[1:]...)
		}
		r := respawnerWithin(t, dir, 30*time.Second, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "listen on "+addr) || !strings.Contains(r.stderr, "address already in use") {
			t.Errorf("start (-D %v) on a port in use: exit %d %q, want 1 naming %s", fg, r.code, r.stderr, addr)
		}
		if r := respawner(t, dir, "status", "busy"); r.code != 3 {
			t.Errorf("after the failed start: status exit %d %q", r.code, r.stdout+r.stderr)
		}
	}
	for _, bad := range []string{"localhost:80", "tcp:127.0.0.1", "unix:x.sock", "tcp:127.0.0.1:80,mode=1"} {
		if r := respawner(t, dir, "start", "--listen", bad, "/bin/true"); r.code != 2 || !strings.Contains(r.stderr, "--listen") {
			t.Errorf("--listen %s: exit %d %q, want 2", bad, r.code, r.stderr)
		}
	}
}

// lighttpdActivated is a lighttpd configuration that takes its socket from
// respawner (server.systemd-socket-activation), on port.
func lighttpdActivated(t *testing.T, port int) *site {
	t.Helper()
	s := newSite(t, "")
	s.port = port
	conf := fmt.Sprintf(`server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
server.pid-file = %q
server.errorlog = %q
server.systemd-socket-activation = "enable"
index-file.names = ("index.html")
`, s.dir, port, s.pidfile, filepath.Join(s.dir, "error.log"))
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestListenLighttpdNoRefusals: lighttpd on a socket respawner holds, with
// -t 0, SIGKILLed 10 times while two clients make requests for 10 s: not
// one connection is refused, and at least 99.9 % of the requests succeed
// (a request in flight at a kill may be reset: counted apart, at most one
// a client a kill). Without --listen the same loop sees refusals; that
// comparison is in make bench (part listen).
func TestListenLighttpdNoRefusals(t *testing.T) {
	if testing.Short() {
		t.Skip("10 s of load")
	}
	dir := runtimeDir(t)
	s := lighttpdActivated(t, freePort(t))
	startDaemon(t, dir, "lighttpd", "-t", "0", "--listen", fmt.Sprintf("tcp:127.0.0.1:%d", s.port), lighttpdBin(t), "--", "-D", "-f", s.conf)
	st := waitState(t, dir, "lighttpd", "running", 0, 10*time.Second)
	const kills, workers = 10, 2
	ld := httpload.Start(fmt.Sprintf("http://127.0.0.1:%d/", s.port), workers)
	for range kills {
		time.Sleep(time.Second)
		syscall.Kill(st.PID, syscall.SIGKILL)
		st = waitState(t, dir, "lighttpd", "running", st.PID, 10*time.Second)
	}
	n := ld.End()
	t.Log(n)
	if n.Refused != 0 || n.Reset > kills*workers || n.OK < 1000 || float64(n.OK) < 0.999*float64(n.Total()) {
		t.Errorf("requests while lighttpd was killed %d times: %s; want none refused, at least 99.9 %% ok", kills, n)
	}
	if st.Restarts != kills {
		t.Errorf("restarts %d, want %d", st.Restarts, kills)
	}
	respawner(t, dir, "stop", "lighttpd")
}

// TestListenDaemonizingLighttpd: a lighttpd that daemonizes takes the
// socket too (it reads LISTEN_PID before it forks, and the daemon keeps
// the descriptor); restart is graceful: nothing refused.
func TestListenDaemonizingLighttpd(t *testing.T) {
	dir := runtimeDir(t)
	s := lighttpdActivated(t, freePort(t))
	startDaemon(t, dir, "lighttpd", "-t", "0", "--listen", fmt.Sprintf("tcp:127.0.0.1:%d", s.port), lighttpdBin(t), "--", "-f", s.conf)
	st := waitDaemon(t, dir, s, waitState(t, dir, "lighttpd", "running", 0, 10*time.Second), 10*time.Second)
	ld := httpload.Start(fmt.Sprintf("http://127.0.0.1:%d/", s.port), 2)
	time.Sleep(300 * time.Millisecond)
	syscall.Kill(st.PID, syscall.SIGKILL)
	st = waitState(t, dir, "lighttpd", "running", st.PID, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if r := respawnerWithin(t, dir, 30*time.Second, "restart", "lighttpd"); r.code != 0 {
		t.Errorf("restart: exit %d %s", r.code, r.stderr)
	}
	time.Sleep(300 * time.Millisecond)
	n := ld.End()
	t.Log(n)
	if n.Refused != 0 || n.OK < 100 {
		t.Errorf("daemonizing lighttpd, a crash and a restart: %s; want none refused", n)
	}
	respawner(t, dir, "stop", "lighttpd")
	assertNothingLeft(t, dir, s)
}

// TestListenAdoptedSockets: a respawner killed and started again adopts
// the program and takes the sockets from it (pidfd_getfd), so that the
// next crash still refuses nothing.
func TestListenAdoptedSockets(t *testing.T) {
	dir := runtimeDir(t)
	tmp := t.TempDir()
	report := filepath.Join(tmp, "report")
	port := freePort(t)
	args := append([]string{"-t", "1", "--listen", "tcp:127.0.0.1:" + strconv.Itoa(port)}, listenServerCmd(t, report)...)
	startDaemon(t, dir, "adopted", args...)
	waitFile(t, report, 10*time.Second)
	st, _ := statusOf(t, dir, "adopted")
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	control.WaitGone(st.RespawnerPID, 10*time.Second)
	if r := respawner(t, dir, append([]string{"start", "--name", "adopted"}, args...)...); r.code != 0 {
		t.Fatalf("start again: exit %d %s", r.code, r.stderr)
	}
	again, _ := statusOf(t, dir, "adopted")
	if again.PID != st.PID || len(again.Listen) != 1 {
		t.Fatalf("not adopted: %+v", again)
	}
	os.Remove(report)
	syscall.Kill(st.PID, syscall.SIGKILL)
	waitState(t, dir, "adopted", "backoff", -1, 10*time.Second)
	if a := answer(t, "tcp", "127.0.0.1:"+strconv.Itoa(port)); a != "adopted" {
		t.Errorf("a connection while the adopted program's successor was due: %q", a)
	}
	waitFile(t, report, 10*time.Second)
	respawner(t, dir, "stop", "adopted")
}

// TestListenHealthURL: healthcheck-http without url= probes the first
// --listen address; a url= given wins.
func TestListenHealthURL(t *testing.T) {
	port := freePort(t)
	report := filepath.Join(t.TempDir(), "report")
	prog := listenServerCmd(t, report)
	in := startRespawner(t, hookArgs(append([]string{"--log-level", "debug", "--plugin", "healthcheck-http",
		"--listen", "tcp:0.0.0.0:" + strconv.Itoa(port)}, prog...)...)...)
	if got, want := in.waitFor("configured", 10*time.Second).str("url"), fmt.Sprintf("http://127.0.0.1:%d/", port); got != want {
		t.Errorf("the probe's url %q, want %q", got, want)
	}
	in.stopOK()
	in = startRespawner(t, hookArgs(append([]string{"--log-level", "debug", "--plugin", "healthcheck-http:url=http://127.0.0.1:1/x",
		"--listen", "tcp:127.0.0.1:" + strconv.Itoa(port)}, prog...)...)...)
	if got := in.waitFor("configured", 10*time.Second).str("url"); got != "http://127.0.0.1:1/x" {
		t.Errorf("the probe's url %q, want the one given", got)
	}
	in.stopOK()
}

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// respawnerBin is the real binary under test, built once by TestMain with
// respawner-hookhost beside it; pluginDir holds the test plugins.
var respawnerBin, pluginDir string

func TestMain(m *testing.M) {
	if h := os.Getenv("RSPTEST_HELPER"); h != "" {
		runHelper(h, os.Args[1:])
		return
	}
	dir, err := os.MkdirTemp("", "respawner-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	respawnerBin = filepath.Join(dir, "respawner")
	pluginDir = filepath.Join(dir, "plugins")
	builds := [][2]string{
		{respawnerBin, "."},
		{filepath.Join(dir, "respawner-hookhost"), "../respawner-hookhost"},
		{filepath.Join(pluginDir, "respawner-plugin-testhook"), "../../internal/hooktest/testhook"},
		{filepath.Join(pluginDir, "respawner-plugin-oldproto"), "../../internal/hooktest/oldproto"},
		{filepath.Join(pluginDir, "respawner-plugin-testprobe"), "../../internal/hooktest/testprobe"},
		{filepath.Join(pluginDir, "respawner-plugin-healthcheck-http"), "../../plugins/healthcheck-http"},
		{filepath.Join(pluginDir, "respawner-plugin-maintenance"), "../../examples/hooks/maintenance"},
	}
	for _, b := range builds {
		out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", b[1], err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runHelper turns the test binary into a helper process (Go's os/exec pattern).
func runHelper(name string, args []string) {
	switch name {
	case "hostile-parent":
		hostileParent(args)
	case "control-request":
		controlRequest(args)
	case "http-server":
		httpServer(args)
	case "counter-writer":
		counterWriter(args)
	case "fake-hookhost":
		fakeHookhost()
	case "notify-client":
		notifyClient(args)
	case "signal-recorder":
		signalRecorder(args)
	case "listen-server":
		listenServer(args)
	default:
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", name)
		os.Exit(2)
	}
}

// hostileParent execs args[0] the way a careless parent would: with signals
// blocked, others ignored, and an extra descriptor (fd 7) left open.
func hostileParent(args []string) {
	runtime.LockOSThread()
	var set unix.Sigset_t
	for _, s := range []syscall.Signal{unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2, unix.SIGALRM, unix.SIGCHLD, unix.SIGINT} {
		set.Val[(s-1)/64] |= 1 << ((uint(s) - 1) % 64)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil); err != nil {
		panic(err)
	}
	// signal.Ignore would do, but the raw call keeps the Go runtime out of it.
	for _, s := range []syscall.Signal{unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE, unix.SIGUSR2, unix.SIGTTOU} {
		setIgnored(s)
	}
	f, err := os.Open("/dev/null")
	if err != nil {
		panic(err)
	}
	if err := unix.Dup2(int(f.Fd()), 7); err != nil { // dup2 leaves FD_CLOEXEC off
		panic(err)
	}
	panic(syscall.Exec(args[0], args, os.Environ()))
}

func setIgnored(sig syscall.Signal) {
	act := [4]uintptr{1} // handler SIG_IGN, flags 0, restorer 0, mask 0
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0); e != 0 {
		panic(e)
	}
}

// runtimeDir gives each test its own runtime dir (mode 0700, as respawner wants).
func runtimeDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	return d
}

// result is a finished respawner command.
type result struct {
	code           int
	stdout, stderr string
}

// respawner runs a respawner command against runtime dir dir and waits for it.
func respawner(t *testing.T, dir string, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(respawnerBin, args...), dir, 0)
}

// respawnerWithin runs a respawner command that must finish within limit
// (one that hangs is the fault under test), and returns its result.
func respawnerWithin(t *testing.T, dir string, limit time.Duration, args ...string) result {
	t.Helper()
	return runCmd(t, exec.Command(respawnerBin, args...), dir, limit)
}

// runCmd runs cmd with RESPAWNER_RUNTIME_DIR=dir, failing the test if it
// takes longer than limit (0: no limit), and returns its exit code and output.
func runCmd(t *testing.T, cmd *exec.Cmd, dir string, limit time.Duration) result {
	t.Helper()
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("respawner %v: %v", cmd.Args[1:], err)
	}
	var late atomic.Bool
	if limit > 0 {
		timer := time.AfterFunc(limit, func() { late.Store(true); cmd.Process.Kill() })
		defer timer.Stop()
	}
	err := cmd.Wait()
	if late.Load() {
		t.Fatalf("respawner %v did not finish within %s", cmd.Args[1:], limit)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatalf("respawner %v: %v", cmd.Args[1:], err)
	}
	return r
}

// logLine is one JSON log line of respawner.
type logLine map[string]any

func (l logLine) msg() string { s, _ := l["@message"].(string); return s }
func (l logLine) int(key string) int {
	f, _ := l[key].(float64)
	return int(f)
}
func (l logLine) str(key string) string { s, _ := l[key].(string); return s }

// instance is a running `respawner start -D` under test.
type instance struct {
	t     *testing.T
	dir   string // its runtime dir
	cmd   *exec.Cmd
	lines chan logLine
	mu    sync.Mutex
	all   []string // every stderr line, for failure messages
	done  chan struct{}
	err   error // Wait's result, valid after done
}

// startRespawner runs respawner start -D --log-format json ARGS and follows its log.
func startRespawner(t *testing.T, args ...string) *instance {
	t.Helper()
	return startWith(t, nil, nil, append([]string{"start", "-D", "--log-format", "json"}, args...)...)
}

// startWith runs prefix... respawner args...; setup may adjust the command.
func startWith(t *testing.T, prefix []string, setup func(*exec.Cmd), args ...string) *instance {
	t.Helper()
	argv := append(append([]string{}, prefix...), respawnerBin)
	argv = append(argv, args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	dir := runtimeDir(t)
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
	if setup != nil {
		setup(cmd)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, dir: dir, cmd: cmd, lines: make(chan logLine, 1024), done: make(chan struct{})}
	go in.follow(stderr)
	t.Cleanup(in.cleanup)
	return in
}

func (in *instance) follow(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		in.mu.Lock()
		in.all = append(in.all, sc.Text())
		in.mu.Unlock()
		var l logLine
		if json.Unmarshal(sc.Bytes(), &l) == nil {
			in.lines <- l
		}
	}
	in.err = in.cmd.Wait()
	close(in.lines)
	close(in.done)
}

func (in *instance) log() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return strings.Join(in.all, "\n")
}

// waitFor returns the next log line with message msg, failing after timeout.
func (in *instance) waitFor(msg string, timeout time.Duration) logLine {
	in.t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-in.lines:
			if !ok {
				in.t.Fatalf("respawner ended before logging %q:\n%s", msg, in.log())
			}
			if l.msg() == msg {
				return l
			}
		case <-timer.C:
			in.t.Fatalf("no %q in the log after %s:\n%s", msg, timeout, in.log())
		}
	}
}

// wait waits for respawner to exit and returns its exit code.
func (in *instance) wait(timeout time.Duration) int {
	in.t.Helper()
	select {
	case <-in.done:
	case <-time.After(timeout):
		in.t.Fatalf("respawner still running after %s:\n%s\nprocesses below it:\n%s", timeout, in.log(), treeDump(in.cmd.Process.Pid))
	}
	var ee *exec.ExitError
	if errors.As(in.err, &ee) {
		return ee.ExitCode()
	}
	if in.err != nil {
		in.t.Fatalf("wait: %v", in.err)
	}
	return 0
}

func (in *instance) signal(sig syscall.Signal) {
	in.t.Helper()
	if err := in.cmd.Process.Signal(sig); err != nil {
		in.t.Fatalf("signal respawner: %v", err)
	}
}

// cleanup kills whatever is left: respawner and every process it started.
// stopOK sends SIGTERM and wants respawner to exit 0 within 10 s.
func (in *instance) stopOK() {
	in.t.Helper()
	in.signal(syscall.SIGTERM)
	if code := in.wait(10 * time.Second); code != 0 {
		in.t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, in.log())
	}
}

func (in *instance) cleanup() {
	select {
	case <-in.done:
		return
	default:
	}
	pid := in.cmd.Process.Pid
	for _, c := range descendantsOf(pid) {
		syscall.Kill(c, syscall.SIGKILL)
	}
	in.cmd.Process.Kill()
	<-in.done
}

// descendantsOf lists the processes below pid.
func descendantsOf(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, s := range strings.Fields(string(b)) {
				var c int
				fmt.Sscan(s, &c)
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	return out
}

// watchPID opens a pidfd on pid so a test can wait for that exact process to end.
func watchPID(t *testing.T, pid int) int {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// gone reports whether the process behind pidfd has ended within timeout.
func gone(pidfd int, timeout time.Duration) bool {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	for {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms < 0 {
			return false
		}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 1
	}
}

// script writes an executable shell script into dir and returns its path.
func script(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// lines counts the lines of a file (0 when it does not exist).
func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

// waitFile waits until path exists and is non-empty, and returns its content.
func waitFile(t *testing.T, path string, timeout time.Duration) string {
	t.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CLOSE_WRITE|unix.IN_MOVED_TO|unix.IN_CREATE); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && len(b) > 0 && b[len(b)-1] == '\n' {
			return strings.TrimSpace(string(b))
		}
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			t.Fatalf("%s not written after %s", path, timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err == nil && fds[0].Revents != 0 {
			var buf [4096]byte
			unix.Read(fd, buf[:])
		}
	}
}

func pidfdOpen(pid int) (int, error) { return unix.PidfdOpen(pid, 0) }

// treeDump describes the processes below pid, for failure messages.
func treeDump(pid int) string {
	var b strings.Builder
	for _, p := range descendantsOf(pid) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		st := map[string]string{}
		if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p)); err == nil {
			for _, l := range strings.Split(string(raw), "\n") {
				if k, v, ok := strings.Cut(l, ":"); ok {
					st[k] = strings.TrimSpace(v)
				}
			}
		}
		pg, _ := syscall.Getpgid(p)
		fmt.Fprintf(&b, "  pid %d pgid %d state %s ppid %s sigign %s sigblk %s: %q\n", p, pg, st["State"], st["PPid"], st["SigIgn"], st["SigBlk"], strings.ReplaceAll(string(cmd), "\x00", " "))
	}
	fds, _ := filepath.Glob(fmt.Sprintf("/proc/%d/fdinfo/*", pid))
	for _, f := range fds {
		raw, _ := os.ReadFile(f)
		if strings.Contains(string(raw), "Pid:") {
			fmt.Fprintf(&b, "  pidfd %s: %s\n", filepath.Base(f), strings.ReplaceAll(string(raw), "\n", " "))
		}
	}
	return b.String()
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool { return control.Alive(pid) }

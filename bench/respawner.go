package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// instance is one running `respawner start -D` under test. Its stderr (and the
// program's stdout/stderr, which it inherits) goes to a file, which nobody
// reads while it runs, so logging never waits on the harness.
type instance struct {
	name    string
	pid     int
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

var (
	liveMu sync.Mutex
	live   = map[*instance]bool{}
)

// startRespawner runs `bin start -D --log-format json [opts] PROG -- ARGS`.
func startRespawner(bin, dir, name string, opts []string, prog program) (*instance, error) {
	args := []string{"start", "-D", "--log-format", "json", "--name", name, "--stop-timeout", "2s"}
	args = append(args, opts...)
	args = append(args, prog.Path)
	if len(prog.Args) > 0 {
		args = append(args, "--")
		args = append(args, prog.Args...)
	}
	logPath := filepath.Join(dir, name+".log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close() // the child holds its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// Keep respawner's instance state out of the system's runtime dir.
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+filepath.Join(dir, "run"))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	in := &instance{name: name, pid: cmd.Process.Pid, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		in.waitErr = cmd.Wait()
		close(in.done)
	}()
	liveMu.Lock()
	live[in] = true
	liveMu.Unlock()
	return in, nil
}

func (in *instance) exited() bool {
	select {
	case <-in.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to respawner (by pid) and waits; if it has not exited
// after a while, it SIGKILLs respawner and whatever it left behind, also by pid.
func (in *instance) stop() error {
	defer func() {
		liveMu.Lock()
		delete(live, in)
		liveMu.Unlock()
	}()
	if in.exited() {
		return fmt.Errorf("respawner exited early: %v", in.waitErr)
	}
	left := descendants(in.pid)
	in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(8 * time.Second):
		left = append(left, descendants(in.pid)...)
		in.cmd.Process.Kill()
		<-in.done
		for _, p := range left {
			unix.Kill(p, unix.SIGKILL)
		}
		return fmt.Errorf("respawner did not stop within 8s of SIGTERM; killed")
	}
	// Everything it supervised must be gone with it.
	time.Sleep(10 * time.Millisecond)
	var stray []int
	for _, p := range left {
		if unix.Kill(p, 0) == nil && isDescendantLeft(p) {
			stray = append(stray, p)
			unix.Kill(p, unix.SIGKILL)
		}
	}
	if len(stray) > 0 {
		return fmt.Errorf("processes left behind after stop (killed): %v", stray)
	}
	if in.waitErr != nil {
		return fmt.Errorf("respawner exit after SIGTERM: %v", in.waitErr)
	}
	return nil
}

// isDescendantLeft reports whether p is still a live process (not a zombie
// that its new parent will reap).
func isDescendantLeft(p int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// interrupted are the cleanups of parts that run respawner in daemon mode,
// which stopAll runs too.
var interrupted []func()

// atInterrupt registers f with stopAll.
func atInterrupt(f func()) {
	liveMu.Lock()
	interrupted = append(interrupted, f)
	liveMu.Unlock()
}

// stopAll is the cleanup of an interrupted run.
func stopAll() {
	liveMu.Lock()
	all := make([]*instance, 0, len(live))
	for in := range live {
		all = append(all, in)
	}
	fs := interrupted
	liveMu.Unlock()
	for _, in := range all {
		in.stop()
	}
	for _, f := range fs {
		f()
	}
}

// logTail is the end of the instance's log, for error messages.
func (in *instance) logTail(n int) string { return logTail(in.logPath, n) }

// logTail is the last n lines of the file at path.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// lastRestart returns the restart number of the last complete "restarted"
// line of the log: it reads only the end of the file.
func (in *instance) lastRestart() (int, error) {
	f, err := os.Open(in.logPath)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	const tail = 16 << 10
	off := max(st.Size()-tail, 0)
	buf := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(buf, off)
	buf = buf[:n]
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i] // drop a line being written
	} else {
		return 0, nil
	}
	key := []byte(`"restart":"`)
	i := bytes.LastIndex(buf, key)
	if i < 0 {
		return 0, nil
	}
	k := 0
	for _, c := range buf[i+len(key):] {
		if c < '0' || c > '9' {
			break
		}
		k = k*10 + int(c-'0')
	}
	return k, nil
}

// waitChild waits for respawner to have a child other than skip.
func waitChild(in *instance, w *childWatcher, skip int, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p := w.other(skip); p != 0 {
			return p, nil
		}
		if in.exited() {
			return 0, fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
		}
		time.Sleep(time.Millisecond)
		w.refresh()
	}
	return 0, fmt.Errorf("no child of respawner within %s\n%s", timeout, in.logTail(10))
}

// waitComm waits until /proc/PID/comm reads want (the child has exec'd).
func waitComm(pid int, want string, timeout time.Duration) error {
	path := "/proc/" + strconv.Itoa(pid) + "/comm"
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("child %d: %w", pid, err)
		}
		if string(bytes.TrimSpace(b)) == want {
			return nil
		}
		time.Sleep(time.Millisecond)
	}
	return fmt.Errorf("child %d did not exec %s within %s", pid, want, timeout)
}

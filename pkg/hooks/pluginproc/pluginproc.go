// Package pluginproc starts hook plugin processes for go-plugin and keeps
// their orphans from being taken for anything else. It is the host side of
// the SDK: hooks.Launch runs every plugin through it, and respawner-hookhost
// reaps plugins' orphans with it. A plugin author does not need it; it lives
// under pkg/ because pkg/hooks uses it and nothing under pkg/ imports
// respawner's internal packages.
//
// go-plugin's own runner (internal to it) starts a plugin with os/exec and
// reaps it with cmd.Wait. This package's Runner does the same, and also:
//
//   - records each plugin pid in a process-wide set, under a lock held across
//     the fork, so that ReapOrphans, run in a host that is a child subreaper
//     (BecomeSubreaper), reaps everything else a plugin left behind and never
//     steals the exit status of a plugin from go-plugin's cmd.Wait;
//   - hands go-plugin a plugin's stderr line by line through Sanitize, so
//     that nothing a plugin prints can crash go-plugin's log parser (which
//     panics on a non-string "@message") or make a log line unbounded;
//   - checks the binary's sha256 pin right before the exec (go-plugin's
//     SecureConfig cannot be combined with a runner of one's own);
//   - ends the plugin's stdout and stderr streams shortly after the plugin
//     has exited, even when a process it started still holds them, so that
//     go-plugin goes on to reap the plugin.
package pluginproc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/hashicorp/go-plugin"
	"github.com/hashicorp/go-plugin/runner"
	"golang.org/x/sys/unix"
)

// procs is the set of plugin pids that go-plugin waits for. mu is held
// across each fork and each sweep of ReapOrphans, so a sweep never sees a
// plugin before it is recorded.
var (
	mu    sync.Mutex
	procs = map[int]bool{}
)

// drainAfterExit is how long a plugin's stdout and stderr are still read
// once the plugin itself has exited: what it wrote before dying is in the
// pipe already; only a process it left behind can hold the pipe open longer.
const drainAfterExit = time.Second

// Runner runs one plugin binary for go-plugin (ClientConfig.RunnerFunc).
type Runner struct {
	cmd    *exec.Cmd
	path   string
	pin    []byte // sha256 of the binary, checked right before the exec
	stdout *os.File
	stderr *os.File
	out    io.ReadCloser // what go-plugin reads
	errs   io.ReadCloser
	pid    int
}

var _ runner.Runner = (*Runner)(nil)

// New returns a Runner that executes path with spec's environment (what
// go-plugin put into it: the handshake cookie, the client certificate) after
// env, and spec's stdin. pin, when set, is the SHA-256 the binary must have.
func New(path string, env []string, pin []byte, spec *exec.Cmd) (*Runner, error) {
	cmd := exec.Command(path)
	cmd.Env = append(append([]string{}, env...), spec.Env...)
	cmd.Stdin = spec.Stdin
	r := &Runner{cmd: cmd, path: path, pin: pin}
	var w [2]*os.File
	for i, p := range []**os.File{&r.stdout, &r.stderr} {
		pr, pw, err := os.Pipe()
		if err != nil {
			r.closeAll(w[:])
			return nil, err
		}
		*p, w[i] = pr, pw
	}
	cmd.Stdout, cmd.Stderr = w[0], w[1]
	r.out = &deadlineEOF{f: r.stdout}
	r.errs = NewLineReader(&deadlineEOF{f: r.stderr})
	return r, nil
}

func (r *Runner) closeAll(ws []*os.File) {
	for _, f := range append(ws, r.stdout, r.stderr) {
		if f != nil {
			f.Close()
		}
	}
}

// Start checks the pin, then forks and execs the plugin with mu held, and
// records its pid.
func (r *Runner) Start(context.Context) error {
	w := []*os.File{r.cmd.Stdout.(*os.File), r.cmd.Stderr.(*os.File)}
	defer func() {
		for _, f := range w {
			f.Close() // the child has its copies
		}
	}()
	if r.pin != nil {
		if err := checkSum(r.path, r.pin); err != nil {
			r.stdout.Close()
			r.stderr.Close()
			return err
		}
	}
	mu.Lock()
	err := r.cmd.Start()
	if err == nil {
		r.pid = r.cmd.Process.Pid
		procs[r.pid] = true
	}
	mu.Unlock()
	if err != nil {
		r.stdout.Close()
		r.stderr.Close()
		return err
	}
	go r.endStreamsAtExit()
	return nil
}

// checkSum wants the file at path to have SHA-256 pin (go-plugin's
// SecureConfig cannot be used with a RunnerFunc: it checks the command's
// path before the runner exists). The error wraps
// plugin.ErrChecksumsDoNotMatch, as go-plugin's own.
func checkSum(path string, pin []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("error verifying checksum: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("error verifying checksum: %w", err)
	}
	if !bytes.Equal(h.Sum(nil), pin) {
		return plugin.ErrChecksumsDoNotMatch
	}
	return nil
}

// endStreamsAtExit waits (pidfd, no polling) for the plugin to exit, then
// bounds the reading of its stdout and stderr by drainAfterExit: go-plugin
// reaps a plugin only once both have ended, which a process the plugin left
// behind holding them would otherwise put off for as long as it lives.
func (r *Runner) endStreamsAtExit() {
	fd, err := unix.PidfdOpen(r.pid, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			break
		}
	}
	at := time.Now().Add(drainAfterExit)
	r.stdout.SetReadDeadline(at)
	r.stderr.SetReadDeadline(at)
}

// Wait reaps the plugin (go-plugin calls it once both streams have ended),
// then forgets its pid.
func (r *Runner) Wait(context.Context) error {
	err := r.cmd.Wait()
	r.stdout.Close()
	r.stderr.Close()
	mu.Lock()
	delete(procs, r.pid)
	mu.Unlock()
	return err
}

// Kill sends SIGKILL; it may be called more than once.
func (r *Runner) Kill(context.Context) error {
	if r.cmd.Process == nil {
		return nil
	}
	if err := r.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

func (r *Runner) Stdout() io.ReadCloser { return r.out }
func (r *Runner) Stderr() io.ReadCloser { return r.errs }
func (r *Runner) Name() string          { return r.path }

// ID is the pid, "" before Start (go-plugin's Kill then does nothing).
func (r *Runner) ID() string {
	if r.pid == 0 {
		return ""
	}
	return strconv.Itoa(r.pid)
}

// PID is the plugin's pid, 0 before Start.
func (r *Runner) PID() int { return r.pid }

// Diagnose adds nothing: respawner words a failed handshake itself.
func (r *Runner) Diagnose(context.Context) string { return "" }

func (r *Runner) PluginToHost(network, addr string) (string, string, error) {
	return network, addr, nil
}

func (r *Runner) HostToPlugin(network, addr string) (string, string, error) {
	return network, addr, nil
}

// deadlineEOF reads a pipe and turns the deadline set by endStreamsAtExit
// into the end of the stream.
type deadlineEOF struct{ f *os.File }

func (d *deadlineEOF) Read(p []byte) (int, error) {
	n, err := d.f.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, os.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (d *deadlineEOF) Close() error { return d.f.Close() }

// BecomeSubreaper makes this process a child subreaper: what a plugin
// starts and abandons is reparented here, not to respawner, which would
// otherwise count it among the supervised program's processes.
func BecomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	return nil
}

// ReapOrphans reaps, at every SIGCHLD until ctx ends, each child of this
// process that is not a plugin go-plugin waits for: the orphans of plugins.
// It waits for each by pid (waitid P_PID, WNOHANG), never for any child, so
// a plugin's exit status stays go-plugin's. reaped, when set, hears of each.
func ReapOrphans(ctx context.Context, reaped func(pid int, status string)) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, unix.SIGCHLD)
	defer signal.Stop(ch)
	for {
		sweep(reaped)
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// sweep reaps the orphans that have exited.
func sweep(reaped func(pid int, status string)) {
	mu.Lock()
	defer mu.Unlock()
	for _, pid := range children() {
		if procs[pid] {
			continue
		}
		if st, ok := wait(pid, unix.WNOHANG); ok && reaped != nil {
			reaped(pid, st)
		}
	}
}

// KillPlugins SIGKILLs every plugin started here and not yet reaped; their
// clients see them exit (a Launch in progress fails). For a host told to
// stop while a plugin is starting: go-plugin holds the client's lock until
// the handshake, so Kill would wait for it.
func KillPlugins() {
	mu.Lock()
	defer mu.Unlock()
	for pid := range procs {
		unix.Kill(pid, unix.SIGKILL)
	}
}

// KillOrphans SIGKILLs and reaps every child that is not a plugin, and what
// they leave in turn, for the host's last act: no plugin's process outlives
// it.
func KillOrphans(killed func(pid int)) {
	mu.Lock()
	defer mu.Unlock()
	for range 100 { // each round takes a generation; bounded all the same
		var left []int
		for _, pid := range children() {
			if !procs[pid] {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			unix.Kill(pid, unix.SIGKILL)
			if killed != nil {
				killed(pid)
			}
		}
		for _, pid := range left {
			wait(pid, 0)
		}
	}
}

// wait reaps pid when it has exited (at once with WNOHANG).
func wait(pid, flags int) (string, bool) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|flags, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || siginfoPID(&info) == 0 {
			return "", false
		}
		return siginfoStatus(&info), true
	}
}

// children lists this process's children from /proc/self/task/*/children
// (a child hangs off the thread that forked it; an orphan off any thread).
func children() []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// The SIGCHLD fields of siginfo_t sit in the union that x/sys/unix leaves as
// padding: si_pid at offset 16, si_status at offset 24 (all Linux ABIs).
func siginfoPID(info *unix.Siginfo) int {
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), 16)))
}

func siginfoStatus(info *unix.Siginfo) string {
	status := int(*(*int32)(unsafe.Add(unsafe.Pointer(info), 24)))
	switch info.Code {
	case 2, 3: // CLD_KILLED, CLD_DUMPED
		return unix.SignalName(unix.Signal(status))
	}
	return "exit " + strconv.Itoa(status)
}

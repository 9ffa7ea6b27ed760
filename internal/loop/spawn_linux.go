package loop

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/internal/runenv"
	"golang.org/x/sys/unix"
)

// spawn starts the program in its own process group and returns its pid and a
// pidfd for it (CLONE_PIDFD: the pidfd names this very process, so a recycled
// pid can never be mistaken for it).
//
// The child inherits the signal mask of the forking thread; the loop runs on a
// locked thread whose mask it cleared (cleanThreadSigmask), so the program
// starts with nothing blocked even when respawner itself was started with
// signals blocked. Dispositions: exec resets handled signals to the default and
// keeps ignored ones, so respawner has none ignored (ResetIgnoredSignals).
//
// attrs (user, directory, limits, umask, pid variables) are set up by
// runenv.ForkExec: through Go's own fork/exec, or the exec shim (limits,
// umask, pid variables), which execs the program in the same process;
// spawn returns once it has, or with the reason it could not.
func spawn(path string, argv, env []string, files []uintptr, attrs *runenv.Attrs) (pid, pidfd int, err error) {
	pidfd = -1
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	}
	if !attrs.Empty() {
		if pid, err = runenv.ForkExec(path, argv, attr, attrs); err != nil {
			return 0, -1, err
		}
		return pid, pidfd, nil
	}
	pid, err = syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, -1, fmt.Errorf("exec %s: %w", path, err)
	}
	return pid, pidfd, nil
}

// cleanThreadSigmask unblocks every signal on the calling (locked) thread.
func cleanThreadSigmask() error {
	var empty unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil); err != nil {
		return fmt.Errorf("pthread_sigmask: %w", err)
	}
	return nil
}

// kernelSigaction is struct sigaction as the rt_sigaction syscall takes it.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const sigIGN = 1

// ResetIgnoredSignals sets every signal that respawner inherited as ignored
// (nohup, a careless parent) back to the default, because ignored dispositions
// survive exec and would reach the supervised program. Signals the Go runtime
// handles are never SIG_IGN here, so this touches only what the runtime left
// alone. Call it once at start-up, before installing os/signal handlers.
func ResetIgnoredSignals() {
	for sig := 1; sig < 65; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if e != 0 || old.handler != sigIGN {
			continue
		}
		def := kernelSigaction{} // SIG_DFL
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&def)), 0, 8, 0, 0)
	}
}

// CloseInheritedFDs marks every descriptor above 2 close-on-exec, so that
// descriptors respawner inherited never reach the program.
func CloseInheritedFDs() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: mark each open one.
	ents, derr := os.ReadDir("/proc/self/fd")
	if derr != nil {
		return fmt.Errorf("close_range: %w; and /proc/self/fd: %w", err, derr)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

func (l *Loop) spawn(a machine.Spawn) {
	if l.opt.Pidfile != "" {
		if err := clearStalePidfile(l.opt.Pidfile); err != nil {
			l.log.Error("cannot start program", "error", err)
			l.step(machine.SpawnFailed{Err: err})
			return
		}
	}
	env, err := runenv.Environ(l.opt.Env, l.opt.EnvFiles, l.opt.SetEnv)
	if err != nil {
		l.log.Error("cannot start program", "error", err)
		l.step(machine.SpawnFailed{Err: err})
		return
	}
	attrs := l.attrs()
	if attrs.NeedsShim() {
		l.startShim(a, env, attrs) // finished by events: the loop never waits for the shim
		return
	}
	pid, pidfd, err := spawn(l.opt.Path, l.opt.Argv, env, l.files, attrs)
	if err != nil {
		l.log.Error("cannot start program", "error", err)
		l.step(machine.SpawnFailed{Err: err})
		return
	}
	l.started(a, pid, pidfd)
}

// started watches the program that spawn (or the exec shim) started.
func (l *Loop) started(a machine.Spawn, pid, pidfd int) {
	if err := epollAdd(l.epfd, pidfd); err != nil {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		unix.Close(pidfd)
		l.fatal(err)
		return
	}
	l.pid, l.pidfd, l.pgid = pid, pidfd, pid
	switch {
	case a.Requested:
		l.log.Info("restarted on request", "pid", pid)
	case a.Restart == 0:
		l.log.Info("started", "pid", pid)
	default:
		l.log.Info("restarted", "restart", restartOf(a), "pid", pid)
	}
	l.saveState()
	l.step(machine.Started{PID: pid})
}

// setEnv adds variables of a feature (NOTIFY_SOCKET, LISTEN_FDS, ...) to
// every start's environment, last: over --env and the env files. Call it
// in setup, before the first start.
func (l *Loop) setEnv(kv ...string) {
	l.opt.SetEnv = append(l.opt.SetEnv[:len(l.opt.SetEnv):len(l.opt.SetEnv)], kv...)
}

// attrs are the Attrs of a start, with the PIDEnv of the loop's features.
func (l *Loop) attrs() *runenv.Attrs {
	if len(l.opt.PIDEnv) == 0 {
		return &l.opt.Attrs
	}
	a := l.opt.Attrs
	a.PIDEnv = append(a.PIDEnv[:len(a.PIDEnv):len(a.PIDEnv)], l.opt.PIDEnv...)
	return &a
}

func restartOf(a machine.Spawn) string {
	if a.Limit == 0 {
		return strconv.Itoa(a.Restart)
	}
	return strconv.Itoa(a.Restart) + "/" + strconv.Itoa(a.Limit)
}

// follow makes pid the watched process: a daemon that left its launcher, or
// a program adopted from a killed respawner.
func (l *Loop) follow(pid int) {
	if l.pidfd >= 0 && l.pid != pid {
		// The launcher is still alive (the pidfile came first): it is one of
		// the run's other processes now.
		l.tree[l.pidfd] = l.pid
		l.pid, l.pidfd = 0, -1
	}
	fd := -1
	for f, p := range l.tree {
		if p == pid {
			fd = f
			delete(l.tree, f)
		}
	}
	if fd < 0 {
		var err error
		if fd, err = unix.PidfdOpen(pid, 0); err != nil {
			l.log.Warn("daemon vanished before it could be watched", "pid", pid, "error", err)
			l.step(machine.Exited{PID: pid, Status: machine.ExitStatus{Unknown: true}})
			return
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			unix.Close(fd)
			l.fatal(err)
			return
		}
	}
	l.pid, l.pidfd = pid, fd
	switch {
	case l.mainFrom != 0:
		l.log.Info("following main pid", "pid", pid, "from", l.mainFrom)
	case l.opt.Adopt == nil || l.opt.Adopt.PID != pid:
		l.log.Info("following daemon", "pid", pid)
	}
	l.saveState()
}

// saveState records the program's identity (pid, start time, process group)
// so that a respawner started after this one was killed can adopt it. The
// file stays open: one pwrite and one ftruncate per start, since a crash loop
// restarts hundreds of times a second. A torn write cannot mislead the
// reader, which adopts only a live pid whose start time matches.
func (l *Loop) saveState() {
	if l.opt.StatePath == "" || l.pid == 0 {
		return
	}
	if l.stateFD < 0 {
		fd, err := unix.Open(l.opt.StatePath, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			l.log.Warn("cannot record the program for adoption", "error", err)
			return
		}
		l.stateFD = fd
	}
	st, err := control.ProcStartTime(l.pid)
	if err != nil {
		return
	}
	b := fmt.Appendf(l.stateBuf[:0], "%d %d %d\n", l.pid, st, l.pgid)
	if _, err := unix.Pwrite(l.stateFD, b, 0); err == nil {
		unix.Ftruncate(l.stateFD, int64(len(b)))
	}
}

// watchedExited handles the end of the watched process.
func (l *Loop) watchedExited() {
	if !pidfdExited(l.pidfd) {
		return // a stale event: see pidfdExited
	}
	st, err := waitPidfd(l.pidfd)
	if errors.Is(err, unix.ECHILD) {
		st = machine.ExitStatus{Unknown: true} // adopted: not our child, status unknowable
	} else if err != nil {
		l.fatal(err)
		return
	}
	uptime := time.Since(l.m.Snapshot().Started).Round(time.Millisecond)
	pid := l.pid
	unix.Close(l.pidfd) // closing also removes it from the epoll set
	l.pid, l.pidfd = 0, -1
	switch {
	case st.Unknown:
		l.log.Info("exited", "pid", pid, "status", "unknown (not our child)", "uptime", uptime)
	case st.Signal != 0:
		l.log.Info("killed by signal", "pid", pid, "signal", signalName(st.Signal), "uptime", uptime)
	default:
		l.log.Info("exited", "pid", pid, "status", st.Code, "uptime", uptime)
	}
	if l.collecting {
		l.watchLeftovers() // its children are ours now: wait for them too
		l.step(machine.Exited{PID: pid, Status: st})
		l.checkCollected()
		return
	}
	leftovers := l.watchLeftovers()
	if len(leftovers) == 0 {
		l.pgid = 0
	}
	l.step(machine.Exited{PID: pid, Status: st, Leftovers: leftovers})
}

package loop

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/internal/runenv"
)

// pendingShim is a start through the exec shim (limits, umask, directory,
// pid variables) whose report has not come: the loop does not wait for it.
// The report pipe and a timer are in the epoll set; the start is finished
// when the pipe closes (the program was exec'd: Started), or fails when the
// shim reports a reason or the timer fires first (a chdir into a hung
// mount), after the shim is gone (its pidfd, then SpawnFailed). Meanwhile
// the Machine is Starting without a pid, where a stop waits for either.
type pendingShim struct {
	p     *runenv.Pending
	spawn machine.Spawn
	err   error // set once it failed: waiting for the shim to be gone
}

// startShim forks the shim and returns; shimReport, shimTimedOut and
// shimGone carry the start on.
func (l *Loop) startShim(a machine.Spawn, env []string, attrs *runenv.Attrs) {
	pidfd := -1
	attr := &syscall.ProcAttr{Env: env, Files: l.files, Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd}}
	p, err := runenv.StartShim(l.opt.Path, l.opt.Argv, attr, attrs)
	if err != nil {
		l.log.Error("cannot start program", "error", err)
		l.step(machine.SpawnFailed{Err: err})
		return
	}
	l.shim = &pendingShim{p: p, spawn: a}
	if l.shimTimer < 0 {
		if l.shimTimer, err = newTimerfd(); err == nil {
			if err = epollAdd(l.epfd, l.shimTimer); err != nil {
				unix.Close(l.shimTimer)
				l.shimTimer = -1
			}
		}
	}
	if err == nil {
		err = armTimerfd(l.shimTimer, runenv.ShimTimeout)
	}
	if err == nil {
		err = epollAdd(l.epfd, p.Report)
	}
	if err != nil {
		unix.Close(p.Report)
		p.Report = -1
		l.shimFailed(fmt.Errorf("exec shim: %w", err))
	}
}

// shimReport reads the report pipe: at its end the start is done, or failed.
func (l *Loop) shimReport() {
	s := l.shim
	done, msg, err := s.p.Read()
	if !done {
		return
	}
	l.closeShimReport()
	if err == nil && msg != "" {
		err = errors.New(msg)
	}
	if err != nil {
		l.shimFailed(err)
		return
	}
	l.shim = nil
	l.started(s.spawn, s.p.PID, s.p.PIDFD)
}

// shimTimedOut: the shim did not exec the program within ShimTimeout.
func (l *Loop) shimTimedOut() {
	if l.shim == nil || l.shim.err != nil {
		return
	}
	l.closeShimReport()
	l.shimFailed(fmt.Errorf("the exec shim did not start the program within %s", runenv.ShimTimeout))
}

// shimFailed kills the shim (a failed one exits by itself anyway) and
// waits, in the epoll set, for its pidfd: SpawnFailed comes once it is gone,
// so that no run overlaps it. A shim SIGKILL cannot reach yet (stuck in a
// dead mount) keeps the instance starting, and the loop serving.
func (l *Loop) shimFailed(err error) {
	s := l.shim
	s.err = err
	unix.PidfdSendSignal(s.p.PIDFD, unix.SIGKILL, nil, 0)
	if err := epollAdd(l.epfd, s.p.PIDFD); err != nil {
		l.shimGone() // cannot watch it: reap what can be reaped now
	}
}

// shimGone reaps a failed shim and fails the start.
func (l *Loop) shimGone() {
	s := l.shim
	if s == nil || s.err == nil {
		return
	}
	if !pidfdExited(s.p.PIDFD) {
		return // not gone yet (a stale wake-up)
	}
	unix.Waitid(unix.P_PIDFD, s.p.PIDFD, nil, unix.WEXITED|unix.WNOHANG, nil) // ECHILD: reaped already
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.p.PIDFD, nil)
	unix.Close(s.p.PIDFD)
	l.shim = nil
	l.log.Error("cannot start program", "error", s.err)
	l.step(machine.SpawnFailed{Err: s.err})
}

func (l *Loop) closeShimReport() {
	s := l.shim
	if s.p.Report >= 0 {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.p.Report, nil)
		unix.Close(s.p.Report)
		s.p.Report = -1
	}
	if l.shimTimer >= 0 {
		disarmTimerfd(l.shimTimer)
	}
}

// closeShim, at the end of the loop, kills a shim still pending.
func (l *Loop) closeShim() {
	if l.shim == nil {
		return
	}
	l.closeShimReport()
	unix.PidfdSendSignal(l.shim.p.PIDFD, unix.SIGKILL, nil, 0)
	unix.Close(l.shim.p.PIDFD)
	l.shim = nil
}

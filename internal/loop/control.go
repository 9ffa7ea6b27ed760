package loop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"syscall"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/machine"
	"golang.org/x/sys/unix"
)

// ctlSocket is the loop's side of the control socket: a listening socket and
// the connections accepted from it, all non-blocking and in the epoll set.
type ctlSocket struct {
	listen int
	conns  map[int]*conn
	paused bool   // listener out of the epoll set: EMFILE, or maxConns open
	warned string // why it last paused, logged once until an accept succeeds
	timer  int    // timerfd for requestTimeout, created on first use; -1 before
}

type conn struct {
	buf     []byte
	out     []byte    // reply not yet taken by the socket (EPOLLOUT armed)
	since   time.Time // accepted at
	stopped bool      // asked to stop: kept open until we exit, its EOF says "done"
	restart bool      // asked to restart: answered when the new run is up, or is not
	done    bool      // close once out is sent
}

// maxConns bounds the control connections open at once, and with it the
// descriptors clients can hold: the program's restarts need descriptors too
// (pidfd, pipes, exec's own), and idle clients must never take them.
const maxConns = 16

// requestTimeout is how long a client may take to send its request line.
// A stop connection, once its request is in, stays open until the exit.
const requestTimeout = 10 * time.Second

func (c *ctlSocket) closeAll() {
	for fd := range c.conns {
		unix.Close(fd)
	}
	if c.listen >= 0 {
		unix.Close(c.listen)
	}
	if c.timer >= 0 {
		unix.Close(c.timer)
	}
}

// pause takes the listener out of the epoll set: a pending connection keeps
// a level-triggered listener readable, and would wake us at once, for ever.
func (l *Loop) pause(why string, args ...any) {
	if l.ctl.paused {
		return
	}
	if why != l.ctl.warned {
		l.log.Warn("control socket: "+why, args...)
		l.ctl.warned = why
	}
	unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, l.ctl.listen, nil)
	l.ctl.paused = true
}

func (l *Loop) accept() {
	for {
		if len(l.ctl.conns) >= maxConns {
			l.pause("too many connections; not accepting until one closes", "open", len(l.ctl.conns))
			return
		}
		fd, _, err := unix.Accept4(l.ctl.listen, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.EMFILE || err == unix.ENFILE {
			// Out of descriptors: stop listening until a connection closes
			// and frees one, or, with none open, try again in a second.
			l.pause("out of descriptors; not accepting until one is free", "error", err)
			l.armCtlTimer()
			return
		}
		if err != nil {
			return // EAGAIN: nothing more to accept
		}
		if uid, ok := control.PeerAllowed(fd); !ok {
			l.log.Warn("control request refused", "uid", uid)
			writeReply(fd, control.Reply{Error: "permission denied: only root or the instance's own user may control it"})
			unix.Close(fd)
			continue
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			unix.Close(fd)
			continue
		}
		l.ctl.conns[fd] = &conn{since: time.Now()}
		l.ctl.warned = ""
		l.armCtlTimer()
	}
}

// acceptRetry is how soon a listener paused for want of descriptors, with no
// connection open whose close would resume it, tries again.
const acceptRetry = time.Second

// armCtlTimer arms the control timer for the oldest connection still owing
// its request, and for acceptRetry while the listener is paused with no
// connection open; it disarms it when there is neither.
func (l *Loop) armCtlTimer() {
	due := time.Duration(-1)
	for _, c := range l.ctl.conns {
		if d := time.Until(c.since.Add(requestTimeout)); !c.owed() && (due < 0 || d < due) {
			due = d
		}
	}
	if l.ctl.paused && len(l.ctl.conns) == 0 && (due < 0 || acceptRetry < due) {
		due = acceptRetry
	}
	if l.ctl.timer < 0 {
		if due < 0 {
			return
		}
		fd, err := newTimerfd()
		if err == nil {
			if err = epollAdd(l.epfd, fd); err != nil {
				unix.Close(fd)
			}
		}
		if err != nil {
			l.log.Warn("control socket: no timer for slow clients", "error", err)
			return
		}
		l.ctl.timer = fd
	}
	if due < 0 {
		disarmTimerfd(l.ctl.timer)
		return
	}
	armTimerfd(l.ctl.timer, due)
}

// ctlTimerFired closes the connections that sent no request in time, and
// resumes a listener paused with none open.
func (l *Loop) ctlTimerFired() {
	now := time.Now()
	for fd, c := range l.ctl.conns {
		if !c.owed() && now.Sub(c.since) >= requestTimeout {
			if c.out == nil { // not in the middle of a reply
				writeReply(fd, control.Reply{Error: "no request within " + requestTimeout.String()})
			}
			l.closeConn(fd)
		}
	}
	if l.ctl.paused && len(l.ctl.conns) < maxConns && epollAdd(l.epfd, l.ctl.listen) == nil {
		l.ctl.paused = false // accept says at once if descriptors are still short
	}
	l.armCtlTimer()
}

func (l *Loop) closeConn(fd int) {
	unix.Close(fd)
	delete(l.ctl.conns, fd)
	if l.ctl.paused && epollAdd(l.epfd, l.ctl.listen) == nil {
		l.ctl.paused = false
	}
	if len(l.ctl.conns) == 0 && l.ctl.timer >= 0 {
		disarmTimerfd(l.ctl.timer)
	}
}

// owed: the client's request is in and its answer is ours to give when the
// time comes (stop, restart); the request timeout no longer applies.
func (c *conn) owed() bool { return c.stopped || c.restart }

func (l *Loop) serve(fd int, c *conn) {
	if len(c.out) > 0 {
		l.flushReply(fd, c)
		return
	}
	var buf [256]byte
	n, err := unix.Read(fd, buf[:])
	if err == unix.EAGAIN {
		return
	}
	if err != nil || n == 0 {
		if !c.stopped || n == 0 {
			l.closeConn(fd)
		}
		return
	}
	if c.owed() {
		return // nothing more is read from a client that waits
	}
	c.buf = append(c.buf, buf[:n]...)
	i := bytes.IndexByte(c.buf, '\n')
	if i < 0 {
		if len(c.buf) > 128 {
			writeReply(fd, control.Reply{Error: "request too long"})
			l.closeConn(fd)
		}
		return
	}
	req, err := control.ParseRequest(string(c.buf[:i]))
	if err != nil {
		writeReply(fd, control.Reply{Error: err.Error()})
		l.closeConn(fd)
		return
	}
	switch req.Kind {
	case control.ReqStatus:
		l.reply(fd, c, l.status())
	case control.ReqStop:
		writeReply(fd, control.Reply{OK: true})
		c.stopped = true
		l.armCtlTimer() // it owes nothing now
		l.log.Info("stop requested")
		l.step(machine.StopRequested{})
	case control.ReqRestart:
		c.restart = true
		l.armCtlTimer()
		l.log.Info("restart requested")
		l.step(machine.RestartRequested{})
	case control.ReqSignal:
		l.reply(fd, c, l.signalProgram(req.Sig, req.Group))
	}
}

// restartDone answers every client waiting for a restart (RestartDone).
func (l *Loop) restartDone(why string) {
	if why == "" {
		l.log.Info("restart done: the new run is up", "pid", l.pid)
	} else {
		l.log.Warn("restart failed", "reason", why)
	}
	for fd, c := range l.ctl.conns {
		if c.restart {
			c.restart = false
			l.reply(fd, c, control.Reply{OK: why == "", Error: why})
		}
	}
}

// signalProgram sends sig to the watched process (pidfd_send_signal: never
// a recycled pid), or with group to its process group, unless that is
// respawner's own.
func (l *Loop) signalProgram(sig syscall.Signal, group bool) control.Reply {
	if l.pidfd < 0 {
		return control.Reply{Error: "the program is not running (" + statusState(l.m.Snapshot()) + ")"}
	}
	var err error
	target := l.pid
	if group {
		target, err = unix.Getpgid(l.pid)
		switch {
		case err != nil:
		case target <= 1 || target == unix.Getpgrp():
			return control.Reply{Error: fmt.Sprintf("the program (pid %d) is in respawner's process group: send to its pid instead (without --group)", l.pid)}
		default:
			err = unix.Kill(-target, sig)
		}
	} else {
		err = unix.PidfdSendSignal(l.pidfd, sig, nil, 0)
	}
	if err != nil {
		l.log.Warn("signal not sent", "signal", signalName(sig), "pid", l.pid, "group", group, "error", err)
		return control.Reply{Error: fmt.Sprintf("%s to pid %d: %v", signalName(sig), l.pid, err)}
	}
	if group {
		l.log.Info("signal sent", "signal", signalName(sig), "pgid", target)
	} else {
		l.log.Info("signal sent", "signal", signalName(sig), "pid", target)
	}
	return control.Reply{OK: true}
}

// reply sends v and closes the connection. A reply larger than the socket
// takes at once (the status of a program with a long argument list) is kept
// and sent as the client reads, with EPOLLOUT; the request timeout still
// bounds how long a client that reads nothing keeps it.
func (l *Loop) reply(fd int, c *conn, v any) {
	b, _ := json.Marshal(v)
	c.out, c.done = append(b, '\n'), true
	l.flushReply(fd, c)
}

func (l *Loop) flushReply(fd int, c *conn) {
	for len(c.out) > 0 {
		n, err := unix.Write(fd, c.out)
		if err == unix.EAGAIN {
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT, Fd: int32(fd)}
			if unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, &ev) == nil {
				return
			}
		}
		if err != nil || n <= 0 {
			break // the client went away
		}
		c.out = c.out[n:]
	}
	c.out = nil
	if c.done {
		l.closeConn(fd)
	}
}

// writeReply sends a short reply (well under a socket buffer) at once.
func writeReply(fd int, v any) {
	b, _ := json.Marshal(v)
	unix.Write(fd, append(b, '\n')) // a few hundred bytes: fits the socket buffer
}

// status reports the instance for `status`.
func (l *Loop) status() control.Status {
	s := l.m.Snapshot()
	st := control.Status{
		Name: l.opt.Name, State: statusState(s), Restarts: s.Restarts,
		Health: "unknown", Since: s.Since.UTC().Truncate(time.Second), Plugins: l.pluginNames(),
		Program: l.opt.Path, Args: l.opt.Argv[1:], RespawnerPID: unix.Getpid(),
		Log: l.opt.LogTarget,
	}
	if st.Args == nil {
		st.Args = []string{}
	}
	if k := l.opt.Keeper; k != nil {
		st.KeeperPID = k.PID
	}
	if s.State == machine.Running || s.Unready {
		// Starting while READY=1 is awaited: the program runs.
		st.PID = s.PID
		st.Started = s.Started.UTC().Truncate(time.Second)
	}
	if l.opt.Machine.Notify && !l.opt.Machine.Pidfile {
		ready := s.State == machine.Running
		st.Ready = &ready
	}
	if l.nfy != nil {
		st.StatusText = s.Status
		st.NotifyIgnored = l.nfy.rejected
		if s.Watchdog > 0 {
			st.Watchdog = s.Watchdog.String()
		}
	}
	if s.State == machine.Backoff {
		st.NextRestart = s.Since.Add(s.Delay).UTC().Truncate(time.Millisecond)
	}
	switch s.State {
	case machine.Held, machine.Cleanup, machine.Backoff:
		// Why the program is not running while respawner waits to retry:
		// the hook's reason, or the failure of the last run ("pidfile ...
		// names running pid 1 ...: is another copy running?").
		st.Reason = s.Reason
	}
	st.Health, st.LastProbe = l.health()
	l.runStatus(&st)
	st.Listen = l.listenStatus()
	if e := s.LastExit; e != nil {
		switch {
		case e.Unknown:
			st.LastExit = &control.Exit{}
		case e.Signal != 0:
			st.LastExit = &control.Exit{Signal: signalName(e.Signal)}
		default:
			code := e.Code
			st.LastExit = &control.Exit{Code: &code}
		}
	}
	return st
}

// runStatus adds how each run is set up (Attrs) to st.
func (l *Loop) runStatus(st *control.Status) {
	a := &l.opt.Attrs
	if u := a.User; u != nil {
		if u.SetUser {
			st.User = u.Name
		}
		st.Group = u.Group
	}
	st.Dir, st.Umask = a.Dir, a.UmaskString()
	if len(a.Limits) > 0 {
		st.Limits = make(map[string]string, len(a.Limits))
		for _, lim := range a.Limits {
			st.Limits[lim.Name] = lim.Value()
		}
	}
}

// statusState maps machine states to the states of SPEC §2.
func statusState(s machine.Snapshot) string {
	switch s.State {
	case machine.Idle, machine.Starting:
		return "starting"
	case machine.Running:
		return "running"
	case machine.Cleanup, machine.Backoff:
		return "backoff"
	case machine.Stopping:
		return "stopping"
	case machine.Stopped:
		return "stopped"
	case machine.Held:
		return "held"
	}
	return "failed"
}

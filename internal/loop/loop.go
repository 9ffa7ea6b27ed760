package loop

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Options describe one supervised program.
type Options struct {
	Name    string    // instance name, used in logs
	Path    string    // resolved path of the program
	Argv    []string  // argv, argv[0] included
	Env     []string  // environment of the program
	Files   []uintptr // stdin, stdout, stderr of the program; nil means 0, 1, 2
	Machine Config
	Log     hclog.Logger
	// Reopen is called on SIGHUP (logrotate); nil when there is nothing to reopen.
	Reopen func() error
}

// stopBit in pending is a stop request that did not come from a signal.
const stopBit = 1 << 0

// Loop is the supervisor: one goroutine, locked to its thread, blocked in
// epoll_wait over a pidfd per watched process, a timerfd per Machine timer, and
// an eventfd through which signals and stop requests arrive. It turns ready
// descriptors into Events for the Machine and the Machine's Actions into
// syscalls; it holds no policy of its own.
type Loop struct {
	opt Options
	log hclog.Logger
	m   *Machine

	epfd    int
	evfd    int
	timers  [numTimers]int
	pending atomic.Uint64 // signal numbers (and stopBit) waiting for the loop
	ready   chan struct{} // closed once evfd exists

	pid   int         // the program's pid, 0 when not running
	pidfd int         // pidfd of pid, -1 when none
	pgid  int         // process group of the current run, 0 once it is gone
	tree  map[int]int // pidfd -> pid of leftover processes being waited for
	exit  *Exit
}

// New returns a loop for opt; Run starts it.
func New(opt Options) *Loop {
	if opt.Files == nil {
		opt.Files = []uintptr{0, 1, 2}
	}
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	return &Loop{
		opt: opt, log: opt.Log, m: NewMachine(opt.Machine),
		epfd: -1, evfd: -1, pidfd: -1, timers: [numTimers]int{-1, -1},
		tree: map[int]int{}, ready: make(chan struct{}),
	}
}

// Stop asks the loop to stop the program and return. It is safe to call from
// any goroutine, also before Run has started.
func (l *Loop) Stop() {
	l.pending.Or(stopBit)
	<-l.ready
	writeEventfd(l.evfd)
}

// Snapshot reports the machine's state. Only the loop goroutine may call it
// while Run is active.
func (l *Loop) Snapshot() Snapshot { return l.m.Snapshot() }

// handledSignals reach the loop; everything else keeps its default.
// SIGPIPE is taken so that a closed stderr yields EPIPE instead of killing us
// (and, being handled rather than ignored, is SIG_DFL again in the program).
var handledSignals = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGCHLD, unix.SIGPIPE,
}

// Run supervises until the Machine exits, and returns the process exit code.
func (l *Loop) Run() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.closeAll()
	if err := l.setup(); err != nil {
		return 1, err
	}

	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, handledSignals...)
	done := make(chan struct{})
	defer func() { signal.Stop(sigs); close(done) }()
	go l.forwardSignals(sigs, done)

	l.act(l.m.Start(time.Now()))
	var events [16]unix.EpollEvent
	for l.exit == nil {
		n, err := unix.EpollWait(l.epfd, events[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1, fmt.Errorf("epoll_wait: %w", err)
		}
		for i := 0; i < n && l.exit == nil; i++ {
			l.dispatch(int(events[i].Fd))
		}
	}
	return l.exit.Code, nil
}

func (l *Loop) setup() error {
	defer close(l.ready)
	if err := cleanThreadSigmask(); err != nil {
		return err
	}
	// Daemons that double-fork are reparented to us, not to init, so their
	// exit status is ours to collect and nothing they start escapes a stop.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	var err error
	if l.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return fmt.Errorf("epoll_create1: %w", err)
	}
	if l.evfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	if err := epollAdd(l.epfd, l.evfd); err != nil {
		return err
	}
	for i := range l.timers {
		if l.timers[i], err = newTimerfd(); err != nil {
			return err
		}
		if err := epollAdd(l.epfd, l.timers[i]); err != nil {
			return err
		}
	}
	return nil
}

func (l *Loop) closeAll() {
	for _, fd := range append([]int{l.epfd, l.evfd, l.pidfd}, l.timers[:]...) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	for fd := range l.tree {
		unix.Close(fd)
	}
}

// forwardSignals is the self-pipe of s6 done with an eventfd: signalfd cannot
// be used because the Go runtime owns signal delivery to its threads.
func (l *Loop) forwardSignals(sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case s := <-sigs:
			l.pending.Or(1 << uint(s.(syscall.Signal)))
			writeEventfd(l.evfd)
		case <-done:
			return
		}
	}
}

func (l *Loop) dispatch(fd int) {
	switch {
	case fd == l.evfd:
		readCounter(fd)
		l.signals(l.pending.Swap(0))
	case fd == l.pidfd:
		l.childExited()
	case fd == l.timers[RespawnTimer], fd == l.timers[KillTimer]:
		if !readCounter(fd) {
			return // disarmed after it became ready
		}
		id := RespawnTimer
		if fd == l.timers[KillTimer] {
			id = KillTimer
		}
		l.step(TimerFired{ID: id})
	default:
		if pid, ok := l.tree[fd]; ok {
			l.leftoverExited(fd, pid)
		}
	}
}

func (l *Loop) signals(bits uint64) {
	if bits&stopBit != 0 {
		l.log.Info("stop requested")
		l.step(StopRequested{})
	}
	for sig := syscall.Signal(1); sig < 64; sig++ {
		if bits&(1<<uint(sig)) == 0 {
			continue
		}
		switch sig {
		case unix.SIGTERM, unix.SIGINT:
			l.log.Info("signal received, stopping", "signal", signalName(sig))
			l.step(StopRequested{})
		case unix.SIGHUP:
			if l.opt.Reopen == nil {
				l.log.Info("SIGHUP received; nothing to reopen, supervision goes on")
			} else if err := l.opt.Reopen(); err != nil {
				l.log.Error("reopen log", "error", err)
			} else {
				l.log.Info("log reopened on SIGHUP")
			}
		case unix.SIGCHLD:
			l.reapOrphans()
		case unix.SIGPIPE:
		default:
			l.log.Info("signal ignored", "signal", signalName(sig))
		}
	}
}

func (l *Loop) step(ev Event) {
	l.act(l.m.Step(time.Now(), ev))
}

func (l *Loop) act(acts []Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case Spawn:
			l.spawn(a)
		case ArmTimer:
			if a.ID == RespawnTimer {
				l.log.Info("respawn scheduled", "delay", a.After)
			}
			if err := armTimerfd(l.timers[a.ID], a.After); err != nil {
				l.fatal(err)
			}
		case DisarmTimer:
			if err := disarmTimerfd(l.timers[a.ID]); err != nil {
				l.fatal(err)
			}
		case SignalTree:
			l.signalTree(a.Sig)
		case Exit:
			l.finish(a)
		}
	}
}

func (l *Loop) fatal(err error) {
	l.log.Error("fatal", "error", err)
	l.signalTree(unix.SIGKILL)
	l.exit = &Exit{Code: 1, Reason: err.Error()}
}

func (l *Loop) finish(a Exit) {
	l.exit = &a
	switch {
	case a.Code != 0 && a.Reason != "":
		l.log.Error(a.Reason, "restarts", l.m.restarts)
	default:
		l.log.Info(a.Reason)
	}
}

func (l *Loop) spawn(a Spawn) {
	pid, pidfd, err := spawn(l.opt.Path, l.opt.Argv, l.opt.Env, l.opt.Files)
	if err != nil {
		l.log.Error("cannot start program", "error", err)
		l.step(SpawnFailed{Err: err})
		return
	}
	if err := epollAdd(l.epfd, pidfd); err != nil {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
		unix.Close(pidfd)
		l.fatal(err)
		return
	}
	l.pid, l.pidfd, l.pgid = pid, pidfd, pid
	if a.Restart == 0 {
		l.log.Info("started", "pid", pid)
	} else {
		l.log.Info("restarted", "restart", restartOf(a), "pid", pid)
	}
	l.step(Started{PID: pid})
}

func restartOf(a Spawn) string {
	if a.Limit == 0 {
		return strconv.Itoa(a.Restart)
	}
	return strconv.Itoa(a.Restart) + "/" + strconv.Itoa(a.Limit)
}

func (l *Loop) childExited() {
	st, err := waitPidfd(l.pidfd)
	if err != nil {
		l.fatal(err)
		return
	}
	uptime := time.Since(l.m.started).Round(time.Millisecond)
	pid := l.pid
	unix.Close(l.pidfd) // closing also removes it from the epoll set
	l.pid, l.pidfd = 0, -1
	if st.Signal != 0 {
		l.log.Info("killed by signal", "pid", pid, "signal", signalName(st.Signal), "uptime", uptime)
	} else {
		l.log.Info("exited", "pid", pid, "status", st.Code, "uptime", uptime)
	}
	leftovers := l.watchLeftovers()
	if !leftovers {
		l.pgid = 0
	}
	l.step(Exited{Status: st, Leftovers: leftovers})
}

// watchLeftovers opens a pidfd for each of our children that is not yet
// watched: what the program left behind, reparented to us as subreaper.
func (l *Loop) watchLeftovers() bool {
	for _, pid := range children(os.Getpid(), nil) {
		if l.watched(pid) {
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			unix.Close(fd)
			continue
		}
		l.tree[fd] = pid
		l.log.Debug("waiting for leftover process", "pid", pid)
	}
	return len(l.tree) > 0
}

func (l *Loop) watched(pid int) bool {
	if pid == l.pid {
		return true
	}
	for _, p := range l.tree {
		if p == pid {
			return true
		}
	}
	return false
}

func (l *Loop) leftoverExited(fd, pid int) {
	st, err := waitPidfd(fd)
	unix.Close(fd)
	delete(l.tree, fd)
	if err == nil {
		l.log.Debug("leftover process ended", "pid", pid, "status", st.String())
	}
	if !l.watchLeftovers() {
		l.pgid = 0
		l.step(TreeEmpty{})
	}
}

// reapOrphans collects zombies reparented to us while the program runs (a
// grandchild whose parent died). The program itself and leftovers are reaped
// through their pidfds, never here.
func (l *Loop) reapOrphans() {
	for _, pid := range children(os.Getpid(), nil) {
		if l.watched(pid) {
			continue
		}
		if st, ok := reapIfDead(pid); ok {
			l.log.Debug("reaped orphan", "pid", pid, "status", st.String())
		}
	}
}

// signalTree sends sig to the process group of the run, then to every
// descendant outside it (daemons that called setsid), so nothing the program
// started outlives a stop. SIGTERM is followed by SIGCONT so that a stopped
// (SIGSTOP) process can act on it.
func (l *Loop) signalTree(sig syscall.Signal) {
	send := func(target int) {
		err := ignoreESRCH(unix.Kill(target, sig))
		if err == nil && sig == unix.SIGTERM {
			unix.Kill(target, unix.SIGCONT)
		}
		if err != nil {
			l.log.Warn("kill", "pid", target, "signal", signalName(sig), "error", err)
		}
	}
	if l.pgid > 0 {
		send(-l.pgid)
	}
	self := os.Getpid()
	for _, pid := range descendants(self, nil) {
		if pgid, err := unix.Getpgid(pid); err == nil && (pgid != l.pgid || l.pgid == 0) {
			send(pid)
		}
	}
	switch {
	case sig == unix.SIGKILL:
		l.log.Warn("killing", "signal", "SIGKILL")
	case l.m.State() == Cleanup:
		l.log.Info("terminating processes left behind", "signal", signalName(sig), "timeout", l.opt.Machine.StopTimeout)
	default:
		l.log.Info("stopping", "signal", signalName(sig), "timeout", l.opt.Machine.StopTimeout)
	}
}

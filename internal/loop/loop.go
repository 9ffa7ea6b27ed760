package loop

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/keeper"
	"github.com/respawner/respawner/internal/listen"
	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/internal/runenv"
	"golang.org/x/sys/unix"
)

// Options describe one supervised program.
type Options struct {
	Name    string   // instance name, used in logs and status
	Path    string   // resolved path of the program
	Argv    []string // argv, argv[0] included
	Env     []string // environment of the program (see EnvFiles)
	Stdin   uintptr  // the program's stdin (fd 0 of respawner, or /dev/null)
	Machine machine.Config
	Log     hclog.Logger
	// Reopen is called on SIGHUP (logrotate); nil when there is nothing to reopen.
	Reopen func() error
	// LogTarget is where the log goes, for status: a file's path,
	// "syslog" or "stderr".
	LogTarget string
	// Output, when set, receives the program's stdout and stderr line by line
	// (daemon mode); otherwise the program writes to respawner's own 1 and 2.
	Output hclog.Logger
	// Forward, when set (-D with --capture-output), receives the program's
	// stdout and stderr lines, each with its newline, for respawner's own
	// stdout and stderr. Each is a queue whose Write never blocks
	// (logsink.Sink). Output and Forward are not both set.
	Forward [2]io.Writer
	// Backlog, when set, is the queue in front of the log: a line of the
	// program's output for which it has no room is counted there as dropped
	// instead of being formatted.
	Backlog Backlog
	// Signals, when set, is where the caller's signal.Notify for
	// HandledSignals delivers; it was installed before anything that must
	// not be left half done (the instance lock). Nil: Run installs its own.
	Signals <-chan os.Signal
	// Pidfile is the path the daemonizing program writes its pid to (-p).
	Pidfile string
	// ControlFD is the listening control socket (0 or -1: none).
	ControlFD int
	// StatePath is where the program's identity is kept for adoption ("" none).
	StatePath string
	// Adopt, when set, names a live program left by a killed respawner.
	Adopt *Adoption
	// Report is called once: with nil when the first run counts as started,
	// or with the reason when supervision ends before that.
	Report func(error)
	// Hooks, when set, runs hook plugins; nil means no plugin process,
	// goroutine or timer exists at all.
	Hooks *HookOptions
	// Keeper, when set (daemon mode), is the process that forked respawner
	// and holds the program's output pipes: the loop reads those pipes, and
	// the keeper's other children (what an earlier, killed respawner left)
	// belong to the instance like respawner's own.
	Keeper *keeper.Link
	// Env above is the program's environment before what each start adds:
	// respawner's own less its variables, or PATH alone (--clear-env),
	// and HOME, USER and LOGNAME with --user. EnvFiles (--env-file) are
	// read again at every start and go over Env, each over the one
	// before; SetEnv (--env KEY=VALUE) goes over them all. A file that
	// cannot be read fails that start, as a failed exec does. Variables
	// the loop itself sets for a feature go over all of these.
	EnvFiles []runenv.EnvFile
	SetEnv   []string
	// Attrs are set up in the program's process before the program is
	// exec'd: user and groups, working directory (by Go's own fork/exec,
	// at no cost), resource limits and umask. With limits, a umask, or
	// PIDEnv, every start goes through the exec shim (internal/runenv:
	// respawner re-executed, which delays the program's exec by about
	// 1.7 ms, docs/design.md); with none of it the program is forked and
	// exec'd exactly as before.
	Attrs runenv.Attrs
	// PIDEnv names variables that must hold the program's own pid, such
	// as WATCHDOG_PID (the sd_notify watchdog) and LISTEN_PID (socket
	// activation). The pid exists only after the fork, so the exec shim
	// sets each, over any variable of that name, just before it execs the
	// program. A feature that needs one appends its name here before the
	// first start (in New or setup); that is all it takes, and every start
	// then pays the shim's ~1.7 ms. (sd_watchdog_enabled(3) takes an unset
	// WATCHDOG_PID as "this process"; sd_listen_fds(3) requires LISTEN_PID.)
	PIDEnv []string
	// Listen are the --listen sockets (internal/listen), each named.
	Listen []listen.Spec
}

// Adoption identifies a running program to take over.
type Adoption struct {
	PID, PGID int
	Started   time.Time
}

// Backlog is the log's queue, as the loop sees it (logsink.Sink).
type Backlog interface {
	Room(n int) bool
	Drop()
	// Hold and Kick: the loop's lines are written when it is about to
	// wait for events, not in the middle of a restart.
	Hold()
	Kick()
}

// Loop is the supervisor: one goroutine, locked to its thread, blocked in
// epoll_wait over a pidfd per watched process, a timerfd per Machine timer,
// an eventfd through which signals and stop requests arrive, the control
// socket, and (daemon mode) the program's output pipes. It turns ready
// descriptors into Events for the Machine and the Machine's Actions into
// syscalls; it holds no policy of its own.
type Loop struct {
	opt Options
	log hclog.Logger
	m   *machine.Machine

	epfd    int
	evfd    int
	timers  [machine.NumTimers]int
	pending atomic.Uint64 // signal numbers waiting for the loop

	pid        int         // the watched process, 0 when none
	pidfd      int         // pidfd of pid, -1 when none
	pgid       int         // process group of the current run, 0 once it is gone
	tree       map[int]int // pidfd -> pid of other processes of the run being waited for
	collecting bool        // CollectTree: machine.TreeEmpty is due when all are gone

	queue    []machine.Event // events raised while acting, stepped in order
	stepping bool

	ctl      ctlSocket
	pf       pidfileWatch
	out      [2]output // stdout, stderr of the program (daemon mode, --capture-output)
	recent   recent    // the program's last lines, for the exited and gave-up events
	lineBuf  []byte    // a line and its newline, for Forward
	files    []uintptr // fds 0, 1, 2 of the program
	hostname string    // for events

	host      hookHost
	hostTimer int // timerfd that brings a dead hook host back, -1 without hooks

	shim      *pendingShim // a start through the exec shim not finished yet
	shimTimer int          // timerfd bounding the shim's report, -1 until first needed
	probers   []*prober

	stateFD  int // NAME.state, kept open; -1 until first written
	stateBuf [64]byte

	nfy       *notifySocket // --ready notify, --watchdog; nil otherwise
	listeners []int         // the --listen sockets, in order; each run's 3, 4, ...
	// mainFrom is the sender of a MAINPID= being acted on: the Follow
	// it brings is the program's choice, not a daemon guessed.
	mainFrom int

	keeperKin bool // the keeper held processes of an earlier run at the start (keeperKids)

	reported bool
	exit     *machine.Exit
}

// New returns a loop for opt; Run starts it.
func New(opt Options) *Loop {
	if opt.Log == nil {
		opt.Log = hclog.NewNullLogger()
	}
	l := &Loop{
		opt: opt, log: opt.Log,
		epfd: -1, evfd: -1, pidfd: -1, hostTimer: -1, shimTimer: -1, stateFD: -1,
		host: hookHost{pidfd: -1, sock: -1},
		tree: map[int]int{},
		ctl:  ctlSocket{listen: opt.ControlFD, conns: map[int]*conn{}, timer: -1},
		pf:   pidfileWatch{fd: -1},
		out:  [2]output{{r: -1, w: -1}, {r: -1, w: -1}},
	}
	if opt.ControlFD <= 0 {
		l.ctl.listen = -1
	}
	for i := range l.timers {
		l.timers[i] = -1
	}
	return l
}

// handledSignals reach the loop; everything else keeps its default.
// SIGPIPE is taken so that a closed stderr yields EPIPE instead of killing us
// (and, being handled rather than ignored, is SIG_DFL again in the program).
var handledSignals = []os.Signal{
	unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT,
	unix.SIGUSR1, unix.SIGUSR2, unix.SIGCHLD, unix.SIGPIPE,
}

// CatchSignals takes the signals the loop handles, for the rest of the
// process's life: they are never given back to their default action, so a
// SIGTERM that comes while respawner cleans up after the loop (a slow plugin
// shutdown, the lock's release) cannot kill it half way and leave stale
// files. Pass the channel as Options.Signals.
func CatchSignals() <-chan os.Signal {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, handledSignals...)
	return sigs
}

// Run supervises until the Machine exits, and returns the process exit code.
func (l *Loop) Run() (int, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer l.closeAll()
	if err := l.setupCore(); err != nil {
		l.report(err)
		return 1, err
	}
	// Signals are taken before anything slow (plugins) starts: a SIGTERM
	// during start-up is a stop request, never a silent death. They stay
	// taken after Run (see CatchSignals); only their forwarding ends.
	sigs := l.opt.Signals
	if sigs == nil {
		sigs = CatchSignals()
	}
	done := make(chan struct{})
	defer close(done)
	go l.forwardSignals(sigs, done)
	if err := l.setup(); err != nil {
		if a := l.opt.Adopt; a != nil {
			err = fmt.Errorf("%w; the program (pid %d) still runs: fix this and start again to adopt it", err, a.PID)
		}
		l.report(err)
		return 1, err
	}
	// The machine is made from a complete configuration: whether hooks are
	// asked is known once the host has said what its plugins can do.
	l.m = machine.NewMachine(l.opt.Machine)

	l.keeperKin = l.opt.Keeper != nil
	earlier := l.keeperKids()
	l.keeperKin = len(earlier) > 0 || l.opt.Adopt != nil && l.opt.Keeper != nil
	switch a := l.opt.Adopt; {
	case a != nil:
		l.pgid = a.PGID
		l.log.Info("adopting running program", "pid", a.PID)
		l.act(l.m.Adopt(time.Now(), a.PID, a.Started))
	case len(earlier) > 0:
		// A respawner killed while it cleaned up after a run left processes
		// under the keeper (a worker that ignores SIGTERM): they go first,
		// so that two generations never run side by side.
		l.log.Warn("processes of an earlier run are still alive; terminating them before the start", "pids", earlier)
		l.act(l.m.Clear(time.Now()))
	default:
		l.act(l.m.Start(time.Now()))
	}
	if l.probers != nil {
		l.syncProbes()
	}
	if l.opt.Backlog != nil {
		l.opt.Backlog.Hold()
	}
	var events [16]unix.EpollEvent
	for l.exit == nil {
		if l.opt.Backlog != nil {
			l.opt.Backlog.Kick() // what this turn logged goes out now
		}
		n, err := unix.EpollWait(l.epfd, events[:], -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 1, fmt.Errorf("epoll_wait: %w", err)
		}
		// Supervision first: a pidfd, a timer or a request of this batch is
		// handled before the program's output, so a program that floods its
		// pipe delays neither a restart nor a stop by the chunk of output
		// read in the same turn.
		for pass := 0; pass < 2; pass++ {
			for i := 0; i < n && l.exit == nil; i++ {
				fd := int(events[i].Fd)
				if l.isOutput(fd) == (pass == 1) {
					l.dispatch(fd)
				}
			}
		}
	}
	if l.opt.StatePath != "" {
		os.Remove(l.opt.StatePath)
	}
	return l.exit.Code, nil
}

// setupCore prepares the thread and the descriptors signals need.
func (l *Loop) setupCore() error {
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
	return epollAdd(l.epfd, l.evfd)
}

// setup prepares the rest: control socket, hook host, output pipes.
func (l *Loop) setup() error {
	var err error
	// The sockets first: an address in use fails the start before any
	// plugin is launched.
	if err := l.openListeners(); err != nil {
		return err
	}
	if l.ctl.listen >= 0 {
		if err := epollAdd(l.epfd, l.ctl.listen); err != nil {
			return err
		}
	}
	if l.opt.Hooks != nil {
		if l.hostTimer, err = newTimerfd(); err != nil {
			return err
		}
		if err := epollAdd(l.epfd, l.hostTimer); err != nil {
			return err
		}
		l.hostname, _ = os.Hostname() // events say where they happened; "" if the kernel will not say
		if err := l.startHost(); err != nil {
			return err
		}
		var deadline time.Duration
		for _, p := range l.opt.Hooks.Plugins {
			deadline = max(deadline, p.Timeout)
		}
		for _, in := range l.host.infos {
			l.opt.Machine.Ask = l.opt.Machine.Ask || in.Veto
		}
		// The host enforces each plugin's deadline; ours only guards against
		// a host that answers nothing at all.
		l.opt.Machine.AskDeadline = deadline + 500*time.Millisecond
		l.initProbers()
	}
	if l.notifying() {
		if err := l.openNotify(); err != nil {
			return err
		}
	}
	l.files = []uintptr{l.opt.Stdin, 1, 2}
	for _, fd := range l.listeners {
		l.files = append(l.files, uintptr(fd))
	}
	if l.capturing() {
		for i := range l.out {
			var err error
			if k := l.opt.Keeper; k != nil {
				err = l.out[i].adopt(l.epfd, k.Pipes[2*i], k.Pipes[2*i+1])
			} else {
				err = l.out[i].open(l.epfd)
			}
			if err != nil {
				return err
			}
			l.files[i+1] = uintptr(l.out[i].w)
		}
	}
	return nil
}

func (l *Loop) closeAll() {
	l.closeListeners()
	l.stopHost()
	l.closeProbers()
	l.closeShim()
	for _, fd := range append([]int{l.epfd, l.evfd, l.pidfd, l.pf.fd, l.hostTimer, l.shimTimer, l.stateFD}, l.timers[:]...) {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	for fd := range l.tree {
		unix.Close(fd)
	}
	for i := range l.out {
		l.out[i].close()
	}
	l.ctl.closeAll()
	l.nfy.close()
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

// isOutput reports whether fd is one of the program's output pipes.
func (l *Loop) isOutput(fd int) bool {
	return fd >= 0 && (fd == l.out[0].r || fd == l.out[1].r)
}

func (l *Loop) dispatch(fd int) {
	switch {
	case fd == l.evfd:
		readCounter(fd)
		l.signals(l.pending.Swap(0))
	case fd == l.pidfd:
		l.watchedExited()
	case l.isTimer(fd):
		if !readCounter(fd) {
			return // disarmed after it became ready
		}
		l.timerFired(fd)
	case l.nfy != nil && fd == l.nfy.fd:
		l.notifyReadable()
	case fd == l.host.sock && fd >= 0:
		l.hostReadable()
	case fd == l.host.pidfd && fd >= 0:
		l.hostExited()
	case fd == l.hostTimer && fd >= 0:
		if readCounter(fd) {
			l.restartHost()
		}
	case l.shim != nil && fd == l.shim.p.Report:
		l.shimReport()
	case l.shim != nil && fd == l.shim.p.PIDFD:
		l.shimGone()
	case fd == l.shimTimer && fd >= 0:
		if readCounter(fd) {
			l.shimTimedOut()
		}
	case fd == l.pf.fd:
		l.pf.drain()
		l.checkPidfile()
	case fd == l.ctl.listen:
		l.accept()
	case fd == l.ctl.timer && fd >= 0:
		if readCounter(fd) {
			l.ctlTimerFired()
		}
	case fd == l.out[0].r:
		l.forward(&l.out[0], false)
	case fd == l.out[1].r:
		l.forward(&l.out[1], true)
	default:
		if pid, ok := l.tree[fd]; ok {
			l.leftoverExited(fd, pid)
		} else if c, ok := l.ctl.conns[fd]; ok {
			l.serve(fd, c)
		} else {
			for _, p := range l.probers {
				if p.timer == fd && readCounter(fd) {
					l.probeTimer(p)
				}
			}
		}
	}
}

// isTimer reports whether fd is the timerfd of one of the Machine's timers.
func (l *Loop) isTimer(fd int) bool {
	for _, t := range l.timers {
		if fd >= 0 && fd == t {
			return true
		}
	}
	return false
}

func (l *Loop) timerFired(fd int) {
	for id := range l.timers {
		if l.timers[id] != fd {
			continue
		}
		if machine.TimerID(id) == machine.AskTimer && l.host.askID != 0 {
			l.log.Warn("hook host did not answer restart-pending in time; restarting")
			l.settled()
		}
		if machine.TimerID(id) == machine.StartTimer && l.m.Snapshot().Awaiting {
			// The machine only knows the pidfile is late; the loop knows why.
			l.step(machine.PidfileFailed{Err: l.pf.timeoutError(l.opt.Pidfile, l.opt.Machine.StartTimeout)})
			return
		}
		l.step(machine.TimerFired{ID: machine.TimerID(id)})
	}
}

func (l *Loop) signals(bits uint64) {
	for sig := syscall.Signal(1); sig < 64; sig++ {
		if bits&(1<<uint(sig)) == 0 {
			continue
		}
		switch sig {
		case unix.SIGTERM, unix.SIGINT:
			l.log.Info("signal received, stopping", "signal", signalName(sig))
			l.step(machine.StopRequested{})
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

// step feeds ev to the machine and carries out the actions. Events raised
// while acting are queued and stepped after, in order, so actions of one step
// are never interleaved with those of the next.
func (l *Loop) step(ev machine.Event) {
	l.queue = append(l.queue, ev)
	if l.stepping {
		return
	}
	l.stepping = true
	// The hooks' events of a step wait in the outbox until it is done: a
	// question the step asks goes out first, and no send wakes the host
	// while the step forks.
	held := l.host.holding
	l.host.holding = true
	for len(l.queue) > 0 && l.exit == nil {
		ev := l.queue[0]
		l.queue = l.queue[1:]
		l.act(l.m.Step(time.Now(), ev))
	}
	l.queue = l.queue[:0]
	l.stepping = false
	l.host.holding = held
	l.flushEvents()
	if l.probers != nil && l.exit == nil {
		l.syncProbes()
	}
}

func (l *Loop) act(acts []machine.Action) {
	for _, a := range acts {
		if l.exit != nil {
			return
		}
		switch a := a.(type) {
		case machine.Spawn:
			l.recent.reset() // a run's events carry its own lines
			l.spawn(a)
		case machine.ArmTimer:
			if a.ID == machine.RespawnTimer {
				if s := l.m.Snapshot(); s.State == machine.Held {
					l.log.Info("restart held by a hook", "reason", s.Reason, "ask_again_in", a.After)
				} else {
					l.log.Info("respawn scheduled", "delay", a.After)
				}
			}
			if err := l.armTimer(a.ID, a.After); err != nil {
				l.fatal(err)
			}
		case machine.DisarmTimer:
			if a.ID == machine.AskTimer && l.host.askID != 0 {
				// The question is abandoned (a stop while it was out): its
				// late answer will not match, and held events flow again.
				l.settled()
			}
			if l.timers[a.ID] < 0 {
				continue // never armed
			}
			if err := disarmTimerfd(l.timers[a.ID]); err != nil {
				l.fatal(err)
			}
		case machine.SignalTree:
			l.signalTree(a.Sig)
		case machine.CollectTree:
			l.collecting = true
			l.watchLeftovers()
			l.checkCollected()
		case machine.WatchPidfile:
			if err := l.pf.start(l.epfd, l.opt.Pidfile); err != nil {
				l.step(machine.PidfileFailed{Err: err})
			} else {
				l.checkPidfile()
			}
		case machine.Follow:
			l.follow(a.PID)
		case machine.Ready:
			l.report(nil)
		case machine.RestartDone:
			l.restartDone(a.Err)
		case machine.Ask:
			l.askHooks(a)
		case machine.Notify:
			l.notify(a.Event)
		case machine.Exit:
			l.finish(a)
		}
	}
}

// armTimer arms timer id, creating its timerfd on first use: a timer that is
// never needed (the hooks' deadline without plugins) never exists.
func (l *Loop) armTimer(id machine.TimerID, d time.Duration) error {
	if l.timers[id] < 0 {
		fd, err := newTimerfd()
		if err != nil {
			return err
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			unix.Close(fd)
			return err
		}
		l.timers[id] = fd
	}
	return armTimerfd(l.timers[id], d)
}

func (l *Loop) fatal(err error) {
	l.log.Error("fatal", "error", err)
	l.signalTree(unix.SIGKILL)
	l.finish(machine.Exit{Code: 1, Reason: err.Error()})
}

func (l *Loop) finish(a machine.Exit) {
	l.exit = &a // a restart waited for was answered before this (RestartDone; FuzzMachine holds it)
	l.pf.stop()
	if l.capturing() { // what the program said last belongs before our verdict
		l.drainOutput()
	}
	if a.Code != 0 {
		l.log.Error(a.Reason, "restarts", l.m.Snapshot().Restarts)
	} else {
		l.log.Info(a.Reason)
	}
	if !l.reported {
		reason := a.Reason
		if tail := l.out[1].tailText(); tail != "" {
			reason += "; its stderr ended with:\n" + tail
		}
		l.report(errors.New(reason))
	}
}

func (l *Loop) report(err error) {
	if l.reported {
		return
	}
	l.reported = true
	if l.opt.Report != nil {
		l.opt.Report(err)
	}
}

package machine

import (
	"fmt"
	"syscall"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// State is where supervision stands. Each constant's comment is its invariant.
type State uint8

const (
	// Idle: nothing started yet; no process, no timer.
	Idle State = iota
	// Starting: a Spawn action is outstanding; the next event is Started or SpawnFailed.
	Starting
	// Running: the program is alive and its pidfd is watched.
	Running
	// Cleanup: the program has exited but processes it started are still alive;
	// they have been sent SIGTERM and the kill timer is armed.
	Cleanup
	// Backoff: the program is down and the respawn timer is armed.
	Backoff
	// Stopping: a stop was requested; SIGTERM went to the whole tree and the kill
	// timer is armed. It ends when the tree is empty.
	Stopping
	// Stopped: final; supervision ended after a clean exit or a requested stop.
	Stopped
	// Failed: final; supervision ended after giving up or a fatal error.
	Failed
	// Held: the program is down and a hook denied its restart; the respawn
	// timer is armed to ask again.
	Held
)

var stateNames = [...]string{"idle", "starting", "running", "cleanup", "backoff", "stopping", "stopped", "failed", "held"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// Final reports whether supervision has ended in s.
func (s State) Final() bool { return s == Stopped || s == Failed }

// Policy says which exits are followed by a restart.
type Policy uint8

const (
	// OnFailure restarts after an exit that is not clean.
	OnFailure Policy = iota
	// Always restarts after every exit.
	Always
	// Never only watches: the first exit ends supervision.
	Never
)

var policyNames = [...]string{"on-failure", "always", "never"}

func (p Policy) String() string { return policyNames[p] }

// ParsePolicy turns "on-failure", "always" or "never" into a Policy.
func ParsePolicy(s string) (Policy, error) {
	for i, n := range policyNames {
		if s == n {
			return Policy(i), nil
		}
	}
	return 0, fmt.Errorf("unknown restart policy %q (want on-failure, always or never)", s)
}

// ExitStatus is how a process ended: an exit code, or the signal that killed it.
type ExitStatus struct {
	Code   int            // exit code when Signal is 0
	Signal syscall.Signal // killing signal, 0 for a normal exit
	// Unknown: the process was not our child (adopted), so its status could
	// not be collected. It counts as a failure.
	Unknown bool
}

func (e ExitStatus) String() string {
	if e.Unknown {
		return "exit status unknown"
	}
	if e.Signal != 0 {
		return "killed by signal " + SignalName(e.Signal)
	}
	return fmt.Sprintf("exit status %d", e.Code)
}

// CodeSet is a set of exit codes 0-255.
type CodeSet [4]uint64

// Add puts code into the set; codes outside 0-255 are ignored.
func (c *CodeSet) Add(code int) {
	if code >= 0 && code < 256 {
		c[code/64] |= 1 << (code % 64)
	}
}

// Has reports whether code is in the set.
func (c *CodeSet) Has(code int) bool {
	return code >= 0 && code < 256 && c[code/64]&(1<<(code%64)) != 0
}

// Config is the supervision policy. The zero value restarts immediately, forever.
type Config struct {
	RespawnTimeout time.Duration // delay before each restart (-t)
	MaxDelay       time.Duration // backoff cap; <= RespawnTimeout means a fixed delay
	Reset          time.Duration // uptime after which a run is stable (backoff and window start over)
	Window         time.Duration // when > 0, Limit counts restarts within this sliding window
	Limit          int           // give up after this many restarts (0: never)
	Policy         Policy
	Success        CodeSet       // clean exit codes besides those of cleanSignals; 0 must be added explicitly
	StopTimeout    time.Duration // StopSignal, then SIGKILL after this long
	// StopSignal is what stop and restart send the program's tree first
	// (--stop-signal), and what ends the leftovers of a run; 0 means
	// SIGTERM.
	StopSignal syscall.Signal
	// Pidfile: the program daemonizes and names its daemon in a pidfile; each
	// run waits up to StartTimeout for it, then follows the pid it names.
	Pidfile      bool
	StartTimeout time.Duration
	// StartCheck: the first run must survive this long to count as started
	// (daemonizing start reports it); 0 means started as soon as it runs.
	StartCheck time.Duration
	// RestartCheck: the new run of an operator's restart must survive this
	// long before the restart is answered as done (unless a pidfile or
	// READY=1 says it started); 0 answers at once.
	RestartCheck time.Duration
	// Ask: hook plugins answer restart-pending before every restart; an
	// answer that has not come within AskDeadline counts as allow.
	Ask         bool
	AskDeadline time.Duration
	// Jitter returns a number in [0, 1); it shortens backoff delays by up to 10 %
	// so that many instances do not restart in lockstep. Nil means no jitter.
	Jitter func() float64
	// Probes are the hook plugins' health probes, whose results (Probed)
	// the machine counts.
	Probes []Probe
	// Notify: the program says when it is ready, with sd_notify's READY=1
	// (--ready notify). Each run stays Starting until then, for at most
	// StartTimeout; the start check does not apply. Ignored with Pidfile
	// (the CLI refuses both).
	Notify bool
	// Watchdog: once its clock has started (at READY=1 with Notify, else at
	// the start of the run) the program must send WATCHDOG=1 at least this
	// often, or it is killed (SIGABRT, SIGKILL after StopTimeout) and
	// restarted as failed. 0: no watchdog.
	Watchdog time.Duration
}

// Clean reports whether st counts as a clean exit: a code of the success set, or
// death by SIGTERM, SIGINT, SIGHUP or SIGPIPE (as systemd counts them).
func (c *Config) Clean(st ExitStatus) bool {
	if st.Unknown {
		return false
	}
	switch st.Signal {
	case 0:
		return c.Success.Has(st.Code)
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGPIPE:
		return true
	}
	return false
}

// TimerID names one of the machine's timers; each is one timerfd in the loop.
type TimerID uint8

const (
	// RespawnTimer delays a restart.
	RespawnTimer TimerID = iota
	// KillTimer escalates SIGTERM to SIGKILL.
	KillTimer
	// StartTimer bounds the wait for a pidfile or for READY=1, or times the
	// start check.
	StartTimer
	// AskTimer bounds the wait for the hooks' answer to restart-pending.
	AskTimer
	// WatchdogTimer: the program's WATCHDOG=1 is due (--watchdog).
	WatchdogTimer
	// NumTimers is how many timers there are.
	NumTimers
)

// Event is a fact the loop observed.
type Event interface{ event() }

// Started: the Spawn succeeded and the program runs as PID.
type Started struct{ PID int }

// SpawnFailed: the program could not be executed.
type SpawnFailed struct{ Err error }

// Exited: the watched process PID ended and was reaped. Leftovers are the
// pids of processes of its tree still alive (reparented to us); the loop
// watches them.
type Exited struct {
	PID       int
	Status    ExitStatus
	Leftovers []int
}

// TreeEmpty: after CollectTree, the last process of the run's tree is gone.
type TreeEmpty struct{}

// TimerFired: the timer ID expired.
type TimerFired struct{ ID TimerID }

// StopRequested: an operator asked to stop (SIGTERM/SIGINT to respawner, or `stop`).
type StopRequested struct{}

// RestartRequested: an operator asked to restart (`respawner restart`): stop
// the run as a stop would, start a new one at once, with backoff and the
// respawn limit started over. It is not put to the hooks. RestartDone
// answers it.
type RestartRequested struct{}

func (RestartRequested) event() {}

// Unhealthy: health probes failed past their threshold; the program is
// restarted as if it had failed.
type Unhealthy struct{ Reason string }

func (Unhealthy) event() {}

// PidfileRead: the pidfile names PID, a live descendant of respawner.
type PidfileRead struct{ PID int }

// PidfileFailed: the pidfile cannot be trusted or never came.
type PidfileFailed struct{ Err error }

// Verdict: the hooks answered restart-pending (the strictest answer of all).
type Verdict hookspec.Verdict

func (Verdict) event() {}

func (Started) event()       {}
func (SpawnFailed) event()   {}
func (Exited) event()        {}
func (TreeEmpty) event()     {}
func (TimerFired) event()    {}
func (StopRequested) event() {}
func (PidfileRead) event()   {}
func (PidfileFailed) event() {}

// Action is something the loop must do.
type Action interface{ action() }

// Spawn starts the program. Restart is 0 for the first start, else the
// restart number k. Requested: the operator's restart (Restart is 0, since
// the count starts over).
type Spawn struct {
	Restart, Limit int
	Requested      bool
}

// ArmTimer sets timer ID to fire once after After.
type ArmTimer struct {
	ID    TimerID
	After time.Duration
}

// DisarmTimer cancels timer ID.
type DisarmTimer struct{ ID TimerID }

// SignalTree sends Sig to the program's process group and to every process it
// started (descendants that called setsid included).
type SignalTree struct{ Sig syscall.Signal }

// CollectTree waits for the watched process and everything left of its tree;
// the loop answers with TreeEmpty once all are gone (at once if none are).
type CollectTree struct{}

// WatchPidfile starts reading the pidfile, answered by PidfileRead or PidfileFailed.
type WatchPidfile struct{}

// Follow makes PID the watched process: a daemon that left its launcher.
type Follow struct{ PID int }

// Ready reports the first run as started (daemonizing `start` returns 0).
type Ready struct{}

// Ask puts restart-pending (Event) to the hooks; a Verdict answers it.
type Ask struct{ Event hookspec.Event }

// Notify tells the hooks of a lifecycle event. The machine says every one
// itself, in order; the loop adds what only it knows (instance, program)
// and sends it.
type Notify struct{ Event hookspec.Event }

func (Notify) action() {}

func (Ask) action() {}

// RestartDone answers RestartRequested: the new run is up (Err empty), or
// why it is not. A request made while a restart is under way shares its
// answer.
type RestartDone struct{ Err string }

func (RestartDone) action() {}

// Exit ends supervision with the process exit Code; Reason says why.
type Exit struct {
	Code   int
	Reason string
}

func (Spawn) action()        {}
func (ArmTimer) action()     {}
func (DisarmTimer) action()  {}
func (SignalTree) action()   {}
func (CollectTree) action()  {}
func (WatchPidfile) action() {}
func (Follow) action()       {}
func (Ready) action()        {}
func (Exit) action()         {}

// outcome is what follows once a run and its leftovers are gone.
type outcome struct {
	exit   bool
	code   int
	reason string
	delay  time.Duration
	first  bool // the first start, after clearing what an earlier respawner left
}

// Machine is the supervision policy as a pure state machine: Step takes an event
// and the current time and returns the actions to perform. It does no I/O, reads
// no clock and never blocks, so every path is testable without processes.
type Machine struct {
	cfg Config

	state    State
	since    time.Time   // when state last changed
	run      run         // the current run
	start    start       // Starting and the first run's start check
	ask      ask         // restart-pending and what the hooks answered
	restarts int         // restarts so far (total)
	streak   int         // consecutive restarts without a stable run (backoff exponent)
	window   []time.Time // times of restarts still counted by a windowed limit
	lastExit *ExitStatus // how the last run ended, nil before the first exit
	pending  outcome     // what Cleanup leads to
	delay    time.Duration
	ready    bool         // the first run has been reported started
	probes   []probeState // each of Config.Probes in the current run
	wd       watchdog     // the current run's watchdog (Config.Watchdog)
	rs       restartReq   // an operator's restart under way
	status   string       // the current run's STATUS= text
	timers   [NumTimers]timerState
}

// timerState is what the machine knows of one of its timers: whether it is
// armed and when it fires (EXTEND_TIMEOUT_USEC moves a deadline only later).
type timerState struct {
	armed    bool
	deadline time.Time
}

// run is the watched process of the current run.
type run struct {
	pid       int       // the launcher, or the daemon it left; 0 when none
	started   time.Time // when the run started
	following bool      // pid is a daemon followed after its launcher exited (or adopted)
	handedAt  time.Time // when pid was followed as the one process its launcher left (zero otherwise)
}

// daemonHandover is how soon after it was followed a process that exits
// cleanly leaving exactly one process is taken for a step of the same
// daemonizing, and that one followed in turn. lighttpd's launcher exits
// once its daemon is ready, which its middle process (setsid, fork, exit)
// has usually left already; on a loaded machine it may still be there,
// alone with the daemon as its child, and be followed instead.
const daemonHandover = 5 * time.Second

// handover reports whether the watched process, ending cleanly with one
// process left, has handed over to it: a launcher that daemonized, or a
// step of its daemonizing that was followed a moment ago.
func (m *Machine) handover(now time.Time, st ExitStatus, leftovers []int) bool {
	if !m.cfg.Clean(st) || len(leftovers) != 1 {
		return false
	}
	return !m.run.following || !m.run.handedAt.IsZero() && now.Sub(m.run.handedAt) < daemonHandover
}

// followHandover makes the one process a launcher left the watched one.
func (m *Machine) followHandover(now time.Time, pid int) []Action {
	m.run.pid, m.run.following, m.run.handedAt = pid, true, now
	return []Action{Follow{PID: pid}}
}

// start is what a run waits for before it counts as started.
type start struct {
	awaiting bool // Starting: the pidfile has not named the daemon yet
	checking bool // Running: the first run's start check is timing
	stopping bool // Starting: a stop came before Started; stop once it comes
	unready  bool // Starting: the run is live and has not said READY=1 (Notify)
}

// restartReq is an operator's restart under way, from RestartRequested to
// RestartDone.
type restartReq struct {
	pending    bool // RestartDone is owed
	stopping   bool // Stopping: the old run is being stopped; the new one starts once its tree is gone
	confirming bool // the new run is up; StartTimer times its start check
}

// ask is restart-pending: the question, and the answer while the respawn
// delay still runs.
type ask struct {
	out     bool     // the question is out, AskTimer armed
	due     bool     // the respawn delay has passed: act on the answer when it comes
	verdict *Verdict // the answer to act on when the delay passes
	held    string   // why a hook holds the restart (Held)
	holding bool     // a hook denied the restart and it has not gone ahead: held was told, released is due
}

// note is a Notify of kind at now; every event carries the respawn limit.
func (m *Machine) note(now time.Time, kind hookspec.Kind, ev hookspec.Event) Notify {
	ev.Kind, ev.Time, ev.Limit = kind, now, m.cfg.Limit
	return Notify{Event: ev}
}

// withExit fills in how st ended.
func withExit(ev hookspec.Event, st *ExitStatus) hookspec.Event {
	switch {
	case st == nil:
	case st.Unknown:
		ev.Reason = "exit status unknown (adopted process)"
	case st.Signal != 0:
		ev.Signal = SignalName(st.Signal)
	default:
		ev.ExitCode = st.Code
	}
	return ev
}

// pendingEvent is restart-pending for the next restart.
func (m *Machine) pendingEvent(now time.Time) hookspec.Event {
	ev := withExit(hookspec.Event{Attempt: m.restarts + 1, Limit: m.cfg.Limit}, m.lastExit)
	ev.Kind, ev.Time = hookspec.RestartPending, now
	return ev
}

// spawn is the Spawn of restart k (0: the first start), announced.
func (m *Machine) spawn(now time.Time, k int) []Action {
	if k == 0 {
		return []Action{m.note(now, hookspec.Starting, hookspec.Event{}), Spawn{Restart: 0, Limit: m.cfg.Limit}}
	}
	return []Action{m.note(now, hookspec.Restarting, hookspec.Event{Attempt: k, Limit: m.cfg.Limit}), Spawn{Restart: k, Limit: m.cfg.Limit}}
}

// NewMachine returns a machine in Idle. Call Start (or Adopt) to begin.
func NewMachine(cfg Config) *Machine {
	if cfg.Pidfile {
		cfg.Notify = false // one way of saying started; the CLI refuses both
	}
	m := &Machine{cfg: cfg}
	m.resetProbes()
	return m
}

// Snapshot is the machine's externally visible state.
type Snapshot struct {
	State     State
	PID       int
	Restarts  int
	LastExit  *ExitStatus
	Since     time.Time     // when the current state began
	Started   time.Time     // when the current run started
	Delay     time.Duration // the delay of the current Backoff
	Following bool          // PID is a daemon followed after its launcher exited
	Awaiting  bool          // waiting for the pidfile
	Ready     bool          // the first run has been reported started
	Reason    string        // why supervision ended (final), why it is held (Held), or why the run failed (Cleanup, Backoff)
	Health    []ProbeHealth // each probe's standing in the current run
	Unready   bool          // Starting: the run is live and has not said READY=1
	Status    string        // the current run's STATUS= text
	Watchdog  time.Duration // the current run's watchdog period, when its clock runs
}

// Snapshot reports the current state for status output and logging.
func (m *Machine) Snapshot() Snapshot {
	return Snapshot{State: m.state, PID: m.run.pid, Restarts: m.restarts, LastExit: m.lastExit,
		Since: m.since, Started: m.run.started, Delay: m.delay, Following: m.run.following,
		Awaiting: m.start.awaiting, Ready: m.ready, Reason: m.reason(), Health: m.health(),
		Unready: m.start.unready, Status: m.status, Watchdog: m.wd.running()}
}

func (m *Machine) reason() string {
	if m.state == Held {
		return m.ask.held
	}
	return m.pending.reason
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Start begins supervision: the first Spawn.
func (m *Machine) Start(now time.Time) []Action {
	if m.state != Idle {
		return nil
	}
	m.set(Starting, now)
	return m.track(now, m.spawn(now, 0))
}

// Clear begins supervision by terminating processes that an earlier
// respawner of this instance left (it was killed while it cleaned up after a
// run): SIGTERM, SIGKILL after the stop timeout, and the first start once
// they are gone. A stop meanwhile ends supervision instead.
func (m *Machine) Clear(now time.Time) []Action {
	if m.state != Idle {
		return nil
	}
	m.pending = outcome{first: true, reason: "processes of an earlier run"}
	m.set(Cleanup, now)
	return m.track(now, []Action{SignalTree{Sig: m.stopSignal()}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}, CollectTree{}})
}

// Adopt begins supervision of a program that is already running as pid, left
// by a respawner that was killed. It counts as started.
func (m *Machine) Adopt(now time.Time, pid int, started time.Time) []Action {
	if m.state != Idle {
		return nil
	}
	m.run.pid, m.run.started, m.run.following, m.ready = pid, started, true, true
	m.resetProbes()
	m.set(Running, now)
	// It was ready when its respawner was killed (or is taken to be): its
	// watchdog clock starts over now.
	m.wd = watchdog{period: m.cfg.Watchdog}
	acts := append([]Action{Follow{PID: pid}, Ready{}}, m.startWatchdog(now)...)
	return m.track(now, acts)
}

func (m *Machine) set(s State, now time.Time) {
	m.state = s
	m.since = now
}

// Step feeds one event into the machine and returns what to do about it.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	if tf, ok := ev.(TimerFired); ok && tf.ID < NumTimers {
		m.timers[tf.ID].armed = false
	}
	acts := m.step(now, ev)
	if m.rs.pending && !m.rs.stopping && !m.rs.confirming && m.state == Running {
		acts = append(acts, m.restartUp()...)
	}
	return m.track(now, acts)
}

// track keeps each timer's state and deadline as the actions leave it.
func (m *Machine) track(now time.Time, acts []Action) []Action {
	for _, a := range acts {
		switch a := a.(type) {
		case ArmTimer:
			m.timers[a.ID] = timerState{armed: true, deadline: now.Add(a.After)}
		case DisarmTimer:
			m.timers[a.ID].armed = false
		}
	}
	return acts
}

func (m *Machine) step(now time.Time, ev Event) []Action {
	switch ev := ev.(type) {
	case Started:
		if m.state != Starting || m.run.pid != 0 || m.start.awaiting {
			return nil
		}
		return m.runStarted(now, ev.PID)
	case SpawnFailed:
		if m.state != Starting || m.run.pid != 0 || m.start.awaiting {
			return nil
		}
		switch {
		case !m.ready: // the program cannot be run at all: a fatal error
			return m.finish(now, outcome{exit: true, code: 1, reason: ev.Err.Error()}, false)
		case m.start.stopping:
			return m.finish(now, outcome{exit: true, reason: "stopped"}, false)
		}
		// A restart that cannot exec (binary replaced mid-deploy) counts as a
		// failed run, so backoff and the limit apply; and it waits at least
		// minSpawnRetry, since with -t 0 it would otherwise never leave the
		// loop's step (spawn, fail, spawn...) to read a stop request.
		m.run.started = now
		m.lastExit = &ExitStatus{Code: 127}
		o := m.decide(now, false, "cannot start: "+ev.Err.Error())
		if !o.exit {
			o.delay = max(o.delay, minSpawnRetry)
		}
		return m.finish(now, o, false)
	case Exited:
		return m.exited(now, ev)
	case TreeEmpty:
		switch m.state {
		case Cleanup:
			return m.finish(now, m.pending, true)
		case Stopping:
			if m.rs.stopping {
				m.rs.stopping = false
				return append([]Action{DisarmTimer{ID: KillTimer}}, m.restartNow(now)...)
			}
			return m.finish(now, outcome{exit: true, reason: "stopped"}, true)
		}
	case TimerFired:
		return m.timer(now, ev.ID)
	case PidfileRead:
		if !m.start.awaiting {
			return nil
		}
		m.start.awaiting, m.run.pid, m.run.following = false, ev.PID, true
		m.set(Running, now)
		acts := []Action{DisarmTimer{ID: StartTimer}, Follow{PID: ev.PID}}
		return append(acts, m.markReady()...)
	case PidfileFailed:
		if !m.start.awaiting {
			return nil
		}
		m.start.awaiting = false
		m.lastExit = nil
		return append([]Action{DisarmTimer{ID: StartTimer}}, m.failRun(now, ev.Err.Error(), m.stopSignal())...)
	case StopRequested:
		return m.stopRequested(now)
	case RestartRequested:
		return m.restartRequested(now)
	case Unhealthy:
		return m.unhealthy(now, ev.Reason)
	case Probed:
		return m.probed(now, ev)
	case Verdict:
		if !m.ask.out {
			return nil
		}
		return append([]Action{DisarmTimer{ID: AskTimer}}, m.answered(now, ev)...)
	case ReadyNotified:
		return m.readyNotified(now)
	case StatusNotified:
		if m.live() {
			m.status = ev.Text
		}
	case MainPIDNotified:
		return m.mainPID(ev.PID)
	case WatchdogPinged:
		if m.wd.on {
			m.wd.last = now
		}
	case WatchdogTriggered:
		return m.watchdogFailed(now, "watchdog triggered by the program (WATCHDOG=trigger)")
	case WatchdogPeriodSet:
		return m.watchdogPeriod(now, ev.Period)
	case TimeoutExtended:
		return m.extend(now, ev.By)
	}
	return nil
}

// unhealthy kills the running program as failed, with reason.
func (m *Machine) unhealthy(now time.Time, reason string) []Action {
	if m.state != Running {
		return nil
	}
	m.run.pid = 0
	m.lastExit = nil // this run did not exit: it is being killed as unhealthy
	if now.Sub(m.run.started) >= m.cfg.Reset {
		m.streak = 0
		m.window = m.window[:0]
	}
	pre := append(m.endStartWait(), m.stopWatchdog()...)
	m.pending = m.decide(now, false, reason)
	m.set(Cleanup, now)
	return append(pre, SignalTree{Sig: m.stopSignal()}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}, CollectTree{})
}

// delayPassed: the respawn delay is over. Without hooks that means restart;
// with hooks, act on their answer, waiting for it if it is not in yet.
func (m *Machine) delayPassed(now time.Time) []Action {
	if !m.cfg.Ask {
		return m.respawn(now)
	}
	m.ask.due = true
	switch {
	case m.ask.out:
		return nil // the Verdict or the AskTimer comes next
	case m.ask.verdict != nil:
		v := *m.ask.verdict
		m.ask.verdict = nil
		return m.apply(now, v)
	}
	return m.question(now) // held: ask again
}

func (m *Machine) question(now time.Time) []Action {
	m.ask.out, m.ask.verdict = true, nil
	return []Action{Ask{Event: m.pendingEvent(now)}, ArmTimer{ID: AskTimer, After: m.cfg.AskDeadline}}
}

func (m *Machine) answered(now time.Time, v Verdict) []Action {
	m.ask.out = false
	if !m.ask.due {
		m.ask.verdict = &v // acted on when the respawn delay has passed
		return nil
	}
	return m.apply(now, v)
}

// minSpawnRetry is the shortest delay after a restart that could not exec.
const minSpawnRetry = time.Second

// minHold is the shortest interval between two restart-pending questions
// while a hook holds the restart, so that -t 0 does not turn into a busy loop.
const minHold = time.Second

func (m *Machine) apply(now time.Time, v Verdict) []Action {
	m.ask.due = false
	switch v.Decision {
	case hookspec.DecisionDelay:
		m.ask.verdict = &Verdict{Decision: hookspec.DecisionAllow} // no second question after the delay
		m.delay = v.Delay
		m.set(Backoff, now)
		return []Action{ArmTimer{ID: RespawnTimer, After: v.Delay}}
	case hookspec.DecisionDeny:
		m.ask.held = v.Reason
		if m.state != Held {
			m.set(Held, now)
		}
		acts := []Action{ArmTimer{ID: RespawnTimer, After: max(m.cfg.RespawnTimeout, minHold)}}
		if !m.ask.holding { // the first denial is news; the re-asks while held are not
			m.ask.holding = true
			acts = append([]Action{m.note(now, hookspec.Held, hookspec.Event{Reason: v.Reason, Attempt: m.restarts + 1, Limit: m.cfg.Limit})}, acts...)
		}
		return acts
	case hookspec.DecisionGiveUp:
		m.pending = outcome{exit: true, code: 1, reason: "gave up: " + v.Reason}
		m.set(Failed, now)
		return []Action{m.ended(now, 1, m.pending.reason), Exit{Code: 1, Reason: m.pending.reason}}
	}
	return m.respawn(now)
}

func (m *Machine) runStarted(now time.Time, pid int) []Action {
	m.run = run{pid: pid, started: now}
	m.resetProbes()
	m.status = ""
	m.wd = watchdog{period: m.cfg.Watchdog}
	acts := []Action{m.note(now, hookspec.Started, hookspec.Event{PID: pid, Attempt: m.restarts})}
	switch {
	case m.cfg.Pidfile:
		m.start.awaiting = true
		acts = append(acts, WatchPidfile{}, ArmTimer{ID: StartTimer, After: m.cfg.StartTimeout})
	case m.cfg.Notify:
		m.start.unready = true // Starting until READY=1
		acts = append(acts, ArmTimer{ID: StartTimer, After: m.cfg.StartTimeout})
	case !m.ready && m.cfg.StartCheck > 0:
		m.set(Running, now)
		m.start.checking = true
		acts = append(acts, ArmTimer{ID: StartTimer, After: m.cfg.StartCheck})
	default:
		m.set(Running, now)
		acts = append(acts, m.markReady()...)
	}
	if m.start.stopping {
		return append(acts, m.stop(now, stopReason)...)
	}
	if !m.cfg.Notify {
		acts = append(acts, m.startWatchdog(now)...) // the clock starts at exec
	}
	return acts
}

func (m *Machine) markReady() []Action {
	if m.ready {
		return nil
	}
	m.ready = true
	return []Action{Ready{}}
}

func (m *Machine) timer(now time.Time, id TimerID) []Action {
	switch {
	case id == RespawnTimer && (m.state == Backoff || m.state == Held):
		return m.delayPassed(now)
	case id == AskTimer && m.ask.out:
		// A hook host that does not answer in time must not hold restarts.
		return m.answered(now, Verdict{Decision: hookspec.DecisionAllow, Reason: "no answer within the deadline"})
	case id == KillTimer && (m.state == Stopping || m.state == Cleanup):
		return []Action{SignalTree{Sig: syscall.SIGKILL}}
	case id == StartTimer && m.start.checking:
		m.start.checking = false
		return m.markReady()
	case id == StartTimer && m.start.awaiting:
		m.start.awaiting = false
		m.lastExit = nil
		return m.failRun(now, fmt.Sprintf("no pidfile within %s", m.cfg.StartTimeout), m.stopSignal())
	case id == StartTimer && m.start.unready:
		m.start.unready = false
		m.lastExit = nil
		return m.failRun(now, fmt.Sprintf("no READY=1 within %s", m.cfg.StartTimeout), m.stopSignal())
	case id == WatchdogTimer && m.wd.on:
		return m.watchdogFired(now)
	case id == StartTimer && m.rs.confirming && m.state == Running:
		m.rs = restartReq{}
		return []Action{RestartDone{}}
	}
	return nil
}

func (m *Machine) stopRequested(now time.Time) []Action {
	switch m.state {
	case Idle:
		return m.finish(now, outcome{exit: true, reason: "stopped"}, false)
	case Starting:
		if m.run.pid == 0 && !m.start.awaiting {
			m.start.stopping = true // Started or SpawnFailed comes next
			return nil
		}
		return m.stop(now, stopReason)
	case Running:
		return m.stop(now, stopReason)
	case Backoff, Held:
		m.set(Stopped, now)
		acts := []Action{DisarmTimer{ID: RespawnTimer}}
		if m.ask.out {
			m.ask.out = false
			acts = append(acts, DisarmTimer{ID: AskTimer})
		}
		m.pending = outcome{exit: true, reason: "stopped"}
		return append(acts, m.ended(now, 0, "stopped"), Exit{Code: 0, Reason: "stopped"})
	case Cleanup:
		// Leftovers already have SIGTERM and the kill timer runs; end when they are gone.
		m.set(Stopping, now)
	case Stopping:
		if m.rs.stopping {
			// The run was being stopped for a restart: it is now a stop,
			// and the restart's answer is that (finish gives it).
			m.rs.stopping = false
			return nil
		}
		// A second request means "now": no more waiting for a graceful exit.
		return []Action{DisarmTimer{ID: KillTimer}, SignalTree{Sig: syscall.SIGKILL}}
	}
	return nil
}

// stop terminates the run's tree; reason is the stopping event's.
func (m *Machine) stop(now time.Time, reason string) []Action {
	acts := append(m.endStartWait(), m.stopWatchdog()...)
	m.set(Stopping, now)
	acts = append(acts, m.note(now, hookspec.Stopping, hookspec.Event{PID: m.run.pid, Reason: reason}))
	return append(acts, SignalTree{Sig: m.stopSignal()}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}, CollectTree{})
}

// stopSignal is Config.StopSignal, SIGTERM when unset.
func (m *Machine) stopSignal() syscall.Signal {
	if m.cfg.StopSignal == 0 {
		return syscall.SIGTERM
	}
	return m.cfg.StopSignal
}

// exited decides what follows the end of the watched process, which the
// hooks hear of first.
func (m *Machine) exited(now time.Time, ev Exited) []Action {
	if m.state.Final() || m.state == Idle {
		return nil // no run of ours: nothing to tell
	}
	st := ev.Status
	// Clean as -e and the restart policy count it, or the end of a requested stop.
	clean := m.state == Stopping || m.cfg.Clean(st)
	told := m.note(now, hookspec.Exited, withExit(hookspec.Event{PID: ev.PID, Clean: clean, Attempt: m.restarts, Uptime: now.Sub(m.run.started).Round(time.Millisecond)}, &st))
	return append([]Action{told}, m.decideExit(now, ev)...)
}

func (m *Machine) decideExit(now time.Time, ev Exited) []Action {
	st := ev.Status
	switch {
	case m.state == Starting && m.start.awaiting:
		// The launcher of a daemonizing program ended before its pidfile named
		// the daemon: normal when clean, a failed start otherwise.
		m.run.pid = 0
		if m.cfg.Clean(st) {
			return nil
		}
		m.start.awaiting = false
		m.lastExit = &st
		return append([]Action{DisarmTimer{ID: StartTimer}},
			m.failRun(now, fmt.Sprintf("%s before writing its pidfile", st), m.stopSignal())...)
	case m.state == Starting && m.start.unready:
		return m.exitedUnready(now, ev)
	case m.state != Running:
		return nil
	case !m.cfg.Pidfile && m.handover(now, st, ev.Leftovers):
		// A launcher that exits cleanly leaving exactly one process behind has
		// daemonized: follow the daemon (systemd's GuessMainPID).
		return m.followHandover(now, ev.Leftovers[0])
	}
	m.lastExit = &st
	m.run.pid = 0
	wd := m.stopWatchdog()
	if m.start.checking {
		m.start.checking = false
		o := outcome{exit: true, code: 1, reason: fmt.Sprintf("%s during the start check", st)}
		return m.endRun(now, o, ev.Leftovers, append(wd, DisarmTimer{ID: StartTimer})...)
	}
	if now.Sub(m.run.started) >= m.cfg.Reset {
		m.streak = 0
		m.window = m.window[:0]
	}
	wd = append(wd, m.endStartWait()...) // an operator's restart, under its start check
	return m.endRun(now, m.decide(now, m.cfg.Clean(st), ""), ev.Leftovers, wd...)
}

// failRun ends a run that went wrong without a usable exit (bad pidfile, no
// READY=1, a watchdog timeout): everything of it gets sig (SIGTERM, or
// SIGABRT for a core dump of a hung program), SIGKILL after the stop
// timeout, then the outcome follows. A first run that fails fails the start.
func (m *Machine) failRun(now time.Time, reason string, sig syscall.Signal) []Action {
	acts := m.stopWatchdog()
	m.run.pid = 0
	o := outcome{exit: true, code: 1, reason: reason}
	if m.ready {
		o = m.decide(now, false, reason)
	}
	m.pending = o
	m.set(Cleanup, now)
	return append(acts, SignalTree{Sig: sig}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}, CollectTree{})
}

// endRun carries out o at once, or after the run's leftovers are gone.
func (m *Machine) endRun(now time.Time, o outcome, leftovers []int, pre ...Action) []Action {
	if len(leftovers) == 0 {
		return append(pre, m.finish(now, o, false)...)
	}
	m.pending = o
	m.set(Cleanup, now)
	return append(pre, SignalTree{Sig: m.stopSignal()}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}, CollectTree{})
}

func (m *Machine) decide(now time.Time, clean bool, why string) outcome {
	switch {
	case m.cfg.Policy == Never:
		if clean {
			return outcome{exit: true, code: 0, reason: "exited (restart policy never)"}
		}
		return outcome{exit: true, code: 1, reason: "failed (restart policy never)"}
	case m.cfg.Policy == OnFailure && clean:
		return outcome{exit: true, code: 0, reason: "exited cleanly"}
	}
	if m.cfg.Limit > 0 && m.counted(now) >= m.cfg.Limit {
		return outcome{exit: true, code: 1, reason: "gave up: respawn limit reached"}
	}
	return outcome{delay: m.nextDelay(), reason: why}
}

// counted is the number of restarts that count against the limit.
func (m *Machine) counted(now time.Time) int {
	if m.cfg.Window <= 0 {
		return m.restarts
	}
	keep := m.window[:0]
	for _, t := range m.window {
		if now.Sub(t) < m.cfg.Window {
			keep = append(keep, t)
		}
	}
	m.window = keep
	return len(m.window)
}

// minBackoffStep is where doubling starts when -t is 0 and a cap is set.
const minBackoffStep = 100 * time.Millisecond

// nextDelay is the delay before the next restart: -t for the first restart of a
// streak, then doubling up to MaxDelay, shortened by up to 10 % jitter.
func (m *Machine) nextDelay() time.Duration {
	base := m.cfg.RespawnTimeout
	k := m.streak
	m.streak++
	if m.cfg.MaxDelay <= base || k == 0 {
		return base
	}
	d := base
	if base == 0 {
		d, k = minBackoffStep, k-1
	}
	for ; k > 0 && d < m.cfg.MaxDelay; k-- {
		d *= 2
	}
	d = min(d, m.cfg.MaxDelay)
	if m.cfg.Jitter != nil {
		d -= time.Duration(float64(d) * 0.1 * m.cfg.Jitter())
	}
	return max(d, base)
}

// finish carries out an outcome once the run's process tree is gone.
func (m *Machine) finish(now time.Time, o outcome, disarmKill bool) []Action {
	var acts []Action
	if disarmKill {
		acts = append(acts, DisarmTimer{ID: KillTimer})
	}
	if m.rs.pending {
		// The operator's restart came to this: its run ended before it
		// was up, or a stop overtook it.
		acts = append(acts, m.restartFailed(o)...)
	}
	m.pending = o
	switch {
	case o.first:
		m.pending = outcome{}
		m.set(Starting, now)
		return append(acts, m.spawn(now, 0)...)
	case o.exit:
		if o.code == 0 {
			m.set(Stopped, now)
		} else {
			m.set(Failed, now)
		}
		return append(acts, m.ended(now, o.code, o.reason), Exit{Code: o.code, Reason: o.reason})
	case m.cfg.Ask:
		// Ask the hooks while the delay runs; act when both are done.
		m.delay = o.delay
		m.set(Backoff, now)
		m.ask.due = o.delay <= 0
		acts = append(acts, m.question(now)...)
		if o.delay > 0 {
			acts = append(acts, ArmTimer{ID: RespawnTimer, After: o.delay})
		}
		return acts
	case o.delay <= 0:
		// Without vetoing hooks, restart-pending is an event like the others.
		m.delay = 0
		return append(append(acts, Notify{Event: m.pendingEvent(now)}), m.respawn(now)...)
	default:
		m.delay = o.delay
		m.set(Backoff, now)
		return append(acts, Notify{Event: m.pendingEvent(now)}, ArmTimer{ID: RespawnTimer, After: o.delay})
	}
}

// ended is the hooks' last event: stopped, or gave-up after restarts.
func (m *Machine) ended(now time.Time, code int, reason string) Notify {
	if code == 0 {
		return m.note(now, hookspec.Stopped, hookspec.Event{Reason: reason})
	}
	return m.note(now, hookspec.GaveUp, hookspec.Event{Reason: reason, Attempt: m.restarts, Limit: m.cfg.Limit})
}

func (m *Machine) respawn(now time.Time) []Action {
	var acts []Action
	if m.ask.holding {
		acts = append(acts, m.note(now, hookspec.Released, hookspec.Event{Attempt: m.restarts + 1, Limit: m.cfg.Limit}))
	}
	m.ask.held, m.ask.verdict, m.ask.due, m.ask.holding = "", nil, false, false
	m.restarts++
	if m.cfg.Window > 0 {
		m.window = append(m.window, now)
	}
	m.run.pid = 0
	m.set(Starting, now)
	return append(acts, m.spawn(now, m.restarts)...)
}

// stopReason is the stopping event's reason for a stop; restartReason the
// stopping and restarting events' for an operator's restart.
const (
	stopReason    = "stop requested"
	restartReason = "requested"
)

// restartRequested: the operator's restart. A run that is up, or starting,
// is stopped as a stop would (Config.StopSignal, SIGKILL after the stop
// timeout) and a new one starts once its tree is gone; a program that is
// down starts at once, whatever the respawn delay or a hook's hold. Either
// way the hooks are not asked, and the restart count, backoff and the
// respawn limit start over.
func (m *Machine) restartRequested(now time.Time) []Action {
	if m.rs.pending {
		return nil // one is under way: this request shares its answer
	}
	switch m.state {
	case Idle, Stopped, Failed:
		return nil // nothing to restart, and a final machine does nothing
	case Stopping:
		return []Action{RestartDone{Err: "it is being stopped"}}
	case Starting:
		if m.start.stopping {
			return []Action{RestartDone{Err: "it is being stopped"}}
		}
		if m.run.pid == 0 && !m.start.awaiting {
			// A Spawn is outstanding: the run it starts is the new run.
			m.rs = restartReq{pending: true}
			m.startOver()
			return nil
		}
		fallthrough
	case Running:
		m.rs = restartReq{pending: true, stopping: true}
		return m.stop(now, restartReason)
	case Cleanup:
		// The run has ended and its leftovers have had the stop signal:
		// once they are gone, the new run starts, whatever was to follow.
		m.rs = restartReq{pending: true, stopping: true}
		m.pending = outcome{}
		m.set(Stopping, now)
		return nil
	}
	// Backoff, Held: nothing runs.
	m.rs = restartReq{pending: true}
	acts := []Action{DisarmTimer{ID: RespawnTimer}}
	if m.ask.out {
		m.ask.out = false
		acts = append(acts, DisarmTimer{ID: AskTimer})
	}
	return append(acts, m.restartNow(now)...)
}

// startOver begins the count of restarts, backoff and the respawn limit
// anew, as a new start would.
func (m *Machine) startOver() {
	m.restarts, m.streak, m.window, m.delay = 0, 0, m.window[:0], 0
	m.pending = outcome{}
}

// restartNow starts the operator's new run: announced as restarting, for
// the reason "requested", with the count started over. A held restart is
// released by it.
func (m *Machine) restartNow(now time.Time) []Action {
	var acts []Action
	if m.ask.holding {
		acts = append(acts, m.note(now, hookspec.Released, hookspec.Event{Attempt: m.restarts + 1, Limit: m.cfg.Limit}))
	}
	m.ask = ask{}
	m.startOver()
	m.run.pid = 0
	m.set(Starting, now)
	return append(acts, m.note(now, hookspec.Restarting, hookspec.Event{Reason: restartReason, Limit: m.cfg.Limit}),
		Spawn{Restart: 0, Limit: m.cfg.Limit, Requested: true})
}

// restartUp: the operator's new run is up (Running). It is answered at
// once, or after Config.RestartCheck when nothing else says
// that the program started (a pidfile, READY=1).
func (m *Machine) restartUp() []Action {
	if m.cfg.RestartCheck > 0 && !m.cfg.Pidfile && !m.cfg.Notify && !m.start.checking {
		m.rs.confirming = true
		return []Action{ArmTimer{ID: StartTimer, After: m.cfg.RestartCheck}}
	}
	if m.start.checking {
		return nil // the first run's start check is timing it: its end makes it up
	}
	m.rs = restartReq{}
	return []Action{RestartDone{}}
}

// restartFailed answers a restart whose new run ended (or was stopped)
// before it was up, with what follows o.
func (m *Machine) restartFailed(o outcome) []Action {
	m.rs = restartReq{}
	why := o.reason
	if why == "" && m.lastExit != nil {
		why = m.lastExit.String()
	}
	if why == "" {
		why = "the new run ended"
	}
	return []Action{RestartDone{Err: why}}
}

// endStartWait disarms StartTimer when the run's start still times on it
// (the pidfile, READY=1, a start check, an operator's restart under its
// start check): the run ends or is stopped.
func (m *Machine) endStartWait() []Action {
	if !m.start.awaiting && !m.start.checking && !m.start.unready && !m.rs.confirming {
		return nil
	}
	m.start.awaiting, m.start.checking, m.start.unready, m.rs.confirming = false, false, false, false
	return []Action{DisarmTimer{ID: StartTimer}}
}

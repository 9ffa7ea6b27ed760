package loop

import (
	"fmt"
	"syscall"
	"time"
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
)

var stateNames = [...]string{"idle", "starting", "running", "cleanup", "backoff", "stopping", "stopped", "failed"}

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
}

func (e ExitStatus) String() string {
	if e.Signal != 0 {
		return "killed by signal " + signalName(e.Signal)
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
	StopTimeout    time.Duration // SIGTERM, then SIGKILL after this long
	// Jitter returns a number in [0, 1); it shortens backoff delays by up to 10 %
	// so that many instances do not restart in lockstep. Nil means no jitter.
	Jitter func() float64
}

// Clean reports whether st counts as a clean exit: a code of the success set, or
// death by SIGTERM, SIGINT, SIGHUP or SIGPIPE (as systemd counts them).
func (c *Config) Clean(st ExitStatus) bool {
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
	numTimers
)

// Event is a fact the loop observed.
type Event interface{ event() }

// Started: the Spawn succeeded and the program runs as PID.
type Started struct{ PID int }

// SpawnFailed: the program could not be executed.
type SpawnFailed struct{ Err error }

// Exited: the program's process ended and was reaped. Leftovers says whether
// processes it started are still alive (the loop watches them until TreeEmpty).
type Exited struct {
	Status    ExitStatus
	Leftovers bool
}

// TreeEmpty: the last leftover process of the program's tree is gone.
type TreeEmpty struct{}

// TimerFired: the timer ID expired.
type TimerFired struct{ ID TimerID }

// StopRequested: an operator asked to stop (SIGTERM/SIGINT to respawner, or `stop`).
type StopRequested struct{}

func (Started) event()       {}
func (SpawnFailed) event()   {}
func (Exited) event()        {}
func (TreeEmpty) event()     {}
func (TimerFired) event()    {}
func (StopRequested) event() {}

// Action is something the loop must do.
type Action interface{ action() }

// Spawn starts the program. Restart is 0 for the first start, else the restart number k.
type Spawn struct{ Restart, Limit int }

// ArmTimer sets timer ID to fire once after After.
type ArmTimer struct {
	ID    TimerID
	After time.Duration
}

// DisarmTimer cancels timer ID.
type DisarmTimer struct{ ID TimerID }

// SignalTree sends Sig to the program's process group and to every process it
// left behind (descendants that called setsid included).
type SignalTree struct{ Sig syscall.Signal }

// Exit ends supervision with the process exit Code; Reason says why.
type Exit struct {
	Code   int
	Reason string
}

func (Spawn) action()       {}
func (ArmTimer) action()    {}
func (DisarmTimer) action() {}
func (SignalTree) action()  {}
func (Exit) action()        {}

// outcome is what follows once a run and its leftovers are gone.
type outcome struct {
	exit   bool
	code   int
	reason string
	delay  time.Duration
}

// Machine is the supervision policy as a pure state machine: Step takes an event
// and the current time and returns the actions to perform. It does no I/O, reads
// no clock and never blocks, so every path is testable without processes.
type Machine struct {
	cfg Config

	state     State
	pid       int           // the running program's pid, 0 when none
	started   time.Time     // when the current run started
	since     time.Time     // when state last changed
	restarts  int           // restarts so far (total)
	streak    int           // consecutive restarts without a stable run (backoff exponent)
	window    []time.Time   // times of restarts still counted by a windowed limit
	lastExit  *ExitStatus   // how the last run ended, nil before the first exit
	pending   outcome       // what Cleanup leads to
	stopping  bool          // a stop was requested while Starting
	delayUsed time.Duration // the delay of the current Backoff
}

// NewMachine returns a machine in Idle. Call Start to begin.
func NewMachine(cfg Config) *Machine {
	return &Machine{cfg: cfg}
}

// Snapshot is the machine's externally visible state.
type Snapshot struct {
	State    State
	PID      int
	Restarts int
	LastExit *ExitStatus
	Since    time.Time // when the current state began
	Started  time.Time // when the current run started (valid while Running)
	Delay    time.Duration
}

// Snapshot reports the current state for status output and logging.
func (m *Machine) Snapshot() Snapshot {
	return Snapshot{State: m.state, PID: m.pid, Restarts: m.restarts, LastExit: m.lastExit,
		Since: m.since, Started: m.started, Delay: m.delayUsed}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// Start begins supervision: the first Spawn.
func (m *Machine) Start(now time.Time) []Action {
	if m.state != Idle {
		return nil
	}
	m.set(Starting, now)
	return []Action{Spawn{Restart: 0, Limit: m.cfg.Limit}}
}

func (m *Machine) set(s State, now time.Time) {
	m.state = s
	m.since = now
}

// Step feeds one event into the machine and returns what to do about it.
func (m *Machine) Step(now time.Time, ev Event) []Action {
	switch ev := ev.(type) {
	case Started:
		if m.state != Starting {
			return nil
		}
		m.pid = ev.PID
		m.started = now
		m.set(Running, now)
		if m.stopping {
			return m.stop(now)
		}
		return nil

	case SpawnFailed:
		if m.state != Starting {
			return nil
		}
		if m.restarts == 0 || m.stopping {
			m.set(Failed, now)
			return []Action{Exit{Code: 1, Reason: ev.Err.Error()}}
		}
		// A restart that cannot exec (binary replaced mid-deploy) counts as a
		// failed run, so backoff and the limit apply instead of a tight loop.
		m.started = now
		return m.exited(now, ExitStatus{Code: 127}, false)

	case Exited:
		switch m.state {
		case Running:
			return m.exited(now, ev.Status, ev.Leftovers)
		case Stopping:
			m.lastExit = &ev.Status
			m.pid = 0
			if ev.Leftovers {
				return nil // wait for TreeEmpty, the kill timer is armed
			}
			return m.finish(now, outcome{exit: true, reason: "stopped"}, true)
		}
		return nil

	case TreeEmpty:
		switch m.state {
		case Cleanup:
			return m.finish(now, m.pending, true)
		case Stopping:
			if m.pid == 0 {
				return m.finish(now, outcome{exit: true, reason: "stopped"}, true)
			}
		}
		return nil

	case TimerFired:
		switch {
		case ev.ID == RespawnTimer && m.state == Backoff:
			return m.respawn(now)
		case ev.ID == KillTimer && (m.state == Stopping || m.state == Cleanup):
			return []Action{SignalTree{Sig: syscall.SIGKILL}}
		}
		return nil

	case StopRequested:
		switch m.state {
		case Idle:
			m.set(Stopped, now)
			return []Action{Exit{Code: 0, Reason: "stopped"}}
		case Starting:
			m.stopping = true
		case Running:
			return m.stop(now)
		case Backoff:
			m.set(Stopped, now)
			return []Action{DisarmTimer{ID: RespawnTimer}, Exit{Code: 0, Reason: "stopped"}}
		case Cleanup:
			// Leftovers already have SIGTERM and the kill timer runs; end when they are gone.
			m.set(Stopping, now)
		case Stopping:
			// A second request means "now": no more waiting for a graceful exit.
			return []Action{DisarmTimer{ID: KillTimer}, SignalTree{Sig: syscall.SIGKILL}}
		}
		return nil
	}
	return nil
}

func (m *Machine) stop(now time.Time) []Action {
	m.set(Stopping, now)
	return []Action{SignalTree{Sig: syscall.SIGTERM}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}}
}

// exited decides what follows the end of a run.
func (m *Machine) exited(now time.Time, st ExitStatus, leftovers bool) []Action {
	m.lastExit = &st
	m.pid = 0
	if now.Sub(m.started) >= m.cfg.Reset {
		m.streak = 0
		m.window = m.window[:0]
	}
	o := m.decide(now, st)
	if leftovers {
		m.pending = o
		m.set(Cleanup, now)
		return []Action{SignalTree{Sig: syscall.SIGTERM}, ArmTimer{ID: KillTimer, After: m.cfg.StopTimeout}}
	}
	return m.finish(now, o, false)
}

func (m *Machine) decide(now time.Time, st ExitStatus) outcome {
	clean := m.cfg.Clean(st)
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
	return outcome{delay: m.nextDelay()}
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
	switch {
	case o.exit:
		if o.code == 0 {
			m.set(Stopped, now)
		} else {
			m.set(Failed, now)
		}
		return append(acts, Exit{Code: o.code, Reason: o.reason})
	case o.delay <= 0:
		m.delayUsed = 0
		return append(acts, m.respawn(now)...)
	default:
		m.delayUsed = o.delay
		m.set(Backoff, now)
		return append(acts, ArmTimer{ID: RespawnTimer, After: o.delay})
	}
}

func (m *Machine) respawn(now time.Time) []Action {
	m.restarts++
	if m.cfg.Window > 0 {
		m.window = append(m.window, now)
	}
	m.set(Starting, now)
	return []Action{Spawn{Restart: m.restarts, Limit: m.cfg.Limit}}
}

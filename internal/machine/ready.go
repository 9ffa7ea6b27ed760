package machine

import (
	"fmt"
	"syscall"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// What the program says over its notify socket (sd_notify, as systemd's
// Type=notify and WatchdogSec= define it). The loop reads and authenticates
// each message (its sender must be one of the instance's processes), splits
// it into these events, in systemd's order (MAINPID, READY, STATUS,
// WATCHDOG, WATCHDOG_USEC, EXTEND_TIMEOUT_USEC), and handles BARRIER=1
// itself.

// ReadyNotified: READY=1. With Config.Notify the run is Running from now on.
type ReadyNotified struct{}

// StatusNotified: STATUS=Text, shown by status (the loop bounds and
// sanitizes it). Each run starts without one.
type StatusNotified struct{ Text string }

// MainPIDNotified: MAINPID=PID, a live descendant of respawner (the loop
// checked); the run follows it from now on.
type MainPIDNotified struct{ PID int }

// WatchdogPinged: WATCHDOG=1.
type WatchdogPinged struct{}

// WatchdogTriggered: WATCHDOG=trigger: the program asks to be handled as
// hung, at once.
type WatchdogTriggered struct{}

// WatchdogPeriodSet: WATCHDOG_USEC=: a new watchdog period for the current
// run; its clock starts over. 0 turns the watchdog off for the run.
type WatchdogPeriodSet struct{ Period time.Duration }

// TimeoutExtended: EXTEND_TIMEOUT_USEC=: the timeout of the current phase
// (the wait for READY=1 or for the pidfile, the stop timeout) and the
// watchdog's are pushed out to at least By from now, never earlier.
type TimeoutExtended struct{ By time.Duration }

func (ReadyNotified) event()     {}
func (StatusNotified) event()    {}
func (MainPIDNotified) event()   {}
func (WatchdogPinged) event()    {}
func (WatchdogTriggered) event() {}
func (WatchdogPeriodSet) event() {}
func (TimeoutExtended) event()   {}

// watchdog is the current run's watchdog. The timer is not re-armed on
// every WATCHDOG=1 (a program may ping many times a second): a ping only
// notes its time, and when the timer fires the deadline is worked out from
// the last ping; if it has not passed, the timer is armed again for the rest.
type watchdog struct {
	started bool          // the clock has started for this run (READY=1 with Notify, else the start of the run)
	on      bool          // WatchdogTimer is armed
	period  time.Duration // Config.Watchdog, or what WATCHDOG_USEC= set for this run
	last    time.Time     // the last WATCHDOG=1, or when the clock started
	until   time.Time     // EXTEND_TIMEOUT_USEC=: no timeout before this
}

// running is the watchdog's period while its clock runs, else 0.
func (w *watchdog) running() time.Duration {
	if w.on {
		return w.period
	}
	return 0
}

// live reports whether a run is under way whose processes may talk to us:
// running, or started and not yet ready (the pidfile or READY=1 awaited).
func (m *Machine) live() bool {
	return m.state == Running || m.state == Starting && (m.start.awaiting || m.start.unready)
}

// startWatchdog starts the run's watchdog clock.
func (m *Machine) startWatchdog(now time.Time) []Action {
	m.wd.started = true
	if m.wd.period <= 0 {
		return nil
	}
	m.wd.on, m.wd.last, m.wd.until = true, now, time.Time{}
	return []Action{ArmTimer{ID: WatchdogTimer, After: m.wd.period}}
}

// stopWatchdog stops it: the run is over, or being stopped.
func (m *Machine) stopWatchdog() []Action {
	if !m.wd.on {
		return nil
	}
	m.wd.on = false
	return []Action{DisarmTimer{ID: WatchdogTimer}}
}

// watchdogFired: the timer armed for the watchdog expired. It is a timeout
// only when no ping (or extension) came since that moves the deadline on.
func (m *Machine) watchdogFired(now time.Time) []Action {
	due := m.wd.last.Add(m.wd.period)
	if m.wd.until.After(due) {
		due = m.wd.until
	}
	if now.Before(due) {
		return []Action{ArmTimer{ID: WatchdogTimer, After: due.Sub(now)}}
	}
	m.wd.on = false
	return m.watchdogFailed(now, fmt.Sprintf("watchdog timeout (no WATCHDOG=1 within %s)", m.wd.period))
}

// watchdogFailed kills a live run as hung: the hooks hear unhealthy, the
// whole tree gets SIGABRT (a core dump shows where it hung), SIGKILL after
// the stop timeout, and the run counts as failed: restarted after the
// respawn timeout, or the end of a start whose first run it was.
func (m *Machine) watchdogFailed(now time.Time, reason string) []Action {
	if !m.live() {
		return nil
	}
	acts := append([]Action{m.note(now, hookspec.Unhealthy, hookspec.Event{PID: m.run.pid, Reason: reason})}, m.endStartWait()...)
	if m.state == Running && now.Sub(m.run.started) >= m.cfg.Reset {
		m.streak = 0
		m.window = m.window[:0]
	}
	m.lastExit = nil // the run did not exit: it is being killed as hung
	return append(acts, m.failRun(now, reason, syscall.SIGABRT)...)
}

// watchdogPeriod sets the run's watchdog period (WATCHDOG_USEC=); a clock
// that runs starts over with it.
func (m *Machine) watchdogPeriod(now time.Time, p time.Duration) []Action {
	if !m.live() || p < 0 {
		return nil
	}
	m.wd.period = p
	if !m.wd.started {
		return nil // it applies when the clock starts, at READY=1
	}
	return append(m.stopWatchdog(), m.startWatchdog(now)...)
}

// extend pushes the current timeouts out to at least by from now.
func (m *Machine) extend(now time.Time, by time.Duration) []Action {
	if by <= 0 {
		return nil
	}
	until := now.Add(by)
	var acts []Action
	later := func(id TimerID) {
		if t := m.timers[id]; t.armed && until.After(t.deadline) {
			acts = append(acts, ArmTimer{ID: id, After: by})
		}
	}
	if m.start.awaiting || m.start.unready {
		later(StartTimer)
	}
	if m.state == Stopping || m.state == Cleanup {
		later(KillTimer)
	}
	if m.wd.on && until.After(m.wd.until) {
		m.wd.until = until // taken into account when the timer fires
	}
	return acts
}

// readyNotified: READY=1. A run awaiting it is running from now on (the
// first one is reported started), and its watchdog clock starts.
func (m *Machine) readyNotified(now time.Time) []Action {
	if m.state != Starting || !m.start.unready {
		return nil // READY=1 again, or with no run waiting for it
	}
	m.start.unready = false
	m.set(Running, now)
	acts := append([]Action{DisarmTimer{ID: StartTimer}}, m.markReady()...)
	return append(acts, m.startWatchdog(now)...)
}

// mainPID follows the process the program named as its main one.
func (m *Machine) mainPID(pid int) []Action {
	if pid <= 0 || pid == m.run.pid || !(m.state == Running || m.state == Starting && m.start.unready) {
		return nil // nothing to follow, or the pidfile names the daemon
	}
	m.run.pid, m.run.following, m.run.handedAt = pid, true, time.Time{}
	return []Action{Follow{PID: pid}}
}

// exitedUnready: the watched process of a run that has not said READY=1
// ended. A launcher that exits cleanly leaving exactly one process has
// daemonized, and its daemon may still say READY=1; any other exit fails the
// run.
func (m *Machine) exitedUnready(now time.Time, ev Exited) []Action {
	st := ev.Status
	if m.handover(now, st, ev.Leftovers) {
		return m.followHandover(now, ev.Leftovers[0])
	}
	m.start.unready = false
	m.lastExit = &st
	m.run.pid = 0
	reason := fmt.Sprintf("%s before READY=1", st)
	o := outcome{exit: true, code: 1, reason: reason}
	if m.ready {
		o = m.decide(now, false, reason)
	}
	return m.endRun(now, o, ev.Leftovers, DisarmTimer{ID: StartTimer})
}

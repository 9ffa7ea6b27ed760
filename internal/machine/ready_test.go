package machine

import (
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

var (
	readyNote    = ReadyNotified{}
	ping         = WatchdogPinged{}
	fireWatchdog = TimerFired{ID: WatchdogTimer}
)

// abortSeq: SIGABRT to the tree (a hung program dumps core), the kill
// timer, and wait for the tree.
var abortSeq = []Action{SignalTree{Sig: syscall.SIGABRT}, ArmTimer{ID: KillTimer, After: 10 * time.Second}, CollectTree{}}

// TestReadyNotify: with Notify a run is Starting until READY=1, which
// reports the first run started; one that never says it, or exits first,
// is a failed run: the end of the start for the first, a restart after the
// respawn timeout for later ones.
func TestReadyNotify(t *testing.T) {
	nt := with(func(c *Config) { c.Notify = true; c.StartCheck = time.Second })
	waiting := []tev{{0, Started{PID: 42}}}
	ready := then(waiting, tev{time.Second, readyNote})
	restarted := then(ready, tev{2 * time.Second, exited(1)}, tev{7 * time.Second, fireRespawn}, tev{7 * time.Second, Started{PID: 43}})
	armStart := []Action{ArmTimer{ID: StartTimer, After: 10 * time.Second}}
	runStepCases(t, []stepCase{
		{name: "started: waits for READY=1, no start check", cfg: nt, from: Starting, ev: Started{PID: 42},
			want: armStart, next: Starting},
		{name: "READY=1", cfg: nt, before: waiting, from: Starting, ev: readyNote,
			want: []Action{DisarmTimer{ID: StartTimer}, Ready{}}, next: Running},
		{name: "READY=1 again", cfg: nt, before: ready, from: Running, ev: readyNote, want: nil, next: Running},
		{name: "first run: no READY=1 in time", cfg: nt, before: waiting, from: Starting, ev: fireStart,
			want: stopSeq, next: Cleanup},
		{name: "first run: no READY=1, tree empty", cfg: nt, before: then(waiting, tev{10 * time.Second, fireStart}),
			from: Cleanup, ev: TreeEmpty{}, want: []Action{DisarmTimer{ID: KillTimer}, Exit{Code: 1}}, next: Failed},
		{name: "first run: exits before READY=1", cfg: nt, before: waiting, from: Starting, ev: exited(1),
			want: []Action{DisarmTimer{ID: StartTimer}, Exit{Code: 1}}, next: Failed},
		{name: "first run: exits cleanly before READY=1", cfg: nt, before: waiting, from: Starting, ev: exited(0),
			want: []Action{DisarmTimer{ID: StartTimer}, Exit{Code: 1}}, next: Failed},
		{name: "first run: exits before READY=1, leftovers", cfg: nt, before: waiting, from: Starting, ev: exitedLeft(1),
			want: cat([]Action{DisarmTimer{ID: StartTimer}}, stopSeq), next: Cleanup},
		{name: "a launcher daemonizes before READY=1", cfg: nt, before: waiting, from: Starting,
			ev: Exited{Status: ExitStatus{Code: 0}, Leftovers: []int{600}}, want: []Action{Follow{PID: 600}}, next: Starting},
		{name: "its daemon says READY=1", cfg: nt,
			before: then(waiting, tev{time.Second, Exited{Status: ExitStatus{Code: 0}, Leftovers: []int{600}}}),
			from:   Starting, ev: readyNote, want: []Action{DisarmTimer{ID: StartTimer}, Ready{}}, next: Running},
		{name: "stop before READY=1", cfg: nt, before: waiting, from: Starting, ev: stopReq,
			want: cat([]Action{DisarmTimer{ID: StartTimer}}, stopSeq), next: Stopping},
		{name: "restart waits for READY=1", cfg: nt,
			before: then(ready, tev{2 * time.Second, exited(1)}, tev{7 * time.Second, fireRespawn}),
			from:   Starting, ev: Started{PID: 43}, want: armStart, next: Starting},
		{name: "restart: READY=1, no second Ready", cfg: nt, before: restarted, from: Starting, ev: readyNote,
			want: []Action{DisarmTimer{ID: StartTimer}}, next: Running},
		{name: "restart: no READY=1 is a failed run", cfg: nt, before: restarted, from: Starting, ev: fireStart,
			want: stopSeq, next: Cleanup},
		{name: "restart: no READY=1, then backoff", cfg: nt, before: then(restarted, tev{17 * time.Second, fireStart}),
			from: Cleanup, ev: TreeEmpty{}, want: cat([]Action{DisarmTimer{ID: KillTimer}}, backoff5s), next: Backoff},
		{name: "restart: exits before READY=1, backoff", cfg: nt, before: restarted, from: Starting, ev: exited(0),
			want: []Action{DisarmTimer{ID: StartTimer}, ArmTimer{ID: RespawnTimer, After: 5 * time.Second}}, next: Backoff},
		{name: "restart: no READY=1, limit", cfg: with(func(c *Config) { c.Notify, c.Limit = true, 1 }),
			before: then(restarted, tev{17 * time.Second, fireStart}),
			from:   Cleanup, ev: TreeEmpty{}, want: []Action{DisarmTimer{ID: KillTimer}, Exit{Code: 1}}, next: Failed},
		{name: "MAINPID= while starting", cfg: nt, before: waiting, from: Starting, ev: MainPIDNotified{PID: 77},
			want: []Action{Follow{PID: 77}}, next: Starting},
		{name: "MAINPID= while running", cfg: nt, before: ready, from: Running, ev: MainPIDNotified{PID: 77},
			want: []Action{Follow{PID: 77}}, next: Running},
		{name: "MAINPID= of the watched process", cfg: nt, before: ready, from: Running, ev: MainPIDNotified{PID: 42},
			want: nil, next: Running},
		{name: "MAINPID= in backoff", cfg: nt, before: then(ready, tev{2 * time.Second, exited(1)}), from: Backoff,
			ev: MainPIDNotified{PID: 77}, want: nil, next: Backoff},
		{name: "extended start timeout", cfg: nt, before: waiting, from: Starting, ev: TimeoutExtended{By: time.Minute},
			want: []Action{ArmTimer{ID: StartTimer, After: time.Minute}}, next: Starting},
		{name: "extension shorter than the start timeout", cfg: nt, before: []tev{{99 * time.Second, Started{PID: 42}}},
			from: Starting, ev: TimeoutExtended{By: time.Second}, want: nil, next: Starting},
		{name: "extended stop timeout", cfg: nt, before: then(ready, tev{2 * time.Second, stopReq}), from: Stopping,
			ev: TimeoutExtended{By: time.Minute}, want: []Action{ArmTimer{ID: KillTimer, After: time.Minute}}, next: Stopping},
		{name: "extension while running: no timer to move", cfg: nt, before: ready, from: Running,
			ev: TimeoutExtended{By: time.Minute}, want: nil, next: Running},
		{name: "READY=1 without Notify", cfg: base(), before: toRunning, from: Running, ev: readyNote, want: nil, next: Running},
		{name: "with a pidfile, the pidfile decides", cfg: with(func(c *Config) { c.Notify, c.Pidfile = true, true }),
			from: Starting, ev: Started{PID: 42},
			want: []Action{WatchPidfile{}, ArmTimer{ID: StartTimer, After: 10 * time.Second}}, next: Starting},
	})

	m, _ := drive(t, nt, tev{0, Started{PID: 42}}, tev{0, StatusNotified{Text: "loading"}})
	if s := m.Snapshot(); s.State != Starting || !s.Unready || s.Ready || s.PID != 42 || s.Status != "loading" {
		t.Errorf("waiting for READY=1: %+v", s)
	}
	q(m.Step(at(time.Second), readyNote))
	q(m.Step(at(time.Second), StatusNotified{Text: "serving"}))
	if s := m.Snapshot(); s.State != Running || s.Unready || !s.Ready || s.Status != "serving" || !s.Started.Equal(t0) {
		t.Errorf("ready: %+v", s)
	}
	q(m.Step(at(2*time.Second), exited(1)))
	if s := m.Snapshot(); s.Status != "serving" {
		t.Errorf("in backoff the last run's status stays: %q", s.Status)
	}
	q(m.Step(at(7*time.Second), fireRespawn))
	q(m.Step(at(7*time.Second), Started{PID: 43}))
	if s := m.Snapshot(); s.Status != "" {
		t.Errorf("a new run starts without a status: %q", s.Status)
	}
	q(m.Step(at(8*time.Second), fireStart))
	if s := m.Snapshot(); s.State != Cleanup || !strings.Contains(s.Reason, "no READY=1 within 10s") {
		t.Errorf("no READY=1: %+v", s)
	}
}

// TestWatchdog: the watchdog's clock starts at READY=1 (Notify) or at the
// start of the run; a ping only notes its time, and when the timer fires
// the deadline is counted from the last ping; past it the run is killed with
// SIGABRT as failed, and the hooks hear unhealthy.
func TestWatchdog(t *testing.T) {
	wd := with(func(c *Config) { c.Watchdog = time.Second })
	nwd := with(func(c *Config) { c.Watchdog, c.Notify = time.Second, true })
	arm := func(d time.Duration) []Action { return []Action{ArmTimer{ID: WatchdogTimer, After: d}} }
	disarm := []Action{DisarmTimer{ID: WatchdogTimer}}
	runStepCases(t, []stepCase{
		{name: "clock starts at exec", cfg: wd, from: Starting, ev: Started{PID: 42},
			want: cat([]Action{Ready{}}, arm(time.Second)), next: Running},
		{name: "with Notify, not at exec", cfg: nwd, from: Starting, ev: Started{PID: 42},
			want: []Action{ArmTimer{ID: StartTimer, After: 10 * time.Second}}, next: Starting},
		{name: "with Notify, at READY=1", cfg: nwd, before: []tev{{0, Started{PID: 42}}}, from: Starting, ev: readyNote,
			want: cat([]Action{DisarmTimer{ID: StartTimer}, Ready{}}, arm(time.Second)), next: Running},
		{name: "pinged: the timer is armed again for the rest", cfg: wd,
			before: []tev{{99 * time.Second, Started{PID: 42}}, {99*time.Second + 400*time.Millisecond, ping}},
			from:   Running, ev: fireWatchdog, want: arm(400 * time.Millisecond), next: Running},
		{name: "not pinged: killed", cfg: wd, before: []tev{{99 * time.Second, Started{PID: 42}}},
			from: Running, ev: fireWatchdog, want: abortSeq, next: Cleanup},
		{name: "pings before READY=1 do not count", cfg: nwd,
			before: []tev{{0, Started{PID: 42}}, {99 * time.Second, ping}, {99 * time.Second, readyNote}, {99*time.Second + 500*time.Millisecond, ping}},
			from:   Running, ev: fireWatchdog, want: arm(500 * time.Millisecond), next: Running},
		{name: "killed, then restarted after the respawn timeout", cfg: wd,
			before: []tev{{99 * time.Second, Started{PID: 42}}, {100 * time.Second, fireWatchdog}},
			from:   Cleanup, ev: TreeEmpty{}, want: cat([]Action{DisarmTimer{ID: KillTimer}}, backoff5s), next: Backoff},
		{name: "WATCHDOG=trigger", cfg: wd, before: toRunning, from: Running, ev: WatchdogTriggered{},
			want: cat(disarm, abortSeq), next: Cleanup},
		{name: "WATCHDOG=trigger without a watchdog", cfg: base(), before: toRunning, from: Running, ev: WatchdogTriggered{},
			want: abortSeq, next: Cleanup},
		{name: "WATCHDOG=trigger before READY=1", cfg: nwd, before: []tev{{0, Started{PID: 42}}}, from: Starting,
			ev: WatchdogTriggered{}, want: cat([]Action{DisarmTimer{ID: StartTimer}}, abortSeq), next: Cleanup},
		{name: "WATCHDOG=trigger in backoff", cfg: wd, before: toBackoff, from: Backoff, ev: WatchdogTriggered{},
			want: nil, next: Backoff},
		{name: "exit stops the clock", cfg: wd, before: toRunning, from: Running, ev: exited(1),
			want: cat(disarm, backoff5s), next: Backoff},
		{name: "stop stops the clock", cfg: wd, before: toRunning, from: Running, ev: stopReq,
			want: cat(disarm, stopSeq), next: Stopping},
		{name: "a daemon is followed, the clock goes on", cfg: wd, before: toRunning, from: Running,
			ev: Exited{Status: ExitStatus{Code: 0}, Leftovers: []int{600}}, want: []Action{Follow{PID: 600}}, next: Running},
		{name: "WATCHDOG_USEC= restarts the clock", cfg: wd, before: toRunning, from: Running,
			ev: WatchdogPeriodSet{Period: 3 * time.Second}, want: cat(disarm, arm(3*time.Second)), next: Running},
		{name: "WATCHDOG_USEC=0 turns it off", cfg: wd, before: toRunning, from: Running,
			ev: WatchdogPeriodSet{}, want: disarm, next: Running},
		{name: "WATCHDOG_USEC= without --watchdog turns it on", cfg: base(), before: toRunning, from: Running,
			ev: WatchdogPeriodSet{Period: time.Second}, want: arm(time.Second), next: Running},
		{name: "WATCHDOG_USEC= before READY=1 waits for it", cfg: nwd, before: []tev{{0, Started{PID: 42}}}, from: Starting,
			ev: WatchdogPeriodSet{Period: 3 * time.Second}, want: nil, next: Starting},
		{name: "extension beyond the watchdog's deadline", cfg: wd,
			before: []tev{{99 * time.Second, Started{PID: 42}}, {99 * time.Second, TimeoutExtended{By: 5 * time.Second}}},
			from:   Running, ev: fireWatchdog, want: arm(4 * time.Second), next: Running},
		{name: "with a pidfile, the clock runs while it is awaited", cfg: with(func(c *Config) { c.Watchdog, c.Pidfile = time.Second, true }),
			before: []tev{{99 * time.Second, Started{PID: 42}}}, from: Starting, ev: fireWatchdog,
			want: cat([]Action{DisarmTimer{ID: StartTimer}}, abortSeq), next: Cleanup},
	})

	// The first run's watchdog failure fails the start (daemon mode's start check).
	m, _ := drive(t, with(func(c *Config) { c.Watchdog, c.StartCheck = time.Second, 2*time.Second }), tev{0, Started{PID: 42}})
	got := m.Step(at(time.Second), fireWatchdog)
	if want := cat([]Action{DisarmTimer{ID: StartTimer}}, abortSeq); !reflect.DeepEqual(q(got), want) {
		t.Errorf("watchdog during the start check: %s, want %s", fmtActs(q(got)), fmtActs(want))
	}
	var unhealthy *hookspec.Event
	for _, a := range got {
		if n, ok := a.(Notify); ok && n.Event.Kind == hookspec.Unhealthy {
			unhealthy = &n.Event
		}
	}
	if unhealthy == nil || unhealthy.PID != 42 || !strings.HasPrefix(unhealthy.Reason, "watchdog timeout") {
		t.Errorf("hooks told %+v, want unhealthy of pid 42 with reason watchdog timeout", unhealthy)
	}
	if s := m.Snapshot(); s.PID != 0 || s.LastExit != nil || !strings.HasPrefix(s.Reason, "watchdog timeout") {
		t.Errorf("killed by the watchdog: %+v", s)
	}
	if got := q(m.Step(at(2*time.Second), killed(syscall.SIGABRT))); got != nil {
		t.Errorf("the killed program's exit: %s, want nothing (the tree is collected)", fmtActs(got))
	}
	got = q(m.Step(at(2*time.Second), TreeEmpty{}))
	if want := []Action{DisarmTimer{ID: KillTimer}, Exit{Code: 1}}; !reflect.DeepEqual(norm(got), want) {
		t.Errorf("tree empty: %s, want %s", fmtActs(got), fmtActs(want))
	}

	// Adoption starts the clock over.
	m = NewMachine(wd)
	if got, want := q(m.Adopt(t0, 900, t0.Add(-time.Hour))), cat([]Action{Follow{PID: 900}, Ready{}}, arm(time.Second)); !reflect.DeepEqual(got, want) {
		t.Errorf("Adopt = %s, want %s", fmtActs(got), fmtActs(want))
	}
	if s := m.Snapshot(); s.Watchdog != time.Second {
		t.Errorf("adopted: watchdog %v, want 1s", s.Watchdog)
	}
}

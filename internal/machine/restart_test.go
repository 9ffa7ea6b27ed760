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
	restartAsk    = RestartRequested{}
	requestedRun  = Spawn{Restart: 0, Requested: true}
	restartOK     = RestartDone{}
	toHeld        = []tev{{0, Started{PID: 42}}, {time.Second, exited(1)}, {time.Second, Verdict{Decision: hookspec.DecisionDeny, Reason: "maintenance"}}, {6 * time.Second, fireRespawn}}
	toRestarting  = then(toRunning, tev{time.Second, restartAsk})
	toRestartedUp = then(toRestarting, tev{2 * time.Second, TreeEmpty{}}, tev{2 * time.Second, Started{PID: 43}})
)

// TestStepRestart: the operator's restart from each state. A live run is
// stopped as a stop would; the new run starts once the old tree is gone,
// at once when nothing runs, and never after the respawn delay or a hook's
// answer.
func TestStepRestart(t *testing.T) {
	quit := with(func(c *Config) { c.StopSignal = syscall.SIGQUIT })
	noCheck := base()
	check := with(func(c *Config) { c.StartCheck, c.RestartCheck = time.Second, time.Second })
	// With a start check, the first run passes it before the restart.
	checked := then(toRunning, tev{time.Second, fireStart})
	checkRestarting := then(checked, tev{time.Second, restartAsk})
	checkUp := then(checkRestarting, tev{2 * time.Second, TreeEmpty{}}, tev{2 * time.Second, Started{PID: 43}})
	asked := with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second })
	runStepCases(t, []stepCase{
		{name: "running", cfg: base(), before: toRunning, from: Running, ev: restartAsk, want: stopSeq, next: Stopping},
		{name: "running, --stop-signal QUIT", cfg: quit, before: toRunning, from: Running, ev: restartAsk,
			want: []Action{SignalTree{Sig: syscall.SIGQUIT}, ArmTimer{ID: KillTimer, After: 10 * time.Second}, CollectTree{}}, next: Stopping},
		{name: "stopping for it, the old run exits", cfg: base(), before: toRestarting, from: Stopping, ev: killed(syscall.SIGTERM),
			want: nil, next: Stopping},
		{name: "stopping for it, kill timer", cfg: base(), before: toRestarting, from: Stopping, ev: fireKill,
			want: []Action{SignalTree{Sig: syscall.SIGKILL}}, next: Stopping},
		{name: "stopping for it, tree empty", cfg: base(), before: toRestarting, from: Stopping, ev: TreeEmpty{},
			want: []Action{DisarmTimer{ID: KillTimer}, requestedRun}, next: Starting},
		{name: "new run up, no start check", cfg: noCheck, before: then(toRestarting, tev{2 * time.Second, TreeEmpty{}}),
			from: Starting, ev: Started{PID: 43}, want: []Action{restartOK}, next: Running},
		{name: "new run up, start check", cfg: check, before: then(checkRestarting, tev{2 * time.Second, TreeEmpty{}}),
			from: Starting, ev: Started{PID: 43}, want: []Action{ArmTimer{ID: StartTimer, After: time.Second}}, next: Running},
		{name: "new run survives the start check", cfg: check, before: checkUp,
			from: Running, ev: fireStart, want: []Action{restartOK}, next: Running},
		{name: "new run fails the start check: answered, and restarted as usual", cfg: check, before: checkUp,
			from: Running, ev: exited(1), want: []Action{DisarmTimer{ID: StartTimer}, RestartDone{Err: "exit status 1"}, ArmTimer{ID: RespawnTimer, After: 5 * time.Second}},
			next: Backoff},
		{name: "new run cannot exec", cfg: base(), before: then(toRestarting, tev{2 * time.Second, TreeEmpty{}}),
			from: Starting, ev: SpawnFailed{Err: errExec}, want: []Action{RestartDone{Err: "cannot start: " + errExec.Error()}, ArmTimer{ID: RespawnTimer, After: 5 * time.Second}},
			next: Backoff},
		{name: "backoff: at once", cfg: base(), before: toBackoff, from: Backoff, ev: restartAsk,
			want: []Action{DisarmTimer{ID: RespawnTimer}, requestedRun}, next: Starting},
		{name: "held: at once, not asked", cfg: asked, before: toHeld, from: Held, ev: restartAsk,
			want: []Action{DisarmTimer{ID: RespawnTimer}, requestedRun}, next: Starting},
		{name: "backoff with the question out", cfg: asked, before: toBackoff, from: Backoff, ev: restartAsk,
			want: []Action{DisarmTimer{ID: RespawnTimer}, DisarmTimer{ID: AskTimer}, requestedRun}, next: Starting},
		{name: "cleanup: once the leftovers are gone", cfg: base(), before: toCleanup, from: Cleanup, ev: restartAsk,
			want: nil, next: Stopping},
		{name: "cleanup, tree empty", cfg: base(), before: then(toCleanup, tev{2 * time.Second, restartAsk}), from: Stopping, ev: TreeEmpty{},
			want: []Action{DisarmTimer{ID: KillTimer}, requestedRun}, next: Starting},
		{name: "starting: the run being started is the new run", cfg: base(), before: nil, from: Starting, ev: restartAsk,
			want: nil, next: Starting},
		{name: "while it stops", cfg: base(), before: toStopping, from: Stopping, ev: restartAsk,
			want: []Action{RestartDone{Err: "it is being stopped"}}, next: Stopping},
		{name: "a second request shares the first", cfg: base(), before: toRestarting, from: Stopping, ev: restartAsk,
			want: nil, next: Stopping},
		{name: "a stop overtakes it: no SIGKILL yet", cfg: base(), before: toRestarting, from: Stopping, ev: stopReq,
			want: nil, next: Stopping},
		{name: "a stop overtakes it, tree empty", cfg: base(), before: then(toRestarting, tev{2 * time.Second, stopReq}),
			from: Stopping, ev: TreeEmpty{}, want: []Action{DisarmTimer{ID: KillTimer}, RestartDone{Err: "stopped"}, Exit{Code: 0}}, next: Stopped},
		{name: "a stop during the start check", cfg: check, before: checkUp, from: Running, ev: stopReq,
			want: cat([]Action{DisarmTimer{ID: StartTimer}}, stopSeq), next: Stopping},
		{name: "stopped", cfg: base(), before: toStopped, from: Stopped, ev: restartAsk,
			want: nil, next: Stopped},
	})
}

// TestRestartStartsOver: the restart count, backoff and the respawn limit
// start over at an operator's restart, so a program that had used up most
// of its budget gets all of it again.
func TestRestartStartsOver(t *testing.T) {
	cfg := with(func(c *Config) {
		c.Limit, c.RespawnTimeout, c.MaxDelay = 2, time.Second, time.Minute
	})
	m, _ := drive(t, cfg, tev{0, Started{PID: 42}}, tev{time.Second, exited(1)}, tev{2 * time.Second, fireRespawn},
		tev{2 * time.Second, Started{PID: 43}}, tev{3 * time.Second, exited(1)})
	if s := m.Snapshot(); s.Restarts != 1 || s.Delay != 2*time.Second {
		t.Fatalf("before: restarts %d, delay %v; want 1 and 2s", s.Restarts, s.Delay)
	}
	got := q(m.Step(at(4*time.Second), restartAsk))
	if want := []Action{DisarmTimer{ID: RespawnTimer}, Spawn{Limit: 2, Requested: true}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("restart: %s, want %s", fmtActs(got), fmtActs(want))
	}
	m.Step(at(4*time.Second), Started{PID: 44})
	if s := m.Snapshot(); s.Restarts != 0 {
		t.Errorf("after: restarts %d, want 0", s.Restarts)
	}
	// Two more failures are restarted (the limit is 2 again), with the
	// delay back at -t; the third gives up.
	want := [][]Action{
		{ArmTimer{ID: RespawnTimer, After: time.Second}},
		{ArmTimer{ID: RespawnTimer, After: 2 * time.Second}},
		{Exit{Code: 1}},
	}
	now := 5 * time.Second
	for i, w := range want {
		got := norm(q(m.Step(at(now), exited(1))))
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("failure %d after the restart: %s, want %s", i+1, fmtActs(got), fmtActs(w))
		}
		if i < 2 {
			m.Step(at(now+5*time.Second), fireRespawn)
			m.Step(at(now+5*time.Second), Started{PID: 50 + i})
		}
		now += 10 * time.Second
	}
}

// TestRestartNotifications: the hooks hear stopping and restarting with
// the reason "requested", and no restart-pending; a held restart is
// released by it.
func TestRestartNotifications(t *testing.T) {
	kinds := func(acts []Action) (out []string) {
		for _, a := range acts {
			if n, ok := a.(Notify); ok {
				out = append(out, string(n.Event.Kind)+":"+n.Event.Reason)
			}
		}
		return out
	}
	m := NewMachine(base())
	m.Start(t0)
	m.Step(at(0), Started{PID: 42})
	var all []Action
	for _, ev := range []Event{restartAsk, killed(syscall.SIGTERM), TreeEmpty{}, Started{PID: 43}} {
		all = append(all, m.Step(at(time.Second), ev)...)
	}
	want := []string{"stopping:requested", "exited:", "restarting:requested", "started:"}
	if got := kinds(all); !reflect.DeepEqual(got, want) {
		t.Errorf("restart of a running program: %q, want %q", got, want)
	}
	for _, a := range all {
		if n, ok := a.(Notify); ok && n.Event.Kind == hookspec.Exited && !n.Event.Clean {
			t.Error("the stopped run's exit is not clean")
		}
	}

	m = NewMachine(with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second }))
	m.Start(t0)
	for _, e := range toHeld {
		m.Step(at(e.At), e.Ev)
	}
	got := kinds(m.Step(at(2*time.Second), restartAsk))
	if want := []string{"released:", "restarting:requested"}; !reflect.DeepEqual(got, want) {
		t.Errorf("restart while held: %q, want %q", got, want)
	}
}

// TestStopSignal: --stop-signal is what a stop, an unhealthy run and a
// run's leftovers get first; SIGKILL still follows.
func TestStopSignal(t *testing.T) {
	quit := with(func(c *Config) { c.StopSignal = syscall.SIGQUIT })
	seq := []Action{SignalTree{Sig: syscall.SIGQUIT}, ArmTimer{ID: KillTimer, After: 10 * time.Second}, CollectTree{}}
	runStepCases(t, []stepCase{
		{name: "stop", cfg: quit, before: toRunning, from: Running, ev: stopReq, want: seq, next: Stopping},
		{name: "kill timer", cfg: quit, before: then(toRunning, tev{time.Second, stopReq}), from: Stopping, ev: fireKill,
			want: []Action{SignalTree{Sig: syscall.SIGKILL}}, next: Stopping},
		{name: "unhealthy", cfg: quit, before: toRunning, from: Running, ev: Unhealthy{Reason: "probe"}, want: seq, next: Cleanup},
		{name: "leftovers", cfg: quit, before: toRunning, from: Running, ev: exitedLeft(1), want: seq, next: Cleanup},
	})
}

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]syscall.Signal{"HUP": syscall.SIGHUP, "sighup": syscall.SIGHUP, "SIGTERM": syscall.SIGTERM,
		"quit": syscall.SIGQUIT, "9": syscall.SIGKILL, "64": 64, "RTMIN+2": 36, "SIGRTMIN+30": 64} {
		if got, err := ParseSignal(in); err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-1", "SIG", "NOPE", "RTMIN+31", "1.5", strings.Repeat("X", 100)} {
		if _, err := ParseSignal(in); err == nil || len(err.Error()) > 120 {
			t.Errorf("ParseSignal(%q): %v, want a short error", in, err)
		}
	}
}

// TestFollowDaemonHandover: a launcher that exits cleanly leaving one
// process hands over to it; so does that process when it exits cleanly
// within daemonHandover of being followed, leaving one (lighttpd's middle
// process, still there when its launcher exits on a loaded machine); later,
// a clean exit is the end of the run as ever.
func TestFollowDaemonHandover(t *testing.T) {
	left := func(pid int) Exited { return Exited{Status: ExitStatus{Code: 0}, Leftovers: []int{pid}} }
	m, got := drive(t, base(), tev{0, Started{PID: 42}}, tev{time.Second, left(43)})
	if want := []Action{Follow{PID: 43}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("launcher exits: %s", fmtActs(got))
	}
	if got := q(m.Step(at(1100*time.Millisecond), left(44))); !reflect.DeepEqual(got, []Action{Follow{PID: 44}}) {
		t.Fatalf("middle process exits 100ms later: %s, want Follow 44", fmtActs(got))
	}
	if s := m.Snapshot(); s.State != Running || s.PID != 44 || !s.Following {
		t.Fatalf("after the handover: %+v", s)
	}
	if got := norm(q(m.Step(at(20*time.Second), left(45)))); !reflect.DeepEqual(got, []Action{SignalTree{Sig: syscall.SIGTERM}, ArmTimer{ID: KillTimer, After: 10 * time.Second}, CollectTree{}}) {
		t.Errorf("the daemon exits cleanly 19 s on, leaving one: %s, want the end of the run (its leftover terminated)", fmtActs(got))
	}
	// Not after adoption, nor for a process the program named (MAINPID=).
	m = NewMachine(base())
	m.Adopt(t0, 42, t0)
	if got := q(m.Step(at(time.Second), Exited{Status: ExitStatus{Code: 0}, Leftovers: []int{43}})); len(got) > 0 && reflect.DeepEqual(got[0], Follow{PID: 43}) {
		t.Errorf("an adopted program's exit was taken for a handover: %s", fmtActs(got))
	}
}

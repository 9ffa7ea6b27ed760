package machine

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// told runs steps and returns the hook events the machine announced, as
// "kind" or "kind:detail" strings, and the Ask events as "ask:k".
func told(m *Machine, first []Action, steps ...tev) []string {
	var out []string
	add := func(acts []Action) {
		for _, a := range acts {
			switch a := a.(type) {
			case Notify:
				e := a.Event
				s := string(e.Kind)
				switch e.Kind {
				case hookspec.Exited:
					s += ":" + e.Signal
					if e.Signal == "" {
						s += "code=" + itoa(e.ExitCode)
					}
				case hookspec.Restarting, hookspec.RestartPending, hookspec.GaveUp, hookspec.Released:
					s += ":" + itoa(e.Attempt)
				case hookspec.Held:
					s += ":" + e.Reason
				case hookspec.Started:
					s += ":" + itoa(e.PID)
				}
				out = append(out, s)
			case Ask:
				out = append(out, "ask:"+itoa(a.Event.Attempt))
			}
		}
	}
	add(first)
	for _, st := range steps {
		add(m.Step(at(st.At), st.Ev))
	}
	return out
}

func itoa(n int) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// TestNotifications: the machine announces every lifecycle event itself, in
// order; the loop only sends them.
func TestNotifications(t *testing.T) {
	kill := Exited{PID: 7, Status: ExitStatus{Signal: syscall.SIGKILL}}
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []tev
		want  string
	}{{
		name: "crash, restart, stop",
		cfg:  base(),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, kill}, {6 * time.Second, TimerFired{ID: RespawnTimer}},
			{6 * time.Second, Started{PID: 8}}, {7 * time.Second, StopRequested{}}, {7 * time.Second, Exited{PID: 8, Status: ExitStatus{Signal: syscall.SIGTERM}}},
			{7 * time.Second, TreeEmpty{}}},
		want: "starting started:7 exited:SIGKILL restart-pending:1 restarting:1 started:8 stopping exited:SIGTERM stopped",
	}, {
		name:  "-t 0: restart-pending before the immediate restart",
		cfg:   with(func(c *Config) { c.RespawnTimeout = 0 }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, kill}},
		want:  "starting started:7 exited:SIGKILL restart-pending:1 restarting:1",
	}, {
		name:  "with vetoing hooks the question is the event",
		cfg:   with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, exited(3)}},
		want:  "starting started:7 exited:code=3 ask:1",
	}, {
		name: "a hold is told once, however many re-asks, and its end once",
		cfg:  with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, exited(3)}, {time.Second, deny("maintenance")},
			{6 * time.Second, TimerFired{ID: RespawnTimer}},
			{11 * time.Second, TimerFired{ID: RespawnTimer}}, {11 * time.Second, deny("maintenance")},
			{16 * time.Second, TimerFired{ID: RespawnTimer}}, {16 * time.Second, deny("still")},
			{21 * time.Second, TimerFired{ID: RespawnTimer}}, {21 * time.Second, Verdict{}},
			{21 * time.Second, Started{PID: 8}}},
		want: "starting started:7 exited:code=3 ask:1 held:maintenance ask:1 ask:1 ask:1 released:1 restarting:1 started:8",
	}, {
		name: "a hold that ends in a delay is released when the restart goes ahead",
		cfg:  with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, exited(3)}, {time.Second, deny("m")},
			{6 * time.Second, TimerFired{ID: RespawnTimer}},
			{11 * time.Second, TimerFired{ID: RespawnTimer}}, {11 * time.Second, Verdict{Decision: hookspec.DecisionDelay, Delay: time.Second}},
			{12 * time.Second, TimerFired{ID: RespawnTimer}},
			{12 * time.Second, Started{PID: 8}}, {13 * time.Second, exited(3)}, {13 * time.Second, Verdict{}},
			{18 * time.Second, TimerFired{ID: RespawnTimer}}},
		want: "starting started:7 exited:code=3 ask:1 held:m ask:1 released:1 restarting:1 started:8 exited:code=3 ask:2 restarting:2",
	}, {
		name: "a stop while held ends with stopped, not released",
		cfg:  with(func(c *Config) { c.Ask, c.AskDeadline = true, 2*time.Second }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, exited(3)}, {time.Second, deny("m")},
			{6 * time.Second, TimerFired{ID: RespawnTimer}}, {7 * time.Second, StopRequested{}}},
		want: "starting started:7 exited:code=3 ask:1 held:m stopped",
	}, {
		name:  "give up at the limit",
		cfg:   with(func(c *Config) { c.Limit = 1; c.RespawnTimeout = 0 }),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, kill}, {time.Second, Started{PID: 8}}, {2 * time.Second, kill}},
		want:  "starting started:7 exited:SIGKILL restart-pending:1 restarting:1 started:8 exited:SIGKILL gave-up:1",
	}, {
		name:  "a clean exit ends with stopped",
		cfg:   base(),
		steps: []tev{{0, Started{PID: 7}}, {time.Second, exited(0)}},
		want:  "starting started:7 exited:code=0 stopped",
	}} {
		m := NewMachine(tc.cfg)
		got := strings.Join(told(m, m.Start(t0), tc.steps...), " ")
		if got != tc.want {
			t.Errorf("%s:\n got  %s\n want %s", tc.name, got, tc.want)
		}
	}
}

func deny(reason string) Verdict { return Verdict{Decision: hookspec.DecisionDeny, Reason: reason} }

// TestExitedClean: exited says whether the exit was clean, as -e, the
// restart policy's signals and a requested stop count it.
func TestExitedClean(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		steps []tev
		want  bool
	}{
		{"exit 0", base(), []tev{{0, Started{PID: 7}}, {time.Second, Exited{PID: 7, Status: ExitStatus{Code: 0}}}}, true},
		{"exit 3", base(), []tev{{0, Started{PID: 7}}, {time.Second, Exited{PID: 7, Status: ExitStatus{Code: 3}}}}, false},
		{"exit 3 with -e 0,3", with(func(c *Config) { c.Success = codes(0, 3) }),
			[]tev{{0, Started{PID: 7}}, {time.Second, Exited{PID: 7, Status: ExitStatus{Code: 3}}}}, true},
		{"SIGTERM from elsewhere", base(), []tev{{0, Started{PID: 7}}, {time.Second, Exited{PID: 7, Status: ExitStatus{Signal: syscall.SIGTERM}}}}, true},
		{"SIGKILL", base(), []tev{{0, Started{PID: 7}}, {time.Second, Exited{PID: 7, Status: ExitStatus{Signal: syscall.SIGKILL}}}}, false},
		{"SIGKILL after a requested stop", base(), []tev{{0, Started{PID: 7}}, {time.Second, StopRequested{}},
			{2 * time.Second, Exited{PID: 7, Status: ExitStatus{Signal: syscall.SIGKILL}}}}, true},
		{"exit 1 after a requested stop", base(), []tev{{0, Started{PID: 7}}, {time.Second, StopRequested{}},
			{2 * time.Second, Exited{PID: 7, Status: ExitStatus{Code: 1}}}}, true},
	} {
		m := NewMachine(tc.cfg)
		m.Start(t0)
		var got *hookspec.Event
		for _, st := range tc.steps {
			for _, a := range m.Step(at(st.At), st.Ev) {
				if n, ok := a.(Notify); ok && n.Event.Kind == hookspec.Exited {
					got = &n.Event
				}
			}
		}
		if got == nil || got.Clean != tc.want {
			t.Errorf("%s: exited %+v, want clean=%v", tc.name, got, tc.want)
		}
	}
}

// The exited event carries the pid, the uptime and how the run ended; an
// adopted program's status is unknown and says so.
func TestExitedEvent(t *testing.T) {
	m := NewMachine(base())
	m.Adopt(t0, 900, t0.Add(-time.Minute))
	for _, a := range m.Step(at(time.Second), Exited{PID: 900, Status: ExitStatus{Unknown: true}}) {
		if n, ok := a.(Notify); ok {
			e := n.Event
			if e.Kind != hookspec.Exited || e.PID != 900 || e.Uptime != 61*time.Second || !strings.Contains(e.Reason, "unknown") || !e.Time.Equal(at(time.Second)) {
				t.Fatalf("exited event %+v", e)
			}
			return
		}
	}
	t.Fatal("no exited event")
}

// TestProbeThresholds: the machine counts probe results within a run;
// a new run starts over, a result it could not get counts neither way.
func TestProbeThresholds(t *testing.T) {
	cfg := with(func(c *Config) { c.Probes = []Probe{{Plugin: "http", Failures: 2, Successes: 1}} })
	m := NewMachine(cfg)
	fail := Probed{Plugin: "http", Reason: "refused"}
	got := strings.Join(told(m, m.Start(t0),
		tev{0, Started{PID: 7}},
		tev{time.Second, Probed{Plugin: "http", Healthy: true, Reason: "200"}},
		tev{2 * time.Second, fail},
		tev{3 * time.Second, Probed{Plugin: "http", Unknown: true, Reason: "host restarting"}},
		tev{4 * time.Second, fail},
	), " ")
	if want := "starting started:7 healthy unhealthy"; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if s := m.Snapshot(); s.State != Cleanup || !strings.Contains(s.Reason, "http: refused") {
		t.Fatalf("after the threshold: %+v", s)
	}
	// The next run is judged afresh: one failure is not two.
	m.Step(at(5*time.Second), TreeEmpty{})
	m.Step(at(10*time.Second), TimerFired{ID: RespawnTimer})
	m.Step(at(10*time.Second), Started{PID: 8})
	if h := m.Snapshot().Health[0]; h.Health != "unknown" || h.Fails != 0 {
		t.Fatalf("a new run inherited %+v", h)
	}
	if acts := q(m.Step(at(11*time.Second), fail)); acts != nil {
		t.Fatalf("one failure in the new run: %s", fmtActs(acts))
	}
	// Results for an unknown plugin, or outside a run, are ignored.
	if acts := m.Step(at(12*time.Second), Probed{Plugin: "other"}); acts != nil {
		t.Fatalf("unknown plugin: %s", fmtActs(acts))
	}
}

// After supervision ended, nothing is told any more, exits included.
func TestNothingToldAfterTheEnd(t *testing.T) {
	m := NewMachine(base())
	m.Start(t0)
	m.Step(at(0), Started{PID: 7})
	m.Step(at(time.Second), exited(0)) // clean: stopped
	if acts := m.Step(at(2*time.Second), Exited{PID: 9, Status: ExitStatus{Code: 1}}); acts != nil {
		t.Fatalf("after the end: %s", fmtActs(acts))
	}
}

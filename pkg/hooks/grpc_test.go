package hooks

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
)

// connect serves impl through hookPlugin and returns a Client for it, both
// ends wired by go-plugin's TestPluginGRPCConn (in process, no TLS).
func connect(t *testing.T, impl any) *Client {
	t.Helper()
	ps := map[string]plugin.Plugin{PluginName: &hookPlugin{impl: impl, logger: hclog.NewNullLogger()}}
	gc, _ := plugin.TestPluginGRPCConn(t, false, ps)
	// Close asks the server to stop (go-plugin's Controller.Shutdown); a
	// Stop of our own as well would race with it.
	t.Cleanup(func() { gc.Close() })
	raw, err := gc.Dispense(PluginName)
	if err != nil {
		t.Fatal(err)
	}
	return &Client{g: raw.(*grpcClient)}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// full implements every capability and records what it receives.
type full struct {
	mu      sync.Mutex
	opts    map[string][]string
	events  []Event
	verdict Verdict
	err     error
	probe   ProbeResult
	sched   ProbeConfig
	subs    []Kind
	panicIn string
	block   bool // block until the context ends
}

func (f *full) enter(ctx context.Context, method string) error {
	f.mu.Lock()
	p, block, err := f.panicIn, f.block, f.err
	f.mu.Unlock()
	if p == method {
		panic("boom in " + method)
	}
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *full) Configure(ctx context.Context, opts *Options) error {
	if err := f.enter(ctx, "Configure"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = opts.Map()
	f.sched = opts.ProbeConfig(ProbeConfig{})
	f.subs = opts.Kinds("events", nil)
	opts.Has("extra")
	return opts.Err()
}

func (f *full) Notify(ctx context.Context, ev Event) error {
	if err := f.enter(ctx, "Notify"); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return nil
}

func (f *full) RestartPending(ctx context.Context, ev Event) (Verdict, error) {
	if err := f.enter(ctx, "RestartPending"); err != nil {
		return GiveUp("ignored with an error"), err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, ev)
	return f.verdict, nil
}

func (f *full) Probe(ctx context.Context) (ProbeResult, error) {
	if err := f.enter(ctx, "Probe"); err != nil {
		return ProbeResult{Healthy: true}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.probe, nil
}

func (f *full) ProbeConfig() ProbeConfig {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sched
}

func (f *full) Events() []Kind {
	if f.enter(context.Background(), "Events") != nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.subs
}

func (f *full) Version() string { return "1.2.3" }

func (f *full) set(fn func(f *full)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

var sampleEvent = Event{
	Kind:     Exited,
	Instance: "lighttpd",
	Program:  "/usr/sbin/lighttpd",
	Args:     []string{"-D", "-f", "/etc/lighttpd/lighttpd.conf"},
	PID:      4242,
	Time:     time.Date(2026, 3, 1, 12, 30, 45, 123456789, time.UTC),
	ExitCode: 0,
	Signal:   "SIGKILL",
	Uptime:   3*time.Minute + 12*time.Second,
	Attempt:  2,
	Limit:    5,
	Reason:   "killed",
}

func TestRoundTripEveryMethod(t *testing.T) {
	impl := &full{probe: ProbeResult{Healthy: true, Reason: "HTTP 200"}}
	c := connect(t, impl)
	ctx := ctx(t)

	pc, err := c.Configure(ctx, map[string][]string{
		"interval": {"2s"}, "failures": {"5"}, "events": {"exited,gave-up"}, "extra": {"b", "a"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := ProbeConfig{Interval: 2 * time.Second, Timeout: time.Second, FailureThreshold: 5, SuccessThreshold: 1}
	if pc == nil || *pc != want {
		t.Errorf("Configure = %+v, want %+v", pc, want)
	}
	impl.mu.Lock()
	extra := impl.opts["extra"]
	impl.mu.Unlock()
	if got := extra; !slices.Equal(got, []string{"b", "a"}) {
		t.Errorf("repeated option arrived as %q, want [b a] in order", got)
	}

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantInfo := Info{Version: "1.2.3", Events: []Kind{Exited, GaveUp}, Configure: true, Notify: true, Veto: true, Probe: true}
	if !reflect.DeepEqual(info, wantInfo) {
		t.Errorf("Info = %+v, want %+v", info, wantInfo)
	}
	if !info.Wants(Exited) || info.Wants(Started) {
		t.Error("Wants disagrees with Events")
	}

	if err := c.Notify(ctx, sampleEvent); err != nil {
		t.Fatal(err)
	}
	for _, v := range []Verdict{Allow(), DelayBy(90 * time.Second), Deny("maintenance"), GiveUp("broken config"), {Reason: "allow with a note"}} {
		impl.set(func(f *full) { f.verdict = v })
		got, err := c.RestartPending(ctx, Event{Kind: RestartPending, Attempt: 1})
		if err != nil || got != v {
			t.Errorf("RestartPending = %v, %v; want %v", got, err, v)
		}
	}
	impl.mu.Lock()
	events := slices.Clone(impl.events)
	impl.mu.Unlock()
	got := events[0]
	if !got.Time.Equal(sampleEvent.Time) {
		t.Errorf("time arrived as %v, want %v", got.Time, sampleEvent.Time)
	}
	got.Time = sampleEvent.Time
	if !reflect.DeepEqual(got, sampleEvent) {
		t.Errorf("Notify received\n%+v\nwant\n%+v", got, sampleEvent)
	}
	if got := events[1]; !reflect.DeepEqual(got, Event{Kind: RestartPending, Attempt: 1}) {
		t.Errorf("zero fields did not stay zero: %+v", got)
	}

	r, err := c.Probe(ctx)
	if err != nil || r != (ProbeResult{Healthy: true, Reason: "HTTP 200"}) {
		t.Errorf("Probe = %+v, %v", r, err)
	}
}

func TestConfigureErrors(t *testing.T) {
	c := connect(t, &full{})
	_, err := c.Configure(ctx(t), map[string][]string{"colour": {"red"}, "interval": {"abc"}})
	var pe *PluginError
	if !errors.As(err, &pe) {
		t.Fatalf("Configure error = %#v, want a *PluginError", err)
	}
	want := `configure: option interval: "abc" is not a duration; unknown option "colour"`
	if err.Error() != want {
		t.Errorf("Configure error = %q, want %q", err, want)
	}
}

// notifyOnly has a single capability.
type notifyOnly struct{ got chan Event }

func (n notifyOnly) Notify(ctx context.Context, ev Event) error { n.got <- ev; return nil }

func TestCapabilityDetection(t *testing.T) {
	n := notifyOnly{got: make(chan Event, 1)}
	c := connect(t, n)
	ctx := ctx(t)

	pc, err := c.Configure(ctx, nil)
	if err != nil || pc != nil {
		t.Errorf("Configure(nil) = %v, %v; want no schedule, no error", pc, err)
	}
	_, err = c.Configure(ctx, map[string][]string{"to": {"x"}})
	if err == nil || err.Error() != `configure: unknown option "to"` {
		t.Errorf("Configure of a plugin without options: %v", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Notify: true, Events: Kinds()}
	if !reflect.DeepEqual(info, want) {
		t.Errorf("Info = %+v, want %+v", info, want)
	}
	if err := c.Notify(ctx, Event{Kind: Started, PID: 7}); err != nil {
		t.Fatal(err)
	}
	if ev := <-n.got; ev.PID != 7 {
		t.Errorf("Notify got %+v", ev)
	}
	v, err := c.RestartPending(ctx, Event{Kind: RestartPending})
	if v != Allow() || !errors.Is(err, ErrUnimplemented) {
		t.Errorf("RestartPending = %v, %v; want allow, ErrUnimplemented", v, err)
	}
	r, err := c.Probe(ctx)
	if r.Healthy || !errors.Is(err, ErrUnimplemented) {
		t.Errorf("Probe = %+v, %v; want unhealthy, ErrUnimplemented", r, err)
	}
}

// vetoOnly shows that a vetoer without Notifier gets no events list.
type vetoOnly struct{}

func (vetoOnly) RestartPending(context.Context, Event) (Verdict, error) { return Deny("no"), nil }

func TestVetoOnly(t *testing.T) {
	c := connect(t, vetoOnly{})
	info, err := c.Info(ctx(t))
	if err != nil || !reflect.DeepEqual(info, Info{Veto: true}) {
		t.Errorf("Info = %+v, %v", info, err)
	}
	if info.Wants(Exited) {
		t.Error("a plugin without Notify wants events")
	}
	if err := c.Notify(ctx(t), sampleEvent); !errors.Is(err, ErrUnimplemented) {
		t.Errorf("Notify = %v, want ErrUnimplemented", err)
	}
}

func TestPanicRecovered(t *testing.T) {
	impl := &full{probe: ProbeResult{Healthy: true}}
	c := connect(t, impl)
	ctx := ctx(t)
	for _, m := range []string{"Configure", "Info", "Notify", "RestartPending", "Probe"} {
		impl.set(func(f *full) { f.panicIn = m })
		if m == "Info" {
			impl.set(func(f *full) { f.panicIn = "Events" })
		}
		var err error
		switch m {
		case "Configure":
			_, err = c.Configure(ctx, nil)
		case "Info":
			_, err = c.Info(ctx)
		case "Notify":
			err = c.Notify(ctx, sampleEvent)
		case "RestartPending":
			var v Verdict
			v, err = c.RestartPending(ctx, sampleEvent)
			if v != Allow() {
				t.Errorf("verdict after a panic = %v, want allow", v)
			}
		case "Probe":
			var r ProbeResult
			r, err = c.Probe(ctx)
			if r.Healthy {
				t.Error("a panicking probe counted as healthy")
			}
		}
		if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "boom in") {
			t.Errorf("%s: error = %v, want ErrPanic with the panic value", m, err)
		}
	}
	// The server survived every panic.
	impl.set(func(f *full) { f.panicIn = "" })
	if err := c.Notify(ctx, sampleEvent); err != nil {
		t.Errorf("Notify after the panics: %v", err)
	}
}

func TestPluginErrors(t *testing.T) {
	impl := &full{err: errors.New("smtp: connection refused")}
	c := connect(t, impl)
	ctx := ctx(t)
	err := c.Notify(ctx, sampleEvent)
	var pe *PluginError
	if !errors.As(err, &pe) || pe.Op != "notify" || pe.Message != "smtp: connection refused" {
		t.Errorf("Notify error = %#v", err)
	}
	v, err := c.RestartPending(ctx, sampleEvent)
	if v != Allow() || err == nil || err.Error() != "restart-pending: smtp: connection refused" {
		t.Errorf("RestartPending = %v, %v; want allow and the plugin's error", v, err)
	}
	r, err := c.Probe(ctx)
	if r.Healthy || r.Reason != "probe: smtp: connection refused" || err == nil {
		t.Errorf("Probe = %+v, %v", r, err)
	}
}

func TestDeadline(t *testing.T) {
	impl := &full{block: true}
	c := connect(t, impl)
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	v, err := c.RestartPending(short, sampleEvent)
	if v != Allow() || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("RestartPending past its deadline = %v, %v", v, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("RestartPending took %v past a 50ms deadline", d)
	}
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Notify(canceled, sampleEvent); !errors.Is(err, context.Canceled) {
		t.Errorf("Notify with a canceled context = %v", err)
	}
}

// badVetoer answers verdicts that make no sense.
type badVetoer struct{ v Verdict }

func (b badVetoer) RestartPending(context.Context, Event) (Verdict, error) { return b.v, nil }

func TestBadVerdict(t *testing.T) {
	for _, v := range []Verdict{{Decision: 7}, {Decision: -1}, {Decision: DecisionDelay}, {Decision: DecisionDelay, Delay: -time.Second}} {
		c := connect(t, badVetoer{v})
		got, err := c.RestartPending(ctx(t), sampleEvent)
		if got != Allow() || !errors.Is(err, ErrBadVerdict) {
			t.Errorf("verdict %#v arrived as %v, %v; want allow, ErrBadVerdict", v, got, err)
		}
	}
	// A delay on a deny is dropped rather than refused.
	c := connect(t, badVetoer{Verdict{Decision: DecisionDeny, Delay: time.Hour, Reason: "x"}})
	if got, err := c.RestartPending(ctx(t), sampleEvent); err != nil || got != Deny("x") {
		t.Errorf("deny with a delay = %v, %v", got, err)
	}
}

func TestCheckImpl(t *testing.T) {
	if err := checkImpl(nil); err == nil {
		t.Error("nil accepted")
	}
	if err := checkImpl(struct{}{}); err == nil || !strings.Contains(err.Error(), "struct {} implements none of") {
		t.Errorf("checkImpl(struct{}{}) = %v", err)
	}
	if _, err := InProcess(42); err == nil {
		t.Error("InProcess(42) succeeded")
	}
}

// A capability lost to a wrong signature or a value passed for a pointer is
// refused by name, not served as a plugin that silently lacks it.
type (
	wrongVeto   struct{ notifyOnly }
	pointerOnly struct{}
)

func (wrongVeto) RestartPending(ctx context.Context, ev Event) Verdict { return Deny("x") }
func (*pointerOnly) RestartPending(context.Context, Event) (Verdict, error) {
	return Allow(), nil
}
func (*pointerOnly) Version() string { return "1" }

func TestCheckImplMisfits(t *testing.T) {
	for _, tt := range []struct {
		impl any
		want string
	}{
		{wrongVeto{}, "hooks.wrongVeto has RestartPending(context.Context, hooks.Event) hooks.Verdict, not hooks.Vetoer's RestartPending(context.Context, hooks.Event) (hooks.Verdict, error), so it is no Vetoer"},
		{pointerOnly{}, "hooks.pointerOnly has RestartPending on its pointer only, so it is no Vetoer: pass a pointer (&hooks.pointerOnly{...}); " +
			"hooks.pointerOnly has Version on its pointer only, so it is no Versioner: pass a pointer (&hooks.pointerOnly{...})"},
	} {
		if err := checkImpl(tt.impl); err == nil || err.Error() != tt.want {
			t.Errorf("checkImpl(%T) =\n%v\nwant\n%s", tt.impl, err, tt.want)
		}
		if _, err := InProcess(tt.impl); err == nil {
			t.Errorf("InProcess(%T) succeeded", tt.impl)
		}
	}
	if err := checkImpl(&pointerOnly{}); err != nil {
		t.Errorf("checkImpl(&pointerOnly{}) = %v", err)
	}
}

func TestInProcess(t *testing.T) {
	impl := &full{verdict: DelayBy(time.Second), probe: ProbeResult{Healthy: true}}
	c, err := InProcess(impl)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	v, err := c.RestartPending(ctx(t), sampleEvent)
	if err != nil || v != DelayBy(time.Second) {
		t.Errorf("RestartPending = %v, %v", v, err)
	}
	if c.PID() != 0 || c.Exited() {
		t.Errorf("PID %d, Exited %v", c.PID(), c.Exited())
	}
	c.Kill()
	c.Kill()
	if !c.Exited() {
		t.Error("not Exited after Kill")
	}
	if _, err := c.RestartPending(ctx(t), sampleEvent); err == nil {
		t.Error("RestartPending after Kill succeeded")
	}
}

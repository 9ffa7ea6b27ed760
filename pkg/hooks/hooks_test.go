package hooks

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/pkg/hookspec"
)

func TestStrictest(t *testing.T) {
	tests := []struct {
		name string
		in   []Verdict
		want Verdict
	}{
		{"none", nil, Allow()},
		{"allow", []Verdict{Allow(), Allow()}, Allow()},
		{"delay beats allow", []Verdict{Allow(), DelayBy(time.Second)}, DelayBy(time.Second)},
		{"longest delay", []Verdict{DelayBy(time.Second), DelayBy(time.Minute), DelayBy(time.Second)}, DelayBy(time.Minute)},
		{"deny beats delay", []Verdict{DelayBy(time.Hour), Deny("hold"), Allow()}, Deny("hold")},
		{"first deny wins", []Verdict{Deny("a"), Deny("b")}, Deny("a")},
		{"give-up beats all", []Verdict{Deny("a"), GiveUp("done"), DelayBy(time.Hour)}, GiveUp("done")},
		{"zero delay is allow", []Verdict{DelayBy(0), DelayBy(-time.Second)}, Allow()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Strictest(tt.in...); got != tt.want {
				t.Errorf("Strictest = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestVerdictString(t *testing.T) {
	for v, want := range map[Verdict]string{
		Allow():                                     "allow",
		DelayBy(5 * time.Second):                    "delay 5s",
		Deny("maintenance"):                         "deny: maintenance",
		GiveUp("too many"):                          "give-up: too many",
		{Decision: Decision(9)}:                     "decision(9)",
		{Decision: -1, Reason: "x"}:                 "decision(-1): x",
		{Decision: DecisionGiveUp}:                  "give-up",
		{Decision: DecisionDelay, Delay: time.Hour}: "delay 1h0m0s",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", v, got, want)
		}
	}
	for _, d := range []Decision{DecisionAllow, DecisionDelay, DecisionDeny, DecisionGiveUp} {
		if got, err := ParseDecision(d.String()); err != nil || got != d {
			t.Errorf("ParseDecision(%q) = %v, %v", d.String(), got, err)
		}
	}
	if _, err := ParseDecision("maybe"); err == nil {
		t.Error("ParseDecision(maybe) succeeded")
	}
}

func TestKinds(t *testing.T) {
	ks := Kinds()
	if len(ks) != 12 {
		t.Fatalf("Kinds() has %d kinds, want 12", len(ks))
	}
	ks[0] = "changed"
	if Kinds()[0] != Starting {
		t.Error("Kinds() returned the package's own slice")
	}
	for _, k := range Kinds() {
		if !k.Valid() {
			t.Errorf("%q not Valid", k)
		}
	}
	if Kind("crashed").Valid() {
		t.Error(`"crashed" is Valid`)
	}
	want := []Kind{"starting", "started", "exited", "restart-pending", "held", "released", "restarting", "healthy", "unhealthy", "stopping", "stopped", "gave-up"}
	if !slices.Equal(Kinds(), want) {
		t.Errorf("Kinds() = %v, want %v", Kinds(), want)
	}
}

func TestProbeConfigWithDefaults(t *testing.T) {
	if got := (ProbeConfig{}).WithDefaults(); got != DefaultProbeConfig {
		t.Errorf("zero.WithDefaults() = %+v", got)
	}
	c := ProbeConfig{Interval: time.Second, InitialDelay: -1, FailureThreshold: 7}
	got := c.WithDefaults()
	want := ProbeConfig{Interval: time.Second, Timeout: time.Second, FailureThreshold: 7, SuccessThreshold: 1}
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
}

func TestOptions(t *testing.T) {
	opts := NewOptions(map[string][]string{
		"url":      {"http://x/"},
		"interval": {"abc"},
		"timeout":  {"3"},
		"header":   {"A: 1", "B: 2"},
		"colour":   {"red"},
		"twice":    {"1", "2"},
		"on":       {"yes"},
		"bad-bool": {"maybe"},
		"n":        {"42"},
		"bad-n":    {"4x"},
		"decision": {"maybe"},
		"events":   {"exited,gave-up", "exited"},
		"neg":      {"-1s"},
		"to":       {"a@x, b@y", "c@z"},
	})
	if got := opts.String("url", ""); got != "http://x/" {
		t.Errorf("url = %q", got)
	}
	if got := opts.String("missing", "def"); got != "def" {
		t.Errorf("missing = %q", got)
	}
	if got := opts.Duration("interval", time.Minute); got != time.Minute {
		t.Errorf("bad interval = %v, want the default", got)
	}
	if got := opts.Duration("timeout", 0); got != 3*time.Second {
		t.Errorf("timeout = %v, want 3s (bare seconds)", got)
	}
	if got := opts.Strings("header"); !slices.Equal(got, []string{"A: 1", "B: 2"}) {
		t.Errorf("header = %q", got)
	}
	if got := opts.Strings("nothing"); got != nil {
		t.Errorf("nothing = %q", got)
	}
	opts.String("twice", "")
	if !opts.Bool("on", false) || opts.Bool("bad-bool", true) != true {
		t.Error("Bool")
	}
	if opts.Int("n", 0) != 42 || opts.Int("bad-n", 7) != 7 {
		t.Error("Int")
	}
	if got := opts.OneOf("decision", "allow", "allow", "deny"); got != "allow" {
		t.Errorf("decision = %q", got)
	}
	if got := opts.Kinds("events", nil); !slices.Equal(got, []Kind{Exited, GaveUp}) {
		t.Errorf("events = %v", got)
	}
	opts.Duration("neg", 0)
	if got := opts.List("to"); !slices.Equal(got, []string{"a@x", "b@y", "c@z"}) {
		t.Errorf("to = %q", got)
	}
	opts.Errorf("url", "must be http or https")
	err := opts.Err()
	if err == nil {
		t.Fatal("Err() = nil")
	}
	want := []string{
		`option interval: "abc" is not a duration`,
		`option twice: given 2 times`,
		`option bad-bool: "maybe" is not a boolean`,
		`option bad-n: "4x" is not an integer`,
		`option decision: "maybe" is not one of allow, deny`,
		`option neg: "-1s" is negative`,
		`option url: must be http or https`,
		`unknown option "colour"`,
	}
	if got := err.Error(); got != strings.Join(want, "; ") {
		t.Errorf("Err() =\n%s\nwant\n%s", got, strings.Join(want, "; "))
	}
	if m := opts.Map(); len(m) != 14 || m["header"][1] != "B: 2" {
		t.Errorf("Map() = %v", m)
	}
}

func TestOptionsClean(t *testing.T) {
	opts := NewOptions(map[string][]string{"url": {"x"}, "events": {"all"}})
	opts.String("url", "")
	if got := opts.Kinds("events", nil); !slices.Equal(got, Kinds()) {
		t.Errorf("events=all = %v", got)
	}
	if err := opts.Err(); err != nil {
		t.Errorf("Err() = %v", err)
	}
	if err := NewOptions(nil).Err(); err != nil {
		t.Errorf("empty Err() = %v", err)
	}
	opts = NewOptions(map[string][]string{"events": {"exited,crashed"}})
	opts.Kinds("events", nil)
	if err := opts.Err(); err == nil || !strings.Contains(err.Error(), `option events: unknown event "crashed"`) {
		t.Errorf("Err() = %v", err)
	}
}

func TestOptionsProbeConfig(t *testing.T) {
	opts := NewOptions(map[string][]string{"interval": {"2s"}, "failures": {"5"}, "initial-delay": {"1m"}})
	got := opts.ProbeConfig(ProbeConfig{Timeout: 500 * time.Millisecond})
	want := ProbeConfig{Interval: 10 * time.Second, Timeout: 500 * time.Millisecond, InitialDelay: time.Minute, FailureThreshold: 5, SuccessThreshold: 1}
	want.Interval = 2 * time.Second
	if got != want || opts.Err() != nil {
		t.Errorf("ProbeConfig = %+v, %v; want %+v", got, opts.Err(), want)
	}
	opts = NewOptions(map[string][]string{"interval": {"0"}, "failures": {"0"}, "successes": {"-1"}, "timeout": {"0s"}})
	got = opts.ProbeConfig(DefaultProbeConfig)
	if got != DefaultProbeConfig {
		t.Errorf("ProbeConfig = %+v, want the defaults", got)
	}
	wantErr := "option interval: must be more than 0; option timeout: must be more than 0; option failures: must be at least 1; option successes: must be at least 1"
	if err := opts.Err(); err == nil || err.Error() != wantErr {
		t.Errorf("Err() = %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "5": 5 * time.Second, "0.5": 500 * time.Millisecond, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"abc":                  `"abc" is not a duration`,
		"-5":                   `"-5" is negative`,
		"-1h":                  `"-1h" is negative`,
		"":                     `"" is not a duration`,
		"99999999999999999999": `"99999999999999999999" is too long`,
		"1e309":                `"1e309" is too long`,
		"9999999999999":        `"9999999999999" is too long`,
	} {
		if _, err := ParseDuration(in); err == nil || err.Error() != want {
			t.Errorf("ParseDuration(%q) error = %v, want %s", in, err, want)
		}
	}
}

func TestParseSpec(t *testing.T) {
	tests := []struct {
		spec string
		name string
		opts map[string][]string
		err  string
	}{
		{spec: "healthcheck-http", name: "healthcheck-http", opts: map[string][]string{}},
		{spec: "x:", name: "x", opts: map[string][]string{}},
		{spec: "x:a=1,b=2", name: "x", opts: map[string][]string{"a": {"1"}, "b": {"2"}}},
		{spec: "x:header=A: 1,header=B: 2", name: "x", opts: map[string][]string{"header": {"A: 1", "B: 2"}}},
		{spec: "notify-email:events=exited,gave-up,to=a@x", name: "notify-email", opts: map[string][]string{"events": {"exited,gave-up"}, "to": {"a@x"}}},
		{spec: `x:header=Accept: a\, b,url=http://h/?q=1`, name: "x", opts: map[string][]string{"header": {"Accept: a, b"}, "url": {"http://h/?q=1"}}},
		{spec: `x:a=\\,b=`, name: "x", opts: map[string][]string{"a": {`\`}, "b": {""}}},
		{spec: "x:a=1,,b=2,", name: "x", opts: map[string][]string{"a": {"1"}, "b": {"2"}}},
		{spec: "x:url=http://h:8080/", name: "x", opts: map[string][]string{"url": {"http://h:8080/"}}},
		{spec: "", err: "empty plugin name"},
		{spec: ":a=1", err: "empty plugin name"},
		{spec: "../evil", err: `plugin name "../evil"`},
		{spec: "a/b:x=1", err: `plugin name "a/b"`},
		{spec: "-x", err: `plugin name "-x"`},
		{spec: "x:flag", err: `plugin x: option "flag" has no value (key=value)`},
		{spec: "x:=1", err: `plugin x: option "=1" has no name`},
	}
	for _, tt := range tests {
		name, opts, err := ParseSpec(tt.spec)
		if tt.err != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
				t.Errorf("ParseSpec(%q) error = %v, want %s", tt.spec, err, tt.err)
			}
			continue
		}
		if err != nil || name != tt.name || !equalOpts(opts, tt.opts) {
			t.Errorf("ParseSpec(%q) = %q, %q, %v; want %q, %q", tt.spec, name, opts, err, tt.name, tt.opts)
		}
	}
}

func equalOpts(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// formatSpec is ParseSpec's inverse, for the round trip in FuzzParseSpec.
func formatSpec(name string, opts map[string][]string) string {
	var b strings.Builder
	b.WriteString(name)
	sep := ":"
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range opts {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, v := range opts[k] {
			b.WriteString(sep)
			sep = ","
			esc := strings.NewReplacer(`\`, `\\`, ",", `\,`)
			b.WriteString(esc.Replace(k) + "=" + esc.Replace(v))
		}
	}
	return b.String()
}

func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{"x", "x:a=1,b=2", `x:h=a\,b,h=c`, "x:events=exited,gave-up", "x:=", `x:\`, "x:a=b=c", "a.b_c-d:",
		"x:timeout=500ms", "x:timeout=0", "x:timeout=3,timeout=-1s", "x:sha256=" + strings.Repeat("AB", 32), "x:sha256=abc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		name, opts, err := ParseSpec(spec)
		if err != nil {
			return
		}
		if hookspec.CheckName(name) != nil || strings.ContainsAny(name, "/:") {
			t.Fatalf("ParseSpec(%q) accepted name %q", spec, name)
		}
		for k := range opts {
			if k == "" || strings.Contains(k, "=") {
				t.Fatalf("ParseSpec(%q) gave key %q", spec, k)
			}
		}
		name2, opts2, err := ParseSpec(formatSpec(name, opts))
		if err != nil || name2 != name || !equalOpts(opts, opts2) {
			t.Fatalf("round trip of %q: %q %q %v, then %q %q", spec, name, opts, err, name2, opts2)
		}
		// respawner's own reading of the same --plugin: sha256 and timeout.
		sp, err := hookwire.ParseSpec(spec)
		if err != nil {
			return
		}
		if sp.Name != name || sp.Timeout <= 0 {
			t.Fatalf("hookwire.ParseSpec(%q): name %q timeout %s", spec, sp.Name, sp.Timeout)
		}
		if _, ok := sp.Options["sha256"]; ok {
			t.Fatalf("hookwire.ParseSpec(%q) passes sha256 to the plugin", spec)
		}
		if sp.SHA256 != "" && (len(sp.SHA256) != 64 || strings.Trim(sp.SHA256, "0123456789abcdef") != "") {
			t.Fatalf("hookwire.ParseSpec(%q): sha256 %q", spec, sp.SHA256)
		}
	})
}

// FuzzOptions feeds --plugin options, as a plugin receives them, to every
// getter of Options: none may panic, Err must name every bad value and every
// option no getter read, and a clean Err must mean each value was taken.
func FuzzOptions(f *testing.F) {
	for _, s := range []string{
		"x:interval=5s,timeout=1,failures=3,successes=1,initial-delay=0",
		"x:interval=0,failures=0,successes=-1", "x:events=all", "x:events=exited,nope",
		"x:flag=yes,n=12,d=1m30s,c=red", "x:flag=maybe,n=1e3,d=-5,d=6", "x:list=a@x, b@y,,list=c",
		"x:n=99999999999999999999", "x:d=9223372037s", "x:colour=red",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		_, m, err := ParseSpec(spec)
		if err != nil {
			return
		}
		o := NewOptions(m)
		known := []string{"s", "flag", "n", "d", "c", "list", "h", "events"}
		o.String("s", "")
		o.Bool("flag", false)
		o.Int("n", 0)
		o.Duration("d", 0)
		o.OneOf("c", "red", "red", "green")
		o.List("list")
		o.Strings("h")
		o.Kinds("events", nil)
		pc := o.ProbeConfig(ProbeConfig{})
		if pc.Interval <= 0 || pc.Timeout <= 0 || pc.FailureThreshold < 1 || pc.SuccessThreshold < 1 {
			t.Fatalf("%q: probe config %+v", spec, pc)
		}
		known = append(known, "interval", "timeout", "initial-delay", "failures", "successes")
		err = o.Err()
		for k := range m {
			if !slices.Contains(known, k) && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("unknown option %q", k))) {
				t.Fatalf("%q: unknown option %q not reported: %v", spec, k, err)
			}
		}
		if err != nil && strings.Contains(err.Error(), "\n") && !strings.ContainsAny(spec, "\n") {
			t.Fatalf("%q: Err is more than one line: %q", spec, err)
		}
		if !equalOpts(o.Map(), m) {
			t.Fatalf("%q: Map %q, want %q", spec, o.Map(), m)
		}
	})
}

package hookspec

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/eventschema"
)

// roundTrip marshals v, checks the JSON against want, and unmarshals it into
// a fresh value that must equal v.
func roundTrip[T any](t *testing.T, v T, want string) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal(%+v): %v", v, err)
	}
	if string(b) != want {
		t.Errorf("Marshal(%+v) =\n%s\nwant\n%s", v, b, want)
	}
	var got T
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal(%s): %v", b, err)
	}
	if !reflect.DeepEqual(got, v) {
		t.Errorf("round trip of %+v gave %+v", v, got)
	}
}

// TestEventJSON: the documented form of an event: every field, the uptime
// in whole milliseconds under uptime_ms, the time in RFC 3339.
func TestEventJSON(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 5, 250_000_000, time.UTC)
	roundTrip(t, Event{Kind: Exited, Instance: "web", Program: "/usr/sbin/lighttpd", Args: []string{"-D", "-f", "x.conf"},
		PID: 4242, Time: at, ExitCode: 3, Uptime: 90 * time.Second, Attempt: 2, Limit: 5, Reason: "crashed",
		Output: []string{"listening", "fatal: out of memory"}, Host: "web1"},
		`{"kind":"exited","instance":"web","program":"/usr/sbin/lighttpd","args":["-D","-f","x.conf"],"pid":4242,"time":"2026-03-01T12:30:05.25Z","exit_code":3,"signal":"","uptime_ms":90000,"attempt":2,"limit":5,"reason":"crashed","clean":false,"output":["listening","fatal: out of memory"],"host":"web1"}`)
	roundTrip(t, Event{Kind: GaveUp, Args: []string{}, Output: []string{}, Time: at, Signal: "SIGKILL", Clean: true},
		`{"kind":"gave-up","instance":"","program":"","args":[],"pid":0,"time":"2026-03-01T12:30:05.25Z","exit_code":0,"signal":"SIGKILL","uptime_ms":0,"attempt":0,"limit":0,"reason":"","clean":true,"output":[],"host":""}`)

	// nil Args and Output are [] in JSON; a sub-millisecond uptime rounds up, never to 0.
	b, _ := json.Marshal(Event{Kind: Started, Uptime: 1500 * time.Microsecond})
	if !strings.Contains(string(b), `"args":[]`) || !strings.Contains(string(b), `"output":[]`) || !strings.Contains(string(b), `"uptime_ms":2`) {
		t.Errorf("Marshal: %s", b)
	}
	// An absent duration reads as 0, even into a used Event; a bad one is
	// an error naming the key.
	ev := Event{Uptime: time.Second}
	if err := json.Unmarshal([]byte(`{"kind":"started","pid":7}`), &ev); err != nil || ev.Uptime != 0 || ev.PID != 7 || ev.Kind != Started {
		t.Errorf("partial event: %+v, %v", ev, err)
	}
	for in, want := range map[string]string{
		`{"uptime_ms":-1}`:                  "uptime_ms: -1 is negative",
		`{"uptime_ms":9223372036854775807}`: "uptime_ms: 9223372036854775807 is too long",
		`{"uptime_ms":1.5}`:                 "cannot unmarshal number 1.5",
		`{"time":"yesterday"}`:              "cannot parse",
	} {
		if err := json.Unmarshal([]byte(in), new(Event)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Unmarshal(%s) = %v, want %q", in, err, want)
		}
	}
}

// TestDecisionText: decisions are their names in JSON; an unknown name, or a
// Decision outside the four, is an error, never a silent allow.
func TestDecisionText(t *testing.T) {
	for d, name := range map[Decision]string{DecisionAllow: "allow", DecisionDelay: "delay", DecisionDeny: "deny", DecisionGiveUp: "give-up"} {
		roundTrip(t, d, `"`+name+`"`)
	}
	for _, bad := range []string{`"maybe"`, `"Allow"`, `""`, `"decision(7)"`} {
		var d Decision = DecisionDeny
		err := json.Unmarshal([]byte(bad), &d)
		if !errors.Is(err, ErrUnknownDecision) {
			t.Errorf("Unmarshal(%s) = %v, want ErrUnknownDecision", bad, err)
		}
		if d != DecisionDeny {
			t.Errorf("Unmarshal(%s) changed the decision to %v", bad, d)
		}
	}
	if _, err := json.Marshal(Decision(7)); !errors.Is(err, ErrUnknownDecision) {
		t.Errorf("Marshal(Decision(7)) = %v, want ErrUnknownDecision", err)
	}
}

// TestVerdictJSON: a verdict is {decision, delay_ms, reason}; an unknown
// decision inside one is ErrUnknownDecision too.
func TestVerdictJSON(t *testing.T) {
	roundTrip(t, DelayBy(1500*time.Millisecond), `{"decision":"delay","delay_ms":1500,"reason":""}`)
	roundTrip(t, Deny("maintenance"), `{"decision":"deny","delay_ms":0,"reason":"maintenance"}`)
	roundTrip(t, GiveUp("broken"), `{"decision":"give-up","delay_ms":0,"reason":"broken"}`)
	roundTrip(t, Allow(), `{"decision":"allow","delay_ms":0,"reason":""}`)
	var v Verdict
	if err := json.Unmarshal([]byte(`{"decision":"perhaps","delay_ms":5}`), &v); !errors.Is(err, ErrUnknownDecision) {
		t.Errorf("unknown decision: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"decision":"delay","delay_ms":-5}`), &v); err == nil || err.Error() != "delay_ms: -5 is negative" {
		t.Errorf("negative delay: %v", err)
	}
}

// TestProbeJSON: the probe's schedule has its durations in milliseconds and
// its thresholds by name; a result is {healthy, reason}.
func TestProbeJSON(t *testing.T) {
	roundTrip(t, DefaultProbeConfig, `{"interval_ms":10000,"timeout_ms":1000,"initial_delay_ms":0,"failure_threshold":3,"success_threshold":1}`)
	roundTrip(t, ProbeConfig{Interval: 250 * time.Millisecond, Timeout: 100 * time.Millisecond, InitialDelay: 1500 * time.Millisecond, FailureThreshold: 2, SuccessThreshold: 4},
		`{"interval_ms":250,"timeout_ms":100,"initial_delay_ms":1500,"failure_threshold":2,"success_threshold":4}`)
	roundTrip(t, ProbeResult{Healthy: true, Reason: "HTTP 200"}, `{"healthy":true,"reason":"HTTP 200"}`)
	var c ProbeConfig
	if err := json.Unmarshal([]byte(`{"interval_ms":5,"timeout_ms":-1}`), &c); err == nil || err.Error() != "timeout_ms: -1 is negative" {
		t.Errorf("negative timeout: %v", err)
	}
}

// TestEventSchema: docs/event.schema.json describes exactly what Event
// marshals to: every kind, every field, and the shape of each; a document
// that breaks it is refused, so the check can fail.
func TestEventSchema(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 30, 5, 250_000_000, time.UTC)
	for _, k := range Kinds() {
		ev := Event{Kind: k, Instance: "web", Program: "/usr/sbin/lighttpd", Time: at, Host: "web1"}
		if k == Exited {
			ev.PID, ev.Signal, ev.Uptime, ev.Output = 42, "SIGKILL", time.Second, []string{"fatal"}
		}
		b, _ := json.Marshal(ev)
		if err := eventschema.Validate(b); err != nil {
			t.Errorf("%s: %v\n%s", k, err, b)
		}
	}
	good, _ := json.Marshal(Event{Kind: Started})
	for name, bad := range map[string]string{
		"unknown kind":  strings.Replace(string(good), `"started"`, `"crashed"`, 1),
		"missing field": strings.Replace(string(good), `,"host":""`, ``, 1),
		"extra field":   strings.TrimSuffix(string(good), "}") + `,"extra":1}`,
		"wrong type":    strings.Replace(string(good), `"clean":false`, `"clean":"no"`, 1),
	} {
		if eventschema.Validate([]byte(bad)) == nil {
			t.Errorf("%s: %s passes the schema", name, bad)
		}
	}
}

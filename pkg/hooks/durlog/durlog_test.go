package durlog

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Every way of logging through a wrapped logger writes a duration as a
// string in JSON, the loggers it derives included; other values keep their
// JSON type, and the text format reads as before.
func TestDurationsAreStrings(t *testing.T) {
	var out strings.Builder
	log := Wrap(hclog.New(&hclog.LoggerOptions{Output: &out, Level: hclog.Trace, JSONFormat: true}))
	log.Info("info", "delay", 5*time.Second, "pid", 42)
	log.Warn("warn", "uptime", 1002*time.Millisecond)
	log.Error("error", "timeout", 10*time.Second)
	log.Debug("debug", "took", 300*time.Microsecond)
	log.Trace("trace", "d", time.Duration(0))
	log.Log(hclog.Info, "log", "d", time.Minute)
	log.With("every", 2*time.Second).Info("with")
	log.Named("sub").Info("named", "d", time.Hour)
	log.ResetNamed("other").Info("reset", "d", time.Millisecond)
	want := []map[string]any{
		{"delay": "5s", "pid": 42.0},
		{"uptime": "1.002s"},
		{"timeout": "10s"},
		{"took": "300µs"},
		{"d": "0s"},
		{"d": "1m0s"},
		{"every": "2s"},
		{"d": "1h0m0s"},
		{"d": "1ms"},
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for k, v := range want[i] {
			if rec[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v (%s)", i, k, rec[k], v, line)
			}
		}
	}

	out.Reset()
	text := Wrap(hclog.New(&hclog.LoggerOptions{Output: &out, DisableTime: true}))
	text.Info("exited", "uptime", 1500*time.Millisecond)
	if got := out.String(); got != "[INFO]  exited: uptime=1.5s\n" {
		t.Errorf("text: %q", got)
	}
}

// A call without a duration passes its arguments on as they are.
func TestArgsWithoutDurationsUntouched(t *testing.T) {
	args := []any{"pid", 1, "name", "x"}
	if got := Args(args); &got[0] != &args[0] {
		t.Error("Args copied arguments that hold no duration")
	}
	if n := testing.AllocsPerRun(100, func() { Args(args) }); n != 0 {
		t.Errorf("Args allocates %v times without a duration", n)
	}
}

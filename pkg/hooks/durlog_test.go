package hooks

import (
	"encoding/json"
	"io"
	"os"
	"testing"
	"time"
)

// A plugin's logger writes durations as strings, also through the loggers
// it derives, so that respawner's JSON log never holds nanoseconds.
func TestNewLoggerWritesDurationsAsStrings(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stderr := os.Stderr
	os.Stderr = w
	log := NewLogger()
	os.Stderr = stderr
	log.Named("probe").With("interval", 10*time.Second).Info("configured", "timeout", 2*time.Second, "failures", 3)
	w.Close()
	b, _ := io.ReadAll(r)
	var rec map[string]any
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("%v: %q", err, b)
	}
	if rec["interval"] != "10s" || rec["timeout"] != "2s" || rec["failures"] != 3.0 {
		t.Fatalf("logged %s", b)
	}
}

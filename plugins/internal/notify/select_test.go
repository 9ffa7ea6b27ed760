package notify

import (
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hookspec"
)

func TestDefaultSelection(t *testing.T) {
	s := DefaultConfig.Events
	for _, tc := range []struct {
		ev   hookspec.Event
		want bool
	}{
		{hookspec.Event{Kind: hookspec.Exited, Signal: "SIGKILL"}, true},
		{hookspec.Event{Kind: hookspec.Exited, ExitCode: 1}, true},
		{hookspec.Event{Kind: hookspec.Exited}, true}, // not marked clean
		{hookspec.Event{Kind: hookspec.Exited, Clean: true}, false},
		{hookspec.Event{Kind: hookspec.Exited, Signal: "SIGTERM", Clean: true}, false},
		{hookspec.Event{Kind: hookspec.Held}, true},
		{hookspec.Event{Kind: hookspec.Released}, false},
		{hookspec.Event{Kind: hookspec.Unhealthy}, true},
		{hookspec.Event{Kind: hookspec.GaveUp}, true},
		{hookspec.Event{Kind: hookspec.Started}, false},
		{hookspec.Event{Kind: hookspec.Stopped}, false},
	} {
		if got := s.Match(tc.ev); got != tc.want {
			t.Errorf("Match(%s %d %q) = %v", tc.ev.Kind, tc.ev.ExitCode, tc.ev.Signal, got)
		}
	}
	if got := s.Kinds(); len(got) != 4 {
		t.Errorf("subscribes to %v, want unhealthy, held, gave-up and exited", got)
	}
}

func TestParseOptions(t *testing.T) {
	opts := hooks.NewOptions(map[string][]string{"events": {"exited,stopped"}, "window": {"30s"}, "retries": {"0"}})
	c := ParseOptions(opts)
	if err := opts.Err(); err != nil {
		t.Fatal(err)
	}
	if c.Window != 30*time.Second || c.Retries != 0 || !c.Events.Match(hookspec.Event{Kind: hookspec.Exited}) || c.Events.String() != "exited,stopped" {
		t.Errorf("config %+v", c)
	}
	for _, tc := range []struct {
		opts map[string][]string
		want string
	}{
		{map[string][]string{"events": {"exited,crashed"}}, `option events: unknown event "crashed"`},
		{map[string][]string{"events": {""}}, "option events: empty"},
		{map[string][]string{"window": {"soon"}}, "option window:"},
		{map[string][]string{"retries": {"-1"}}, "option retries: must be 0 or more"},
		{map[string][]string{"queue": {"0"}}, "option queue: must be at least 1"},
		{map[string][]string{"grace": {"5s"}}, "option grace: 5s is too long"},
		{map[string][]string{"timeout": {"0"}}, "option timeout: must be more than 0"},
	} {
		opts := hooks.NewOptions(tc.opts)
		ParseOptions(opts)
		err := opts.Err()
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line with %q", tc.opts, err, tc.want)
		}
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		ev   hookspec.Event
		want string
	}{
		{hookspec.Event{Kind: hookspec.Exited, Signal: "SIGKILL", Uptime: 90 * time.Second}, "killed by SIGKILL after 1m30s"},
		{hookspec.Event{Kind: hookspec.Exited, ExitCode: 3}, "exited with code 3"},
		{hookspec.Event{Kind: hookspec.GaveUp, Reason: "gave up: respawn limit reached"}, "gave up: respawn limit reached"},
		{hookspec.Event{Kind: hookspec.Unhealthy, Reason: "healthcheck-http: HTTP 503"}, "unhealthy: healthcheck-http: HTTP 503"},
		{hookspec.Event{Kind: hookspec.Restarting, Attempt: 3, Limit: 5}, "restarting (restart 3 of 5)"},
	} {
		if got := Describe(tc.ev); got != tc.want {
			t.Errorf("Describe(%+v) = %q, want %q", tc.ev, got, tc.want)
		}
	}
}

// A digest of one event says so in the singular.
func TestSummarySingular(t *testing.T) {
	var d Digest
	d.add(hookspec.Event{Kind: hookspec.Exited, Instance: "web", Signal: "SIGSEGV"})
	if got, want := d.Summary(), "1 more exit of web since 00:00, last: killed by SIGSEGV"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	d.add(hookspec.Event{Kind: hookspec.Restarting, Instance: "web", Attempt: 2})
	if got := d.Summary(); !strings.HasPrefix(got, "2 more events of web") {
		t.Errorf("got %q", got)
	}
}

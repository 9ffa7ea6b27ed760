package notify

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// MaxDigestEvents is how many of the events gathered into a Digest it keeps,
// the latest ones; Count counts them all.
const MaxDigestEvents = 20

// Message is what a Sender delivers: one event, a digest of several, or
// (Repeat) a reminder of what still holds.
type Message struct {
	// Event is the event; for a digest the last one gathered.
	Event hookspec.Event
	// Digest is set when the message gathers the events of a window.
	Digest *Digest
	// Repeat is set, with nothing else, when a Repeater has state to say
	// again (Alertmanager forgets alerts that are not re-sent).
	Repeat bool
}

// Digest is the events gathered while a coalescing window was open.
type Digest struct {
	Count   int                   // events gathered
	Since   time.Time             // when the window opened: the message before this one went out
	First   time.Time             // time of the first event gathered
	Last    time.Time             // time of the last
	Kinds   map[hookspec.Kind]int // how many of each kind
	Events  []hookspec.Event      // the last MaxDigestEvents events, oldest first
	Dropped int                   // events lost to a full queue since the previous message
}

func (d *Digest) add(ev hookspec.Event) {
	if d.Count == 0 {
		d.First = ev.Time
	}
	d.Count++
	d.Last = ev.Time
	if d.Kinds == nil {
		d.Kinds = map[hookspec.Kind]int{}
	}
	d.Kinds[ev.Kind]++
	if len(d.Events) == MaxDigestEvents {
		d.Events = slices.Delete(d.Events, 0, 1)
	}
	d.Events = append(d.Events, ev)
}

// Summary says what the digest holds in one line: "12 more exits of lighttpd
// since 10:42, last: killed by SIGSEGV".
func (d *Digest) Summary() string {
	var last hookspec.Event
	if n := len(d.Events); n > 0 {
		last = d.Events[n-1]
	}
	noun := "events"
	if len(d.Kinds) == 1 {
		noun = plural(last.Kind)
	}
	if d.Count == 1 {
		noun = strings.TrimSuffix(noun, "s") // every plural here ends in s: "1 more exit"
	}
	s := fmt.Sprintf("%d more %s of %s since %s, last: %s", d.Count, noun, last.Instance, d.Since.Format("15:04"), Describe(last))
	if d.Dropped > 0 {
		s += fmt.Sprintf(" (%d more dropped: queue full)", d.Dropped)
	}
	return s
}

// KindList is the digest's kinds as "exited 12, restarting 12", most first.
func (d *Digest) KindList() string {
	ks := slices.SortedFunc(maps.Keys(d.Kinds), func(a, b hookspec.Kind) int {
		if d.Kinds[a] != d.Kinds[b] {
			return d.Kinds[b] - d.Kinds[a]
		}
		return strings.Compare(string(a), string(b))
	})
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, d.Kinds[k]))
	}
	return strings.Join(parts, ", ")
}

func plural(k hookspec.Kind) string {
	switch k {
	case hookspec.Exited:
		return "exits"
	case hookspec.Restarting:
		return "restarts"
	case hookspec.Started:
		return "starts"
	case hookspec.Unhealthy:
		return "unhealthy reports"
	case hookspec.Healthy:
		return "healthy reports"
	}
	return string(k) + " events"
}

// Describe says what an event means in a few plain words: "killed by
// SIGKILL after 1m30s", "exited with code 3", "gave up: respawn limit
// reached", "unhealthy: healthcheck-http: HTTP 503".
func Describe(ev hookspec.Event) string {
	switch ev.Kind {
	case hookspec.Exited:
		s := fmt.Sprintf("exited with code %d", ev.ExitCode)
		switch {
		case ev.Signal != "":
			s = "killed by " + ev.Signal
		case ev.Reason != "":
			s = "exited: " + ev.Reason
		case ev.ExitCode == 0 && ev.Clean:
			s = "exited cleanly"
		}
		if ev.Uptime > 0 {
			s += " after " + ev.Uptime.Round(time.Millisecond).String()
		}
		return s
	case hookspec.Restarting, hookspec.RestartPending:
		return string(ev.Kind) + " (" + Restart(ev) + ")"
	case hookspec.Started:
		return fmt.Sprintf("started (pid %d)", ev.PID)
	}
	if ev.Reason != "" {
		if ev.Kind == hookspec.GaveUp && strings.HasPrefix(ev.Reason, "gave up") {
			return ev.Reason // respawner's reasons already say it
		}
		return string(ev.Kind) + ": " + ev.Reason
	}
	return string(ev.Kind)
}

// Host is where ev happened: the host name respawner sends, or fallback
// (the plugin's own) for an event from a respawner that sends none.
func Host(ev hookspec.Event, fallback string) string {
	if ev.Host != "" {
		return ev.Host
	}
	return fallback
}

// Restart says "restart 3 of 5" ("restart 3" without a limit), or "" for an
// event without an attempt number.
func Restart(ev hookspec.Event) string {
	switch {
	case ev.Attempt == 0:
		return ""
	case ev.Limit > 0:
		return fmt.Sprintf("restart %d of %d", ev.Attempt, ev.Limit)
	}
	return fmt.Sprintf("restart %d", ev.Attempt)
}

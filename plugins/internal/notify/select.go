package notify

import (
	"slices"
	"strings"

	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hookspec"
)

// AbnormalExit is the name, in events=, of the exits worth an alert: an
// exited event with a signal or a non-zero code.
const AbnormalExit = "exited-abnormally"

// Held and Released are the kinds of a restart first denied by a hook and
// of that restart going ahead.
const (
	Held     = hookspec.Held
	Released = hookspec.Released
)

// DefaultEvents is what a notifier tells about unless events= says
// otherwise: abnormal exits, unhealthy, held and gave-up.
var DefaultEvents = []string{AbnormalExit, string(hookspec.Unhealthy), string(Held), string(hookspec.GaveUp)}

// Selection is the set of events a notifier tells about.
type Selection struct {
	kinds    []hookspec.Kind // every event of these kinds
	abnormal bool            // and exited events that are abnormal (Abnormal)
}

// Select returns the Selection of names: kinds (hookspec.Kind.Valid),
// AbnormalExit and "all". Names of kinds this respawner does not know are
// skipped; ParseOptions reports them.
func Select(names ...string) Selection {
	var s Selection
	for _, n := range names {
		switch k := hookspec.Kind(n); {
		case n == "all":
			for _, k := range hookspec.Kinds() {
				s.add(k)
			}
		case n == AbnormalExit:
			s.abnormal = true
		case k.Valid():
			s.add(k)
		}
	}
	return s
}

func (s *Selection) add(k hookspec.Kind) {
	if !slices.Contains(s.kinds, k) {
		s.kinds = append(s.kinds, k)
	}
}

// Match reports whether ev is selected.
func (s Selection) Match(ev hookspec.Event) bool {
	return slices.Contains(s.kinds, ev.Kind) || (s.abnormal && ev.Kind == hookspec.Exited && Abnormal(ev))
}

// Kinds lists the kinds a plugin must subscribe to (hooks.Subscriber) to see
// every selected event.
func (s Selection) Kinds() []hookspec.Kind {
	ks := slices.Clone(s.kinds)
	if s.abnormal && !slices.Contains(ks, hookspec.Exited) {
		ks = append(ks, hookspec.Exited)
	}
	return ks
}

// String lists the selection as events= would: "exited-abnormally,gave-up".
func (s Selection) String() string {
	var names []string
	if s.abnormal {
		names = append(names, AbnormalExit)
	}
	for _, k := range s.kinds {
		names = append(names, string(k))
	}
	return strings.Join(names, ",")
}

// Abnormal reports whether an exited event is worth an alert: respawner did
// not count the exit as clean (exit status 0 or one listed with -e, SIGTERM,
// SIGINT, SIGHUP or SIGPIPE under the restart policy, or any end of a
// requested stop).
func Abnormal(ev hookspec.Event) bool {
	return ev.Kind == hookspec.Exited && !ev.Clean
}

// parseEvents reads events= into a Selection, naming a bad entry.
func parseEvents(opts *hooks.Options) Selection {
	if !opts.Has("events") {
		return Select(DefaultEvents...)
	}
	names := opts.List("events")
	if len(names) == 0 {
		opts.Errorf("events", "empty (known: all, %s, %s)", AbnormalExit, kindNames())
		return Select(DefaultEvents...)
	}
	for _, n := range names {
		if n != "all" && n != AbnormalExit && !hookspec.Kind(n).Valid() {
			opts.Errorf("events", "unknown event %q (known: all, %s, %s)", n, AbnormalExit, kindNames())
			return Select(DefaultEvents...)
		}
	}
	return Select(names...)
}

func kindNames() string {
	var ns []string
	for _, k := range hookspec.Kinds() {
		ns = append(ns, string(k))
	}
	return strings.Join(ns, ", ")
}

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
	"github.com/respawner/respawner/plugins/internal/notify"
)

// generic is format=generic: the event's own JSON form (hookspec), and for
// a digest the last event's with a "digest" object added.
type generic struct{}

// digestJSON is the "digest" object of format=generic.
type digestJSON struct {
	Count   int                   `json:"count"`   // events gathered
	Since   time.Time             `json:"since"`   // when the previous message went out
	First   time.Time             `json:"first"`   // time of the first event gathered
	Last    time.Time             `json:"last"`    // time of the last
	Kinds   map[hookspec.Kind]int `json:"kinds"`   // how many of each kind
	Dropped int                   `json:"dropped"` // events lost to a full queue
	Summary string                `json:"summary"` // one line for people
	Events  []hookspec.Event      `json:"events"`  // the last 20 events, oldest first
}

func (generic) body(m notify.Message) ([]byte, func(), error) {
	if m.Repeat {
		return nil, nil, nil
	}
	b, err := json.Marshal(m.Event)
	if err != nil || m.Digest == nil {
		return b, nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, nil, err
	}
	d := m.Digest
	kinds := d.Kinds
	if kinds == nil {
		kinds = map[hookspec.Kind]int{}
	}
	evs := d.Events
	if evs == nil {
		evs = []hookspec.Event{}
	}
	doc["digest"], err = json.Marshal(digestJSON{Count: d.Count, Since: d.Since, First: d.First, Last: d.Last,
		Kinds: kinds, Dropped: d.Dropped, Summary: d.Summary(), Events: evs})
	if err != nil {
		return nil, nil, err
	}
	b, err = json.Marshal(doc)
	return b, nil, err
}

// slack is format=slack: a Slack incoming-webhook message, {"text": ...}.
type slack struct{ host string }

// slackMessage is the part of Slack's incoming-webhook payload used here.
type slackMessage struct {
	Text string `json:"text"`
}

func (s slack) body(m notify.Message) ([]byte, func(), error) {
	if m.Repeat {
		return nil, nil, nil
	}
	b, err := json.Marshal(slackMessage{Text: s.text(m)})
	return b, nil, err
}

// text is the message in Slack's mrkdwn: "*web* on host1: killed by SIGKILL
// after 1m30s · restart 3 of 5 · /usr/sbin/lighttpd · 2026-03-01 12:30:05 UTC".
func (s slack) text(m notify.Message) string {
	ev := m.Event
	var b strings.Builder
	b.WriteString(icon(ev.Kind))
	b.WriteString(" *" + slackEscape(ev.Instance) + "*")
	if h := notify.Host(ev, s.host); h != "" {
		b.WriteString(" on " + slackEscape(h))
	}
	b.WriteString(": ")
	if m.Digest != nil {
		what := m.Digest.Summary()
		what = strings.Replace(what, " of "+ev.Instance+" since", " since", 1)
		b.WriteString(slackEscape(what))
		b.WriteString(" (" + m.Digest.KindList() + ")")
	} else {
		b.WriteString(slackEscape(notify.Describe(ev)))
	}
	if r := notify.Restart(ev); r != "" && ev.Kind != hookspec.Restarting {
		b.WriteString(" · " + r)
	}
	if ev.Program != "" {
		b.WriteString(" · `" + slackEscape(ev.Program) + "`")
	}
	if !ev.Time.IsZero() {
		b.WriteString(" · " + ev.Time.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	if len(ev.Output) > 0 {
		// The crash's own words, as a code block (whose fence they must not close).
		out := strings.ReplaceAll(strings.Join(ev.Output, "\n"), "```", "` ` `")
		b.WriteString("\n```\n" + slackEscape(out) + "\n```")
	}
	return b.String()
}

func icon(k hookspec.Kind) string {
	switch k {
	case hookspec.GaveUp:
		return ":x:"
	case hookspec.Exited, hookspec.Unhealthy:
		return ":warning:"
	case hookspec.Healthy, hookspec.Started, notify.Released:
		return ":white_check_mark:"
	}
	return ":information_source:"
}

// slackEscape escapes what Slack's mrkdwn reads as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// alertmanager is format=alertmanager: POST /api/v2/alerts, an array of
// alerts. Conditions (unhealthy, held, gave-up) fire until an event ends
// them, and are sent again every resend meanwhile, since Alertmanager
// resolves an alert that is not repeated within its resolve_timeout. Other
// selected events (an abnormal exit) are one-shot alerts that end a window
// after the event.
type alertmanager struct {
	host    string
	oneShot time.Duration
	firing  map[string]amAlert // by alertname
}

// amAlert is an Alertmanager API v2 postableAlert.
type amAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       *time.Time        `json:"endsAt,omitempty"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// condition is an alert that fires until an event resolves it.
type condition struct {
	name     string
	severity string
	resolve  []hookspec.Kind
}

var conditions = map[hookspec.Kind]condition{
	hookspec.Unhealthy: {"RespawnerUnhealthy", "warning", []hookspec.Kind{hookspec.Healthy, hookspec.Started, hookspec.GaveUp, hookspec.Stopped}},
	notify.Held:        {"RespawnerHeld", "warning", []hookspec.Kind{notify.Released, hookspec.Started, hookspec.GaveUp, hookspec.Stopped}},
	hookspec.GaveUp:    {"RespawnerGaveUp", "critical", []hookspec.Kind{hookspec.Starting, hookspec.Started}},
}

func newAlertmanager(host string, window time.Duration) *alertmanager {
	if window <= 0 {
		window = 5 * time.Minute
	}
	return &alertmanager{host: host, oneShot: window, firing: map[string]amAlert{}}
}

// also is what the format needs besides the selection: the kinds that
// resolve its conditions.
func (a *alertmanager) also() []hookspec.Kind {
	return []hookspec.Kind{hookspec.Healthy, hookspec.Starting, hookspec.Started, notify.Released}
}

// urgent: Alertmanager groups and throttles on its side, so condition
// changes go out at once rather than in the next digest.
func (a *alertmanager) urgent() []hookspec.Kind {
	return []hookspec.Kind{hookspec.GaveUp, notify.Held, hookspec.Unhealthy}
}

// Repeating: something fires.
func (a *alertmanager) Repeating() bool { return len(a.firing) > 0 }

func (a *alertmanager) body(m notify.Message) ([]byte, func(), error) {
	firing := maps.Clone(a.firing)
	var resolved, oneShots []amAlert
	if !m.Repeat {
		for _, ev := range events(m) {
			for _, c := range conditions {
				if al, ok := firing[c.name]; ok && slices.Contains(c.resolve, ev.Kind) {
					end := ev.Time
					al.EndsAt = &end
					resolved = append(resolved, al)
					delete(firing, c.name)
				}
			}
			if c, ok := conditions[ev.Kind]; ok {
				al := a.alert(c.name, c.severity, ev, m)
				if old, ok := firing[c.name]; ok {
					al.StartsAt = old.StartsAt
				}
				firing[c.name] = al
			} else if ev.Kind == hookspec.Exited || !slices.Contains(a.also(), ev.Kind) {
				if ev.Kind == hookspec.Exited && !notify.Abnormal(ev) {
					continue // the daemonizing launcher's exit 0, a clean exit
				}
				al := a.alert("Respawner"+camel(ev.Kind), "warning", ev, m)
				end := ev.Time.Add(a.oneShot)
				al.EndsAt = &end
				oneShots = slices.DeleteFunc(oneShots, func(x amAlert) bool { return x.Labels["alertname"] == al.Labels["alertname"] })
				oneShots = append(oneShots, al)
			}
		}
	}
	out := append(resolved, oneShots...)
	for _, name := range slices.Sorted(maps.Keys(firing)) {
		out = append(out, firing[name])
	}
	commit := func() { a.firing = firing }
	if len(out) == 0 {
		return nil, commit, nil
	}
	b, err := json.Marshal(out)
	return b, commit, err
}

func (a *alertmanager) alert(name, severity string, ev hookspec.Event, m notify.Message) amAlert {
	labels := map[string]string{"alertname": name, "instance": ev.Instance, "job": "respawner", "severity": severity}
	if h := notify.Host(ev, a.host); h != "" {
		labels["host"] = h
	}
	desc := notify.Describe(ev)
	if r := notify.Restart(ev); r != "" && ev.Kind != hookspec.Restarting {
		desc += " (" + r + ")"
	}
	ann := map[string]string{
		"summary":     fmt.Sprintf("%s: %s", ev.Instance, notify.Describe(ev)),
		"description": desc,
		"program":     ev.Program,
	}
	if m.Digest != nil {
		ann["digest"] = m.Digest.Summary()
	}
	if len(ev.Output) > 0 {
		ann["output"] = strings.Join(ev.Output, "\n")
	}
	return amAlert{Labels: labels, Annotations: ann, StartsAt: ev.Time}
}

// camel turns "gave-up" into "GaveUp".
func camel(k hookspec.Kind) string {
	var b strings.Builder
	for p := range strings.SplitSeq(string(k), "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

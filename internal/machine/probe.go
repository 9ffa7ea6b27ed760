package machine

import (
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// Probe is one plugin's health probe as the machine counts it: how many
// results in a row make the program unhealthy, and healthy again. The loop
// schedules the probes (timers, the calls over RPC); the machine decides what
// their results mean, as a Kubernetes liveness probe's thresholds do.
type Probe struct {
	Plugin    string
	Failures  int // consecutive failures that make the program unhealthy
	Successes int // consecutive successes that make it healthy again
}

// Probed: a probe's result. Unknown means it could not run (its plugin or
// the hook host being restarted): it counts neither way.
type Probed struct {
	Plugin  string
	Healthy bool
	Reason  string
	Unknown bool
}

func (Probed) event() {}

// ProbeHealth is one probe's standing, for status.
type ProbeHealth struct {
	Plugin string
	Health string // unknown, healthy, unhealthy
	Last   string // the last result's reason
	Fails  int    // consecutive failures so far
}

// probeState counts one probe's results within the current run.
type probeState struct {
	fails, oks int
	health     string
	last       string
}

// resetProbes starts every probe over: each run is judged on its own.
func (m *Machine) resetProbes() {
	if len(m.probes) != len(m.cfg.Probes) {
		m.probes = make([]probeState, len(m.cfg.Probes))
	}
	for i := range m.probes {
		m.probes[i] = probeState{health: "unknown"}
	}
}

// probed counts a result; past a threshold the health changes, the hooks
// hear of it, and an unhealthy program is restarted as if it had failed (so
// vetoes, limits and the respawn timeout apply).
func (m *Machine) probed(now time.Time, ev Probed) []Action {
	i := -1
	for j, p := range m.cfg.Probes {
		if p.Plugin == ev.Plugin {
			i = j
		}
	}
	if i < 0 || m.state != Running {
		return nil
	}
	p, rule := &m.probes[i], m.cfg.Probes[i]
	p.last = ev.Reason
	if ev.Unknown {
		return nil
	}
	if ev.Healthy {
		p.oks, p.fails = p.oks+1, 0
		if p.health != "healthy" && p.oks >= rule.Successes {
			p.health = "healthy"
			return []Action{m.note(now, hookspec.Healthy, hookspec.Event{PID: m.run.pid, Reason: ev.Reason})}
		}
		return nil
	}
	p.fails, p.oks = p.fails+1, 0
	if p.health == "unhealthy" || p.fails < rule.Failures {
		return nil
	}
	p.health = "unhealthy"
	reason := ev.Plugin + ": " + ev.Reason
	told := m.note(now, hookspec.Unhealthy, hookspec.Event{PID: m.run.pid, Reason: reason})
	return append([]Action{told}, m.unhealthy(now, reason)...)
}

// Health reports each probe's standing in the current run.
func (m *Machine) health() []ProbeHealth {
	out := make([]ProbeHealth, len(m.probes))
	for i, p := range m.probes {
		out[i] = ProbeHealth{Plugin: m.cfg.Probes[i].Plugin, Health: p.health, Last: p.last, Fails: p.fails}
	}
	return out
}

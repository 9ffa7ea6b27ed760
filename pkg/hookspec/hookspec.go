// Package hookspec is the vocabulary that respawner and its hook plugins
// share: the lifecycle events (Kind, Event), the answers to a pending
// restart (Decision, Verdict), and the health probe's schedule and result.
// It imports the standard library only, so that respawner's core, its hook
// host and the plugin SDK (pkg/hooks, which re-exports these names) all use
// the same types, and a plugin author can marshal them as they are.
package hookspec

import (
	"errors"
	"fmt"
	"time"
)

// Kind names a lifecycle event. The values are the strings on the wire and in
// `--plugin notify-email:events=exited,gave-up`.
type Kind string

// The lifecycle events, in the order a program meets them.
const (
	// Starting: the program is about to be started.
	Starting Kind = "starting"
	// Started: the program runs; Event.PID is set.
	Started Kind = "started"
	// Exited: the program ended; Event.ExitCode or Event.Signal, and Event.Uptime.
	Exited Kind = "exited"
	// RestartPending: a restart is due. Vetoers are asked through
	// Vetoer.RestartPending; Notifiers that subscribe to it are told too.
	RestartPending Kind = "restart-pending"
	// Restarting: the restart goes ahead; Event.Attempt of Event.Limit.
	Restarting Kind = "restarting"
	// Healthy: the health probe passed its success threshold.
	Healthy Kind = "healthy"
	// Unhealthy: the health probe reached its failure threshold; Event.Reason says why.
	Unhealthy Kind = "unhealthy"
	// Stopping: a stop was requested; the program is being terminated.
	Stopping Kind = "stopping"
	// Stopped: the program is down and supervision ended cleanly.
	Stopped Kind = "stopped"
	// GaveUp: supervision ended because of the respawn limit or a give-up verdict.
	GaveUp Kind = "gave-up"
	// Held: a pending restart was denied for the first time; Event.Reason is
	// the plugin's reason. The instance stays held, and the question is asked
	// again after each respawn timeout; those re-asks are not announced.
	Held Kind = "held"
	// Released: a held restart goes ahead (Restarting follows), or the
	// instance stops while held.
	Released Kind = "released"
)

var allKinds = [...]Kind{Starting, Started, Exited, RestartPending, Held, Released, Restarting, Healthy, Unhealthy, Stopping, Stopped, GaveUp}

// Kinds returns every event kind, in lifecycle order. The slice is a fresh
// copy that the caller may change.
func Kinds() []Kind {
	ks := allKinds
	return ks[:]
}

// Valid reports whether k is one of the kinds this package defines.
func (k Kind) Valid() bool {
	for _, x := range allKinds {
		if k == x {
			return true
		}
	}
	return false
}

// Event is one lifecycle event of a supervised program. Fields that do not
// apply to a kind are zero.
//
// Its JSON form (MarshalJSON) has every field, always, under the name in its
// tag; Uptime is whole milliseconds under "uptime_ms", Time is RFC 3339 with
// nanoseconds, Args is [] rather than null. docs/writing-hooks.md documents it.
type Event struct {
	Kind     Kind          `json:"kind"`
	Instance string        `json:"instance"` // instance name (--name; by default the program's base name)
	Program  string        `json:"program"`  // path of the program
	Args     []string      `json:"args"`     // its arguments
	PID      int           `json:"pid"`      // the program's pid (started, exited); 0 when none
	Time     time.Time     `json:"time"`
	ExitCode int           `json:"exit_code"` // exit status (exited) when Signal is ""
	Signal   string        `json:"signal"`    // "SIGKILL" when killed by a signal, "" otherwise
	Uptime   time.Duration `json:"uptime_ms"` // how long the run that ended lasted (exited)
	Attempt  int           `json:"attempt"`   // restart number k (restart-pending, held, released, restarting, gave-up; started and exited: of that run, 0 for the first)
	Limit    int           `json:"limit"`     // the respawn limit; 0 when there is none
	Reason   string        `json:"reason"`    // why (unhealthy, held, gave-up, stopping)
	Clean    bool          `json:"clean"`     // exited: the exit was clean (by -e, the restart policy or a requested stop)
	Output   []string      `json:"output"`    // exited, gave-up: the program's last output lines, oldest first, when respawner reads its output
	Host     string        `json:"host"`      // the host name of the machine respawner runs on
}

// Decision is a plugin's answer to a pending restart. The values are ordered
// from the most lenient to the strictest.
type Decision int

const (
	// DecisionAllow lets the restart go ahead. It is the zero Decision.
	DecisionAllow Decision = iota
	// DecisionDelay adds Verdict.Delay to the respawn timeout.
	DecisionDelay
	// DecisionDeny holds the restart: the instance is held and the question
	// is asked again after each respawn timeout.
	DecisionDeny
	// DecisionGiveUp ends supervision, as when the respawn limit is reached.
	DecisionGiveUp
)

var decisionNames = [...]string{"allow", "delay", "deny", "give-up"}

// String returns "allow", "delay", "deny" or "give-up".
func (d Decision) String() string {
	if d >= 0 && int(d) < len(decisionNames) {
		return decisionNames[d]
	}
	return fmt.Sprintf("decision(%d)", int(d))
}

// ErrUnknownDecision is the error of ParseDecision and of decoding a
// decision that is not one of the four names.
var ErrUnknownDecision = errors.New("unknown decision")

// ParseDecision is the inverse of Decision.String.
func ParseDecision(s string) (Decision, error) {
	for i, n := range decisionNames {
		if s == n {
			return Decision(i), nil
		}
	}
	return 0, fmt.Errorf("%w %q", ErrUnknownDecision, s)
}

// Verdict is a plugin's full answer to a pending restart. The zero Verdict
// allows the restart. In JSON: {"decision": "delay", "delay_ms": 5000,
// "reason": ""}.
type Verdict struct {
	Decision Decision      `json:"decision"`
	Delay    time.Duration `json:"delay_ms"` // with DecisionDelay: added to the respawn timeout
	Reason   string        `json:"reason"`   // for the log and status; expected with deny and give-up
}

// Allow returns the verdict that lets the restart go ahead.
func Allow() Verdict { return Verdict{} }

// DelayBy returns the verdict that adds d to the respawn timeout. A d of zero
// or less is the same as Allow.
func DelayBy(d time.Duration) Verdict {
	if d <= 0 {
		return Allow()
	}
	return Verdict{Decision: DecisionDelay, Delay: d}
}

// Deny returns the verdict that holds the restart until the plugin allows it.
func Deny(reason string) Verdict { return Verdict{Decision: DecisionDeny, Reason: reason} }

// GiveUp returns the verdict that ends supervision.
func GiveUp(reason string) Verdict { return Verdict{Decision: DecisionGiveUp, Reason: reason} }

// String formats v for a log line: "allow", "delay 5s", "deny: maintenance".
func (v Verdict) String() string {
	s := v.Decision.String()
	if v.Decision == DecisionDelay {
		s += " " + v.Delay.String()
	}
	if v.Reason != "" {
		s += ": " + v.Reason
	}
	return s
}

// Strictest combines the answers of several plugins: give-up beats deny beats
// delay beats allow, and among delays the longest wins. Among equally strict
// verdicts the first wins, reason included. Strictest() is Allow().
func Strictest(vs ...Verdict) Verdict {
	best := Allow()
	for _, v := range vs {
		if v.Decision > best.Decision || (v.Decision == DecisionDelay && best.Decision == DecisionDelay && v.Delay > best.Delay) {
			best = v
		}
	}
	return best
}

// ProbeResult is the outcome of one health probe.
type ProbeResult struct {
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason"` // why not healthy, or a short note ("HTTP 200")
}

// ProbeConfig is a probe's schedule, as a Kubernetes liveness probe's. A
// probe plugin returns it through ProbeConfigurer; respawner runs the probe on
// its own timer, at a fixed rate, counts consecutive results and restarts the
// program once FailureThreshold probes in a row have failed: at the latest
// max(InitialDelay, Interval) + (FailureThreshold-1)*Interval + Timeout after
// it stops answering. In JSON the durations are whole milliseconds:
// interval_ms, timeout_ms, initial_delay_ms.
type ProbeConfig struct {
	Interval         time.Duration `json:"interval_ms"`       // from the start of one probe to the next's (periodSeconds)
	Timeout          time.Duration `json:"timeout_ms"`        // deadline of one probe; a probe past it fails
	InitialDelay     time.Duration `json:"initial_delay_ms"`  // wait after each start before the first probe; 0: at once
	FailureThreshold int           `json:"failure_threshold"` // consecutive failures that make the program unhealthy
	SuccessThreshold int           `json:"success_threshold"` // consecutive successes that make it healthy again
}

// DefaultProbeConfig is the schedule of a probe plugin that does not say
// otherwise, and fills the zero fields of one that does. It is Kubernetes'
// default but for the shorter interval.
var DefaultProbeConfig = ProbeConfig{
	Interval:         10 * time.Second,
	Timeout:          time.Second,
	InitialDelay:     0,
	FailureThreshold: 3,
	SuccessThreshold: 1,
}

// WithDefaults returns c with each zero or negative field replaced by
// DefaultProbeConfig's (InitialDelay stays 0 when zero).
func (c ProbeConfig) WithDefaults() ProbeConfig {
	d := DefaultProbeConfig
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.Timeout <= 0 {
		c.Timeout = d.Timeout
	}
	if c.InitialDelay < 0 {
		c.InitialDelay = 0
	}
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = d.FailureThreshold
	}
	if c.SuccessThreshold <= 0 {
		c.SuccessThreshold = d.SuccessThreshold
	}
	return c
}

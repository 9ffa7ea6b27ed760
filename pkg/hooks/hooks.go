package hooks

import (
	"context"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// The vocabulary of hooks is defined in pkg/hookspec, which respawner's core
// shares; these names are the same types, so a plugin needs only this package.

// Kind names a lifecycle event. The values are the strings on the wire and in
// `--plugin notify-email:events=exited,gave-up`.
type Kind = hookspec.Kind

// The lifecycle events, in the order a program meets them (see hookspec).
const (
	Starting       = hookspec.Starting
	Started        = hookspec.Started
	Exited         = hookspec.Exited
	RestartPending = hookspec.RestartPending
	Held           = hookspec.Held
	Released       = hookspec.Released
	Restarting     = hookspec.Restarting
	Healthy        = hookspec.Healthy
	Unhealthy      = hookspec.Unhealthy
	Stopping       = hookspec.Stopping
	Stopped        = hookspec.Stopped
	GaveUp         = hookspec.GaveUp
)

// Kinds returns every event kind, in lifecycle order.
func Kinds() []Kind { return hookspec.Kinds() }

// Event is one lifecycle event of a supervised program (see hookspec.Event).
type Event = hookspec.Event

// Decision is a plugin's answer to a pending restart (see hookspec.Decision).
type Decision = hookspec.Decision

// The decisions, from the most lenient to the strictest.
const (
	DecisionAllow  = hookspec.DecisionAllow
	DecisionDelay  = hookspec.DecisionDelay
	DecisionDeny   = hookspec.DecisionDeny
	DecisionGiveUp = hookspec.DecisionGiveUp
)

// ParseDecision is the inverse of Decision.String.
func ParseDecision(s string) (Decision, error) { return hookspec.ParseDecision(s) }

// Verdict is a plugin's full answer to a pending restart.
type Verdict = hookspec.Verdict

// Allow returns the verdict that lets the restart go ahead.
func Allow() Verdict { return hookspec.Allow() }

// DelayBy returns the verdict that adds d to the respawn timeout.
func DelayBy(d time.Duration) Verdict { return hookspec.DelayBy(d) }

// Deny returns the verdict that holds the restart until the plugin allows it.
func Deny(reason string) Verdict { return hookspec.Deny(reason) }

// GiveUp returns the verdict that ends supervision.
func GiveUp(reason string) Verdict { return hookspec.GiveUp(reason) }

// Strictest combines the answers of several plugins (see hookspec.Strictest).
func Strictest(vs ...Verdict) Verdict { return hookspec.Strictest(vs...) }

// ProbeResult is the outcome of one health probe.
type ProbeResult = hookspec.ProbeResult

// ProbeConfig is a probe's schedule, as a Kubernetes liveness probe's.
type ProbeConfig = hookspec.ProbeConfig

// DefaultProbeConfig is the schedule of a probe plugin that does not say otherwise.
var DefaultProbeConfig = hookspec.DefaultProbeConfig

// The capabilities a plugin may have. Serve takes any value; it finds which
// of these interfaces the value implements, tells respawner through Info, and
// answers codes.Unimplemented for the others. A plugin needs at least one of
// Notifier, Vetoer and Prober. Every method takes ctx first: respawner sets a
// deadline on each call, after which the answer is no longer waited for.

// Configurer is implemented by plugins that take options
// (`--plugin NAME:key=value,...`). Configure is called once, before any other
// call but Info. A plugin without Configurer refuses every option.
type Configurer interface {
	// Configure reads the options, typically ending with `return opts.Err()`
	// so that unknown options and bad values are reported.
	Configure(ctx context.Context, opts *Options) error
}

// Notifier is implemented by plugins that want to be told about lifecycle
// events (by default all of them; see Subscriber).
type Notifier interface {
	// Notify is told about one event. Its error is only logged.
	Notify(ctx context.Context, ev Event) error
}

// Vetoer is implemented by plugins that may hold, delay or stop restarts.
type Vetoer interface {
	// RestartPending answers whether the program may be restarted now. An
	// error, a panic or a missed deadline counts as allow.
	RestartPending(ctx context.Context, ev Event) (Verdict, error)
}

// Prober is implemented by plugins that check the program's health.
type Prober interface {
	// Probe runs one health check. An error counts as a failed probe.
	Probe(ctx context.Context) (ProbeResult, error)
}

// ProbeConfigurer is implemented by probe plugins that choose their own
// schedule, usually from options (see Options.ProbeConfig). It is called
// right after Configure; without it a probe runs on DefaultProbeConfig.
type ProbeConfigurer interface {
	// ProbeConfig returns the schedule. Zero fields take DefaultProbeConfig's.
	ProbeConfig() ProbeConfig
}

// Subscriber is implemented by Notifiers that want only some events. Without
// it a Notifier receives every kind.
type Subscriber interface {
	// Events lists the kinds to deliver to Notify. It is called after
	// Configure, so it may depend on options.
	Events() []Kind
}

// Versioner is implemented by plugins that report their own version, which
// `respawner plugins` shows.
type Versioner interface {
	// Version returns free text such as "1.2.0".
	Version() string
}

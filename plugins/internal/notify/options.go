package notify

import (
	"time"

	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hookspec"
)

// MaxGrace is the longest Config.Grace: respawner-hookhost asks a plugin to
// shut down and kills it 2 s later, so a flush must end before that.
const MaxGrace = 1900 * time.Millisecond

// maxBackoff caps the doubling of the retry delay.
const maxBackoff = time.Minute

// Config is how a Dispatcher selects, coalesces and delivers.
type Config struct {
	Events  Selection     // the events to tell about
	Window  time.Duration // coalescing window; 0 sends every event at once
	Timeout time.Duration // deadline of one delivery attempt
	Retries int           // attempts after the first before a message is given up
	Backoff time.Duration // delay before the first retry; it doubles, up to a minute
	Queue   int           // events waiting for the sender goroutine; the oldest is dropped past it
	Grace   time.Duration // how long Close goes on delivering; at most MaxGrace

	// Urgent kinds go out at once and never open a window. nil means
	// gave-up and held.
	Urgent []hookspec.Kind
	// Also are kinds the Sender needs though they are not selected (the
	// Alertmanager format resolves its alerts on healthy, started and
	// released): they go out at once, outside the window.
	Also []hookspec.Kind
	// Resend is how often a Repeater's state is sent again while it lasts
	// (and nothing else was sent); 0 never.
	Resend time.Duration
}

// DefaultConfig is the Config of a notifier given no options.
var DefaultConfig = Config{
	Events:  Select(DefaultEvents...),
	Window:  5 * time.Minute,
	Timeout: 10 * time.Second,
	Retries: 8,
	Backoff: time.Second,
	Queue:   256,
	Grace:   1500 * time.Millisecond,
}

// ParseOptions reads the options every notifier shares, each defaulting to
// DefaultConfig's: events, window, timeout, retries, backoff, queue and
// grace. Problems are recorded in opts, each naming its option.
//
// timeout is also respawner's deadline for each call to the plugin; as
// Notify returns at once, a long one costs nothing.
func ParseOptions(opts *hooks.Options) Config {
	d := DefaultConfig
	c := Config{
		Events:  parseEvents(opts),
		Window:  opts.Duration("window", d.Window),
		Timeout: opts.PositiveDuration("timeout", d.Timeout),
		Retries: opts.AtLeast("retries", 0, d.Retries),
		Queue:   opts.AtLeast("queue", 1, d.Queue),
		Grace:   opts.Duration("grace", d.Grace),
	}
	if c.Retries > 0 {
		c.Backoff = opts.PositiveDuration("backoff", d.Backoff)
	} else {
		c.Backoff = opts.Duration("backoff", d.Backoff)
	}
	if c.Grace > MaxGrace {
		opts.Errorf("grace", "%v is too long: respawner-hookhost kills a plugin 2s after asking it to stop (at most %v)", c.Grace, MaxGrace)
		c.Grace = d.Grace
	}
	return c
}

// Subscribe lists the kinds a plugin with c must subscribe to
// (hooks.Subscriber): the selected ones, Also, and stopped and gave-up, which
// flush what is pending.
func (c Config) Subscribe() []hookspec.Kind {
	ks := c.Events.Kinds()
	for _, k := range append(append([]hookspec.Kind{}, c.Also...), hookspec.Stopped, hookspec.GaveUp) {
		if !containsKind(ks, k) {
			ks = append(ks, k)
		}
	}
	return ks
}

func containsKind(ks []hookspec.Kind, k hookspec.Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

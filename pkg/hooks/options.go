package hooks

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// Options are the key=value options given to a plugin with
// `--plugin NAME:key=value,key=value`. A key may be given several times
// (header=A,header=B); the scalar getters refuse that, Strings accepts it.
//
// The getters record what they read and what was wrong, so Configure reads
// every option it knows and ends with `return opts.Err()`, which reports
// bad values and options nobody read, each naming the option:
//
//	func (h *hook) Configure(ctx context.Context, opts *hooks.Options) error {
//		h.url = opts.String("url", "http://127.0.0.1:80/")
//		h.timeout = opts.Duration("timeout", time.Second)
//		h.headers = opts.Strings("header")
//		return opts.Err()
//	}
//
// Options is not safe for concurrent use.
type Options struct {
	m    map[string][]string
	used map[string]bool
	errs []string
}

// NewOptions returns Options holding a copy of m.
func NewOptions(m map[string][]string) *Options {
	// timeout is respawner's own option (the deadline of each call); a plugin
	// may read it too, and one that does not must not fail on it.
	o := &Options{m: make(map[string][]string, len(m)), used: map[string]bool{"timeout": true}}
	for k, vs := range m {
		o.m[k] = slices.Clone(vs)
	}
	return o
}

// Map returns a copy of every option, read or not.
func (o *Options) Map() map[string][]string {
	m := make(map[string][]string, len(o.m))
	for k, vs := range o.m {
		m[k] = slices.Clone(vs)
	}
	return m
}

// Has reports whether key was given, and counts it as known.
func (o *Options) Has(key string) bool {
	o.used[key] = true
	_, ok := o.m[key]
	return ok
}

// one returns the single value of key; ok is false when key was not given or
// was given more than once (which is recorded).
func (o *Options) one(key string) (string, bool) {
	o.used[key] = true
	vs, ok := o.m[key]
	if !ok {
		return "", false
	}
	if len(vs) != 1 {
		o.Errorf(key, "given %d times", len(vs))
		return "", false
	}
	return vs[0], true
}

// String returns the value of key, or def when it was not given.
func (o *Options) String(key, def string) string {
	if v, ok := o.one(key); ok {
		return v
	}
	return def
}

// Strings returns every value of a repeatable key (header=A,header=B), in
// the order given, or nil when it was not given.
func (o *Options) Strings(key string) []string {
	o.used[key] = true
	return slices.Clone(o.m[key])
}

// List returns the comma-separated items of key (to=a@x,b@y), across
// repetitions, spaces trimmed and empty items dropped, or nil when it was
// not given.
func (o *Options) List(key string) []string {
	o.used[key] = true
	var out []string
	for _, v := range o.m[key] {
		out = append(out, splitList(v)...)
	}
	return out
}

// Bool returns the value of key as a boolean (true, false, yes, no, on, off,
// 1, 0), or def when it was not given.
func (o *Options) Bool(key string, def bool) bool {
	v, ok := o.one(key)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "true", "yes", "on", "1":
		return true
	case "false", "no", "off", "0":
		return false
	}
	o.Errorf(key, "%q is not a boolean", v)
	return def
}

// Int returns the value of key as a decimal integer, or def when it was not
// given.
func (o *Options) Int(key string, def int) int {
	v, ok := o.one(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		o.Errorf(key, "%q is not an integer", v)
		return def
	}
	return n
}

// Duration returns the value of key as a duration ("1m30s", "500ms"; a bare
// decimal means seconds, "5" or "0.5", as respawner's own -t), or def when it
// was not given. A negative duration is refused. See ParseDuration.
func (o *Options) Duration(key string, def time.Duration) time.Duration {
	v, ok := o.one(key)
	if !ok {
		return def
	}
	d, err := ParseDuration(v)
	if err != nil {
		o.Errorf(key, "%v", err)
		return def
	}
	return d
}

// PositiveDuration is Duration for a value that must be more than 0 (an
// interval, a timeout): 0 is reported as an error and def returned.
func (o *Options) PositiveDuration(key string, def time.Duration) time.Duration {
	d := o.Duration(key, def)
	if d == 0 {
		o.Errorf(key, "must be more than 0")
		return def
	}
	return d
}

// AtLeast is Int for a value that must be at least min (a threshold, a
// queue size): a smaller one is reported as an error and def returned.
func (o *Options) AtLeast(key string, min, def int) int {
	n := o.Int(key, def)
	if n < min {
		if min == 0 {
			o.Errorf(key, "must be 0 or more")
		} else {
			o.Errorf(key, "must be at least %d", min)
		}
		return def
	}
	return n
}

// ParseDuration parses a duration as Options.Duration, respawner's flags and
// its --plugin timeout= do (it is hookspec.ParseDuration): a bare decimal is
// seconds ("5", "0.5"), anything else Go syntax ("1m30s"); negative,
// out-of-range and malformed values are refused.
func ParseDuration(s string) (time.Duration, error) { return hookspec.ParseDuration(s) }

// OneOf returns the value of key, which must be one of allowed, or def when
// it was not given.
func (o *Options) OneOf(key, def string, allowed ...string) string {
	v, ok := o.one(key)
	if !ok {
		return def
	}
	if !slices.Contains(allowed, v) {
		o.Errorf(key, "%q is not one of %s", v, strings.Join(allowed, ", "))
		return def
	}
	return v
}

// Kinds returns the event kinds listed under key (events=exited,gave-up; see
// List), or def when it was not given. "all" means every kind.
func (o *Options) Kinds(key string, def []Kind) []Kind {
	if !o.Has(key) {
		return def
	}
	var ks []Kind
	for _, f := range o.List(key) {
		add := []Kind{Kind(f)}
		if f == "all" {
			add = Kinds()
		} else if !add[0].Valid() {
			o.Errorf(key, "unknown event %q (known: %s)", f, kindList())
			return def
		}
		for _, k := range add {
			if !slices.Contains(ks, k) {
				ks = append(ks, k)
			}
		}
	}
	return ks
}

func kindList() string {
	var b strings.Builder
	for i, k := range Kinds() {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k))
	}
	return b.String()
}

// ProbeConfig reads the standard probe options, each defaulting to def's
// field (zero fields of def to DefaultProbeConfig's): interval, timeout,
// initial-delay (durations), failures and successes (thresholds, at least 1).
func (o *Options) ProbeConfig(def ProbeConfig) ProbeConfig {
	def = def.WithDefaults()
	return ProbeConfig{
		Interval:         o.PositiveDuration("interval", def.Interval),
		Timeout:          o.PositiveDuration("timeout", def.Timeout),
		InitialDelay:     o.Duration("initial-delay", def.InitialDelay),
		FailureThreshold: o.AtLeast("failures", 1, def.FailureThreshold),
		SuccessThreshold: o.AtLeast("successes", 1, def.SuccessThreshold),
	}
}

// Errorf records a problem with the option key that the getters cannot see,
// such as two options that exclude each other; Err reports it as
// "option KEY: MESSAGE". It also counts key as known.
func (o *Options) Errorf(key, format string, args ...any) {
	o.used[key] = true
	o.errs = append(o.errs, "option "+key+": "+fmt.Sprintf(format, args...))
}

// Err reports every problem recorded so far and every option that no getter
// has read (`unknown option "colour"`), in one line, or nil. Call it after
// reading all the options the plugin knows.
func (o *Options) Err() error {
	msgs := slices.Clone(o.errs)
	for _, k := range slices.Sorted(maps.Keys(o.m)) {
		if !o.used[k] {
			msgs = append(msgs, fmt.Sprintf("unknown option %q", k))
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

// ParseSpec parses the argument of `--plugin`: NAME, or
// NAME:key=value,key=value. A key may be repeated (header=A,header=B). A
// field without '=' continues the previous value, so lists read naturally:
// events=exited,gave-up is events="exited,gave-up" (see Options.List). `\,`
// and `\\` stand for a comma and a backslash. NAME is made of letters,
// digits, '.', '_' and '-' and starts with a letter or digit, so that it
// cannot name a path outside the plugin directories. It is respawner's own
// parser (hookspec.SplitSpec), exported for plugin tests.
func ParseSpec(spec string) (name string, opts map[string][]string, err error) {
	return hookspec.SplitSpec(spec)
}

// splitList splits a comma-separated list, dropping empty fields and spaces.
func splitList(s string) []string {
	var out []string
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

package hookspec

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// The JSON form of the vocabulary is what respawner's core and its hook host
// exchange, and what hook authors (and, later, webhook payloads) see. Field
// names are in the struct tags. A duration's key ends in _ms and its value is
// a whole number of milliseconds, rounded up so that a positive duration
// never reads as 0 (a negative one is written as 0, and refused when read); a
// time is RFC 3339 (time.Time's own form); a decision is its name.

// MarshalText returns the decision's name: "allow", "delay", "deny" or
// "give-up". A Decision outside those four is an error.
func (d Decision) MarshalText() ([]byte, error) {
	if d < 0 || int(d) >= len(decisionNames) {
		return nil, fmt.Errorf("%w: %d", ErrUnknownDecision, int(d))
	}
	return []byte(decisionNames[d]), nil
}

// UnmarshalText reads a decision's name; any other text is an error that
// wraps ErrUnknownDecision, never a silent allow.
func (d *Decision) UnmarshalText(b []byte) error {
	v, err := ParseDecision(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON writes every field, Uptime as uptime_ms and a nil Args as [].
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // the same fields, without these methods
	p := plain(e)
	if p.Args == nil {
		p.Args = []string{}
	}
	// A field at the outer level hides the embedded one of the same name.
	return json.Marshal(struct {
		plain
		Uptime int64 `json:"uptime_ms"`
	}{p, toMillis(e.Uptime)})
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	w := struct {
		*plain
		Uptime *int64 `json:"uptime_ms"`
	}{plain: (*plain)(e)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	return fromMillis(&e.Uptime, "uptime_ms", w.Uptime)
}

// MarshalJSON writes Delay as delay_ms.
func (v Verdict) MarshalJSON() ([]byte, error) {
	type plain Verdict
	return json.Marshal(struct {
		plain
		Delay int64 `json:"delay_ms"`
	}{plain(v), toMillis(v.Delay)})
}

// UnmarshalJSON is the inverse of MarshalJSON. An unknown decision is an
// error that wraps ErrUnknownDecision.
func (v *Verdict) UnmarshalJSON(b []byte) error {
	type plain Verdict
	w := struct {
		*plain
		Delay *int64 `json:"delay_ms"`
	}{plain: (*plain)(v)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	return fromMillis(&v.Delay, "delay_ms", w.Delay)
}

// MarshalJSON writes the durations as interval_ms, timeout_ms and
// initial_delay_ms.
func (c ProbeConfig) MarshalJSON() ([]byte, error) {
	type plain ProbeConfig
	return json.Marshal(struct {
		plain
		Interval     int64 `json:"interval_ms"`
		Timeout      int64 `json:"timeout_ms"`
		InitialDelay int64 `json:"initial_delay_ms"`
	}{plain(c), toMillis(c.Interval), toMillis(c.Timeout), toMillis(c.InitialDelay)})
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (c *ProbeConfig) UnmarshalJSON(b []byte) error {
	type plain ProbeConfig
	w := struct {
		*plain
		Interval     *int64 `json:"interval_ms"`
		Timeout      *int64 `json:"timeout_ms"`
		InitialDelay *int64 `json:"initial_delay_ms"`
	}{plain: (*plain)(c)}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	return firstErr(fromMillis(&c.Interval, "interval_ms", w.Interval),
		fromMillis(&c.Timeout, "timeout_ms", w.Timeout),
		fromMillis(&c.InitialDelay, "initial_delay_ms", w.InitialDelay))
}

// toMillis is d in whole milliseconds, rounded up; 0 for a negative d.
func toMillis(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms
}

// fromMillis sets *d to *ms milliseconds, refusing what no duration can be;
// a nil ms (the key was absent) leaves *d as it was, as for any other field.
func fromMillis(d *time.Duration, key string, ms *int64) error {
	switch {
	case ms == nil:
		return nil
	case *ms < 0:
		return fmt.Errorf("%s: %d is negative", key, *ms)
	case *ms > math.MaxInt64/int64(time.Millisecond):
		return fmt.Errorf("%s: %d is too long", key, *ms)
	}
	*d = time.Duration(*ms) * time.Millisecond
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

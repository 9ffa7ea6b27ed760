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
// never reads as 0 (a negative one is written as 0, and refused when read;
// an absent one reads as 0); a time is RFC 3339 (time.Time's own form); a
// decision is its name.

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

// MarshalJSON writes every field, Uptime as uptime_ms and a nil Args or
// Output as [].
func (e Event) MarshalJSON() ([]byte, error) {
	type plain Event // the same fields, without these methods
	p := plain(e)
	if p.Args == nil {
		p.Args = []string{}
	}
	if p.Output == nil {
		p.Output = []string{}
	}
	return marshalMillis(&p, &p.Uptime)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (e *Event) UnmarshalJSON(b []byte) error {
	type plain Event
	return unmarshalMillis(b, (*plain)(e), millis{"uptime_ms", &e.Uptime})
}

// MarshalJSON writes Delay as delay_ms.
func (v Verdict) MarshalJSON() ([]byte, error) {
	type plain Verdict
	p := plain(v)
	return marshalMillis(&p, &p.Delay)
}

// UnmarshalJSON is the inverse of MarshalJSON. An unknown decision is an
// error that wraps ErrUnknownDecision.
func (v *Verdict) UnmarshalJSON(b []byte) error {
	type plain Verdict
	return unmarshalMillis(b, (*plain)(v), millis{"delay_ms", &v.Delay})
}

// MarshalJSON writes the durations as interval_ms, timeout_ms and
// initial_delay_ms.
func (c ProbeConfig) MarshalJSON() ([]byte, error) {
	type plain ProbeConfig
	p := plain(c)
	return marshalMillis(&p, &p.Interval, &p.Timeout, &p.InitialDelay)
}

// UnmarshalJSON is the inverse of MarshalJSON.
func (c *ProbeConfig) UnmarshalJSON(b []byte) error {
	type plain ProbeConfig
	return unmarshalMillis(b, (*plain)(c), millis{"interval_ms", &c.Interval},
		millis{"timeout_ms", &c.Timeout}, millis{"initial_delay_ms", &c.InitialDelay})
}

// marshalMillis marshals p, a pointer to a copy of the value as a type
// without its methods, after turning each duration ds points to (fields of
// *p, whose tags name them KEY_ms) into its number of milliseconds: rounded
// up, so that a positive duration never reads as 0; 0 for a negative one.
func marshalMillis(p any, ds ...*time.Duration) ([]byte, error) {
	for _, d := range ds {
		ms := max(*d, 0) / time.Millisecond
		if *d > 0 && *d%time.Millisecond != 0 {
			ms++
		}
		*d = ms
	}
	return json.Marshal(p)
}

// millis is a duration field read as milliseconds under key.
type millis struct {
	key string
	d   *time.Duration
}

// unmarshalMillis decodes b into p (the value as a type without its
// methods, whose duration fields read their KEY_ms numbers as they are) and
// turns each of ds from milliseconds into a duration, refusing what no
// duration can be. A duration whose key is absent reads as 0.
func unmarshalMillis(b []byte, p any, ds ...millis) error {
	for _, m := range ds {
		*m.d = 0
	}
	if err := json.Unmarshal(b, p); err != nil {
		return err
	}
	for _, m := range ds {
		switch ms := *m.d; {
		case ms < 0:
			return fmt.Errorf("%s: %d is negative", m.key, ms)
		case ms > math.MaxInt64/time.Millisecond:
			return fmt.Errorf("%s: %d is too long", m.key, ms)
		}
		*m.d *= time.Millisecond
	}
	return nil
}

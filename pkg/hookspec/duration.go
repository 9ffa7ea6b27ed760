package hookspec

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
)

// ParseDuration reads a duration the way every respawner flag, plugin option
// and --plugin spec does: a bare decimal number is seconds, as sleep(1) and
// systemd's RestartSec= read it ("5", "0.5", ".25"), and anything else is a
// Go duration ("200ms", "1m30s"). It refuses negative values, values past
// time.Duration's range (about 292 years), NaN and infinities, exponents
// ("1e3") and anything else, with an error that quotes s.
func ParseDuration(s string) (time.Duration, error) {
	if isDecimal(s) {
		// time.ParseDuration reads decimal fractions exactly and reports
		// overflow, which float seconds would not.
		d, err := time.ParseDuration(s + "s")
		if err != nil {
			return 0, fmt.Errorf("%q is too long", s)
		}
		return d, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// A number, but not a plain decimal: -1, 1e309, Inf, NaN, 1e3, 0x10.
		switch {
		case f < 0 || s[0] == '-':
			return 0, fmt.Errorf("%q is negative", s)
		case math.IsInf(f, 0) || errors.Is(err, strconv.ErrRange):
			return 0, fmt.Errorf("%q is too long", s)
		}
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration", s)
	}
	if d < 0 || s[0] == '-' { // "-0s" too: a minus sign is a mistake
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// isDecimal reports whether s is digits with at most one '.', and at least
// one digit: "5", "0.5", ".5", "5.".
func isDecimal(s string) bool {
	digits, dots := 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.':
			dots++
		default:
			return false
		}
	}
	return digits > 0 && dots <= 1
}

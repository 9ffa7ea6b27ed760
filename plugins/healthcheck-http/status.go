package main

import (
	"fmt"
	"strconv"
	"strings"
)

// statusRange is the closed range lo..hi of HTTP status codes.
type statusRange struct{ lo, hi int }

// statusSet is the statuses that count as alive: the union of its ranges.
type statusSet []statusRange

// aliveStatuses is the default expect-status: every answer but a server
// error (see the package comment for why 4xx is alive).
var aliveStatuses = statusSet{{200, 499}}

// parseStatusSet parses the items of expect-status, each a code ("200"), a
// range ("200-399") or a class ("2xx").
func parseStatusSet(items []string) (statusSet, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("is empty (want codes or ranges such as 200 or 200-399)")
	}
	var s statusSet
	for _, it := range items {
		r, err := parseStatusRange(it)
		if err != nil {
			return nil, err
		}
		s = append(s, r)
	}
	return s, nil
}

func parseStatusRange(it string) (statusRange, error) {
	if len(it) == 3 && strings.EqualFold(it[1:], "xx") {
		if c := it[0]; c >= '1' && c <= '5' {
			lo := int(c-'0') * 100
			return statusRange{lo, lo + 99}, nil
		}
		return statusRange{}, fmt.Errorf("%q is not a status class (1xx to 5xx)", it)
	}
	a, b, isRange := strings.Cut(it, "-")
	lo, err := parseStatus(a, it)
	if err != nil {
		return statusRange{}, err
	}
	hi := lo
	if isRange {
		if hi, err = parseStatus(b, it); err != nil {
			return statusRange{}, err
		}
		if hi < lo {
			return statusRange{}, fmt.Errorf("%q is an empty range (%d is above %d)", it, lo, hi)
		}
	}
	return statusRange{lo, hi}, nil
}

func parseStatus(s, item string) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a status code, range or class (like 200, 200-399 or 2xx)", item)
	}
	if n < 100 || n > 599 {
		return 0, fmt.Errorf("%q: %d is not an HTTP status (100-599)", item, n)
	}
	return n, nil
}

// contains reports whether code is one of s.
func (s statusSet) contains(code int) bool {
	for _, r := range s {
		if code >= r.lo && code <= r.hi {
			return true
		}
	}
	return false
}

// String formats s as expect-status takes it: "200-499", "200,204,301-302".
func (s statusSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(r.lo))
		if r.hi != r.lo {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(r.hi))
		}
	}
	return b.String()
}

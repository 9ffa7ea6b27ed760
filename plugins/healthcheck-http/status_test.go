package main

import (
	"strings"
	"testing"
)

func TestParseStatusSet(t *testing.T) {
	tests := []struct {
		items   []string
		want    string // String() of the set
		in, out []int
	}{
		{[]string{"200"}, "200", []int{200}, []int{199, 201, 403}},
		{[]string{"200-399"}, "200-399", []int{200, 301, 399}, []int{199, 400, 500}},
		{[]string{"200", "204", "301-302"}, "200,204,301-302", []int{200, 204, 301, 302}, []int{201, 300, 303}},
		{[]string{"2xx"}, "200-299", []int{200, 299}, []int{199, 300}},
		{[]string{"2XX", "304"}, "200-299,304", []int{250, 304}, []int{303, 305}},
		{[]string{"200 - 204"}, "200-204", []int{202}, []int{205}},
		{[]string{"100-599"}, "100-599", []int{100, 599}, []int{99, 600}},
	}
	for _, tt := range tests {
		s, err := parseStatusSet(tt.items)
		if err != nil {
			t.Errorf("parseStatusSet(%q): %v", tt.items, err)
			continue
		}
		if got := s.String(); got != tt.want {
			t.Errorf("parseStatusSet(%q) = %s, want %s", tt.items, got, tt.want)
		}
		for _, c := range tt.in {
			if !s.contains(c) {
				t.Errorf("%s does not contain %d", s, c)
			}
		}
		for _, c := range tt.out {
			if s.contains(c) {
				t.Errorf("%s contains %d", s, c)
			}
		}
	}
}

func TestParseStatusSetErrors(t *testing.T) {
	tests := []struct {
		items []string
		want  string
	}{
		{nil, "is empty"},
		{[]string{"ok"}, `"ok" is not a status code, range or class`},
		{[]string{"200", "abc"}, `"abc" is not a status code`},
		{[]string{"600"}, "600 is not an HTTP status (100-599)"},
		{[]string{"99"}, "99 is not an HTTP status"},
		{[]string{"399-200"}, `"399-200" is an empty range`},
		{[]string{"200-"}, `"200-" is not a status code`},
		{[]string{"-200"}, `"-200" is not a status code`},
		{[]string{"200-300-400"}, `"200-300-400" is not a status code`},
		{[]string{"6xx"}, `"6xx" is not a status class`},
	}
	for _, tt := range tests {
		_, err := parseStatusSet(tt.items)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseStatusSet(%q) = %v, want an error with %q", tt.items, err, tt.want)
		}
	}
}

func TestAliveStatusesDefault(t *testing.T) {
	for _, c := range []int{200, 204, 301, 304, 401, 403, 404, 499} {
		if !aliveStatuses.contains(c) {
			t.Errorf("default: %d is not alive", c)
		}
	}
	for _, c := range []int{500, 502, 503, 504, 599} {
		if aliveStatuses.contains(c) {
			t.Errorf("default: %d is alive", c)
		}
	}
}

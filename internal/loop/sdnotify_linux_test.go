package loop

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestSanitizeStatus(t *testing.T) {
	long := strings.Repeat("é", statusMax) // two bytes each
	for _, tc := range []struct{ in, want string }{
		{"serving 3 clients", "serving 3 clients"},
		{"a\tb\x1b[31mred\x7f", "a b [31mred "},
		{"bad \xff utf-8", "bad \uFFFD utf-8"},
		{"\u0085next line", " next line"},
		{long, strings.Repeat("é", statusMax/2) + "…"},
	} {
		if got := sanitizeStatus(tc.in); got != tc.want {
			t.Errorf("sanitizeStatus(%.40q) = %.40q, want %.40q", tc.in, got, tc.want)
		}
	}
}

// FuzzSanitizeStatus: whatever a program sends as STATUS=, what status
// shows is valid UTF-8, bounded, and free of control characters.
func FuzzSanitizeStatus(f *testing.F) {
	f.Add("ok")
	f.Add("\x00\x1b[2J\xff\xfe")
	f.Add(strings.Repeat("日本", 200))
	f.Fuzz(func(t *testing.T, s string) {
		got := sanitizeStatus(s)
		if !utf8.ValidString(got) || len(got) > statusMax+len("…") {
			t.Fatalf("sanitizeStatus(%q) = %q: invalid or too long (%d bytes)", s, got, len(got))
		}
		for _, r := range got {
			if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
				t.Fatalf("sanitizeStatus(%q) = %q: control character %U", s, got, r)
			}
		}
		if len(s) <= statusMax && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }) && got != s {
			t.Fatalf("sanitizeStatus(%q) = %q: a harmless text was changed", s, got)
		}
	})
}

func TestParseUsec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1000000", time.Second, true},
		{"0", 0, true},
		{"18446744073709551615", math.MaxInt64, true}, // USEC_INFINITY
		{"-1", 0, false},
		{"1s", 0, false},
		{"", 0, false},
	} {
		got, ok := parseUsec(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseUsec(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

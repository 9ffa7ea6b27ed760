package hookspec

import (
	"testing"
	"time"
)

// TestParseDuration: a bare decimal is seconds, anything else a Go duration;
// negative, out-of-range, non-finite and malformed values are refused with an
// error that quotes the value.
func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0":          0,
		"5":          5 * time.Second,
		"0.5":        500 * time.Millisecond,
		".25":        250 * time.Millisecond,
		"5.":         5 * time.Second,
		"1.5s":       1500 * time.Millisecond,
		"200ms":      200 * time.Millisecond,
		"1m30s":      90 * time.Second,
		"0s":         0,
		"9223372036": 9223372036 * time.Second, // the largest whole number of seconds
	} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"-1":                   `"-1" is negative`,
		"-0.5":                 `"-0.5" is negative`,
		"-1s":                  `"-1s" is negative`,
		"-0s":                  `"-0s" is negative`,
		"-Inf":                 `"-Inf" is negative`,
		"1e309":                `"1e309" is too long`,
		"Inf":                  `"Inf" is too long`,
		"9223372037":           `"9223372037" is too long`,
		"99999999999999999999": `"99999999999999999999" is too long`,
		"NaN":                  `"NaN" is not a duration`,
		"1e3":                  `"1e3" is not a duration`,
		"0x10":                 `"0x10" is not a duration`,
		"5x":                   `"5x" is not a duration`,
		"1.2.3":                `"1.2.3" is not a duration`,
		".":                    `"." is not a duration`,
		"":                     `"" is not a duration`,
		"3000000h":             `"3000000h" is not a duration`,
	} {
		if got, err := ParseDuration(in); err == nil || err.Error() != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want error %s", in, got, err, want)
		}
	}
}

// FuzzParseDuration: whatever it accepts is not negative, and a duration it
// accepts reads back the same from its String form.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"5", "0.5", "1.5s", "200ms", "1m30s", "-1", "1e309", "NaN", "5x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
		if d2, err := ParseDuration(d.String()); err != nil || d2 != d {
			t.Fatalf("ParseDuration(%q) = %v, but ParseDuration(%q) = %v, %v", s, d, d.String(), d2, err)
		}
	})
}

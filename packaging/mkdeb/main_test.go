package main

import (
	"os/exec"
	"testing"
)

// git describe's versions in Debian form, and dpkg agrees that they are
// valid and sort as the history does.
func TestDebVersion(t *testing.T) {
	for _, c := range []struct {
		describe string
		commits  int
		want     string
	}{
		{"v1.2.0", 0, "1.2.0-1"},
		{"1.2.0", 0, "1.2.0-1"},
		{"v1.2.0-3-g1a2b3c4", 0, "1.2.0+3.g1a2b3c4-1"},
		{"v1.2.0-3-g1a2b3c4-dirty", 0, "1.2.0+3.g1a2b3c4.dirty-1"},
		{"v1.2.0-dirty", 0, "1.2.0+0.dirty-1"},
		{"v1.2.0-rc1", 0, "1.2.0~rc1-1"},
		{"v1.2.0-rc1-2-gabcdef0", 0, "1.2.0~rc1+2.gabcdef0-1"},
		{"86152b5", 206, "0~git206.g86152b5-1"},
		{"86152b5-dirty", 206, "0~git206.g86152b5.dirty-1"},
	} {
		got, err := debVersion(c.describe, c.commits)
		if err != nil || got != c.want {
			t.Errorf("debVersion(%q, %d) = %q, %v; want %q", c.describe, c.commits, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "dev", "x1234567", "v", "1.2.0 extra"} {
		if got, err := debVersion(bad, 1); err == nil {
			t.Errorf("debVersion(%q) = %q, want an error", bad, got)
		}
	}
	if _, err := debVersion("86152b5", 0); err == nil {
		t.Error("debVersion of a bare commit without a commit count: no error")
	}

	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg to check the order with")
	}
	// Each sorts before the next, as the history goes.
	order := []string{"86152b5", "86152b5-dirty", "v0.1.0-rc1", "v0.1.0-rc1-2-gabcdef0", "v0.1.0", "v0.1.0-dirty", "v0.1.0-3-g1a2b3c4", "v0.1.0-12-g1a2b3c4", "v0.1.1"}
	var prev string
	for _, d := range order {
		v, err := debVersion(d, 300)
		if err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("dpkg", "--validate-version", v).CombinedOutput(); err != nil {
			t.Errorf("dpkg --validate-version %s: %v %s", v, err, out)
		}
		if prev != "" {
			if err := exec.Command("dpkg", "--compare-versions", prev, "lt", v).Run(); err != nil {
				t.Errorf("dpkg says %s is not before %s", prev, v)
			}
		}
		prev = v
	}
}

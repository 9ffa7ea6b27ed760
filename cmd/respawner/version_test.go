package main

import (
	"bytes"
	"regexp"
	"runtime"
	"testing"
)

// version and --version print the same one line: the version and commit
// the Makefile sets, and the Go version and platform.
func TestVersion(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3-4-g1a2b3c4", "1a2b3c4d5e6f"
	want := "respawner v1.2.3-4-g1a2b3c4 (commit 1a2b3c4d5e6f, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}, {"-v"}} {
		var out, errb bytes.Buffer
		if code := runWith(args, &out, &errb); code != 0 || out.String() != want || errb.Len() != 0 {
			t.Errorf("respawner %v: exit %d, stdout %q, stderr %q; want 0, %q", args, code, out.String(), errb.String(), want)
		}
	}

	// Without -ldflags (go test, go build): what the toolchain recorded, or
	// "unknown", never an empty commit.
	version, commit = "dev", ""
	var out bytes.Buffer
	runWith([]string{"version"}, &out, &out)
	if !regexp.MustCompile(`^respawner \S+ \(commit \S+, go\S+, \w+/\w+\)\n$`).MatchString(out.String()) {
		t.Errorf("respawner version without ldflags: %q", out.String())
	}
}

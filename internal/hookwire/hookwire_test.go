package hookwire

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	sp, err := ParseSpec("healthcheck-http:url=http://127.0.0.1:8080/,header=X-A: 1, 2,header=X-B: 3,timeout=500ms")
	if err != nil {
		t.Fatal(err)
	}
	// timeout is respawner's (the call deadline) and is passed on too.
	want := map[string][]string{"url": {"http://127.0.0.1:8080/"}, "header": {"X-A: 1, 2", "X-B: 3"}, "timeout": {"500ms"}}
	if sp.Name != "healthcheck-http" || !reflect.DeepEqual(sp.Options, want) || sp.Timeout != 500*time.Millisecond {
		t.Fatalf("got %+v", sp)
	}
	sp, err = ParseSpec("notify-email")
	if err != nil || sp.Name != "notify-email" || len(sp.Options) != 0 || sp.Timeout != DefaultTimeout {
		t.Fatalf("bare name: %+v, %v", sp, err)
	}
	sp, err = ParseSpec("x:sha256=" + strings.Repeat("ab", 32))
	if err != nil || sp.SHA256 != strings.Repeat("ab", 32) || len(sp.Options) != 0 {
		t.Fatalf("sha256 must be respawner's alone: %+v, %v", sp, err)
	}
	for _, bad := range []string{"", "../x", "x:novalue", "x:=1", "x:timeout=soon", "x:sha256=abc"} {
		if _, err := ParseSpec(bad); err == nil {
			t.Errorf("ParseSpec(%q) accepted", bad)
		}
	}
}

func TestFindRefusesUnsafeBinaries(t *testing.T) {
	safe := t.TempDir()
	os.Chmod(safe, 0o755)
	open := t.TempDir()
	os.Chmod(open, 0o777)
	write := func(dir, name string, mode os.FileMode) {
		p := filepath.Join(dir, BinaryPrefix+name)
		os.WriteFile(p, []byte("#!/bin/sh\n"), mode)
		os.Chmod(p, mode)
	}
	write(safe, "good", 0o755)
	write(safe, "loose", 0o777)
	write(open, "indir", 0o755)
	if p, err := Find("good", []string{safe}); err != nil || p != filepath.Join(safe, BinaryPrefix+"good") {
		t.Fatalf("good: %q %v", p, err)
	}
	if _, err := Find("loose", []string{safe}); err == nil || !strings.Contains(err.Error(), "world-writable: refusing") {
		t.Fatalf("world-writable binary: %v", err)
	}
	if _, err := Find("indir", []string{open}); err == nil || !strings.Contains(err.Error(), "sits in world-writable") {
		t.Fatalf("binary in world-writable dir: %v", err)
	}
	if _, err := Find("missing", []string{safe}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("missing: %v", err)
	}
	// The first directory of the search path wins.
	other := t.TempDir()
	write(other, "good", 0o755)
	if p, _ := Find("good", []string{other, safe}); !strings.HasPrefix(p, other) {
		t.Fatalf("search order: %q", p)
	}
	if got := SortedNames(Available([]string{safe, open})); !reflect.DeepEqual(got, []string{"good", "indir", "loose"}) {
		t.Fatalf("Available: %v", got)
	}
}

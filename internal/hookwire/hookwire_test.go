package hookwire

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/respawner/respawner/pkg/hookspec"
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
	// A bare decimal is seconds, as everywhere else.
	sp, err = ParseSpec("x:timeout=0.5")
	if err != nil || sp.Timeout != 500*time.Millisecond {
		t.Fatalf("timeout=0.5: %+v, %v", sp, err)
	}
	sp, err = ParseSpec("notify-email")
	if err != nil || sp.Name != "notify-email" || len(sp.Options) != 0 || sp.Timeout != DefaultTimeout {
		t.Fatalf("bare name: %+v, %v", sp, err)
	}
	sp, err = ParseSpec("x:sha256=" + strings.Repeat("ab", 32))
	if err != nil || sp.SHA256 != strings.Repeat("ab", 32) || len(sp.Options) != 0 {
		t.Fatalf("sha256 must be respawner's alone: %+v, %v", sp, err)
	}
	for _, bad := range []string{"", "../x", "x:novalue", "x:=1", "x:timeout=soon", "x:timeout=-1", "x:timeout=0", "x:timeout=1e309", "x:sha256=abc"} {
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
	if _, err := Find("loose", []string{safe}); err == nil || !strings.Contains(err.Error(), "is world-writable (") {
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

// nobody is the uid that owns what "another user" could replace.
const nobody = 65534

// TestFindRefusesWhatOthersCanReplace: the binary and every directory on its
// resolved path up to / must be owned by root or this user and not writable
// by group or others, except a root-owned sticky directory such as /tmp
// (t.TempDir lives below it: that is the allowed case).
func TestFindRefusesWhatOthersCanReplace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown to another uid")
	}
	bin := []byte("#!/bin/sh\n")
	// mk makes dir (mode, owner) below parent and returns it.
	mk := func(parent, name string, mode os.FileMode, uid int) string {
		t.Helper()
		d := filepath.Join(parent, name)
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, mode); err != nil {
			t.Fatal(err)
		}
		return d
	}
	put := func(dir, name string, mode os.FileMode, uid int) string {
		t.Helper()
		p := filepath.Join(dir, BinaryPrefix+name)
		if err := os.WriteFile(p, bin, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	safe := mk(root, "safe", 0o755, 0)
	good := put(safe, "good", 0o755, 0)
	put(safe, "groupw", 0o775, 0)
	put(safe, "theirs", 0o755, nobody)
	theirDir := mk(root, "theirdir", 0o755, nobody)
	put(theirDir, "x", 0o755, 0)
	// A safe-looking directory below one that another user owns: they can
	// rename it away and put their own in its place.
	below := mk(theirDir, "below", 0o755, 0)
	put(below, "deep", 0o755, 0)
	groupDir := mk(root, "groupdir", 0o775, 0)
	put(groupDir, "x", 0o755, 0)
	open := mk(root, "open", 0o777, 0)
	put(open, "x", 0o755, 0)
	// A link in a safe directory to a binary in an open one.
	links := mk(root, "links", 0o755, 0)
	if err := os.Symlink(filepath.Join(open, BinaryPrefix+"x"), filepath.Join(links, BinaryPrefix+"viaopen")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(good, filepath.Join(links, BinaryPrefix+"viasafe")); err != nil {
		t.Fatal(err)
	}
	// Sticky and root-owned, like /tmp: others cannot rename our entry.
	sticky := mk(root, "sticky", os.ModeSticky|0o777, 0)
	put(sticky, "ours", 0o755, 0)
	put(sticky, "theirs", 0o755, nobody)
	// Sticky but owned by another user: that owner may rename anything.
	theirSticky := mk(root, "theirsticky", os.ModeSticky|0o777, nobody)
	put(theirSticky, "x", 0o755, 0)

	for _, tc := range []struct {
		dir, name string
		want      string // "" when it must be accepted; else a piece of the error
		resolved  string
	}{
		{safe, "good", "", good},
		{links, "viasafe", "", good},
		{sticky, "ours", "", filepath.Join(sticky, BinaryPrefix+"ours")},
		{safe, "groupw", "is group-writable (-rwxrwxr-x, owner uid 0): refusing to run it (chmod go-w " + filepath.Join(safe, BinaryPrefix+"groupw") + ")", ""},
		{safe, "theirs", "is owned by uid 65534 (-rwxr-xr-x), not by root or uid 0: refusing to run it", ""},
		{theirDir, "x", "sits in " + theirDir + ", which is owned by uid 65534 (drwxr-xr-x)", ""},
		{below, "deep", "sits in " + theirDir + ", which is owned by uid 65534", ""},
		{groupDir, "x", "sits in group-writable " + groupDir + " (drwxrwxr-x, owner uid 0): refusing to run it (chmod go-w " + groupDir, ""},
		{open, "x", "sits in world-writable " + open, ""},
		{links, "viaopen", "(resolved to " + filepath.Join(open, BinaryPrefix+"x") + ") sits in world-writable " + open, ""},
		{sticky, "theirs", "is owned by uid 65534", ""},
		{theirSticky, "x", "sits in " + theirSticky + ", which is owned by uid 65534", ""},
	} {
		p, err := Find(tc.name, []string{tc.dir})
		if tc.want == "" {
			if err != nil || p != tc.resolved {
				t.Errorf("%s/%s: %q, %v; want %q accepted", tc.dir, tc.name, p, err, tc.resolved)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s: %v; want an error with %q", tc.dir, tc.name, err, tc.want)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s/%s: the error is more than one line: %q", tc.dir, tc.name, err)
		}
	}
}

func TestBound(t *testing.T) {
	if got := Bound("short", MaxReason); got != "short" {
		t.Fatalf("short: %q", got)
	}
	for _, n := range []int{100, 101, 102, 103} {
		long := strings.Repeat("é", 60<<10) // two bytes each: every cut offset is tried
		got := Bound(long[:len(long)-(n%2)*2]+strings.Repeat("x", n%2), n)
		if len(got) > n || !utf8.ValidString(got) || !strings.Contains(got, " bytes cut]") {
			t.Errorf("Bound to %d: %d bytes, valid %v: %q", n, len(got), utf8.ValidString(got), got)
		}
	}
}

// TestMsgCarriesHookspec: the packets carry hookspec's types in their
// documented JSON form, and read back as they were sent.
func TestMsgCarriesHookspec(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sched := hookspec.ProbeConfig{Interval: 250 * time.Millisecond, Timeout: time.Second, FailureThreshold: 2, SuccessThreshold: 1}
	v := hookspec.DelayBy(1500 * time.Millisecond)
	for _, m := range []Msg{
		{T: TEvent, Event: &hookspec.Event{Kind: hookspec.Exited, Instance: "web", Args: []string{"-D"}, Time: at, ExitCode: 3, Uptime: 2 * time.Second, Output: []string{"fatal: out of memory"}, Host: "web1"}},
		{T: TVerdict, ID: 9, Plugin: "maint", Verdict: &v},
		{T: TProbed, ID: 4, Plugin: "hc", Probe: &hookspec.ProbeResult{Reason: "plugin restarting"}, Unknown: true},
		{T: TReady, Infos: []PluginInfo{{Path: "/p", Name: "hc", Version: "1", Events: []hookspec.Kind{hookspec.Exited}, Probe: true, Sched: &sched}}},
	} {
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Errorf("Decode(%s) = %+v, %v; want %+v", b, got, err, m)
		}
		want := map[string]string{TEvent: `"uptime_ms":2000`, TVerdict: `"decision":"delay"`, TReady: `"interval_ms":250`, TProbed: `"unknown":true`}[m.T]
		if !strings.Contains(string(b), want) {
			t.Errorf("%s packet %s lacks %s", m.T, b, want)
		}
	}
}

// TestDecodeUnknownDecision: a verdict with a decision hookspec does not
// know is an error wrapping ErrUnknownDecision, never a silent allow, and
// the message still says which question it answers.
func TestDecodeUnknownDecision(t *testing.T) {
	m, err := Decode([]byte(`{"t":"verdict","id":7,"plugin":"maint","verdict":{"decision":"maybe","delay_ms":0,"reason":"x"}}`))
	if !errors.Is(err, hookspec.ErrUnknownDecision) || !strings.Contains(err.Error(), `"maybe"`) {
		t.Fatalf("error %v, want ErrUnknownDecision naming the decision", err)
	}
	if m.T != TVerdict || m.ID != 7 || m.Plugin != "maint" || m.Verdict != nil {
		t.Fatalf("message %+v, want the verdict's t, id and plugin and no verdict", m)
	}
	if _, err := Decode([]byte(`{"t":"verdict","id":7,"verdict":{"decision":"deny"}}`)); err != nil {
		t.Fatalf("a known decision: %v", err)
	}
	if _, err := Decode([]byte(`{"t":`)); err == nil || errors.Is(err, hookspec.ErrUnknownDecision) {
		t.Fatalf("a broken packet: %v", err)
	}
}

func TestSearchDirs(t *testing.T) {
	t.Setenv("RESPAWNER_PLUGIN_PATH", "/opt/p::/usr/local/bin")
	got := SearchDirs("/tmp/p", "/usr/local/bin")
	want := []string{"/tmp/p", "/opt/p", "/usr/local/bin", "/usr/local/lib/respawner/plugins", SystemDir}
	if !slices.Equal(got, want) {
		t.Errorf("SearchDirs = %q, want %q", got, want)
	}
	// Installed with PREFIX=/usr, ../lib/respawner/plugins is SystemDir:
	// searched once.
	t.Setenv("RESPAWNER_PLUGIN_PATH", "")
	if got, want := SearchDirs("", "/usr/bin"), []string{"/usr/bin", SystemDir}; !slices.Equal(got, want) {
		t.Errorf("SearchDirs = %q, want %q", got, want)
	}
}

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/pkg/hookspec"
)

// recorded reads the events testhook's record-json option wrote.
func recorded(t *testing.T, path string) []hookspec.Event {
	t.Helper()
	var evs []hookspec.Event
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, path)), "\n") {
		if l == "" {
			continue
		}
		var ev hookspec.Event
		if err := json.Unmarshal([]byte(l), &ev); err != nil {
			t.Fatalf("recorded event %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func ofKind(evs []hookspec.Event, k hookspec.Kind) []hookspec.Event {
	var out []hookspec.Event
	for _, ev := range evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// crashWithWords prints a line on each stream and SIGKILLs itself: the
// exit an alert is about, with the crash's own words.
const crashWithWords = "echo 'listening on :80'; echo 'fatal: out of memory' >&2; kill -KILL $$"

// checkLastWords: the exited and gave-up events carry the program's last
// lines, whichever pipe they came on, and the host name; a SIGKILL is not
// clean.
func checkLastWords(t *testing.T, evs []hookspec.Event) {
	t.Helper()
	host, _ := os.Hostname()
	ex, gu := ofKind(evs, hookspec.Exited), ofKind(evs, hookspec.GaveUp)
	if len(ex) != 2 || len(gu) != 1 {
		t.Fatalf("events %v, want two exits and gave-up", kindsOf(evs))
	}
	for _, ev := range append(ex, gu...) {
		if !slices.Contains(ev.Output, "fatal: out of memory") || !slices.Contains(ev.Output, "listening on :80") ||
			len(ev.Output) != 2 || ev.Host != host || ev.Host == "" {
			t.Errorf("%s event: output %q, host %q (want the two lines of the last run, host %q)", ev.Kind, ev.Output, ev.Host, host)
		}
	}
	for _, ev := range ex {
		if ev.Clean || ev.Signal != "SIGKILL" {
			t.Errorf("exited %+v: want SIGKILL, not clean", ev)
		}
	}
	for _, ev := range evs {
		if ev.Host != host {
			t.Errorf("%s event without the host name: %q", ev.Kind, ev.Host)
		}
	}
}

func kindsOf(evs []hookspec.Event) string {
	var ks []string
	for _, ev := range evs {
		ks = append(ks, string(ev.Kind))
	}
	return strings.Join(ks, " ")
}

// TestEventsCarryLastOutputDaemon: in daemon mode respawner reads the
// program's output, so exited and gave-up carry its last lines.
func TestEventsCarryLastOutputDaemon(t *testing.T) {
	dir := runtimeDir(t)
	rec := filepath.Join(t.TempDir(), "events")
	t.Setenv("TESTHOOK_NOTIFY_ONLY", "1")
	cleanupInstance(t, dir, "words")
	r := respawner(t, dir, append([]string{"start", "--name", "words", "--start-check", "0"}, hookArgs("--plugin", "testhook:record-json="+rec,
		"-t", "0", "-n", "1", "/bin/sh", "--", "-c", crashWithWords)...)...)
	if r.code != 0 && r.code != 1 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	waitGone(t, dir, "words", 15*time.Second)
	checkLastWords(t, recorded(t, rec))
}

// TestEventsCarryLastOutputCaptured: under -D the program keeps respawner's
// stdout and stderr and events carry no output, unless --capture-output
// pipes it through respawner, which passes it on to its own stdout and
// stderr.
func TestEventsCarryLastOutputCaptured(t *testing.T) {
	t.Setenv("TESTHOOK_NOTIFY_ONLY", "1")
	for _, capture := range []bool{false, true} {
		rec := filepath.Join(t.TempDir(), "events")
		args := []string{"start", "-D"}
		if capture {
			args = append(args, "--capture-output")
		}
		args = append(args, hookArgs("--plugin", "testhook:record-json="+rec, "-t", "0", "-n", "1", "/bin/sh", "--", "-c", crashWithWords)...)
		r := respawnerWithin(t, runtimeDir(t), 20*time.Second, args...)
		if r.code != 1 {
			t.Fatalf("capture %v: exit %d, want 1 (gave up): %s", capture, r.code, r.stderr)
		}
		// Either way the program's lines reach respawner's stdout and stderr.
		if strings.Count(r.stdout, "listening on :80\n") != 2 || strings.Count(r.stderr, "fatal: out of memory\n") != 2 {
			t.Fatalf("capture %v: stdout %q, stderr %q", capture, r.stdout, r.stderr)
		}
		evs := recorded(t, rec)
		if capture {
			checkLastWords(t, evs)
			continue
		}
		for _, ev := range evs {
			if len(ev.Output) != 0 {
				t.Fatalf("without --capture-output: %s event carries %q", ev.Kind, ev.Output)
			}
		}
	}
}

// TestExitedCleanFlag: a program that exits by itself with a code outside -e
// is not clean; the same program ended by a requested stop is, whatever its
// status.
func TestExitedCleanFlag(t *testing.T) {
	t.Setenv("TESTHOOK_NOTIFY_ONLY", "1")
	rec := filepath.Join(t.TempDir(), "events")
	in := startRespawner(t, hookArgs("--plugin", "testhook:record-json="+rec+",events=exited", "-t", "0", "-e", "0,7",
		"/bin/sh", "--", "-c", "trap 'exit 9' TERM; if [ -e "+rec+".twice ]; then exit 7; fi; touch "+rec+".twice; exit 3")...)
	in.waitFor("exited", 10*time.Second)
	in.waitFor("exited", 10*time.Second)
	in2 := startRespawner(t, hookArgs("--plugin", "testhook:record-json="+rec+".stop,events=exited",
		"/bin/sh", "--", "-c", "trap 'exit 9' TERM; while :; do sleep 0.1; done")...)
	in2.waitFor("hook plugin ready", 10*time.Second)
	in2.waitFor("started", 10*time.Second)
	in2.stopOK()
	in.wait(10 * time.Second)
	got := []bool{}
	for _, ev := range append(recorded(t, rec), recorded(t, rec+".stop")...) {
		got = append(got, ev.Clean)
	}
	if !slices.Equal(got, []bool{false, true, true}) {
		t.Fatalf("clean flags %v, want exit 3 not clean, exit 7 (-e) clean, exit 9 on stop clean", got)
	}
}

// TestHeldAndReleasedOnce: a maintenance hold is told once when it begins,
// however many times the question is asked again while it lasts, and once
// when the restart goes ahead.
func TestHeldAndReleasedOnce(t *testing.T) {
	tmp := t.TempDir()
	maint, rec := filepath.Join(tmp, "maintenance"), filepath.Join(tmp, "events")
	os.WriteFile(maint, nil, 0o644)
	in := startRespawner(t, hookArgs("--plugin", "testhook:deny-while="+maint+",reason=maintenance window,record-json="+rec,
		"-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
	for range 3 { // asked again after each respawn timeout (at least 1 s apart)
		in.waitFor("restart held by a hook", 10*time.Second)
	}
	os.Remove(maint)
	in.waitFor("restarted", 10*time.Second)
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (gave up)", code)
	}
	evs := recorded(t, rec)
	var told []string
	for _, ev := range evs {
		if ev.Kind != hookspec.RestartPending {
			told = append(told, string(ev.Kind))
		}
	}
	want := "starting started exited held released restarting started exited gave-up"
	if got := strings.Join(told, " "); got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if n := len(ofKind(evs, hookspec.RestartPending)); n < 4 {
		t.Fatalf("restart-pending asked %d times, want at least 4 (3 while held)", n)
	}
	if h := ofKind(evs, hookspec.Held)[0]; !strings.Contains(h.Reason, "maintenance window") || h.Attempt != 1 {
		t.Fatalf("held %+v, want the plugin's reason and attempt 1", h)
	}
}

// TestProgramEnvHasNoRespawnerVariables: respawner's own variables, secrets
// for its plugins among them, never reach the program, under -D or in
// daemon mode; the rest of the environment does, and the plugins get the
// secrets.
func TestProgramEnvHasNoRespawnerVariables(t *testing.T) {
	t.Setenv("RESPAWNER_SMTP_PASSWORD", "hunter2")
	t.Setenv("RESPAWNER_WEBHOOK_SECRET", "s3cret")
	t.Setenv("RESPAWNER_ANYTHING", "x")
	t.Setenv("KEEP_ME", "yes")
	tmp := t.TempDir()
	for _, mode := range []string{"-D", "daemon"} {
		out := filepath.Join(tmp, mode+".env")
		args := []string{"start", "--name", "env" + mode, "--start-check", "0", "--restart", "never",
			"--plugin-dir", pluginDir, "--plugin", "testhook:require-env=RESPAWNER_SMTP_PASSWORD", "/bin/sh", "--", "-c", "env > " + out}
		dir := runtimeDir(t)
		if mode == "-D" {
			args = append([]string{"start", "-D"}, args[1:]...)
		} else {
			cleanupInstance(t, dir, "env"+mode)
		}
		if r := respawnerWithin(t, dir, 20*time.Second, args...); r.code != 0 {
			t.Fatalf("%s: exit %d: %s", mode, r.code, r.stderr)
		}
		if mode == "daemon" {
			waitGone(t, dir, "env"+mode, 10*time.Second)
		}
		env := readFile(t, out)
		if strings.Contains(env, "RESPAWNER_") || strings.Contains(env, "hunter2") || !strings.Contains(env, "KEEP_ME=yes\n") {
			t.Fatalf("%s: the program's environment:\n%s", mode, env)
		}
	}
}

// waitGone waits for the respawner of instance name to end, if it runs.
func waitGone(t *testing.T, dir, name string, timeout time.Duration) {
	t.Helper()
	if pid, live := control.Live(dir, name); live && !control.WaitGone(pid, timeout) {
		t.Fatalf("respawner %s (pid %d) still runs after %s", name, pid, timeout)
	}
}

// TestListenerHearsInBursts: a plugin that only listens is woken once a
// second during a crash loop, with everything that happened meanwhile, in
// order, and nothing lost; the first event after a quiet second goes at
// once. (Each wake-up of a plugin costs the next restarts a little on a
// small machine, docs/BENCHMARKS.md.)
func TestListenerHearsInBursts(t *testing.T) {
	t.Setenv("TESTHOOK_NOTIFY_ONLY", "1")
	tmp := t.TempDir()
	rec, arr := filepath.Join(tmp, "events"), filepath.Join(tmp, "arrivals")
	in := startRespawner(t, hookArgs("--plugin", "testhook:record-json="+rec+",arrivals="+arr, "-t", "0.05", "--restart", "always",
		"/bin/true")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	start := time.Now()
	in.waitFor("started", 5*time.Second)
	time.Sleep(2500 * time.Millisecond) // the crash loop runs: about 20 restarts a second
	in.stopOK()
	if d := time.Since(start); d > 6*time.Second {
		t.Fatalf("the stop took %s: the plugin held it", d)
	}
	var stamps []int64
	for _, l := range strings.Fields(readFile(t, arr)) {
		n, err := strconv.ParseInt(l, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, n)
	}
	// A burst is events that arrive back to back; restarts come 50 ms
	// apart, so without bursts each restart's events would be one.
	bursts := 1
	for i := 1; i < len(stamps); i++ {
		if time.Duration(stamps[i]-stamps[i-1]) > 25*time.Millisecond {
			bursts++
		}
	}
	evs := recorded(t, rec)
	if len(evs) < 40 || bursts > 8 {
		t.Errorf("%d events in %d bursts; want the crash loop's (at least 40) in at most 8", len(evs), bursts)
	}
	// The first event, after a quiet start, goes at once; none waits much
	// over the second between bursts. (Arrivals are stamped as recorded,
	// one a line each, in the same order.)
	if len(stamps) != len(evs) || len(evs) == 0 {
		t.Fatalf("%d arrivals for %d events", len(stamps), len(evs))
	}
	for i, ev := range evs {
		late := time.Unix(0, stamps[i]).Sub(ev.Time)
		if i == 0 && late > 300*time.Millisecond || late > 1500*time.Millisecond {
			t.Errorf("event %d (%s) arrived %s after it happened", i, ev.Kind, late)
		}
	}
	// All of them, in order: each restart's exited, restart-pending,
	// restarting, started, and the stop's at the end (stopping, exited,
	// stopped; or stopped alone, between two runs).
	var got []string
	for i, ev := range evs {
		got = append(got, string(ev.Kind))
		if i > 0 && ev.Time.Before(evs[i-1].Time) {
			t.Errorf("event %d (%s) out of order", i, ev.Kind)
		}
	}
	cycle := []string{"exited", "restart-pending", "restarting", "started"}
	body := strings.Join(got, " ")
	for _, end := range []string{" stopping exited stopped", " exited restart-pending stopped"} {
		body = strings.TrimSuffix(body, end)
	}
	want := "starting started"
	for len(want) < len(body) {
		want += " " + strings.Join(cycle, " ")
	}
	if body != want || got[len(got)-1] != "stopped" {
		t.Errorf("events: %q", got)
	}
}

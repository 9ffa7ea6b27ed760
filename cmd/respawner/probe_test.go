package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Failing probes past the threshold restart the program through the normal
// path; recovery is reported as healthy.
func TestProbeRestartsUnhealthyProgram(t *testing.T) {
	sick := filepath.Join(t.TempDir(), "sick")
	in := startRespawner(t, hookArgs("--plugin", "testprobe:unhealthy-while="+sick+",interval=200ms,timeout=100ms,failures=2",
		"-t", "0", "/bin/sleep", "--", "1000")...)
	first := in.waitFor("started", 10*time.Second).int("pid")
	in.waitFor("healthy", 5*time.Second)
	st, code := statusOf(t, in.dir, "sleep")
	if code != 0 || st.Health != "healthy" {
		t.Fatalf("status: exit %d %+v, want running and healthy", code, st)
	}
	os.WriteFile(sick, nil, 0o644)
	fail := in.waitFor("probe failed", 5*time.Second)
	if fail.int("consecutive") != 1 {
		t.Fatalf("first failure logged as %v", fail)
	}
	in.waitFor("unhealthy: restarting", 5*time.Second)
	os.Remove(sick)
	re := in.waitFor("restarted", 5*time.Second)
	if re.int("pid") == first || alive(first) {
		t.Fatalf("unhealthy program %d not replaced (new pid %d)", first, re.int("pid"))
	}
	in.waitFor("healthy", 5*time.Second)
	st, _ = statusOf(t, in.dir, "sleep")
	if st.Health != "healthy" || st.Restarts != 1 || !strings.Contains(st.LastProbe, "testprobe") {
		t.Fatalf("status after recovery: %+v", st)
	}
	if !strings.Contains(respawner(t, in.dir, "status", "sleep").stdout, "health ok") {
		t.Fatal("status line does not show health ok")
	}
	in.signal(15)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A hook host that never answers (stopped here): each probe out is given up
// at its guard, Timeout + 1 s after its period started, and counts neither
// way; the periods in between are skipped, never stacked; probing goes on at
// its rate, and once the host answers again so do the probes.
func TestProbeHostStoppedNoAnswer(t *testing.T) {
	in := startRespawner(t, hookArgs("--log-level", "debug", "--plugin", "testprobe:interval=300ms,timeout=200ms,failures=1",
		"/bin/sleep", "--", "1000")...)
	in.waitFor("started", 10*time.Second)
	in.waitFor("healthy", 5*time.Second)
	host, _ := hookProcs(in.cmd.Process.Pid)
	if host == 0 {
		t.Fatal("no hook host")
	}
	if err := syscall.Kill(host, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(host, syscall.SIGCONT)
	var gaveUp []time.Time
	skipped := 0
	deadline := time.After(10 * time.Second)
	for len(gaveUp) < 3 {
		var l logLine
		select {
		case l = <-in.lines:
		case <-deadline:
			t.Fatalf("%d probes given up in 10s with the host stopped, want 3:\n%s", len(gaveUp), in.log())
		}
		switch l.msg() {
		case "":
			t.Fatalf("respawner ended:\n%s", in.log())
		case "probe failed", "unhealthy: restarting":
			t.Fatalf("a probe the host never ran counted as failed:\n%s", in.log())
		case "probe skipped: the previous one has not answered yet":
			skipped++
		case "probe could not run":
			if l.str("reason") != "no answer from the hook host" {
				t.Fatalf("reason %q", l.str("reason"))
			}
			ts, _ := time.Parse(time.RFC3339Nano, l.str("@timestamp"))
			gaveUp = append(gaveUp, ts)
		}
	}
	// Timeout + 1 s = 1.2 s: four periods, the last of which sends the next
	// probe, so the three are 2.4 s apart on the grid (0.6 s if a probe
	// were given up every period). Loose bounds, over the whole span: a
	// loop that is late for one guard (the machine busy) shortens the gap
	// after it, not the grid.
	if d := gaveUp[len(gaveUp)-1].Sub(gaveUp[0]); d < 1200*time.Millisecond || d > 6*time.Second {
		t.Fatalf("3 probes given up within %s, want about 2.4s:\n%s", d, in.log())
	}
	if skipped < 2*(len(gaveUp)-1) {
		t.Fatalf("%d periods skipped while %d probes were out, want 3 each:\n%s", skipped, len(gaveUp), in.log())
	}
	syscall.Kill(host, syscall.SIGCONT)
	for end := time.Now().Add(5 * time.Second); ; {
		st, _ := statusOf(t, in.dir, "sleep")
		if st.Health == "healthy" && strings.HasSuffix(st.LastProbe, ": ok") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("no probe result 5s after the host went on: %+v\n%s", st, in.log())
		}
		time.Sleep(50 * time.Millisecond) // the test asks as an operator would
	}
	in.stopOK()
}

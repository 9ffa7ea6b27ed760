package main

import (
	"os"
	"path/filepath"
	"strings"
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

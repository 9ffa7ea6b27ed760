package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// roundTrip drives a plugin client as respawner does: Configure (which
// returns the schedule), Info, then probes.
func roundTrip(t *testing.T, c *hooks.Client, wantVersion string) {
	t.Helper()
	ctx := t.Context()
	base := statusServer(t)

	sched, err := c.Configure(ctx, map[string][]string{
		"url":           {base + "/403"},
		"interval":      {"5s"},
		"timeout":       {"1s"},
		"initial-delay": {"3s"},
		"failures":      {"4"},
	})
	if err != nil {
		t.Fatalf("configure: %v", err)
	}
	want := hooks.ProbeConfig{Interval: 5 * time.Second, Timeout: time.Second, InitialDelay: 3 * time.Second, FailureThreshold: 4, SuccessThreshold: 1}
	if sched == nil || *sched != want {
		t.Errorf("schedule = %+v, want %+v", sched, want)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("info: %v", err)
	}
	if !info.Probe || !info.Configure || info.Notify || info.Veto || info.Version != wantVersion {
		t.Errorf("info = %+v, want a configurable probe, version %s", info, wantVersion)
	}
	r, err := c.Probe(ctx)
	if err != nil || !r.Healthy || r.Reason != "HTTP 403" {
		t.Errorf("probe = %+v, %v; want healthy HTTP 403", r, err)
	}
}

// TestInProcess: Configure → ProbeConfig → Probe over the SDK's gRPC shims.
func TestInProcess(t *testing.T) {
	c, err := hooks.InProcess(&checker{version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	roundTrip(t, c, "test")
}

func TestInProcessBadOptions(t *testing.T) {
	c, err := hooks.InProcess(&checker{version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	_, err = c.Configure(t.Context(), map[string][]string{"method": {"DELETE"}, "header": {"nocolon"}})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, w := range []string{`option method: "DELETE" is not one of`, `option header: "nocolon" has no colon`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q has no %q", err, w)
		}
	}
}

// TestBinary builds respawner-plugin-healthcheck-http and talks to it as
// respawner does, through Launch: main's Serve call, the version stamped
// with -ldflags, and a probe reason that crosses the process boundary.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "respawner-plugin-healthcheck-http")
	cmd := exec.CommandContext(t.Context(), gobin, "build", "-o", bin, "-ldflags", "-X main.version=9.9.9-test", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c, err := hooks.Launch(bin, hooks.LaunchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Kill)
	roundTrip(t, c, "9.9.9-test")
}

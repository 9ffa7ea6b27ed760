package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/eventschema"
	"github.com/respawner/respawner/internal/hooktest/e2e"
	"github.com/respawner/respawner/pkg/hooks"
)

// TestEndToEnd builds respawner, respawner-hookhost and this plugin, and runs
// a program that writes a line and SIGKILLs itself under `respawner start -D
// --capture-output -n 1`: the receiver hears the first exit at once
// (SIGKILL, not clean, the instance's name, the host, the program's last
// line), the second in the digest that gave-up flushes, then gave-up, before
// respawner has exited.
func TestEndToEnd(t *testing.T) {
	dir, plugins, run := buildAll(t)
	r := newReceiver(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "respawner"), "start", "-D", "--name", "web",
		"--plugin-dir", plugins, "--plugin", "notify-webhook:url="+r.URL+"/hook",
		"--capture-output", "-t", "0", "-n", "1", "/bin/sh", "--", "-c", "echo 'last words' >&2; kill -KILL $$")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+run)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("respawner: %v, want exit 1 (gave up)\n%s", err, stderr.String())
	}
	// Every notification was delivered before respawner exited.
	var got []string
	for len(r.got) > 0 {
		q := <-r.got
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(q.body, &doc); err != nil {
			t.Fatalf("%v: %s", err, q.body)
		}
		delete(doc, "digest")
		b, _ := json.Marshal(doc)
		var ev hooks.Event
		strict(t, b, &ev)
		host, _ := os.Hostname()
		if len(got) == 0 && (ev.Kind != hooks.Exited || ev.Signal != "SIGKILL" || ev.Instance != "web" || ev.Program != "/bin/sh" || ev.PID == 0 ||
			!slices.Equal(ev.Output, []string{"last words"}) || ev.Host != host || ev.Clean) {
			t.Errorf("first notification %s, want web's exit by SIGKILL", q.body)
		}
		got = append(got, string(ev.Kind)+"/"+ev.Signal)
		if q.path != "/hook" {
			t.Errorf("path %q", q.path)
		}
	}
	if s := strings.Join(got, " "); s != "exited/SIGKILL exited/SIGKILL gave-up/" {
		t.Fatalf("the receiver got %q, want exited/SIGKILL, the digest of the second, gave-up\n%s", s, stderr.String())
	}
}

// buildAll builds respawner, respawner-hookhost, this plugin and the
// maintenance example into a temporary directory: dir holds the first two,
// plugins the others, run is a runtime dir (e2e.Build).
func buildAll(t *testing.T) (dir, plugins, run string) {
	t.Helper()
	return e2e.Build(t, map[string]string{"notify-webhook": "plugins/notify-webhook", "maintenance": "examples/hooks/maintenance"})
}

// TestEndToEndHold: a maintenance hold that lasts through several re-asks
// produces exactly one held and one released notification, each a valid
// event of the documented schema.
func TestEndToEndHold(t *testing.T) {
	dir, plugins, run := buildAll(t)
	maint := filepath.Join(dir, "maintenance")
	if err := os.WriteFile(maint, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	logPath := filepath.Join(dir, "log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "respawner"), "start", "-D", "--name", "web",
		"--plugin-dir", plugins, "--plugin", "notify-webhook:url="+r.URL+",events=held,released",
		"--plugin", "maintenance:file="+maint, "-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+run)
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The hold lasts through three more questions (at least a second apart).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(logPath)
		if strings.Count(string(b), "restart held by a hook") >= 4 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the restart was not held four times:\n%s", b)
		}
	}
	os.Remove(maint)
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("respawner: %v, want exit 1 (gave up after the released restart)\n%s", err, b)
	}
	var got []string
	for len(r.got) > 0 {
		q := <-r.got
		if err := eventschema.Validate(q.body); err != nil {
			t.Errorf("%v\n%s", err, q.body)
		}
		var ev hooks.Event
		strict(t, q.body, &ev)
		if ev.Kind == hooks.Held && !strings.Contains(ev.Reason, maint+" exists") {
			t.Errorf("held for %q", ev.Reason)
		}
		got = append(got, string(ev.Kind))
	}
	if s := strings.Join(got, " "); s != "held released" {
		t.Fatalf("the receiver got %q, want one held and one released", s)
	}
}

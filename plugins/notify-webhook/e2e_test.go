package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// TestEndToEnd builds respawner, respawner-hookhost and this plugin, and runs
// a program that SIGKILLs itself under `respawner start -D -n 1`: the
// receiver hears the first exit at once (SIGKILL, the instance's name), the
// second in the digest that gave-up flushes, then gave-up, before respawner
// has exited.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds respawner and the plugin")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	dir := t.TempDir()
	plugins := filepath.Join(dir, "plugins")
	for _, b := range [][2]string{
		{filepath.Join(dir, "respawner"), "../../cmd/respawner"},
		{filepath.Join(dir, "respawner-hookhost"), "../../cmd/respawner-hookhost"},
		{filepath.Join(plugins, "respawner-plugin-notify-webhook"), "."},
	} {
		cmd := exec.CommandContext(t.Context(), gobin, "build", "-o", b[0], b[1])
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "respawner"), "start", "-D", "--name", "web",
		"--plugin-dir", plugins, "--plugin", "notify-webhook:url="+r.URL+"/hook",
		"-t", "0", "-n", "1", "/bin/sh", "--", "-c", "kill -KILL $$")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+run)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err = cmd.Run()
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
		if len(got) == 0 && (ev.Kind != hooks.Exited || ev.Signal != "SIGKILL" || ev.Instance != "web" || ev.Program != "/bin/sh" || ev.PID == 0) {
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

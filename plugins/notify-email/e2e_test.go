package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestEndToEnd builds respawner, respawner-hookhost and this plugin, and
// runs a program that prints a line and SIGKILLs itself under
// `respawner start -D --capture-output`, with a restart delay long enough
// that respawner is stopped before the second run. The relay gets one mail
// that names the instance, this host and SIGKILL, and shows the program's
// last output line.
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
		{filepath.Join(plugins, "respawner-plugin-notify-email"), "."},
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
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	s := newSMTPServer(t, serverOpts{})
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const last = "last words of web before SIGKILL"
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "respawner"), "start", "-D", "--capture-output", "--name", "web",
		"--plugin-dir", plugins, "--plugin", "notify-email:to=ops@example.com,from=respawner@example.com,server="+s.addr,
		"-t", "60", "/bin/sh", "--", "-c", "echo starting; echo '"+last+"'; kill -KILL $$")
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+run)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var r received
	select {
	case r = <-s.got:
	case err := <-exited:
		t.Fatalf("respawner exited before any mail: %v\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		t.Fatalf("no mail within 30s\n%s", stderr.String())
	}
	// The program waits 60 s for its restart: stop respawner meanwhile.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-exited; err != nil {
		t.Errorf("respawner after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
	}

	subj := r.subject(t)
	if want := "[respawner] web on " + host + ": killed by SIGKILL"; !strings.HasPrefix(subj, want) {
		t.Errorf("subject %q, want it to begin %q", subj, want)
	}
	if r.from != "respawner@example.com" || len(r.to) != 1 || r.to[0] != "ops@example.com" {
		t.Errorf("envelope from %q to %q", r.from, r.to)
	}
	for _, want := range []string{"Instance:  web\n", "Host:      " + host + "\n", "Exit:      killed by signal SIGKILL\n",
		"Program:   /bin/sh -c ", "    " + last + "\n"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("body has no %q:\n%s\nrespawner:\n%s", want, r.body, stderr.String())
		}
	}
	if len(s.got) > 0 {
		t.Errorf("%d more mails, want one", len(s.got))
	}
}

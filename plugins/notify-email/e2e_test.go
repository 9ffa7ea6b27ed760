package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/hooktest/e2e"
)

// TestEndToEnd builds respawner, respawner-hookhost and this plugin, and
// runs a program that prints a line and SIGKILLs itself under
// `respawner start -D --capture-output`, with a restart delay long enough
// that respawner is stopped before the second run. The relay gets one mail
// that names the instance, this host and SIGKILL, and shows the program's
// last output line.
func TestEndToEnd(t *testing.T) {
	dir, plugins, run := buildAll(t)
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

// buildAll builds respawner, respawner-hookhost and this plugin into a
// temporary directory (e2e.Build): dir holds the first two, plugins the
// plugin, run is a runtime dir.
func buildAll(t *testing.T) (dir, plugins, run string) {
	t.Helper()
	return e2e.Build(t, map[string]string{"notify-email": "plugins/notify-email"})
}

// TestEndToEndCrashLoop: a daemonized respawner restarts a program that
// crashes at once, 50 times in a few seconds, then is stopped. The relay
// gets at most three mails: the first crash at once, and the digest of the
// others that the stop flushes, counting every one of them and showing the
// last run's own words.
func TestEndToEndCrashLoop(t *testing.T) {
	dir, plugins, run := buildAll(t)
	runs := filepath.Join(dir, "runs")
	s := newSMTPServer(t, serverOpts{})
	respawner := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(dir, "respawner"), args...)
		cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+run)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := respawner("start", "--name", "loop", "--start-check", "0", "--plugin-dir", plugins,
		"--plugin", "notify-email:to=ops@example.com,from=respawner@example.com,server="+s.addr,
		"-t", "0.05", "/bin/sh", "--", "-c", "echo run >> "+runs+"; echo \"crash $(wc -l < "+runs+")\"; kill -KILL $$")
	if err != nil {
		t.Fatalf("start: %v\n%s", err, out)
	}
	t.Cleanup(func() { respawner("stop", "loop") })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile(runs)
		if strings.Count(string(b), "\n") >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d runs in 30 s, want 50", strings.Count(string(b), "\n"))
		}
	}
	if out, err := respawner("stop", "loop"); err != nil {
		t.Fatalf("stop: %v\n%s", err, out)
	}
	b, _ := os.ReadFile(runs)
	n := strings.Count(string(b), "\n")
	var mails []received
	for len(mails) < 2 {
		select {
		case r := <-s.got:
			mails = append(mails, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d mails, want the first crash and a digest", len(mails))
		}
	}
	time.Sleep(500 * time.Millisecond) // anything more would have come with the flush
	for len(s.got) > 0 {
		mails = append(mails, <-s.got)
	}
	if len(mails) > 3 {
		t.Fatalf("%d mails for %d crashes, want at most 3", len(mails), n)
	}
	if subj := mails[0].subject(t); !strings.Contains(subj, "killed by SIGKILL") || !strings.Contains(mails[0].body, "    crash 1\n") {
		t.Errorf("first mail %q:\n%s", subj, mails[0].body)
	}
	// The digest counts every crash after the first, up to the last one,
	// whose words it shows (a run the stop ended, if any, is no crash).
	last := mails[len(mails)-1]
	m := regexp.MustCompile(`(?m)^    crash (\d+)$`).FindAllStringSubmatch(last.body, -1)
	if len(m) == 0 {
		t.Fatalf("the last mail shows no output:\n%s", last.body)
	}
	k, _ := strconv.Atoi(m[len(m)-1][1])
	if subj, want := last.subject(t), fmt.Sprintf("%d more exits since", k-1); !strings.Contains(subj, want) || k < n-1 {
		t.Errorf("last mail %q, want a digest of %q, %d or %d runs:\n%s", subj, want, n-1, n, last.body)
	}
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
)

// complete runs cobra's hidden `respawner __complete ARGS...` (what the
// shells' completion scripts run) against runtime dir dir, and returns the
// completions it printed and its directive.
func complete(t *testing.T, dir string, args ...string) ([]string, string) {
	t.Helper()
	r := respawner(t, dir, append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("respawner __complete %q: exit %d: %s%s", args, r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	last := len(lines) - 1
	if last < 0 || !strings.HasPrefix(lines[last], ":") {
		t.Fatalf("respawner __complete %q: no directive line:\n%s", args, r.stdout)
	}
	return lines[:last], lines[last]
}

// names strips the descriptions ("HUP\thangup") off completions.
func names(comps []string) []string {
	out := make([]string, len(comps))
	for i, c := range comps {
		out[i], _, _ = strings.Cut(c, "\t")
	}
	return out
}

// stop and status complete the names of the instances in the runtime dir
// (the environment's, or --runtime-dir given on the line): a running one,
// and one whose respawner died while its program runs on; never a name that
// only stale files are left of, nor anything past the first argument.
func TestCompleteInstances(t *testing.T) {
	in := startRespawner(t, "--name", "web-1", "/bin/sleep", "--", "1000")
	in.waitFor("started", 5*time.Second)
	dir := in.dir

	// A respawner that ended and left its pidfile behind: no instance.
	if err := os.WriteFile(filepath.Join(dir, "stale.pid"), []byte("999999\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A program whose respawner died: its NAME.state names a live process.
	orphan := exec.Command("/bin/sleep", "1000")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { orphan.Process.Kill(); orphan.Wait() })
	ticks, err := control.ProcStartTime(orphan.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st := control.State{PID: orphan.Process.Pid, Ticks: ticks, PGID: syscall.Getpgrp()}
	if err := os.WriteFile(filepath.Join(dir, "adoptme.state"), []byte(st.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	want := []string{"adoptme", "web-1"}
	for _, cmd := range []string{"stop", "status", "restart", "signal", "logs"} {
		got, directive := complete(t, dir, cmd, "")
		if !slices.Equal(got, want) || directive != fmt.Sprintf(":%d", cobra.ShellCompDirectiveNoFileComp) {
			t.Errorf("__complete %s '': %q %s, want %q :%d (no file names)", cmd, got, directive, want, cobra.ShellCompDirectiveNoFileComp)
		}
	}
	if got, _ := complete(t, dir, "stop", "we"); !slices.Equal(got, []string{"web-1"}) {
		t.Errorf("__complete stop we: %q, want [web-1]", got)
	}
	if got, _ := complete(t, dir, "status", "web-1", ""); len(got) != 0 {
		t.Errorf("__complete status web-1 '': %q, want nothing (one argument only)", got)
	}
	// --runtime-dir on the line wins over the environment, as for the command.
	if got, _ := complete(t, runtimeDir(t), "status", "--runtime-dir", dir, ""); !slices.Equal(got, want) {
		t.Errorf("__complete status --runtime-dir DIR '': %q, want %q", got, want)
	}
	if got, _ := complete(t, dir, "stop", "--runtime-dir", runtimeDir(t), ""); len(got) != 0 {
		t.Errorf("__complete stop --runtime-dir EMPTY '': %q, want nothing", got)
	}
	if got, _ := complete(t, filepath.Join(t.TempDir(), "missing"), "stop", ""); len(got) != 0 {
		t.Errorf("__complete stop '' without a runtime dir: %q, want nothing", got)
	}

	// signal NAME SIG: instances first, then signals; --stop-signal too.
	if got, _ := complete(t, dir, "signal", "web-1", "HU"); !slices.Equal(names(got), []string{"HUP"}) {
		t.Errorf("__complete signal web-1 HU: %q, want [HUP]", got)
	}
	if got, _ := complete(t, dir, "signal", "web-1", "HUP", ""); len(got) != 0 {
		t.Errorf("__complete signal web-1 HUP '': %q, want nothing", got)
	}
	if got, _ := complete(t, dir, "start", "--stop-signal", "QU"); !slices.Equal(names(got), []string{"QUIT"}) {
		t.Errorf("__complete start --stop-signal QU: %q, want [QUIT]", got)
	}
	in.stopOK()
}

// --plugin completes the names of the plugins `respawner plugins` finds, in
// --plugin-dir when it is on the line, without starting any of them.
func TestCompletePlugins(t *testing.T) {
	t.Setenv("RESPAWNER_PLUGIN_PATH", "")
	dir := runtimeDir(t)
	want := []string{"healthcheck-http", "maintenance", "oldproto", "testhook", "testprobe"}
	got, directive := complete(t, dir, "start", "--plugin-dir", pluginDir, "--plugin", "")
	if !slices.Equal(got, want) || directive != fmt.Sprintf(":%d", cobra.ShellCompDirectiveNoFileComp) {
		t.Errorf("__complete start --plugin-dir DIR --plugin '': %q %s, want %q :%d", got, directive, want, cobra.ShellCompDirectiveNoFileComp)
	}
	if got, _ := complete(t, dir, "start", "--plugin-dir="+pluginDir, "--plugin", "test"); !slices.Equal(got, []string{"testhook", "testprobe"}) {
		t.Errorf("--plugin test: %q, want [testhook testprobe]", got)
	}
	if got, _ := complete(t, dir, "start", "--plugin-dir", pluginDir, "--plugin", "testhook:"); len(got) != 0 {
		t.Errorf("--plugin testhook: (options): %q, want nothing", got)
	}
	// Without --plugin-dir, the test plugins are in no directory searched.
	if got, _ := complete(t, dir, "start", "--plugin", ""); slices.Contains(got, "testhook") {
		t.Errorf("--plugin '' without --plugin-dir: %q lists testhook", got)
	}
	// $RESPAWNER_PLUGIN_PATH is searched as by respawner plugins.
	t.Setenv("RESPAWNER_PLUGIN_PATH", pluginDir)
	if got, _ := complete(t, dir, "start", "--plugin", "m"); !slices.Equal(got, []string{"maintenance"}) {
		t.Errorf("--plugin m with RESPAWNER_PLUGIN_PATH: %q, want [maintenance]", got)
	}
}

// Signal names: the bare ones (HUP, as kill -s takes them), with SIG once
// typed, each with its description.
func TestCompleteSignals(t *testing.T) {
	got, directive := completeSignals(nil, nil, "")
	for _, s := range []string{"HUP", "INT", "QUIT", "TERM", "KILL", "USR1", "USR2", "CONT", "STOP", "WINCH"} {
		if !slices.Contains(names(got), s) {
			t.Errorf("completeSignals '': %q lacks %s", got, s)
		}
	}
	if directive != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("directive %v, want NoFileComp", directive)
	}
	if !slices.Contains(got, "HUP\thangup") {
		t.Errorf("completeSignals '': %q, want HUP described as hangup", got)
	}
	if got, _ := completeSignals(nil, nil, "USR"); !slices.Equal(names(got), []string{"USR1", "USR2"}) {
		t.Errorf("completeSignals USR: %q, want [USR1 USR2]", got)
	}
	if got, _ := completeSignals(nil, nil, "SIGT"); !slices.Equal(names(got), []string{"SIGTERM", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGTRAP"}) {
		t.Errorf("completeSignals SIGT: %q", got)
	}
	if got, _ := completeSignals(nil, nil, "9"); len(got) != 0 {
		t.Errorf("completeSignals 9: %q, want nothing", got)
	}
}

package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// hookArgs runs respawner -D with plugins from the test plugin dir.
func hookArgs(args ...string) []string {
	return append([]string{"--plugin-dir", pluginDir}, args...)
}

// pluginProcs returns the pids of the hook host and plugin processes below pid.
func pluginProcs(pid int) []int {
	var out []int
	for _, p := range descendantsOf(pid) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		if strings.Contains(exe, "respawner-plugin-") || strings.Contains(exe, "respawner-hookhost") {
			out = append(out, p)
		}
	}
	return out
}

// assertPluginsGone waits for each pid in pids to be gone.
func assertPluginsGone(t *testing.T, pids []int) {
	t.Helper()
	for _, p := range pids {
		fd, err := pidfdOpen(p)
		if err != nil {
			continue // gone already
		}
		if !gone(fd, 5*time.Second) {
			t.Errorf("plugin process %d left behind", p)
		}
		syscall.Close(fd)
	}
}

// The shipped example: a maintenance file holds restarts; removing it lets the
// restart through.
func TestHookDenyHoldsRestart(t *testing.T) {
	maint := filepath.Join(t.TempDir(), "maintenance")
	os.WriteFile(maint, nil, 0o644)
	in := startRespawner(t, hookArgs("--plugin", "maintenance:file="+maint, "-t", "200ms", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	plugins := pluginProcs(in.cmd.Process.Pid)
	if len(plugins) != 2 {
		t.Fatalf("want the hook host and one plugin below respawner, got %v", plugins)
	}
	in.waitFor("exited", 5*time.Second)
	held := in.waitFor("restart held by a hook", 5*time.Second)
	if !strings.Contains(held.str("reason"), "maintenance: "+maint+" exists") {
		t.Fatalf("held for %q", held.str("reason"))
	}
	st, code := statusOf(t, in.dir, "sh")
	if code != 3 || st.State != "held" || !strings.Contains(st.Reason, "maintenance") || st.Restarts != 0 {
		t.Fatalf("status while held: exit %d %+v", code, st)
	}
	in.waitFor("restart held by a hook", 5*time.Second) // asked again, still held
	os.Remove(maint)
	in.waitFor("restarted", 5*time.Second)
	in.waitFor("gave up: respawn limit reached", 5*time.Second)
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	assertPluginsGone(t, plugins)
}

func TestHookDelay(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=delay,delay=1s", "-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("exited", 10*time.Second)
	died := time.Now()
	in.waitFor("restart-pending answered", 5*time.Second)
	in.waitFor("restarted", 5*time.Second)
	if d := time.Since(died); d < 900*time.Millisecond || d > 4*time.Second {
		t.Fatalf("restart %s after the exit, want about the 1s delay", d)
	}
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

func TestHookGiveUp(t *testing.T) {
	runs := filepath.Join(t.TempDir(), "runs")
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=give-up,reason=enough", "-t", "0", "/bin/sh", "--", "-c", "echo run >> "+runs+"; exit 3")...)
	in.waitFor("gave up: testhook: enough", 10*time.Second)
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if n := lines(t, runs); n != 1 {
		t.Fatalf("program ran %d times, want 1", n)
	}
}

// A plugin that does not answer within its deadline costs that deadline, and
// counts as allow.
func TestHookPastDeadline(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=deny,sleep=5s,timeout=300ms", "-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("exited", 10*time.Second)
	died := time.Now()
	in.waitFor("restart-pending failed; counted as allow", 5*time.Second)
	in.waitFor("restarted", 5*time.Second)
	if d := time.Since(died); d > 3*time.Second {
		t.Fatalf("restart %s after the exit: the hung plugin held it past its 300ms deadline", d)
	}
	if code := in.wait(15 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

// A plugin that panics answers allow (the SDK recovers) and stays up.
func TestHookPanics(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=deny,panic=true", "-t", "0", "-n", "2", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	plugins := pluginProcs(in.cmd.Process.Pid)
	in.waitFor("restart-pending failed; counted as allow", 10*time.Second)
	in.waitFor("restarted", 5*time.Second)
	in.waitFor("restart-pending failed; counted as allow", 10*time.Second)
	in.waitFor("restarted", 5*time.Second)
	in.waitFor("gave up: respawn limit reached", 5*time.Second)
	if strings.Contains(in.log(), "plugin exited") {
		t.Fatalf("the plugin died of its panic:\n%s", in.log())
	}
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	assertPluginsGone(t, plugins)
}

// A plugin killed mid-run is restarted by the host; the program is untouched.
func TestHookKilledIsRestarted(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "events")
	in := startRespawner(t, hookArgs("--plugin", "testhook:record="+rec, "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	prog := in.waitFor("started", 5*time.Second).int("pid")
	var victim int
	for _, p := range pluginProcs(in.cmd.Process.Pid) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); strings.HasSuffix(exe, "respawner-plugin-testhook") {
			victim = p
		}
	}
	if victim == 0 {
		t.Fatal("no plugin process found")
	}
	syscall.Kill(victim, syscall.SIGKILL)
	in.waitFor("plugin exited; restarting it", 5*time.Second)
	in.waitFor("plugin restarted", 10*time.Second)
	if !alive(prog) {
		t.Fatal("the program died with the plugin")
	}
	plugins := pluginProcs(in.cmd.Process.Pid)
	if len(plugins) != 2 {
		t.Fatalf("after the restart: %v, want host and one plugin", plugins)
	}
	// The new plugin is configured and hears events.
	in.signal(syscall.SIGTERM)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(readFile(t, rec), "stopping") {
		t.Fatalf("restarted plugin did not get the stopping event:\n%s", readFile(t, rec))
	}
	assertPluginsGone(t, plugins)
}

func TestHookStartErrors(t *testing.T) {
	openDir := t.TempDir()
	os.Chmod(openDir, 0o777)
	b, _ := os.ReadFile(filepath.Join(pluginDir, "respawner-plugin-testhook"))
	os.WriteFile(filepath.Join(openDir, "respawner-plugin-loose"), b, 0o755)
	sum := sha256.Sum256(b)
	// Owned by another user, and a link into a world-writable directory.
	theirs := t.TempDir()
	os.Chmod(theirs, 0o755)
	os.WriteFile(filepath.Join(theirs, "respawner-plugin-theirs"), b, 0o755)
	os.Chown(filepath.Join(theirs, "respawner-plugin-theirs"), 65534, 65534)
	os.Symlink(filepath.Join(openDir, "respawner-plugin-loose"), filepath.Join(theirs, "respawner-plugin-linked"))
	brokenDir := t.TempDir()
	os.Chmod(brokenDir, 0o755)
	os.WriteFile(filepath.Join(brokenDir, "respawner-plugin-broken"), []byte("#!/bin/sh\necho 'cannot read /etc/broken.conf' >&2\nexit 1\n"), 0o755)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown plugin", []string{"--plugin", "nosuch"}, []string{"plugin nosuch: plugin not found"}},
		{"bad option", []string{"--plugin", "testhook:colour=red"}, []string{"plugin testhook", `"colour"`}},
		{"bad option value", []string{"--plugin", "testhook:sleep=soon"}, []string{"plugin testhook", "sleep"}},
		{"wrong protocol version", []string{"--plugin", "oldproto"}, []string{"plugin oldproto", "protocol"}},
		{"healthcheck-http bad expect-status", []string{"--plugin", "healthcheck-http:expect-status=abc"}, []string{"plugin healthcheck-http", "expect-status"}},
		{"healthcheck-http bad url", []string{"--plugin", "healthcheck-http:url=ftp://x/"}, []string{"plugin healthcheck-http", "url"}},
		{"plugin that fails its own start-up", []string{"--plugin-dir", brokenDir, "--plugin", "broken"}, []string{"plugin broken", "its stderr: cannot read /etc/broken.conf"}},
		{"world-writable directory", []string{"--plugin-dir", openDir, "--plugin", "loose"}, []string{"world-writable"}},
		{"binary of another user", []string{"--plugin-dir", theirs, "--plugin", "theirs"}, []string{"respawner-plugin-theirs is owned by uid 65534", "chown root"}},
		{"link into a world-writable directory", []string{"--plugin-dir", theirs, "--plugin", "linked"}, []string{"resolved to " + openDir, "sits in world-writable " + openDir}},
		{"wrong sha256 pin", []string{"--plugin", "testhook:sha256=" + strings.Repeat("0", 64)}, []string{"plugin testhook", "checksum"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := runtimeDir(t)
			// /bin/true: a start that should have been refused ends at
			// once (exit 0) instead of supervising forever.
			args := append(append([]string{"start", "-D", "--plugin-dir", pluginDir}, tt.args...), "/bin/true")
			r := respawner(t, dir, args...)
			if r.code != 1 {
				t.Fatalf("exit %d, want 1: %s", r.code, r.stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr %q lacks %q", r.stderr, w)
				}
			}
			if strings.Contains(r.stderr, "started: pid") {
				t.Errorf("the program was started: %s", r.stderr)
			}
			assertRuntimeDirEmpty(t, dir)
		})
	}
	t.Run("group-writable respawner-hookhost", func(t *testing.T) {
		// respawner looks for the host beside itself: a copy of both, the
		// host writable by its group.
		dir := t.TempDir()
		os.Chmod(dir, 0o755)
		for _, f := range []string{"respawner", "respawner-hookhost"} {
			b, err := os.ReadFile(filepath.Join(filepath.Dir(respawnerBin), f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, f), b, 0o755)
		}
		host := filepath.Join(dir, "respawner-hookhost")
		os.Chmod(host, 0o775)
		cmd := exec.Command(filepath.Join(dir, "respawner"), "start", "-D", "--plugin-dir", pluginDir, "--plugin", "testhook", "/bin/true")
		cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+runtimeDir(t))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want 1: %s", err, out)
		}
		if want := "respawner-hookhost " + host + " is group-writable (-rwxrwxr-x, owner uid 0): refusing to run it (chmod go-w " + host + ")"; !strings.Contains(string(out), want) {
			t.Fatalf("output %q lacks %q", out, want)
		}
	})
	t.Run("right sha256 pin", func(t *testing.T) {
		in := startRespawner(t, hookArgs("--plugin", "testhook:sha256="+hex.EncodeToString(sum[:]), "/bin/sleep", "--", "1000")...)
		in.waitFor("hook plugin ready", 10*time.Second)
		in.signal(syscall.SIGTERM)
		if code := in.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
	})
}

// A plugin that cannot start, or rejects an option, is exit 1 and one line
// on stderr, the error that says why, with nothing of go-plugin's account of
// the process ahead of it ("plugin process exited", "plugin failed to exit
// gracefully"): in the foreground, and from a daemonizing start, where the
// daemon reports it. Nothing is left running.
func TestHookStartErrorIsOneLine(t *testing.T) {
	broken := t.TempDir()
	os.Chmod(broken, 0o755)
	bin := filepath.Join(broken, "respawner-plugin-broken")
	os.WriteFile(bin, []byte("#!/bin/sh\necho 'cannot read /etc/broken.conf' >&2\nexit 1\n"), 0o755)
	t.Setenv("RESPAWNER_PLUGIN_PATH", broken)
	for _, tt := range []struct{ name, plugin, want string }{
		{"configure", "maintenance:colour=red", `respawner: plugin maintenance: configure: unknown option "colour"`},
		{"bad value", "healthcheck-http:url=ftp://localhost/", `respawner: plugin healthcheck-http: configure: option url: "ftp://localhost/": scheme "ftp" is not http or https`},
		{"launch", "broken", "respawner: plugin broken: launch " + bin + ": no handshake on its stdout: it exited at start, or is not a hook plugin; its stderr: cannot read /etc/broken.conf"},
		{"old protocol", "oldproto", "respawner: plugin oldproto: launch " + filepath.Join(pluginDir, "respawner-plugin-oldproto") + ": plugin speaks hook protocol 2, respawner speaks 1: rebuild it against this respawner's pkg/hooks"},
	} {
		for _, mode := range []string{"-D", "daemon"} {
			t.Run(tt.name+"/"+mode, func(t *testing.T) {
				dir := runtimeDir(t)
				args := []string{"start", "--plugin-dir", pluginDir, "--plugin", tt.plugin, "--name", "plugged", "/bin/sleep", "--", "1000"}
				if mode == "-D" {
					args = append([]string{"start", "-D"}, args[1:]...)
				}
				r := respawnerWithin(t, dir, time.Minute, args...)
				if r.code == 0 {
					respawner(t, dir, "stop", "plugged")
				}
				if r.code != 1 || r.stderr != tt.want+"\n" {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 1, stderr:\n%s", r.code, r.stderr, tt.want)
				}
				if st := respawner(t, dir, "status", "plugged"); st.code != 3 {
					t.Errorf("status after the failed start: exit %d, want 3 (not running): %s%s", st.code, st.stdout, st.stderr)
				}
			})
		}
	}
}

// A plugin's own log line reaches respawner's log with its fields, and
// without a "timestamp" field of its own beside the line's time.
func TestHookPluginLogLine(t *testing.T) {
	in := startRespawner(t, hookArgs("--log-level", "debug", "--plugin", "testhook", "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	l := in.waitFor("event", 5*time.Second) // testhook's debug line for each event
	if l.str("@module") != "hooks.respawner-plugin-testhook" {
		t.Errorf("module %q", l.str("@module"))
	}
	if l.str("kind") == "" || l.str("instance") != "sleep" {
		t.Errorf("the plugin's fields are missing: %v", l)
	}
	if _, ok := l["timestamp"]; ok {
		t.Errorf("the plugin's line carries a timestamp field: %v", l)
	}
	in.stopOK()
}

// Without --plugin nothing of the plugin system exists: no host process, no
// timerfd beyond what supervision arms.
func TestNoPluginsNoCost(t *testing.T) {
	in := startRespawner(t, "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 5*time.Second).int("pid")
	kids := descendantsOf(in.cmd.Process.Pid)
	if len(kids) != 1 || kids[0] != pid {
		t.Fatalf("processes below respawner: %v, want only the program %d", kids, pid)
	}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", in.cmd.Process.Pid))
	for _, e := range ents {
		l, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", in.cmd.Process.Pid, e.Name()))
		if strings.Contains(l, "timerfd") {
			t.Errorf("a timerfd exists while the program just runs: fd %s", e.Name())
		}
	}
	in.signal(syscall.SIGTERM)
	in.wait(10 * time.Second)
}

// respawner plugins lists every plugin it finds with its capabilities; one
// that cannot be used is listed too, says why on stderr, and makes the
// command exit 1.
func TestPluginsCommand(t *testing.T) {
	r := respawner(t, runtimeDir(t), "plugins", "--plugin-dir", pluginDir)
	if r.code != 1 {
		t.Fatalf("exit %d with an unusable plugin (oldproto), want 1: %s", r.code, r.stderr)
	}
	rows := map[string]string{}
	for _, l := range strings.Split(r.stdout, "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			rows[f[0]] = strings.Join(f[1:3], " ")
		}
	}
	delete(rows, "NAME")
	for name, want := range map[string]string{"testhook": "test events,veto", "maintenance": "- veto", "testprobe": "- probe", "healthcheck-http": "dev probe", "oldproto": "- unusable"} {
		if rows[name] != want {
			t.Errorf("plugins row %s = %q, want %q:\n%s", name, rows[name], want, r.stdout)
		}
	}
	want := "respawner: plugin oldproto: launch " + filepath.Join(pluginDir, "respawner-plugin-oldproto") + ": plugin speaks hook protocol 2, respawner speaks 1: rebuild it against this respawner's pkg/hooks\n"
	if r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}

	r = respawner(t, runtimeDir(t), "plugins", "--json", "--plugin-dir", pluginDir)
	var all []struct{ Name, Error string }
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || len(all) != len(rows) {
		t.Fatalf("--json: %v, %d plugins, want %d:\n%s", err, len(all), len(rows), r.stdout)
	}
	if r.code != 1 {
		t.Errorf("--json: exit %d with an unusable plugin, want 1", r.code)
	}

	// Only usable plugins: exit 0, nothing on stderr.
	good := t.TempDir()
	os.Chmod(good, 0o755)
	copyFile(t, filepath.Join(pluginDir, "respawner-plugin-maintenance"), filepath.Join(good, "respawner-plugin-maintenance"))
	if r := respawner(t, runtimeDir(t), "plugins", "--plugin-dir", good); r.code != 0 || r.stderr != "" {
		t.Errorf("usable plugins only: exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
}

// --plugin-dir may be relative: it names a directory from where respawner
// was started, and is shown and used as a full path.
func TestPluginDirRelative(t *testing.T) {
	good := t.TempDir()
	os.Chmod(good, 0o755)
	bin := filepath.Join(good, "respawner-plugin-maintenance")
	copyFile(t, filepath.Join(pluginDir, "respawner-plugin-maintenance"), bin)
	for _, rel := range []string{".", "./", "../" + filepath.Base(good)} {
		cmd := exec.Command(respawnerBin, "plugins", "--plugin-dir", rel)
		cmd.Dir = good
		r := runCmd(t, cmd, runtimeDir(t), 0)
		if r.code != 0 || !strings.Contains(r.stdout, " "+bin+"\n") {
			t.Errorf("plugins --plugin-dir %s: exit %d, want 0 and %s listed:\n%s%s", rel, r.code, bin, r.stdout, r.stderr)
		}
	}
	hold := filepath.Join(t.TempDir(), "hold")
	os.WriteFile(hold, nil, 0o644)
	in := startWith(t, nil, func(c *exec.Cmd) { c.Dir = good },
		"start", "-D", "--log-format", "json", "--plugin-dir", ".", "--plugin", "maintenance:file="+hold, "-t", "0", "/bin/sh", "--", "-c", "exit 3")
	in.waitFor("hook plugin ready", 10*time.Second)
	in.waitFor("restart held by a hook", 10*time.Second)
	in.stopOK()
}

// copyFile copies an executable.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

// A Ctrl-C (or a SIGTERM to the process group) while `respawner plugins`
// asks a plugin reaches respawner, the host and the plugin: respawner waits
// for the host, removes the plugins' socket directories and dies of the
// signal, as it would have at once.
func TestPluginsCommandInterrupted(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			if sig == syscall.SIGINT && signal.Ignored(os.Interrupt) {
				t.Skip("SIGINT is ignored here, and would be in respawner")
			}
			pdir, tmp := t.TempDir(), t.TempDir()
			asked := filepath.Join(t.TempDir(), "asked")
			seen := filepath.Join(t.TempDir(), "seen")
			// A plugin that ends at once, and cleanly, when the Ctrl-C
			// reaches it: the host would report it, and respawner list it
			// as unusable, before the signal reached respawner (CI saw
			// exit 1). The Ctrl-C is respawner's to pass on, not the
			// plugin's to see.
			script(t, pdir, "respawner-plugin-slow", fmt.Sprintf("RSPTEST_HELPER=signal-recorder GORACE=atexit_sleep_ms=0 exec %s %s %s", os.Args[0], asked, seen))
			cmd := exec.Command(respawnerBin, "plugins", "--plugin-dir", pdir)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pgid := cmd.Process.Pid
			t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
			pid, _ := strconv.Atoi(waitFile(t, asked, 10*time.Second))
			syscall.Kill(-pgid, sig)
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("respawner plugins still running 10 s after %v", sig)
			}
			if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != sig {
				t.Errorf("respawner plugins ended with %v, want death by %v", cmd.ProcessState, sig)
			}
			if got := under(t, tmp); len(got) != 0 {
				t.Errorf("$TMPDIR holds %q", got)
			}
			if b, err := os.ReadFile(seen); err == nil {
				t.Errorf("the plugin being asked got %s, sent to respawner's process group, instead of being killed by its host", b)
			}
			if alive(pid) {
				t.Errorf("the plugin (pid %d) outlived respawner plugins", pid)
			}
		})
	}
}

// signalRecorder writes its pid to args[0], then waits; SIGINT or SIGTERM
// makes it write the signal's name to args[1] and exit 0 at once.
func signalRecorder(args []string) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	if err := os.WriteFile(args[0], []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		panic(err)
	}
	sig := <-sigs
	os.WriteFile(args[1], []byte(sig.String()), 0o644)
	os.Exit(0)
}

// The hook host killed: its plugins go with it, the core starts a new host
// (with its own plugins), and the program is untouched.
func TestHookHostKilled(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook", "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	prog := in.waitFor("started", 5*time.Second).int("pid")
	old := pluginProcs(in.cmd.Process.Pid)
	var host int
	for _, p := range old {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); strings.HasSuffix(exe, "respawner-hookhost") {
			host = p
		}
	}
	if host == 0 || len(old) != 2 {
		t.Fatalf("want a host and a plugin, got %v", old)
	}
	syscall.Kill(host, syscall.SIGKILL)
	in.waitFor("hook host exited; plugins are unavailable until it is back", 5*time.Second)
	assertPluginsGone(t, old)
	in.waitFor("hook host restarted", 10*time.Second)
	if now := pluginProcs(in.cmd.Process.Pid); len(now) != 2 {
		t.Fatalf("after the host restart: %v, want one host and one plugin", now)
	}
	if !alive(prog) {
		t.Fatal("the program died with the hook host")
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// hookProcs returns the hook host and its plugin below respawner pid (0 for
// one that is not there).
func hookProcs(pid int) (host, plugin int) {
	for _, p := range pluginProcs(pid) {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
		switch {
		case strings.HasSuffix(exe, "respawner-hookhost"):
			host = p
		case strings.Contains(exe, "respawner-plugin-"):
			plugin = p
		}
	}
	return host, plugin
}

// under lists what dir holds, every level, as paths relative to it.
func under(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if p != dir {
			got = append(got, strings.TrimPrefix(p, dir+"/"))
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// Each plugin's socket directory (go-plugin's plugin-dirNNN, removed only
// by its Kill) is gone once the plugin is: after the hook host is SIGKILLed
// (again and again), after the plugin is, and after a host that hangs at
// shutdown is killed by the core. Nothing is left in $TMPDIR nor in the
// runtime dir.
func TestHookSocketDirsRemoved(t *testing.T) {
	// $TMPDIR of respawner and all below it, for this test alone (other
	// tests and sessions use the real one), with a short path: a unix
	// socket's has at most 107 bytes, and go-plugin's go two levels down.
	tmp, err := os.MkdirTemp("", "rsp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	t.Setenv("RESPAWNER_PLUGIN_RESTART_MAX", "50ms")
	args := append([]string{"start", "-D", "--log-format", "json"}, hookArgs("--plugin", "testhook", "/bin/sleep", "--", "1000")...)
	in := startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "TMPDIR="+tmp) }, args...)
	in.waitFor("hook plugin ready", 10*time.Second)
	me := in.cmd.Process.Pid
	// One plugin runs: one socket directory, and at most one directory of
	// a host for it.
	oneSocketDir := func(when string) {
		t.Helper()
		var hosts, plugins int
		for _, p := range under(t, tmp) {
			switch dir, base := filepath.Split(p); {
			case dir == "" && strings.HasPrefix(base, "respawner-hooks-"):
				hosts++
			case strings.HasPrefix(base, "plugin-dir"):
				plugins++
			}
		}
		if plugins != 1 || hosts > 1 {
			t.Fatalf("%s: %s holds %q, want the socket directory of one plugin", when, tmp, under(t, tmp))
		}
	}
	oneSocketDir("at start")
	for i := 1; i <= 3; i++ {
		host, plugin := hookProcs(me)
		if host == 0 || plugin == 0 {
			t.Fatalf("host kill %d: host %d, plugin %d", i, host, plugin)
		}
		syscall.Kill(host, syscall.SIGKILL)
		in.waitFor("hook host exited; plugins are unavailable until it is back", 5*time.Second)
		in.waitFor("hook host restarted", 10*time.Second)
		oneSocketDir(fmt.Sprintf("after host kill %d", i))
	}
	_, plugin := hookProcs(me)
	syscall.Kill(plugin, syscall.SIGKILL)
	in.waitFor("plugin exited; restarting it", 5*time.Second)
	in.waitFor("plugin restarted", 10*time.Second)
	oneSocketDir("after the plugin kill")
	// A host that does not stop: the core kills it after 5 s.
	host, _ := hookProcs(me)
	syscall.Kill(host, syscall.SIGSTOP)
	in.signal(syscall.SIGTERM)
	if code := in.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, in.log())
	}
	if got := under(t, tmp); len(got) != 0 {
		t.Errorf("$TMPDIR holds %q after respawner exited", got)
	}
	assertRuntimeDirEmpty(t, in.dir)
}

// The events a plugin records over two runs of a program that fails (-n 1),
// in the order it heard them.
func TestHookEventOrder(t *testing.T) {
	for _, tc := range []struct {
		name, events, script string
		veto                 bool
		want                 string
	}{{
		// Without a vetoing plugin, restart-pending is an event like the
		// others, for the plugins that subscribe to it.
		name: "notifier only", events: "started,exited,restart-pending,restarting,gave-up,stopped", script: "exit 3",
		want: "started exited restart-pending restarting started exited gave-up",
	}, {
		// With one, the events of a death wait while restart-pending is out:
		// the plugin hears the question first, then, once the restart is
		// under way, the held events in their order.
		name: "vetoer", events: "started,exited,restarting,gave-up", script: "sleep 0.3; exit 3", veto: true,
		want: "started restart-pending exited restarting started exited gave-up",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "events")
			if !tc.veto {
				t.Setenv("TESTHOOK_NOTIFY_ONLY", "1")
			}
			in := startRespawner(t, hookArgs("--plugin", "testhook:record="+rec+",events="+tc.events, "-t", "0", "-n", "1", "/bin/sh", "--", "-c", tc.script)...)
			if l := in.waitFor("hook plugin ready", 10*time.Second); l["veto"] != tc.veto {
				t.Fatalf("veto %v in %v, want %v", l["veto"], l, tc.veto)
			}
			if code := in.wait(15 * time.Second); code != 1 {
				t.Fatalf("exit %d", code)
			}
			if got := strings.Join(strings.Fields(readFile(t, rec)), " "); got != tc.want {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
		})
	}
}

// A stop while restart-pending is out abandons the question: the events held
// behind it, and "stopped", still reach the plugin before it is shut down.
func TestHookStopWhileAsking(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "events")
	in := startRespawner(t, hookArgs("--plugin", "testhook:record="+rec+",events=started,exited,stopped,sleep=1s,timeout=10s", "-t", "0", "/bin/sh", "--", "-c", "sleep 0.3; exit 3")...)
	in.waitFor("exited", 10*time.Second)
	time.Sleep(300 * time.Millisecond) // the question is out: the plugin sleeps 1s in it
	in.stopOK()
	if got, want := strings.Join(strings.Fields(readFile(t, rec)), " "), "started restart-pending exited stopped"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
}

// hostOf returns the pid of the hook host below respawner.
func hostOf(t *testing.T, in *instance) int {
	t.Helper()
	for _, p := range pluginProcs(in.cmd.Process.Pid) {
		if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p)); strings.HasSuffix(exe, "respawner-hookhost") {
			return p
		}
	}
	t.Fatalf("no hook host below respawner:\n%s", treeDump(in.cmd.Process.Pid))
	return 0
}

// statusField returns a field of /proc/PID/status ("" when pid is gone).
func statusField(pid int, field string) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == field {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// pluginOrphans reads the pids testhook's orphan=PATH wrote, wants n, and
// makes sure each from the index from on is killed at the end of the test
// (through a pidfd, so never a recycled pid).
func pluginOrphans(t *testing.T, path string, from, n int) []int {
	t.Helper()
	var pids []int
	for i, f := range strings.Fields(readFile(t, path)) {
		var p int
		if _, err := fmt.Sscan(f, &p); err != nil {
			t.Fatalf("orphan pid %q: %v", f, err)
		}
		pids = append(pids, p)
		if i < from {
			continue
		}
		fd, err := unix.PidfdOpen(p, 0)
		if err != nil {
			t.Fatalf("orphan %d: %v", p, err)
		}
		t.Cleanup(func() {
			unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			unix.Close(fd)
		})
	}
	if len(pids) != n {
		t.Fatalf("%d orphans, want %d", len(pids), n)
	}
	return pids
}

// A process a plugin starts and abandons belongs to the plugins: it is
// reparented to the hook host (a subreaper), not to respawner, so a program
// that exits cleanly under on-failure ends supervision (exit 0) instead of
// respawner "following" the plugin's orphan as the program's daemon; the
// host kills it as it ends.
func TestHookPluginOrphanIsNotTheProgram(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "orphans")
	in := startRespawner(t, hookArgs("--plugin", "testhook:orphan="+rec, "/bin/sleep", "--", "1")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	orphan := pluginOrphans(t, rec, 0, 1)[0]
	fd := watchPID(t, orphan)
	if host, ppid := hostOf(t, in), statusField(orphan, "PPid"); ppid != fmt.Sprint(host) {
		t.Errorf("the plugin's orphan %d has parent %s, want the hook host %d", orphan, ppid, host)
	}
	in.waitFor("started", 5*time.Second)
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d, want 0 (a clean exit ends supervision)", code)
	}
	if strings.Contains(in.log(), "following daemon") {
		t.Fatalf("respawner followed the plugin's orphan:\n%s", in.log())
	}
	if !gone(fd, 5*time.Second) {
		t.Fatalf("the plugin's orphan %d outlived respawner", orphan)
	}
}

// The hook host reaps a plugin's orphan when it dies: no zombie stays below
// it, and go-plugin still reaps the plugins themselves (a plugin killed
// later is restarted as usual).
func TestHookPluginOrphanIsReaped(t *testing.T) {
	rec := filepath.Join(t.TempDir(), "orphans")
	in := startRespawner(t, hookArgs("--log-level", "debug", "--plugin", "testhook:orphan="+rec+",orphans=2", "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	orphans := pluginOrphans(t, rec, 0, 2)
	host := hostOf(t, in)
	for _, o := range orphans {
		if ppid := statusField(o, "PPid"); ppid != fmt.Sprint(host) {
			t.Fatalf("the plugin's orphan %d has parent %s, want the hook host %d", o, ppid, host)
		}
	}
	for _, o := range orphans {
		syscall.Kill(o, syscall.SIGKILL)
		if l := in.waitFor("reaped a plugin's orphan", 5*time.Second); l.int("pid") != o || l.str("status") != "SIGKILL" {
			t.Fatalf("reaped %v, want orphan %d killed by SIGKILL", l, o)
		}
		if st := statusField(o, "State"); st != "" {
			t.Fatalf("orphan %d still there after its reaping: %s", o, st)
		}
	}
	for _, p := range descendantsOf(host) {
		if st := statusField(p, "State"); strings.HasPrefix(st, "Z") {
			t.Errorf("zombie %d below the hook host:\n%s", p, treeDump(host))
		}
	}
	// The plugin itself is still go-plugin's to reap: killed, it is
	// restarted, which needs its exit seen and collected.
	var plugin int
	for _, p := range pluginProcs(in.cmd.Process.Pid) {
		if p != host {
			plugin = p
		}
	}
	syscall.Kill(plugin, syscall.SIGKILL)
	in.waitFor("plugin exited; restarting it", 5*time.Second)
	in.waitFor("plugin restarted", 10*time.Second)
	if st := statusField(plugin, "State"); st != "" {
		t.Fatalf("the killed plugin %d was not reaped: %s", plugin, st)
	}
	pluginOrphans(t, rec, 2, 4) // the relaunch's own two: killed at cleanup
	in.stopOK()
}

// A plugin's log lines that go-plugin's parser used to panic on (a number as
// "@message", as a Python plugin wrote it, a number as "@level" or
// "@timestamp", a null) and an overlong one, written at Configure and while
// running: start succeeds, each is logged raw, and neither the host nor
// another plugin goes down.
func TestHookBadLogLines(t *testing.T) {
	for _, when := range []string{"configure", "notify"} {
		t.Run(when, func(t *testing.T) {
			// The other plugin: a copy of testhook under another name.
			other := t.TempDir()
			os.Chmod(other, 0o755)
			b, _ := os.ReadFile(filepath.Join(pluginDir, "respawner-plugin-testhook"))
			os.WriteFile(filepath.Join(other, "respawner-plugin-other"), b, 0o755)
			t.Setenv("RESPAWNER_PLUGIN_PATH", other)
			t.Setenv("TESTHOOK_NOTIFY_ONLY", "1") // events in one queue: in order
			rec := filepath.Join(t.TempDir(), "events")
			in := startRespawner(t, hookArgs("--plugin", "testhook:badlog="+when, "--plugin", "other:record="+rec+",events=starting,started,exited,restarting,gave-up",
				"-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
			if when != "configure" {
				in.waitFor("hook plugin ready", 10*time.Second)
			}
			l := in.waitFor("plugin log line with a non-string @message, @level or @timestamp; logged raw", 10*time.Second)
			// In Notify, "when" is the event's kind.
			if line := l.str("line"); !strings.Contains(line, `"@message":5`) || strings.Contains(line, `"when":"configure"`) != (when == "configure") {
				t.Fatalf("raw line %q", line)
			}
			in.waitFor("plugin log line too long; cut and logged raw", 10*time.Second)
			if when == "configure" {
				in.waitFor("hook plugin ready", 10*time.Second) // start goes on
			}
			if code := in.wait(15 * time.Second); code != 1 {
				t.Fatalf("exit %d, want 1 (gave up)", code)
			}
			// The other plugin, under the same host, heard every event to
			// the end, after the bad lines.
			if got, want := strings.Join(strings.Fields(readFile(t, rec)), " "), "starting started exited restarting started exited gave-up"; got != want {
				t.Fatalf("the other plugin heard %q, want %q", got, want)
			}
			for _, bad := range []string{"hook host exited", "plugin exited; restarting it", "panic"} {
				if strings.Contains(in.log(), bad) {
					t.Fatalf("%q in the log:\n%s", bad, in.log())
				}
			}
		})
	}
}

// A deny with a 100 KiB reason (more than one 64 KiB packet to respawner)
// still holds the restart: the host cuts the reason to 1 KiB and keeps the
// verdict, and status says held with the cut reason.
func TestHookDenyLongReason(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=deny,reason=closed,reason-bytes=102400", "-t", "200ms", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("exited", 10*time.Second)
	held := in.waitFor("restart held by a hook", 5*time.Second)
	reason := held.str("reason")
	if !strings.HasPrefix(reason, "testhook: closedéé") || !strings.HasSuffix(reason, " bytes cut]") || len(reason) > 1024 {
		t.Fatalf("held for a reason of %d bytes: %.80q...%q", len(reason), reason, reason[max(len(reason)-40, 0):])
	}
	st, code := statusOf(t, in.dir, "sh")
	if code != 3 || st.State != "held" || st.Reason != reason || st.Restarts != 0 {
		t.Fatalf("status while held: exit %d %+v", code, st)
	}
	in.waitFor("restart held by a hook", 5*time.Second) // asked again, still held
	if strings.Contains(in.log(), `"restarted"`) {
		t.Fatalf("restarted despite the deny:\n%s", in.log())
	}
	in.stopOK()
}

// fakeHookhost stands in for respawner-hookhost: it reports one vetoing
// plugin, answers every restart-pending question with a decision no
// respawner knows, and exits on shutdown or when respawner goes away.
func fakeHookhost() {
	c, err := net.FileConn(os.NewFile(3, "respawner"))
	if err != nil {
		os.Exit(1)
	}
	buf := make([]byte, 1<<20)
	send := func(s string) { c.Write([]byte(s)) }
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			os.Exit(0)
		}
		var m struct {
			T  string `json:"t"`
			ID uint64 `json:"id"`
		}
		json.Unmarshal(buf[:n], &m)
		switch m.T {
		case "config":
			send(`{"t":"ready","infos":[{"path":"/fake","name":"fake","version":"1","notify":true,"veto":true,"probe":false}]}`)
		case "ask":
			send(fmt.Sprintf(`{"t":"verdict","id":%d,"plugin":"fake","verdict":{"decision":"maybe-later","delay_ms":0,"reason":"?"}}`, m.ID))
		case "shutdown":
			os.Exit(0)
		}
	}
}

// TestHookUnknownDecision: a verdict whose decision respawner does not know
// (from a host of another version, say) is logged as an error and counted as
// allow, never mapped to a decision by its name.
func TestHookUnknownDecision(t *testing.T) {
	// A respawner whose respawner-hookhost is this test binary, as fakeHookhost.
	dir := t.TempDir()
	bin := filepath.Join(dir, "respawner")
	for src, dst := range map[string]string{respawnerBin: bin, os.Args[0]: filepath.Join(dir, "respawner-hookhost")} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in := startWith(t, nil, func(c *exec.Cmd) {
		c.Path, c.Args[0] = bin, bin
		c.Env = append(c.Env, "RSPTEST_HELPER=fake-hookhost")
	}, "start", "-D", "--log-format", "json", "--plugin-dir", pluginDir, "--plugin", "testhook", "-t", "0", "-n", "1", "/bin/sh", "--", "-c", "exit 3")
	in.waitFor("hook plugin ready", 10*time.Second)
	l := in.waitFor("restart-pending answer not understood; counted as allow", 10*time.Second)
	if e := l.str("error"); !strings.Contains(e, `unknown decision "maybe-later"`) {
		t.Errorf("error %q, want it to name the unknown decision", e)
	}
	in.waitFor("restarted", 5*time.Second)
	if code := in.wait(15 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1 (gave up after the allowed restart)", code)
	}
}

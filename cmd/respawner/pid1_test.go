package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/machine"
)

// respawner as a container's entrypoint: PID 1 of its own PID namespace,
// started the way a container runtime starts one, with the real binary.
// As PID 1 respawner is the reaper of every orphan of the namespace, not
// only of its program's, and the kernel delivers it only the signals it
// has a handler for.

// unshareOK says whether this machine lets the tests make PID namespaces.
var unshareOK = sync.OnceValue(func() error {
	out, err := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
})

// pid1Argv is how the tests start a command as PID 1 of a new PID
// namespace with its own /proc; --kill-child takes the namespace down with
// unshare, whatever becomes of the test.
var pid1Argv = []string{"unshare", "--pid", "--fork", "--mount-proc", "--kill-child"}

func needUnshare(t *testing.T) {
	t.Helper()
	if err := unshareOK(); err != nil {
		t.Skipf("cannot make a PID namespace here: %v", err)
	}
}

// pid1 is a `respawner start -D` running as PID 1 of a PID namespace.
type pid1 struct {
	*instance
	pid int // respawner's pid as seen from outside the namespace
}

// startPID1 runs respawner start -D --log-format json ARGS as PID 1 of a new
// PID namespace and waits for its program's first start.
func startPID1(t *testing.T, args ...string) *pid1 {
	t.Helper()
	needUnshare(t)
	in := startWith(t, pid1Argv, nil, append([]string{"start", "-D", "--log-format", "json"}, args...)...)
	in.waitFor("started", 10*time.Second)
	kids := descendantsOf(in.cmd.Process.Pid)
	if len(kids) == 0 {
		t.Fatalf("nothing below unshare:\n%s", in.log())
	}
	p := &pid1{instance: in, pid: kids[0]}
	if ns := nsPID(p.pid); ns != 1 {
		t.Fatalf("respawner (pid %d) is pid %d in its namespace, want 1", p.pid, ns)
	}
	return p
}

// kill sends sig to respawner from outside the namespace, as a container
// runtime does (docker stop, the kubelet).
func (p *pid1) kill(sig syscall.Signal) {
	p.t.Helper()
	if err := syscall.Kill(p.pid, sig); err != nil {
		p.t.Fatalf("kill %d: %v", p.pid, err)
	}
}

// inside runs argv in respawner's PID and mount namespaces, as docker exec
// or kubectl exec does: its parent stays outside, so what it leaves behind
// is reparented to PID 1.
func (p *pid1) inside(argv ...string) string {
	p.t.Helper()
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(p.pid), "--pid", "--mount", "--"}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("nsenter %v: %v: %s", argv, err, out)
	}
	return string(out)
}

// namespace lists the processes of respawner's namespace: respawner and
// everything below it, as pid outside → pid inside.
func (p *pid1) namespace() map[int]int {
	m := map[int]int{p.pid: nsPID(p.pid)}
	for _, c := range descendantsOf(p.pid) {
		if n := nsPID(c); n > 0 {
			m[c] = n
		}
	}
	return m
}

// outside returns the pid outside the namespace of the process that is ns
// inside it, failing the test when there is none.
func (p *pid1) outside(ns int) int {
	p.t.Helper()
	for out, in := range p.namespace() {
		if in == ns {
			return out
		}
	}
	p.t.Fatalf("no process %d in the namespace:\n%s", ns, treeDump(p.pid))
	return 0
}

// zombies lists the zombies in respawner's namespace.
func (p *pid1) zombies() []int {
	var z []int
	for out := range p.namespace() {
		if strings.HasPrefix(statusField(out, "State"), "Z") {
			z = append(z, out)
		}
	}
	return z
}

// nsPID returns the pid of pid in its innermost PID namespace (the last
// field of NSpid), 0 when it is gone.
func nsPID(pid int) int {
	f := strings.Fields(statusField(pid, "NSpid"))
	if len(f) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(f[len(f)-1])
	return n
}

// A program that leaks 100 double-forked children, and a `docker exec` whose
// shell leaves 10 more: every one of them is reparented to respawner as PID
// 1 and reaped when it exits, so the namespace holds no zombie; TERM then
// ends supervision with exit 0.
func TestPID1ReapsOrphans(t *testing.T) {
	prog := script(t, t.TempDir(), "leak.sh", `i=0
while [ $i -lt 100 ]; do
	( sleep 0.0$((i % 10)) & )
	i=$((i + 1))
done
exec sleep 1000`)
	p := startPID1(t, "--log-level", "debug", prog)
	// The orphans of a process that is not the program (its parent, nsenter,
	// is outside): as PID 1 respawner is theirs to reap too.
	p.inside("/bin/sh", "-c", `i=0; while [ $i -lt 10 ]; do ( sleep 0.05 & ); i=$((i + 1)); done`)
	reaped := map[int]bool{}
	for len(reaped) < 110 {
		l := p.waitFor("reaped orphan", 20*time.Second)
		if reaped[l.int("pid")] {
			t.Fatalf("orphan %d reaped twice:\n%s", l.int("pid"), p.log())
		}
		reaped[l.int("pid")] = true
	}
	if z := p.zombies(); len(z) > 0 {
		t.Fatalf("zombies %v in the namespace after 110 orphans were reaped:\n%s", z, treeDump(p.pid))
	}
	// respawner and the program's sleep, nothing else.
	if ns := p.namespace(); len(ns) != 2 {
		t.Fatalf("%d processes in the namespace, want 2 (respawner, sleep):\n%s", len(ns), treeDump(p.pid))
	}
	p.kill(syscall.SIGTERM)
	if code := p.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.log())
	}
}

// TERM and INT to PID 1 stop the program and end supervision with exit 0,
// whether they come from outside the namespace (the container runtime) or
// from inside it (kill 1 in a docker exec), where the kernel drops every
// signal PID 1 has no handler for; so does `respawner stop`.
func TestPID1StopsOnSignal(t *testing.T) {
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		stop func(p *pid1)
	}{
		{"TERM from outside", syscall.SIGTERM, func(p *pid1) { p.kill(syscall.SIGTERM) }},
		{"INT from outside", syscall.SIGINT, func(p *pid1) { p.kill(syscall.SIGINT) }},
		{"TERM from inside", syscall.SIGTERM, func(p *pid1) { p.inside("/bin/kill", "-TERM", "1") }},
		{"INT from inside", syscall.SIGINT, func(p *pid1) { p.inside("/bin/kill", "-INT", "1") }},
		{"stop command", 0, func(p *pid1) {
			if r := respawner(p.t, p.dir, "stop", "--timeout", "10s", "sleep"); r.code != 0 {
				p.t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startPID1(t, "/bin/sleep", "1000")
			tc.stop(p)
			if tc.sig != 0 {
				if got := p.waitFor("signal received, stopping", 5*time.Second).str("signal"); got != machine.SignalName(tc.sig) {
					t.Fatalf("stopping on %s, want %s", got, machine.SignalName(tc.sig))
				}
			}
			if l := p.waitFor("killed by signal", 5*time.Second); l.str("signal") != "SIGTERM" {
				t.Fatalf("the program ended by %v, want the stop signal SIGTERM", l)
			}
			if code := p.wait(10 * time.Second); code != 0 {
				t.Fatalf("exit %d, want 0:\n%s", code, p.log())
			}
		})
	}
}

// As PID 1, start -D exits as anywhere: 0 after the program's clean end, 1
// after giving up; the container's exit code is respawner's. Each run of
// the program waits for the test to open and close a FIFO, then exits.
func TestPID1ExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status string
		runs   int
		want   int
	}{
		{"clean end", "0", 1, 0},
		{"gives up", "3", 3, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fifo := filepath.Join(t.TempDir(), "go")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			p := startPID1(t, "-t", "0", "-n", "2", "/bin/sh", "--", "-c", "cat "+fifo+"; exit "+tc.status)
			for i := range tc.runs {
				if i > 0 {
					// The run before, which had the FIFO open, is gone.
					p.waitFor("restarted", 10*time.Second)
				}
				f, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until this run opens it
				if err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			if tc.want == 1 {
				p.waitFor("gave up: respawn limit reached", 10*time.Second)
			}
			if code := p.wait(10 * time.Second); code != tc.want {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.want, p.log())
			}
		})
	}
}

// As PID 1 a daemonizing start would return once its program is up, and
// the kernel would kill the namespace with it: start says to give -D (exit
// 2) and starts nothing. And a /proc of another PID namespace (unshare
// --pid without --mount-proc), where respawner would look for its orphans
// among the host's processes and never reap them, is refused (exit 1).
func TestPID1Refusals(t *testing.T) {
	needUnshare(t)
	t.Run("daemon mode", func(t *testing.T) {
		dir := runtimeDir(t)
		argv := append(append([]string{}, pid1Argv...), respawnerBin, "start", "/bin/sleep", "--", "1000")
		r := runCmd(t, exec.Command(argv[0], argv[1:]...), dir, 20*time.Second)
		if r.code != 2 || !strings.Contains(r.stderr, "give -D") || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("exit %d, stderr %q; want 2 and one line that says to give -D", r.code, r.stderr)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Fatalf("start left %v in the runtime dir", ents)
		}
	})
	t.Run("foreign /proc", func(t *testing.T) {
		dir := runtimeDir(t)
		cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", respawnerBin, "start", "-D", "/bin/sleep", "--", "1000")
		r := runCmd(t, cmd, dir, 10*time.Second)
		if r.code != 1 || !strings.Contains(r.stderr, "/proc belongs to another PID namespace") || !strings.Contains(r.stderr, "--mount-proc") {
			t.Fatalf("exit %d, stderr %q; want 1 and why", r.code, r.stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, "sleep.pid")); err == nil {
			t.Fatal("start took the instance's lock before refusing")
		}
	})
}

// Hook plugins under PID 1: the hook host stays the subreaper of its
// plugins' orphans and reaps them itself, go-plugin still collects the
// exit of a plugin it started (a killed plugin is restarted), the plugin
// hears the lifecycle, and healthcheck-http probes the program.
func TestPID1Plugins(t *testing.T) {
	t.Run("testhook", func(t *testing.T) {
		tmp := t.TempDir()
		rec, orphans := filepath.Join(tmp, "events"), filepath.Join(tmp, "orphans")
		p := startPID1(t, hookArgs("--log-level", "debug", "--plugin", "testhook:record="+rec+",orphan="+orphans+",orphans=2", "/bin/sleep", "1000")...)
		host := hostOf(t, p.instance)
		for _, f := range strings.Fields(readFile(t, orphans)) {
			ns, _ := strconv.Atoi(f)
			o := p.outside(ns)
			// PPid in /proc/PID/status is in the reader's namespace: outside.
			if ppid := statusField(o, "PPid"); ppid != strconv.Itoa(host) {
				t.Fatalf("the plugin's orphan %d has parent %s, want the hook host %d:\n%s", o, ppid, host, treeDump(p.pid))
			}
			syscall.Kill(o, syscall.SIGKILL)
			// The host logs pids as it sees them: inside.
			if l := p.waitFor("reaped a plugin's orphan", 5*time.Second); l.int("pid") != ns || l.str("status") != "SIGKILL" {
				t.Fatalf("reaped %v, want orphan %d killed by SIGKILL", l, ns)
			}
		}
		_, plugin := hookProcs(p.pid)
		syscall.Kill(plugin, syscall.SIGKILL)
		p.waitFor("plugin exited; restarting it", 5*time.Second)
		p.waitFor("plugin restarted", 10*time.Second)
		// The host's own exit is the core's, through its pidfd; its plugins,
		// reparented to PID 1 with it, go too.
		old := pluginProcs(p.pid)
		syscall.Kill(hostOf(t, p.instance), syscall.SIGKILL)
		p.waitFor("hook host exited; plugins are unavailable until it is back", 5*time.Second)
		assertPluginsGone(t, old)
		p.waitFor("hook host restarted", 10*time.Second)
		if z := p.zombies(); len(z) > 0 {
			t.Fatalf("zombies %v in the namespace:\n%s", z, treeDump(p.pid))
		}
		p.kill(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.log())
		}
		if ev := readFile(t, rec); !strings.Contains(ev, "started\n") || !strings.HasSuffix(ev, "stopped\n") {
			t.Fatalf("the plugin heard:\n%s", ev)
		}
	})
	t.Run("healthcheck-http", func(t *testing.T) {
		port := freePort(t)
		t.Setenv("RSPTEST_HELPER", "http-server")
		p := startPID1(t, hookArgs("--plugin", fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/,interval=500ms,timeout=400ms,initial-delay=0", port), os.Args[0], "--", strconv.Itoa(port), "200")...)
		p.waitFor("healthy", 10*time.Second)
		p.kill(syscall.SIGTERM)
		if code := p.wait(10 * time.Second); code != 0 {
			t.Fatalf("exit %d after SIGTERM, want 0:\n%s", code, p.log())
		}
	})
}

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Every bad pidfile is a clear error: start exits 1, the process tree the run
// left is killed, and nothing unrelated is touched.
func TestBadPidfiles(t *testing.T) {
	unrelated := exec.Command("/bin/sleep", "1000")
	if err := unrelated.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { unrelated.Process.Kill(); unrelated.Wait() }()
	tests := []struct {
		name  string
		write string // shell that writes $PF; empty writes nothing
		want  string
	}{
		{"never written", "", "was not written within --start-timeout 1s"},
		{"garbage", `echo garbage > "$PF"`, `holds "garbage", not a pid`},
		{"pid 1", `echo 1 > "$PF"`, "names pid 1, which respawner did not start"},
		{"unrelated process", fmt.Sprintf(`echo %d > "$PF"`, unrelated.Process.Pid), fmt.Sprintf("names pid %d, which respawner did not start", unrelated.Process.Pid)},
		{"dead pid", `echo 4194304 > "$PF"`, "names pid 4194304, which is not running"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			pf := filepath.Join(tmp, "daemon.pid")
			// A "daemon": a background process that outlives the launcher.
			prog := script(t, tmp, "daemon.sh", fmt.Sprintf(`PF=%s
setsid sleep 1000 &
echo $! > %s/bg
%s
exit 0`, pf, tmp, tt.write))
			dir := runtimeDir(t)
			cleanupInstance(t, dir, "daemon.sh")
			begun := time.Now()
			r := respawner(t, dir, "start", "--start-timeout", "1s", "--pidfile="+pf, prog)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) {
				t.Fatalf("start: exit %d %q, want 1 and %q", r.code, r.stderr, tt.want)
			}
			if strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("error is not one line: %q", r.stderr)
			}
			if d := time.Since(begun); d > 8*time.Second {
				t.Errorf("start took %s", d)
			}
			bg, _ := strconv.Atoi(strings.TrimSpace(readFile(t, filepath.Join(tmp, "bg"))))
			if bg == 0 || alive(bg) {
				t.Errorf("the run's background process %d was left running", bg)
			}
			if !alive(unrelated.Process.Pid) || !alive(1) {
				t.Fatal("an unrelated process was touched")
			}
			assertRuntimeDirEmpty(t, dir)
		})
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// daemonScript writes a program that daemonizes under -p=pf: each run appends
// a line to tmp/runs, notes in tmp/seen whether pf was there when it began,
// and leaves a setsid'd sleep that writes its own pid to pf.
func daemonScript(t *testing.T, tmp, pf string) string {
	t.Helper()
	return script(t, tmp, "daemon.sh", fmt.Sprintf(`PF=%s
echo run >> %s/runs
if [ -e "$PF" ] || [ -L "$PF" ]; then echo there >> %s/seen; fi
setsid sh -c 'echo $$ > "$0"; exec sleep 1000' "$PF" &
exit 0`, pf, tmp, tmp))
}

// pidfileVictims are things a -p path may name by mistake or by malice:
// none of them is a pidfile, and none may be removed or changed.
var pidfileVictims = []struct {
	name  string
	setup func(t *testing.T, path string) // puts the victim at path
	want  string                          // in start's error
}{
	{"config file", func(t *testing.T, p string) {
		writeVictim(t, p, "server.document-root = \"/var/www/html\"\nserver.port = 80\n")
	}, "is a file of 56 bytes that does not hold one pid"},
	{"empty directory", func(t *testing.T, p string) {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}, "is a directory"},
	{"symlink to a file holding a dead pid", func(t *testing.T, p string) {
		victim := filepath.Join(t.TempDir(), "victim")
		writeVictim(t, victim, "4194304\n")
		if err := os.Symlink(victim, p); err != nil {
			t.Fatal(err)
		}
	}, "is a symbolic link to "},
	{"pid and garbage", func(t *testing.T, p string) {
		writeVictim(t, p, "4194304\nserver.port = 80\n")
	}, "does not hold one pid"},
}

func writeVictim(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fingerprint describes what is at p (type, link target, content), to show
// that it was neither removed nor changed.
func fingerprint(t *testing.T, p string) string {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		return "gone: " + err.Error()
	}
	s := fi.Mode().Type().String()
	if to, err := os.Readlink(p); err == nil {
		s += " -> " + to
		if b, err := os.ReadFile(to); err == nil {
			s += " holding " + strconv.Quote(string(b))
		}
	} else if fi.Mode().IsRegular() {
		s += " holding " + strconv.Quote(readFile(t, p))
	}
	return s
}

// A -p path that is not a pidfile is refused before anything starts, by
// start and by start -D, with one line saying what is there; it is left as
// it was, and nothing runs.
func TestPidfileNotAPidfileIsKept(t *testing.T) {
	for _, v := range pidfileVictims {
		for _, fg := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s foreground=%v", v.name, fg), func(t *testing.T) {
				tmp := t.TempDir()
				pf := filepath.Join(tmp, "daemon.pid")
				v.setup(t, pf)
				before := fingerprint(t, pf)
				prog := daemonScript(t, tmp, pf)
				var r result
				if fg {
					// Without the check, start -D would supervise for ever:
					// wait stops the test instead of hanging it.
					in := startRespawner(t, "--pidfile="+pf, prog)
					r.code = in.wait(10 * time.Second)
					r.stderr = in.log() + "\n"
					assertRuntimeDirEmpty(t, in.dir)
				} else {
					dir := runtimeDir(t)
					cleanupInstance(t, dir, "daemon.sh")
					r = respawner(t, dir, "start", "--pidfile="+pf, prog)
					assertRuntimeDirEmpty(t, dir)
				}
				if r.code != 1 || !strings.Contains(r.stderr, v.want) || !strings.Contains(r.stderr, "give -p=PATH") {
					t.Fatalf("start: exit %d %q, want 1 and %q", r.code, r.stderr, v.want)
				}
				if strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("error is not one line: %q", r.stderr)
				}
				if after := fingerprint(t, pf); after != before {
					t.Fatalf("the -p path changed: was %s, now %s", before, after)
				}
				if n := lines(t, filepath.Join(tmp, "runs")); n != 0 {
					t.Fatalf("the program ran %d times", n)
				}
			})
		}
	}
}

// What a run finds at the -p path before a restart is checked again: a file
// put there while the program ran, that is not a pidfile, is kept; the
// restart fails (and is retried) saying why.
func TestPidfileReplacedWhileRunningIsKept(t *testing.T) {
	for _, v := range pidfileVictims {
		t.Run(v.name, func(t *testing.T) {
			tmp := t.TempDir()
			pf := filepath.Join(tmp, "daemon.pid")
			in := startRespawner(t, "-t", "0", "--pidfile="+pf, daemonScript(t, tmp, pf))
			pid := in.waitFor("pidfile read", 10*time.Second).int("pid")
			fd := watchPID(t, pid)
			if err := os.Remove(pf); err != nil {
				t.Fatal(err)
			}
			v.setup(t, pf)
			before := fingerprint(t, pf)
			syscall.Kill(pid, syscall.SIGKILL)
			if !gone(fd, 5*time.Second) {
				t.Fatal("the daemon did not die")
			}
			l := in.waitFor("cannot start program", 10*time.Second)
			if !strings.Contains(l.str("error"), v.want) {
				t.Fatalf("error %q, want %q", l.str("error"), v.want)
			}
			if after := fingerprint(t, pf); after != before {
				t.Fatalf("the -p path changed: was %s, now %s", before, after)
			}
			if n := lines(t, filepath.Join(tmp, "runs")); n != 1 {
				t.Fatalf("the program ran %d times, want once", n)
			}
			in.stopOK()
		})
	}
}

// A stale pidfile (one pid, of a process that is gone) is still removed
// before the run, which proceeds; an empty file is left for the daemon to
// write into.
func TestStalePidfileRemoved(t *testing.T) {
	for _, tt := range []struct {
		name, content string
		removed       bool
	}{
		{"dead pid", "4194304\n", true},
		{"dead pid without newline", "4194304", true},
		{"empty", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tmp := t.TempDir()
			pf := filepath.Join(tmp, "daemon.pid")
			writeVictim(t, pf, tt.content)
			dir := runtimeDir(t)
			cleanupInstance(t, dir, "daemon.sh")
			if r := respawner(t, dir, "start", "--pidfile="+pf, daemonScript(t, tmp, pf)); r.code != 0 {
				t.Fatalf("start: exit %d %q", r.code, r.stderr)
			}
			if seen := lines(t, filepath.Join(tmp, "seen")) > 0; seen == tt.removed {
				t.Errorf("pidfile there when the run began: %v, want %v", seen, !tt.removed)
			}
			st, code := statusOf(t, dir, "daemon.sh")
			if code != 0 || strings.TrimSpace(readFile(t, pf)) != strconv.Itoa(st.PID) {
				t.Fatalf("status %+v (exit %d), pidfile %q", st, code, readFile(t, pf))
			}
			if r := respawner(t, dir, "stop", "daemon.sh"); r.code != 0 {
				t.Fatalf("stop: exit %d %q", r.code, r.stderr)
			}
		})
	}
}

// A daemon's pidfile rewritten to name pid 1: every restart refuses to start
// a second copy, and status says why the instance stays down while it
// retries, in the text line and in --json "reason".
func TestStatusShowsWhyRestartFails(t *testing.T) {
	tmp := t.TempDir()
	pf := filepath.Join(tmp, "daemon.pid")
	in := startRespawner(t, "-t", "0", "--pidfile="+pf, daemonScript(t, tmp, pf))
	pid := in.waitFor("pidfile read", 10*time.Second).int("pid")
	fd := watchPID(t, pid)
	writeVictim(t, pf, "1\n")
	syscall.Kill(pid, syscall.SIGKILL)
	if !gone(fd, 5*time.Second) {
		t.Fatal("the daemon did not die")
	}
	const why = "names running pid 1, which respawner did not start: is another copy running?"
	for range 2 { // the first refusal, then a retry
		if l := in.waitFor("cannot start program", 10*time.Second); !strings.Contains(l.str("error"), why) {
			t.Fatalf("error %q, want %q", l.str("error"), why)
		}
		st, code := statusOf(t, in.dir, "daemon.sh")
		if code != 3 || st.State != "backoff" || !strings.Contains(st.Reason, "pidfile "+pf+" "+why) {
			t.Fatalf("status --json: exit %d %+v, want 3, backoff and the reason", code, st)
		}
		if r := respawner(t, in.dir, "status", "daemon.sh"); r.code != 3 || !strings.Contains(r.stdout, "daemon.sh is not running (backoff: cannot start: pidfile "+pf+" "+why) {
			t.Fatalf("status: exit %d %q", r.code, r.stdout)
		}
	}
	if n := lines(t, filepath.Join(tmp, "runs")); n != 1 {
		t.Fatalf("the program ran %d times, want once", n)
	}
	in.stopOK()
	if !alive(1) || strings.TrimSpace(readFile(t, pf)) != "1" {
		t.Fatal("pid 1 or its pidfile was touched")
	}
}

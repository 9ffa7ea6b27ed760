package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
)

// The tests here play another user, uid 65534 (nobody), against root's
// instances and root against files nobody planted: they need root.
const nobody = 65534

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs respawner as another uid")
	}
}

// openDir makes a directory under /tmp that every user can reach, owned by
// root with mode perm, and removes it at the end.
func openDir(t *testing.T, perm os.FileMode) string {
	t.Helper()
	d, err := os.MkdirTemp("", "respawner-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, perm); err != nil {
		t.Fatal(err)
	}
	return d
}

// nobodyBinary is a copy of respawner that uid 65534 can execute (the
// build dir is private).
func nobodyBinary(t *testing.T) string {
	t.Helper()
	p := filepath.Join(openDir(t, 0o755), "respawner")
	b, err := os.ReadFile(respawnerBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// runAs runs bin ARGS as uid (and gid) with RESPAWNER_RUNTIME_DIR=dir and
// waits for it.
func runAs(t *testing.T, uid int, bin, dir string, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	return runCmd(t, cmd, dir, 0)
}

// wantRefusal checks an exit code and a one-line error that contains every
// one of words.
func wantRefusal(t *testing.T, what string, r result, code int, words ...string) {
	t.Helper()
	msg := strings.TrimSuffix(r.stderr, "\n")
	ok := r.code == code && msg != "" && !strings.Contains(msg, "\n")
	for _, w := range words {
		ok = ok && strings.Contains(msg, w)
	}
	if !ok {
		t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit %d and one line with %q", what, r.code, r.stdout, r.stderr, code, words)
	}
}

// killMarked kills, by pid, the processes whose command line holds mark (a
// string unique to one test): respawner and the program it runs. For
// cleanup when a test's refusal did not happen and something started.
func killMarked(mark string) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		if b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline"); strings.Contains(string(b), mark) {
			syscall.Kill(pid, syscall.SIGKILL)
			control.WaitGone(pid, 5*time.Second)
		}
	}
}

// uniqueMark is an argument for sleep that tells this test's processes from
// any other's.
func uniqueMark() string { return fmt.Sprintf("1000.%09d", time.Now().UnixNano()%1e9) }

// fakeInstance serves a control socket at path that claims an instance runs
// and obeys any stop: what another user would plant. It reports each request.
func fakeInstance(t *testing.T, path string) <-chan string {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	os.Chmod(path, 0o777)
	reqs := make(chan string, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			select {
			case reqs <- strings.TrimSpace(line):
			default:
			}
			switch strings.TrimSpace(line) {
			case "status":
				fmt.Fprintln(c, `{"name":"svc","state":"running","pid":4242,"health":"unknown","plugins":[],"args":[]}`)
			case "stop":
				fmt.Fprintln(c, `{"ok":true}`)
			}
			c.Close()
		}
	}()
	return reqs
}

// The runtime dir is a symbolic link that another user planted in a
// world-writable sticky directory (where /tmp/respawner-UID lives), pointing
// to a directory of the victim's: start must not write its pid over the
// victim's file, and start, status and stop must all refuse, in one line.
func TestRuntimeDirSymlinkRefused(t *testing.T) {
	needRoot(t)
	tmp := openDir(t, 0o777|os.ModeSticky)
	victim := t.TempDir() // root's, mode 0700: it passes a check that follows links
	if err := os.Chmod(victim, 0o700); err != nil {
		t.Fatal(err)
	}
	precious := map[string]string{"svc.pid": "precious\n", "svc.log": "precious log\n", "svc.state": "precious state\n"}
	for f, s := range precious {
		if err := os.WriteFile(filepath.Join(victim, f), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rt := filepath.Join(tmp, "respawner-0")
	if err := os.Symlink(victim, rt); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(rt, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	mark := uniqueMark()
	t.Cleanup(func() { killMarked(mark) })
	wantRefusal(t, "start", respawner(t, rt, "start", "--name", "svc", "/bin/sleep", "--", mark), 1, "symbolic link", rt)
	wantRefusal(t, "status", respawner(t, rt, "status", "svc"), 4, "symbolic link", rt)
	wantRefusal(t, "stop", respawner(t, rt, "stop", "svc"), 4, "symbolic link", rt)
	for f, s := range precious {
		if b, err := os.ReadFile(filepath.Join(victim, f)); err != nil || string(b) != s {
			t.Errorf("victim's %s now holds %q (%v), want %q", f, b, err, s)
		}
	}
	if ents, _ := os.ReadDir(victim); len(ents) != len(precious) {
		t.Errorf("respawner wrote into the victim's directory: %d entries", len(ents))
	}
}

// Another user's runtime dir in the victim's place, as a symbolic link or as
// a directory, holding a fake control socket: status and stop must not
// believe it (exit 4, one line), start must not use it.
func TestRuntimeDirOfAnotherUserRefused(t *testing.T) {
	needRoot(t)
	tmp := openDir(t, 0o777|os.ModeSticky)
	evil := filepath.Join(tmp, "evil")
	if err := os.Mkdir(evil, 0o700); err != nil {
		t.Fatal(err)
	}
	reqs := fakeInstance(t, filepath.Join(evil, "svc.sock"))
	if err := os.Chown(evil, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(tmp, "respawner-0")
	if err := os.Symlink(evil, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	mark := uniqueMark()
	t.Cleanup(func() { killMarked(mark) })
	for _, c := range []struct{ rt, why string }{{link, "symbolic link"}, {evil, "belongs to uid 65534"}} {
		wantRefusal(t, "status via "+c.rt, respawner(t, c.rt, "status", "svc"), 4, c.why)
		wantRefusal(t, "status --json via "+c.rt, respawner(t, c.rt, "status", "--json", "svc"), 4, c.why)
		wantRefusal(t, "stop via "+c.rt, respawner(t, c.rt, "stop", "svc"), 4, c.why)
		wantRefusal(t, "start via "+c.rt, respawner(t, c.rt, "start", "--name", "svc", "/bin/sleep", "--", mark), 1, c.why)
	}
	select {
	case req := <-reqs:
		t.Errorf("a %q request reached the planted socket", req)
	default:
	}
}

// NAME.pid, NAME.state and NAME.log planted as symbolic links in the runtime
// dir (by whoever could write there once) are never written through.
func TestInstanceFileSymlinksNotFollowed(t *testing.T) {
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", filepath.Join(t.TempDir(), "no-syslog")) // log to NAME.log
	dir := runtimeDir(t)
	vdir := t.TempDir()
	victim := filepath.Join(vdir, "victim")
	if err := os.WriteFile(victim, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mark := uniqueMark()
	t.Cleanup(func() { killMarked(mark) })

	// NAME.pid: start would truncate it and write its pid.
	os.Symlink(victim, control.PidPath(dir, "a"))
	wantRefusal(t, "start over a NAME.pid symlink", respawner(t, dir, "start", "--name", "a", "/bin/sleep", "--", mark), 1, "a.pid", "symbolic link")

	// NAME.log: the daemon appends its log lines.
	os.Symlink(victim, control.LogPath(dir, "c"))
	wantRefusal(t, "start over a NAME.log symlink", respawner(t, dir, "start", "--name", "c", "/bin/sleep", "--", mark), 1, "c.log", "symbolic link")

	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("victim file now holds %q", b)
	}

	// NAME.state, dangling: the file it names would be created with the
	// program's pid. A state file that is not a regular file is stale: it is
	// removed (the link, not its target) and a real one written.
	created := filepath.Join(vdir, "created")
	os.Symlink(created, control.StatePath(dir, "b"))
	startDaemon(t, dir, "b", "/bin/sleep", "--", mark)
	st, code := statusOf(t, dir, "b")
	if code != 0 {
		t.Fatalf("status b: exit %d", code)
	}
	if _, err := os.Lstat(created); err == nil {
		t.Error("the state file's symlink was followed: its target was created")
	}
	fi, err := os.Lstat(control.StatePath(dir, "b"))
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("b.state is not a regular file after the start (%v)", err)
	} else if b, _ := os.ReadFile(control.StatePath(dir, "b")); !strings.HasPrefix(string(b), strconv.Itoa(st.PID)+" ") {
		t.Errorf("b.state holds %q, want the program's pid %d first", b, st.PID)
	}
	if r := respawner(t, dir, "stop", "b"); r.code != 0 {
		t.Fatalf("stop b: exit %d %s", r.code, r.stderr)
	}
}

// Another uid asking root's instance: "permission denied" and whose the
// runtime dir is, exit 4 for both status and stop — never "not running".
func TestOtherUserMayNotAsk(t *testing.T) {
	needRoot(t)
	dir := runtimeDir(t)
	startDaemon(t, dir, "mine", "/bin/sleep", "--", "1000")
	st, _ := statusOf(t, dir, "mine")
	// Let uid 65534 reach the runtime dir's parent; the dir stays 0700.
	for p := filepath.Dir(dir); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	bin := nobodyBinary(t)
	for _, cmd := range []string{"status", "stop"} {
		wantRefusal(t, cmd+" as uid 65534", runAs(t, nobody, bin, dir, cmd, "mine"), 4, "permission denied", dir, "belongs to root")
	}
	// Opened up by mistake, the dir and the socket: still not theirs to ask.
	os.Chmod(dir, 0o755)
	os.Chmod(control.SockPath(dir, "mine"), 0o666)
	for _, cmd := range []string{"status", "stop"} {
		wantRefusal(t, cmd+" as uid 65534, dir 0755", runAs(t, nobody, bin, dir, cmd, "mine"), 4, "permission denied", "belongs to root")
	}
	os.Chmod(dir, 0o700)
	if st2, code := statusOf(t, dir, "mine"); code != 0 || st2.PID != st.PID {
		t.Fatalf("instance disturbed: exit %d %+v", code, st2)
	}
	if r := respawner(t, dir, "stop", "mine"); r.code != 0 {
		t.Fatalf("stop as root: exit %d %s", r.code, r.stderr)
	}
}

// The same in root's default runtime dir, /run/respawner.
func TestOtherUserMayNotAskDefaultDir(t *testing.T) {
	needRoot(t)
	const dir = "/run/respawner"
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		t.Cleanup(func() { os.Remove(dir) }) // ours, if empty again
	}
	name := fmt.Sprintf("respawner-test-%d", os.Getpid())
	t.Cleanup(func() { os.Remove(control.LogPath(dir, name)) })
	startDaemon(t, dir, name, "/bin/sleep", "--", "1000")
	bin := nobodyBinary(t)
	for _, cmd := range []string{"status", "stop"} {
		r := runAs(t, nobody, bin, "", cmd, "--runtime-dir", dir, name)
		wantRefusal(t, cmd+" as uid 65534", r, 4, "permission denied: runtime dir /run/respawner belongs to root")
	}
	if r := respawner(t, dir, "stop", name); r.code != 0 {
		t.Fatalf("stop as root: exit %d %s", r.code, r.stderr)
	}
}

// Bare -p of a respawner that cannot write /run means /tmp/NAME.pid; a file
// of that name another user made first cannot be removed before a run
// (sticky /tmp). start says whose it is and what to do, before it starts
// anything.
func TestTmpPidfileOfAnotherUser(t *testing.T) {
	needRoot(t)
	name := fmt.Sprintf("respawner-test-%d", os.Getpid())
	pidfile := "/tmp/" + name + ".pid"
	if err := os.WriteFile(pidfile, []byte("garbage\n"), 0o644); err != nil { // root's
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(pidfile) })
	rt := filepath.Join(openDir(t, 0o755), "run")
	if err := os.Mkdir(rt, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(rt, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	mark := uniqueMark()
	t.Cleanup(func() { killMarked(mark) })
	bin := nobodyBinary(t)
	r := runAs(t, nobody, bin, rt, "start", "-p", "--name", name, "/bin/sleep", "--", mark)
	wantRefusal(t, "start -p as uid 65534", r, 1, pidfile, "belongs to root", "-p=PATH")
	if b, _ := os.ReadFile(pidfile); string(b) != "garbage\n" {
		t.Errorf("%s now holds %q", pidfile, b)
	}
	if ents, _ := os.ReadDir(rt); len(ents) != 0 {
		t.Errorf("start left %d files in its runtime dir: it got past the check", len(ents))
	}
}

// respawner killed while its program runs: status says so, and that start
// adopts it (exit 4, unknown), list shows it, NAME.state stays, and a new
// start does adopt it.
func TestStatusAfterRespawnerDied(t *testing.T) {
	dir := runtimeDir(t)
	mark := uniqueMark()
	prog := script(t, t.TempDir(), "orphan.sh", "exec sleep "+mark)
	startDaemon(t, dir, "orphan", prog)
	st, _ := statusOf(t, dir, "orphan")
	t.Cleanup(func() { killMarked(mark) })
	syscall.Kill(st.RespawnerPID, syscall.SIGKILL)
	if !control.WaitGone(st.RespawnerPID, 5*time.Second) {
		t.Fatal("respawner survived SIGKILL")
	}
	if !alive(st.PID) {
		t.Fatal("program died with its respawner")
	}
	line := fmt.Sprintf("orphan: respawner is not running, but its program still runs (pid %d); `respawner start orphan` adopts it\n", st.PID)
	if r := respawner(t, dir, "status", "orphan"); r.code != 4 || r.stdout != line {
		t.Errorf("status: exit %d %q %q, want 4 and %q", r.code, r.stdout, r.stderr, line)
	}
	js, code := statusOf(t, dir, "orphan")
	if code != 4 || js.State != "unknown" || js.PID != st.PID || js.RespawnerPID != 0 || !strings.Contains(js.Reason, "adopts it") {
		t.Errorf("status --json: exit %d %+v, want 4, state unknown, pid %d", code, js, st.PID)
	}
	if r := respawner(t, dir, "list"); r.stdout != line {
		t.Errorf("list: %q, want %q", r.stdout, line)
	}
	if r := respawner(t, dir, "stop", "orphan"); r.code != 1 || !strings.Contains(r.stderr, "adopts it") {
		t.Errorf("stop: exit %d %q, want 1 and how to adopt it", r.code, r.stderr)
	}
	if _, err := os.Stat(control.StatePath(dir, "orphan")); err != nil {
		t.Fatalf("NAME.state gone after status/list: adoption needs it: %v", err)
	}
	if r := respawner(t, dir, "start", "--name", "orphan", prog); r.code != 0 {
		t.Fatalf("start again: %d %s", r.code, r.stderr)
	}
	if st2, code := statusOf(t, dir, "orphan"); code != 0 || st2.PID != st.PID {
		t.Fatalf("after the new start: exit %d %+v, want the adopted pid %d running", code, st2, st.PID)
	}
	fd := watchPID(t, st.PID)
	if r := respawner(t, dir, "stop", "orphan"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	if !gone(fd, 5*time.Second) {
		t.Fatal("adopted program survived stop")
	}
}

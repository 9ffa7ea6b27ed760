package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is what a test reads of a running program in /proc: its
// credentials, umask, directory, environment and nofile limit.
type proc struct {
	pid                 int
	uid, gid, groups    string
	umask, cwd          string
	env                 map[string]string
	nofileSoft, nofileH string
}

func readProc(t *testing.T, pid int) proc {
	t.Helper()
	st := procStatus(t, pid)
	p := proc{pid: pid, uid: st["Uid"], gid: st["Gid"], groups: st["Groups"], umask: st["Umask"], env: map[string]string{}}
	p.cwd, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			p.env[k] = v
		}
	}
	lim, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(lim), "\n") {
		if f := strings.Fields(l); strings.HasPrefix(l, "Max open files") && len(f) >= 5 {
			p.nofileSoft, p.nofileH = f[3], f[4]
		}
	}
	return p
}

// nobodyAccount is what --user nobody must give the program, from the
// user database as the test reads it.
type account struct{ uid, gid, groups, home string }

func nobodyAccount(t *testing.T) account {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody:", err)
	}
	ids, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
	four := func(id string) string { return strings.Repeat(id+"\t", 3) + id }
	return account{uid: four(u.Uid), gid: four(u.Gid), groups: strings.Join(ids, " "), home: u.HomeDir}
}

// checkRun compares what the program got with what the flags ask: user,
// directory and env, and with limits, umask 0027 and nofile 64:128 too.
func checkRun(t *testing.T, p proc, acct account, dir string, env map[string]string, limits bool) {
	t.Helper()
	if p.uid != acct.uid || p.gid != acct.gid || p.groups != acct.groups {
		t.Errorf("pid %d: Uid %q Gid %q Groups %q; want %q %q %q", p.pid, p.uid, p.gid, p.groups, acct.uid, acct.gid, acct.groups)
	}
	if p.cwd != dir {
		t.Errorf("pid %d: cwd %q, want %s", p.pid, p.cwd, dir)
	}
	if limits && (p.umask != "0027" || p.nofileSoft != "64" || p.nofileH != "128") {
		t.Errorf("pid %d: umask %q, nofile %s:%s; want 0027, 64:128", p.pid, p.umask, p.nofileSoft, p.nofileH)
	}
	if !limits && (p.umask == "0027" || p.nofileSoft == "64") {
		t.Errorf("pid %d: umask %q, nofile %s:%s, not asked for", p.pid, p.umask, p.nofileSoft, p.nofileH)
	}
	for k, v := range env {
		if got, ok := p.env[k]; v == "\x00" && ok || v != "\x00" && got != v {
			t.Errorf("pid %d: %s=%q (set: %v), want %q", p.pid, k, got, ok, v)
		}
	}
}

// Every run gets the user, groups, directory, umask, limits and
// environment asked for, the first and each after a restart, and the env
// files are read again at the restart; respawner itself keeps its own.
// With --umask and --limit every start goes through the exec shim; user,
// directory and environment alone take Go's own fork/exec.
func TestRunEnv(t *testing.T) {
	for _, limits := range []bool{true, false} {
		t.Run(fmt.Sprintf("shim=%v", limits), func(t *testing.T) { testRunEnv(t, limits) })
	}
}

func testRunEnv(t *testing.T, limits bool) {
	needRoot(t)
	acct := nobodyAccount(t)
	dir := openDir(t, 0o755) // nobody may enter it
	files := t.TempDir()
	envFile := filepath.Join(files, "app.env")
	optional := filepath.Join(files, "optional.env")
	os.WriteFile(envFile, []byte("# the app\nA=from-file\nexport B='two words'\nHOME=/from/file\n"), 0o600)
	var shimFlags []string
	if limits {
		shimFlags = []string{"--umask", "027", "--limit", "nofile=64:128"}
	}
	args := append([]string{"start", "-D", "--log-format", "json", "-t", "0", "--name", "app",
		"--user", "nobody", "--chdir", dir}, shimFlags...)
	args = append(args, "--env-file", envFile, "--env-file", "-"+optional, "--env", "C=from-flag", "--env", "A=from-flag",
		"/bin/sleep", "--", "1000")
	in := startWith(t, nil, func(c *exec.Cmd) {
		// What a service manager gave respawner is respawner's own.
		c.Env = append(c.Env, "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000000", "WATCHDOG_PID=1",
			"LISTEN_FDS=1", "LISTEN_PID=1", "LISTEN_FDNAMES=x", "LISTEN_ADDR=:8080")
	}, args...)
	want := map[string]string{
		"A": "from-flag", "B": "two words", "C": "from-flag", "HOME": "/from/file", "USER": "nobody", "LOGNAME": "nobody",
		"LISTEN_ADDR": ":8080", "PATH": os.Getenv("PATH"),
		"NOTIFY_SOCKET": "\x00", "WATCHDOG_USEC": "\x00", "WATCHDOG_PID": "\x00", "LISTEN_FDS": "\x00", "LISTEN_PID": "\x00",
		"LISTEN_FDNAMES": "\x00", "RESPAWNER_RUNTIME_DIR": "\x00", "D": "\x00", "E": "\x00",
	}
	pid := in.waitFor("started", 10*time.Second).int("pid")
	checkRun(t, readProc(t, pid), acct, dir, want, limits)

	// respawner is still root, with its own directory, umask and limits.
	rp := readProc(t, in.cmd.Process.Pid)
	if rp.uid != "0\t0\t0\t0" || rp.cwd == dir || rp.umask == "0027" || rp.nofileSoft == "64" {
		t.Errorf("respawner itself changed: %+v", rp)
	}

	r := respawner(t, in.dir, "status", "--json", "app")
	var st map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		t.Fatalf("status --json: %v: %q", err, r.stdout)
	}
	lims, _ := st["limits"].(map[string]any)
	if st["user"] != "nobody" || st["dir"] != dir || st["group"] == "" {
		t.Errorf("status --json: %s", r.stdout)
	}
	if limits != (st["umask"] == "0027" && lims["nofile"] == "64:128") {
		t.Errorf("status --json: %s", r.stdout)
	}
	for _, secret := range []string{"from-flag", "two words", "from-file"} {
		if strings.Contains(r.stdout, secret) {
			t.Errorf("status --json shows an environment value (%q): %s", secret, r.stdout)
		}
	}
	if r := respawner(t, in.dir, "status", "app"); !strings.Contains(r.stdout, "user nobody") {
		t.Errorf("status: %q, want it to name the user", r.stdout)
	}

	// The files are read again at the restart.
	os.WriteFile(envFile, []byte("A=from-file\nB=changed\nD=new\n"), 0o600)
	os.WriteFile(optional, []byte("E=optional\n"), 0o600)
	syscall.Kill(pid, syscall.SIGKILL)
	next := in.waitFor("restarted", 10*time.Second).int("pid")
	if next == pid {
		t.Fatal("restarted with the same pid")
	}
	want["B"], want["D"], want["E"], want["HOME"] = "changed", "new", "optional", acct.home
	checkRun(t, readProc(t, next), acct, dir, want, limits)
	in.stopOK()
}

// The flags travel to the respawner that the keeper forks (same command
// line) in daemon mode, and to every run there.
func TestRunEnvDaemon(t *testing.T) {
	needRoot(t)
	acct := nobodyAccount(t)
	dir := openDir(t, 0o755)
	rt := runtimeDir(t)
	envFile := filepath.Join(t.TempDir(), "d.env")
	os.WriteFile(envFile, []byte("X=\"quoted \\\"value\\\"\"\n"), 0o600)
	startDaemon(t, rt, "d", "-t", "0", "--user", "nobody", "--chdir", dir, "--umask", "0027", "--limit", "nofile=64:128",
		"--env-file", envFile, "--clear-env", "/bin/sleep", "--", "1000")
	st, code := statusOf(t, rt, "d")
	if code != 0 || st.User != "nobody" || st.Dir != dir || st.Umask != "0027" || st.Limits["nofile"] != "64:128" || st.KeeperPID == 0 {
		t.Fatalf("status: %d %+v", code, st)
	}
	want := map[string]string{"X": `quoted "value"`, "USER": "nobody", "HOME": acct.home, "PATH": os.Getenv("PATH"), "RESPAWNER_RUNTIME_DIR": "\x00"}
	p := readProc(t, st.PID)
	checkRun(t, p, acct, dir, want, true)
	if len(p.env) != 5 { // --clear-env: PATH, the user's three, X
		t.Errorf("environment %v, want PATH, HOME, USER, LOGNAME and X only", p.env)
	}
	syscall.Kill(st.PID, syscall.SIGKILL)
	st2 := waitState(t, rt, "d", "running", st.PID, 15*time.Second)
	checkRun(t, readProc(t, st2.PID), acct, dir, want, true)
	if r := respawner(t, rt, "stop", "d"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
}

// An env file in every form of the syntax reaches the program as systemd
// would give it. Environment flags alone never need the exec shim: this
// is the direct path.
func TestEnvFileSyntax(t *testing.T) {
	f := filepath.Join(t.TempDir(), "all.env")
	content := "# comment\n; another\n\n   \n" +
		"PLAIN=value\n" +
		"  SPACED  =  inner  blanks  \n" +
		"export EXPORTED=yes\n" +
		"EMPTY=\n" +
		"SINGLE='single $HOME \\n'\n" +
		"DOUBLE=\"a \\\"b\\\" \\\\ \\$c \\x\"\n" +
		"MULTI=\"line1\nline2\"\n" +
		"CONT=one\\\ntwo\n" +
		"ESCAPED=a\\ b\\#c\n" +
		"HASH=x # not a comment\n" +
		"JOINED=\"x\" 'y'z\n" +
		"INNER=it's \"kept\"\n" +
		"CRLF=dos\r\n"
	os.WriteFile(f, []byte(content), 0o600)
	in := startRespawner(t, "-t", "0", "--clear-env", "--env-file", f, "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 10*time.Second).int("pid")
	want := map[string]string{
		"PATH": os.Getenv("PATH"), "PLAIN": "value", "SPACED": "inner  blanks", "EXPORTED": "yes", "EMPTY": "",
		"SINGLE": `single $HOME \n`, "DOUBLE": `a "b" \ $c \x`, "MULTI": "line1\nline2", "CONT": "onetwo",
		"ESCAPED": "a b#c", "HASH": "x # not a comment", "JOINED": "xyz", "INNER": `it's "kept"`, "CRLF": "dos",
	}
	if got := readProc(t, pid).env; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("environment:\n%q\nwant:\n%q", got, want)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	next := in.waitFor("restarted", 10*time.Second).int("pid")
	if got := readProc(t, next).env; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("environment after the restart:\n%q\nwant:\n%q", got, want)
	}
	in.stopOK()
}

// A non-optional env file that is gone at a restart fails that start, as a
// failed exec does (status 127, backoff, the reason shown), and the start
// after it is restored succeeds.
func TestEnvFileMissingAtRestart(t *testing.T) {
	f := filepath.Join(t.TempDir(), "app.env")
	os.WriteFile(f, []byte("V=1\n"), 0o600)
	in := startRespawner(t, "-t", "0", "--name", "gone", "--env-file", f, "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 10*time.Second).int("pid")
	os.Remove(f)
	syscall.Kill(pid, syscall.SIGKILL)
	l := in.waitFor("cannot start program", 10*time.Second)
	if want := "env file " + f + ": no such file or directory"; l.str("error") != want {
		t.Fatalf("error %q, want %q", l.str("error"), want)
	}
	st, _ := statusOf(t, in.dir, "gone")
	if st.State != "backoff" || !strings.Contains(st.Reason, "env file "+f) || st.LastExit == nil || st.LastExit.Code == nil || *st.LastExit.Code != 127 {
		t.Errorf("status after the failed start: %+v", st)
	}
	os.WriteFile(f, []byte("V=2\n"), 0o600)
	next := in.waitFor("restarted", 10*time.Second).int("pid")
	if v := readProc(t, next).env["V"]; v != "2" {
		t.Errorf("V=%q after the file came back, want 2", v)
	}
	in.stopOK()
}

// The exec shim leaves the program as clean as the direct path does: no
// signal blocked or ignored, no descriptor beyond 0, 1, 2, its own process
// group; even when respawner was started by a hostile parent.
func TestRunEnvChildHygiene(t *testing.T) {
	t.Setenv("RSPTEST_HELPER", "hostile-parent")
	var stdin interface{ Close() error }
	in := startWith(t, []string{os.Args[0]}, func(c *exec.Cmd) {
		w, _ := c.StdinPipe()
		stdin = w
	}, "start", "-D", "--log-format", "json", "-t", "0", "--umask", "022", "/bin/cat")
	t.Setenv("RSPTEST_HELPER", "")
	pid := in.waitFor("started", 10*time.Second).int("pid")
	// cat is exec'd (the shim waited for that); its loader may still have
	// libc open: wait until only 0, 1, 2 are left or a deadline passes.
	var fds []string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		fds = fds[:0]
		for _, e := range ents {
			fds = append(fds, e.Name())
		}
		if strings.Join(fds, ",") == "0,1,2" {
			break
		}
	}
	if strings.Join(fds, ",") != "0,1,2" {
		t.Errorf("child fds = %v, want only 0,1,2", fds)
	}
	st := procStatus(t, pid)
	for _, k := range []string{"SigBlk", "SigIgn"} {
		if st[k] != "0000000000000000" {
			t.Errorf("child %s = %s, want all zero", k, st[k])
		}
	}
	if st["Umask"] != "0022" {
		t.Errorf("umask %s, want 0022", st["Umask"])
	}
	if pgid, _ := syscall.Getpgid(pid); pgid != pid {
		t.Errorf("child pgid = %d, want its own group %d", pgid, pid)
	}
	stdin.Close()
	if code := in.wait(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d, want 0:\n%s", code, in.log())
	}
}

// A start that the shim cannot complete fails as the direct path does:
// the first start ends supervision with the reason (exit 1), a restart
// counts as a failed run.
func TestRunEnvStartFails(t *testing.T) {
	needRoot(t)
	nobodyAccount(t)
	private := t.TempDir() // 0700, root's: nobody may not enter it
	in := startRespawner(t, "--user", "nobody", "--chdir", private, "/bin/sleep", "--", "1000")
	if code := in.wait(10 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, in.log())
	}
	if want := "chdir " + private + " as nobody: permission denied"; !strings.Contains(in.log(), want) {
		t.Fatalf("log does not say %q:\n%s", want, in.log())
	}
	// Daemon mode: start says why, in one line.
	rt := runtimeDir(t)
	cleanupInstance(t, rt, "priv")
	r := respawner(t, rt, "start", "--name", "priv", "--user", "nobody", "--chdir", private, "/bin/sleep", "--", "1000")
	if r.code != 1 || !strings.Contains(r.stderr, "chdir "+private+" as nobody: permission denied") {
		t.Fatalf("start: exit %d %q", r.code, r.stderr)
	}
}

// Every bad value is refused at start with exit 2 and one line that says
// what is wrong.
func TestRunEnvRefused(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.env")
	os.WriteFile(bad, []byte("A=1\nnot an assignment\n"), 0o600)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown user", []string{"--user", "no-such-user-xyz"}, []string{`unknown user "no-such-user-xyz"`}},
		{"unknown group", []string{"--user", "nobody:no-such-group-xyz"}, []string{`unknown group "no-such-group-xyz"`}},
		{"unknown group alone", []string{"--group", "no-such-group-xyz"}, []string{`unknown group`}},
		{"two groups", []string{"--user", "nobody:root", "--group", "daemon"}, []string{"two groups"}},
		{"bad umask", []string{"--umask", "0800"}, []string{"--umask", `"0800" is not a umask`}},
		{"umask too large", []string{"--umask", "1777"}, []string{"--umask"}},
		{"unknown limit", []string{"--limit", "files=10"}, []string{"--limit files=10", `unknown limit "files"`, "nofile"}},
		{"limit without value", []string{"--limit", "nofile"}, []string{"--limit nofile", "NAME=SOFT[:HARD]"}},
		{"bad limit value", []string{"--limit", "nofile=lots"}, []string{`"lots" is not a number`}},
		{"soft above hard", []string{"--limit", "nofile=128:64"}, []string{"soft limit 128 is above the hard limit 64"}},
		{"limit twice", []string{"--limit", "core=0", "--limit", "core=unlimited"}, []string{"--limit core given twice"}},
		{"nofile above nr_open", []string{"--limit", "nofile=unlimited"}, []string{"fs.nr_open"}},
		{"missing dir", []string{"--chdir", filepath.Join(dir, "none")}, []string{"--chdir", "no such directory"}},
		{"dir is a file", []string{"--chdir", file}, []string{"not a directory"}},
		{"bad env", []string{"--env", "NOVALUE"}, []string{`invalid --env "NOVALUE"`}},
		{"bad env name", []string{"--env", "1X=y"}, []string{`invalid --env "1X=y"`}},
		{"missing env file", []string{"--env-file", filepath.Join(dir, "none.env")}, []string{"none.env: no such file or directory"}},
		{"env file syntax", []string{"--env-file", bad}, []string{bad + ":2:", "not KEY=VALUE"}},
		{"env file is a directory", []string{"--env-file", "-" + dir}, []string{"not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := respawner(t, runtimeDir(t), append(append([]string{"start", "-D"}, tt.args...), "/bin/true")...)
			wantRefusal(t, tt.name, r, 2, tt.want...)
		})
	}
	t.Run("user without root", func(t *testing.T) {
		needRoot(t)
		for _, args := range [][]string{{"--user", "root"}, {"--group", "root"}} {
			r := runAs(t, nobody, nobodyBinary(t), openDir(t, 0o777), append(append([]string{"start", "-D"}, args...), "/bin/true")...)
			wantRefusal(t, "as nobody", r, 2, args[0], "only root", "uid 65534")
		}
	})
}

// --user gives the program every group the user is a member of (initgroups),
// not its primary group alone; USER:GROUP and --group alone change the
// group. A user of the test's own with one extra group shows the
// difference, which nobody (no extra group) cannot.
func TestRunEnvSupplementaryGroups(t *testing.T) {
	needRoot(t)
	name := fmt.Sprintf("rsp%d", os.Getpid()%100000)
	extra := name + "x"
	for _, c := range [][]string{{"groupadd", extra}, {"useradd", "-M", "-N", "-g", "nogroup", "-G", extra, "-s", "/usr/sbin/nologin", name}} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Skipf("%v: %v: %s", c, err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("userdel", name).Run()
		exec.Command("groupdel", extra).Run()
	})
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroup(extra)
	if err != nil {
		t.Fatal(err)
	}
	four := func(id string) string { return strings.Repeat(id+"\t", 3) + id }
	sorted := func(ids ...string) string {
		sort.Slice(ids, func(i, j int) bool { return len(ids[i]) < len(ids[j]) || len(ids[i]) == len(ids[j]) && ids[i] < ids[j] })
		return strings.Join(ids, " ")
	}
	for _, tc := range []struct {
		flags            []string
		uid, gid, groups string
	}{
		{[]string{"--user", name}, four(u.Uid), four(u.Gid), sorted(u.Gid, g.Gid)},
		// initgroups(user, GROUP): GROUP takes the place of the passwd group.
		{[]string{"--user", name + ":" + extra}, four(u.Uid), four(g.Gid), g.Gid},
		{[]string{"--group", extra}, four("0"), four(g.Gid), g.Gid},
	} {
		in := startRespawner(t, append(tc.flags, "--name", "groups", "/bin/sleep", "--", "1000")...)
		pid := in.waitFor("started", 10*time.Second).int("pid")
		st := procStatus(t, pid)
		if st["Uid"] != tc.uid || st["Gid"] != tc.gid || strings.TrimSpace(st["Groups"]) != tc.groups {
			t.Errorf("%v: Uid %q Gid %q Groups %q; want %q %q %q", tc.flags, st["Uid"], st["Gid"], st["Groups"], tc.uid, tc.gid, tc.groups)
		}
		in.stopOK()
	}
}

package runenv

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary is the shim of the ForkExec tests (/proc/self/exe), as
// respawner's binary is respawner's.
func TestMain(m *testing.M) {
	if IsShim(os.Args) {
		Shim(os.Args)
	}
	// As respawner does at start-up: what the test inherited (from a
	// shell, say) must not reach the children whose descriptors it counts.
	unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC)
	os.Exit(m.Run())
}

func TestRequestRoundTrip(t *testing.T) {
	for _, a := range []Attrs{
		{},
		{SetUmask: true, Umask: 0o27},
		{SetUmask: true, Umask: 0},
		{
			Limits: []Limit{
				{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 64, Hard: 128},
				{Name: "core", Resource: unix.RLIMIT_CORE, Soft: Unlimited, Hard: Unlimited},
			},
			User:   &User{Name: "nobody", UID: 65534, GID: 65534, Groups: []int{65534, 1}, SetUser: true},
			Dir:    "/srv/a b\nc",
			PIDEnv: []string{"WATCHDOG_PID", "LISTEN_PID"},
		},
		{User: &User{Name: "root", GID: 1, Groups: []int{1}}},
	} {
		argv := []string{"prog", "", "a b", "--x=\xff"}
		env := []string{"A=1", "B=", "C=x=y\nz"}
		r, err := parseRequest(a.request("/bin/prog", argv, env))
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		if r.path != "/bin/prog" || !reflect.DeepEqual(r.argv, argv) || !reflect.DeepEqual(r.env, env) {
			t.Fatalf("%+v: got %q %q %q", a, r.path, r.argv, r.env)
		}
		if !reflect.DeepEqual(r.attrs, a) {
			t.Fatalf("attrs: got %+v, want %+v", r.attrs, a)
		}
	}
}

func TestRequestRefused(t *testing.T) {
	good := (&Attrs{SetUmask: true, Umask: 0o22}).request("/bin/true", []string{"true"}, nil)
	for name, b := range map[string][]byte{
		"empty":           nil,
		"no NUL at end":   good[:len(good)-1],
		"other version":   append([]byte("respawner-exec 2\x00"), good[len(shimVersion)+1:]...),
		"truncated argv":  []byte(shimVersion + "\x00/bin/true\x003\x00a\x00"),
		"unknown record":  append(append([]byte{}, good...), "chroot\x00/x\x00"...),
		"umask twice":     append(append([]byte{}, good...), "umask\x0022\x00"...),
		"bad umask":       []byte(shimVersion + "\x00/bin/true\x001\x00true\x000\x00umask\x00999\x00"),
		"no program":      []byte(shimVersion + "\x00\x000\x000\x00"),
		"bad user record": []byte(shimVersion + "\x00/bin/true\x001\x00true\x000\x00user\x00x\x001\x001\x001\x001\x002\x00"),
		"huge count":      []byte(shimVersion + "\x00/bin/true\x0099999999\x00"),
	} {
		if r, err := parseRequest(b); err == nil {
			t.Errorf("%s: parsed as %+v", name, r)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add((&Attrs{}).request("/bin/true", []string{"true"}, []string{"A=1"}))
	f.Add((&Attrs{
		Limits: []Limit{{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 1, Hard: 2}},
		User:   &User{Name: "u", UID: 1, GID: 2, Groups: []int{2, 3}, SetUser: true},
		Dir:    "/", PIDEnv: []string{"P"}, SetUmask: true, Umask: 0o77,
	}).request("/bin/x", []string{"x", "y"}, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRequest(b)
		if err != nil {
			return
		}
		// What parses encodes back to the same request.
		again, err := parseRequest(r.attrs.request(r.path, r.argv, r.env))
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("round trip: %+v, want %+v", again, r)
		}
	})
}

// shimRun starts /bin/sh -c script through ForkExec with a and returns what
// it wrote to its stdout, or the start's error.
func shimRun(t *testing.T, a *Attrs, env []string, script string) (string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pidfd := -1
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: []uintptr{0, f.Fd(), 2},
		Sys:   &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	}
	pid, err := ForkExec("/bin/sh", []string{"sh", "-c", script}, attr, a)
	if err != nil {
		if pidfd != -1 {
			t.Errorf("a failed start left pidfd %d open", pidfd)
		}
		return "", err
	}
	defer unix.Close(pidfd)
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("the program ended with %v", ws)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), nil
}

func TestShimApplies(t *testing.T) {
	dir := t.TempDir()
	a := &Attrs{
		Limits: []Limit{
			{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 64, Hard: 128},
			{Name: "core", Resource: unix.RLIMIT_CORE, Soft: 0, Hard: Unlimited},
		},
		SetUmask: true, Umask: 0o27,
		Dir:    dir,
		PIDEnv: []string{"WATCHDOG_PID", "LISTEN_PID"},
	}
	got, err := shimRun(t, a, []string{"PATH=/usr/bin:/bin", "WATCHDOG_PID=1", "KEEP=yes"},
		`echo "$$ $WATCHDOG_PID $LISTEN_PID"; umask; pwd; echo "$KEEP"; grep -E "^Max (open files|core file size)" /proc/self/limits; exec ls /proc/self/fd`)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(got, "\n")
	if len(lines) < 10 {
		t.Fatalf("output %q", got)
	}
	pids := strings.Fields(lines[0])
	if len(pids) != 3 || pids[1] != pids[0] || pids[2] != pids[0] {
		t.Errorf("pid, WATCHDOG_PID, LISTEN_PID = %q, want the program's pid three times", lines[0])
	}
	if lines[1] != "0027" || lines[2] != dir || lines[3] != "yes" {
		t.Errorf("umask, dir, env = %q, %q, %q; want 0027, %s, yes", lines[1], lines[2], lines[3], dir)
	}
	if f := strings.Fields(lines[4]); len(f) < 6 || f[4] != "0" || f[5] != "unlimited" {
		t.Errorf("core limit %q, want 0 unlimited", lines[4])
	}
	if f := strings.Fields(lines[5]); len(f) < 5 || f[3] != "64" || f[4] != "128" {
		t.Errorf("nofile limit %q, want 64 128", lines[5])
	}
	// The program's descriptors are its own: the request and the report
	// are gone (ls has its directory open as 3).
	if fds := strings.Join(lines[6:], " "); fds != "0 1 2 3 " {
		t.Errorf("descriptors %q, want 0 1 2 and ls's 3", fds)
	}
}

// Without nofile, the program gets respawner's soft limit, not the one the
// shim's Go runtime raised for itself at start-up.
func TestShimKeepsNofile(t *testing.T) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	// What a child of ours gets: Go restores the soft limit it found.
	want, err := exec("/bin/sh", "-c", "ulimit -n")
	if err != nil {
		t.Fatal(err)
	}
	got, err := shimRun(t, &Attrs{SetUmask: true, Umask: 0o22}, nil, "ulimit -n")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("soft nofile through the shim %q, directly %q (hard %d)", got, want, lim.Max)
	}
}

func exec(argv ...string) (string, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer r.Close()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Files: []*os.File{nil, w, os.Stderr}})
	w.Close()
	if err != nil {
		return "", err
	}
	b := make([]byte, 256)
	n, _ := r.Read(b)
	p.Wait()
	return string(b[:n]), nil
}

// User and groups: through Go's own fork/exec alone, and through the shim
// (with a umask), the same credentials and the same reasons; a directory
// always takes the shim (NeedsShim), so only the shim's run checks one.
func TestShimUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := LookupUser("nobody", "")
	if err != nil {
		t.Skip(err)
	}
	dir := t.TempDir() // 0700, root's: nobody may not enter it
	private := filepath.Join(dir, "prog")
	if err := os.WriteFile(private, []byte("#!/bin/sh\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, shim := range []bool{false, true} {
		t.Run(fmt.Sprintf("shim=%v", shim), func(t *testing.T) {
			with := func(a Attrs) *Attrs {
				a.SetUmask, a.Umask = shim, 0o22
				if !shim {
					a.Dir = "" // a directory would take the shim
				}
				if a.NeedsShim() != shim {
					t.Fatalf("NeedsShim() = %v", !shim)
				}
				return &a
			}
			if (&Attrs{User: u, Dir: "/"}).NeedsShim() != true {
				t.Fatal("a directory does not take the shim")
			}
			got, err := shimRun(t, with(Attrs{User: u, Dir: "/"}), nil, `grep -E "^(Uid|Gid|Groups):" /proc/self/status`)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("Uid:\t%[1]d\t%[1]d\t%[1]d\t%[1]d\nGid:\t%[2]d\t%[2]d\t%[2]d\t%[2]d\nGroups:\t%[3]s \n", u.UID, u.GID, joinInts(u.Groups))
			if got != want {
				t.Fatalf("credentials:\n%s\nwant:\n%s", got, want)
			}
			if shim {
				if got, err := shimRun(t, with(Attrs{User: u, Dir: "/"}), nil, "pwd"); err != nil || got != "/\n" {
					t.Fatalf("directory: %q, %v", got, err)
				}
				_, err = shimRun(t, with(Attrs{User: u, Dir: dir}), nil, "true")
				if err == nil || err.Error() != "chdir "+dir+" as nobody: permission denied" {
					t.Fatalf("a directory nobody may not enter: %v", err)
				}
			}
			pidfd := -1
			attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{PidFD: &pidfd}}
			pid, err := ForkExec(private, []string{"prog"}, attr, with(Attrs{User: u, Dir: "/"}))
			if err == nil {
				unix.Kill(pid, unix.SIGKILL)
				unix.Wait4(pid, nil, 0, nil)
				t.Fatal("nobody ran a program only root may")
			}
			if err.Error() != "exec "+private+" as nobody: permission denied" || pidfd != -1 {
				t.Fatalf("a program nobody may not run: %v (pidfd %d)", err, pidfd)
			}
			if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
				t.Fatalf("a child is left: %v", err)
			}
		})
	}
	// --group alone: respawner's uid, that group only.
	g, err := LookupUser("", strconv.Itoa(u.GID))
	if err != nil {
		t.Fatal(err)
	}
	got, err := shimRun(t, &Attrs{User: g}, nil, `grep -E "^(Uid|Gid|Groups):" /proc/self/status`)
	if want := fmt.Sprintf("Uid:\t0\t0\t0\t0\nGid:\t%[1]d\t%[1]d\t%[1]d\t%[1]d\nGroups:\t%[1]d \n", u.GID); err != nil || got != want {
		t.Fatalf("--group alone: %q, %v; want %q", got, err, want)
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, " ")
}

func TestShimErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "plain"), []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		a    Attrs
		path string
		want string
	}{
		{"missing program", Attrs{SetUmask: true}, "/nonexistent/prog", "exec /nonexistent/prog: no such file or directory"},
		{"not executable", Attrs{SetUmask: true}, filepath.Join(dir, "plain"), "exec " + filepath.Join(dir, "plain") + ": permission denied"},
		{"missing directory", Attrs{Dir: filepath.Join(dir, "gone")}, "/bin/true", "chdir " + filepath.Join(dir, "gone") + ": no such file or directory"},
		{"missing directory, shim", Attrs{Dir: filepath.Join(dir, "gone"), SetUmask: true}, "/bin/true", "chdir " + filepath.Join(dir, "gone") + ": no such file or directory"},
		{"missing program, direct", Attrs{Dir: "/"}, "/nonexistent/prog", "exec /nonexistent/prog: no such file or directory"},
		{"hard limit above nr_open", Attrs{Limits: []Limit{{Name: "nofile", Resource: unix.RLIMIT_NOFILE, Soft: 1, Hard: Unlimited}}}, "/bin/true", "setrlimit nofile=1:unlimited: operation not permitted"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pidfd := -1
			attr := &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{PidFD: &pidfd}}
			pid, err := ForkExec(tt.path, []string{"prog"}, attr, &tt.a)
			if err == nil {
				unix.Kill(pid, unix.SIGKILL)
				unix.Wait4(pid, nil, 0, nil)
				t.Fatalf("started pid %d", pid)
			}
			if err.Error() != tt.want {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
			if pidfd != -1 {
				t.Fatalf("pidfd %d left open", pidfd)
			}
			// The shim was reaped: no child of ours is left.
			if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
				t.Fatalf("a child is left: %v", err)
			}
		})
	}
}

func TestReadReportTimeout(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	start := time.Now()
	if _, err := readReport(p[0], 50*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not start the program within") {
		t.Fatalf("readReport of a silent shim: %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Fatalf("gave up after %s", d)
	}
}

func TestLookupUser(t *testing.T) {
	u, err := LookupUser("nobody", "")
	if err != nil {
		t.Skip(err)
	}
	if !u.SetUser || u.Name != "nobody" || !contains(u.Groups, u.GID) {
		t.Fatalf("nobody = %+v", u)
	}
	if env := u.Env(); len(env) != 3 || env[0] != "HOME="+u.Home || env[1] != "USER=nobody" || env[2] != "LOGNAME=nobody" {
		t.Fatalf("Env = %q", env)
	}
	byID, err := LookupUser(strconv.Itoa(u.UID), "")
	if err != nil || byID.Name != "nobody" {
		t.Fatalf("by uid: %+v, %v", byID, err)
	}
	// USER:GROUP: the group replaces the user's own primary group.
	g, err := LookupUser("nobody:0", "")
	if err != nil {
		t.Fatal(err)
	}
	if g.GID != 0 || contains(g.Groups, u.GID) && u.GID != 0 || !contains(g.Groups, 0) {
		t.Fatalf("nobody:0 = %+v", g)
	}
	if same, err := LookupUser("nobody", "0"); err != nil || !reflect.DeepEqual(same, g) {
		t.Fatalf("--user nobody --group 0 = %+v, %v; want %+v", same, err, g)
	}
	// --group alone: respawner's user, that group only.
	if og, err := LookupUser("", "0"); err != nil || og.SetUser || og.GID != 0 || !reflect.DeepEqual(og.Groups, []int{0}) || og.Env() != nil {
		t.Fatalf("--group 0 = %+v, %v", og, err)
	}
	for spec, group := range map[string]string{
		"no-such-user-here": "", "nobody:no-such-group-here": "", "nobody:": "", ":0": "", "nobody:0": "1",
	} {
		if u, err := LookupUser(spec, group); err == nil {
			t.Errorf("LookupUser(%q, %q) = %+v", spec, group, u)
		}
	}
}

func contains(v []int, x int) bool {
	for _, y := range v {
		if y == x {
			return true
		}
	}
	return false
}

func TestParseLimit(t *testing.T) {
	for in, want := range map[string]Limit{
		"nofile=64:128":         {"nofile", unix.RLIMIT_NOFILE, 64, 128},
		"nofile=1024":           {"nofile", unix.RLIMIT_NOFILE, 1024, 1024},
		"core=unlimited":        {"core", unix.RLIMIT_CORE, Unlimited, Unlimited},
		"core=0:infinity":       {"core", unix.RLIMIT_CORE, 0, Unlimited},
		"as=1G":                 {"as", unix.RLIMIT_AS, 1 << 30, 1 << 30},
		"memlock=64K:unlimited": {"memlock", unix.RLIMIT_MEMLOCK, 64 << 10, Unlimited},
		"stack=8m":              {"stack", unix.RLIMIT_STACK, 8 << 20, 8 << 20},
		"cpu=60:120":            {"cpu", unix.RLIMIT_CPU, 60, 120},
		"nproc=100":             {"nproc", unix.RLIMIT_NPROC, 100, 100},
	} {
		got, err := ParseLimit(in)
		if err != nil || got != want {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseLimit(got.String()); err != nil || again != got {
			t.Errorf("ParseLimit(%q) = %+v, %v; want %+v", got.String(), again, err, got)
		}
	}
	for _, in := range []string{"nofile", "files=1", "nofile=", "nofile=x", "nofile=10:5", "nofile=1K", "cpu=1m", "nofile=-1", "as=99999999999T", "nofile=1:", "core=unlimited:0"} {
		if l, err := ParseLimit(in); err == nil {
			t.Errorf("ParseLimit(%q) = %+v", in, l)
		}
	}
	if (Limit{Soft: 64, Hard: 128}).Value() != "64:128" || (Limit{Soft: Unlimited, Hard: Unlimited}).Value() != "unlimited" {
		t.Error("Value")
	}
}

func TestParseUmask(t *testing.T) {
	for in, want := range map[string]uint32{"027": 0o27, "0027": 0o27, "77": 0o77, "0": 0, "777": 0o777} {
		if got, err := ParseUmask(in); err != nil || got != want {
			t.Errorf("ParseUmask(%q) = %o, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "8", "1000", "rwx", "-1", "0x1f"} {
		if _, err := ParseUmask(in); err == nil {
			t.Errorf("ParseUmask(%q) took it", in)
		}
	}
}

// A shim that did not report in time is killed and reaped (here one that
// has become a sleep, which dies as a stuck shim would).
func TestReapStuck(t *testing.T) {
	pidfd := -1
	a := &Attrs{SetUmask: true}
	pid, msg, err := startShim(a.request("/bin/sleep", []string{"sleep", "10"}, nil), &syscall.ProcAttr{Files: []uintptr{0, 1, 2}, Sys: &syscall.SysProcAttr{PidFD: &pidfd}})
	if err != nil || msg != "" || pid == 0 {
		t.Fatalf("startShim: %d %q %v", pid, msg, err)
	}
	defer unix.Close(pidfd)
	start := time.Now()
	reap(pid, pidfd, true)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("reap took %s", d)
	}
	if _, err := unix.Wait4(-1, nil, unix.WNOHANG, nil); err != unix.ECHILD {
		t.Fatalf("a child is left: %v", err)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The package as make deb builds it, once for every test here.
var made struct {
	once          sync.Once
	dir, deb, bin string
	err           error
}

// makeDeb runs make deb into a directory of its own (binaries, man pages and
// the .deb), as an operator would, and returns the .deb and the bin dir.
func makeDeb(t *testing.T) (deb, bin string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds every binary and the package")
	}
	for _, tool := range []string{"make", "git", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s: make deb needs it", tool)
		}
	}
	made.once.Do(func() {
		made.dir, made.err = os.MkdirTemp("", "respawner-deb-test-")
		if made.err != nil {
			return
		}
		made.bin = filepath.Join(made.dir, "bin")
		cmd := exec.Command("make", "-C", "../..", "deb", "BIN="+made.bin, "DIST="+filepath.Join(made.dir, "dist"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			made.err = fmt.Errorf("make deb: %v\n%s", err, out)
			return
		}
		ms, _ := filepath.Glob(filepath.Join(made.dir, "dist", "respawner_*.deb"))
		if len(ms) != 1 {
			made.err = fmt.Errorf("make deb made %v, want one respawner_*.deb\n%s", ms, out)
			return
		}
		made.deb = ms[0]
	})
	if made.err != nil {
		t.Fatal(made.err)
	}
	return made.deb, made.bin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if made.dir != "" {
		os.RemoveAll(made.dir)
	}
	os.Exit(code)
}

// flagRE finds a flag at the start of a line of --help or of a rendered man
// page: "  -D, --foreground", "       --capture-output[=false]".
var flagRE = regexp.MustCompile(`(?m)^\s+(?:(-[A-Za-z]), )?(--[a-z][a-z0-9-]*)`)

// helpFlags are the flags `respawner ARGS... --help` lists.
func helpFlags(t *testing.T, respawner string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(respawner, append(args, "--help")...).Output()
	if err != nil {
		t.Fatalf("%s %v --help: %v", respawner, args, err)
	}
	// The sections "Flags:" and "Global Flags:", each up to a blank line.
	var flags strings.Builder
	for _, sec := range strings.Split(string(out), "\n\n") {
		if head, body, ok := strings.Cut(sec, "\n"); ok && strings.HasSuffix(head, "Flags:") {
			flags.WriteString(body + "\n")
		}
	}
	if flags.Len() == 0 {
		t.Fatalf("%s %v --help has no Flags section:\n%s", respawner, args, out)
	}
	return flagsIn(flags.String())
}

func flagsIn(s string) []string {
	var fs []string
	for _, m := range flagRE.FindAllStringSubmatch(s, -1) {
		f := m[2]
		if m[1] != "" {
			f = m[1] + ", " + f
		}
		fs = append(fs, f)
	}
	slices.Sort(fs)
	return slices.Compact(fs)
}

// manFlags renders a man page with man(1), as wide as needed for no line to
// break, and returns the flags of its OPTIONS sections.
func manFlags(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("man", append([]string{"-P", "cat"}, args...)...)
	cmd.Env = append(os.Environ(), "MANWIDTH=1000", "LC_ALL=C.UTF-8", "MAN_KEEP_FORMATTING=")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("man %v: %v", args, err)
	}
	// groff may write a hyphen as U+2010 or a minus as U+2212.
	text := strings.NewReplacer("\u2010", "-", "\u2212", "-").Replace(string(out))
	var opts strings.Builder
	in := false
	for _, line := range strings.Split(text, "\n") {
		if line != "" && !strings.HasPrefix(line, " ") { // a section heading
			in = strings.HasPrefix(line, "OPTIONS")
			continue
		}
		if in {
			opts.WriteString(line + "\n")
		}
	}
	if opts.Len() == 0 {
		t.Fatalf("man %v has no OPTIONS:\n%s", args, text)
	}
	return flagsIn(opts.String())
}

// Every command's page lists exactly the flags its --help lists: the pages
// are generated from the commands, and a flag added to one is on its page.
func TestManPages(t *testing.T) {
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("no man(1): apt-get install man-db")
	}
	_, bin := makeDeb(t)
	pages, _ := filepath.Glob(filepath.Join(bin, "man", "*.1"))
	for _, want := range []string{"respawner.1", "respawner-start.1", "respawner-stop.1", "respawner-status.1", "respawner-version.1", "respawner-completion-bash.1"} {
		if !slices.Contains(pages, filepath.Join(bin, "man", want)) {
			t.Errorf("make man wrote no %s (it wrote %v)", want, pages)
		}
	}
	for _, p := range pages {
		args := strings.Split(strings.TrimSuffix(filepath.Base(p), ".1"), "-")[1:]
		got, want := manFlags(t, "-l", p), helpFlags(t, filepath.Join(bin, "respawner"), args...)
		if !slices.Equal(got, want) {
			t.Errorf("%s lists the flags\n%q\nrespawner %s --help lists\n%q", filepath.Base(p), got, strings.Join(args, " "), want)
		}
	}
	// Plain text, not Markdown: underscores stay.
	cmd := exec.Command("man", "-P", "cat", "-l", filepath.Join(bin, "man", "respawner-start.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=1000")
	if out, _ := cmd.Output(); !bytes.Contains(out, []byte("NOTIFY_SOCKET")) {
		t.Errorf("respawner-start(1) lost NOTIFY_SOCKET's underscore:\n%s", out)
	}
}

// dpkgLock serialises the tests that install the package, this one in
// other checkouts on the same machine included.
const (
	dpkgLock = "/run/lock/respawner-deb-test.lock"
	// installedMark says that the installed respawner package is this
	// test's: a run that died before its purge left it, and the next run
	// purges it.
	installedMark = "/var/tmp/respawner-deb-test.installed"
)

// The package, for real: lintian finds no error or warning; dpkg -i puts
// every file where it belongs; the installed respawner, from the installed
// paths alone, supervises lighttpd with the installed healthcheck-http
// plugin until it is healthy, and stops it; the unit template's command
// line runs under a stand-in for systemd's notify protocol; the man pages
// and the bash completion load as a user's would; dpkg --purge leaves no
// file and no process behind.
func TestDebInstall(t *testing.T) {
	if os.Getenv("RESPAWNER_TEST_DPKG") != "1" {
		// It installs into /usr, where other packages' tests running at
		// the same time (go test runs packages in parallel) look for
		// plugins and the hook host: make test runs it alone, after them.
		t.Skip("installs into /usr: make test runs it on its own after the other tests (RESPAWNER_TEST_DPKG=1)")
	}
	if os.Geteuid() != 0 {
		t.Skip("dpkg -i needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		t.Skip("no dpkg: not a Debian system")
	}
	deb, _ := makeDeb(t)
	lockDpkg(t)
	refuseForeignInstall(t)

	if _, err := exec.LookPath("lintian"); err != nil {
		t.Fatal("lintian is not installed: apt-get install lintian (.ci/run does)")
	}
	if out, err := exec.Command("lintian", "--fail-on", "error,warning", deb).CombinedOutput(); err != nil {
		t.Fatalf("lintian %s: %v\n%s", filepath.Base(deb), err, out)
	}

	if err := os.WriteFile(installedMark, []byte(deb+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	purged := false
	t.Cleanup(func() {
		if !purged {
			purge(t)
		}
	})
	if out, err := exec.Command("dpkg", "-i", deb).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, out)
	}
	out, err := exec.Command("dpkg-query", "-L", "respawner").Output()
	if err != nil {
		t.Fatalf("dpkg-query -L respawner: %v", err)
	}
	files := strings.Fields(string(out))
	for _, f := range []string{
		"/usr/bin/respawner", "/usr/lib/respawner/respawner-hookhost",
		"/usr/lib/respawner/plugins/respawner-plugin-healthcheck-http",
		"/usr/lib/respawner/plugins/respawner-plugin-notify-email",
		"/usr/lib/respawner/plugins/respawner-plugin-notify-webhook",
		"/usr/share/man/man1/respawner.1.gz", "/usr/share/man/man1/respawner-start.1.gz",
		"/usr/share/bash-completion/completions/respawner",
		"/usr/share/zsh/vendor-completions/_respawner",
		"/usr/share/fish/vendor_completions.d/respawner.fish",
		"/usr/lib/systemd/system/respawner@.service",
		"/usr/share/doc/respawner/copyright", "/usr/share/doc/respawner/changelog.gz",
		"/usr/share/doc/respawner/changelog.Debian.gz", "/usr/share/doc/respawner/README.md",
		"/usr/share/doc/respawner/docs/design.md",
		"/usr/share/doc/respawner/examples/hooks/maintenance/main.go",
		"/usr/share/doc/respawner/examples/respawner.conf",
	} {
		if !slices.Contains(files, f) {
			t.Errorf("the package has no %s", f)
		} else if _, err := os.Stat(f); err != nil {
			t.Errorf("installed: %v", err)
		}
	}

	// The installed binary says which source it is, as the package does.
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	v, err := exec.Command("/usr/bin/respawner", "version").Output()
	if err != nil || !strings.Contains(string(v), "(commit "+strings.TrimSpace(string(head))) {
		t.Errorf("/usr/bin/respawner version: %q, %v; want the commit %s", v, err, head)
	}

	t.Run("lighttpd", testInstalledLighttpd)
	t.Run("unit", testUnitTemplate)
	t.Run("man", func(t *testing.T) {
		got, want := manFlags(t, "respawner-start"), helpFlags(t, "/usr/bin/respawner", "start")
		if !slices.Equal(got, want) {
			t.Errorf("man respawner-start lists the flags\n%q\nrespawner start --help lists\n%q", got, want)
		}
		if len(want) < 30 {
			t.Errorf("respawner start --help lists %d flags, fewer than it has: %q", len(want), want)
		}
	})
	t.Run("bash-completion", testBashCompletion)

	purge(t)
	purged = true
	for _, f := range files {
		if fi, err := os.Lstat(f); err == nil && !fi.IsDir() {
			t.Errorf("dpkg --purge left %s", f)
		}
	}
	for _, d := range []string{"/usr/lib/respawner", "/usr/share/doc/respawner", "/var/lib/dpkg/info/respawner.list"} {
		if _, err := os.Lstat(d); err == nil {
			t.Errorf("dpkg --purge left %s", d)
		}
	}
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status}", "respawner").Output(); err == nil && string(out) != "not-installed" {
		t.Errorf("after dpkg --purge, dpkg-query says respawner is %q", out)
	}
	noProcessesLeft(t, "purge")
}

// lockDpkg waits for the other installing tests of this machine.
func lockDpkg(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile(dpkgLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // and with it the lock
	deadline := time.Now().Add(5 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("%s is held by another run for 5 minutes", dpkgLock)
		}
		time.Sleep(time.Second) // another run is installing; nothing to wait on but the lock
	}
}

// refuseForeignInstall skips the test when respawner is installed by
// someone else (a package, or make install PREFIX=/usr), which dpkg -i and
// --purge would replace and remove; a package left by an earlier run of this
// test is purged.
func refuseForeignInstall(t *testing.T) {
	t.Helper()
	out, _ := exec.Command("dpkg-query", "-W", "-f", "${db:Status-Status} ${Version}", "respawner").Output()
	status := string(out)
	if status != "" && !strings.HasPrefix(status, "not-installed") && !strings.HasPrefix(status, "config-files") {
		if _, err := os.Stat(installedMark); err != nil {
			t.Skipf("a respawner package (%s) is installed, not by this test: it is left alone", status)
		}
		t.Logf("purging the respawner package (%s) an earlier run of this test left", status)
		purge(t)
	} else if strings.HasPrefix(status, "config-files") {
		purge(t)
	}
	for _, p := range []string{"/usr/bin/respawner", "/usr/lib/respawner"} {
		if _, err := os.Lstat(p); err == nil {
			t.Skipf("%s exists outside any package (make install PREFIX=/usr?): dpkg -i would replace it", p)
		}
	}
}

func purge(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("dpkg", "--purge", "respawner").CombinedOutput(); err != nil {
		t.Errorf("dpkg --purge respawner: %v\n%s", err, out)
		return
	}
	os.Remove(installedMark)
}

// noProcessesLeft fails the test when processes of the package are still
// there a few seconds after what should have ended them (a keeper exits
// just after its instance's stop returns).
func noProcessesLeft(t *testing.T, after string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for ps := installedProcesses(); len(ps) > 0; ps = installedProcesses() {
		if time.Now().After(deadline) {
			t.Errorf("processes of the package left after %s: %v", after, ps)
			return
		}
		time.Sleep(50 * time.Millisecond) // exits of processes not ours to wait for
	}
}

// installedProcesses lists the processes that run a binary of the package.
func installedProcesses() []string {
	var ps []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil {
			continue
		}
		if strings.HasPrefix(exe, "/usr/bin/respawner") || strings.HasPrefix(exe, "/usr/lib/respawner/") {
			ps = append(ps, e.Name()+" "+exe)
		}
	}
	return ps
}

// site is a lighttpd of the test's own: a free port on 127.0.0.1, its own
// document root, pidfile and error log.
type site struct{ dir, conf, pidfile, url string }

func newSite(t *testing.T) site {
	t.Helper()
	if _, err := os.Stat("/usr/sbin/lighttpd"); err != nil {
		t.Fatal("lighttpd is not installed: apt-get install lighttpd (.ci/run does)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	s := site{dir: dir, conf: filepath.Join(dir, "lighttpd.conf"), pidfile: filepath.Join(dir, "lighttpd.pid"), url: fmt.Sprintf("http://127.0.0.1:%d/", port)}
	os.WriteFile(filepath.Join(dir, "index.html"), []byte("hello\n"), 0o644)
	conf := fmt.Sprintf("server.document-root = %q\nserver.bind = \"127.0.0.1\"\nserver.port = %d\nserver.pid-file = %q\nserver.errorlog = %q\nindex-file.names = (\"index.html\")\n",
		dir, port, s.pidfile, filepath.Join(dir, "error.log"))
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s site) get() int {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// installedEnv is an environment in which respawner finds nothing but what
// the package installed: no plugin path, a runtime dir of the test's own
// (other runs on this machine use /run/respawner), lighttpd in PATH.
func installedEnv(t *testing.T) (env []string, rundir string) {
	rundir = t.TempDir()
	if err := os.Chmod(rundir, 0o700); err != nil { // respawner refuses a runtime dir open to others
		t.Fatal(err)
	}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); !strings.HasPrefix(k, "RESPAWNER_") && k != "PATH" && k != "NOTIFY_SOCKET" {
			env = append(env, kv)
		}
	}
	return append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "RESPAWNER_RUNTIME_DIR="+rundir), rundir
}

type status struct {
	State        string `json:"state"`
	PID          int    `json:"pid"`
	Health       string `json:"health"`
	RespawnerPID int    `json:"respawner_pid"`
	LastProbe    string `json:"last_probe"`
}

func statusOf(t *testing.T, env []string, name string) status {
	t.Helper()
	cmd := exec.Command("/usr/bin/respawner", "status", "--json", name)
	cmd.Env = env
	out, _ := cmd.Output()
	var st status
	json.Unmarshal(out, &st)
	return st
}

// waitHealthy waits, generously, for the instance to be running and its
// probe to pass: the probe's timing is the plugin's to choose.
func waitHealthy(t *testing.T, env []string, name string) status {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		st := statusOf(t, env, name)
		if st.State == "running" && st.Health == "healthy" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become running and healthy in 90s: %+v", name, st)
		}
		time.Sleep(200 * time.Millisecond) // polled as an operator's script would
	}
}

// The command, from the installed paths: respawner finds its host
// in /usr/lib/respawner and the plugin in /usr/lib/respawner/plugins.
func testInstalledLighttpd(t *testing.T) {
	s := newSite(t)
	env, _ := installedEnv(t)
	start := exec.Command("/usr/bin/respawner", "start", "--plugin", "healthcheck-http:url="+s.url+",interval=1s,timeout=500ms", "lighttpd", "--", "-f", s.conf)
	start.Env = env
	if out, err := start.CombinedOutput(); err != nil {
		t.Fatalf("respawner start --plugin healthcheck-http lighttpd -- -f %s: %v\n%s", s.conf, err, out)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			stop := exec.Command("/usr/bin/respawner", "stop", "lighttpd")
			stop.Env = env
			stop.Run()
		}
	})
	st := waitHealthy(t, env, "lighttpd")
	if code := s.get(); code != 200 {
		t.Errorf("GET %s: %d, want 200", s.url, code)
	}
	// The host and the plugin that run are the installed ones.
	exes := map[string]bool{}
	for _, p := range installedProcesses() {
		exes[strings.Fields(p)[1]] = true
	}
	for _, want := range []string{"/usr/bin/respawner", "/usr/lib/respawner/respawner-hookhost", "/usr/lib/respawner/plugins/respawner-plugin-healthcheck-http"} {
		if !exes[want] {
			t.Errorf("no process runs %s (running: %v)", want, exes)
		}
	}
	lighttpdPID := st.PID

	stop := exec.Command("/usr/bin/respawner", "stop", "lighttpd")
	stop.Env = env
	if out, err := stop.CombinedOutput(); err != nil {
		t.Fatalf("respawner stop lighttpd: %v\n%s", err, out)
	}
	stopped = true
	if err := syscall.Kill(lighttpdPID, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("lighttpd (pid %d) is still there after stop: %v", lighttpdPID, err)
	}
	noProcessesLeft(t, "stop")
	if s.get() != 0 {
		t.Errorf("%s still answers after stop", s.url)
	}
}

// The unit template's command line, expanded as systemd does from an
// /etc/respawner/NAME.conf written after the shipped example, under a
// stand-in for systemd's side of the notify protocol: respawner says
// READY=1, the program gets healthy, SIGTERM (systemctl stop) ends it all
// with exit 0.
func testUnitTemplate(t *testing.T) {
	const unit = "/usr/lib/systemd/system/respawner@.service"
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		// verify wants an instance: the template under an instance's name.
		dir := t.TempDir()
		b, _ := os.ReadFile(unit)
		inst := filepath.Join(dir, "respawner@debtest.service")
		os.WriteFile(inst, b, 0o644)
		if out, err := exec.Command(sa, "verify", inst).CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}

	s := newSite(t)
	example, err := os.ReadFile("/usr/share/doc/respawner/examples/respawner.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.NewReplacer("/etc/lighttpd/lighttpd.conf", s.conf, "http://127.0.0.1:80/", s.url).Replace(string(example))
	if conf == string(example) {
		t.Fatal("the example respawner.conf no longer names /etc/lighttpd/lighttpd.conf and port 80: change the test with it")
	}
	vars := environmentFile(t, conf)
	argv := execStart(t, unit, "debtest", vars)
	want := []string{"/usr/bin/respawner", "start", "-D", "--name", "debtest"}
	if !slices.Equal(argv[:len(want)], want) || !slices.Contains(argv, "/usr/sbin/lighttpd") {
		t.Fatalf("ExecStart expands to %q", argv)
	}

	env, _ := installedEnv(t)
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env = append(env, "NOTIFY_SOCKET="+sock)

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			<-done
		}
	}()

	ready := make(chan error, 1)
	go func() {
		conn.SetReadDeadline(time.Now().Add(time.Minute))
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				ready <- err
				return
			}
			if slices.Contains(strings.Split(string(buf[:n]), "\n"), "READY=1") {
				ready <- nil
				return
			}
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatalf("no READY=1 from respawner@debtest: %v\n%s", err, stderr.String())
		}
	case err := <-done:
		t.Fatalf("respawner@debtest exited before READY=1: %v\n%s", err, stderr.String())
	}
	waitHealthy(t, env, "debtest")
	if code := s.get(); code != 200 {
		t.Errorf("GET %s under the unit: %d", s.url, code)
	}

	cmd.Process.Signal(syscall.SIGTERM) // what systemctl stop sends (KillMode=mixed: respawner alone)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("respawner@debtest after SIGTERM: %v, want exit 0\n%s", err, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("respawner@debtest did not exit within a minute of SIGTERM\n%s", stderr.String())
	}
	noProcessesLeft(t, "the unit's stop")
}

// environmentFile reads systemd's EnvironmentFile= syntax, as much of it as
// the example uses: KEY=VALUE lines, # and ; comments, quotes around a value.
func environmentFile(t *testing.T, text string) map[string]string {
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok || strings.HasSuffix(l, `\`) {
			t.Fatalf("the example conf has a line this test cannot read as systemd would: %q", l)
		}
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		vars[strings.TrimSpace(k)] = v
	}
	return vars
}

// execStart expands the unit's ExecStart= for instance as systemd does:
// %i is the instance; a word that is $VAR alone becomes the variable's
// value split at white space (no word when empty); ${VAR} inside a word is
// replaced as it is.
func execStart(t *testing.T, unit, instance string, vars map[string]string) []string {
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart="); ok {
			line = v
		}
	}
	if line == "" || strings.HasSuffix(line, `\`) || strings.ContainsAny(line, `"'`) {
		t.Fatalf("ExecStart= of %s is %q: this test expands one line without quotes", unit, line)
	}
	line = strings.ReplaceAll(line, "%i", instance)
	braced := regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)
	var argv []string
	for _, w := range strings.Fields(line) {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			argv = append(argv, strings.Fields(vars[w[1:]])...)
			continue
		}
		argv = append(argv, braced.ReplaceAllStringFunc(w, func(m string) string { return vars[m[2:len(m)-1]] }))
	}
	return argv
}

// The installed bash completion loads as Debian's bash-completion loads
// it, on demand, and completes with the installed respawner.
func testBashCompletion(t *testing.T) {
	const lib = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(lib); err != nil {
		t.Fatal("bash-completion is not installed: apt-get install bash-completion (.ci/run does)")
	}
	script := `source ` + lib + `
_completion_loader respawner
complete -p respawner
COMP_WORDS=(respawner sta); COMP_CWORD=1; COMP_LINE="respawner sta"; COMP_POINT=${#COMP_LINE}
__start_respawner respawner sta respawner
printf 'reply:%s\n' "${COMPREPLY[@]}"`
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH=/usr/bin:/bin")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^complete .*-F __start_respawner respawner$`).Match(out) {
		t.Errorf("complete -p respawner after _completion_loader:\n%s", out)
	}
	var reply []string
	for _, l := range strings.Split(string(out), "\n") {
		if r, ok := strings.CutPrefix(l, "reply:"); ok {
			reply = append(reply, strings.TrimSpace(r))
		}
	}
	if !slices.Contains(reply, "start") || !slices.Contains(reply, "status") {
		t.Errorf("respawner sta<Tab> completes to %q, want start and status\n%s", reply, out)
	}
}

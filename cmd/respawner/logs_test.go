package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// logFiles lists NAME.log and its rotated files in dir, with their sizes.
func logFiles(t *testing.T, dir, name string) map[string]int64 {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]int64{}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), name+".log") {
			if fi, err := e.Info(); err == nil {
				files[e.Name()] = fi.Size()
			}
		}
	}
	return files
}

// A daemon's NAME.log is rotated by size: a program that writes far more
// than the cap leaves NAME.log, NAME.log.1 and NAME.log.2 (--log-max-files
// 2) and nothing more, none of them above the cap (no log line is longer
// than the cap here), and status says where the log is.
func TestLogRotatesBySize(t *testing.T) {
	dir := runtimeDir(t)
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", filepath.Join(t.TempDir(), "no-syslog")) // log to NAME.log
	const max = 16 << 10
	prog := script(t, t.TempDir(), "chatty.sh", "i=0\nwhile [ $i -lt 4000 ]; do i=$((i+1)); echo \"line $i of the chatty program\"; done\nexec sleep 1000")
	startDaemon(t, dir, "chatty", "--log-max-size", "16K", "--log-max-files", "2", prog)
	st, _ := statusOf(t, dir, "chatty")
	if want := filepath.Join(dir, "chatty.log"); st.Log != want {
		t.Errorf("status --json: log %q, want %q", st.Log, want)
	}
	if r := respawner(t, dir, "status", "chatty"); !strings.Contains(r.stdout, ", log "+filepath.Join(dir, "chatty.log")+")") {
		t.Errorf("status: %q does not say where the log is", r.stdout)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		files := logFiles(t, dir, "chatty")
		for f, size := range files {
			if size > max {
				t.Fatalf("%s holds %d bytes, over the cap of %d", f, size, max)
			}
		}
		if _, ok := files["chatty.log.2"]; ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second rotation within 20s: %v", files)
		}
		time.Sleep(20 * time.Millisecond) // the test looks as an operator would; respawner does not poll
	}
	// 4000 lines of ~80 bytes are 20 caps' worth: rotated many times over.
	b, _ := os.ReadFile(filepath.Join(dir, "chatty.log"))
	eventually(t, 20*time.Second, "last line of the program in the log", func() bool {
		b, _ = os.ReadFile(filepath.Join(dir, "chatty.log"))
		return strings.Contains(string(b), "line 4000 of the chatty program") || strings.Contains(string(b), "log lines dropped")
	})
	if r := respawner(t, dir, "stop", "chatty"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	files := logFiles(t, dir, "chatty")
	var names []string
	for f, size := range files {
		names = append(names, f)
		if size > max {
			t.Errorf("%s holds %d bytes, over the cap of %d", f, size, max)
		}
	}
	slices.Sort(names)
	if want := []string{"chatty.log", "chatty.log.1", "chatty.log.2"}; !slices.Equal(names, want) {
		t.Errorf("log files %v, want %v", names, want)
	}
}

// Bad rotation settings are bad usage: exit 2, one line that says what is
// wrong.
func TestLogRotationFlagsChecked(t *testing.T) {
	dir := runtimeDir(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"--log-max-size", "10X"}, `"10X" is not a size: want bytes with an optional K, M or G suffix, such as 10M`},
		{[]string{"--log-max-size", "-1M"}, `"-1M" is not a size`},
		{[]string{"--log-max-files", "-1"}, "invalid --log-max-files -1"},
	} {
		r := respawner(t, dir, append(append([]string{"start", "-D"}, tt.args...), "/bin/true")...)
		if r.code != 2 || !strings.Contains(r.stderr, tt.want) || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("%v: exit %d %q, want 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

func TestSizeFlag(t *testing.T) {
	for in, want := range map[string]int64{"0": 0, "100": 100, "512K": 512 << 10, "10M": 10 << 20, "1G": 1 << 30, "10m": 10 << 20, "4KiB": 4 << 10, "2MB": 2 << 20} {
		var v sizeValue
		if err := v.Set(in); err != nil || int64(v) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, v, err, want)
		}
	}
	for _, in := range []string{"", "M", "1.5M", "1T", "x", "-5", "99999999999G"} {
		var v sizeValue
		if err := v.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, v)
		}
	}
	for v, want := range map[sizeValue]string{0: "0", 100: "100", 10 << 20: "10M", 512 << 10: "512K", 1 << 30: "1G", 1536: "1536"} {
		if got := v.String(); got != want {
			t.Errorf("String(%d) = %q, want %q", int64(v), got, want)
		}
	}
}

// feeder is a daemon instance whose program is cat reading a FIFO: every
// line the test writes to it lands in the instance's log.
type feeder struct {
	t    *testing.T
	dir  string
	name string
	w    *os.File
	n    int
}

func startFeeder(t *testing.T, dir, name string, args ...string) *feeder {
	t.Helper()
	fifo := filepath.Join(t.TempDir(), "in")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, name, append(append(args, "--start-check", "0"), "/bin/cat", "--", fifo)...)
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // waits for cat to open it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return &feeder{t: t, dir: dir, name: name, w: w}
}

// say has the program write the next numbered line, and returns it.
func (f *feeder) say() string {
	f.t.Helper()
	f.n++
	line := fmt.Sprintf("message %d %s", f.n, strings.Repeat(".", 40))
	if _, err := fmt.Fprintln(f.w, line); err != nil {
		f.t.Fatal(err)
	}
	return line
}

// follow runs `respawner logs -f ARGS` and returns its output lines as they come.
func follow(t *testing.T, dir string, args ...string) (<-chan string, *syncBuilder, *exec.Cmd) {
	t.Helper()
	cmd := exec.Command(respawnerBin, append([]string{"logs", "-f"}, args...)...)
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
	stderr := &syncBuilder{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("logs -f said on stderr: %q", stderr.String())
			if b, err := exec.Command("ls", "-li", dir).CombinedOutput(); err == nil {
				t.Logf("runtime dir:\n%s", b)
			}
		}
	})
	return lines, stderr, cmd
}

// next returns the next line that contains want, failing after timeout or
// on a line of the program's that comes out of order.
func next(t *testing.T, lines <-chan string, want string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("logs -f ended before %q", want)
			}
			if strings.Contains(l, want) {
				return l
			}
			if strings.Contains(l, "message ") && strings.Contains(want, "message ") {
				t.Fatalf("logs -f printed %q while %q was due", l, want)
			}
		case <-timer.C:
			t.Fatalf("logs -f did not print %q within %s", want, timeout)
		}
	}
}

// logs -f prints every line once and in order, across respawner's own
// rotations by size, logrotate's move-and-HUP (the lines written to the
// moved file before the SIGHUP too) and copytruncate.
func TestLogsFollowAcrossRotation(t *testing.T) {
	dir := runtimeDir(t)
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", filepath.Join(t.TempDir(), "no-syslog")) // log to NAME.log
	f := startFeeder(t, dir, "fed", "--log-max-size", "1K", "--log-max-files", "30")
	logPath := filepath.Join(dir, "fed.log")
	first := f.say()
	eventually(t, 10*time.Second, "line of the program in the log", func() bool { return strings.Contains(fileText(logPath), first) })
	lines, stderr, follower := follow(t, dir, "-n", "1", "fed")
	next(t, lines, first, 10*time.Second) // the last line: logs -f now watches

	// About 10 lines fill 1K: many rotations by respawner.
	for range 150 {
		next(t, lines, f.say(), 10*time.Second)
	}
	if _, err := os.Stat(logPath + ".2"); err != nil {
		t.Fatalf("the log was not rotated twice: %v", err)
	}
	// A burst while logs -f is stopped: several files' worth, rotated
	// through before it reads again; it reads the files it skipped.
	follower.Process.Signal(syscall.SIGSTOP)
	var burst []string
	for range 100 {
		burst = append(burst, f.say())
	}
	eventually(t, 10*time.Second, "end of the burst in the log", func() bool { return strings.Contains(fileText(logPath), burst[99]) })
	follower.Process.Signal(syscall.SIGCONT)
	for _, l := range burst {
		next(t, lines, l, 10*time.Second)
	}

	// logrotate: move, then SIGHUP. respawner writes to the moved file
	// until it reopens.
	st, _ := statusOf(t, dir, "fed")
	if err := os.Rename(logPath, logPath+"-20261130"); err != nil {
		t.Fatal(err)
	}
	next(t, lines, f.say(), 10*time.Second)
	if err := syscall.Kill(st.RespawnerPID, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next(t, lines, "log reopened on SIGHUP", 10*time.Second)
	next(t, lines, f.say(), 10*time.Second)
	if b, _ := os.ReadFile(logPath); !strings.Contains(string(b), fmt.Sprintf("message %d ", f.n)) {
		t.Fatalf("after the SIGHUP the line went elsewhere than a new %s", logPath)
	}

	// copytruncate: the file is emptied under respawner.
	if err := os.Truncate(logPath, 0); err != nil {
		t.Fatal(err)
	}
	next(t, lines, f.say(), 10*time.Second)
	for range 60 { // and rotations by size after it
		next(t, lines, f.say(), 10*time.Second)
	}
	if !strings.Contains(stderr.String(), "was truncated") {
		t.Errorf("logs -f did not say the log was truncated: %q", stderr.String())
	}
	if r := respawner(t, dir, "stop", "fed"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	next(t, lines, "stopped", 10*time.Second)
}

// logs prints the last lines of a running instance and of one that has
// stopped (its NAME.log, saying on stderr that it is not running), exits 3
// for a name that never ran, 2 for a bad -n.
func TestLogsShowsLastLines(t *testing.T) {
	dir := runtimeDir(t)
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", filepath.Join(t.TempDir(), "no-syslog")) // log to NAME.log
	f := startFeeder(t, dir, "tail")
	var said []string
	for range 30 {
		said = append(said, f.say())
	}
	eventually(t, 10*time.Second, "lines of the program in the log", func() bool {
		return strings.Contains(fileText(filepath.Join(dir, "tail.log")), said[29])
	})
	check := func(r result, n int) {
		t.Helper()
		got := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || len(got) != n {
			t.Fatalf("logs: exit %d, %d lines, want 0 and %d:\n%s%s", r.code, len(got), n, r.stdout, r.stderr)
		}
		for i, l := range got {
			if want := "tail: " + said[30-n+i]; !strings.HasSuffix(l, want) {
				t.Fatalf("line %d is %q, want it to end in %q", i, l, want)
			}
		}
	}
	check(respawner(t, dir, "logs", "tail"), 10)
	check(respawner(t, dir, "logs", "-n", "3", "/usr/local/bin/tail"), 3) // NAME|PROGRAM, as stop and status

	f.w.Close() // cat ends cleanly: so does the instance
	eventually(t, 10*time.Second, "end of the instance", func() bool { _, live := control.Live(dir, "tail"); return !live })
	r := respawner(t, dir, "logs", "-n", "2", "tail")
	if r.code != 0 || !strings.Contains(r.stdout, "respawner.tail: exited") || !strings.Contains(r.stderr, "tail is not running; its log is "+filepath.Join(dir, "tail.log")) {
		t.Fatalf("logs of the stopped instance: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := respawner(t, dir, "logs", "never"); r.code != 3 || !strings.Contains(r.stderr, "never is not running, and there is no never.log in "+dir) {
		t.Fatalf("logs of an unknown name: exit %d %q", r.code, r.stderr)
	}
	if r := respawner(t, dir, "logs", "-n", "-3", "tail"); r.code != 2 || !strings.Contains(r.stderr, "invalid -n -3") {
		t.Fatalf("logs -n -3: exit %d %q", r.code, r.stderr)
	}
}

// An instance without a log file says where its lines are, exit 1: a
// daemon on syslog (status: "syslog") prints the command that shows them,
// one in the foreground with stderr on a pipe says so. In the foreground
// with --log-file, logs shows the file.
func TestLogsWithoutAFile(t *testing.T) {
	dir := runtimeDir(t)
	fakeSyslog(t)
	startDaemon(t, dir, "sl", "/bin/sleep", "--", "1000")
	if st, _ := statusOf(t, dir, "sl"); st.Log != "syslog" {
		t.Errorf("status: log %q, want syslog", st.Log)
	}
	r := respawner(t, dir, "logs", "-n", "5", "sl")
	want := "sl logs to syslog (tag sl), not to a file: "
	if _, err := exec.LookPath("journalctl"); err == nil {
		want += "journalctl -t sl -n 5"
	} else {
		want += "grep 'sl\\[' /var/log/syslog | tail -n 5"
	}
	if r.code != 1 || r.stdout != "" || strings.TrimSpace(r.stderr) != "respawner: "+want {
		t.Errorf("logs of a syslog instance: exit %d %q %q, want 1 and %q", r.code, r.stdout, r.stderr, want)
	}
	respawner(t, dir, "stop", "sl")

	in := startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "RESPAWNER_RUNTIME_DIR="+dir) }, "start", "-D", "--name", "fg", "/bin/sleep", "--", "1000")
	waitState(t, dir, "fg", "running", 0, 10*time.Second)
	if r := respawner(t, dir, "logs", "fg"); r.code != 1 || !strings.Contains(r.stderr, "fg runs in the foreground (respawner pid ") {
		t.Errorf("logs of a foreground instance: exit %d %q", r.code, r.stderr)
	}
	in.stopOK()

	file := filepath.Join(t.TempDir(), "fg.log")
	in = startWith(t, nil, func(c *exec.Cmd) { c.Env = append(c.Env, "RESPAWNER_RUNTIME_DIR="+dir) }, "start", "-D", "--log-file", file, "--name", "fg", "/bin/sleep", "--", "1000")
	st := waitState(t, dir, "fg", "running", 0, 10*time.Second)
	if st.Log != file {
		t.Errorf("status: log %q, want %q", st.Log, file)
	}
	if r := respawner(t, dir, "logs", "-n", "1", "fg"); r.code != 0 || !strings.Contains(r.stdout, "respawner.fg: started: pid=") {
		t.Errorf("logs with --log-file: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	in.stopOK()
}

// syncBuilder is a strings.Builder that a command writes while a test reads.
type syncBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuilder) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuilder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLastLines checks lastLines against the obvious reference: files
// with and without a last newline, shorter than n, empty, and lines across
// its 64 KiB chunks.
func TestLastLines(t *testing.T) {
	ref := func(s string, n int) string {
		if n <= 0 || s == "" {
			return ""
		}
		lines := strings.SplitAfter(s, "\n")
		if lines[len(lines)-1] == "" {
			lines = lines[:len(lines)-1]
		}
		return strings.Join(lines[max(len(lines)-n, 0):], "")
	}
	var long strings.Builder
	for i := range 20000 { // about 200 KiB: lines across chunk boundaries
		fmt.Fprintf(&long, "line %d %s\n", i, strings.Repeat("x", i%7))
	}
	for _, content := range []string{"", "\n", "one", "one\n", "a\nb\nc", "a\nb\nc\n", "\n\n\n", long.String(), long.String() + "tail"} {
		p := filepath.Join(t.TempDir(), "log")
		os.WriteFile(p, []byte(content), 0o644)
		for _, n := range []int{0, 1, 2, 3, 10, 4000, 20001, 30000} {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			got, end, err := lastLines(f, n)
			f.Close()
			if err != nil || string(got) != ref(content, n) || end != int64(len(content)) {
				t.Fatalf("lastLines(%d bytes, %d) = %d bytes (end %d, %v), want %d bytes", len(content), n, len(got), end, err, len(ref(content, n)))
			}
		}
	}
}

// TestLogsAfterARotation: right after a rotation NAME.log holds fewer than
// -n lines, and logs fills in the rest from NAME.log.1, in order.
func TestLogsAfterARotation(t *testing.T) {
	dir := runtimeDir(t)
	os.WriteFile(filepath.Join(dir, "rot.log.1"), []byte("1\n2\n3\n4\n5\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "rot.log"), []byte("6\n7\n"), 0o600)
	r := respawner(t, dir, "logs", "-n", "4", "rot")
	if r.code != 0 || r.stdout != "4\n5\n6\n7\n" {
		t.Errorf("logs -n 4 after a rotation: exit %d %q (stderr %q), want 4 to 7", r.code, r.stdout, r.stderr)
	}
}

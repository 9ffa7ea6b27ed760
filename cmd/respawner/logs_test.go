package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
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
	if err := waitFor(func() bool {
		b, _ = os.ReadFile(filepath.Join(dir, "chatty.log"))
		return strings.Contains(string(b), "line 4000 of the chatty program") || strings.Contains(string(b), "log lines dropped")
	}, 20*time.Second); err != nil {
		t.Fatalf("the program's last line never reached the log: %s", b)
	}
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

// waitFor waits, looking every 20 ms as an operator would, for cond.
func waitFor(cond func() bool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return os.ErrDeadlineExceeded
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
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

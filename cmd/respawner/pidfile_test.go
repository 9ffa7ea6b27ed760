package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

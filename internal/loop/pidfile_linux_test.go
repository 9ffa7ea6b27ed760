package loop

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParsePidfile(t *testing.T) {
	tests := []struct {
		in   string
		want int // 0: refused
	}{
		{"4242\n", 4242},
		{"4242", 4242},
		{"4242 \r\n\n", 4242},
		{"1\n", 1},
		{"2147483647\n", 2147483647},
		{"", 0},
		{"\n", 0},
		{"0\n", 0},
		{"-1\n", 0},
		{"+12\n", 0},
		{" 12\n", 0},
		{"12 13\n", 0},
		{"12\nserver.port = 80\n", 0},
		{"2147483648\n", 0},
		{"99999999999\n", 0},
		{"0x10\n", 0},
		{"12\x00", 0},
		{"12" + strings.Repeat(" ", maxPidfile), 0},
		{"server.document-root = \"/var/www/html\"\n", 0},
	}
	for _, tt := range tests {
		pid, err := parsePidfile([]byte(tt.in))
		if pid != tt.want || (err == nil) != (tt.want != 0) {
			t.Errorf("parsePidfile(%q) = %d, %v; want %d", tt.in, pid, err, tt.want)
		}
	}
}

// FuzzParsePidfile: whatever sits at a -p path, parsePidfile accepts only
// the canonical shape, a pid and trailing whitespace, in a few bytes.
func FuzzParsePidfile(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		pid, err := parsePidfile(b)
		if err != nil {
			if pid != 0 {
				t.Fatalf("%q: pid %d with error %v", b, pid, err)
			}
			return
		}
		s := strings.TrimRight(string(b), " \t\r\n")
		if pid <= 0 || len(b) > maxPidfile || strings.TrimLeft(s, "0123456789") != "" {
			t.Fatalf("%q accepted as pid %d", b, pid)
		}
		if n, _ := strconv.Atoi(s); n != pid {
			t.Fatalf("%q parsed as %d", b, pid)
		}
	})
}

// A named pipe at the -p path is refused without opening it: an open or a
// read would block the loop for as long as nobody writes to it.
func TestPidfileFIFORefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.pid")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- clearStalePidfile(p) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "is a named pipe") {
			t.Fatalf("clearStalePidfile of a FIFO: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("clearStalePidfile blocked on a FIFO")
	}
	if _, err := readPidfile(p); err == nil || !strings.Contains(err.Error(), "is a named pipe") {
		t.Fatalf("readPidfile of a FIFO: %v", err)
	}
	if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("the FIFO was touched: %v %v", fi, err)
	}
}

package control

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestParseState(t *testing.T) {
	good := map[string]State{
		"4242 123456 4242\n":         {4242, 123456, 4242},
		"4242 123456 4200":           {4242, 123456, 4200},
		"77 9 77\n12345 999 12345\n": {77, 9, 77}, // a torn rewrite: the tail of the old line
	}
	for in, want := range good {
		if got, err := ParseState([]byte(in)); err != nil || got != want {
			t.Errorf("ParseState(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "\n", "1 5 1\n", "0 5 0\n", "5 1 0\n", "-5 1 2\n", "+5 1 2\n", "5 -1 2\n", "5  1 2\n", " 5 1 2\n", "5 1\n", "5 1 2 3\n", "a b c\n", "12345678901 1 2\n"} {
		if s, err := ParseState([]byte(in)); err == nil {
			t.Errorf("ParseState(%q) = %+v, want an error", in, s)
		}
	}
}

// ReadState reports a recorded program only while that very process runs.
func TestReadState(t *testing.T) {
	d := testDir(t)
	p := exec.Command("/bin/sleep", "1000")
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { p.Process.Kill(); p.Wait() }()
	pid := p.Process.Pid
	ticks, err := ProcStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(d.Path, "s.state")
	os.WriteFile(path, fmt.Appendf(nil, "%d %d %d\n", pid, ticks, pid), 0o600)
	if s, ok := d.ReadState("s"); !ok || s.PID != pid || s.Ticks != ticks || s.PGID != pid {
		t.Fatalf("ReadState = %+v, %v; want pid %d running", s, ok, pid)
	}
	// Another start time: a recycled pid.
	os.WriteFile(path, fmt.Appendf(nil, "%d %d %d\n", pid, ticks+1, pid), 0o600)
	if _, ok := d.ReadState("s"); ok {
		t.Fatal("a state whose start time differs counts as running")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("ReadState removed the state file")
	}
}

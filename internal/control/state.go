package control

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// State is the watched program as respawner records it in NAME.state, one
// line "PID STARTTIME PGID\n", rewritten on each start so that a respawner
// started after this one was killed can adopt the program.
type State struct {
	PID   int
	Ticks uint64 // start time, clock ticks since boot (/proc/PID/stat field 22)
	PGID  int
}

// String is the file's content.
func (s State) String() string { return fmt.Sprintf("%d %d %d\n", s.PID, s.Ticks, s.PGID) }

// maxStateLen bounds what is read of a state file: the line is under 64 bytes.
const maxStateLen = 128

// ParseState parses the content of NAME.state: three decimal numbers, a pid
// above 1, the start time and a process group above 0, separated by single
// spaces, on the first line. What follows the first newline is ignored (a
// respawner killed between its write and its truncate leaves the tail of an
// older, longer line).
func ParseState(b []byte) (State, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Split(line, " ")
	if len(f) != 3 {
		return State{}, fmt.Errorf("state %q: want \"PID STARTTIME PGID\"", clip(line))
	}
	var s State
	var err1, err2, err3 error
	s.PID, err1 = atoiStrict(f[0])
	s.Ticks, err2 = strconv.ParseUint(f[1], 10, 64)
	s.PGID, err3 = atoiStrict(f[2])
	if errors.Join(err1, err2, err3) != nil {
		return State{}, fmt.Errorf("state %q: want \"PID STARTTIME PGID\"", clip(line))
	}
	if s.PID <= 1 || s.PGID <= 0 {
		return State{}, fmt.Errorf("state %q: pid must be above 1 and process group above 0", clip(line))
	}
	return s, nil
}

// atoiStrict is a decimal int of digits only (no sign, no space), at most 10 of them.
func atoiStrict(s string) (int, error) {
	if s == "" || len(s) > 10 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not a number: %q", clip(s))
	}
	return strconv.Atoi(s)
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Running reports whether the recorded process still runs: a live process
// (not a zombie) with that pid and that start time. A recycled pid has a
// later start time, so it never matches.
func (s State) Running() bool {
	t, err := ProcStartTime(s.PID)
	return err == nil && t == s.Ticks && Alive(s.PID)
}

// Started is the program's start time as a wall-clock time.
func (s State) Started() time.Time {
	bt := bootTime()
	if bt.IsZero() {
		return time.Time{}
	}
	return bt.Add(time.Duration(s.Ticks) * time.Second / clockTicks)
}

// ReadState reads NAME.state (O_NOFOLLOW, a regular file only) and reports
// the program it records when that program still runs (see State.Running).
// It removes nothing: only the holder of the instance lock may.
func (d *Dir) ReadState(name string) (State, bool) {
	f, err := d.OpenFile(name+".state", unix.O_RDONLY, 0)
	if err != nil {
		return State{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateLen))
	if err != nil {
		return State{}, false
	}
	s, err := ParseState(b)
	if err != nil || !s.Running() {
		return State{}, false
	}
	return s, true
}

// StateOrphaned is the "state" of an instance whose respawner is gone while
// its program still runs (status exits 4, unknown).
const StateOrphaned = "unknown"

// Orphan reports an instance whose respawner is not running while the
// program it recorded in NAME.state still runs, as a Status: state
// "unknown", the program's pid, respawner_pid 0, and a reason that says so
// and that `respawner start NAME` adopts it. Call it once the instance is
// known not to be running (ErrNotRunning). A nil Dir (no runtime dir) has
// none.
func (d *Dir) Orphan(name string) (*Status, bool) {
	if d == nil {
		return nil, false
	}
	if _, live := d.Live(name); live {
		return nil, false
	}
	s, ok := d.ReadState(name)
	if !ok {
		return nil, false
	}
	return &Status{
		Name:    name,
		State:   StateOrphaned,
		PID:     s.PID,
		Health:  "unknown",
		Since:   s.Started(),
		Plugins: []string{},
		Args:    []string{},
		Started: s.Started(),
		Reason:  fmt.Sprintf("respawner is not running, but its program still runs (pid %d); `respawner start %s` adopts it", s.PID, name),
	}, true
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

func bootTime() time.Time {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
				return time.Unix(n, 0)
			}
		}
	}
	return time.Time{}
}

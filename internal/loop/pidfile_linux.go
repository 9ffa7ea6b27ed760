package loop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// pidfileWatch is an inotify descriptor on the pidfile's directory.
type pidfileWatch struct {
	fd      int
	problem error // what was wrong with the pidfile at the last look
}

func (w *pidfileWatch) start(epfd int, path string) error {
	w.stop()
	w.problem = nil
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("inotify_init1: %w", err)
	}
	mask := uint32(unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_CREATE | unix.IN_MODIFY)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		unix.Close(fd)
		return fmt.Errorf("watch pidfile directory %s: %w", filepath.Dir(path), err)
	}
	if err := epollAdd(epfd, fd); err != nil {
		unix.Close(fd)
		return err
	}
	w.fd = fd
	return nil
}

func (w *pidfileWatch) drain() {
	var buf [4096]byte
	for {
		if n, err := unix.Read(w.fd, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

func (w *pidfileWatch) stop() {
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}

func (w *pidfileWatch) timeoutError(path string, d time.Duration) error {
	if w.problem != nil && !errors.Is(w.problem, os.ErrNotExist) {
		return fmt.Errorf("%w (gave up after --start-timeout %s)", w.problem, d)
	}
	return fmt.Errorf("pidfile %s was not written within --start-timeout %s", path, d)
}

// maxPidfile bounds a pidfile: a pid and a newline take a few bytes, and
// respawner never reads more than this of whatever sits at the path.
const maxPidfile = 64

var (
	errPidfileEmpty = errors.New("empty")
	errNotPid       = errors.New("not one pid")
)

// parsePidfile parses the whole content of a pidfile: a positive decimal pid,
// optionally followed by whitespace (a newline), and nothing else, in at
// most maxPidfile bytes.
func parsePidfile(b []byte) (int, error) {
	if len(b) > maxPidfile {
		return 0, errNotPid
	}
	s := strings.TrimRight(string(b), " \t\r\n")
	if s == "" {
		return 0, errPidfileEmpty
	}
	if len(s) > 10 {
		return 0, errNotPid
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errNotPid
		}
	}
	pid, err := strconv.ParseInt(s, 10, 32)
	if err != nil || pid <= 0 {
		return 0, errNotPid
	}
	return int(pid), nil
}

// readPidfile reads the pid a pidfile names.
func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := parsePidfile(b)
	if err != nil {
		s := strings.TrimSpace(string(b))
		if len(s) > 40 {
			s = s[:40] + "..."
		}
		return 0, fmt.Errorf("pidfile %s holds %q, not a pid", path, s)
	}
	return pid, nil
}

// clearStalePidfile removes a pidfile left by an earlier run before a new one
// starts, so that only what the new daemon writes counts. A pidfile naming a
// live process that is not ours means another copy runs: that is an error.
func clearStalePidfile(path string) error {
	pid, err := readPidfile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err == nil && control.Alive(pid) && !isDescendant(pid, os.Getpid(), nil) {
		return fmt.Errorf("pidfile %s names running pid %d, which respawner did not start: is another copy running?", path, pid)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale pidfile: %w", err)
	}
	return nil
}

// isDescendant reports whether pid is below ancestor in the process tree,
// not through a process that skip rejects (the hook host: its plugins are
// never the program).
func isDescendant(pid, ancestor int, skip func(int) bool) bool {
	for i := 0; i < 128 && pid > 1; i++ {
		if skip != nil && skip(pid) {
			return false
		}
		f, err := control.ProcStat(pid)
		if err != nil {
			return false
		}
		ppid, _ := strconv.Atoi(f[1])
		if ppid == ancestor {
			return true
		}
		pid = ppid
	}
	return false
}

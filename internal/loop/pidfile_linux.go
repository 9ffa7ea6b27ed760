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

// readPidfile parses a pidfile: a positive decimal pid and a newline.
func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	pid, err := strconv.Atoi(s)
	if err != nil || pid <= 0 {
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

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
	"github.com/respawner/respawner/internal/machine"
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

// pidfileBytes returns what the regular file at path holds, at most
// maxPidfile+1 bytes of it, and its size. It follows no symbolic link and
// opens nothing but a regular file (a FIFO would block the loop, a device
// may act on an open); anything else is a *notPidfileError. Nothing at the
// path is an error satisfying errors.Is(err, os.ErrNotExist).
func pidfileBytes(path string) ([]byte, int64, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, &notPidfileError{path: path, what: describeFile(path, fi)}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, 0, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, &notPidfileError{path: path, what: "not a regular file any more"}
	}
	buf := make([]byte, maxPidfile+1)
	n := 0
	for n < len(buf) {
		k, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, 0, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if k == 0 {
			break
		}
		n += k
	}
	return buf[:n], max(st.Size, int64(n)), nil
}

// notPidfileError: what sits at a pidfile path is no pidfile.
type notPidfileError struct {
	path string
	what string // "a directory", "a symbolic link to /etc/passwd", ...
}

func (e *notPidfileError) Error() string {
	return fmt.Sprintf("pidfile %s is %s, not a pidfile", e.path, e.what)
}

// describeFile says what a non-regular file is, for an error message.
func describeFile(path string, fi os.FileInfo) string {
	m := fi.Mode()
	switch {
	case m&os.ModeSymlink != 0:
		if to, err := os.Readlink(path); err == nil {
			return fmt.Sprintf("a symbolic link to %s", to)
		}
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "a special file"
}

// readPidfile reads the pid a pidfile names.
func readPidfile(path string) (int, error) {
	b, _, err := pidfileBytes(path)
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

// CheckPidfile tells, before anything starts, whether path can serve as the
// -p file: nothing there, an empty file, or one pid (a stale pidfile). It
// refuses a directory, a symbolic link, a special file, or a regular file
// that is not one pid, with a one-line error: respawner would have to remove
// it before each run, and removes nothing it cannot tell is a stale pidfile.
// Whether the pid runs is checked by the run itself (clearStalePidfile).
func CheckPidfile(path string) error {
	_, err := stalePidfile(path)
	return err
}

// stalePidfile returns the pid that the pidfile at path names, 0 when there
// is nothing to remove (no file, or an empty one: it holds nothing to lose,
// and a daemon that may not unlink its pidfile truncates it, as lighttpd
// does), or why what is at path must be left alone.
func stalePidfile(path string) (int, error) {
	b, size, err := pidfileBytes(path)
	var npe *notPidfileError
	switch {
	case errors.Is(err, os.ErrNotExist):
		return 0, nil
	case errors.As(err, &npe):
		return 0, refusePidfile(path, npe.what)
	case err != nil:
		return 0, fmt.Errorf("pidfile %s: %w", path, err)
	case len(b) == 0:
		return 0, nil
	}
	pid, err := parsePidfile(b)
	if err != nil {
		return 0, refusePidfile(path, fmt.Sprintf("a file of %d bytes that does not hold one pid", size))
	}
	return pid, nil
}

func refusePidfile(path, what string) error {
	return fmt.Errorf("pidfile %s is %s: respawner removes a stale pidfile before each run, and nothing else; give -p=PATH of the file the program writes its pid to", path, what)
}

// clearStalePidfile removes a pidfile left by an earlier run before a new one
// starts, so that only what the new daemon writes counts. It removes only a
// regular file holding one pid of a process that is gone. A pidfile naming a
// live process means another copy runs; anything that is not a pidfile (a
// configuration file given to -p by mistake, a directory, a symbolic link)
// is never removed: both are errors.
func clearStalePidfile(path string) error {
	pid, err := stalePidfile(path)
	if err != nil || pid == 0 {
		return err
	}
	if control.Alive(pid) {
		if !isDescendant(pid, os.Getpid(), nil) {
			return fmt.Errorf("pidfile %s names running pid %d, which respawner did not start: is another copy running?", path, pid)
		}
		return fmt.Errorf("pidfile %s names running pid %d, a process of respawner's that is not the program: leaving it alone", path, pid)
	}
	if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove stale pidfile %s: %w", path, err)
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

// checkPidfile reads the pidfile and, once it names a live descendant of
// ours, follows that process.
func (l *Loop) checkPidfile() {
	if !l.m.Snapshot().Awaiting {
		l.pf.stop()
		return
	}
	pid, err := readPidfile(l.opt.Pidfile)
	switch {
	case err != nil:
		l.pf.problem = err // absent, partial or garbage: wait for the next write
		return
	case !control.Alive(pid):
		l.pf.problem = fmt.Errorf("pidfile %s names pid %d, which is not running", l.opt.Pidfile, pid)
		return
	case !l.ours(pid):
		l.pf.stop()
		l.step(machine.PidfileFailed{Err: fmt.Errorf("pidfile %s names pid %d, which respawner did not start: refusing to watch or signal it", l.opt.Pidfile, pid)})
		return
	}
	l.pf.stop()
	l.log.Info("pidfile read", "path", l.opt.Pidfile, "pid", pid)
	l.step(machine.PidfileRead{PID: pid})
}

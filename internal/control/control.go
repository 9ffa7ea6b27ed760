// Package control is respawner's control plane: the runtime directory where
// instances live (NAME.pid, NAME.sock, NAME.state, NAME.log), the lock that
// makes an instance unique and detects stale files, and the small line
// protocol spoken over NAME.sock.
//
// Protocol: the client sends one request line, "status" or "stop". The server
// answers one JSON line: a Status for "status"; {"ok":true} for "stop", after
// which it keeps the connection open until the instance has stopped and exited,
// so the client learns of the end by EOF. Requests from a peer that is neither
// root nor of the instance's uid (SO_PEERCRED) get {"error":"..."}.
package control

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNotRunning means no live instance of that name exists.
var ErrNotRunning = errors.New("not running")

// DefaultDir is /run/respawner for root, else $XDG_RUNTIME_DIR/respawner, else
// /tmp/respawner-UID; $RESPAWNER_RUNTIME_DIR overrides all of them.
func DefaultDir() string {
	if d := os.Getenv("RESPAWNER_RUNTIME_DIR"); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/respawner"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "respawner")
	}
	return fmt.Sprintf("/tmp/respawner-%d", os.Geteuid())
}

// Paths of an instance's files.
func SockPath(dir, name string) string  { return filepath.Join(dir, name+".sock") }
func PidPath(dir, name string) string   { return filepath.Join(dir, name+".pid") }
func StatePath(dir, name string) string { return filepath.Join(dir, name+".state") }
func LogPath(dir, name string) string   { return filepath.Join(dir, name+".log") }

// Lock is held by a running instance for its whole life: an exclusive
// open-file-description lock (F_OFD_SETLK) on NAME.pid, which holds
// respawner's pid. The kernel drops it when the process dies however it dies,
// so a free lock means every file of that name is stale. Checking a lock
// (F_OFD_GETLK) does not take it, so status and list never make a start fail.
type Lock struct {
	dir  *Dir
	name string
	f    *os.File
}

// RunningError says that another live instance holds the name.
type RunningError struct {
	Name string
	PID  int
}

func (e *RunningError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("%s is already running (respawner pid %d): stop it first, or choose another --name", e.Name, e.PID)
	}
	return fmt.Sprintf("%s is already running: stop it first, or choose another --name", e.Name)
}

func wholeFile(typ int16) *unix.Flock_t {
	return &unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
}

// lockFile takes the write lock on f without waiting.
func lockFile(f *os.File) error {
	return unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, wholeFile(unix.F_WRLCK))
}

// locked reports whether someone holds a lock on f.
func locked(f *os.File) bool {
	lk := wholeFile(unix.F_WRLCK)
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_GETLK, lk); err != nil {
		return false
	}
	return lk.Type != unix.F_UNLCK
}

// sameFile reports whether f is still the file named file in d (not
// unlinked or replaced since it was opened).
func (d *Dir) sameFile(f *os.File, file string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(int(f.Fd()), &a) == nil && d.stat(file, &b) == nil && a.Ino == b.Ino && a.Dev == b.Dev
}

// Acquire takes the instance lock for name and writes our pid into NAME.pid.
// Stale files of a dead instance (NAME.sock) are removed; NAME.state is left
// for the caller to read (adoption).
func (d *Dir) Acquire(name string) (*Lock, error) {
	file := name + ".pid"
	for attempt := 0; ; attempt++ {
		f, err := d.OpenFile(file, unix.O_RDWR|unix.O_CREAT, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		if err := lockFile(f); err != nil {
			pid := readPid(f)
			f.Close()
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
				return nil, &RunningError{Name: name, PID: pid}
			}
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		// A stale-file cleaner may have unlinked the file between our open
		// and our lock: a lock on an unlinked file guards nothing.
		if !d.sameFile(f, file) {
			f.Close()
			if attempt < 5 {
				continue
			}
			return nil, fmt.Errorf("lock %s: the file keeps being replaced", f.Name())
		}
		d.Remove(name + ".sock") // stale: its owner is dead
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("write %s: %w", f.Name(), err)
		}
		if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("write %s: %w", f.Name(), err)
		}
		return &Lock{dir: d, name: name, f: f}, nil
	}
}

// Release removes the instance's files and drops the lock.
func (l *Lock) Release() {
	l.dir.Remove(l.name + ".keep")
	l.dir.Remove(l.name + ".state")
	l.Abandon()
}

// Abandon drops the lock of an instance whose supervision never began (a
// start that failed before): it removes only what this respawner made
// (NAME.sock, NAME.pid) and keeps NAME.state and NAME.keep, through which a
// program left by an earlier, killed respawner is still adopted by the next
// start.
func (l *Lock) Abandon() {
	l.dir.Remove(l.name + ".sock")
	l.dir.Remove(l.name + ".pid")
	l.f.Close()
}

func readPid(f *os.File) int {
	var buf [32]byte
	n, _ := f.ReadAt(buf[:], 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}

// Live reports whether an instance of name holds its lock, and its pid.
func (d *Dir) Live(name string) (pid int, live bool) {
	f, err := d.OpenFile(name+".pid", unix.O_RDONLY, 0)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	if !locked(f) {
		return 0, false // nobody holds it: stale
	}
	return readPid(f), true
}

// Live reports whether an instance of name in runtime dir dir holds its lock,
// and its pid; false too when dir cannot be opened (see OpenDir).
func Live(dir, name string) (pid int, live bool) {
	d, err := OpenDir(dir)
	if err != nil {
		return 0, false
	}
	defer d.Close()
	return d.Live(name)
}

// CleanStale removes the files of name when no live instance holds them. It
// removes them while holding the lock itself, so that it never unlinks the
// file of an instance that is starting at that moment. It reports whether
// anything was stale. NAME.state stays: the program it names may still run,
// and the next start adopts it.
func (d *Dir) CleanStale(name string) bool {
	file := name + ".pid"
	f, err := d.OpenFile(file, unix.O_RDWR, 0)
	if err != nil {
		return d.Remove(name+".sock") == nil
	}
	defer f.Close()
	if lockFile(f) != nil || !d.sameFile(f, file) {
		return false // live, or already replaced by a starting instance
	}
	d.Remove(name + ".sock")
	d.Remove(file)
	return true
}

// ProcStartTime returns the start time of pid in clock ticks since boot
// (/proc/PID/stat field 22): with the pid it names one process for ever,
// since a recycled pid has a later start time.
func ProcStartTime(pid int) (uint64, error) {
	f, err := ProcStat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// ProcStat returns the fields of /proc/PID/stat after "(comm)": f[0] is the
// state (field 3), f[1] the ppid (field 4), f[19] the start time (field 22).
func ProcStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	return f, nil
}

// Alive reports whether pid exists and is not a zombie.
func Alive(pid int) bool {
	f, err := ProcStat(pid)
	return err == nil && f[0] != "Z"
}

// WaitGone blocks until process pid has exited or timeout passes.
func WaitGone(pid int, timeout time.Duration) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return errors.Is(err, unix.ESRCH)
	}
	defer unix.Close(fd)
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return false
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, ms)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 1
	}
}

// Package logfile is respawner's log file: appended to, rotated by size so
// that it cannot fill the disk, and reopened on SIGHUP after logrotate moved
// it.
//
// Rotation is numbered, as logrotate's: when a write would take NAME past
// its cap, NAME.N-1 becomes NAME.N (the oldest, NAME.N, is overwritten),
// ..., NAME becomes NAME.1, and a new NAME is created. Lines are never cut
// between two files: a batch of lines is written in pieces of whole lines,
// each fitting what is left, so the file never exceeds the cap, except a
// file holding one line longer than the cap on its own.
//
// Every name is reached through a descriptor of the directory (openat,
// renameat), so a directory that was checked stays the one written to; in
// the runtime dir (Strict) the file must be a regular file and is never
// followed through a symbolic link. The file is always opened with
// O_APPEND: after logrotate's copytruncate, writes go to the new end, not to
// an offset past it (which would leave a hole of zeros), and the size kept
// for rotation is read again from the file before each rotation.
//
// Writes come from one goroutine, the log queue's (internal/logsink), never
// from the event loop. Reopen (SIGHUP) runs on the loop: it opens the file
// anew and swaps it in without waiting for a write in progress.
//
// gopkg.in/natefinch/lumberjack.v2 was the library to use, and does not fit:
// its size cap counts whole megabytes (no 512K), it opens and renames by
// path (no directory descriptor, so it follows a symbolic link planted as
// NAME.log), it opens the file it rotates to without O_APPEND (copytruncate
// then leaves sparse files), it refuses a write longer than the cap instead
// of writing whole lines, and it opens a FIFO --log-file with O_TRUNC and
// without O_NONBLOCK, which blocks until a reader comes.
package logfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// Options describe a log file.
type Options struct {
	// Dir is the directory that holds the file, opened once (O_PATH) and
	// used as the base of every name; DirPath is its path, for messages.
	Dir     string
	DirPath string
	Name    string // the file's name in Dir
	// Strict (the runtime dir): a symbolic link or anything but a regular
	// file at Name is refused. Otherwise (--log-file, the operator's path)
	// a symbolic link is followed, and a FIFO or device is written as it
	// is, without rotation.
	Strict bool
	// MaxSize is the cap in bytes; 0 turns rotation off.
	MaxSize int64
	// MaxFiles is how many rotated files are kept (NAME.1 ... NAME.N);
	// 0 keeps none: a full file starts over empty.
	MaxFiles int
	// OnRotateError, when set, hears a rotation that failed; the log goes
	// on in the current file and the next try comes MaxSize bytes later.
	OnRotateError func(error)
}

// File is an io.Writer for the log queue's goroutine.
type File struct {
	o     Options
	dirfd int

	mu      sync.Mutex
	f       *os.File
	size    int64 // bytes in f when regular, as counted
	regular bool  // f is a regular file: it is rotated
}

// flags open the log: a FIFO without a reader fails at once instead of
// blocking the open (and a FIFO or pipe then waits in Go's poller, so that a
// write to a full one parks the queue's goroutine, not a thread).
const flags = unix.O_WRONLY | unix.O_APPEND | unix.O_CREAT | unix.O_NONBLOCK | unix.O_CLOEXEC

// Open opens (creating) the log file.
func Open(o Options) (*File, error) {
	if o.DirPath == "" {
		o.DirPath = o.Dir
	}
	dirfd, err := unix.Open(o.Dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open log directory", Path: o.DirPath, Err: err}
	}
	l := &File{o: o, dirfd: dirfd}
	if l.f, l.size, l.regular, err = l.open(); err != nil {
		unix.Close(dirfd)
		return nil, err
	}
	return l, nil
}

// Path is the file's path.
func (l *File) Path() string { return filepath.Join(l.o.DirPath, l.o.Name) }

func (l *File) open() (*os.File, int64, bool, error) {
	flag := flags
	if l.o.Strict {
		flag |= unix.O_NOFOLLOW
	}
	fd, err := unix.Openat(l.dirfd, l.o.Name, flag, 0o640)
	if err != nil {
		if l.o.Strict && errors.Is(err, unix.ELOOP) {
			return nil, 0, false, fmt.Errorf("%s in runtime dir %s is a symbolic link: remove it (respawner never follows one there)", l.o.Name, l.o.DirPath)
		}
		return nil, 0, false, &os.PathError{Op: "open log file", Path: l.Path(), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, 0, false, &os.PathError{Op: "fstat log file", Path: l.Path(), Err: err}
	}
	regular := st.Mode&unix.S_IFMT == unix.S_IFREG
	if l.o.Strict && !regular {
		unix.Close(fd)
		return nil, 0, false, fmt.Errorf("%s in runtime dir %s is not a regular file (mode %o): remove it", l.o.Name, l.o.DirPath, st.Mode)
	}
	return os.NewFile(uintptr(fd), l.Path()), st.Size, regular, nil
}

// Reopen opens the file anew (SIGHUP, after logrotate moved it away) and
// writes go there from now on. It never waits on the log: the open does not
// block, the swap does not wait for a write in progress, and closing the old
// file stops such a write on a FIFO instead of waiting for it.
func (l *File) Reopen() error {
	f, size, regular, err := l.open()
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f, l.size, l.regular = f, size, regular
	l.mu.Unlock()
	old.Close()
	return nil
}

// Close closes the file.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	unix.Close(l.dirfd)
	return l.f.Close()
}

// Write appends p, whole lines (hclog's, as the log queue batches them),
// rotating first whenever the next piece would pass the cap.
func (l *File) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		l.mu.Lock()
		f, room, rotating := l.f, l.o.MaxSize-l.size, l.regular && l.o.MaxSize > 0
		l.mu.Unlock()
		n := len(p)
		if rotating {
			n = fit(p, room)
			if n == 0 {
				if l.full(f) {
					l.rotate(f)
					continue
				}
				n = firstLine(p) // a line longer than the cap: alone in its file
			}
		}
		w, err := f.Write(p[:n])
		l.mu.Lock()
		if l.f == f {
			l.size += int64(w)
		}
		l.mu.Unlock()
		if err != nil {
			return total - len(p) + w, err
		}
		p = p[n:]
	}
	return total, nil
}

// fit is how much of p to write into room bytes: all of p when it fits,
// else the whole lines at its start that fit, 0 when not even the first
// line does.
func fit(p []byte, room int64) int {
	if int64(len(p)) <= room {
		return len(p)
	}
	return bytes.LastIndexByte(p[:max(room, 0)], '\n') + 1
}

// firstLine is the length of p's first line, its newline included (all of
// p when it has none).
func firstLine(p []byte) int {
	if i := bytes.IndexByte(p, '\n'); i >= 0 {
		return i + 1
	}
	return len(p)
}

// full reports whether f holds anything, reading its size again: after
// logrotate's copytruncate the file is empty although bytes were counted.
func (l *File) full(f *os.File) bool {
	var st unix.Stat_t
	if unix.Fstat(int(f.Fd()), &st) != nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != f {
		return false // reopened meanwhile: look again
	}
	if st.Size < l.size { // truncated under us (copytruncate)
		l.size = st.Size
		return false
	}
	return l.size > 0
}

// rotate moves the full file aside, NAME -> NAME.1 -> ... -> NAME.MaxFiles,
// and opens a new NAME. A file that is no longer at NAME (logrotate moved it
// and its SIGHUP has not come yet) is not the one to move: NAME is only
// opened again. A rotation that fails is reported, and the log goes on in
// the current file, counted afresh, so the next try comes MaxSize later.
func (l *File) rotate(f *os.File) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != f {
		return
	}
	if err := l.shift(f); err != nil {
		l.size = 0
		if l.o.OnRotateError != nil {
			l.o.OnRotateError(err)
		}
		return
	}
	nf, size, regular, err := l.open()
	if err != nil {
		l.size = 0
		if l.o.OnRotateError != nil {
			l.o.OnRotateError(err)
		}
		return
	}
	l.f, l.size, l.regular = nf, size, regular
	f.Close()
}

// shift renames the rotated files up by one, then NAME to NAME.1 (or, when
// none is kept, removes NAME), as long as NAME is still the file f.
func (l *File) shift(f *os.File) error {
	var cur, there unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &cur); err != nil {
		return fmt.Errorf("rotate %s: %w", l.Path(), err)
	}
	if err := unix.Fstatat(l.dirfd, l.o.Name, &there, unix.AT_SYMLINK_NOFOLLOW); err != nil || there.Ino != cur.Ino || there.Dev != cur.Dev {
		return nil // moved away, or removed: a new NAME is opened
	}
	if l.o.MaxFiles == 0 {
		if err := unix.Unlinkat(l.dirfd, l.o.Name, 0); err != nil {
			return fmt.Errorf("rotate %s: remove: %w", l.Path(), err)
		}
		return nil
	}
	for i := l.o.MaxFiles - 1; i >= 1; i-- {
		err := unix.Renameat(l.dirfd, l.numbered(i), l.dirfd, l.numbered(i+1))
		if err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("rotate %s: rename %s: %w", l.Path(), l.numbered(i), err)
		}
	}
	if err := unix.Renameat(l.dirfd, l.o.Name, l.dirfd, l.numbered(1)); err != nil {
		return fmt.Errorf("rotate %s: rename: %w", l.Path(), err)
	}
	return nil
}

// numbered is the name of the i-th rotated file, NAME.i.
func (l *File) numbered(i int) string { return l.o.Name + "." + strconv.Itoa(i) }

package control

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrNotAllowed means the caller may not use the runtime dir or ask the
// instance: it belongs to another user, or it is not safe to trust.
var ErrNotAllowed = errors.New("permission denied")

func notAllowed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotAllowed}, args...)...)
}

// Dir is an open runtime directory. The directory is opened once, with
// O_NOFOLLOW, and checked on that descriptor (owner, mode); every file of an
// instance is then reached relative to it (openat, unlinkat, fstatat, all
// without following a symbolic link), never again by a path that a planted
// symlink could redirect. A unix socket has no bindat or connectat: it is
// bound through /proc/self/fd/DIRFD/NAME.sock and connected to through an
// O_PATH descriptor of the socket itself (see Listen and dial).
type Dir struct {
	Path string // as given, for messages
	fd   int
}

// Prepare creates the runtime dir path when it is missing (its last component
// with mode 0700; missing parents 0700 as well) and opens it as OpenDir does.
// What another user may have put there first is refused by OpenDir: a
// symbolic link, a directory of theirs, a directory open to others.
func Prepare(path string) (*Dir, error) {
	if parent := filepath.Dir(path); parent != path {
		if err := os.MkdirAll(parent, 0o700); err != nil {
			return nil, fmt.Errorf("runtime dir %s: %w", path, err)
		}
	}
	if err := unix.Mkdir(path, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("runtime dir %s: %w", path, err)
	}
	return OpenDir(path)
}

// OpenDir opens an existing runtime dir for the caller: the directory itself
// (not a symbolic link to one), owned by the caller's uid and closed to group
// and others. A missing directory gives an error that matches
// os.ErrNotExist; one the caller may not use, an error that matches
// ErrNotAllowed and says whose it is.
func OpenDir(path string) (*Dir, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		var st unix.Stat_t
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, fmt.Errorf("runtime dir %s: %w", path, os.ErrNotExist)
		case unix.Lstat(path, &st) != nil:
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return nil, notAllowed("runtime dir %s is a symbolic link (owned by %s), not a directory: remove it if you did not make it, or use another --runtime-dir", path, owner(st.Uid))
		case errors.Is(err, unix.EACCES) && int(st.Uid) != os.Geteuid():
			return nil, notAllowed("runtime dir %s belongs to %s; run as %s or the instance's user", path, owner(st.Uid), owner(st.Uid))
		}
		return nil, fmt.Errorf("runtime dir %s: %w", path, err)
	}
	d := &Dir{Path: path, fd: fd}
	if err := d.check(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

// check verifies owner and mode on the open descriptor: what is checked is
// what is used.
func (d *Dir) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return fmt.Errorf("runtime dir %s: %w", d.Path, err)
	}
	if me := os.Geteuid(); int(st.Uid) != me {
		return notAllowed("runtime dir %s belongs to %s, not to %s; run as %s, or use another --runtime-dir", d.Path, owner(st.Uid), owner(uint32(me)), owner(st.Uid))
	}
	if st.Mode&0o077 != 0 {
		return notAllowed("runtime dir %s is open to other users (mode %o): chmod 700 %s", d.Path, st.Mode&0o777, d.Path)
	}
	return nil
}

// owner names a uid for a message: "root", or "uid 1000 (alice)".
func owner(uid uint32) string {
	if uid == 0 {
		return "root"
	}
	s := "uid " + strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil && u.Username != "" {
		s += " (" + u.Username + ")"
	}
	return s
}

// OwnerName names uid for a message: "root", or "uid 1000 (alice)".
func OwnerName(uid uint32) string { return owner(uid) }

// Close closes the directory.
func (d *Dir) Close() error {
	if d == nil || d.fd < 0 {
		return nil
	}
	err := unix.Close(d.fd)
	d.fd = -1
	return err
}

// ProcPath names file in the directory through its descriptor,
// /proc/self/fd/DIRFD/FILE, for a call that takes only a path: the
// directory part cannot be redirected, and the call's own rule applies to the
// last component (bind never follows it; open needs O_NOFOLLOW).
func (d *Dir) ProcPath(file string) string {
	return "/proc/self/fd/" + strconv.Itoa(d.fd) + "/" + file
}

// fileName refuses a name that would leave the directory.
func fileName(file string) error {
	if file == "" || file == "." || file == ".." || strings.ContainsRune(file, '/') {
		return fmt.Errorf("invalid instance file name %q", file)
	}
	return nil
}

// OpenFile opens file in the directory with openat and O_NOFOLLOW, and
// accepts only a regular file: a symbolic link, a FIFO or a device planted
// under an instance's file name is refused, never followed or written.
func (d *Dir) OpenFile(file string, flag int, perm uint32) (*os.File, error) {
	if err := fileName(file); err != nil {
		return nil, err
	}
	// O_NONBLOCK: opening a FIFO must not block before it can be refused.
	fd, err := unix.Openat(d.fd, file, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, perm)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, fmt.Errorf("%s in runtime dir %s is a symbolic link: remove it (respawner never follows one there)", file, d.Path)
		}
		return nil, &os.PathError{Op: "open", Path: filepath.Join(d.Path, file), Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: filepath.Join(d.Path, file), Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s in runtime dir %s is not a regular file (mode %o): remove it", file, d.Path, st.Mode)
	}
	if flag&unix.O_NONBLOCK == 0 {
		unix.SetNonblock(fd, false)
	}
	return os.NewFile(uintptr(fd), filepath.Join(d.Path, file)), nil
}

// Remove unlinks file from the directory (a symbolic link itself, never
// what it points to).
func (d *Dir) Remove(file string) error {
	if err := fileName(file); err != nil {
		return err
	}
	return unix.Unlinkat(d.fd, file, 0)
}

// stat is lstat of file in the directory.
func (d *Dir) stat(file string, st *unix.Stat_t) error {
	if err := fileName(file); err != nil {
		return err
	}
	return unix.Fstatat(d.fd, file, st, unix.AT_SYMLINK_NOFOLLOW)
}

// Names lists the instance names found in the directory: those of NAME.pid
// files (live or stale instances) and of NAME.state files (a program whose
// respawner died may still run).
func (d *Dir) Names() []string {
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	f := os.NewFile(uintptr(fd), d.Path)
	defer f.Close()
	ents, err := f.ReadDir(-1)
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var names []string
	for _, e := range ents {
		n, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok {
			n, ok = strings.CutSuffix(e.Name(), ".state")
		}
		if ok && n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}

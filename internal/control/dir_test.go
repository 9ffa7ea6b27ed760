package control

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// A runtime dir path that is a symbolic link is refused, however good the
// directory it points to looks (ours, 0700).
func TestRuntimeDirSymlinkRefused(t *testing.T) {
	target := t.TempDir()
	os.Chmod(target, 0o700)
	link := filepath.Join(t.TempDir(), "run")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	for what, open := range map[string]func(string) (*Dir, error){"Prepare": Prepare, "OpenDir": OpenDir} {
		d, err := open(link)
		if err == nil {
			d.Close()
			t.Fatalf("%s of a symlink succeeded", what)
		}
		if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "symbolic link") {
			t.Errorf("%s: %v; want a refusal that names the symbolic link", what, err)
		}
	}
	if ents, _ := os.ReadDir(target); len(ents) != 0 {
		t.Errorf("%d files created in the link's target", len(ents))
	}
}

// A runtime dir open to others is refused; a missing one is not an error of
// permission.
func TestRuntimeDirChecks(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	os.Mkdir(open, 0o700)
	os.Chmod(open, 0o750)
	if _, err := OpenDir(open); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "chmod 700") {
		t.Errorf("OpenDir of a 0750 dir: %v", err)
	}
	if _, err := OpenDir(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenDir of a missing dir: %v, want os.ErrNotExist", err)
	}
}

// Instance files are opened without following a symbolic link and only when
// they are regular files: a FIFO is refused without blocking.
func TestInstanceFilesNotFollowed(t *testing.T) {
	d := testDir(t)
	victim := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(victim, []byte("precious\n"), 0o600)
	os.Symlink(victim, filepath.Join(d.Path, "x.pid"))
	if _, err := d.Acquire("x"); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Acquire over a symlinked x.pid: %v", err)
	}
	if _, live := d.Live("x"); live {
		t.Error("a symlinked x.pid counts as live")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious\n" {
		t.Errorf("victim now holds %q", b)
	}
	if err := unix.Mkfifo(filepath.Join(d.Path, "y.pid"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Acquire("y"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Acquire over a FIFO y.pid: %v", err)
	}
	if _, err := d.OpenFile("../escape", os.O_RDONLY, 0); err == nil {
		t.Error("OpenFile left the directory")
	}
	// Removing a symlinked file removes the link, not its target.
	if err := d.Remove("x.pid"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("victim gone with the link: %v", err)
	}
}

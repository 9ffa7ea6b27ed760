package logfile

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func open(t *testing.T, dir string, max int64, keep int) *File {
	t.Helper()
	l, err := Open(Options{Dir: dir, Name: "app.log", Strict: true, MaxSize: max, MaxFiles: keep,
		OnRotateError: func(err error) { t.Errorf("rotation failed: %v", err) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// names lists the directory.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Lines of every length, written in batches of every size as the log queue
// hands them over: no file ever passes the cap, no line is cut between two
// files, at most MaxFiles rotated files exist, and together they hold the
// newest lines in order.
func TestRotationKeepsTheCapAndTheCount(t *testing.T) {
	dir := t.TempDir()
	const max, keep = 1000, 3
	l := open(t, dir, max, keep)
	var all []string
	r := rand.New(rand.NewPCG(1, 2))
	for batch := 0; batch < 300; batch++ {
		var b bytes.Buffer
		for range 1 + r.IntN(12) {
			line := fmt.Sprintf("%d %s\n", len(all), strings.Repeat("x", r.IntN(120)))
			all = append(all, line)
			b.WriteString(line)
		}
		if n, err := l.Write(b.Bytes()); err != nil || n != b.Len() {
			t.Fatalf("write: %d, %v", n, err)
		}
		for _, name := range names(t, dir) {
			if s := size(t, filepath.Join(dir, name)); s > max {
				t.Fatalf("after batch %d %s holds %d bytes, over the cap of %d", batch, name, s, max)
			}
		}
	}
	want := []string{"app.log", "app.log.1", "app.log.2", "app.log.3"}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	var kept string
	for _, name := range []string{"app.log.3", "app.log.2", "app.log.1", "app.log"} {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", name)
		}
		kept += string(b)
	}
	if tail := strings.Join(all, ""); !strings.HasSuffix(tail, kept) || len(kept) < 3*max/2 {
		t.Fatalf("the files hold %d bytes that are not the newest lines in order", len(kept))
	}
}

// A line longer than the cap is written whole, alone in its file: the one
// case where a file passes the cap, by that one line.
func TestLineLongerThanTheCapIsAlone(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 100, 2)
	long := strings.Repeat("y", 250) + "\n"
	l.Write([]byte("short\n"))
	l.Write([]byte(long + "after\n"))
	for name, want := range map[string]string{"app.log.2": "short\n", "app.log.1": long, "app.log": "after\n"} {
		if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != want {
			t.Errorf("%s holds %q, want %q", name, b, want)
		}
	}
}

// --log-max-files 0: a full log starts over, no rotated file is kept.
func TestNoRotatedFilesKept(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 100, 0)
	for i := range 50 {
		fmt.Fprintf(l, "line %d\n", i)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"app.log"}) {
		t.Fatalf("files %v, want app.log alone", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "app.log")); !strings.HasSuffix(string(b), "line 49\n") {
		t.Fatalf("app.log holds %q", b)
	}
}

// logrotate's copytruncate empties the file under respawner: the next lines
// go to its start (O_APPEND: no hole of zeros before them), and the bytes
// counted before do not bring a rotation early.
func TestCopytruncate(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 1000, 2)
	path := filepath.Join(dir, "app.log")
	l.Write([]byte(strings.Repeat("a", 899) + "\n"))
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("after the truncation\n"))
	if b, _ := os.ReadFile(path); string(b) != "after the truncation\n" {
		t.Fatalf("app.log holds %q", b)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"app.log"}) {
		t.Fatalf("files %v: rotated although the file was emptied", got)
	}
}

// logrotate's move-and-HUP: lines go on into the moved file until Reopen,
// then into a new one; the moved file is never taken for one to rotate.
func TestMoveAndReopen(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, 100, 2)
	path := filepath.Join(dir, "app.log")
	l.Write([]byte("before\n"))
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("between\n"))
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte("after\n"))
	if b, _ := os.ReadFile(path + ".moved"); string(b) != "before\nbetween\n" {
		t.Errorf("the moved file holds %q", b)
	}
	if b, _ := os.ReadFile(path); string(b) != "after\n" {
		t.Errorf("the new file holds %q", b)
	}

	// Moved and never reopened: at the cap a new file is opened, and the
	// moved one is left as it is.
	if err := os.Rename(path, path+".moved2"); err != nil {
		t.Fatal(err)
	}
	l.Write([]byte(strings.Repeat("z", 98) + "\n"))
	if b, _ := os.ReadFile(path + ".moved2"); string(b) != "after\n" {
		t.Errorf("the second moved file holds %q", b)
	}
	if _, err := os.Stat(path + ".1"); err == nil {
		t.Error("a moved file was rotated as if it were still the log")
	}
}

// In the runtime dir a symbolic link at the log's name is refused, never
// followed.
func TestStrictRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(t.TempDir(), "victim")
	os.WriteFile(target, []byte("keep\n"), 0o600)
	if err := os.Symlink(target, filepath.Join(dir, "app.log")); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Options{Dir: dir, Name: "app.log", Strict: true, MaxSize: 100})
	if err == nil || !strings.Contains(err.Error(), "is a symbolic link: remove it") {
		t.Fatalf("open: %v", err)
	}
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
	"unsafe"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

type logsOptions struct {
	runtimeDir string
	lines      int
	follow     bool
}

func newLogsCmd() *cobra.Command {
	opts := &logsOptions{}
	cmd := &cobra.Command{
		Use:   "logs [flags] NAME|PROGRAM",
		Short: "Print an instance's recent log lines; follow them with -f",
		Long: `Print an instance's recent log lines: respawner's own and its program's
output, from the file the instance logs to (NAME.log in the runtime dir, or
its --log-file). With -f, go on printing lines as they are written, across
rotations (respawner's by size, logrotate's move-and-HUP or copytruncate),
until interrupted.

An instance that is not running is shown from NAME.log when that is there
(the log of its last run; -f waits for the next). A daemon that logs to
syslog (no --log-file, and /dev/log exists) has no file: logs says so and
prints the command that shows its lines, and exits 1, as it does for an
instance in the foreground whose stderr is not a file.

Exit status: 0 lines shown; 1 the log is not a file respawner can show;
3 no such instance, and no NAME.log; 4 the caller may not ask it.`,
		Example: `  respawner logs lighttpd
  respawner logs -n 100 lighttpd
  respawner logs -f lighttpd`,
		Args:              exactlyOne("NAME|PROGRAM"),
		ValidArgsFunction: completeInstances,
		RunE: func(c *cobra.Command, args []string) error {
			if opts.lines < 0 {
				return usageErrorf("invalid -n %d: give the number of lines to show, 0 or more", opts.lines)
			}
			return runLogs(c.OutOrStdout(), c.ErrOrStderr(), opts, instanceName(args[0]))
		},
	}
	f := cmd.Flags()
	f.IntVarP(&opts.lines, "lines", "n", 10, "show the last `N` lines")
	f.BoolVarP(&opts.follow, "follow", "f", false, "go on printing lines as they are written, across rotations, until interrupted")
	f.StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

// logSource is a log file: name in dir, opened through open, so that the
// runtime dir's NAME.log is reached through its descriptor (never a
// symbolic link) and a --log-file by its path.
type logSource struct {
	dir   string // for inotify: a path that names the directory
	name  string
	shown string // the file's path, for messages
	open  func(name string) (*os.File, error)
}

func runLogs(out, errOut io.Writer, o *logsOptions, name string) error {
	notRunning := func() error {
		msg := fmt.Sprintf("%s is not running, and there is no %s.log in %s", name, name, o.runtimeDir)
		if syslogAvailable() {
			msg += "; a daemon without --log-file logs to syslog: " + syslogCommand(name, o)
		}
		return &codeError{code: exitNotRunning, err: errors.New(msg)}
	}
	d, err := control.OpenDir(o.runtimeDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return notRunning()
	case err != nil:
		return &codeError{code: exitUnknown, err: err} // may not ask
	}
	defer d.Close()
	inDir := &logSource{
		dir: d.ProcPath("."), name: name + ".log", shown: control.LogPath(d.Path, name),
		open: func(file string) (*os.File, error) { return d.OpenFile(file, unix.O_RDONLY, 0) },
	}
	var src *logSource
	st, err := d.QueryStatus(name, 5*time.Second)
	switch {
	case err == nil:
		src, err = sourceOf(st, inDir, o)
		if err != nil {
			return err
		}
	case errors.Is(err, control.ErrNotAllowed):
		return &codeError{code: exitUnknown, err: err}
	default:
		// Not running (or not answering): its NAME.log, when there is one,
		// holds what it said last.
		if _, serr := os.Lstat(inDir.shown); serr != nil && !o.follow {
			if !errors.Is(err, control.ErrNotRunning) {
				return &codeError{code: exitUnknown, err: fmt.Errorf("%s: state unknown: %w", name, err)}
			}
			return notRunning()
		}
		src = inDir
		if errors.Is(err, control.ErrNotRunning) {
			fmt.Fprintf(errOut, "respawner: %s is not running; its log is %s\n", name, src.shown)
		} else {
			fmt.Fprintf(errOut, "respawner: %s: state unknown (%v); its log is %s\n", name, err, src.shown)
		}
	}
	return showLog(out, errOut, src, o)
}

// sourceOf is where a running instance logs, from its status.
func sourceOf(st *control.Status, inDir *logSource, o *logsOptions) (*logSource, error) {
	switch st.Log {
	case "", inDir.shown:
		// "": a respawner from before status said it; NAME.log is the
		// only file it can tell.
		return inDir, nil
	case "syslog":
		return nil, &codeError{code: exitFailure, err: fmt.Errorf("%s logs to syslog (tag %s), not to a file: %s", st.Name, st.Name, syslogCommand(st.Name, o))}
	case "stderr":
		return nil, &codeError{code: exitFailure, err: fmt.Errorf("%s runs in the foreground (respawner pid %d) and logs to its stderr, which is not a file: nothing to show (start it with --log-file PATH to have one)", st.Name, st.RespawnerPID)}
	}
	path := st.Log
	return &logSource{
		dir: filepath.Dir(path), name: filepath.Base(path), shown: path,
		open: func(file string) (*os.File, error) { return os.Open(filepath.Join(filepath.Dir(path), file)) },
	}, nil
}

// syslogCommand is the command that shows the syslog lines of name: its
// journal where journalctl is, else the classic syslog file.
func syslogCommand(name string, o *logsOptions) string {
	if _, err := exec.LookPath("journalctl"); err == nil {
		cmd := "journalctl -t " + name + " -n " + strconv.Itoa(o.lines)
		if o.follow {
			cmd += " -f"
		}
		return cmd
	}
	if o.follow {
		return "tail -F /var/log/syslog | grep --line-buffered '" + name + "\\['"
	}
	return "grep '" + name + "\\[' /var/log/syslog | tail -n " + strconv.Itoa(o.lines)
}

// showLog prints the last lines of src, then, with -f, follows it.
func showLog(out, errOut io.Writer, src *logSource, o *logsOptions) error {
	var fw *follower
	if o.follow {
		// Watch before reading, so that nothing written in between is lost.
		var err error
		if fw, err = newFollower(src, out, errOut); err != nil {
			return err
		}
		defer fw.close()
	}
	f, err := src.open(src.name)
	if err != nil && !(o.follow && errors.Is(err, os.ErrNotExist)) {
		return err
	}
	var end int64
	if f != nil {
		var tail []byte
		tail, end, err = lastLines(f, o.lines)
		if err != nil {
			f.Close()
			return err
		}
		if short := o.lines - bytes.Count(tail, []byte{'\n'}); short > 0 && o.lines > 0 {
			// Just rotated: the lines before are in NAME.1.
			if old, err := src.open(src.name + ".1"); err == nil {
				more, _, _ := lastLines(old, short)
				old.Close()
				tail = append(more, tail...)
			}
		}
		if _, err := out.Write(tail); err != nil {
			f.Close()
			return err
		}
	}
	if fw == nil {
		f.Close()
		return nil
	}
	if f != nil {
		if err := fw.track(f, end); err != nil {
			return err
		}
		// What was written between the read above and the watch.
		if err := fw.read(fw.cur); err != nil {
			return err
		}
	}
	return fw.run()
}

// lastLines returns the last n lines of f (its last line even without a
// newline), and the offset of its end. It looks for the start of those
// lines backwards from the end, a chunk at a time, counting each byte once,
// then reads them in one piece.
func lastLines(f *os.File, n int) ([]byte, int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	end := fi.Size()
	if n <= 0 || end == 0 {
		return nil, end, nil
	}
	// The start is just after the n-th newline from the end, not counting
	// a newline that ends the file; the file's start when there are fewer.
	var start int64
	buf := make([]byte, 64<<10)
	seen, last := 0, end-1 // last: the byte before which newlines count
	for pos := end; pos > 0 && start == 0; {
		step := min(int64(len(buf)), pos)
		pos -= step
		b := buf[:step]
		if _, err := f.ReadAt(b, pos); err != nil && err != io.EOF {
			return nil, 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' && pos+int64(i) < last {
				if seen++; seen == n {
					start = pos + int64(i) + 1
					break
				}
			}
		}
	}
	out := make([]byte, end-start)
	if _, err := f.ReadAt(out, start); err != nil && err != io.EOF {
		return nil, 0, err
	}
	return out, end, nil
}

// follower prints what is written to a log file from now on. Its only wait
// is a blocking read of an inotify descriptor, which watches the directory
// (a new file at the log's name: a rotation) and each file it reads (new
// data, a truncation, the writer closing a file rotated away).
type follower struct {
	src         *logSource
	out, errOut io.Writer
	ino         int
	dirWD       int
	cur         *followed   // the file at the log's name
	old         []*followed // rotated away, read until their writer closes them
	buf         []byte      // read's, kept: it runs at every write to the log
}

type followed struct {
	f   *os.File
	wd  int
	off int64
}

// maxOld bounds the rotated files still read: one whose writer is gone
// never says it closed.
const maxOld = 4

func newFollower(src *logSource, out, errOut io.Writer) (*follower, error) {
	ino, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	wd, err := unix.InotifyAddWatch(ino, src.dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		unix.Close(ino)
		return nil, fmt.Errorf("inotify %s: %w", filepath.Dir(src.shown), err)
	}
	return &follower{src: src, out: out, errOut: errOut, ino: ino, dirWD: wd}, nil
}

func (w *follower) close() {
	unix.Close(w.ino)
	if w.cur != nil {
		w.cur.f.Close()
	}
	for _, o := range w.old {
		o.f.Close()
	}
}

// track makes f, read up to off, the file at the log's name.
func (w *follower) track(f *os.File, off int64) error {
	// The watch is on the open file itself (its /proc/self/fd link), so it
	// stays on this file when a rotation renames it.
	wd, err := unix.InotifyAddWatch(w.ino, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.IN_MODIFY|unix.IN_CLOSE_WRITE)
	if err != nil {
		f.Close()
		return fmt.Errorf("inotify %s: %w", w.src.shown, err)
	}
	w.cur = &followed{f: f, wd: wd, off: off}
	return nil
}

// run prints until the log's directory goes away or output fails.
func (w *follower) run() error {
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(w.ino, buf) // blocks until something happens
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("inotify: %w", err)
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if err := w.event(int(ev.Wd), ev.Mask, string(bytes.TrimRight(nameBytes, "\x00"))); err != nil {
				return err
			}
		}
	}
}

func (w *follower) event(wd int, mask uint32, name string) error {
	switch {
	case wd == w.dirWD && mask&unix.IN_IGNORED != 0:
		return fmt.Errorf("%s: the directory is gone", filepath.Dir(w.src.shown))
	case wd == w.dirWD && name == w.src.name:
		return w.rotated()
	case w.cur != nil && wd == w.cur.wd && mask&unix.IN_MODIFY != 0:
		return w.read(w.cur)
	}
	for i, o := range w.old {
		if wd != o.wd {
			continue
		}
		if err := w.read(o); err != nil {
			return err
		}
		if mask&(unix.IN_CLOSE_WRITE|unix.IN_IGNORED) != 0 {
			w.forget(i)
		}
		break
	}
	return nil
}

// rotated: a file appeared at the log's name. What is left in the current
// file is printed, and it is still read until its writer closes it
// (respawner writes to a file logrotate moved away until its SIGHUP).
func (w *follower) rotated() error {
	f, err := w.src.open(w.src.name)
	if err != nil {
		return nil // gone again, or not a file to read: the next one counts
	}
	if w.cur != nil {
		if same(w.cur.f, f) {
			f.Close()
			return nil
		}
		if err := w.read(w.cur); err != nil {
			return err
		}
		if err := w.readSkipped(f); err != nil {
			return err
		}
		w.old = append(w.old, w.cur)
		if len(w.old) > maxOld {
			w.forget(0)
		}
		w.cur = nil
	}
	if err := w.track(f, 0); err != nil {
		return err
	}
	return w.read(w.cur)
}

// maxNumbered bounds the search for the file just rotated away among
// NAME.1, NAME.2, ...
const maxNumbered = 64

// readSkipped prints the files that were rotated through while the
// follower slept: when the file it read is now NAME.k, NAME.k-1 ... NAME.1
// came after it (respawner rotated more than once between two wake-ups of
// logs -f, as a burst of output can make it with a small --log-max-size).
// next is the new file at NAME. A file that logrotate moved to another name
// has none after it. The names shift up while respawner rotates, one rename
// at a time, so the scan upwards steps over one missing number. Best
// effort: a follower that sleeps through more rotations than the instance
// keeps files, or scans while they shift, can still miss one.
func (w *follower) readSkipped(next *os.File) error {
	var after []*os.File // newest first
	defer func() {
		for _, f := range after {
			f.Close()
		}
	}()
	for i, missing := 1, 0; i <= maxNumbered && missing < 2; i++ {
		f, err := w.src.open(w.src.name + "." + strconv.Itoa(i))
		if err != nil {
			missing++
			continue
		}
		missing = 0
		if same(f, w.cur.f) {
			f.Close()
			for j := len(after) - 1; j >= 0; j-- {
				if same(after[j], next) || j > 0 && same(after[j], after[j-1]) {
					continue
				}
				if err := w.read(&followed{f: after[j]}); err != nil {
					return err
				}
			}
			return nil
		}
		after = append(after, f)
	}
	return nil // not among the numbered files: moved elsewhere, or removed
}

func (w *follower) forget(i int) {
	o := w.old[i]
	unix.InotifyRmWatch(w.ino, uint32(o.wd))
	o.f.Close()
	w.old = append(w.old[:i], w.old[i+1:]...)
}

// read prints what was written to t since the last read. A file shorter
// than what was read of it was truncated (copytruncate): it is read again
// from its start.
func (w *follower) read(t *followed) error {
	fi, err := t.f.Stat()
	if err != nil {
		return nil
	}
	if fi.Size() < t.off {
		fmt.Fprintf(w.errOut, "respawner: %s was truncated; following from its start\n", w.src.shown)
		t.off = 0
	}
	if w.buf == nil {
		w.buf = make([]byte, 64<<10)
	}
	for {
		n, err := t.f.ReadAt(w.buf, t.off)
		if n > 0 {
			if _, werr := w.out.Write(w.buf[:n]); werr != nil {
				return werr
			}
			t.off += int64(n)
		}
		if err != nil || n == 0 {
			return nil
		}
	}
}

// same reports whether a and b are one file.
func same(a, b *os.File) bool {
	ai, aerr := a.Stat()
	bi, berr := b.Stat()
	return aerr == nil && berr == nil && os.SameFile(ai, bi)
}

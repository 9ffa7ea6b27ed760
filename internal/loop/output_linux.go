package loop

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// output is one of the program's output pipes (daemon mode): the write end
// is the program's fd 1 or 2 for every run, the read end sits in the epoll
// set. Reading is bounded per turn of the loop (one read of readChunk bytes)
// so that a program writing as fast as it can never keeps the loop from its
// other descriptors: the pipe stays readable and epoll brings us back.
type output struct {
	r, w    int
	chunk   [readChunk]byte
	partial []byte // the start of a line whose end has not come yet (< maxLine)
	tail    [outputTail][]byte
	next    int // where the next tail line goes
	kept    int // tail lines kept so far, up to outputTail
}

// readChunk bounds what one turn of the loop reads from one pipe: at most a
// few thousand lines to log before the loop looks at its other descriptors.
const readChunk = 4 << 10

// maxLine bounds a line; longer ones are cut into pieces of exactly maxLine
// bytes, whether their newline has come or not, and no byte is lost.
const maxLine = 4096

// outputTail is how many of the program's last lines a pipe keeps, for the
// report of a failed start.
const outputTail = 10

func (o *output) open(epfd int) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe2: %w", err)
	}
	o.r, o.w = p[0], p[1]
	return o.watch(epfd)
}

// adopt takes over a pipe made by someone else (the keeper), so that its
// content survives this respawner.
func (o *output) adopt(epfd, r, w int) error {
	o.r, o.w = r, w
	return o.watch(epfd)
}

func (o *output) watch(epfd int) error {
	unix.CloseOnExec(o.r)
	unix.CloseOnExec(o.w)
	if err := unix.SetNonblock(o.r, true); err != nil {
		return fmt.Errorf("set nonblock: %w", err)
	}
	return epollAdd(epfd, o.r)
}

func (o *output) close() {
	for _, fd := range []int{o.r, o.w} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
	o.r, o.w = -1, -1
}

// read takes at most one chunk from the pipe and calls emit for each
// complete line in it. It reports whether the read filled the chunk (more
// may be waiting). emit must not keep the slice.
func (o *output) read(emit func([]byte)) bool {
	if o.r < 0 {
		return false
	}
	n, err := unix.Read(o.r, o.chunk[:])
	if n <= 0 || err != nil {
		return false
	}
	o.split(o.chunk[:n], emit)
	return n == len(o.chunk)
}

// split cuts data, after what is left of the last read, into lines.
func (o *output) split(data []byte, emit func([]byte)) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			o.partial = append(o.partial, data...)
			// A piece of exactly maxLine waits: if its newline comes
			// next, it is a whole line, not a cut one and an empty one.
			k := 0
			for ; len(o.partial)-k > maxLine; k += maxLine {
				o.line(o.partial[k:k+maxLine], emit)
			}
			o.partial = append(o.partial[:0], o.partial[k:]...)
			return
		}
		line := data[:i]
		data = data[i+1:]
		if len(o.partial) > 0 {
			o.partial = append(o.partial, line...)
			line = o.partial
		}
		for len(line) > maxLine {
			o.line(line[:maxLine], emit)
			line = line[maxLine:]
		}
		o.line(bytes.TrimSuffix(line, []byte{'\r'}), emit)
		o.partial = o.partial[:0]
	}
}

// flushPartial emits a last line that never got its newline.
func (o *output) flushPartial(emit func([]byte)) {
	if len(o.partial) > 0 {
		o.line(o.partial, emit)
		o.partial = o.partial[:0]
	}
}

func (o *output) line(b []byte, emit func([]byte)) {
	o.tail[o.next] = append(o.tail[o.next][:0], b...)
	o.next = (o.next + 1) % outputTail
	o.kept = min(o.kept+1, outputTail)
	emit(b)
}

// tailText is the last lines, oldest first.
func (o *output) tailText() string {
	var b strings.Builder
	for i := range o.kept {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.Write(o.tail[(o.next-o.kept+i+outputTail)%outputTail])
	}
	return b.String()
}

// recent is the program's last output lines, stdout and stderr in the order
// they were read, for the exited and gave-up events: a ring of recentLines
// whose buffers are reused, so that keeping it costs a copy a line.
type recent struct {
	lines [recentLines][]byte
	next  int // where the next line goes
	kept  int // lines kept, up to recentLines
}

// The bounds of what an event carries: the last recentLines lines, fewer
// when they would come to more than recentBytes.
const (
	recentLines = 20
	recentBytes = 4 << 10
)

func (r *recent) add(b []byte) {
	r.lines[r.next] = append(r.lines[r.next][:0], b...)
	r.next = (r.next + 1) % recentLines
	r.kept = min(r.kept+1, recentLines)
}

func (r *recent) reset() { r.next, r.kept = 0, 0 }

// text returns the newest lines that fit in recentBytes, oldest first, as
// valid UTF-8 (events cross protobuf, whose strings must be). nil when the
// program wrote nothing.
func (r *recent) text() []string {
	n, size := 0, 0
	for ; n < r.kept; n++ {
		l := len(r.lines[(r.next-1-n+recentLines)%recentLines])
		if size+l > recentBytes {
			break
		}
		size += l
	}
	if n == 0 {
		return nil
	}
	out := make([]string, n)
	for i := range n {
		b := r.lines[(r.next-n+i+recentLines)%recentLines]
		if utf8.Valid(b) {
			out[i] = string(b)
		} else {
			out[i] = strings.ToValidUTF8(string(b), "\uFFFD")
		}
	}
	return out
}

// capturing reports whether respawner reads the program's output: daemon
// mode (Output), or -D with --capture-output (Forward).
func (l *Loop) capturing() bool { return l.opt.Output != nil || l.opt.Forward[0] != nil }

// lastOutput is the program's last lines for an exited or gave-up event:
// what the pipes still hold is read first (the end of the run is there),
// and a last line without its newline counts as a line.
func (l *Loop) lastOutput() []string {
	if !l.capturing() {
		return nil
	}
	l.drainOutput()
	return l.recent.text()
}

// forward logs one chunk of the program's output, line by line (daemon
// mode), or passes it on to respawner's own stdout and stderr (-D with
// --capture-output). A line the log has no room for is dropped before it
// costs any formatting, and counted; the log says how many once it catches up.
func (l *Loop) forward(o *output, stderr bool) bool {
	return o.read(l.emitter(stderr))
}

func (l *Loop) emitter(stderr bool) func([]byte) {
	if stderr {
		return l.emitErr
	}
	return l.emitOut
}

// lineOverhead is about what the log adds to a line (time, level, name).
const lineOverhead = 64

func (l *Loop) emitOut(b []byte) { l.emitLine(b, false) }

func (l *Loop) emitErr(b []byte) { l.emitLine(b, true) }

func (l *Loop) emitLine(b []byte, stderr bool) {
	l.recent.add(b)
	if f := l.opt.Forward; f[0] != nil {
		i := 0
		if stderr {
			i = 1
		}
		l.lineBuf = append(append(l.lineBuf[:0], b...), '\n')
		f[i].Write(l.lineBuf) // a queue that drops what it has no room for
		return
	}
	if bl := l.opt.Backlog; bl != nil && !bl.Room(len(b)+lineOverhead) {
		bl.Drop()
		return
	}
	if stderr {
		l.opt.Output.Warn(string(b))
	} else {
		l.opt.Output.Info(string(b))
	}
}

// finalOutput bounds what is read from the pipes when supervision ends:
// twice what a pipe can hold (keeper.PipeSize).
const finalOutput = 2 << 20

// drainOutput logs what the program wrote last, at the end of supervision:
// up to finalOutput bytes a pipe, then any line left without its newline.
func (l *Loop) drainOutput() {
	for i := range l.out {
		o := &l.out[i]
		for n := 0; n < finalOutput/readChunk && l.forward(o, i == 1); n++ {
		}
		o.flushPartial(l.emitter(i == 1))
	}
}

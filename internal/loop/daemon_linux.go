package loop

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// output is one of the program's output pipes (daemon mode): the write end
// is the program's fd 1 or 2 for every run, the read end sits in the epoll set.
type output struct {
	r, w    int
	partial []byte
	tail    []string // last lines, for the report of a failed start
}

func (o *output) open(epfd int) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("pipe2: %w", err)
	}
	o.r, o.w = p[0], p[1]
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

// maxLine bounds a line; longer output is cut into pieces of this size.
const maxLine = 4096

// read drains the pipe and returns the complete lines in it.
func (o *output) read() []string {
	if o.r < 0 {
		return nil
	}
	var lines []string
	var buf [16384]byte
	for {
		n, err := unix.Read(o.r, buf[:])
		if n <= 0 || err != nil {
			break
		}
		o.partial = append(o.partial, buf[:n]...)
		for {
			i := strings.IndexByte(string(o.partial), '\n')
			if i < 0 {
				if len(o.partial) >= maxLine {
					i = maxLine
				} else {
					break
				}
			}
			line := strings.TrimRight(string(o.partial[:i]), "\r")
			o.partial = o.partial[min(i+1, len(o.partial)):]
			lines = append(lines, line)
		}
	}
	for _, ln := range lines {
		o.tail = append(o.tail, ln)
		if len(o.tail) > stderrTail {
			o.tail = o.tail[1:]
		}
	}
	return lines
}

func (o *output) tailText() string {
	return strings.Join(o.tail, "\n")
}

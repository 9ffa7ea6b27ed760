// Package logsink puts a bounded queue between respawner's event loop and
// wherever its log goes (a terminal, a pipe, a file, syslog). The loop only
// appends to memory; one goroutine does the writes that can block. A sink
// that stops taking lines (a full pipe nobody reads, a stopped terminal, a
// slow file system) fills the queue, after which lines are dropped and
// counted, never waited for: supervision must not stall behind its log.
package logsink

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// DefaultSize is the queue's capacity in bytes: about ten thousand log lines,
// a few seconds of a fast program's output.
const DefaultSize = 1 << 20

// Sink is an io.Writer that queues each Write (one log line, as hclog writes
// them) and writes it to the underlying writer from its own goroutine.
//
// It is an hclog.LevelWriter too: hclog hands it each line with the line's
// level. When the underlying writer is one as well (syslog, whose severity
// is the level), the sink keeps each line's level with it in the queue and
// passes the lines on one by one with LevelWrite; any other writer gets
// them in batches, as bytes.
type Sink struct {
	w    io.Writer
	lw   hclog.LevelWriter // w, when it takes levels
	size int

	mu      sync.Mutex
	buf     []byte // queued, not yet handed to the writer goroutine
	marks   []mark // with lw: where each queued line ends, and its level
	busy    bool   // the writer goroutine holds a batch
	dropped int    // lines dropped since the last report
	closed  bool
	held    bool              // Write does not wake the writer: Kick does
	notice  func(dropped int) // formats the "lines dropped" report
	wake    chan struct{}     // one token: there is work
	idle    *sync.Cond        // signalled when the queue empties
}

// mark ends a queued line of a leveled sink: buf[previous end:end].
type mark struct {
	end   int
	level hclog.Level
}

// New returns a sink in front of w holding at most size bytes.
func New(w io.Writer, size int) *Sink {
	s := &Sink{w: w, size: size, wake: make(chan struct{}, 1)}
	s.lw, _ = w.(hclog.LevelWriter)
	s.idle = sync.NewCond(&s.mu)
	go s.run()
	return s
}

// OnDrop sets how the sink reports lines it dropped, once the writer caught
// up again: typically a Warn through the same logger, which queues the
// report like any other line.
func (s *Sink) OnDrop(f func(dropped int)) {
	s.mu.Lock()
	s.notice = f
	s.mu.Unlock()
}

// Write queues p. It never blocks on the underlying writer: when the queue
// is full, p is dropped and counted.
func (s *Sink) Write(p []byte) (int, error) {
	return s.LevelWrite(hclog.NoLevel, p)
}

// LevelWrite queues p, a line logged at level (hclog calls it), as Write does.
func (s *Sink) LevelWrite(level hclog.Level, p []byte) (int, error) {
	s.mu.Lock()
	if s.closed || len(s.buf)+len(p) > s.size {
		s.dropped++
		s.mu.Unlock()
		return len(p), nil
	}
	empty := len(s.buf) == 0
	s.buf = append(s.buf, p...)
	if s.lw != nil {
		s.marks = append(s.marks, mark{len(s.buf), level})
	}
	held := s.held
	s.mu.Unlock()
	if empty && !held {
		s.signal()
	}
	return len(p), nil
}

func (s *Sink) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Hold makes Write only queue, without waking the writer goroutine; Kick
// wakes it. The event loop holds its sink and kicks it before it waits for
// events, so that the write of a restart's log lines (a thread woken, a
// write on the other CPU) never competes with the restart itself: the lines
// go out when the loop has nothing else to do, microseconds later.
func (s *Sink) Hold() {
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
}

// Kick wakes the writer when lines are queued.
func (s *Sink) Kick() {
	s.mu.Lock()
	pending := len(s.buf) > 0
	s.mu.Unlock()
	if pending {
		s.signal()
	}
}

// Room reports whether a line of n bytes would be queued now. The program's
// output is checked before it is formatted, so that a flood costs as little
// as possible while the sink is full.
func (s *Sink) Room(n int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.closed && len(s.buf)+n <= s.size
}

// Drop counts a line that was not even formatted because there was no Room.
func (s *Sink) Drop() {
	s.mu.Lock()
	s.dropped++
	s.mu.Unlock()
}

// Dropped returns the lines dropped and not yet reported.
func (s *Sink) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

func (s *Sink) run() {
	var batch []byte
	var marks []mark
	for range s.wake {
		for {
			s.mu.Lock()
			if len(s.buf) == 0 {
				s.busy = false
				dropped := s.dropped
				notice := s.notice
				if dropped > 0 && notice != nil && !s.closed {
					s.dropped = 0
					s.mu.Unlock()
					notice(dropped) // queues a line: the loop goes round once more
					continue
				}
				s.idle.Broadcast()
				s.mu.Unlock()
				break
			}
			batch, s.buf = s.buf, batch[:0]
			marks, s.marks = s.marks, marks[:0]
			s.busy = true
			s.mu.Unlock()
			// The writes may block: that is what this goroutine is for.
			if s.lw == nil {
				s.w.Write(batch)
				continue
			}
			start := 0
			for _, m := range marks {
				s.lw.LevelWrite(m.level, batch[start:m.end])
				start = m.end
			}
		}
	}
}

// Flush waits up to timeout for the queue to be written, then closes the
// sink: what is still queued is dropped, and later writes are discarded. It
// reports how many lines were lost that way, and any drop not yet reported.
func (s *Sink) Flush(timeout time.Duration) error {
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
	s.Kick()
	done := make(chan struct{})
	go func() {
		s.mu.Lock()
		for !s.closed {
			for (len(s.buf) > 0 || s.busy) && !s.closed {
				s.idle.Wait()
			}
			if s.dropped == 0 || s.notice == nil || s.closed {
				break
			}
			// Drops not yet reported: say so in the log before it closes.
			n, notice := s.dropped, s.notice
			s.dropped = 0
			s.mu.Unlock()
			notice(n)
			s.mu.Lock()
		}
		s.mu.Unlock()
		close(done)
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case <-done:
	case <-timer.C:
		err = fmt.Errorf("log sink did not take the last %d bytes within %s", s.pending(), timeout)
	}
	s.mu.Lock()
	if s.dropped > 0 && err == nil {
		err = fmt.Errorf("%d log lines were dropped: the log sink did not keep up", s.dropped)
	}
	s.closed = true
	s.idle.Broadcast()
	s.mu.Unlock()
	return err
}

func (s *Sink) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

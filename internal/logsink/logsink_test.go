package logsink

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// A pipe that nobody reads fills up after 64 KiB; writes to the sink must
// still return at once, and what does not fit is counted as dropped.
func TestBlockedPipeNeverBlocksWrite(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s := New(w, 64<<10)
	line := []byte(strings.Repeat("x", 99) + "\n")
	begun := time.Now()
	for range 10000 { // 1 MB: fifteen times the pipe, sixteen times the queue
		s.Write(line)
	}
	if d := time.Since(begun); d > 2*time.Second {
		t.Fatalf("10000 writes took %s: Write waits for the sink", d)
	}
	if s.Dropped() == 0 {
		t.Fatal("nothing dropped although neither the pipe nor the queue could hold it all")
	}
	if s.Room(len(line)) {
		t.Fatal("Room says yes while the queue is full")
	}
	if err := s.Flush(100 * time.Millisecond); err == nil {
		t.Fatal("Flush reported success with the sink blocked")
	}
}

// Once the reader catches up, the sink says how many lines it dropped, in
// the log itself, and every line it kept arrives whole and in order.
func TestDropsAreReportedInOrder(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	s := New(w, 8<<10)
	s.OnDrop(func(n int) { fmt.Fprintf(s, "dropped %d\n", n) })
	for i := range 50000 { // 550 KB: far more than the pipe and the queue hold
		fmt.Fprintf(s, "line %d\n", i)
	}
	go func() {
		s.Flush(5 * time.Second)
		w.Close()
	}()
	sc := bufio.NewScanner(r)
	last, kept, reported := -1, 0, 0
	for sc.Scan() {
		var n int
		switch {
		case strings.HasPrefix(sc.Text(), "dropped "):
			fmt.Sscanf(sc.Text(), "dropped %d", &n)
			reported += n
		default:
			if _, err := fmt.Sscanf(sc.Text(), "line %d", &n); err != nil || n <= last {
				t.Fatalf("line %q after line %d: torn or out of order", sc.Text(), last)
			}
			last = n
			kept++
		}
	}
	if kept+reported != 50000 {
		t.Fatalf("%d lines kept and %d reported dropped, want 50000 in all", kept, reported)
	}
	if reported == 0 {
		t.Fatal("no drop reported, though the queue holds far fewer than 50000 lines")
	}
}

// A held sink writes nothing until it is kicked, then everything.
func TestHeldSinkWritesOnKick(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	s := New(w, DefaultSize)
	s.Hold()
	s.Write([]byte("one\n"))
	r.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	buf := make([]byte, 64)
	if n, _ := r.Read(buf); n > 0 {
		t.Fatalf("a held sink wrote %q before the kick", buf[:n])
	}
	s.Kick()
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "one\n" {
		t.Fatalf("after the kick: %q, %v", buf[:n], err)
	}
}

// levelRecorder is a writer that takes levels, as the syslog writer does.
type levelRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *levelRecorder) Write(p []byte) (int, error) { return r.LevelWrite(hclog.NoLevel, p) }

func (r *levelRecorder) LevelWrite(level hclog.Level, p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, level.String()+" "+string(p))
	return len(p), nil
}

// A writer that takes levels gets each line with the level it was logged
// at, one line a call, although the queue hands lines over in batches.
func TestLevelsReachALeveledWriter(t *testing.T) {
	rec := &levelRecorder{}
	s := New(rec, DefaultSize)
	s.Hold() // queue everything first, so that one batch holds several lines
	log := hclog.New(&hclog.LoggerOptions{Output: s, Level: hclog.Trace, DisableTime: true})
	log.Info("an [ERROR] in an info line")
	log.Warn("careful")
	log.Error("broken")
	log.Debug("detail")
	if err := s.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"info [INFO]  an [ERROR] in an info line\n",
		"warn [WARN]  careful\n",
		"error [ERROR] broken\n",
		"debug [DEBUG] detail\n",
	}
	if !slices.Equal(rec.lines, want) {
		t.Fatalf("the writer got\n%q\nwant\n%q", rec.lines, want)
	}
}

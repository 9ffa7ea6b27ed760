package notify

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hookspec"
)

// recorder is a Sender that records what it is given, and when; fail
// decides whether an attempt fails, block (when set) holds each attempt until
// it is closed.
type recorder struct {
	mu        sync.Mutex
	got       []Message
	at        []time.Time
	attempts  int
	fail      func(n int) error // n counts attempts from 1
	block     chan struct{}
	repeating bool
}

func (r *recorder) Send(ctx context.Context, m Message) error {
	r.mu.Lock()
	r.attempts++
	n, block := r.attempts, r.block
	r.mu.Unlock()
	if block != nil {
		<-block
	}
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch m.Event.Kind { // as Alertmanager's: unhealthy fires, healthy resolves
	case hookspec.Unhealthy:
		r.repeating = true
	case hookspec.Healthy:
		r.repeating = false
	}
	r.got = append(r.got, m)
	r.at = append(r.at, time.Now())
	return nil
}

func (r *recorder) messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.got...)
}

// repeatingRecorder is a recorder that is a Repeater.
type repeatingRecorder struct{ *recorder }

func (r repeatingRecorder) Repeating() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.repeating
}

func crash(pid int, sig string) hookspec.Event {
	return hookspec.Event{Kind: hookspec.Exited, Instance: "lighttpd", PID: pid, Signal: sig, Time: time.Now()}
}

func testConfig() Config {
	c := DefaultConfig
	c.Backoff = time.Second
	return c
}

func kinds(ms []Message) string {
	var parts []string
	for _, m := range ms {
		s := string(m.Event.Kind)
		if m.Digest != nil {
			s = "digest(" + s + ")"
		}
		if m.Repeat {
			s = "repeat"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

// A crash loop: the first crash at once, the other 49 in one digest at the
// end of the window, then nothing.
func TestBurstIsOneDigest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		d := New(testConfig(), r, hclog.NewNullLogger())
		start := time.Now()
		for i := 1; i <= 50; i++ {
			sig := "SIGSEGV"
			if i%2 == 0 {
				sig = "SIGABRT"
			}
			d.Notify(crash(i, sig))
		}
		synctest.Wait()
		if got := r.messages(); len(got) != 1 || got[0].Digest != nil || got[0].Event.PID != 1 {
			t.Fatalf("at once: %s, want the first exit alone", kinds(got))
		}
		time.Sleep(5 * time.Minute)
		synctest.Wait()
		got := r.messages()
		if len(got) != 2 || got[1].Digest == nil {
			t.Fatalf("after the window: %s, want exited digest(exited)", kinds(got))
		}
		dg := got[1].Digest
		if dg.Count != 49 || dg.Kinds[hookspec.Exited] != 49 || len(dg.Events) != MaxDigestEvents || dg.Events[MaxDigestEvents-1].PID != 50 || got[1].Event.PID != 50 {
			t.Errorf("digest %+v, want 49 exits, the last %d kept, the last pid 50", dg, MaxDigestEvents)
		}
		if !dg.Since.Equal(start) {
			t.Errorf("since %v, want %v", dg.Since, start)
		}
		if want := "49 more exits of lighttpd since 00:00, last: killed by SIGABRT"; dg.Summary() != want {
			t.Errorf("summary %q, want %q", dg.Summary(), want)
		}
		// The digest opened another window; with nothing in it, it closes
		// without a message, and the next crash goes out at once.
		time.Sleep(10 * time.Minute)
		d.Notify(crash(51, "SIGSEGV"))
		synctest.Wait()
		if got := r.messages(); len(got) != 3 || got[2].Digest != nil || got[2].Event.PID != 51 {
			t.Fatalf("later: %s, want a third message, alone", kinds(got))
		}
		d.Close()
	})
}

// gave-up never waits for the window: the digest goes out first, then it.
func TestGaveUpNotHeldBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		d := New(testConfig(), r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		d.Notify(crash(2, "SIGKILL"))
		d.Notify(hookspec.Event{Kind: hookspec.GaveUp, Instance: "lighttpd", Reason: "gave up: respawn limit reached"})
		synctest.Wait()
		if got := kinds(r.messages()); got != "exited digest(exited) gave-up" {
			t.Fatalf("sent %q at once, want exited digest(exited) gave-up", got)
		}
		d.Close()
	})
}

// Events not selected are not sent; stopped, not selected, still flushes.
func TestSelectionAndStoppedFlush(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		d := New(testConfig(), r, hclog.NewNullLogger())
		d.Notify(hookspec.Event{Kind: hookspec.Started, PID: 1})
		d.Notify(hookspec.Event{Kind: hookspec.Exited, ExitCode: 0, Clean: true})
		d.Notify(hookspec.Event{Kind: hookspec.Exited, ExitCode: 3})
		d.Notify(hookspec.Event{Kind: hookspec.Unhealthy, Reason: "HTTP 503"})
		d.Notify(hookspec.Event{Kind: hookspec.Stopped})
		synctest.Wait()
		got := r.messages()
		if kinds(got) != "exited digest(unhealthy)" || got[0].Event.ExitCode != 3 {
			t.Fatalf("sent %q, want the exit with code 3, then a digest of unhealthy", kinds(got))
		}
		d.Close()
	})
}

// A failed attempt is retried after 1s, 2s, 4s, ... while new events are
// still gathered; past Retries the message is given up and logged.
func TestRetryWithBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(n int) error {
			if n <= 3 {
				return errors.New("503")
			}
			return nil
		}}
		d := New(testConfig(), r, hclog.NewNullLogger())
		start := time.Now()
		d.Notify(crash(1, "SIGKILL"))
		synctest.Wait()
		time.Sleep(time.Minute)
		got := r.messages()
		if len(got) != 1 || r.at[0].Sub(start) != 7*time.Second {
			t.Fatalf("got %s at %v, want one message after 1+2+4 s", kinds(got), r.at)
		}
		if st := d.Stats(); st.Failed != 3 || st.Delivered != 1 {
			t.Errorf("stats %+v", st)
		}
		d.Close()
	})
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(int) error { return errors.New("down") }}
		c := testConfig()
		c.Retries = 2
		d := New(c, r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		time.Sleep(time.Hour)
		if st := d.Stats(); st.Failed != 3 || st.GivenUp != 1 || st.Delivered != 0 {
			t.Errorf("stats %+v, want 3 failed attempts and the message given up", st)
		}
		d.Close()
	})
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(int) error { return Permanent(errors.New("HTTP 400")) }}
		d := New(testConfig(), r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		synctest.Wait()
		if st := d.Stats(); st.Failed != 1 || st.GivenUp != 1 {
			t.Errorf("stats %+v, want a permanent error given up at once", st)
		}
		d.Close()
	})
}

// While the sender is stuck, the queue keeps the newest events; the dropped
// ones are counted and told about in the digest.
func TestQueueDropsOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{block: make(chan struct{})}
		c := testConfig()
		c.Queue = 4
		d := New(c, r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		synctest.Wait() // the sender holds event 1
		for i := 2; i <= 11; i++ {
			d.Notify(crash(i, "SIGKILL"))
		}
		if st := d.Stats(); st.Dropped != 6 {
			t.Fatalf("dropped %d, want 6", st.Dropped)
		}
		close(r.block)
		d.Close()
		got := r.messages()
		if len(got) != 2 || got[1].Digest == nil {
			t.Fatalf("sent %s, want exited digest", kinds(got))
		}
		dg := got[1].Digest
		if dg.Count != 4 || dg.Dropped != 6 || dg.Events[0].PID != 8 || dg.Events[3].PID != 11 {
			t.Errorf("digest %+v, want pids 8-11 and 6 dropped", dg)
		}
		if !strings.Contains(dg.Summary(), "(6 more dropped: queue full)") {
			t.Errorf("summary %q", dg.Summary())
		}
	})
}

// Close flushes the gathered digest at once, and stops retrying a receiver
// that stays down at the end of the grace period.
func TestCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{}
		d := New(testConfig(), r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		d.Notify(crash(2, "SIGKILL"))
		synctest.Wait()
		start := time.Now()
		d.Close()
		if got := kinds(r.messages()); got != "exited digest(exited)" || time.Since(start) != 0 {
			t.Fatalf("close sent %q after %v", got, time.Since(start))
		}
		d.Notify(crash(3, "SIGKILL")) // after Close: ignored
	})
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(n int) error {
			if n < 3 {
				return errors.New("down")
			}
			return nil
		}}
		c := testConfig()
		c.Backoff = 500 * time.Millisecond
		d := New(c, r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		synctest.Wait() // attempt 1 failed: the retry is due in 500ms
		d.Close()       // attempt 2 at once, 3 after 500ms
		if st := d.Stats(); st.Delivered != 1 || st.Failed != 2 {
			t.Fatalf("stats %+v, want delivered within the grace period", st)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(int) error { return errors.New("down") }}
		d := New(testConfig(), r, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		synctest.Wait()
		start := time.Now()
		d.Close()
		if el := time.Since(start); el != DefaultConfig.Grace {
			t.Errorf("close took %v, want the grace period %v", el, DefaultConfig.Grace)
		}
		if st := d.Stats(); st.GivenUp != 1 {
			t.Errorf("stats %+v, want the message given up", st)
		}
	})
}

// hanging is a Sender whose attempts last until their context ends.
type hanging struct{ started chan struct{} }

func (h hanging) Send(ctx context.Context, m Message) error {
	h.started <- struct{}{}
	<-ctx.Done()
	return ctx.Err()
}

// An attempt under way when Close is called, begun with the whole Timeout,
// is cancelled at the end of the grace period: Close never takes longer.
func TestCloseCancelsAttemptInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := hanging{started: make(chan struct{}, 10)}
		d := New(testConfig(), h, hclog.NewNullLogger())
		d.Notify(crash(1, "SIGKILL"))
		<-h.started
		time.Sleep(time.Second) // 9s of the attempt's 10s Timeout are left
		start := time.Now()
		d.Close()
		if el := time.Since(start); el != DefaultConfig.Grace {
			t.Errorf("close took %v, want the grace period %v", el, DefaultConfig.Grace)
		}
		if st := d.Stats(); st.GivenUp != 1 || st.Failed != 1 {
			t.Errorf("stats %+v, want the one attempt failed and the message given up", st)
		}
	})
}

// A Repeater's state is sent again every Resend while it lasts.
func TestResend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := repeatingRecorder{&recorder{}}
		c := testConfig()
		c.Resend = time.Minute
		c.Also = []hookspec.Kind{hookspec.Healthy}
		d := New(c, r, hclog.NewNullLogger())
		d.Notify(hookspec.Event{Kind: hookspec.Unhealthy})
		time.Sleep(3*time.Minute + time.Second)
		if got := kinds(r.messages()); got != "unhealthy repeat repeat repeat" {
			t.Fatalf("sent %q, want three repeats", got)
		}
		d.Notify(hookspec.Event{Kind: hookspec.Healthy})
		time.Sleep(3 * time.Minute)
		if got := kinds(r.messages()); got != "unhealthy repeat repeat repeat healthy" {
			t.Fatalf("sent %q after the condition ended", got)
		}
		d.Close()
	})
}

// While the receiver is down, urgent messages waiting for it are bounded by
// the queue too: the one being retried stays, the oldest after it goes.
func TestOutboxBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &recorder{fail: func(n int) error {
			if n <= 3 {
				return errors.New("down")
			}
			return nil
		}}
		c := testConfig()
		c.Queue = 3
		d := New(c, r, hclog.NewNullLogger())
		for i := 1; i <= 6; i++ {
			d.Notify(hookspec.Event{Kind: hookspec.GaveUp, Attempt: i})
			synctest.Wait()
		}
		time.Sleep(time.Minute)
		var got []int
		for _, m := range r.messages() {
			got = append(got, m.Event.Attempt)
		}
		if len(got) != 3 || got[0] != 1 || got[1] != 5 || got[2] != 6 {
			t.Errorf("delivered %v, want 1 (being retried), 5 and 6", got)
		}
		if st := d.Stats(); st.Dropped != 3 {
			t.Errorf("stats %+v, want 3 dropped", st)
		}
		d.Close()
	})
}

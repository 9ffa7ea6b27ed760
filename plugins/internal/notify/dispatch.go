package notify

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hookspec"
)

// Sender delivers one Message: one HTTP request, one mail. It is called
// from the Dispatcher's one goroutine only, so it may keep state unlocked.
// ctx carries the attempt's deadline. An error means the attempt failed and
// is retried, unless it is Permanent.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Repeater is a Sender with state to say again while it lasts: Alertmanager
// resolves an alert that is not re-sent. The Dispatcher sends it a Message
// with Repeat set when Config.Resend has passed since the last delivery and
// Repeating is true.
type Repeater interface {
	Repeating() bool
}

// Permanent marks err as one that retrying cannot cure (a 4xx answer), so
// the message is given up at once.
func Permanent(err error) error { return permanentError{err} }

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

// Stats counts what a Dispatcher did, for logs and tests.
type Stats struct {
	Delivered int // messages delivered
	Failed    int // attempts that failed
	GivenUp   int // messages given up after their retries, or at Close
	Dropped   int // events dropped from a full queue
}

// Dispatcher takes events from Notify and delivers them, coalesced, through
// a Sender, from one goroutine (see the package comment).
type Dispatcher struct {
	cfg  Config
	send Sender
	log  hclog.Logger
	wake chan struct{} // one pending wake-up for the goroutine
	done chan struct{} // closed when the goroutine has ended

	// life ends with Close's grace period. Attempts are made under it, so
	// that one begun before Close, with the whole Timeout, ends in time too.
	life    context.Context
	endLife context.CancelFunc

	mu       sync.Mutex
	in       []hookspec.Event // the queue, at most cfg.Queue
	dropped  int              // dropped since the goroutine last took the queue
	closing  bool
	deadline time.Time   // with closing: when Close stops delivering
	graceEnd *time.Timer // with closing: ends life at deadline
	stats    Stats
}

// New starts a Dispatcher; Close ends it.
func New(cfg Config, send Sender, log hclog.Logger) *Dispatcher {
	if cfg.Urgent == nil {
		cfg.Urgent = []hookspec.Kind{hookspec.GaveUp, Held}
	}
	if cfg.Queue < 1 {
		cfg.Queue = 1
	}
	d := &Dispatcher{cfg: cfg, send: send, log: log, wake: make(chan struct{}, 1), done: make(chan struct{})}
	d.life, d.endLife = context.WithCancel(context.Background())
	go d.run()
	return d
}

// Notify queues ev and returns at once. When the queue is full the oldest
// event is dropped and counted. After Close it does nothing.
func (d *Dispatcher) Notify(ev hookspec.Event) {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return
	}
	if len(d.in) >= d.cfg.Queue {
		d.in = slices.Delete(d.in, 0, 1)
		d.dropped++
		d.stats.Dropped++
	}
	d.in = append(d.in, ev)
	d.mu.Unlock()
	d.poke()
}

func (d *Dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Close sends what is pending, digests included, retrying for at most
// Config.Grace, and returns when done; what is still undelivered then is
// logged and given up. An attempt under way when Close is called is
// cancelled (its context) at the end of the grace period too. Close may be
// called more than once.
func (d *Dispatcher) Close() {
	d.mu.Lock()
	if !d.closing {
		d.closing = true
		d.deadline = time.Now().Add(d.cfg.Grace)
		d.graceEnd = time.AfterFunc(d.cfg.Grace, d.endLife)
	}
	d.mu.Unlock()
	d.poke()
	<-d.done
	d.mu.Lock()
	d.graceEnd.Stop()
	d.mu.Unlock()
	d.endLife()
}

// Stats returns the counts so far.
func (d *Dispatcher) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

func (d *Dispatcher) count(f func(*Stats)) {
	d.mu.Lock()
	f(&d.stats)
	d.mu.Unlock()
}

// take empties the queue.
func (d *Dispatcher) take() (evs []hookspec.Event, dropped int, closing bool, deadline time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	evs, d.in = d.in, nil
	dropped, d.dropped = d.dropped, 0
	return evs, dropped, d.closing, d.deadline
}

// state is the goroutine's: the window, the digest being gathered and the
// messages waiting for delivery, oldest first.
type state struct {
	windowEnd   time.Time // zero: no window open
	windowStart time.Time
	pending     *Digest // events gathered in the open window
	dropped     int     // dropped events not yet told about
	outbox      []Message
	failures    int       // failed attempts of outbox[0]
	retryAt     time.Time // when outbox[0] may be tried again; zero: now
	lastSent    time.Time // the last delivery, for Resend
	closing     bool      // Close was called and seen
}

func (d *Dispatcher) run() {
	defer close(d.done)
	var s state
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		evs, dropped, closing, deadline := d.take()
		now := time.Now()
		if dropped > 0 {
			s.dropped += dropped
			d.log.Warn("notification queue full: dropped the oldest events", "dropped", dropped, "queue", d.cfg.Queue)
		}
		for _, ev := range evs {
			d.accept(&s, ev, now)
		}
		if closing || (!s.windowEnd.IsZero() && !now.Before(s.windowEnd)) {
			d.endWindow(&s, now, !closing)
		}
		if rep, ok := d.send.(Repeater); ok && !closing && d.cfg.Resend > 0 && len(s.outbox) == 0 &&
			!now.Before(s.lastSent.Add(d.cfg.Resend)) && rep.Repeating() {
			s.outbox = append(s.outbox, Message{Repeat: true})
		}
		if closing && !s.closing {
			// A retry due after the grace period would never be made:
			// try again now, then every Backoff (attempt caps it).
			s.closing, s.retryAt = true, time.Time{}
		}
		if closing && len(s.outbox) > 0 && !now.Before(deadline) {
			d.giveUpAll(&s)
			return
		}
		if len(s.outbox) > 0 && !now.Before(s.retryAt) {
			d.attempt(&s, now, closing, deadline)
			continue // take what came in meanwhile, then the next message
		}
		if closing && len(s.outbox) == 0 {
			return
		}
		// Sleep until the next thing to do: the window's end, a retry,
		// a resend, the end of the grace period, or a new event.
		var next time.Time
		soonest := func(t time.Time) {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		soonest(s.windowEnd)
		if len(s.outbox) > 0 {
			soonest(s.retryAt)
		} else if rep, ok := d.send.(Repeater); ok && d.cfg.Resend > 0 && !closing && rep.Repeating() {
			// Repeating changes only in Send, on this goroutine.
			soonest(s.lastSent.Add(d.cfg.Resend))
		}
		if closing {
			soonest(deadline)
		}
		if !next.IsZero() {
			timer.Reset(max(next.Sub(now), 0))
		}
		select {
		case <-d.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// accept coalesces one event.
func (d *Dispatcher) accept(s *state, ev hookspec.Event, now time.Time) {
	final := ev.Kind == hookspec.Stopped || ev.Kind == hookspec.GaveUp
	if final {
		// Supervision ends: what was gathered goes out now, before it.
		d.endWindow(s, now, false)
	}
	selected := d.cfg.Events.Match(ev)
	switch {
	case !selected && !slices.Contains(d.cfg.Also, ev.Kind):
		// Subscribed only to flush (stopped, gave-up).
	case !selected || slices.Contains(d.cfg.Urgent, ev.Kind) || d.cfg.Window <= 0:
		d.push(s, d.message(s, Message{Event: ev}))
	case s.windowEnd.IsZero():
		d.push(s, d.message(s, Message{Event: ev}))
		s.windowStart, s.windowEnd = now, now.Add(d.cfg.Window)
	default:
		if s.pending == nil {
			s.pending = &Digest{Since: s.windowStart}
		}
		s.pending.add(ev)
	}
}

// message gives m the dropped count, which a single event cannot carry:
// it goes into the next digest, or a digest is opened for it.
func (d *Dispatcher) message(s *state, m Message) Message {
	if s.dropped > 0 && m.Digest == nil && s.pending == nil && !m.Repeat {
		// Say that events were lost with the event that follows them.
		m.Digest = &Digest{Since: s.windowStart, Dropped: s.dropped}
		m.Digest.add(m.Event)
		s.dropped = 0
	}
	return m
}

// endWindow sends the pending digest, if any. With reopen a digest sent opens
// the next window, so a crash loop sends one message per window; otherwise
// (and with nothing pending) no window stays open.
func (d *Dispatcher) endWindow(s *state, now time.Time, reopen bool) {
	if s.pending == nil && s.dropped == 0 {
		s.windowEnd = time.Time{}
		return
	}
	dg := s.pending
	if dg == nil {
		dg = &Digest{Since: s.windowStart}
	}
	dg.Dropped += s.dropped
	s.dropped = 0
	s.pending = nil
	var last hookspec.Event
	if n := len(dg.Events); n > 0 {
		last = dg.Events[n-1]
	}
	d.push(s, Message{Event: last, Digest: dg})
	s.windowEnd = time.Time{}
	if reopen && d.cfg.Window > 0 {
		s.windowStart, s.windowEnd = now, now.Add(d.cfg.Window)
	}
}

// push adds m to the outbox, which, while the receiver is down, is bounded
// by Config.Queue too: past it the oldest message after the one being
// retried is dropped, counted and logged.
func (d *Dispatcher) push(s *state, m Message) {
	s.outbox = append(s.outbox, m)
	if len(s.outbox) > d.cfg.Queue && len(s.outbox) > 1 {
		lost := s.outbox[1]
		s.outbox = slices.Delete(s.outbox, 1, 2)
		d.count(func(st *Stats) { st.Dropped++ })
		d.log.Warn("notifications waiting for delivery past the queue: dropped the oldest", "kind", string(lost.Event.Kind), "digest", lost.Digest != nil, "queue", d.cfg.Queue)
	}
}

// attempt delivers s.outbox[0] once, and on failure schedules the retry or
// gives the message up.
func (d *Dispatcher) attempt(s *state, now time.Time, closing bool, deadline time.Time) {
	m := s.outbox[0]
	timeout := d.cfg.Timeout
	if closing {
		timeout = min(timeout, deadline.Sub(now))
	}
	ctx, cancel := context.WithTimeout(d.life, timeout)
	err := d.send.Send(ctx, m)
	cancel()
	if err == nil {
		s.outbox = slices.Delete(s.outbox, 0, 1)
		s.failures, s.retryAt, s.lastSent = 0, time.Time{}, time.Now()
		d.count(func(st *Stats) { st.Delivered++ })
		d.log.Debug("notification delivered", "kind", string(m.Event.Kind), "digest", m.Digest != nil, "repeat", m.Repeat)
		return
	}
	d.count(func(st *Stats) { st.Failed++ })
	s.failures++
	if IsPermanent(err) || s.failures > d.cfg.Retries {
		d.log.Error("notification not delivered; giving it up", "kind", string(m.Event.Kind), "attempts", s.failures, "error", err)
		s.outbox = slices.Delete(s.outbox, 0, 1)
		s.failures, s.retryAt = 0, time.Time{}
		d.count(func(st *Stats) { st.GivenUp++ })
		return
	}
	wait := backoff(d.cfg.Backoff, s.failures)
	if closing {
		wait = d.cfg.Backoff // no doubling within the grace period
	}
	s.retryAt = time.Now().Add(wait)
	d.log.Warn("notification not delivered; will retry", "kind", string(m.Event.Kind), "attempt", s.failures, "retry_in", wait.String(), "error", err)
}

// giveUpAll ends Close's grace period.
func (d *Dispatcher) giveUpAll(s *state) {
	d.log.Error("shutting down: notifications not delivered within the grace period", "lost", len(s.outbox), "grace", d.cfg.Grace.String())
	n := len(s.outbox)
	s.outbox = nil
	d.count(func(st *Stats) { st.GivenUp += n })
}

// backoff is the delay before retry n (1, 2, ...): first, doubled n-1 times,
// at most maxBackoff.
func backoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

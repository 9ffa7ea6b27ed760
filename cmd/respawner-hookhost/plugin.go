package main

import (
	"fmt"

	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/pkg/hooks"
	"golang.org/x/sys/unix"
)

// queueSize bounds each plugin's backlog of notifications. When it is full
// the oldest is dropped: a slow plugin loses history, never the loop's time.
// It holds what a crash loop of 100 restarts a second says (4 events each)
// within burstGap, for a plugin that listens; an event's output is at most
// 4 KiB, so the worst case is 2 MiB of the host's memory.
const queueSize = 512

// plugin is one configured plugin process and its delivery queue.
type plugin struct {
	spec hookwire.PluginSpec
	h    *host
	log  hclog.Logger

	mu       sync.Mutex
	c        *hooks.Client // nil while restarting
	info     hooks.Info
	sched    *hooks.ProbeConfig
	stopping bool
	restarts int       // consecutive crashes, for backoff
	launched time.Time // when the current process was launched

	queue   chan hooks.Event
	dropped int           // events dropped in the current run of drops (warned of at its first)
	ending  chan struct{} // closed by stop: what is queued goes at once
	done    chan struct{} // closed when deliver has returned
}

// burstGap is how long a plugin that only listens (no veto, no probe)
// waits after a delivery before the next one: during a crash loop it is
// woken once a second with what came meanwhile, not at every restart,
// while the first event after a quiet second goes at once. Each wake-up of
// a plugin costs the next restarts a little on a small machine, whatever
// it does (docs/BENCHMARKS.md, notify); its events wait at most this long.
const burstGap = time.Second

// start launches and configures the plugin; a bad option is an error that
// names it, and fails respawner's start.
func (p *plugin) start() error {
	c, in, sched, err := p.launch()
	if err != nil {
		return err
	}
	p.c, p.info, p.sched, p.launched = c, in, sched, time.Now()
	p.queue = make(chan hooks.Event, queueSize)
	p.ending = make(chan struct{})
	p.done = make(chan struct{})
	go p.watch(c)
	return nil
}

func (p *plugin) launch() (*hooks.Client, hooks.Info, *hooks.ProbeConfig, error) {
	// Checked again at each launch, relaunches included: respawner checked
	// it at start, but a plugin may be relaunched days later.
	path, err := hookwire.SafeExecutable("plugin", p.spec.Path)
	if err != nil {
		return nil, hooks.Info{}, nil, err
	}
	c, err := hooks.Launch(path, hooks.LaunchOptions{Logger: p.h.log, SHA256: pinOf(p.spec.SHA256), SocketDir: p.h.sockDir})
	if err != nil {
		return nil, hooks.Info{}, nil, err
	}
	ctx, cancel := callCtx(p.spec.Timeout)
	sched, err := c.Configure(ctx, p.spec.Options)
	cancel()
	if err != nil {
		c.Kill()
		return nil, hooks.Info{}, nil, err
	}
	ctx, cancel = callCtx(p.spec.Timeout)
	in, err := c.Info(ctx)
	cancel()
	if err != nil {
		c.Kill()
		return nil, hooks.Info{}, nil, fmt.Errorf("info: %w", err)
	}
	return c, in, sched, nil
}

func (p *plugin) infoMsg() hookwire.PluginInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	pi := infoOf(p.spec.Name, p.info, p.sched)
	pi.Path = p.spec.Path
	return pi
}

func (p *plugin) client() *hooks.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.c
}

func (p *plugin) wants(k hooks.Kind) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Wants(k)
}

func (p *plugin) canVeto() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.info.Veto
}

// enqueue never blocks: when the queue is full the oldest event goes. The
// first drop of a run of them is logged at once, the count when the queue
// has room again (a crash loop must not become a line per event).
func (p *plugin) enqueue(ev hooks.Event) {
	for {
		select {
		case p.queue <- ev:
			if p.dropped > 0 && len(p.queue) < queueSize/2 {
				p.log.Warn("events dropped while the queue was full", "dropped", p.dropped)
				p.dropped = 0
			}
			return
		default:
		}
		select {
		case <-p.queue:
			if p.dropped++; p.dropped == 1 {
				p.log.Warn("event queue full; dropping the oldest events")
			}
		default:
		}
	}
}

// listens reports whether the plugin only listens: no veto, no probe.
func (p *plugin) listens() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.info.Veto && !p.info.Probe
}

// deliver sends queued events one by one, each under the plugin's
// deadline, in bursts: what is queued goes together, and a plugin that only
// listens gets the next burst burstGap after the last began at the
// earliest (at once when respawner stops).
func (p *plugin) deliver() {
	defer close(p.done)
	var next time.Time
	for ev := range p.queue {
		if wait := time.Until(next); wait > 0 && p.listens() {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.ending:
				t.Stop()
			}
		}
		next = time.Now().Add(burstGap)
		p.notify(ev)
		for burst := true; burst; {
			select {
			case ev, ok := <-p.queue:
				if !ok {
					return
				}
				p.notify(ev)
			default:
				burst = false
			}
		}
	}
}

func (p *plugin) notify(ev hooks.Event) {
	c := p.client()
	if c == nil {
		p.log.Warn("plugin restarting; event not delivered", "event", ev.Kind)
		return
	}
	ctx, cancel := callCtx(p.spec.Timeout)
	err := c.Notify(ctx, ev)
	cancel()
	if err != nil {
		p.log.Warn("notify failed", "event", ev.Kind, "error", err)
	}
}

func (p *plugin) restartPending(ev hooks.Event) (hooks.Verdict, error) {
	c := p.client()
	if c == nil {
		return hooks.Allow(), fmt.Errorf("plugin is restarting")
	}
	ctx, cancel := callCtx(p.spec.Timeout)
	defer cancel()
	return c.RestartPending(ctx, ev)
}

func (p *plugin) probe() (hooks.ProbeResult, bool) {
	c := p.client()
	if c == nil {
		return hooks.ProbeResult{Reason: "probe plugin is restarting"}, false
	}
	d := p.spec.Timeout
	if p.sched != nil && p.sched.Timeout > 0 {
		d = p.sched.Timeout + 250*time.Millisecond // the probe bounds itself; this is a guard
	}
	ctx, cancel := callCtx(d)
	defer cancel()
	res, err := c.Probe(ctx)
	if err != nil && res.Reason == "" {
		res.Reason = err.Error()
	}
	return res, true
}

// watch waits on the plugin process's pidfd (no polling) and, when it dies
// unasked, launches and configures a new one after a backoff.
func (p *plugin) watch(c *hooks.Client) {
	fd, err := unix.PidfdOpen(c.PID(), 0)
	if err != nil {
		return // gone already, or in process: nothing to watch
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			break
		}
	}
	unix.Close(fd)
	p.mu.Lock()
	if p.stopping || p.c != c {
		p.mu.Unlock()
		return
	}
	p.c = nil
	if time.Since(p.launched) >= hookwire.StableRun {
		p.restarts = 0 // it ran long enough: a new streak
	}
	delay := hookwire.RestartDelay(p.restarts)
	p.restarts++
	p.mu.Unlock()
	c.Kill() // lets go-plugin reap it and release its resources
	p.log.Error("plugin exited; restarting it", "pid", c.PID(), "in", delay.String())
	time.AfterFunc(delay, p.relaunch)
}

func (p *plugin) relaunch() {
	p.mu.Lock()
	stopping := p.stopping
	p.mu.Unlock()
	if stopping {
		return
	}
	c, in, sched, err := p.launch()
	if err != nil {
		p.mu.Lock()
		delay := hookwire.RestartDelay(p.restarts)
		p.restarts++
		p.mu.Unlock()
		p.log.Error("plugin restart failed", "error", err, "retry_in", delay.String())
		time.AfterFunc(delay, p.relaunch)
		return
	}
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		c.Kill()
		return
	}
	p.c, p.info, p.sched, p.launched = c, in, sched, time.Now()
	p.mu.Unlock()
	p.log.Info("plugin restarted", "pid", c.PID())
	go p.watch(c)
}

// stop delivers what is queued, within the plugin's deadline, then ends it.
func (p *plugin) stop() {
	p.mu.Lock()
	if p.stopping {
		p.mu.Unlock()
		return
	}
	p.stopping = true
	p.mu.Unlock()
	if p.queue != nil {
		close(p.ending)
		close(p.queue)
		select {
		case <-p.done:
		case <-time.After(p.spec.Timeout):
			p.log.Warn("plugin did not take its last events in time")
		}
	}
	if c := p.client(); c != nil {
		c.Kill()
	}
}

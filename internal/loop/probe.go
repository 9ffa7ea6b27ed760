package loop

import (
	"time"

	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/pkg/hookspec"
)

// prober schedules one plugin's health probe on its own timerfd, as a
// Kubernetes liveness probe (periodSeconds): the first probe InitialDelay
// after probing starts (0: at once), then one every Interval, at a fixed rate
// from the start of each period, whatever each probe took. Probes never
// overlap: a probe still out when the next period starts makes that period's
// probe skipped, and the next goes at the following period. It probes only
// while the program runs; the host bounds each probe by the plugin's
// timeout, and a guard deadline (Timeout + guardSlack after the probe's
// period started) covers a host that never answers. One timerfd serves both
// deadlines: it is armed for whichever comes first.
type prober struct {
	plugin   string
	sched    hookspec.ProbeConfig
	timer    int       // timerfd, -1 until first armed
	inflight uint64    // id of the probe out, 0 when none
	guard    time.Time // with inflight: when to stop waiting for its answer
	next     time.Time // start of the next period: the next probe is due then
	active   bool      // the program runs and probing is on
	run      time.Time // start of the run being probed: a new run starts over
}

// guardSlack is added to a probe's timeout before the loop gives up on an answer.
const guardSlack = time.Second

func (l *Loop) initProbers() {
	for _, in := range l.host.infos {
		if in.Probe && in.Sched != nil {
			l.probers = append(l.probers, &prober{plugin: in.Name, sched: *in.Sched, timer: -1})
			// The machine counts the results against the thresholds.
			l.opt.Machine.Probes = append(l.opt.Machine.Probes, machine.Probe{Plugin: in.Name, Failures: in.Sched.FailureThreshold, Successes: in.Sched.SuccessThreshold})
		}
	}
}

// syncProbes starts probing when the program has started running and stops
// it when the program is no longer running (backoff, starting, stopping).
// Every run starts over (counts, health, the first probe after the initial
// delay): with -t 0, exit, restart and start happen in one step, so the
// program is running before and after it and only the run's start time
// tells a new run from the old.
func (l *Loop) syncProbes() {
	running := l.m.State() == machine.Running
	run := l.m.Snapshot().Started
	for _, p := range l.probers {
		switch {
		case running && (!p.active || !p.run.Equal(run)):
			p.active, p.inflight = true, 0
			p.run = run
			// The grid of periods starts when probing does: for a -p daemon,
			// when its pidfile has been read, not when its launcher started.
			p.next = time.Now().Add(max(p.sched.InitialDelay, 0))
			l.armProbe(p)
		case !running && p.active:
			p.active, p.inflight = false, 0
			if p.timer >= 0 {
				disarmTimerfd(p.timer)
			}
		}
	}
}

// armProbe arms p's timer for its next deadline: the guard of the probe out,
// if that comes before the next period, else the next period.
func (l *Loop) armProbe(p *prober) {
	at := p.next
	if p.inflight != 0 && p.guard.Before(at) {
		at = p.guard
	}
	if p.timer < 0 {
		fd, err := newTimerfd()
		if err != nil {
			l.log.Error("probe timer", "plugin", p.plugin, "error", err)
			return
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			closeFD(fd)
			l.log.Error("probe timer", "plugin", p.plugin, "error", err)
			return
		}
		p.timer = fd
	}
	if err := armTimerfd(p.timer, time.Until(at)); err != nil {
		l.log.Error("probe timer", "plugin", p.plugin, "error", err)
	}
}

// probeTimer: the guard of a probe that never came back, the start of a
// period, or both.
func (l *Loop) probeTimer(p *prober) {
	if !p.active {
		return
	}
	now := time.Now()
	if p.inflight != 0 && !now.Before(p.guard) {
		p.inflight = 0
		l.probeResult(p, hookspec.ProbeResult{Reason: "no answer from the hook host"}, true)
		if !p.active {
			return
		}
	}
	if now.Before(p.next) {
		l.armProbe(p) // the guard fired before the period
		return
	}
	// The period that starts now (or started a moment ago: the loop was
	// busy), and the start of the one after it. Periods that went by
	// unseen, the machine suspended, say, are skipped, not made up for.
	due := p.next
	if late := now.Sub(due); late >= p.sched.Interval {
		due = due.Add(late / p.sched.Interval * p.sched.Interval)
	}
	p.next = due.Add(p.sched.Interval)
	switch {
	case p.inflight != 0:
		// Never two probes at once: this period's probe is skipped.
		l.log.Debug("probe skipped: the previous one has not answered yet", "plugin", p.plugin)
	case l.host.sock < 0:
		l.probeResult(p, hookspec.ProbeResult{Reason: "hook host not running"}, true)
	default:
		l.host.nextID++
		p.inflight = l.host.nextID
		p.guard = due.Add(p.sched.Timeout + guardSlack)
		if err := l.hostSend(hookwire.Msg{T: hookwire.TProbe, ID: p.inflight, Plugin: p.plugin}); err != nil {
			p.inflight = 0
			l.probeResult(p, hookspec.ProbeResult{Reason: "probe not delivered: " + err.Error()}, true)
		}
	}
	if p.active {
		l.armProbe(p)
	}
}

// probed: the host's answer to a probe.
func (l *Loop) probed(m hookwire.Msg) {
	for _, p := range l.probers {
		if p.plugin == m.Plugin && p.inflight != 0 && p.inflight == m.ID && m.Probe != nil {
			p.inflight = 0
			l.probeResult(p, *m.Probe, m.Unknown)
			return
		}
	}
}

// probeResult hands a result to the Machine, which counts it against the
// probe's thresholds (and restarts an unhealthy program through the normal
// restart path), and schedules the next probe. unknown: the probe did not run.
func (l *Loop) probeResult(p *prober, r hookspec.ProbeResult, unknown bool) {
	before := l.probeHealth(p.plugin)
	l.step(machine.Probed{Plugin: p.plugin, Healthy: r.Healthy, Reason: r.Reason, Unknown: unknown})
	after := l.probeHealth(p.plugin)
	switch {
	case unknown:
		// The probe did not run (plugin or host restarting): a broken
		// plugin must not get a healthy program restarted.
		l.log.Warn("probe could not run", "plugin", p.plugin, "reason", r.Reason)
	case r.Healthy:
		l.log.Trace("probe ok", "plugin", p.plugin, "result", r.Reason)
	default:
		l.log.Warn("probe failed", "plugin", p.plugin, "result", r.Reason, "consecutive", after.Fails, "threshold", p.sched.FailureThreshold)
	}
	if after.Health != before.Health {
		switch after.Health {
		case "healthy":
			l.log.Info("healthy", "plugin", p.plugin, "result", r.Reason)
		case "unhealthy":
			l.log.Warn("unhealthy: restarting", "plugin", p.plugin, "reason", r.Reason)
		}
	}
	if p.active {
		l.armProbe(p) // the next period; no longer the guard
	}
}

func (l *Loop) probeHealth(plugin string) machine.ProbeHealth {
	for _, h := range l.m.Snapshot().Health {
		if h.Plugin == plugin {
			return h
		}
	}
	return machine.ProbeHealth{}
}

// health sums the probes up for status: unhealthy if any is, healthy if all
// are, unknown otherwise (or without probes).
func (l *Loop) health() (string, string) {
	hs := l.m.Snapshot().Health
	if len(hs) == 0 {
		return "unknown", ""
	}
	all := true
	last := ""
	for _, h := range hs {
		if h.Health == "unhealthy" {
			return "unhealthy", h.Plugin + ": " + h.Last
		}
		if h.Health != "healthy" {
			all = false
		}
		if h.Last != "" {
			last = h.Plugin + ": " + h.Last
		}
	}
	if all {
		return "healthy", last
	}
	return "unknown", last
}

func (l *Loop) closeProbers() {
	for _, p := range l.probers {
		if p.timer >= 0 {
			closeFD(p.timer)
		}
	}
}

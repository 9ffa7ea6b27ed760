package loop

import (
	"time"

	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/pkg/hookspec"
)

// prober schedules one plugin's health probe on its own timerfd, as a
// Kubernetes liveness probe: the first after the initial delay (or one
// interval), then one interval after each result, so probes never overlap.
// It probes only while the program runs; the host bounds each probe by the
// plugin's timeout, and the timer, re-armed as a guard while a probe is out,
// covers a host that never answers.
type prober struct {
	plugin   string
	sched    hookspec.ProbeConfig
	timer    int       // timerfd, -1 until first armed
	inflight uint64    // id of the probe out, 0 when none
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
			first := p.sched.InitialDelay
			if first <= 0 {
				first = p.sched.Interval
			}
			l.armProbe(p, first)
		case !running && p.active:
			p.active, p.inflight = false, 0
			if p.timer >= 0 {
				disarmTimerfd(p.timer)
			}
		}
	}
}

func (l *Loop) armProbe(p *prober, d time.Duration) {
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
	if err := armTimerfd(p.timer, d); err != nil {
		l.log.Error("probe timer", "plugin", p.plugin, "error", err)
	}
}

// probeTimer: time for a probe, or the guard of one that never came back.
func (l *Loop) probeTimer(p *prober) {
	if !p.active {
		return
	}
	if p.inflight != 0 {
		p.inflight = 0
		l.probeResult(p, hookspec.ProbeResult{Reason: "no answer from the hook host"}, true)
		return
	}
	if l.host.sock < 0 {
		l.probeResult(p, hookspec.ProbeResult{Reason: "hook host not running"}, true)
		return
	}
	l.host.nextID++
	p.inflight = l.host.nextID
	if err := l.hostSend(hookwire.Msg{T: hookwire.TProbe, ID: p.inflight, Plugin: p.plugin}); err != nil {
		p.inflight = 0
		l.probeResult(p, hookspec.ProbeResult{Reason: "probe not delivered: " + err.Error()}, true)
		return
	}
	l.armProbe(p, p.sched.Timeout+guardSlack)
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
		l.armProbe(p, p.sched.Interval)
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

// Command testprobe is a health-probe plugin (Prober, ProbeConfigurer) for
// respawner's integration tests. Build it as respawner-plugin-testprobe.
// Options:
//
//	unhealthy-while=PATH   the probe fails while PATH exists
//	sleep=DUR              sleep this long in each probe, deaf to the deadline
//	record=PATH            append "probe" as a line to PATH on each probe
//	interval, timeout, initial-delay, failures, successes
//	                       the schedule (hooks.Options.ProbeConfig)
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

type testprobe struct {
	mu             sync.Mutex // guards the fields below, set by Configure
	unhealthyWhile string
	sleep          time.Duration
	record         string
	schedule       hooks.ProbeConfig
}

func (p *testprobe) Configure(ctx context.Context, opts *hooks.Options) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unhealthyWhile = opts.String("unhealthy-while", "")
	p.sleep = opts.Duration("sleep", 0)
	p.record = opts.String("record", "")
	p.schedule = opts.ProbeConfig(hooks.DefaultProbeConfig)
	return opts.Err()
}

func (p *testprobe) ProbeConfig() hooks.ProbeConfig {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.schedule
}

func (p *testprobe) Probe(ctx context.Context) (hooks.ProbeResult, error) {
	p.mu.Lock()
	unhealthyWhile, sleep, record := p.unhealthyWhile, p.sleep, p.record
	p.mu.Unlock()
	if record != "" {
		f, err := os.OpenFile(record, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return hooks.ProbeResult{}, fmt.Errorf("record: %w", err)
		}
		fmt.Fprintln(f, "probe")
		f.Close()
	}
	if sleep > 0 {
		time.Sleep(sleep)
	}
	if unhealthyWhile != "" {
		if _, err := os.Stat(unhealthyWhile); err == nil {
			return hooks.ProbeResult{Healthy: false, Reason: unhealthyWhile + " exists"}, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return hooks.ProbeResult{}, err
		}
	}
	return hooks.ProbeResult{Healthy: true, Reason: "ok"}, nil
}

func main() { hooks.Serve(&testprobe{}) }

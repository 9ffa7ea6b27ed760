// Command tcpprobe is a respawner health probe: the program is healthy while
// a TCP connection to addr succeeds.
//
//	respawner start --plugin tcpprobe:addr=127.0.0.1:8080,interval=5s ./server
package main

import (
	"context"
	"net"

	"github.com/respawner/respawner/pkg/hooks"
)

type tcpProbe struct {
	addr  string
	sched hooks.ProbeConfig
}

var (
	_ hooks.Configurer      = (*tcpProbe)(nil)
	_ hooks.ProbeConfigurer = (*tcpProbe)(nil)
	_ hooks.Prober          = (*tcpProbe)(nil)
)

func (p *tcpProbe) Configure(ctx context.Context, opts *hooks.Options) error {
	p.addr = opts.String("addr", "127.0.0.1:80")
	p.sched = opts.ProbeConfig(hooks.DefaultProbeConfig)
	return opts.Err()
}

func (p *tcpProbe) ProbeConfig() hooks.ProbeConfig { return p.sched }

func (p *tcpProbe) Probe(ctx context.Context) (hooks.ProbeResult, error) {
	ctx, cancel := context.WithTimeout(ctx, p.sched.Timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return hooks.ProbeResult{Reason: err.Error()}, nil
	}
	c.Close()
	return hooks.ProbeResult{Healthy: true, Reason: "connected"}, nil
}

func main() { hooks.Serve(&tcpProbe{}) }

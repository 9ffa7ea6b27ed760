package notify

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hookspec"
)

// Build reads a notifier's options: the Sender that delivers its messages
// and the Config of the Dispatcher in front of it. Errors are the options'
// own (hooks.Options.Err).
type Build func(opts *hooks.Options) (Sender, Config, error)

// Plugin is a notifier as a hook plugin (a hooks.Notifier, Configurer,
// Subscriber and Versioner): Configure builds the Sender and starts a
// Dispatcher, Notify hands it each event and returns at once, Close flushes
// it. A plugin's main serves it and calls Close after hooks.Serve returns.
type Plugin struct {
	build   Build
	version string
	log     hclog.Logger

	mu   sync.Mutex
	cfg  Config
	disp *Dispatcher
}

var (
	_ hooks.Configurer = (*Plugin)(nil)
	_ hooks.Notifier   = (*Plugin)(nil)
	_ hooks.Subscriber = (*Plugin)(nil)
	_ hooks.Versioner  = (*Plugin)(nil)
)

// NewPlugin returns the plugin that build configures; version is what
// `respawner plugins` shows.
func NewPlugin(version string, log hclog.Logger, build Build) *Plugin {
	return &Plugin{build: build, version: version, log: log}
}

// Configure reads and checks the options and starts the dispatcher (a
// second Configure replaces the first, flushing it).
func (p *Plugin) Configure(ctx context.Context, opts *hooks.Options) error {
	s, cfg, err := p.build(opts)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disp != nil {
		p.disp.Close()
	}
	p.cfg = cfg
	p.disp = New(cfg, s, p.log)
	return nil
}

// Notify queues ev and returns at once: delivery is off the event path.
func (p *Plugin) Notify(ctx context.Context, ev hookspec.Event) error {
	if d := p.dispatcher(); d != nil {
		d.Notify(ev)
	}
	return nil
}

// Events lists the kinds the configuration needs (Config.Subscribe).
func (p *Plugin) Events() []hookspec.Kind {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.disp == nil {
		return DefaultConfig.Subscribe()
	}
	return p.cfg.Subscribe()
}

// Version is the version stamped at build time.
func (p *Plugin) Version() string { return p.version }

// Close delivers what is pending within the grace period.
func (p *Plugin) Close() {
	if d := p.dispatcher(); d != nil {
		d.Close()
	}
}

// Stats are the dispatcher's counts; zero before Configure.
func (p *Plugin) Stats() Stats {
	if d := p.dispatcher(); d != nil {
		return d.Stats()
	}
	return Stats{}
}

func (p *Plugin) dispatcher() *Dispatcher {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.disp
}

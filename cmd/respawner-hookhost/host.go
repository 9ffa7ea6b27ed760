package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/respawner/respawner/pkg/hooks/durlog"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hooks/pluginproc"
	"golang.org/x/sys/unix"
)

// host talks to respawner over one SOCK_SEQPACKET socket, read and written
// through the Go netpoller (a blocking read would park a thread and hand its
// P around on every packet, which costs a veto question hundreds of µs).
type host struct {
	sock    int
	conn    *net.UnixConn
	sendMu  sync.Mutex
	log     hclog.Logger
	plugins []*plugin
	asks    sync.WaitGroup
	// sockDir is where the plugins' socket directories go: respawner's
	// directory for this host (it removes it once the host is reaped,
	// however the host ended), or "" for os.TempDir().
	sockDir string
}

func newHost(fd int) (*host, error) {
	if _, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil {
		return nil, fmt.Errorf("fd %d is not respawner's socket: %w", fd, err)
	}
	unix.CloseOnExec(fd) // plugins must not inherit it
	f := os.NewFile(uintptr(fd), "respawner")
	c, err := net.FileConn(f) // dups fd into a non-blocking, netpoll-driven conn
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("fd %d: %w", fd, err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("fd %d is not a unix socket", fd)
	}
	h := &host{sock: -1, conn: uc}
	h.log = durlog.Wrap(hclog.New(&hclog.LoggerOptions{
		Name:       "hooks",
		Level:      hclog.Info, // respawner's level arrives with the configuration
		JSONFormat: true,
		Output:     logWriter{h},
	}))
	return h, nil
}

// logWriter turns each JSON log line into a TLog message for respawner's log.
type logWriter struct{ h *host }

func (w logWriter) Write(p []byte) (int, error) {
	line := string(p)
	for len(line) > 0 && line[len(line)-1] == '\n' {
		line = line[:len(line)-1]
	}
	w.h.send(hookwire.Msg{T: hookwire.TLog, Line: line})
	return len(p), nil
}

func (h *host) send(m hookwire.Msg) {
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	if len(b) > hookwire.MaxPacket && m.T == hookwire.TLog {
		// respawner reads at most MaxPacket bytes a packet: say what was
		// dropped rather than send what it cannot read.
		m.Line = fmt.Sprintf(`{"@level":"warn","@module":"hooks","@message":"log line too long for respawner's log; dropped","bytes":%d}`, len(m.Line))
		if b, err = json.Marshal(m); err != nil {
			return
		}
	}
	h.sendMu.Lock()
	defer h.sendMu.Unlock()
	h.conn.Write(b) // one packet; an error means respawner is gone
}

func (h *host) recv(buf []byte) (hookwire.Msg, error) {
	n, err := h.conn.Read(buf)
	if err != nil {
		return hookwire.Msg{}, err
	}
	if n == 0 {
		return hookwire.Msg{}, errors.New("respawner closed the socket")
	}
	return hookwire.Decode(buf[:n])
}

// run serves respawner until it says shutdown or goes away.
func (h *host) run() int {
	buf := make([]byte, 1<<20)
	m, err := h.recv(buf)
	if err != nil || m.T != hookwire.TConfig {
		h.send(hookwire.Msg{T: hookwire.TError, Error: fmt.Sprintf("hook host: no configuration (%v)", err)})
		return 1
	}
	if m.Level != "" {
		h.log.SetLevel(hclog.LevelFromString(m.Level)) // plugins inherit it (Launch passes it on)
	}
	if h.sockDir = m.SocketDir; h.sockDir != "" {
		// Each plugin's Kill removes its own socket directory; this removes
		// the host's, so that a host whose respawner was killed, and which
		// shuts down by itself, leaves nothing behind either.
		defer os.RemoveAll(h.sockDir)
	}
	infos := make([]hookwire.PluginInfo, 0, len(m.Plugins))
	for _, spec := range m.Plugins {
		p := &plugin{spec: spec, h: h, log: h.log.Named(spec.Name)}
		if err := p.start(); err != nil {
			h.send(hookwire.Msg{T: hookwire.TError, Error: hookwire.Bound(fmt.Sprintf("plugin %s: %v", spec.Name, err), hookwire.MaxError)})
			h.shutdown()
			return 1
		}
		h.plugins = append(h.plugins, p)
		infos = append(infos, p.infoMsg())
		go p.deliver()
	}
	h.send(hookwire.Msg{T: hookwire.TReady, Infos: infos})
	for {
		m, err := h.recv(buf)
		if err != nil {
			break // respawner is gone
		}
		switch m.T {
		case hookwire.TEvent:
			if m.Event != nil {
				h.event(*m.Event)
			}
		case hookwire.TAsk:
			if m.Event != nil {
				ev := *m.Event
				for _, p := range h.plugins {
					// A plugin that can veto gets the question itself; the
					// others may still want to hear of it.
					if !p.canVeto() && p.wants(ev.Kind) {
						p.enqueue(ev)
					}
				}
				h.asks.Add(1)
				go h.ask(m.ID, ev)
			}
		case hookwire.TProbe:
			go h.probe(m.ID, m.Plugin)
		case hookwire.TShutdown:
			h.shutdown()
			return 0
		}
	}
	h.shutdown()
	return 0
}

func (h *host) event(ev hooks.Event) {
	for _, p := range h.plugins {
		if p.wants(ev.Kind) {
			p.enqueue(ev)
		}
	}
}

// ask puts restart-pending to every plugin that can veto, all at once, each
// under its own deadline, and answers with the strictest verdict. No answer,
// an error, a panic or a crash counts as allow.
func (h *host) ask(id uint64, ev hooks.Event) {
	defer h.asks.Done()
	type answer struct {
		p *plugin
		v hooks.Verdict
	}
	var mu sync.Mutex
	var answers []answer
	var wg sync.WaitGroup
	askOne := func(p *plugin) {
		v, err := p.restartPending(ev)
		if err != nil {
			p.log.Warn("restart-pending failed; counted as allow", "error", err)
			return
		}
		mu.Lock()
		answers = append(answers, answer{p, v})
		mu.Unlock()
	}
	var vetoers []*plugin
	for _, p := range h.plugins {
		if p.canVeto() {
			vetoers = append(vetoers, p)
		}
	}
	// All at once, each under its own deadline; the last one in this
	// goroutine, so a single vetoer costs no extra goroutine hand-off.
	for i, p := range vetoers {
		if i == len(vetoers)-1 {
			askOne(p)
			break
		}
		wg.Add(1)
		go func() { defer wg.Done(); askOne(p) }()
	}
	wg.Wait()
	best, from := hooks.Allow(), ""
	for _, a := range answers {
		if s := hooks.Strictest(best, a.v); s != best {
			best, from = s, a.p.spec.Name
		}
	}
	if from != "" && best.Reason != "" && best.Decision != hooks.DecisionAllow {
		best.Reason = from + ": " + best.Reason
	}
	// A plugin's reason may be any length; the verdict must reach respawner
	// whole, in one packet.
	best.Reason = hookwire.Bound(best.Reason, hookwire.MaxReason)
	h.send(hookwire.Msg{T: hookwire.TVerdict, ID: id, Plugin: from, Verdict: &best})
}

func (h *host) probe(id uint64, name string) {
	for _, p := range h.plugins {
		if p.spec.Name == name {
			res, ran := p.probe()
			res.Reason = hookwire.Bound(res.Reason, hookwire.MaxReason)
			h.send(hookwire.Msg{T: hookwire.TProbed, ID: id, Plugin: name, Probe: &res, Unknown: !ran})
			return
		}
	}
	h.send(hookwire.Msg{T: hookwire.TProbed, ID: id, Plugin: name, Probe: &hooks.ProbeResult{Reason: "no such plugin"}, Unknown: true})
}

// shutdown delivers what is queued (bounded by each plugin's deadline) and
// stops every plugin process.
func (h *host) shutdown() {
	var wg sync.WaitGroup
	for _, p := range h.plugins {
		wg.Add(1)
		go func() { defer wg.Done(); p.stop() }()
	}
	wg.Wait()
	// Whatever the plugins started and left behind goes with them.
	pluginproc.KillOrphans(func(pid int) {
		h.log.Debug("killed a plugin's orphan", "pid", pid)
	})
}

// pinOf decodes a --plugin sha256 option.
func pinOf(s string) []byte {
	if s == "" {
		return nil
	}
	b, _ := hex.DecodeString(s)
	return b
}

// callCtx bounds one plugin call by the plugin's deadline.
func callCtx(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

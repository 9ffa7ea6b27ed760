package loop

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/internal/keeper"
	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/internal/runenv"
	"github.com/respawner/respawner/pkg/hookspec"
	"golang.org/x/sys/unix"
)

// HookOptions configure hook plugins. The plugins run under a separate host
// process (respawner-hookhost) that links go-plugin and gRPC, so the core
// never pays for them when no --plugin is given.
type HookOptions struct {
	HostPath string                // the respawner-hookhost binary
	Plugins  []hookwire.PluginSpec // resolved --plugin flags
	// StartTimeout bounds launching and configuring every plugin.
	StartTimeout time.Duration
}

// hookHost is the loop's side of the host process: its pid and pidfd, and
// the SOCK_SEQPACKET socket it talks over (one JSON message per packet).
type hookHost struct {
	pid, pidfd, sock int
	infos            []hookwire.PluginInfo
	nextID           uint64
	askID            uint64 // the restart-pending question out, 0 when none
	dropped          int    // notifications lost because the host was not reading
	restarts         int    // host restarts, for backoff
	started          time.Time
	askedAt          time.Time // when the question went out, for the log
	outbox           []hookspec.Event
	holding          bool // the loop holds the outbox across a step
	starting         bool // a restarted host has not said "ready" yet
	buf              []byte
	// dir is this host's own directory for its plugins' unix sockets
	// (hostDirPattern in $TMPDIR, mode 0700), "" when none: removed, with
	// whatever is left in it, once the host has been reaped.
	dir string
}

func hclogLevel(log hclog.Logger) string {
	if lv := log.GetLevel(); lv != hclog.NoLevel && lv != hclog.Off {
		return lv.String()
	}
	return "info"
}

// hostEnv is respawner's environment for the host (RESPAWNER_* variables
// such as RESPAWNER_SMTP_PASSWORD included), with GOMAXPROCS=1 unless
// the operator set GOMAXPROCS: the host waits on I/O, and with a P per core
// every hand-off between its goroutines wakes another thread.
func hostEnv(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "GOMAXPROCS=") {
			return env
		}
	}
	return append(slices.Clip(env), "GOMAXPROCS=1")
}

// hostDirPattern names each host's socket directory (os.MkdirTemp), so that
// an operator can tell whose it is.
const hostDirPattern = "respawner-hooks-"

// A unix socket's path has at most maxSocketPath bytes; a go-plugin server's
// is its host's socket directory and up to goPluginSocketPath more
// (/plugin-dirNNN/pluginNNN, each NNN up to 10 digits).
const (
	maxSocketPath      = 107
	goPluginSocketPath = 38
)

// spawnHost forks the host with its socket on fd 3 and sends the plugins.
//
// go-plugin gives each plugin a directory for its socket (plugin-dirNNN)
// and removes it in Kill: a host that is SIGKILLed (by us after 5 s at
// shutdown, by an operator, by the OOM killer) or crashes leaves one per
// plugin behind, and a host that dies repeatedly would fill $TMPDIR with
// them. So each host gets a directory of its own, in which its plugins'
// directories go, and we remove it once the host has been reaped, however
// it ended. It is in $TMPDIR, not in the runtime dir: a unix socket's path
// has at most 107 bytes, go-plugin's take up to 38 more than the directory
// they are given, and the runtime dir's path is not bounded (our control
// socket is bound through /proc/self/fd).
func (l *Loop) spawnHost() error {
	h := &l.host
	dir, err := os.MkdirTemp("", hostDirPattern)
	if err != nil {
		return fmt.Errorf("hook host socket directory: %w", err)
	}
	if n := len(dir) + goPluginSocketPath; n > maxSocketPath {
		// Said here, since a plugin only says that it cannot listen.
		l.log.Warn("$TMPDIR is too long for the hook plugins' unix sockets: set a shorter one", "dir", dir, "socket_path", n, "max", maxSocketPath)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		return fmt.Errorf("socketpair: %w", err)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		os.Remove(dir)
		unix.Close(fds[0])
		unix.Close(fds[1])
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		// The plugins' secrets included (not the program's environment);
		// respawner's own service manager's variables not.
		Env:   hostEnv(runenv.Without(keeper.Internal(os.Environ()), runenv.ManagerVars...)),
		Files: []uintptr{uintptr(null), uintptr(null), 2, uintptr(fds[1])},
		Sys:   &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	}
	pid, err := syscall.ForkExec(l.opt.Hooks.HostPath, []string{"respawner-hookhost"}, attr)
	unix.Close(null)
	unix.Close(fds[1])
	if err != nil {
		os.Remove(dir)
		unix.Close(fds[0])
		return fmt.Errorf("start hook host %s: %w", l.opt.Hooks.HostPath, err)
	}
	h.pid, h.pidfd, h.sock, h.dir = pid, pidfd, fds[0], dir
	h.started = time.Now()
	return l.hostSend(hookwire.Msg{T: hookwire.TConfig, Plugins: l.opt.Hooks.Plugins, Level: hclogLevel(l.log), SocketDir: dir})
}

// removeHostDir removes the socket directory of a host that has been
// reaped, and the plugins' directories it left in it. It blocks the loop,
// but only when a host has died or been stopped, and not for long: a few
// directories and dead sockets, 0.13 ms (p99 0.3 ms) for one plugin's on an
// ext4 /tmp, less on tmpfs.
func (l *Loop) removeHostDir() {
	h := &l.host
	if h.dir == "" {
		return
	}
	if err := os.RemoveAll(h.dir); err != nil {
		l.log.Warn("cannot remove the hook host's socket directory", "dir", h.dir, "error", err)
	}
	h.dir = ""
}

// startHost launches the hook host, sends it the plugins and waits for its
// verdict on them: every plugin launched and configured, or the error (an
// unknown plugin option fails start naming plugin and option). Waiting here
// blocks the loop, but only before supervision begins; a restart of the host
// (restartHost) does not wait.
func (l *Loop) startHost() error {
	h := &l.host
	if err := l.spawnHost(); err != nil {
		return err
	}
	deadline := time.Now().Add(l.opt.Hooks.StartTimeout)
	for {
		ms := int(time.Until(deadline) / time.Millisecond)
		if ms <= 0 {
			return errors.New("hook plugins did not start within " + l.opt.Hooks.StartTimeout.String())
		}
		fds := []unix.PollFd{{Fd: int32(h.sock), Events: unix.POLLIN}, {Fd: int32(h.pidfd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err != nil && err != unix.EINTR {
			return fmt.Errorf("poll hook host: %w", err)
		}
		if fds[0].Revents&unix.POLLIN == 0 && fds[1].Revents != 0 {
			return errors.New("hook host exited during start-up")
		}
		if fds[0].Revents == 0 {
			continue
		}
		m, err := l.hostRecv()
		if err != nil {
			return err
		}
		switch m.T {
		case hookwire.TLog:
			l.hostLog(m.Line)
		case hookwire.TError:
			return errors.New(m.Error)
		case hookwire.TReady:
			for _, fd := range []int{h.sock, h.pidfd} {
				if err := epollAdd(l.epfd, fd); err != nil {
					return err
				}
			}
			l.hostReady(m.Infos)
			return nil
		}
	}
}

func (l *Loop) hostReady(infos []hookwire.PluginInfo) {
	l.host.infos = infos
	for _, in := range infos {
		l.log.Info("hook plugin ready", "plugin", in.Name, "version", in.Version, "notify", in.Notify, "veto", in.Veto, "probe", in.Probe)
	}
}

func (l *Loop) hostSend(m hookwire.Msg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := unix.Send(l.host.sock, b, unix.MSG_DONTWAIT); err != nil {
		return fmt.Errorf("send to hook host: %w", err)
	}
	return nil
}

func (l *Loop) hostRecv() (hookwire.Msg, error) {
	if l.host.buf == nil {
		l.host.buf = make([]byte, hookwire.MaxPacket) // kept: a fresh 64 KiB per message costs page faults
	}
	buf := l.host.buf
	n, _, err := unix.Recvfrom(l.host.sock, buf, unix.MSG_DONTWAIT)
	if err != nil {
		return hookwire.Msg{}, err
	}
	if n == 0 {
		return hookwire.Msg{}, errors.New("hook host closed its socket")
	}
	m, err := hookwire.Decode(buf[:n])
	if err != nil {
		return m, fmt.Errorf("bad message from hook host: %w", err)
	}
	return m, nil
}

// hostReadable handles what the host sent: verdicts and log lines.
func (l *Loop) hostReadable() {
	for {
		m, err := l.hostRecv()
		if err != nil && !errors.Is(err, hookspec.ErrUnknownDecision) {
			return // EAGAIN, or the host is gone (its pidfd tells)
		}
		switch m.T {
		case hookwire.TLog:
			l.hostLog(m.Line)
		case hookwire.TReady: // a restarted host
			l.host.starting = false
			disarmTimerfd(l.hostTimer)
			l.hostReady(m.Infos)
			l.log.Info("hook host restarted", "pid", l.host.pid)
		case hookwire.TError: // a restarted host could not start its plugins
			l.log.Error("hook host restart failed", "error", m.Error)
			unix.PidfdSendSignal(l.host.pidfd, unix.SIGKILL, nil, 0) // its pidfd brings the backoff
		case hookwire.TProbed:
			l.probed(m)
		case hookwire.TVerdict:
			if m.ID == 0 || m.ID != l.host.askID || (m.Verdict == nil && err == nil) {
				continue // the answer to a question already settled
			}
			sv := hookspec.Verdict{Reason: "answer not understood"} // allow
			if err != nil {
				// Not mapped to any decision: an error, logged, and the
				// restart goes ahead; never silently another decision.
				l.log.Error("restart-pending answer not understood; counted as allow", "plugin", m.Plugin, "error", err)
			} else {
				sv = *m.Verdict
			}
			v := machine.Verdict(sv)
			// An allow is the common case, and its line would cost every
			// restart a log write before the fork: at debug level only.
			lvl := hclog.Info
			if v.Decision == hookspec.DecisionAllow {
				lvl = hclog.Debug
			}
			l.log.Log(lvl, "restart-pending answered", "decision", sv.Decision, "delay", v.Delay, "reason", v.Reason, "took", time.Since(l.host.askedAt))
			// The restart first, then the events held while the question
			// was out: each send wakes the host, which would take the CPU
			// from the fork on a small machine.
			l.host.askID = 0
			l.step(v) // holds the step's events until it is done (see step)
			// A question the step asked (a restart that could not exec,
			// say) is on the wire already: what was held goes after it.
			l.sendHeld()
		}
	}
}

// hostLog writes one of the host's (or a plugin's) JSON log lines to our log
// at its level.
func (l *Loop) hostLog(line string) {
	var rec map[string]any
	if json.Unmarshal([]byte(line), &rec) != nil {
		l.log.Info(line)
		return
	}
	msg, _ := rec["@message"].(string)
	lvl, _ := rec["@level"].(string)
	mod, _ := rec["@module"].(string)
	args := make([]any, 0, 2*len(rec))
	for k, v := range rec {
		if k != "" && k[0] != '@' {
			args = append(args, k, v)
		}
	}
	log := l.log
	if mod != "" {
		log = log.ResetNamed(mod)
	}
	log.Log(hclog.LevelFromString(lvl), msg, args...)
}

// hostExited: the host process died (a bug, or it was killed). Plugins are
// its children; their restarts are its business. Ours is the host itself.
func (l *Loop) hostExited() {
	h := &l.host
	if !pidfdExited(h.pidfd) {
		return // a stale event: see pidfdExited
	}
	st, err := waitPidfd(h.pidfd)
	unix.Close(h.pidfd)
	unix.Close(h.sock)
	h.pidfd, h.sock = -1, -1
	if err != nil {
		l.log.Error("hook host exited; plugins are unavailable until it is back", "pid", h.pid, "error", err)
	} else {
		l.log.Error("hook host exited; plugins are unavailable until it is back", "pid", h.pid, "status", st.String())
	}
	// Its plugins share its process group (it leads one of its own); without
	// it they are orphans that a new host would duplicate.
	killGroup(h.pid)
	l.removeHostDir()
	h.pid, h.starting = 0, false
	if n := len(h.outbox); n > 0 {
		h.dropped += n
		l.log.Warn("hook events dropped with the hook host", "events", n, "dropped", h.dropped)
	}
	clear(h.outbox)
	h.outbox = h.outbox[:0]
	if h.askID != 0 {
		h.askID = 0
		l.step(machine.Verdict{Decision: hookspec.DecisionAllow, Reason: "hook host died"})
	}
	if l.exit != nil {
		return
	}
	if time.Since(h.started) >= hookwire.StableRun {
		h.restarts = 0
	}
	delay := hookwire.RestartDelay(h.restarts)
	h.restarts++
	if err := armTimerfd(l.hostTimer, delay); err != nil {
		l.log.Error("cannot schedule hook host restart", "error", err)
	}
}

// restartHost brings the host back after it died, without blocking the loop:
// its socket and pidfd join the epoll set at once, its "ready" arrives as a
// message, and hostTimer bounds its start-up (a host that hangs is killed,
// and its death schedules the next try).
func (l *Loop) restartHost() {
	h := &l.host
	if h.starting { // the start-up deadline passed
		l.log.Error("hook host did not start in time; killing it", "pid", h.pid, "timeout", l.opt.Hooks.StartTimeout)
		unix.PidfdSendSignal(h.pidfd, unix.SIGKILL, nil, 0)
		return
	}
	err := l.spawnHost()
	if h.pidfd < 0 { // not even forked: try again later
		l.log.Error("hook host restart failed", "error", err)
		delay := hookwire.RestartDelay(h.restarts)
		h.restarts++
		armTimerfd(l.hostTimer, delay)
		return
	}
	if aerr := epollAdd(l.epfd, h.pidfd); aerr != nil && err == nil {
		err = aerr
	}
	if err == nil {
		err = epollAdd(l.epfd, h.sock)
	}
	if err != nil {
		// Forked but unusable: kill it; its pidfd brings the backoff.
		l.log.Error("hook host restart failed", "error", err)
		unix.PidfdSendSignal(h.pidfd, unix.SIGKILL, nil, 0)
		return
	}
	h.starting = true
	armTimerfd(l.hostTimer, l.opt.Hooks.StartTimeout)
}

// stopHost asks the host to stop its plugins and waits for it (bounded), so
// that no plugin process outlives respawner; then it kills what is left.
func (l *Loop) stopHost() {
	h := &l.host
	if h.pid == 0 {
		return
	}
	if h.sock >= 0 {
		l.hostSend(hookwire.Msg{T: hookwire.TShutdown})
	}
	fds := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 5000)
		if err == unix.EINTR {
			continue
		}
		if n == 0 { // hung: kill the host and its plugins
			for _, p := range descendants(h.pid, nil) {
				unix.Kill(p, unix.SIGKILL)
			}
			unix.PidfdSendSignal(h.pidfd, unix.SIGKILL, nil, 0)
			unix.Poll(fds, 1000)
		}
		break
	}
	waitPidfd(h.pidfd)
	unix.Close(h.pidfd)
	h.pidfd = -1
	if h.sock >= 0 {
		l.hostReadable() // the last log lines of the host and its plugins
		unix.Close(h.sock)
	}
	killGroup(h.pid) // a plugin that outlived its host's shutdown
	l.removeHostDir()
	h.pid, h.pidfd, h.sock = 0, -1, -1
}

// killGroup SIGKILLs what is left of the hook host's process group. The
// group id cannot name anything else: a pid is not reused while a group of
// that number has members.
func killGroup(pgid int) {
	if pgid > 0 {
		unix.Kill(-pgid, unix.SIGKILL)
	}
}

// notify sends a lifecycle event to the plugins. It never blocks: when the
// host is not keeping up, the event is dropped and counted. Events wait in an
// outbox while a restart-pending question is out (or while the loop holds it
// across a step), so that the question, on the restart's critical path, does
// not queue behind their deliveries; they keep their order.
func (l *Loop) notify(e hookspec.Event) {
	if l.opt.Hooks == nil || l.host.sock < 0 {
		return
	}
	if e.Kind == hookspec.Exited || e.Kind == hookspec.GaveUp {
		e.Output = l.lastOutput()
	}
	l.host.outbox = append(l.host.outbox, l.wireEvent(e))
	l.flushEvents()
}

// flushEvents sends what the outbox holds, unless it is being held.
func (l *Loop) flushEvents() {
	if l.host.askID != 0 {
		return
	}
	l.sendHeld()
}

// sendHeld sends the outbox even while a question is out, unless the loop
// holds it across a step.
func (l *Loop) sendHeld() {
	h := &l.host
	if h.holding {
		return
	}
	for i := range h.outbox {
		ev := &h.outbox[i]
		if h.sock < 0 {
			break
		}
		if err := l.hostSend(hookwire.Msg{T: hookwire.TEvent, Event: ev}); err != nil {
			h.dropped++
			l.log.Warn("hook event dropped", "event", ev.Kind, "dropped", h.dropped, "error", err)
		}
	}
	clear(h.outbox)
	h.outbox = h.outbox[:0]
}

// settled: the question is answered (or abandoned); events flow again.
func (l *Loop) settled() {
	l.host.askID = 0
	l.flushEvents()
}

// wireEvent is the machine's event with what only the loop knows (the
// instance, its program, the host).
func (l *Loop) wireEvent(e hookspec.Event) hookspec.Event {
	e.Instance, e.Program, e.Args, e.Host = l.opt.Name, l.opt.Path, l.opt.Argv[1:], l.hostname
	return e
}

// askHooks puts restart-pending to the plugins.
func (l *Loop) askHooks(a machine.Ask) {
	h := &l.host
	if h.sock < 0 {
		l.step(machine.Verdict{Decision: hookspec.DecisionAllow, Reason: "hook host not running"})
		return
	}
	h.nextID++
	h.askID = h.nextID
	h.askedAt = time.Now()
	ev := l.wireEvent(a.Event)
	if err := l.hostSend(hookwire.Msg{T: hookwire.TAsk, ID: h.askID, Event: &ev}); err != nil {
		l.log.Warn("restart-pending not delivered; restarting", "error", err)
		l.settled()
		l.step(machine.Verdict{Decision: hookspec.DecisionAllow, Reason: "not delivered"})
	}
}

// pluginNames lists the configured plugins for status.
func (l *Loop) pluginNames() []string {
	names := []string{}
	if l.opt.Hooks != nil {
		for _, p := range l.opt.Hooks.Plugins {
			names = append(names, p.Name)
		}
	}
	return names
}

package machine

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hookspec"
)

// FuzzMachine: random configurations and event sequences against a
// reference model of the supervision rules, with the invariants checked at
// every step (see checkState, checkChaos and checkNotify).

// FuzzMachine decodes the input into a Config and a sequence of events, feeds
// them to a Machine through fuzzHarness, which plays the loop honestly, and
// checks the Machine's actions against a reference table and invariants
// after every step.
func FuzzMachine(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		newFuzzHarness(t, data).run()
	})
}

// What an input event does, by op % numKinds. Some only change the world
// (a process forks, a leftover dies) and reach the Machine only when the
// loop would tell it (TreeEmpty once a collected tree is gone).
const (
	kindStarted        = iota // the outstanding Spawn succeeded (async mode)
	kindSpawnFailed           // the outstanding Spawn failed (async mode; else right after a Spawn)
	kindExit                  // the watched process ends: Exited, or nothing while collecting
	kindLeftoverDies          // another process of the run ends
	kindFork                  // a live process of the run starts another
	kindFireRespawn           // the respawn timer expires
	kindFireKill              // the kill timer expires
	kindFireStart             // the start timer expires (PidfileFailed while awaiting, as the loop does)
	kindPidfileRead           // the pidfile names a live process of the run
	kindPidfileFailed         // the pidfile is refused
	kindVerdict               // the hooks answer restart-pending
	kindFireAsk               // the ask timer expires
	kindUnhealthy             // health probes fail past their threshold (while running)
	kindReady                 // READY=1 from a live process of the run
	kindStatus                // STATUS=
	kindMainPID               // MAINPID= naming a live process of the run
	kindPing                  // WATCHDOG=1
	kindTrigger               // WATCHDOG=trigger
	kindWatchdogPeriod        // WATCHDOG_USEC=
	kindExtend                // EXTEND_TIMEOUT_USEC=
	kindFireWatchdog          // the watchdog timer expires
	kindStop                  // an operator asks to stop
	kindRestart               // an operator asks to restart
	numKinds
)

// fuzzPeriods is indexed by two bits of an arg: WATCHDOG_USEC= and
// EXTEND_TIMEOUT_USEC= values.
var fuzzPeriods = [4]time.Duration{0, 100 * time.Millisecond, time.Second, 30 * time.Second}

// fuzzStatuses is indexed by the low four bits of an event's arg byte.
var fuzzStatuses = [16]ExitStatus{
	{Code: 0}, {Code: 1}, {Code: 2}, {Code: 3}, {Code: 7}, {Code: 127}, {Code: 143}, {Code: 255},
	{Signal: syscall.SIGTERM}, {Signal: syscall.SIGINT}, {Signal: syscall.SIGHUP}, {Signal: syscall.SIGPIPE},
	{Signal: syscall.SIGKILL}, {Signal: syscall.SIGSEGV}, {Signal: syscall.SIGABRT}, {Signal: syscall.SIGQUIT},
}

// fuzzAdvance is indexed by the top three bits of an event's arg byte: how far
// the clock moves before the event.
var fuzzAdvance = [8]time.Duration{
	0, time.Millisecond, 100 * time.Millisecond, time.Second,
	5 * time.Second, 11 * time.Second, 61 * time.Second, 10 * time.Minute,
}

const fuzzConfigBytes = 9

// fuzzConfig decodes the first fuzzConfigBytes bytes:
//
//	b0: bits 0-1 policy (3 = on-failure); bit 2: readiness by READY=1 (Notify);
//	    bits 3-4: watchdog period; bits 5 and 6 both set: chaos mode; bit 7: jitter
//	b1: limit 0-4       b2: window       b3: respawn timeout     b4: max delay
//	b5: bits 0-1 reset, bits 2-3 stop timeout, bits 4-5 ask deadline
//	b6: success set (bits: 0, 1, 7, 127, 255)                   b7: jitter value/256
//	b8: bit 0 pidfile, bits 1-2 start timeout, bits 3-4 start check,
//	    bit 5 adopt instead of start, bit 6 async spawn (events may come
//	    between Spawn and Started, which the Machine's Starting allows),
//	    bit 7 hooks are asked before each restart
func fuzzConfig(b []byte) (cfg Config, chaos, adopt, async bool) {
	s, ms, m := time.Second, time.Millisecond, time.Minute
	cfg = Config{
		Policy:         Policy(b[0] & 3 % 3),
		Limit:          int(b[1] % 5),
		Window:         [...]time.Duration{0, 0, 5 * s, 10 * s, 30 * s, 2 * m}[b[2]%6],
		RespawnTimeout: [...]time.Duration{0, ms, 100 * ms, s, 5 * s, 11 * s}[b[3]%6],
		MaxDelay:       [...]time.Duration{0, 500 * ms, s, 8 * s, m, time.Hour}[b[4]%6],
		Reset:          [...]time.Duration{0, s, 10 * s, 60 * s}[b[5]&3],
		StopTimeout:    [...]time.Duration{0, s, 10 * s, 10 * s}[b[5]>>2&3],
		Pidfile:        b[8]&1 != 0,
		StartTimeout:   [...]time.Duration{0, s, 10 * s, 10 * s}[b[8]>>1&3],
		StartCheck:     [...]time.Duration{0, 0, s, 5 * s}[b[8]>>3&3],
		RestartCheck:   [...]time.Duration{0, 0, s, 5 * s}[b[8]>>3&3],
		Ask:            b[8]&0x80 != 0,
		AskDeadline:    [...]time.Duration{0, s, 2 * s, 30 * s}[b[5]>>4&3],
		Notify:         b[0]&4 != 0 && b[8]&1 == 0, // the CLI refuses it with a pidfile
		Watchdog:       [...]time.Duration{0, 100 * ms, s, 5 * s}[b[0]>>3&3],
	}
	for i, c := range []int{0, 1, 7, 127, 255} {
		if b[6]&(1<<i) != 0 {
			cfg.Success.Add(c)
		}
	}
	if b[0]&0x80 != 0 {
		j := float64(b[7]) / 256
		cfg.Jitter = func() float64 { return j }
	}
	return cfg, b[0]&0x60 == 0x60, b[8]&0x20 != 0, b[8]&0x40 != 0
}

// refOutcome is what the reference model expects once a run is over.
type refOutcome struct {
	exit  bool
	code  int
	delay time.Duration
}

// fuzzHarness plays the loop. It keeps the world the loop would see: a
// Spawn outstanding, the watched process, the other live processes of the
// run, whether the tree is being collected, the pidfile watch and the armed
// timers. Events come only when that world allows them, the way the loop
// makes them: Started/SpawnFailed right after a Spawn (queued, as Loop.step
// does), Exited when the watched process ends outside a collection (with the
// live processes as Leftovers), TreeEmpty once a collected tree is gone,
// TimerFired for armed timers at or after their deadline, PidfileRead naming
// a live process of the run, a Verdict while restart-pending is out,
// Unhealthy while running, StopRequested at any time. In chaos mode any
// event comes, and only what holds for every input is checked.
type fuzzHarness struct {
	t     *testing.T
	in    []byte
	cfg   Config
	chaos bool
	adopt bool
	async bool
	m     *Machine
	now   time.Time
	held  bool         // held was told and released has not been
	head  string       // the config, for failure reports
	trace []traceEntry // the last traceLen steps, formatted only on failure
	next  int          // where the next entry goes in trace
	queue []Event

	// the world
	spawnPending bool
	launcher     int  // the process the last Started named
	watched      int  // the watched process, 0 when none
	adopted      bool // watched is not our child: its status is unknown
	tree         []int
	collecting   bool
	pfActive     bool // WatchPidfile is being served
	armed        [NumTimers]bool
	deadline     [NumTimers]time.Time
	lastPID      int
	spawns       int
	readySeen    bool
	stopAsked    bool
	exit         *Exit
	saidReady    bool // the run said READY=1 (or was adopted)
	namedMain    bool // the run named its main process (MAINPID=), which may be the launcher

	// the reference model
	asking   bool     // restart-pending is out (the world: an answer may come)
	due      bool     // the respawn delay has passed
	verdict  *Verdict // an answer that came before the delay passed
	restarts int
	streak   int
	window   []time.Time
	runStart time.Time
	lastExit *ExitStatus
	pending  refOutcome // what the collection of a tree leads to
	status   string     // the run's STATUS= text
	wd       refWatchdog
	// an operator's restart under way (RestartRequested until RestartDone)
	rsPending    bool      // owed its answer
	rsStopping   bool      // the old run is being stopped for it
	rsConfirming bool      // its new run is up, under the start check
	handedAt     time.Time // the watched process was followed as the one its launcher left, then
}

// handover is the reference's daemonizing rule: a clean exit leaving exactly
// one process hands over to it, when the process was not followed, or was
// itself followed as such less than 5 s ago (a middle process of a double
// fork still alone with the daemon).
func (h *fuzzHarness) handover(snap Snapshot, clean bool, leftovers []int) []Action {
	if !clean || len(leftovers) != 1 || snap.Following && (h.handedAt.IsZero() || h.now.Sub(h.handedAt) >= 5*time.Second) {
		return nil
	}
	h.handedAt = h.now
	return []Action{Follow{PID: leftovers[0]}}
}

// refWatchdog is the reference model of a run's watchdog.
type refWatchdog struct {
	started bool // its clock started (READY=1 with Notify, else the start of the run)
	on      bool // the timer runs
	period  time.Duration
	last    time.Time // the last ping, or the start of the clock
	until   time.Time // extended to
}

// startWD starts the run's watchdog clock, as READY=1 (or the start of the
// run without Notify) does.
func (h *fuzzHarness) startWD() []Action {
	h.wd.started = true
	if h.wd.period <= 0 {
		return nil
	}
	h.wd.on, h.wd.last, h.wd.until = true, h.now, time.Time{}
	return []Action{ArmTimer{ID: WatchdogTimer, After: h.wd.period}}
}

// stopWD stops it: the run ended or is stopped.
func (h *fuzzHarness) stopWD() []Action {
	if !h.wd.on {
		return nil
	}
	h.wd.on = false
	return []Action{DisarmTimer{ID: WatchdogTimer}}
}

func newFuzzHarness(t *testing.T, data []byte) *fuzzHarness {
	var cb [fuzzConfigBytes]byte
	n := copy(cb[:], data)
	cfg, chaos, adopt, async := fuzzConfig(cb[:])
	h := &fuzzHarness{t: t, in: data[n:], cfg: cfg, chaos: chaos, adopt: adopt, async: async,
		m: NewMachine(cfg), now: t0, lastPID: 100}
	h.head = fmt.Sprintf("config %+v jitter=%v chaos=%v adopt=%v async=%v", cfg, cfg.Jitter != nil, chaos, adopt, async)
	return h
}

const traceLen = 80

type traceEntry struct {
	format string
	args   []any
}

// actList formats actions only when a trace is printed.
type actList []Action

func (a actList) String() string { return fmtActs(a) }

func (h *fuzzHarness) tracef(format string, args ...any) {
	if len(h.trace) < traceLen {
		h.trace = append(h.trace, traceEntry{format, args})
		return
	}
	h.trace[h.next] = traceEntry{format, args}
	h.next = (h.next + 1) % traceLen
}

func (h *fuzzHarness) failf(format string, args ...any) {
	h.t.Helper()
	tr := []string{h.head}
	if len(h.trace) == traceLen {
		tr = append(tr, "...")
	}
	for i := range h.trace {
		e := h.trace[(h.next+i)%len(h.trace)]
		tr = append(tr, fmt.Sprintf(e.format, e.args...))
	}
	h.t.Fatalf("%s\nstate %v, snapshot %+v\nworld: spawn %v watched %d tree %v collecting %v pidfile %v timers %v\ntrace:\n  %s",
		fmt.Sprintf(format, args...), h.m.State(), h.m.Snapshot(), h.spawnPending, h.watched, h.tree, h.collecting,
		h.pfActive, h.armed, strings.Join(tr, "\n  "))
}

func (h *fuzzHarness) newPID() int {
	h.lastPID++
	return h.lastPID
}

func (h *fuzzHarness) run() {
	if h.adopt {
		pid := h.newPID()
		h.watched, h.adopted, h.spawns = pid, true, 1
		h.runStart = t0.Add(-time.Minute)
		acts := q(h.m.Adopt(h.now, pid, h.runStart))
		h.tracef("Adopt(%d) -> %v", pid, actList(acts))
		h.saidReady = true
		h.wd = refWatchdog{period: h.cfg.Watchdog}
		if want := cat([]Action{Follow{PID: pid}, Ready{}}, h.startWD()); !reflect.DeepEqual(acts, want) {
			h.failf("Adopt = %s, want %s", fmtActs(acts), fmtActs(want))
		}
		h.apply(nil, acts)
	} else {
		acts := q(h.m.Start(h.now))
		h.tracef("Start -> %v", actList(acts))
		if want := []Action{Spawn{Restart: 0, Limit: h.cfg.Limit}}; !reflect.DeepEqual(acts, want) {
			h.failf("Start = %s, want %s", fmtActs(acts), fmtActs(want))
		}
		h.apply(nil, acts)
	}
	h.drain()
	// A few hundred events reach every state many times over; longer
	// inputs only slow the fuzzer's minimization down.
	for steps := 0; len(h.in) >= 2 && steps < 300; steps++ {
		op, arg := h.in[0], h.in[1]
		h.in = h.in[2:]
		h.now = h.now.Add(fuzzAdvance[arg>>5])
		h.input(int(op%numKinds), arg)
	}
	if h.chaos || h.exit != nil {
		return
	}
	// Whatever happened, a stop must end supervision cleanly, and soon.
	h.input(kindStop, 0)
	for i := 0; h.exit == nil; i++ {
		if i > 20 {
			h.failf("a stop did not end supervision")
		}
		h.now = h.now.Add(time.Second)
		switch {
		case h.spawnPending:
			h.input(kindStarted, 0)
		case h.watched != 0:
			h.input(kindExit, 8) // SIGTERM
		case len(h.tree) > 0:
			h.input(kindLeftoverDies, 0)
		case h.armed[KillTimer]:
			h.input(kindFireKill, 0)
		default:
			h.failf("stuck while stopping")
		}
	}
	if h.exit.Code != 0 {
		h.failf("a requested stop ended with %+v", *h.exit)
	}
}

// allowed reports whether the world allows an input of kind k now.
func (h *fuzzHarness) allowed(k int) bool {
	switch k {
	case kindStarted, kindSpawnFailed:
		return h.async && h.spawnPending
	case kindExit:
		return h.watched != 0
	case kindLeftoverDies:
		return len(h.tree) > 0
	case kindFork:
		return (h.watched != 0 || len(h.tree) > 0) && len(h.tree) < 5
	case kindFireRespawn:
		return h.armed[RespawnTimer]
	case kindFireKill:
		return h.armed[KillTimer]
	case kindFireStart:
		return h.armed[StartTimer]
	case kindPidfileRead:
		return h.pfActive && h.m.Snapshot().Awaiting && (h.watched != 0 || len(h.tree) > 0)
	case kindPidfileFailed:
		return h.pfActive && h.m.Snapshot().Awaiting
	case kindVerdict:
		return h.asking
	case kindFireAsk:
		return h.armed[AskTimer]
	case kindUnhealthy:
		return h.m.State() == Running
	case kindReady, kindStatus, kindMainPID, kindPing, kindTrigger, kindWatchdogPeriod, kindExtend:
		// The loop passes on only what a live process of the instance says.
		return h.watched != 0 || len(h.tree) > 0
	case kindFireWatchdog:
		return h.armed[WatchdogTimer]
	}
	return true // StopRequested, RestartRequested
}

// input makes one input happen: in the world (honestly, taking the next
// allowed kind from k on), or straight to the Machine in chaos mode and after
// the end of supervision.
func (h *fuzzHarness) input(k int, arg byte) {
	if h.chaos || h.exit != nil {
		if (k == kindStarted || k == kindSpawnFailed) && h.m.State() == Starting && h.m.Snapshot().Awaiting {
			// Known bug (TestPidfileWaitStaleSpawnEvents): taken for the
			// answer to a Spawn, and a final state that still awaits a
			// pidfile. Left out so that the fuzzer looks for other bugs.
			return
		}
		h.deliver(h.anyEvent(k, arg))
		return
	}
	for i := 0; !h.allowed(k); i++ {
		if i > numKinds {
			h.failf("no input allowed")
		}
		k = (k + 1) % numKinds
	}
	switch k {
	case kindStarted:
		h.deliver(Started{PID: h.newPID()})
	case kindSpawnFailed:
		h.deliver(SpawnFailed{Err: errExec})
	case kindExit:
		st := fuzzStatuses[arg&15]
		if h.adopted {
			st = ExitStatus{Unknown: true}
		}
		if arg&16 != 0 && len(h.tree) < 5 {
			h.tree = append(h.tree, h.newPID()) // it leaves a child behind
		}
		h.tracef("%v world: watched %d ends, %v", h.now.Sub(t0), h.watched, st)
		h.watched, h.adopted = 0, false
		if h.collecting {
			h.checkCollected()
			h.drain()
			return
		}
		var left []int
		if len(h.tree) > 0 {
			left = append(left, h.tree...)
		}
		h.deliver(Exited{Status: st, Leftovers: left})
	case kindLeftoverDies:
		i := int(arg) % len(h.tree)
		h.tracef("%v world: leftover %d ends", h.now.Sub(t0), h.tree[i])
		h.tree = append(h.tree[:i:i], h.tree[i+1:]...)
		if h.collecting {
			h.checkCollected()
			h.drain()
		}
	case kindFork:
		h.tree = append(h.tree, h.newPID())
		h.tracef("%v world: fork %d", h.now.Sub(t0), h.tree[len(h.tree)-1])
	case kindFireRespawn, kindFireKill, kindFireStart:
		id := TimerID(k - kindFireRespawn)
		if h.now.Before(h.deadline[id]) {
			h.now = h.deadline[id]
		}
		if id == StartTimer && h.m.Snapshot().Awaiting {
			h.armed[id], h.pfActive = false, false
			h.deliver(PidfileFailed{Err: errors.New("no pidfile within the start timeout")})
			return
		}
		h.deliver(TimerFired{ID: id}) // observe disarms it
	case kindPidfileRead:
		alive := h.tree
		if h.watched != 0 {
			alive = append([]int{h.watched}, h.tree...)
		}
		h.pfActive = false
		h.deliver(PidfileRead{PID: alive[int(arg)%len(alive)]})
	case kindPidfileFailed:
		h.pfActive = false
		h.deliver(PidfileFailed{Err: errPidfile})
	case kindVerdict:
		h.deliver(fuzzVerdict(arg))
	case kindFireAsk:
		if h.now.Before(h.deadline[AskTimer]) {
			h.now = h.deadline[AskTimer]
		}
		h.deliver(TimerFired{ID: AskTimer})
	case kindUnhealthy:
		h.deliver(Unhealthy{Reason: "probe failed"})
	case kindMainPID:
		alive := h.tree
		if h.watched != 0 {
			alive = append([]int{h.watched}, h.tree...)
		}
		h.deliver(MainPIDNotified{PID: alive[int(arg)%len(alive)]})
	case kindReady, kindStatus, kindPing, kindTrigger, kindWatchdogPeriod, kindExtend:
		h.deliver(h.anyEvent(k, arg))
	case kindFireWatchdog:
		if h.now.Before(h.deadline[WatchdogTimer]) {
			h.now = h.deadline[WatchdogTimer]
		}
		h.deliver(TimerFired{ID: WatchdogTimer})
	case kindRestart:
		h.deliver(RestartRequested{})
	default:
		h.deliver(StopRequested{})
	}
}

// anyEvent makes an event of kind k with no regard for the world.
func (h *fuzzHarness) anyEvent(k int, arg byte) Event {
	switch k {
	case kindStarted:
		return Started{PID: h.newPID()}
	case kindSpawnFailed:
		return SpawnFailed{Err: errExec}
	case kindExit:
		var left []int
		for range arg >> 4 & 3 {
			left = append(left, h.newPID())
		}
		return Exited{Status: fuzzStatuses[arg&15], Leftovers: left}
	case kindLeftoverDies, kindFork:
		return TreeEmpty{}
	case kindFireRespawn, kindFireKill, kindFireStart:
		return TimerFired{ID: TimerID(k - kindFireRespawn)}
	case kindPidfileRead:
		return PidfileRead{PID: int(arg)}
	case kindPidfileFailed:
		return PidfileFailed{Err: errPidfile}
	case kindVerdict:
		return fuzzVerdict(arg)
	case kindFireAsk:
		return TimerFired{ID: AskTimer}
	case kindUnhealthy:
		return Unhealthy{Reason: "probe failed"}
	case kindReady:
		return ReadyNotified{}
	case kindStatus:
		return StatusNotified{Text: fmt.Sprint("status ", arg)}
	case kindMainPID:
		return MainPIDNotified{PID: int(arg)}
	case kindPing:
		return WatchdogPinged{}
	case kindTrigger:
		return WatchdogTriggered{}
	case kindWatchdogPeriod:
		return WatchdogPeriodSet{Period: fuzzPeriods[arg&3]}
	case kindExtend:
		return TimeoutExtended{By: fuzzPeriods[arg&3]}
	case kindFireWatchdog:
		return TimerFired{ID: WatchdogTimer}
	case kindRestart:
		return RestartRequested{}
	}
	return StopRequested{}
}

// fuzzVerdict decodes a hooks' answer from an event's arg.
func fuzzVerdict(arg byte) Verdict {
	v := Verdict{Decision: Decision(arg & 3), Reason: "hook"}
	if v.Decision == Delay {
		v.Delay = fuzzAdvance[arg>>2&7]
	}
	return v
}

// checkCollected raises TreeEmpty once a collected tree is gone, as the loop does.
func (h *fuzzHarness) checkCollected() {
	if h.collecting && h.watched == 0 && len(h.tree) == 0 {
		h.collecting = false
		h.queue = append(h.queue, TreeEmpty{})
	}
}

func (h *fuzzHarness) deliver(ev Event) {
	h.queue = append(h.queue, ev)
	h.drain()
}

// drain steps the queued events in order, as Loop.step does, then checks the
// state the Machine rests in.
func (h *fuzzHarness) drain() {
	for i := 0; len(h.queue) > 0; i++ {
		// Bounded by the input: with -t 0 each SpawnFailed taken from it
		// brings another Spawn (TestRestartSpawnFailsWithNoDelay).
		if i > 100+len(h.in) {
			h.failf("the loop would never rest: %d events queued", len(h.queue))
		}
		ev := h.queue[0]
		h.queue = h.queue[1:]
		h.step(ev)
	}
	if !h.chaos && h.exit == nil {
		h.checkState()
	}
}

func (h *fuzzHarness) step(ev Event) {
	prev, snap := h.m.State(), h.m.Snapshot()
	var want, alt []Action
	if !h.chaos && h.exit == nil {
		want, alt = h.expect(prev, snap, ev)
	}
	raw := h.m.Step(h.now, ev)
	if h.exit == nil {
		h.checkNotify(ev, raw)
	}
	acts := q(raw)
	h.tracef("%v %v + %T%+v -> %v", h.now.Sub(t0), prev, ev, ev, actList(acts))
	if h.exit != nil {
		if acts != nil {
			h.failf("actions after the end of supervision")
		}
		if after := h.m.Snapshot(); !reflect.DeepEqual(snap, after) {
			h.failf("a final machine changed:\n %+v\n %+v", snap, after)
		}
		return
	}
	if h.chaos {
		h.checkChaos(acts)
		return
	}
	if got := rnorm(acts); !reflect.DeepEqual(got, want) && (alt == nil || !reflect.DeepEqual(got, alt)) {
		h.failf("%v + %T%+v = %s, want %s", prev, ev, ev, fmtActs(acts), fmtActs(want))
	}
	h.observe(ev)
	h.apply(ev, acts)
}

// checkChaos holds for any input: Ready at most once, at most one Exit and
// it comes last, with a final state that agrees with its code, and a final
// state only after an Exit.
func (h *fuzzHarness) checkChaos(acts []Action) {
	for i, a := range acts {
		switch a := a.(type) {
		case Ready:
			if h.readySeen {
				h.failf("Ready twice")
			}
			h.readySeen = true
		case Exit:
			if i != len(acts)-1 {
				h.failf("Exit is not the last action")
			}
			h.checkExit(a)
		}
	}
	if h.exit == nil && h.m.State().Final() {
		h.failf("final state %v without an Exit", h.m.State())
	}
}

func (h *fuzzHarness) checkExit(e Exit) {
	switch s := h.m.State(); {
	case e.Code == 0 && s != Stopped:
		h.failf("Exit{0} in state %v, want stopped", s)
	case e.Code != 0 && s != Failed:
		h.failf("Exit{%d} in state %v, want failed", e.Code, s)
	case e.Code != 0 && e.Code != 1:
		h.failf("Exit code %d, want 0 or 1", e.Code)
	case e.Reason == "":
		h.failf("Exit without a reason")
	}
	h.exit = &e
}

// restartFailed is the reference's RestartDone for a restart that did not
// come up (rnorm reduces the Machine's reasons to it).
var restartFailed = RestartDone{Err: "failed"}

// rnorm is norm with RestartDone's reasons reduced to restartFailed: the
// tables of restart_test.go check them.
func rnorm(acts []Action) []Action {
	out := norm(acts)
	for i, a := range out {
		if r, ok := a.(RestartDone); ok && r.Err != "" {
			out[i] = restartFailed
		}
	}
	return out
}

// answerRestart is the reference's answer to the operator's restart when a
// run ends or a stop overtakes it (the Machine's finish).
func (h *fuzzHarness) answerRestart() []Action {
	if !h.rsPending || h.rsStopping {
		return nil
	}
	h.rsPending, h.rsConfirming = false, false
	return []Action{restartFailed}
}

// restartUp is the reference's answer once the operator's new run is up:
// at once, or after the start check when nothing else said it started.
func (h *fuzzHarness) restartUp() []Action {
	if !h.rsPending || h.rsStopping || h.rsConfirming {
		return nil
	}
	if h.cfg.RestartCheck > 0 && !h.cfg.Pidfile && !h.cfg.Notify {
		h.rsConfirming = true
		return []Action{ArmTimer{ID: StartTimer, After: h.cfg.RestartCheck}}
	}
	h.rsPending = false
	return []Action{RestartDone{}}
}

// restartNow is the reference's new run of an operator's restart: the
// count, backoff and the limit start over; no question to the hooks.
func (h *fuzzHarness) restartNow() []Action {
	h.restarts, h.streak, h.window, h.spawns = 0, 0, nil, 0
	h.verdict, h.due, h.pending = nil, false, refOutcome{}
	return []Action{Spawn{Restart: 0, Limit: h.cfg.Limit, Requested: true}}
}

// observe updates the world with what ev tells the Machine.
func (h *fuzzHarness) observe(ev Event) {
	switch ev := ev.(type) {
	case Started:
		h.spawnPending, h.watched, h.adopted, h.launcher = false, ev.PID, false, ev.PID
	case SpawnFailed:
		h.spawnPending = false
	case TimerFired:
		h.armed[ev.ID] = false
	case StopRequested:
		h.stopAsked = true
	}
}

// decide is the reference restart policy (SPEC §2, docs/design.md): a stable
// run resets the streak and the window; a clean exit ends on-failure; never
// ends at the first exit; the limit counts restarts, within the window when
// one is set; delays double from -t (or 100ms) up to the cap, shortened by
// jitter but never below -t.
func (h *fuzzHarness) decide(clean, resetCheck bool) refOutcome {
	cfg := h.cfg
	if resetCheck && h.now.Sub(h.runStart) >= cfg.Reset {
		h.streak, h.window = 0, nil
	}
	switch {
	case cfg.Policy == Never && clean:
		return refOutcome{exit: true, code: 0}
	case cfg.Policy == Never:
		return refOutcome{exit: true, code: 1}
	case cfg.Policy == OnFailure && clean:
		return refOutcome{exit: true, code: 0}
	}
	if cfg.Limit > 0 {
		n := h.restarts
		if cfg.Window > 0 {
			n = 0
			for _, t := range h.window {
				if h.now.Sub(t) < cfg.Window {
					n++
				}
			}
		}
		if n >= cfg.Limit {
			return refOutcome{exit: true, code: 1}
		}
	}
	k := h.streak
	h.streak++
	b, c := cfg.RespawnTimeout, cfg.MaxDelay
	if c <= b || k == 0 {
		return refOutcome{delay: b}
	}
	start, e := b, k
	if b == 0 {
		start, e = 100*time.Millisecond, k-1
	}
	d := c // start * 2^e, capped, without overflowing
	if e < 62 && start <= c>>e {
		d = start << e
	}
	if cfg.Jitter != nil {
		d -= time.Duration(float64(d) * 0.1 * cfg.Jitter())
	}
	return refOutcome{delay: max(d, b)}
}

func refClean(cfg Config, st ExitStatus) bool {
	switch {
	case st.Unknown:
		return false
	case st.Signal != 0:
		return st.Signal == syscall.SIGTERM || st.Signal == syscall.SIGINT ||
			st.Signal == syscall.SIGHUP || st.Signal == syscall.SIGPIPE
	}
	return cfg.Success.Has(st.Code)
}

func (h *fuzzHarness) outcomeActions(o refOutcome, disarmKill bool) []Action {
	var acts []Action
	if disarmKill {
		acts = append(acts, DisarmTimer{ID: KillTimer})
	}
	acts = append(acts, h.answerRestart()...)
	switch {
	case o.exit:
		return append(acts, Exit{Code: o.code})
	case h.cfg.Ask:
		// SPEC §4: restart-pending goes to the hooks while the delay runs.
		h.due = o.delay <= 0
		acts = append(acts, h.ask()...)
		if o.delay > 0 {
			acts = append(acts, ArmTimer{ID: RespawnTimer, After: o.delay})
		}
		return acts
	case o.delay <= 0:
		return append(acts, Spawn{Restart: h.restarts + 1, Limit: h.cfg.Limit})
	}
	return append(acts, ArmTimer{ID: RespawnTimer, After: o.delay})
}

func (h *fuzzHarness) ask() []Action {
	h.asking, h.verdict = true, nil
	return []Action{askFor(h.restarts+1, h.cfg.Limit), ArmTimer{ID: AskTimer, After: h.cfg.AskDeadline}}
}

// answered: the hooks' answer (or the deadline, as allow) is acted on once
// the respawn delay has passed too.
func (h *fuzzHarness) answered(v Verdict) []Action {
	h.asking = false
	if !h.due {
		h.verdict = &v
		return nil
	}
	return h.act(v)
}

func (h *fuzzHarness) act(v Verdict) []Action {
	h.due = false
	switch v.Decision {
	case Delay: // added to the respawn timeout; no second question after it
		h.verdict = &Verdict{Decision: Allow}
		return []Action{ArmTimer{ID: RespawnTimer, After: v.Delay}}
	case Deny: // held: asked again after each respawn timeout (at least 1s)
		return []Action{ArmTimer{ID: RespawnTimer, After: max(h.cfg.RespawnTimeout, time.Second)}}
	case GiveUp:
		return []Action{Exit{Code: 1}}
	}
	return []Action{Spawn{Restart: h.restarts + 1, Limit: h.cfg.Limit}}
}

// expect is the reference table: what the Machine must do for ev in state s
// (snapshot snap), with the world as it was before ev. alt is a second
// accepted answer where the contract allows two.
func (h *fuzzHarness) expect(s State, snap Snapshot, ev Event) (want, alt []Action) {
	term := []Action{SignalTree{Sig: syscall.SIGTERM}, ArmTimer{ID: KillTimer, After: h.cfg.StopTimeout}, CollectTree{}}
	stop := func(startTimer bool) []Action {
		var acts []Action
		if startTimer {
			acts = []Action{DisarmTimer{ID: StartTimer}}
		}
		return cat(acts, h.stopWD(), term)
	}
	// failRun: a run that ended without a usable exit (pidfile trouble, no
	// READY=1, a watchdog timeout): sig to the tree, the kill timer; a
	// first run's failure ends supervision.
	failRunWith := func(sig syscall.Signal) []Action {
		wd := h.stopWD()
		h.pending = refOutcome{exit: true, code: 1}
		if snap.Ready {
			h.pending = h.decide(false, false)
		}
		return cat(wd, []Action{SignalTree{Sig: sig}, ArmTimer{ID: KillTimer, After: h.cfg.StopTimeout}, CollectTree{}})
	}
	failRun := func() []Action { return failRunWith(syscall.SIGTERM) }
	live := s == Running || s == Starting && (snap.Awaiting || snap.Unready)
	endRun := func(o refOutcome, leftovers []int, pre ...Action) []Action {
		if len(leftovers) == 0 {
			return cat(pre, h.outcomeActions(o, false))
		}
		h.pending = o
		return cat(pre, term)
	}
	checking := s == Running && h.armed[StartTimer] && !snap.Ready
	// watchdogFailed: SIGABRT to a live run's tree, told as unhealthy.
	watchdogFailed := func() []Action {
		if !live {
			return nil
		}
		var acts []Action
		if snap.Awaiting || checking || snap.Unready || h.rsConfirming {
			h.rsConfirming = false
			acts = []Action{DisarmTimer{ID: StartTimer}}
		}
		if s == Running && h.now.Sub(h.runStart) >= h.cfg.Reset {
			h.streak, h.window = 0, nil
		}
		h.lastExit = nil
		return cat(acts, failRunWith(syscall.SIGABRT))
	}

	switch ev := ev.(type) {
	case Started:
		if s != Starting || !h.spawnPending {
			return nil, nil
		}
		h.runStart = h.now
		h.saidReady, h.status, h.namedMain, h.handedAt = false, "", false, time.Time{}
		h.wd = refWatchdog{period: h.cfg.Watchdog}
		var acts []Action
		timer := true
		switch {
		case h.cfg.Pidfile:
			acts = []Action{WatchPidfile{}, ArmTimer{ID: StartTimer, After: h.cfg.StartTimeout}}
		case h.cfg.Notify: // starting until READY=1
			acts = []Action{ArmTimer{ID: StartTimer, After: h.cfg.StartTimeout}}
		case !snap.Ready && h.cfg.StartCheck > 0:
			acts = []Action{ArmTimer{ID: StartTimer, After: h.cfg.StartCheck}}
		default:
			timer = false
			if !snap.Ready {
				acts = []Action{Ready{}}
			}
		}
		if h.stopAsked { // a stop came while the Spawn was outstanding
			return cat(acts, stop(timer)), nil
		}
		if !h.cfg.Notify {
			acts = cat(acts, h.startWD()) // the watchdog's clock starts at exec
		}
		if !timer {
			acts = cat(acts, h.restartUp()) // up at once
		}
		return acts, nil
	case SpawnFailed:
		switch {
		case s != Starting || !h.spawnPending:
			return nil, nil
		case !snap.Ready:
			return cat(h.answerRestart(), []Action{Exit{Code: 1}}), nil
		case h.stopAsked:
			return cat(h.answerRestart(), []Action{Exit{Code: 0}}), nil
		}
		// A restart that cannot exec is a failed run of status 127, and
		// waits at least a second (no busy loop with -t 0).
		h.runStart = h.now
		h.lastExit = &ExitStatus{Code: 127}
		o := h.decide(false, false)
		if !o.exit {
			o.delay = max(o.delay, time.Second)
		}
		return h.outcomeActions(o, false), nil
	case Exited:
		st, clean := ev.Status, refClean(h.cfg, ev.Status)
		switch {
		case s == Starting && snap.Awaiting:
			// The launcher of a daemonizing program: clean is expected.
			if clean {
				return nil, nil
			}
			h.lastExit = &st
			return cat([]Action{DisarmTimer{ID: StartTimer}}, failRun()), nil
		case s == Starting && snap.Unready:
			// Before READY=1: a launcher that daemonized is followed (its
			// daemon may say it); any other exit fails the run, even a clean one.
			if f := h.handover(snap, clean, ev.Leftovers); f != nil {
				return f, nil
			}
			h.lastExit = &st
			o := refOutcome{exit: true, code: 1}
			if snap.Ready {
				o = h.decide(false, false)
			}
			return endRun(o, ev.Leftovers, DisarmTimer{ID: StartTimer}), nil
		case s != Running:
			return nil, nil
		case !h.cfg.Pidfile && h.handover(snap, clean, ev.Leftovers) != nil:
			return []Action{Follow{PID: ev.Leftovers[0]}}, nil
		}
		h.lastExit = &st
		wd := h.stopWD()
		if checking {
			return endRun(refOutcome{exit: true, code: 1}, ev.Leftovers, cat(wd, []Action{DisarmTimer{ID: StartTimer}})...), nil
		}
		if h.rsConfirming { // the operator's new run ends under its start check
			h.rsConfirming = false
			wd = cat(wd, []Action{DisarmTimer{ID: StartTimer}})
		}
		return endRun(h.decide(clean, true), ev.Leftovers, wd...), nil
	case TreeEmpty:
		switch s {
		case Cleanup:
			return h.outcomeActions(h.pending, true), nil
		case Stopping:
			if h.rsStopping {
				h.rsStopping = false
				return cat([]Action{DisarmTimer{ID: KillTimer}}, h.restartNow()), nil
			}
			return cat([]Action{DisarmTimer{ID: KillTimer}}, h.answerRestart(), []Action{Exit{Code: 0}}), nil
		}
	case TimerFired:
		switch {
		case ev.ID == RespawnTimer && (s == Backoff || s == Held) && h.cfg.Ask:
			h.due = true
			switch {
			case h.asking:
				return nil, nil
			case h.verdict != nil:
				v := *h.verdict
				h.verdict = nil
				return h.act(v), nil
			}
			return h.ask(), nil // held: ask again
		case ev.ID == RespawnTimer && s == Backoff:
			return []Action{Spawn{Restart: h.restarts + 1, Limit: h.cfg.Limit}}, nil
		case ev.ID == AskTimer && h.asking:
			return h.answered(Verdict{Decision: Allow}), nil
		case ev.ID == KillTimer && (s == Stopping || s == Cleanup):
			return []Action{SignalTree{Sig: syscall.SIGKILL}}, nil
		case ev.ID == StartTimer && checking:
			return cat([]Action{Ready{}}, h.restartUp()), nil
		case ev.ID == StartTimer && h.rsConfirming && s == Running:
			h.rsPending, h.rsConfirming = false, false
			return []Action{RestartDone{}}, nil
		case ev.ID == StartTimer && snap.Awaiting:
			h.lastExit = nil
			return failRun(), nil
		case ev.ID == StartTimer && snap.Unready:
			h.lastExit = nil
			return failRun(), nil
		case ev.ID == WatchdogTimer && h.wd.on:
			// Pings only note their time; the deadline counts from the last.
			due := h.wd.last.Add(h.wd.period)
			if h.wd.until.After(due) {
				due = h.wd.until
			}
			if h.now.Before(due) {
				return []Action{ArmTimer{ID: WatchdogTimer, After: due.Sub(h.now)}}, nil
			}
			h.wd.on = false
			return watchdogFailed(), nil
		}
	case Unhealthy:
		// Restarted as if it had failed; the process is still alive, so the
		// tree is terminated and collected first.
		if s != Running {
			return nil, nil
		}
		var pre []Action
		if checking || h.rsConfirming {
			h.rsConfirming = false
			pre = []Action{DisarmTimer{ID: StartTimer}}
		}
		pre = cat(pre, h.stopWD())
		h.lastExit = nil // the run did not exit: it is killed as unhealthy
		h.pending = h.decide(false, true)
		return cat(pre, term), nil
	case Verdict:
		if !h.asking {
			return nil, nil
		}
		return cat([]Action{DisarmTimer{ID: AskTimer}}, h.answered(ev)), nil
	case PidfileRead:
		if !snap.Awaiting {
			return nil, nil
		}
		acts := []Action{DisarmTimer{ID: StartTimer}, Follow{PID: ev.PID}}
		if !snap.Ready {
			acts = append(acts, Ready{})
		}
		return cat(acts, h.restartUp()), nil
	case PidfileFailed:
		if !snap.Awaiting {
			return nil, nil
		}
		h.lastExit = nil
		return cat([]Action{DisarmTimer{ID: StartTimer}}, failRun()), nil
	case StopRequested:
		switch s {
		case Idle:
			return []Action{Exit{Code: 0}}, nil
		case Starting:
			if snap.PID == 0 && !snap.Awaiting {
				return nil, nil // remembered until Started
			}
			return stop(snap.Awaiting || snap.Unready), nil
		case Running:
			confirming := h.rsConfirming
			h.rsConfirming = false
			return stop(checking || confirming), nil
		case Backoff, Held:
			acts := []Action{DisarmTimer{ID: RespawnTimer}}
			if h.asking {
				h.asking = false
				acts = append(acts, DisarmTimer{ID: AskTimer})
			}
			return append(acts, Exit{Code: 0}), nil
		case Stopping:
			if h.rsStopping { // the restart's stop becomes a stop
				h.rsStopping = false
				return nil, nil
			}
			return []Action{DisarmTimer{ID: KillTimer}, SignalTree{Sig: syscall.SIGKILL}}, nil
		}
	case RestartRequested:
		return h.expectRestart(s, snap, checking, stop), nil
	case ReadyNotified:
		if s != Starting || !snap.Unready {
			return nil, nil // said again, or nothing waits for it
		}
		h.saidReady = true
		acts := []Action{DisarmTimer{ID: StartTimer}}
		if !snap.Ready {
			acts = append(acts, Ready{})
		}
		return cat(acts, h.startWD(), h.restartUp()), nil // the watchdog's clock starts at READY=1
	case StatusNotified:
		if live {
			h.status = ev.Text
		}
	case MainPIDNotified:
		if ev.PID <= 0 || ev.PID == snap.PID || !(s == Running || s == Starting && snap.Unready) {
			return nil, nil
		}
		h.namedMain, h.handedAt = true, time.Time{}
		return []Action{Follow{PID: ev.PID}}, nil
	case WatchdogPinged:
		if h.wd.on {
			h.wd.last = h.now
		}
	case WatchdogTriggered:
		return watchdogFailed(), nil
	case WatchdogPeriodSet:
		if !live || ev.Period < 0 {
			return nil, nil
		}
		h.wd.period = ev.Period
		if !h.wd.started {
			return nil, nil // applies from READY=1
		}
		return cat(h.stopWD(), h.startWD()), nil
	case TimeoutExtended:
		if ev.By <= 0 {
			return nil, nil
		}
		until := h.now.Add(ev.By)
		var acts []Action
		if (snap.Awaiting || snap.Unready) && h.armed[StartTimer] && until.After(h.deadline[StartTimer]) {
			acts = append(acts, ArmTimer{ID: StartTimer, After: ev.By})
		}
		if (s == Stopping || s == Cleanup) && h.armed[KillTimer] && until.After(h.deadline[KillTimer]) {
			acts = append(acts, ArmTimer{ID: KillTimer, After: ev.By})
		}
		if h.wd.on && until.After(h.wd.until) {
			h.wd.until = until
		}
		return acts, nil
	}
	return nil, nil
}

// expectRestart is the reference for the operator's restart in state s: a
// live run is stopped as a stop would, and the new run starts once its tree
// is gone; with nothing running it starts at once; a Spawn outstanding
// starts the new run; a stop under way refuses it; one under way takes it in.
func (h *fuzzHarness) expectRestart(s State, snap Snapshot, checking bool, stop func(bool) []Action) []Action {
	if h.rsPending {
		return nil
	}
	switch s {
	case Stopping:
		return []Action{restartFailed}
	case Starting:
		if h.stopAsked {
			return []Action{restartFailed}
		}
		if snap.PID == 0 && !snap.Awaiting {
			h.rsPending = true
			h.restarts, h.streak, h.window, h.spawns = 0, 0, nil, 1
			h.pending = refOutcome{}
			return nil
		}
		h.rsPending, h.rsStopping = true, true
		return stop(snap.Awaiting || snap.Unready)
	case Running:
		h.rsPending, h.rsStopping = true, true
		return stop(checking)
	case Cleanup:
		h.rsPending, h.rsStopping = true, true
		h.pending = refOutcome{}
		return nil
	case Backoff, Held:
		h.rsPending = true
		acts := []Action{DisarmTimer{ID: RespawnTimer}}
		if h.asking {
			h.asking = false
			acts = append(acts, DisarmTimer{ID: AskTimer})
		}
		return cat(acts, h.restartNow())
	}
	return nil
}

// apply checks each action against the world, then carries it out.
func (h *fuzzHarness) apply(ev Event, acts []Action) {
	for i, a := range acts {
		if h.exit != nil {
			h.failf("action after Exit")
		}
		switch a := a.(type) {
		case Spawn:
			switch {
			case h.spawnPending:
				h.failf("two Spawns without Started or SpawnFailed in between")
			case h.watched != 0 || len(h.tree) > 0 || h.collecting:
				h.failf("Spawn while the last run's processes live")
			case h.armed[RespawnTimer] || h.armed[KillTimer] || h.armed[StartTimer] || h.armed[AskTimer] || h.armed[WatchdogTimer]:
				h.failf("Spawn with a timer armed: %v", h.armed)
			case h.asking:
				h.failf("Spawn while the hooks are asked")
			case h.stopAsked:
				h.failf("Spawn after a stop request")
			case a.Restart != h.spawns || a.Limit != h.cfg.Limit:
				h.failf("Spawn%+v, want restart %d limit %d", a, h.spawns, h.cfg.Limit)
			case h.cfg.Limit > 0 && h.cfg.Window == 0 && a.Restart > h.cfg.Limit:
				h.failf("restart %d beyond the limit %d", a.Restart, h.cfg.Limit)
			}
			h.spawns++
			h.spawnPending = true
			h.verdict, h.due = nil, false
			if a.Restart > 0 {
				h.restarts = a.Restart
				if h.cfg.Window > 0 {
					h.window = append(h.window, h.now)
				}
			}
			if !h.async {
				// The loop spawns at once and queues the answer: SpawnFailed
				// when the next input says so (and is used up), else Started.
				if len(h.in) >= 2 && int(h.in[0]%numKinds) == kindSpawnFailed {
					h.in = h.in[2:]
					h.queue = append(h.queue, SpawnFailed{Err: errExec})
				} else {
					h.queue = append(h.queue, Started{PID: h.newPID()})
				}
			}
		case ArmTimer:
			_, extend := ev.(TimeoutExtended)
			if extend {
				// EXTEND_TIMEOUT_USEC pushes an armed timer out, never in.
				if !h.armed[a.ID] || (a.ID != StartTimer && a.ID != KillTimer) || !h.now.Add(a.After).After(h.deadline[a.ID]) {
					h.failf("extended timer %d (armed %v) to %v, deadline was %v", a.ID, h.armed[a.ID], h.now.Add(a.After), h.deadline[a.ID])
				}
				h.deadline[a.ID] = h.now.Add(a.After)
				continue
			}
			if h.armed[a.ID] {
				h.failf("timer %d armed twice", a.ID)
			}
			switch a.ID {
			case KillTimer:
				if a.After != h.cfg.StopTimeout || i == 0 ||
					acts[i-1] != Action(SignalTree{Sig: syscall.SIGTERM}) && acts[i-1] != Action(SignalTree{Sig: syscall.SIGABRT}) {
					h.failf("kill timer armed for %v without SIGTERM or SIGABRT just before it", a.After)
				}
			case AskTimer:
				if a.After != h.cfg.AskDeadline || i == 0 || reflect.TypeOf(acts[i-1]) != reflect.TypeOf(Ask{}) {
					h.failf("ask timer armed for %v without Ask just before it", a.After)
				}
			case RespawnTimer:
				if h.cfg.Ask {
					break // a hook's delay, or the hold interval (expect has it exactly)
				}
				// A restart that could not exec waits at least minSpawnRetry.
				if a.After <= 0 || a.After < h.cfg.RespawnTimeout || a.After > max(h.cfg.RespawnTimeout, h.cfg.MaxDelay, minSpawnRetry) {
					h.failf("respawn delay %v outside (0, [%v, %v]]", a.After, h.cfg.RespawnTimeout, h.cfg.MaxDelay)
				}
			case StartTimer:
				want := h.cfg.StartCheck
				if h.cfg.Pidfile || h.cfg.Notify {
					want = h.cfg.StartTimeout
				} else if h.rsConfirming {
					want = h.cfg.RestartCheck
				}
				if a.After != want {
					h.failf("start timer armed for %v, want %v", a.After, want)
				}
			case WatchdogTimer:
				if a.After <= 0 || h.wd.until.IsZero() && a.After > h.wd.period {
					h.failf("watchdog armed for %v, period %v", a.After, h.wd.period)
				}
			default:
				h.failf("timer %d unknown to the harness", a.ID)
			}
			h.armed[a.ID] = true
			h.deadline[a.ID] = h.now.Add(a.After)
		case DisarmTimer:
			h.armed[a.ID] = false
		case SignalTree:
			_, trigger := ev.(WatchdogTriggered)
			watchdog := trigger || ev == Event(TimerFired{ID: WatchdogTimer})
			if a.Sig != syscall.SIGTERM && a.Sig != syscall.SIGKILL && (a.Sig != syscall.SIGABRT || !watchdog) {
				h.failf("signal %v to the tree", a.Sig)
			}
		case CollectTree:
			if h.collecting {
				h.failf("CollectTree while collecting")
			}
			h.collecting = true
			h.checkCollected()
		case Ask:
			if !h.cfg.Ask || a.Event.Attempt != h.spawns || a.Event.Limit != h.cfg.Limit {
				h.failf("Ask%+v, want restart %d limit %d (hooks %v)", a, h.spawns, h.cfg.Limit, h.cfg.Ask)
			}
		case WatchPidfile:
			if !h.cfg.Pidfile {
				h.failf("WatchPidfile without a pidfile")
			}
			h.pfActive = true
		case Follow:
			in := -1
			for j, p := range h.tree {
				if p == a.PID {
					in = j
				}
			}
			switch {
			case a.PID == h.watched:
			case in < 0:
				h.failf("Follow %d: no such process in the run", a.PID)
			default:
				h.tree = append(h.tree[:in:in], h.tree[in+1:]...)
				if h.watched != 0 { // the launcher is one of the run's processes now
					h.tree = append(h.tree, h.watched)
				}
				h.watched, h.adopted = a.PID, false
			}
		case Ready:
			if h.readySeen {
				h.failf("Ready twice")
			}
			if _, said := ev.(ReadyNotified); h.cfg.Notify && ev != nil && !said {
				h.failf("Ready without READY=1")
			}
			h.readySeen = true
		case RestartDone:
			if a.Err == "" && h.m.State() != Running {
				h.failf("a restart answered as up in %v", h.m.State())
			}
		case Exit:
			if i != len(acts)-1 {
				h.failf("Exit is not the last action")
			}
			h.checkExit(a)
			if h.rsPending {
				h.failf("Exit with an operator's restart unanswered")
			}
			if h.spawnPending || h.watched != 0 || len(h.tree) > 0 || h.collecting ||
				h.armed[RespawnTimer] || h.armed[KillTimer] || h.armed[StartTimer] || h.armed[AskTimer] || h.armed[WatchdogTimer] {
				h.failf("Exit leaves something behind")
			}
			if _, spawn := ev.(SpawnFailed); h.stopAsked && a.Code != 0 && !spawn {
				h.failf("a requested stop ended with Exit{%d}", a.Code)
			}
			h.queue = nil // the loop stops stepping
		default:
			h.failf("action %T unknown to the harness", a)
		}
	}
}

// checkState relates the Machine's resting state to the world.
func (h *fuzzHarness) checkState() {
	s, snap := h.m.State(), h.m.Snapshot()
	alive := h.watched != 0 || len(h.tree) > 0
	timers := h.armed[RespawnTimer] || h.armed[KillTimer] || h.armed[StartTimer] || h.armed[AskTimer] || h.armed[WatchdogTimer]
	switch {
	case s.Final() || s == Idle:
		h.failf("state %v without an Exit", s)
	case s == Held && (snap.Reason != "hook" || !h.cfg.Ask):
		h.failf("held, reason %q", snap.Reason)
	case h.spawnPending && (s != Starting || snap.PID != 0 || snap.Awaiting):
		h.failf("a Spawn is outstanding in %v", s)
	case s == Starting && !h.spawnPending && !snap.Awaiting && !snap.Unready:
		h.failf("starting with no Spawn outstanding and neither the pidfile nor READY=1 awaited")
	case snap.Unready && (s != Starting || !h.cfg.Notify || !h.armed[StartTimer] || h.watched == 0 || snap.PID != h.watched || h.armed[WatchdogTimer]):
		h.failf("awaiting READY=1 in %v: start timer %v, watched %d (machine says %d), watchdog %v", s, h.armed[StartTimer], h.watched, snap.PID, h.armed[WatchdogTimer])
	case s == Running && h.cfg.Notify && !h.saidReady:
		h.failf("running without READY=1")
	case h.wd.on != h.armed[WatchdogTimer] || (snap.Watchdog != 0) != h.wd.on || h.wd.on && snap.Watchdog != h.wd.period:
		h.failf("watchdog: model on %v period %v, timer %v, machine says %v", h.wd.on, h.wd.period, h.armed[WatchdogTimer], snap.Watchdog)
	case h.armed[WatchdogTimer] && (s != Running && !(s == Starting && snap.Awaiting) || h.collecting || h.spawnPending):
		h.failf("watchdog armed in %v", s)
	case s == Running && h.wd.period > 0 && !h.wd.on:
		h.failf("running with a watchdog period of %v and no watchdog", h.wd.period)
	case snap.Status != h.status:
		h.failf("status text %q, want %q", snap.Status, h.status)
	case snap.Awaiting && (s != Starting || !h.armed[StartTimer] || !h.pfActive):
		h.failf("awaiting the pidfile in %v, start timer %v, pidfile watch %v", s, h.armed[StartTimer], h.pfActive)
	case h.armed[RespawnTimer] && s != Backoff && s != Held:
		h.failf("respawn timer armed in %v", s)
	case (s == Backoff || s == Held) && !h.armed[RespawnTimer] && !h.asking:
		h.failf("%v with neither the respawn timer nor a question out", s)
	case h.asking != h.armed[AskTimer] || (h.asking && s != Backoff && s != Held):
		h.failf("asking %v, ask timer %v, in %v", h.asking, h.armed[AskTimer], s)
	case (s == Backoff || s == Held) && (alive || h.collecting || h.armed[KillTimer] || h.armed[StartTimer]):
		h.failf("%v while the run's processes live or other timers run", s)
	case s == Running && (h.watched == 0 || h.collecting || h.armed[KillTimer] || snap.PID != h.watched):
		h.failf("running, but watched %d (machine says %d), collecting %v", h.watched, snap.PID, h.collecting)
	case h.armed[StartTimer] && !snap.Awaiting && !snap.Unready && (s != Running || snap.Ready) && !h.rsConfirming:
		h.failf("start timer armed in %v, ready %v", s, snap.Ready)
	case h.rsConfirming && (s != Running || !h.armed[StartTimer]):
		h.failf("a restart's start check in %v, start timer %v", s, h.armed[StartTimer])
	case h.rsStopping && s != Stopping:
		h.failf("stopping for a restart in %v", s)
	case h.collecting != (s == Cleanup || s == Stopping):
		h.failf("state %v, collecting %v", s, h.collecting)
	case h.armed[KillTimer] && s != Cleanup && s != Stopping:
		h.failf("kill timer armed in %v", s)
	case h.stopAsked && s != Stopping && !(s == Starting && h.spawnPending):
		h.failf("a stop was requested, yet state %v", s)
	case !h.spawnPending && !alive && !timers:
		h.failf("stuck in %v: nothing can happen any more", s)
	case snap.Restarts != h.spawns-1 || !reflect.DeepEqual(snap.LastExit, h.lastExit) || snap.Ready != h.readySeen:
		h.failf("snapshot restarts %d last exit %v ready %v, want %d, %v, %v",
			snap.Restarts, snap.LastExit, snap.Ready, h.spawns-1, h.lastExit, h.readySeen)
	case s == Running && !snap.Started.Equal(h.runStart):
		h.failf("snapshot started %v, want %v", snap.Started, h.runStart)
	case s == Running && h.watched != h.launcher && !snap.Following:
		h.failf("watching %d, not the launcher %d, yet not following", h.watched, h.launcher)
	case s == Running && h.watched == h.launcher && !h.cfg.Pidfile && snap.Following && !h.namedMain:
		h.failf("watching the launcher %d, yet following", h.watched)
	}
}

// fuzzSeed builds an input from config bytes and (kind, arg) pairs.
func fuzzSeed(cfg [fuzzConfigBytes]byte, evs ...[2]byte) []byte {
	b := append([]byte{}, cfg[:]...)
	for _, e := range evs {
		b = append(b, e[0], e[1])
	}
	return b
}

// fuzzArg encodes an event's arg: exit status index (fuzzStatuses), a child
// left behind, clock advance index (fuzzAdvance).
func fuzzArg(status int, leaves bool, advance int) byte {
	b := byte(status&15) | byte(advance&7)<<5
	if leaves {
		b |= 16
	}
	return b
}

func fuzzSeeds() [][]byte {
	const (
		st, sf, ex, ld, fk, fr = kindStarted, kindSpawnFailed, kindExit, kindLeftoverDies, kindFork, kindFireRespawn
		fkill, fs, pr, pfail   = kindFireKill, kindFireStart, kindPidfileRead, kindPidfileFailed
		sp, rs                 = kindStop, kindRestart
		exit0, exit1, sigterm  = 0, 1, 8
	)
	ev := func(k int, a byte) [2]byte { return [2]byte{byte(k), a} }
	var crashLoop [][2]byte
	for range 8 {
		crashLoop = append(crashLoop, ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0))
	}
	return [][]byte{
		// on-failure, limit 2, -t 1s, reset 60s, stop 10s, success {0}: a crash loop
		fuzzSeed([9]byte{3, 2, 0, 3, 0, 3 | 2<<2, 1, 0, 0}, crashLoop...),
		// backoff 1s..8s with jitter, window 10s, limit 3
		fuzzSeed([9]byte{0x83, 3, 3, 3, 3, 3 | 2<<2, 1, 200, 0}, crashLoop...),
		// -t 0 with a cap, policy always
		fuzzSeed([9]byte{1, 0, 0, 0, 2, 3 | 1<<2, 1, 0, 0}, crashLoop...),
		// window 5s, limit 1, -t 0: a restart exactly one window ago no longer counts
		fuzzSeed([9]byte{3, 1, 2, 0, 0, 3 | 2<<2, 1, 0, 0},
			ev(ex, fuzzArg(exit1, false, 3)), ev(ex, fuzzArg(exit1, false, 4)), ev(ex, fuzzArg(exit1, false, 3))),
		// leftovers, a stop during cleanup, the kill timer, the tree empties
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 0},
			ev(ex, fuzzArg(exit1, true, 3)), ev(sp, 0), ev(fkill, 0), ev(ld, fuzzArg(0, false, 1))),
		// a launcher that daemonizes (exit 0, one child), then the daemon crashes
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 0},
			ev(ex, fuzzArg(exit0, true, 2)), ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0), ev(fk, 0), ev(sp, 0)),
		// a stop, a second stop, leftovers
		fuzzSeed([9]byte{3, 0, 0, 4, 0, 3 | 2<<2, 1, 0, 0},
			ev(fk, 0), ev(sp, fuzzArg(0, false, 4)), ev(sp, 0), ev(ex, fuzzArg(sigterm, true, 1)), ev(ld, 0), ev(ld, 0)),
		// async spawn: a stop before Started; a restart that cannot exec
		fuzzSeed([9]byte{3, 0, 0, 4, 0, 3, 1, 0, 0x40}, ev(sp, 0), ev(st, 0), ev(ex, fuzzArg(sigterm, false, 1))),
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3, 1, 0, 0x40}, ev(st, 0), ev(ex, fuzzArg(exit1, false, 1)), ev(fr, 0),
			ev(sf, 0), ev(fr, 0), ev(sp, 0), ev(sf, 0)),
		// pidfile: the launcher forks the daemon, exits cleanly, the pidfile names the daemon
		fuzzSeed([9]byte{3, 0, 0, 3, 3, 3 | 2<<2, 1, 0x80, 1 | 2<<1},
			ev(fk, 0), ev(ex, fuzzArg(exit0, false, 1)), ev(pr, 0), ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0),
			ev(fk, 0), ev(pfail, 0), ev(ld, 0), ev(fr, 0), ev(fs, fuzzArg(0, false, 5)), ev(ld, 0)),
		// start check: survives, then crashes; and one that dies during the check
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 2 << 3}, ev(fs, 0), ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0)),
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 2 << 3}, ev(ex, fuzzArg(exit0, true, 1)), ev(ld, 0)),
		// adoption: the adopted program's status is unknown
		fuzzSeed([9]byte{3, 2, 0, 3, 0, 3 | 2<<2, 1, 0, 0x20}, ev(ex, fuzzArg(exit0, false, 3)), ev(fr, 0), ev(ex, 0)),
		// hooks: deny (held), ask again, allow; a delay; give up
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2 | 2<<4, 1, 0, 0x80},
			ev(ex, fuzzArg(exit1, false, 3)), ev(kindVerdict, 2), ev(fr, 0), ev(fr, 0), ev(kindVerdict, 0),
			ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0), ev(kindVerdict, 1|3<<2), ev(fr, 0),
			ev(ex, fuzzArg(exit1, false, 3)), ev(kindFireAsk, 0), ev(fr, 0), ev(ex, fuzzArg(exit1, false, 3)), ev(kindVerdict, 3), ev(fr, 0)),
		// hooks with -t 0: asked at once, a stop while asking
		fuzzSeed([9]byte{3, 0, 0, 0, 0, 3 | 2<<2 | 1<<4, 1, 0, 0x80}, ev(ex, fuzzArg(exit1, true, 3)), ev(ld, 0), ev(sp, 0)),
		// chaos mode: events the loop would never send
		fuzzSeed([9]byte{0x60, 1, 2, 0, 2, 0, 0, 0, 0x81},
			ev(ld, 0), ev(fkill, 0), ev(ex, fuzzArg(exit1, true, 0)), ev(st, 0), ev(ex, 0), ev(fr, 0), ev(sp, 0),
			ev(pr, 3), ev(fs, 0), ev(kindUnhealthy, 0), ev(kindVerdict, 2), ev(sp, 0)),
		// health probes fail during the start check, and later
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 2 << 3},
			ev(kindUnhealthy, 0), ev(ex, fuzzArg(sigterm, false, 1)), ev(fr, 0), ev(fs, 0), ev(kindUnhealthy, 0), ev(ex, 0)),
		// --ready notify with a 1s watchdog: status, READY=1, pings, a crash;
		// the restart never says READY=1 (start timeout), the next says it
		// and stops pinging (watchdog timeout), the next triggers it
		fuzzSeed([9]byte{3 | 4 | 2<<3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 0},
			ev(kindStatus, 1), ev(kindReady, 0), ev(kindPing, fuzzArg(0, false, 2)), ev(kindPing, fuzzArg(0, false, 2)),
			ev(kindFireWatchdog, 0), ev(ex, fuzzArg(exit1, false, 3)), ev(fr, 0), ev(fs, 0), ev(ld, 0), ev(fr, 0),
			ev(kindReady, 0), ev(kindFireWatchdog, 0), ev(ex, fuzzArg(14, false, 0)), ev(fr, 0),
			ev(kindReady, 0), ev(kindTrigger, 0), ev(fkill, 0), ev(ex, 0), ev(fr, 0)),
		// notify: a launcher that daemonizes before READY=1, MAINPID=, an
		// extended start timeout, WATCHDOG_USEC=, then a stop extended too
		fuzzSeed([9]byte{3 | 4 | 1<<3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 0},
			ev(fk, 0), ev(kindMainPID, 1), ev(kindExtend, 3), ev(ex, fuzzArg(exit0, false, 3)), ev(kindReady, 0),
			ev(kindWatchdogPeriod, 2), ev(kindPing, fuzzArg(0, false, 2)), ev(kindExtend, 3|fuzzArg(0, false, 3)),
			ev(kindFireWatchdog, 0), ev(sp, 0), ev(kindExtend, 3), ev(fkill, 0)),
		// the first run never says READY=1: start fails
		fuzzSeed([9]byte{3 | 4, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 0}, ev(fs, 0), ev(ld, 0)),
		// a 100ms watchdog without notify, from exec: pings, a timeout
		// during the start check, and with a pidfile
		fuzzSeed([9]byte{3 | 1<<3, 1, 0, 3, 0, 3 | 2<<2, 1, 0, 2 << 3},
			ev(kindPing, fuzzArg(0, false, 1)), ev(kindFireWatchdog, 0), ev(kindFireWatchdog, 0), ev(ex, fuzzArg(14, false, 0))),
		fuzzSeed([9]byte{3 | 1<<3, 0, 0, 3, 0, 3 | 2<<2, 1, 0, 1 | 2<<1},
			ev(fk, 0), ev(ex, fuzzArg(exit0, false, 1)), ev(kindPing, 0), ev(pr, 0), ev(kindFireWatchdog, 1), ev(ld, 0), ev(fr, 0)),
		// an operator's restart: of a running program (the old tree goes,
		// the new run comes up), during backoff, during cleanup, one that
		// a stop overtakes; with a start check the new run dies under it
		fuzzSeed([9]byte{3, 2, 0, 3, 0, 3 | 2<<2, 1, 0, 0},
			ev(rs, 0), ev(ex, fuzzArg(sigterm, true, 1)), ev(ld, 0), ev(ex, fuzzArg(exit1, false, 3)), ev(rs, 0),
			ev(ex, fuzzArg(exit1, true, 3)), ev(rs, 0), ev(fkill, 0), ev(ld, 0), ev(rs, 0), ev(sp, 0), ev(ex, fuzzArg(sigterm, false, 1))),
		fuzzSeed([9]byte{3, 1, 0, 3, 0, 3 | 2<<2, 1, 0, 2 << 3},
			ev(fs, 0), ev(rs, 0), ev(ex, fuzzArg(sigterm, false, 1)), ev(ex, fuzzArg(exit1, false, 1)), ev(fr, 0),
			ev(rs, 0), ev(ex, 0), ev(fs, 0), ev(rs, 0), ev(kindUnhealthy, 0), ev(ex, 0)),
		// a restart while a hook holds the restart, and with a pidfile
		fuzzSeed([9]byte{3, 0, 0, 3, 0, 3 | 2<<2 | 2<<4, 1, 0, 0x80},
			ev(ex, fuzzArg(exit1, false, 3)), ev(kindVerdict, 2), ev(fr, 0), ev(rs, 0), ev(rs, 0)),
		fuzzSeed([9]byte{3, 0, 0, 3, 3, 3 | 2<<2, 1, 0x80, 1 | 2<<1},
			ev(rs, 0), ev(fk, 0), ev(ex, fuzzArg(exit0, false, 1)), ev(pr, 0), ev(rs, 0), ev(ex, 0), ev(fk, 0), ev(fs, 0)),
		// chaos mode with what programs say
		fuzzSeed([9]byte{0x60 | 4 | 2<<3, 1, 2, 0, 2, 0, 0, 0, 0x81},
			ev(kindReady, 0), ev(kindTrigger, 0), ev(kindMainPID, 3), ev(kindExtend, 2), ev(kindWatchdogPeriod, 1),
			ev(kindFireWatchdog, 0), ev(st, 0), ev(kindReady, 0), ev(kindPing, 0), ev(sp, 0)),
	}
}

// restartsIn counts the restarts among acts.
func restartsIn(acts []Action) int {
	n := 0
	for _, a := range acts {
		if sp, ok := a.(Spawn); ok && sp.Restart > 0 {
			n++
		}
	}
	return n
}

// checkNotify holds the announcements to their rules, whatever the model
// expects: every exit of the watched process is told exactly once, every
// Spawn is announced (starting, or restarting with its number), every end
// is told (stopped for exit 0, gave-up otherwise) and nothing follows it,
// a hold is told once (held, then released just before its restart, or the
// end), and each event carries the step's time.
func (h *fuzzHarness) checkNotify(ev Event, acts []Action) {
	exited := 0
	var last hookspec.Kind
	ended := false
	for _, a := range acts {
		if ended {
			h.failf("%T after Exit", a)
		}
		switch a := a.(type) {
		case Notify:
			e := a.Event
			if !e.Time.Equal(h.now) || !e.Kind.Valid() || e.Limit != h.cfg.Limit {
				h.failf("Notify %+v at %v", e, h.now)
			}
			if e.Kind == hookspec.Exited {
				exited++
				if x, ok := ev.(Exited); ok && e.PID != x.PID {
					h.failf("exited told for pid %d, the event was pid %d", e.PID, x.PID)
				}
				if run := h.m.Snapshot().Restarts - restartsIn(acts); e.Attempt != run {
					h.failf("exited of restart %d told as attempt %d", run, e.Attempt)
				}
			}
			switch e.Kind {
			case hookspec.Held:
				if h.held || h.m.State() != Held {
					h.failf("held told again, or in state %s", h.m.State())
				}
				h.held = true
			case hookspec.Released:
				if !h.held {
					h.failf("released without held")
				}
				h.held = false
			case hookspec.Restarting:
				if h.held {
					h.failf("a held restart goes ahead without released")
				}
			}
			if last == hookspec.Released && e.Kind != hookspec.Restarting {
				h.failf("released followed by %q", e.Kind)
			}
			last = e.Kind
		case Spawn:
			if a.Restart == 0 && !a.Requested && last != hookspec.Starting || (a.Restart > 0 || a.Requested) && last != hookspec.Restarting {
				h.failf("Spawn%+v announced as %q", a, last)
			}
		case Exit:
			h.held = false
			if a.Code == 0 && last != hookspec.Stopped || a.Code != 0 && last != hookspec.GaveUp {
				h.failf("Exit%+v told as %q", a, last)
			}
			ended = true
		}
	}
	if _, ok := ev.(Exited); ok && exited != 1 {
		h.failf("an exit told %d times", exited)
	} else if !ok && exited != 0 {
		h.failf("exited told without an exit")
	}
}

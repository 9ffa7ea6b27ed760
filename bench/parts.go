package main

import (
	"fmt"
	"runtime"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// relax is called on every unsuccessful poll of a busy loop. A harness that
// spins without yielding starves whatever the kernel wakes on its CPU: the
// killed child, woken by our kill() onto our CPU, waits for our time slice to
// end (about 3 ms here) before it can even die. sched_yield lets it run at
// once and keeps the loop busy otherwise.
func (c *config) relax() {
	if c.yield {
		unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

// ---------------------------------------------------------------- restart

// restartResult is the -t 0 restart latency: SIGKILL of the child at T0 to
// the new child's pid showing in /proc/RESPAWNER/task/*/children (visible),
// and to the new child having exec'd the program (/proc/NEW/comm changed).
type restartResult struct {
	Program string           `json:"program"`
	Samples int              `json:"samples"`
	Visible durations        `json:"visible"`
	Execd   durations        `json:"execd"`
	Spins   int              `json:"median_polls"` // polls of the children files per sample
	Kernel  *kernelBreakdown `json:"kernel,omitempty"`
	// OtherCPU is the share of the CPUs other processes used meanwhile.
	OtherCPU float64 `json:"other_cpu_percent"`

	raw restartRaw // the samples themselves, for pooling runs
}

// restartRaw is every sample of a restartResult.
type restartRaw struct {
	visible, execd []time.Duration
	spins          []int
	kev            []restartEvents
	k0s            []int64
}

// poolRestarts is one restartResult of the samples of several runs of the
// same program; OtherCPU is weighted by samples.
func poolRestarts(rs []*restartResult) *restartResult {
	var raw restartRaw
	other := 0.0
	for _, r := range rs {
		raw.visible = append(raw.visible, r.raw.visible...)
		raw.execd = append(raw.execd, r.raw.execd...)
		raw.spins = append(raw.spins, r.raw.spins...)
		raw.kev = append(raw.kev, r.raw.kev...)
		raw.k0s = append(raw.k0s, r.raw.k0s...)
		other += r.OtherCPU * float64(r.Samples)
	}
	res := newRestartResult(rs[0].Program, raw)
	res.OtherCPU = other / float64(max(1, res.Samples))
	return res
}

func newRestartResult(program string, raw restartRaw) *restartResult {
	spins := append([]int(nil), raw.spins...)
	sort.Ints(spins)
	r := &restartResult{
		Program: program, Samples: len(raw.visible),
		Visible: summarize(raw.visible), Execd: summarize(raw.execd),
		Kernel: newBreakdown(raw.kev, raw.k0s), raw: raw,
	}
	if len(spins) > 0 {
		r.Spins = spins[len(spins)/2]
	}
	return r
}

// kernelBreakdown splits restarts with the kernel's own timestamps (cn_proc).
type kernelBreakdown struct {
	Samples  int       `json:"samples"`
	KillExit durations `json:"kill_to_exit"` // SIGKILL sent -> old child exits
	ExitFork durations `json:"exit_to_fork"` // old child exits -> respawner forks (respawner's reaction)
	ForkExec durations `json:"fork_to_exec"` // fork -> the new child has exec'd the program
	KillFork durations `json:"kill_to_fork"` // the whole restart, as the /proc poll sees it
}

func newBreakdown(ev []restartEvents, k0 []int64) *kernelBreakdown {
	if len(ev) == 0 {
		return nil
	}
	var ke, ef, fe, kf []time.Duration
	for i, e := range ev {
		ke = append(ke, time.Duration(e.exit-k0[i]))
		ef = append(ef, time.Duration(e.fork-e.exit))
		fe = append(fe, time.Duration(e.exec-e.fork))
		kf = append(kf, time.Duration(e.fork-k0[i]))
	}
	return &kernelBreakdown{Samples: len(ev), KillExit: summarize(ke), ExitFork: summarize(ef), ForkExec: summarize(fe), KillFork: summarize(kf)}
}

func benchRestart(c *config, prog program, name string) (*restartResult, error) {
	in, err := startRespawner(c.bin, c.dir, name, []string{"-t", "0"}, prog)
	if err != nil {
		return nil, err
	}
	res, err := measureRestarts(c, in, prog, c.samples, false)
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	return res, err
}

// measureRestarts takes samples restarts of prog under in. With hosted,
// respawner runs plugins: its children include respawner-hookhost, which is
// found by its executable and never taken for the program.
func measureRestarts(c *config, in *instance, prog program, samples int, hosted bool) (*restartResult, error) {
	w, err := newChildWatcher(in.pid)
	if err != nil {
		return nil, err
	}
	defer w.close()
	var cur int
	if hosted {
		if cur, err = waitHosted(in, w, prog, 10*time.Second); err != nil {
			return nil, err
		}
	} else {
		if cur, err = waitChild(in, w, 0, 5*time.Second); err != nil {
			return nil, err
		}
		if err := waitComm(cur, prog.Comm, 2*time.Second); err != nil {
			return nil, err
		}
	}
	// The measuring goroutine keeps its thread: no migration mid-sample.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	var visible, execd []time.Duration
	var spins []int
	var kev []restartEvents
	var k0s []int64
	cn := c.cnProc()
	if !c.poll && cn == nil {
		return nil, fmt.Errorf("-poll=false needs the kernel's process events: %v", c.cnErr)
	}
	commBuf := make([]byte, 64)
	ours := []int{in.pid}
	if hosted {
		// The host and the plugins are respawner's cost, not other load.
		for _, h := range w.ignore {
			ours = append(append(ours, h), descendants(h)...)
		}
	}
	probe := newCPUProbe(ours...)
	for i := 0; i < samples; i++ {
		time.Sleep(c.gap)
		if err := w.refresh(); err != nil {
			return nil, err
		}
		if cn != nil {
			cn.drain()
		}
		k0 := monoNow()
		t0 := time.Now()
		if err := unix.Kill(cur, unix.SIGKILL); err != nil {
			return nil, fmt.Errorf("kill child %d: %w", cur, err)
		}
		if !c.poll {
			// Harness asleep in poll(2) on the netlink socket: only the
			// kernel's timestamps, no CPU taken from respawner.
			ev, next, ok := cn.collect(in.pid, cur, 0, 3*time.Second)
			if !ok {
				return nil, fmt.Errorf("sample %d: no exit/fork/exec events 3s after killing %d\n%s", i, cur, in.logTail(10))
			}
			visible = append(visible, time.Duration(ev.fork-k0))
			execd = append(execd, time.Duration(ev.exec-k0))
			kev, k0s = append(kev, ev), append(k0s, k0)
			spins = append(spins, 0)
			cur = next
			continue
		}
		next, n := 0, 0
		for ; ; n++ {
			if next = w.other(cur); next != 0 {
				break
			}
			c.relax()
			if n&1023 == 1023 {
				if time.Since(t0) > 3*time.Second {
					return nil, fmt.Errorf("sample %d: no new child 3s after killing %d\n%s", i, cur, in.logTail(10))
				}
				w.refresh()
			}
		}
		t1 := time.Now()
		// Then until the new child runs the program (exec done).
		fd, err := unix.Open("/proc/"+strconv.Itoa(next)+"/comm", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("sample %d: new child %d: %w", i, next, err)
		}
		var t2 time.Time
		for k := 0; ; k++ {
			m, err := unix.Pread(fd, commBuf, 0)
			if err == nil && m > 0 && string(commBuf[:m-1]) == prog.Comm {
				t2 = time.Now()
				break
			}
			c.relax()
			if k&1023 == 1023 && time.Since(t0) > 3*time.Second {
				unix.Close(fd)
				return nil, fmt.Errorf("sample %d: child %d did not exec %s", i, next, prog.Comm)
			}
		}
		unix.Close(fd)
		visible = append(visible, t1.Sub(t0))
		execd = append(execd, t2.Sub(t0))
		spins = append(spins, n+1)
		if cn != nil {
			if ev, _, ok := cn.collect(in.pid, cur, next, 200*time.Millisecond); ok {
				kev, k0s = append(kev, ev), append(k0s, k0)
			}
		}
		cur = next
	}
	res := newRestartResult(prog.String(), restartRaw{visible: visible, execd: execd, spins: spins, kev: kev, k0s: k0s})
	res.OtherCPU = probe.otherPercent()
	return res, nil
}

// ---------------------------------------------------------------- timer

// timerResult is the accuracy of the respawn delay: from the child's death
// (its pidfd readable in the harness) to the new child visible, minus -t.
type timerResult struct {
	Program string          `json:"program"`
	Delay   time.Duration   `json:"delay_ns"`
	Errors  []time.Duration `json:"errors_ns"` // signed: late is positive
	Error   durations       `json:"error"`
	Death   durations       `json:"kill_to_death"` // SIGKILL to pidfd readable
	// KernelErrors are the same errors from the kernel's exit and fork
	// timestamps (cn_proc): no harness wake-up or polling in them.
	KernelErrors []time.Duration `json:"kernel_errors_ns,omitempty"`
	KernelError  *durations      `json:"kernel_error,omitempty"`
	OtherCPU     float64         `json:"other_cpu_percent"`
}

func benchTimer(c *config, prog program) (*timerResult, error) {
	in, err := startRespawner(c.bin, c.dir, "bench-timer", []string{"-t", c.timerDelay.String()}, prog)
	if err != nil {
		return nil, err
	}
	res, err := measureTimer(c, in, prog)
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	return res, err
}

func measureTimer(c *config, in *instance, prog program) (*timerResult, error) {
	w, err := newChildWatcher(in.pid)
	if err != nil {
		return nil, err
	}
	defer w.close()
	cur, err := waitChild(in, w, 0, 5*time.Second)
	if err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const early = 20 * time.Millisecond // start polling this long before the deadline
	var errs, deaths, kerrs []time.Duration
	cn := c.cnProc()
	probe := newCPUProbe(in.pid)
	for i := 0; i < c.timerSamples; i++ {
		if err := waitComm(cur, prog.Comm, 2*time.Second); err != nil {
			return nil, err
		}
		time.Sleep(50 * time.Millisecond)
		pidfd, err := unix.PidfdOpen(cur, 0)
		if err != nil {
			return nil, fmt.Errorf("pidfd_open %d: %w", cur, err)
		}
		if cn != nil {
			cn.drain()
		}
		t0 := time.Now()
		if err := unix.Kill(cur, unix.SIGKILL); err != nil {
			unix.Close(pidfd)
			return nil, fmt.Errorf("kill child %d: %w", cur, err)
		}
		pfd := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(pfd, 0)
			if err == nil && n > 0 {
				break
			}
			c.relax()
			if time.Since(t0) > 3*time.Second {
				unix.Close(pidfd)
				return nil, fmt.Errorf("child %d not dead 3s after SIGKILL", cur)
			}
		}
		death := time.Now()
		unix.Close(pidfd)
		time.Sleep(time.Until(death.Add(c.timerDelay - early)))
		w.refresh()
		if p := w.other(cur); p != 0 {
			return nil, fmt.Errorf("sample %d: respawned %s before the -t %s deadline (child %d)",
				i, c.timerDelay-early-time.Since(death), c.timerDelay, p)
		}
		next := 0
		for n := 0; ; n++ {
			if next = w.other(cur); next != 0 {
				break
			}
			c.relax()
			if n&1023 == 1023 {
				if time.Since(death) > c.timerDelay+3*time.Second {
					return nil, fmt.Errorf("sample %d: no new child 3s after the -t %s deadline\n%s", i, c.timerDelay, in.logTail(10))
				}
				w.refresh()
			}
		}
		errs = append(errs, time.Since(death)-c.timerDelay)
		deaths = append(deaths, death.Sub(t0))
		kmsg := ""
		if cn != nil {
			if ev, _, ok := cn.collect(in.pid, cur, next, 200*time.Millisecond); ok {
				kerrs = append(kerrs, time.Duration(ev.fork-ev.exit)-c.timerDelay)
				kmsg = fmt.Sprintf(" (kernel timestamps: %+.3f ms)", ms(kerrs[len(kerrs)-1]))
			}
		}
		cur = next
		progress("  timer sample %d/%d: error %+.3f ms%s\n", i+1, c.timerSamples, ms(errs[len(errs)-1]), kmsg)
	}
	res := &timerResult{Program: prog.String(), Delay: c.timerDelay, Errors: errs,
		Error: summarize(errs), Death: summarize(deaths), KernelErrors: kerrs, OtherCPU: probe.otherPercent()}
	if len(kerrs) > 0 {
		d := summarize(kerrs)
		res.KernelError = &d
	}
	return res, nil
}

// ---------------------------------------------------------------- idle

type threadWake struct {
	At     time.Duration `json:"at_ns"` // since the start of the idle window
	TID    int           `json:"tid"`
	Vol    int64         `json:"voluntary"`
	Nonvol int64         `json:"nonvoluntary"`
}

type threadInfo struct {
	TID       int    `json:"tid"`
	Switches  int64  `json:"switches"`
	BlockedIn string `json:"blocked_in"`
}

type idleResult struct {
	Program  string        `json:"program"`
	Window   time.Duration `json:"window_ns"`
	Switches int64         `json:"ctx_switches"`
	// MainThread is what /proc/PID/status alone shows: the counters of the
	// thread-group leader only, not of the whole process.
	MainThread int64        `json:"main_thread_ctx_switches"`
	Vol        int64        `json:"voluntary"`
	Nonvol     int64        `json:"nonvoluntary"`
	Mem        memInfo      `json:"mem"`
	Wakes      []threadWake `json:"wakes"`
	Threads    []threadInfo `json:"threads"`
}

func benchIdle(c *config, prog program) (*idleResult, error) {
	in, err := startRespawner(c.bin, c.dir, "bench-idle", nil, prog)
	if err != nil {
		return nil, err
	}
	res, err := measureIdle(c, in, prog)
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	return res, err
}

func measureIdle(c *config, in *instance, prog program) (*idleResult, error) {
	w, err := newChildWatcher(in.pid)
	if err != nil {
		return nil, err
	}
	cur, err := waitChild(in, w, 0, 5*time.Second)
	w.close()
	if err != nil {
		return nil, err
	}
	if err := waitComm(cur, prog.Comm, 2*time.Second); err != nil {
		return nil, err
	}
	time.Sleep(c.settle)
	start, err := threadSwitches(in.pid)
	if err != nil {
		return nil, err
	}
	// Reading /proc/PID/task/TID/status does not wake the thread, so the
	// window is sampled every 250 ms to tell when and which thread woke.
	t0 := time.Now()
	prev := start
	var wakes []threadWake
	for time.Since(t0) < c.idle {
		time.Sleep(min(250*time.Millisecond, c.idle-time.Since(t0)))
		now, err := threadSwitches(in.pid)
		if err != nil {
			return nil, fmt.Errorf("respawner gone during idle: %w", err)
		}
		for tid, s := range now {
			p := prev[tid]
			if s.total() != p.total() {
				wakes = append(wakes, threadWake{At: time.Since(t0), TID: tid, Vol: s.Vol - p.Vol, Nonvol: s.Nonvol - p.Nonvol})
			}
		}
		prev = now
	}
	window := time.Since(t0)
	res := &idleResult{Program: prog.String(), Window: window, Wakes: wakes}
	tids := make([]int, 0, len(prev))
	for tid := range prev {
		tids = append(tids, tid)
	}
	sort.Ints(tids)
	for _, tid := range tids {
		s, p := prev[tid], start[tid]
		d := s.total() - p.total()
		res.Vol += s.Vol - p.Vol
		res.Nonvol += s.Nonvol - p.Nonvol
		res.Threads = append(res.Threads, threadInfo{TID: tid, Switches: d, BlockedIn: blockedIn(in.pid, tid)})
	}
	res.Switches = res.Vol + res.Nonvol
	res.MainThread = prev[in.pid].total() - start[in.pid].total()
	if res.Mem, err = readMem(in.pid); err != nil {
		return nil, err
	}
	return res, nil
}

// ---------------------------------------------------------------- crash loop

type crashResult struct {
	Program     string        `json:"program"`
	Window      time.Duration `json:"window_ns"`
	Restarts    int           `json:"restarts"` // within the window
	PerSecond   float64       `json:"restarts_per_second"`
	MemAt1s     memInfo       `json:"mem_at_1s"`
	MemAtEnd    memInfo       `json:"mem_at_end"`
	TotalByStop int           `json:"total_restarts"`
	OtherCPU    float64       `json:"other_cpu_percent"`
	RSSSeries   []int64       `json:"rss_kb_each_second"` // from 1s to the end
}

func benchCrash(c *config, prog program, name string) (*crashResult, error) {
	in, err := startRespawner(c.bin, c.dir, name, []string{"-t", "0"}, prog)
	if err != nil {
		return nil, err
	}
	res, err := measureCrash(c, in, prog)
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	if err == nil {
		res.TotalByStop, _ = in.lastRestart()
	}
	return res, err
}

func measureCrash(c *config, in *instance, prog program) (*crashResult, error) {

	time.Sleep(time.Second)
	if in.exited() {
		return nil, fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
	}
	mem1, err := readMem(in.pid)
	if err != nil {
		return nil, err
	}
	n1, err := in.lastRestart()
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	probe := newCPUProbe(in.pid)
	series := []int64{mem1.RSSKB}
	for end := t1.Add(c.crash); time.Until(end) > 0; {
		time.Sleep(min(time.Second, time.Until(end)))
		if m, err := readMem(in.pid); err == nil {
			series = append(series, m.RSSKB)
		}
	}
	n2, err := in.lastRestart()
	if err != nil {
		return nil, err
	}
	t2 := time.Now()
	other := probe.otherPercent()
	mem2, err := readMem(in.pid)
	if err != nil {
		return nil, err
	}
	if in.exited() {
		return nil, fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
	}
	window := t2.Sub(t1)
	return &crashResult{
		Program: prog.String(), Window: window, Restarts: n2 - n1,
		PerSecond: float64(n2-n1) / window.Seconds(), MemAt1s: mem1, MemAtEnd: mem2, OtherCPU: other,
		RSSSeries: series,
	}, nil
}

// ---------------------------------------------------------------- stats

// durations summarises a set of samples.
type durations struct {
	N      int           `json:"n"`
	Min    time.Duration `json:"min_ns"`
	Median time.Duration `json:"median_ns"`
	P95    time.Duration `json:"p95_ns"`
	P99    time.Duration `json:"p99_ns"`
	Max    time.Duration `json:"max_ns"`
	Mean   time.Duration `json:"mean_ns"`
}

func summarize(d []time.Duration) durations {
	if len(d) == 0 {
		return durations{}
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return durations{
		N: len(s), Min: s[0], Median: median(s), P95: rank(s, 0.95), P99: rank(s, 0.99),
		Max: s[len(s)-1], Mean: sum / time.Duration(len(s)),
	}
}

func median(s []time.Duration) time.Duration {
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// rank is the nearest-rank percentile of sorted s.
func rank(s []time.Duration, p float64) time.Duration {
	i := int(float64(len(s))*p+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Command bench is the black-box benchmark of respawner: it runs the real
// binary (`respawner start -D ...`) and measures, from the outside,
//
//  1. restart latency with -t 0 (SIGKILL of the child to the new child),
//  2. the accuracy of the respawn delay with -t 5,
//  3. what respawner costs when idle (context switches, RSS, threads),
//  4. a crash loop with -t 0 (restarts per second, memory over time).
//
// Usage: go run ./bench -bin bin/respawner [-only restart,timer,idle,crash]
// [-samples 200] [-timer-samples 5] [-idle 60s] [-crash 5s] [-json]
//
// See docs/BENCHMARKS.md for the method and the figures.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

type config struct {
	bin          string
	dir          string
	only         map[string]bool
	samples      int
	gap          time.Duration
	timerSamples int
	timerDelay   time.Duration
	idle         time.Duration
	settle       time.Duration
	crash        time.Duration
	system       bool // use /bin/sleep and /bin/false only
	yield        bool // sched_yield in busy loops
	kernel       bool // use cn_proc for kernel timestamps
	poll         bool // restart: poll /proc (false: kernel timestamps only, harness asleep)
	cn           *cnProc
	cnErr        error
	jsonOut      bool
}

var parts = []string{"restart", "timer", "idle", "crash"}

var quiet bool

func progress(format string, a ...any) {
	if !quiet {
		fmt.Fprintf(os.Stderr, format, a...)
	}
}

func main() {
	os.Exit(run())
}

func run() int {
	c := &config{}
	var only string
	flag.StringVar(&c.bin, "bin", "bin/respawner", "the respawner binary to measure")
	flag.StringVar(&only, "only", strings.Join(parts, ","), "comma-separated parts to run: "+strings.Join(parts, ", "))
	flag.IntVar(&c.samples, "samples", 200, "restart latency: samples per child program")
	flag.DurationVar(&c.gap, "gap", 20*time.Millisecond, "restart latency: pause between samples (the child runs this long)")
	flag.IntVar(&c.timerSamples, "timer-samples", 5, "timer accuracy: samples (each takes the delay)")
	flag.DurationVar(&c.timerDelay, "timer-delay", 5*time.Second, "timer accuracy: the respawn delay -t")
	flag.DurationVar(&c.idle, "idle", 60*time.Second, "idle: length of the measured window")
	flag.DurationVar(&c.settle, "settle", 2*time.Second, "idle: wait this long after the child started before measuring")
	flag.DurationVar(&c.crash, "crash", 5*time.Second, "crash loop: length of the measured window (after 1s of warm-up)")
	flag.BoolVar(&c.system, "system-children", false, "supervise /bin/sleep and /bin/false only, not the tiny static children")
	flag.BoolVar(&c.yield, "yield", true, "call sched_yield in the harness's busy loops (false: pure spin, which delays the killed child's death by a time slice)")
	flag.BoolVar(&c.kernel, "kernel-timestamps", true, "also time restarts with the kernel's process events (cn_proc; needs CAP_NET_ADMIN)")
	flag.BoolVar(&c.poll, "poll", true, "restart latency: busy-poll /proc for the new child (false: use only the kernel's timestamps, the harness sleeping meanwhile)")
	flag.BoolVar(&c.jsonOut, "json", false, "print the results as JSON on stdout instead of the table")
	flag.BoolVar(&quiet, "q", false, "no progress messages on stderr")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	c.only = map[string]bool{}
	for _, p := range strings.Split(only, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ok := false
		for _, q := range parts {
			ok = ok || p == q
		}
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown part %q in -only (want %s)\n", p, strings.Join(parts, ", "))
			return 2
		}
		c.only[p] = true
	}
	if c.samples < 1 || c.timerSamples < 1 || c.idle <= 0 || c.crash <= 0 || c.timerDelay < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench: -samples and -timer-samples must be >= 1, -idle and -crash > 0, -timer-delay >= 100ms")
		return 2
	}
	bin, err := filepath.Abs(c.bin)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: respawner binary: %v (run make build first)\n", err)
		return 1
	}
	c.bin = bin
	if c.dir, err = os.MkdirTemp("", "respawner-bench-"); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer os.RemoveAll(c.dir)

	// An interrupted run still stops every respawner it started, by pid.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "\nbench: %v: stopping the respawners under test\n", s)
		stopAll()
		os.RemoveAll(c.dir)
		os.Exit(130)
	}()

	rep, err := measure(c)
	if c.cn != nil {
		c.cn.close()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		stopAll()
		return 1
	}
	if c.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		rep.print(os.Stdout)
	}
	return 0
}

// report is everything measured; Rows is the table.
type report struct {
	Machine machine          `json:"machine"`
	Rows    []row            `json:"rows"`
	Restart []*restartResult `json:"restart,omitempty"`
	Timer   *timerResult     `json:"timer,omitempty"`
	Idle    *idleResult      `json:"idle,omitempty"`
	Crash   []*crashResult   `json:"crash,omitempty"`
	Notes   []string         `json:"notes,omitempty"`
}

type row struct {
	Part    string  `json:"part"`
	Measure string  `json:"measure"`
	Value   float64 `json:"value"`
	Result  string  `json:"result"`
	Target  string  `json:"target"`
	Verdict string  `json:"verdict"` // PASS, MISS or info
}

type machine struct {
	CPUs      int    `json:"cpus"`
	CPU       string `json:"cpu"`
	Kernel    string `json:"kernel"`
	Go        string `json:"go"`
	Respawner string `json:"respawner"`
	Command   string `json:"command"`
	Date      string `json:"date"`
	LoadStart string `json:"loadavg_start"`
	LoadEnd   string `json:"loadavg_end"`
}

// loadavg is /proc/loadavg without the last-pid field: a busy machine (other
// jobs on the two cores) makes the latency figures noisy.
func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) >= 4 {
		f = f[:4]
	}
	return strings.Join(f, " ")
}

// cnProc returns the process-events connector, opened on first use, or nil
// when it is off or unavailable.
func (c *config) cnProc() *cnProc {
	if !c.kernel || c.cnErr != nil {
		return nil
	}
	if c.cn == nil {
		c.cn, c.cnErr = openCnProc()
	}
	return c.cn
}

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.3f ms", ms(d)) }

func fmtKB(kb int64) string { return fmt.Sprintf("%.1f MiB (%d kB)", float64(kb)/1024, kb) }

func measure(c *config) (*report, error) {
	rep := &report{Machine: describeMachine(c)}
	add := func(part, m string, v float64, res, target, verdict string) {
		rep.Rows = append(rep.Rows, row{part, m, v, res, target, verdict})
	}
	pause, exit1 := sysSleep, sysFalse
	tiny := false
	if !c.system {
		p, e, err := tinyPrograms(c.dir)
		if err != nil {
			rep.Notes = append(rep.Notes, "tiny static children unavailable ("+err.Error()+"): /bin/sleep and /bin/false used instead")
		} else {
			pause, exit1, tiny = p, e, true
		}
	}

	if c.only["restart"] {
		progs := []program{pause}
		if tiny {
			progs = append(progs, sysSleep)
		}
		for i, p := range progs {
			progress("restart latency -t 0, %s: %d samples...\n", p.Label, c.samples)
			r, err := benchRestart(c, p, fmt.Sprintf("bench-restart-%d", i))
			if err != nil {
				return nil, fmt.Errorf("restart latency (%s): %w", p.Label, err)
			}
			rep.Restart = append(rep.Restart, r)
			name := "restart -t 0, " + p.Label
			if !c.poll {
				name += " (kernel timestamps, harness asleep)"
			}
			if i == 0 {
				add("restart", name+": kill -> new child, median", ms(r.Visible.Median), fmtMS(r.Visible.Median), "<= 1.0 ms", verdict(r.Visible.Median <= time.Millisecond))
				add("restart", name+": kill -> new child, p95", ms(r.Visible.P95), fmtMS(r.Visible.P95), "<= 1.5 ms", verdict(r.Visible.P95 <= 1500*time.Microsecond))
				add("restart", name+": kill -> new child, max", ms(r.Visible.Max), fmtMS(r.Visible.Max), "-", "info")
			} else {
				add("restart", name+": kill -> new child, median / p95", ms(r.Visible.Median), fmtMS(r.Visible.Median)+" / "+fmtMS(r.Visible.P95), "-", "info")
			}
			add("restart", name+": kill -> exec done, median / p95", ms(r.Execd.Median), fmtMS(r.Execd.Median)+" / "+fmtMS(r.Execd.P95), "-", "info")
		}
	}

	if c.only["timer"] {
		progress("timer accuracy -t %s, %s: %d samples (about %s)...\n", c.timerDelay, pause.Label, c.timerSamples,
			(time.Duration(c.timerSamples) * (c.timerDelay + 100*time.Millisecond)).Round(time.Second))
		r, err := benchTimer(c, pause)
		if err != nil {
			return nil, fmt.Errorf("timer accuracy: %w", err)
		}
		rep.Timer = r
		abs := func(d time.Duration) time.Duration { return max(d, -d) }
		maxAbs := time.Duration(0)
		for _, e := range r.Errors {
			maxAbs = max(maxAbs, abs(e))
		}
		name := fmt.Sprintf("delay -t %s: death -> new child, error", c.timerDelay)
		add("timer", name+", median", ms(r.Error.Median), fmt.Sprintf("%+.3f ms", ms(r.Error.Median)), "<= 1.5 ms", verdict(abs(r.Error.Median) <= 1500*time.Microsecond))
		add("timer", name+", max", ms(maxAbs), fmt.Sprintf("%+.3f ms", ms(r.Error.Max)), "-", "info")
	}

	if c.only["idle"] {
		progress("idle: %s, settle %s, window %s...\n", sysSleep.Label, c.settle, c.idle)
		r, err := benchIdle(c, sysSleep)
		if err != nil {
			return nil, fmt.Errorf("idle: %w", err)
		}
		rep.Idle = r
		add("idle", fmt.Sprintf("idle context switches in %s (all threads)", c.idle), float64(r.Switches),
			fmt.Sprintf("%d (%d vol, %d invol)", r.Switches, r.Vol, r.Nonvol), "0", verdict(r.Switches == 0))
		add("idle", "idle context switches, main thread only (/proc/PID/status)", float64(r.MainThread), fmt.Sprint(r.MainThread), "-", "info")
		add("idle", "idle RSS (VmRSS)", float64(r.Mem.RSSKB)/1024, fmtKB(r.Mem.RSSKB), "<= 6 MiB", verdict(r.Mem.RSSKB <= 6*1024))
		add("idle", "idle threads", float64(r.Mem.Threads), fmt.Sprint(r.Mem.Threads), "-", "info")
	}

	if c.only["crash"] {
		progs := []program{sysFalse}
		if tiny {
			progs = append(progs, exit1)
		}
		for i, p := range progs {
			progress("crash loop -t 0, %s: 1s warm-up + %s...\n", p.Label, c.crash)
			r, err := benchCrash(c, p, fmt.Sprintf("bench-crash-%d", i))
			if err != nil {
				return nil, fmt.Errorf("crash loop (%s): %w", p.Label, err)
			}
			rep.Crash = append(rep.Crash, r)
			name := "crash loop -t 0, " + p.Label
			if i == 0 {
				add("crash", name+": restarts/s", r.PerSecond, fmt.Sprintf("%.0f /s", r.PerSecond), ">= 500 /s", verdict(r.PerSecond >= 500))
				growth := r.MemAtEnd.RSSKB - r.MemAt1s.RSSKB
				add("crash", name+": RSS at 1s -> end", float64(r.MemAtEnd.RSSKB)/1024,
					fmt.Sprintf("%.1f -> %.1f MiB (%+d kB)", float64(r.MemAt1s.RSSKB)/1024, float64(r.MemAtEnd.RSSKB)/1024, growth),
					"flat (<= +1 MiB)", verdict(growth <= 1024))
			} else {
				add("crash", name+": restarts/s", r.PerSecond, fmt.Sprintf("%.0f /s", r.PerSecond), "-", "info")
			}
		}
	}
	rep.Machine.LoadEnd = loadavg()
	busy := func(part string, pct float64) {
		if pct >= 20 {
			rep.Notes = append(rep.Notes, fmt.Sprintf("other processes used about %.0f%% of the CPUs during %s (tick-sampled, approximate): its figures may be pessimistic; run again on a quiet machine", pct, part))
		}
	}
	for _, r := range rep.Restart {
		busy("restart ("+r.Program+")", r.OtherCPU)
	}
	if rep.Timer != nil {
		busy("timer", rep.Timer.OtherCPU)
	}
	for _, r := range rep.Crash {
		busy("crash loop ("+r.Program+")", r.OtherCPU)
	}
	if c.cnErr != nil {
		rep.Notes = append(rep.Notes, "no kernel timestamps: "+c.cnErr.Error())
	}
	return rep, nil
}

func describeMachine(c *config) machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339)}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:]) + " " + unix.ByteSliceToString(u.Machine[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.Command(c.bin, "version").Output(); err == nil {
		m.Respawner = strings.TrimSpace(string(out))
	}
	m.Command = strings.Join(append([]string{"bench"}, os.Args[1:]...), " ")
	m.LoadStart = loadavg()
	return m
}

func (r *report) print(out io.Writer) {
	m := r.Machine
	fmt.Fprintf(out, "respawner benchmark  %s\n", m.Date)
	fmt.Fprintf(out, "machine: %d CPUs (%s), Linux %s, %s; %s\n", m.CPUs, m.CPU, m.Kernel, m.Go, m.Respawner)
	fmt.Fprintf(out, "loadavg: %s at start, %s at end (other jobs on the machine make latencies noisy)\n\n", m.LoadStart, m.LoadEnd)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASURE\tRESULT\tTARGET\tVERDICT")
	for _, x := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", x.Measure, x.Result, x.Target, x.Verdict)
	}
	tw.Flush()

	for _, rr := range r.Restart {
		fmt.Fprintf(out, "\nrestart -t 0, %s, %d samples (ms): min / median / p95 / p99 / max; other processes used %.0f%% of the CPUs\n",
			rr.Program, rr.Samples, rr.OtherCPU)
		if rr.Spins > 0 {
			fmt.Fprintf(out, "  kill -> new child visible: %s   (median %d polls of the children files)\n", fmtDist(rr.Visible), rr.Spins)
		} else {
			fmt.Fprintf(out, "  kill -> new child forked:  %s   (kernel timestamps; the harness slept)\n", fmtDist(rr.Visible))
		}
		fmt.Fprintf(out, "  kill -> exec done:         %s\n", fmtDist(rr.Execd))
		if k := rr.Kernel; k != nil {
			fmt.Fprintf(out, "  kernel timestamps (cn_proc), %d samples:\n", k.Samples)
			fmt.Fprintf(out, "    kill -> old child exits:      %s\n", fmtDist(k.KillExit))
			fmt.Fprintf(out, "    exit -> respawner forks:      %s   (respawner's own reaction)\n", fmtDist(k.ExitFork))
			fmt.Fprintf(out, "    fork -> new child exec'd:     %s\n", fmtDist(k.ForkExec))
			fmt.Fprintf(out, "    kill -> fork (whole restart): %s\n", fmtDist(k.KillFork))
		}
	}
	if t := r.Timer; t != nil {
		fmt.Fprintf(out, "\ntimer -t %s, %s: errors (ms, late > 0):", t.Delay, t.Program)
		for _, e := range t.Errors {
			fmt.Fprintf(out, " %+.3f", ms(e))
		}
		fmt.Fprintf(out, "\n  SIGKILL -> death seen on the pidfd: median %.3f ms; other processes used %.0f%% of the CPUs\n", ms(t.Death.Median), t.OtherCPU)
		if len(t.KernelErrors) > 0 {
			fmt.Fprintf(out, "  from the kernel's exit and fork timestamps (ms):")
			for _, e := range t.KernelErrors {
				fmt.Fprintf(out, " %+.3f", ms(e))
			}
			fmt.Fprintln(out)
		}
	}
	if i := r.Idle; i != nil {
		fmt.Fprintf(out, "\nidle, %s: %d context switches in %s; RSS %s, peak %s, %d threads\n",
			i.Program, i.Switches, i.Window.Round(time.Millisecond), fmtKB(i.Mem.RSSKB), fmtKB(i.Mem.HWMKB), i.Mem.Threads)
		for _, t := range i.Threads {
			fmt.Fprintf(out, "  thread %d: %d switches, now in %s\n", t.TID, t.Switches, t.BlockedIn)
		}
		for _, w := range i.Wakes {
			fmt.Fprintf(out, "  wake at +%.2fs: thread %d, %d vol + %d invol\n", w.At.Seconds(), w.TID, w.Vol, w.Nonvol)
		}
	}
	for _, cr := range r.Crash {
		fmt.Fprintf(out, "\ncrash loop -t 0, %s: %d restarts in %s (%.0f/s, %.3f ms per cycle), %d in all; RSS %s at 1s, %s at end (peak %s); other processes used %.0f%% of the CPUs\n",
			cr.Program, cr.Restarts, cr.Window.Round(time.Millisecond), cr.PerSecond, 1000/max(cr.PerSecond, 0.001), cr.TotalByStop,
			fmtKB(cr.MemAt1s.RSSKB), fmtKB(cr.MemAtEnd.RSSKB), fmtKB(cr.MemAtEnd.HWMKB), cr.OtherCPU)
		fmt.Fprintf(out, "  RSS each second from 1s (kB): %v\n", cr.RSSSeries)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(out, "\nnote:", n)
	}
}

func fmtDist(d durations) string {
	return fmt.Sprintf("%.3f / %.3f / %.3f / %.3f / %.3f", ms(d.Min), ms(d.Median), ms(d.P95), ms(d.P99), ms(d.Max))
}

// Command bench is the black-box benchmark of respawner: it runs the real
// binary (`respawner start -D ...`) and measures, from the outside,
//
//  1. restart latency with -t 0 (SIGKILL of the child to the new child),
//  2. the accuracy of the respawn delay with -t 5,
//  3. what respawner costs when idle (context switches, RSS, threads),
//  4. a crash loop with -t 0 (restarts per second, memory over time),
//  5. veto overhead: the -t 0 restart latency without plugins and with a
//     plugin that answers restart-pending with allow,
//  6. probe idle cost: CPU time and context switches of respawner,
//     respawner-hookhost and the healthcheck-http plugin probing lighttpd.
//  7. flood: `respawner start /usr/bin/yes` in daemon mode: start, status
//     and stop times, memory of respawner and its keeper, a restart on time.
//  8. notify: the -t 0 restart latency without plugins (twice, for the
//     noise) and with a notify-only plugin told every event (notify-webhook
//     posting to a receiver that answers and to one that is down,
//     notify-email with its SMTP server down), in interleaved rounds; with
//     must be within the noise of without.
//  9. shim: the -t 0 restart latency without run-environment flags, with
//     --chdir / and with --umask 022, each of which starts every run
//     through the exec shim.
//  10. hung: `respawner start --plugin healthcheck-http lighttpd -- -f CONF`
//     with the default probe options, lighttpd SIGSTOPped: the time until a
//     new lighttpd serves, against the documented worst case.
//  11. listen: lighttpd -D with -t 0 SIGKILLed 10 times under a client
//     loop, on a socket respawner holds (--listen) and on one lighttpd
//     binds itself: requests refused, reset and served.
//
// Usage: go run ./bench -bin bin/respawner
// [-only restart,timer,idle,crash,veto,probe,flood,notify,shim,listen,hung] [-samples 200]
// [-timer-samples 5] [-idle 60s] [-crash 5s] [-veto-samples 1000]
// [-probe-idle 60s] [-flood-samples 50] [-notify-samples 300]
// [-notify-rounds 5] [-shim-rounds 2] [-hung-samples 3] [-json]
//
// See docs/BENCHMARKS.md for the method and the figures.
package main

import (
	"encoding/json"
	"errors"
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

	vetoSamples   int
	testhook      string // prebuilt respawner-plugin-testhook ("" : go build it)
	lighttpd      string
	probeIdle     time.Duration
	probeInterval time.Duration
	probeSettle   time.Duration
	floodSamples  int
	notifySamples int
	notifyRounds  int
	shimRounds    int
	hungSamples   int
}

var parts = []string{"restart", "timer", "idle", "crash", "veto", "probe", "flood", "notify", "shim", "listen", "hung"}

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
	flag.IntVar(&c.vetoSamples, "veto-samples", 1000, "veto overhead: restart samples without plugins and again with the plugin")
	flag.StringVar(&c.testhook, "testhook", "", "veto overhead: a built respawner-plugin-testhook (default: go build ./internal/hooktest/testhook)")
	flag.StringVar(&c.lighttpd, "lighttpd", "/usr/sbin/lighttpd", "probe idle cost: the lighttpd binary")
	flag.DurationVar(&c.probeIdle, "probe-idle", 60*time.Second, "probe idle cost: length of the measured window")
	flag.DurationVar(&c.probeInterval, "probe-interval", time.Second, "probe idle cost: the probe interval")
	flag.DurationVar(&c.probeSettle, "probe-settle", 5*time.Second, "probe idle cost: wait this long after lighttpd, the host and the plugin are up")
	flag.IntVar(&c.floodSamples, "flood-samples", 50, "flood: status requests while yes writes")
	flag.IntVar(&c.notifySamples, "notify-samples", 300, "notify: restart samples per variant (two without plugins, each notifier), spread over the rounds")
	flag.IntVar(&c.notifyRounds, "notify-rounds", 5, "notify: rounds; each runs every variant once, in a rotating order")
	flag.IntVar(&c.shimRounds, "shim-rounds", 2, "shim: rounds of -samples restarts with no flags, --chdir / and --umask 022 (the exec shim)")
	flag.IntVar(&c.hungSamples, "hung-samples", 3, "hung lighttpd: SIGSTOPs, each at another phase of the probe interval (about 17 s each)")
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
	if c.samples < 1 || c.timerSamples < 1 || c.hungSamples < 1 || c.vetoSamples < 1 || c.notifySamples < 1 || c.notifyRounds < 1 || c.idle <= 0 || c.crash <= 0 || c.probeIdle <= 0 ||
		c.timerDelay < 100*time.Millisecond || c.probeInterval < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "bench: -samples, -timer-samples, -hung-samples, -veto-samples, -notify-samples and -notify-rounds must be >= 1, -idle, -crash and -probe-idle > 0, -timer-delay and -probe-interval >= 100ms")
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
	Veto    *vetoResult      `json:"veto,omitempty"`
	Probe   *probeResult     `json:"probe,omitempty"`
	Flood   *floodResult     `json:"flood,omitempty"`
	Notify  *notifyResult    `json:"notify,omitempty"`
	Shim    *shimResult      `json:"shim,omitempty"`
	Listen  *listenResult    `json:"listen,omitempty"`
	Hung    *hungResult      `json:"hung,omitempty"`
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
	if c.only["veto"] {
		r, err := benchVeto(c, pause)
		if err != nil {
			return nil, fmt.Errorf("veto overhead: %w", err)
		}
		rep.Veto = r
		dist := func(r *restartResult) string {
			return fmt.Sprintf("%.3f / %.3f / %.3f ms", ms(r.Visible.Median), ms(r.Visible.P95), ms(r.Visible.P99))
		}
		name := "veto: restart -t 0, " + pause.Label + ": kill -> new child p50 / p95 / p99"
		add("veto", name+", no plugins", ms(r.Without.Visible.P99), dist(r.Without), "-", "info")
		add("veto", name+", --plugin "+r.Plugin, ms(r.With.Visible.P99), dist(r.With), "-", "info")
		add("veto", "veto overhead: difference p50 / p95", ms(r.DiffP50), fmt.Sprintf("%+.3f / %+.3f ms", ms(r.DiffP50), ms(r.DiffP95)), "-", "info")
		add("veto", "veto overhead: difference p99", ms(r.DiffP99), fmt.Sprintf("%+.3f ms", ms(r.DiffP99)), "<= 1 ms", verdict(r.DiffP99 <= time.Millisecond))
		if f := r.Floor; f != nil {
			add("veto", fmt.Sprintf("floor: restart-pending asked straight of the idle plugin (%s apart) p50 / p95 / p99", c.gap), ms(f.P99),
				fmt.Sprintf("%.3f / %.3f / %.3f ms", ms(f.Median), ms(f.P95), ms(f.P99)), "-", "info")
		}
	}

	if c.only["probe"] {
		progress("probe idle cost: lighttpd probed every %s, settle %s, window %s...\n", c.probeInterval, c.probeSettle, c.probeIdle)
		r, err := benchProbe(c)
		var skip errSkip
		switch {
		case errors.As(err, &skip):
			rep.Notes = append(rep.Notes, skip.msg)
		case err != nil:
			return nil, fmt.Errorf("probe idle cost: %w", err)
		default:
			rep.Probe = r
			for _, p := range append(r.Procs, r.Total) {
				res := fmt.Sprintf("%.2f s/h", p.CPUHour)
				if p.RunNS >= 0 {
					res += fmt.Sprintf(" (schedstat: %.2f s/h)", float64(p.RunNS)/1e9*3600/r.Window.Seconds())
				}
				add("probe", fmt.Sprintf("probe every %s: %s CPU time per hour (utime+stime)", c.probeInterval, p.Role), p.CPUHour,
					res, "-", "info")
			}
			for _, p := range append(r.Procs, r.Total) {
				add("probe", fmt.Sprintf("probe every %s: %s context switches per probe", c.probeInterval, p.Role), p.PerProbe,
					fmt.Sprintf("%.1f", p.PerProbe), "-", "info")
			}
		}
	}

	if c.only["flood"] {
		progress("flood: respawner start /usr/bin/yes (daemon mode), %d status requests...\n", c.floodSamples)
		r, err := benchFlood(c, c.floodSamples, time.Second)
		if err != nil {
			return nil, fmt.Errorf("flood: %w", err)
		}
		rep.Flood = r
		add("flood", "yes: start returns after --start-check 1s", ms(r.Start), fmtMS(r.Start), "-", "info")
		add("flood", "yes: status round trip, median / max", ms(r.Status.Max), fmtMS(r.Status.Median)+" / "+fmtMS(r.Status.Max), "<= 50 ms", verdict(r.Status.Max <= 50*time.Millisecond))
		add("flood", "yes: stop", ms(r.Stop), fmtMS(r.Stop), "<= 1 s", verdict(r.Stop <= time.Second))
		add("flood", "yes: respawner's RSS, highest", float64(r.RSSKB)/1024, fmtKB(r.RSSKB), "< 16 MiB", verdict(r.RSSKB < 16*1024))
		add("flood", "yes: the keeper's RSS", float64(r.KeeperKB)/1024, fmtKB(r.KeeperKB), "-", "info")
		how := "exit -> fork (kernel timestamps)"
		if !r.Kernel {
			how = "death seen -> new yes seen (harness)"
		}
		add("flood", fmt.Sprintf("yes: kill -9, restart after -t %s, error, %s", r.Delay, how), ms(r.Restart), fmtMS(r.Restart), "<= 1.5 ms", verdict(r.Restart <= 1500*time.Microsecond && r.Restart >= 0))
		if r.LogMBps > 0 {
			add("flood", "yes: NAME.log growth", r.LogMBps, fmt.Sprintf("%.0f MB/s", r.LogMBps), "-", "info")
		}
	}

	if c.only["notify"] {
		r, err := benchNotify(c, pause)
		if err != nil {
			return nil, fmt.Errorf("notify: %w", err)
		}
		rep.Notify = r
		dist := func(r *restartResult) string {
			return fmt.Sprintf("%.3f / %.3f / %.3f ms", ms(r.Visible.Median), ms(r.Visible.P95), ms(r.Visible.P99))
		}
		for _, v := range r.Variants {
			name := "notify: restart -t 0, " + pause.Label + ": kill -> new child p50 / p95 / p99, " + v.Label
			add("notify", name, ms(v.Result.Visible.Median), dist(v.Result), "-", "info")
		}
		for _, v := range r.Variants {
			d := v.Diff
			if d == nil {
				continue
			}
			add("notify", v.Label+`: registered notify-only ("veto":false, never asked restart-pending)`, float64(btoi(v.Veto)),
				fmt.Sprintf("notify %v, veto %v", v.Notify, v.Veto), "veto false", verdict(v.Notify && !v.Veto))
			band := func(diff, band, runs, perm, spread time.Duration) string {
				return fmt.Sprintf("%+.3f ms (band %.3f: pooled runs %.3f, relabelled %.3f, run to run %.3f)", ms(diff), ms(band), ms(runs), ms(perm), ms(spread))
			}
			add("notify", v.Label+": p50 minus no plugins", ms(d.P50), band(d.P50, d.Band50, d.Runs50, d.Perm50, d.Spread50), "within noise", verdict(d.Within50))
			add("notify", v.Label+": p50 shift beyond sampling noise", float64(btoi(d.Shift50)), fmt.Sprint(d.Shift50), "-", "info")
			add("notify", v.Label+": p95 minus no plugins", ms(d.P95), band(d.P95, d.Band95, d.Runs95, d.Perm95, d.Spread95), "within noise", verdict(d.Within95))
			if v.recv != nil {
				add("notify", v.Label+": requests the receiver answered", float64(sumKinds(v.Received)), fmtKinds(v.Received), "-", "info")
			} else {
				add("notify", v.Label+": failed deliveries the plugin logged", float64(v.Failures), fmt.Sprint(v.Failures), "-", "info")
			}
		}
	}

	if c.only["shim"] {
		r, err := benchShim(c, pause, max(c.shimRounds, 1))
		if err != nil {
			return nil, fmt.Errorf("shim: %w", err)
		}
		rep.Shim = r
		r.rows(add)
	}

	if c.only["listen"] {
		r, err := benchListen(c)
		var skip errSkip
		switch {
		case errors.As(err, &skip):
			rep.Notes = append(rep.Notes, skip.msg)
		case err != nil:
			return nil, fmt.Errorf("listen: %w", err)
		default:
			rep.Listen = r
			r.rows(add)
		}
	}

	if c.only["hung"] {
		progress("hung lighttpd: %d SIGSTOPs with the default probe options (about %s)...\n", c.hungSamples, time.Duration(c.hungSamples)*17*time.Second)
		r, err := benchHung(c)
		var skip errSkip
		switch {
		case errors.As(err, &skip):
			rep.Notes = append(rep.Notes, skip.msg)
		case err != nil:
			return nil, fmt.Errorf("hung lighttpd: %w", err)
		default:
			rep.Hung = r
			r.rows(add)
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
	if r := rep.Veto; r != nil {
		busy("veto overhead (no plugins)", r.Without.OtherCPU)
		busy("veto overhead (with the plugin)", r.With.OtherCPU)
	}
	if r := rep.Probe; r != nil {
		busy("probe idle cost", r.OtherCPU)
	}
	if r := rep.Notify; r != nil {
		for _, v := range r.Variants {
			busy("notify ("+v.Label+")", v.Result.OtherCPU)
		}
	}
	if r := rep.Shim; r != nil {
		for i, x := range r.Rounds {
			for _, y := range x.Runs {
				busy(fmt.Sprintf("shim round %d (%s)", i+1, y.Flags), y.OtherCPU)
			}
		}
	}
	if rep.Idle != nil {
		rep.Notes = append(rep.Notes, "idle: respawner now turns the GC's pacing off (debug.SetGCPercent(-1) with an 8 MiB memory limit, quietGC in cmd/respawner/start.go) unless GOGC or GOMEMLIMIT is set in its environment"+gcEnv())
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
	if v := r.Veto; v != nil {
		fmt.Fprintf(out, "\nveto overhead, -t 0, %s (ms): min / median / p95 / p99 / max\n", v.Without.Program)
		for _, x := range []struct {
			label string
			r     *restartResult
		}{{"no plugins", v.Without}, {"--plugin " + v.Plugin, v.With}} {
			fmt.Fprintf(out, "  %-32s kill -> new child: %s  (%d samples; other processes %.0f%% of the CPUs)\n", x.label, fmtDist(x.r.Visible), x.r.Samples, x.r.OtherCPU)
			if k := x.r.Kernel; k != nil {
				fmt.Fprintf(out, "  %-32s exit -> fork:      %s  (kernel timestamps)\n", "", fmtDist(k.ExitFork))
			}
		}
		fmt.Fprintf(out, "  difference (with - without): p50 %+.3f, p95 %+.3f, p99 %+.3f ms\n", ms(v.DiffP50), ms(v.DiffP95), ms(v.DiffP99))
		if f := v.Floor; f != nil {
			fmt.Fprintf(out, "  floor, the question asked straight of the idle plugin by a Go client: %s\n", fmtDist(*f))
			fmt.Fprintf(out, "  difference minus floor: p50 %+.3f, p95 %+.3f, p99 %+.3f ms (respawner -> respawner-hookhost -> back, and the loop's own work)\n",
				ms(v.DiffP50-f.Median), ms(v.DiffP95-f.P95), ms(v.DiffP99-f.P99))
		}
	}
	if n := r.Notify; n != nil {
		fmt.Fprintf(out, "\nnotify, -t 0, %s, %d rounds (ms): min / median / p95 / p99 / max\n", n.Variants[0].Result.Program, n.Rounds)
		for _, v := range n.Variants {
			fmt.Fprintf(out, "  %-44s kill -> new child: %s  (%d samples; other processes %.0f%% of the CPUs)\n", v.Label, fmtDist(v.Result.Visible), v.Result.Samples, v.Result.OtherCPU)
			if k := v.Result.Kernel; k != nil {
				fmt.Fprintf(out, "  %-44s exit -> fork:      %s  (kernel timestamps)\n", "", fmtDist(k.ExitFork))
			}
			var per []string
			for _, d := range v.Runs {
				per = append(per, fmt.Sprintf("%.3f / %.3f", ms(d.Median), ms(d.P95)))
			}
			fmt.Fprintf(out, "  %-44s each round, p50 / p95: %s\n", "", strings.Join(per, ", "))
			if v.Plugin != "" {
				fmt.Fprintf(out, "  %-44s --plugin %s\n", "", v.Plugin)
			}
		}
	}
	if p := r.Probe; p != nil {
		fmt.Fprintf(out, "\nprobe idle cost: %s\n", p.Command)
		fmt.Fprintf(out, "  window %s, %.1f probes, health %q at the end; other processes used %.0f%% of the CPUs\n",
			p.Window.Round(time.Millisecond), p.Probes, p.Health, p.OtherCPU)
		tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  PROCESS\tPID\tTHREADS\tCPU (ticks)\tCPU s/h\tRUN TIME s/h (schedstat)\tCTX SWITCHES\tPER PROBE")
		rows := append(append([]procCost(nil), p.Procs...), p.Total)
		if p.Server != nil {
			rows = append(rows, *p.Server)
		}
		for _, x := range rows {
			run := "-"
			if x.RunNS >= 0 {
				run = fmt.Sprintf("%.3f", float64(x.RunNS)/1e9*3600/p.Window.Seconds())
			}
			role := x.Role
			if x.Role == "lighttpd" {
				role = "lighttpd (the server, not counted)"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%.2f\t%s\t%d\t%.1f\n", role, x.PID, x.Threads, x.Ticks, x.CPUHour, run, x.Switches, x.PerProbe)
		}
		tw.Flush()
	}
	if s := r.Shim; s != nil {
		s.print(out)
	}
	if h := r.Hung; h != nil {
		h.print(out)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(out, "\nnote:", n)
	}
}

func fmtDist(d durations) string {
	return fmt.Sprintf("%.3f / %.3f / %.3f / %.3f / %.3f", ms(d.Min), ms(d.Median), ms(d.P95), ms(d.P99), ms(d.Max))
}

// gcEnv says whether the harness passes GOGC or GOMEMLIMIT on to respawner.
func gcEnv() string {
	var set []string
	for _, k := range []string{"GOGC", "GOMEMLIMIT"} {
		if v, ok := os.LookupEnv(k); ok {
			set = append(set, k+"="+v)
		}
	}
	if len(set) == 0 {
		return " (neither is set here)"
	}
	return " (set here: " + strings.Join(set, " ") + ", so respawner keeps the runtime's defaults or these)"
}

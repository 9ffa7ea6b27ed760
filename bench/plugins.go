package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// The two parts with hook plugins:
//
//   - veto: the -t 0 restart latency without plugins and with one plugin that
//     answers every restart-pending question with allow (testhook), so the
//     difference is what the veto question costs a restart;
//   - probe: what an HTTP health probe of lighttpd every second costs while
//     nothing else happens: CPU time of respawner, respawner-hookhost and the
//     plugin, and their context switches per probe.

const (
	hostExe  = "respawner-hookhost"
	probeExe = "respawner-plugin-healthcheck-http"
)

// exeBase is the base name of /proc/PID/exe ("" when it cannot be read).
func exeBase(pid int) string {
	l, err := os.Readlink("/proc/" + strconv.Itoa(pid) + "/exe")
	if err != nil {
		return ""
	}
	return filepath.Base(strings.TrimSuffix(l, " (deleted)"))
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return string(bytes.TrimSpace(b))
}

// waitHosted waits until respawner has both respawner-hookhost and the
// program (exec'd) as children; the host goes into w.ignore and the
// program's pid is returned.
func waitHosted(in *instance, w *childWatcher, prog program, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		host, cur := 0, 0
		w.refresh()
		for _, p := range w.all() {
			switch {
			case exeBase(p) == hostExe:
				host = p
			case comm(p) == prog.Comm:
				cur = p
			}
		}
		if host != 0 && cur != 0 {
			w.ignore = []int{host}
			return cur, nil
		}
		if in.exited() {
			return 0, fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return 0, fmt.Errorf("no %s and %s below respawner within %s\n%s", hostExe, prog.Comm, timeout, in.logTail(10))
}

// ---------------------------------------------------------------- veto

type vetoResult struct {
	Plugin  string         `json:"plugin"`
	Without *restartResult `json:"without_plugins"`
	With    *restartResult `json:"with_plugin"`
	// Differences of the kill -> new child percentiles, with - without.
	DiffP50 time.Duration `json:"diff_p50_ns"`
	DiffP95 time.Duration `json:"diff_p95_ns"`
	DiffP99 time.Duration `json:"diff_p99_ns"`
	// Floor: the same restart-pending question asked straight of the same
	// plugin binary by a Go client (pkg/hooks, as respawner-hookhost asks
	// it), one call after each idle gap as in the restart samples: what
	// go-plugin's gRPC over AutoMTLS costs an idle plugin with no
	// supervisor in the way.
	Floor *durations `json:"floor,omitempty"`
}

// goTool is the go command that builds the test plugin.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// testhookDir puts respawner-plugin-testhook (mode 0755) into a directory of
// mode 0755 under the harness's temporary directory (0700): respawner refuses
// a plugin in a world-writable directory. It is built from
// ./internal/hooktest/testhook unless -testhook names a binary.
func testhookDir(c *config) (string, error) {
	dir := filepath.Join(c.dir, "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	dst := filepath.Join(dir, "respawner-plugin-testhook")
	if c.testhook != "" {
		b, err := os.ReadFile(c.testhook)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return "", err
		}
	} else {
		cmd := exec.Command(goTool(), "build", "-o", dst, "./internal/hooktest/testhook")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build ./internal/hooktest/testhook (run the harness from the repository's root, or give -testhook): %v\n%s", err, out)
		}
	}
	return dir, os.Chmod(dst, 0o755)
}

func benchVeto(c *config, prog program) (*vetoResult, error) {
	pdir, err := testhookDir(c)
	if err != nil {
		return nil, err
	}
	const spec = "testhook:decision=allow"
	r := &vetoResult{Plugin: spec}
	run := func(name string, opts []string, hosted bool) (*restartResult, error) {
		in, err := startRespawner(c.bin, c.dir, name, opts, prog)
		if err != nil {
			return nil, err
		}
		res, err := measureRestarts(c, in, prog, c.vetoSamples, hosted)
		if err == nil && hosted && !bytes.Contains(readAll(in.logPath), []byte(`"veto":true`)) {
			err = fmt.Errorf("the plugin did not register for restart-pending (no \"veto\":true in the log)\n%s", in.logTail(10))
		}
		if serr := in.stop(); err == nil && serr != nil {
			err = serr
		}
		return res, err
	}
	progress("veto overhead, %s, no plugins: %d samples...\n", prog.Label, c.vetoSamples)
	if r.Without, err = run("bench-veto-0", []string{"-t", "0"}, false); err != nil {
		return nil, err
	}
	progress("veto overhead, %s, --plugin %s: %d samples...\n", prog.Label, spec, c.vetoSamples)
	if r.With, err = run("bench-veto-1", []string{"-t", "0", "--plugin-dir", pdir, "--plugin", spec}, true); err != nil {
		return nil, err
	}
	r.DiffP50 = r.With.Visible.Median - r.Without.Visible.Median
	r.DiffP95 = r.With.Visible.P95 - r.Without.Visible.P95
	r.DiffP99 = r.With.Visible.P99 - r.Without.Visible.P99
	progress("veto floor: restart-pending asked straight of the plugin, %d calls %s apart...\n", c.vetoSamples, c.gap)
	floor, err := vetoFloor(filepath.Join(pdir, "respawner-plugin-testhook"), c.vetoSamples, c.gap)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	r.Floor = &floor
	return r, nil
}

// vetoFloor times calls of RestartPending on a plugin launched with
// pkg/hooks, each after an idle gap, from a Go runtime with one P (as
// respawner-hookhost runs).
func vetoFloor(path string, n int, gap time.Duration) (durations, error) {
	c, err := hooks.Launch(path, hooks.LaunchOptions{})
	if err != nil {
		return durations{}, err
	}
	defer c.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, err = c.Configure(ctx, map[string][]string{"decision": {"allow"}})
	cancel()
	if err != nil {
		return durations{}, err
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	ev := hooks.Event{Kind: hooks.RestartPending, Instance: "bench-veto-floor", Program: path, Attempt: 1}
	lat := make([]time.Duration, 0, n)
	for range n {
		time.Sleep(gap)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t0 := time.Now()
		v, err := c.RestartPending(ctx, ev)
		d := time.Since(t0)
		cancel()
		if err != nil {
			return durations{}, err
		}
		if v.Decision != hooks.DecisionAllow {
			return durations{}, fmt.Errorf("verdict %v, want allow", v)
		}
		lat = append(lat, d)
	}
	return summarize(lat), nil
}

func readAll(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// ---------------------------------------------------------------- probe

// procCost is what one process used over the probe window.
type procCost struct {
	Role     string  `json:"role"`
	PID      int     `json:"pid"`
	Threads  int     `json:"threads"`
	Ticks    int64   `json:"ticks"`    // utime + stime, clock ticks
	RunNS    int64   `json:"run_ns"`   // sum of the threads' schedstat run time (-1: unavailable)
	Switches int64   `json:"switches"` // voluntary + nonvoluntary, all threads
	CPUHour  float64 `json:"cpu_s_per_hour"`
	PerProbe float64 `json:"switches_per_probe"`
}

type probeResult struct {
	Command  string        `json:"command"`
	Window   time.Duration `json:"window_ns"`
	Interval time.Duration `json:"interval_ns"`
	Probes   float64       `json:"probes"` // window / interval
	Procs    []procCost    `json:"processes"`
	Total    procCost      `json:"total"` // respawner + host + plugin
	Server   *procCost     `json:"server,omitempty"`
	Health   string        `json:"health"`
	OtherCPU float64       `json:"other_cpu_percent"`
}

// procSnap is a process's counters at one moment.
type procSnap struct {
	start    string // starttime, to tell a relaunched process
	ticks    int64
	runNS    int64
	switches int64
	threads  int
}

func snapProc(pid int) (procSnap, error) {
	var s procSnap
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected %q", pid, b)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return s, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.ticks, s.start = ut+st, f[19]          // field 22
	sw, err := threadSwitches(pid)
	if err != nil {
		return s, err
	}
	s.threads = len(sw)
	for _, x := range sw {
		s.switches += x.total()
	}
	tids, _ := threadIDs(pid)
	for _, t := range tids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/schedstat", pid, t))
		if err != nil {
			s.runNS = -1
			break
		}
		n, _ := strconv.ParseInt(strings.Fields(string(b) + " 0")[0], 10, 64)
		s.runNS += n
	}
	return s, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lighttpdSetup writes a document root with an index.html and a
// configuration that serves it on 127.0.0.1:port.
func lighttpdSetup(dir string, port int) (string, error) {
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("<!doctype html><title>bench</title><p>ok</p>\n"), 0o644); err != nil {
		return "", err
	}
	conf := filepath.Join(dir, "lighttpd.conf")
	text := fmt.Sprintf(`server.document-root = %q
server.bind = "127.0.0.1"
server.port = %d
index-file.names = ( "index.html" )
mimetype.assign = ( ".html" => "text/html" )
`, www, port)
	return conf, os.WriteFile(conf, []byte(text), 0o644)
}

// lighttpdWithProbe is what a part that probes lighttpd needs: lighttpd and
// the probe plugin (a skip, not a failure, without them; part names the
// part in the note) and a configuration on a free port in c.dir/name.
func lighttpdWithProbe(c *config, part, name string) (dir, conf string, port int, err error) {
	if _, err := os.Stat(c.lighttpd); err != nil {
		return "", "", 0, errSkip{fmt.Sprintf("%s skipped: %v", part, err)}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(c.bin), probeExe)); err != nil {
		return "", "", 0, errSkip{fmt.Sprintf("%s skipped: %s not next to respawner (make build): %v", part, probeExe, err)}
	}
	dir = filepath.Join(c.dir, name)
	if port, err = freePort(); err != nil {
		return "", "", 0, err
	}
	conf, err = lighttpdSetup(dir, port)
	return dir, conf, port, err
}

func benchProbe(c *config) (*probeResult, error) {
	_, conf, port, err := lighttpdWithProbe(c, "probe idle cost", "lighttpd")
	if err != nil {
		return nil, err
	}
	prog := program{Label: "lighttpd -D", Path: c.lighttpd, Args: []string{"-D", "-f", conf}, Comm: "lighttpd"}
	// The plugin's timeout (also respawner's deadline on the call) must be
	// shorter than the interval; its default, 2s, is not.
	spec := fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/,interval=%s,timeout=%s", port, c.probeInterval, c.probeInterval/2)
	in, err := startRespawner(c.bin, c.dir, "bench-probe", []string{"--plugin", spec}, prog)
	if err != nil {
		return nil, err
	}
	res, err := measureProbe(c, in, prog, spec)
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	return res, err
}

// errSkip is a part that cannot run here: a note, not a failure.
type errSkip struct{ msg string }

func (e errSkip) Error() string { return e.msg }

func measureProbe(c *config, in *instance, prog program, spec string) (*probeResult, error) {
	// respawner -> respawner-hookhost -> respawner-plugin-healthcheck-http,
	// and respawner -> lighttpd; found by their executables.
	roles := map[string]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, p := range descendants(in.pid) {
			switch exeBase(p) {
			case hostExe:
				roles["respawner-hookhost"] = p
			case probeExe:
				roles["plugin (healthcheck-http)"] = p
			case filepath.Base(prog.Path):
				roles["lighttpd"] = p
			}
		}
		if len(roles) == 3 {
			break
		}
		if in.exited() {
			return nil, fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("found only %v below respawner after 10s\n%s", roles, in.logTail(10))
		}
		time.Sleep(20 * time.Millisecond)
	}
	order := []struct {
		role string
		pid  int
	}{{"respawner", in.pid}, {"respawner-hookhost", roles["respawner-hookhost"]},
		{"plugin (healthcheck-http)", roles["plugin (healthcheck-http)"]}, {"lighttpd", roles["lighttpd"]}}
	time.Sleep(c.probeSettle)
	start := make([]procSnap, len(order))
	var err error
	for i, o := range order {
		if start[i], err = snapProc(o.pid); err != nil {
			return nil, fmt.Errorf("%s (pid %d): %w", o.role, o.pid, err)
		}
	}
	t0 := time.Now()
	probe := newCPUProbe(in.pid, roles["respawner-hookhost"], roles["plugin (healthcheck-http)"], roles["lighttpd"])
	// Sleep through the window; wake every 5 s only to notice an early end.
	for end := t0.Add(c.probeIdle); time.Until(end) > 0; {
		time.Sleep(min(5*time.Second, time.Until(end)))
		if in.exited() {
			return nil, fmt.Errorf("respawner exited during the window: %v\n%s", in.waitErr, in.logTail(10))
		}
	}
	window := time.Since(t0)
	end := make([]procSnap, len(order))
	for i, o := range order {
		if end[i], err = snapProc(o.pid); err != nil {
			return nil, fmt.Errorf("%s (pid %d) gone during the window: %w", o.role, o.pid, err)
		}
		if end[i].start != start[i].start {
			return nil, fmt.Errorf("%s (pid %d) was replaced during the window", o.role, o.pid)
		}
	}
	other := probe.otherPercent()
	res := &probeResult{
		Command: "respawner start -D --plugin " + spec + " " + prog.Path + " -- " + strings.Join(prog.Args, " "),
		Window:  window, Interval: c.probeInterval, Probes: window.Seconds() / c.probeInterval.Seconds(), OtherCPU: other,
	}
	cost := func(role string, pid int, a, b procSnap) procCost {
		p := procCost{Role: role, PID: pid, Threads: b.threads, Ticks: b.ticks - a.ticks, Switches: b.switches - a.switches, RunNS: -1}
		if a.runNS >= 0 && b.runNS >= 0 {
			p.RunNS = b.runNS - a.runNS
		}
		p.CPUHour = float64(p.Ticks) / clockTicks * 3600 / window.Seconds()
		p.PerProbe = float64(p.Switches) / res.Probes
		return p
	}
	var tot procSnap
	var tot0 procSnap
	for i, o := range order {
		p := cost(o.role, o.pid, start[i], end[i])
		if o.role == "lighttpd" {
			res.Server = &p
			continue
		}
		res.Procs = append(res.Procs, p)
		tot0.ticks, tot.ticks = tot0.ticks+start[i].ticks, tot.ticks+end[i].ticks
		tot0.switches, tot.switches = tot0.switches+start[i].switches, tot.switches+end[i].switches
		tot.threads += end[i].threads
		if start[i].runNS < 0 || end[i].runNS < 0 || tot0.runNS < 0 {
			tot0.runNS, tot.runNS = -1, -1
		} else {
			tot0.runNS, tot.runNS = tot0.runNS+start[i].runNS, tot.runNS+end[i].runNS
		}
	}
	res.Total = cost("total (respawner + host + plugin)", 0, tot0, tot)
	// Only now ask respawner (this wakes it) whether the probes passed.
	res.Health = "?"
	cmd := exec.Command(c.bin, "status", "--json", in.name)
	cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+filepath.Join(c.dir, "run"))
	if out, err := cmd.Output(); err == nil {
		var st struct {
			Health string `json:"health"`
		}
		if json.Unmarshal(out, &st) == nil {
			res.Health = st.Health
		}
	}
	return res, nil
}

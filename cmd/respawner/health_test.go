package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
)

// httpServer is a helper program: http-server PORT STATUS [listen-after=DUR]
// [slow=DUR] [record=PATH]. It answers every request with STATUS; it starts
// listening only after listen-after; each answer takes slow; with record it
// writes the highest number of requests it ever had in flight at once.
func httpServer(args []string) {
	port, status := args[0], args[1]
	code, _ := strconv.Atoi(status)
	var listenAfter, slow time.Duration
	var record string
	for _, a := range args[2:] {
		k, v, _ := strings.Cut(a, "=")
		switch k {
		case "listen-after":
			listenAfter, _ = time.ParseDuration(v)
		case "slow":
			slow, _ = time.ParseDuration(v)
		case "record":
			record = v
		}
	}
	time.Sleep(listenAfter) // the program under test is slow to come up, on purpose
	var inflight, most atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		if n > most.Load() {
			most.Store(n)
			if record != "" {
				os.WriteFile(record, []byte(strconv.Itoa(int(n))+"\n"), 0o644)
			}
		}
		// A probe that gives up closes its connection: the request ends with
		// it, so "in flight" counts probes, not abandoned handlers.
		select {
		case <-time.After(slow):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(code)
	})
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	http.Serve(l, h)
}

// startHelperServer runs respawner -D on the http-server helper with the
// healthcheck-http plugin.
func startHelperServer(t *testing.T, port int, check string, serverArgs ...string) *instance {
	t.Helper()
	t.Setenv("RSPTEST_HELPER", "http-server")
	args := hookArgs("--plugin", "healthcheck-http:url=http://127.0.0.1:"+strconv.Itoa(port)+"/,"+check, "-t", "0", "--name", "srv", os.Args[0], "--", strconv.Itoa(port))
	in := startRespawner(t, append(args, serverArgs...)...)
	return in
}

// lighttpd, SIGSTOPped, is alive and useless: the probe notices and the
// program is restarted (the stopped process killed, a new one serving).
func TestHealthcheckRestartsStoppedLighttpd(t *testing.T) {
	bin := lighttpdBin(t)
	s := newSite(t, "")
	in := startRespawner(t, hookArgs("--plugin", fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/,interval=500ms,timeout=300ms,failures=2", s.port),
		"-t", "1", bin, "--", "-D", "-f", s.conf)...)
	pid := in.waitFor("started", 10*time.Second).int("pid")
	in.waitFor("healthy", 10*time.Second)
	if st, _ := statusOf(t, in.dir, "lighttpd"); st.Health != "healthy" || !strings.Contains(st.LastProbe, "HTTP 200") {
		t.Fatalf("status before the stop: %+v", st)
	}
	fd := watchPID(t, pid)
	stopped := time.Now()
	syscall.Kill(pid, syscall.SIGSTOP)
	in.waitFor("probe failed", 5*time.Second)
	in.waitFor("unhealthy: restarting", 5*time.Second)
	// -t 1 leaves a second to see the state between kill and restart.
	if st, _ := statusOf(t, in.dir, "lighttpd"); st.Health != "unhealthy" || st.State == "running" {
		t.Fatalf("status while unhealthy: %+v", st)
	}
	re := in.waitFor("restarted", 10*time.Second)
	// interval x failures + timeout + -t = 2.3s; a loose bound for a busy machine.
	if d := time.Since(stopped); d > 7*time.Second {
		t.Fatalf("restart came %s after SIGSTOP", d)
	}
	if !gone(fd, 5*time.Second) {
		t.Fatal("the stopped lighttpd was not killed")
	}
	if re.int("pid") == pid {
		t.Fatal("same pid after the restart")
	}
	in.waitFor("healthy", 10*time.Second)
	if s.get() != 200 {
		t.Fatal("new lighttpd does not serve")
	}
	st, _ := statusOf(t, in.dir, "lighttpd")
	if st.Health != "healthy" || st.Restarts != 1 || st.PID != re.int("pid") {
		t.Fatalf("status after recovery: %+v", st)
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestHealthcheckRestarts500(t *testing.T) {
	port := freePort(t)
	in := startHelperServer(t, port, "interval=400ms,timeout=300ms,failures=2", "500")
	in.waitFor("started", 10*time.Second)
	f := in.waitFor("probe failed", 10*time.Second)
	if !strings.Contains(f.str("result"), "status 500") {
		t.Fatalf("probe result %q, want status 500", f.str("result"))
	}
	in.waitFor("unhealthy: restarting", 5*time.Second)
	in.waitFor("restarted", 10*time.Second)
	in.signal(syscall.SIGTERM)
	in.wait(15 * time.Second)
}

// A server that needs a while to come up is not restarted before
// initial-delay has passed.
func TestHealthcheckInitialDelay(t *testing.T) {
	port := freePort(t)
	in := startHelperServer(t, port, "interval=400ms,timeout=300ms,failures=1,initial-delay=1500ms", "200", "listen-after=800ms")
	in.waitFor("started", 10*time.Second)
	h := in.waitFor("healthy", 10*time.Second)
	_ = h
	if strings.Contains(in.log(), "probe failed") || strings.Contains(in.log(), "restarted") {
		t.Fatalf("probed or restarted before the initial delay:\n%s", in.log())
	}
	in.signal(syscall.SIGTERM)
	if code := in.wait(15 * time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// A slow server: every probe is cut at its timeout, probes never overlap,
// and they keep a fixed rate: one starts every interval, however long the
// one before took (a failure is not followed by interval + timeout).
func TestHealthcheckSlowProbeBoundedNoOverlap(t *testing.T) {
	const interval, timeout = 400 * time.Millisecond, 300 * time.Millisecond
	port := freePort(t)
	rec := filepath.Join(t.TempDir(), "most")
	in := startHelperServer(t, port, "interval=400ms,timeout=300ms,failures=1000", "200", "slow=2s", "record="+rec)
	in.waitFor("started", 10*time.Second)
	var times []time.Time
	for range 6 {
		f := in.waitFor("probe failed", 10*time.Second)
		if !strings.Contains(f.str("result"), "timeout after 300ms") {
			t.Fatalf("probe result %q, want a timeout after 300ms", f.str("result"))
		}
		ts, _ := time.Parse(time.RFC3339Nano, f.str("@timestamp"))
		times = append(times, ts)
	}
	// Five periods: 2s at a fixed rate, 3.5s if each period ran from the
	// previous result (interval + timeout). Loose bounds, for a busy
	// machine (a result logged late shortens the span after it, not the
	// grid): no more than a probe per interval, and the average nearer the
	// interval than interval + timeout.
	periods := time.Duration(len(times) - 1)
	if d := times[len(times)-1].Sub(times[0]); d < (periods-1)*interval || d > periods*(interval+timeout/2) {
		t.Fatalf("%d probes in %s, want one every %s (a fixed rate), not one every %s (interval after each result):\n%s",
			periods, d, interval, interval+timeout, in.log())
	}
	if most := strings.TrimSpace(readFile(t, rec)); most != "1" {
		t.Fatalf("the server had %s probes in flight at once", most)
	}
	in.signal(syscall.SIGTERM)
	in.wait(15 * time.Second)
}

// initial-delay=0 means the first probe at once, as Kubernetes'
// initialDelaySeconds: 0, not one interval after the start.
func TestHealthcheckFirstProbeAtOnce(t *testing.T) {
	port := freePort(t)
	in := startHelperServer(t, port, "interval=10s,timeout=1s,initial-delay=0", "200")
	started := in.waitFor("started", 10*time.Second)
	t0, _ := time.Parse(time.RFC3339Nano, started.str("@timestamp"))
	timeout := time.After(15 * time.Second)
	for {
		var l logLine
		select {
		case l = <-in.lines:
		case <-timeout:
			t.Fatalf("no probe result 15s after the start:\n%s", in.log())
		}
		if l == nil {
			t.Fatalf("respawner ended:\n%s", in.log())
		}
		// The first result: the helper may not listen yet (probe failed),
		// or it answers (healthy).
		if m := l.msg(); m == "probe failed" || m == "healthy" {
			ts, _ := time.Parse(time.RFC3339Nano, l.str("@timestamp"))
			if d := ts.Sub(t0); d > 3*time.Second {
				t.Fatalf("first probe result %s after the start, want it at once (interval 10s):\n%s", d, in.log())
			}
			break
		}
	}
	in.stopOK()
}

// Every run starts probing over: with -t 0 a crash and its restart happen in
// one step, and the probe's schedule and failure count must still not carry
// over. A program that crashes every half second under initial-delay=2s is
// never probed at all (and never killed as unhealthy) before a run of its
// own is 2 s old, however long the crash loop goes on.
func TestHealthcheckInitialDelayEveryRun(t *testing.T) {
	const initialDelay = 2 * time.Second
	tmp := t.TempDir()
	prog := script(t, tmp, "crash.sh", "sleep 0.5\nexit 1")
	check := fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/,interval=200ms,timeout=100ms,failures=1,initial-delay=%s",
		freePort(t), initialDelay) // nothing listens: every probe fails
	in := startRespawner(t, hookArgs("--plugin", check, "-t", "0", prog)...)
	var runStart time.Time // of the current run, from respawner's own log
	timeout := time.After(60 * time.Second)
	for restarts := 0; restarts < 8; {
		var l logLine
		select {
		case l = <-in.lines:
		case <-timeout:
			t.Fatalf("fewer than 8 restarts in 60s:\n%s", in.log())
		}
		ts, _ := time.Parse(time.RFC3339Nano, l.str("@timestamp"))
		switch l.msg() {
		case "":
			t.Fatalf("respawner ended:\n%s", in.log())
		case "restarted":
			restarts++
			fallthrough
		case "started":
			runStart = ts
		case "probe failed", "unhealthy: restarting":
			// Log timestamps are in milliseconds: allow for the rounding.
			if up := ts.Sub(runStart); up < initialDelay-10*time.Millisecond {
				t.Fatalf("%q %s into a run, before initial-delay %s:\n%s", l.msg(), up, initialDelay, in.log())
			}
		}
	}
	in.stopOK()
}

// The case the probe defaults are chosen for: `respawner start --plugin
// healthcheck-http lighttpd -- -f CONF` (respawner and lighttpd both
// daemonized, every probe option at its default but the URL, -t and
// --stop-timeout at theirs) and lighttpd hung by SIGSTOP. It must serve
// again within the documented worst case (README, "How long until a hung
// server is replaced"):
//
//	max(initial-delay, interval) + (failures-1) x interval + timeout
//	  + stop + -t + start = 3s + 2 x 3s + 2s + 0 + 5s + 0 = 16s
//
// (the stop is TERM then CONT: a stopped lighttpd exits at once; lighttpd
// starts in milliseconds), with one restart, not a flapping series. The
// bound has a margin for a busy machine.
func TestHealthcheckDefaultsReplaceStoppedLighttpd(t *testing.T) {
	t.Parallel() // about 15 s of waiting
	const worst, margin = 16 * time.Second, 6 * time.Second
	bin := lighttpdBin(t)
	s := newSite(t, "")
	dir := runtimeDir(t)
	cleanupInstance(t, dir, "lighttpd")
	spec := fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/", s.port)
	if r := respawner(t, dir, append([]string{"start"}, hookArgs("--plugin", spec, bin, "--", "-f", s.conf)...)...); r.code != 0 {
		t.Fatalf("start: exit %d: %s", r.code, r.stderr)
	}
	logOf := func() string { return readFile(t, filepath.Join(dir, "lighttpd.log")) }
	st := waitServing(t, dir, s, 0, 15*time.Second, logOf)
	pid := st.PID
	stopped := time.Now()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The test asks as a client would, with a short timeout, until a new
	// lighttpd answers; respawner's own waits are all on descriptors. Only
	// a request sent once the stopped one is gone counts: continued to act
	// on its SIGTERM, it may still answer what waited in its backlog.
	c := http.Client{Timeout: 250 * time.Millisecond}
	answers := func() bool {
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	for alive(pid) || !answers() {
		if time.Since(stopped) > worst+margin {
			t.Fatalf("lighttpd not serving %s after SIGSTOP (worst case %s):\n%s", time.Since(stopped).Round(time.Millisecond), worst, logOf())
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(stopped)
	t.Logf("SIGSTOP -> serving again: %s (worst case %s)", took.Round(time.Millisecond), worst)
	st = waitServing(t, dir, s, pid, 10*time.Second, logOf)
	if st.Restarts != 1 || alive(pid) {
		t.Fatalf("after the recovery: restarts %d (want 1), stopped lighttpd %d alive %v:\n%s", st.Restarts, pid, alive(pid), logOf())
	}
	if !strings.Contains(logOf(), "unhealthy: restarting") {
		t.Fatalf("no unhealthy restart in the log:\n%s", logOf())
	}
	if r := respawner(t, dir, "stop", "lighttpd"); r.code != 0 {
		t.Fatalf("stop: exit %d: %s", r.code, r.stderr)
	}
	assertNothingLeft(t, dir, s)
}

// waitServing waits until the instance lighttpd is healthy and its status
// names the daemon of the site's pidfile, other than notPID.
func waitServing(t *testing.T, dir string, s *site, notPID int, timeout time.Duration, logOf func() string) control.Status {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st, _ := statusOf(t, dir, "lighttpd")
		b, _ := os.ReadFile(s.pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid == st.PID && pid != notPID && st.Health == "healthy" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("lighttpd not healthy under its daemon's pid within %s: %+v\n%s", timeout, st, logOf())
		}
		time.Sleep(50 * time.Millisecond) // the test polls status as an operator would
	}
}

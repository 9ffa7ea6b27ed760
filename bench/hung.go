package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The hung part: `respawner start --plugin healthcheck-http lighttpd -- -f
// CONF` as an operator types it (respawner and lighttpd both daemonized,
// every probe option at its default but the URL, -t and --stop-timeout at
// theirs), lighttpd hung with SIGSTOP, and the time until a new lighttpd
// answers a GET. The documented worst case (plugins/healthcheck-http/README.md):
//
//	max(initial-delay, interval) + (failures-1) x interval + timeout + stop + -t + start
//	= 3s + 2 x 3s + 2s + 0 + 5s + start = 16s + start
//
// Sample k stops lighttpd k/n of a probe interval after the probe that made
// the new run healthy, so the samples cover the phases of the probe grid,
// the first being the worst: just after a probe passed.

// hungInterval is healthcheck-http's default interval, over which the
// samples spread their phase.
const hungInterval = 3 * time.Second

// hungWorst is the documented worst case with the defaults, lighttpd's
// start aside.
const hungWorst = 16 * time.Second

// hungStartSlack bounds lighttpd's start and the harness's polling, which
// the formula leaves out, for the verdict.
const hungStartSlack = 250 * time.Millisecond

type hungSample struct {
	Offset  time.Duration `json:"offset_ns"`  // SIGSTOP this long after health was seen
	Gone    time.Duration `json:"gone_ns"`    // SIGSTOP -> the stopped lighttpd gone (detection + stop)
	Serving time.Duration `json:"serving_ns"` // SIGSTOP -> a GET answered by the new lighttpd
}

type hungResult struct {
	Command string        `json:"command"`
	Samples []hungSample  `json:"samples"`
	Gone    durations     `json:"gone"`
	Serving durations     `json:"serving"`
	Worst   time.Duration `json:"documented_worst_ns"` // without lighttpd's start
}

func benchHung(c *config) (*hungResult, error) {
	dir, conf, port, err := lighttpdWithProbe(c, "hung lighttpd", "hung")
	if err != nil {
		return nil, err
	}
	rundir := filepath.Join(dir, "run")
	if err := os.Mkdir(rundir, 0o700); err != nil {
		return nil, err
	}
	const name = "bench-hung"
	run := func(args ...string) (string, error) {
		cmd := exec.Command(c.bin, args...)
		cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+rundir)
		out, err := cmd.Output()
		if ee, ok := err.(*exec.ExitError); ok {
			err = fmt.Errorf("respawner %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
		}
		return string(out), err
	}
	spec := fmt.Sprintf("healthcheck-http:url=http://127.0.0.1:%d/", port)
	args := []string{"start", "--name", name, "--plugin", spec, c.lighttpd, "--", "-f", conf}
	r := &hungResult{Command: "respawner " + strings.Join(args, " "), Worst: hungWorst}
	if _, err := run(args...); err != nil {
		return nil, err
	}
	stopped := false
	stop := func() {
		if !stopped {
			run("stop", name)
		}
	}
	atInterrupt(stop)
	defer stop() // on the error paths; the end stops it and says how that went
	logPath := filepath.Join(rundir, name+".log")
	// healthy waits for the run that is not old to be healthy and follow
	// the daemon lighttpd left; it returns the daemon's pid.
	healthy := func(old int) (int, error) {
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, err := run("status", "--json", name)
			var st struct {
				PID    int    `json:"pid"`
				Health string `json:"health"`
			}
			if err == nil {
				err = json.Unmarshal([]byte(out), &st)
			}
			if err == nil && st.PID != old && st.Health == "healthy" && comm(st.PID) == "lighttpd" {
				return st.PID, nil
			}
			if time.Now().After(deadline) {
				return 0, fmt.Errorf("lighttpd not healthy within 30s (%v): %s\n%s", err, out, logTail(logPath, 15))
			}
			time.Sleep(20 * time.Millisecond) // the harness asks as an operator would
		}
	}
	client := http.Client{Timeout: 250 * time.Millisecond}
	answers := func() bool {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/", port))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	pid, err := healthy(0)
	if err != nil {
		return nil, err
	}
	var gone, serving []time.Duration
	for k := range c.hungSamples {
		offset := hungInterval * time.Duration(k) / time.Duration(c.hungSamples)
		progress("hung lighttpd: sample %d/%d, SIGSTOP %s after the probe that passed...\n", k+1, c.hungSamples, offset)
		time.Sleep(offset)
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			return nil, fmt.Errorf("pidfd_open lighttpd %d: %w", pid, err)
		}
		stopped := time.Now()
		err = unix.PidfdSendSignal(pidfd, syscall.SIGSTOP, nil, 0)
		if err != nil {
			unix.Close(pidfd)
			return nil, fmt.Errorf("SIGSTOP lighttpd %d: %w", pid, err)
		}
		limit := 4 * hungWorst // generous: the part also measures older builds, with other defaults
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, int(limit/time.Millisecond))
		unix.Close(pidfd)
		if n != 1 || err != nil {
			return nil, fmt.Errorf("the stopped lighttpd %d still there %s after SIGSTOP (%v)\n%s", pid, limit, err, logTail(logPath, 15))
		}
		s := hungSample{Offset: offset, Gone: time.Since(stopped)}
		// Only requests sent once the stopped lighttpd is gone count: once
		// continued to act on SIGTERM, it may answer what waited in its
		// backlog.
		for !answers() {
			if time.Since(stopped) > limit {
				return nil, fmt.Errorf("no new lighttpd serving %s after SIGSTOP\n%s", limit, logTail(logPath, 15))
			}
			time.Sleep(10 * time.Millisecond) // the harness polls as a client would
		}
		s.Serving = time.Since(stopped)
		progress("  gone after %s, serving again after %s\n", s.Gone.Round(time.Millisecond), s.Serving.Round(time.Millisecond))
		r.Samples = append(r.Samples, s)
		gone, serving = append(gone, s.Gone), append(serving, s.Serving)
		if pid, err = healthy(pid); err != nil {
			return nil, err
		}
	}
	r.Gone, r.Serving = summarize(gone), summarize(serving)
	stopped = true
	if _, err := run("stop", name); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *hungResult) rows(add func(part, m string, v float64, res, target, verdict string)) {
	sec := func(d time.Duration) string { return fmt.Sprintf("%.3f s", d.Seconds()) }
	dist := func(d durations) string { return sec(d.Min) + " / " + sec(d.Median) + " / " + sec(d.Max) }
	add("hung", fmt.Sprintf("hung lighttpd (SIGSTOP), default probes: -> stopped lighttpd gone, min / median / max of %d", r.Gone.N),
		r.Gone.Max.Seconds(), dist(r.Gone), "-", "info")
	add("hung", fmt.Sprintf("hung lighttpd (SIGSTOP), default probes: -> serving again, min / median / max of %d", r.Serving.N),
		r.Serving.Max.Seconds(), dist(r.Serving), fmt.Sprintf("<= %s + start (%s)", r.Worst, hungStartSlack),
		verdict(r.Serving.Max <= r.Worst+hungStartSlack))
}

func (r *hungResult) print(out io.Writer) {
	fmt.Fprintf(out, "\nhung lighttpd: %s\n", r.Command)
	fmt.Fprintf(out, "  SIGSTOP of the lighttpd daemon, then a GET every 10 ms (250 ms timeout) until a new one answers;\n")
	fmt.Fprintf(out, "  documented worst case %s + lighttpd's start\n", r.Worst)
	for i, s := range r.Samples {
		fmt.Fprintf(out, "  sample %d: SIGSTOP %s after a probe passed: gone after %.3f s, serving again after %.3f s\n",
			i+1, s.Offset, s.Gone.Seconds(), s.Serving.Seconds())
	}
}

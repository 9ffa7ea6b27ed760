package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// floodResult is respawner in daemon mode supervising /usr/bin/yes, a
// program that writes as fast as it can, with its defaults (the log goes to
// syslog, or to NAME.log in the runtime dir where there is no /dev/log).
type floodResult struct {
	Start    time.Duration `json:"start_ns"`      // `respawner start /usr/bin/yes` until it returned
	Status   durations     `json:"status"`        // `respawner status` round trips while yes writes
	RSSKB    int64         `json:"rss_kb"`        // respawner's highest RSS seen
	KeeperKB int64         `json:"keeper_rss_kb"` // the keeper's RSS
	Delay    time.Duration `json:"delay"`         // the respawn delay asked for (-t)
	Restart  time.Duration `json:"restart_ns"`    // kill -9 of yes -> new yes, minus Delay
	Kernel   bool          `json:"kernel"`        // Restart is exit -> fork, by the kernel's clock
	Stop     time.Duration `json:"stop_ns"`       // `respawner stop` until it returned
	LogMBps  float64       `json:"log_mb_per_s"`  // how fast the log grew (NAME.log only)
}

// benchFlood measures the acceptance figures of a program that floods its
// output: start, status and stop times, memory, and a restart on time.
func benchFlood(c *config, samples int, delay time.Duration) (*floodResult, error) {
	dir := filepath.Join(c.dir, "flood")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	run := func(args ...string) (string, time.Duration, error) {
		cmd := exec.Command(c.bin, args...)
		cmd.Env = append(os.Environ(), "RESPAWNER_RUNTIME_DIR="+dir)
		begun := time.Now()
		out, err := cmd.Output()
		d := time.Since(begun)
		if err != nil {
			if ee, ok := err.(*exec.ExitError); ok {
				err = fmt.Errorf("respawner %s: %v: %s", strings.Join(args, " "), err, ee.Stderr)
			}
		}
		return string(out), d, err
	}
	type status struct {
		PID, RespawnerPID, KeeperPID, Restarts int
	}
	query := func() (status, time.Duration, error) {
		out, d, err := run("status", "--json", "yes")
		var st struct {
			PID          int `json:"pid"`
			RespawnerPID int `json:"respawner_pid"`
			KeeperPID    int `json:"keeper_pid"`
			Restarts     int `json:"restarts"`
		}
		if err == nil {
			err = json.Unmarshal([]byte(out), &st)
		}
		return status{st.PID, st.RespawnerPID, st.KeeperPID, st.Restarts}, d, err
	}
	r := &floodResult{Delay: delay}
	_, d, err := run("start", "-t", delay.String(), "--name", "yes", "/usr/bin/yes")
	if err != nil {
		return nil, err
	}
	r.Start = d
	defer run("stop", "yes") // if anything below fails
	st, _, err := query()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "yes.log")
	size0, t0 := fileSize(logPath), time.Now()
	var lat []time.Duration
	for range samples {
		s, d, err := query()
		if err != nil {
			return nil, fmt.Errorf("status while yes writes: %w", err)
		}
		lat = append(lat, d)
		if m, err := readMem(s.RespawnerPID); err == nil {
			r.RSSKB = max(r.RSSKB, m.RSSKB)
		}
		time.Sleep(20 * time.Millisecond) // an operator asking now and then
	}
	r.Status = summarize(lat)
	if size1 := fileSize(logPath); size1 > size0 {
		r.LogMBps = float64(size1-size0) / (1 << 20) / time.Since(t0).Seconds()
	}
	if m, err := readMem(st.KeeperPID); err == nil {
		r.KeeperKB = m.RSSKB
	}
	// kill -9 of yes: the new yes must come after the delay, on time. With
	// the kernel's process events, from yes's exit to respawner's fork, as
	// the kernel timed them (the harness competes for the CPUs with yes and
	// respawner, so its own clock would add its scheduling delays); else
	// from the harness seeing the death to it seeing the new yes.
	cn := c.cnProc()
	if cn != nil {
		cn.drain()
	}
	pidfd, err := unix.PidfdOpen(st.PID, 0)
	if err != nil {
		return nil, err
	}
	unix.PidfdSendSignal(pidfd, syscall.SIGKILL, nil, 0)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	unix.Poll(fds, 5000)
	died := time.Now()
	unix.Close(pidfd)
	if cn != nil {
		ev, _, ok := cn.collect(st.RespawnerPID, st.PID, 0, delay+10*time.Second)
		if !ok {
			return nil, fmt.Errorf("yes was not restarted within %s of its kill", delay+10*time.Second)
		}
		r.Restart, r.Kernel = time.Duration(ev.fork-ev.exit)-delay, true
	} else {
		for {
			if pids := childPIDs(st.RespawnerPID); len(pids) > 0 && pids[len(pids)-1] != st.PID && comm(pids[len(pids)-1]) == "yes" {
				r.Restart = time.Since(died) - delay
				break
			}
			if time.Since(died) > delay+10*time.Second {
				return nil, fmt.Errorf("yes was not restarted within %s of its kill", delay+10*time.Second)
			}
			time.Sleep(200 * time.Microsecond) // the harness polls; respawner does not
		}
	}
	_, r.Stop, err = run("stop", "yes")
	return r, err
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// childPIDs lists the children of pid.
func childPIDs(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

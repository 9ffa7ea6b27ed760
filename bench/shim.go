package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------- shim

// shimResult is what the exec shim costs a restart: the -t 0 restart
// latency of part 1 without any run-environment flag (the program forked
// and exec'd directly), with --chdir / and with --umask 022, each of
// which sends every start through the shim (respawner re-executed, which
// sets them and execs the program; a directory takes the shim since a
// chdir into a hung mount must not hold Go's fork/exec, and the loop, for
// ever), in alternating runs so that the machine's load falls on all alike.
//
// What the shim delays is the program's exec, not the fork: the new child
// exists as early either way. With the kernel's process events (root) the
// harness sleeps while each restart happens and reads the timestamps of
// the old child's exit, respawner's fork and the new child's execs (two
// through the shim: the shim's, then the program's); a harness that spins
// meanwhile, as part 1's does, takes a CPU from the shim's Go runtime on a
// machine of two. Without them it falls back to part 1's /proc polling.
type shimResult struct {
	Kernel bool        `json:"kernel_timestamps"`
	Rounds []shimRound `json:"rounds"`
}

// shimRound is one run of each variant, in shimVariants' order.
type shimRound struct {
	Runs []shimRun `json:"runs"`
}

// shimRun is one run's restarts: kill -> fork and kill -> the program
// exec'd, and the share of the CPUs other processes used meanwhile.
type shimRun struct {
	Flags    string    `json:"flags"`
	Fork     durations `json:"kill_to_fork"`
	Exec     durations `json:"kill_to_program_exec"`
	OtherCPU float64   `json:"other_cpu_percent"`
}

// shimVariants are the runs of a round: flags, and the execs of a start.
var shimVariants = []struct {
	flags []string
	execs int
}{
	{nil, 1},
	{[]string{"--chdir", "/"}, 2},
	{[]string{"--umask", "022"}, 2}, // one umask(2): the shim's cost alone
}

func benchShim(c *config, prog program, rounds int) (*shimResult, error) {
	r := &shimResult{Kernel: c.cnProc() != nil}
	for i := range rounds {
		var round shimRound
		for j, v := range shimVariants {
			label := strings.Join(v.flags, " ")
			if label == "" {
				label = "no flags"
			}
			progress("shim cost, %s, round %d/%d, %s: %d samples...\n", prog.Label, i+1, rounds, label, c.samples)
			in, err := startRespawner(c.bin, c.dir, fmt.Sprintf("bench-shim-%d-%d", i, j), append([]string{"-t", "0"}, v.flags...), prog)
			if err != nil {
				return nil, err
			}
			var run shimRun
			if r.Kernel {
				run, err = kernelRestarts(c, in, prog, c.samples, v.execs)
			} else {
				var res *restartResult
				if res, err = measureRestarts(c, in, prog, c.samples, false); err == nil {
					run = shimRun{Fork: res.Visible, Exec: res.Execd, OtherCPU: res.OtherCPU}
				}
			}
			if serr := in.stop(); err == nil && serr != nil {
				err = serr
			}
			if err != nil {
				return nil, err
			}
			run.Flags = label
			round.Runs = append(round.Runs, run)
		}
		r.Rounds = append(r.Rounds, round)
	}
	return r, nil
}

// kernelRestarts takes samples -t 0 restarts of prog timed by the kernel's
// process events alone, the harness asleep in poll(2): SIGKILL of the child
// -> respawner's fork of the next, and -> that child's execs-th exec (the
// program's).
func kernelRestarts(c *config, in *instance, prog program, samples, execs int) (shimRun, error) {
	w, err := newChildWatcher(in.pid)
	if err != nil {
		return shimRun{}, err
	}
	defer w.close()
	cur, err := waitChild(in, w, 0, 5*time.Second)
	if err != nil {
		return shimRun{}, err
	}
	if err := waitComm(cur, prog.Comm, 2*time.Second); err != nil {
		return shimRun{}, err
	}
	cn := c.cnProc()
	probe := newCPUProbe(in.pid)
	var forks, execd []time.Duration
	for i := 0; i < samples; i++ {
		time.Sleep(c.gap)
		cn.drain()
		k0 := monoNow()
		if err := unix.Kill(cur, unix.SIGKILL); err != nil {
			return shimRun{}, fmt.Errorf("kill child %d: %w", cur, err)
		}
		var exited bool
		var fork, exec int64
		next, n := 0, 0
		deadline := time.Now().Add(3 * time.Second)
		for !exited || next == 0 || n < execs {
			left := time.Until(deadline)
			if left <= 0 {
				return shimRun{}, fmt.Errorf("sample %d: no exit, fork and %d execs 3s after killing %d\n%s", i, execs, cur, in.logTail(10))
			}
			ev, err := cn.next(left)
			if err != nil {
				return shimRun{}, fmt.Errorf("sample %d: process events: %w", i, err)
			}
			switch {
			case ev.what == procEventExit && ev.pid == cur && ev.tgid == cur:
				exited = true
			case ev.what == procEventFork && ev.pid == ev.tgid && ev.ptgid == in.pid && next == 0 && exited:
				fork, next = ev.ts, ev.pid
			case ev.what == procEventExec && ev.tgid == next && next != 0:
				exec = ev.ts
				n++
			}
		}
		forks = append(forks, time.Duration(fork-k0))
		execd = append(execd, time.Duration(exec-k0))
		cur = next
	}
	return shimRun{Fork: summarize(forks), Exec: summarize(execd), OtherCPU: probe.otherPercent()}, nil
}

// rows adds the table's rows: per round, kill -> the program exec'd (what
// the shim delays) for each variant, and its difference from no flags.
func (r *shimResult) rows(add func(part, m string, v float64, res, target, verdict string)) {
	how := "kernel timestamps, harness asleep"
	if !r.Kernel {
		how = "harness polling /proc"
	}
	for i, x := range r.Rounds {
		base := x.Runs[0]
		for _, y := range x.Runs {
			name := fmt.Sprintf("shim, round %d: restart -t 0, kill -> program exec'd, p50 / p95 (%s), %s", i+1, how, y.Flags)
			res := fmtMS(y.Exec.Median) + " / " + fmtMS(y.Exec.P95)
			if y.Flags != base.Flags {
				res += fmt.Sprintf(" (%+.3f / %+.3f ms)", ms(y.Exec.Median-base.Exec.Median), ms(y.Exec.P95-base.Exec.P95))
			}
			add("shim", name, ms(y.Exec.Median), res, "-", "info")
		}
	}
}

func (r *shimResult) print(out io.Writer) {
	fmt.Fprintf(out, "\nshim cost, -t 0 (ms): min / median / p95 / p99 / max; the variants alternate\n")
	for i, x := range r.Rounds {
		for _, y := range x.Runs {
			fmt.Fprintf(out, "  round %d, %-14s kill -> fork:            %s\n", i+1, y.Flags, fmtDist(y.Fork))
			fmt.Fprintf(out, "  round %d, %-14s kill -> program exec'd:  %s  (other processes %.0f%% of the CPUs)\n", i+1, "", fmtDist(y.Exec), y.OtherCPU)
		}
	}
}

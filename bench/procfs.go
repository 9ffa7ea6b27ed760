package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// childWatcher finds the children of a process as fast as the kernel lets a
// reader see them: it keeps /proc/PID/task/TID/children open for every thread
// and re-reads them with pread at offset 0 (a seq_file regenerates its text),
// so a poll is one syscall per thread and no allocation.
type childWatcher struct {
	pid  int
	tids []int
	fds  []int
	buf  [4096]byte
	// ignore are children that are not the supervised program: with
	// --plugin, respawner-hookhost.
	ignore []int
}

func newChildWatcher(pid int) (*childWatcher, error) {
	w := &childWatcher{pid: pid}
	return w, w.refresh()
}

// refresh follows threads that appeared or went away since the last call.
func (w *childWatcher) refresh() error {
	tids, err := threadIDs(w.pid)
	if err != nil {
		return err
	}
	old := map[int]int{}
	for i, t := range w.tids {
		old[t] = w.fds[i]
	}
	w.tids, w.fds = w.tids[:0], w.fds[:0]
	for _, t := range tids {
		fd, ok := old[t]
		if ok {
			delete(old, t)
		} else {
			fd, err = unix.Open(fmt.Sprintf("/proc/%d/task/%d/children", w.pid, t), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue // thread gone meanwhile
			}
		}
		w.tids = append(w.tids, t)
		w.fds = append(w.fds, fd)
	}
	for _, fd := range old {
		unix.Close(fd)
	}
	return nil
}

func (w *childWatcher) close() {
	for _, fd := range w.fds {
		unix.Close(fd)
	}
	w.tids, w.fds = nil, nil
}

// other returns a child pid other than skip and those in w.ignore, or 0 when
// there is none.
func (w *childWatcher) other(skip int) int {
	for _, fd := range w.fds {
		n, err := unix.Pread(fd, w.buf[:], 0)
		if err != nil || n <= 0 {
			continue
		}
		pid := 0
		for _, c := range w.buf[:n] {
			if c >= '0' && c <= '9' {
				pid = pid*10 + int(c-'0')
				continue
			}
			if w.wanted(pid, skip) {
				return pid
			}
			pid = 0
		}
		if w.wanted(pid, skip) {
			return pid
		}
	}
	return 0
}

func (w *childWatcher) wanted(pid, skip int) bool {
	if pid == 0 || pid == skip {
		return false
	}
	for _, p := range w.ignore {
		if p == pid {
			return false
		}
	}
	return true
}

// all returns every child pid.
func (w *childWatcher) all() []int {
	var out []int
	for _, fd := range w.fds {
		n, err := unix.Pread(fd, w.buf[:], 0)
		if err != nil || n <= 0 {
			continue
		}
		for _, f := range strings.Fields(string(w.buf[:n])) {
			if p, err := strconv.Atoi(f); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

func threadIDs(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var tids []int
	for _, e := range ents {
		if t, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, t)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// descendants lists every process below pid (used for cleanup).
func descendants(pid int) []int {
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		tids, err := threadIDs(p)
		if err != nil {
			continue
		}
		for _, t := range tids {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p, t))
			if err != nil {
				continue
			}
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					out = append(out, c)
					queue = append(queue, c)
				}
			}
		}
	}
	return out
}

// statusFields reads the "Key:\tvalue" lines of a /proc status file; values
// are the first number on the line (kB for the Vm* lines).
func statusFields(path string) (map[string]int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			m[k] = n
		}
	}
	return m, nil
}

// memInfo is the memory and thread count of a process.
type memInfo struct {
	RSSKB   int64 `json:"rss_kb"`
	HWMKB   int64 `json:"hwm_kb"`
	Threads int64 `json:"threads"`
}

func readMem(pid int) (memInfo, error) {
	m, err := statusFields(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memInfo{}, err
	}
	return memInfo{RSSKB: m["VmRSS"], HWMKB: m["VmHWM"], Threads: m["Threads"]}, nil
}

// ctxSwitches is the context-switch count of one thread.
type ctxSwitches struct{ Vol, Nonvol int64 }

func (c ctxSwitches) total() int64 { return c.Vol + c.Nonvol }

// threadSwitches reads the context switches of every thread of pid.
func threadSwitches(pid int) (map[int]ctxSwitches, error) {
	tids, err := threadIDs(pid)
	if err != nil {
		return nil, err
	}
	out := map[int]ctxSwitches{}
	for _, t := range tids {
		m, err := statusFields(fmt.Sprintf("/proc/%d/task/%d/status", pid, t))
		if err != nil {
			continue
		}
		out[t] = ctxSwitches{Vol: m["voluntary_ctxt_switches"], Nonvol: m["nonvoluntary_ctxt_switches"]}
	}
	return out, nil
}

// timespecAt reads the struct timespec at addr (hex) in pid's memory; root
// (or ptrace rights over pid) is needed.
func timespecAt(pid int, addr string) (time.Duration, bool) {
	a, err := strconv.ParseUint(strings.TrimPrefix(addr, "0x"), 16, 64)
	if err != nil {
		return 0, false
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [16]byte
	if n, err := f.ReadAt(b[:], int64(a)); err != nil || n != 16 {
		return 0, false
	}
	sec := int64(binary.LittleEndian.Uint64(b[0:]))
	nsec := int64(binary.LittleEndian.Uint64(b[8:]))
	return time.Duration(sec)*time.Second + time.Duration(nsec), true
}

// syscall numbers of x86-64 that the threads of a Go program sleep in.
var syscallNames = map[int]string{
	0: "read", 7: "poll", 23: "select", 34: "pause", 35: "nanosleep", 61: "wait4",
	202: "futex", 230: "clock_nanosleep", 232: "epoll_wait", 247: "waitid", 281: "epoll_pwait",
	441: "epoll_pwait2",
}

// blockedIn describes what a thread sleeps in, from /proc/PID/task/TID/syscall:
// the syscall and, for futex and epoll, whether it has a timeout.
func blockedIn(pid, tid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", pid, tid))
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	nr, err := strconv.Atoi(f[0])
	if err != nil {
		return f[0] // "running"
	}
	name, ok := syscallNames[nr]
	if !ok {
		name = "syscall " + f[0]
	}
	arg := func(i int) string {
		if i+1 < len(f) {
			return f[i+1]
		}
		return "?"
	}
	switch name {
	case "futex":
		if arg(3) == "0x0" {
			return "futex, no timeout (an idle M of the Go runtime)"
		}
		d, ok := timespecAt(pid, arg(3))
		switch {
		case !ok:
			return "futex with a timeout (a timed sleep)"
		case d == 60*time.Second:
			return "futex, timeout 60s: the Go runtime's sysmon in its idle sleep (forcegcperiod/2)"
		default:
			return fmt.Sprintf("futex, timeout %s (a timed sleep)", d)
		}
	case "epoll_wait", "epoll_pwait":
		if arg(3) == "0xffffffffffffffff" {
			return name + ", no timeout"
		}
		return name + " timeout " + arg(3)
	}
	return name
}

// cpuProbe measures how much CPU other processes used while a part ran: all
// busy time of the machine (/proc/stat, steal included) minus what the
// harness and respawner (with the children it reaped) used. On two cores a
// parallel build or test run makes latencies noisy and the crash loop slower.
type cpuProbe struct {
	at         time.Time
	busy, ours int64 // clock ticks
	pids       []int
}

const clockTicks = 100 // USER_HZ on Linux

func newCPUProbe(pids ...int) cpuProbe {
	p := cpuProbe{at: time.Now(), pids: append([]int{os.Getpid()}, pids...)}
	p.busy, p.ours = cpuTicks(p.pids)
	return p
}

// otherPercent is the share of all CPUs used by other processes since p.
func (p cpuProbe) otherPercent() float64 {
	busy, ours := cpuTicks(p.pids)
	total := time.Since(p.at).Seconds() * clockTicks * float64(runtime.NumCPU())
	if total <= 0 {
		return 0
	}
	return max(0, float64((busy-p.busy)-(ours-p.ours))) / total * 100
}

func cpuTicks(pids []int) (busy, ours int64) {
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i, v := range f {
			if i == 0 || i == 4 || i == 5 || i > 8 {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			busy += n
		}
	}
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))      // f[0] is the state (field 3)
		for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			if k < len(f) {
				n, _ := strconv.ParseInt(f[k], 10, 64)
				ours += n
			}
		}
	}
	return busy, ours
}

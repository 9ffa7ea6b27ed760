package loop

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/machine"
	"golang.org/x/sys/unix"
)

// CheckProc makes sure /proc is the proc of respawner's own PID namespace.
// The process tree is read there (/proc/PID/task/*/children): the orphans to
// reap, the leftovers to wait for, the descendants to stop. A /proc of
// another namespace, as under `unshare --pid --fork` without --mount-proc,
// names other processes under the same numbers: as PID 1, /proc/1 is the
// host's init, so the orphans respawner must reap are never found and stay
// zombies, and a stop would look for the program's processes among the
// host's. Refused at start, as a missing /proc is.
func CheckProc() error {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return fmt.Errorf("/proc is not mounted (%w): respawner reads the process tree there; mount it (mount -t proc proc /proc)", err)
	}
	if pid := strconv.Itoa(os.Getpid()); self != pid {
		return fmt.Errorf("/proc belongs to another PID namespace (/proc/self is %s, respawner is pid %s): respawner reads the process tree there; mount the namespace's own (unshare --mount-proc, or mount -t proc proc /proc in a new mount namespace)", self, pid)
	}
	return nil
}

// instanceChildren lists the processes directly below the instance that
// are not the watched process or the hook host: respawner's children and
// the keeper's (see keeperKids).
func (l *Loop) instanceChildren() []int {
	pids := append(children(os.Getpid(), nil), l.keeperKids()...)
	keep := pids[:0]
	for _, p := range pids {
		if !l.watched(p) {
			keep = append(keep, p)
		}
	}
	return keep
}

// instanceDescendants lists every process of the instance, breadth first:
// what is below respawner (the hook host's subtree excepted), below the
// keeper, and below the watched process when it is neither's child (a
// program adopted by a respawner in the foreground).
func (l *Loop) instanceDescendants() []int {
	seen := map[int]bool{os.Getpid(): true}
	var out []int
	add := func(pids []int) {
		for _, p := range pids {
			if !seen[p] && !l.isHost(p) {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	add(children(os.Getpid(), nil))
	add(l.keeperKids())
	if l.pid > 0 {
		add([]int{l.pid})
	}
	for i := 0; i < len(out); i++ {
		add(children(out[i], nil))
	}
	return out
}

// keeperKids lists the keeper's children that belong to the instance:
// what an earlier, killed respawner left (reparented to the keeper), never
// respawner itself nor another respawner the keeper forked (those stay in
// the keeper's process group, the instance's processes never are in it).
// Only a respawner's death puts processes there, so the keeper is read
// only when this respawner began with some (an adopted program, leftovers):
// the common case, a fresh daemon, costs nothing more on each exit.
func (l *Loop) keeperKids() []int {
	k := l.opt.Keeper
	if k == nil || !l.keeperKin {
		return nil
	}
	var out []int
	for _, p := range children(k.PID, nil) {
		if pg, err := unix.Getpgid(p); err == nil && pg != k.PID {
			out = append(out, p)
		}
	}
	return out
}

// ours reports whether pid belongs to the instance: below respawner (not
// through the hook host) or below its keeper.
func (l *Loop) ours(pid int) bool {
	if isDescendant(pid, os.Getpid(), l.isHost) {
		return true
	}
	k := l.opt.Keeper
	return k != nil && isDescendant(pid, k.PID, func(p int) bool { return p == os.Getpid() })
}

// watchLeftovers opens a pidfd for each of our children that is not yet
// watched (what the run left behind, reparented to us as subreaper, or to
// the keeper) and returns the pids of all the run's processes being waited for.
func (l *Loop) watchLeftovers() []int {
	for _, pid := range l.instanceChildren() {
		if st, dead := reapIfDead(pid); dead {
			// Already a zombie: an intermediate of a double fork, say.
			l.log.Debug("reaped leftover process", "pid", pid, "status", st.String())
			continue
		}
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if err := epollAdd(l.epfd, fd); err != nil {
			unix.Close(fd)
			continue
		}
		l.tree[fd] = pid
		l.log.Debug("waiting for leftover process", "pid", pid)
	}
	if len(l.tree) == 0 {
		return nil
	}
	pids := make([]int, 0, len(l.tree))
	for _, p := range l.tree {
		pids = append(pids, p)
	}
	return pids
}

func (l *Loop) watched(pid int) bool {
	if pid == l.pid || pid == l.host.pid && pid != 0 {
		return true // the hook host is reaped through its own pidfd
	}
	if l.shim != nil && pid == l.shim.p.PID {
		return true // so is a pending exec shim
	}
	for _, p := range l.tree {
		if p == pid {
			return true
		}
	}
	return false
}

func (l *Loop) leftoverExited(fd, pid int) {
	if !pidfdExited(fd) {
		return // a stale event: see pidfdExited
	}
	st, err := waitPidfd(fd)
	unix.Close(fd)
	delete(l.tree, fd)
	if err == nil {
		l.log.Debug("leftover process ended", "pid", pid, "status", st.String())
	}
	l.watchLeftovers() // its children, if any, are ours now
	if l.collecting {
		l.checkCollected()
	}
}

// checkCollected raises TreeEmpty once the watched process and every other
// process of the run are gone.
func (l *Loop) checkCollected() {
	if l.pidfd >= 0 || len(l.tree) > 0 {
		l.log.Debug("waiting for the run's processes", "watched", l.pid, "others", len(l.tree))
		return
	}
	l.collecting = false
	l.pgid = 0
	l.step(machine.TreeEmpty{})
}

// reapOrphans collects zombies reparented to us while the program runs (a
// grandchild whose parent died). The program itself and leftovers are reaped
// through their pidfds, never here.
func (l *Loop) reapOrphans() {
	for _, pid := range children(os.Getpid(), nil) {
		if l.watched(pid) {
			continue
		}
		if st, ok := reapIfDead(pid); ok {
			l.log.Debug("reaped orphan", "pid", pid, "status", st.String())
		}
	}
	if l.collecting {
		l.pruneTree()
		l.watchLeftovers()
		l.checkCollected()
	}
}

// pruneTree drops leftovers that are no longer our children to wait for
// (waitid says ECHILD) and are not alive under the keeper either, so that a
// stop can never wait for a process that is gone without its pidfd having
// said so.
func (l *Loop) pruneTree() {
	for fd, pid := range l.tree {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if errors.Is(err, unix.ECHILD) && !(l.opt.Keeper != nil && control.Alive(pid)) {
			l.log.Debug("leftover process no longer ours", "pid", pid)
			unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
			unix.Close(fd)
			delete(l.tree, fd)
		}
	}
}

// signalTree sends sig to the process group of the run, to the watched
// process when it left that group (a daemon, an adopted program), and to
// every descendant outside the group (daemons that called setsid), so nothing
// the program started outlives a stop. SIGTERM is followed by SIGCONT so that
// a stopped (SIGSTOP) process can act on it.
func (l *Loop) signalTree(sig syscall.Signal) {
	// A stopped (SIGSTOP) process acts on SIGTERM, SIGABRT or a
	// --stop-signal such as SIGQUIT only once continued.
	cont := sig != unix.SIGKILL && sig != unix.SIGCONT && sig != unix.SIGSTOP &&
		sig != unix.SIGTSTP && sig != unix.SIGTTIN && sig != unix.SIGTTOU
	send := func(target int) {
		err := ignoreESRCH(unix.Kill(target, sig))
		if err == nil && cont {
			unix.Kill(target, unix.SIGCONT)
		}
		if err != nil {
			l.log.Warn("kill", "pid", target, "signal", signalName(sig), "error", err)
		}
	}
	if l.pgid > 0 && !l.groupIsOurs() {
		// The group emptied (a daemon called setsid): its number may be anyone's now.
		l.log.Debug("process group gone; not signalling it", "pgid", l.pgid)
		l.pgid = 0
	}
	if l.pgid > 0 {
		send(-l.pgid)
	}
	if l.pidfd >= 0 {
		if pgid, err := unix.Getpgid(l.pid); err == nil && pgid != l.pgid {
			unix.PidfdSendSignal(l.pidfd, sig, nil, 0)
			if cont {
				unix.PidfdSendSignal(l.pidfd, unix.SIGCONT, nil, 0)
			}
		}
	}
	for _, pid := range l.instanceDescendants() {
		if pgid, err := unix.Getpgid(pid); err == nil && (pgid != l.pgid || l.pgid == 0) && pid != l.pid {
			send(pid)
		}
	}
	switch {
	case sig == unix.SIGABRT:
		l.log.Warn("watchdog: killing the program as hung", "reason", l.m.Snapshot().Reason, "signal", "SIGABRT", "kill_after", l.opt.Machine.StopTimeout)
	case sig == unix.SIGKILL:
		l.log.Warn("killing", "signal", "SIGKILL")
		if l.collecting {
			l.pruneTree()
			l.watchLeftovers()
			defer l.checkCollected()
		}
	case l.m.State() == machine.Cleanup && l.m.Snapshot().Reason != "":
		// A run that failed without an exit of its own (no pidfile, no
		// READY=1, unhealthy): it is killed before its outcome.
		l.log.Warn("terminating the failed run", "reason", l.m.Snapshot().Reason, "signal", signalName(sig), "timeout", l.opt.Machine.StopTimeout)
	case l.m.State() == machine.Cleanup:
		l.log.Info("terminating processes left behind", "signal", signalName(sig), "timeout", l.opt.Machine.StopTimeout)
	default:
		l.log.Info("stopping", "signal", signalName(sig), "timeout", l.opt.Machine.StopTimeout)
	}
}

// groupIsOurs reports whether the run's process group still has a member
// that is ours: the watched process, or a descendant of respawner. A group
// whose members are all gone frees its number, which the kernel may give to
// an unrelated process that leads a group of its own: never signal it then.
func (l *Loop) groupIsOurs() bool {
	if l.pid > 0 {
		if pg, err := unix.Getpgid(l.pid); err == nil && pg == l.pgid {
			return true
		}
	}
	for _, pid := range l.instanceDescendants() {
		if pg, err := unix.Getpgid(pid); err == nil && pg == l.pgid {
			return true
		}
	}
	return false
}

// isHost tells the hook host (and so its plugins, below it) from the
// program's processes: they are never signalled as part of the program.
func (l *Loop) isHost(pid int) bool { return pid == l.host.pid && pid != 0 }

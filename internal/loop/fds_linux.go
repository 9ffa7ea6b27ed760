package loop

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/respawner/respawner/internal/machine"
	"golang.org/x/sys/unix"
)

// Thin wrappers over the Linux descriptors the loop is built from. They keep
// the kernel's names and wrap errors with the syscall that failed.

func epollAdd(epfd, fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add fd %d: %w", fd, err)
	}
	return nil
}

func newTimerfd() (int, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_CLOEXEC|unix.TFD_NONBLOCK)
	if err != nil {
		return -1, fmt.Errorf("timerfd_create: %w", err)
	}
	return fd, nil
}

// armTimerfd makes fd fire once after d; d <= 0 fires at once (a zero
// it_value would disarm the timer instead).
func armTimerfd(fd int, d time.Duration) error {
	if d <= 0 {
		d = 1
	}
	spec := unix.ItimerSpec{Value: unix.NsecToTimespec(int64(d))}
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

func disarmTimerfd(fd int) error {
	var spec unix.ItimerSpec
	if err := unix.TimerfdSettime(fd, 0, &spec, nil); err != nil {
		return fmt.Errorf("timerfd_settime: %w", err)
	}
	return nil
}

// readCounter drains an eventfd or timerfd. It reports false when there was
// nothing to read: a timer disarmed after it became ready has not fired.
func readCounter(fd int) bool {
	var buf [8]byte
	n, err := unix.Read(fd, buf[:])
	return err == nil && n == 8
}

func writeEventfd(fd int) {
	one := [8]byte{1}
	_, _ = unix.Write(fd, one[:]) // EAGAIN means the counter is already non-zero
}

// waitPidfd reaps the exited process behind pidfd with waitid(P_PIDFD).
func waitPidfd(pidfd int) (machine.ExitStatus, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return machine.ExitStatus{}, fmt.Errorf("waitid pidfd: %w", err)
		}
		return siginfoStatus(&info), nil
	}
}

// pidfdExited reports whether the process behind pidfd has ended. Handlers
// check it before a blocking waitid: an event can be stale when another
// handler of the same epoll batch closed a descriptor and a third reused its
// number for a pidfd of a process that runs on.
func pidfdExited(pidfd int) bool {
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if err == unix.EINTR {
			continue
		}
		return err == nil && n == 1
	}
}

// reapIfDead reaps pid when it is a zombie and leaves it alone otherwise.
func reapIfDead(pid int) (machine.ExitStatus, bool) {
	var info unix.Siginfo
	err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOHANG, nil)
	if err != nil || siginfoPID(&info) == 0 {
		return machine.ExitStatus{}, false
	}
	return siginfoStatus(&info), true
}

// The SIGCHLD fields of siginfo_t sit in the union that x/sys/unix leaves as
// padding: si_pid at offset 16, si_status at offset 24 (all Linux ABIs).
func siginfoPID(info *unix.Siginfo) int {
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), 16)))
}

// si_code values of SIGCHLD (include/uapi/asm-generic/siginfo.h).
const (
	cldKilled = 2
	cldDumped = 3
)

func siginfoStatus(info *unix.Siginfo) machine.ExitStatus {
	status := int(*(*int32)(unsafe.Add(unsafe.Pointer(info), 24)))
	switch info.Code {
	case cldKilled, cldDumped:
		return machine.ExitStatus{Signal: unix.Signal(status)}
	}
	return machine.ExitStatus{Code: status}
}

// children lists the child processes of pid from /proc/PID/task/*/children
// (a process's children hang off the thread that forked them, and orphans
// reparented to a subreaper off any of its threads).
func children(pid int, buf []int) []int {
	dir := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return buf
	}
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				buf = append(buf, n)
			}
		}
	}
	return buf
}

// descendants lists every process below pid, breadth first.
func descendants(pid int, skip func(int) bool) []int {
	out := children(pid, nil)
	out = dropSkipped(out, skip)
	for i := 0; i < len(out); i++ {
		out = children(out[i], out)
	}
	return out
}

func dropSkipped(pids []int, skip func(int) bool) []int {
	if skip == nil {
		return pids
	}
	keep := pids[:0]
	for _, p := range pids {
		if !skip(p) {
			keep = append(keep, p)
		}
	}
	return keep
}

// ignoreESRCH drops the expected race of signalling a process that just died.
func ignoreESRCH(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

func closeFD(fd int) { unix.Close(fd) }

package loop

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// spawn starts the program in its own process group and returns its pid and a
// pidfd for it (CLONE_PIDFD: the pidfd names this very process, so a recycled
// pid can never be mistaken for it).
//
// The child inherits the signal mask of the forking thread; the loop runs on a
// locked thread whose mask it cleared (cleanThreadSigmask), so the program
// starts with nothing blocked even when respawner itself was started with
// signals blocked. Dispositions: exec resets handled signals to the default and
// keeps ignored ones, so respawner has none ignored (ResetIgnoredSignals).
func spawn(path string, argv, env []string, files []uintptr) (pid, pidfd int, err error) {
	pidfd = -1
	attr := &syscall.ProcAttr{
		Env:   env,
		Files: files,
		Sys:   &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
	}
	pid, err = syscall.ForkExec(path, argv, attr)
	if err != nil {
		return 0, -1, fmt.Errorf("exec %s: %w", path, err)
	}
	return pid, pidfd, nil
}

// cleanThreadSigmask unblocks every signal on the calling (locked) thread.
func cleanThreadSigmask() error {
	var empty unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil); err != nil {
		return fmt.Errorf("pthread_sigmask: %w", err)
	}
	return nil
}

// kernelSigaction is struct sigaction as the rt_sigaction syscall takes it.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const sigIGN = 1

// ResetIgnoredSignals sets every signal that respawner inherited as ignored
// (nohup, a careless parent) back to the default, because ignored dispositions
// survive exec and would reach the supervised program. Signals the Go runtime
// handles are never SIG_IGN here, so this touches only what the runtime left
// alone. Call it once at start-up, before installing os/signal handlers.
func ResetIgnoredSignals() {
	for sig := 1; sig < 65; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), 8, 0, 0)
		if e != 0 || old.handler != sigIGN {
			continue
		}
		def := kernelSigaction{} // SIG_DFL
		unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&def)), 0, 8, 0, 0)
	}
}

// CloseInheritedFDs marks every descriptor above 2 close-on-exec, so that
// descriptors respawner inherited never reach the program.
func CloseInheritedFDs() error {
	err := unix.CloseRange(3, math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	if err == nil {
		return nil
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: mark each open one.
	ents, derr := os.ReadDir("/proc/self/fd")
	if derr != nil {
		return fmt.Errorf("close_range: %w; and /proc/self/fd: %w", err, derr)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
	return nil
}

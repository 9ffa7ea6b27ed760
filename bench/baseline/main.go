// Command baseline is the least a Go supervisor can do for a -t 0 restart:
// epoll on a pidfd, waitid, syscall.ForkExec at once; no logging, no /proc
// scan, no SIGCHLD handler, no state file. It accepts the command line the
// benchmark gives respawner (`start [flags] PROGRAM [-- ARGS]`, flags ignored)
// so that the same harness can measure it:
//
//	go build -o /tmp/baseline ./bench/baseline
//	go run ./bench -bin /tmp/baseline -only restart
//
// The difference from respawner's figures is respawner's own work; see
// docs/BENCHMARKS.md. SIGTERM kills the child and exits 0.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "version" {
		fmt.Println("baseline supervisor (bench/baseline)")
		return
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: baseline start [flags] PROGRAM [-- ARGS]")
		os.Exit(2)
	}
	prog, pargs := args[len(args)-1], []string(nil)
	for i, a := range args {
		if a == "--" && i > 0 {
			prog, pargs = args[i-1], args[i+1:]
			break
		}
	}
	if err := run(prog, pargs); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(prog string, pargs []string) error {
	runtime.LockOSThread()
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, stop, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(stop)}); err != nil {
		return err
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-term
		unix.Write(stop, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()

	argv := append([]string{prog}, pargs...)
	spawn := func() (pid, pidfd int, err error) {
		pidfd = -1
		pid, err = syscall.ForkExec(prog, argv, &syscall.ProcAttr{
			Env: os.Environ(), Files: []uintptr{0, 1, 2},
			Sys: &syscall.SysProcAttr{Setpgid: true, PidFD: &pidfd},
		})
		if err != nil {
			return 0, -1, err
		}
		return pid, pidfd, unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, pidfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(pidfd)})
	}
	pid, pidfd, err := spawn()
	if err != nil {
		return err
	}
	var info unix.Siginfo
	evs := make([]unix.EpollEvent, 4)
	for {
		n, err := unix.EpollWait(ep, evs, -1)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		for _, ev := range evs[:n] {
			if int(ev.Fd) == stop {
				unix.Kill(-pid, unix.SIGKILL)
				unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
				return nil
			}
			unix.Waitid(unix.P_PIDFD, pidfd, &info, unix.WEXITED, nil)
			unix.Close(pidfd)
			if pid, pidfd, err = spawn(); err != nil {
				return err
			}
		}
	}
}

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/control"
	"golang.org/x/sys/unix"
)

// respawner under a service manager: when systemd starts it as a
// Type=notify service it sets NOTIFY_SOCKET, and respawner says READY=1
// once its program is up (or, with --ready notify, once the program said
// READY=1 itself). In the foreground (-D, the usual ExecStart=) the loop's
// start report does it; a daemonizing `start` does it after its daemon's
// report, naming the daemon as the service's main process (MAINPID=), since
// the start process itself exits. See docs/respawner.service.

// managed reports whether respawner has a service manager to tell.
func managed() bool { return os.Getenv("NOTIFY_SOCKET") != "" }

// reportToManager is the foreground's start report: READY=1 when the first
// run counts as started; the reason, as STATUS=, when supervision ended
// before that (the manager sees respawner's exit status too). It runs on
// the loop: a failure goes to the log's queue, never straight to stderr,
// which may be a pipe nobody reads.
func reportToManager(log hclog.Logger) func(error) {
	return func(err error) {
		state := "READY=1\nSTATUS=supervising"
		if err != nil {
			msg, _, _ := strings.Cut(err.Error(), "\n")
			state = "STATUS=" + msg
		}
		if err := sendNotify(os.Getenv("NOTIFY_SOCKET"), state, true); err != nil {
			log.Warn("cannot notify the service manager", "socket", os.Getenv("NOTIFY_SOCKET"), "error", err)
		}
	}
}

// managerStarted is a daemonizing start's: the daemon reported its program
// started, and the daemon, not this process, is the service from now on.
func managerStarted(d *control.Dir, name string) {
	if !managed() {
		return
	}
	state := "READY=1"
	if pid, live := d.Live(name); live {
		state = "MAINPID=" + strconv.Itoa(pid) + "\n" + state
	}
	managerNotify(state)
}

// managerNotifyTimeout bounds the send: the manager's socket is never
// expected to be full, and supervision must not wait on it if it is.
const managerNotifyTimeout = 2 * time.Second

// managerNotify sends one sd_notify message to $NOTIFY_SOCKET from a
// daemonizing start, which is about to exit. A failure is reported on
// stderr and otherwise ignored: a manager that does not hear READY=1 times
// the start out, and says so.
func managerNotify(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if err := sendNotify(addr, state, false); err != nil {
		fmt.Fprintf(os.Stderr, "respawner: cannot notify the service manager at %s: %v\n", addr, err)
	}
}

// sendNotify sends one sd_notify message to addr: a path, or an abstract
// socket written with a leading '@' (sd_notify(3)). From the loop (noWait)
// it never waits: a manager whose socket is full loses the message (and
// says so when the start times out) rather than holding supervision up.
func sendNotify(addr, state string, noWait bool) error {
	if addr == "" || addr[0] != '/' && addr[0] != '@' || len(addr) > 107 {
		return fmt.Errorf("not a unix socket path or abstract name")
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	flags := unix.MSG_NOSIGNAL
	if noWait {
		flags |= unix.MSG_DONTWAIT
	} else {
		tv := unix.NsecToTimeval(int64(managerNotifyTimeout))
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	}
	if err := unix.Sendto(fd, []byte(state), flags, &unix.SockaddrUnix{Name: addr}); err != nil {
		return fmt.Errorf("sendto: %w", err)
	}
	return nil
}

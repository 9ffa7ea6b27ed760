package loop

import (
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// signalName returns "SIGKILL" for 9, and "SIG34" style names for the rest.
func signalName(s syscall.Signal) string {
	if n := unix.SignalName(s); n != "" {
		return n
	}
	return "SIG" + strconv.Itoa(int(s))
}

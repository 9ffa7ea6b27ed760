package machine

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
)

// signalNames are Linux's signal names (x86-64 and arm64 share them).
var signalNames = [...]string{
	1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS",
	8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2", 13: "SIGPIPE",
	14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD", 18: "SIGCONT", 19: "SIGSTOP",
	20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
	26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO", 30: "SIGPWR", 31: "SIGSYS",
}

// SignalName returns "SIGKILL" for 9, and "SIG34" style names for signals
// without one (the real-time signals).
func SignalName(s syscall.Signal) string {
	if s > 0 && int(s) < len(signalNames) {
		return signalNames[s]
	}
	return "SIG" + strconv.Itoa(int(s))
}

// ParseSignal reads a signal as an operator writes it: HUP, SIGHUP, hup, or
// its number (1-64). Real-time signals by number only, or as SIGRTMIN+N /
// RTMIN+N.
func ParseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return 0, fmt.Errorf("signal %d out of range (1-64)", n)
		}
		return syscall.Signal(n), nil
	}
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	for i, name := range signalNames {
		if name == u { // u starts with "SIG": never the unnamed ""
			return syscall.Signal(i), nil
		}
	}
	if off, ok := strings.CutPrefix(u, "SIGRTMIN+"); ok {
		if n, err := strconv.Atoi(off); err == nil && n >= 0 && sigRTMin+n <= 64 {
			return syscall.Signal(sigRTMin + n), nil
		}
	}
	if len(s) > 16 {
		s = s[:16] + "..."
	}
	return 0, fmt.Errorf("unknown signal %q (a name such as HUP, TERM, USR1, or a number)", s)
}

// sigRTMin is the first real-time signal an application may use: glibc
// keeps 32 and 33 for itself.
const sigRTMin = 34

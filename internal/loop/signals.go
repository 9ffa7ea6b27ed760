package loop

import (
	"syscall"

	"github.com/respawner/respawner/internal/machine"
)

// signalName returns "SIGKILL" for 9, and "SIG34" style names for the rest.
func signalName(s syscall.Signal) string { return machine.SignalName(s) }

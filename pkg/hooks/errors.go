package hooks

import (
	"errors"
	"fmt"
)

// Errors returned by Client methods, to be checked with errors.Is. A method
// may also return context.DeadlineExceeded or context.Canceled (wrapped) when
// its context ended first.
var (
	// ErrUnimplemented: the plugin lacks the capability the method needs
	// (see Info); RestartPending then returns Allow.
	ErrUnimplemented = errors.New("not implemented by the plugin")
	// ErrPanic: the plugin's method panicked; the plugin recovered and runs on.
	ErrPanic = errors.New("the plugin panicked")
	// ErrUnavailable: the plugin cannot be reached, usually because its
	// process has exited (see Client.Exited).
	ErrUnavailable = errors.New("plugin unavailable")
	// ErrBadVerdict: RestartPending answered a verdict that makes no sense
	// (an unknown decision, or a delay of zero or less).
	ErrBadVerdict = errors.New("bad verdict")
)

// PluginError is an error the plugin's own method returned (or refused a
// call with), as it said it: Configure's `unknown option "colour"`, a
// Notify that could not send its mail.
type PluginError struct {
	Op      string // the call: "configure", "notify", "restart-pending", "probe", "info"
	Message string
}

// Error returns "OP: MESSAGE".
func (e *PluginError) Error() string { return e.Op + ": " + e.Message }

// ErrChecksum: the plugin binary does not match LaunchOptions.SHA256.
var ErrChecksum = errors.New("checksum mismatch")

// VersionError is the error (wrapped) of Launch for a plugin built against
// another hook protocol version.
type VersionError struct {
	Plugin int // the version the plugin speaks
	Host   int // ProtocolVersion
}

// Error says what to do about it.
func (e *VersionError) Error() string {
	return fmt.Sprintf("plugin speaks hook protocol %d, respawner speaks %d: rebuild it against this respawner's pkg/hooks", e.Plugin, e.Host)
}

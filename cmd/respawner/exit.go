package main

import (
	"errors"
	"fmt"
)

// exitCode is a process exit status of the CLI contract (SPEC §2).
type exitCode int

const (
	exitOK         exitCode = 0
	exitFailure    exitCode = 1 // start could not start, start -D gave up
	exitUsage      exitCode = 2 // bad flag, bad value, missing PROGRAM
	exitNotRunning exitCode = 3 // stop/status: no such instance (LSB)
	exitUnknown    exitCode = 4 // status: unknown state (LSB)
)

// codeError carries the exit code for an error; errors without one exit 1.
type codeError struct {
	code exitCode
	err  error
}

func (e *codeError) Error() string { return e.err.Error() }
func (e *codeError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &codeError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// silentExit ends the command with code and prints nothing more (the command
// has already said what there is to say, e.g. `status` of a stopped instance).
func silentExit(code exitCode) error { return &codeError{code: code} }

// codeOf maps an error to the process exit code: the one place that does.
func codeOf(err error) exitCode {
	if err == nil {
		return exitOK
	}
	var ce *codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return exitFailure
}

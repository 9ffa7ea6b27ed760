package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
)

type stopOptions struct {
	runtimeDir string
	timeout    durationValue
}

func newStopCmd() *cobra.Command {
	opts := &stopOptions{timeout: durationValue(2 * time.Minute)}
	cmd := &cobra.Command{
		Use:   "stop [flags] NAME|PROGRAM",
		Short: "Stop an instance: its program, everything it started, and respawner",
		Long: `Stop an instance: its program, everything it started, and respawner.

The program gets SIGTERM (and SIGCONT), SIGKILL after the instance's
--stop-timeout. stop waits until the program and respawner are gone.
Exit status: 0 stopped; 3 no such instance runs; 4 the caller may not ask it
(another user's instance); 1 it could not be stopped, e.g. respawner died
while its program still runs ("respawner start NAME" adopts it, then stop).`,
		Args:              exactlyOne("NAME|PROGRAM"),
		ValidArgsFunction: completeInstances,
		RunE: func(c *cobra.Command, args []string) error {
			name := instanceName(args[0])
			return withInstance(opts.runtimeDir, name, "stop", func(d *control.Dir) error {
				return d.Stop(name, time.Duration(opts.timeout))
			})
		},
	}
	cmd.Flags().StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.Flags().Var(&opts.timeout, "timeout", "give up waiting after this long")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

// withInstance opens the runtime dir and runs ask on the instance name,
// mapping what the control client says to the exit codes of SPEC §2: 3 when
// no such instance runs, 4 when the caller may not ask it, 1 for a program
// whose respawner died (what to do is said: start NAME adopts it, then
// verb it), and 1 for any other error.
func withInstance(runtimeDir, name, verb string, ask func(*control.Dir) error) error {
	d, err := control.OpenDir(runtimeDir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &codeError{code: exitNotRunning, err: fmt.Errorf("%s is not running", name)}
	case err != nil:
		return &codeError{code: exitUnknown, err: err} // may not ask
	}
	defer d.Close()
	err = ask(d)
	switch {
	case errors.Is(err, control.ErrNotRunning):
		if orphan, ok := d.Orphan(name); ok {
			// Nothing here can reach it: say so, and how to.
			return fmt.Errorf("%s: %s, then %s it", name, orphan.Reason, verb)
		}
		return &codeError{code: exitNotRunning, err: fmt.Errorf("%s is not running", name)}
	case errors.Is(err, control.ErrNotAllowed):
		return &codeError{code: exitUnknown, err: err}
	}
	return err
}

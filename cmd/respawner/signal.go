package main

import (
	"fmt"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/machine"
	"github.com/spf13/cobra"
)

type signalOptions struct {
	runtimeDir string
	group      bool
}

func newSignalCmd() *cobra.Command {
	opts := &signalOptions{}
	cmd := &cobra.Command{
		Use:   "signal [flags] NAME|PROGRAM SIG",
		Short: "Send a signal to an instance's program",
		Long: `Send a signal to an instance's program: kill -SIG without knowing its pid.

SIG is a name (HUP, SIGHUP, hup) or a number. It goes to the program's main
process (the daemon a daemonizing program left, with -p or when followed), or
with --group to that process's process group. respawner only passes it on:
what the program does with it is the program's (lighttpd reopens its logs on
HUP and keeps serving; a program that dies of it is restarted as usual).
Exit status: 0 sent; 1 the program is not running (e.g. waiting for its
restart); 2 an unknown signal; 3 no such instance runs; 4 the caller may not
ask it.`,
		Example: `  respawner signal lighttpd HUP
  respawner signal --group ./server USR1`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usageErrorf("want NAME|PROGRAM and SIG, got %d argument(s) (usage: %s)", len(args), c.UseLine())
			}
			return nil
		},
		ValidArgsFunction: completeInstanceSignal,
		RunE: func(c *cobra.Command, args []string) error {
			name := instanceName(args[0])
			sig, err := machine.ParseSignal(args[1])
			if err != nil {
				return usageErrorf("%v", err)
			}
			return withInstance(opts.runtimeDir, name, "signal", func(d *control.Dir) error {
				if err := d.Signal(name, sig, opts.group, 10*time.Second); err != nil {
					return fmt.Errorf("signal %s: %w", name, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.Flags().BoolVar(&opts.group, "group", false, "send SIG to the program's process group instead of its main process")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

package main

import (
	"fmt"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
)

type restartOptions struct {
	runtimeDir string
	timeout    durationValue
}

func newRestartCmd() *cobra.Command {
	opts := &restartOptions{timeout: durationValue(2 * time.Minute)}
	cmd := &cobra.Command{
		Use:   "restart [flags] NAME|PROGRAM",
		Short: "Stop an instance's program and start it again; supervision goes on",
		Long: `Stop an instance's program and start it again; supervision goes on.

The program is stopped as by stop (the instance's --stop-signal, SIGTERM by
default, to everything it started, SIGKILL after its --stop-timeout) and a new
run starts at once: not after the respawn timeout, not put to the hook
plugins' veto (they hear stopping and restarting with the reason
"requested"). A program that is down (waiting for its restart, or held by a
hook) starts at once. The restart count, backoff and the respawn limit start
over, as at start.

restart waits until the new run is up: it has survived the instance's
--start-check (1s by default), or its pidfile names it (-p), or it said
READY=1 (--ready notify).
Exit status: 0 the new run is up; 1 it is not (it failed, and is restarted as
usual, or a stop came first); 3 no such instance runs; 4 the caller may not
ask it.`,
		Example: `  respawner restart lighttpd
  respawner restart --timeout 30s ./server`,
		Args:              exactlyOne("NAME|PROGRAM"),
		ValidArgsFunction: completeInstances,
		RunE: func(c *cobra.Command, args []string) error {
			name := instanceName(args[0])
			return withInstance(opts.runtimeDir, name, "restart", func(d *control.Dir) error {
				if err := d.Restart(name, time.Duration(opts.timeout)); err != nil {
					return fmt.Errorf("restart %s: %w", name, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.Flags().Var(&opts.timeout, "timeout", "give up waiting for the new run after this long")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

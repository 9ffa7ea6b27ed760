package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
)

func newListCmd() *cobra.Command {
	var asJSON bool
	var runtimeDir string
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List every instance in the runtime dir, one line each",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			d, err := control.OpenDir(runtimeDir)
			switch {
			case errors.Is(err, os.ErrNotExist):
				d = nil // no runtime dir: no instances
			case err != nil:
				return &codeError{code: exitUnknown, err: err} // may not look
			default:
				defer d.Close()
			}
			var names []string
			if d != nil {
				names = d.Names()
			}
			sort.Strings(names)
			all := []*control.Status{}
			for _, n := range names {
				st, err := d.QueryStatus(n, 5*time.Second)
				switch {
				case errors.Is(err, control.ErrNotRunning):
					orphan, ok := d.Orphan(n)
					if !ok {
						continue // stale files, cleaned by the query
					}
					st = orphan // respawner died, the program runs on
				case err != nil:
					st = &control.Status{Name: n, State: "unknown", Reason: err.Error()}
				}
				all = append(all, st)
			}
			out := c.OutOrStdout()
			if asJSON {
				return json.NewEncoder(out).Encode(all)
			}
			now := time.Now()
			for _, st := range all {
				if st.State == "unknown" && st.PID == 0 {
					fmt.Fprintf(out, "%s: state unknown (%s)\n", st.Name, st.Reason)
					continue
				}
				fmt.Fprintln(out, describe(st, now))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array of status objects")
	cmd.Flags().StringVar(&runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

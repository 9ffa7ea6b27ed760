package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/spf13/cobra"
)

type statusOptions struct {
	json       bool
	runtimeDir string
}

func newStatusCmd() *cobra.Command {
	opts := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status [flags] NAME|PROGRAM",
		Short: "Tell whether an instance's program is running",
		Long: `Tell whether an instance's program is running.

Exit status (LSB): 0 running; 3 not running (no such instance, or the program
is down: starting, in backoff, stopping); 4 unknown: the instance does not
answer, the caller may not ask it (another user's runtime dir), or respawner
died while its program still runs (then "respawner start NAME" adopts it).`,
		Args:              exactlyOne("NAME|PROGRAM"),
		ValidArgsFunction: completeInstances,
		RunE: func(c *cobra.Command, args []string) error {
			return runStatus(c.OutOrStdout(), opts, instanceName(args[0]))
		},
	}
	cmd.Flags().BoolVar(&opts.json, "json", false, "print one JSON object (name, state, pid, restarts, last_exit, health, since, plugins, log; user, group, dir, umask, limits when start set them)")
	cmd.Flags().StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	return cmd
}

// instanceName matches NAME|PROGRAM against instance names: a path such as
// ./test/forever.sh means the instance forever.sh.
func instanceName(arg string) string { return filepath.Base(arg) }

func exactlyOne(what string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != 1 {
			return usageErrorf("want exactly one %s (usage: %s)", what, c.UseLine())
		}
		return nil
	}
}

func runStatus(out io.Writer, o *statusOptions, name string) error {
	unknown := func(err error) error {
		if o.json {
			json.NewEncoder(out).Encode(map[string]string{"name": name, "state": "unknown", "error": err.Error()})
		}
		return &codeError{code: exitUnknown, err: err}
	}
	d, err := control.OpenDir(o.runtimeDir)
	var st *control.Status
	switch {
	case errors.Is(err, os.ErrNotExist):
		err = control.ErrNotRunning
	case err != nil:
		return unknown(err) // a dir the caller may not use: it cannot know
	default:
		defer d.Close()
		st, err = d.QueryStatus(name, 5*time.Second)
	}
	switch {
	case errors.Is(err, control.ErrNotRunning):
		if orphan, ok := d.Orphan(name); ok {
			// respawner died; its program runs on, and start adopts it.
			if err := printStatus(out, o, orphan); err != nil {
				return err
			}
			return silentExit(exitUnknown)
		}
		st = &control.Status{Name: name, State: "stopped", Health: "unknown", Plugins: []string{}, Args: []string{}}
	case errors.Is(err, control.ErrNotAllowed):
		return unknown(err)
	case err != nil:
		return unknown(fmt.Errorf("%s: state unknown: %w", name, err))
	}
	if err := printStatus(out, o, st); err != nil {
		return err
	}
	if st.State != "running" {
		return silentExit(exitNotRunning)
	}
	return nil
}

func printStatus(out io.Writer, o *statusOptions, st *control.Status) error {
	if o.json {
		return json.NewEncoder(out).Encode(st)
	}
	_, err := fmt.Fprintln(out, withLog(describe(st, time.Now()), st))
	return err
}

// withLog adds where the log goes to a status line that has a parenthesis:
// "lighttpd is running (pid 4242, ..., log /run/respawner/lighttpd.log)".
// list leaves it out, to keep its lines short.
func withLog(line string, st *control.Status) string {
	if st.Log == "" || !strings.HasSuffix(line, ")") {
		return line
	}
	return line[:len(line)-1] + ", log " + st.Log + ")"
}

// describe is the line a person reads, e.g.
// "lighttpd is running (pid 4242, up 3m12s, restarts 1)".
func describe(st *control.Status, now time.Time) string {
	if st.State == "running" {
		parts := []string{fmt.Sprintf("pid %d", st.PID)}
		if !st.Started.IsZero() {
			parts = append(parts, "up "+now.Sub(st.Started).Truncate(time.Second).String())
		}
		parts = append(parts, fmt.Sprintf("restarts %d", st.Restarts))
		if st.User != "" {
			parts = append(parts, "user "+st.User)
		}
		switch st.Health {
		case "healthy":
			parts = append(parts, "health ok")
		case "unhealthy":
			parts = append(parts, "health failing")
		}
		if st.StatusText != "" {
			parts = append(parts, strconv.Quote(st.StatusText))
		}
		return fmt.Sprintf("%s is running (%s)", st.Name, strings.Join(parts, ", "))
	}
	if st.State == "starting" && st.PID != 0 {
		// --ready notify: the program runs and has not said READY=1.
		parts := []string{fmt.Sprintf("pid %d", st.PID)}
		if !st.Started.IsZero() {
			parts = append(parts, "up "+now.Sub(st.Started).Truncate(time.Second).String())
		}
		parts = append(parts, "waiting for READY=1", fmt.Sprintf("restarts %d", st.Restarts))
		if st.StatusText != "" {
			parts = append(parts, strconv.Quote(st.StatusText))
		}
		return fmt.Sprintf("%s is starting (%s)", st.Name, strings.Join(parts, ", "))
	}
	if st.State == control.StateOrphaned && st.Reason != "" {
		return st.Name + ": " + st.Reason
	}
	if st.RespawnerPID == 0 {
		return st.Name + " is not running"
	}
	parts := []string{st.State}
	if st.Reason != "" { // held by a hook, or why the last run failed
		parts[0] += ": " + st.Reason
	}
	if !st.NextRestart.IsZero() {
		parts = append(parts, "restart in "+max(st.NextRestart.Sub(now), 0).Round(100*time.Millisecond).String())
	}
	parts = append(parts, fmt.Sprintf("restarts %d", st.Restarts))
	if e := st.LastExit; e != nil {
		switch {
		case e.Signal != "":
			parts = append(parts, "last exit: killed by "+e.Signal)
		case e.Code != nil:
			parts = append(parts, fmt.Sprintf("last exit: status %d", *e.Code))
		}
	}
	return fmt.Sprintf("%s is not running (%s)", st.Name, strings.Join(parts, ", "))
}

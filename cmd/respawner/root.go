package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// run executes the command line args and returns the process exit code.
func run(args []string) int {
	return runWith(args, os.Stdout, os.Stderr)
}

func runWith(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(args)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	// Whatever fails before a command runs (unknown command, wrong number of
	// arguments, bad flag) is bad usage: exit 2.
	ran := false
	root.PersistentPreRun = func(*cobra.Command, []string) { ran = true }
	err := root.Execute()
	code := codeOf(err)
	if err != nil && !ran {
		code = exitUsage
	}
	var ce *codeError
	if err != nil && !(errors.As(err, &ce) && ce.err == nil) {
		fmt.Fprintln(stderr, "respawner: "+err.Error())
	}
	return int(code)
}

// buildOnlyCommands are hidden commands of build tools, compiled in only with
// a build tag (man.go: -tags mangen), so that the shipped binary does not
// carry them.
var buildOnlyCommands []func() *cobra.Command

// newRootCmd builds the command tree for the command line args (after the
// binary's name), which a flag error may quote back rearranged.
func newRootCmd(args []string) *cobra.Command {
	root := &cobra.Command{
		Use:   "respawner",
		Short: "Start a program, watch it, restart it when it dies",
		Long: `respawner is a process supervisor for Linux. It starts a program, watches it
through a pidfd, and restarts it after a delay (5s by default) when it dies
abnormally. It also follows servers that daemonize themselves, such as lighttpd.

Exit codes: 0 success, 1 failure, 2 bad usage, 3 not running, 4 unknown state.`,
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       version,
	}
	// Made only for --version, not at every start (status, a Tab).
	cobra.AddTemplateFunc("versionLine", versionLine)
	root.SetVersionTemplate("{{versionLine}}\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		if c.Name() == "start" {
			if hint := startFlagHint(c, args, err); hint != "" {
				return usageErrorf("%v; %s", err, hint)
			}
		}
		return usageErrorf("%v (see '%s --help')", err, c.CommandPath())
	})
	root.AddCommand(newStartCmd(), newStopCmd(), newRestartCmd(), newSignalCmd(), newStatusCmd(), newLogsCmd(), newListCmd(), newPluginsCmd(), newVersionCmd())
	for _, c := range buildOnlyCommands {
		root.AddCommand(c())
	}
	return root
}

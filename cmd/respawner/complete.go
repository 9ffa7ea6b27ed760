package main

import (
	"slices"
	"strings"
	"syscall"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/internal/machine"
	"github.com/spf13/cobra"
)

// Shell completion that knows the system: the instances in the runtime dir,
// the plugins in the search path, the signal names. Each function only reads
// directories (it never asks an instance over its socket, never starts a
// plugin), so that a Tab costs a few syscalls and cannot hang on a stuck
// instance. Cobra calls them through its hidden __complete command, which
// the scripts of `respawner completion bash|zsh|fish` run.

// completeInstances completes the first positional argument of a command
// that takes NAME|PROGRAM (stop, status, restart, signal, logs) with the
// names of the instances in the runtime dir: those whose respawner runs, and
// those whose respawner died while their program runs on (start adopts
// them). The runtime dir is the command's --runtime-dir as given on the
// line, else $RESPAWNER_RUNTIME_DIR or the default, as the commands find it.
func completeInstances(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) != 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return instanceNames(cmd, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeInstanceSignal completes `respawner signal NAME SIG`: instance
// names for the first argument, signal names for the second.
func completeInstanceSignal(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return completeInstances(cmd, args, toComplete)
	case 1:
		return completeSignals(cmd, nil, toComplete)
	}
	return nil, cobra.ShellCompDirectiveNoFileComp
}

// completeSignals completes a signal name, whatever the position (as the
// value of a flag such as --stop-signal, args is ignored): HUP, INT, ...,
// with the description of each for the shells that show one (zsh, fish).
// The bare names, as kill -s and systemctl kill --signal take them; SIGHUP
// and the like once the word typed starts with SIG.
func completeSignals(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	prefix := ""
	if strings.HasPrefix(toComplete, "SIG") {
		prefix = "SIG"
	}
	var out []string
	for _, s := range completedSignals {
		name := prefix + strings.TrimPrefix(machine.SignalName(s), "SIG")
		if strings.HasPrefix(name, toComplete) {
			out = append(out, cobra.CompletionWithDesc(name, s.String()))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completedSignals are the signals offered, those an operator sends to a
// program first (kill's list would begin with ILL, TRAP...), then the rest
// of the standard ones. Shells that sort (bash, zsh) show them in order of
// name all the same; fish keeps this order.
var completedSignals = []syscall.Signal{
	syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
	syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCONT, syscall.SIGWINCH, syscall.SIGABRT, syscall.SIGALRM,
	syscall.SIGPIPE, syscall.SIGTSTP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPWR, syscall.SIGIO,
	syscall.SIGPROF, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGURG, syscall.SIGCHLD,
	syscall.SIGSYS, syscall.SIGTRAP, syscall.SIGILL, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGSEGV,
}

// completePlugins completes --plugin with the plugin names that `respawner
// plugins` finds, in the same search path (with --plugin-dir when it is
// already on the line), by the names of the binaries alone: no plugin is
// started to ask. Once a name is followed by ':' (its options), there is
// nothing to offer.
func completePlugins(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, ":") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	pluginDir := ""
	if f := cmd.Flags().Lookup("plugin-dir"); f != nil {
		pluginDir = f.Value.String()
	}
	var out []string
	for _, n := range hookwire.SortedNames(hookwire.Available(hookwire.SearchDirs(pluginDir, exeDir()))) {
		if strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeDirs completes a flag whose value is a directory.
func completeDirs(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return nil, cobra.ShellCompDirectiveFilterDirs
}

// instanceNames lists the instances in cmd's runtime dir whose names begin
// with prefix, sorted. Stale files (a respawner that ended without its
// program running on) name no instance.
func instanceNames(cmd *cobra.Command, prefix string) []string {
	dir := control.DefaultDir()
	if f := cmd.Flags().Lookup("runtime-dir"); f != nil {
		dir = f.Value.String()
	}
	d, err := control.OpenDir(dir)
	if err != nil {
		return nil // none yet, or not the caller's: nothing to offer
	}
	defer d.Close()
	var names []string
	for _, n := range d.Names() {
		if !strings.HasPrefix(n, prefix) {
			continue
		}
		if _, live := d.Live(n); live {
			names = append(names, n)
		} else if _, orphan := d.ReadState(n); orphan { // Orphan would check the lock again
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/respawner/respawner/internal/hookwire"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
)

func newPluginsCmd() *cobra.Command {
	var pluginDir dirValue
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plugins [flags]",
		Short: "List the hook plugins respawner can find, with version and capabilities",
		Long: `List the hook plugins respawner can find, with version and capabilities.

A plugin NAME is the binary respawner-plugin-NAME, looked up in --plugin-dir,
then $RESPAWNER_PLUGIN_PATH (colon-separated), then the directory of the
respawner binary, then ../lib/respawner/plugins from there (make install),
then /usr/lib/respawner/plugins. Each is started briefly to
ask what it can do: events (it takes notifications), veto (it answers
restart-pending), probe (it offers a health probe).

A plugin that cannot be used (unsafe permissions, another hook protocol, no
handshake) is listed as unusable, and why is printed on stderr. Exit codes:
0 every plugin found is usable (or none was found), 1 at least one is not.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dirs := hookwire.SearchDirs(string(pluginDir), exeDir())
			found := hookwire.Available(dirs)
			names := hookwire.SortedNames(found)
			descs := []hookwire.PluginInfo{}
			if len(names) > 0 {
				host, err := hostPath()
				if err != nil {
					return err
				}
				paths := make([]string, 0, len(names))
				for _, n := range names {
					paths = append(paths, found[n])
				}
				out, err := describePlugins(host, paths)
				if err != nil {
					return err
				}
				dec := json.NewDecoder(out)
				for i := 0; dec.More() && i < len(names); i++ {
					var d hookwire.PluginInfo
					if err := dec.Decode(&d); err != nil {
						return fmt.Errorf("%s describe: %w", host, err)
					}
					d.Name = names[i]
					descs = append(descs, d)
				}
			}
			if err := printPlugins(c.OutOrStdout(), descs, dirs, asJSON); err != nil {
				return err
			}
			// The others are listed all the same; the exit code and
			// stderr say that not everything found can be used.
			unusable := 0
			for _, d := range descs {
				if d.Error != "" {
					fmt.Fprintf(c.ErrOrStderr(), "respawner: plugin %s: %s\n", d.Name, d.Error)
					unusable++
				}
			}
			if unusable > 0 {
				return silentExit(exitFailure)
			}
			return nil
		},
	}
	cmd.Flags().Var(&pluginDir, "plugin-dir", "`DIR` searched first for plugin binaries (relative to the current directory)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	cmd.RegisterFlagCompletionFunc("plugin-dir", completeDirs)
	return cmd
}

// printPlugins prints the table, or with asJSON the array.
func printPlugins(out io.Writer, descs []hookwire.PluginInfo, dirs []string, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(out).Encode(descs)
	}
	if len(descs) == 0 {
		_, err := fmt.Fprintf(out, "no plugins in %s\n", strings.Join(dirs, ", "))
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tCAPABILITIES\tPATH")
	for _, d := range descs {
		caps := capabilities(d)
		if d.Error != "" {
			caps = "unusable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, orDash(d.Version), caps, d.Path)
	}
	return tw.Flush()
}

// describePlugins runs `respawner-hookhost describe` on paths and returns
// what it printed. The plugins' socket directories go into a directory of
// ours, removed once the host has exited, however it ended. The host runs in
// a process group of its own, so that a Ctrl-C reaches us alone: we pass the
// signal on to the host (which kills the plugin it is asking and stops), wait
// for it, remove the directory, and only then die of the signal, as the
// default action would have had us do at once. Were the host and its plugin
// in our group, the plugin could die of the Ctrl-C and the host report it
// before the signal reached us here, and we would list it as unusable
// instead of dying of the signal (seen in CI).
func describePlugins(host string, paths []string) (*bytes.Buffer, error) {
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	sockDir, err := os.MkdirTemp("", "respawner-hooks-")
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(host, append([]string{"describe", "-socket-dir", sockDir, "--"}, paths...)...)
	cmd.Stdout = &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(sockDir)
		return nil, fmt.Errorf("%s describe: %w", host, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var caught os.Signal
	var waitErr error
	for waiting := true; waiting; {
		select {
		case caught = <-sigs:
			cmd.Process.Signal(caught)
		case waitErr = <-done:
			waiting = false
		}
	}
	os.RemoveAll(sockDir)
	if sig, ok := caught.(syscall.Signal); ok {
		// To this very thread: kill(getpid()) goes to the thread group's
		// leader, which may be another thread, while this one returns and
		// exits 1 first (seen in a test run). The runtime's handler, no
		// longer wanting it, makes the process die of it before the
		// syscall returns here.
		signal.Reset(sig)
		runtime.LockOSThread()
		unix.Tgkill(unix.Getpid(), unix.Gettid(), sig)
		return nil, fmt.Errorf("plugins: %v", sig)
	}
	if waitErr != nil {
		return nil, fmt.Errorf("%s describe: %w", host, waitErr)
	}
	return &out, nil
}

func capabilities(in hookwire.PluginInfo) string {
	var caps []string
	if in.Notify {
		caps = append(caps, "events")
	}
	if in.Veto {
		caps = append(caps, "veto")
	}
	if in.Probe {
		caps = append(caps, "probe")
	}
	if len(caps) == 0 {
		return "-"
	}
	return strings.Join(caps, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

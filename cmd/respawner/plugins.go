package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"text/tabwriter"

	"github.com/respawner/respawner/internal/hookwire"
	"github.com/spf13/cobra"
)

func newPluginsCmd() *cobra.Command {
	var pluginDir string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "plugins [flags]",
		Short: "List the hook plugins respawner can find, with version and capabilities",
		Long: `List the hook plugins respawner can find, with version and capabilities.

A plugin NAME is the binary respawner-plugin-NAME, looked up in --plugin-dir,
then $RESPAWNER_PLUGIN_PATH (colon-separated), then the directory of the
respawner binary, then /usr/lib/respawner/plugins. Each is started briefly to
ask what it can do: events (it takes notifications), veto (it answers
restart-pending), probe (it offers a health probe).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			dirs := hookwire.SearchDirs(pluginDir, exeDir())
			found := hookwire.Available(dirs)
			names := hookwire.SortedNames(found)
			descs := []hookwire.PluginInfo{}
			if len(names) > 0 {
				host, err := hostPath()
				if err != nil {
					return err
				}
				args := []string{"describe"}
				for _, n := range names {
					args = append(args, found[n])
				}
				var out bytes.Buffer
				cmd := exec.Command(host, args...)
				cmd.Stdout = &out
				if err := cmd.Run(); err != nil {
					return fmt.Errorf("%s describe: %w", host, err)
				}
				dec := json.NewDecoder(&out)
				for i := 0; dec.More() && i < len(names); i++ {
					var d hookwire.PluginInfo
					if err := dec.Decode(&d); err != nil {
						return fmt.Errorf("%s describe: %w", host, err)
					}
					d.Name = names[i]
					descs = append(descs, d)
				}
			}
			if asJSON {
				return json.NewEncoder(c.OutOrStdout()).Encode(descs)
			}
			if len(descs) == 0 {
				fmt.Fprintf(c.OutOrStdout(), "no plugins in %s\n", strings.Join(dirs, ", "))
				return nil
			}
			tw := tabwriter.NewWriter(c.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tVERSION\tCAPABILITIES\tPATH")
			var broken []hookwire.PluginInfo
			for _, d := range descs {
				caps := capabilities(d)
				if d.Error != "" {
					caps = "unusable (below)"
					broken = append(broken, d)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, orDash(d.Version), caps, d.Path)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, d := range broken {
				fmt.Fprintf(c.OutOrStdout(), "%s: %s\n", d.Name, d.Error)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&pluginDir, "plugin-dir", "", "directory searched first for plugin binaries")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON array")
	return cmd
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

//go:build mangen

// The man pages are generated from this very command tree, so they cannot
// drift from the flags: `go run -tags mangen ./cmd/respawner man DIR`
// (make man) writes respawner.1, respawner-start.1, ... into DIR. The
// command and cobra's doc package (with its Markdown renderer, whose tables
// are built at program start) are compiled in only with the tag: the
// respawner that is shipped, started for every Tab and every status, does
// not carry them.

package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"
)

func init() { buildOnlyCommands = append(buildOnlyCommands, newManCmd) }

// runtimeDirDefault is what the man pages say of --runtime-dir's default,
// which `--help` shows for the user who asks.
const runtimeDirDefault = "/run/respawner for root, else $XDG_RUNTIME_DIR/respawner, else /tmp/respawner-UID"

// mdEscape escapes the characters that Markdown would read as emphasis,
// code, links, HTML, headings or tables.
var mdEscape = strings.NewReplacer(`\`, `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", `\<`, ">", `\>`, "#", `\#`, "|", `\|`).Replace

func newManCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "man DIR",
		Short:  "Write the man pages of every command into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			root := c.Root()
			// What Execute adds on its own: --version, the completion
			// commands (each gets its page).
			root.InitDefaultVersionFlag()
			root.InitDefaultCompletionCmd()
			root.DisableAutoGenTag = true
			// cobra's doc package reads the texts as Markdown, in which
			// NOTIFY_SOCKET, WATCHDOG_* would turn to emphasis: they are
			// plain text, so every character Markdown would take is escaped.
			var walk func(*cobra.Command)
			walk = func(c *cobra.Command) {
				c.Short, c.Long = mdEscape(c.Short), mdEscape(c.Long)
				c.Flags().VisitAll(func(f *pflag.Flag) {
					if f.Name == "runtime-dir" {
						// --help shows the default of the user who asks.
						f.DefValue = "/run/respawner"
						f.Usage += "; the default is " + runtimeDirDefault
					}
					// `DIR` names the value in --help; the page shows
					// the default instead, so the quotes go.
					_, usage := pflag.UnquoteUsage(f)
					f.Usage = mdEscape(usage)
				})
				for _, s := range c.Commands() {
					walk(s)
				}
			}
			walk(root)
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			v, _ := buildVersion()
			// The date is SOURCE_DATE_EPOCH's when set (the Makefile sets
			// the commit's), for pages that are the same at every build.
			hdr := &doc.GenManHeader{Source: "respawner " + v, Manual: "respawner manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		},
	}
}

package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit are set by the Makefile (and so in the Debian package):
// -ldflags "-X main.version=$(git describe) -X main.commit=$(git rev-parse HEAD)".
// A binary built without them (go build, go install) takes what the Go
// toolchain recorded: the module version of go install PATH@VERSION, the
// commit of a go build in a git checkout.
var (
	version = "dev"
	commit  = ""
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of respawner, its commit and Go version",
		Long: `Print the version of respawner (git describe of the source it was built from),
the commit, and the Go version and platform it was built with, on one line:

  respawner v0.1.0-3-g1a2b3c4 (commit 1a2b3c4d..., go1.26.8, linux/amd64)

respawner --version prints the same line.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			fmt.Fprintln(c.OutOrStdout(), versionLine())
			return nil
		},
	}
}

// versionLine is what `respawner version` and `respawner --version` print.
func versionLine() string {
	v, c := buildVersion()
	return fmt.Sprintf("respawner %s (commit %s, %s, %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildVersion returns the version and commit respawner was built from:
// those set with -ldflags, else those the Go toolchain recorded, else "dev"
// and "unknown".
func buildVersion() (v, c string) {
	v, c = version, commit
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if c == "" {
			c = "unknown"
		}
		return v, c
	}
	if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if c == "" {
		var rev, modified string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		c = rev
		if c != "" && modified == "true" {
			c += "-dirty"
		}
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

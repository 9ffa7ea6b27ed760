// Command respawner starts a program, watches it and restarts it when it dies.
package main

import (
	"os"

	"github.com/respawner/respawner/internal/runenv"
)

func main() {
	// respawner re-executed as the exec shim of a program's start (see
	// internal/runenv) does only that, before anything else runs.
	if runenv.IsShim(os.Args) {
		runenv.Shim(os.Args)
	}
	os.Exit(run(os.Args[1:]))
}

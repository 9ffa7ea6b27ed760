// Package e2e builds what an end-to-end test of a plugin runs: respawner,
// respawner-hookhost and the plugins under test, into a temporary directory
// laid out as respawner expects (the host beside respawner, the plugins in a
// directory of their own, mode 0755). For tests only.
package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// root is the module's root, from this file's place in it.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// Build builds respawner and respawner-hookhost into dir, and each plugin
// (name -> package directory relative to the module root, e.g.
// "notify-webhook": "plugins/notify-webhook") into plugins as
// respawner-plugin-NAME, and makes run, a runtime dir (mode 0700) for
// RESPAWNER_RUNTIME_DIR. It skips the test with -short, or where there is
// no go command.
func Build(t *testing.T, plugs map[string]string) (dir, plugins, run string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds respawner and plugins")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	dir = t.TempDir()
	plugins = filepath.Join(dir, "plugins")
	builds := [][2]string{
		{filepath.Join(dir, "respawner"), "cmd/respawner"},
		{filepath.Join(dir, "respawner-hookhost"), "cmd/respawner-hookhost"},
	}
	for name, pkg := range plugs {
		builds = append(builds, [2]string{filepath.Join(plugins, "respawner-plugin-"+name), pkg})
	}
	for _, b := range builds {
		cmd := exec.CommandContext(t.Context(), gobin, "build", "-o", b[0], "./"+b[1])
		cmd.Dir = root()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	run = filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir, plugins, run
}

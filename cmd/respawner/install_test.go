package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// make install into an empty tree: it creates every directory it needs
// (lib/respawner/plugins included), and the installed respawner finds the
// installed host and plugins from its own place, ../lib/respawner/plugins.
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds every binary")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	root := t.TempDir()
	dest := filepath.Join(root, "dest")
	for range 2 { // the second time over what is there
		cmd := exec.Command("make", "-C", "../..", "install", "DESTDIR="+dest, "PREFIX=/usr/local", "BIN="+filepath.Join(root, "bin"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make install: %v\n%s", err, out)
		}
	}
	prefix := filepath.Join(dest, "usr/local")
	for _, f := range []string{"bin/respawner", "bin/respawner-hookhost", "lib/respawner/plugins/respawner-plugin-healthcheck-http", "lib/respawner/plugins/respawner-plugin-notify-webhook"} {
		if fi, err := os.Stat(filepath.Join(prefix, f)); err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("%s: %v, %v; want mode 0755", f, fi.Mode(), err)
		}
	}
	t.Setenv("RESPAWNER_PLUGIN_PATH", "")
	r := runCmd(t, exec.Command(filepath.Join(prefix, "bin/respawner"), "plugins"), runtimeDir(t), 0)
	if r.code != 0 {
		t.Fatalf("installed respawner plugins: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, p := range []string{"healthcheck-http", "notify-webhook"} {
		if want := " " + filepath.Join(prefix, "lib/respawner/plugins/respawner-plugin-"+p) + "\n"; !strings.Contains(r.stdout, want) {
			t.Errorf("installed respawner plugins does not list %s:\n%s", want, r.stdout)
		}
	}

	// The shell completions, each where its shell looks for a package's,
	// each the script of `respawner completion SHELL`.
	for f, mark := range map[string]string{
		"share/bash-completion/completions/respawner":    "__start_respawner",
		"share/zsh/site-functions/_respawner":            "#compdef respawner",
		"share/fish/vendor_completions.d/respawner.fish": "complete -c respawner",
	} {
		b, err := os.ReadFile(filepath.Join(prefix, f))
		if err != nil {
			t.Errorf("completion %s: %v", f, err)
			continue
		}
		if fi, _ := os.Stat(filepath.Join(prefix, f)); fi.Mode().Perm() != 0o644 {
			t.Errorf("completion %s: mode %v, want 0644", f, fi.Mode())
		}
		if !strings.Contains(string(b), mark) {
			t.Errorf("completion %s lacks %q", f, mark)
		}
	}
	// The man pages, one a command, generated from the commands.
	for _, page := range []string{"respawner.1", "respawner-start.1", "respawner-restart.1", "respawner-logs.1"} {
		b, err := os.ReadFile(filepath.Join(prefix, "share/man/man1", page))
		if err != nil || !strings.Contains(string(b), ".TH ") {
			t.Errorf("man page %s: %v, %d bytes", page, err, len(b))
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(bash, "-n", filepath.Join(prefix, "share/bash-completion/completions/respawner")).CombinedOutput(); err != nil {
			t.Errorf("bash -n of the bash completion: %v\n%s", err, out)
		}
	}

	// A package may keep the host out of PATH, beside the plugins in
	// PREFIX/lib/respawner: respawner finds it there too.
	if err := os.Rename(filepath.Join(prefix, "bin/respawner-hookhost"), filepath.Join(prefix, "lib/respawner/respawner-hookhost")); err != nil {
		t.Fatal(err)
	}
	r = runCmd(t, exec.Command(filepath.Join(prefix, "bin/respawner"), "plugins"), runtimeDir(t), 0)
	if r.code != 0 || !strings.Contains(r.stdout, "healthcheck-http") {
		t.Fatalf("respawner plugins with the host in lib/respawner: exit %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

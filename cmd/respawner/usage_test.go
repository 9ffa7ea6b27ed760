package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDurationFlag: the CLI's duration flags read values as
// hookspec.ParseDuration does (a bare decimal is seconds), and print zero as
// "0".
func TestDurationFlag(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		bad  bool
	}{
		{"5", 5 * time.Second, false},
		{"0", 0, false},
		{"0.5", 500 * time.Millisecond, false},
		{"1.5s", 1500 * time.Millisecond, false},
		{"200ms", 200 * time.Millisecond, false},
		{"1m30s", 90 * time.Second, false},
		{"-1s", 0, true},
		{"-1", 0, true},
		{"1e309", 0, true},
		{"NaN", 0, true},
		{"five", 0, true},
		{"", 0, true},
		{"5x", 0, true},
	}
	for _, tt := range tests {
		var d durationValue
		err := d.Set(tt.in)
		if (err != nil) != tt.bad || time.Duration(d) != tt.want {
			t.Errorf("Set(%q) = %v, %v; want %v, bad=%v", tt.in, time.Duration(d), err, tt.want, tt.bad)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("Set(%q): error %q does not name the value", tt.in, err)
		}
	}
	if d := durationValue(0); d.String() != "0" {
		t.Errorf("zero prints %q", d.String())
	}
}

// TestFractionalSeconds: -t 0.5 and a plugin's timeout=0.5 are accepted and
// read as 500ms, by the real binary: the respawn is scheduled 500ms out, and
// a plugin stuck for 5s is given up on after its 500ms deadline.
func TestFractionalSeconds(t *testing.T) {
	in := startRespawner(t, hookArgs("--plugin", "testhook:decision=deny,sleep=5s,timeout=0.5", "-t", "0.5", "-n", "1", "/bin/sh", "--", "-c", "exit 3")...)
	in.waitFor("exited", 10*time.Second)
	if l := in.waitFor("respawn scheduled", 5*time.Second); l.str("delay") != "500ms" {
		t.Errorf("respawn scheduled with delay %v, want 500ms", l["delay"])
	}
	died := time.Now()
	in.waitFor("restart-pending failed; counted as allow", 5*time.Second)
	in.waitFor("restarted", 5*time.Second)
	if d := time.Since(died); d > 3*time.Second {
		t.Fatalf("restart %s after the exit: the hung plugin held it past its 0.5s deadline", d)
	}
	if code := in.wait(15 * time.Second); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
}

func TestCodeList(t *testing.T) {
	var c codeListValue
	if err := c.Set("0, 7,255"); err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{0: true, 7: true, 255: true, 1: false, 256: false, -1: false} {
		if c.set.Has(code) != want {
			t.Errorf("Has(%d) = %v, want %v", code, !want, want)
		}
	}
	for _, bad := range []string{"256", "-1", "a", "1,,2", ""} {
		if err := c.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

// Bad input is one line on stderr, the documented exit code, and no process
// left behind (checked through the test's own children: none may remain).
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	noexec := filepath.Join(dir, "noexec")
	os.WriteFile(noexec, []byte("#!/bin/sh\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing program", []string{"start", "-D"}, 2, "missing PROGRAM"},
		{"unknown flag", []string{"start", "-D", "--bogus", "/bin/true"}, 2, "unknown flag: --bogus"},
		{"bad -t", []string{"start", "-D", "-t", "soon", "/bin/true"}, 2, "-t, --respawn-timeout"},
		{"negative -t", []string{"start", "-D", "-t", "-5s", "/bin/true"}, 2, `"-5s" is negative`},
		{"negative bare -t", []string{"start", "-D", "-t", "-1", "/bin/true"}, 2, `"-1" is negative`},
		{"overflowing -t", []string{"start", "-D", "-t", "1e309", "/bin/true"}, 2, `"1e309" is too long`},
		{"junk -t", []string{"start", "-D", "-t", "5x", "/bin/true"}, 2, `"5x" is not a duration`},
		{"junk plugin timeout", []string{"start", "-D", "--plugin", "x:timeout=5x", "/bin/true"}, 2, `timeout "5x"`},
		{"negative plugin timeout", []string{"start", "-D", "--plugin", "x:timeout=-1", "/bin/true"}, 2, `timeout "-1"`},
		{"plugin without a name", []string{"start", "--plugin", ":url=http://x/", "/bin/true"}, 2, "empty plugin name"},
		{"plugin option without a value", []string{"start", "--plugin", "healthcheck-http:interval", "/bin/true"}, 2, `option "interval" has no value`},
		{"plugin given twice", []string{"start", "--plugin", "healthcheck-http", "--plugin", "healthcheck-http:interval=1", "/bin/true"}, 2, "given twice"},
		{"bad -n", []string{"start", "-D", "-n", "-1", "/bin/true"}, 2, "respawn limit"},
		{"bad -e", []string{"start", "-D", "-e", "0,300", "/bin/true"}, 2, "not an exit code"},
		{"bad policy", []string{"start", "-D", "--restart", "sometimes", "/bin/true"}, 2, "on-failure, always or never"},
		{"cap below -t", []string{"start", "-D", "-t", "5", "--respawn-max-delay", "1s", "/bin/true"}, 2, "at least the respawn timeout"},
		{"window without limit", []string{"start", "-D", "--respawn-window", "1m", "/bin/true"}, 2, "needs a limit"},
		{"bad name", []string{"start", "-D", "--name", "../x", "/bin/true"}, 2, "invalid --name"},
		{"no such program", []string{"start", "-D", "no-such-program-xyz"}, 1, "not found in $PATH"},
		{"no such path", []string{"start", "-D", filepath.Join(dir, "missing")}, 1, "no such file"},
		{"directory", []string{"start", "-D", dir}, 1, "is a directory"},
		{"not executable", []string{"start", "-D", noexec}, 1, "not executable"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(respawnerBin, tt.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			msg := stderr.String()
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, msg)
			}
			if strings.Count(msg, "\n") != 1 || !strings.HasPrefix(msg, "respawner: ") || !strings.Contains(msg, tt.want) {
				t.Errorf("stderr %q: want one line starting with \"respawner: \" that mentions %q", msg, tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
		})
	}
}

// A newcomer's mistakes are answered with the line to type instead: a
// pidfile given to -p with a space (so taken for PROGRAM), program arguments
// without '--'. One line each, exit 2 as bad usage, nothing started; and
// never the advice to make a pidfile executable.
func TestNewcomerHints(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "lighttpd.pid") // there, not executable
	os.WriteFile(pidfile, []byte("4242\n"), 0o644)
	conf := filepath.Join(dir, "lighttpd.conf")
	os.WriteFile(conf, []byte("server.port = 80\n"), 0o644)
	missing := filepath.Join(dir, "run", "lighttpd.pid")
	tests := []struct {
		name string
		args []string
		code int
		want string // the whole message after "respawner: "
	}{
		{"-p space pidfile", []string{"start", "-p", pidfile, "/bin/sleep"}, 2,
			"-p takes its path with '=': -p=" + pidfile},
		{"-p space missing pidfile", []string{"start", "-D", "-p", missing, "sleep", "--", "1000"}, 2,
			"-p takes its path with '=': -p=" + missing},
		{"--pidfile space pidfile", []string{"start", "--pidfile", missing, "/bin/sleep"}, 2,
			"-p takes its path with '=': -p=" + missing},
		{"-p space pidfile alone", []string{"start", "-p", missing}, 2,
			"-p takes its path with '=': -p=" + missing},
		{"-p space other file", []string{"start", "-p", conf, "/bin/sleep"}, 2,
			"-p takes its path with '=': -p=" + conf},
		// '--' right after PROGRAM: the first word is meant as the program.
		{"-p then a missing program", []string{"start", "-D", "-p", filepath.Join(dir, "server"), "--", "--port", "80"}, 1,
			filepath.Join(dir, "server") + ": no such file"},
		{"a pidfile as PROGRAM", []string{"start", "-D", pidfile}, 1,
			pidfile + ": not executable, and by its name a pidfile: give the program to run as PROGRAM, and a pidfile with -p=" + pidfile},
		{"program flag without --", []string{"start", "lighttpd", "-f", conf}, 2,
			"unknown shorthand flag: 'f' in -f; program arguments go after '--': respawner start lighttpd -- -f " + conf},
		{"long program flag without --", []string{"start", "-D", "./server", "--port=8080", "-v"}, 2,
			"unknown flag: --port; program arguments go after '--': respawner start -D ./server -- --port=8080 -v"},
		{"respawner's flags after PROGRAM move before it", []string{"start", "-t", "5", "lighttpd", "--name", "www", "-D", "-f", conf, "-D"}, 2,
			"unknown shorthand flag: 'f' in -f; program arguments go after '--': respawner start -t 5 --name www -D lighttpd -- -f " + conf + " -D"},
		{"arguments between PROGRAM and the flag", []string{"start", "/bin/sh", "my script.sh", "-x"}, 2,
			`unknown shorthand flag: 'x' in -x; program arguments go after '--': respawner start /bin/sh -- 'my script.sh' -x`},
		{"both mistakes", []string{"start", "-p", missing, "lighttpd", "-f", conf}, 2,
			"unknown shorthand flag: 'f' in -f; -p takes its path with '=', and program arguments go after '--': respawner start -p=" + missing + " lighttpd -- -f " + conf},
		{"both mistakes, -p in a cluster", []string{"start", "-Dp", missing, "lighttpd", "-f", conf}, 2,
			"unknown shorthand flag: 'f' in -f; -p takes its path with '=', and program arguments go after '--': respawner start -Dp=" + missing + " lighttpd -- -f " + conf},
		{"bare -p before the program", []string{"start", "-p", "lighttpd", "-f", conf}, 2,
			"unknown shorthand flag: 'f' in -f; program arguments go after '--': respawner start -p lighttpd -- -f " + conf},
		// A flag of respawner's misspelt, before PROGRAM: no '--' advice.
		{"unknown flag before PROGRAM", []string{"start", "--foregroud", "lighttpd"}, 2,
			"unknown flag: --foregroud (see 'respawner start --help')"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := respawnerWithin(t, runtimeDir(t), 10*time.Second, tt.args...)
			if r.code != tt.code || r.stderr != "respawner: "+tt.want+"\n" || r.stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant exit %d, stderr:\nrespawner: %s", r.code, r.stdout, r.stderr, tt.code, tt.want)
			}
			if strings.Contains(r.stderr, "chmod") {
				t.Errorf("advice to make a pidfile executable: %s", r.stderr)
			}
		})
	}
}

// shellJoin quotes what a shell would split or expand, and only that.
func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"respawner", "-f", "/etc/a b.conf", "it's", "", "$HOME", "--x=1,2", "a*"})
	want := `respawner -f '/etc/a b.conf' 'it'\''s' '' '$HOME' --x=1,2 'a*'`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

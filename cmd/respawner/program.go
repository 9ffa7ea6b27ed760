package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// resolveProgram finds PROGRAM as the shell would (a path when it contains a
// slash, else the first match in $PATH) and checks that it can be executed,
// so that a typo is one clear error instead of a restart loop of exec failures.
func resolveProgram(prog string) (string, error) {
	if prog == "" {
		return "", usageErrorf("PROGRAM is empty")
	}
	if strings.Contains(prog, "/") {
		abs, err := filepath.Abs(prog)
		if err != nil {
			return "", fmt.Errorf("%s: %w", prog, err)
		}
		return abs, checkExecutable(prog, abs)
	}
	var firstErr error
	for dir := range strings.SplitSeq(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, prog)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		abs, _ := filepath.Abs(p)
		err := checkExecutable(prog, abs)
		if err == nil {
			return abs, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("%s: program not found in $PATH; give a path such as ./%s or /usr/sbin/%s", prog, prog, prog)
}

func checkExecutable(prog, path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s: no such file", prog)
	case err != nil:
		return fmt.Errorf("%s: %w", prog, err)
	case fi.IsDir():
		return fmt.Errorf("%s: is a directory, not a program", prog)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s: not a regular file", prog)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS); err != nil {
		if strings.HasSuffix(path, ".pid") {
			// Making a pidfile executable is never the fix.
			return fmt.Errorf("%s: not executable, and by its name a pidfile: give the program to run as PROGRAM, and a pidfile with -p=%s", prog, prog)
		}
		return fmt.Errorf("%s: not executable (chmod +x %s)", prog, path)
	}
	return nil
}

// nameRE is compiled on first use: at start-up it cost every run of the
// binary 0.13 ms (the {0,63} unrolls into a large program), the exec shim's
// included, which never checks a name.
var nameRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^[A-Za-z0-9_@][A-Za-z0-9_.@+-]{0,63}$`)
})

// checkName keeps instance names usable as file names in the runtime dir.
func checkName(name string) error {
	if !nameRE().MatchString(name) {
		return usageErrorf("invalid --name %q: use up to 64 letters, digits and . _ @ + - (not starting with . or -)", name)
	}
	return nil
}

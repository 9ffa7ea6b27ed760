package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"github.com/respawner/respawner/internal/loop"
	"github.com/respawner/respawner/internal/runenv"
)

// runEnvOptions are the start flags that set up each run of the program:
// its user, directory, umask, limits and environment.
type runEnvOptions struct {
	user     string
	group    string
	chdir    string
	umask    string
	env      []string
	envFiles []string
	clearEnv bool
	limits   []string
}

// runEnv is what the flags resolve to, for loop.Options.
type runEnv struct {
	attrs runenv.Attrs
	env   []string // the base environment, --user's variables included
	files []runenv.EnvFile
	set   []string
}

func (r *runEnv) apply(o *loop.Options) {
	o.Env, o.EnvFiles, o.SetEnv, o.Attrs = r.env, r.files, r.set, r.attrs
}

// resolve checks every flag and looks up what they name, so that a mistake
// is a one-line usage error (exit 2) at start, never a restart loop.
func (f *runEnvOptions) resolve() (*runEnv, error) {
	r := &runEnv{}
	if f.user != "" || f.group != "" {
		flag := "--user " + f.user
		if f.user == "" {
			flag = "--group " + f.group
		}
		if uid := os.Geteuid(); uid != 0 {
			return nil, usageErrorf("%s: only root can run the program as another user or group, and respawner runs as uid %d: start it as root, or drop the flag", flag, uid)
		}
		u, err := runenv.LookupUser(f.user, f.group)
		if err != nil {
			return nil, usageErrorf("%v", err)
		}
		r.attrs.User = u
	}
	if f.chdir != "" {
		dir, err := filepath.Abs(f.chdir)
		if err != nil {
			return nil, usageErrorf("--chdir %s: %v", f.chdir, err)
		}
		fi, err := os.Stat(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
			return nil, usageErrorf("--chdir %s: no such directory", f.chdir)
		case err != nil:
			return nil, usageErrorf("--chdir %s: %v", f.chdir, errors.Unwrap(err))
		case !fi.IsDir():
			return nil, usageErrorf("--chdir %s: not a directory", f.chdir)
		}
		r.attrs.Dir = dir
	}
	if f.umask != "" {
		m, err := runenv.ParseUmask(f.umask)
		if err != nil {
			return nil, usageErrorf("invalid --umask: %v", err)
		}
		r.attrs.Umask, r.attrs.SetUmask = m, true
	}
	seen := map[string]bool{}
	for _, s := range f.limits {
		l, err := runenv.ParseLimit(s)
		if err == nil {
			err = runenv.CheckLimit(l)
		}
		if err != nil {
			return nil, usageErrorf("invalid --limit %s: %v", s, err)
		}
		if seen[l.Name] {
			return nil, usageErrorf("--limit %s given twice: give SOFT:HARD in one", l.Name)
		}
		seen[l.Name] = true
		r.attrs.Limits = append(r.attrs.Limits, l)
	}
	for _, kv := range f.env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok || !runenv.ValidEnvName(k) {
			return nil, usageErrorf("invalid --env %q: want KEY=VALUE, KEY made of letters, digits and _ (not starting with a digit)", kv)
		}
		r.set = append(r.set, kv)
	}
	for _, s := range f.envFiles {
		ef, err := runenv.ParseEnvFileFlag(s)
		if err != nil {
			return nil, usageErrorf("invalid --env-file %q: %v", s, err)
		}
		// Read now, so that a missing file or a syntax error is found
		// at start; it is read again at every start of the program.
		if _, err := ef.Read(); err != nil {
			return nil, usageErrorf("--env-file: %v", err)
		}
		r.files = append(r.files, ef)
	}
	r.env = programEnv()
	if f.clearEnv {
		path, ok := runenv.Lookup(r.env, "PATH")
		if !ok {
			path = runenv.DefaultPath
		}
		r.env = []string{"PATH=" + path}
	}
	r.env = runenv.Merge(r.env, r.attrs.User.Env())
	return r, nil
}

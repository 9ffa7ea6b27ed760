package runenv

import (
	"strings"
)

// Environ builds the program's environment at each start: base, then each
// environment file's settings in order, then set, each over what came
// before. base is used as it is when there is nothing else (no copy); the
// files are read again every time, as systemd reads EnvironmentFile= at
// every start. An error names the file (and line) that could not be read.
func Environ(base []string, files []EnvFile, set []string) ([]string, error) {
	if len(files) == 0 && len(set) == 0 {
		return base, nil
	}
	env := base
	for _, f := range files {
		vars, err := f.Read()
		if err != nil {
			return nil, err
		}
		env = Merge(env, vars)
	}
	return Merge(env, set), nil
}

// Merge returns env with each KEY=VALUE of over set: a key already in env
// keeps its place and takes the new value, a new one is appended. env itself
// is not modified.
func Merge(env, over []string) []string {
	if len(over) == 0 {
		return env
	}
	out := make([]string, len(env), len(env)+len(over))
	copy(out, env)
	at := make(map[string]int, len(out)+len(over))
	for i, kv := range out {
		at[envKey(kv)] = i
	}
	for _, kv := range over {
		k := envKey(kv)
		if i, ok := at[k]; ok {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}

// Without returns env less the variables named in names.
func Without(env []string, names ...string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, n := range names {
			if envKey(kv) == n {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// ManagerVars are the variables through which a service manager talks to
// the process it starts (systemd's sd_notify, watchdog and socket
// activation), by exact name: a prefix such as LISTEN_ would also take a
// program's own LISTEN_ADDR or LISTEN_PORT. When respawner has them they
// are respawner's own, never its program's or its plugins'.
var ManagerVars = []string{"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"}

// Lookup returns the value of key in env.
func Lookup(env []string, key string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

// DefaultPath is the PATH of a program started with --clear-env when
// respawner itself has none (systemd's default for services).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

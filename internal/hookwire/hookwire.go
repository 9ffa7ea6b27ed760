// Package hookwire is what respawner's core and its hook host share: the
// messages they exchange over a SOCK_SEQPACKET socketpair (one JSON object per
// packet), the --plugin syntax, and plugin discovery with its safety checks.
//
// The core never links go-plugin or gRPC (they would triple its resident
// memory, see docs/design.md); the host process, respawner-hookhost, does, and
// is started only when --plugin is given.
package hookwire

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Message types.
const (
	TConfig   = "config"   // core → host, first: the plugins to launch
	TReady    = "ready"    // host → core: every plugin launched and configured
	TError    = "error"    // host → core: start-up failed (Error says why)
	TEvent    = "event"    // core → host: a lifecycle notification
	TAsk      = "ask"      // core → host: restart-pending, answered by TVerdict
	TVerdict  = "verdict"  // host → core
	TProbe    = "probe"    // core → host: run plugin Plugin's probe, answered by TProbed
	TProbed   = "probed"   // host → core
	TLog      = "log"      // host → core: one hclog JSON line for the core's log
	TShutdown = "shutdown" // core → host: stop every plugin and exit
)

// Msg is one packet. Only the fields of its type are set.
type Msg struct {
	T       string        `json:"t"`
	ID      uint64        `json:"id,omitempty"`
	Plugins []PluginSpec  `json:"plugins,omitempty"` // config
	Infos   []PluginInfo  `json:"infos,omitempty"`   // ready
	Error   string        `json:"error,omitempty"`   // error
	Event   *Event        `json:"event,omitempty"`   // event, ask
	Verdict *Verdict      `json:"verdict,omitempty"` // verdict
	Plugin  string        `json:"plugin,omitempty"`  // probe, probed
	Probe   *ProbeOutcome `json:"probe,omitempty"`   // probed
	Line    string        `json:"line,omitempty"`    // log
}

// PluginSpec is one --plugin, resolved to a binary.
type PluginSpec struct {
	Name    string              `json:"name"`
	Path    string              `json:"path"`
	Options map[string][]string `json:"options"`
	SHA256  string              `json:"sha256,omitempty"`  // pinned binary hash (hex)
	Timeout time.Duration       `json:"timeout,omitempty"` // deadline of each call
}

// PluginInfo is what a configured plugin reported.
type PluginInfo struct {
	Name    string         `json:"name"`
	Version string         `json:"version"`
	Events  []string       `json:"events,omitempty"`
	Notify  bool           `json:"notify"`
	Veto    bool           `json:"veto"`
	Probe   bool           `json:"probe"`
	Path    string         `json:"path,omitempty"`
	Sched   *ProbeSchedule `json:"sched,omitempty"`
}

// ProbeSchedule is how the core runs a plugin's probe (Kubernetes-style).
type ProbeSchedule struct {
	Interval     time.Duration `json:"interval"`
	Timeout      time.Duration `json:"timeout"`
	InitialDelay time.Duration `json:"initial_delay"`
	Failures     int           `json:"failures"`
	Successes    int           `json:"successes"`
}

// ProbeOutcome is one probe's result.
type ProbeOutcome struct {
	Healthy bool   `json:"healthy"`
	Reason  string `json:"reason,omitempty"`
}

// Event is a lifecycle event as the core describes it.
type Event struct {
	Kind     string        `json:"kind"`
	Instance string        `json:"instance"`
	Program  string        `json:"program"`
	Args     []string      `json:"args"`
	PID      int           `json:"pid,omitempty"`
	Time     time.Time     `json:"time"`
	ExitCode int           `json:"exit_code,omitempty"`
	Signal   string        `json:"signal,omitempty"`
	Uptime   time.Duration `json:"uptime,omitempty"`
	Attempt  int           `json:"attempt,omitempty"`
	Limit    int           `json:"limit,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// Verdict decisions, weakest first.
const (
	Allow  = "allow"
	Delay  = "delay"
	Deny   = "deny"
	GiveUp = "give-up"
)

// Verdict is the combined answer to restart-pending.
type Verdict struct {
	Decision string        `json:"decision"`
	Delay    time.Duration `json:"delay,omitempty"`
	Reason   string        `json:"reason,omitempty"`
}

// DefaultTimeout is a plugin call's deadline unless its option timeout says otherwise.
const DefaultTimeout = 2 * time.Second

// ParseSpec parses NAME or NAME:key=value,key=value. A piece without "="
// continues the previous value (so values may hold commas). The options
// sha256 and timeout are respawner's own and are not passed to the plugin.
func ParseSpec(s string) (PluginSpec, error) {
	name, rest, _ := strings.Cut(s, ":")
	sp := PluginSpec{Name: name, Options: map[string][]string{}, Timeout: DefaultTimeout}
	if err := CheckName(name); err != nil {
		return sp, err
	}
	var last string
	for piece := range strings.SplitSeq(rest, ",") {
		if rest == "" {
			break
		}
		k, v, ok := strings.Cut(piece, "=")
		if !ok {
			if last == "" {
				return sp, fmt.Errorf("--plugin %s: %q is not key=value", name, piece)
			}
			vals := sp.Options[last]
			vals[len(vals)-1] += "," + piece
			continue
		}
		k = strings.TrimSpace(k)
		if k == "" {
			return sp, fmt.Errorf("--plugin %s: empty option name in %q", name, piece)
		}
		switch k {
		case "sha256":
			if b, err := hex.DecodeString(v); err != nil || len(b) != 32 {
				return sp, fmt.Errorf("--plugin %s: sha256 wants 64 hex digits", name)
			}
			sp.SHA256 = strings.ToLower(v)
			last = ""
			continue
		case "timeout":
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return sp, fmt.Errorf("--plugin %s: timeout %q is not a positive duration", name, v)
			}
			sp.Timeout = d
			last = ""
			continue
		}
		sp.Options[k] = append(sp.Options[k], v)
		last = k
	}
	return sp, nil
}

// CheckName keeps plugin names to what makes a safe file name.
func CheckName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\x00") || strings.HasPrefix(name, ".") {
		return fmt.Errorf("--plugin %q: not a plugin name", name)
	}
	return nil
}

// BinaryPrefix starts every plugin binary's name.
const BinaryPrefix = "respawner-plugin-"

// SystemDir is searched last.
const SystemDir = "/usr/lib/respawner/plugins"

// SearchDirs is the plugin search path: --plugin-dir, $RESPAWNER_PLUGIN_PATH,
// the directory of the respawner binary, then SystemDir.
func SearchDirs(pluginDir, exeDir string) []string {
	var dirs []string
	if pluginDir != "" {
		dirs = append(dirs, pluginDir)
	}
	for d := range strings.SplitSeq(os.Getenv("RESPAWNER_PLUGIN_PATH"), ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	if exeDir != "" {
		dirs = append(dirs, exeDir)
	}
	return append(dirs, SystemDir)
}

// ErrNotFound: no binary of that name in the search path.
var ErrNotFound = errors.New("plugin not found")

// Find returns the first respawner-plugin-NAME in dirs, refusing binaries
// that anyone could have replaced.
func Find(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, BinaryPrefix+name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			continue
		}
		return p, CheckSafe(p)
	}
	return "", fmt.Errorf("plugin %s: %w: no %s%s in %s", name, ErrNotFound, BinaryPrefix, name, strings.Join(dirs, ", "))
}

// CheckSafe refuses a plugin binary that is world-writable or sits in a
// world-writable directory: anyone could swap the code respawner runs.
func CheckSafe(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	if fi.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("plugin %s is world-writable: refusing to run it (chmod o-w %s)", path, path)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("plugin %s is not executable (chmod +x %s)", path, path)
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", path, err)
	}
	if di.Mode().Perm()&0o002 != 0 {
		return fmt.Errorf("plugin %s sits in world-writable %s: refusing to run it (move it, or chmod o-w %s)", path, dir, dir)
	}
	return nil
}

// Available lists every plugin binary in dirs, first match of each name only.
func Available(dirs []string) map[string]string {
	found := map[string]string{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range ents {
			n, ok := strings.CutPrefix(e.Name(), BinaryPrefix)
			if !ok || e.IsDir() {
				continue
			}
			if _, seen := found[n]; !seen {
				found[n] = filepath.Join(d, e.Name())
			}
		}
	}
	return found
}

// SortedNames returns the keys of m in order.
func SortedNames(m map[string]string) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

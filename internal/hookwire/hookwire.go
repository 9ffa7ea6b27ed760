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
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/respawner/respawner/pkg/hookspec"
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

// MaxPacket bounds one packet from the host to respawner, which reads no
// more: a longer one would be cut and lost whole. The host bounds what
// plugins supply (reasons, log lines) well below it.
const MaxPacket = 64 << 10

// Bounds on what plugins supply that travels to respawner, each far below
// MaxPacket: a verdict's or a probe's reason (shown by status and logged),
// an error (a plugin's configure error, say), a plugin's version.
const (
	MaxReason  = 1 << 10
	MaxError   = 4 << 10
	MaxVersion = 256
)

// Bound returns s cut to at most n bytes on a UTF-8 boundary, with a marker
// saying how much was cut, the marker included in the n.
func Bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	marker := func(cut int) string { return fmt.Sprintf("... [%d bytes cut]", cut) }
	keep := max(n-len(marker(len(s))), 0)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + marker(len(s)-keep)
}

// Msg is one packet. Only the fields of its type are set. Events, verdicts,
// probe schedules and results travel in hookspec's JSON form, the one hook
// authors see.
type Msg struct {
	T       string                `json:"t"`
	ID      uint64                `json:"id,omitempty"`
	Plugins []PluginSpec          `json:"plugins,omitempty"` // config
	Infos   []PluginInfo          `json:"infos,omitempty"`   // ready
	Error   string                `json:"error,omitempty"`   // error
	Event   *hookspec.Event       `json:"event,omitempty"`   // event, ask
	Verdict *hookspec.Verdict     `json:"verdict,omitempty"` // verdict
	Plugin  string                `json:"plugin,omitempty"`  // probe, probed
	Probe   *hookspec.ProbeResult `json:"probe,omitempty"`   // probed
	// Unknown (probed): the probe could not run (its plugin or the host is
	// being restarted); it counts neither for nor against the program.
	Unknown bool   `json:"unknown,omitempty"`
	Line    string `json:"line,omitempty"`  // log
	Level   string `json:"level,omitempty"` // config: respawner's --log-level
	// SocketDir (config) is the directory respawner made for this host
	// alone, in which the plugins' socket directories go; respawner removes
	// it, whatever is left in it, once the host has been reaped.
	SocketDir string `json:"socket_dir,omitempty"`
}

// Decode reads one packet. A verdict whose decision is not one of
// hookspec's (a host of another version, or a bug) is not mapped to
// anything: Decode returns the error, which wraps
// hookspec.ErrUnknownDecision, with a Msg that keeps the packet's T, ID and
// Plugin and has no Verdict, so that the core can settle the question it
// answers, log the error and count it as allow.
func Decode(b []byte) (Msg, error) {
	var m Msg
	err := json.Unmarshal(b, &m)
	if err != nil && errors.Is(err, hookspec.ErrUnknownDecision) {
		var head struct {
			T      string `json:"t"`
			ID     uint64 `json:"id"`
			Plugin string `json:"plugin"`
		}
		json.Unmarshal(b, &head) // the verdict is not a field here: this cannot fail where the first did
		m = Msg{T: head.T, ID: head.ID, Plugin: head.Plugin}
	}
	return m, err
}

// PluginSpec is one --plugin, resolved to a binary.
type PluginSpec struct {
	Name    string              `json:"name"`
	Path    string              `json:"path"`
	Options map[string][]string `json:"options"`
	SHA256  string              `json:"sha256,omitempty"`  // pinned binary hash (hex)
	Timeout time.Duration       `json:"timeout,omitempty"` // deadline of each call
}

// PluginInfo describes a plugin: what a configured plugin reported to the
// host (in the ready message), and what `respawner-hookhost describe` prints,
// one JSON object a line, for `respawner plugins` (which lists the same
// objects under --json).
type PluginInfo struct {
	Path    string                `json:"path"`
	Error   string                `json:"error,omitempty"` // describe: why the plugin cannot be used
	Name    string                `json:"name"`
	Version string                `json:"version"`
	Events  []hookspec.Kind       `json:"events,omitempty"`
	Notify  bool                  `json:"notify"`
	Veto    bool                  `json:"veto"`
	Probe   bool                  `json:"probe"`
	Sched   *hookspec.ProbeConfig `json:"sched,omitempty"` // a probe's schedule (ready only)
}

// StableRun is how long a plugin, or the hook host, must have run for its
// restart backoff to start over: one that crashes right after each launch
// backs off to the cap.
const StableRun = time.Minute

// RestartDelay is the backoff before the n-th consecutive restart (from 0)
// of a crashed plugin, or of the hook host: 1 s, doubling, up to a cap of
// 30 s, or of $RESPAWNER_PLUGIN_RESTART_MAX (a duration) when that is set
// lower (the soak test brings a plugin back after each of 100 kills).
func RestartDelay(n int) time.Duration {
	limit := 30 * time.Second
	if v := os.Getenv("RESPAWNER_PLUGIN_RESTART_MAX"); v != "" {
		if d, err := hookspec.ParseDuration(v); err == nil && d > 0 && d < limit {
			limit = d
		}
	}
	return min(time.Second<<min(n, 5), limit)
}

// DefaultTimeout is a plugin call's deadline unless its option timeout says otherwise.
const DefaultTimeout = 2 * time.Second

// ParseSpec parses a --plugin flag (see hookspec.SplitSpec). Of the options, sha256
// is respawner's alone (the binary's pin) and is not passed to the plugin;
// timeout, the deadline of each call, is respawner's and is passed too (a
// probe plugin uses it as its probe timeout).
func ParseSpec(s string) (PluginSpec, error) {
	name, opts, err := hookspec.SplitSpec(s)
	sp := PluginSpec{Name: name, Options: opts, Timeout: DefaultTimeout}
	if err != nil {
		return sp, fmt.Errorf("--plugin %s: %w", s, err)
	}
	if v, ok := opts["sha256"]; ok {
		if b, err := hex.DecodeString(v[len(v)-1]); err != nil || len(b) != 32 {
			return sp, fmt.Errorf("--plugin %s: sha256 wants 64 hex digits", name)
		}
		sp.SHA256 = strings.ToLower(v[len(v)-1])
		delete(opts, "sha256")
	}
	if v, ok := opts["timeout"]; ok {
		d, err := hookspec.ParseDuration(v[len(v)-1])
		if err != nil || d <= 0 {
			return sp, fmt.Errorf("--plugin %s: timeout %q is not a positive duration", name, v[len(v)-1])
		}
		sp.Timeout = d
	}
	return sp, nil
}

// BinaryPrefix starts every plugin binary's name.
const BinaryPrefix = "respawner-plugin-"

// SystemDir is searched last.
const SystemDir = "/usr/lib/respawner/plugins"

// SearchDirs is the plugin search path: --plugin-dir, $RESPAWNER_PLUGIN_PATH,
// the directory of the respawner binary, ../lib/respawner/plugins from it
// (where `make install PREFIX=...` puts the plugins), then SystemDir; each
// directory once.
func SearchDirs(pluginDir, exeDir string) []string {
	var dirs []string
	add := func(d string) {
		if d != "" && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	add(pluginDir)
	for d := range strings.SplitSeq(os.Getenv("RESPAWNER_PLUGIN_PATH"), ":") {
		add(d)
	}
	if exeDir != "" {
		add(exeDir)
		add(filepath.Join(exeDir, "..", "lib", "respawner", "plugins"))
	}
	add(SystemDir)
	return dirs
}

// ErrNotFound: no binary of that name in the search path.
var ErrNotFound = errors.New("plugin not found")

// Find returns the first respawner-plugin-NAME in dirs, resolved (symlinks
// followed) and checked by CheckSafe: the first match is refused, not
// skipped, when anyone but root or this user could have replaced it. The
// path returned is the resolved one, so that a link changed after the check
// cannot redirect what is run.
func Find(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, BinaryPrefix+name)
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			continue
		}
		return SafeExecutable("plugin", p)
	}
	return "", fmt.Errorf("plugin %s: %w: no %s%s in %s", name, ErrNotFound, BinaryPrefix, name, strings.Join(dirs, ", "))
}

// CheckSafe refuses a plugin binary that someone other than root or this
// user could replace (see SafeExecutable).
func CheckSafe(path string) error {
	_, err := SafeExecutable("plugin", path)
	return err
}

// SafeExecutable resolves path (symlinks followed) and checks, as OpenSSH's
// StrictModes and sudo do, that nobody but root and the effective user can
// replace what it names: the file and every directory on its resolved path up
// to / must be owned by root or the effective user and not writable by group
// or others. The one exception is a root-owned sticky directory such as /tmp:
// there only an entry's owner (checked in turn) may rename or remove it. It
// also wants a regular, executable file. It returns the resolved path, to be
// run instead of path; kind ("plugin", "respawner-hookhost") starts each
// error, which names the offending path, its owner and mode, and the fix.
func SafeExecutable(kind, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", kind, path, err)
	}
	resolved, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", kind, path, err)
	}
	what := kind + " " + path
	if resolved != abs {
		what += " (resolved to " + resolved + ")"
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file (%s): refusing to run it", what, fi.Mode())
	}
	if err := safeOwner(fi, what, resolved, "refusing to run it", "chown root "+resolved+", or reinstall it"); err != nil {
		return "", err
	}
	if w := writableBy(fi); w != "" {
		return "", fmt.Errorf("%s is %s-writable (%s, %s): refusing to run it (chmod go-w %s)", what, w, fi.Mode(), ownerOf(fi), resolved)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s is not executable (chmod +x %s)", what, resolved)
	}
	for dir := filepath.Dir(resolved); ; dir = filepath.Dir(dir) {
		di, err := os.Lstat(dir) // resolved: no link on the way
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		if err := safeOwner(di, what+" sits in "+dir+", which", dir, "refusing to run it", "chown root "+dir+", or move the "+kind); err != nil {
			return "", err
		}
		if w := writableBy(di); w != "" && !(di.Mode()&os.ModeSticky != 0 && uidOf(di) == 0) {
			return "", fmt.Errorf("%s sits in %s-writable %s (%s, %s): refusing to run it (chmod go-w %s, or move the %s)", what, w, dir, di.Mode(), ownerOf(di), dir, kind)
		}
		if dir == "/" || dir == filepath.Dir(dir) {
			break
		}
	}
	return resolved, nil
}

// safeOwner wants fi owned by root or the effective user.
func safeOwner(fi os.FileInfo, what, path, refusal, fix string) error {
	if uid := uidOf(fi); uid != 0 && uid != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d (%s), not by root or uid %d: %s (%s)", what, uid, fi.Mode(), os.Geteuid(), refusal, fix)
	}
	return nil
}

// writableBy says "world" or "group" when others or the group may write fi.
func writableBy(fi os.FileInfo) string {
	switch {
	case fi.Mode().Perm()&0o002 != 0:
		return "world"
	case fi.Mode().Perm()&0o020 != 0:
		return "group"
	}
	return ""
}

func uidOf(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

func ownerOf(fi os.FileInfo) string { return "owner uid " + strconv.Itoa(uidOf(fi)) }

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

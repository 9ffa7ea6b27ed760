package runenv

import (
	"errors"
	"fmt"
	"math"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Attrs are what is set up in the program's process before the program is
// exec'd (ForkExec). The zero value asks for nothing.
type Attrs struct {
	Limits   []Limit // setrlimit, in order
	Umask    uint32  // the program's umask, when SetUmask
	SetUmask bool
	User     *User  // setgroups, setgid, setuid; nil: respawner's
	Dir      string // working directory (absolute), entered as User; "": respawner's
	// PIDEnv names variables the shim sets to its own pid, which is the
	// program's (exec keeps the pid): WATCHDOG_PID, LISTEN_PID. Each
	// replaces a variable of that name in the environment.
	PIDEnv []string

	check bool // the shim sets up and exits (explain)
}

// Empty reports whether a asks for nothing: the program is started as it
// always was.
func (a *Attrs) Empty() bool {
	return a == nil || !a.NeedsShim() && a.User == nil && a.Dir == ""
}

// NeedsShim reports whether a start needs the exec shim: for limits, the
// umask or pid variables, which Go's fork/exec cannot set, and for a
// directory, which it could, but a chdir into a hung mount (NFS, FUSE)
// would then hold Go's fork/exec, and the supervision loop with it, for
// ever; the shim's report is bounded by ShimTimeout. User and groups alone
// go through Go's fork/exec.
func (a *Attrs) NeedsShim() bool {
	return a != nil && (len(a.Limits) > 0 || a.SetUmask || len(a.PIDEnv) > 0 || a.Dir != "")
}

// UmaskString is the umask as status shows it ("0027"), "" when not set.
func (a *Attrs) UmaskString() string {
	if a == nil || !a.SetUmask {
		return ""
	}
	return fmt.Sprintf("%04o", a.Umask)
}

// ParseUmask reads an octal umask, 0 to 0777: 027, 0027, 77.
func ParseUmask(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("%q is not a umask: want octal digits, 0 to 0777, such as 027 or 0077", s)
	}
	return uint32(v), nil
}

// Limit is one resource limit of the program (--limit NAME=SOFT[:HARD]).
type Limit struct {
	Name     string // nofile, nproc, core, as, memlock, stack, cpu
	Resource int    // RLIMIT_*
	Soft     uint64 // Unlimited for none
	Hard     uint64
}

// Unlimited is RLIM_INFINITY.
const Unlimited = math.MaxUint64

// limitDef is a limit --limit takes, and what its values count.
type limitDef struct {
	name     string
	resource int
	unit     string // "bytes", "seconds" or "" (a count)
}

var limitNames = []limitDef{
	{"nofile", unix.RLIMIT_NOFILE, ""},
	{"nproc", unix.RLIMIT_NPROC, ""},
	{"core", unix.RLIMIT_CORE, "bytes"},
	{"as", unix.RLIMIT_AS, "bytes"},
	{"memlock", unix.RLIMIT_MEMLOCK, "bytes"},
	{"stack", unix.RLIMIT_STACK, "bytes"},
	{"cpu", unix.RLIMIT_CPU, "seconds"},
}

// LimitNames lists the names --limit takes.
func LimitNames() []string {
	var out []string
	for _, l := range limitNames {
		out = append(out, l.name)
	}
	return out
}

// ParseLimit reads NAME=SOFT[:HARD]. A single value sets both, as systemd's
// LimitNAME= does. Each value is a number, or "unlimited" ("infinity");
// byte limits (core, as, memlock, stack) take a K, M, G or T suffix (powers
// of 1024), cpu is in seconds.
func ParseLimit(s string) (Limit, error) {
	name, val, ok := strings.Cut(s, "=")
	if !ok {
		return Limit{}, errors.New("want NAME=SOFT[:HARD], such as nofile=1024:4096")
	}
	i := slices.IndexFunc(limitNames, func(l limitDef) bool { return l.name == name })
	if i < 0 {
		return Limit{}, fmt.Errorf("unknown limit %q: want one of %s", name, strings.Join(LimitNames(), ", "))
	}
	def := limitNames[i]
	l := Limit{Name: name, Resource: def.resource}
	softS, hardS, two := strings.Cut(val, ":")
	var err error
	if l.Soft, err = parseLimitValue(softS, def.unit); err != nil {
		return Limit{}, err
	}
	l.Hard = l.Soft
	if two {
		if l.Hard, err = parseLimitValue(hardS, def.unit); err != nil {
			return Limit{}, err
		}
	}
	if l.Soft > l.Hard {
		return Limit{}, fmt.Errorf("the soft limit %s is above the hard limit %s", limitValue(l.Soft), limitValue(l.Hard))
	}
	return l, nil
}

func parseLimitValue(s, unit string) (uint64, error) {
	switch s {
	case "unlimited", "infinity":
		return Unlimited, nil
	case "":
		return 0, errors.New("empty value: want a number or unlimited")
	}
	mult := uint64(1)
	if unit == "bytes" {
		if i := strings.IndexAny(s, "KMGTkmgt"); i == len(s)-1 && i > 0 {
			mult = 1 << (10 * (1 + strings.IndexByte("KMGT", byte(strings.ToUpper(s[i:])[0]))))
			s = s[:i]
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		what := "a number"
		switch unit {
		case "bytes":
			what = "a number of bytes (K, M, G, T suffixes)"
		case "seconds":
			what = "a number of seconds"
		}
		return 0, fmt.Errorf("%q is not %s or unlimited", s, what)
	}
	if v > (Unlimited-1)/mult {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return v * mult, nil
}

func limitValue(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// Value is SOFT:HARD, or one value when they are equal: "64:128", "unlimited".
func (l Limit) Value() string {
	if l.Soft == l.Hard {
		return limitValue(l.Soft)
	}
	return limitValue(l.Soft) + ":" + limitValue(l.Hard)
}

// String is the flag's form, NAME=VALUE.
func (l Limit) String() string { return l.Name + "=" + l.Value() }

// CheckLimit says whether this process could set l on a child: raising a
// hard limit above ours needs root (CAP_SYS_RESOURCE), and the kernel
// refuses a nofile above fs.nr_open even to root.
func CheckLimit(l Limit) error {
	var cur unix.Rlimit
	if err := unix.Getrlimit(l.Resource, &cur); err != nil {
		return fmt.Errorf("getrlimit %s: %w", l.Name, err)
	}
	if l.Hard > cur.Max && os.Geteuid() != 0 {
		return fmt.Errorf("only root may raise a hard limit, and respawner's own hard %s limit is %s", l.Name, limitValue(cur.Max))
	}
	if l.Resource == unix.RLIMIT_NOFILE {
		if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && l.Hard > max {
				return fmt.Errorf("the kernel allows at most %d open files (fs.nr_open), and no unlimited", max)
			}
		}
	}
	return nil
}

// User is the account the program runs as (--user, --group).
type User struct {
	Name   string // the user's name, or the uid when respawner's user is kept (--group alone)
	Group  string // the primary group's name (its number when it has none)
	UID    int
	GID    int
	Groups []int  // supplementary groups, initgroups(3)-style
	Home   string // from the password database; "" with --group alone
	// SetUser: setuid to UID too, and set HOME, USER and LOGNAME (--user).
	// False with --group alone: only the groups change.
	SetUser bool
}

// LookupUser resolves --user USER[:GROUP] and --group GROUP (either may be
// empty, not both) in the user and group databases. USER and GROUP are
// names or numeric ids. The supplementary groups are USER's, as
// initgroups(3) gives them: the groups that list USER as a member, plus the
// primary group. With --group alone the user stays respawner's (root) and
// has no supplementary group but GROUP.
func LookupUser(spec, group string) (*User, error) {
	name, g, hasGroup := strings.Cut(spec, ":")
	if hasGroup {
		if g == "" {
			return nil, fmt.Errorf("--user %q: empty group after the colon", spec)
		}
		if group != "" && group != g {
			return nil, fmt.Errorf("--user %s and --group %s name two groups: give the group once", spec, group)
		}
		group = g
	}
	out := &User{}
	if spec != "" {
		if name == "" {
			return nil, fmt.Errorf("--user %q: empty user name", spec)
		}
		u, err := lookupUser(name)
		if err != nil {
			return nil, err
		}
		out.Name, out.Home, out.SetUser = u.Username, u.HomeDir, true
		out.UID, _ = strconv.Atoi(u.Uid)
		out.GID, _ = strconv.Atoi(u.Gid)
		ids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("groups of user %s: %w", u.Username, err)
		}
		for _, s := range ids {
			if id, err := strconv.Atoi(s); err == nil {
				out.Groups = append(out.Groups, id)
			}
		}
		if g, err := user.LookupGroupId(u.Gid); err == nil {
			out.Group = g.Name
		} else {
			out.Group = u.Gid
		}
	} else {
		out.UID = os.Getuid()
		out.Name = strconv.Itoa(out.UID)
		if u, err := user.LookupId(out.Name); err == nil {
			out.Name = u.Username
		}
	}
	if group != "" {
		gr, err := lookupGroup(group)
		if err != nil {
			return nil, err
		}
		gid, _ := strconv.Atoi(gr.Gid)
		if spec != "" && gid != out.GID {
			// initgroups(USER, GROUP): GROUP takes the place of the
			// primary group of the password database.
			out.Groups = slices.DeleteFunc(out.Groups, func(g int) bool { return g == out.GID })
		}
		if spec == "" {
			out.Groups = nil
		}
		out.GID, out.Group = gid, gr.Name
	}
	if !slices.Contains(out.Groups, out.GID) {
		out.Groups = append(out.Groups, out.GID)
	}
	slices.Sort(out.Groups)
	out.Groups = slices.Compact(out.Groups)
	return out, nil
}

func lookupUser(s string) (*user.User, error) {
	u, err := user.Lookup(s)
	if err == nil {
		return u, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		if u, err := user.LookupId(s); err == nil {
			return u, nil
		}
	}
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("unknown user %q: no such user in the password database", s)
	}
	return nil, fmt.Errorf("user %q: %w", s, err)
}

func lookupGroup(s string) (*user.Group, error) {
	g, err := user.LookupGroup(s)
	if err == nil {
		return g, nil
	}
	if _, nerr := strconv.Atoi(s); nerr == nil {
		if g, err := user.LookupGroupId(s); err == nil {
			return g, nil
		}
	}
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		return nil, fmt.Errorf("unknown group %q: no such group in the group database", s)
	}
	return nil, fmt.Errorf("group %q: %w", s, err)
}

// Env is what --user adds to the environment: HOME, USER and LOGNAME of the
// account, as login(1) and systemd's User= set them. Nothing with --group
// alone.
func (u *User) Env() []string {
	if u == nil || !u.SetUser {
		return nil
	}
	return []string{"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name}
}

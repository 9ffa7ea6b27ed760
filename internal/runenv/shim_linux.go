package runenv

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The exec shim's protocol.
//
// The shim is respawner's own binary, exec'd as /proc/self/exe (the binary
// respawner runs, even if its file was replaced or removed since, as in an
// upgrade) with exactly two arguments:
//
//	argv = [ShimArgv0, N]      environment: GOMAXPROCS=1 (for the shim's runtime)
//
// N is a decimal descriptor number: N is a memfd holding the request, N+1
// the write end of a pipe, the report. Descriptors 0 to N-1 are the
// program's (0, 1, 2 and any passed sockets) and stay as they are. main
// calls Shim first thing when IsShim(os.Args).
//
// The request is a list of strings, each ended by a NUL byte (which no
// argument or variable can contain):
//
//	"respawner-exec 1"           version
//	PATH                         the program
//	ARGC  ARGV[0] ... ARGV[ARGC-1]
//	ENVC  ENV[0] ... ENV[ENVC-1] KEY=VALUE each
//
// then records, each a tag and its fields, in any order, each at most once
// but limit and pidenv:
//
//	"limit"  NAME RESOURCE SOFT HARD   (decimal; 18446744073709551615 is unlimited)
//	"umask"  OCTAL
//	"user"   NAME UID GID NGROUPS GROUP... SETUID (1: setuid too; 0: groups only)
//	"dir"    PATH
//	"pidenv" NAME
//	"check"                            (set up, then exit 0 instead of the exec)
//
// The program's argv and environment travel in the memfd, not in the
// shim's argv or environment: a shim's command line is readable by every
// user (/proc/PID/cmdline) and its environment steers the shim's own Go
// runtime (GODEBUG, GOMAXPROCS), which the program's must not.
//
// The shim applies, in this order: the limits (before dropping root, which
// may raise a hard limit); the umask; setgroups, setgid, setuid; the
// working directory (entered as the user, as systemd does: a directory on
// NFS may only be open to the user); the pid variables (its pid is the
// program's: exec keeps it); then it execs PATH. The report pipe is
// close-on-exec, so a successful exec closes it with nothing written. On
// any failure the shim writes one line, the reason (as the direct path words
// it: "exec PATH: no such file or directory"), and exits 127. With "check"
// it exits 0 after the working directory, writing nothing: ForkExec asks
// that when Go's own fork/exec failed with a user or directory, to tell a
// chdir's errno from the exec's.

// ShimArgv0 is argv[0] of respawner re-executed as the exec shim.
const ShimArgv0 = "respawner-exec"

// shimVersion is the first string of a request.
const shimVersion = "respawner-exec 1"

// ShimTimeout bounds the wait for the shim to exec the program: past it
// (a chdir into a hung NFS mount, say), the shim is killed and the start
// fails. The supervision loop waits in its epoll set (StartShim, a
// timerfd), never in a call; ForkExec's own wait is for other callers.
var ShimTimeout = 10 * time.Second

// shimEnv is the shim's own environment, which only its Go runtime reads.
// One P: the shim runs one goroutine for a millisecond, and the runtime
// then starts fewer threads, which its exec of the program must end
// (measured with perf stat: a quarter less CPU time, a third fewer
// context switches).
var shimEnv = []string{"GOMAXPROCS=1"}

// maxRequest bounds a request read by the shim (argv and environment are
// bounded by the kernel's ARG_MAX anyway, 2 MiB by default).
const maxRequest = 16 << 20

// IsShim reports whether args (os.Args) are the exec shim's.
func IsShim(args []string) bool { return len(args) == 2 && args[0] == ShimArgv0 }

// ForkExec starts path as syscall.ForkExec does, with attr (its Files, Env
// and Sys: Setpgid, PidFD...) and a set up. It returns once the program
// runs, or with the error of the step that failed (a pidfd asked for with
// attr.Sys.PidFD is then closed and set to -1, and nothing is left to
// reap).
//
// User and groups alone are set up by Go's own fork/exec
// (SysProcAttr.Credential: setgroups, setgid, setuid, in the shim's order),
// so they cost nothing. Go reports a failure there as a bare errno, though:
// then the shim, run for the setup alone, tells which step failed. Limits,
// the umask, pid variables and a directory (NeedsShim) take the shim for
// every start.
func ForkExec(path string, argv []string, attr *syscall.ProcAttr, a *Attrs) (pid int, err error) {
	if !a.NeedsShim() {
		da := *attr
		if a != nil {
			da.Dir = a.Dir
			if u := a.User; u != nil {
				sys := syscall.SysProcAttr{}
				if attr.Sys != nil {
					sys = *attr.Sys
				}
				sys.Credential = u.credential()
				da.Sys = &sys
			}
		}
		pid, err = syscall.ForkExec(path, argv, &da)
		if err != nil {
			return 0, a.explain(path, attr.Files, err)
		}
		return pid, nil
	}
	pid, msg, err := startShim(a.request(path, argv, attr.Env), attr)
	if err == nil && msg == "" {
		return pid, nil // exec'd: the pipe closed on exec
	}
	if pid == 0 {
		return 0, err
	}
	pidfd := -1
	if attr.Sys != nil && attr.Sys.PidFD != nil {
		pidfd = *attr.Sys.PidFD
	}
	reap(pid, pidfd, err != nil)
	if pidfd >= 0 {
		unix.Close(pidfd)
		*attr.Sys.PidFD = -1
	}
	if err != nil {
		return 0, err
	}
	return 0, errors.New(msg)
}

// credential is u for Go's fork/exec. With --group alone UID is
// respawner's own (root), and setuid to it changes nothing.
func (u *User) credential() *syscall.Credential {
	c := &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: make([]uint32, len(u.Groups))}
	for i, g := range u.Groups {
		c.Groups[i] = uint32(g)
	}
	return c
}

// explain words err, the bare errno of a direct start with a's user or
// directory, as the shim words its failures: it runs the shim for the
// setup alone ("check": setgroups, setgid, setuid, chdir, no exec), whose
// failure is the reason; if the setup succeeds, the exec failed.
func (a *Attrs) explain(path string, files []uintptr, err error) error {
	as := ""
	if a != nil && a.User != nil && a.User.SetUser {
		as = " as " + a.User.Name
	}
	if a == nil || a.User == nil && a.Dir == "" {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	check := &Attrs{User: a.User, Dir: a.Dir, check: true}
	pidfd := -1
	pid, msg, serr := startShim(check.request(path, []string{path}, nil), &syscall.ProcAttr{Files: files, Sys: &syscall.SysProcAttr{PidFD: &pidfd}})
	if pid != 0 {
		reap(pid, pidfd, serr != nil)
	}
	if pidfd >= 0 {
		unix.Close(pidfd)
	}
	if serr == nil && msg != "" {
		return errors.New(msg)
	}
	return fmt.Errorf("exec %s%s: %w", path, as, err)
}

// startShim forks and execs the shim with req and waits for its report:
// "" when the pipe closed (the program was exec'd, or the check done), or
// the shim's reason. pid is 0 when no shim was started.
func startShim(req []byte, attr *syscall.ProcAttr) (pid int, msg string, err error) {
	pid, rfd, err := forkShim(req, attr)
	if err != nil {
		return 0, "", err
	}
	defer unix.Close(rfd)
	msg, err = readReport(rfd, ShimTimeout)
	return pid, msg, err
}

// forkShim forks and execs the shim with req and returns its pid and the
// read end of its report pipe (close-on-exec), without waiting.
func forkShim(req []byte, attr *syscall.ProcAttr) (pid, report int, err error) {
	mfd, err := unix.MemfdCreate("respawner-exec", unix.MFD_CLOEXEC)
	if err != nil {
		return 0, -1, fmt.Errorf("memfd_create: %w", err)
	}
	defer unix.Close(mfd)
	for b := req; len(b) > 0; {
		n, err := unix.Write(mfd, b)
		if err != nil {
			return 0, -1, fmt.Errorf("write exec request: %w", err)
		}
		b = b[n:]
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return 0, -1, fmt.Errorf("pipe2: %w", err)
	}
	n := len(attr.Files)
	sa := *attr
	sa.Env = shimEnv
	sa.Files = append(attr.Files[:n:n], uintptr(mfd), uintptr(p[1]))
	pid, err = syscall.ForkExec("/proc/self/exe", []string{ShimArgv0, strconv.Itoa(n)}, &sa)
	unix.Close(p[1])
	if err != nil {
		unix.Close(p[0])
		return 0, -1, fmt.Errorf("exec shim /proc/self/exe: %w", err)
	}
	return pid, p[0], nil
}

// Pending is an exec shim started without waiting for its report
// (StartShim), for a caller that must not wait (the supervision loop): it
// watches Report, a non-blocking pipe, and calls Read when it is readable.
// PIDFD (from attr.Sys.PidFD) is the shim's, and the program's once it has
// exec'd: exec keeps the process.
type Pending struct {
	PID, PIDFD, Report int
	msg                []byte
}

// StartShim forks the shim for a start with a's setup (a.NeedsShim) and
// returns at once. attr.Sys.PidFD must be set: the caller reaps a shim that
// failed, or kills one that is stuck, through it.
func StartShim(path string, argv []string, attr *syscall.ProcAttr, a *Attrs) (*Pending, error) {
	pid, rfd, err := forkShim(a.request(path, argv, attr.Env), attr)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(rfd, true); err != nil {
		unix.Close(rfd)
		unix.Kill(pid, unix.SIGKILL)
		return nil, fmt.Errorf("exec shim report: %w", err)
	}
	return &Pending{PID: pid, PIDFD: *attr.Sys.PidFD, Report: rfd}, nil
}

// Read takes what the report pipe holds, without waiting. done is set at
// EOF, when msg is "" if the program was exec'd (or the shim died, which
// its exit status tells) or else the shim's reason.
func (s *Pending) Read() (done bool, msg string, err error) {
	var buf [4096]byte
	for {
		n, err := unix.Read(s.Report, buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false, "", nil
		case err != nil:
			return true, "", fmt.Errorf("read exec shim report: %w", err)
		case n == 0:
			return true, strings.TrimSpace(string(s.msg)), nil
		}
		if len(s.msg) < 64<<10 {
			s.msg = append(s.msg, buf[:n]...)
		}
	}
}

// readReport waits up to timeout for the shim's report: "" at EOF (the
// program was exec'd, or the shim died, which its exit status will tell),
// or the reason it failed.
func readReport(fd int, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	var msg []byte
	buf := make([]byte, 4096)
	for {
		ms := int((time.Until(deadline) + time.Millisecond - 1) / time.Millisecond)
		if ms <= 0 {
			return "", fmt.Errorf("the exec shim did not start the program within %s", timeout)
		}
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, ms); err != nil {
			if err == unix.EINTR {
				continue
			}
			return "", fmt.Errorf("poll exec shim report: %w", err)
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			continue
		case err != nil:
			return "", fmt.Errorf("read exec shim report: %w", err)
		case n == 0:
			return strings.TrimSpace(string(msg)), nil
		}
		if len(msg) < 64<<10 {
			msg = append(msg, buf[:n]...)
		}
	}
}

// reap collects a shim that failed, which exits right after its report;
// with stuck, one that did not report in time, which it kills first. A
// stuck shim may be where SIGKILL cannot reach it yet (uninterruptible, in
// a chdir into a dead mount): reap then waits a second at most and leaves
// it to the loop, which reaps any child it does not watch once SIGCHLD
// says it died.
func reap(pid, pidfd int, stuck bool) {
	flags := 0
	if stuck {
		if pidfd >= 0 {
			unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			for {
				if _, err := unix.Poll(fds, 1000); err != unix.EINTR {
					break
				}
			}
		} else {
			unix.Kill(pid, unix.SIGKILL)
		}
		flags = unix.WNOHANG
	}
	for {
		var err error
		if pidfd >= 0 {
			err = unix.Waitid(unix.P_PIDFD, pidfd, nil, unix.WEXITED|flags, nil)
		} else {
			_, err = unix.Wait4(pid, nil, flags, nil)
		}
		if err != unix.EINTR {
			return
		}
	}
}

// request encodes what the shim needs (see the protocol above).
func (a *Attrs) request(path string, argv, env []string) []byte {
	size := len(shimVersion) + len(path) + 64
	for _, s := range argv {
		size += len(s) + 1
	}
	for _, s := range env {
		size += len(s) + 1
	}
	b := make([]byte, 0, size)
	add := func(ss ...string) {
		for _, s := range ss {
			b = append(b, s...)
			b = append(b, 0)
		}
	}
	num := func(v uint64) { add(strconv.FormatUint(v, 10)) }
	add(shimVersion, path)
	num(uint64(len(argv)))
	add(argv...)
	num(uint64(len(env)))
	add(env...)
	for _, l := range a.Limits {
		add("limit", l.Name)
		num(uint64(l.Resource))
		num(l.Soft)
		num(l.Hard)
	}
	if a.SetUmask {
		add("umask", strconv.FormatUint(uint64(a.Umask), 8))
	}
	if u := a.User; u != nil {
		add("user", u.Name)
		num(uint64(u.UID))
		num(uint64(u.GID))
		num(uint64(len(u.Groups)))
		for _, g := range u.Groups {
			num(uint64(g))
		}
		set := "0"
		if u.SetUser {
			set = "1"
		}
		add(set)
	}
	if a.Dir != "" {
		add("dir", a.Dir)
	}
	for _, k := range a.PIDEnv {
		add("pidenv", k)
	}
	if a.check {
		add("check")
	}
	return b
}

// shimRequest is a decoded request.
type shimRequest struct {
	path  string
	argv  []string
	env   []string
	attrs Attrs
}

// parseRequest decodes a request, strictly: anything it does not know is
// an error, never guessed at.
func parseRequest(b []byte) (*shimRequest, error) {
	if len(b) == 0 || b[len(b)-1] != 0 {
		return nil, errors.New("exec request: not NUL-terminated")
	}
	f := strings.Split(string(b[:len(b)-1]), "\x00")
	i := 0
	var err error
	next := func() string {
		if i >= len(f) {
			if err == nil {
				err = errors.New("exec request: truncated")
			}
			return ""
		}
		i++
		return f[i-1]
	}
	num := func(bits int) uint64 {
		s := next()
		v, perr := strconv.ParseUint(s, 10, bits)
		if perr != nil && err == nil {
			err = fmt.Errorf("exec request: bad number %q", s)
		}
		return v
	}
	list := func() []string {
		n := num(32)
		if err != nil || n > uint64(len(f)-i) {
			if err == nil {
				err = errors.New("exec request: truncated")
			}
			return nil
		}
		out := f[i : i+int(n) : i+int(n)]
		i += int(n)
		return out
	}
	if v := next(); v != shimVersion {
		return nil, fmt.Errorf("exec request: version %q, want %q (respawner and its binary on disk differ?)", v, shimVersion)
	}
	r := &shimRequest{path: next()}
	r.argv = list()
	r.env = list()
	seen := map[string]bool{}
	for err == nil && i < len(f) {
		tag := next()
		if seen[tag] && tag != "limit" && tag != "pidenv" {
			return nil, fmt.Errorf("exec request: %s twice", tag)
		}
		seen[tag] = true
		switch tag {
		case "limit":
			l := Limit{Name: next()}
			l.Resource = int(num(31))
			l.Soft = num(64)
			l.Hard = num(64)
			r.attrs.Limits = append(r.attrs.Limits, l)
		case "umask":
			s := next()
			v, perr := strconv.ParseUint(s, 8, 32)
			if perr != nil || v > 0o777 {
				return nil, fmt.Errorf("exec request: bad umask %q", s)
			}
			r.attrs.Umask, r.attrs.SetUmask = uint32(v), true
		case "user":
			u := &User{Name: next()}
			u.UID = int(num(32))
			u.GID = int(num(32))
			for _, g := range list() {
				v, perr := strconv.ParseUint(g, 10, 32)
				if perr != nil && err == nil {
					err = fmt.Errorf("exec request: bad group %q", g)
				}
				u.Groups = append(u.Groups, int(v))
			}
			switch next() {
			case "1":
				u.SetUser = true
			case "0":
			default:
				if err == nil {
					err = errors.New("exec request: bad user record")
				}
			}
			r.attrs.User = u
		case "dir":
			r.attrs.Dir = next()
		case "pidenv":
			r.attrs.PIDEnv = append(r.attrs.PIDEnv, next())
		case "check":
			r.attrs.check = true
		default:
			if err == nil {
				return nil, fmt.Errorf("exec request: unknown record %q", tag)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if r.path == "" || len(r.argv) == 0 {
		return nil, errors.New("exec request: no program")
	}
	return r, nil
}

// Shim is the exec shim's main (see the protocol above). It never returns.
func Shim(args []string) {
	n, err := strconv.Atoi(args[1])
	if err != nil || n < 0 {
		os.Stderr.WriteString("respawner-exec: started by respawner only\n")
		os.Exit(127)
	}
	report := n + 1
	if _, err := unix.FcntlInt(uintptr(report), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		os.Stderr.WriteString("respawner-exec: started by respawner only (no report descriptor)\n")
		os.Exit(127)
	}
	r, err := readRequest(n)
	unix.Close(n)
	if err == nil {
		err = r.exec() // returns only on failure
	}
	msg := []byte(err.Error() + "\n")
	if _, werr := unix.Write(report, msg); werr != nil {
		os.Stderr.Write(append([]byte("respawner-exec: "), msg...))
	}
	os.Exit(127)
}

func readRequest(fd int) (*shimRequest, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("exec request: %w", err)
	}
	if st.Size <= 0 || st.Size > maxRequest {
		return nil, fmt.Errorf("exec request: size %d", st.Size)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("exec request: %w", err)
		}
		if n == 0 {
			return nil, errors.New("exec request: short")
		}
		off += n
	}
	return parseRequest(b)
}

// exec applies the attributes and execs the program; it returns only the
// error of the step that failed.
func (r *shimRequest) exec() error {
	a := &r.attrs
	env := r.env
	if len(a.PIDEnv) > 0 {
		pid := strconv.Itoa(unix.Getpid())
		set := make([]string, len(a.PIDEnv))
		for i, k := range a.PIDEnv {
			set[i] = k + "=" + pid
		}
		env = Merge(env, set)
	}
	as := ""
	if u := a.User; u != nil && u.SetUser {
		as = " as " + u.Name
	}
	// Limits first: root may raise a hard limit, the user it becomes may
	// not. Through x/sys's Prlimit, which tells the Go runtime that
	// RLIMIT_NOFILE is ours now (syscall.Exec would otherwise put back the
	// soft limit the runtime raised at start-up).
	for _, l := range a.Limits {
		if err := unix.Prlimit(0, l.Resource, &unix.Rlimit{Cur: l.Soft, Max: l.Hard}, nil); err != nil {
			return fmt.Errorf("setrlimit %s: %w", l, err)
		}
	}
	if a.SetUmask {
		unix.Umask(int(a.Umask))
	}
	if u := a.User; u != nil {
		// syscall's Setgroups, Setgid and Setuid change every thread of
		// the shim (the Go runtime has several), whichever then execs.
		if err := syscall.Setgroups(u.Groups); err != nil {
			return fmt.Errorf("setgroups %v: %w", u.Groups, err)
		}
		if err := syscall.Setgid(u.GID); err != nil {
			return fmt.Errorf("setgid %d: %w", u.GID, err)
		}
		if u.SetUser {
			if err := syscall.Setuid(u.UID); err != nil {
				return fmt.Errorf("setuid %d (%s): %w", u.UID, u.Name, err)
			}
		}
	}
	if a.Dir != "" {
		if err := unix.Chdir(a.Dir); err != nil {
			return fmt.Errorf("chdir %s%s: %w", a.Dir, as, err)
		}
	}
	if a.check {
		os.Exit(0) // the setup worked; nothing to report
	}
	err := syscall.Exec(r.path, r.argv, env)
	return fmt.Errorf("exec %s%s: %w", r.path, as, err)
}

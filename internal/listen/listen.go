// Package listen is --listen: the listening sockets respawner creates
// before the first run and holds for the life of the instance, handing them
// to every run as descriptors 3, 4, ... with LISTEN_FDS, LISTEN_FDNAMES and
// LISTEN_PID, as systemd's socket activation does (sd_listen_fds(3)). A
// connection that arrives while the program is down waits in the kernel's
// backlog for the next run instead of being refused.
package listen

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/user"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// First is the descriptor of the first socket in the program (SD_LISTEN_FDS_START).
const First = 3

// Spec is one --listen [NAME=]ADDR[,OPTION...].
type Spec struct {
	Name    string // LISTEN_FDNAMES entry ("" when not given: the caller names it)
	Network string // tcp, tcp6, udp, udp6 or unix
	Addr    string // HOST:PORT, or the path of a unix socket
	Backlog int    // listen(2) backlog (stream sockets); 0: SOMAXCONN
	Mode    uint32 // unix: the socket file's mode; 0: 0666 less respawner's umask
	SetMode bool
	Owner   string // unix: USER[:GROUP] of the socket file
	uid     int
	gid     int
	ap      netip.AddrPort // inet: the parsed address
}

// Parse reads a --listen value: [NAME=]ADDR[,OPTION...] with ADDR one of
// tcp:HOST:PORT, tcp6:[HOST]:PORT, udp:HOST:PORT, udp6:[HOST]:PORT or
// unix:/PATH, and OPTION backlog=N, or for unix sockets mode=OCTAL and
// owner=USER[:GROUP]. NAME is what LISTEN_FDNAMES says of it (letters,
// digits, '-', '_', '.'; at most 255 bytes).
func Parse(s string) (Spec, error) {
	var sp Spec
	fields := strings.Split(s, ",")
	addr := fields[0]
	if i := strings.IndexByte(addr, '='); i >= 0 && !strings.Contains(addr[:i], ":") {
		sp.Name, addr = addr[:i], addr[i+1:]
		if err := checkName(sp.Name); err != nil {
			return Spec{}, fmt.Errorf("--listen %q: %w", s, err)
		}
	}
	network, rest, ok := strings.Cut(addr, ":")
	if !ok {
		return Spec{}, fmt.Errorf("--listen %q: want [NAME=]tcp:HOST:PORT, tcp6:[HOST]:PORT, udp:HOST:PORT or unix:/PATH", s)
	}
	sp.Network, sp.Addr = network, rest
	switch network {
	case "tcp", "tcp6", "udp", "udp6":
		ap, err := netip.ParseAddrPort(rest)
		if err != nil {
			return Spec{}, fmt.Errorf("--listen %q: %q is not HOST:PORT with a numeric IP address ([::1]:80 for IPv6)", s, rest)
		}
		if v6 := strings.HasSuffix(network, "6"); v6 != (ap.Addr().Is6() && !ap.Addr().Is4In6()) {
			return Spec{}, fmt.Errorf("--listen %q: tcp: and udp: take an IPv4 address, tcp6: and udp6: an IPv6 one ([::1]:80)", s)
		}
		if ap.Port() == 0 {
			return Spec{}, fmt.Errorf("--listen %q: port 0 would be a new port at every start: give one", s)
		}
		sp.ap = ap
	case "unix":
		if !strings.HasPrefix(rest, "/") || len(rest) > 107 {
			return Spec{}, fmt.Errorf("--listen %q: want an absolute path of at most 107 bytes", s)
		}
	default:
		return Spec{}, fmt.Errorf("--listen %q: unknown network %q (tcp, tcp6, udp, udp6 or unix)", s, network)
	}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		switch {
		case k == "backlog" && !sp.datagram():
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1<<16 {
				return Spec{}, fmt.Errorf("--listen %q: backlog %q is not a number from 1 to 65536", s, v)
			}
			sp.Backlog = n
		case k == "mode" && network == "unix":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n > 0o777 {
				return Spec{}, fmt.Errorf("--listen %q: mode %q is not an octal mode such as 0660", s, v)
			}
			sp.Mode, sp.SetMode = uint32(n), true
		case k == "owner" && network == "unix":
			if err := sp.resolveOwner(v); err != nil {
				return Spec{}, fmt.Errorf("--listen %q: %w", s, err)
			}
		default:
			return Spec{}, fmt.Errorf("--listen %q: unknown option %q (backlog=N; for unix sockets mode=OCTAL, owner=USER[:GROUP])", s, f)
		}
	}
	return sp, nil
}

func checkName(n string) error {
	if n == "" || len(n) > 255 {
		return errors.New("the name must be 1 to 255 bytes")
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("the name %q may hold letters, digits, '-', '_' and '.' only", n)
		}
	}
	return nil
}

func (sp *Spec) resolveOwner(v string) error {
	name, group, hasGroup := strings.Cut(v, ":")
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return fmt.Errorf("owner %q: no such user", v)
		}
	}
	sp.uid, _ = strconv.Atoi(u.Uid)
	sp.gid, _ = strconv.Atoi(u.Gid)
	if hasGroup {
		g, err := user.LookupGroup(group)
		if err != nil {
			if g, err = user.LookupGroupId(group); err != nil {
				return fmt.Errorf("owner %q: no such group %q", v, group)
			}
		}
		sp.gid, _ = strconv.Atoi(g.Gid)
	}
	sp.Owner = v
	return nil
}

func (sp Spec) datagram() bool { return sp.Network == "udp" || sp.Network == "udp6" }

// String is the address as given: tcp:127.0.0.1:8080, unix:/run/app.sock.
func (sp Spec) String() string { return sp.Network + ":" + sp.Addr }

// URL is http://HOST:PORT/ of a TCP socket ("" for the others): what a
// health probe asks by default. A wildcard address is asked on loopback.
func (sp Spec) URL() string {
	if sp.Network != "tcp" && sp.Network != "tcp6" {
		return ""
	}
	a := sp.ap.Addr()
	if a.IsUnspecified() {
		a = netip.MustParseAddr("127.0.0.1")
		if sp.Network == "tcp6" {
			a = netip.IPv6Loopback()
		}
	}
	return "http://" + netip.AddrPortFrom(a, sp.ap.Port()).String() + "/"
}

func (sp Spec) family() int {
	switch {
	case sp.Network == "unix":
		return unix.AF_UNIX
	case strings.HasSuffix(sp.Network, "6"):
		return unix.AF_INET6
	}
	return unix.AF_INET
}

func (sp Spec) sockType() int {
	if sp.datagram() {
		return unix.SOCK_DGRAM
	}
	return unix.SOCK_STREAM
}

func (sp Spec) sockaddr() unix.Sockaddr {
	switch sp.family() {
	case unix.AF_UNIX:
		return &unix.SockaddrUnix{Name: sp.Addr}
	case unix.AF_INET6:
		return &unix.SockaddrInet6{Port: int(sp.ap.Port()), Addr: sp.ap.Addr().As16()}
	}
	return &unix.SockaddrInet4{Port: int(sp.ap.Port()), Addr: sp.ap.Addr().As4()}
}

// Open creates, binds and (stream sockets) listens; the descriptor is
// close-on-exec in respawner, and reaches a run only as one of its files.
// A unix socket's stale file (nothing accepts on it) is replaced.
func (sp Spec) Open() (fd int, err error) {
	defer func() {
		if err != nil {
			err = fmt.Errorf("listen on %s: %w", sp, err)
		}
	}()
	fd, err = unix.Socket(sp.family(), sp.sockType()|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(e error) (int, error) {
		unix.Close(fd)
		return -1, e
	}
	if sp.family() != unix.AF_UNIX {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			return fail(fmt.Errorf("SO_REUSEADDR: %w", err))
		}
	} else if err := removeStale(sp.Addr); err != nil {
		return fail(err)
	}
	if err := bind(fd, sp); err != nil {
		return fail(err)
	}
	if sp.family() == unix.AF_UNIX {
		if sp.SetMode {
			if err := unix.Chmod(sp.Addr, sp.Mode); err != nil {
				return fail(fmt.Errorf("chmod %o: %w", sp.Mode, err))
			}
		}
		if sp.Owner != "" {
			if err := unix.Lchown(sp.Addr, sp.uid, sp.gid); err != nil {
				return fail(fmt.Errorf("chown %s: %w", sp.Owner, err))
			}
		}
	}
	if !sp.datagram() {
		backlog := sp.Backlog
		if backlog == 0 {
			backlog = unix.SOMAXCONN
		}
		if err := unix.Listen(fd, backlog); err != nil {
			return fail(fmt.Errorf("listen: %w", err))
		}
	}
	return fd, nil
}

// bind binds fd; a unix socket with mode= is bound under a umask that
// keeps it closed until its chmod.
func bind(fd int, sp Spec) error {
	if sp.family() == unix.AF_UNIX && sp.SetMode {
		old := unix.Umask(0o777)
		defer unix.Umask(old)
	}
	return unix.Bind(fd, sp.sockaddr())
}

// removeStale removes a socket file at path that nothing accepts on; a live
// one, or a file that is not a socket, is an error.
func removeStale(path string) error {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return fmt.Errorf("%s exists and is not a socket: remove it, or choose another path", path)
	}
	c, err := net.Dial("unix", path)
	if err == nil {
		c.Close()
		return fmt.Errorf("%s is in use by another process", path)
	}
	return os.Remove(path)
}

// Recover takes the socket a running program holds as its descriptor
// First+i (pidfd_getfd(2)), for a respawner that adopts a program it did
// not start: the program's sockets are the instance's. The descriptor is
// checked to be a socket of sp's kind, bound to sp's address.
func Recover(pidfd, i int, sp Spec) (int, error) {
	fd, err := unix.PidfdGetfd(pidfd, First+i, 0)
	if err != nil {
		return -1, fmt.Errorf("take %s from the program (its fd %d): pidfd_getfd: %w", sp, First+i, err)
	}
	if err := sp.matches(fd); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("take %s from the program (its fd %d): %w", sp, First+i, err)
	}
	return fd, nil
}

// matches checks that fd is a socket of sp's family and type, bound to
// sp's address.
func (sp Spec) matches(fd int) error {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return errors.New("not a socket")
	}
	dom, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || dom != sp.family() || typ != sp.sockType() {
		return fmt.Errorf("a socket of another kind (domain %d, type %d)", dom, typ)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	ok := false
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		ok = sp.family() == unix.AF_INET && a.Port == int(sp.ap.Port()) && a.Addr == sp.ap.Addr().As4()
	case *unix.SockaddrInet6:
		ok = sp.family() == unix.AF_INET6 && a.Port == int(sp.ap.Port()) && a.Addr == sp.ap.Addr().As16()
	case *unix.SockaddrUnix:
		ok = sp.family() == unix.AF_UNIX && a.Name == sp.Addr
	}
	if !ok {
		return fmt.Errorf("bound to another address (%v)", sa)
	}
	return nil
}

// Env is what a run is told of its sockets, besides LISTEN_PID (its own
// pid, set by the exec shim): LISTEN_FDS and LISTEN_FDNAMES.
func Env(specs []Spec) []string {
	names := make([]string, len(specs))
	for i, sp := range specs {
		names[i] = sp.Name
	}
	return []string{"LISTEN_FDS=" + strconv.Itoa(len(specs)), "LISTEN_FDNAMES=" + strings.Join(names, ":")}
}

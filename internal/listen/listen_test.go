package listen

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Spec{
		"tcp:127.0.0.1:8080":              {Network: "tcp", Addr: "127.0.0.1:8080"},
		"web=tcp:0.0.0.0:80,backlog=128":  {Name: "web", Network: "tcp", Addr: "0.0.0.0:80", Backlog: 128},
		"tcp6:[::1]:8080":                 {Network: "tcp6", Addr: "[::1]:8080"},
		"udp:127.0.0.1:53":                {Network: "udp", Addr: "127.0.0.1:53"},
		"admin=unix:/run/a.sock,mode=660": {Name: "admin", Network: "unix", Addr: "/run/a.sock", Mode: 0o660, SetMode: true},
	} {
		got, err := Parse(in)
		got.ap = netipZero(got.ap)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"127.0.0.1:8080":                    `unknown network "127.0.0.1"`,
		"/run/a.sock":                       "want [NAME=]tcp:HOST:PORT",
		"http:127.0.0.1:80":                 `unknown network "http"`,
		"tcp:localhost:80":                  "numeric IP address",
		"tcp:127.0.0.1:0":                   "port 0",
		"tcp6:127.0.0.1:80":                 "an IPv6 one",
		"tcp:[::1]:80":                      "IPv4 address",
		"tcp:127.0.0.1:99999":               "HOST:PORT",
		"unix:relative.sock":                "absolute path",
		"unix:/" + strings.Repeat("x", 120): "at most 107 bytes",
		"tcp:127.0.0.1:80,mode=600":         `unknown option "mode=600"`,
		"udp:127.0.0.1:53,backlog=5":        `unknown option "backlog=5"`,
		"tcp:127.0.0.1:80,backlog=0":        `backlog "0"`,
		"unix:/x.sock,mode=999":             `mode "999"`,
		"unix:/x.sock,owner=nosuchuser9":    "no such user",
		"bad name=tcp:127.0.0.1:80":         "letters, digits",
		"a:b=tcp:127.0.0.1:80":              "unknown network",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), msg) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Parse(%q): %v, want one line with %q", in, err, msg)
		}
	}
	if sp, err := Parse("unix:/x.sock,owner=root:root"); err != nil || sp.uid != 0 || sp.gid != 0 {
		t.Errorf("owner=root:root: %+v, %v", sp, err)
	}
}

func netipZero[T comparable](T) (z T) { return z }

func TestURL(t *testing.T) {
	for in, want := range map[string]string{
		"tcp:127.0.0.1:8080": "http://127.0.0.1:8080/", "tcp:0.0.0.0:80": "http://127.0.0.1:80/",
		"tcp6:[::]:80": "http://[::1]:80/", "udp:127.0.0.1:53": "", "unix:/a.sock": "",
	} {
		sp, err := Parse(in)
		if err != nil || sp.URL() != want {
			t.Errorf("URL of %s = %q, %v; want %q", in, sp.URL(), err, want)
		}
	}
}

// TestOpen binds each kind, and the kernel keeps what arrives while
// nobody accepts: the backlog is the point.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "a.sock")
	for _, s := range []string{"tcp:127.0.0.1:1", "unix:" + sock + ",mode=0640", "udp:127.0.0.1:1"} {
		sp := mustParse(t, s)
		if sp.Network != "unix" {
			sp.ap = freeAddr(t, sp.Network)
			sp.Addr = sp.ap.String()
		}
		fd, err := sp.Open()
		if err != nil {
			t.Fatalf("Open %s: %v", sp, err)
		}
		if err := sp.matches(fd); err != nil {
			t.Errorf("%s: %v", sp, err)
		}
		if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
			t.Errorf("%s: not close-on-exec in respawner", sp)
		}
		switch sp.Network {
		case "tcp":
			c, err := net.Dial("tcp", sp.Addr) // nobody accepts: it waits in the backlog
			if err != nil {
				t.Errorf("connect to %s while nobody accepts: %v", sp, err)
			} else {
				c.Close()
			}
			if _, err := sp.Open(); err == nil || !strings.Contains(err.Error(), "listen on "+sp.String()) || !strings.Contains(err.Error(), "address already in use") {
				t.Errorf("second Open of %s: %v, want address already in use", sp, err)
			}
		case "unix":
			var st unix.Stat_t
			if err := unix.Stat(sock, &st); err != nil || st.Mode&0o777 != 0o640 {
				t.Errorf("%s: mode %o, %v; want 0640", sock, st.Mode&0o777, err)
			}
			if _, err := sp.Open(); err == nil || !strings.Contains(err.Error(), "in use by another process") {
				t.Errorf("second Open of %s: %v, want in use", sp, err)
			}
		}
		unix.Close(fd)
	}
	// A stale unix socket file (its owner gone) is replaced; a regular
	// file in the way is not.
	sp := mustParse(t, "unix:"+sock)
	fd, err := sp.Open()
	if err != nil {
		t.Fatalf("over a stale socket file: %v", err)
	}
	unix.Close(fd)
	plain := filepath.Join(dir, "plain")
	os.WriteFile(plain, nil, 0o644)
	if _, err := mustParse(t, "unix:"+plain).Open(); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
}

// TestRecover takes a socket back from a process that holds it as fd 3,
// and refuses one that is not what the spec says.
func TestRecover(t *testing.T) {
	sp := mustParse(t, "tcp:127.0.0.1:1")
	sp.ap = freeAddr(t, "tcp")
	sp.Addr = sp.ap.String()
	fd, err := sp.Open()
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "listener")
	cmd := exec.Command("sleep", "30")
	cmd.ExtraFiles = []*os.File{f}
	var pidfd int = -1
	cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait(); unix.Close(pidfd) }()
	got, err := Recover(pidfd, 0, sp)
	if err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if err := sp.matches(got); err != nil {
		t.Errorf("recovered: %v", err)
	}
	unix.Close(got)
	other := sp
	other.ap = freeAddr(t, "tcp")
	if _, err := Recover(pidfd, 0, other); err == nil || !strings.Contains(err.Error(), "bound to another address") {
		t.Errorf("Recover of another address: %v", err)
	}
	if _, err := Recover(pidfd, 5, sp); err == nil || !strings.Contains(err.Error(), "its fd 8") {
		t.Errorf("Recover of a descriptor it does not have: %v", err)
	}
}

func TestEnv(t *testing.T) {
	got := Env([]Spec{{Name: "web"}, {Name: "admin"}})
	if strings.Join(got, " ") != "LISTEN_FDS=2 LISTEN_FDNAMES=web:admin" {
		t.Errorf("Env = %q", got)
	}
}

// FuzzParse: Parse never panics, errors are one bounded line, and what it
// accepts has a known network and a name LISTEN_FDNAMES can carry.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"tcp:127.0.0.1:80", "web=tcp6:[::1]:80,backlog=5", "unix:/a,mode=600", "x=y=z", ",,", "=tcp:1.2.3.4:5", "tcp:1.2.3.4:5,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sp, err := Parse(s)
		if err != nil {
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("Parse(%q): a multi-line error", s)
			}
			return
		}
		switch sp.Network {
		case "tcp", "tcp6", "udp", "udp6", "unix":
		default:
			t.Fatalf("Parse(%q) = network %q", s, sp.Network)
		}
		if strings.ContainsAny(sp.Name, ":\x00\n") {
			t.Fatalf("Parse(%q) = name %q", s, sp.Name)
		}
	})
}

func mustParse(t *testing.T, s string) Spec {
	t.Helper()
	sp, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

// freeAddr is a free loopback port for network (tcp or udp).
func freeAddr(t *testing.T, network string) netip.AddrPort {
	t.Helper()
	if network == "udp" {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).AddrPort()
}

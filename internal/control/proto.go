package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Status is what `status --json` prints; the field names are a stable contract.
type Status struct {
	Name         string    `json:"name"`
	State        string    `json:"state"`
	PID          int       `json:"pid"`
	Restarts     int       `json:"restarts"`
	LastExit     *Exit     `json:"last_exit"`
	Health       string    `json:"health"`
	Since        time.Time `json:"since"`
	Plugins      []string  `json:"plugins"`
	Program      string    `json:"program"`
	Args         []string  `json:"args"`
	RespawnerPID int       `json:"respawner_pid"`
	KeeperPID    int       `json:"keeper_pid,omitempty"` // daemon mode: the process holding the output pipes
	Started      time.Time `json:"started,omitzero"`     // start of the current run, when running
	NextRestart  time.Time `json:"next_restart,omitzero"`
	Reason       string    `json:"reason,omitempty"`
	LastProbe    string    `json:"last_probe,omitempty"` // result of the last health probe
	// Where the log goes: the path of its file (NAME.log, --log-file, or
	// respawner's stderr when that is a file), "syslog", or "stderr".
	Log string `json:"log,omitempty"`
	// How each run is set up, when start was told (never the environment's
	// values, which may hold secrets).
	User   string            `json:"user,omitempty"`   // --user: the program's user
	Group  string            `json:"group,omitempty"`  // --user/--group: its primary group
	Dir    string            `json:"dir,omitempty"`    // --chdir
	Umask  string            `json:"umask,omitempty"`  // --umask, octal: "0027"
	Limits map[string]string `json:"limits,omitempty"` // --limit: {"nofile": "64:128"}
	// With --ready notify or --watchdog (sd_notify): whether the current
	// run said READY=1 (--ready notify only), its STATUS= text, its
	// watchdog period while the clock runs, and how many messages on the
	// notify socket were ignored (not from the instance's processes,
	// truncated, malformed).
	Ready         *bool  `json:"ready,omitempty"`
	StatusText    string `json:"status_text,omitempty"`
	Watchdog      string `json:"watchdog,omitempty"`
	NotifyIgnored uint64 `json:"notify_ignored,omitempty"`
	// With --listen: the sockets respawner holds for the program, in the
	// order of its descriptors.
	Listen []Listener `json:"listen,omitempty"`
}

// Listener is one --listen socket: its LISTEN_FDNAMES name, its address
// (tcp:127.0.0.1:8080) and the descriptor each run gets it as.
type Listener struct {
	Name    string `json:"name"`
	Address string `json:"address"`
	FD      int    `json:"fd"`
}

// Exit is {"code": N} or {"signal": "SIGKILL"}.
type Exit struct {
	Code   *int   `json:"code,omitempty"`
	Signal string `json:"signal,omitempty"`
}

// Reply is the answer to a request other than status.
type Reply struct {
	OK    bool   `json:"ok,omitempty"`
	Error string `json:"error,omitempty"`
}

// Request kinds.
const (
	ReqStatus  = "status"
	ReqStop    = "stop"
	ReqRestart = "restart"
	ReqSignal  = "signal"
)

// Request is one request line: a kind, and for ReqSignal the signal and
// whether it goes to the program's process group ("signal 1", "signal 1
// group").
type Request struct {
	Kind  string
	Sig   syscall.Signal
	Group bool
}

// String is the request's line, without the newline.
func (r Request) String() string {
	if r.Kind != ReqSignal {
		return r.Kind
	}
	s := ReqSignal + " " + strconv.Itoa(int(r.Sig))
	if r.Group {
		s += " group"
	}
	return s
}

// ParseRequest reads one request line. It accepts exactly the known forms:
// a word, or "signal N" and "signal N group" with N a signal number (1-64,
// no sign or leading zero), single spaces between.
func ParseRequest(line string) (Request, error) {
	line = strings.TrimSpace(line)
	switch line {
	case ReqStatus, ReqStop, ReqRestart:
		return Request{Kind: line}, nil
	}
	if rest, ok := strings.CutPrefix(line, ReqSignal+" "); ok {
		num, group := rest, false
		if n, ok := strings.CutSuffix(rest, " group"); ok {
			num, group = n, true
		}
		if n, err := strconv.Atoi(num); err == nil && n >= 1 && n <= 64 && num == strconv.Itoa(n) {
			return Request{Kind: ReqSignal, Sig: syscall.Signal(n), Group: group}, nil
		}
	}
	if len(line) > 32 {
		line = line[:32] + "..."
	}
	return Request{}, fmt.Errorf("unknown request %q", line)
}

// PeerAllowed checks with SO_PEERCRED that the peer on fd is root or runs
// under our uid.
func PeerAllowed(fd int) (uid uint32, ok bool) {
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return 0, false
	}
	return cred.Uid, cred.Uid == 0 || int(cred.Uid) == unix.Geteuid()
}

// Listen creates NAME.sock (mode 0600) in the directory and returns a
// non-blocking listening socket for the event loop. Call it only while
// holding the instance Lock. The socket is bound through
// /proc/self/fd/DIRFD/NAME.sock, so the path cannot lead out of the
// directory that was checked.
func (d *Dir) Listen(name string) (int, error) {
	return d.listenFile(name + ".sock")
}

// ListenKeep creates NAME.keep (mode 0600), where the instance's keeper
// takes the next start's request (see internal/keeper). Call it only while
// holding the instance Lock.
func (d *Dir) ListenKeep(name string) (int, error) {
	return d.listenFile(name + ".keep")
}

// DialKeep connects to the keeper of name, if one listens.
func (d *Dir) DialKeep(name string, timeout time.Duration) (*net.UnixConn, error) {
	c, err := d.connectFile(name+".keep", timeout)
	if err != nil {
		return nil, err
	}
	return c.(*net.UnixConn), nil
}

// listenFile binds file under a temporary name, listens, and only then
// renames it into place: the name appears when the socket accepts, so a
// client that finds it never meets a refused connection from an instance
// that is starting (and can wait for the name in inotify, see dial).
func (d *Dir) listenFile(file string) (int, error) {
	if err := fileName(file); err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tmp := file + ".new"
	d.Remove(tmp)
	old := unix.Umask(0o177)
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: d.ProcPath(tmp)})
	unix.Umask(old)
	if err == nil {
		err = unix.Listen(fd, 16)
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, file)
	}
	if err != nil {
		unix.Close(fd)
		d.Remove(tmp)
		return -1, fmt.Errorf("listen on %s: %w", filepath.Join(d.Path, file), err)
	}
	return fd, nil
}

// dial connects to the instance's socket. It opens NAME.sock with O_PATH and
// O_NOFOLLOW relative to the directory, checks that it is a socket, and
// connects through /proc/self/fd/N of that descriptor: connect(2) would
// follow a symbolic link, and takes only a path.
//
// A live instance without a socket that answers is starting (it holds its
// lock and is about to listen) or ending (its socket is gone, its lock not
// yet): dial waits, until timeout, for the socket's name to appear in the
// directory (inotify) or the instance to exit (its pidfd), and tries again.
func (d *Dir) dial(name string, timeout time.Duration) (net.Conn, error) {
	deadline := time.Now().Add(timeout)
	var w *dirWatch
	defer func() { w.close() }()
	for {
		c, err := d.connect(name, timeout)
		if err == nil {
			return c, nil
		}
		pid, live := d.Live(name)
		if !live {
			d.CleanStale(name)
			return nil, ErrNotRunning
		}
		if errors.Is(err, unix.EACCES) {
			return nil, notAllowed("cannot connect to %s: only root or the instance's own user may control it", SockPath(d.Path, name))
		}
		transient := errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ECONNREFUSED)
		if !transient || time.Now().After(deadline) {
			return nil, fmt.Errorf("connect to %s: %w", name, err)
		}
		if w == nil {
			// Watch first, then look again: a socket that appeared in
			// between is found by the next connect.
			if w, err = d.watch(pid); err != nil {
				return nil, fmt.Errorf("connect to %s: %w", name, err)
			}
			continue
		}
		w.wait(deadline)
	}
}

// dirWatch wakes a waiting client when a name appears in the runtime dir
// (inotify: IN_CREATE, IN_MOVED_TO) or the instance's process exits (its
// pidfd); both are descriptors, waited for with poll.
type dirWatch struct{ ino, pidfd int }

func (d *Dir) watch(pid int) (*dirWatch, error) {
	ino, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(ino, d.ProcPath("."), unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		unix.Close(ino)
		return nil, fmt.Errorf("inotify %s: %w", d.Path, err)
	}
	w := &dirWatch{ino: ino, pidfd: -1}
	if fd, err := unix.PidfdOpen(pid, 0); err == nil {
		w.pidfd = fd
	}
	return w, nil
}

// wait returns when something changed or deadline passed, draining the
// inotify queue.
func (w *dirWatch) wait(deadline time.Time) {
	fds := []unix.PollFd{{Fd: int32(w.ino), Events: unix.POLLIN}}
	if w.pidfd >= 0 {
		fds = append(fds, unix.PollFd{Fd: int32(w.pidfd), Events: unix.POLLIN})
	}
	ms := max(int((time.Until(deadline)+time.Millisecond-1)/time.Millisecond), 0)
	if n, err := unix.Poll(fds, ms); n > 0 && err == nil {
		if len(fds) > 1 && fds[1].Revents != 0 {
			unix.Close(w.pidfd) // it exited: Live says so from now on, and a readable pidfd must not spin
			w.pidfd = -1
		}
		var buf [4096]byte
		for {
			if n, _ := unix.Read(w.ino, buf[:]); n <= 0 {
				break
			}
		}
	}
}

func (w *dirWatch) close() {
	if w == nil {
		return
	}
	unix.Close(w.ino)
	if w.pidfd >= 0 {
		unix.Close(w.pidfd)
	}
}

func (d *Dir) connect(name string, timeout time.Duration) (net.Conn, error) {
	return d.connectFile(name+".sock", timeout)
}

func (d *Dir) connectFile(file string, timeout time.Duration) (net.Conn, error) {
	if err := fileName(file); err != nil {
		return nil, err
	}
	fd, err := unix.Openat(d.fd, file, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil, fmt.Errorf("%s in runtime dir %s is not a socket (mode %o)", file, d.Path, st.Mode)
	}
	return net.DialTimeout("unix", "/proc/self/fd/"+strconv.Itoa(fd), timeout)
}

func request(c net.Conn, req string, timeout time.Duration) (*bufio.Reader, []byte, error) {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte(req + "\n")); err != nil {
		return nil, nil, fmt.Errorf("send %s: %w", req, err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		return nil, nil, fmt.Errorf("read reply to %s: %w", req, err)
	}
	var rep Reply
	if json.Unmarshal(line, &rep) == nil && rep.Error != "" {
		if rest, ok := strings.CutPrefix(rep.Error, ErrNotAllowed.Error()+": "); ok {
			return nil, nil, notAllowed("%s", rest)
		}
		return nil, nil, errors.New(rep.Error)
	}
	return r, line, nil
}

// QueryStatus asks the instance name for its status. ErrNotRunning means no
// live instance (see Orphan for a program that still runs); ErrNotAllowed,
// that the caller may not ask; any other error means its state is unknown.
func (d *Dir) QueryStatus(name string, timeout time.Duration) (*Status, error) {
	c, err := d.dial(name, timeout)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_, line, err := request(c, ReqStatus, timeout)
	if err != nil {
		return nil, err
	}
	var st Status
	if err := json.Unmarshal(line, &st); err != nil {
		return nil, fmt.Errorf("bad status reply: %w", err)
	}
	return &st, nil
}

// Stop asks the instance to stop and waits up to timeout until the program
// and respawner itself are gone.
func (d *Dir) Stop(name string, timeout time.Duration) error {
	c, err := d.dial(name, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	// Whom to wait for: the pid the kernel gives for the socket's owner,
	// which is respawner's pid as this process sees it. NAME.pid holds the
	// pid respawner has in its own PID namespace: for one that is a
	// container's PID 1, stopped from outside, that is 1, the host's init,
	// which would be waited for until the timeout.
	pid := peerPID(c)
	r, _, err := request(c, ReqStop, timeout)
	if err != nil {
		return err
	}
	// The instance closes the connection by exiting.
	deadline := time.Now().Add(timeout)
	c.SetDeadline(deadline)
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%s did not stop within %s", name, timeout)
	}
	if pid > 0 && !WaitGone(pid, time.Until(deadline)) {
		return fmt.Errorf("%s did not exit within %s", name, timeout)
	}
	return nil
}

// peerPID is the pid of the process at the other end of the unix socket c
// (SO_PEERCRED: the one that called listen, for a client), in the caller's
// PID namespace; 0 when it is not visible there or cannot be told.
func peerPID(c net.Conn) int {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return 0
	}
	pid := 0
	raw.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}

// Restart asks the instance to restart its program and waits, up to
// timeout, for the answer: nil once the new run is up, else why it is not
// (its run failed, or a stop overtook it). ErrNotRunning: no such instance.
func (d *Dir) Restart(name string, timeout time.Duration) error {
	c, err := d.dial(name, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_, line, err := request(c, ReqRestart, timeout)
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%s ended before the new run was up", name)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("the new run of %s was not up within %s", name, timeout)
	case err != nil:
		return err
	}
	return replyError(line)
}

// Signal asks the instance to send sig to its program's main process, or
// with group to the program's process group. ErrNotRunning: no such
// instance; any other error, that the program is not running (or the
// signal could not be sent).
func (d *Dir) Signal(name string, sig syscall.Signal, group bool, timeout time.Duration) error {
	c, err := d.dial(name, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	_, line, err := request(c, Request{Kind: ReqSignal, Sig: sig, Group: group}.String(), timeout)
	if err != nil {
		return err
	}
	return replyError(line)
}

// replyError checks that a Reply says ok.
func replyError(line []byte) error {
	var rep Reply
	if err := json.Unmarshal(line, &rep); err != nil {
		return fmt.Errorf("bad reply: %w", err)
	}
	if !rep.OK {
		return errors.New("no answer")
	}
	return nil
}

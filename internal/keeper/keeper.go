// Package keeper is the small process that holds what must outlive a
// daemonized respawner: the program's output pipes, and the place in the
// process tree where the instance's processes land when respawner dies.
//
// A daemonizing `start` runs the keeper (respawner re-executed, new session),
// and the keeper forks the supervising respawner. The keeper is a child
// subreaper and holds both ends of the program's stdout and stderr pipes
// without reading them, so:
//
//   - when respawner is killed, the program keeps writing into a pipe that
//     still has a reader (no SIGPIPE), up to the pipe's capacity (1 MiB where
//     the system allows it; then the program blocks in write, as under s6);
//   - everything respawner had below it (the program, processes a crashed run
//     left behind) is reparented to the keeper, not to init, so the next
//     respawner finds it by walking the keeper's children;
//   - the next `start` of that name asks the keeper, over NAME.keep, to fork
//     the new respawner, which takes the same pipes, logs what was written
//     meanwhile, and adopts the program.
//
// The keeper does nothing else: it never reads the pipes, never signals the
// program, and reaps only its own children. It exits when it has no child
// left (the instance is gone) or when its respawner ends normally and says
// "bye". This is s6-svscan's fd holding, in one process per instance.
package keeper

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Environment variables between start, the keeper and respawner.
const (
	// EnvRole marks the process that start launches as the keeper.
	EnvRole = "RESPAWNER_KEEPER"
	// EnvFDs tells respawner, in its own descriptor numbers, its connection
	// to the keeper and the pipes: "conn outR outW errR errW".
	EnvFDs = "RESPAWNER_KEEPER_FDS"
	// EnvReport names the descriptor of the report pipe to start.
	EnvReport = "RESPAWNER_DAEMON_REPORT_FD"
)

// PipeSize is what the keeper asks of each pipe: what a program may write
// while no respawner reads (fs.pipe-max-size, 1 MiB by default, caps it for
// users other than root).
const PipeSize = 1 << 20

// maxRequest bounds a spawn request: argv and environment of a start.
const maxRequest = 4 << 20

// child descriptor numbers in a respawner forked by the keeper.
const (
	fdReport = 3
	fdConn   = 4
	fdPipes  = 5 // outR, outW, errR, errW
)

type keeper struct {
	exe    string
	null   int    // /dev/null, the stdio of every respawner it forks
	pipes  [4]int // stdout r, w; stderr r, w
	mu     sync.Mutex
	listen *net.UnixListener // NAME.keep, handed over by respawner
}

// Run is the keeper's main: argv and env are those of the respawner to fork
// (start's own, less EnvRole), report the pipe to start. It never returns.
func Run(argv, env []string, report int) {
	code, err := run(argv, env, report)
	if err != nil {
		msg := "error\nkeeper: " + err.Error() + "\n"
		unix.Write(report, []byte(msg))
	}
	os.Exit(code)
}

func run(argv, env []string, report int) (int, error) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return 1, fmt.Errorf("prctl PR_SET_CHILD_SUBREAPER: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return 1, fmt.Errorf("find own executable: %w", err)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return 1, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	k := &keeper{exe: exe, null: null}
	for i := 0; i < 4; i += 2 {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			return 1, fmt.Errorf("pipe2: %w", err)
		}
		unix.FcntlInt(uintptr(p[1]), unix.F_SETPIPE_SZ, PipeSize) // best effort
		k.pipes[i], k.pipes[i+1] = p[0], p[1]
	}
	// Signals that would end a keeper are taken and dropped: a TERM sent to
	// the whole session must stop the program through respawner, not leave
	// it without its pipes. Being handled (not ignored), they are back to
	// their defaults in the respawner it forks. SIGKILL ends it, and then
	// the program keeps running as long as respawner lives.
	drop := make(chan os.Signal, 8)
	signal.Notify(drop, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGPIPE)
	go func() {
		for range drop {
		}
	}()
	chld := make(chan os.Signal, 1)
	signal.Notify(chld, unix.SIGCHLD)
	wd, _ := os.Getwd()
	k.mu.Lock()
	err = k.spawn(argv, env, wd, report)
	k.mu.Unlock()
	unix.Close(report)
	if err != nil {
		return 1, err
	}
	for range chld {
		if k.reap() {
			return 0, nil
		}
	}
	return 0, nil
}

// reap collects every child that has exited. The keeper owns all its
// children (respawners it forked, processes reparented to it), so wait(-1)
// steals nothing from anyone. It reports true when no child is left: there
// is nothing of the instance to keep.
func (k *keeper) reap() bool {
	k.mu.Lock() // a spawn in progress is a child to be
	defer k.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		switch {
		case err == unix.EINTR:
			continue
		case errors.Is(err, unix.ECHILD):
			return true
		case err != nil || pid <= 0:
			return false
		}
	}
}

// spawn forks a respawner with argv and env in dir, its report pipe on fd 3,
// a connection to the keeper on fd 4 and the pipes on 5-8.
func (k *keeper) spawn(argv, env []string, dir string, report int) error {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socketpair: %w", err)
	}
	null := k.null
	env = Internal(env)
	env = append(env, EnvReport+"="+strconv.Itoa(fdReport),
		fmt.Sprintf("%s=%d %d %d %d %d", EnvFDs, fdConn, fdPipes, fdPipes+1, fdPipes+2, fdPipes+3))
	files := []uintptr{uintptr(null), uintptr(null), uintptr(null), uintptr(report), uintptr(fds[1])}
	for _, p := range k.pipes {
		files = append(files, uintptr(p))
	}
	// The respawner stays in the keeper's process group and session (no
	// Setpgid, no Setsid): that group is how respawner tells its siblings
	// (other respawners the keeper forked) from the instance's processes,
	// and while it lives the keeper's pid cannot be reused.
	pid, err := syscall.ForkExec(k.exe, argv, &syscall.ProcAttr{Dir: dir, Env: env, Files: files})
	unix.Close(fds[1])
	if err != nil {
		unix.Close(fds[0])
		return fmt.Errorf("start respawner: %w", err)
	}
	go k.serveRespawner(fds[0], pid)
	return nil
}

// serveRespawner reads what a forked respawner tells its keeper: the
// listening socket NAME.keep (sent with SCM_RIGHTS once respawner holds the
// instance's lock, so two starts racing for a name never take each other's
// socket), and "bye" when it ends normally.
// onlyChild reports whether pid is the keeper's only child.
func (k *keeper) onlyChild(pid int) bool { return onlyChild("self", pid) }

// onlyChild reports whether pid is the only child of process proc ("self"
// or a pid).
func onlyChild(proc string, pid int) bool {
	kids, _ := filepath.Glob("/proc/" + proc + "/task/*/children")
	for _, f := range kids {
		b, _ := os.ReadFile(f)
		for _, s := range strings.Fields(string(b)) {
			if s != strconv.Itoa(pid) {
				return false
			}
		}
	}
	return true
}

func (k *keeper) serveRespawner(conn, pid int) {
	defer unix.Close(conn)
	buf := make([]byte, 64)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(conn, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return // that respawner is gone; its exit is reaped
		}
		switch string(buf[:n]) {
		case "bye":
			// Its respawner ended normally. Exit now, unless something of
			// the instance is still below the keeper besides that
			// respawner (it would lose its output pipe): then the keeper
			// exits when its last child is reaped.
			if k.onlyChild(pid) {
				os.Exit(0)
			}
		case "listen":
			fd, ok := firstFD(oob[:oobn])
			if !ok {
				continue
			}
			f := os.NewFile(uintptr(fd), "keep")
			l, err := net.FileListener(f)
			f.Close()
			if err != nil {
				continue
			}
			k.mu.Lock()
			old := k.listen
			k.listen = l.(*net.UnixListener)
			k.mu.Unlock()
			if old != nil {
				old.Close()
			}
			go k.accept(k.listen)
		}
	}
}

func firstFD(oob []byte) (int, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return -1, false
	}
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil && len(fds) > 0 {
			for _, extra := range fds[1:] {
				unix.Close(extra)
			}
			return fds[0], true
		}
	}
	return -1, false
}

// request is what a start that found this keeper sends: the respawner to fork.
type request struct {
	Argv []string `json:"argv"`
	Env  []string `json:"env"`
	Dir  string   `json:"dir"`
}

func (k *keeper) accept(l *net.UnixListener) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return // closed: replaced by a newer respawner's socket
		}
		go k.serveStart(c)
	}
}

// serveStart forks the respawner a start asks for, with the report pipe it
// sent, if the peer is root or the keeper's own user.
func (k *keeper) serveStart(c *net.UnixConn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	allowed := false
	raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		allowed = err == nil && (cred.Uid == 0 || int(cred.Uid) == os.Geteuid())
	})
	if !allowed {
		c.Write([]byte("permission denied\n"))
		return
	}
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	report, ok := firstFD(oob[:oobn])
	if !ok {
		c.Write([]byte("no report pipe\n"))
		return
	}
	defer unix.Close(report)
	rest, err := io.ReadAll(io.LimitReader(c, maxRequest))
	if err != nil {
		return
	}
	var req request
	if err := json.Unmarshal(append(buf[:n:n], rest...), &req); err != nil || len(req.Argv) == 0 {
		c.Write([]byte("bad request\n"))
		return
	}
	k.mu.Lock()
	err = k.spawn(req.Argv, req.Env, req.Dir, report)
	k.mu.Unlock()
	if err != nil {
		c.Write([]byte(err.Error() + "\n"))
		return
	}
	c.Write([]byte("ok\n"))
}

// Internal returns env without the variables respawner passes between its
// own processes (EnvRole, EnvFDs, EnvReport): neither a respawner the keeper
// forks nor the supervised program may inherit them.
func Internal(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k != EnvRole && k != EnvFDs && k != EnvReport {
			out = append(out, kv)
		}
	}
	return out
}

// Link is respawner's side of the keeper that forked it.
type Link struct {
	PID   int    // the keeper
	Pipes [4]int // the program's stdout read and write ends, then stderr's
	conn  int
}

// Attach returns the link to the keeper when this respawner was forked by
// one, and nil otherwise. The keeper is its parent; the variable that
// named the descriptors is removed, so the program never sees it.
func Attach() (*Link, error) {
	v, ok := os.LookupEnv(EnvFDs)
	if !ok {
		return nil, nil
	}
	os.Unsetenv(EnvFDs)
	f := strings.Fields(v)
	if len(f) != 5 {
		return nil, fmt.Errorf("%s=%q: want five descriptors", EnvFDs, v)
	}
	var fds [5]int
	for i, s := range f {
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			return nil, fmt.Errorf("%s=%q: bad descriptor %q", EnvFDs, v, s)
		}
		fds[i] = n
		unix.CloseOnExec(n)
	}
	l := &Link{PID: os.Getppid(), conn: fds[0]}
	copy(l.Pipes[:], fds[1:])
	return l, nil
}

// Alone reports whether this respawner is all the keeper holds: no program
// or leftover of an earlier respawner below it.
func (l *Link) Alone() bool { return onlyChild(strconv.Itoa(l.PID), os.Getpid()) }

// Hand gives the keeper the listening socket NAME.keep, on which it takes
// the request of the next start once this respawner is gone.
func (l *Link) Hand(listener int) error {
	err := unix.Sendmsg(l.conn, []byte("listen"), unix.UnixRights(listener), nil, 0)
	unix.Close(listener)
	if err != nil {
		return fmt.Errorf("hand NAME.keep to the keeper: %w", err)
	}
	return nil
}

// Bye tells the keeper that the instance ended normally (nothing of it is
// left to keep) and waits up to timeout for it to exit, so that a stop that
// waits for respawner also finds the keeper gone.
func (l *Link) Bye(timeout time.Duration) {
	pidfd, err := unix.PidfdOpen(l.PID, 0)
	unix.Write(l.conn, []byte("bye"))
	if err != nil {
		return
	}
	defer unix.Close(pidfd)
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for {
		_, err := unix.Poll(fds, int(timeout/time.Millisecond))
		if err != unix.EINTR {
			return
		}
	}
}

// Ask sends a start's request to the keeper on c (NAME.keep): fork the
// respawner of argv and env in dir, reporting on report. It returns once the
// keeper has forked it; the report pipe then says how the start went.
func Ask(c *net.UnixConn, argv, env []string, dir string, report *os.File) error {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	b, err := json.Marshal(request{Argv: argv, Env: env, Dir: dir})
	if err != nil {
		return err
	}
	// The descriptor travels with the first byte; the rest follows.
	if _, _, err := c.WriteMsgUnix(b[:1], unix.UnixRights(int(report.Fd())), nil); err != nil {
		return fmt.Errorf("ask the keeper: %w", err)
	}
	if _, err := c.Write(b[1:]); err != nil {
		return fmt.Errorf("ask the keeper: %w", err)
	}
	c.CloseWrite()
	reply, _ := io.ReadAll(io.LimitReader(c, 4096))
	if s := strings.TrimSpace(string(reply)); s != "ok" {
		if s == "" {
			s = "no answer"
		}
		return fmt.Errorf("the keeper of this instance refused to start respawner: %s", s)
	}
	return nil
}

package loop

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/machine"
	"golang.org/x/sys/unix"
)

// The notify socket (--ready notify, --watchdog): what systemd gives a
// Type=notify service as NOTIFY_SOCKET, a datagram socket on which the
// program says READY=1, STATUS=..., WATCHDOG=1 (sd_notify(3)).
//
// It is an abstract unix socket, @respawner/NAME/RANDOM: it has no file, so
// a program running as another user (--user) reaches it however the
// runtime dir (0700) is closed, its name is short whatever the runtime
// dir's path, and nothing is left behind when respawner dies. Anyone on
// the host (in respawner's network namespace) can send to it, so every
// message is authenticated: SO_PASSCRED makes the kernel attach the
// sender's pid (SCM_CREDENTIALS), and only a process of the instance — the
// watched process, a process of the run being collected, a descendant of
// respawner (not through the hook host) or of its keeper — is heard. Where
// the kernel has it (6.5), SO_PASSPIDFD also attaches a pidfd of the sender
// (SCM_PIDFD): once the pid was found to be ours, the pidfd still naming a
// live process proves the pid was not recycled meanwhile. The random part
// is not a secret (abstract names are listed in /proc/net/unix); it keeps
// another user from binding the name first.

// notifySocket is the loop's end of the notify socket.
type notifySocket struct {
	fd       int
	name     string // NOTIFY_SOCKET, "@respawner/NAME/RANDOM"
	rejected uint64 // messages ignored: unknown sender, truncated, malformed
	buf      [notifyBufSize]byte
	oob      [notifyOOBSize]byte
}

const (
	// notifyBufSize bounds a message, as systemd does (NOTIFY_BUFFER_MAX,
	// PIPE_BUF); a longer one is truncated by the kernel and ignored.
	notifyBufSize = 4096
	// notifyOOBSize holds the credentials and the sender's pidfd, and no
	// room for descriptors: the kernel drops what a sender passes
	// (MSG_CTRUNC) instead of installing it in our table, so the loop never
	// close(2)s a stranger's file, whose flush may block (a hung FUSE or NFS
	// file), and BARRIER=1's pipe end is released all the same, once every
	// earlier message has been read: the sender's barrier completes.
	notifyOOBSize = 32 + 24
	// notifyPerTurn bounds the messages read in one turn of the loop: the
	// socket stays readable and epoll_wait brings the loop back after it
	// has looked at its other descriptors.
	notifyPerTurn = 16
	// statusMax bounds the STATUS= text kept for status.
	statusMax = 256
)

// notifyPrefix starts every notify socket's name.
const notifyPrefix = "@respawner/"

// notifying reports whether the program gets a notify socket.
func (l *Loop) notifying() bool {
	return l.opt.Machine.Notify || l.opt.Machine.Watchdog > 0
}

// openNotify creates the notify socket and the program's environment that
// names it. An adopted program keeps the name it was given, when it can be
// bound again, so that its pings reach this respawner.
func (l *Loop) openNotify() error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("notify socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSCRED, 1); err != nil {
		unix.Close(fd)
		return fmt.Errorf("notify socket: setsockopt SO_PASSCRED: %w", err)
	}
	// Kernels before 6.5 lack it; the pid alone is checked then.
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PASSPIDFD, 1)
	name := ""
	if a := l.opt.Adopt; a != nil {
		if name = l.adoptedNotifyName(a.PID); name != "" {
			if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
				l.log.Warn("cannot take over the adopted program's notify socket; it is not heard until its next run", "socket", name, "error", err)
				name = ""
			}
		}
	}
	for try := 0; name == ""; try++ {
		var rnd [8]byte
		if _, err := unix.Getrandom(rnd[:], 0); err != nil {
			unix.Close(fd)
			return fmt.Errorf("notify socket: getrandom: %w", err)
		}
		name = notifyPrefix + l.opt.Name + "/" + hex.EncodeToString(rnd[:])
		if err := unix.Bind(fd, &unix.SockaddrUnix{Name: name}); err != nil {
			name = ""
			if !errors.Is(err, unix.EADDRINUSE) || try > 3 {
				unix.Close(fd)
				return fmt.Errorf("notify socket: bind: %w", err)
			}
		}
	}
	if err := epollAdd(l.epfd, fd); err != nil {
		unix.Close(fd)
		return err
	}
	l.nfy = &notifySocket{fd: fd, name: name}
	// Last of the settings of every start, over --env and the env files,
	// so that they cannot point the program elsewhere.
	l.setEnv("NOTIFY_SOCKET=" + name)
	if d := l.opt.Machine.Watchdog; d > 0 {
		l.setEnv("WATCHDOG_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
		// WATCHDOG_PID must be the program's own pid, known only after the
		// fork: the exec shim sets it in the child just before its exec.
		l.opt.PIDEnv = append(l.opt.PIDEnv, "WATCHDOG_PID")
	}
	l.log.Debug("notify socket", "socket", name)
	return nil
}

// adoptedNotifyName is the NOTIFY_SOCKET an adopted program was started
// with, when it is one of this instance's.
func (l *Loop) adoptedNotifyName(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for kv := range bytes.SplitSeq(b, []byte{0}) {
		v, ok := bytes.CutPrefix(kv, []byte("NOTIFY_SOCKET="+notifyPrefix+l.opt.Name+"/"))
		if !ok || len(v) != 16 {
			continue
		}
		if _, err := hex.DecodeString(string(v)); err == nil {
			return notifyPrefix + l.opt.Name + "/" + string(v)
		}
	}
	return ""
}

// notifyReadable reads what the program said, a bounded number of messages
// per turn.
func (l *Loop) notifyReadable() {
	for range notifyPerTurn {
		if l.nfy == nil || l.exit != nil || !l.recvNotify() {
			return
		}
	}
}

// recvNotify reads and handles one message; false when there was none.
func (l *Loop) recvNotify() bool {
	n := l.nfy
	iov := unix.Iovec{Base: &n.buf[0]}
	iov.SetLen(len(n.buf))
	msg := unix.Msghdr{Iov: &iov, Control: &n.oob[0]}
	msg.SetIovlen(1)
	msg.SetControllen(len(n.oob))
	r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(n.fd), uintptr(unsafe.Pointer(&msg)),
		unix.MSG_DONTWAIT|unix.MSG_CMSG_CLOEXEC|unix.MSG_TRUNC)
	if errno == unix.EINTR {
		return true
	}
	if errno != 0 {
		return false // EAGAIN: nothing more
	}
	size := int(r)
	pid, pidfd, fds := l.notifyControl(n.oob[:msg.Controllen])
	defer func() {
		for _, fd := range fds { // SCM_RIGHTS (BARRIER=1's, or junk): never kept
			unix.Close(fd)
		}
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
	}()
	switch {
	case !l.notifySender(pid, pidfd):
		n.rejected++
		l.log.Debug("notify message from a process not of this instance ignored", "pid", pid, "ignored", n.rejected)
		return true
	case size > len(n.buf) || msg.Flags&unix.MSG_TRUNC != 0:
		n.rejected++
		l.log.Debug("notify message too long; ignored", "pid", pid, "bytes", size, "max", len(n.buf))
		return true
	case bytes.IndexByte(n.buf[:size], 0) >= 0:
		n.rejected++
		l.log.Debug("notify message with a NUL byte; ignored", "pid", pid)
		return true
	}
	l.notifyMessage(pid, n.buf[:size], len(fds))
	return true
}

// notifyControl takes the sender's pid, its pidfd (-1 without) and any
// descriptors passed from a message's control data.
func (l *Loop) notifyControl(oob []byte) (pid, pidfd int, fds []int) {
	pidfd = -1
	for len(oob) > 0 {
		h, data, rest, err := unix.ParseOneSocketControlMessage(oob)
		if err != nil {
			break
		}
		oob = rest
		if h.Level != unix.SOL_SOCKET {
			continue
		}
		switch h.Type {
		case unix.SCM_CREDENTIALS:
			if len(data) >= unix.SizeofUcred {
				pid = int((*unix.Ucred)(unsafe.Pointer(&data[0])).Pid)
			}
		case unix.SCM_PIDFD:
			if len(data) >= 4 {
				pidfd = int(*(*int32)(unsafe.Pointer(&data[0])))
			}
		case unix.SCM_RIGHTS:
			for i := 0; i+4 <= len(data); i += 4 {
				fds = append(fds, int(*(*int32)(unsafe.Pointer(&data[i]))))
			}
		}
	}
	return pid, pidfd, fds
}

// notifySender reports whether pid is one of the instance's processes: the
// watched one, one of the run being collected, or one below respawner (not
// through the hook host) or its keeper. With the sender's pidfd, the sender
// must still be alive after that check, so that its pid cannot have been
// given to one of ours meanwhile.
func (l *Loop) notifySender(pid, pidfd int) bool {
	if pid <= 0 {
		return false // no credentials, or a sender in another pid namespace
	}
	ours := pid == l.pid && l.pidfd >= 0
	if !ours {
		for _, p := range l.tree {
			ours = ours || p == pid
		}
	}
	if !ours { // ours() leaves the hook host and its plugins out
		ours = l.ours(pid)
	}
	if ours && pidfd >= 0 {
		ours = unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil
	}
	return ours
}

// notifyMessage acts on one authenticated message: newline-separated
// KEY=VALUE assignments, handled in systemd's order whatever their order
// in the message.
func (l *Loop) notifyMessage(pid int, msg []byte, nfds int) {
	var ready, barrier bool
	var status, mainPID, watchdog, wdUsec, extend string
	var hasStatus bool
	lines := 0
	for line := range bytes.SplitSeq(msg, []byte{'\n'}) {
		if len(line) == 0 {
			continue
		}
		lines++
		k, v, _ := strings.Cut(string(line), "=")
		switch k {
		case "READY":
			ready = ready || v == "1"
		case "STATUS":
			status, hasStatus = v, true
		case "MAINPID":
			mainPID = v
		case "WATCHDOG":
			watchdog = v
		case "WATCHDOG_USEC":
			wdUsec = v
		case "EXTEND_TIMEOUT_USEC":
			extend = v
		case "BARRIER":
			barrier = barrier || v == "1"
		default:
			l.log.Trace("notify assignment not handled", "pid", pid, "key", k)
		}
	}
	if barrier {
		// A barrier stands alone; its descriptor was released by the
		// kernel as the message was read (notifyOOBSize), now that every
		// earlier message has been handled.
		if lines != 1 {
			l.log.Debug("BARRIER=1 with other assignments; message ignored", "pid", pid, "assignments", lines, "fds", nfds)
		}
		return
	}
	if mainPID != "" {
		l.mainPIDNotified(pid, mainPID)
	}
	if ready {
		if l.m.Snapshot().Unready {
			l.log.Info("ready", "pid", pid)
		}
		l.step(machine.ReadyNotified{})
	}
	if hasStatus {
		text := sanitizeStatus(status)
		if text != l.m.Snapshot().Status {
			l.log.Debug("program status", "pid", pid, "status", text)
		}
		l.step(machine.StatusNotified{Text: text})
	}
	switch watchdog {
	case "":
	case "1":
		l.log.Trace("watchdog ping", "pid", pid)
		l.step(machine.WatchdogPinged{})
	case "trigger":
		l.log.Warn("the program triggered its watchdog", "pid", pid)
		l.step(machine.WatchdogTriggered{})
	default:
		l.log.Debug("invalid WATCHDOG= ignored", "pid", pid, "value", watchdog)
	}
	if wdUsec != "" {
		if d, ok := parseUsec(wdUsec); ok {
			l.log.Info("watchdog period set by the program", "pid", pid, "period", d)
			l.step(machine.WatchdogPeriodSet{Period: d})
		} else {
			l.log.Debug("invalid WATCHDOG_USEC= ignored", "pid", pid, "value", wdUsec)
		}
	}
	if extend != "" {
		if d, ok := parseUsec(extend); ok {
			l.log.Debug("timeout extended by the program", "pid", pid, "by", d)
			l.step(machine.TimeoutExtended{By: d})
		} else {
			l.log.Debug("invalid EXTEND_TIMEOUT_USEC= ignored", "pid", pid, "value", extend)
		}
	}
}

// mainPIDNotified follows MAINPID= when it names a live descendant of
// respawner's (or of its keeper's), never the hook host or anything else.
func (l *Loop) mainPIDNotified(from int, v string) {
	pid, err := strconv.Atoi(v)
	switch {
	case err != nil || pid <= 1:
		l.log.Debug("invalid MAINPID= ignored", "pid", from, "value", v)
		return
	case pid == l.pid:
		return
	case !l.ours(pid) || !control.Alive(pid): // ours() leaves the hook host and its plugins out
		l.log.Warn("MAINPID= names a process that is not a live descendant of respawner; ignored", "pid", from, "mainpid", pid)
		return
	}
	l.mainFrom = from // follow logs it
	l.step(machine.MainPIDNotified{PID: pid})
	l.mainFrom = 0
}

// parseUsec reads a count of microseconds, as sd_notify's *_USEC take them.
func parseUsec(s string) (time.Duration, bool) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false
	}
	if n > math.MaxInt64/uint64(time.Microsecond) {
		return math.MaxInt64, true // "infinity"
	}
	return time.Duration(n) * time.Microsecond, true
}

// sanitizeStatus makes STATUS= text safe to show on a terminal and in JSON:
// at most statusMax bytes (cut on a character boundary, marked), valid
// UTF-8, control characters as spaces.
func sanitizeStatus(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	cut := false
	if len(s) > statusMax {
		i := statusMax
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		s, cut = s[:i], true
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return ' '
		}
		return r
	}, s)
	if cut {
		s += "…"
	}
	return s
}

func (n *notifySocket) close() {
	if n != nil && n.fd >= 0 {
		unix.Close(n.fd)
		n.fd = -1
	}
}

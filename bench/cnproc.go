package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel's process-events connector (cn_proc, NETLINK_CONNECTOR) reports
// every fork, exec and exit with a CLOCK_MONOTONIC timestamp taken in the
// kernel at the event. Read after each sample, it splits a restart into
// kill -> exit (the kernel killing the child), exit -> fork (respawner's own
// reaction) and fork -> exec (the new child exec'ing the program), without the
// harness having to watch anything while the restart happens. It needs
// CAP_NET_ADMIN; without it the breakdown is left out.

const (
	cnIdxProc        = 1
	cnValProc        = 1
	procCnMcastListn = 1
	procEventFork    = 0x00000001
	procEventExec    = 0x00000002
	procEventExit    = 0x80000000
	nlHdrLen         = 16
	cnMsgLen         = 20
	evOff            = nlHdrLen + cnMsgLen // struct proc_event in a message
)

type procEvent struct {
	what      uint32
	ts        int64 // CLOCK_MONOTONIC ns
	pid, tgid int   // fork: the child; exec, exit: the process
	ptgid     int   // fork: the parent's tgid
}

type cnProc struct {
	fd  int
	buf []byte
}

func openCnProc() (*cnProc, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	c := &cnProc{fd: fd, buf: make([]byte, 8192)}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		c.close()
		return nil, fmt.Errorf("bind cn_proc: %w", err)
	}
	le := binary.LittleEndian
	msg := make([]byte, evOff+4)
	le.PutUint32(msg[0:], uint32(len(msg)))
	le.PutUint16(msg[4:], unix.NLMSG_DONE)
	le.PutUint32(msg[12:], uint32(os.Getpid()))
	le.PutUint32(msg[16:], cnIdxProc)
	le.PutUint32(msg[20:], cnValProc)
	le.PutUint16(msg[32:], 4)
	le.PutUint32(msg[evOff:], procCnMcastListn)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		c.close()
		return nil, fmt.Errorf("subscribe to cn_proc: %w", err)
	}
	// The kernel acknowledges with an event of type 0; anything may follow.
	if _, err := c.next(time.Second); err != nil {
		c.close()
		return nil, fmt.Errorf("cn_proc: no acknowledgement: %w", err)
	}
	return c, nil
}

func (c *cnProc) close() { unix.Close(c.fd) }

var errNoEvent = errors.New("no event")

// next returns the next process event, waiting at most timeout.
func (c *cnProc) next(timeout time.Duration) (procEvent, error) {
	for {
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, int(timeout/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return procEvent{}, err
		}
		if n == 0 {
			return procEvent{}, errNoEvent
		}
		m, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err != nil {
			return procEvent{}, err // ENOBUFS: events were lost
		}
		b := c.buf[:m]
		if len(b) < evOff+16 {
			continue
		}
		le := binary.LittleEndian
		if le.Uint32(b[16:]) != cnIdxProc || le.Uint32(b[20:]) != cnValProc {
			continue
		}
		ev := procEvent{what: le.Uint32(b[evOff:]), ts: int64(le.Uint64(b[evOff+8:]))}
		d := b[evOff+16:]
		switch ev.what {
		case procEventFork:
			if len(d) >= 16 {
				ev.ptgid, ev.pid, ev.tgid = int(le.Uint32(d[4:])), int(le.Uint32(d[8:])), int(le.Uint32(d[12:]))
			}
		case procEventExec, procEventExit:
			if len(d) >= 8 {
				ev.pid, ev.tgid = int(le.Uint32(d[0:])), int(le.Uint32(d[4:]))
			}
		}
		return ev, nil
	}
}

// drain discards the events queued so far.
func (c *cnProc) drain() {
	for {
		if _, err := c.next(0); err != nil {
			return
		}
	}
}

// restartEvents are the kernel timestamps of one restart.
type restartEvents struct {
	exit, fork, exec int64
}

// collect reads events until it has seen old exit, respawner fork next, and
// next exec (or timeout). With next 0 it takes the first process respawner
// forks after old exited, and returns its pid.
func (c *cnProc) collect(supervisor, old, next int, timeout time.Duration) (restartEvents, int, bool) {
	var r restartEvents
	deadline := time.Now().Add(timeout)
	for r.exit == 0 || r.fork == 0 || r.exec == 0 {
		left := time.Until(deadline)
		if left <= 0 {
			return r, next, false
		}
		ev, err := c.next(left)
		if err != nil {
			return r, next, false
		}
		switch {
		case ev.what == procEventExit && ev.pid == old && ev.tgid == old:
			r.exit = ev.ts
		case ev.what == procEventFork && ev.pid == ev.tgid && ev.ptgid == supervisor &&
			(ev.pid == next || next == 0 && r.exit != 0):
			r.fork, next = ev.ts, ev.pid
		case ev.what == procEventExec && ev.pid == next && next != 0:
			r.exec = ev.ts
		}
	}
	return r, next, true
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

package loop

import (
	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/listen"
	"golang.org/x/sys/unix"
)

// openListeners makes the --listen sockets before the first start: bound
// here, or, for an adopted program, taken from it (it holds them as its
// descriptors 3, 4, ...), since a new bind would find the address in use.
// They stay open, outside the epoll set, until respawner exits; every run
// gets them after its 0, 1 and 2, with LISTEN_FDS, LISTEN_FDNAMES and
// (through the exec shim) LISTEN_PID.
func (l *Loop) openListeners() error {
	specs := l.opt.Listen
	if len(specs) == 0 {
		return nil
	}
	pidfd := -1
	if a := l.opt.Adopt; a != nil {
		if fd, err := unix.PidfdOpen(a.PID, 0); err == nil {
			pidfd = fd
			defer unix.Close(fd)
		}
	}
	for i, sp := range specs {
		fd := -1
		var err error
		if pidfd >= 0 {
			if fd, err = listen.Recover(pidfd, i, sp); err != nil {
				l.log.Warn("cannot take a socket from the adopted program; binding it anew", "error", err)
			} else {
				l.log.Info("socket taken from the adopted program", "listen", sp.String(), "name", sp.Name)
			}
		}
		if fd < 0 {
			if fd, err = sp.Open(); err != nil {
				return err
			}
			l.log.Debug("listening", "listen", sp.String(), "name", sp.Name)
		}
		l.listeners = append(l.listeners, fd)
	}
	l.setEnv(listen.Env(specs)...)
	l.opt.PIDEnv = append(l.opt.PIDEnv, "LISTEN_PID") // sd_listen_fds(3) wants it, and it must name the program
	return nil
}

// listenStatus is what status --json says of the sockets.
func (l *Loop) listenStatus() []control.Listener {
	if len(l.listeners) == 0 {
		return nil
	}
	out := make([]control.Listener, len(l.opt.Listen))
	for i, sp := range l.opt.Listen {
		out[i] = control.Listener{Name: sp.Name, Address: sp.String(), FD: listen.First + i}
	}
	return out
}

// closeListeners closes the sockets (respawner is ending).
func (l *Loop) closeListeners() {
	for _, fd := range l.listeners {
		unix.Close(fd)
	}
	l.listeners = nil
}

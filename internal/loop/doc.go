// Package loop is respawner's executor: one goroutine, locked to its OS
// thread, blocked in epoll_wait over file descriptors, turning each ready
// descriptor into an Event for the Machine and each of the Machine's Actions
// into system calls.
//
// What the loop owns: every descriptor and every system call of supervision
// — pidfds of the program and of what it leaves behind (tree_linux.go),
// fork and exec of the program (spawn_linux.go), its output pipes
// (output_linux.go), the inotify watch of a pidfile (pidfile_linux.go), the
// timerfds of the Machine's timers and of the health probes (probe.go), the
// hook host's socket and pidfd (hostclient_linux.go), the control socket
// (control.go), and the eventfd through which signals arrive (loop.go).
//
// What it must not own: decisions. Whether an exit is clean, whether and
// when to restart, when to give up, what a hook's verdict means — that is
// the Machine's (machine.go), which does no I/O and reads no clock, so that
// it is tested without processes. The loop logs what it did and carries
// out what it is told.
package loop

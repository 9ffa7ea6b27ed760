package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/durlog"
	"github.com/respawner/respawner/internal/logsink"
)

type logOptions struct {
	level  choiceValue
	format choiceValue
	file   string
}

func newLogOptions() logOptions {
	return logOptions{
		level:  choiceValue{val: "info", choices: []string{"trace", "debug", "info", "warn", "error"}},
		format: choiceValue{val: "text", choices: []string{"text", "json"}},
	}
}

// reopenFile is a log file that can be reopened after logrotate moved it (SIGHUP).
type reopenFile struct {
	mu   sync.Mutex
	open func() (*os.File, error)
	f    *os.File
}

func openReopenFile(open func() (*os.File, error)) (*reopenFile, error) {
	r := &reopenFile{open: open}
	return r, r.Reopen()
}

const logFlags = os.O_WRONLY | os.O_APPEND | os.O_CREATE | syscall.O_NONBLOCK

// Reopen opens the file anew (SIGHUP, on the loop's thread). It never waits
// on the log: the open does not block (O_NONBLOCK: a FIFO without a reader
// fails instead of hanging; a FIFO or pipe then waits in Go's poller, so a
// write to a full one parks the queue's goroutine, not a thread), the swap
// does not wait for a write in progress, and closing the old file stops
// such a write instead of waiting for it.
func (r *reopenFile) Reopen() error {
	f, err := r.open()
	if err != nil {
		return fmt.Errorf("open log file: %w", err)
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (r *reopenFile) Write(p []byte) (int, error) {
	r.mu.Lock()
	f := r.f
	r.mu.Unlock()
	return f.Write(p)
}

// newInstanceLogger builds respawner's logger and, for a daemon, the logger
// that carries the program's own output. Foreground: stderr or --log-file.
// Daemon: --log-file when given, else syslog (facility daemon) when /dev/log
// exists, else NAME.log in the runtime dir. reopen is non-nil for a file.
// Both loggers write through sink, a bounded queue that the event loop never
// waits on (a full pipe or a stopped terminal drops lines, counted).
func newInstanceLogger(o *startOptions, stderr io.Writer, daemon bool) (log, output hclog.Logger, sink *logsink.Sink, reopen func() error, err error) {
	out := stderr
	syslogged := false
	var slw *syslogWriter
	switch {
	case o.log.file != "" || daemon && !syslogAvailable():
		// --log-file is the operator's path; NAME.log is reached through
		// the runtime dir's descriptor, never through a symbolic link.
		open := func() (*os.File, error) { return os.OpenFile(o.log.file, logFlags, 0o640) }
		if o.log.file == "" {
			open = func() (*os.File, error) { return o.dir.OpenFile(o.name+".log", logFlags, 0o640) }
		}
		rf, err := openReopenFile(open)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		out, reopen = rf, rf.Reopen
	case daemon:
		w, err := newSyslogWriter(o.name)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		out, syslogged, slw = w, true, w
	}
	sink = logsink.New(out, logsink.DefaultSize)
	if slw != nil {
		slw.drop = sink.Drop
	}
	opts := func(name string) *hclog.LoggerOptions {
		return &hclog.LoggerOptions{
			Name:        name,
			Level:       hclog.LevelFromString(o.log.level.val),
			JSONFormat:  o.log.format.val == "json",
			Output:      sink,
			TimeFormat:  "2006-01-02T15:04:05.000Z07:00",
			DisableTime: syslogged, // syslog stamps its own time
		}
	}
	// Durations as strings ("5s"): hclog's JSON would write nanoseconds.
	log = durlog.Wrap(hclog.New(opts("respawner")))
	if daemon {
		output = durlog.Wrap(hclog.New(opts(o.name)))
	}
	sink.OnDrop(func(n int) {
		log.Warn("log lines dropped: the log did not take them fast enough", "dropped", n)
	})
	return log, output, sink, reopen, nil
}

// syslogSocket is /dev/log; tests point it elsewhere.
func syslogSocket() string {
	if p := os.Getenv("RESPAWNER_SYSLOG_SOCKET"); p != "" {
		return p
	}
	return "/dev/log"
}

func syslogAvailable() bool {
	fi, err := os.Stat(syslogSocket())
	return err == nil && fi.Mode()&os.ModeSocket != 0
}

// syslogWriter sends each hclog line to syslog (facility daemon) with the
// severity of the level it was logged at, as one datagram in the format of
// RFC 3164 that /dev/log takes, tagged with the instance's name (so
// `journalctl -t NAME` shows it). The level comes from hclog itself
// (LevelWrite, through the queue), never from the line's text: a program
// that prints "[ERROR]" on stdout is still at info. The program's stdout is
// logged at info, its stderr at warn (warning), respawner's own errors at
// error (err). It sits behind the log's queue (logsink), so a send may wait;
// one that cannot go out within syslogWait is dropped and counted with the
// queue's own drops, which the log reports once it catches up.
type syslogWriter struct {
	c    net.Conn
	tag  string
	pid  int
	drop func() // counts a line that could not go out
}

// syslogWait bounds one send to the syslog socket.
const syslogWait = time.Second

// Syslog severities (RFC 5424) and the daemon facility.
const (
	facilityDaemon = 3 << 3
	sevErr         = 3
	sevWarning     = 4
	sevInfo        = 6
	sevDebug       = 7
)

func newSyslogWriter(tag string) (*syslogWriter, error) {
	c, err := net.Dial("unixgram", syslogSocket())
	if err != nil {
		return nil, fmt.Errorf("syslog: %w", err)
	}
	return &syslogWriter{c: c, tag: tag, pid: os.Getpid(), drop: func() {}}, nil
}

// severity maps an hclog level to a syslog severity. A line without a level
// (none is written so) counts as info.
func severity(level hclog.Level) int {
	switch level {
	case hclog.Error:
		return sevErr
	case hclog.Warn:
		return sevWarning
	case hclog.Debug, hclog.Trace:
		return sevDebug
	}
	return sevInfo
}

// Write sends p at info; the queue uses LevelWrite.
func (s *syslogWriter) Write(p []byte) (int, error) { return s.LevelWrite(hclog.NoLevel, p) }

// LevelWrite sends each line of p, logged at level, as a datagram of its own.
func (s *syslogWriter) LevelWrite(level hclog.Level, p []byte) (int, error) {
	now := time.Now()
	pri := facilityDaemon | severity(level)
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		if line == "" {
			continue
		}
		msg := fmt.Sprintf("<%d>%s %s[%d]: %s", pri, now.Format(time.Stamp), s.tag, s.pid, line)
		s.c.SetWriteDeadline(time.Now().Add(syslogWait))
		if _, err := s.c.Write([]byte(msg)); err != nil {
			s.drop()
		}
	}
	return len(p), nil
}

package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/logfile"
	"github.com/respawner/respawner/internal/logsink"
	"github.com/respawner/respawner/pkg/hooks/durlog"
	"golang.org/x/sys/unix"
)

type logOptions struct {
	level    choiceValue
	format   choiceValue
	file     string
	maxSize  sizeValue
	maxFiles int
}

// Rotation defaults: at most 60 MB of log per instance (the file and five
// rotated ones), which a small VM's disk takes, and days of a chatty
// program's output.
const (
	defaultLogMaxSize  = 10 << 20
	defaultLogMaxFiles = 5
)

func newLogOptions() logOptions {
	return logOptions{
		level:    choiceValue{val: "info", choices: []string{"trace", "debug", "info", "warn", "error"}},
		format:   choiceValue{val: "text", choices: []string{"text", "json"}},
		maxSize:  defaultLogMaxSize,
		maxFiles: defaultLogMaxFiles,
	}
}

// newInstanceLogger builds respawner's logger and, for a daemon, the logger
// that carries the program's own output. Foreground: stderr or --log-file.
// Daemon: --log-file when given, else syslog (facility daemon) when /dev/log
// exists, else NAME.log in the runtime dir. A log file is rotated by size
// (--log-max-size, --log-max-files; internal/logfile) and reopen, non-nil
// for a file, opens it again (SIGHUP). where is what status shows as the
// log: the file's path, "syslog", or "stderr" (its path when respawner's
// stderr is a file). Both loggers write through sink, a bounded queue that
// the event loop never waits on (a full pipe or a stopped terminal drops
// lines, counted).
func newInstanceLogger(o *startOptions, stderr io.Writer, daemon bool) (log, output hclog.Logger, sink *logsink.Sink, reopen func() error, where string, err error) {
	out := stderr
	syslogged := false
	var slw *syslogWriter
	switch {
	case o.log.file != "" || daemon && !syslogAvailable():
		lo := logfile.Options{
			MaxSize:  int64(o.log.maxSize),
			MaxFiles: o.log.maxFiles,
			OnRotateError: func(err error) {
				if log != nil {
					log.Warn("log rotation failed; the log goes on in the same file", "error", err)
				}
			},
		}
		if o.log.file != "" {
			// --log-file is the operator's path, followed if a link; a FIFO
			// or a device is written as it is, never rotated.
			abs, err := filepath.Abs(o.log.file)
			if err != nil {
				return nil, nil, nil, nil, "", fmt.Errorf("--log-file %s: %w", o.log.file, err)
			}
			lo.Dir, lo.Name = filepath.Dir(abs), filepath.Base(abs)
		} else {
			// NAME.log is reached through the runtime dir's descriptor,
			// never through a symbolic link.
			lo.Dir, lo.DirPath, lo.Name, lo.Strict = o.dir.ProcPath("."), o.dir.Path, o.name+".log", true
		}
		lf, err := logfile.Open(lo)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		out, reopen, where = lf, lf.Reopen, lf.Path()
	case daemon:
		w, err := newSyslogWriter(o.name)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		out, syslogged, slw, where = w, true, w, "syslog"
	default:
		where = stderrTarget()
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
	return log, output, sink, reopen, where, nil
}

// stderrTarget names respawner's stderr for status: its path when it is a
// regular file (2>>file, systemd's StandardError=append:), which `logs` can
// read, else "stderr" (a terminal, a pipe, the journal's socket).
func stderrTarget() string {
	var st unix.Stat_t
	if unix.Fstat(2, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "stderr"
	}
	p, err := os.Readlink("/proc/self/fd/2")
	if err != nil || !filepath.IsAbs(p) {
		return "stderr"
	}
	return p
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

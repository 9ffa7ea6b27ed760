package main

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
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
	path string
	f    *os.File
}

func openReopenFile(path string) (*reopenFile, error) {
	r := &reopenFile{path: path}
	return r, r.Reopen()
}

func (r *reopenFile) Reopen() error {
	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
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
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// newLogger builds the root logger; reopen is non-nil when there is a file to
// reopen on SIGHUP.
func newLogger(o logOptions, stderr io.Writer) (log hclog.Logger, reopen func() error, err error) {
	out := stderr
	if o.file != "" {
		rf, err := openReopenFile(o.file)
		if err != nil {
			return nil, nil, err
		}
		out, reopen = rf, rf.Reopen
	}
	log = hclog.New(&hclog.LoggerOptions{
		Name:       "respawner",
		Level:      hclog.LevelFromString(o.level.val),
		JSONFormat: o.format.val == "json",
		Output:     out,
		TimeFormat: "2006-01-02T15:04:05.000Z07:00",
	})
	return log, reopen, nil
}

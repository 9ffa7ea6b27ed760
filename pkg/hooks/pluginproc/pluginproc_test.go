package pluginproc

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A process the plugin started holds its stdout and stderr: both streams
// still end soon after the plugin itself exits, so go-plugin, which reaps a
// plugin only once they have, is not held up for the orphan's life.
func TestStreamsEndAfterThePluginExits(t *testing.T) {
	dir := t.TempDir()
	bin, pidfile := filepath.Join(dir, "plugin"), filepath.Join(dir, "orphan")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nsleep 30 &\necho $! >"+pidfile+"\necho $!\necho bye >&2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // the orphan, by a pidfd: never a recycled pid
		b, _ := os.ReadFile(pidfile)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			if fd, err := unix.PidfdOpen(pid, 0); err == nil {
				unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
				unix.Close(fd)
			}
		}
	})
	r, err := New(bin, nil, nil, exec.Command(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	type res struct {
		b   []byte
		err error
	}
	read := func(rc io.Reader) chan res {
		ch := make(chan res, 1)
		go func() { b, err := io.ReadAll(rc); ch <- res{b, err} }()
		return ch
	}
	out, errs := read(r.Stdout()), read(r.Stderr())
	var orphan int
	for _, ch := range []chan res{out, errs} {
		select {
		case got := <-ch:
			if got.err != nil {
				t.Fatalf("read: %v", got.err)
			}
			if ch == out {
				orphan, _ = strconv.Atoi(strings.TrimSpace(string(got.b)))
			} else if string(got.b) != "bye\n" {
				t.Errorf("stderr %q", got.b)
			}
		case <-time.After(drainAfterExit + 5*time.Second):
			t.Fatal("a stream still open while the plugin's orphan holds it")
		}
	}
	if orphan == 0 {
		t.Fatal("no orphan pid")
	}
	if err := r.Wait(context.Background()); err != nil {
		t.Fatalf("wait: %v", err)
	}
}

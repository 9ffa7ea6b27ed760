package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

const lighttpdBin = "/usr/sbin/lighttpd"

// lighttpdConf is the least a lighttpd needs, and Debian's index file name.
const lighttpdConf = `server.document-root = %q
server.bind          = "127.0.0.1"
server.port          = %d
index-file.names     = ("index.html")
`

// watchWriter collects a child's output and closes found once it contains
// want.
type watchWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  []byte
	found chan struct{}
	once  sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if bytes.Contains(w.buf.Bytes(), w.want) {
		w.once.Do(func() { close(w.found) })
	}
	return len(p), nil
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// startLighttpd runs lighttpd in the foreground on a free port of 127.0.0.1,
// serving an empty document root as Debian's stock one is (no index.html),
// and returns its URL, its document root and the running command.
func startLighttpd(t *testing.T) (base, docroot string, cmd *exec.Cmd, exited <-chan struct{}) {
	t.Helper()
	if _, err := os.Stat(lighttpdBin); err != nil {
		t.Skipf("no lighttpd: %v", err)
	}
	dir := t.TempDir()
	docroot = filepath.Join(dir, "www")
	if err := os.Mkdir(docroot, 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // lighttpd binds it next; another process taking it first would fail the start
	conf := filepath.Join(dir, "lighttpd.conf")
	text := fmt.Sprintf(lighttpdConf, docroot, port)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	out := &watchWriter{want: []byte("server started"), found: make(chan struct{})}
	cmd = exec.Command(lighttpdBin, "-D", "-f", conf)
	cmd.Stdout, cmd.Stderr = out, out // -D without server.errorlog: the log is stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill() // SIGKILL works on a stopped process too
		<-done
	})

	select {
	case <-out.found:
	case <-done:
		t.Fatalf("lighttpd exited before it started: %v\n%s", cmd.ProcessState, out)
	case <-time.After(10 * time.Second):
		t.Fatalf("lighttpd did not say it started\n%s", out)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/", port), docroot, cmd, done
}

// TestLighttpd probes a real lighttpd through what matters to an operator:
// its stock 403 is alive, a stopped server times out, a dead one refuses.
func TestLighttpd(t *testing.T) {
	base, docroot, cmd, exited := startLighttpd(t)

	c := newChecker(t, "url", base, "timeout", "300ms", "interval", "1s")
	if r := probe(t, c); !r.Healthy || r.Reason != "HTTP 403" {
		t.Errorf("empty docroot, default expect-status: probe = %+v, want healthy HTTP 403", r)
	}
	strict := newChecker(t, "url", base, "expect-status", "200")
	if r := probe(t, strict); r.Healthy || r.Reason != "status 403 (want 200)" {
		t.Errorf("expect-status=200: probe = %+v, want status 403 (want 200)", r)
	}
	if err := os.WriteFile(filepath.Join(docroot, "index.html"), []byte("<p>hello</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := probe(t, strict); !r.Healthy || r.Reason != "HTTP 200" {
		t.Errorf("with index.html, expect-status=200: probe = %+v, want healthy HTTP 200", r)
	}
	if r := probe(t, newChecker(t, "url", base, "method", "HEAD")); !r.Healthy || r.Reason != "HTTP 200" {
		t.Errorf("HEAD: probe = %+v, want healthy HTTP 200", r)
	}

	// Stopped: the kernel still completes the TCP handshake, nobody answers.
	if err := cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := probe(t, c)
	if took := time.Since(start); took > 300*time.Millisecond+2*time.Second {
		t.Errorf("probe of a stopped server took %v", took)
	}
	if r.Healthy || r.Reason != "timeout after 300ms" {
		t.Errorf("stopped: probe = %+v, want timeout after 300ms", r)
	}
	if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if r := probe(t, c); !r.Healthy {
		t.Errorf("continued: probe = %+v, want healthy", r)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-exited
	if r := probe(t, c); r.Healthy || r.Reason != "connection refused" {
		t.Errorf("exited: probe = %+v, want connection refused", r)
	}
}

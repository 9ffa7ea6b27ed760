package control

import (
	"bufio"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

// testDir opens a fresh runtime dir.
func testDir(t *testing.T) *Dir {
	t.Helper()
	d, err := Prepare(t.TempDir() + "/run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestLockLifecycle(t *testing.T) {
	d := testDir(t)
	dir := d.Path
	if _, live := Live(dir, "x"); live {
		t.Fatal("live before any start")
	}
	l, err := d.Acquire("x")
	if err != nil {
		t.Fatal(err)
	}
	if pid, live := Live(dir, "x"); !live || pid != os.Getpid() {
		t.Fatalf("Live = %d, %v; want our pid, true", pid, live)
	}
	if _, err := d.Acquire("x"); err == nil {
		t.Fatal("a second Acquire of a held name succeeded")
	}
	if d.CleanStale("x") {
		t.Fatal("CleanStale removed a live instance's files")
	}
	if _, err := os.Stat(PidPath(dir, "x")); err != nil {
		t.Fatal("the live instance's pidfile is gone")
	}
	l.Release()
	if _, live := Live(dir, "x"); live {
		t.Fatal("live after Release")
	}
}

// Checking whether an instance is live must never make its start fail.
func TestLiveDoesNotBlockAcquire(t *testing.T) {
	d := testDir(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				d.Live("y")
			}
		}
	}()
	for range 200 {
		l, err := d.Acquire("y")
		if err != nil {
			close(stop)
			wg.Wait()
			t.Fatalf("Acquire failed while another process only looked: %v", err)
		}
		l.Release()
	}
	close(stop)
	wg.Wait()
}

// A stale pidfile (no lock holder) is cleaned, with its socket.
func TestCleanStale(t *testing.T) {
	d := testDir(t)
	dir := d.Path
	os.WriteFile(PidPath(dir, "z"), []byte("12345\n"), 0o600)
	os.WriteFile(SockPath(dir, "z"), nil, 0o600)
	if !d.CleanStale("z") {
		t.Fatal("stale files not reported")
	}
	for _, p := range []string{PidPath(dir, "z"), SockPath(dir, "z")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left", p)
		}
	}
}

// A status asked between an instance's lock and its socket (a start a few
// milliseconds old) waits for the socket instead of failing with "no such
// file": the race once made `status` exit 4 on a healthy instance.
func TestQueryWhileStarting(t *testing.T) {
	d := testDir(t)
	l, err := d.Acquire("s")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	go func() {
		time.Sleep(100 * time.Millisecond)
		fd, err := d.Listen("s")
		if err != nil {
			t.Error(err)
			return
		}
		f := os.NewFile(uintptr(fd), "s.sock")
		ln, err := net.FileListener(f)
		f.Close()
		if err != nil {
			t.Error(err)
			return
		}
		defer ln.Close()
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		bufio.NewReader(c).ReadString('\n')
		c.Write([]byte(`{"name":"s","state":"starting"}` + "\n"))
	}()
	st, err := d.QueryStatus("s", 5*time.Second)
	if err != nil || st.State != "starting" {
		t.Fatalf("status while the socket came up: %+v, %v", st, err)
	}
	// A live instance whose socket never comes is an error after the timeout.
	d.Remove("s.sock")
	start := time.Now()
	if _, err := d.QueryStatus("s", 200*time.Millisecond); err == nil || errors.Is(err, ErrNotRunning) || time.Since(start) < 200*time.Millisecond {
		t.Fatalf("no socket: %v after %s", err, time.Since(start))
	}
}

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/internal/control"
)

// The adversarial soak: `make soak` runs it at full size (RESPAWNER_SOAK=full,
// several minutes); `make test` runs the same code small. Each part checks
// that every death was restarted, that respawner's descriptors and memory
// stay flat, that nothing is left a zombie, and that output is never lost
// beyond what respawner counted as dropped.

// soakSize picks the full figure under `make soak`, the small one otherwise.
func soakSize(small, full int) int {
	if os.Getenv("RESPAWNER_SOAK") == "full" {
		return full
	}
	return small
}

// counterWriter is a helper program: counter-writer FILE. It writes
// numbered lines to stdout as fast as it can; on SIGTERM it flushes, writes
// how many lines it wrote into FILE and exits 0.
func counterWriter(args []string) {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	n := 0
	var buf []byte
	for {
		select {
		case <-term:
			w.Flush()
			os.WriteFile(args[0], []byte(strconv.Itoa(n)+"\n"), 0o644)
			os.Exit(0)
		default:
		}
		for range 256 {
			n++
			buf = strconv.AppendInt(append(buf[:0], "line "...), int64(n), 10)
			buf = append(buf, '\n')
			w.Write(buf)
		}
	}
}

// zombiesBelow lists the zombies whose parent is one of pids.
func zombiesBelow(pids ...int) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		f, err := control.ProcStat(pid)
		if err != nil || f[0] != "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		for _, p := range pids {
			if ppid == p {
				out = append(out, pid)
			}
		}
	}
	return out
}

// flat checks that respawner's descriptors and memory did not grow between
// two samples taken after the warm-up.
func flat(t *testing.T, what string, pid, fds0, rss0 int) {
	t.Helper()
	// The loop opens /proc files for a moment while it walks the tree, so
	// one sample may count one or two more: a leak is steady growth.
	if fds := openFDs(t, pid); fds > fds0+2 {
		t.Errorf("%s: respawner has %d descriptors open, %d at the start", what, fds, fds0)
	}
	if rss := vmRSS(t, pid); rss > rss0+4<<10 || rss > 16<<10 {
		t.Errorf("%s: respawner's RSS went from %d to %d KiB", what, rss0, rss)
	}
	if z := zombiesBelow(pid); len(z) > 0 {
		t.Errorf("%s: zombies left below respawner: %v", what, z)
	}
}

// Part 1: SIGKILL the program again and again with -t 0; every death is
// restarted.
func TestSoakKillLoop(t *testing.T) {
	kills := soakSize(300, 10000)
	in := startRespawner(t, "-t", "0", "--name", "victim", "/bin/sleep", "--", "1000")
	pid := in.waitFor("started", 5*time.Second).int("pid")
	me := in.cmd.Process.Pid
	var fds0, rss0 int
	for i := 1; i <= kills; i++ {
		if i == kills/10 {
			fds0, rss0 = openFDs(t, me), vmRSS(t, me)
		}
		syscall.Kill(pid, syscall.SIGKILL)
		l := in.waitFor("restarted", 10*time.Second)
		if l.int("pid") == pid || l.str("restart") != strconv.Itoa(i) {
			t.Fatalf("kill %d: restarted %v, want restart %d with a new pid", i, l, i)
		}
		pid = l.int("pid")
	}
	flat(t, "after the kill loop", me, fds0, rss0)
	in.stopOK()
}

// Part 2: a program writing as fast as it can, in daemon mode, logging to
// syslog (a socket the test reads, as fast as it can, which is not as fast
// as the program writes). Supervision goes on (status answers), memory and
// descriptors stay flat, and every line the program wrote is in the log or
// counted as dropped.
func TestSoakFastWriter(t *testing.T) {
	secs := soakSize(2, 60)
	dir := runtimeDir(t)
	count := filepath.Join(t.TempDir(), "count")
	sock := filepath.Join(t.TempDir(), "log")
	pc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	pc.SetReadBuffer(4 << 20)
	var kept, dropped atomic.Int64
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 8192)
		for {
			n, err := pc.Read(buf)
			if err != nil {
				return
			}
			l := string(buf[:n])
			switch {
			case strings.Contains(l, " writer: line "):
				kept.Add(1)
			case strings.Contains(l, "log lines dropped"):
				_, v, _ := strings.Cut(l, "dropped=")
				d, _ := strconv.Atoi(strings.Fields(v)[0])
				dropped.Add(int64(d))
			}
		}
	}()
	t.Setenv("RESPAWNER_SYSLOG_SOCKET", sock)
	t.Setenv("RSPTEST_HELPER", "counter-writer")
	startDaemon(t, dir, "writer", os.Args[0], "--", count)
	st, _ := statusOf(t, dir, "writer")
	time.Sleep(time.Second) // warm-up: the queue and the pipes fill
	fds0, rss0 := openFDs(t, st.RespawnerPID), vmRSS(t, st.RespawnerPID)
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	for time.Now().Before(deadline) {
		begun := time.Now()
		if _, code := statusOfWithin(t, dir, "writer", 5*time.Second); code != 0 {
			t.Fatalf("status: exit %d while the program writes", code)
		}
		if d := time.Since(begun); d > time.Second {
			t.Fatalf("status took %s while the program writes", d)
		}
		time.Sleep(200 * time.Millisecond) // an operator asking now and then
	}
	flat(t, "while writing", st.RespawnerPID, fds0, rss0)
	if r := respawnerWithin(t, dir, 30*time.Second, "stop", "writer"); r.code != 0 {
		t.Fatalf("stop: exit %d %s", r.code, r.stderr)
	}
	// What respawner sent before it exited may still wait in the socket's
	// buffer: read it all (the reader ends at the deadline), then count.
	pc.SetReadDeadline(time.Now().Add(time.Second))
	<-read
	pc.Close()
	written, _ := strconv.Atoi(strings.TrimSpace(readFile(t, count)))
	k, d := int(kept.Load()), int(dropped.Load())
	t.Logf("%d lines written in %ds: %d logged, %d counted as dropped", written, secs, k, d)
	if written == 0 || k == 0 {
		t.Fatalf("written %d, logged %d", written, k)
	}
	// Respawner's own lines dropped are in the count too, so the sum may
	// exceed what the program wrote, but never fall short of it.
	if k+d < written {
		t.Fatalf("%d lines lost without being counted (written %d, logged %d, dropped %d)", written-k-d, written, k, d)
	}
}

// Part 3: respawner killed and the program adopted, again and again, while
// the program writes a line every 50 ms: the program never stops, and every
// line reaches the log.
func TestSoakAdoption(t *testing.T) {
	rounds := soakSize(3, 20)
	dir := runtimeDir(t)
	prog := script(t, t.TempDir(), "ticker.sh", `i=0; while :; do i=$((i+1)); echo "tick $i"; sleep 0.05; done`)
	startDaemon(t, dir, "ticker", prog)
	first, _ := statusOf(t, dir, "ticker")
	defer syscall.Kill(first.PID, syscall.SIGKILL)
	for i := range rounds {
		st := killRespawner(t, dir, "ticker")
		if st.PID != first.PID {
			t.Fatalf("round %d: the program is pid %d, want %d all along", i, st.PID, first.PID)
		}
		if r := respawner(t, dir, "start", "--name", "ticker", prog); r.code != 0 {
			t.Fatalf("round %d: start again: exit %d %s", i, r.code, r.stderr)
		}
		if z := zombiesBelow(st.KeeperPID); len(z) > 0 {
			t.Fatalf("round %d: zombies below the keeper: %v", i, z)
		}
	}
	st, _ := statusOf(t, dir, "ticker")
	if st.PID != first.PID || st.Restarts != 0 {
		t.Fatalf("after %d adoptions: %+v, want pid %d never restarted", rounds, st, first.PID)
	}
	if r := respawner(t, dir, "stop", "ticker"); r.code != 0 {
		t.Fatalf("stop: %d %s", r.code, r.stderr)
	}
	log := readFile(t, control.LogPath(dir, "ticker"))
	last := 0
	for _, l := range strings.Split(log, "\n") {
		if _, rest, ok := strings.Cut(l, "ticker: tick "); ok {
			n, _ := strconv.Atoi(rest)
			if n != last+1 {
				t.Fatalf("tick %d follows tick %d: lines lost across the adoptions", n, last)
			}
			last = n
		}
	}
	t.Logf("%d adoptions, %d ticks, none lost", rounds, last)
	assertRuntimeDirEmpty(t, dir)
}

// Part 4: a plugin killed again and again (its restart backoff capped low
// for the test): each time the host brings it back, the program runs on
// untouched, and neither respawner nor the host keeps a zombie or a
// descriptor per kill.
func TestSoakPluginKills(t *testing.T) {
	kills := soakSize(5, 100)
	t.Setenv("RESPAWNER_PLUGIN_RESTART_MAX", "50ms")
	in := startRespawner(t, hookArgs("--plugin", "testhook", "--name", "plugged", "/bin/sleep", "--", "1000")...)
	in.waitFor("hook plugin ready", 10*time.Second)
	prog := in.waitFor("started", 5*time.Second).int("pid")
	me := in.cmd.Process.Pid
	plugin := func() (host, plug int) {
		for _, p := range pluginProcs(me) {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p))
			switch {
			case strings.HasSuffix(exe, "respawner-hookhost"):
				host = p
			case strings.HasSuffix(exe, "respawner-plugin-testhook"):
				plug = p
			}
		}
		return host, plug
	}
	host, _ := plugin()
	var fds0, rss0, hostFDs0 int
	for i := 1; i <= kills; i++ {
		if i == 2 {
			fds0, rss0, hostFDs0 = openFDs(t, me), vmRSS(t, me), openFDs(t, host)
		}
		h, victim := plugin()
		if victim == 0 || h != host {
			t.Fatalf("kill %d: host %d (want %d), plugin %d", i, h, host, victim)
		}
		syscall.Kill(victim, syscall.SIGKILL)
		in.waitFor("plugin exited; restarting it", 10*time.Second)
		in.waitFor("plugin restarted", 10*time.Second)
	}
	if !alive(prog) {
		t.Fatal("the program died with the plugin kills")
	}
	flat(t, "after the plugin kills", me, fds0, rss0)
	if fds := openFDs(t, host); fds > hostFDs0+2 {
		t.Errorf("the hook host has %d descriptors open, %d after the first kill", fds, hostFDs0)
	}
	if z := zombiesBelow(host); len(z) > 0 {
		t.Errorf("zombies below the hook host: %v", z)
	}
	in.stopOK()
}

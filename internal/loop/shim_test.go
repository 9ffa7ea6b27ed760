package loop

import (
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/internal/runenv"
)

// TestMain makes this test binary, re-executed as the exec shim (the shim
// is /proc/self/exe), a shim that never reports: stuck, as one in a chdir
// into a hung mount would be.
func TestMain(m *testing.M) {
	if runenv.IsShim(os.Args) {
		time.Sleep(20 * time.Second) // past ShimTimeout in the test; an orphan of a failed test does not linger
		os.Exit(127)
	}
	os.Exit(m.Run())
}

// syncBuf is a log the test reads while the loop writes it.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A start through a shim that never reports does not hold the loop: it
// acts on a signal meanwhile, and fails the start once ShimTimeout has
// passed, with the reason, after killing and reaping the shim. (The shim
// used to be waited for inside the loop, which then acted on nothing for
// ShimTimeout.)
func TestStuckShimDoesNotHoldTheLoop(t *testing.T) {
	old := runenv.ShimTimeout
	runenv.ShimTimeout = 2 * time.Second
	defer func() { runenv.ShimTimeout = old }()
	log := &syncBuf{}
	sigs := make(chan os.Signal, 4)
	var success machine.CodeSet
	success.Add(0)
	l := New(Options{
		Name: "stuck", Path: "/bin/true", Argv: []string{"/bin/true"}, Env: os.Environ(),
		Machine: machine.Config{RespawnTimeout: time.Second, Success: success, StopTimeout: time.Second, StartTimeout: time.Second},
		Log:     hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Info}),
		Signals: sigs,
		Attrs:   runenv.Attrs{SetUmask: true, Umask: 0o22},
	})
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() { code, err := l.Run(); done <- result{code, err} }()
	time.Sleep(200 * time.Millisecond)
	sigs <- syscall.SIGUSR1
	for !strings.Contains(log.String(), "signal ignored") {
		if time.Since(start) > time.Second {
			t.Fatalf("the loop did not act on SIGUSR1 while the shim was stuck:\n%s", log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-done:
		if r.code != 1 || time.Since(start) < runenv.ShimTimeout {
			t.Fatalf("exit %d, %v after %s; want 1 after the shim timeout", r.code, r.err, time.Since(start))
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the start did not fail after the shim timeout:\n%s", log)
	}
	if !strings.Contains(log.String(), "did not start the program within 2s") {
		t.Fatalf("no reason in the log:\n%s", log)
	}
}

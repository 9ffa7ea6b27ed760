package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// The notify part: is supervision slowed by a plugin that only listens?
//
// The -t 0 restart latency of part 1 (the same program as the veto part) is
// taken without plugins twice, and with a notifier attached that is told
// every event (events=all, window=0): notify-webhook posting to a receiver
// in the harness that answers 200, notify-webhook posting to a port where
// nothing listens (every delivery fails and is retried with backoff), and
// notify-email with its SMTP server down (the same); and with notify-webhook
// as it is usually run, with its defaults (abnormal exits and the rest,
// coalesced in 5-minute windows: a Notify per restart, one POST per window).
// The runs are interleaved in rounds, so that a change of the machine's load
// falls on all of them alike; each variant's samples are pooled over the
// rounds.
//
// "Within the noise" is decided per percentile (p50, p95) as
//
//	with - none <= max(|none1 - none2|, perm95, spread)
//
// where spread is the standard deviation of that percentile over the
// no-plugin runs one by one (each round's run of none1 and of none2: ten
// runs by default): how much one run of respawner without plugins differs
// from the next on this machine, which is what "run-to-run noise" means to
// an operator comparing two runs. The pooled difference and perm95 below
// are finer: they say whether a shift is there at all, and the part reports
// it either way (shift beyond sampling noise), so a real but small cost is
// not hidden by the verdict.
//
// where none is the percentile of the two no-plugin runs pooled, none1 and
// none2 that of each, and perm95 the 95th percentile of |with - none| over
// random relabellings of the pooled samples (with and none together, split
// into groups of the same sizes): how far apart sampling alone puts them 1
// time in 20 when the notifier changes nothing. The first term is the
// run-to-run noise the requirement names; the second keeps a pair of
// no-plugin runs that happen to agree closely from making the band narrower
// than the sampling noise of the estimate itself. Only a slower with fails:
// the requirement is that supervision is never slowed, and a with faster
// than none by more than the band says only that the no-plugin runs were
// disturbed.

// notifyResult is the notify part.
type notifyResult struct {
	Rounds   int              `json:"rounds"`
	Variants []*notifyVariant `json:"variants"`
}

// notifyVariant is one way of running the restarts.
type notifyVariant struct {
	Label  string         `json:"label"`
	Plugin string         `json:"plugin,omitempty"` // the --plugin spec
	Result *restartResult `json:"result"`           // pooled over the rounds
	Runs   []durations    `json:"runs"`             // kill -> new child of each run
	// Ready is the "hook plugin ready" log line's capabilities: a
	// notify-only plugin has notify and not veto (it is never asked
	// restart-pending).
	Notify bool `json:"notify"`
	Veto   bool `json:"veto"`
	// Received counts the requests the harness's receiver answered, by the
	// event kind in their body; Failures the plugin's "not delivered" lines.
	Received map[string]int `json:"received,omitempty"`
	Failures int            `json:"delivery_failures_logged,omitempty"`
	// Against the no-plugin runs pooled (with only).
	Diff  *notifyDiff `json:"diff,omitempty"`
	plugs string      // plugin executable name ("": none)
	recv  *receiver
}

// notifyDiff compares a variant with the no-plugin runs pooled.
type notifyDiff struct {
	P50      time.Duration `json:"p50_ns"`        // with - none
	P95      time.Duration `json:"p95_ns"`        // with - none
	Runs50   time.Duration `json:"runs_p50_ns"`   // |none1 - none2|
	Runs95   time.Duration `json:"runs_p95_ns"`   // |none1 - none2|
	Perm50   time.Duration `json:"perm95_p50_ns"` // 95th percentile of |with - none| over relabellings
	Perm95   time.Duration `json:"perm95_p95_ns"` // the same for p95
	Spread50 time.Duration `json:"spread_p50_ns"` // standard deviation of p50 over the no-plugin runs one by one
	Spread95 time.Duration `json:"spread_p95_ns"` // the same for p95
	Band50   time.Duration `json:"band_p50_ns"`   // max(Runs50, Perm50, Spread50)
	Band95   time.Duration `json:"band_p95_ns"`   // max(Runs95, Perm95, Spread95)
	Shift50  bool          `json:"shift_p50"`     // P50 > max(Runs50, Perm50): a shift beyond sampling noise
	Within50 bool          `json:"within_p50"`    // P50 <= Band50
	Within95 bool          `json:"within_p95"`    // P95 <= Band95
}

// receiver is an HTTP server in the harness that answers every request
// with 200 and counts them by the "kind" of their JSON body.
type receiver struct {
	srv  *http.Server
	url  string
	mu   sync.Mutex
	seen map[string]int
}

func newReceiver() (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{seen: map[string]int{}, url: "http://" + l.Addr().String() + "/respawner"}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 5 * time.Second}
	go r.srv.Serve(l)
	return r, nil
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var ev struct {
		Kind string `json:"kind"`
	}
	if json.Unmarshal(b, &ev) != nil || ev.Kind == "" {
		ev.Kind = "?"
	}
	r.mu.Lock()
	r.seen[ev.Kind]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// take returns the counts so far and starts again from zero.
func (r *receiver) take() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.seen
	r.seen = map[string]int{}
	return m
}

// installPlugin puts respawner-plugin-NAME (mode 0755) into dir (0755): the
// one next to the respawner under test (make build puts it there), or else
// one built from ./plugins/NAME.
func installPlugin(c *config, dir, name string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	exe := "respawner-plugin-" + name
	dst := filepath.Join(dir, exe)
	if b, err := os.ReadFile(filepath.Join(filepath.Dir(c.bin), exe)); err == nil {
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			return err
		}
	} else {
		cmd := exec.Command(goTool(), "build", "-o", dst, "./plugins/"+name)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("no %s next to %s, and go build ./plugins/%s (run the harness from the repository's root): %v\n%s", exe, c.bin, name, err, out)
		}
	}
	return os.Chmod(dst, 0o755)
}

func benchNotify(c *config, prog program) (*notifyResult, error) {
	pdir := filepath.Join(c.dir, "notify-plugins")
	for _, p := range []string{"notify-webhook", "notify-email"} {
		if err := installPlugin(c, pdir, p); err != nil {
			return nil, err
		}
	}
	recv, err := newReceiver()
	if err != nil {
		return nil, err
	}
	defer recv.srv.Close()
	// Nothing listens on these ports: connection refused.
	down, err := freePort()
	if err != nil {
		return nil, err
	}
	smtpDown, err := freePort()
	if err != nil {
		return nil, err
	}
	none1 := &notifyVariant{Label: "no plugins (run 1)"}
	none2 := &notifyVariant{Label: "no plugins (run 2)"}
	vs := []*notifyVariant{
		none1,
		{Label: "notify-webhook, every event, receiver up", plugs: "notify-webhook", recv: recv,
			Plugin: "notify-webhook:url=" + recv.url + ",events=all,window=0"},
		{Label: "notify-webhook, defaults, receiver up", plugs: "notify-webhook", recv: recv,
			Plugin: "notify-webhook:url=" + recv.url},
		{Label: "notify-webhook, every event, receiver down", plugs: "notify-webhook",
			Plugin: fmt.Sprintf("notify-webhook:url=http://127.0.0.1:%d/respawner,events=all,window=0", down)},
		{Label: "notify-email, every event, SMTP server down", plugs: "notify-email",
			Plugin: fmt.Sprintf("notify-email:server=127.0.0.1:%d,starttls=never,to=a@example.org,from=b@example.org,events=all,window=0", smtpDown)},
		none2,
	}
	res := &notifyResult{Rounds: min(c.notifyRounds, c.notifySamples), Variants: vs}
	runs := make([][]*restartResult, len(vs))
	for round := range res.Rounds {
		// Samples of this round: the total spread over the rounds.
		n := c.notifySamples/res.Rounds + btoi(round < c.notifySamples%res.Rounds)
		// Each round starts with another variant, so that no variant is
		// always the first of a round.
		for k := range vs {
			i := (k + round) % len(vs)
			v := vs[i]
			progress("notify, round %d/%d, %s: %d samples...\n", round+1, res.Rounds, v.Label, n)
			r, err := notifyRun(c, prog, v, fmt.Sprintf("bench-notify-%d-%d", round, i), pdir, n)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", v.Label, err)
			}
			runs[i] = append(runs[i], r)
			v.Runs = append(v.Runs, r.Visible)
		}
	}
	for i, v := range vs {
		v.Result = poolRestarts(runs[i])
	}
	none := poolRestarts(append(append([]*restartResult(nil), runs[0]...), runs[len(vs)-1]...))
	rng := rand.New(rand.NewPCG(1, 2)) // the same relabellings every run
	for _, v := range vs {
		if v.Plugin == "" {
			continue
		}
		d := &notifyDiff{
			P50:    v.Result.Visible.Median - none.Visible.Median,
			P95:    v.Result.Visible.P95 - none.Visible.P95,
			Runs50: absDur(none1.Result.Visible.Median - none2.Result.Visible.Median),
			Runs95: absDur(none1.Result.Visible.P95 - none2.Result.Visible.P95),
		}
		d.Perm50, d.Perm95 = permNoise(rng, v.Result.raw.visible, none.raw.visible, 2000)
		d.Spread50, d.Spread95 = runSpread(append(append([]durations(nil), none1.Runs...), none2.Runs...))
		d.Shift50 = d.P50 > max(d.Runs50, d.Perm50)
		d.Band50, d.Band95 = max(d.Runs50, d.Perm50, d.Spread50), max(d.Runs95, d.Perm95, d.Spread95)
		d.Within50, d.Within95 = d.P50 <= d.Band50, d.P95 <= d.Band95
		v.Diff = d
	}
	return res, nil
}

// runSpread is the standard deviation of the median and of p95 over runs.
func runSpread(runs []durations) (p50, p95 time.Duration) {
	sd := func(f func(durations) time.Duration) time.Duration {
		if len(runs) < 2 {
			return 0
		}
		var sum float64
		for _, r := range runs {
			sum += float64(f(r))
		}
		mean := sum / float64(len(runs))
		var ss float64
		for _, r := range runs {
			d := float64(f(r)) - mean
			ss += d * d
		}
		return time.Duration(math.Sqrt(ss / float64(len(runs)-1)))
	}
	return sd(func(r durations) time.Duration { return r.Median }), sd(func(r durations) time.Duration { return r.P95 })
}

// notifyRun starts respawner as v says, takes n restarts and stops it; it
// checks that the plugin registered as notify-only and collects what it
// delivered (or failed to).
func notifyRun(c *config, prog program, v *notifyVariant, name, pdir string, n int) (*restartResult, error) {
	opts := []string{"-t", "0"}
	if v.Plugin != "" {
		opts = append(opts, "--plugin-dir", pdir, "--plugin", v.Plugin)
	}
	if v.recv != nil {
		v.recv.take() // nothing from an earlier run counts
	}
	in, err := startRespawner(c.bin, c.dir, name, opts, prog)
	if err != nil {
		return nil, err
	}
	if v.Plugin != "" {
		// Measure the notifier at work, not the plugin starting up
		// (go-plugin's handshake and AutoMTLS key) beside the first
		// restarts.
		err = waitLog(in, []byte(`"hook plugin ready"`), 10*time.Second)
	}
	var res *restartResult
	if err == nil {
		res, err = measureRestarts(c, in, prog, n, v.Plugin != "")
	}
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	if err != nil || v.Plugin == "" {
		return res, err
	}
	// After the stop: the plugin has flushed (or given up) by then.
	log := readAll(in.logPath)
	ready, err := readyLine(log, v.plugs)
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, in.logTail(10))
	}
	v.Notify, v.Veto = ready.Notify, ready.Veto
	failed := bytes.Count(log, []byte(`"notification not delivered`))
	if v.recv == nil && failed == 0 {
		return nil, fmt.Errorf("the plugin logged no failed delivery to a port where nothing listens: it did not work\n%s", in.logTail(10))
	}
	v.Failures += failed
	if v.recv != nil {
		if v.Received == nil {
			v.Received = map[string]int{}
		}
		got := v.recv.take()
		if got["exited"] == 0 {
			return nil, fmt.Errorf("the receiver got no exited event (%v) in %d restarts: the plugin did not work\n%s", got, n, in.logTail(10))
		}
		for k, x := range got {
			v.Received[k] += x
		}
	}
	return res, nil
}

// waitLog waits until respawner's log holds s.
func waitLog(in *instance, s []byte, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !bytes.Contains(readAll(in.logPath), s) {
		if in.exited() {
			return fmt.Errorf("respawner exited: %v\n%s", in.waitErr, in.logTail(10))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s in respawner's log within %s\n%s", s, timeout, in.logTail(10))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

type readyCaps struct {
	Plugin string `json:"plugin"`
	Notify bool   `json:"notify"`
	Veto   bool   `json:"veto"`
}

// readyLine finds respawner's "hook plugin ready" line for plugin in log.
func readyLine(log []byte, plugin string) (readyCaps, error) {
	for _, l := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(l, []byte(`"hook plugin ready"`)) {
			continue
		}
		var r readyCaps
		if json.Unmarshal(l, &r) == nil && r.Plugin == plugin {
			return r, nil
		}
	}
	return readyCaps{}, fmt.Errorf("no \"hook plugin ready\" line for %s in respawner's log", plugin)
}

// permNoise is the 95th percentile, over k random relabellings of a and b
// pooled into groups of their sizes, of |p(A) - p(B)| for the median and
// for p95: how far apart the two percentiles fall by sampling alone when a
// and b come from one distribution.
func permNoise(rng *rand.Rand, a, b []time.Duration, k int) (p50, p95 time.Duration) {
	all := append(append([]time.Duration(nil), a...), b...)
	if len(a) == 0 || len(b) == 0 {
		return 0, 0
	}
	d50 := make([]time.Duration, 0, k)
	d95 := make([]time.Duration, 0, k)
	x := make([]time.Duration, len(a))
	y := make([]time.Duration, len(b))
	for range k {
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		copy(x, all[:len(a)])
		copy(y, all[len(a):])
		slices.Sort(x)
		slices.Sort(y)
		d50 = append(d50, absDur(median(x)-median(y)))
		d95 = append(d95, absDur(rank(x, 0.95)-rank(y, 0.95)))
	}
	sort.Slice(d50, func(i, j int) bool { return d50[i] < d50[j] })
	sort.Slice(d95, func(i, j int) bool { return d95[i] < d95[j] })
	return rank(d50, 0.95), rank(d95, 0.95)
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fmtKinds is "123 (exited 40, started 40, ...)", kinds by count.
func fmtKinds(m map[string]int) string {
	type kc struct {
		k string
		n int
	}
	var all []kc
	tot := 0
	for k, n := range m {
		all = append(all, kc{k, n})
		tot += n
	}
	sort.Slice(all, func(i, j int) bool { return all[i].n > all[j].n || all[i].n == all[j].n && all[i].k < all[j].k })
	var parts []string
	for _, x := range all {
		parts = append(parts, fmt.Sprintf("%s %d", x.k, x.n))
	}
	return fmt.Sprintf("%d (%s)", tot, strings.Join(parts, ", "))
}

func sumKinds(m map[string]int) int {
	n := 0
	for _, x := range m {
		n += x
	}
	return n
}

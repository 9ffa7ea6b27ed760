package hooks

import (
	"context"
	"slices"
	"testing"
	"time"
)

// The round-trip benchmarks run against a real testhook process started by
// Launch (go-plugin, gRPC, AutoMTLS over a unix socket). The latency ones
// report the median and 99th percentile of single calls, each under its own
// one-second deadline as respawner makes them:
//
//	go test -run '^$' -bench RoundTrip -benchtime 20000x ./pkg/hooks
//
// BenchmarkPingRoundTrip is go-plugin's own health-check call over the same
// connection: the floor that our shims and messages add to.

func benchClient(b *testing.B) *Client {
	b.Helper()
	c, err := Launch(buildPlugin(b, "testhook"), LaunchOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Kill)
	if _, err := c.Configure(context.Background(), map[string][]string{"decision": {"delay"}, "delay": {"2s"}}); err != nil {
		b.Fatal(err)
	}
	return c
}

// latency runs call under b.Loop, timing each call, and reports p50 and p99
// in microseconds.
func latency(b *testing.B, call func(ctx context.Context) error) {
	b.Helper()
	// Warm up the connection (TLS session, HTTP/2 window, allocations).
	for range 200 {
		if err := call(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, 1<<14)
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		start := time.Now()
		err := call(ctx)
		lat = append(lat, time.Since(start))
		cancel()
		if err != nil {
			b.Fatal(err)
		}
	}
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

func BenchmarkNotifyRoundTrip(b *testing.B) {
	c := benchClient(b)
	ctx := context.Background()
	for b.Loop() {
		if err := c.Notify(ctx, sampleEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRestartPendingRoundTrip(b *testing.B) {
	c := benchClient(b)
	ev := sampleEvent
	ev.Kind = RestartPending
	latency(b, func(ctx context.Context) error {
		v, err := c.RestartPending(ctx, ev)
		if err == nil && v.Decision != DecisionDelay {
			b.Fatalf("verdict %v", v)
		}
		return err
	})
}

func BenchmarkPingRoundTrip(b *testing.B) {
	c := benchClient(b)
	rpc, err := c.pc.Client()
	if err != nil {
		b.Fatal(err)
	}
	latency(b, func(context.Context) error { return rpc.Ping() })
}

// BenchmarkRestartPendingInProcess is the same call without a process or
// TLS: what the shims and protobuf cost by themselves.
func BenchmarkRestartPendingInProcess(b *testing.B) {
	c, err := InProcess(&full{verdict: DelayBy(2 * time.Second)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Kill)
	ev := sampleEvent
	ev.Kind = RestartPending
	latency(b, func(ctx context.Context) error {
		_, err := c.RestartPending(ctx, ev)
		return err
	})
}

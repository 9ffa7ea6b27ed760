package hooks_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// maintenance holds restarts while a flag file exists. Its plugin main would
// be `func main() { hooks.Serve(&maintenance{}) }`.
type maintenance struct{ flag string }

var (
	_ hooks.Configurer = (*maintenance)(nil)
	_ hooks.Vetoer     = (*maintenance)(nil)
)

func (m *maintenance) Configure(ctx context.Context, opts *hooks.Options) error {
	m.flag = opts.String("file", "/etc/maintenance")
	return opts.Err()
}

func (m *maintenance) RestartPending(ctx context.Context, ev hooks.Event) (hooks.Verdict, error) {
	if _, err := os.Stat(m.flag); err == nil {
		return hooks.Deny("maintenance: " + filepath.Base(m.flag) + " exists"), nil
	}
	return hooks.Allow(), nil
}

// Example runs the maintenance hook in process and asks it, as respawner
// does, whether lighttpd may restart: first with the flag file present, then
// after it is removed.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	flag := filepath.Join(dir, "hold")
	os.WriteFile(flag, nil, 0o644)

	c, err := hooks.InProcess(&maintenance{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if _, err := c.Configure(ctx, map[string][]string{"colour": {"red"}}); err != nil {
		fmt.Println(err)
	}
	if _, err := c.Configure(ctx, map[string][]string{"file": {flag}}); err != nil {
		fmt.Println(err)
	}
	info, _ := c.Info(ctx)
	fmt.Printf("veto %v, notify %v\n", info.Veto, info.Notify)

	ev := hooks.Event{Kind: hooks.RestartPending, Instance: "lighttpd", Attempt: 1}
	v, _ := c.RestartPending(ctx, ev)
	fmt.Println(v)
	os.Remove(flag)
	v, _ = c.RestartPending(ctx, ev)
	fmt.Println(v)
	// Output:
	// configure: unknown option "colour"
	// veto true, notify false
	// deny: maintenance: hold exists
	// allow
}

// ExampleStrictest combines the answers of three plugins.
func ExampleStrictest() {
	v := hooks.Strictest(hooks.Allow(), hooks.DelayBy(10*time.Second), hooks.DelayBy(time.Minute))
	fmt.Println(v)
	v = hooks.Strictest(v, hooks.Deny("maintenance"), hooks.Deny("later"))
	fmt.Println(v)
	// Output:
	// delay 1m0s
	// deny: maintenance
}

// ExampleOptions shows Configure's usual shape and the errors it reports.
func ExampleOptions() {
	_, m, _ := hooks.ParseSpec("healthcheck-http:url=http://127.0.0.1:8080/,interval=abc,header=A: 1,header=B: 2,colour=red")
	opts := hooks.NewOptions(m)
	url := opts.String("url", "http://127.0.0.1:80/")
	probe := opts.ProbeConfig(hooks.DefaultProbeConfig)
	headers := opts.Strings("header")
	fmt.Println(url, probe.Interval, headers)
	fmt.Println(opts.Err())
	// Output:
	// http://127.0.0.1:8080/ 10s [A: 1 B: 2]
	// option interval: "abc" is not a duration; unknown option "colour"
}

// Package notifytest holds what the notifier plugins' tests share: a
// configured plugin whose log lines a test can read. For tests only.
package notifytest

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/plugins/internal/notify"
)

// LineWriter hands each log line to a channel, dropping what it has no
// room for.
type LineWriter chan string

func (w LineWriter) Write(p []byte) (int, error) {
	select {
	case w <- string(p):
	default:
	}
	return len(p), nil
}

// Configure returns the plugin newPlugin makes, configured with opts, its
// log lines going to logs (when not nil, as JSON); Close is called at the
// end of the test.
func Configure(t *testing.T, newPlugin func(string, hclog.Logger) *notify.Plugin, opts map[string][]string, logs chan string) *notify.Plugin {
	t.Helper()
	log := hclog.NewNullLogger()
	if logs != nil {
		log = hclog.New(&hclog.LoggerOptions{Output: LineWriter(logs), Level: hclog.Debug, JSONFormat: true})
	}
	p := newPlugin("test", log)
	if err := p.Configure(t.Context(), hooks.NewOptions(opts)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

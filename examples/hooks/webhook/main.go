// Command webhook is a respawner hook that POSTs each event it hears, in its
// JSON form, to a URL:
//
//	respawner start --plugin webhook:url=http://127.0.0.1:9000/events ./server
//
// notify-webhook, which ships with respawner, is the one for production:
// retries, digests of crash loops, signatures, Slack and Alertmanager.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hooks"
)

type webhook struct {
	log    hclog.Logger
	url    string
	events []hooks.Kind
}

var (
	_ hooks.Configurer = (*webhook)(nil)
	_ hooks.Subscriber = (*webhook)(nil)
	_ hooks.Notifier   = (*webhook)(nil)
)

func (w *webhook) Configure(ctx context.Context, opts *hooks.Options) error {
	w.url = opts.String("url", "")
	if w.url == "" {
		opts.Errorf("url", "is required (url=http://...)")
	}
	w.events = opts.Kinds("events", []hooks.Kind{hooks.Exited, hooks.GaveUp}) // events=all works too
	return opts.Err()
}

func (w *webhook) Events() []hooks.Kind { return w.events }

func (w *webhook) Notify(ctx context.Context, ev hooks.Event) error {
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s", w.url, resp.Status)
	}
	w.log.Debug("event posted", "kind", ev.Kind, "status", resp.StatusCode)
	return nil
}

func main() {
	log := hooks.NewLogger() // before Serve, which replaces os.Stderr
	hooks.ServeWithLogger(&webhook{log: log}, log)
}

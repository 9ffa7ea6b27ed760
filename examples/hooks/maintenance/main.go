// Command maintenance is a respawner hook that holds restarts while a file
// exists: touch the file before planned work, remove it when done.
//
//	go build -o respawner-plugin-maintenance .
//	install -D -m 0755 respawner-plugin-maintenance /usr/lib/respawner/plugins/respawner-plugin-maintenance
//	respawner start --plugin maintenance:file=/run/maintenance ./server
package main

import (
	"context"
	"os"

	"github.com/respawner/respawner/pkg/hooks"
)

type maintenance struct{ file string }

// The capabilities it means to have: a method with a wrong signature fails
// to compile here, instead of quietly not being one.
var (
	_ hooks.Configurer = (*maintenance)(nil)
	_ hooks.Vetoer     = (*maintenance)(nil)
)

func (m *maintenance) Configure(ctx context.Context, opts *hooks.Options) error {
	m.file = opts.String("file", "/run/respawner-maintenance")
	return opts.Err()
}

func (m *maintenance) RestartPending(ctx context.Context, ev hooks.Event) (hooks.Verdict, error) {
	if _, err := os.Stat(m.file); err == nil {
		return hooks.Deny(m.file + " exists"), nil
	}
	return hooks.Allow(), nil
}

func main() { hooks.Serve(&maintenance{}) }

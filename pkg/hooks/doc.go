// Package hooks is the SDK for respawner's hook plugins: the lifecycle events
// and restart verdicts they deal in, Serve for the plugin side, and Launch and
// Client for respawner's side.
//
// A hook plugin is a separate executable named respawner-plugin-NAME, started
// by respawner for `respawner start --plugin NAME:key=value,...` and spoken to
// over hashicorp/go-plugin with gRPC and automatic mutual TLS. It implements
// any of these capabilities, each an interface of its own:
//
//   - Notifier: told about lifecycle events (starting, started, exited, ...),
//     all of them or those a Subscriber lists;
//   - Vetoer: asked before each restart, and answers Allow, DelayBy, Deny or
//     GiveUp (the strictest answer of all plugins wins; an error, a panic or
//     a missed deadline counts as allow);
//   - Prober: a health check that respawner runs on the schedule a
//     ProbeConfigurer returns, restarting the program after too many
//     consecutive failures;
//
// and optionally Configurer (options), Subscriber and Versioner. A plugin
// main is one call:
//
//	package main
//
//	import (
//		"context"
//		"os"
//
//		"github.com/respawner/respawner/pkg/hooks"
//	)
//
//	// maintenance holds restarts while a flag file exists.
//	type maintenance struct{ flag string }
//
//	// The capabilities it means to have: a wrong signature is a compile
//	// error here, not a capability that quietly goes missing.
//	var (
//		_ hooks.Configurer = (*maintenance)(nil)
//		_ hooks.Vetoer     = (*maintenance)(nil)
//	)
//
//	func (m *maintenance) Configure(ctx context.Context, opts *hooks.Options) error {
//		m.flag = opts.String("file", "/etc/maintenance")
//		return opts.Err()
//	}
//
//	func (m *maintenance) RestartPending(ctx context.Context, ev hooks.Event) (hooks.Verdict, error) {
//		if _, err := os.Stat(m.flag); err == nil {
//			return hooks.Deny(m.flag + " exists"), nil
//		}
//		return hooks.Allow(), nil
//	}
//
//	func main() { hooks.Serve(&maintenance{}) }
//
// Build it as respawner-plugin-maintenance in a plugin directory and run
// `respawner start --plugin maintenance:file=/run/hold lighttpd -- ...`.
//
// # Rules for plugins
//
// Every method takes a context whose deadline respawner sets; answer before
// it. Never write to stdout before Serve: it carries the go-plugin handshake.
// Log through NewLogger (JSON on stderr, which respawner re-logs under the
// plugin's name). A panic in a method is recovered, logged, and answered as
// an error, so the plugin keeps running; a panic in a goroutine of your own
// is not, and respawner restarts the crashed plugin with backoff. Take
// secrets from the environment or a file, never from options, which are on
// respawner's command line for every user to read.
//
// # Compatibility
//
// The wire contract is proto/hooks.proto (package respawner.hooks.v1), so
// hooks can be written in any language go-plugin supports. ProtocolVersion
// is negotiated at launch; a plugin built for another version is refused
// with a *VersionError that says so.
//
// # Host side
//
// respawner starts a plugin with Launch, calls Configure with its options
// and Info for its capabilities, then Notify, RestartPending and Probe, each
// under a deadline, and Kill at the end. InProcess gives the same Client over
// an implementation in the calling process, for tests.
package hooks

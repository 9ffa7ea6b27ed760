// Package durlog makes an hclog.Logger write durations as strings.
//
// hclog's JSON format encodes a time.Duration with encoding/json, as an
// integer of nanoseconds ("delay":5000000000), which a reader takes for a
// number of anything; its text format already prints "5s". A logger wrapped
// here turns every time.Duration among a call's key/value pairs into its
// String form ("delay":"5s", "uptime":"1.002s") before hclog sees it, so
// the text format is unchanged and no call site can forget. respawner and
// respawner-hookhost wrap their loggers, and hooks.NewLogger a plugin's. It
// imports hclog alone, so respawner links it without pkg/hooks's gRPC.
package durlog

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// Wrap returns l writing durations as strings, and the loggers it derives
// (With, Named, ResetNamed) too.
func Wrap(l hclog.Logger) hclog.Logger {
	if _, ok := l.(logger); ok {
		return l
	}
	return logger{l}
}

type logger struct{ hclog.Logger }

// Args returns args with each time.Duration value replaced by its String
// form; args itself when there is none (the common case allocates nothing).
func Args(args []any) []any {
	for i, a := range args {
		if _, ok := a.(time.Duration); !ok {
			continue
		}
		out := make([]any, len(args))
		copy(out, args)
		for j := i; j < len(out); j++ {
			if d, ok := out[j].(time.Duration); ok {
				out[j] = d.String()
			}
		}
		return out
	}
	return args
}

func (l logger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, Args(args)...)
}
func (l logger) Trace(msg string, args ...any) { l.Logger.Trace(msg, Args(args)...) }
func (l logger) Debug(msg string, args ...any) { l.Logger.Debug(msg, Args(args)...) }
func (l logger) Info(msg string, args ...any)  { l.Logger.Info(msg, Args(args)...) }
func (l logger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, Args(args)...) }
func (l logger) Error(msg string, args ...any) { l.Logger.Error(msg, Args(args)...) }

func (l logger) With(args ...any) hclog.Logger       { return logger{l.Logger.With(Args(args)...)} }
func (l logger) Named(name string) hclog.Logger      { return logger{l.Logger.Named(name)} }
func (l logger) ResetNamed(name string) hclog.Logger { return logger{l.Logger.ResetNamed(name)} }

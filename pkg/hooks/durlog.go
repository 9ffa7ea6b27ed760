package hooks

import (
	"time"

	"github.com/hashicorp/go-hclog"
)

// durationLogger writes each time.Duration among a call's key/value pairs as
// its String form ("2s"): hclog's JSON encodes one as an integer of
// nanoseconds. It is respawner's internal/durlog, copied because nothing
// under pkg/ imports internal/.
type durationLogger struct{ hclog.Logger }

func durationArgs(args []any) []any {
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

func (l durationLogger) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, durationArgs(args)...)
}
func (l durationLogger) Trace(msg string, args ...any) { l.Logger.Trace(msg, durationArgs(args)...) }
func (l durationLogger) Debug(msg string, args ...any) { l.Logger.Debug(msg, durationArgs(args)...) }
func (l durationLogger) Info(msg string, args ...any)  { l.Logger.Info(msg, durationArgs(args)...) }
func (l durationLogger) Warn(msg string, args ...any)  { l.Logger.Warn(msg, durationArgs(args)...) }
func (l durationLogger) Error(msg string, args ...any) { l.Logger.Error(msg, durationArgs(args)...) }

func (l durationLogger) With(args ...any) hclog.Logger {
	return durationLogger{l.Logger.With(durationArgs(args)...)}
}
func (l durationLogger) Named(name string) hclog.Logger {
	return durationLogger{l.Logger.Named(name)}
}
func (l durationLogger) ResetNamed(name string) hclog.Logger {
	return durationLogger{l.Logger.ResetNamed(name)}
}

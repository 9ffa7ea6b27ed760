package hooks

import (
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// goPluginLog is the logger Launch gives go-plugin for one plugin. go-plugin
// logs two kinds of lines through it: its own, about the plugin process, and
// the plugin's log lines, re-logged under Named(base name of the binary).
//
// Its own lines at info and above are logged at debug while the plugin is not
// in service: before the handshake, where a failure is Launch's error and
// says everything ("plugin process exited", "plugin failed to exit
// gracefully" only repeated it, ahead of it), and once Kill was called, when
// the plugin is ended on purpose. In service, an exit is news and keeps its
// level.
//
// From each of the plugin's JSON lines go-plugin re-logs, it drops the
// "timestamp" field that go-plugin appends (the plugin's @timestamp): the
// line gets its time where it is written, and showed two.
type goPluginLog struct {
	hclog.Logger
	quiet  *atomic.Bool
	plugin string // base name of the binary: Named(plugin) is the plugin's own
}

func newGoPluginLog(l hclog.Logger, plugin string) (*goPluginLog, *atomic.Bool) {
	quiet := &atomic.Bool{}
	quiet.Store(true) // until the handshake is done
	return &goPluginLog{Logger: l, quiet: quiet, plugin: plugin}, quiet
}

func (l *goPluginLog) Log(level hclog.Level, msg string, args ...any) {
	if level > hclog.Debug && l.quiet.Load() {
		level = hclog.Debug
	}
	l.Logger.Log(level, msg, args...)
}

func (l *goPluginLog) Trace(msg string, args ...any) { l.Log(hclog.Trace, msg, args...) }
func (l *goPluginLog) Debug(msg string, args ...any) { l.Log(hclog.Debug, msg, args...) }
func (l *goPluginLog) Info(msg string, args ...any)  { l.Log(hclog.Info, msg, args...) }
func (l *goPluginLog) Warn(msg string, args ...any)  { l.Log(hclog.Warn, msg, args...) }
func (l *goPluginLog) Error(msg string, args ...any) { l.Log(hclog.Error, msg, args...) }

func (l *goPluginLog) With(args ...any) hclog.Logger {
	return &goPluginLog{Logger: l.Logger.With(args...), quiet: l.quiet, plugin: l.plugin}
}

func (l *goPluginLog) Named(name string) hclog.Logger {
	if name == l.plugin {
		return pluginLines{l.Logger.Named(name)}
	}
	return &goPluginLog{Logger: l.Logger.Named(name), quiet: l.quiet, plugin: l.plugin}
}

func (l *goPluginLog) ResetNamed(name string) hclog.Logger {
	return &goPluginLog{Logger: l.Logger.ResetNamed(name), quiet: l.quiet, plugin: l.plugin}
}

// pluginLines logs the plugin's own lines at their level, without the
// "timestamp" go-plugin puts last.
type pluginLines struct{ hclog.Logger }

func dropTimestamp(args []any) []any {
	if n := len(args); n >= 2 && args[n-2] == "timestamp" {
		return args[:n-2]
	}
	return args
}

func (l pluginLines) Log(level hclog.Level, msg string, args ...any) {
	l.Logger.Log(level, msg, dropTimestamp(args)...)
}
func (l pluginLines) Trace(msg string, args ...any) { l.Logger.Trace(msg, dropTimestamp(args)...) }
func (l pluginLines) Debug(msg string, args ...any) { l.Logger.Debug(msg, dropTimestamp(args)...) }
func (l pluginLines) Info(msg string, args ...any)  { l.Logger.Info(msg, dropTimestamp(args)...) }
func (l pluginLines) Warn(msg string, args ...any)  { l.Logger.Warn(msg, dropTimestamp(args)...) }
func (l pluginLines) Error(msg string, args ...any) { l.Logger.Error(msg, dropTimestamp(args)...) }

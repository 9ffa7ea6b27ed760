// Command respawner-hookhost runs respawner's hook plugins. respawner starts
// it only when --plugin is given, with a SOCK_SEQPACKET socket on fd 3, so
// that the supervisor itself never links go-plugin and gRPC. It launches each
// plugin (go-plugin owns and reaps those processes), configures it, delivers
// events through a bounded queue per plugin, asks the veto question of all of
// them at once under their deadlines, restarts a plugin that dies, and stops
// them all when respawner says so or goes away. It is a child subreaper: the
// processes plugins leave behind are reaped here, and killed when it ends,
// never mistaken by respawner for the supervised program's.
//
//	respawner-hookhost                                     host mode (fd 3 is the socket to respawner)
//	respawner-hookhost describe [-socket-dir DIR] [--] PATH...  print each plugin's version and capabilities as JSON
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hooks/pluginproc"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "describe" {
		os.Exit(describe(os.Args[2:]))
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "respawner-hookhost: respawner starts this program itself; run 'respawner plugins' instead")
		os.Exit(2)
	}
	h, err := newHost(3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "respawner-hookhost:", err)
		os.Exit(1)
	}
	// What a plugin starts and abandons is reparented to the nearest
	// subreaper. Without this that is respawner, which would take it for
	// a process of the supervised program (and follow it as a daemon); here
	// it stays with the plugins, and is reaped (and killed at the end) here.
	if err := pluginproc.BecomeSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "respawner-hookhost:", err)
		os.Exit(1)
	}
	go pluginproc.ReapOrphans(context.Background(), func(pid int, status string) {
		h.log.Debug("reaped a plugin's orphan", "pid", pid, "status", status)
	})
	os.Exit(h.run())
}

// describe launches each plugin just long enough to ask what it is, and
// prints a hookwire.PluginInfo for each, one JSON object a line. Their
// socket directories go under -socket-dir (respawner plugins makes one and
// removes it). SIGINT or SIGTERM (passed on by respawner plugins, which
// runs us in a process group of our own) kills the plugin being asked and
// ends the run with 1, once that plugin's socket directory is gone; the
// default action would leave it, and the plugin, behind.
func describe(args []string) int {
	fs := flag.NewFlagSet("describe", flag.ContinueOnError)
	sockDir := fs.String("socket-dir", "", "`directory` for the plugins' socket directories (default: $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		pluginproc.KillPlugins()
	}()
	interrupted := func() bool {
		if ctx.Err() == nil {
			return false
		}
		fmt.Fprintln(os.Stderr, "respawner-hookhost: interrupted")
		return true
	}
	enc := json.NewEncoder(os.Stdout)
	for _, p := range fs.Args() {
		if interrupted() {
			return 1
		}
		d := hookwire.PluginInfo{Path: p}
		resolved, err := hookwire.SafeExecutable("plugin", p)
		if err != nil {
			d.Error = err.Error()
			enc.Encode(d)
			continue
		}
		c, err := hooks.Launch(resolved, hooks.LaunchOptions{Logger: hclog.NewNullLogger(), SocketDir: *sockDir})
		if err != nil {
			d.Error = err.Error()
			enc.Encode(d)
			continue
		}
		infoCtx, cancel := context.WithTimeout(ctx, hookwire.DefaultTimeout)
		in, err := c.Info(infoCtx)
		cancel()
		c.Kill()
		d = infoOf("", in, nil)
		d.Path = p
		if err != nil {
			d.Error = err.Error()
		}
		enc.Encode(d)
	}
	if interrupted() { // the last plugin's answer may be its death
		return 1
	}
	return 0
}

// infoOf is what the host tells respawner of a plugin: in, bounded, and the
// probe's schedule when it has one.
func infoOf(name string, in hooks.Info, sched *hooks.ProbeConfig) hookwire.PluginInfo {
	pi := hookwire.PluginInfo{Name: name, Version: hookwire.Bound(in.Version, hookwire.MaxVersion), Notify: in.Notify, Veto: in.Veto, Probe: in.Probe}
	for _, k := range in.Events {
		// Known kinds only, once each: the list is the plugin's to make,
		// and travels to respawner in one packet.
		if k.Valid() && !slices.Contains(pi.Events, k) {
			pi.Events = append(pi.Events, k)
		}
	}
	if sched != nil {
		c := *sched
		pi.Sched = &c
	}
	return pi
}

package main

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/respawner/respawner/internal/loop"
	"github.com/spf13/cobra"
)

type startOptions struct {
	foreground     bool
	respawnTimeout durationValue
	limit          int
	success        codeListValue
	maxDelay       durationValue
	reset          durationValue
	window         durationValue
	policy         policyValue
	name           string
	stopTimeout    durationValue
	log            logOptions

	program string
	args    []string
}

func newStartCmd() *cobra.Command {
	opts := &startOptions{
		respawnTimeout: durationValue(5 * time.Second),
		reset:          durationValue(60 * time.Second),
		stopTimeout:    durationValue(10 * time.Second),
		log:            newLogOptions(),
	}
	opts.success.set.Add(0)
	opts.success.text = "0"
	cmd := &cobra.Command{
		Use:   "start [flags] PROGRAM [-- ARGS...]",
		Short: "Start PROGRAM and restart it whenever it dies abnormally",
		Long: `Start PROGRAM and restart it whenever it dies abnormally.

A clean exit (status 0, a status listed with -e, or death by SIGTERM, SIGINT,
SIGHUP or SIGPIPE) ends supervision with exit 0 under the default restart
policy on-failure; anything else is restarted after the respawn timeout.
Durations take a bare number of seconds (-t 5) or a unit (-t 200ms, 1m30s).

SIGTERM or SIGINT to respawner stops the program (SIGTERM to its process group
and everything it started, SIGKILL after --stop-timeout) and exits 0. SIGHUP
reopens --log-file and never ends supervision.`,
		Example: `  respawner start -D -t 1 ./server -- --port 8080
  respawner start -D -n 3 -e 0,7 --restart always ./job.sh`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing PROGRAM (usage: %s)", c.UseLine())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.program, opts.args = args[0], args[1:]
			return runStart(c, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.foreground, "foreground", "D", false, "do not daemonize; log to stderr")
	f.VarP(&opts.respawnTimeout, "respawn-timeout", "t", "delay before each restart; a bare number is seconds, 0 restarts at once")
	f.IntVarP(&opts.limit, "respawn-limit", "n", 0, "give up after N restarts (0: no limit)")
	f.VarP(&opts.success, "success-exit-status", "e", "comma-separated exit codes that count as a clean exit")
	f.Var(&opts.maxDelay, "respawn-max-delay", "exponential backoff cap: consecutive restarts double the delay up to this (default: equal to -t, a fixed delay)")
	f.Var(&opts.reset, "respawn-reset", "uptime after which a run counts as stable: backoff and a windowed limit start over")
	f.Var(&opts.window, "respawn-window", "count -n restarts within this sliding window instead of in total")
	f.Var(&opts.policy, "restart", "restart policy: on-failure, always or never")
	f.StringVar(&opts.name, "name", "", "instance name (default: base name of PROGRAM)")
	f.Var(&opts.stopTimeout, "stop-timeout", "SIGTERM first, SIGKILL after this long")
	f.Var(&opts.log.level, "log-level", "trace, debug, info, warn or error")
	f.Var(&opts.log.format, "log-format", "text or json")
	f.StringVar(&opts.log.file, "log-file", "", "log to this file instead of stderr (reopened on SIGHUP)")
	return cmd
}

func (o *startOptions) validate() error {
	if o.limit < 0 {
		return usageErrorf("invalid -n %d: the respawn limit must be 0 (no limit) or more", o.limit)
	}
	if o.window > 0 && o.limit == 0 {
		return usageErrorf("--respawn-window needs a limit: give -n N as well")
	}
	if o.maxDelay != 0 && o.maxDelay < o.respawnTimeout {
		return usageErrorf("--respawn-max-delay %s is below -t %s: the cap must be at least the respawn timeout",
			time.Duration(o.maxDelay), time.Duration(o.respawnTimeout))
	}
	if o.name == "" {
		o.name = filepath.Base(o.program)
	}
	return checkName(o.name)
}

func (o *startOptions) machineConfig() loop.Config {
	cfg := loop.Config{
		RespawnTimeout: time.Duration(o.respawnTimeout),
		MaxDelay:       time.Duration(o.maxDelay),
		Reset:          time.Duration(o.reset),
		Window:         time.Duration(o.window),
		Limit:          o.limit,
		Policy:         loop.Policy(o.policy),
		Success:        o.success.set,
		StopTimeout:    time.Duration(o.stopTimeout),
	}
	if cfg.MaxDelay > cfg.RespawnTimeout {
		cfg.Jitter = rand.Float64
	}
	return cfg
}

func runStart(c *cobra.Command, o *startOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	path, err := resolveProgram(o.program)
	if err != nil {
		return err
	}
	if !o.foreground {
		return errors.New("daemon mode is not available yet: use -D to run in the foreground")
	}
	// Hygiene before anything else starts: what we inherited must not reach the program.
	if err := loop.CloseInheritedFDs(); err != nil {
		return err
	}
	loop.ResetIgnoredSignals()

	log, reopen, err := newLogger(o.log, c.ErrOrStderr())
	if err != nil {
		return err
	}
	l := loop.New(loop.Options{
		Name:    o.name,
		Path:    path,
		Argv:    append([]string{o.program}, o.args...),
		Env:     os.Environ(),
		Machine: o.machineConfig(),
		Log:     log.Named(o.name),
		Reopen:  reopen,
	})
	code, err := l.Run()
	if err != nil {
		return err
	}
	if code != 0 {
		return silentExit(exitCode(code))
	}
	return nil
}

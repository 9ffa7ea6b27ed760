package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/hookwire"
	"github.com/respawner/respawner/internal/keeper"
	"github.com/respawner/respawner/internal/listen"
	"github.com/respawner/respawner/internal/logsink"
	"github.com/respawner/respawner/internal/loop"
	"github.com/respawner/respawner/internal/machine"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
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
	stopSignal     signalValue
	startTimeout   durationValue
	startCheck     durationValue
	pidfile        string
	runtimeDir     string
	plugins        []string
	specs          []hookwire.PluginSpec // plugins, parsed by validate
	pluginDir      dirValue
	captureOutput  bool
	ready          choiceValue
	watchdog       durationValue
	listen         []string
	listenSpecs    []listen.Spec // listen, parsed and named, set by validate
	log            logOptions
	run            runEnvOptions
	runEnv         *runEnv // what run resolves to, set by validate

	dir *control.Dir // the open runtime dir, set by runStart

	program string
	args    []string
	loose   bool // an argument follows PROGRAM before any '--'
}

func newStartCmd() *cobra.Command {
	opts := &startOptions{
		respawnTimeout: durationValue(5 * time.Second),
		reset:          durationValue(60 * time.Second),
		stopTimeout:    durationValue(10 * time.Second),
		stopSignal:     signalValue(syscall.SIGTERM),
		startTimeout:   durationValue(10 * time.Second),
		startCheck:     durationValue(time.Second),
		ready:          choiceValue{val: "none", choices: []string{"none", "notify"}},
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
Durations take a bare number of seconds (-t 5, -t 0.5) or a unit (-t 200ms, 1m30s).

Without -D, start runs respawner in the background and exits 0 once the
program has survived --start-check (or, with -p, once its pidfile names a live
process started by respawner; with --ready notify, once it said READY=1), else
1 with the program's exit status and last lines of stderr. A program that
daemonizes itself is followed: through its pidfile with -p, or, when it exits
cleanly leaving exactly one process, that one.

With --ready notify or --watchdog the program gets NOTIFY_SOCKET and speaks
systemd's sd_notify protocol (READY=1, STATUS=, WATCHDOG=1); only messages
from the instance's own processes are heard. Under systemd (Type=notify),
respawner says READY=1 itself once its program is up, or ready.

SIGTERM or SIGINT to respawner stops the program (--stop-signal, SIGTERM by
default, to its process group and everything it started, SIGKILL after
--stop-timeout) and exits 0. SIGHUP reopens the log file and never ends
supervision. "respawner restart NAME" stops the program the same way and
starts it again at once; "respawner signal NAME SIG" sends it any signal.

A daemon logs, with its program's output, to --log-file, else to syslog (tag
NAME) where /dev/log exists, else to NAME.log in the runtime dir. A log file
is rotated by size (NAME.log.1 ... NAME.log.N, --log-max-size, --log-max-files)
and shown by "respawner logs NAME".

Every run of the program gets --user, --group, --chdir, --umask and --limit;
respawner itself keeps its own (and stays root, so that stop works). Its
environment is respawner's without RESPAWNER_* and the service manager's
NOTIFY_SOCKET, WATCHDOG_* and LISTEN_* (or PATH alone with --clear-env), then,
each over the one before: HOME, USER and LOGNAME of --user, the --env-file files
(read again at every start), the --env settings.

A malformed --plugin (no name, an option without '=', a plugin given twice)
is bad usage: exit 2. A plugin that is not found, will not start, or rejects
one of its options makes start exit 1 with the plugin's own message, and
nothing is left running.

The program's arguments go after '--' (flags after PROGRAM are taken for
respawner's), and -p takes a path only with '=' (-p=/run/lighttpd.pid).`,
		Example: `  respawner start lighttpd -- -f /etc/lighttpd/lighttpd.conf
  respawner start -e 0,1 -p lighttpd -- -f /etc/lighttpd/lighttpd.conf
  respawner start --plugin healthcheck-http lighttpd -- -f /etc/lighttpd/lighttpd.conf
  respawner start -D -t 1 ./server -- --port 8080
  respawner start -D -n 3 -e 0,7 --restart always ./job.sh
  respawner start --user www-data --chdir /srv/app --env-file -/etc/default/app --limit nofile=4096 ./server
  respawner start --ready notify --watchdog 30s ./server`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageErrorf("missing PROGRAM (usage: %s)", c.UseLine())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			opts.program, opts.args = args[0], args[1:]
			dash := c.ArgsLenAtDash()
			opts.loose = dash > 1 || dash < 0 && len(args) > 1
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
	f.Var(&opts.stopTimeout, "stop-timeout", "--stop-signal first, SIGKILL after this long")
	f.Var(&opts.stopSignal, "stop-signal", "what stop and restart send the program first (HUP, INT, QUIT, TERM, USR1... or a number): INT lets lighttpd finish its requests, QUIT stops nginx and php-fpm gracefully; SIGKILL follows after --stop-timeout")
	f.StringVarP(&opts.pidfile, "pidfile", "p", "", "the program daemonizes and writes its pid to `PATH` (give it as -p=PATH); -p alone means /run/NAME.pid, or /tmp/NAME.pid where /run is not writable")
	f.Lookup("pidfile").NoOptDefVal = autoPidfile
	f.Var(&opts.startTimeout, "start-timeout", "how long a daemonizing program may take to write its pidfile, or a program to say READY=1 (--ready notify)")
	f.Var(&opts.startCheck, "start-check", "daemonizing start only: the first run must survive this long (0: no check; with --ready notify, READY=1 decides instead)")
	f.StringVar(&opts.runtimeDir, "runtime-dir", control.DefaultDir(), "where instance state lives (env RESPAWNER_RUNTIME_DIR)")
	f.StringArrayVar(&opts.plugins, "plugin", nil, "hook plugin `NAME` or NAME:key=value,...; repeatable (options sha256=HEX and timeout=DUR are respawner's)")
	f.Var(&opts.pluginDir, "plugin-dir", "`DIR` searched first for plugin binaries (relative to the current directory)")
	f.Var(&opts.ready, "ready", "notify: the program says when it is ready with sd_notify READY=1 on $NOTIFY_SOCKET (systemd's Type=notify); until then it is starting")
	f.Var(&opts.watchdog, "watchdog", "the program must send sd_notify WATCHDOG=1 at least this often (from READY=1 with --ready notify, else from its start), or it is killed (SIGABRT, SIGKILL after --stop-timeout) and restarted; sets WATCHDOG_USEC and WATCHDOG_PID (the exec shim: ~1.5 ms more per start); 0: off")
	f.StringArrayVar(&opts.listen, "listen", nil, "hold a listening socket, `[NAME=]ADDR` (tcp:HOST:PORT, tcp6:[HOST]:PORT, udp:HOST:PORT, unix:/PATH; options ,backlog=N and for unix ,mode=0660,owner=USER[:GROUP]), for the life of the instance and give it to every run as fd 3, 4, ... with LISTEN_FDS, LISTEN_FDNAMES (NAME, default the instance name) and LISTEN_PID (systemd socket activation): connections wait while the program restarts; repeatable")
	f.BoolVar(&opts.captureOutput, "capture-output", false, "with -D: pass the program's output through respawner (to its own stdout and stderr), so hook events carry its last lines; daemon mode always does")
	f.StringVar(&opts.run.user, "user", "", "run the program as `USER[:GROUP]` (names or ids), with the user's groups and its HOME, USER and LOGNAME; respawner must run as root")
	f.StringVar(&opts.run.group, "group", "", "the program's primary `GROUP` (with --user, instead of the user's own; alone, respawner's user with this group)")
	f.StringVar(&opts.run.chdir, "chdir", "", "run the program in `DIR` (entered as --user)")
	f.StringVar(&opts.run.umask, "umask", "", "the program's umask, an octal `MODE` such as 027")
	f.StringArrayVar(&opts.run.env, "env", nil, "set `KEY=VALUE` in the program's environment; repeatable, over --env-file (every user can read the command line: secrets belong in a mode 0600 --env-file)")
	f.StringArrayVar(&opts.run.envFiles, "env-file", nil, "read variables from `FILE` at every start of the program (systemd EnvironmentFile syntax; -FILE: the file may be missing); repeatable")
	f.BoolVar(&opts.run.clearEnv, "clear-env", false, "start the program's environment empty but for PATH (then --user, --env-file, --env)")
	f.StringArrayVar(&opts.run.limits, "limit", nil, "set a resource limit of the program, `NAME=SOFT[:HARD]`, NAME one of nofile, nproc, core, as, memlock, stack, cpu, each value a number or unlimited (one value sets both); repeatable")
	f.Var(&opts.log.level, "log-level", "trace, debug, info, warn or error")
	f.Var(&opts.log.format, "log-format", "text or json")
	f.StringVar(&opts.log.file, "log-file", "", "log to this file (reopened on SIGHUP); default: stderr with -D, else syslog, else NAME.log in the runtime dir")
	f.Var(&opts.log.maxSize, "log-max-size", "rotate NAME.log or --log-file before it grows past `SIZE` (bytes, or with a K, M or G suffix); 0: never")
	f.IntVar(&opts.log.maxFiles, "log-max-files", defaultLogMaxFiles, "rotated log files kept, `N`: NAME.log.1 (newest) to NAME.log.N; 0: none")
	cmd.RegisterFlagCompletionFunc("plugin", completePlugins)
	cmd.RegisterFlagCompletionFunc("plugin-dir", completeDirs)
	cmd.RegisterFlagCompletionFunc("runtime-dir", completeDirs)
	cmd.RegisterFlagCompletionFunc("stop-signal", completeSignals)
	return cmd
}

func (o *startOptions) validate() error {
	// First: when the line was misread, what else it says is beside the point.
	if err := pidfileHint(o.pidfile, o.program, o.loose); err != nil {
		return err
	}
	if o.limit < 0 {
		return usageErrorf("invalid -n %d: the respawn limit must be 0 (no limit) or more", o.limit)
	}
	if o.log.maxFiles < 0 {
		return usageErrorf("invalid --log-max-files %d: the number of rotated log files to keep must be 0 or more", o.log.maxFiles)
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
	if err := checkName(o.name); err != nil {
		return err
	}
	r, err := o.run.resolve()
	if err != nil {
		return err
	}
	o.runEnv = r
	if err := o.parsePlugins(); err != nil {
		return err
	}
	if o.pidfile == autoPidfile {
		o.pidfile = defaultPidfile(o.name)
	}
	if o.pidfile != "" && o.ready.val == "notify" {
		return usageErrorf("-p and --ready notify are two ways for the program to say it started: give one")
	}
	seen := map[string]bool{}
	for _, l := range o.listen {
		sp, err := listen.Parse(l)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if seen[sp.String()] {
			return usageErrorf("--listen %s given twice", sp)
		}
		seen[sp.String()] = true
		if sp.Name == "" {
			sp.Name = o.name // as systemd names a socket by its unit
		}
		o.listenSpecs = append(o.listenSpecs, sp)
	}
	if !o.foreground && os.Getpid() == 1 {
		// A container's entrypoint: a daemonizing start exits once its
		// program is up, and the kernel kills every process of a PID
		// namespace whose init exits, the program and respawner included.
		return usageErrorf("start without -D as pid 1 (a container's entrypoint): start would return once the program is up, and the kernel ends every process of the PID namespace when its pid 1 exits; give -D")
	}
	if o.pidfile != "" {
		abs, err := filepath.Abs(o.pidfile)
		if err != nil {
			return usageErrorf("invalid --pidfile %q: %v", o.pidfile, err)
		}
		o.pidfile = abs
	}
	return nil
}

// autoPidfile is what -p without a value stands for (and what --help shows).
const autoPidfile = "/run/NAME.pid"

// defaultPidfile is /run/NAME.pid, or /tmp/NAME.pid where /run is not writable.
func defaultPidfile(name string) string {
	if unix.Access("/run", unix.W_OK) == nil {
		return "/run/" + name + ".pid"
	}
	return "/tmp/" + name + ".pid"
}

// checkPidfileOwner refuses, before anything starts, a pidfile that
// respawner could not remove before a run: one that belongs to another user
// in a sticky directory such as /tmp (where bare -p points when /run is not
// writable), which only its owner or root may unlink. Found at the first
// spawn instead, it failed with a bare "operation not permitted".
func checkPidfileOwner(path string) error {
	me := os.Geteuid()
	var st, dir unix.Stat_t
	if path == "" || me == 0 || unix.Lstat(path, &st) != nil || int(st.Uid) == me {
		return nil
	}
	parent := filepath.Dir(path)
	if unix.Stat(parent, &dir) != nil || dir.Mode&unix.S_ISVTX == 0 || int(dir.Uid) == me {
		return nil
	}
	return fmt.Errorf("pidfile %s belongs to %s, and in sticky %s only its owner may remove it, as respawner must before each run: give the path the program writes with -p=PATH, or have %s remove it",
		path, control.OwnerName(st.Uid), parent, control.OwnerName(st.Uid))
}

func (o *startOptions) machineConfig() machine.Config {
	cfg := machine.Config{
		RespawnTimeout: time.Duration(o.respawnTimeout),
		MaxDelay:       time.Duration(o.maxDelay),
		Reset:          time.Duration(o.reset),
		Window:         time.Duration(o.window),
		Limit:          o.limit,
		Policy:         machine.Policy(o.policy),
		Success:        o.success.set,
		StopTimeout:    time.Duration(o.stopTimeout),
		StopSignal:     syscall.Signal(o.stopSignal),
		RestartCheck:   time.Duration(o.startCheck),
		Pidfile:        o.pidfile != "",
		StartTimeout:   time.Duration(o.startTimeout),
		Notify:         o.ready.val == "notify",
		Watchdog:       time.Duration(o.watchdog),
	}
	if !o.foreground {
		cfg.StartCheck = time.Duration(o.startCheck)
	}
	if cfg.MaxDelay > cfg.RespawnTimeout {
		cfg.Jitter = rand.Float64
	}
	return cfg
}

func runStart(c *cobra.Command, o *startOptions) error {
	report, isDaemon := daemonReportFile()
	if isDaemon && os.Getenv(keeper.EnvRole) == "1" {
		// This is the keeper that daemonize started: it forks the respawner
		// that supervises, with the same command line (which start checked
		// and the respawner checks again), and holds what must outlive it.
		// It never returns.
		keeper.Run(os.Args, os.Environ(), int(report.Fd()))
	}
	if err := o.validate(); err != nil {
		return err
	}
	path, err := resolveProgram(o.program)
	if err != nil {
		return err
	}
	hookOpts, err := o.hooks()
	if err != nil {
		return err
	}
	// In the daemon, stderr is /dev/null: every error must go to the report.
	fail := func(err error) error {
		if isDaemon {
			sendReport(report, err)
		}
		return err
	}
	if err := loop.CheckProc(); err != nil {
		return fail(err)
	}
	if err := checkPidfileOwner(o.pidfile); err != nil {
		return fail(err)
	}
	if o.pidfile != "" {
		// Before anything starts: a -p that is no pidfile (a config file, a
		// directory, a symbolic link) is refused, never removed.
		if err := loop.CheckPidfile(o.pidfile); err != nil {
			return fail(err)
		}
	}
	d, err := control.Prepare(o.runtimeDir)
	if err != nil {
		return fail(err)
	}
	defer d.Close()
	o.dir = d
	if pid, live := d.Live(o.name); live {
		return fail(&control.RunningError{Name: o.name, PID: pid})
	}
	if !isDaemon {
		// A keeper listening for this name means a daemonized respawner of
		// it was killed and left its program running under the keeper.
		if kc, err := d.DialKeep(o.name, time.Second); err == nil {
			if o.foreground {
				kc.Close()
				return fmt.Errorf("%s: a respawner of this name was killed and its program still runs under its keeper; adopt it with `respawner start` without -D, or stop it (`respawner start %s` then `respawner stop %s`)", o.name, o.name, o.name)
			}
			if err := startThroughKeeper(kc); err != nil {
				return err
			}
			managerStarted(d, o.name)
			return nil
		}
	}
	if !o.foreground && !isDaemon {
		if err := daemonize(); err != nil {
			return err
		}
		managerStarted(d, o.name)
		return nil
	}
	link, err := keeper.Attach()
	if err != nil {
		return fail(err)
	}
	// Hygiene before anything else starts: what we inherited must not reach the program.
	if err := loop.CloseInheritedFDs(); err != nil {
		return fail(err)
	}
	loop.ResetIgnoredSignals()
	quietGC(hookOpts != nil)
	code, err := supervise(c, o, path, report, hookOpts, link)
	if err != nil {
		return err
	}
	if code != 0 {
		return silentExit(exitCode(code))
	}
	return nil
}

// supervise runs one instance in this process: the foreground of -D, or the
// daemon that `start` re-executed. report is nil in the foreground.
func supervise(c *cobra.Command, o *startOptions, path string, report *os.File, hookOpts *loop.HookOptions, link *keeper.Link) (int, error) {
	fail := func(err error) (int, error) {
		if report != nil {
			sendReport(report, err)
		}
		return 1, err
	}
	// From here on a SIGTERM is a stop request, until the process exits:
	// never a death between taking the lock and releasing it.
	sigs := loop.CatchSignals()
	lock, err := o.dir.Acquire(o.name)
	if err != nil {
		return fail(err)
	}
	// ended: supervision ran and ended, its processes collected. Only then
	// are the instance's files removed and the keeper told it may go; a
	// start that fails before (a plugin that will not configure) must leave
	// a program adopted from a killed respawner running, its output pipe
	// held, and adoptable by the next start.
	ended := false
	defer func() {
		if !ended {
			if link != nil && link.Alone() {
				// Nothing of the instance is below the keeper: it exits
				// with this respawner, and its socket must not outlive it.
				o.dir.Remove(o.name + ".keep")
			}
			lock.Abandon()
			return
		}
		lock.Release()
		if link != nil {
			link.Bye(keeperByeTimeout)
		}
	}()
	ctl, err := o.dir.Listen(o.name)
	if err != nil {
		return fail(err)
	}
	if link != nil {
		kl, err := o.dir.ListenKeep(o.name)
		if err == nil {
			err = link.Hand(kl)
		}
		if err != nil {
			return fail(err)
		}
	}
	log, output, sink, reopen, where, err := newInstanceLogger(o, c.ErrOrStderr(), report != nil)
	if err != nil {
		return fail(err)
	}
	// The log's last lines go out before the exit, unless the sink is stuck.
	defer sink.Flush(logFlushTimeout)
	stdin := uintptr(0)
	if report != nil {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		defer null.Close()
		stdin = null.Fd()
	}
	opts := loop.Options{
		Name:      o.name,
		Path:      path,
		Argv:      append([]string{o.program}, o.args...),
		Stdin:     stdin,
		Machine:   o.machineConfig(),
		Log:       log.Named(o.name),
		Reopen:    reopen,
		LogTarget: where,
		Output:    output,
		Backlog:   sink,
		Signals:   sigs,
		Pidfile:   o.pidfile,
		ControlFD: ctl,
		StatePath: o.dir.ProcPath(o.name + ".state"), // opened with O_NOFOLLOW
		Adopt:     adoptable(o.dir, o.name),
		Hooks:     hookOpts,
		Keeper:    link,
		Listen:    o.listenSpecs,
	}
	o.runEnv.apply(&opts)
	if report != nil {
		opts.Report = func(err error) { sendReport(report, err) }
	} else if managed() {
		// Under systemd (Type=notify) respawner in the foreground is the
		// service: it is ready once its program is.
		opts.Report = reportToManager(opts.Log)
	}
	if report == nil && o.captureOutput {
		for i, w := range []io.Writer{c.OutOrStdout(), c.ErrOrStderr()} {
			fw := logsink.New(w, logsink.DefaultSize)
			stream := [...]string{"stdout", "stderr"}[i]
			fw.OnDrop(func(n int) {
				log.Warn("program output dropped: respawner's "+stream+" is not keeping up", "dropped", n)
			})
			defer fw.Flush(logFlushTimeout)
			opts.Forward[i] = fw
		}
	}
	code, err := loop.New(opts).Run()
	ended = err == nil // Run errs only when supervision could not begin, or broke off
	return code, err
}

// keeperByeTimeout bounds the wait for the keeper to exit after the instance
// ended, so that a stop that waits for respawner finds the keeper gone too.
const keeperByeTimeout = time.Second

// logFlushTimeout bounds how long an ending respawner waits for its log to
// take the last lines (a full pipe nobody reads would take them never).
const logFlushTimeout = 2 * time.Second

// parsePlugins parses the --plugin flags into o.specs. A malformed one is bad
// usage (exit 2), found with the other flags before anything is looked up;
// what the plugin itself makes of its options is known only once it runs.
func (o *startOptions) parsePlugins() error {
	seen := map[string]bool{}
	for _, s := range o.plugins {
		sp, err := hookwire.ParseSpec(s)
		if err != nil {
			return usageErrorf("%v", err)
		}
		if seen[sp.Name] {
			return usageErrorf("--plugin %s given twice: give all its options in one --plugin", sp.Name)
		}
		seen[sp.Name] = true
		o.specs = append(o.specs, sp)
	}
	return nil
}

// hooks resolves the parsed --plugin flags: each name to a safe binary in the
// search path. Nil when there are none: then no plugin host runs.
func (o *startOptions) hooks() (*loop.HookOptions, error) {
	if len(o.specs) == 0 {
		return nil, nil
	}
	dirs := hookwire.SearchDirs(string(o.pluginDir), exeDir())
	ho := &loop.HookOptions{StartTimeout: 30 * time.Second}
	for _, sp := range o.specs {
		var err error
		if sp.Path, err = hookwire.Find(sp.Name, dirs); err != nil {
			return nil, err
		}
		if _, set := sp.Options["url"]; sp.Name == "healthcheck-http" && !set && len(o.listenSpecs) > 0 && o.listenSpecs[0].URL() != "" {
			// The probe asks the program where respawner listens for it.
			if sp.Options == nil {
				sp.Options = map[string][]string{}
			}
			sp.Options["url"] = []string{o.listenSpecs[0].URL()}
		}
		ho.Plugins = append(ho.Plugins, sp)
	}
	host, err := hostPath()
	if err != nil {
		return nil, err
	}
	ho.HostPath = host
	return ho, nil
}

// exeDir is the directory of the respawner binary.
func exeDir() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	return filepath.Dir(exe)
}

// hostBinary runs the plugins; make install puts it next to respawner.
const hostBinary = "respawner-hookhost"

// hostPath finds the host next to respawner, else in ../lib/respawner from
// there (where a package may keep it, out of PATH: PREFIX/lib/respawner,
// beside the plugins), else in /usr/lib/respawner.
func hostPath() (string, error) {
	exe := exeDir()
	var dirs []string
	if exe != "" {
		dirs = []string{exe, filepath.Clean(filepath.Join(exe, "..", "lib", "respawner"))}
	}
	if !slices.Contains(dirs, "/usr/lib/respawner") { // /usr/bin's ../lib/respawner is it already
		dirs = append(dirs, "/usr/lib/respawner")
	}
	for _, d := range dirs {
		p := filepath.Join(d, hostBinary)
		if _, serr := os.Stat(p); serr != nil {
			continue
		}
		// The first one found is checked like a plugin binary (it runs
		// them, often as root) and refused, not skipped, when unsafe.
		return hookwire.SafeExecutable(hostBinary, p)
	}
	return "", fmt.Errorf("%s not found in %s: it runs the plugins; install it (make build puts it in bin/, make install next to respawner)", hostBinary, strings.Join(dirs, ", "))
}

// quietGC turns the garbage collector's pacing off and bounds the heap by a
// memory limit instead, unless GOGC or GOMEMLIMIT say otherwise. A supervisor
// allocates almost nothing while idle, but the Go runtime forces a collection
// every two minutes, waking threads for nothing; with a limit, collection
// happens only when a crash loop's garbage (about 20 KB a restart) adds up.
//
// The runtime's own memory takes most of the 8 MiB, leaving about 1 MB of
// heap: a collection every 50 restarts or so. With hook plugins each restart
// also carries the messages to the host (GODEBUG=gctrace=1: a collection
// every ~28 restarts), and one that falls inside a restart-pending round
// trip lengthens that restart. The plugins' own processes dwarf the extra
// memory, so the limit is higher. (Measured only together with the other
// veto-path changes, docs/BENCHMARKS.md, not on its own.)
func quietGC(hooks bool) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit := int64(gcMemoryLimit)
	if hooks {
		limit = gcMemoryLimitHooks
	}
	debug.SetMemoryLimit(limit)
	debug.SetGCPercent(-1)
}

// gcMemoryLimit bounds the Go heap and runtime memory of a supervisor;
// gcMemoryLimitHooks, of one with hook plugins.
const (
	gcMemoryLimit      = 8 << 20
	gcMemoryLimitHooks = 16 << 20
)

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/respawner/respawner/internal/control"
	"github.com/respawner/respawner/internal/keeper"
	"github.com/respawner/respawner/internal/loop"
	"github.com/respawner/respawner/internal/runenv"
)

// reportEnv names the descriptor through which a daemonized respawner tells
// the `start` that launched it whether the program started.
const reportEnv = keeper.EnvReport

// daemonize re-executes respawner detached (new session, stdio on /dev/null)
// with the same command line as the instance's keeper (internal/keeper),
// which forks the supervising respawner; and waits on a pipe for the
// daemon's verdict: "ok", or "error" and the reason. A Go program cannot
// fork without exec, so the re-exec is the daemon.
func daemonize() error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), reportEnv+"=3", keeper.EnvRole+"=1")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start daemon: %w", err)
	}
	w.Close()
	err = awaitReport(r)
	if err == nil {
		cmd.Process.Release()
		return nil
	}
	// The daemon failed, so it exits now: reap it rather than leave a zombie
	// to whoever runs us.
	cmd.Wait()
	return err
}

// startThroughKeeper asks the keeper that a killed respawner of this
// instance left (it holds the program's output pipes and its processes) to
// fork the new respawner, which adopts the program; and waits for its report.
func startThroughKeeper(c *net.UnixConn) error {
	r, w, err := os.Pipe()
	if err != nil {
		c.Close()
		return fmt.Errorf("pipe: %w", err)
	}
	defer r.Close()
	wd, _ := os.Getwd()
	err = keeper.Ask(c, os.Args, os.Environ(), wd, w)
	w.Close()
	if err != nil {
		return err
	}
	return awaitReport(r)
}

// awaitReport reads the daemon's verdict until it closes its end.
func awaitReport(r *os.File) error {
	msg, _ := io.ReadAll(r)
	status, reason, _ := strings.Cut(string(msg), "\n")
	switch status {
	case "ok":
		return nil
	case "error":
		return errors.New(strings.TrimRight(reason, "\n"))
	}
	return errors.New("the respawner daemon exited before reporting; see its log")
}

// daemonReportFile returns the report pipe when this process is the daemon.
func daemonReportFile() (*os.File, bool) {
	s := os.Getenv(reportEnv)
	if s == "" {
		return nil, false
	}
	fd, err := strconv.Atoi(s)
	if err != nil || fd < 3 {
		return nil, false
	}
	return os.NewFile(uintptr(fd), "report"), true
}

func sendReport(f *os.File, err error) {
	if err == nil {
		f.WriteString("ok\n")
	} else {
		f.WriteString("error\n" + err.Error() + "\n")
	}
	f.Close()
}

// programEnv is respawner's environment without any RESPAWNER_* variable:
// its internals, and the secrets meant for its plugins
// (RESPAWNER_SMTP_PASSWORD, RESPAWNER_WEBHOOK_SECRET), are not the program's.
// Nor are the variables through which a service manager talks to respawner
// itself (systemd's sd_notify, watchdog and socket activation): the
// program would notify, or take descriptors meant for, respawner.
func programEnv() []string { return withoutRespawner(os.Environ()) }

func withoutRespawner(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RESPAWNER_") {
			out = append(out, kv)
		}
	}
	return runenv.Without(out, runenv.ManagerVars...) // by exact name, see runenv.ManagerVars
}

// adoptable returns the program a killed respawner of this name left running,
// when the state file names a live process with the recorded start time (so a
// recycled pid is never adopted). Called with the instance lock held, so a
// state file that names no such process is removed.
func adoptable(d *control.Dir, name string) *loop.Adoption {
	st, ok := d.ReadState(name)
	if !ok {
		d.Remove(name + ".state")
		return nil
	}
	return &loop.Adoption{PID: st.PID, PGID: st.PGID, Started: st.Started()}
}

package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/respawner/respawner/internal/httpload"
	"golang.org/x/sys/unix"
)

// ---------------------------------------------------------------- listen

// listenResult is part 11: lighttpd -D under respawner -t 0, SIGKILLed
// listenKills times a second apart while listenWorkers clients make
// requests (a new connection each), once on a socket respawner holds
// (--listen, lighttpd's server.systemd-socket-activation) and once on the
// socket lighttpd binds itself at each start, as every supervisor without
// socket activation runs it.
type listenResult struct {
	Kills    int             `json:"kills"`
	Workers  int             `json:"workers"`
	Variants []listenVariant `json:"variants"`
}

type listenVariant struct {
	Label  string          `json:"label"`
	Listen bool            `json:"listen"`
	Counts httpload.Counts `json:"counts"`
	Secs   float64         `json:"seconds"`
}

const (
	listenKills   = 10
	listenWorkers = 2
)

func benchListen(c *config) (*listenResult, error) {
	if _, err := os.Stat(c.lighttpd); err != nil {
		return nil, errSkip{fmt.Sprintf("listen skipped: %v", err)}
	}
	r := &listenResult{Kills: listenKills, Workers: listenWorkers}
	for i, held := range []bool{true, false} {
		label := "with --listen (socket held by respawner)"
		if !held {
			label = "without --listen (lighttpd binds at each start)"
		}
		progress("listen, %s: %d SIGKILLs of lighttpd under load...\n", label, listenKills)
		v, err := listenRun(c, fmt.Sprintf("bench-listen-%d", i), held)
		if err != nil {
			return nil, err
		}
		v.Label = label
		r.Variants = append(r.Variants, v)
	}
	return r, nil
}

func listenRun(c *config, name string, held bool) (listenVariant, error) {
	v := listenVariant{Listen: held}
	port, err := freePort()
	if err != nil {
		return v, err
	}
	dir := filepath.Join(c.dir, name)
	conf, err := lighttpdSetup(dir, port)
	if err != nil {
		return v, err
	}
	opts := []string{"-t", "0"}
	if held {
		opts = append(opts, "--listen", fmt.Sprintf("tcp:127.0.0.1:%d", port))
		f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return v, err
		}
		_, err = f.WriteString("server.systemd-socket-activation = \"enable\"\n")
		f.Close()
		if err != nil {
			return v, err
		}
	}
	prog := program{Label: "lighttpd -D", Path: c.lighttpd, Args: []string{"-D", "-f", conf}, Comm: "lighttpd"}
	in, err := startRespawner(c.bin, c.dir, name, opts, prog)
	if err != nil {
		return v, err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	err = func() error {
		cur, err := serving(in, url, 0)
		if err != nil {
			return err
		}
		start := time.Now()
		ld := httpload.Start(url, listenWorkers)
		for range listenKills {
			time.Sleep(time.Second)
			unix.Kill(cur, unix.SIGKILL)
			if cur, err = serving(in, url, cur); err != nil {
				ld.End()
				return err
			}
		}
		time.Sleep(200 * time.Millisecond)
		v.Counts = ld.End()
		v.Secs = time.Since(start).Seconds()
		return nil
	}()
	if serr := in.stop(); err == nil && serr != nil {
		err = serr
	}
	return v, err
}

// serving waits until a lighttpd other than old runs under respawner and
// answers url, and returns its pid.
func serving(in *instance, url string, old int) (int, error) {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, p := range descendants(in.pid) {
			if p != old && comm(p) == "lighttpd" {
				if resp, err := client.Get(url); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					return p, nil
				}
			}
		}
		time.Sleep(5 * time.Millisecond) // the harness polls; respawner does not
	}
	return 0, fmt.Errorf("no new lighttpd serving %s within 10s; log:\n%s", url, in.logTail(10))
}

func (r *listenResult) rows(add func(part, m string, v float64, res, target, verdict string)) {
	for _, v := range r.Variants {
		n := v.Counts
		pct := 100 * float64(n.OK) / float64(max(n.Total(), 1))
		m := fmt.Sprintf("%s: %d SIGKILLs, %d clients", v.Label, r.Kills, r.Workers)
		if v.Listen {
			add("listen", m+": refused", float64(n.Refused), fmt.Sprint(n.Refused), "0", verdict(n.Refused == 0))
			add("listen", m+": requests served", pct, fmt.Sprintf("%.3f %% (%s)", pct, n), ">= 99.9 %", verdict(pct >= 99.9))
		} else {
			add("listen", m+": refused", float64(n.Refused), fmt.Sprint(n.Refused), "-", "info")
			add("listen", m+": requests served", pct, fmt.Sprintf("%.3f %% (%s)", pct, n), "-", "info")
		}
	}
}

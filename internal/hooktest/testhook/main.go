// Command testhook is a configurable hook plugin (Notifier, Vetoer,
// Subscriber, Versioner) for respawner's integration tests. Build it as
// respawner-plugin-testhook. Options:
//
//	decision=allow|delay|deny|give-up   the verdict of RestartPending (allow)
//	delay=DUR                           the delay of decision=delay (1s)
//	reason=TEXT                         the reason of the verdict
//	sleep=DUR                           sleep this long in RestartPending and Notify
//	                                    before answering, deaf to the deadline, as a
//	                                    stuck plugin
//	panic=true                          panic inside RestartPending
//	crash-on=KIND                       exit 2 when an event of KIND arrives
//	record=PATH                         append each event kind received as a line
//	record-json=PATH                    append each event received as a line of JSON
//	arrivals=PATH                       append the time each event arrived, in
//	                                    Unix nanoseconds, a line each
//	require-env=NAME                    fail Configure unless NAME is set
//	deny-while=PATH                     deny while PATH exists, whatever decision says
//	events=KIND,KIND                    subscribe to these kinds only (all)
//	version=STRING                      what Info reports as the version (test)
//	orphan=PATH                         in Configure, start `orphans` detached
//	                                    `sleep 30` whose parent exits at once (an
//	                                    orphan of the plugin), appending each pid
//	                                    to PATH
//	orphans=N                           how many (1)
//	badlog=configure|notify|all         write log lines on stderr that go-plugin's
//	                                    parser cannot take (a number as @message,
//	                                    ...) and an overlong one, in Configure,
//	                                    in each Notify, or both
//	reason-bytes=N                      pad the verdict's reason to N bytes with
//	                                    "é" (two bytes each), to test bounds
//
// With TESTHOOK_NOTIFY_ONLY set in its environment it is a Notifier only (no
// RestartPending), to test a respawner whose plugins cannot veto.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/respawner/respawner/pkg/hooks"
)

type testhook struct {
	log hclog.Logger

	mu        sync.Mutex // guards the fields below, set by Configure
	verdict   hooks.Verdict
	sleep     time.Duration
	panics    bool
	crashOn   hooks.Kind
	record    string
	recJSON   string
	arrivals  string
	denyWhile string
	events    []hooks.Kind
	version   string
	badlog    string
}

// stderr is the plugin's real stderr, which go-plugin in the host parses as
// log lines (Serve points os.Stderr elsewhere).
var stderr = os.Stderr

func (h *testhook) Configure(ctx context.Context, opts *hooks.Options) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	decision := opts.OneOf("decision", "allow", "allow", "delay", "deny", "give-up")
	delay := opts.Duration("delay", time.Second)
	reason := opts.String("reason", "")
	switch decision {
	case "allow":
		h.verdict = hooks.Allow()
	case "delay":
		if delay == 0 {
			opts.Errorf("delay", "must be more than 0 with decision=delay")
		}
		h.verdict = hooks.DelayBy(delay)
	case "deny":
		h.verdict = hooks.Deny(reason)
	case "give-up":
		h.verdict = hooks.GiveUp(reason)
	}
	h.verdict.Reason = reason
	h.sleep = opts.Duration("sleep", 0)
	h.panics = opts.Bool("panic", false)
	if k := hooks.Kind(opts.String("crash-on", "")); k != "" {
		if !k.Valid() {
			opts.Errorf("crash-on", "unknown event %q", k)
		}
		h.crashOn = k
	}
	h.record = opts.String("record", "")
	h.recJSON = opts.String("record-json", "")
	h.arrivals = opts.String("arrivals", "")
	if name := opts.String("require-env", ""); name != "" && os.Getenv(name) == "" {
		opts.Errorf("require-env", "%s is not set in the plugin's environment", name)
	}
	h.denyWhile = opts.String("deny-while", "")
	h.events = opts.Kinds("events", nil)
	h.version = opts.String("version", "test")
	if n := opts.Int("reason-bytes", 0); n > len(h.verdict.Reason) {
		pad := n - len(h.verdict.Reason)
		h.verdict.Reason += strings.Repeat("é", pad/2) + strings.Repeat("x", pad%2)
	}
	h.badlog = opts.OneOf("badlog", "", "configure", "notify", "all")
	orphan, orphans := opts.String("orphan", ""), opts.Int("orphans", 1)
	if err := opts.Err(); err != nil {
		return err
	}
	if h.badlog == "configure" || h.badlog == "all" {
		badLines("configure")
	}
	for range orphans {
		if orphan == "" {
			break
		}
		// sh forks sleep and exits: sleep is orphaned, with no pipe of ours.
		out, err := exec.Command("/bin/sh", "-c", "sleep 30 </dev/null >/dev/null 2>&1 & echo $!").Output()
		if err != nil {
			return fmt.Errorf("orphan: %w", err)
		}
		f, err := os.OpenFile(orphan, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("orphan: %w", err)
		}
		_, err = f.Write(out)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("orphan: %w", err)
		}
	}
	return nil
}

func (h *testhook) Events() []hooks.Kind {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.events
}

func (h *testhook) Version() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.version == "" {
		return "test"
	}
	return h.version
}

// receive does what both Notify and RestartPending do first: record the
// event, sleep, crash.
func (h *testhook) receive(ev hooks.Event) error {
	h.mu.Lock()
	record, recJSON, arrivals, sleep, crashOn := h.record, h.recJSON, h.arrivals, h.sleep, h.crashOn
	h.mu.Unlock()
	if err := appendLine(arrivals, strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
		return err
	}
	h.log.Debug("event", "kind", ev.Kind, "instance", ev.Instance, "pid", ev.PID)
	if err := appendLine(record, string(ev.Kind)); err != nil {
		return err
	}
	if recJSON != "" {
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("record-json: %w", err)
		}
		if err := appendLine(recJSON, string(b)); err != nil {
			return err
		}
	}
	if sleep > 0 {
		time.Sleep(sleep)
	}
	if crashOn != "" && ev.Kind == crashOn {
		h.log.Error("crashing on purpose", "kind", ev.Kind)
		os.Exit(2)
	}
	return nil
}

// appendLine appends line to the file at path; nothing when path is "".
func appendLine(path, line string) error {
	if path == "" {
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	_, err = fmt.Fprintln(f, line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

func (h *testhook) Notify(ctx context.Context, ev hooks.Event) error {
	h.mu.Lock()
	badlog := h.badlog
	h.mu.Unlock()
	if badlog == "notify" || badlog == "all" {
		badLines(string(ev.Kind))
	}
	return h.receive(ev)
}

// badLines writes lines that go-plugin's log parser used to panic on, and
// one far longer than a log line may be.
func badLines(when string) {
	ts := time.Now().Format("2006-01-02T15:04:05.000000Z07:00")
	fmt.Fprintf(stderr, `{"@level":"info","@message":5,"@timestamp":%q,"when":%q}`+"\n", ts, when)
	fmt.Fprintf(stderr, `{"@level":3,"@message":"level is a number","when":%q}`+"\n", when)
	fmt.Fprintf(stderr, `{"@level":"info","@message":null,"when":%q}`+"\n", when)
	fmt.Fprintf(stderr, `{"@level":"info","@message":"timestamp is a number","@timestamp":1,"when":%q}`+"\n", when)
	fmt.Fprintf(stderr, `{"@level":"info","@message":"long","when":%q,"x":"%s"}`+"\n", when, strings.Repeat("x", 100<<10))
}

func (h *testhook) RestartPending(ctx context.Context, ev hooks.Event) (hooks.Verdict, error) {
	if err := h.receive(ev); err != nil {
		return hooks.Allow(), err
	}
	h.mu.Lock()
	v, panics, denyWhile := h.verdict, h.panics, h.denyWhile
	h.mu.Unlock()
	if panics {
		panic("testhook: panic=true")
	}
	if denyWhile != "" {
		if _, err := os.Stat(denyWhile); err == nil {
			reason := v.Reason
			if reason == "" {
				reason = denyWhile + " exists"
			}
			return hooks.Deny(reason), nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return hooks.Allow(), err
		}
	}
	return v, nil
}

// notifyOnly hides RestartPending: a plugin that hears events but cannot veto.
type notifyOnly struct{ h *testhook }

func (n notifyOnly) Configure(ctx context.Context, opts *hooks.Options) error {
	return n.h.Configure(ctx, opts)
}
func (n notifyOnly) Notify(ctx context.Context, ev hooks.Event) error { return n.h.Notify(ctx, ev) }
func (n notifyOnly) Events() []hooks.Kind                             { return n.h.Events() }

func main() {
	log := hooks.NewLogger()
	h := &testhook{log: log}
	if os.Getenv("TESTHOOK_NOTIFY_ONLY") != "" { // chosen before Configure, as capabilities are
		hooks.ServeWithLogger(notifyOnly{h}, log)
		return
	}
	hooks.ServeWithLogger(h, log)
}

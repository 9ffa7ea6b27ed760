package main

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/internal/eventschema"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/plugins/internal/notify"
	"github.com/respawner/respawner/plugins/internal/notify/notifytest"
)

// request is one POST a receiver got.
type request struct {
	path   string
	header http.Header
	body   []byte
}

// receiver is a webhook receiver on 127.0.0.1: it answers status(n) to the
// n-th request (from 1; 200 when status is nil) and hands each request over.
type receiver struct {
	*httptest.Server
	got chan request
	mu  sync.Mutex
	n   int
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{got: make(chan request, 100)}
	r.Server = httptest.NewServer(r.handler(status))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) handler(status func(n int) int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.n++
		n := r.n
		r.mu.Unlock()
		code := http.StatusOK
		if status != nil {
			code = status(n)
		}
		if req.Method != http.MethodPost {
			code = http.StatusMethodNotAllowed
		}
		w.WriteHeader(code)
		if code/100 == 2 {
			r.got <- request{path: req.URL.Path, header: req.Header.Clone(), body: body}
		}
	})
}

func (r *receiver) requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// next waits for the next delivered request.
func (r *receiver) next(t *testing.T) request {
	t.Helper()
	select {
	case q := <-r.got:
		return q
	case <-time.After(10 * time.Second):
		t.Fatal("no request within 10s")
	}
	return request{}
}

// none checks that nothing more was delivered.
func (r *receiver) none(t *testing.T) {
	t.Helper()
	select {
	case q := <-r.got:
		t.Fatalf("unexpected request: %s", q.body)
	default:
	}
}

// configure returns a configured plugin whose log lines go to logs (when
// not nil); Close is called at the end of the test.
func configure(t *testing.T, opts map[string][]string, logs chan string) *notify.Plugin {
	t.Helper()
	return notifytest.Configure(t, newWebhook, opts, logs)
}

func killed(pid int) hooks.Event {
	return hooks.Event{Kind: hooks.Exited, Instance: "web", Program: "/usr/sbin/lighttpd", Args: []string{"-D"}, PID: pid,
		Time: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC), Signal: "SIGKILL", Uptime: 90 * time.Second, Limit: 5,
		Output: []string{"listening on :80", "fatal: out of memory <boom>"}, Host: "web1"}
}

// eventKeys are the keys of an event's documented JSON form.
var eventKeys = []string{"args", "attempt", "clean", "exit_code", "host", "instance", "kind", "limit", "output", "pid", "program", "reason", "signal", "time", "uptime_ms"}

func keysOf(t *testing.T, body []byte) (map[string]json.RawMessage, []string) {
	t.Helper()
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("not a JSON object: %v\n%s", err, body)
	}
	var ks []string
	for k := range doc {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return doc, ks
}

func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%T: %v\n%s", v, err, b)
	}
}

// The receiver gets the event's documented JSON form, signed with the
// secret from the environment.
func TestGenericEventSigned(t *testing.T) {
	t.Setenv(SecretEnv, "s3cret")
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL + "/hook"}, "header": {"Authorization: Bearer abc"}}, nil)
	want := killed(42)
	w.Notify(t.Context(), want)
	q := r.next(t)
	if q.path != "/hook" || q.header.Get("Content-Type") != "application/json" || q.header.Get("Authorization") != "Bearer abc" {
		t.Errorf("path %q, headers %v", q.path, q.header)
	}
	if _, ks := keysOf(t, q.body); !slices.Equal(ks, eventKeys) {
		t.Errorf("keys %v, want %v", ks, eventKeys)
	}
	if err := eventschema.Validate(q.body); err != nil {
		t.Errorf("the body does not match docs/event.schema.json: %v\n%s", err, q.body)
	}
	var got hooks.Event
	strict(t, q.body, &got)
	if got.Kind != want.Kind || got.Instance != "web" || got.Signal != "SIGKILL" || got.PID != 42 || got.Uptime != want.Uptime || !got.Time.Equal(want.Time) ||
		!slices.Equal(got.Output, want.Output) || got.Host != "web1" || got.Clean {
		t.Errorf("got %+v, want %+v", got, want)
	}
	// What a receiver does to check it:
	sig := q.header.Get(SignatureHeader)
	if !hmac.Equal([]byte(sig), []byte(Sign([]byte("s3cret"), q.body))) || !strings.HasPrefix(sig, "sha256=") || len(sig) != 7+64 {
		t.Errorf("signature %q does not verify", sig)
	}
}

// The secret may come from a file instead; without one there is no header.
func TestSecretFile(t *testing.T) {
	t.Setenv(SecretEnv, "")
	f := t.TempDir() + "/secret"
	if err := os.WriteFile(f, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL}, "secret-file": {f}}, nil)
	w.Notify(t.Context(), killed(1))
	if q := r.next(t); q.header.Get(SignatureHeader) != Sign([]byte("from-file"), q.body) {
		t.Errorf("signature %q, want one with the file's secret", q.header.Get(SignatureHeader))
	}
	r2 := newReceiver(t, nil)
	w2 := configure(t, map[string][]string{"url": {r2.URL}}, nil)
	w2.Notify(t.Context(), killed(1))
	if q := r2.next(t); q.header.Get(SignatureHeader) != "" {
		t.Errorf("signed without a secret")
	}
}

// 50 crashes in a burst: the first at once, then one digest of 49 that
// matches the documented schema, and nothing else.
func TestBurstIsOneDigest(t *testing.T) {
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL}, "window": {"300ms"}}, nil)
	for i := 1; i <= 50; i++ {
		w.Notify(t.Context(), killed(i))
	}
	first := r.next(t)
	if _, ks := keysOf(t, first.body); !slices.Equal(ks, eventKeys) {
		t.Fatalf("first message has keys %v, want a single event", ks)
	}
	q := r.next(t)
	doc, ks := keysOf(t, q.body)
	if want := append(slices.Clone(eventKeys), "digest"); !slices.Equal(ks, slices.Sorted(slices.Values(want))) {
		t.Fatalf("digest keys %v, want the event's and digest", ks)
	}
	var dg digestJSON
	strict(t, doc["digest"], &dg)
	if dg.Count != 49 || dg.Kinds[hooks.Exited] != 49 || len(dg.Events) != 20 || dg.Events[19].PID != 50 || dg.Dropped != 0 ||
		!strings.HasPrefix(dg.Summary, "49 more exits of web since ") || !strings.HasSuffix(dg.Summary, "last: killed by SIGKILL after 1m30s") {
		t.Errorf("digest %+v", dg)
	}
	var last hooks.Event
	delete(doc, "digest")
	b, _ := json.Marshal(doc)
	strict(t, b, &last)
	if last.PID != 50 {
		t.Errorf("the digest's event is pid %d, want the last, 50", last.PID)
	}
	w.Close()
	r.none(t)
	if n := r.requests(); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// gave-up goes out at once, after the digest of what came before it.
func TestGaveUpNotHeldBack(t *testing.T) {
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL}}, nil) // the default 5m window
	w.Notify(t.Context(), killed(1))
	w.Notify(t.Context(), killed(2))
	w.Notify(t.Context(), hooks.Event{Kind: hooks.GaveUp, Instance: "web", Reason: "gave up: respawn limit reached", Attempt: 5, Limit: 5})
	var kinds []string
	for range 3 {
		doc, _ := keysOf(t, r.next(t).body)
		k := strings.Trim(string(doc["kind"]), `"`)
		if _, ok := doc["digest"]; ok {
			k = "digest"
		}
		kinds = append(kinds, k)
	}
	if got := strings.Join(kinds, " "); got != "exited digest gave-up" {
		t.Errorf("got %q, want exited digest gave-up", got)
	}
}

// A 500 is retried, with backoff, and then delivered; the failures are logged.
func TestServerErrorRetried(t *testing.T) {
	r := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	logs := make(chan string, 100)
	w := configure(t, map[string][]string{"url": {r.URL}, "backoff": {"20ms"}}, logs)
	w.Notify(t.Context(), killed(1))
	var got hooks.Event
	strict(t, r.next(t).body, &got)
	if got.PID != 1 || r.requests() != 3 {
		t.Errorf("delivered %+v after %d requests, want 3", got, r.requests())
	}
	retries := 0
	for len(logs) > 0 {
		if l := <-logs; strings.Contains(l, "will retry") && strings.Contains(l, "500 Internal Server Error") {
			retries++
		}
	}
	if retries != 2 {
		t.Errorf("%d retries logged, want 2", retries)
	}
}

// A receiver that is down at first gets the notification once it is up.
func TestReceiverDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	logs := make(chan string, 100)
	w := configure(t, map[string][]string{"url": {"http://" + addr + "/"}, "backoff": {"50ms"}, "retries": {"30"}}, logs)
	w.Notify(t.Context(), killed(7))
	for l := range logs {
		if strings.Contains(l, "will retry") && strings.Contains(l, "connection refused") {
			break
		}
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	r := &receiver{got: make(chan request, 10)}
	srv := &http.Server{Handler: r.handler(nil)}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	var got hooks.Event
	strict(t, r.next(t).body, &got)
	if got.PID != 7 {
		t.Errorf("got %+v", got)
	}
}

// While the receiver hangs, the queue keeps the newest events; the next
// digest says how many were dropped.
func TestQueueBound(t *testing.T) {
	release, held := make(chan struct{}), make(chan struct{})
	r := newReceiver(t, func(n int) int {
		if n == 1 {
			close(held)
			<-release
		}
		return http.StatusOK
	})
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	logs := make(chan string, 100)
	w := configure(t, map[string][]string{"url": {r.URL}, "queue": {"4"}}, logs)
	w.Notify(t.Context(), killed(1))
	<-held // the sender is stuck in the first request
	for i := 2; i <= 11; i++ {
		w.Notify(t.Context(), killed(i))
	}
	close(release)
	r.next(t)
	w.Close()
	doc, _ := keysOf(t, r.next(t).body)
	var dg digestJSON
	strict(t, doc["digest"], &dg)
	if dg.Count != 4 || dg.Dropped != 6 || dg.Events[0].PID != 8 {
		t.Errorf("digest %+v, want pids 8-11 and 6 dropped", dg)
	}
	found := false
	for len(logs) > 0 {
		if l := <-logs; strings.Contains(l, "queue full") && strings.Contains(l, `"dropped":6`) {
			found = true
		}
	}
	if !found {
		t.Error("the drop was not logged")
	}
}

// format=slack: what Slack's incoming webhooks accept, a JSON object whose
// text says what happened.
func TestSlack(t *testing.T) {
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL}, "format": {"slack"}, "events": {"exited,restarting"}, "window": {"0"}}, nil)
	w.Notify(t.Context(), killed(3))
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Restarting, Instance: "web", Attempt: 3, Limit: 5, Program: "/usr/sbin/lighttpd", Time: time.Now()})
	var msg struct {
		Text string `json:"text"` // required by Slack unless blocks are given
	}
	strict(t, r.next(t).body, &msg)
	for _, want := range []string{"*web*", " on web1", "killed by SIGKILL after 1m30s", "`/usr/sbin/lighttpd`", "2026-03-01 12:30:05 UTC",
		"\n```\nlistening on :80\nfatal: out of memory &lt;boom&gt;\n```"} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("text %q has no %q", msg.Text, want)
		}
	}
	strict(t, r.next(t).body, &msg)
	host, _ := os.Hostname() // an event without a host name: the plugin's own
	if !strings.Contains(msg.Text, "restart 3 of 5") || !strings.Contains(msg.Text, " on "+host) {
		t.Errorf("text %q has no restart 3 of 5 on %s", msg.Text, host)
	}
}

// postableAlert is Alertmanager's API v2 alert (api/v2/openapi.yaml):
// labels is required; the rest optional.
type postableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
}

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

func alertsOf(t *testing.T, q request) []postableAlert {
	t.Helper()
	if q.path != "/api/v2/alerts" {
		t.Errorf("posted to %q, want /api/v2/alerts", q.path)
	}
	var as []postableAlert
	strict(t, q.body, &as)
	for _, a := range as {
		if a.Labels["alertname"] == "" || a.Labels["instance"] == "" || a.Labels["severity"] == "" {
			t.Errorf("alert without alertname, instance or severity: %+v", a)
		}
		for k := range a.Labels {
			if !labelName.MatchString(k) {
				t.Errorf("label name %q is not valid in Alertmanager", k)
			}
		}
		if a.StartsAt.IsZero() || (!a.EndsAt.IsZero() && a.EndsAt.Before(a.StartsAt)) {
			t.Errorf("alert times %v..%v", a.StartsAt, a.EndsAt)
		}
	}
	return as
}

// format=alertmanager: unhealthy fires, is sent again while it lasts, and
// healthy resolves it with endsAt; then the resends stop.
func TestAlertmanager(t *testing.T) {
	r := newReceiver(t, nil)
	w := configure(t, map[string][]string{"url": {r.URL}, "format": {"alertmanager"}, "resend": {"100ms"}}, nil)
	if ev := w.Events(); !slices.Contains(ev, hooks.Healthy) || !slices.Contains(ev, hooks.Started) {
		t.Errorf("subscribes to %v, without what resolves alerts", ev)
	}
	t0 := time.Now().Truncate(time.Second)
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Started, Instance: "web", Time: t0}) // nothing fires: no request
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Unhealthy, Instance: "web", Reason: "healthcheck-http: HTTP 503", Time: t0})
	for i := range 2 { // the alert, and at least one resend
		as := alertsOf(t, r.next(t))
		if len(as) != 1 || as[0].Labels["alertname"] != "RespawnerUnhealthy" || !as[0].EndsAt.IsZero() || !as[0].StartsAt.Equal(t0) ||
			!strings.Contains(as[0].Annotations["summary"], "HTTP 503") {
			t.Fatalf("post %d: %+v, want RespawnerUnhealthy firing", i, as)
		}
	}
	t1 := t0.Add(time.Minute)
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Healthy, Instance: "web", Time: t1})
	for {
		as := alertsOf(t, r.next(t))
		if len(as) == 1 && !as[0].EndsAt.IsZero() {
			if !as[0].EndsAt.Equal(t1) || as[0].Labels["alertname"] != "RespawnerUnhealthy" {
				t.Fatalf("resolved %+v, want endsAt %v", as[0], t1)
			}
			break
		}
	}
	// An abnormal exit is a one-shot alert that ends by itself; a crash
	// loop does not fire RespawnerGaveUp until it gives up.
	w.Notify(t.Context(), killed(9))
	as := alertsOf(t, r.next(t))
	if len(as) != 1 || as[0].Labels["alertname"] != "RespawnerExited" || as[0].EndsAt.IsZero() || as[0].Labels["host"] != "web1" ||
		as[0].Annotations["output"] != "listening on :80\nfatal: out of memory <boom>" {
		t.Fatalf("exit: %+v", as)
	}
	// A hold fires until released; the restart that follows is no alert.
	t2 := t1.Add(time.Minute)
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Held, Instance: "web", Reason: "maintenance", Time: t2})
	for {
		as := alertsOf(t, r.next(t))
		if i := slices.IndexFunc(as, func(a postableAlert) bool { return a.Labels["alertname"] == "RespawnerHeld" }); i >= 0 {
			if !as[i].EndsAt.IsZero() || !strings.Contains(as[i].Annotations["summary"], "maintenance") {
				t.Fatalf("held: %+v", as[i])
			}
			break
		}
	}
	t3 := t2.Add(time.Hour)
	w.Notify(t.Context(), hooks.Event{Kind: hooks.Released, Instance: "web", Time: t3})
	for {
		as := alertsOf(t, r.next(t))
		if i := slices.IndexFunc(as, func(a postableAlert) bool { return a.Labels["alertname"] == "RespawnerHeld" }); i >= 0 && !as[i].EndsAt.IsZero() {
			if !as[i].EndsAt.Equal(t3) || !as[i].StartsAt.Equal(t2) {
				t.Fatalf("released: %+v, want %v..%v", as[i], t2, t3)
			}
			break
		}
	}
	w.Notify(t.Context(), hooks.Event{Kind: hooks.GaveUp, Instance: "web", Reason: "gave up: respawn limit reached", Time: t1})
	for {
		as := alertsOf(t, r.next(t))
		if i := slices.IndexFunc(as, func(a postableAlert) bool { return a.Labels["alertname"] == "RespawnerGaveUp" }); i >= 0 {
			if as[i].Labels["severity"] != "critical" {
				t.Errorf("gave-up severity %q", as[i].Labels["severity"])
			}
			break
		}
	}
}

func TestBadOptions(t *testing.T) {
	f := t.TempDir() + "/empty"
	os.WriteFile(f, nil, 0o600)
	for _, tc := range []struct {
		opts map[string][]string
		want string
	}{
		{map[string][]string{}, "option url: required"},
		{map[string][]string{"url": {"ftp://x/"}}, `option url: "ftp://x/": scheme "ftp"`},
		{map[string][]string{"url": {"http://x/"}, "format": {"teams"}}, `option format: "teams" is not one of generic, slack, alertmanager`},
		{map[string][]string{"url": {"http://x/"}, "secret": {"hunter2"}}, "option secret: not accepted on the command line"},
		{map[string][]string{"url": {"http://x/"}, "secret-file": {f}}, "option secret-file: " + f + " is empty"},
		{map[string][]string{"url": {"http://x/"}, "header": {"nocolon"}}, `option header: "nocolon" has no colon`},
		{map[string][]string{"url": {"http://x/"}, "format": {"alertmanager"}, "resend": {"0"}}, "option resend: must be more than 0"},
		{map[string][]string{"url": {"http://x/"}, "events": {"crashes"}}, `option events: unknown event "crashes"`},
		{map[string][]string{"url": {"http://x/"}, "colour": {"red"}}, `unknown option "colour"`},
	} {
		w := newWebhook("", hclog.NewNullLogger())
		err := w.Configure(t.Context(), hooks.NewOptions(tc.opts))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", tc.opts, err, tc.want)
		}
		if strings.Contains(strings.ToLower(errString(err)), "hunter2") {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Alertmanager's URL without a path gets /api/v2/alerts.
func TestAlertmanagerURL(t *testing.T) {
	s, _, err := parseConfig(hooks.NewOptions(map[string][]string{"url": {"http://am:9093"}, "format": {"alertmanager"}}), func(string) string { return "" }, hclog.NewNullLogger())
	if err != nil || s.url != "http://am:9093/api/v2/alerts" {
		t.Errorf("url %q, %v", s.url, err)
	}
}

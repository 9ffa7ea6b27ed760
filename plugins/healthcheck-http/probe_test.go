package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// newChecker returns a checker configured with the options kv (key, value,
// key, value, ...).
func newChecker(t *testing.T, kv ...string) *checker {
	t.Helper()
	c := &checker{version: "test"}
	if err := c.Configure(t.Context(), opts(kv...)); err != nil {
		t.Fatalf("configure %q: %v", kv, err)
	}
	return c
}

func probe(t *testing.T, c *checker) hooks.ProbeResult {
	t.Helper()
	r, err := c.Probe(t.Context())
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	return r
}

// statusServer answers /N with status N.
func statusServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			code = http.StatusBadRequest
		}
		w.WriteHeader(code)
		fmt.Fprintln(w, "status", code)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestProbeStatus(t *testing.T) {
	base := statusServer(t)
	tests := []struct {
		code    int
		expect  string // expect-status; "" for the default
		healthy bool
		reason  string
	}{
		{200, "", true, "HTTP 200"},
		{204, "", true, "HTTP 204"},
		{403, "", true, "HTTP 403"}, // Debian's stock lighttpd: alive
		{404, "", true, "HTTP 404"},
		{499, "", true, "HTTP 499"},
		{500, "", false, "status 500 (want 200-499)"},
		{503, "", false, "status 503 (want 200-499)"},
		{200, "200", true, "HTTP 200"},
		{403, "200", false, "status 403 (want 200)"},
		{302, "2xx", false, "status 302 (want 200-299)"},
		{302, "200,301-302", true, "HTTP 302"},
		{503, "503", true, "HTTP 503"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/%s", tt.code, tt.expect), func(t *testing.T) {
			kv := []string{"url", base + "/" + strconv.Itoa(tt.code)}
			if tt.expect != "" {
				kv = append(kv, "expect-status", tt.expect)
			}
			r := probe(t, newChecker(t, kv...))
			if r.Healthy != tt.healthy || r.Reason != tt.reason {
				t.Errorf("probe = %+v, want {Healthy:%v Reason:%s}", r, tt.healthy, tt.reason)
			}
		})
	}
}

// TestProbeRedirectNotFollowed: a 3xx is the server's answer; the target,
// which is broken here, is never asked.
func TestProbeRedirectNotFollowed(t *testing.T) {
	var broken atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/broken", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/broken", func(w http.ResponseWriter, r *http.Request) {
		broken.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	if r := probe(t, newChecker(t, "url", srv.URL+"/")); !r.Healthy || r.Reason != "HTTP 301" {
		t.Errorf("probe = %+v, want healthy HTTP 301", r)
	}
	if r := probe(t, newChecker(t, "url", srv.URL+"/", "expect-status", "200")); r.Healthy || r.Reason != "status 301 (want 200)" {
		t.Errorf("expect-status=200: probe = %+v, want status 301 (want 200)", r)
	}
	if n := broken.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times", n)
	}
}

func TestProbeConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	r := probe(t, newChecker(t, "url", "http://"+addr+"/"))
	if r.Healthy || r.Reason != "connection refused" {
		t.Errorf("probe = %+v, want connection refused", r)
	}
}

// TestProbeNoSuchHost needs a resolver that answers NXDOMAIN for .invalid
// (RFC 6761); describe's own test covers the mapping without one.
func TestProbeNoSuchHost(t *testing.T) {
	r := probe(t, newChecker(t, "url", "http://respawner-probe.invalid/", "timeout", "3s", "interval", "10s"))
	if r.Healthy {
		t.Fatalf("probe = %+v, want unhealthy", r)
	}
	if r.Reason != "no such host" {
		t.Skipf("the resolver did not say NXDOMAIN (%s)", r.Reason)
	}
}

// hangServer accepts requests and answers none until the test ends.
func hangServer(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets Close finish
	return srv.URL
}

func TestProbeTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	c := newChecker(t, "url", hangServer(t)+"/", "timeout", "300ms", "interval", "1s")
	start := time.Now()
	r := probe(t, c)
	took := time.Since(start)
	if r.Healthy || r.Reason != "timeout after 300ms" {
		t.Errorf("probe = %+v, want timeout after 300ms", r)
	}
	if took < timeout || took > timeout+2*time.Second {
		t.Errorf("probe took %v, want about %v", took, timeout)
	}
}

// TestProbeCallDeadline: respawner's deadline on the call wins when it is
// shorter than the probe's timeout.
func TestProbeCallDeadline(t *testing.T) {
	c := newChecker(t, "url", hangServer(t)+"/", "timeout", "5s", "interval", "10s")
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := c.Probe(ctx)
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if r.Healthy || !strings.HasPrefix(r.Reason, "timeout after ") {
		t.Errorf("probe = %+v, want a timeout", r)
	}
	if took > 2*time.Second {
		t.Errorf("probe took %v, want about 200ms", took)
	}
}

// recorder is a server that keeps the last request it saw.
type recorder struct {
	mu   sync.Mutex
	last *http.Request
	body []byte
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rec.mu.Lock()
	rec.last, rec.body = r, b
	rec.mu.Unlock()
	fmt.Fprintln(w, "hello")
}

func (rec *recorder) request() (*http.Request, []byte) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.last, rec.body
}

func newRecorder(t *testing.T) (*recorder, string) {
	rec := &recorder{}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL
}

func TestProbeMethod(t *testing.T) {
	rec, base := newRecorder(t)
	for _, m := range []string{"GET", "head", "HEAD", "POST", "Options"} {
		r := probe(t, newChecker(t, "url", base+"/", "method", m))
		if !r.Healthy || r.Reason != "HTTP 200" {
			t.Errorf("method=%s: probe = %+v, want healthy HTTP 200", m, r)
		}
		req, body := rec.request()
		if want := strings.ToUpper(m); req == nil || req.Method != want {
			t.Errorf("method=%s: the server saw %v, want %s", m, req, want)
		}
		if len(body) != 0 {
			t.Errorf("method=%s: request body %q", m, body)
		}
	}
}

func TestProbeHeaders(t *testing.T) {
	rec, base := newRecorder(t)
	r := probe(t, newChecker(t, "url", base+"/healthz?deep=1",
		"header", "X-Probe: one",
		"header", "X-Probe: two",
		"header", "Authorization: Bearer t:o:k",
		"header", "Host: vhost.example",
	))
	if !r.Healthy {
		t.Fatalf("probe = %+v", r)
	}
	req, _ := rec.request()
	if got := req.Header.Values("X-Probe"); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Errorf("X-Probe = %q, want [one two]", got)
	}
	if got := req.Header.Get("Authorization"); got != "Bearer t:o:k" {
		t.Errorf("Authorization = %q", got)
	}
	if req.Host != "vhost.example" {
		t.Errorf("Host = %q, want vhost.example", req.Host)
	}
	if req.URL.RequestURI() != "/healthz?deep=1" {
		t.Errorf("request URI = %q", req.URL.RequestURI())
	}
	if ua := req.Header.Get("User-Agent"); ua != "respawner-healthcheck-http/test" {
		t.Errorf("User-Agent = %q", ua)
	}

	probe(t, newChecker(t, "url", base+"/", "header", "User-Agent: mine/1"))
	if req, _ := rec.request(); req.Header.Get("User-Agent") != "mine/1" {
		t.Errorf("User-Agent = %q, want the header option's", req.Header.Get("User-Agent"))
	}
}

// TestProbeFreshConnection: each probe opens its own connection and asks
// the server to close it, so nothing pooled can answer for a dead server.
func TestProbeFreshConnection(t *testing.T) {
	var conns atomic.Int32
	var closeAsked atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Close {
			closeAsked.Add(1)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	c := newChecker(t, "url", srv.URL+"/")
	for range 3 {
		if r := probe(t, c); !r.Healthy {
			t.Fatalf("probe = %+v", r)
		}
	}
	if n := conns.Load(); n != 3 {
		t.Errorf("3 probes used %d connections", n)
	}
	if n := closeAsked.Load(); n != 3 {
		t.Errorf("%d of 3 requests asked for Connection: close", n)
	}
}

// TestProbeBodyLimit: a server that streams forever is judged by its status;
// the probe reads 64 KiB and hangs up rather than waiting for the timeout.
func TestProbeBodyLimit(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 4096)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := newChecker(t, "url", srv.URL+"/", "timeout", "10s", "interval", "20s")
	start := time.Now()
	r := probe(t, c)
	if !r.Healthy || r.Reason != "HTTP 200" {
		t.Errorf("probe = %+v, want healthy HTTP 200", r)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("probe took %v: the body was not cut off", took)
	}
}

func TestProbeTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake of tls-verify=true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	if r := probe(t, newChecker(t, "url", srv.URL+"/")); !r.Healthy || r.Reason != "HTTP 200" {
		t.Errorf("default: probe = %+v, want healthy HTTP 200", r)
	}
	r := probe(t, newChecker(t, "url", srv.URL+"/", "tls-verify", "true"))
	if r.Healthy || !strings.HasPrefix(r.Reason, "TLS: ") || !strings.Contains(r.Reason, "certificate") {
		t.Errorf("tls-verify=true: probe = %+v, want a certificate error", r)
	}

	plain := statusServer(t)
	r = probe(t, newChecker(t, "url", strings.Replace(plain, "http://", "https://", 1)+"/200"))
	if r.Healthy || r.Reason != "https asked, the server answered plain http" {
		t.Errorf("https to a plain server: probe = %+v", r)
	}
}

// TestProbeNoProxy: HTTP_PROXY must not decide where the probe goes.
func TestProbeNoProxy(t *testing.T) {
	t.Setenv("HTTP_PROXY", "http://127.0.0.1:1")
	t.Setenv("HTTPS_PROXY", "http://127.0.0.1:1")
	cfg, err := parseConfig(opts())
	if err != nil {
		t.Fatal(err)
	}
	tr := newClient(cfg).Transport.(*http.Transport)
	if tr.Proxy != nil {
		t.Error("the transport has a proxy function")
	}
	if !tr.DisableKeepAlives {
		t.Error("keep-alives are on")
	}
}

func TestProbeConcurrent(t *testing.T) {
	c := newChecker(t, "url", statusServer(t)+"/200")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if r, err := c.Probe(t.Context()); err != nil || !r.Healthy {
				t.Errorf("probe = %+v, %v", r, err)
			}
		})
	}
	wg.Wait()
}

func TestProbeBeforeConfigure(t *testing.T) {
	c := &checker{}
	if _, err := c.Probe(t.Context()); err == nil {
		t.Error("probe before configure: no error")
	}
	if got := c.ProbeConfig(); got != defaultSchedule {
		t.Errorf("ProbeConfig before configure = %+v", got)
	}
	if got := c.Version(); got != "dev" {
		t.Errorf("Version = %q, want dev", got)
	}
}

func TestDescribe(t *testing.T) {
	wrap := func(err error) error { return &url.Error{Op: "Get", URL: "http://127.0.0.1:80/", Err: err} }
	dial := func(errno syscall.Errno) error {
		return wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}})
	}
	tests := []struct {
		err  error
		want string
	}{
		{dial(syscall.ECONNREFUSED), "connection refused"},
		{dial(syscall.EHOSTUNREACH), "no route to host"},
		{wrap(&net.OpError{Op: "read", Net: "tcp", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), "connection reset by peer"},
		{wrap(context.DeadlineExceeded), "timeout after 2s"},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: os.ErrDeadlineExceeded}), "timeout after 2s"},
		{wrap(context.Canceled), "canceled"},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "web.invalid", IsNotFound: true}}), "no such host"},
		{wrap(&net.DNSError{Err: "server misbehaving", Name: "web.lan"}), "lookup web.lan: server misbehaving"},
		{wrap(&net.DNSError{Err: "i/o timeout", Name: "web.lan", IsTimeout: true}), "timeout after 2s"},
		{wrap(io.EOF), "connection closed before an answer"},
		{wrap(http.ErrSchemeMismatch), "https asked, the server answered plain http"},
		{wrap(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), "TLS: the server did not answer with TLS"},
		{wrap(errors.New(`net/http: HTTP/1.x transport connection broken: malformed HTTP response "SSH-2.0"`)), `HTTP/1.x transport connection broken: malformed HTTP response "SSH-2.0"`},
		{wrap(&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("something odd")}), "something odd"},
	}
	for _, tt := range tests {
		if got := describe(tt.err, 2*time.Second); got != tt.want {
			t.Errorf("describe(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

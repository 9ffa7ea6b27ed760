package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hooks"
)

const (
	// defaultURL is where a stock lighttpd (or nginx, or apache) listens, so
	// that `--plugin healthcheck-http` needs no options for them.
	defaultURL = "http://127.0.0.1:80/"
	// maxBody is how much of a response body a probe reads before closing
	// the connection: enough for a health endpoint, little for a huge page.
	maxBody = 64 << 10
)

// defaultSchedule is the probe schedule when no option changes it, chosen so
// that a hung server is replaced well within 30 s without a loaded machine's
// slow answers getting it restarted (README: "How long until a hung server
// is replaced"):
//   - a probe every 3 s, at a fixed rate: three failures in a row are found
//     8 to 11 s after the server hangs, at most
//     max(initial-delay, interval) + (failures-1) x interval + timeout;
//   - a 2 s timeout: a loaded server's slow answer, not a dead one's (a
//     lighttpd on localhost answers in about a millisecond), and a second
//     to spare before the next probe is due;
//   - three failures in a row: one or two slow answers are no reason to
//     kill a server;
//   - the first probe 1 s after the start: a probe at once would find a
//     daemon that has not bound its port yet, and log a failure each start.
var defaultSchedule = hooks.ProbeConfig{
	Interval:         3 * time.Second,
	Timeout:          2 * time.Second,
	InitialDelay:     time.Second,
	FailureThreshold: 3,
	SuccessThreshold: 1,
}

// methods are the methods a probe may use: those without side effects, and
// POST for endpoints that insist on it.
var methods = []string{"GET", "HEAD", "POST", "OPTIONS"}

// config is the plugin's options, checked.
type config struct {
	url       string
	method    string
	header    http.Header
	host      string // the Host header, when set with header=Host: ...
	expect    statusSet
	tlsVerify bool
	schedule  hooks.ProbeConfig
}

// parseConfig reads every option the plugin knows; its error names each bad
// option and each unknown one.
func parseConfig(opts *hooks.Options) (config, error) {
	c := config{
		url:       parseURL(opts),
		method:    parseMethod(opts),
		header:    http.Header{},
		expect:    aliveStatuses,
		tlsVerify: opts.Bool("tls-verify", false),
		schedule:  opts.ProbeConfig(defaultSchedule),
	}
	c.host = parseHeaders(opts, c.header)
	if opts.Has("expect-status") {
		s, err := parseStatusSet(opts.List("expect-status"))
		if err != nil {
			opts.Errorf("expect-status", "%v", err)
		}
		c.expect = s
	}
	if s := c.schedule; s.Timeout >= s.Interval {
		opts.Errorf("timeout", "%v is not shorter than interval (%v): a probe must end before the next one starts", s.Timeout, s.Interval)
	}
	if err := opts.Err(); err != nil {
		return config{}, err
	}
	return c, nil
}

func parseURL(opts *hooks.Options) string {
	raw := opts.String("url", defaultURL)
	u, err := url.Parse(raw)
	var ue *url.Error
	switch {
	case err != nil && !strings.Contains(raw, "://"):
		opts.Errorf("url", "%q has no scheme (want http:// or https://)", raw)
	case errors.As(err, &ue):
		opts.Errorf("url", "%q: %v", raw, ue.Err)
	case err != nil:
		opts.Errorf("url", "%q: %v", raw, err)
	case u.Scheme == "":
		opts.Errorf("url", "%q has no scheme (want http:// or https://)", raw)
	case u.Scheme != "http" && u.Scheme != "https":
		opts.Errorf("url", "%q: scheme %q is not http or https", raw, u.Scheme)
	case u.Hostname() == "":
		opts.Errorf("url", "%q has no host (want http://HOST[:PORT]/PATH)", raw)
	default:
		return u.String()
	}
	return ""
}

func parseMethod(opts *hooks.Options) string {
	raw := opts.String("method", "GET")
	m := strings.ToUpper(raw)
	if !slices.Contains(methods, m) {
		opts.Errorf("method", "%q is not one of %s", raw, strings.Join(methods, ", "))
	}
	return m
}

// parseHeaders adds each header=NAME: VALUE to h, except Host, which net/http
// takes from Request.Host and which parseHeaders returns.
func parseHeaders(opts *hooks.Options, h http.Header) (host string) {
	for _, raw := range opts.Strings("header") {
		name, value, ok := strings.Cut(raw, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			opts.Errorf("header", "%q has no colon (want \"Name: value\")", raw)
		case !validHeaderName(name):
			opts.Errorf("header", "%q: %q is not a header name", raw, name)
		case strings.ContainsFunc(value, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }):
			opts.Errorf("header", "%q: the value has a control character", raw)
		case strings.EqualFold(name, "Host"):
			host = value
		default:
			h.Add(name, value)
		}
	}
	return host
}

// validHeaderName reports whether s is an RFC 9110 token, as a header name
// must be.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", r) {
			return false
		}
	}
	return true
}

// newClient returns the client of every probe of c.
func newClient(c config) *http.Client {
	sni := c.host
	if h, _, err := net.SplitHostPort(sni); err == nil {
		sni = h
	}
	return &http.Client{
		Transport: &http.Transport{
			// Never a proxy from HTTP_PROXY: the probe is for the supervised
			// server, and a proxy would answer for it.
			Proxy:       nil,
			DialContext: (&net.Dialer{}).DialContext,
			// A fresh connection for each probe: a pooled one would hide a
			// server that can no longer accept (stopped, out of fds).
			DisableKeepAlives:  true,
			DisableCompression: true, // the body is thrown away
			TLSClientConfig: &tls.Config{
				ServerName: sni, // "" means the URL's host
				// Off by default, as for the kubelet's probes: the question is
				// whether the server answers, and the default target,
				// 127.0.0.1, is never the name on a real certificate.
				InsecureSkipVerify: !c.tlsVerify, //nolint:gosec // see above; tls-verify=true turns it on
			},
		},
		// A redirect is an answer; following it would probe another server.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// checker is the plugin: hooks.Configurer, hooks.ProbeConfigurer,
// hooks.Prober and hooks.Versioner.
type checker struct {
	version string
	log     hclog.Logger // nil logs nothing

	p atomic.Pointer[prober] // nil until Configure succeeds
}

// prober is a configured checker's immutable state, shared by concurrent
// probes.
type prober struct {
	cfg       config
	client    *http.Client
	userAgent string
}

func (c *checker) logger() hclog.Logger {
	if c.log == nil {
		return hclog.NewNullLogger()
	}
	return c.log
}

// Configure implements hooks.Configurer.
func (c *checker) Configure(ctx context.Context, opts *hooks.Options) error {
	cfg, err := parseConfig(opts)
	if err != nil {
		return err
	}
	c.p.Store(&prober{cfg: cfg, client: newClient(cfg), userAgent: "respawner-healthcheck-http/" + c.Version()})
	c.logger().Debug("configured", "url", cfg.url, "method", cfg.method, "expect-status", cfg.expect.String(),
		"interval", cfg.schedule.Interval, "timeout", cfg.schedule.Timeout)
	return nil
}

// ProbeConfig implements hooks.ProbeConfigurer.
func (c *checker) ProbeConfig() hooks.ProbeConfig {
	if p := c.p.Load(); p != nil {
		return p.cfg.schedule
	}
	return defaultSchedule
}

// Version implements hooks.Versioner.
func (c *checker) Version() string {
	if c.version == "" {
		return "dev"
	}
	return c.version
}

// Probe implements hooks.Prober. A server that does not answer as expected
// is a result, not an error; the error is kept for a probe that cannot run.
func (c *checker) Probe(ctx context.Context) (hooks.ProbeResult, error) {
	p := c.p.Load()
	if p == nil {
		return hooks.ProbeResult{}, errors.New("probe before configure")
	}
	start := time.Now()
	r := p.probe(ctx)
	c.logger().Trace("probe", "healthy", r.Healthy, "reason", r.Reason, "took", time.Since(start))
	return r, nil
}

// probe sends one request and judges the answer.
func (p *prober) probe(ctx context.Context) hooks.ProbeResult {
	budget := p.cfg.schedule.Timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < budget {
			budget = max(left.Round(time.Millisecond), 0)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, p.cfg.method, p.cfg.url, nil)
	if err != nil { // the URL was checked by Configure
		return hooks.ProbeResult{Reason: describe(err, budget)}
	}
	req.Header = p.cfg.header.Clone()
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", p.userAgent)
	}
	if p.cfg.host != "" {
		req.Host = p.cfg.host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return hooks.ProbeResult{Reason: describe(err, budget)}
	}
	// The status is the answer; the body only has to be drained politely.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if !p.cfg.expect.contains(resp.StatusCode) {
		return hooks.ProbeResult{Reason: fmt.Sprintf("status %d (want %s)", resp.StatusCode, p.cfg.expect)}
	}
	return hooks.ProbeResult{Healthy: true, Reason: fmt.Sprintf("HTTP %d", resp.StatusCode)}
}

// describe turns a failed request into a short reason for an operator:
// "connection refused", "timeout after 2s", "no such host", ... without Go's
// `Get "http://...": dial tcp ...:` wrapping.
func describe(err error, budget time.Duration) string {
	var (
		ne    net.Error
		dns   *net.DNSError
		errno syscall.Errno
		cve   *tls.CertificateVerificationError
		rhe   tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout after " + budget.String()
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.As(err, &dns):
		if dns.IsNotFound {
			return "no such host"
		}
		return "lookup " + dns.Name + ": " + dns.Err
	case errors.As(err, &errno):
		return errno.Error() // "connection refused", "connection reset by peer", "no route to host"
	case errors.As(err, &cve):
		return "TLS: " + cve.Err.Error()
	case errors.Is(err, http.ErrSchemeMismatch):
		return "https asked, the server answered plain http"
	case errors.As(err, &rhe):
		return "TLS: the server did not answer with TLS"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before an answer"
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		err = oe.Err
	}
	return strings.TrimPrefix(err.Error(), "net/http: ")
}

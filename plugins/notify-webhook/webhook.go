package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/pkg/hookspec"
	"github.com/respawner/respawner/plugins/internal/notify"
)

// SecretEnv is the environment variable that holds the signing secret.
const SecretEnv = "RESPAWNER_WEBHOOK_SECRET"

// SignatureHeader carries "sha256=" and the hex HMAC-SHA256 of the body.
const SignatureHeader = "X-Respawner-Signature"

// newWebhook is the plugin: a notifier whose Sender POSTs each message.
func newWebhook(version string, log hclog.Logger) *notify.Plugin {
	return notify.NewPlugin(version, log, func(opts *hooks.Options) (notify.Sender, notify.Config, error) {
		s, cfg, err := parseConfig(opts, os.Getenv, log)
		if err != nil {
			return nil, cfg, err
		}
		return s, cfg, nil
	})
}

// sender POSTs one JSON document per message.
type sender struct {
	url     string
	format  formatter
	header  http.Header
	secret  []byte
	client  *http.Client
	started time.Time
}

// formatter turns a message into a request body; a nil body means there is
// nothing to send. A formatter with state (Alertmanager's firing alerts)
// returns commit, which Send calls once the body is delivered or refused for
// good, so that a retry builds the same body again.
type formatter interface {
	body(m notify.Message) (body []byte, commit func(), err error)
}

// Send implements notify.Sender.
func (s *sender) Send(ctx context.Context, m notify.Message) error {
	body, commit, err := s.format.body(m)
	if err != nil {
		return notify.Permanent(fmt.Errorf("format: %w", err))
	}
	err = s.post(ctx, body)
	if commit != nil && (err == nil || notify.IsPermanent(err)) {
		commit()
	}
	return err
}

func (s *sender) post(ctx context.Context, body []byte) error {
	if body == nil {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return notify.Permanent(err)
	}
	for k, vs := range s.header {
		req.Header[k] = vs
	}
	req.Header.Set("Content-Type", "application/json")
	if len(s.secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(s.secret, body))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	err = fmt.Errorf("POST %s: %s: %s", redact(s.url), resp.Status, strings.TrimSpace(string(snippet)))
	// 4xx means the request is wrong and will stay wrong, except for
	// "try again later" answers.
	if resp.StatusCode/100 == 4 && resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
		return notify.Permanent(err)
	}
	return err
}

// Repeating implements notify.Repeater for the formats that keep state.
func (s *sender) Repeating() bool {
	r, ok := s.format.(interface{ Repeating() bool })
	return ok && r.Repeating()
}

// Sign returns the X-Respawner-Signature value of body: "sha256=" and the
// hex HMAC-SHA256 of body under secret.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// redact drops a URL's user info and query for log lines: Slack's webhook
// URLs are secrets in their path, so only scheme and host are kept.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(url)"
	}
	return u.Scheme + "://" + u.Host + "/..."
}

// parseConfig reads every option; its error names each bad option.
func parseConfig(opts *hooks.Options, getenv func(string) string, log hclog.Logger) (*sender, notify.Config, error) {
	cfg := notify.ParseOptions(opts)
	format := opts.OneOf("format", "generic", "generic", "slack", "alertmanager")
	raw := opts.String("url", "")
	resend := opts.Duration("resend", time.Minute)
	s := &sender{header: http.Header{}, started: time.Now()}
	s.url = parseURL(opts, raw, format)
	for _, h := range opts.Strings("header") {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		switch {
		case !ok:
			opts.Errorf("header", "%q has no colon (want NAME: VALUE)", h)
		case name == "" || strings.ContainsAny(name, " \t\r\n"):
			opts.Errorf("header", "%q: bad header name", h)
		case strings.ContainsAny(value, "\r\n"):
			opts.Errorf("header", "%q: a value cannot hold a line break", h)
		default:
			s.header.Add(name, strings.TrimSpace(value))
		}
	}
	if opts.Has("secret") {
		opts.Errorf("secret", "not accepted on the command line, which every user can read: set %s or give secret-file=PATH", SecretEnv)
	}
	if f := opts.String("secret-file", ""); f != "" {
		b, err := os.ReadFile(f)
		switch {
		case err != nil:
			opts.Errorf("secret-file", "%v", err)
		case len(strings.TrimRight(string(b), "\r\n")) == 0:
			opts.Errorf("secret-file", "%s is empty", f)
		default:
			s.secret = []byte(strings.TrimRight(string(b), "\r\n"))
			if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o004 != 0 {
				log.Warn("the webhook secret file is readable by every user", "file", f)
			}
		}
	} else if v := getenv(SecretEnv); v != "" {
		s.secret = []byte(v)
	}
	if resend == 0 && format == "alertmanager" {
		opts.Errorf("resend", "must be more than 0: Alertmanager resolves alerts that are not sent again")
	}
	host, _ := os.Hostname()
	switch format {
	case "generic":
		s.format = generic{}
	case "slack":
		s.format = slack{host: host}
	case "alertmanager":
		am := newAlertmanager(host, cfg.Window)
		s.format = am
		cfg.Also = am.also()
		cfg.Urgent = am.urgent()
		cfg.Resend = resend
	}
	if err := opts.Err(); err != nil {
		return nil, notify.Config{}, err
	}
	// No proxy from the environment: the receiver is named in url, and a
	// plugin run as root should not follow HTTP_PROXY somewhere else.
	s.client = &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: cfg.Timeout,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s, cfg, nil
}

// parseURL checks url=; for Alertmanager a URL without a path gets
// /api/v2/alerts.
func parseURL(opts *hooks.Options, raw, format string) string {
	if raw == "" {
		opts.Errorf("url", "required (url=https://HOST/PATH)")
		return ""
	}
	u, err := url.Parse(raw)
	var ue *url.Error
	switch {
	case errors.As(err, &ue):
		opts.Errorf("url", "%q: %v", raw, ue.Err)
	case err != nil:
		opts.Errorf("url", "%q: %v", raw, err)
	case u.Scheme != "http" && u.Scheme != "https":
		opts.Errorf("url", "%q: scheme %q is not http or https", raw, u.Scheme)
	case u.Hostname() == "":
		opts.Errorf("url", "%q has no host", raw)
	default:
		if format == "alertmanager" && (u.Path == "" || u.Path == "/") {
			u.Path = "/api/v2/alerts"
		}
		return u.String()
	}
	return ""
}

// eventKinds is a helper for the formats: the kinds of a message's events,
// in order (one, or a digest's).
func events(m notify.Message) []hookspec.Event {
	if m.Digest != nil && len(m.Digest.Events) > 0 {
		return m.Digest.Events
	}
	return []hookspec.Event{m.Event}
}

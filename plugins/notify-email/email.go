package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/plugins/internal/notify"
	"github.com/wneessen/go-mail"
)

// PasswordEnv is the environment variable that holds the SMTP password.
const PasswordEnv = "RESPAWNER_SMTP_PASSWORD"

// DefaultServer is the relay used when server= is not given: the local MTA.
const DefaultServer = "127.0.0.1"

// newMailer is the plugin: a notifier whose Sender mails each message.
func newMailer(version string, log hclog.Logger) *notify.Plugin {
	return notify.NewPlugin(version, log, func(opts *hooks.Options) (notify.Sender, notify.Config, error) {
		s, cfg, err := parseConfig(opts, os.Getenv, log)
		if err != nil {
			return nil, cfg, err
		}
		s.version = version
		log.Debug("configured", "server", s.server, "tls", s.mode(), "to", strings.Join(s.to, ","), "events", cfg.Events.String())
		return s, cfg, nil
	})
}

// sender mails one message per notify.Message through one SMTP server.
type sender struct {
	client   *mail.Client
	server   string // host:port, for log lines and errors
	starttls string // auto, always or never; "" with implicit TLS
	implicit bool   // tls=true: TLS from the first byte (port 465)
	tls      *tls.Config
	from     string
	to       []string
	host     string // this machine's name, for events that do not carry it
	version  string
	cfg      notify.Config // for the footer: what is selected, the window

	// attempt is the context of the Send under way, which dial, called
	// by go-mail within it, ties the connection to. Send is called from
	// one goroutine only (notify.Sender).
	attempt context.Context
}

// Send implements notify.Sender: one SMTP session per message.
func (s *sender) Send(ctx context.Context, m notify.Message) error {
	if m.Repeat {
		return nil // not a Repeater: mail has nothing to say again
	}
	msg, err := s.message(m)
	if err != nil {
		return notify.Permanent(fmt.Errorf("compose: %w", err))
	}
	s.attempt = ctx
	defer func() { s.attempt = nil }()
	if err := s.client.DialAndSendWithContext(ctx, msg); err != nil {
		return classify(fmt.Errorf("smtp %s: %w", s.server, err))
	}
	return nil
}

// message builds the mail of m.
func (s *sender) message(m notify.Message) (*mail.Msg, error) {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(s.from); err != nil {
		return nil, err
	}
	if err := msg.To(s.to...); err != nil {
		return nil, err
	}
	host := notify.Host(m.Event, s.host)
	msg.Subject(subject(m, host))
	msg.SetDate()
	msg.SetMessageID()
	msg.SetUserAgent("respawner-plugin-notify-email/" + s.version)
	// RFC 3834: vacation responders and ticket systems do not answer it.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader("X-Auto-Response-Suppress", "All")
	// For mail filters: which instance, which host, what happened.
	msg.SetGenHeader("X-Respawner-Instance", oneLine(m.Event.Instance))
	msg.SetGenHeader("X-Respawner-Host", oneLine(host))
	what := string(m.Event.Kind)
	if m.Digest != nil {
		what = "digest"
	}
	msg.SetGenHeader("X-Respawner-Event", what)
	msg.SetBodyString(mail.TypeTextPlain, body(m, host, s.footer(host)))
	return msg, nil
}

// mode says how the connection is protected, for the log.
func (s *sender) mode() string {
	if s.implicit {
		return "implicit"
	}
	return "starttls=" + s.starttls
}

// dial connects to the server for go-mail. go-mail heeds ctx only while
// it dials, and sets a fresh deadline of its own before each command, so a
// slow server could hold one attempt, and Close's grace period, for many
// times the timeout. The connection is bounded instead by the attempt's
// context: its deadlines never pass the attempt's, and it is closed when
// the attempt is cancelled (Close's grace period has ended).
func (s *sender) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	c := raw
	if end, ok := ctx.Deadline(); ok {
		bc := &boundedConn{Conn: raw, end: end}
		if s.attempt != nil {
			bc.stop = context.AfterFunc(s.attempt, func() { raw.Close() })
		}
		c = bc
		if err := c.SetDeadline(end); err != nil {
			c.Close()
			return nil, err
		}
	}
	if !s.implicit {
		return c, nil
	}
	// Implicit TLS is done here rather than by go-mail's WithSSL, which
	// a custom dialer turns off. smtp.Client sees a *tls.Conn and knows
	// the connection is encrypted.
	tc := tls.Client(c, s.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// boundedConn is a connection whose deadlines never pass end.
type boundedConn struct {
	net.Conn
	end  time.Time
	stop func() bool // stops closing it when the attempt ends; nil: none
}

func (c *boundedConn) Close() error {
	if c.stop != nil {
		c.stop()
	}
	return c.Conn.Close()
}

func (c *boundedConn) bound(t time.Time) time.Time {
	if t.IsZero() || t.After(c.end) {
		return c.end
	}
	return t
}

func (c *boundedConn) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(c.bound(t)) }
func (c *boundedConn) SetReadDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(c.bound(t))
}
func (c *boundedConn) SetWriteDeadline(t time.Time) error {
	return c.Conn.SetWriteDeadline(c.bound(t))
}

// classify marks the failures that retrying cannot cure as permanent, so
// the message is given up (and logged) at once: a 5xx reply (a refused
// password, sender or recipient) and a certificate that does not verify.
// Everything else (no connection, a timeout, a 4xx reply) is retried.
func classify(err error) error {
	var (
		te *textproto.Error
		se *mail.SendError
		ce *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ie x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500,
		errors.As(err, &te) && te.Code >= 500,
		errors.As(err, &ce), errors.As(err, &ua), errors.As(err, &he), errors.As(err, &ie):
		return notify.Permanent(err)
	}
	return err
}

// parseConfig reads every option; its error names each bad option.
func parseConfig(opts *hooks.Options, getenv func(string) string, log hclog.Logger) (*sender, notify.Config, error) {
	cfg := notify.ParseOptions(opts)
	s := &sender{cfg: cfg}
	s.host, _ = os.Hostname()

	to := opts.List("to")
	if len(to) == 0 {
		opts.Errorf("to", "required (to=ops@example.com; several: to=a@example.com,b@example.com)")
	}
	for _, raw := range to {
		a, err := netmail.ParseAddress(raw)
		if err != nil {
			opts.Errorf("to", "%q: %v", raw, err)
			continue
		}
		s.to = append(s.to, a.String())
	}
	from := opts.String("from", "respawner@"+s.host)
	if a, err := netmail.ParseAddress(from); err != nil {
		opts.Errorf("from", "%q: %v", from, err)
	} else {
		s.from = a.String()
	}

	s.implicit = opts.Bool("tls", false)
	host, port := parseServer(opts, opts.String("server", DefaultServer), s.implicit)
	s.server = net.JoinHostPort(host, strconv.Itoa(port))
	loopback := isLoopback(host)
	starttls := opts.OneOf("starttls", "", "auto", "always", "never")
	switch {
	case s.implicit && opts.Has("starttls"):
		opts.Errorf("starttls", "not with tls=true, where the connection is TLS from the start")
	case s.implicit:
	case starttls != "":
		s.starttls = starttls
	case loopback:
		// Nothing on the wire to protect, and Debian's postfix offers
		// STARTTLS with a snake-oil certificate that would not verify.
		s.starttls = "never"
	default:
		// Across a network, mail and password go encrypted or not at
		// all: opportunistic STARTTLS can be stripped by anyone between.
		s.starttls = "always"
	}
	usesTLS := s.implicit || s.starttls != "never"
	s.tls = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if f := opts.String("ca-file", ""); f != "" {
		s.tls.RootCAs = readCAFile(opts, f)
		if !usesTLS {
			opts.Errorf("ca-file", "no TLS to use it with (starttls=never)")
		}
	}
	for _, k := range []string{"tls-skip-verify", "insecure-skip-verify"} {
		if opts.Has(k) {
			opts.Errorf(k, "not offered: a relay whose certificate is not checked can be anyone, and gets the password and the mail; trust its certificate or CA with ca-file=PATH")
		}
	}

	user := opts.String("user", "")
	if opts.Has("password") {
		opts.Errorf("password", "not accepted on the command line, which every user can read: set %s or give password-file=PATH", PasswordEnv)
	}
	passFile := opts.String("password-file", "")
	auth := opts.OneOf("auth", "auto", "auto", "plain", "login")
	var pass string
	switch {
	case user == "":
		if passFile != "" {
			opts.Errorf("password-file", "needs user=NAME")
		}
		if opts.Has("auth") {
			opts.Errorf("auth", "needs user=NAME")
		}
	case passFile != "":
		pass = readPasswordFile(opts, passFile, log)
	default:
		if pass = getenv(PasswordEnv); pass == "" {
			opts.Errorf("user", "no password: set %s in respawner's environment or give password-file=PATH", PasswordEnv)
		}
	}
	if user != "" && !usesTLS && !loopback {
		opts.Errorf("user", "the password would cross the network in clear: use starttls=always or tls=true")
	}
	if err := opts.Err(); err != nil {
		return nil, notify.Config{}, err
	}

	policy := map[string]mail.TLSPolicy{"auto": mail.TLSOpportunistic, "always": mail.TLSMandatory, "never": mail.NoTLS, "": mail.NoTLS}[s.starttls]
	mo := []mail.Option{
		mail.WithPort(port),
		mail.WithTimeout(cfg.Timeout),
		mail.WithTLSPolicy(policy), // implicit TLS is the dialer's
		mail.WithTLSConfig(s.tls),
		mail.WithDialContextFunc(s.dial),
	}
	if user != "" {
		mo = append(mo, mail.WithUsername(user), mail.WithPassword(pass))
		switch auth {
		case "plain":
			mo = append(mo, mail.WithSMTPAuth(mail.SMTPAuthPlain))
		case "login":
			mo = append(mo, mail.WithSMTPAuth(mail.SMTPAuthLogin))
		default:
			// PLAIN, else LOGIN, else what go-mail finds (SCRAM,
			// CRAM-MD5). PLAIN and LOGIN are refused on a connection
			// that is neither encrypted nor to the loopback.
			mo = append(mo, mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin))
		}
	}
	c, err := mail.NewClient(host, mo...)
	if err != nil {
		return nil, notify.Config{}, fmt.Errorf("option server: %q: %v", s.server, err)
	}
	s.client = c
	return s, cfg, nil
}

// parseServer reads server=HOST[:PORT]; the port defaults to 25, or 465
// with implicit TLS. IPv6 addresses are written [::1]:25.
func parseServer(opts *hooks.Options, raw string, implicit bool) (host string, port int) {
	port = mail.DefaultPort
	if implicit {
		port = mail.DefaultPortSSL
	}
	host = raw
	if h, p, err := net.SplitHostPort(raw); err == nil {
		host = h
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			opts.Errorf("server", "%q: port %q is not a number from 1 to 65535", raw, p)
		}
		port = n
	} else if strings.HasPrefix(raw, "[") && strings.HasSuffix(raw, "]") {
		host = raw[1 : len(raw)-1]
	} else if strings.Count(raw, ":") == 1 {
		opts.Errorf("server", "%q: %v", raw, err)
	}
	if host == "" || strings.ContainsAny(host, " \t\r\n/@") {
		opts.Errorf("server", "%q: want HOST or HOST:PORT", raw)
	}
	return host, port
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readCAFile reads the PEM certificates that alone are trusted to sign the
// server's certificate.
func readCAFile(opts *hooks.Options, f string) *x509.CertPool {
	b, err := os.ReadFile(f)
	if err != nil {
		opts.Errorf("ca-file", "%v", err)
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		opts.Errorf("ca-file", "%s holds no PEM certificate", f)
		return nil
	}
	return pool
}

// readPasswordFile reads the password: the file's content without its
// trailing newline.
func readPasswordFile(opts *hooks.Options, f string, log hclog.Logger) string {
	b, err := os.ReadFile(f)
	if err != nil {
		opts.Errorf("password-file", "%v", err)
		return ""
	}
	p := strings.TrimRight(string(b), "\r\n")
	if p == "" {
		opts.Errorf("password-file", "%s is empty", f)
		return ""
	}
	if fi, err := os.Stat(f); err == nil && fi.Mode().Perm()&0o004 != 0 {
		log.Warn("the SMTP password file is readable by every user", "file", f)
	}
	return p
}

package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/hashicorp/go-hclog"
	"github.com/respawner/respawner/pkg/hooks"
	"github.com/respawner/respawner/plugins/internal/notify"
	"github.com/respawner/respawner/plugins/internal/notify/notifytest"
)

// received is one mail the test server accepted.
type received struct {
	from   string   // envelope sender
	to     []string // envelope recipients
	user   string   // who logged in, "" without AUTH
	tls    bool     // the session was encrypted
	header netmail.Header
	body   string // decoded
}

// subject is the decoded Subject header.
func (r received) subject(t *testing.T) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(r.header.Get("Subject"))
	if err != nil {
		t.Fatalf("subject %q: %v", r.header.Get("Subject"), err)
	}
	return s
}

// serverOpts says what the test server offers and requires.
type serverOpts struct {
	starttls *tls.Config // offer STARTTLS with this
	implicit *tls.Config // speak TLS from the first byte
	user     string      // require AUTH as user with pass
	pass     string
	mechs    []string     // AUTH mechanisms offered; PLAIN by default
	ln       net.Listener // listen here rather than on a new port
}

// smtpServer is an SMTP server on 127.0.0.1 (emersion/go-smtp) that hands
// every mail it accepts to got.
type smtpServer struct {
	*smtp.Server
	addr string
	opts serverOpts
	got  chan received
}

func newSMTPServer(t *testing.T, o serverOpts) *smtpServer {
	t.Helper()
	if o.user != "" && o.mechs == nil {
		o.mechs = []string{sasl.Plain}
	}
	ln := o.ln
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	s := &smtpServer{addr: ln.Addr().String(), opts: o, got: make(chan received, 100)}
	s.Server = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.ErrorLog = log.New(io.Discard, "", 0) // clients that hang up, on purpose
	s.TLSConfig = o.starttls
	if o.implicit != nil {
		ln = tls.NewListener(ln, o.implicit)
	}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return s
}

// next waits for the next mail.
func (s *smtpServer) next(t *testing.T) received {
	t.Helper()
	select {
	case r := <-s.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no mail within 10s")
	}
	return received{}
}

// none checks that no more mail came.
func (s *smtpServer) none(t *testing.T) {
	t.Helper()
	select {
	case r := <-s.got:
		t.Fatalf("unexpected mail %q", r.header.Get("Subject"))
	default:
	}
}

// session is one SMTP session of smtpServer.
type session struct {
	srv  *smtpServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

var _ smtp.AuthSession = (*session)(nil)

func (x *session) AuthMechanisms() []string { return x.srv.opts.mechs }

func (x *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != x.srv.opts.user || pass != x.srv.opts.pass {
			return smtp.ErrAuthFailed
		}
		x.user = user
		return nil
	}
	switch {
	case !slices.Contains(x.srv.opts.mechs, mech):
	case mech == sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case mech == sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	if x.srv.opts.user != "" && x.user == "" {
		return smtp.ErrAuthRequired
	}
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(m.Body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	_, isTLS := x.conn.TLSConnectionState()
	x.srv.got <- received{from: x.from, to: x.to, user: x.user, tls: isTLS, header: m.Header, body: strings.ReplaceAll(string(b), "\r\n", "\n")}
	return nil
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl does not
// have: ask for the user name, then the password.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // an initial response is the user name
			l.user, l.step = string(resp), 2
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

// testCert is a self-signed certificate for 127.0.0.1 and localhost, and
// the PEM file (for ca-file) that trusts it.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "respawner test relay"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	f := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, f
}

func serverTLS(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// configure returns a configured plugin whose log lines go to logs (when
// not nil); Close is called at the end of the test.
func configure(t *testing.T, opts map[string][]string, logs chan string) *notify.Plugin {
	t.Helper()
	return notifytest.Configure(t, newMailer, opts, logs)
}

// waitLog waits for a log line holding every one of parts.
func waitLog(t *testing.T, logs chan string, parts ...string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l := <-logs:
			if !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(l, p) }) {
				return l
			}
		case <-timeout:
			t.Fatalf("no log line with %q within 15s", parts)
		}
	}
}

const lastLine = "2026-03-01 12:30:05: (server.c.1234) segfault in mod_fastcgi"

func killed(pid int) hooks.Event {
	return hooks.Event{Kind: hooks.Exited, Instance: "web", Program: "/usr/sbin/lighttpd", Args: []string{"-D", "-f", "/etc/lighttpd/lighttpd.conf"},
		PID: pid, Time: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC), Signal: "SIGKILL", Uptime: 90 * time.Second,
		Attempt: 3, Limit: 5, Host: "host1", Output: []string{"2026-03-01 12:30:04: (server.c.1200) server started", lastLine}}
}

// checkKilled checks the mail of killed(pid): headers, and a body that
// says what happened.
func checkKilled(t *testing.T, r received, pid int) {
	t.Helper()
	subj := r.subject(t)
	if want := "[respawner] web on host1: killed by SIGKILL after 1m30s (restart 3 of 5)"; subj != want {
		t.Errorf("subject %q, want %q", subj, want)
	}
	for _, want := range []string{
		"web on host1: killed by SIGKILL after 1m30s (restart 3 of 5).",
		"Instance:  web", "Host:      host1",
		"Program:   /usr/sbin/lighttpd -D -f /etc/lighttpd/lighttpd.conf",
		"Exit:      killed by signal SIGKILL", "Uptime:    1m30s", "Restart:   3 of 5",
		"PID:       " + strconv.Itoa(pid),
		"Time:      " + time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC).Local().Format(timeLayout),
		"Last output lines of web (pid " + strconv.Itoa(pid) + "), oldest first:",
		"    " + lastLine + "\n",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("body has no %q:\n%s", want, r.body)
		}
	}
	if r.header.Get("Auto-Submitted") != "auto-generated" || r.header.Get("X-Respawner-Instance") != "web" ||
		r.header.Get("X-Respawner-Event") != "exited" || r.header.Get("Message-Id") == "" || r.header.Get("Date") == "" {
		t.Errorf("headers %v", r.header)
	}
}

// A mail through a relay with no TLS and no AUTH, to two recipients.
func TestPlainMail(t *testing.T) {
	s := newSMTPServer(t, serverOpts{})
	m := configure(t, map[string][]string{"to": {"ops@example.com,Night Shift <night@example.com>"}, "from": {"respawner@host1.example.com"},
		"server": {s.addr}}, nil)
	m.Notify(t.Context(), killed(42))
	r := s.next(t)
	if r.tls || r.user != "" {
		t.Errorf("tls %v, user %q: want neither", r.tls, r.user)
	}
	if r.from != "respawner@host1.example.com" || !slices.Equal(r.to, []string{"ops@example.com", "night@example.com"}) {
		t.Errorf("envelope from %q to %q", r.from, r.to)
	}
	if r.header.Get("From") != "<respawner@host1.example.com>" {
		t.Errorf("From %q", r.header.Get("From"))
	}
	to, err := r.header.AddressList("To")
	if err != nil || len(to) != 2 || to[0].Address != "ops@example.com" || to[1].Address != "night@example.com" || to[1].Name != "Night Shift" {
		t.Errorf("To %q: %v %v", r.header.Get("To"), to, err)
	}
	checkKilled(t, r, 42)
}

// STARTTLS with a certificate trusted through ca-file, and AUTH PLAIN
// with the password from the environment or from password-file; a wrong
// password is refused, logged, and not retried.
func TestStartTLSAuth(t *testing.T) {
	cert, caFile := testCert(t)
	s := newSMTPServer(t, serverOpts{starttls: serverTLS(cert), user: "alerts", pass: "s3cret pass"})
	base := map[string][]string{"to": {"ops@example.com"}, "server": {s.addr}, "starttls": {"always"}, "ca-file": {caFile}, "user": {"alerts"}}
	with := func(k, v string) map[string][]string {
		o := map[string][]string{k: {v}}
		for k, v := range base {
			o[k] = v
		}
		return o
	}

	t.Run("env", func(t *testing.T) {
		t.Setenv(PasswordEnv, "s3cret pass")
		m := configure(t, base, nil)
		m.Notify(t.Context(), killed(1))
		r := s.next(t)
		if !r.tls || r.user != "alerts" {
			t.Errorf("tls %v, user %q: want STARTTLS and alerts", r.tls, r.user)
		}
		checkKilled(t, r, 1)
	})
	t.Run("file", func(t *testing.T) {
		t.Setenv(PasswordEnv, "not this one")
		f := t.TempDir() + "/pw"
		if err := os.WriteFile(f, []byte("s3cret pass\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m := configure(t, with("password-file", f), nil)
		m.Notify(t.Context(), killed(2))
		if r := s.next(t); !r.tls || r.user != "alerts" {
			t.Errorf("tls %v, user %q", r.tls, r.user)
		}
	})
	t.Run("wrong", func(t *testing.T) {
		t.Setenv(PasswordEnv, "hunter2")
		logs := make(chan string, 100)
		m := configure(t, with("backoff", "10ms"), logs)
		m.Notify(t.Context(), killed(3))
		l := waitLog(t, logs, "giving it up", "535")
		if !strings.Contains(l, `"attempts":1`) || strings.Contains(l, "hunter2") {
			t.Errorf("log %s: want one attempt, without the password", l)
		}
		m.Close() // the goroutine has counted what it logged
		if st := m.Stats(); st.GivenUp != 1 || st.Failed != 1 {
			t.Errorf("stats %+v", st)
		}
		s.none(t)
	})
}

// Connections that must not carry the mail: a certificate nobody said to
// trust, and a relay without STARTTLS under starttls=always.
func TestRefused(t *testing.T) {
	cert, _ := testCert(t)
	for _, tc := range []struct {
		name string
		srv  serverOpts
		opts map[string][]string
		log  string
	}{
		{"untrusted certificate", serverOpts{starttls: serverTLS(cert)}, map[string][]string{"starttls": {"always"}}, "certificate signed by unknown authority"},
		{"untrusted with auto", serverOpts{starttls: serverTLS(cert)}, map[string][]string{"starttls": {"auto"}}, "certificate signed by unknown authority"},
		{"no STARTTLS", serverOpts{}, map[string][]string{"starttls": {"always"}}, "does not support STARTTLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSMTPServer(t, tc.srv)
			tc.opts["to"], tc.opts["server"], tc.opts["backoff"], tc.opts["retries"] = []string{"ops@example.com"}, []string{s.addr}, []string{"10ms"}, []string{"1"}
			logs := make(chan string, 100)
			m := configure(t, tc.opts, logs)
			m.Notify(t.Context(), killed(1))
			waitLog(t, logs, "giving it up", tc.log)
			s.none(t)
		})
	}
}

// Implicit TLS (tls=true, as on port 465) to a relay that offers only
// AUTH LOGIN: auth=auto finds it.
func TestImplicitTLS(t *testing.T) {
	cert, caFile := testCert(t)
	s := newSMTPServer(t, serverOpts{implicit: serverTLS(cert), user: "alerts", pass: "pw", mechs: []string{sasl.Login}})
	t.Setenv(PasswordEnv, "pw")
	logs := make(chan string, 100)
	m := configure(t, map[string][]string{"to": {"ops@example.com"}, "server": {s.addr}, "tls": {"true"}, "ca-file": {caFile}, "user": {"alerts"}}, logs)
	m.Notify(t.Context(), killed(5))
	r := s.next(t)
	if !r.tls || r.user != "alerts" {
		t.Errorf("tls %v, user %q: want TLS and alerts", r.tls, r.user)
	}
	checkKilled(t, r, 5)
}

// auth=plain to a relay that offers only LOGIN fails, and says why.
func TestAuthMechanismChosen(t *testing.T) {
	cert, caFile := testCert(t)
	s := newSMTPServer(t, serverOpts{implicit: serverTLS(cert), user: "alerts", pass: "pw", mechs: []string{sasl.Login}})
	t.Setenv(PasswordEnv, "pw")
	logs := make(chan string, 100)
	m := configure(t, map[string][]string{"to": {"ops@example.com"}, "server": {s.addr}, "tls": {"true"}, "ca-file": {caFile},
		"user": {"alerts"}, "auth": {"plain"}, "retries": {"0"}}, logs)
	m.Notify(t.Context(), killed(5))
	waitLog(t, logs, "giving it up", "PLAIN")
	s.none(t)
}

// subjectCount is the count of a digest's subject: "49 more exits".
var subjectCount = regexp.MustCompile(`: (\d+) more exits since \d\d:\d\d, last: killed by SIGKILL`)

// 50 crashes in about two seconds send at most 3 mails: the first at
// once, then digests; the last is a digest, and together they count all 50.
func TestBurst(t *testing.T) {
	s := newSMTPServer(t, serverOpts{})
	m := configure(t, map[string][]string{"to": {"ops@example.com"}, "server": {s.addr}, "window": {"3s"}}, nil)
	start := time.Now()
	for i := 1; i <= 50; i++ {
		m.Notify(t.Context(), killed(i))
		time.Sleep(40 * time.Millisecond) // a crash loop with -t 0, slowed
	}
	t.Logf("50 events in %v", time.Since(start).Round(time.Millisecond))
	first := s.next(t)
	if !strings.HasSuffix(first.subject(t), "killed by SIGKILL after 1m30s (restart 3 of 5)") || first.header.Get("X-Respawner-Event") != "exited" {
		t.Errorf("first mail %q, want the first exit alone", first.subject(t))
	}
	checkKilled(t, first, 1)
	m.Close() // sends what is pending
	mails := []received{first}
	for len(s.got) > 0 {
		mails = append(mails, <-s.got)
	}
	if len(mails) > 3 || len(mails) < 2 {
		t.Fatalf("%d mails, want 2 or 3", len(mails))
	}
	total := 1
	for _, r := range mails[1:] {
		subj := r.subject(t)
		sm := subjectCount.FindStringSubmatch(subj)
		if sm == nil || r.header.Get("X-Respawner-Event") != "digest" {
			t.Fatalf("mail %q is not a digest of exits", subj)
		}
		n, _ := strconv.Atoi(sm[1])
		total += n
		for _, want := range []string{sm[1] + " events between ", "exited " + sm[1] + ".", "The last one:", "    " + lastLine} {
			if !strings.Contains(r.body, want) {
				t.Errorf("digest body has no %q:\n%s", want, r.body)
			}
		}
	}
	if total != 50 {
		t.Errorf("the mails count %d exits, want 50", total)
	}
	last := mails[len(mails)-1]
	if !strings.Contains(last.body, "PID:       50\n") {
		t.Errorf("the last digest does not end with pid 50:\n%s", last.body)
	}
	t.Logf("%d mails: %q", len(mails), last.subject(t))
}

// The relay is down when the crash happens and comes up 10 s later, on the
// same port: the mail arrives after it is up, through retries with backoff
// (0.75 s, doubling: attempts at 0, 0.75, 2.25, 5.25 and 11.25 s) that never
// held up Notify.
func TestServerDownThenUp(t *testing.T) {
	if testing.Short() {
		t.Skip("waits 10s")
	}
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down: connections are refused
	logs := make(chan string, 100)
	m := configure(t, map[string][]string{"to": {"ops@example.com"}, "server": {addr}, "backoff": {"750ms"}, "retries": {"10"}}, logs)
	start := time.Now()
	m.Notify(t.Context(), killed(7))
	if d := time.Since(start); d > time.Second {
		t.Errorf("Notify took %v: delivery must be off the event path", d)
	}
	waitLog(t, logs, "will retry", "connection refused")
	time.Sleep(10*time.Second - time.Since(start))
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	up := time.Since(start)
	s := newSMTPServer(t, serverOpts{ln: ln})
	r := s.next(t)
	got := time.Since(start)
	checkKilled(t, r, 7)
	waitLog(t, logs, "notification delivered") // after QUIT, which follows the mail
	if st := m.Stats(); st.Delivered != 1 || st.Failed < 3 || st.GivenUp != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("relay up after %v; mail delivered %v after the event", up.Round(time.Millisecond), got.Round(time.Millisecond))
}

// A relay that accepts the connection and never answers holds neither an
// attempt past timeout nor Close past the grace period.
func TestHangingServerBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // hold it open, say nothing
		}
	}()
	t.Cleanup(func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	})
	logs := make(chan string, 100)
	m := configure(t, map[string][]string{"to": {"ops@example.com"}, "server": {ln.Addr().String()}, "timeout": {"30s"}, "grace": {"500ms"}}, logs)
	m.Notify(t.Context(), killed(1))
	select {
	case c := <-accepted:
		accepted <- c
	case <-time.After(10 * time.Second):
		t.Fatal("no connection")
	}
	start := time.Now()
	m.Close()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Close took %v with grace=500ms", d)
	}
	waitLog(t, logs, "not delivered within the grace period")
}

func TestBadOptions(t *testing.T) {
	t.Setenv(PasswordEnv, "")
	dir := t.TempDir()
	empty, notPEM := dir+"/empty", dir+"/not.pem"
	os.WriteFile(empty, nil, 0o600)
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	to := []string{"ops@example.com"}
	for _, tc := range []struct {
		opts map[string][]string
		want string
	}{
		{map[string][]string{}, "option to: required"},
		{map[string][]string{"to": {"ops"}}, `option to: "ops": mail: missing '@'`},
		{map[string][]string{"to": to, "from": {"a b"}}, `option from: "a b"`},
		{map[string][]string{"to": to, "server": {"smtp.example.com:smtp"}}, `option server: "smtp.example.com:smtp": port "smtp" is not a number`},
		{map[string][]string{"to": to, "server": {"smtp.example.com:0"}}, `option server: "smtp.example.com:0": port "0"`},
		{map[string][]string{"to": to, "server": {"unix:///run/smtp"}}, `option server: "unix:///run/smtp"`},
		{map[string][]string{"to": to, "starttls": {"yes"}}, `option starttls: "yes" is not one of auto, always, never`},
		{map[string][]string{"to": to, "tls": {"true"}, "starttls": {"always"}}, "option starttls: not with tls=true"},
		{map[string][]string{"to": to, "tls": {"maybe"}}, `option tls: "maybe" is not a boolean`},
		{map[string][]string{"to": to, "ca-file": {dir + "/none.pem"}}, "option ca-file: open " + dir + "/none.pem: no such file"},
		{map[string][]string{"to": to, "ca-file": {notPEM}, "starttls": {"always"}}, "option ca-file: " + notPEM + " holds no PEM certificate"},
		{map[string][]string{"to": to, "ca-file": {notPEM}}, "option ca-file: no TLS to use it with"}, // loopback: starttls=never
		{map[string][]string{"to": to, "tls-skip-verify": {"true"}}, "option tls-skip-verify: not offered"},
		{map[string][]string{"to": to, "user": {"u"}, "password": {"hunter2"}}, "option password: not accepted on the command line"},
		{map[string][]string{"to": to, "user": {"u"}}, "option user: no password: set RESPAWNER_SMTP_PASSWORD"},
		{map[string][]string{"to": to, "user": {"u"}, "password-file": {empty}}, "option password-file: " + empty + " is empty"},
		{map[string][]string{"to": to, "password-file": {empty}}, "option password-file: needs user=NAME"},
		{map[string][]string{"to": to, "auth": {"plain"}}, "option auth: needs user=NAME"},
		{map[string][]string{"to": to, "user": {"u"}, "password-file": {notPEM}, "auth": {"cram-md5"}}, `option auth: "cram-md5" is not one of auto, plain, login`},
		{map[string][]string{"to": to, "user": {"u"}, "password-file": {notPEM}, "server": {"smtp.example.com"}, "starttls": {"never"}}, "option user: the password would cross the network in clear"},
		{map[string][]string{"to": to, "events": {"crashes"}}, `option events: unknown event "crashes"`},
		{map[string][]string{"to": to, "grace": {"5s"}}, "option grace: 5s is too long"},
		{map[string][]string{"to": to, "colour": {"red"}}, `unknown option "colour"`},
	} {
		m := newMailer("", hclog.NewNullLogger())
		err := m.Configure(t.Context(), hooks.NewOptions(tc.opts))
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want one line with %q", tc.opts, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// The defaults: the local MTA without STARTTLS; a remote relay with
// STARTTLS required; port 465 with implicit TLS.
func TestDefaults(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		opts         map[string][]string
		server, mode string
	}{
		{map[string][]string{}, "127.0.0.1:25", "starttls=never"},
		{map[string][]string{"server": {"localhost:2525"}}, "localhost:2525", "starttls=never"},
		{map[string][]string{"server": {"[::1]"}}, "[::1]:25", "starttls=never"},
		{map[string][]string{"server": {"::1"}}, "[::1]:25", "starttls=never"},
		{map[string][]string{"server": {"smtp.example.com:587"}}, "smtp.example.com:587", "starttls=always"},
		{map[string][]string{"server": {"smtp.example.com"}, "starttls": {"auto"}}, "smtp.example.com:25", "starttls=auto"},
		{map[string][]string{"server": {"smtp.example.com"}, "tls": {"true"}}, "smtp.example.com:465", "implicit"},
	} {
		tc.opts["to"] = []string{"ops@example.com"}
		s, cfg, err := parseConfig(hooks.NewOptions(tc.opts), func(string) string { return "" }, hclog.NewNullLogger())
		if err != nil {
			t.Errorf("%v: %v", tc.opts, err)
			continue
		}
		if s.server != tc.server || s.mode() != tc.mode || s.from != "<respawner@"+host+">" || cfg.Window != 5*time.Minute {
			t.Errorf("%v: server %s, %s, from %s, window %v; want %s, %s", tc.opts, s.server, s.mode(), s.from, cfg.Window, tc.server, tc.mode)
		}
	}
}

// What a digest mail says, and that output cannot break the mail.
func TestFormat(t *testing.T) {
	s := &sender{version: "1.2.3"}
	s.cfg.Window = 5 * time.Minute
	evs := []hooks.Event{killed(10), killed(11), killed(12)}
	evs[2].Output = []string{"bad\x1b[31mcolour\r", "invalid \xff utf-8"}
	evs[2].Signal, evs[2].ExitCode = "", 3
	evs[2].Instance = "web\r\nBcc: evil@example.com"
	m := messageOf(evs, 2)
	subj := subject(m, "host1")
	if strings.ContainsAny(subj, "\r\n") || !strings.Contains(subj, "3 more exits") || !strings.Contains(subj, "last: exited with code 3 after 1m30s") {
		t.Errorf("subject %q", subj)
	}
	b := body(m, "host1", s.footer("host1"))
	for _, want := range []string{
		"3 events between ", "exited 3.", "Also lost to a full notification queue: 2 events.",
		"Oldest first:", "Exit:      exit code 3\n",
		"    bad\uFFFD[31mcolour\uFFFD\n", "    invalid \uFFFD utf-8\n",
		"-- \nrespawner-plugin-notify-email 1.2.3 on host1",
		"Events within 5m0s of a mail are gathered into one digest",
	} {
		if !strings.Contains(b, want) {
			t.Errorf("body has no %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "\nBcc:") {
		t.Errorf("a line break in the instance name reached the body:\n%s", b)
	}
	if got := command("/bin/sh", []string{"-c", "echo it's; kill $$", ""}); got != `/bin/sh -c 'echo it'\''s; kill $$' ''` {
		t.Errorf("command %s", got)
	}
}

// messageOf is the digest notify.Dispatcher would build of evs.
func messageOf(evs []hooks.Event, dropped int) notify.Message {
	d := &notify.Digest{Count: len(evs), Since: evs[0].Time.Add(-time.Minute), First: evs[0].Time, Last: evs[len(evs)-1].Time,
		Kinds: map[hooks.Kind]int{}, Events: evs, Dropped: dropped}
	for _, ev := range evs {
		d.Kinds[ev.Kind]++
	}
	return notify.Message{Event: evs[len(evs)-1], Digest: d}
}

// Refusals retrying cannot cure are given up at once; the rest is retried.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err       error
		permanent bool
	}{
		{errors.New("dial tcp 127.0.0.1:25: connect: connection refused"), false},
		{fmt.Errorf("dial failed: SMTP AUTH failed: %w", &textproto.Error{Code: 535, Msg: "5.7.8 Authentication failed"}), true},
		{fmt.Errorf("dial failed: %w", &textproto.Error{Code: 421, Msg: "4.3.2 try again later"}), false},
		{fmt.Errorf("dial failed: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), true},
		{context.DeadlineExceeded, false},
	} {
		if got := notify.IsPermanent(classify(tc.err)); got != tc.permanent {
			t.Errorf("%v: permanent %v, want %v", tc.err, got, tc.permanent)
		}
	}
}

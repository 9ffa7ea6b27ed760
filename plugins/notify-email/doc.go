// Command respawner-plugin-notify-email is respawner's mail notifier: a hook
// plugin (hooks.Notifier) that mails chosen events, or a digest of a crash
// loop, over SMTP with github.com/wneessen/go-mail.
//
//	respawner start --plugin notify-email:to=ops@example.com lighttpd -- -D -f /etc/lighttpd/lighttpd.conf
//	RESPAWNER_SMTP_PASSWORD=... respawner start --plugin 'notify-email:to=ops@example.com,server=smtp.example.com:587,user=alerts@example.com' ./server
//	respawner start --plugin 'notify-email:to=ops@example.com,server=smtp.example.com,tls=true,user=alerts,password-file=/etc/respawner/smtp.pw' ./server
//
// Options (`--plugin notify-email:key=value,...`):
//
//	to=ADDR,...           recipients; required; a list, or repeated
//	from=ADDR             the sender                                       respawner@HOSTNAME
//	server=HOST[:PORT]    the SMTP relay                 127.0.0.1:25 (:465 with tls=true)
//	starttls=MODE         always | auto | never         never on the loopback, else always
//	tls=BOOL              implicit TLS from the first byte (port 465)                  false
//	ca-file=PATH          PEM certificates that alone are trusted for the server's certificate
//	user=NAME             log in (AUTH) as NAME; the password from the environment or a file
//	password-file=PATH    the password, read at start (else $RESPAWNER_SMTP_PASSWORD)
//	auth=MECH             auto | plain | login                                          auto
//	events=LIST           kinds, exited-abnormally, all        exited-abnormally,unhealthy,held,gave-up
//	window=DUR            coalescing window; 0 mails every event                         5m
//	timeout=DUR           deadline of one SMTP session (also respawner's call deadline)  10s
//	retries=N             retries of a failed delivery before the mail is given up        8
//	backoff=DUR           delay before the first retry; doubles, up to 1m                1s
//	queue=N               events waiting to be mailed; the oldest is dropped past it     256
//	grace=DUR             how long pending mails are retried at shutdown; < 1.9s         1.5s
//
// starttls=always refuses to send unless the server offers STARTTLS;
// auto uses it when offered (anyone on the path can strip the offer);
// never sends in clear. Certificates are always verified, against the
// system's CAs or ca-file's; there is no option to skip that. auth=auto
// uses PLAIN, else LOGIN, else a challenge mechanism go-mail finds
// (SCRAM-SHA-*, NTLM, CRAM-MD5); PLAIN and LOGIN are never sent in clear except
// to the loopback.
//
// The password comes from RESPAWNER_SMTP_PASSWORD or password-file, never
// from the command line, which every user of the host can read.
// Selection, coalescing, retries and the flush at shutdown are
// plugins/internal/notify's; README.md shows the mails.
package main

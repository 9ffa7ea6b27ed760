// Command respawner-plugin-notify-webhook is respawner's webhook notifier: a
// hook plugin (hooks.Notifier) that POSTs one JSON document per event, or per
// digest of a crash loop, to a URL.
//
//	respawner start --plugin notify-webhook:url=https://hooks.example/respawner lighttpd -- -f /etc/lighttpd/lighttpd.conf
//	respawner start --plugin 'notify-webhook:url=https://hooks.slack.com/services/T/B/X,format=slack' ./server
//	respawner start --plugin 'notify-webhook:url=http://alertmanager:9093,format=alertmanager' ./server
//
// Options (`--plugin notify-webhook:key=value,...`):
//
//	url=URL               where to POST; required (alertmanager: a URL without a path gets /api/v2/alerts)
//	format=F              generic | slack | alertmanager                                generic
//	events=LIST           kinds, exited-abnormally, all        exited-abnormally,unhealthy,held,gave-up
//	window=DUR            coalescing window; 0 sends every event                         5m
//	timeout=DUR           deadline of one POST (also respawner's call deadline)          10s
//	retries=N             retries of a failed POST before it is given up                 8
//	backoff=DUR           delay before the first retry; doubles, up to 1m                1s
//	queue=N               events waiting to be sent; the oldest is dropped past it       256
//	grace=DUR             how long pending messages are retried at shutdown; < 1.9s      1.5s
//	resend=DUR            alertmanager: how often firing alerts are sent again          1m
//	header=NAME: VALUE    a request header; repeatable
//	secret-file=PATH      the HMAC secret, read at start
//
// The secret signs each body: X-Respawner-Signature: sha256=HEX, the HMAC-SHA256
// of the body. It comes from RESPAWNER_WEBHOOK_SECRET or secret-file, never
// from the command line, which every user of the host can read. Selection,
// coalescing, retries and the flush at shutdown are plugins/internal/notify's;
// README.md shows the payloads.
package main

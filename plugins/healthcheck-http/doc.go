// Command respawner-plugin-healthcheck-http is respawner's HTTP liveness
// probe: a hook plugin (hooks.Prober) that sends one HTTP request per probe
// and calls the program alive when the server answers with an expected
// status. respawner owns the schedule: it runs the probe every interval, at a
// fixed rate, and restarts the program after failures probes in a row have
// failed, as a Kubernetes liveness probe does. With the defaults a hung
// server is found within interval + (failures-1)*interval + timeout = 11 s.
//
//	respawner start --plugin healthcheck-http lighttpd -- -f /etc/lighttpd/lighttpd.conf
//	respawner start --plugin 'healthcheck-http:url=http://127.0.0.1:8080/healthz,expect-status=200' ./server
//
// Options (`--plugin healthcheck-http:key=value,...`):
//
//	url=URL             what to request; http or https with a host    http://127.0.0.1:80/
//	method=M            GET, HEAD, POST or OPTIONS                    GET
//	header=NAME: VALUE  a request header; repeatable. "Host: x" sets the virtual host
//	expect-status=LIST  codes, ranges and classes: 200 | 200-399 | 200,204,301-302 | 2xx
//	                                                                  200-499
//	tls-verify=BOOL     verify the https server's certificate         false
//	interval=DUR        time from one probe's start to the next's     3s
//	timeout=DUR         deadline of one probe; less than interval     2s
//	initial-delay=DUR   wait after each start before the first probe  1s
//	failures=N          failed probes in a row that mean unhealthy    3
//	successes=N         passed probes in a row that mean healthy      1
//
// A duration is Go syntax ("1m30s", "500ms") or a bare number of seconds.
//
// # Why any status below 500 is alive by default
//
// A liveness probe asks one question: does the server answer? A restart is
// the cure only for a server that does not, or that answers with a server
// error. Debian's stock lighttpd answers GET / with 403 Forbidden, because
// /var/www/html has no index.html and directory listings are off; a 2xx-only
// default would call that healthy server dead and restart it forever. So the
// default accepts 200-499, and 5xx (the server is broken), timeouts and
// refused connections fail. Give expect-status=200 (or 2xx) to check a
// health endpoint strictly.
//
// # How a probe is made
//
// Each probe is one request on a fresh connection (keep-alives are off), so a
// server that is stopped (SIGSTOP) or wedged is caught by the timeout rather
// than hidden by a pooled connection. Redirects are not followed: a 3xx is an
// answer, and following it would probe some other server. HTTP_PROXY and
// friends are ignored: the probe is for the supervised server, never a
// proxy. At most 64 KiB of the body is read and thrown away. Certificates are
// not verified unless tls-verify=true, as the kubelet's https probes do: the
// default target is 127.0.0.1, for which a real certificate never validates.
//
// Options are on respawner's command line, which every user of the host can
// read: do not put passwords in url or header.
package main

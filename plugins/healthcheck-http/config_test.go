package main

import (
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// opts builds options as ParseSpec would from "k=v,k=v".
func opts(kv ...string) *hooks.Options {
	m := map[string][]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = append(m[kv[i]], kv[i+1])
	}
	return hooks.NewOptions(m)
}

func TestConfigDefaults(t *testing.T) {
	c, err := parseConfig(opts())
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		url:      "http://127.0.0.1:80/",
		method:   "GET",
		header:   http.Header{},
		expect:   statusSet{{200, 499}},
		schedule: hooks.ProbeConfig{Interval: 3 * time.Second, Timeout: 2 * time.Second, InitialDelay: time.Second, FailureThreshold: 3, SuccessThreshold: 1},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigValues(t *testing.T) {
	c, err := parseConfig(opts(
		"url", "https://example.com:8443/healthz?full=1",
		"method", "head",
		"header", "X-Probe: one",
		"header", "x-probe:two",
		"header", "Authorization: Bearer a:b:c",
		"header", "Host: vhost.example:8080",
		"header", "X-Empty:",
		"expect-status", "200,204,301-302",
		"tls-verify", "yes",
		"interval", "30",
		"timeout", "500ms",
		"initial-delay", "1m",
		"failures", "5",
		"successes", "2",
	))
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		url:    "https://example.com:8443/healthz?full=1",
		method: "HEAD",
		header: http.Header{
			"X-Probe":       {"one", "two"},
			"Authorization": {"Bearer a:b:c"},
			"X-Empty":       {""},
		},
		host:      "vhost.example:8080",
		expect:    statusSet{{200, 200}, {204, 204}, {301, 302}},
		tlsVerify: true,
		schedule: hooks.ProbeConfig{
			Interval:         30 * time.Second,
			Timeout:          500 * time.Millisecond,
			InitialDelay:     time.Minute,
			FailureThreshold: 5,
			SuccessThreshold: 2,
		},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("values:\n got %+v\nwant %+v", c, want)
	}
}

// TestConfigExpectStatusRepeated: expect-status given twice is the union, as
// the comma-separated list is (Options.List).
func TestConfigExpectStatusRepeated(t *testing.T) {
	c, err := parseConfig(opts("expect-status", "200", "expect-status", "3xx"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.expect.String(); got != "200,300-399" {
		t.Errorf("expect = %s, want 200,300-399", got)
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		opts *hooks.Options
		want string
	}{
		{"url scheme", opts("url", "ftp://127.0.0.1/"), `option url: "ftp://127.0.0.1/": scheme "ftp" is not http or https`},
		{"url no scheme", opts("url", "127.0.0.1:80"), `option url: "127.0.0.1:80" has no scheme (want http:// or https://)`},
		{"url path only", opts("url", "/healthz"), `option url: "/healthz" has no scheme`},
		{"url no host", opts("url", "http:///healthz"), `option url: "http:///healthz" has no host`},
		{"url port only", opts("url", "http://:8080/"), `option url: "http://:8080/" has no host`},
		{"url opaque", opts("url", "http:localhost"), `has no host`},
		{"url bad port", opts("url", "http://127.0.0.1:http/"), `option url: "http://127.0.0.1:http/": invalid port`},
		{"url unparsable", opts("url", "http://[::1/"), `option url: "http://[::1/": missing ']' in host`},
		{"url twice", opts("url", "http://a/", "url", "http://b/"), "option url: given 2 times"},
		{"method", opts("method", "DELETE"), `option method: "DELETE" is not one of GET, HEAD, POST, OPTIONS`},
		{"method empty", opts("method", ""), `option method: "" is not one of`},
		{"header no colon", opts("header", "X-Probe yes"), `option header: "X-Probe yes" has no colon`},
		{"header no name", opts("header", ": yes"), `option header: ": yes": "" is not a header name`},
		{"header bad name", opts("header", "X Probe: yes"), `"X Probe" is not a header name`},
		{"header control", opts("header", "X-Probe: a\r\nEvil: 1"), "the value has a control character"},
		{"header one bad of two", opts("header", "X-A: 1", "header", "oops"), `option header: "oops" has no colon`},
		{"expect-status word", opts("expect-status", "ok"), `option expect-status: "ok" is not a status code`},
		{"expect-status range", opts("expect-status", "200-600"), `option expect-status: "200-600": 600 is not an HTTP status`},
		{"expect-status empty", opts("expect-status", ""), "option expect-status: is empty"},
		{"expect-status reversed", opts("expect-status", "399-200"), "is an empty range"},
		{"tls-verify", opts("tls-verify", "maybe"), `option tls-verify: "maybe" is not a boolean`},
		{"interval zero", opts("interval", "0"), "option interval: must be more than 0"},
		{"interval negative", opts("interval", "-1s"), `option interval: "-1s" is negative`},
		{"interval word", opts("interval", "often"), `option interval: "often" is not a duration`},
		{"timeout zero", opts("timeout", "0s"), "option timeout: must be more than 0"},
		{"timeout word", opts("timeout", "soon"), `option timeout: "soon" is not a duration`},
		{"timeout = interval", opts("interval", "2s"), "option timeout: 2s is not shorter than interval (2s)"},
		{"timeout > interval", opts("interval", "5s", "timeout", "10s"), "option timeout: 10s is not shorter than interval (5s)"},
		{"initial-delay", opts("initial-delay", "later"), `option initial-delay: "later" is not a duration`},
		{"failures zero", opts("failures", "0"), "option failures: must be at least 1"},
		{"failures word", opts("failures", "three"), `option failures: "three" is not an integer`},
		{"successes zero", opts("successes", "0"), "option successes: must be at least 1"},
		{"successes negative", opts("successes", "-1"), "option successes: must be at least 1"},
		{"unknown", opts("colour", "red"), `unknown option "colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseConfig(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one with %q", err, tt.want)
			}
		})
	}
}

// TestConfigErrorsTogether: every problem is reported at once, so an
// operator fixes the command line in one go.
func TestConfigErrorsTogether(t *testing.T) {
	_, err := parseConfig(opts("url", "gopher://x/", "method", "PUT", "failures", "0", "colour", "red"))
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"option url:", "option method:", "option failures:", `unknown option "colour"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%v: no %q", err, w)
		}
	}
}

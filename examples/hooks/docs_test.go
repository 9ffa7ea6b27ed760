// Package examples_test keeps the hook examples of the documentation true:
// every Go block of docs/writing-hooks.md and the README is a file of
// examples/hooks (or of the SDK) or an excerpt of one, and the steps the
// documentation gives to build a hook in a module of one's own build the
// examples outside this repository, where the webhook example then posts
// events as it says.
package examples_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/respawner/respawner/pkg/hooks"
)

// root is the repository, from this package's directory.
const root = "../.."

// docs are the pages whose Go blocks are checked.
var docs = []string{"docs/writing-hooks.md", "README.md"}

// block is a fenced code block of a page and the marker comment right above it.
type block struct {
	page, lang, marker string
	line               int // of the opening fence
	text               string
}

var markerRE = regexp.MustCompile(`^<!-- (.+) -->$`)

// blocks returns the fenced blocks of page.
func blocks(t *testing.T, page string) []block {
	t.Helper()
	f, err := os.Open(filepath.Join(root, page))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []block
	var cur *block
	prev := "" // the last non-blank line outside a block
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(l) == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		case strings.HasPrefix(l, "```"):
			cur = &block{page: page, lang: strings.TrimPrefix(l, "```"), line: n}
			if m := markerRE.FindStringSubmatch(prev); m != nil {
				cur.marker = m[1]
			}
		case strings.TrimSpace(l) != "":
			prev = strings.TrimSpace(l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if cur != nil {
		t.Fatalf("%s:%d: unterminated block", page, cur.line)
	}
	return out
}

// Every Go block in the documentation is a whole file that builds and is
// tested (<!-- go: FILE -->, equal to FILE) or an excerpt of one (<!-- go:
// excerpt of FILE -->, its lines found in FILE in order, comments and
// spacing aside), never a snippet whose imports the reader has to guess.
func TestDocGoBlocks(t *testing.T) {
	seen := 0
	for _, page := range docs {
		for _, b := range blocks(t, page) {
			if b.lang != "go" {
				continue
			}
			seen++
			where := b.page + ":" + strconv.Itoa(b.line)
			spec, ok := strings.CutPrefix(b.marker, "go: ")
			if !ok {
				t.Errorf("%s: a Go block without <!-- go: FILE --> or <!-- go: excerpt of FILE --> above it", where)
				continue
			}
			file, excerpt := strings.CutPrefix(spec, "excerpt of ")
			src, err := os.ReadFile(filepath.Join(root, file))
			if err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if !excerpt {
				if b.text != string(src) {
					t.Errorf("%s is not %s as it is: copy the file into the page", where, file)
				}
				continue
			}
			if missing := notIn(b.text, string(src)); missing != "" {
				t.Errorf("%s: the excerpt's line %q is not in %s (in this order)", where, missing, file)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no Go block found")
	}
}

// notIn returns the first line of excerpt that is not in src after the
// lines matched before it, comments and spacing aside; "" when all are.
func notIn(excerpt, src string) string {
	norm := func(l string) string {
		if i := strings.Index(l, "//"); i >= 0 {
			l = l[:i]
		}
		return strings.Join(strings.Fields(l), " ")
	}
	var lines []string
	for l := range strings.Lines(src) {
		lines = append(lines, norm(l))
	}
	at := 0
	for l := range strings.Lines(excerpt) {
		want := norm(l)
		if want == "" {
			continue
		}
		i := slices.Index(lines[at:], want)
		if i < 0 {
			return strings.TrimSpace(l)
		}
		at += i + 1
	}
	return ""
}

// The steps of writing-hooks.md for building a hook in a module of one's own
// (a replace directive pointing at a checkout, respawner being unpublished),
// run as written in an empty directory outside the repository, for the
// maintenance example and, with the name changed, the webhook example. The
// webhook then posts events as the page says.
func TestBuildOutsideTheRepo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two plugins")
	}
	var script string
	for _, b := range blocks(t, "docs/writing-hooks.md") {
		if b.marker == "sh: build-outside-the-repo" {
			script = b.text
		}
	}
	first, rest, _ := strings.Cut(script, "\n")
	if !strings.HasPrefix(first, "src=") {
		t.Fatalf("the block marked sh: build-outside-the-repo does not start by setting src=:\n%s", script)
	}
	src, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	script = "src=" + src + "\n" + rest
	bins := map[string]string{}
	for _, name := range []string{"maintenance", "webhook"} {
		dir := t.TempDir()
		cmd := exec.Command("sh", "-e", "-x", "-c", strings.ReplaceAll(script, "maintenance", name))
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: the steps failed: %v\n%s", name, err, out)
		}
		mod := filepath.Join(dir, "respawner-plugin-"+name)
		gomod, err := os.ReadFile(filepath.Join(mod, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"github.com/respawner/respawner v0.0.0-00010101000000-000000000000\n", "replace github.com/respawner/respawner => " + src + "\n"} {
			if !strings.Contains(string(gomod), want) {
				t.Errorf("%s: go.mod lacks %q:\n%s", name, want, gomod)
			}
		}
		bins[name] = filepath.Join(mod, "respawner-plugin-"+name)
	}

	c, err := hooks.Launch(bins["maintenance"], hooks.LaunchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Configure(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if in, err := c.Info(ctx); err != nil || !in.Veto || in.Notify || in.Probe {
		t.Errorf("maintenance: Info = %+v, %v; want a Vetoer only", in, err)
	}
	c.Kill()

	testWebhook(ctx, t, bins["webhook"])
}

// testWebhook checks that the webhook example posts an event's JSON form, of
// the kinds chosen, and reports what goes wrong.
func testWebhook(ctx context.Context, t *testing.T, bin string) {
	type post struct {
		ctype string
		body  []byte
	}
	posts := make(chan post, 10)
	var fail atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method != http.MethodPost {
			http.Error(w, "want POST", http.StatusMethodNotAllowed)
			return
		}
		posts <- post{r.Header.Get("Content-Type"), b}
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	c, err := hooks.Launch(bin, hooks.LaunchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if _, err := c.Configure(ctx, nil); err == nil || err.Error() != "configure: option url: is required (url=http://...)" {
		t.Errorf("webhook without url: %v", err)
	}
	if _, err := c.Configure(ctx, map[string][]string{"url": {srv.URL}, "events": {"exited,gave-up"}}); err != nil {
		t.Fatal(err)
	}
	in, err := c.Info(ctx)
	if err != nil || !in.Notify || in.Veto || !slices.Equal(in.Events, []hooks.Kind{hooks.Exited, hooks.GaveUp}) {
		t.Fatalf("webhook: Info = %+v, %v; want a Notifier of exited and gave-up", in, err)
	}
	ev := hooks.Event{Kind: hooks.Exited, Instance: "web", Program: "/usr/sbin/lighttpd", Args: []string{"-D"},
		PID: 4242, Time: time.Date(2026, 3, 1, 12, 30, 5, 0, time.UTC), Signal: "SIGKILL", Uptime: 90 * time.Second, Limit: 5}
	if err := c.Notify(ctx, ev); err != nil {
		t.Fatal(err)
	}
	p := <-posts
	want, _ := json.Marshal(ev)
	if p.ctype != "application/json" || string(p.body) != string(want) {
		t.Errorf("posted %s %s\nwant application/json %s", p.ctype, p.body, want)
	}
	fail.Store(true)
	err = c.Notify(ctx, ev)
	var pe *hooks.PluginError
	if !errors.As(err, &pe) || pe.Message != "POST "+srv.URL+": 503 Service Unavailable" {
		t.Errorf("a receiver that answers 503: %v", err)
	}
}

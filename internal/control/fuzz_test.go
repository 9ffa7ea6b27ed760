package control

import (
	"strings"
	"testing"
)

// FuzzParseRequest: any line from a client is either exactly one known
// request (surrounding space aside) or an error of bounded length, and a
// parsed request is written back (Request.String) to the line it came from,
// which parses again to itself.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{"status", "stop", "restart", "signal 1", "signal 15 group", "signal 64", "signal 65",
		"signal 0", "signal 01", "signal +1", "signal -1", "signal  1", "signal 1  group", "signal 1 grou", "signal HUP",
		"status\n", " stop \r\n", "", "STATUS", "stat", "stop now", strings.Repeat("x", 4096), "\x00status", "status\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		req, err := ParseRequest(line)
		if err != nil {
			if req != (Request{}) {
				t.Fatalf("ParseRequest(%q) = %+v and an error", line, req)
			}
			// "unknown request " and at most 32 bytes, quoted (4 each at worst), "...".
			if n := len(err.Error()); n > 160 {
				t.Fatalf("error of %d bytes for %q: replies must stay bounded", n, line)
			}
			return
		}
		switch req.Kind {
		case ReqStatus, ReqStop, ReqRestart:
			if req.Sig != 0 || req.Group {
				t.Fatalf("ParseRequest(%q) = %+v: a signal on a word", line, req)
			}
		case ReqSignal:
			if req.Sig < 1 || req.Sig > 64 {
				t.Fatalf("ParseRequest(%q) = %+v: signal out of range", line, req)
			}
		default:
			t.Fatalf("ParseRequest(%q) = %+v, not a known request", line, req)
		}
		if strings.TrimSpace(line) != req.String() {
			t.Fatalf("ParseRequest(%q) = %+v: accepted more than %q", line, req, req.String())
		}
		if again, err := ParseRequest(req.String() + "\n"); err != nil || again != req {
			t.Fatalf("round trip of %+v: %+v, %v", req, again, err)
		}
	})
}

// FuzzParseState: the state file parser never panics, accepts only a pid
// above 1 and a process group above 0, and what it accepts is written back
// (State.String) to something that parses to the same state.
func FuzzParseState(f *testing.F) {
	for _, s := range []string{"4242 123456 4242\n", "4242 123456 4242", "4242 123456 4242\n99\n", "1 5 1\n", "0 0 0\n",
		"-5 1 2\n", "+5 1 2\n", "5  1 2\n", "5 1\n", "5 1 2 3\n", "99999999999 1 2\n", "5 18446744073709551615 2\n",
		"5 18446744073709551616 2\n", "", "\n", "garbage", " 5 1 2\n", "5 1 2 \n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			if s != (State{}) {
				t.Fatalf("ParseState(%q) = %+v and an error", b, s)
			}
			return
		}
		if s.PID <= 1 || s.PGID <= 0 {
			t.Fatalf("ParseState(%q) accepted pid %d, pgid %d", b, s.PID, s.PGID)
		}
		again, err := ParseState([]byte(s.String()))
		if err != nil || again != s {
			t.Fatalf("round trip of %+v: %+v, %v", s, again, err)
		}
	})
}

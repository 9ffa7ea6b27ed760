package pluginproc

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, msg string }{
		{`{"@level":"info","@message":5,"@timestamp":"2026-01-02T15:04:05.000000Z"}`, MsgMalformed},
		{`{"@level":3,"@message":"x"}`, MsgMalformed},
		{`{"@message":null}`, MsgMalformed},
		{`{"@message":"x","@timestamp":1}`, MsgMalformed},
		{` {"@message":{"a":1}}`, MsgMalformed},
		{`{"@message":"fine","@level":"warn","k":5}`, ""},
		{`{"@message":"a","@message":5}`, MsgMalformed}, // the last one counts, as for go-plugin
		{`{not json`, ""},
		{`plain text`, ""},
		{`null`, ""},
	} {
		out := Sanitize([]byte(tc.in), false)
		if tc.msg == "" {
			if string(out) != tc.in {
				t.Errorf("%s: changed to %s", tc.in, out)
			}
			continue
		}
		var m map[string]string
		if err := json.Unmarshal(out, &m); err != nil || m["@message"] != tc.msg || m["line"] != tc.in || m["@level"] != "warn" {
			t.Errorf("%s: %s (%v)", tc.in, out, err)
		}
	}
}

// Lines are cut at MaxLogLine on a UTF-8 boundary, the rest of the line is
// dropped, and the next line is whole.
func TestLineReaderBounds(t *testing.T) {
	long := strings.Repeat("é", MaxLogLine) // 2 bytes each: the cut falls inside one at some offset
	in := "short\n" + "x" + long + "\n" + `{"@message":"` + long + `"}` + "\n" + "last"
	b, err := io.ReadAll(NewLineReader(io.NopCloser(strings.NewReader(in))))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != 4 || lines[0] != "short" || lines[3] != "last" {
		t.Fatalf("lines %q", lines)
	}
	if !strings.HasSuffix(lines[1], " [cut]") || len(lines[1]) > MaxLogLine+len(" [cut]") || !utf8.ValidString(lines[1]) {
		t.Errorf("cut text line: %d bytes, valid %v, ends %q", len(lines[1]), utf8.ValidString(lines[1]), lines[1][len(lines[1])-10:])
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(lines[2]), &m); err != nil || m["@message"] != MsgCut || !strings.HasPrefix(m["line"], `{"@message":"éé`) || len(m["line"]) > MaxLogLine {
		t.Errorf("cut JSON line: %.200s (%v)", lines[2], err)
	}
	if !bytes.Equal([]byte(lines[2]), bytes.ToValidUTF8([]byte(lines[2]), nil)) {
		t.Error("cut JSON line is not valid UTF-8")
	}
}

// FuzzSanitize feeds plugin stderr to the line reader and go-plugin's own
// parsing of each line it hands on: nothing may panic, and every line is
// bounded.
func FuzzSanitize(f *testing.F) {
	for _, s := range []string{
		`{"@level":"info","@message":5,"@timestamp":"2026-01-02T15:04:05.000000Z"}`,
		`{"@level":3}`, `{"@message":null}`, `{"@timestamp":[1]}`, `{"@message":"ok","k":{"a":[1,2]}}`,
		"plain\nlines\n", "\xff\xfe{", `{"@message":"a","@message":5}`, "[INFO] x\n{\"@level\":true}\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		b, err := io.ReadAll(NewLineReader(io.NopCloser(strings.NewReader(in))))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if len(line) > MaxLogLine+len(" [cut]") && !strings.Contains(line, MsgCut) {
				t.Fatalf("line of %d bytes", len(line))
			}
			goPluginParse([]byte(line))
		}
	})
}

// goPluginParse is go-plugin v1.8.0's parseJSON (log_entry.go), whose type
// assertions panicked on plugin lines before Sanitize.
func goPluginParse(input []byte) {
	var raw map[string]any
	if json.Unmarshal(input, &raw) != nil {
		return
	}
	if v, ok := raw["@message"]; ok {
		_ = v.(string)
	}
	if v, ok := raw["@level"]; ok {
		_ = v.(string)
	}
	if v, ok := raw["@timestamp"]; ok {
		_ = v.(string)
	}
}

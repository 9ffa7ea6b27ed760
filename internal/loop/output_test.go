package loop

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// splitAll feeds chunks to an output and returns the lines it emits, with
// what is left at the end as a last line.
func splitAll(chunks ...string) []string {
	var o output
	var got []string
	emit := func(b []byte) { got = append(got, string(b)) }
	for _, c := range chunks {
		o.split([]byte(c), emit)
	}
	o.flushPartial(emit)
	return got
}

func TestOutputSplitsLongLinesWithoutLoss(t *testing.T) {
	long := strings.Repeat("a", maxLine) + strings.Repeat("b", maxLine) + "ccc"
	for _, tc := range []struct {
		name   string
		chunks []string
		want   []string
	}{
		{"short lines", []string{"one\ntwo\n"}, []string{"one", "two"}},
		{"a line across reads", []string{"on", "e\ntw", "o\n"}, []string{"one", "two"}},
		{"CRLF", []string{"dos\r\n"}, []string{"dos"}},
		{"a long line that arrives whole", []string{long + "\n"}, []string{strings.Repeat("a", maxLine), strings.Repeat("b", maxLine), "ccc"}},
		{"a long line in pieces", []string{long[:5000], long[5000:] + "\n"}, []string{strings.Repeat("a", maxLine), strings.Repeat("b", maxLine), "ccc"}},
		{"a long line without newline", []string{long}, []string{strings.Repeat("a", maxLine), strings.Repeat("b", maxLine), "ccc"}},
		{"exactly maxLine", []string{strings.Repeat("x", maxLine) + "\nnext\n"}, []string{strings.Repeat("x", maxLine), "next"}},
		{"exactly maxLine, its newline in the next read", []string{strings.Repeat("x", maxLine), "\nnext\n"}, []string{strings.Repeat("x", maxLine), "next"}},
		{"no newline at the end", []string{"last words"}, []string{"last words"}},
	} {
		got := splitAll(tc.chunks...)
		if strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: got %d lines %.80q, want %d %.80q", tc.name, len(got), got, len(tc.want), tc.want)
		}
	}
}

func TestOutputTailKeepsTheLastLines(t *testing.T) {
	var o output
	for i := range 25 {
		o.split([]byte(strings.Repeat("x", i)+"\n"), func([]byte) {})
	}
	lines := strings.Split(o.tailText(), "\n")
	if len(lines) != outputTail || len(lines[0]) != 25-outputTail || len(lines[outputTail-1]) != 24 {
		t.Fatalf("tail %q", lines)
	}
}

// FuzzOutputSplit: whatever a program writes, in whatever pieces the reads
// return it, the lines emitted put back together are exactly what it wrote
// (bar carriage returns before newlines), and none is longer than maxLine.
func FuzzOutputSplit(f *testing.F) {
	f.Add([]byte("hello\nworld\n"), uint16(3))
	f.Add(bytes.Repeat([]byte("y\n"), 3000), uint16(4096))
	f.Add(bytes.Repeat([]byte("z"), 3*maxLine+7), uint16(1000))
	f.Add([]byte("a\r\nb\rc\n\n\n"), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		step := int(cut)%8192 + 1
		var o output
		var b bytes.Buffer
		emit := func(l []byte) {
			if len(l) > maxLine {
				t.Fatalf("a line of %d bytes", len(l))
			}
			b.Write(l)
		}
		for i := 0; i < len(data); i += step {
			o.split(data[min(i, len(data)):min(i+step, len(data))], emit)
		}
		o.flushPartial(emit)
		got := b.Bytes()
		// A CR right before a newline is dropped; compare without those.
		norm := bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
		want := bytes.ReplaceAll(norm, []byte("\n"), nil)
		if !bytes.Equal(got, want) {
			t.Fatalf("lines put together differ from the input: %d bytes vs %d", len(got), len(want))
		}
	})
}

// TestRecentBounds: an event carries the last recentLines lines of both
// pipes, fewer when they would pass recentBytes, oldest first, and valid
// UTF-8 whatever the program wrote.
func TestRecentBounds(t *testing.T) {
	var r recent
	if r.text() != nil {
		t.Fatal("lines before any output")
	}
	for i := range 30 {
		r.add([]byte(fmt.Sprintf("line %d", i)))
	}
	got := r.text()
	if len(got) != recentLines || got[0] != "line 10" || got[recentLines-1] != "line 29" {
		t.Fatalf("got %d lines %q", len(got), got)
	}
	big := strings.Repeat("b", 2000)
	r.add([]byte(big))
	r.add([]byte(big))
	r.add([]byte("\xff\xfeend"))
	got = r.text()
	size := 0
	for _, l := range got {
		size += len(l)
	}
	if len(got) != 3+(recentBytes-2*2000-len("\xff\xfeend"))/len("line 29") || got[len(got)-1] != "\uFFFDend" || size > recentBytes+4 {
		t.Fatalf("got %d lines, %d bytes: %.60q", len(got), size, got)
	}
	r.reset()
	if r.text() != nil {
		t.Fatal("lines after reset")
	}
}

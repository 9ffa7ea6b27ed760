package pluginproc

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"unicode/utf8"
)

// MaxLogLine bounds one line of a plugin's stderr. The rest of a longer line
// is dropped (the line says so), so a plugin cannot make the host hold or
// send an unbounded line: the host re-logs each line as JSON inside a packet
// to respawner, and escaping can make a line several times longer there.
const MaxLogLine = 4 << 10

// Messages of the lines that Sanitize rewrites. The plugin's line itself is
// in the field "line".
const (
	MsgMalformed = "plugin log line with a non-string @message, @level or @timestamp; logged raw"
	MsgCut       = "plugin log line too long; cut and logged raw"
)

// lineReader hands on a stream line by line, each through Sanitize.
type lineReader struct {
	src io.ReadCloser
	br  *bufio.Reader
	out []byte // the sanitised line not yet read
	err error  // the stream's end, once out is empty
}

// NewLineReader returns src read line by line through Sanitize: each line
// at most MaxLogLine bytes (cut on a UTF-8 boundary), ending in '\n'.
func NewLineReader(src io.ReadCloser) io.ReadCloser {
	return &lineReader{src: src, br: bufio.NewReaderSize(src, MaxLogLine)}
}

func (r *lineReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		r.next()
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

func (r *lineReader) Close() error { return r.src.Close() }

// next reads one line, or its first MaxLogLine bytes and drops the rest.
func (r *lineReader) next() {
	line, err := r.br.ReadSlice('\n')
	cut := false
	if err == bufio.ErrBufferFull {
		cut = true
		line = append([]byte(nil), line...) // ReadSlice's buffer is reused below
		for err == bufio.ErrBufferFull {
			_, err = r.br.ReadSlice('\n')
		}
	}
	if err != nil {
		r.err = err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	if len(line) == 0 && !cut {
		if err == nil {
			r.out = append(r.out[:0], '\n')
		}
		return
	}
	r.out = append(Sanitize(line, cut), '\n')
}

// Sanitize returns a plugin's stderr line as go-plugin may safely parse it:
//
//   - a cut line (cut: it was longer than MaxLogLine) that is JSON becomes a
//     warning whose field "line" holds what was kept; cut plain text is
//     kept with " [cut]" at its end;
//   - a JSON object whose "@message", "@level" or "@timestamp" is not a
//     string (go-plugin asserts they are, and panics: "interface
//     conversion: interface {} is float64, not string") becomes a warning
//     whose field "line" holds the line as written;
//   - anything else is returned as it is.
func Sanitize(line []byte, cut bool) []byte {
	trimmed := bytes.TrimLeft(line, " \t\r")
	isJSON := len(trimmed) > 0 && trimmed[0] == '{'
	if cut {
		line = validPrefix(line)
		if !isJSON {
			return append(line, " [cut]"...)
		}
		return rewrite(MsgCut, line)
	}
	if !isJSON {
		return line
	}
	var raw map[string]any
	if json.Unmarshal(line, &raw) != nil {
		return line // go-plugin fails to parse it too, and logs it as text
	}
	for _, k := range []string{"@message", "@level", "@timestamp"} {
		if v, ok := raw[k]; ok {
			if _, isString := v.(string); !isString {
				return rewrite(MsgMalformed, line)
			}
		}
	}
	return line
}

// rewrite is a warning from the plugin's logger carrying line as a field.
func rewrite(msg string, line []byte) []byte {
	b, err := json.Marshal(map[string]string{"@level": "warn", "@message": msg, "line": string(line)})
	if err != nil {
		return []byte(msg)
	}
	return b
}

// validPrefix drops an incomplete UTF-8 sequence at the end of b.
func validPrefix(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			return b
		}
	}
	return b
}

package runenv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// EnvFile is one --env-file: a file of KEY=VALUE lines in systemd's
// EnvironmentFile= syntax, read again at every start of the program.
type EnvFile struct {
	Path string
	// Optional: the file was given as -PATH, and a missing file is no
	// error (as systemd's "-" prefix).
	Optional bool
}

// ParseEnvFileFlag reads an --env-file value: PATH, or -PATH for a file that
// may be missing. The path is made absolute, since it is read again at each
// start.
func ParseEnvFileFlag(s string) (EnvFile, error) {
	f := EnvFile{Path: s}
	if p, ok := strings.CutPrefix(s, "-"); ok {
		f = EnvFile{Path: p, Optional: true}
	}
	if f.Path == "" {
		return f, errors.New("empty path")
	}
	abs, err := filepath.Abs(f.Path) // Clean for an absolute path
	if err != nil {
		return f, err
	}
	f.Path = abs
	return f, nil
}

// String is the flag's form: the path, with "-" in front when optional.
func (f EnvFile) String() string {
	if f.Optional {
		return "-" + f.Path
	}
	return f.Path
}

// MaxEnvFileSize bounds an environment file: it is read on the supervision
// loop at every start, and the whole environment of a program must fit in
// the kernel's argument space (ARG_MAX, 2 MiB with the default stack limit)
// anyway.
const MaxEnvFileSize = 1 << 20

// Read reads and parses the file. A missing optional file yields nothing
// and no error. Only a regular file is read: a FIFO or a device named by
// mistake (/dev/zero) would stall the loop that reads it.
func (f EnvFile) Read() ([]string, error) {
	fd, err := unix.Open(f.Path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if f.Optional && (err == unix.ENOENT || err == unix.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("env file %s: %w", f.Path, err)
	}
	file := os.NewFile(uintptr(fd), f.Path)
	defer file.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("env file %s: %w", f.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("env file %s is not a regular file", f.Path)
	}
	if st.Size > MaxEnvFileSize {
		return nil, fmt.Errorf("env file %s is larger than %d bytes", f.Path, MaxEnvFileSize)
	}
	data, err := io.ReadAll(io.LimitReader(file, MaxEnvFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("env file %s: %w", f.Path, err)
	}
	if len(data) > MaxEnvFileSize {
		return nil, fmt.Errorf("env file %s is larger than %d bytes", f.Path, MaxEnvFileSize)
	}
	return ParseEnv(data, f.Path)
}

// ParseEnv parses the content of an environment file (name is for errors)
// into KEY=VALUE strings, in the order of the file; a later assignment of a
// key overrides an earlier one when they are merged.
//
// The syntax is systemd's EnvironmentFile= (systemd.exec(5)), read the way
// systemd's own parser reads it:
//
//   - blank lines are skipped; a line whose first non-blank character is #
//     or ; is a comment (a backslash at its end does not continue it);
//   - KEY=VALUE, with blanks around KEY and around an unquoted VALUE
//     dropped; KEY= sets the empty string; an "export " before KEY is
//     dropped, so that a file written for the shell reads the same;
//   - unquoted, a backslash keeps the next character as it is ("\\" is one
//     backslash, "\#" a #) and a backslash at the end of the line joins the
//     next line; quotes after the first character are kept as they are;
//   - 'single quotes' keep everything up to the next single quote,
//     newlines included, with no escapes;
//   - "double quotes" may span lines; a backslash before one of " \ ` $
//     gives that character, before a newline joins the lines, before
//     anything else is kept with the character;
//   - quoted and unquoted parts next to each other are joined, and blanks
//     between them dropped: A="x" 'y'z is "xyz";
//   - a # after the value is part of it (comments are whole lines), and no
//     $VARIABLE is expanded, as in systemd.
//
// Where systemd logs and skips what it cannot read, ParseEnv fails with the
// file and line, so that a typo never silently drops a variable: a line
// without =, a name that is not [A-Za-z_][A-Za-z0-9_]*, a quote left open at
// the end of the file, invalid UTF-8 or a NUL byte.
func ParseEnv(data []byte, name string) ([]string, error) {
	p := envParser{data: data, name: name, line: 1}
	return p.parse()
}

type envParser struct {
	data []byte
	i    int
	name string
	line int
	out  []string
}

func (p *envParser) errorf(line int, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s", p.name, line, fmt.Sprintf(format, args...))
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// isEOL: systemd takes \r as the end of a line too (a file written on
// Windows reads the same); a line number counts \n only.
func isEOL(c byte) bool { return c == '\n' || c == '\r' }

func (p *envParser) peek() (byte, bool) {
	if p.i >= len(p.data) {
		return 0, false
	}
	return p.data[p.i], true
}

// next takes one byte, counting lines.
func (p *envParser) next() byte {
	c := p.data[p.i]
	p.i++
	if c == '\n' {
		p.line++
	}
	return c
}

func (p *envParser) parse() ([]string, error) {
	if i := bytes.IndexByte(p.data, 0); i >= 0 {
		return nil, p.errorf(1+bytes.Count(p.data[:i], []byte{'\n'}), "NUL byte")
	}
	for {
		// Before a key: blanks and empty lines.
		c, ok := p.peek()
		if !ok {
			return p.out, nil
		}
		if isBlank(c) || isEOL(c) {
			p.next()
			continue
		}
		if c == '#' || c == ';' {
			p.skipLine()
			continue
		}
		if err := p.assignment(); err != nil {
			return nil, err
		}
	}
}

func (p *envParser) skipLine() {
	for {
		c, ok := p.peek()
		if !ok {
			return
		}
		p.next()
		if isEOL(c) {
			return
		}
	}
}

// assignment reads KEY=VALUE from the first character of KEY to the end of
// the value.
func (p *envParser) assignment() error {
	line := p.line
	start := p.i
	for {
		c, ok := p.peek()
		if !ok || isEOL(c) {
			key := strings.TrimRight(string(p.data[start:p.i]), " \t")
			return p.errorf(line, "%q is not KEY=VALUE", key)
		}
		p.next()
		if c == '=' {
			break
		}
	}
	key := strings.TrimRight(string(p.data[start:p.i-1]), " \t")
	if rest, ok := strings.CutPrefix(key, "export"); ok && rest != "" && isBlank(rest[0]) {
		key = strings.TrimLeft(rest, " \t")
	}
	if key == "" {
		return p.errorf(line, "no variable name before =")
	}
	if !ValidEnvName(key) {
		return p.errorf(line, "invalid variable name %q (want letters, digits and _, not starting with a digit)", key)
	}
	val, err := p.value(line)
	if err != nil {
		return err
	}
	if !utf8.ValidString(val) {
		return p.errorf(line, "invalid UTF-8 in the value of %s", key)
	}
	p.out = append(p.out, key+"="+val)
	return nil
}

// value reads from after = to the end of the assignment's (last) line.
func (p *envParser) value(line int) (string, error) {
	var b strings.Builder
	// keep is the length of b up to its last character that is not a
	// trailing blank of an unquoted part: trailing blanks are dropped.
	keep := 0
	unquoted := false // inside an unquoted part (blanks are kept, except at the end)
	for {
		c, ok := p.peek()
		if !ok {
			return b.String()[:keep], nil
		}
		switch {
		case isEOL(c):
			p.next()
			return b.String()[:keep], nil
		case isBlank(c) && !unquoted:
			p.next() // before the value, or between quoted parts
		case c == '\'' && !unquoted:
			p.next()
			open := p.line
			for {
				c, ok := p.peek()
				if !ok {
					return "", p.errorf(open, "single quote not closed")
				}
				p.next()
				if c == '\'' {
					break
				}
				b.WriteByte(c)
			}
			keep, unquoted = b.Len(), false
		case c == '"' && !unquoted:
			p.next()
			open := p.line
			for {
				c, ok := p.peek()
				if !ok {
					return "", p.errorf(open, "double quote not closed")
				}
				p.next()
				if c == '"' {
					break
				}
				if c != '\\' {
					b.WriteByte(c)
					continue
				}
				e, ok := p.peek()
				if !ok {
					return "", p.errorf(open, "double quote not closed")
				}
				p.next()
				switch e {
				case '"', '\\', '`', '$':
					b.WriteByte(e)
				case '\n':
					// a continuation: the newline goes
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			}
			keep, unquoted = b.Len(), false
		case c == '\\':
			p.next()
			unquoted = true
			e, ok := p.peek()
			if !ok {
				keep = b.Len()
				return b.String()[:keep], nil
			}
			p.next()
			if !isEOL(e) {
				b.WriteByte(e) // kept as it is, a blank too
			}
			keep = b.Len()
		default:
			// Unquoted text, where a quote after the first character is
			// an ordinary character.
			p.next()
			unquoted = true
			b.WriteByte(c)
			if !isBlank(c) {
				keep = b.Len()
			}
		}
	}
}

// ValidEnvName reports whether s is a variable name respawner sets:
// letters, digits and underscores, not starting with a digit (systemd's
// rule, and the shell's).
func ValidEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

package main

import (
	"errors"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Hints for the command lines a newcomer gets wrong, so that the error says
// what to type instead. Two mistakes are common with start, and both come
// from the flags being parsed anywhere on the line (pflag's interspersed
// parsing) and -p taking an optional value:
//
//	respawner start lighttpd -f conf        the program's -f taken for respawner's
//	respawner start -p /run/x.pid lighttpd  the pidfile taken for PROGRAM
//
// The first fails with pflag's "unknown shorthand flag"; startFlagHint adds
// the line rebuilt with '--'. The second would fail on PROGRAM, with advice
// about PROGRAM (chmod +x of a pidfile); pidfileHint replaces it.

// pidfileHint is the usage error of a bare -p whose path went to PROGRAM:
// -p was given without a value, and PROGRAM looks like a pidfile (it ends in
// .pid, or it is no program and another argument follows it before any
// '--', the real PROGRAM). Nil when PROGRAM may well be meant as one.
func pidfileHint(pidfile, program string, more bool) error {
	if pidfile != autoPidfile || !looksLikePidfile(program, more) {
		return nil
	}
	return usageErrorf("-p takes its path with '=': -p=%s", program)
}

// looksLikePidfile reports whether arg, found where PROGRAM goes right after
// a bare -p, is more likely the pidfile's path; more says whether another
// argument follows it (which would be the program).
func looksLikePidfile(arg string, more bool) bool {
	if strings.HasSuffix(arg, ".pid") {
		return true
	}
	if !more {
		return false
	}
	_, err := resolveProgram(arg)
	return err != nil
}

// startFlagHint returns what to add to a flag error of start when the flag
// pflag does not know comes after PROGRAM, so belongs to the program: the
// line rebuilt with the program's arguments after '--' (respawner's own
// flags found between PROGRAM and the unknown one are moved before PROGRAM,
// where they meant what they were taken for; a bare -p whose path was taken
// for PROGRAM gets it with '='). raw is the whole command line after the
// binary's name. Empty when the unknown flag comes before PROGRAM: a
// misspelt flag of respawner's, which the error says.
func startFlagHint(c *cobra.Command, raw []string, err error) string {
	var ne *pflag.NotExistError
	if !errors.As(err, &ne) {
		return ""
	}
	i := 0
	for i < len(raw) && raw[i] != c.Name() {
		i++
	}
	if i == len(raw) {
		return ""
	}
	toks := raw[i+1:]
	var (
		flags    []string // respawner's flags and their values, in order
		program  = -1     // index in toks of PROGRAM
		rest     []string // arguments after PROGRAM, before the unknown flag
		barePidf = -1     // index in flags of a bare -p right before PROGRAM
		pidfixed bool
	)
	for j := 0; j < len(toks); j++ {
		tok := toks[j]
		if tok == "--" {
			return "" // pflag stops here: the unknown flag was before
		}
		if tok == "-" || !strings.HasPrefix(tok, "-") {
			switch {
			case program >= 0:
				rest = append(rest, tok)
			case barePidf >= 0 && looksLikePidfile(tok, hasPositional(c.Flags(), toks[j+1:])):
				flags[barePidf] += "=" + tok
				barePidf, pidfixed = -1, true
			default:
				program = j
			}
			continue
		}
		n, bare, known := flagSpan(c.Flags(), toks[j:])
		if !known {
			if program < 0 {
				return ""
			}
			line := append(strings.Fields(c.CommandPath()), flags...)
			line = append(append(line, toks[program], "--"), rest...)
			line = append(line, toks[j:]...)
			what := "program arguments go after '--'"
			if pidfixed {
				what = "-p takes its path with '=', and " + what
			}
			return what + ": " + shellJoin(line)
		}
		barePidf = -1
		if bare && program < 0 {
			barePidf = len(flags)
		}
		flags = append(flags, toks[j:j+n]...)
		j += n - 1
	}
	return ""
}

// flagSpan reads the flag that starts toks[0] as pflag would: n is the
// number of tokens it takes (2 when its value is the next one), bare that it
// ends with the pidfile flag given without a value, known false when a flag
// in it is unknown to fs.
func flagSpan(fs *pflag.FlagSet, toks []string) (n int, bare, known bool) {
	tok := toks[0]
	withNext := func(f *pflag.Flag) (int, bool, bool) {
		if f.NoOptDefVal != "" {
			return 1, f.Name == "pidfile", true
		}
		return min(2, len(toks)), false, true
	}
	if name, ok := strings.CutPrefix(tok, "--"); ok {
		name, _, hasValue := strings.Cut(name, "=")
		f := fs.Lookup(name)
		switch {
		case f == nil:
			return 1, false, false
		case hasValue:
			return 1, false, true
		}
		return withNext(f)
	}
	for k := 1; k < len(tok); k++ {
		f := fs.ShorthandLookup(tok[k : k+1])
		switch {
		case f == nil:
			return 1, false, false
		case k+1 < len(tok) && tok[k+1] == '=':
			return 1, false, true
		case f.NoOptDefVal != "" && k+1 < len(tok):
			continue // -Dp: the next letter is another flag
		case f.NoOptDefVal != "":
			return withNext(f)
		case k+1 < len(tok):
			return 1, false, true // -t5: the rest is the value
		}
		return withNext(f)
	}
	return 1, false, true
}

// hasPositional reports whether toks hold an argument that is no flag (nor a
// flag's value) before any '--'.
func hasPositional(fs *pflag.FlagSet, toks []string) bool {
	for j := 0; j < len(toks); j++ {
		tok := toks[j]
		switch {
		case tok == "--":
			return false
		case tok == "-" || !strings.HasPrefix(tok, "-"):
			return true
		}
		n, _, _ := flagSpan(fs, toks[j:])
		j += n - 1
	}
	return false
}

// shellJoin joins words into a line a POSIX shell reads back as them.
func shellJoin(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		if shellSafe(w) {
			q[i] = w
		} else {
			q[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

// shellSafe reports whether a shell takes w as it is, unquoted.
func shellSafe(w string) bool {
	if w == "" {
		return false
	}
	for _, r := range w {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_@%+=:,./-", r)) {
			return false
		}
	}
	return true
}

package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/respawner/respawner/pkg/hookspec"
	"github.com/respawner/respawner/plugins/internal/notify"
)

// subjectPrefix starts every subject, for filters and for eyes.
const subjectPrefix = "[respawner] "

// maxSubject bounds a subject in runes; what is cut is in the body.
const maxSubject = 200

// maxLine bounds an output line in runes; SMTP allows 998 octets a line,
// and quoted-printable breaks longer ones, but a mail is read by people.
const maxLine = 500

// timeLayout is how times are written: the local time of the host the
// plugin runs on, with its zone, as Digest.Summary's "since 10:42" is.
const timeLayout = "2006-01-02 15:04:05 MST"

// subject is one line: "[respawner] web on host1: killed by SIGKILL after
// 1m30s (restart 3 of 5)", or for a digest "[respawner] web on host1: 49
// more exits since 10:42, last: killed by SIGSEGV after 2s".
func subject(m notify.Message, host string) string {
	ev := m.Event
	var b strings.Builder
	b.WriteString(subjectPrefix)
	b.WriteString(ev.Instance)
	if host != "" {
		b.WriteString(" on " + host)
	}
	b.WriteString(": ")
	b.WriteString(what(m))
	return truncate(oneLine(b.String()), maxSubject)
}

// what says what happened in a few words: the event, or the digest's summary.
func what(m notify.Message) string {
	ev := m.Event
	if d := m.Digest; d != nil {
		if len(d.Events) == 0 {
			return fmt.Sprintf("%d events lost: the notification queue was full", d.Dropped)
		}
		return strings.Replace(d.Summary(), " of "+ev.Instance+" since", " since", 1)
	}
	s := notify.Describe(ev)
	if r := notify.Restart(ev); r != "" && ev.Kind != hookspec.Restarting && ev.Kind != hookspec.RestartPending {
		s += " (" + r + ")"
	}
	return s
}

// body is the text of the mail: what happened in a sentence, the facts of
// the event (for a digest: the events gathered, then the facts of the
// last), the program's last output lines, and a footer.
func body(m notify.Message, host, footer string) string {
	var b strings.Builder
	ev := m.Event
	lead := ev.Instance
	if host != "" {
		lead += " on " + host
	}
	fmt.Fprintf(&b, "%s: %s.\n\n", oneLine(lead), oneLine(what(m)))
	if d := m.Digest; d != nil {
		digest(&b, d)
	}
	if ev.Kind != "" {
		if m.Digest != nil {
			b.WriteString("The last one:\n\n")
		}
		facts(&b, ev, host)
	}
	out, from := lastOutput(m)
	if len(out) > 0 {
		fmt.Fprintf(&b, "\nLast output lines of %s", oneLine(ev.Instance))
		if from.PID != 0 {
			fmt.Fprintf(&b, " (pid %d)", from.PID)
		}
		b.WriteString(", oldest first:\n\n")
		for _, l := range out {
			b.WriteString("    " + truncate(printable(l), maxLine) + "\n")
		}
	}
	b.WriteString("\n-- \n")
	b.WriteString(footer)
	return b.String()
}

// digest writes what a digest gathered: when, how many of each kind,
// what was lost, and the last events, one a line.
func digest(b *strings.Builder, d *notify.Digest) {
	if d.Count > 0 {
		fmt.Fprintf(b, "%s between %s and %s: %s.\n", count(d.Count, "event"), clock(d.First), clock(d.Last), d.KindList())
	}
	if d.Dropped > 0 {
		fmt.Fprintf(b, "Also lost to a full notification queue: %s.\n", count(d.Dropped, "event"))
	}
	if len(d.Events) == 0 {
		b.WriteString("\n")
		return
	}
	if len(d.Events) < d.Count {
		fmt.Fprintf(b, "\nThe last %d, oldest first:\n\n", len(d.Events))
	} else {
		b.WriteString("\nOldest first:\n\n")
	}
	for _, ev := range d.Events {
		fmt.Fprintf(b, "    %s  %-10s %s\n", ev.Time.Local().Format("15:04:05"), ev.Kind, oneLine(notify.Describe(ev)))
	}
	b.WriteString("\n")
}

// facts writes the event's facts as a table, one a line, leaving out those
// that do not apply.
func facts(b *strings.Builder, ev hookspec.Event, host string) {
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(b, "  %-10s %s\n", k+":", oneLine(v))
		}
	}
	row("Instance", ev.Instance)
	row("Host", host)
	row("Program", command(ev.Program, ev.Args))
	row("Event", string(ev.Kind))
	if ev.Kind == hookspec.Exited {
		exit := fmt.Sprintf("exit code %d", ev.ExitCode)
		if ev.Signal != "" {
			exit = "killed by signal " + ev.Signal
		}
		if ev.Clean {
			exit += " (counted as clean)"
		}
		row("Exit", exit)
	}
	if ev.Uptime > 0 {
		row("Uptime", ev.Uptime.Round(time.Millisecond).String())
	}
	if r := notify.Restart(ev); r != "" {
		row("Restart", strings.TrimPrefix(r, "restart "))
	} else if ev.Limit > 0 {
		row("Limit", fmt.Sprintf("%d restarts", ev.Limit))
	}
	if ev.PID != 0 {
		row("PID", strconv.Itoa(ev.PID))
	}
	row("Reason", ev.Reason)
	if !ev.Time.IsZero() {
		row("Time", ev.Time.Local().Format(timeLayout))
	}
}

// footer says who sent the mail and how mails are coalesced.
func (s *sender) footer(host string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "respawner-plugin-notify-email %s on %s, mailing %s.\n", s.version, host, s.cfg.Events.String())
	if s.cfg.Window > 0 {
		fmt.Fprintf(&b, "Events within %s of a mail are gathered into one digest; gave-up and held are mailed at once.\n", s.cfg.Window)
	} else {
		b.WriteString("Every event is mailed on its own (window=0).\n")
	}
	return b.String()
}

// lastOutput is the output lines to show: the event's, or in a digest
// those of the latest event that has some.
func lastOutput(m notify.Message) ([]string, hookspec.Event) {
	if len(m.Event.Output) > 0 {
		return m.Event.Output, m.Event
	}
	if m.Digest != nil {
		for i := len(m.Digest.Events) - 1; i >= 0; i-- {
			if ev := m.Digest.Events[i]; len(ev.Output) > 0 {
				return ev.Output, ev
			}
		}
	}
	return nil, hookspec.Event{}
}

// command writes a program and its arguments as a shell would read them
// back, quoting what needs it.
func command(program string, args []string) string {
	if program == "" {
		return ""
	}
	parts := []string{quote(program)}
	for _, a := range args {
		parts = append(parts, quote(a))
	}
	return strings.Join(parts, " ")
}

func quote(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune("-_./=:,+@%", r)))
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// count is "1 event", "2 events".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// clock is a time of day with seconds, or "?" for none.
func clock(t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	return t.Local().Format("15:04:05")
}

// printable makes an output line safe to show: valid UTF-8, control
// characters (escape sequences, a carriage return) shown as U+FFFD, tabs kept.
func printable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if r != '\t' && unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, s)
}

// oneLine makes s fit in a header or a table row: no line breaks or other
// control characters, which could also inject headers.
func oneLine(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// truncate cuts s to n runes, marking the cut with an ellipsis.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

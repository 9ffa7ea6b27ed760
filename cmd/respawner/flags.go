package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/respawner/respawner/internal/machine"
	"github.com/respawner/respawner/pkg/hookspec"
)

// durationValue is a pflag.Value for delays, read by hookspec.ParseDuration
// as every duration respawner takes: a bare decimal means seconds ("5" = 5s,
// as the original respawner's -t took seconds; "0.5" = 500ms), anything else
// is a Go duration ("200ms", "1m30s"). Negative values are refused.
type durationValue time.Duration

func (d *durationValue) Set(s string) error {
	v, err := hookspec.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

// String is "0" for zero, so that --help does not print "(default 0s)" for
// flags whose zero means "off" or "same as -t".
func (d *durationValue) String() string {
	if *d == 0 {
		return "0"
	}
	return time.Duration(*d).String()
}
func (d *durationValue) Type() string { return "duration" }

// codeListValue is a pflag.Value for -e: comma-separated exit codes 0-255.
type codeListValue struct {
	set  machine.CodeSet
	text string
}

func (c *codeListValue) Set(s string) error {
	var set machine.CodeSet
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("%q is not an exit code (want numbers 0-255, comma-separated, e.g. 0,7)", f)
		}
		set.Add(n)
	}
	c.set, c.text = set, s
	return nil
}

func (c *codeListValue) String() string { return c.text }
func (c *codeListValue) Type() string   { return "list" }

// policyValue is a pflag.Value for --restart.
type policyValue machine.Policy

func (p *policyValue) Set(s string) error {
	v, err := machine.ParsePolicy(s)
	if err != nil {
		return errors.New("want on-failure, always or never")
	}
	*p = policyValue(v)
	return nil
}

func (p *policyValue) String() string { return machine.Policy(*p).String() }
func (p *policyValue) Type() string   { return "policy" }

// choiceValue is a pflag.Value that accepts one of a fixed set of words.
type choiceValue struct {
	val     string
	choices []string
}

func (c *choiceValue) Set(s string) error {
	for _, ch := range c.choices {
		if s == ch {
			c.val = s
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(c.choices, ", "))
}

func (c *choiceValue) String() string { return c.val }
func (c *choiceValue) Type() string   { return "string" }

// dirValue is a pflag.Value for a directory, made absolute when the flag is
// parsed: `--plugin-dir .` names the directory respawner was started in,
// whatever a later step takes "." to be, and shows as a full path.
type dirValue string

func (d *dirValue) Set(s string) error {
	if s == "" {
		*d = ""
		return nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return err
	}
	*d = dirValue(abs)
	return nil
}

func (d *dirValue) String() string { return string(*d) }
func (d *dirValue) Type() string   { return "dir" }

// signalValue is a signal flag: HUP, SIGHUP, hup or 1.
type signalValue syscall.Signal

func (s *signalValue) Set(v string) error {
	sig, err := machine.ParseSignal(v)
	if err != nil {
		return err
	}
	*s = signalValue(sig)
	return nil
}

func (s *signalValue) String() string {
	return strings.TrimPrefix(machine.SignalName(syscall.Signal(*s)), "SIG")
}
func (s *signalValue) Type() string { return "signal" }

// sizeValue is a pflag.Value for a size in bytes: a number with an optional
// K, M or G suffix (powers of 1024, as --limit's), such as 10M or 512K.
type sizeValue int64

func (v *sizeValue) Set(s string) error {
	t := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(strings.TrimSpace(s)), "IB"), "B")
	mult := int64(1)
	if i := strings.IndexAny(t, "KMG"); i > 0 && i == len(t)-1 {
		mult = 1 << (10 * (1 + strings.IndexByte("KMG", t[i])))
		t = t[:i]
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("%q is not a size: want bytes with an optional K, M or G suffix, such as 10M", s)
	}
	*v = sizeValue(n * mult)
	return nil
}

// String is the size in the largest unit that divides it: 10M, 512K, 100.
func (v *sizeValue) String() string {
	n := int64(*v)
	for _, u := range []struct {
		suffix string
		shift  uint
	}{{"G", 30}, {"M", 20}, {"K", 10}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}
func (v *sizeValue) Type() string { return "size" }

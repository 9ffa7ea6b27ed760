package hookspec

import (
	"errors"
	"fmt"
	"strings"
)

// SplitSpec parses the argument of --plugin: NAME or NAME:key=value,key=value. A key may be repeated
// (header=A,header=B). A field without '=' continues the previous value, so
// lists read naturally: events=exited,gave-up is events="exited,gave-up".
// `\,` and `\\` stand for a comma and a backslash. NAME is made of letters,
// digits, '.', '_' and '-' and starts with a letter or digit, so that it
// cannot name a path outside the plugin directories. respawner reads
// --plugin with it; pkg/hooks exports it as ParseSpec for plugin tests.
func SplitSpec(spec string) (name string, opts map[string][]string, err error) {
	name, rest, _ := strings.Cut(spec, ":")
	if err := CheckName(name); err != nil {
		return "", nil, err
	}
	opts = map[string][]string{}
	var field strings.Builder
	var last string // the key the previous field set
	flush := func() error {
		f := field.String()
		field.Reset()
		if f == "" {
			return nil
		}
		k, v, ok := strings.Cut(f, "=")
		switch {
		case !ok && last == "":
			return fmt.Errorf("plugin %s: option %q has no value (key=value)", name, f)
		case !ok:
			vs := opts[last]
			vs[len(vs)-1] += "," + f
		case k == "":
			return fmt.Errorf("plugin %s: option %q has no name", name, f)
		default:
			opts[k] = append(opts[k], v)
			last = k
		}
		return nil
	}
	for i := 0; i < len(rest); i++ {
		switch c := rest[i]; {
		case c == '\\' && i+1 < len(rest) && (rest[i+1] == ',' || rest[i+1] == '\\'):
			i++
			field.WriteByte(rest[i])
		case c == ',':
			if err := flush(); err != nil {
				return "", nil, err
			}
		default:
			field.WriteByte(c)
		}
	}
	if err := flush(); err != nil {
		return "", nil, err
	}
	return name, opts, nil
}

// CheckName keeps plugin names to what makes a safe file name: letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func CheckName(name string) error {
	if name == "" {
		return errors.New("empty plugin name")
	}
	for i, r := range name {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || (r != '.' && r != '_' && r != '-')) {
			return fmt.Errorf("plugin name %q: only letters, digits, '.', '_' and '-', starting with a letter or digit", name)
		}
	}
	return nil
}

package runenv

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// Every case of systemd's EnvironmentFile= syntax (systemd.exec(5) and its
// parser, src/basic/env-file.c), and what respawner refuses.
func TestParseEnv(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"plain", "A=b\n", []string{"A=b"}},
		{"no final newline", "A=b", []string{"A=b"}},
		{"blanks around key and value", "  A = b  \n", []string{"A=b"}},
		{"tabs", "\tA\t=\tb\t\n", []string{"A=b"}},
		{"interior blanks kept", "A=b  c\td\n", []string{"A=b  c\td"}},
		{"blank lines", "\n\n  \nA=b\n\t\n\nC=d\n", []string{"A=b", "C=d"}},
		{"hash comment", "# A=x\nA=b\n", []string{"A=b"}},
		{"semicolon comment", "; A=x\nA=b\n", []string{"A=b"}},
		{"indented comment", "   # A=x\n\t; B=y\nA=b\n", []string{"A=b"}},
		{"comment ending in a backslash does not continue", "# c \\\nA=b\n", []string{"A=b"}},
		{"a # after the value is part of it", "A=b # c\n", []string{"A=b # c"}},
		{"export prefix", "export A=b\n", []string{"A=b"}},
		{"export prefix with blanks", "export \t B = c\n", []string{"B=c"}},
		{"export is a name too", "export=1\nexportC=d\nexport =2\n", []string{"export=1", "exportC=d", "export=2"}},
		{"empty value", "A=\n", []string{"A="}},
		{"empty value with blanks", "A=   \n", []string{"A="}},
		{"empty value at end of file", "A=", []string{"A="}},
		{"single quotes", "A='x y  z'\n", []string{"A=x y  z"}},
		{"single quotes keep backslashes", `A='a\nb\'` + "\n", []string{`A=a\nb\`}},
		{"single quotes span lines", "A='one\ntwo'\nB=c\n", []string{"A=one\ntwo", "B=c"}},
		{"single quotes keep double quotes and #", `A='"x" # y'` + "\n", []string{`A="x" # y`}},
		{"double quotes", `A="x y"` + "\n", []string{"A=x y"}},
		{"double quote escapes", `A="q\" b\\ d\$ t\` + "`" + `"` + "\n", []string{"A=q\" b\\ d$ t`"}},
		{"double quotes keep other escapes", `A="a\b\n"` + "\n", []string{`A=a\b\n`}},
		{"double quotes span lines", "A=\"one\ntwo\"\n", []string{"A=one\ntwo"}},
		{"double quote continuation", "A=\"one\\\ntwo\"\n", []string{"A=onetwo"}},
		{"blanks around quotes dropped", "A=  \"x\"  \n", []string{"A=x"}},
		{"quoted parts joined", `A="x" 'y'z` + "\n", []string{"A=xyz"}},
		{"quotes inside an unquoted value kept", `A=a"b"c 'd'` + "\n", []string{`A=a"b"c 'd'`}},
		{"apostrophe", "A=it's\n", []string{"A=it's"}},
		{"unquoted escapes", `A=a\ b\\c\#d\"e` + "\n", []string{`A=a b\c#d"e`}},
		{"escaped trailing blank kept", "A=trail\\ \n", []string{"A=trail "}},
		{"escaped blank then blank", "A=trail\\  \n", []string{"A=trail "}},
		{"escaped first character", "A=\\ x\n", []string{"A= x"}},
		{"line continuation", "A=one\\\ntwo\nB=c\n", []string{"A=onetwo", "B=c"}},
		{"backslash at end of file", "A=x\\", []string{"A=x"}},
		{"CRLF", "A=b\r\nB='c'\r\n", []string{"A=b", "B=c"}},
		{"later wins when merged", "A=1\nA=2\n", []string{"A=1", "A=2"}},
		{"equals in value", "A=b=c\n", []string{"A=b=c"}},
		{"no expansion", "A=$HOME ${B}\n", []string{"A=$HOME ${B}"}},
		{"UTF-8", "A=\u00e9t\u00e9 \u2603\n", []string{"A=\u00e9t\u00e9 \u2603"}},
		{"underscores and digits", "_A1=x\n", []string{"_A1=x"}},
		{"nothing", "", nil},
		{"only comments", "#x\n;y\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnv([]byte(tt.in), "f.env")
			if err != nil {
				t.Fatalf("ParseEnv(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseEnv(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseEnvErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"no equals", "A=1\n\nNOEQUALS\n", `f.env:3: "NOEQUALS" is not KEY=VALUE`},
		{"no equals at end of file", "A=1\nB", `f.env:2: "B" is not KEY=VALUE`},
		{"digit first", "1A=b\n", `f.env:1: invalid variable name "1A"`},
		{"blank in name", "A B=c\n", `f.env:1: invalid variable name "A B"`},
		{"dash in name", "A-B=c\n", `f.env:1: invalid variable name "A-B"`},
		{"quoted name", "\"A\"=c\n", `f.env:1: invalid variable name "\"A\""`},
		{"no name", "=x\n", "f.env:1: no variable name before ="},
		{"double quote open", "A=1\nB=\"open\nstill\n", "f.env:2: double quote not closed"},
		{"single quote open", "A='open", "f.env:1: single quote not closed"},
		{"escape at end in double quotes", "A=\"x\\", "f.env:1: double quote not closed"},
		{"invalid UTF-8", "A=1\nB=\xff\n", "f.env:2: invalid UTF-8 in the value of B"},
		{"NUL", "A=1\nB=x\x00y\n", "f.env:2: NUL byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEnv([]byte(tt.in), "f.env")
			if err == nil {
				t.Fatalf("ParseEnv(%q) = %q, want error %q", tt.in, got, tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("ParseEnv(%q): error %q, want %q", tt.in, err, tt.want)
			}
		})
	}
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"A=b\n", "export A='x'\n", "A=\"a\\\"b\"\n", "# c\n; d\nA=b\\\nc\n", "A=b c\r\n", "1=2", "A='"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		vars, err := ParseEnv(data, "fuzz")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		for _, kv := range vars {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !ValidEnvName(k) || !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
				t.Fatalf("ParseEnv(%q) gave %q", data, kv)
			}
		}
	})
}

func TestEnvFileRead(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "app.env")
	if err := os.WriteFile(p, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if vars, err := (EnvFile{Path: p}).Read(); err != nil || !reflect.DeepEqual(vars, []string{"A=1"}) {
		t.Fatalf("Read = %q, %v", vars, err)
	}
	missing := filepath.Join(dir, "missing.env")
	if _, err := (EnvFile{Path: missing}).Read(); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("a missing file: %v, want no such file", err)
	}
	if vars, err := (EnvFile{Path: missing, Optional: true}).Read(); err != nil || vars != nil {
		t.Fatalf("a missing optional file: %q, %v; want nothing", vars, err)
	}
	if _, err := (EnvFile{Path: dir, Optional: true}).Read(); err == nil {
		t.Fatal("a directory read as an env file")
	}
	if _, err := (EnvFile{Path: "/dev/zero"}).Read(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("/dev/zero: %v, want not a regular file", err)
	}
	big := filepath.Join(dir, "big.env")
	if err := os.WriteFile(big, []byte("A="+strings.Repeat("x", MaxEnvFileSize)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (EnvFile{Path: big}).Read(); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a file over the bound: %v", err)
	}
	f, err := ParseEnvFileFlag("-" + p)
	if err != nil || !f.Optional || f.Path != p || f.String() != "-"+p {
		t.Fatalf("ParseEnvFileFlag(-%s) = %+v, %v", p, f, err)
	}
	if _, err := ParseEnvFileFlag("-"); err == nil {
		t.Fatal("ParseEnvFileFlag(-) took an empty path")
	}
}

func TestEnviron(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "a.env")
	b := filepath.Join(dir, "b.env")
	os.WriteFile(a, []byte("A=file-a\nB=file-a\nX=1\n"), 0o600)
	os.WriteFile(b, []byte("B=file-b\nC=file-b\n"), 0o600)
	base := []string{"PATH=/bin", "A=base", "HOME=/root"}
	got, err := Environ(base, []EnvFile{{Path: a}, {Path: b}, {Path: filepath.Join(dir, "none"), Optional: true}}, []string{"C=set", "D=set"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"PATH=/bin", "A=file-a", "HOME=/root", "B=file-b", "X=1", "C=set", "D=set"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Environ = %q, want %q", got, want)
	}
	if !reflect.DeepEqual(base, []string{"PATH=/bin", "A=base", "HOME=/root"}) {
		t.Fatalf("Environ changed its base: %q", base)
	}
	if got, _ := Environ(base, nil, nil); &got[0] != &base[0] {
		t.Fatal("Environ copied the base with nothing to add")
	}
	if _, err := Environ(base, []EnvFile{{Path: filepath.Join(dir, "none")}}, nil); err == nil {
		t.Fatal("a missing file that is not optional was no error")
	}
	if got := Without([]string{"A=1", "NOTIFY_SOCKET=/x", "B=2", "LISTEN_PID=3"}, "NOTIFY_SOCKET", "LISTEN_PID"); !reflect.DeepEqual(got, []string{"A=1", "B=2"}) {
		t.Fatalf("Without = %q", got)
	}
}

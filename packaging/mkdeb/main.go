// Command mkdeb builds respawner's Debian package from what make has built:
// the binaries, completions and man pages in BIN, and the docs, examples and
// packaging files of the source tree. make deb runs it:
//
//	go run ./packaging/mkdeb -bin bin -version "$(git describe --tags --always --dirty)" \
//		-commits "$(git rev-list --count HEAD)" -date "$(git log -1 --format=%ct)" -out dist
//
// It lays the package out in a staging directory, writes DEBIAN/control,
// md5sums and the maintainer scripts, and hands the tree to dpkg-deb (part of
// dpkg, on every Debian system; the reference writer of the format). It uses
// the standard library alone. The layout is the table in files below.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Package is the package's name; maintainer who answers for it.
const (
	Package    = "respawner"
	maintainer = "respawner maintainers <maintainers@users.noreply.r-seed-6d427694.example>"
)

const description = `process supervisor with restarts, health checks and hook plugins
 respawner starts a program, watches it through a pidfd, and restarts it
 after a delay when it dies abnormally; it stops it cleanly, its whole
 process tree included. It follows servers that daemonize themselves, such
 as lighttpd, and answers status (also as JSON), stop, restart and signal
 requests over a unix socket per instance. Backoff, restart limits and
 windows, sd_notify readiness and watchdog, socket activation (--listen),
 the program's user, limits and environment are set on its command line.
 .
 Hook plugins, separate programs speaking gRPC, hear lifecycle events, may
 hold or delay restarts, and probe the program's health. This package has
 healthcheck-http (HTTP probes), notify-email and notify-webhook (alerts),
 the man pages, bash, zsh and fish completions, and respawner@.service, a
 systemd unit template that supervises one program per
 /etc/respawner/NAME.conf.`

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "bin", "directory of the built binaries, completion/ and man/")
	flag.StringVar(&o.src, "src", ".", "the source tree (docs, examples, packaging files)")
	flag.StringVar(&o.out, "out", "dist", "directory the .deb is written to")
	flag.StringVar(&o.describe, "version", "", "the version as git describe --tags --always --dirty prints it")
	flag.IntVar(&o.commits, "commits", 0, "number of commits (git rev-list --count HEAD), for a version without a tag")
	flag.StringVar(&o.arch, "arch", "amd64", "the Go architecture the binaries were built for")
	flag.Int64Var(&o.date, "date", 0, "the commit's time, Unix seconds: the changelog's date and every file's mtime")
	flag.Parse()
	path, err := build(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdeb: "+err.Error())
		os.Exit(1)
	}
	fmt.Println(path)
}

type options struct {
	bin, src, out, describe, arch string
	commits                       int
	date                          int64
}

// entry is one file of the package: its source (relative to the source
// tree, or to BIN when bin is set), where it goes, its mode and whether it
// is gzipped on the way (man pages, changelogs).
type entry struct {
	src  string
	bin  bool
	dst  string
	mode os.FileMode
	gz   bool
}

// Where things go. The host and the plugins stay out of PATH: respawner
// finds the host in ../lib/respawner from its own directory, and the
// plugins in /usr/lib/respawner/plugins, its default search path.
func files(o options) ([]entry, error) {
	es := []entry{
		{src: "respawner", bin: true, dst: "usr/bin/respawner", mode: 0o755},
		{src: "respawner-hookhost", bin: true, dst: "usr/lib/respawner/respawner-hookhost", mode: 0o755},
		{src: "completion/respawner.bash", bin: true, dst: "usr/share/bash-completion/completions/respawner", mode: 0o644},
		{src: "completion/_respawner", bin: true, dst: "usr/share/zsh/vendor-completions/_respawner", mode: 0o644},
		{src: "completion/respawner.fish", bin: true, dst: "usr/share/fish/vendor_completions.d/respawner.fish", mode: 0o644},
		{src: "packaging/respawner@.service", dst: "usr/lib/systemd/system/respawner@.service", mode: 0o644},
		{src: "packaging/lintian-overrides", dst: "usr/share/lintian/overrides/respawner", mode: 0o644},
		{src: "packaging/copyright", dst: "usr/share/doc/respawner/copyright", mode: 0o644},
		{src: "CHANGELOG.md", dst: "usr/share/doc/respawner/changelog.gz", mode: 0o644, gz: true},
		{src: "README.md", dst: "usr/share/doc/respawner/README.md", mode: 0o644},
		{src: "packaging/respawner.conf", dst: "usr/share/doc/respawner/examples/respawner.conf", mode: 0o644},
	}
	globs := []struct {
		bin      bool
		pattern  string
		dst      func(rel string) string
		mode     os.FileMode
		gz, need bool
	}{
		{true, "respawner-plugin-*", func(r string) string { return "usr/lib/respawner/plugins/" + r }, 0o755, false, true},
		{true, "man/*.1", func(r string) string { return "usr/share/man/man1/" + filepath.Base(r) + ".gz" }, 0o644, true, true},
		// The docs keep the source tree's layout, so that the README's
		// links (docs/design.md, plugins/*/README.md) work where they are.
		{false, "docs/*", func(r string) string { return "usr/share/doc/respawner/" + r }, 0o644, false, true},
		{false, "plugins/*/README.md", func(r string) string { return "usr/share/doc/respawner/" + r }, 0o644, false, true},
	}
	for _, g := range globs {
		root := o.src
		if g.bin {
			root = o.bin
		}
		ms, err := filepath.Glob(filepath.Join(root, g.pattern))
		if err != nil {
			return nil, err
		}
		if len(ms) == 0 && g.need {
			return nil, fmt.Errorf("nothing matches %s in %s", g.pattern, root)
		}
		for _, m := range ms {
			if fi, err := os.Stat(m); err != nil || fi.IsDir() {
				continue
			}
			rel, _ := filepath.Rel(root, m)
			es = append(es, entry{src: rel, bin: g.bin, dst: g.dst(rel), mode: g.mode, gz: g.gz})
		}
	}
	// The example hooks, sources and all, without their tests and dot
	// files, and without execute bits (as dh_fixperms: nothing under
	// /usr/share/doc runs from there).
	err := filepath.WalkDir(filepath.Join(o.src, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "_test.go") || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(o.src, p)
		es = append(es, entry{src: rel, dst: "usr/share/doc/respawner/" + rel, mode: 0o644})
		return nil
	})
	return es, err
}

func build(o options) (string, error) {
	if o.describe == "" || o.date == 0 {
		return "", errors.New("-version and -date are required")
	}
	version, err := debVersion(o.describe, o.commits)
	if err != nil {
		return "", err
	}
	arch, ok := debArch[o.arch]
	if !ok {
		return "", fmt.Errorf("no Debian architecture for GOARCH %q", o.arch)
	}
	mtime := time.Unix(o.date, 0).UTC()
	es, err := files(o)
	if err != nil {
		return "", err
	}
	copyright, err := os.ReadFile(filepath.Join(o.src, "packaging/copyright"))
	if err != nil {
		return "", err
	}

	stage, err := os.MkdirTemp("", "mkdeb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(stage)
	root := filepath.Join(stage, Package)

	var sums bytes.Buffer
	var size int64
	dirs := map[string]bool{}
	sort.Slice(es, func(i, j int) bool { return es[i].dst < es[j].dst })
	for _, e := range es {
		src := filepath.Join(o.src, e.src)
		if e.bin {
			src = filepath.Join(o.bin, e.src)
		}
		b, err := os.ReadFile(src)
		if err != nil {
			return "", err
		}
		if e.mode&0o111 != 0 {
			// Every module linked into a binary must be named in the
			// copyright file, or the file is out of date.
			if err := checkCopyright(src, b, copyright); err != nil {
				return "", err
			}
		}
		if e.gz {
			if b, err = gzipBytes(b); err != nil {
				return "", err
			}
		}
		if err := writeFile(root, e.dst, b, e.mode, mtime, dirs); err != nil {
			return "", err
		}
		fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(b), e.dst)
		size += (int64(len(b)) + 1023) / 1024
	}
	cl, err := gzipBytes([]byte(debianChangelog(version, o.describe, mtime)))
	if err != nil {
		return "", err
	}
	const clPath = "usr/share/doc/respawner/changelog.Debian.gz"
	if err := writeFile(root, clPath, cl, 0o644, mtime, dirs); err != nil {
		return "", err
	}
	fmt.Fprintf(&sums, "%x  %s\n", md5.Sum(cl), clPath)
	size += (int64(len(cl))+1023)/1024 + int64(len(dirs))

	control := fmt.Sprintf(`Package: %s
Version: %s
Architecture: %s
Maintainer: %s
Installed-Size: %d
Section: admin
Priority: optional
Description: %s
`, Package, version, arch, maintainer, size, description)
	scripts := map[string]string{
		"control": control,
		"md5sums": sums.String(),
		// As dh_installsystemd writes them for a unit that is only
		// installed (a template is never enabled by the package): systemd
		// learns of the unit file, or of its removal.
		"postinst": "#!/bin/sh\nset -e\nif [ \"$1\" = configure ] && [ -d /run/systemd/system ]; then\n\tsystemctl --system daemon-reload >/dev/null || true\nfi\n",
		"postrm":   "#!/bin/sh\nset -e\nif [ -d /run/systemd/system ]; then\n\tsystemctl --system daemon-reload >/dev/null || true\nfi\n",
	}
	for name, text := range scripts {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(text, "#!") {
			mode = 0o755
		}
		if err := writeFile(root, "DEBIAN/"+name, []byte(text), mode, mtime, map[string]bool{}); err != nil {
			return "", err
		}
	}
	// Directories as dpkg-deb wants them, 0755 and the same mtime.
	if err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if err := os.Chmod(p, 0o755); err != nil {
			return err
		}
		return os.Chtimes(p, mtime, mtime)
	}); err != nil {
		return "", err
	}

	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return "", err
	}
	deb := filepath.Join(o.out, fmt.Sprintf("%s_%s_%s.deb", Package, version, arch))
	cmd := exec.Command("dpkg-deb", "--root-owner-group", "-Zxz", "--build", root, deb)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(o.date, 10))
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-deb --build: %v\n%s", err, out)
	}
	return deb, nil
}

// debArch maps GOARCH to the Debian architecture.
var debArch = map[string]string{"amd64": "amd64", "arm64": "arm64", "386": "i386", "arm": "armhf", "riscv64": "riscv64", "ppc64le": "ppc64el", "s390x": "s390x"}

// writeFile writes b to root/dst with mode and mtime, creating its
// directories (counted in dirs, for Installed-Size).
func writeFile(root, dst string, b []byte, mode os.FileMode, mtime time.Time, dirs map[string]bool) error {
	p := filepath.Join(root, dst)
	for d := filepath.Dir(dst); d != "." && d != "/"; d = filepath.Dir(d) {
		dirs[d] = true
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		return err
	}
	if err := os.Chmod(p, mode); err != nil { // whatever the umask
		return err
	}
	return os.Chtimes(p, mtime, mtime)
}

// gzipBytes compresses b as gzip -9n does: the best compression, no name
// and no time in the header (reproducible; lintian checks both).
func gzipBytes(b []byte) ([]byte, error) {
	var buf bytes.Buffer
	z, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := z.Write(b); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkCopyright fails when a module linked into the Go binary bin (read
// from path) is not named in the copyright file.
func checkCopyright(path string, bin, copyright []byte) error {
	bi, err := buildinfo.Read(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var missing []string
	for _, d := range bi.Deps {
		if !bytes.Contains(copyright, []byte(d.Path+"/")) && !bytes.Contains(copyright, []byte(d.Path+"\n")) {
			missing = append(missing, d.Path)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%s links %s, which packaging/copyright does not name: add each with its license", filepath.Base(path), strings.Join(missing, ", "))
	}
	return nil
}

// describeRE reads git describe --tags --always --dirty: a tag, and
// the commits since it and the commit, or a bare commit where no tag is.
// The bare commit is tried first: a hash can start with a digit too.
var describeRE = regexp.MustCompile(`^(?:([0-9a-f]{7,40})|v?([0-9][0-9A-Za-z.+~-]*?)(?:-([0-9]+)-g([0-9a-f]+))?)(-dirty)?$`)

// debVersion turns git describe's version into a Debian one that sorts as
// the history does: v1.2.0 is 1.2.0-1, three commits after it
// 1.2.0+3.g1a2b3c4-1, a pre-release tag v1.2.0-rc1 1.2.0~rc1-1 (before
// 1.2.0), and a commit with no tag before it 0~git<commits>.g<hash>-1 (before
// any release). A dirty tree adds .dirty (v1.2.0-dirty: 1.2.0+0.dirty-1). The Debian revision is -1: the
// packaging is part of the source, but the upstream changelog is
// CHANGELOG.md, shipped as changelog.gz beside changelog.Debian.gz.
func debVersion(describe string, commits int) (string, error) {
	m := describeRE.FindStringSubmatch(describe)
	if m == nil {
		return "", fmt.Errorf("version %q is not what git describe --tags --always --dirty prints", describe)
	}
	var v string
	switch {
	case m[1] != "":
		if commits <= 0 {
			return "", fmt.Errorf("version %q has no tag: -commits (git rev-list --count HEAD) is needed", describe)
		}
		v = fmt.Sprintf("0~git%d.g%s", commits, m[1])
	default:
		v = strings.ReplaceAll(m[2], "-", "~")
		if m[3] != "" {
			v += "+" + m[3] + ".g" + m[4]
		}
	}
	if m[5] != "" {
		// After the clean build of the same commit, before the next
		// commit: a dirty tag counts as 0 commits after it.
		if m[1] == "" && m[3] == "" {
			v += "+0"
		}
		v += ".dirty"
	}
	return v + "-1", nil
}

// debianChangelog is the package's changelog: one entry for this build.
// What changed is upstream's CHANGELOG.md (changelog.gz).
func debianChangelog(version, describe string, date time.Time) string {
	return fmt.Sprintf(`%s (%s) unstable; urgency=medium

  * Package of respawner %s. The changes are in changelog.gz, the
    project's CHANGELOG.md.

 -- %s  %s
`, Package, version, describe, maintainer, date.Format(time.RFC1123Z))
}

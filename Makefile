# respawner — see README.md. Every target works on a fresh Debian 12 machine with Go 1.26.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin
DIST    ?= dist

.PHONY: all build install completions man deb demo test race vet lint fuzz soak bench proto clean

all: build

# respawner itself, the host that runs hook plugins (kept out of respawner so
# that it does not link gRPC), and the plugins shipped with it.
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner ./cmd/respawner
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-hookhost ./cmd/respawner-hookhost
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-plugin-healthcheck-http ./plugins/healthcheck-http
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-plugin-notify-webhook ./plugins/notify-webhook
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-plugin-notify-email ./plugins/notify-email

# respawner and respawner-hookhost into $(PREFIX)/bin, every plugin built into
# $(PREFIX)/lib/respawner/plugins, which respawner searches from its own
# directory (../lib/respawner/plugins): PREFIX=/usr makes it the system
# directory, /usr/lib/respawner/plugins. The shell completions, which
# `respawner completion SHELL` writes, go where bash-completion, zsh and fish
# look for a package's (each directory can be given instead). install -D
# creates what is missing.
PREFIX  ?= /usr/local
DESTDIR ?=
BASH_COMPLETIONS ?= $(PREFIX)/share/bash-completion/completions
# zsh: Debian's packages use vendor-completions under /usr; a local install
# goes to site-functions, which zsh searches under /usr/local.
ZSH_COMPLETIONS  ?= $(if $(filter /usr,$(PREFIX)),$(PREFIX)/share/zsh/vendor-completions,$(PREFIX)/share/zsh/site-functions)
FISH_COMPLETIONS ?= $(PREFIX)/share/fish/vendor_completions.d
MANDIR           ?= $(PREFIX)/share/man

install: build completions man
	install -D -m 0755 $(BIN)/respawner $(DESTDIR)$(PREFIX)/bin/respawner
	install -D -m 0755 $(BIN)/respawner-hookhost $(DESTDIR)$(PREFIX)/bin/respawner-hookhost
	install -d -m 0755 $(DESTDIR)$(PREFIX)/lib/respawner/plugins
	install -m 0755 $(BIN)/respawner-plugin-* $(DESTDIR)$(PREFIX)/lib/respawner/plugins/
	install -D -m 0644 $(BIN)/completion/respawner.bash $(DESTDIR)$(BASH_COMPLETIONS)/respawner
	install -D -m 0644 $(BIN)/completion/_respawner $(DESTDIR)$(ZSH_COMPLETIONS)/_respawner
	install -D -m 0644 $(BIN)/completion/respawner.fish $(DESTDIR)$(FISH_COMPLETIONS)/respawner.fish
	install -d -m 0755 $(DESTDIR)$(MANDIR)/man1
	install -m 0644 $(BIN)/man/*.1 $(DESTDIR)$(MANDIR)/man1/

# The completion scripts for bash, zsh and fish, into $(BIN)/completion.
completions: build
	@mkdir -p $(BIN)/completion
	$(BIN)/respawner completion bash >$(BIN)/completion/respawner.bash
	$(BIN)/respawner completion zsh >$(BIN)/completion/_respawner
	$(BIN)/respawner completion fish >$(BIN)/completion/respawner.fish

# The man pages, respawner.1, respawner-start.1, ..., into $(BIN)/man,
# generated from the command tree itself (cmd/respawner/man.go, compiled in
# only with -tags mangen), dated by the commit for the same pages at every
# build.
man:
	@mkdir -p $(BIN)/man
	SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || date +%s) \
		CGO_ENABLED=0 $(GO) run -tags mangen -ldflags '$(LDFLAGS)' ./cmd/respawner man $(BIN)/man

# The Debian package, $(DIST)/respawner_VERSION_ARCH.deb, from what build,
# completions and man made: packaging/mkdeb lays it out (the table of where
# each file goes is there) and dpkg-deb writes it. The version is git
# describe's in Debian form.
deb: build completions man
	$(GO) run ./packaging/mkdeb -bin $(BIN) -out $(DIST) -arch $$($(GO) env GOARCH) \
		-version '$(VERSION)' -commits $$(git rev-list --count HEAD) \
		-date $$(git log -1 --format=%ct)

# The main job: supervise a real program in the foreground, kill it once, watch
# the restart, then stop cleanly.
demo: build
	@./scripts/demo.sh $(BIN)/respawner

vet:
	$(GO) vet ./...
	$(GO) vet -tags mangen ./cmd/respawner

lint: vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }

# Every test, with the race detector, real processes and no cache; then a
# short run of every fuzz target over its committed seeds and 100000 more
# inputs each.
# The Debian package's install test (it writes /usr, where the other packages'
# tests look for plugins) runs alone, after the rest.
test: lint build
	$(GO) test -race -count=1 -timeout 14m ./...
	RESPAWNER_TEST_DPKG=1 $(GO) test -count=1 -timeout 5m -run '^TestDebInstall$$' ./packaging/mkdeb
	@$(MAKE) --no-print-directory fuzz FUZZTIME=100000x

# Every fuzz target, as package:Target: each parser of outside input
# (control requests, state and pid files, program output and its STATUS=
# text, plugin specs, env files, the exec shim's request, --listen values) and the state
# machine. Seeds are in each package's testdata/fuzz.
FUZZ := ./internal/machine:FuzzMachine ./internal/loop:FuzzOutputSplit \
	./internal/loop:FuzzParsePidfile ./internal/loop:FuzzSanitizeStatus ./internal/control:FuzzParseRequest \
	./internal/control:FuzzParseState ./pkg/hooks:FuzzParseSpec \
	./pkg/hooks:FuzzOptions ./pkg/hooks/pluginproc:FuzzSanitize ./pkg/hookspec:FuzzParseDuration \
	./internal/runenv:FuzzParseEnv ./internal/runenv:FuzzParseRequest ./internal/listen:FuzzParse
# make test gives a count of inputs (100000x), not a duration: with a
# duration, Go 1.26's fuzz coordinator can report "context deadline
# exceeded" at its end on a loaded machine (golang/go#75804, fixed in Go
# 1.27), a failure with no input behind it (two of two loaded runs here).
FUZZTIME ?= 30s

fuzz:
	@for t in $(FUZZ); do \
		echo "fuzz $${t##*:} ($(FUZZTIME))"; \
		out=$$($(GO) test $${t%%:*} -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) 2>&1); st=$$?; \
		if [ $$st -ne 0 ]; then echo "$$out" | grep -v '^fuzz: elapsed' | tail -40; exit 1; fi; \
		echo "$$out" | grep -v '^fuzz: elapsed' | tail -3; \
		case "$$out" in *"no fuzz tests to fuzz"*) echo "make fuzz: no $${t##*:} in $${t%%:*}"; exit 1;; esac; \
	done

# The adversarial soak at full size (several minutes; not in CI): 10,000
# SIGKILLs with -t 0, a program writing at full speed for 60 s, repeated
# kills of respawner with adoption, a plugin killed again and again.
# make test runs the same tests small.
soak: build
	RESPAWNER_SOAK=full $(GO) test -count=1 -timeout 60m -run '^TestSoak' -v ./cmd/respawner

# Regenerate pkg/hooks/proto from hooks.proto (installs protoc and the Go
# generators when missing).
proto:
	sh pkg/hooks/proto/gen.sh

bench: build
	$(GO) run ./bench -bin $(BIN)/respawner
	$(GO) test -run '^$$' -bench 'RoundTrip' -benchtime 20000x ./pkg/hooks

clean:
	rm -rf $(BIN) $(DIST)

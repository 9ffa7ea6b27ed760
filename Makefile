# respawner — see README.md. Every target works on a fresh Debian 12 machine with Go 1.26.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
BIN     := bin

.PHONY: all build demo test race vet lint fuzz bench proto clean

all: build

# respawner itself, the host that runs hook plugins (kept out of respawner so
# that it does not link gRPC), and the plugins shipped with it.
build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner ./cmd/respawner
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-hookhost ./cmd/respawner-hookhost
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/respawner-plugin-healthcheck-http ./plugins/healthcheck-http

# The main job: supervise a real program in the foreground, kill it once, watch
# the restart, then stop cleanly.
demo: build
	@./scripts/demo.sh $(BIN)/respawner

vet:
	$(GO) vet ./...

lint: vet
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: the files above need formatting"; exit 1; }

# Every test, with the race detector, real processes and no cache.
test: lint build
	$(GO) test -race -count=1 -timeout 14m ./...

fuzz:
	$(GO) test ./internal/loop -run '^$$' -fuzz FuzzMachine -fuzztime 30s
	$(GO) test ./pkg/hooks -run '^$$' -fuzz FuzzParseSpec -fuzztime 30s
	$(GO) test ./pkg/hooks -run '^$$' -fuzz FuzzOptions -fuzztime 30s
	$(GO) test ./internal/pluginproc -run '^$$' -fuzz FuzzSanitize -fuzztime 30s

# Regenerate pkg/hooks/proto from hooks.proto (installs protoc and the Go
# generators when missing).
proto:
	sh pkg/hooks/proto/gen.sh

bench: build
	$(GO) run ./bench -bin $(BIN)/respawner
	$(GO) test -run '^$$' -bench 'RoundTrip' -benchtime 20000x ./pkg/hooks

clean:
	rm -rf $(BIN)

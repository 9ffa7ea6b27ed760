#!/bin/sh
# gen.sh regenerates hooks.pb.go and hooks_grpc.pb.go from hooks.proto, installing
# what is missing: protoc from Debian's protobuf-compiler, the Go generators with
# `go install` at pinned versions (so the output does not change with the machine).
# Run from anywhere: `sh pkg/hooks/proto/gen.sh` (or `make proto`).
set -eu

PROTOC_GEN_GO_VERSION=v1.36.12      # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2   # google.golang.org/grpc/cmd/protoc-gen-go-grpc

dir=$(cd "$(dirname "$0")" && pwd)
gobin=$(go env GOBIN)
[ -n "$gobin" ] || gobin="$(go env GOPATH)/bin"
PATH="$gobin:$PATH"
export PATH

if ! command -v protoc >/dev/null 2>&1; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "gen.sh: protoc not found; install Debian's protobuf-compiler" >&2
		exit 1
	fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler >/dev/null
fi

# has CMD VERSION: CMD is installed and built from module version VERSION.
has() {
	command -v "$1" >/dev/null 2>&1 &&
		go version -m "$(command -v "$1")" 2>/dev/null | grep -q "[[:space:]]$2\([[:space:]]\|$\)"
}
has protoc-gen-go "$PROTOC_GEN_GO_VERSION" ||
	go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
has protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION" ||
	go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"

cd "$dir"
protoc --proto_path=. \
	--go_out=. --go_opt=paths=source_relative \
	--go-grpc_out=. --go-grpc_opt=paths=source_relative \
	hooks.proto
echo "gen.sh: generated $(cd "$dir" && ls hooks*.pb.go | tr '\n' ' ')"

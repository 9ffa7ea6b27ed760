// Package proto is the generated Go code for hooks.proto, the wire contract
// between respawner and its hook plugins. Go plugins use package hooks, which
// wraps it; the .proto is published for hooks written in other languages.
// Regenerate with gen.sh (make proto); never edit the *.pb.go files.
package proto

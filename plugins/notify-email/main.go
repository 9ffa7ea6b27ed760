package main

import "github.com/respawner/respawner/pkg/hooks"

// version is set when the binary is built:
// go build -ldflags '-X main.version=1.2.0'. `respawner plugins` shows it.
var version = "dev"

func main() {
	log := hooks.NewLogger()
	m := newMailer(version, log)
	hooks.ServeWithLogger(m, log)
	m.Close() // respawner asked the plugin to stop: flush within the grace period
}

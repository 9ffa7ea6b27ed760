package main

import "github.com/respawner/respawner/pkg/hooks"

// version is set when the binary is built:
// go build -ldflags '-X main.version=1.2.0'. `respawner plugins` shows it.
var version = "dev"

func main() {
	log := hooks.NewLogger()
	w := newWebhook(version, log)
	hooks.ServeWithLogger(w, log)
	w.Close() // respawner asked the plugin to stop: flush within the grace period
}

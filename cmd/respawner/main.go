// Command respawner starts a program, watches it and restarts it when it dies.
package main

import "os"

func main() { os.Exit(run(os.Args[1:])) }

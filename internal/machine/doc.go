// Package machine is respawner's supervision policy as a pure state machine:
// events in, actions out (etcd raft's "Ready", s6's table of states and
// events). Step takes what the executor observed (a process started or
// exited, a timer fired, a stop was asked, a hook answered, a probe came
// back) and the current time, and returns what to do: spawn, arm or disarm a
// timer, signal the process tree, follow a daemon, ask the hooks, tell them
// of a lifecycle event, exit.
//
// It imports the standard library and pkg/hookspec only, does no I/O, reads
// no clock and never blocks, so every path is tested without processes
// (table tests, announcement tests, and FuzzMachine against a reference
// model). It says everything through its actions: every event the hooks
// hear is a Notify it emits, and what the executor shows (status) it reads
// from one Snapshot value.
package machine

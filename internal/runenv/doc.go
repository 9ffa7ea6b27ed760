// Package runenv is how each run of the program is set up beyond its path
// and arguments: its environment (respawner's, --env, --env-file,
// --clear-env), its user and groups, working directory, umask and resource
// limits, and the variables that must name its own pid (WATCHDOG_PID,
// LISTEN_PID).
//
// The environment is built by respawner before the fork (Environ). The rest
// cannot be: Go's fork/exec (syscall.ForkExec) runs nothing of ours between
// fork and exec, has no field for resource limits or the umask, and takes
// the environment before the child's pid exists. Setting them on respawner
// itself around the fork is no answer either: limits and the umask are
// process-wide, and a lowered RLIMIT_NOFILE or RLIMIT_AS would hit
// respawner's own threads (and the pidfd and pipe of that very fork). So
// when any of them is asked for, the program is started through an exec
// shim: respawner's own binary, re-executed through /proc/self/exe under
// the name ShimArgv0, applies them to itself and execs the program in the
// same process (ForkExec, Shim). User, groups and working directory Go's
// fork/exec sets itself, at no cost; without any attribute the program is
// forked and exec'd directly, exactly as before.
//
// Standard library and golang.org/x/sys only.
package runenv

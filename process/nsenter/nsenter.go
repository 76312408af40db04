// Package nsenter joins mount and user (and optionally other) namespaces
// before the Go runtime starts, which Go code itself can never do: setns(2)
// refuses CLONE_NEWNS and CLONE_NEWUSER for a multithreaded process, and the
// Go runtime is multithreaded before main.main runs.
//
// Importing it for its side effect,
//
//	import _ "github.com/husk-runtime/husk/process/nsenter"
//
// links in a C constructor (nsenter.c) that runs in every process started from
// the binary, while it is still single-threaded. The constructor does nothing
// but one getenv unless _HUSK_NSENTER is set. Its value is an ordered,
// comma-separated list of "type:/absolute/path" entries, types being user,
// mnt, pid, net, ipc, uts, cgroup and time, for example
//
//	_HUSK_NSENTER=user:/proc/123/ns/user,mnt:/proc/123/ns/mnt
//
// The whole value is validated first; then each path is opened O_RDONLY|
// O_CLOEXEC and joined with setns(fd, CLONE_NEW<type>) in order (list user
// before mnt), chdir("/") follows a mnt join, credentials are left untouched,
// and _HUSK_NSENTER is removed from the environment before Go starts.
//
// On any failure (an empty or malformed value included) the process writes
// one line to fd 3, the sync socket, (to fd 2 if fd 3 is not writable):
//
//	{"type":"error","step":"nsenter","errno":N,"msg":"setns \"mnt:/etc/passwd\": Invalid argument"}
//
// and exits with status 1 without ever running Go code.
//
// Cost when unset: one getenv (a scan of environ), about 20-30ns with 35
// environment variables; testdata/bench/bench.c measures it.
package nsenter

/*
#cgo CFLAGS: -Wall -Wextra -O2
*/
import "C"

//go:build linux

// Package testenv is the infrastructure shared by the programs that run a
// private containerd for husk: the integration tests (integration/) and the
// benchmark (bench/). It writes containerd's config, starts containerd and
// waits for it, stops it, and tears down what a run left on the host: the
// processes and directories of its cgroups and the mounts under its temp dir.
//
// The functions report progress only through the Logf a caller passes, so
// each caller keeps its own log prefix (or testing.T) and its own wording.
package testenv

// Logf prints one line of a teardown report (without a trailing newline). A
// nil Logf prints nothing.
type Logf func(format string, args ...any)

func (l Logf) printf(format string, args ...any) {
	if l != nil {
		l(format, args...)
	}
}

package process

import (
	"context"
	"fmt"

	"github.com/containerd/log"

	"github.com/husk-runtime/husk/security"
)

// compileForInit moves the seccomp profile of cfg.Spec into cfg.Seccomp,
// compiled, and sends the init a spec copy without it: the shim compiles a
// profile once (security.CompileSeccompCached: LoadSpec's validation already
// compiled it, and an exec or a pod's next container reuses it), and the
// container init, whose setup is on the critical path of Create and exec,
// neither decodes the profile nor compiles it again. cfg.Spec itself is
// never modified.
func compileForInit(ctx context.Context, cfg *initConfig) error {
	if cfg == nil || cfg.Spec == nil || cfg.Spec.Linux == nil || cfg.Spec.Linux.Seccomp == nil {
		return nil
	}
	f, warnings, err := security.CompileSeccompCached(cfg.Spec.Linux.Seccomp)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	for _, w := range warnings {
		log.G(ctx).Warn("seccomp: " + w)
	}
	spec := *cfg.Spec
	linux := *spec.Linux
	linux.Seccomp = nil
	spec.Linux = &linux
	cfg.Spec = &spec
	cfg.Seccomp = f
	return nil
}

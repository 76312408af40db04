package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/husk-runtime/husk/rootfs"
	"github.com/husk-runtime/husk/security"
)

// Features is husk's OCI features document (what `runc features` prints):
// containerd and CRI read it to decide what they may ask for. Every list
// comes from the package that implements it, so the document cannot claim
// more (or less) than husk does.
func Features() *features.Features {
	yes, no := true, false
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{},
		// Includes "rro" and the other recursive (mount_setattr) options.
		MountOptions: rootfs.KnownMountOptions(),
		Linux: &features.Linux{
			Namespaces:   []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"},
			Capabilities: security.KnownCapabilities(),
			Cgroup: &features.Cgroup{
				V1:      &yes,
				V2:      &yes,
				Systemd: &yes,
			},
			Seccomp: &features.Seccomp{
				Enabled:        &yes,
				Actions:        security.SeccompActions(),
				Operators:      security.SeccompOperators(),
				Archs:          security.SeccompArchs(),
				KnownFlags:     security.SeccompKnownFlags(),
				SupportedFlags: security.SeccompSupportedFlags(),
			},
			// "Enabled" means husk can apply them (as for runc); whether the
			// host runs the module is checked per container.
			Apparmor: &features.Apparmor{Enabled: &yes},
			Selinux:  &features.Selinux{Enabled: &yes},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: &no},
			},
		},
	}
}

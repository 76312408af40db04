package shim

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Features is husk's OCI features document (what `runc features` prints):
// containerd and CRI read it to decide what they may ask for.
func Features() *features.Features {
	yes := true
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{},
		MountOptions: []string{
			"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec",
			"mand", "noatime", "nodev", "nodiratime", "noexec", "nomand", "norelatime",
			"nostrictatime", "nosuid", "private", "rbind", "relatime", "remount", "ro",
			"rprivate", "rro", "rshared", "rslave", "runbindable", "rw", "shared", "slave",
			"strictatime", "suid", "sync", "unbindable",
		},
		Linux: &features.Linux{
			Namespaces: []string{"cgroup", "ipc", "mount", "network", "pid", "user", "uts"},
			Cgroup: &features.Cgroup{
				V1:      &yes,
				V2:      &yes,
				Systemd: &yes,
			},
			MountExtensions: &features.MountExtensions{
				IDMap: &features.IDMap{Enabled: new(bool)},
			},
		},
	}
}

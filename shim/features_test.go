package shim

import (
	"encoding/json"
	"slices"
	"testing"
)

func TestFeaturesDocument(t *testing.T) {
	f := Features()
	if _, err := json.Marshal(f); err != nil {
		t.Fatalf("marshal: %v", err)
	}
	l := f.Linux
	checks := []struct {
		what string
		ok   bool
	}{
		{"mount option rro", slices.Contains(f.MountOptions, "rro")},
		{"no tmpcopyup (not implemented)", !slices.Contains(f.MountOptions, "tmpcopyup")},
		{"CAP_SYS_ADMIN", slices.Contains(l.Capabilities, "CAP_SYS_ADMIN")},
		{"CAP_CHECKPOINT_RESTORE", slices.Contains(l.Capabilities, "CAP_CHECKPOINT_RESTORE")},
		{"seccomp enabled", l.Seccomp != nil && l.Seccomp.Enabled != nil && *l.Seccomp.Enabled},
		{"SCMP_ACT_ERRNO", slices.Contains(l.Seccomp.Actions, "SCMP_ACT_ERRNO")},
		{"SCMP_ACT_KILL_PROCESS", slices.Contains(l.Seccomp.Actions, "SCMP_ACT_KILL_PROCESS")},
		{"SCMP_ACT_NOTIFY (listenerPath agents)", slices.Contains(l.Seccomp.Actions, "SCMP_ACT_NOTIFY")},
		{"SCMP_CMP_MASKED_EQ", slices.Contains(l.Seccomp.Operators, "SCMP_CMP_MASKED_EQ")},
		{"SCMP_ARCH_X86_64", slices.Contains(l.Seccomp.Archs, "SCMP_ARCH_X86_64")},
		{"SCMP_ARCH_X32", slices.Contains(l.Seccomp.Archs, "SCMP_ARCH_X32")},
		{"known flag TSYNC", slices.Contains(l.Seccomp.KnownFlags, "SECCOMP_FILTER_FLAG_TSYNC")},
		{"idmap declared false", l.MountExtensions != nil && l.MountExtensions.IDMap != nil &&
			l.MountExtensions.IDMap.Enabled != nil && !*l.MountExtensions.IDMap.Enabled},
		{"user namespaces", slices.Contains(l.Namespaces, "user")},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("features document: %s: not as expected", c.what)
		}
	}
}

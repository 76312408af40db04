//go:build linux

package rootfs

import (
	"slices"
	"testing"
)

func TestWithMountLabel(t *testing.T) {
	for _, tc := range []struct{ data, label, want string }{
		{"", "", ""},
		{"mode=755", "", "mode=755"},
		{"", "system_u:object_r:container_file_t:s0", `context="system_u:object_r:container_file_t:s0"`},
		{"mode=755,size=65536k", "system_u:object_r:container_file_t:s0:c1,c2",
			`mode=755,size=65536k,context="system_u:object_r:container_file_t:s0:c1,c2"`},
	} {
		if got := withMountLabel(tc.data, tc.label); got != tc.want {
			t.Errorf("withMountLabel(%q, %q) = %q, want %q", tc.data, tc.label, got, tc.want)
		}
	}
	for typ, want := range map[string]bool{"tmpfs": true, "devpts": true, "mqueue": true, "proc": false, "sysfs": false, "cgroup": false, "cgroup2": false} {
		if labelsFS(typ) != want {
			t.Errorf("labelsFS(%q) = %v, want %v", typ, !want, want)
		}
	}
}

func TestKnownMountOptions(t *testing.T) {
	opts := KnownMountOptions()
	if !slices.IsSorted(opts) {
		t.Errorf("not sorted: %v", opts)
	}
	for _, o := range opts {
		if _, err := parseMountOptions([]string{o}); err != nil {
			t.Errorf("declared option %q does not parse: %v", o, err)
		}
		p, _ := parseMountOptions([]string{o})
		if len(p.data) != 0 {
			t.Errorf("declared option %q is passed to the filesystem as data, not implemented by husk", o)
		}
	}
	for _, want := range []string{"rro", "rbind", "ro", "nosuid", "rslave", "rnoexec", "nosymfollow"} {
		if !slices.Contains(opts, want) {
			t.Errorf("%q missing from %v", want, opts)
		}
	}
	for _, not := range []string{"tmpcopyup", "idmap", "ridmap"} {
		if slices.Contains(opts, not) {
			t.Errorf("%q is declared but not implemented", not)
		}
	}
}

package security

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeLSMHost points the LSM probes at fixture files for the test.
func fakeLSMHost(t *testing.T, apparmorDir bool, apparmorParam, mountinfo string) {
	t.Helper()
	dir := t.TempDir()
	oldDir, oldParam, oldFS, oldMI := apparmorSecurityfsDir, apparmorEnabledParam, selinuxfsMounts, mountinfoPath
	t.Cleanup(func() {
		apparmorSecurityfsDir, apparmorEnabledParam, selinuxfsMounts, mountinfoPath = oldDir, oldParam, oldFS, oldMI
	})
	apparmorSecurityfsDir = filepath.Join(dir, "apparmor")
	if apparmorDir {
		if err := os.Mkdir(apparmorSecurityfsDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	apparmorEnabledParam = filepath.Join(dir, "enabled")
	if apparmorParam != "" {
		if err := os.WriteFile(apparmorEnabledParam, []byte(apparmorParam), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	selinuxfsMounts = []string{filepath.Join(dir, "no-selinuxfs")}
	mountinfoPath = filepath.Join(dir, "mountinfo")
	if err := os.WriteFile(mountinfoPath, []byte(mountinfo), 0o644); err != nil {
		t.Fatal(err)
	}
}

const plainMountinfo = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n23 1 0:22 / /sys rw - sysfs sysfs rw\n"

func TestCheckLSM(t *testing.T) {
	const profile, label = "husk-test", "system_u:system_r:container_t:s0:c1,c2"
	tests := []struct {
		name                    string
		aaDir                   bool
		aaParam, mountinfo      string
		apparmor, selinux, mntl string
		want                    string // error substring; "" = ok
	}{
		{name: "nothing asked, nothing present", mountinfo: plainMountinfo},
		{name: "apparmor asked, absent", mountinfo: plainMountinfo, apparmor: profile, want: "AppArmor is not enabled"},
		{name: "apparmor asked, dir but disabled", aaDir: true, aaParam: "N\n", mountinfo: plainMountinfo, apparmor: profile, want: "AppArmor is not enabled"},
		{name: "apparmor asked, enabled", aaDir: true, aaParam: "Y\n", mountinfo: plainMountinfo, apparmor: profile},
		{name: "selinux label asked, absent", mountinfo: plainMountinfo, selinux: label, want: "process.selinuxLabel"},
		{name: "mount label asked, absent", mountinfo: plainMountinfo, mntl: label, want: "linux.mountLabel"},
		{name: "selinux asked, selinuxfs mounted", mountinfo: plainMountinfo + "30 23 0:25 / /sys/fs/selinux rw - selinuxfs selinuxfs rw\n", selinux: label, mntl: label},
		{name: "newline in a label", aaDir: true, aaParam: "Y", mountinfo: plainMountinfo, apparmor: "a\nb", want: "newline"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fakeLSMHost(t, tc.aaDir, tc.aaParam, tc.mountinfo)
			err := CheckLSM(tc.apparmor, tc.selinux, tc.mntl)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckLSM: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckLSM error = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestApplyLSM(t *testing.T) {
	if err := ApplyLSM("", ""); err != nil {
		t.Fatalf("ApplyLSM with nothing to apply: %v", err)
	}
	// A label file that is not on a procfs is refused (a container could
	// otherwise mount something over /proc to swallow the write).
	f := filepath.Join(t.TempDir(), "exec")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeAttr(f, "exec husk-test")
	if err == nil || !strings.Contains(err.Error(), "not on a procfs") {
		t.Fatalf("writeAttr to a regular file: %v, want a not-on-procfs error", err)
	}
	if b, _ := os.ReadFile(f); len(b) != 0 {
		t.Fatalf("writeAttr wrote %q to a non-procfs file", b)
	}
}

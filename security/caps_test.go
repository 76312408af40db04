//go:build linux && amd64

package security

import (
	"fmt"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var allCapNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
	"CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
	"CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
	"CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
	"CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
	"CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
	"CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
	"CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
}

func TestCapabilityTable(t *testing.T) {
	if len(allCapNames) != unix.CAP_LAST_CAP+1 {
		t.Fatalf("%d names, unix.CAP_LAST_CAP is %d", len(allCapNames), unix.CAP_LAST_CAP)
	}
	for i, n := range allCapNames {
		c, ok := capabilityNumber(n)
		if !ok || c != uint(i) {
			t.Errorf("%s = %d (%v), want %d", n, c, ok, i)
		}
	}
}

func TestLastCap(t *testing.T) {
	last, err := LastCap()
	if err != nil {
		t.Fatal(err)
	}
	probed, err := lastCapProbe()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if want := strings.TrimSpace(string(b)); fmt.Sprint(last) != want || probed != last {
		t.Fatalf("LastCap %d, probe %d, /proc says %s", last, probed, want)
	}
}

func TestParseCapabilities(t *testing.T) {
	tests := []struct {
		name     string
		caps     *specs.LinuxCapabilities
		last     uint
		want     capSets
		warnings []string
		err      string
	}{
		{name: "nil", caps: nil, last: 40},
		{
			name: "all sets",
			caps: &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"}, Effective: []string{"CAP_KILL"},
				Permitted: []string{"CAP_KILL", "CAP_SYS_ADMIN"}, Inheritable: []string{"CAP_BPF"}, Ambient: []string{"CAP_NET_RAW"}},
			last: 40,
			want: capSets{bounding: 1 | 1<<40, effective: 1 << 5, permitted: 1<<5 | 1<<21, inheritable: 1 << 39, ambient: 1 << 13},
		},
		{
			name:     "unknown names ignored with one warning each",
			caps:     &specs.LinuxCapabilities{Bounding: []string{"CAP_FOO", "CAP_KILL"}, Permitted: []string{"CAP_FOO"}},
			last:     40,
			want:     capSets{bounding: 1 << 5},
			warnings: []string{`unknown capability "CAP_FOO" ignored`},
		},
		{
			name:     "known to us, not to an older kernel",
			caps:     &specs.LinuxCapabilities{Bounding: []string{"CAP_BPF", "CAP_AUDIT_READ"}},
			last:     37,
			want:     capSets{bounding: 1 << 37},
			warnings: []string{"capability CAP_BPF is not supported by the running kernel (cap_last_cap 37): ignored"},
		},
		{name: "lowercase is malformed", caps: &specs.LinuxCapabilities{Effective: []string{"cap_kill"}}, last: 40, err: `capabilities.effective: malformed capability name "cap_kill"`},
		{name: "empty is malformed", caps: &specs.LinuxCapabilities{Ambient: []string{""}}, last: 40, err: `capabilities.ambient: malformed capability name ""`},
		{name: "no prefix is malformed", caps: &specs.LinuxCapabilities{Bounding: []string{"KILL"}}, last: 40, err: "malformed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, warnings, err := parseCapabilities(tc.caps, tc.last)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("sets = %+v, want %+v", got, tc.want)
			}
			if strings.Join(warnings, "|") != strings.Join(tc.warnings, "|") {
				t.Errorf("warnings = %q, want %q", warnings, tc.warnings)
			}
		})
	}
	// The public, side-effect free validator.
	if _, err := CheckCapabilities(&specs.LinuxCapabilities{Bounding: []string{"cap_chown"}}); err == nil {
		t.Errorf("CheckCapabilities accepted a malformed name")
	}
	if w, err := CheckCapabilities(&specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN", "CAP_NOPE"}}); err != nil || len(w) != 1 {
		t.Errorf("CheckCapabilities = %q, %v", w, err)
	}
}

func TestApplyUserRejectsInvalidIDs(t *testing.T) {
	// Rejected before any state changes, so safe in the test process.
	for _, u := range []specs.User{{UID: 0xffffffff}, {GID: 0xffffffff}} {
		if _, err := ApplyUserAndCapabilities(u, nil); err == nil || !strings.Contains(err.Error(), "(uid_t)-1") {
			t.Errorf("%+v: err = %v", u, err)
		}
	}
}

func TestRlimitValidation(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	// The first entry re-applies the current value: harmless even if the
	// validate-everything-first contract were broken.
	same := specs.POSIXRlimit{Type: "RLIMIT_NOFILE", Soft: cur.Cur, Hard: cur.Max}
	tests := []struct {
		rl  []specs.POSIXRlimit
		err string
	}{
		{[]specs.POSIXRlimit{same, {Type: "RLIMIT_BOGUS", Soft: 1, Hard: 1}}, `rlimit "RLIMIT_BOGUS": unknown type`},
		{[]specs.POSIXRlimit{same, {Type: "nofile", Soft: 1, Hard: 1}}, "unknown type"},
		{[]specs.POSIXRlimit{same, {Type: "RLIMIT_CORE", Soft: 2, Hard: 1}}, "soft limit 2 exceeds hard limit 1"},
	}
	for _, tc := range tests {
		if _, err := SetRlimits(tc.rl); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%v: err = %v, want %q", tc.rl, err, tc.err)
		}
	}
	names := []string{"RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE", "RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE",
		"RLIMIT_NICE", "RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING", "RLIMIT_STACK"}
	seen := map[int]bool{}
	for _, n := range names {
		r, ok := rlimitNumber(n)
		if !ok || seen[r] || r < 0 || r >= 16 {
			t.Errorf("%s -> %d, %v", n, r, ok)
		}
		seen[r] = true
	}
}

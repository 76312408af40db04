package process

import (
	"errors"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/husk-runtime/husk/security"
)

func validSpec() *specs.Spec {
	return &specs.Spec{
		Version: "1.2.0",
		Root:    &specs.Root{Path: "rootfs"},
		Process: &specs.Process{Args: []string{"sh"}, Cwd: "/", Env: []string{"PATH=/bin"}},
		Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{
			{Type: specs.MountNamespace}, {Type: specs.PIDNamespace}, {Type: specs.UTSNamespace},
		}},
	}
}

func TestValidateSpec(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*specs.Spec)
		want   string // substring of the error; empty = valid
	}{
		{name: "valid", mutate: func(*specs.Spec) {}},
		{name: "empty args", mutate: func(s *specs.Spec) { s.Process.Args = nil }, want: "args must not be empty"},
		{name: "empty first arg", mutate: func(s *specs.Spec) { s.Process.Args = []string{""} }, want: "args must not be empty"},
		{name: "relative cwd", mutate: func(s *specs.Spec) { s.Process.Cwd = "tmp" }, want: "not an absolute path"},
		{name: "env without =", mutate: func(s *specs.Spec) { s.Process.Env = []string{"FOO"} }, want: "NAME=value"},
		{name: "wrong major", mutate: func(s *specs.Spec) { s.Version = "2.0.0" }, want: "ociVersion"},
		{name: "no process", mutate: func(s *specs.Spec) { s.Process = nil }, want: "process is missing"},
		{name: "no root", mutate: func(s *specs.Spec) { s.Root = nil }, want: "root.path"},
		{name: "long hostname", mutate: func(s *specs.Spec) { s.Hostname = strings.Repeat("h", 65) }, want: "longer than 64"},
		{name: "hostname without uts", mutate: func(s *specs.Spec) {
			s.Hostname = "x"
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}}
		}, want: "private UTS"},
		{name: "unknown namespace", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		}, want: "unknown namespace"},
		{name: "duplicate namespace", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, want: "twice"},
		{name: "relative namespace path", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "ns/net"})
		}, want: "not absolute"},
		{name: "no mount namespace", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.PIDNamespace}}
		}, want: "mount namespace is required"},
		{name: "relative mount destination", mutate: func(s *specs.Spec) {
			s.Mounts = []specs.Mount{{Destination: "proc", Type: "proc"}}
		}, want: "not absolute"},
		{name: "mappings without userns", mutate: func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 1000, Size: 1}}
		}, want: "need a user namespace"},
		{name: "overlapping uid mappings", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 100}, {ContainerID: 50, HostID: 300000, Size: 10}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		}, want: "overlap"},
		{name: "mapping beyond 32 bits", mutate: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0xffffff00, Size: 65536}}
		}, want: "32-bit"},
		{name: "valid userns", mutate: func(s *specs.Spec) { withUserNS(s, 100000, 65536) }},
		{name: "mapping ending at (uid_t)-1", mutate: func(s *specs.Spec) {
			withUserNS(s, 100000, 65536)
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0xffffffff - 10, Size: 11}}
		}, want: "32-bit"},
		{name: "userns without gid mappings", mutate: func(s *specs.Spec) {
			withUserNS(s, 100000, 65536)
			s.Linux.GIDMappings = nil
		}, want: "needs gid mappings"},
		{name: "container root not mapped", mutate: func(s *specs.Spec) {
			withUserNS(s, 100000, 65536)
			s.Linux.UIDMappings[0].ContainerID = 1
		}, want: "uid 0"},
		{name: "overlapping host ranges", mutate: func(s *specs.Spec) {
			withUserNS(s, 100000, 65536)
			s.Linux.GIDMappings = append(s.Linux.GIDMappings, specs.LinuxIDMapping{ContainerID: 70000, HostID: 165535, Size: 10})
		}, want: "overlap"},
		{name: "too many mappings", mutate: func(s *specs.Spec) {
			withUserNS(s, 100000, 1)
			for i := uint32(1); i <= 340; i++ {
				s.Linux.UIDMappings = append(s.Linux.UIDMappings, specs.LinuxIDMapping{ContainerID: i, HostID: 100000 + i, Size: 1})
			}
		}, want: "at most 340"},
		{name: "seccomp unknown action", mutate: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
		}, want: "unknown action"},
		{name: "seccomp errnoRet out of range", mutate: func(s *specs.Spec) {
			big := uint(1 << 20)
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mount"}, Action: specs.ActErrno, ErrnoRet: &big}}}
		}, want: "errnoRet"},
		{name: "seccomp unknown operator", mutate: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_BOGUS"}}}}}
		}, want: "unknown operator"},
		{name: "seccomp notify without listener", mutate: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir"}, Action: specs.ActNotify}}}
		}, want: "listenerPath"},
		{name: "seccomp unknown syscall is only a warning", mutate: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"no_such_syscall_husk"}, Action: specs.ActErrno}}}
		}},
		{name: "malformed capability", mutate: func(s *specs.Spec) {
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: []string{"cap_chown"}}
		}, want: "malformed capability"},
		{name: "duplicate rlimit", mutate: func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1, Hard: 1}, {Type: "RLIMIT_NOFILE", Soft: 2, Hard: 2}}
		}, want: "twice"},
		{name: "rlimit soft above hard", mutate: func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 2, Hard: 1}}
		}, want: "exceeds hard"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			tt.mutate(s)
			err := ValidateSpec(s)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("error %v is not ErrInvalidSpec", err)
			}
		})
	}
}

func withUserNS(s *specs.Spec, host, size uint32) {
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: size}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: host, Size: size}}
}

// TestValidateHostDependent covers checks that depend on the host: the
// shim's own id maps and the security modules it runs.
func TestValidateHostDependent(t *testing.T) {
	t.Run("host range", func(t *testing.T) {
		dir := t.TempDir()
		old := hostIDMapFiles
		t.Cleanup(func() { hostIDMapFiles = old })
		write := func(name, content string) string {
			p := dir + "/" + name
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}
		// A shim inside a user namespace that maps only 0-65535 and 100000-165535.
		m := write("map", "         0     500000      65536\n    100000     600000      65536\n")
		hostIDMapFiles = map[string]string{"uid": m, "gid": m}
		for _, tc := range []struct {
			host, size uint32
			ok         bool
		}{{0, 65536, true}, {100000, 65536, true}, {60000, 10000, false}, {100000, 65537, false}, {200000, 1, false}} {
			s := validSpec()
			withUserNS(s, tc.host, tc.size)
			err := ValidateSpec(s)
			if tc.ok != (err == nil) {
				t.Errorf("host %d size %d: err = %v, want ok=%v", tc.host, tc.size, err, tc.ok)
			}
			if err != nil && !strings.Contains(err.Error(), "not all mapped") {
				t.Errorf("host %d size %d: error %q does not explain the host range", tc.host, tc.size, err)
			}
		}
		// Contiguous lines together cover a range neither covers alone.
		hostIDMapFiles = map[string]string{"uid": write("map2", "0 0 1000\n1000 5000 1000\n"), "gid": m}
		s := validSpec()
		withUserNS(s, 500, 1000)
		if err := ValidateSpec(s); err != nil {
			t.Errorf("range over two contiguous lines: %v", err)
		}
	})
	t.Run("lsm", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			enabled bool
			mutate  func(*specs.Spec)
		}{
			{"apparmor", security.AppArmorEnabled(), func(s *specs.Spec) { s.Process.ApparmorProfile = "husk-test" }},
			{"selinux", security.SELinuxEnabled(), func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" }},
			{"mountlabel", security.SELinuxEnabled(), func(s *specs.Spec) { s.Linux.MountLabel = "system_u:object_r:container_file_t:s0" }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if tc.enabled {
					t.Skipf("the host runs this LSM; the missing-LSM error cannot be tested here")
				}
				s := validSpec()
				tc.mutate(s)
				err := ValidateSpec(s)
				if err == nil || !strings.Contains(err.Error(), "not enabled on this host") || !errors.Is(err, ErrInvalidSpec) {
					t.Fatalf("error = %v, want an invalid-spec error saying the LSM is not enabled", err)
				}
			})
		}
	})
}

func TestLookPathAndHome(t *testing.T) {
	if _, err := lookPath("definitely-not-a-binary-husk", []string{"PATH=/usr/bin:/bin"}); err == nil ||
		!strings.Contains(err.Error(), "not found in $PATH") {
		t.Fatalf("lookPath of a missing binary: %v", err)
	}
	p, err := lookPath("sh", []string{"PATH=/nonexistent:/bin"})
	if err != nil || p != "/bin/sh" {
		t.Fatalf("lookPath(sh) = %q, %v", p, err)
	}
	env := withHome([]string{"PATH=/bin"}, 0)
	if env[len(env)-1] != "HOME=/root" {
		t.Fatalf("withHome for uid 0 = %v", env)
	}
	env = withHome([]string{"HOME=/x"}, 0)
	if len(env) != 1 {
		t.Fatalf("withHome overrode HOME: %v", env)
	}
}

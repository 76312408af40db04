package process

import (
	"errors"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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

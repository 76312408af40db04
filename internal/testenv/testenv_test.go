//go:build linux

package testenv

import (
	"slices"
	"strings"
	"testing"
)

func TestConfigTOML(t *testing.T) {
	base := Config{
		Root:         "/tmp/x/root",
		State:        "/tmp/x/state",
		Address:      "/tmp/x/c.sock",
		TTRPCAddress: "/tmp/x/c.sock.ttrpc",
		SocketDir:    "/tmp/x/s",
		OptDir:       "/tmp/x/opt",
	}
	const body = `
[grpc]
  address = "/tmp/x/c.sock"

[ttrpc]
  address = "/tmp/x/c.sock.ttrpc"

[debug]
  level = "debug"

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "/tmp/x/s"

[plugins.'io.containerd.internal.v1.opt']
  path = "/tmp/x/opt"
`
	const head = "version = 3\nroot = \"/tmp/x/root\"\nstate = \"/tmp/x/state\"\n"
	for _, tc := range []struct {
		name     string
		disabled []string
		extra    string
		want     string
	}{
		{"none disabled", nil, "", head + "disabled_plugins = []\n" + body},
		{"one disabled", []string{"io.containerd.nri.v1.nri"}, "",
			head + `disabled_plugins = ["io.containerd.nri.v1.nri"]` + "\n" + body},
		{"two disabled and extra", []string{"io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"}, "\n[x]\n  y = 1\n",
			head + `disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]` + "\n" + body + "\n[x]\n  y = 1\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			c.DisabledPlugins, c.Extra = tc.disabled, tc.extra
			if got := c.TOML(); got != tc.want {
				t.Errorf("TOML():\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestContainerdEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		environ []string
		path    string
		dirs    []string
		want    []string
	}{
		{"no dirs", []string{"HOME=/root"}, "/usr/bin", nil,
			[]string{"HOME=/root", "PATH=/usr/bin", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1"}},
		{"dirs first, old values dropped",
			[]string{"PATH=/usr/bin", "A=1", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=0", "PATHX=keep"},
			"/usr/bin", []string{"/r/bin", "/r/.cache/bin"},
			[]string{"A=1", "PATHX=keep", "PATH=/r/bin:/r/.cache/bin:/usr/bin", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1"}},
		{"empty PATH", nil, "", []string{"/b"},
			[]string{"PATH=/b:", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dirs := slices.Clone(tc.dirs)
			if got := containerdEnv(tc.environ, tc.path, dirs); !slices.Equal(got, tc.want) {
				t.Errorf("containerdEnv = %q, want %q", got, tc.want)
			}
			if !slices.Equal(dirs, tc.dirs) {
				t.Errorf("containerdEnv changed its dirs argument to %q", dirs)
			}
		})
	}
}

func TestParsePids(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
	}{
		{"", nil},
		{"12\n", []int{12}},
		{"1\n22\n333\n", []int{1, 22, 333}},
		{"7\nx\n 8 \n", []int{7, 8}},
	} {
		if got := parsePids(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("parsePids(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestDeepestFirst(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{nil, nil},
		{[]string{"/a", "/a/b/c", "/a/b"}, []string{"/a/b/c", "/a/b", "/a"}},
		{[]string{"/t/x", "/t/x/root/m", "/t/x/state"}, []string{"/t/x/root/m", "/t/x/state", "/t/x"}},
	} {
		got := slices.Clone(tc.in)
		deepestFirst(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("deepestFirst(%s) = %v, want %v", strings.Join(tc.in, " "), got, tc.want)
		}
	}
}

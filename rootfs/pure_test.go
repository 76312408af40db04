//go:build linux

package rootfs

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseProcCgroup(t *testing.T) {
	in := "9:name=systemd:/user.slice\n8:pids:/\n2:cpu,cpuacct:/a/b\n0::/unified/x\nbogus\n"
	got, err := parseProcCgroup(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"name=systemd": "/user.slice", "pids": "/", "cpu": "/a/b", "cpuacct": "/a/b", "": "/unified/x"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestCgroupV1Binds(t *testing.T) {
	const mi = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 /nested /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
37 31 0:34 /other /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
42 31 0:39 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
`
	hier, err := mountinfo.GetMountsFromReader(strings.NewReader(mi), nil)
	if err != nil {
		t.Fatal(err)
	}
	own := map[string]string{
		"cpu": "/c1", "cpuacct": "/c1", "memory": "/m/x", "pids": "/nested/p", "blkio": "/elsewhere",
		"name=systemd": "/", "": "/u",
	}
	got := cgroupV1Binds(hier, own)
	want := []cgroupBind{
		{name: "cpu,cpuacct", source: "/sys/fs/cgroup/cpu,cpuacct/c1", fsData: "cpu,cpuacct"},
		{name: "memory", source: "/sys/fs/cgroup/memory/m/x", fsData: "memory"},
		{name: "pids", source: "/sys/fs/cgroup/pids/p", fsData: "pids"},
		// blkio: own cgroup outside the mounted root -> skipped;
		{name: "systemd", source: "/sys/fs/cgroup/systemd", fsData: "name=systemd"},
		// unified (cgroup2) and freezer (no own entry) skipped.
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestSpecDevices(t *testing.T) {
	mode := os.FileMode(0o620)
	uid, gid := uint32(1000), uint32(5)
	tests := []struct {
		name    string
		devs    []specs.LinuxDevice
		check   func(t *testing.T, got []device)
		wantErr string
	}{
		{
			name: "defaults only",
			check: func(t *testing.T, got []device) {
				if !reflect.DeepEqual(got, defaultDevices()) {
					t.Fatalf("got %+v", got)
				}
			},
		},
		{
			name: "override and add",
			devs: []specs.LinuxDevice{
				{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0, FileMode: &mode, UID: &uid, GID: &gid},
				{Path: "dev/fuse", Type: "c", Major: 10, Minor: 229},
				{Path: "/dev/sda", Type: "b", Major: 8, Minor: 0},
				{Path: "/dev/fifo", Type: "p", Major: 9, Minor: 9},
				{Path: "/dev/u", Type: "u", Major: 1, Minor: 3},
			},
			check: func(t *testing.T, got []device) {
				if len(got) != len(defaultDevices())+4 {
					t.Fatalf("got %d devices: %+v", len(got), got)
				}
				want := map[string]device{
					"/dev/tty":  {path: "/dev/tty", typ: unix.S_IFCHR, major: 5, minor: 0, mode: 0o620, uid: 1000, gid: 5},
					"/dev/fuse": {path: "/dev/fuse", typ: unix.S_IFCHR, major: 10, minor: 229, mode: 0o666},
					"/dev/sda":  {path: "/dev/sda", typ: unix.S_IFBLK, major: 8, minor: 0, mode: 0o666},
					"/dev/fifo": {path: "/dev/fifo", typ: unix.S_IFIFO, mode: 0o666},
					"/dev/u":    {path: "/dev/u", typ: unix.S_IFCHR, major: 1, minor: 3, mode: 0o666},
				}
				for _, d := range got {
					if w, ok := want[d.path]; ok && d != w {
						t.Errorf("%s: got %+v, want %+v", d.path, d, w)
					}
				}
			},
		},
		{name: "bad type", devs: []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}}, wantErr: "unknown type"},
		{name: "root path", devs: []specs.LinuxDevice{{Path: "/", Type: "c"}}, wantErr: "invalid path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := specDevices(&specs.Spec{Linux: &specs.Linux{Devices: tt.devs}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, got)
		})
	}
}

func TestNeedsSetupDev(t *testing.T) {
	tests := []struct {
		name   string
		mounts []specs.Mount
		want   bool
	}{
		{"no /dev", []specs.Mount{{Destination: "/proc", Type: "proc"}}, false},
		{"tmpfs /dev", []specs.Mount{{Destination: "/dev", Type: "tmpfs", Options: []string{"nosuid"}}}, true},
		{"tmpfs /dev/ unclean", []specs.Mount{{Destination: "/dev/", Type: "tmpfs"}}, true},
		{"bind type /dev", []specs.Mount{{Destination: "/dev", Type: "bind", Source: "/dev"}}, false},
		{"rbind option /dev", []specs.Mount{{Destination: "/dev", Type: "none", Source: "/dev", Options: []string{"rbind"}}}, false},
		{"/dev/shm only", []specs.Mount{{Destination: "/dev/shm", Type: "tmpfs"}}, false},
	}
	for _, tt := range tests {
		if got := needsSetupDev(tt.mounts); got != tt.want {
			t.Errorf("%s: needsSetupDev = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRootPropagation(t *testing.T) {
	for in, want := range map[string]uintptr{
		"":           0,
		"rslave":     unix.MS_SLAVE | unix.MS_REC,
		"private":    unix.MS_PRIVATE,
		"rshared":    unix.MS_SHARED | unix.MS_REC,
		"unbindable": unix.MS_UNBINDABLE,
	} {
		got, err := rootPropagation(&specs.Spec{Linux: &specs.Linux{RootfsPropagation: in}})
		if err != nil || got != want {
			t.Errorf("rootPropagation(%q) = %#x, %v; want %#x", in, got, err, want)
		}
	}
	if _, err := rootPropagation(&specs.Spec{Linux: &specs.Linux{RootfsPropagation: "bogus"}}); err == nil {
		t.Error("rootPropagation(bogus): want error")
	}
	if got, err := rootPropagation(&specs.Spec{}); got != 0 || err != nil {
		t.Errorf("no linux section: %#x, %v", got, err)
	}
}

func TestNilSpec(t *testing.T) {
	if err := Prepare(nil, t.TempDir()); err == nil {
		t.Error("Prepare(nil): want error")
	}
	if err := Finalize(nil); err == nil {
		t.Error("Finalize(nil): want error")
	}
}

func TestCheckProcMount(t *testing.T) {
	tests := []struct {
		rel, typ string
		ok       bool
	}{
		{"proc", "proc", true},
		{"proc", "tmpfs", false},
		{"proc/cpuinfo", "bind", true},
		{"proc/sys/kernel/ns_last_pid", "bind", true},
		{"proc/self/attr/current", "bind", false},
		{"proc/sys", "tmpfs", false},
		{"procfoo", "tmpfs", true},
		{"etc/proc", "tmpfs", true},
		{"", "tmpfs", true},
	}
	for _, tt := range tests {
		if err := checkProcMount(tt.rel, tt.typ, nil); (err == nil) != tt.ok {
			t.Errorf("checkProcMount(%q, %q) = %v, want ok=%v", tt.rel, tt.typ, err, tt.ok)
		}
	}
}

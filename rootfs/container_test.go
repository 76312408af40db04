//go:build linux

package rootfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// sections splits script output made of "== name" headers.
func sections(out string) map[string]string {
	s := map[string]string{}
	name := ""
	for _, line := range strings.SplitAfter(out, "\n") {
		if h, ok := strings.CutPrefix(line, "== "); ok {
			name = strings.TrimSpace(h)
			s[name] = ""
			continue
		}
		s[name] += line
	}
	return s
}

// parseMountinfo parses a mountinfo dump into mountpoint -> topmost entry.
func parseMountinfo(t *testing.T, text string) map[string]*mountinfo.Info {
	t.Helper()
	infos, err := mountinfo.GetMountsFromReader(strings.NewReader(text), nil)
	if err != nil {
		t.Fatalf("parse mountinfo: %v\n%s", err, text)
	}
	m := map[string]*mountinfo.Info{}
	for _, i := range infos {
		m[i.Mountpoint] = i
	}
	return m
}

func hasOpt(list, opt string) bool { return slices.Contains(strings.Split(list, ","), opt) }

// mountinfoScript dumps the mount table; the other sections are test specific.
const mountinfoScript = `echo "== mountinfo"; cat /proc/self/mountinfo; `

func TestPrepareDefaultSpec(t *testing.T) {
	requireKernelTests(t)
	rootfs := newRootfs(t)
	spec := defaultSpec(t)
	script := mountinfoScript + `
echo "== devnodes"; for d in null zero full random urandom tty; do stat -c '%n %F %t:%T %a %u:%g' /dev/$d; done
echo "== links"; for l in fd stdin stdout stderr ptmx core; do echo "$l -> $(readlink /dev/$l)"; done
echo "== ptmx"; stat -c '%F %t:%T' /dev/pts/ptmx
echo "== procsys"; if echo husk > /proc/sys/kernel/hostname 2>/dev/null; then echo writable; else echo readonly; fi
echo "== sys"; if touch /sys/kernel/husk 2>/dev/null; then echo writable; else echo readonly; fi
echo "== timer_list"; if test -e /proc/timer_list; then wc -c < /proc/timer_list; else echo absent; fi
echo "== kcore"; if test -e /proc/kcore; then wc -c < /proc/kcore; else echo absent; fi
echo "== firmware"; ls -A /sys/firmware | wc -l
echo "== cgroup"; ls /sys/fs/cgroup
echo "== cgroupwrite"; if mkdir /sys/fs/cgroup/husk 2>/dev/null; then echo writable; else echo readonly; fi
echo "== pid"; echo $$
echo "== writes"; touch /dev/shm/x /run/x /rootw && echo ok
echo "== root"; ls -A /
`
	out, stderr, err := runContainer(t, spec, rootfs, script)
	if err != nil {
		t.Fatalf("container failed: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, out)
	}
	sec := sections(out)
	mi := parseMountinfo(t, sec["mountinfo"])

	wantMounts := []struct {
		mp, fstype string
		opts       []string // per-mount options that must be present
	}{
		{"/", "", nil},
		{"/proc", "proc", []string{"nosuid", "nodev", "noexec"}},
		{"/dev", "tmpfs", []string{"nosuid", "rw"}},
		{"/dev/pts", "devpts", []string{"nosuid", "noexec"}},
		{"/dev/shm", "tmpfs", []string{"nosuid", "nodev", "noexec"}},
		{"/dev/mqueue", "mqueue", []string{"nosuid", "nodev", "noexec"}},
		{"/sys", "sysfs", []string{"ro", "nosuid", "nodev", "noexec"}},
		{"/run", "tmpfs", []string{"nosuid", "rw"}},
		{"/proc/sys", "proc", []string{"ro", "nosuid", "nodev", "noexec"}},
		{"/proc/bus", "proc", []string{"ro"}},
		{"/proc/fs", "proc", []string{"ro"}},
		{"/sys/fs/cgroup", "", []string{"ro"}},
		{"/sys/firmware", "tmpfs", []string{"ro"}},
	}
	for _, w := range wantMounts {
		m, ok := mi[w.mp]
		if !ok {
			t.Errorf("no mount on %s", w.mp)
			continue
		}
		if w.fstype != "" && m.FSType != w.fstype {
			t.Errorf("%s: fstype %s, want %s", w.mp, m.FSType, w.fstype)
		}
		for _, o := range w.opts {
			if !hasOpt(m.Options, o) {
				t.Errorf("%s: options %q lack %q", w.mp, m.Options, o)
			}
		}
	}
	if m := mi["/dev/pts"]; m != nil && (!hasOpt(m.VFSOptions, "ptmxmode=666") || !hasOpt(m.VFSOptions, "gid=5")) {
		t.Errorf("/dev/pts super options %q", m.VFSOptions)
	}
	for mp := range mi {
		if strings.HasPrefix(mp, rootfs) || strings.HasPrefix(mp, "/mnt") {
			t.Errorf("host mount %s visible in the container", mp)
		}
	}

	wantNodes := []string{
		"/dev/null character special file 1:3 666 0:0",
		"/dev/zero character special file 1:5 666 0:0",
		"/dev/full character special file 1:7 666 0:0",
		"/dev/random character special file 1:8 666 0:0",
		"/dev/urandom character special file 1:9 666 0:0",
		"/dev/tty character special file 5:0 666 0:0",
	}
	if got := strings.TrimSpace(sec["devnodes"]); got != strings.Join(wantNodes, "\n") {
		t.Errorf("device nodes:\n%s", sec["devnodes"])
	}
	links := sec["links"]
	for _, l := range []string{"fd -> /proc/self/fd\n", "stdin -> /proc/self/fd/0\n", "stdout -> /proc/self/fd/1\n",
		"stderr -> /proc/self/fd/2\n", "ptmx -> pts/ptmx\n"} {
		if !strings.Contains(links, l) {
			t.Errorf("missing link %q in\n%s", l, links)
		}
	}
	_, kcoreErr := os.Stat("/proc/kcore")
	if wantCore := kcoreErr == nil; strings.Contains(links, "core -> /proc/kcore\n") != wantCore {
		t.Errorf("/dev/core link presence should be %v:\n%s", wantCore, links)
	}
	if got := strings.TrimSpace(sec["ptmx"]); got != "character special file 5:2" {
		t.Errorf("/dev/pts/ptmx: %q", got)
	}
	if got := strings.TrimSpace(sec["procsys"]); got != "readonly" {
		t.Errorf("/proc/sys is %s", got)
	}
	if got := strings.TrimSpace(sec["sys"]); got != "readonly" {
		t.Errorf("/sys is %s", got)
	}
	for _, masked := range []string{"timer_list", "kcore"} {
		if got := strings.TrimSpace(sec[masked]); got != "0" && got != "absent" {
			t.Errorf("/proc/%s not masked: %q", masked, got)
		}
	}
	if got := strings.TrimSpace(sec["firmware"]); got != "0" {
		t.Errorf("/sys/firmware has %s entries", got)
	}
	cg := strings.Fields(sec["cgroup"])
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		if !slices.Contains(cg, "cgroup.controllers") {
			t.Errorf("cgroup v2 mount lacks cgroup.controllers: %v", cg)
		}
	} else {
		for _, c := range []string{"memory", "pids", "cpu"} {
			if !slices.Contains(cg, c) {
				t.Errorf("cgroup v1 mount lacks %s: %v", c, cg)
			}
		}
		for mp, m := range mi {
			if strings.HasPrefix(mp, "/sys/fs/cgroup/") && m.FSType == "cgroup" && !hasOpt(m.Options, "ro") {
				t.Errorf("%s is not read-only: %s", mp, m.Options)
			}
		}
	}
	if got := strings.TrimSpace(sec["cgroupwrite"]); got != "readonly" {
		t.Errorf("/sys/fs/cgroup is %s", got)
	}
	if got := strings.TrimSpace(sec["pid"]); got != "1" {
		t.Errorf("shell pid %q, want 1", got)
	}
	if got := strings.TrimSpace(sec["writes"]); got != "ok" {
		t.Errorf("writes failed: %q", got)
	}
	for _, d := range []string{"proc", "sys", "dev", "run"} {
		if !slices.Contains(strings.Fields(sec["root"]), d) {
			t.Errorf("/%s missing from root listing %q", d, sec["root"])
		}
	}
}

func TestPrepareReadonlyRootAndBinds(t *testing.T) {
	requireKernelTests(t)
	rootfs := newRootfs(t)
	host := t.TempDir()
	data := filepath.Join(host, "data")
	sub := filepath.Join(data, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(data, "hello"), "hello from host\n")
	file := filepath.Join(host, "file.txt")
	mustWrite(t, file, "file content\n")
	// A submount in the bind source, to tell "ro" from "rro". It is made in
	// the test's own mount namespace and removed on cleanup.
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount submount: %v", err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	// The image's /etc/resolv.conf is a dangling symlink into /run (a tmpfs).
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/resolv.conf", filepath.Join(rootfs, "etc", "resolv.conf")); err != nil {
		t.Fatal(err)
	}

	mode := os.FileMode(0o600)
	uid, gid := uint32(1000), uint32(1001)
	spec := defaultSpec(t, oci.WithRootFSReadonly(), oci.WithMounts([]specs.Mount{
		{Destination: "/data-ro", Type: "bind", Source: data, Options: []string{"rbind", "ro", "nosuid"}},
		{Destination: "/data-rro", Type: "bind", Source: data, Options: []string{"rbind", "rro"}},
		{Destination: "/data-rw", Source: data, Options: []string{"rbind", "rw", "rprivate"}},
		{Destination: "/etc/file.txt", Type: "bind", Source: file, Options: []string{"bind", "ro"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: file, Options: []string{"bind"}},
		{Destination: "/ro-tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"ro", "nodev", "size=1m"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "size=1m"}},
		{Destination: "/tmp2", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=0700"}},
	}))
	// A tmpfs without mode= takes the mode of the directory it covers.
	mkdirs(t, filepath.Join(rootfs, "tmp"), filepath.Join(rootfs, "tmp2"))
	for _, d := range []string{"tmp", "tmp2"} {
		if err := os.Chmod(filepath.Join(rootfs, d), os.ModeSticky|0o777); err != nil {
			t.Fatal(err)
		}
	}
	spec.Linux.Devices = append(spec.Linux.Devices,
		specs.LinuxDevice{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &uid, GID: &gid},
		specs.LinuxDevice{Path: "/dev/sub/fifo", Type: "p", FileMode: &mode},
	)
	script := mountinfoScript + `
echo "== root"; touch /rootw 2>/dev/null && echo writable || echo readonly
echo "== tmpfs"; touch /dev/shm/x /run/x && echo ok
echo "== rotmp"; touch /ro-tmp/x 2>/dev/null && echo writable || echo readonly
echo "== data"; cat /data-ro/hello /data-rro/hello /data-rw/hello
echo "== ro"; touch /data-ro/x 2>/dev/null && echo writable || echo readonly
echo "== ro-sub"; touch /data-ro/sub/x 2>/dev/null && echo writable || echo readonly
echo "== rro-sub"; touch /data-rro/sub/y 2>/dev/null && echo writable || echo readonly
echo "== rw"; touch /data-rw/rwfile && echo ok
echo "== file"; cat /etc/file.txt; echo x > /etc/file.txt 2>/dev/null && echo writable || echo readonly
echo "== resolv"; cat /etc/resolv.conf; readlink /etc/resolv.conf
echo "== devices"; stat -c '%n %F %t:%T %a %u:%g' /dev/mynull /dev/sub/fifo
echo "== tmpmodes"; stat -c '%n %a' /tmp /tmp2
`
	out, stderr, err := runContainer(t, spec, rootfs, script)
	if err != nil {
		t.Fatalf("container failed: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, out)
	}
	sec := sections(out)
	mi := parseMountinfo(t, sec["mountinfo"])
	want := map[string]string{
		"root":    "readonly",
		"tmpfs":   "ok",
		"rotmp":   "readonly",
		"data":    "hello from host\nhello from host\nhello from host",
		"ro":      "readonly",
		"ro-sub":  "writable", // runc semantics: "ro" does not reach submounts
		"rro-sub": "readonly",
		"rw":      "ok",
		"file":    "file content\nreadonly",
		"resolv":  "file content\n../run/resolv.conf",
		"devices": "/dev/mynull character special file 1:3 600 1000:1001\n/dev/sub/fifo fifo 0:0 600 0:0",
	}
	for k, v := range want {
		if got := strings.TrimSpace(sec[k]); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	if m := mi["/"]; m == nil || !hasOpt(m.Options, "ro") {
		t.Errorf("/ not read-only: %+v", m)
	}
	if m := mi["/data-ro"]; m == nil || !hasOpt(m.Options, "ro") || !hasOpt(m.Options, "nosuid") {
		t.Errorf("/data-ro: %+v", m)
	}
	if m := mi["/data-rw"]; m == nil || !hasOpt(m.Options, "rw") || m.Optional != "" {
		t.Errorf("/data-rw (rw, private): %+v", m)
	}
	if m := mi["/run/resolv.conf"]; m == nil {
		t.Errorf("resolv.conf bind not on /run/resolv.conf (resolved in root)")
	}
	if _, err := os.Stat(filepath.Join(data, "rwfile")); err != nil {
		t.Errorf("write through rw bind not visible on host: %v", err)
	}
}

func TestPrepareSymlinkEscape(t *testing.T) {
	requireKernelTests(t)
	rootfs := newRootfs(t)
	hostDir := t.TempDir()
	hostDir2 := t.TempDir()
	mustWrite(t, filepath.Join(hostDir, "marker"), "host\n")
	file := filepath.Join(t.TempDir(), "src")
	mustWrite(t, file, "bound\n")
	// Absolute and relative symlinks pointing out of the rootfs.
	if err := os.Symlink(hostDir, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(strings.Repeat("../", 20)+strings.TrimPrefix(hostDir2, "/"), filepath.Join(rootfs, "evil2")); err != nil {
		t.Fatal(err)
	}
	spec := defaultSpec(t, oci.WithMounts([]specs.Mount{
		{Destination: "/evil", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		{Destination: "/evil2/sub/file", Type: "bind", Source: file, Options: []string{"bind"}},
	}))
	script := mountinfoScript + `
echo "== write"; echo pwned > /evil/pwned && echo ok
echo "== file"; cat /evil2/sub/file
`
	out, stderr, err := runContainer(t, spec, rootfs, script)
	if err != nil {
		t.Fatalf("container failed: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, out)
	}
	sec := sections(out)
	mi := parseMountinfo(t, sec["mountinfo"])
	if m := mi[hostDir]; m == nil || m.FSType != "tmpfs" {
		t.Errorf("tmpfs not mounted on %s inside the container: %+v", hostDir, m)
	}
	if m := mi[filepath.Join(hostDir2, "sub", "file")]; m == nil {
		t.Errorf("bind not on %s/sub/file inside the container", hostDir2)
	}
	if got := strings.TrimSpace(sec["write"] + sec["file"]); got != "ok\nbound" {
		t.Errorf("container output %q", got)
	}
	// The host directories are untouched...
	for dir, want := range map[string][]string{hostDir: {"marker"}, hostDir2: nil} {
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		if !slices.Equal(names, want) {
			t.Errorf("host dir %s changed: %v", dir, names)
		}
	}
	// ...and the mountpoints were created inside the rootfs instead.
	for _, p := range []string{hostDir, filepath.Join(hostDir2, "sub", "file")} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("mountpoint not created inside rootfs: %v", err)
		}
	}
}

func TestPrepareErrors(t *testing.T) {
	requireKernelTests(t)
	hostDir := t.TempDir()
	hostFile := filepath.Join(hostDir, "f")
	mustWrite(t, hostFile, "x")
	tests := []struct {
		name    string
		setup   func(t *testing.T, rootfs string)
		spec    func(t *testing.T) *specs.Spec
		wantErr []string
	}{
		{
			name: "proc over symlink",
			setup: func(t *testing.T, rootfs string) {
				if err := os.Symlink("/etc", filepath.Join(rootfs, "proc")); err != nil {
					t.Fatal(err)
				}
			},
			spec:    func(t *testing.T) *specs.Spec { return defaultSpec(t) },
			wantErr: []string{"mount proc on /proc", "ordinary directory"},
		},
		{
			name: "sysfs over file",
			setup: func(t *testing.T, rootfs string) {
				mustWrite(t, filepath.Join(rootfs, "sys"), "")
			},
			spec:    func(t *testing.T) *specs.Spec { return defaultSpec(t) },
			wantErr: []string{"mount sysfs on /sys", "ordinary directory"},
		},
		{
			name: "unknown filesystem",
			spec: func(t *testing.T) *specs.Spec {
				return defaultSpec(t, oci.WithMounts([]specs.Mount{{Destination: "/x", Type: "nosuchfs", Source: "none"}}))
			},
			wantErr: []string{"mount nosuchfs on /x", "no such device"},
		},
		{
			name: "bind below /proc",
			spec: func(t *testing.T) *specs.Spec {
				return defaultSpec(t, oci.WithMounts([]specs.Mount{
					{Destination: "/proc/sys/kernel/hostname", Type: "bind", Source: hostFile, Options: []string{"bind"}},
				}))
			},
			wantErr: []string{"mount bind on /proc/sys/kernel/hostname", "inside /proc"},
		},
		{
			name: "non-proc bind on /proc",
			spec: func(t *testing.T) *specs.Spec {
				return &specs.Spec{Root: &specs.Root{}, Linux: &specs.Linux{}, Mounts: []specs.Mount{
					{Destination: "/proc", Type: "bind", Source: hostDir, Options: []string{"rbind"}},
				}}
			},
			wantErr: []string{"mount bind on /proc", "not the root of a procfs"},
		},
		{
			name: "tmpfs on /proc",
			spec: func(t *testing.T) *specs.Spec {
				return &specs.Spec{Root: &specs.Root{}, Linux: &specs.Linux{}, Mounts: []specs.Mount{
					{Destination: "/proc", Type: "tmpfs", Source: "tmpfs"},
				}}
			},
			wantErr: []string{"mount tmpfs on /proc", "cannot be mounted on /proc"},
		},
		{
			name: "missing bind source",
			spec: func(t *testing.T) *specs.Spec {
				return defaultSpec(t, oci.WithMounts([]specs.Mount{
					{Destination: "/data", Type: "bind", Source: filepath.Join(hostDir, "nope"), Options: []string{"rbind"}},
				}))
			},
			wantErr: []string{"mount bind on /data", "no such file"},
		},
		{
			name: "mount over root",
			spec: func(t *testing.T) *specs.Spec {
				return defaultSpec(t, oci.WithMounts([]specs.Mount{{Destination: "/", Type: "tmpfs", Source: "tmpfs"}}))
			},
			wantErr: []string{"mount tmpfs on /", "container root"},
		},
		{
			name: "idmap",
			spec: func(t *testing.T) *specs.Spec {
				return defaultSpec(t, oci.WithMounts([]specs.Mount{
					{Destination: "/data", Type: "bind", Source: hostDir, Options: []string{"rbind", "idmap"}},
				}))
			},
			wantErr: []string{"mount bind on /data", "idmapped"},
		},
		{
			name: "bad rootfsPropagation",
			spec: func(t *testing.T) *specs.Spec {
				s := defaultSpec(t)
				s.Linux.RootfsPropagation = "sideways"
				return s
			},
			wantErr: []string{"rootfsPropagation"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs := newRootfs(t)
			if tt.setup != nil {
				tt.setup(t, rootfs)
			}
			out, stderr, err := runContainer(t, tt.spec(t), rootfs, "echo SHOULD-NOT-RUN")
			if err == nil || strings.Contains(out, "SHOULD-NOT-RUN") {
				t.Fatalf("container ran: err=%v out=%q stderr=%q", err, out, stderr)
			}
			if !strings.HasPrefix(stderr, "PREPARE:") {
				t.Fatalf("want a Prepare error, got stderr %q", stderr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr, w) {
					t.Errorf("error %q lacks %q", strings.TrimSpace(stderr), w)
				}
			}
		})
	}
	// Nothing leaked onto the host.
	if ents, _ := os.ReadDir(hostDir); len(ents) != 1 {
		t.Errorf("host dir changed: %v", ents)
	}
}

func TestPrepareRootfsPropagation(t *testing.T) {
	requireKernelTests(t)
	for _, prop := range []string{"private", "rslave", "rshared"} {
		t.Run(prop, func(t *testing.T) {
			rootfs := newRootfs(t)
			spec := defaultSpec(t)
			spec.Linux.RootfsPropagation = prop
			out, stderr, err := runContainer(t, spec, rootfs, mountinfoScript)
			if err != nil {
				t.Fatalf("container failed: %v\nstderr:\n%s", err, stderr)
			}
			m := parseMountinfo(t, sections(out)["mountinfo"])["/"]
			if m == nil {
				t.Fatal("no / mount")
			}
			if shared := strings.Contains(m.Optional, "shared:"); shared != (prop == "rshared") {
				t.Errorf("/ optional fields %q for %s", m.Optional, prop)
			}
		})
	}
}

func mustWrite(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPrepareUserNamespace runs init in a user namespace without its own
// network namespace: mknod and sysfs are not permitted there (so host devices
// and the host's /sys are bind-mounted), and the mounts inherited from the
// host carry locked flags that the bind remounts must keep.
func TestPrepareUserNamespace(t *testing.T) {
	requireKernelTests(t)
	rootfs := newRootfs(t)
	mode := os.FileMode(0o600)
	spec := defaultSpec(t, oci.WithMounts([]specs.Mount{
		{Destination: "/hostetc", Type: "bind", Source: "/etc", Options: []string{"rbind", "ro", "nosuid", "nodev"}},
	}))
	// A device not on the host cannot be bound; use one that is.
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("needs the host's /dev/net/tun: %v", err)
	}
	spec.Linux.Devices = append(spec.Linux.Devices, specs.LinuxDevice{Path: "/dev/net/tun", Type: "c", Major: 10, Minor: 200, FileMode: &mode})
	hostSys, err := mountsUnder("/sys")
	if err != nil {
		t.Fatal(err)
	}
	script := mountinfoScript + `
echo "== null"; echo hi > /dev/null && cat /dev/null && echo ok
echo "== tun"; stat -c '%F %t:%T' /dev/net/tun
echo "== sys"; if touch /sys/kernel/husk 2>/dev/null; then echo writable; else echo readonly; fi
echo "== etc"; if touch /hostetc/husk 2>/dev/null; then echo writable; else echo readonly; fi
echo "== procsys"; if echo husk > /proc/sys/kernel/hostname 2>/dev/null; then echo writable; else echo readonly; fi
`
	out, stderr, err := runContainerAttr(t, spec, rootfs, script, userNSAttr())
	if err != nil {
		t.Fatalf("container failed: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, out)
	}
	sec := sections(out)
	mi := parseMountinfo(t, sec["mountinfo"])
	for k, v := range map[string]string{"null": "ok", "tun": "character special file a:c8", "sys": "readonly", "etc": "readonly", "procsys": "readonly"} {
		if got := strings.TrimSpace(sec[k]); got != v {
			t.Errorf("%s: got %q, want %q", k, got, v)
		}
	}
	// Device nodes are binds of the host's.
	for _, d := range []string{"/dev/null", "/dev/net/tun", "/dev/tty"} {
		if m := mi[d]; m == nil || m.Root != strings.TrimPrefix(d, "/dev") {
			t.Errorf("%s is not a bind of the host node: %+v", d, m)
		}
	}
	// /sys is the host's sysfs (same device), read-only down to submounts.
	if m := mi["/sys"]; m == nil || len(hostSys) == 0 || m.Major != hostSys[0].Major || m.Minor != hostSys[0].Minor || !hasOpt(m.Options, "ro") {
		t.Errorf("/sys is not a read-only bind of the host sysfs: %+v", m)
	}
	infos, _ := mountinfo.GetMountsFromReader(strings.NewReader(sec["mountinfo"]), nil)
	for _, m := range infos {
		if strings.HasPrefix(m.Mountpoint, "/sys/") && !hasOpt(m.Options, "ro") {
			t.Errorf("%s under /sys is writable: %s", m.Mountpoint, m.Options)
		}
	}
	if m := mi["/hostetc"]; m == nil || !hasOpt(m.Options, "ro") || !hasOpt(m.Options, "nosuid") || !hasOpt(m.Options, "nodev") {
		t.Errorf("/hostetc: %+v", m)
	}
}

// userNSAttr runs the child in a new user namespace (identity-mapped) so the
// mounts it inherits carry locked flags.
func userNSAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}},
	}
}

func TestPrepareLockedFlags(t *testing.T) {
	requireKernelTests(t)
	requireRoot(t)
	src := filepath.Join(scratch(t), "locked")
	mkdirs(t, src)
	if err := unix.Mount("tmpfs", src, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_NOATIME, "size=1m"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     []string
		wantOpts []string // with no error
		wantErr  string
	}{
		{name: "ro keeps locked flags", opts: []string{"rbind", "ro"}, wantOpts: []string{"ro", "nosuid", "nodev", "noexec", "noatime"}},
		{name: "same atime", opts: []string{"rbind", "ro", "noatime"}, wantOpts: []string{"ro", "nosuid", "noatime"}},
		{name: "clearing a locked flag", opts: []string{"rbind", "ro", "suid"}, wantErr: "cannot clear flags locked"},
		{name: "changing locked atime", opts: []string{"rbind", "relatime"}, wantErr: "locked atime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs := newRootfs(t)
			spec := defaultSpec(t, oci.WithMounts([]specs.Mount{{Destination: "/locked", Type: "bind", Source: src, Options: tt.opts}}))
			out, stderr, err := runContainerAttr(t, spec, rootfs, mountinfoScript, userNSAttr())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(stderr, "mount bind on /locked") || !strings.Contains(stderr, tt.wantErr) {
					t.Fatalf("want error %q, got %v, stderr %q", tt.wantErr, err, stderr)
				}
				return
			}
			if err != nil {
				t.Fatalf("container failed: %v\nstderr:\n%s", err, stderr)
			}
			m := parseMountinfo(t, sections(out)["mountinfo"])["/locked"]
			if m == nil {
				t.Fatal("no /locked mount")
			}
			for _, o := range tt.wantOpts {
				if !hasOpt(m.Options, o) {
					t.Errorf("/locked options %q lack %q", m.Options, o)
				}
			}
		})
	}
}

//go:build linux

package integration

// Containment through containerd: seccomp, capabilities, masked and
// read-only paths, rlimits, user namespaces, and the published runc
// escapes (CVE-2019-5736, CVE-2024-21626, symlinked mount targets and
// /dev/null). Most probes run testdata/containment-helper, a static Go
// program built once per run and bind-mounted read-only at /helper; it
// prints "probe result" lines where result is "ok" or an errno name.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var (
	cmHelperOnce sync.Once
	cmHelperPath string
	cmHelperErr  error
	cmHelperSkip string
)

// cmHelper builds the containment helper (once per run, into the run's temp
// dir, which teardown removes) and returns its host path.
func cmHelper(t *testing.T) string {
	t.Helper()
	cmHelperOnce.Do(func() {
		// A prebuilt static helper (the cgroup v2 VM has no Go toolchain).
		if p := os.Getenv("HUSK_TEST_CONTAINMENT_HELPER"); p != "" {
			cmHelperPath = p
			return
		}
		goBin, err := exec.LookPath("go")
		if err != nil {
			if p := filepath.Join(runtimeGOROOT(), "bin", "go"); fileExists(p) {
				goBin = p
			} else {
				cmHelperSkip = "no go toolchain to build testdata/containment-helper"
				return
			}
		}
		dir := filepath.Join(cd.dir, "containment-helper")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			cmHelperErr = err
			return
		}
		out := filepath.Join(dir, "helper")
		cmd := exec.Command(goBin, "build", "-o", out, "./integration/testdata/containment-helper")
		cmd.Dir = repoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			cmHelperErr = fmt.Errorf("build containment helper: %v\n%s", err, b)
			return
		}
		cmHelperPath = out
	})
	if cmHelperSkip != "" {
		t.Skip(cmHelperSkip)
	}
	if cmHelperErr != nil {
		t.Fatal(cmHelperErr)
	}
	return cmHelperPath
}

func runtimeGOROOT() string { return runtime.GOROOT() }

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// cmHelperMount is the ctr flag that puts the helper at /helper.
func cmHelperMount(t *testing.T) []string {
	return []string{"--mount", "type=bind,src=" + cmHelper(t) + ",dst=/helper,options=rbind:ro"}
}

// cmHelperSpecMount is the same as a spec mount, for the Go client.
func cmHelperSpecMount(t *testing.T) specs.Mount {
	return specs.Mount{Destination: "/helper", Type: "bind", Source: cmHelper(t), Options: []string{"rbind", "ro"}}
}

// cmParse turns "key value..." lines into a map (first word -> rest).
func cmParse(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), " ")
		if k != "" {
			m[k] = v
		}
	}
	return m
}

// cmExpect checks probe results; want maps a probe to its expected result.
func cmExpect(t *testing.T, what string, got map[string]string, want map[string]string, out string) {
	t.Helper()
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %s = %q, want %q\nfull output:\n%s", what, k, got[k], w, out)
		}
	}
}

func cmRun(t *testing.T, flags []string, args ...string) (string, string) {
	t.Helper()
	id := uniqueID(t)
	out, errOut, err := ctrRun(t, id, flags, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, truncate(out, 2000))
	}
	assertNoLeaks(t, id)
	return out, errOut
}

// cmDetached starts `ctr run -d` and returns the id and the init's host pid.
func cmDetached(t *testing.T, flags []string, args ...string) (string, int) {
	t.Helper()
	id := uniqueID(t)
	return id, runDetached(t, id, flags, args...)
}

func cmExec(t *testing.T, id string, flags []string, args ...string) (string, string, error) {
	t.Helper()
	return ctrExec(t, id, fmt.Sprintf("x%d", idCounter.Add(1)), flags, args...)
}

// ---------------------------------------------------------------------------
// seccomp

// ordinaryWork is what every profile must let through.
const ordinaryWork = `ls / >/dev/null && cat /etc/passwd >/dev/null && sleep 0.1 && echo ordinary ok`

func TestSeccompDefaultProfile(t *testing.T) {
	script := `/helper syscalls
unshare -U true 2>/dev/null; echo unshare_user_cmd $?
unshare -m true 2>/dev/null; echo unshare_mnt_cmd $?
mount -t tmpfs none /mnt 2>/dev/null; echo mount_cmd $?
` + ordinaryWork + `
grep '^Seccomp:' /proc/self/status | tr -s ':\t' '  '`
	t.Run("default-profile", func(t *testing.T) {
		out, _ := cmRun(t, append(cmHelperMount(t), "--seccomp"), "sh", "-c", script)
		got := cmParse(out)
		cmExpect(t, "ctr run --seccomp", got, map[string]string{
			"keyctl":                   "EPERM",
			"add_key":                  "EPERM",
			"reboot":                   "EPERM",
			"mount":                    "EPERM",
			"personality_no_randomize": "EPERM", // not in the profile's argument allowlist
			"personality_query":        "ok",    // personality(0xffffffff) is
			"personality_linux32":      "ok",
			"socket_inet":              "ok",
			"socket_unix":              "ok",
			"ordinary":                 "ok",
			"Seccomp":                  "2",
		}, out)
		for _, k := range []string{"unshare_user_cmd", "unshare_mnt_cmd", "mount_cmd"} {
			if got[k] == "0" || got[k] == "" {
				t.Errorf("busybox %s under the default profile: exit %q, want a failure\n%s", k, got[k], out)
			}
		}
	})
	// The same probes without a profile: what the profile blocked above
	// works, so it was the filter (not the capabilities) that refused it.
	t.Run("control-without-seccomp", func(t *testing.T) {
		out, _ := cmRun(t, cmHelperMount(t), "sh", "-c", script)
		got := cmParse(out)
		cmExpect(t, "ctr run without --seccomp", got, map[string]string{
			"keyctl":                   "ok",
			"add_key":                  "ok",
			"personality_no_randomize": "ok",
			"unshare_user_cmd":         "0",
			"ordinary":                 "ok",
			"Seccomp":                  "0",
		}, out)
	})
	// Without no_new_privs the filter is loaded while the init still holds
	// CAP_SYS_ADMIN, before the capabilities are dropped.
	t.Run("allow-new-privs", func(t *testing.T) {
		out, _ := cmRun(t, append(cmHelperMount(t), "--seccomp", "--allow-new-privs"), "sh", "-c",
			`/helper syscalls; grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status | tr -s ':\t' '  '`)
		cmExpect(t, "ctr run --seccomp --allow-new-privs", cmParse(out), map[string]string{
			"keyctl":     "EPERM",
			"Seccomp":    "2",
			"NoNewPrivs": "0",
		}, out)
	})
}

func TestSeccompCustomProfile(t *testing.T) {
	eacces := uint(unix.EACCES)
	profile := specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			// socket(AF_INET, ...) only: AF_INET6 and AF_UNIX stay allowed.
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eacces,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo}}},
			// personality(x) with (x & 0xff0000) == ADDR_NO_RANDOMIZE: the
			// query 0xffffffff and PER_LINUX32 do not match.
			{Names: []string{"personality"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0xff0000, ValueTwo: 0x0040000, Op: specs.OpMaskedEqual}}},
			// Unknown names are skipped with a warning, not an error (runc).
			{Names: []string{"husk_no_such_syscall"}, Action: specs.ActErrno},
		},
	}
	b, err := json.Marshal(profile)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "profile.json")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, _ := cmRun(t, append(cmHelperMount(t), "--seccomp", "--seccomp-profile", path), "sh", "-c", "/helper syscalls; "+ordinaryWork)
	cmExpect(t, "custom profile", cmParse(out), map[string]string{
		"socket_inet":              "EACCES",
		"socket_inet6":             "ok",
		"socket_unix":              "ok",
		"personality_no_randomize": "EPERM",
		"personality_query":        "ok",
		"personality_linux32":      "ok",
		"keyctl":                   "ok",
		"mount":                    "EPERM", // capabilities, not the profile
		"ordinary":                 "ok",
	}, out)
}

// ---------------------------------------------------------------------------
// capabilities

// containerd's default capability set (pkg/oci defaultUnixCaps).
var cmDefaultCaps = []int{
	unix.CAP_CHOWN, unix.CAP_DAC_OVERRIDE, unix.CAP_FSETID, unix.CAP_FOWNER, unix.CAP_MKNOD,
	unix.CAP_NET_RAW, unix.CAP_SETGID, unix.CAP_SETUID, unix.CAP_SETFCAP, unix.CAP_SETPCAP,
	unix.CAP_NET_BIND_SERVICE, unix.CAP_SYS_CHROOT, unix.CAP_KILL, unix.CAP_AUDIT_WRITE,
}

// cmStatusField reads a field of a /proc/<pid>/status text.
func cmStatusField(status, field string) string {
	m := regexp.MustCompile(`(?m)^` + field + `:\s*(.*)$`).FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	return strings.TrimSpace(m[1])
}

func cmHexMask(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatalf("parse capability mask %q: %v", s, err)
	}
	return v
}

func TestCapabilities(t *testing.T) {
	self, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	// What the host lets any process keep (this host lacks CAP_SYS_RESOURCE).
	hostBnd := cmHexMask(t, cmStatusField(string(self), "CapBnd"))
	const probe = `/helper syscalls; grep -E '^(Cap(Bnd|Eff|Prm|Inh|Amb)|NoNewPrivs):' /proc/self/status | tr -s ':\t' '  '`

	t.Run("default", func(t *testing.T) {
		out, _ := cmRun(t, cmHelperMount(t), "sh", "-c", probe)
		got := cmParse(out)
		cmExpect(t, "default capabilities", got, map[string]string{
			"mount":       "EPERM",
			"sethostname": "EPERM",
			"reboot":      "EPERM",
			"NoNewPrivs":  "1", // containerd's default spec asks for it
		}, out)
		var want uint64
		for _, c := range cmDefaultCaps {
			want |= 1 << c
		}
		want &= hostBnd
		for _, f := range []string{"CapBnd", "CapEff", "CapPrm"} {
			if v := cmHexMask(t, got[f]); v != want {
				t.Errorf("%s = %016x, want %016x (containerd's default set)", f, v, want)
			}
		}
		if v := cmHexMask(t, got["CapInh"]); v != 0 {
			t.Errorf("CapInh = %016x, want 0", v)
		}
		if v := cmHexMask(t, got["CapAmb"]); v != 0 {
			t.Errorf("CapAmb = %016x, want 0", v)
		}
	})
	t.Run("privileged", func(t *testing.T) {
		out, _ := cmRun(t, append(cmHelperMount(t), "--privileged"), "sh", "-c", probe+"; hostname")
		got := cmParse(out)
		cmExpect(t, "--privileged", got, map[string]string{
			"mount":       "ok",
			"sethostname": "ok",
			"reboot":      "EINVAL", // past the capability check, stopped by the bad magic
		}, out)
		if !strings.Contains(out, "\nhusk-helper\n") {
			t.Errorf("hostname after sethostname in a privileged container is not husk-helper:\n%s", out)
		}
		for _, f := range []string{"CapBnd", "CapEff"} {
			if v := cmHexMask(t, got[f]); v != hostBnd {
				t.Errorf("%s = %016x, want every capability the host allows (%016x)", f, v, hostBnd)
			}
		}
	})
	t.Run("cap-add-drop", func(t *testing.T) {
		out, _ := cmRun(t, append(cmHelperMount(t), "--cap-add", "CAP_SYS_ADMIN", "--cap-drop", "CAP_CHOWN"), "sh", "-c", probe)
		got := cmParse(out)
		cmExpect(t, "--cap-add CAP_SYS_ADMIN", got, map[string]string{"mount": "ok", "sethostname": "ok"}, out)
		eff := cmHexMask(t, got["CapEff"])
		if eff&(1<<unix.CAP_SYS_ADMIN) == 0 || eff&(1<<unix.CAP_CHOWN) != 0 {
			t.Errorf("CapEff = %016x: want CAP_SYS_ADMIN set and CAP_CHOWN cleared", eff)
		}
	})
	t.Run("allow-new-privs", func(t *testing.T) {
		out, _ := cmRun(t, []string{"--allow-new-privs"}, "grep", "NoNewPrivs", "/proc/self/status")
		if v := cmStatusField(out, "NoNewPrivs"); v != "0" {
			t.Errorf("--allow-new-privs: NoNewPrivs = %q, want 0", v)
		}
	})
}

// ---------------------------------------------------------------------------
// masked and read-only paths, read-only root, rlimits

// cmMaskedPaths is containerd's default list, from the spec it generates.
func cmMaskedPaths(t *testing.T) []string {
	t.Helper()
	s, err := oci.GenerateSpec(testCtx(t), nil, &containers.Container{ID: "masked-paths"})
	if err != nil {
		t.Fatal(err)
	}
	return s.Linux.MaskedPaths
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	masked := cmMaskedPaths(t)
	// For each masked path: "<path> <kind> <bytes or entries>".
	var b strings.Builder
	for _, p := range masked {
		fmt.Fprintf(&b, `p=%s; if [ -d $p ]; then echo "$p dir $(ls -A $p | wc -l)"; elif [ -e $p ]; then echo "$p file $(head -c 4096 $p 2>/dev/null | wc -c)"; fi
`, p)
	}
	probe := b.String() + `sh -c 'echo husk-rw > /proc/sys/kernel/hostname' 2>/tmp/err; echo "proc_sys_write $? $(tr ' ' _ </tmp/err)"; hostname`

	t.Run("default", func(t *testing.T) {
		out, _ := cmRun(t, nil, "sh", "-c", probe)
		got := cmParse(out)
		checked := 0
		for _, p := range masked {
			if !fileExists(p) {
				continue // not on this kernel, not in the container either
			}
			v, ok := got[p]
			if !ok {
				t.Errorf("masked path %s exists on the host but not in the container:\n%s", p, out)
				continue
			}
			if f := strings.Fields(v); len(f) != 2 || f[1] != "0" {
				t.Errorf("masked path %s: %q, want empty\n%s", p, v, out)
			}
			checked++
		}
		if checked == 0 {
			t.Errorf("none of the masked paths %v exists on this host: nothing was checked", masked)
		}
		// /proc/sys is a read-only path: the write fails with EROFS.
		if f := strings.Fields(got["proc_sys_write"]); len(f) < 2 || f[0] == "0" || !strings.Contains(f[1], "Read-only") {
			t.Errorf("write to /proc/sys/kernel/hostname: %q, want a failure with Read-only file system\n%s", got["proc_sys_write"], out)
		}
		if strings.Contains(out, "\nhusk-rw\n") {
			t.Errorf("the hostname changed through the read-only /proc/sys:\n%s", out)
		}
	})
	// Control: --privileged drops masked and read-only paths, so the same
	// probes see content and the write works.
	t.Run("privileged-control", func(t *testing.T) {
		out, _ := cmRun(t, []string{"--privileged"}, "sh", "-c", probe)
		got := cmParse(out)
		if v := got["/proc/interrupts"]; fileExists("/proc/interrupts") && strings.HasSuffix(v, " 0") {
			t.Errorf("/proc/interrupts is empty even unmasked (%q): the default test proves nothing", v)
		}
		if f := strings.Fields(got["proc_sys_write"]); len(f) < 1 || f[0] != "0" || !strings.Contains(out, "\nhusk-rw\n") {
			t.Errorf("privileged write to /proc/sys/kernel/hostname: %q, want success\n%s", got["proc_sys_write"], out)
		}
	})
	t.Run("read-only-rootfs", func(t *testing.T) {
		out, _ := cmRun(t, []string{"--read-only"}, "sh", "-c",
			`touch /husk-file 2>/dev/null; echo "root $?"; touch /tmp/husk-file 2>/dev/null; echo "tmp $?"; touch /dev/shm/x; echo "shm $?"; grep ' / ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1 | sed 's/^/rootopt /'`)
		got := cmParse(out)
		cmExpect(t, "--read-only", got, map[string]string{"root": "1", "tmp": "1", "shm": "0", "rootopt": "ro"}, out)
	})
	t.Run("rlimit-nofile", func(t *testing.T) {
		out, _ := cmRun(t, []string{"--rlimit-nofile", "1000:2000"}, "sh", "-c", `echo "soft $(ulimit -Sn)"; echo "hard $(ulimit -Hn)"`)
		cmExpect(t, "--rlimit-nofile 1000:2000", cmParse(out), map[string]string{"soft": "1000", "hard": "2000"}, out)
	})
}

// ---------------------------------------------------------------------------
// user namespaces

func TestUserNamespaceContainment(t *testing.T) {
	if !fileExists("/proc/self/ns/user") {
		t.Skip("the kernel has no user namespaces")
	}
	cmTraversableRunDir(t)
	maps := []string{"--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"}
	id, pid := cmDetached(t, maps, "sh", "-c", "touch /created-inside; exec sleep 1000")
	defer stopContainer(t, id)
	ctx := testCtx(t)
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	created := filepath.Join(upperDir(t, ctx, c), "created-inside")
	if !waitFor(10*time.Second, func() bool { return fileExists(created) }) {
		t.Fatalf("the container's root did not create %s in its rootfs", created)
	}

	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Uid", "Gid"} {
		if ids := strings.Fields(cmStatusField(string(status), f)); len(ids) != 4 || ids[0] != "100000" || ids[1] != "100000" {
			t.Errorf("host %s of the container's init = %v, want 100000 (container root mapped)", f, ids)
		}
	}
	// Root inside has a full set, but only over its own namespace.
	out, errOut, err := cmExec(t, id, nil, "sh", "-c",
		`id; cat /proc/self/uid_map; ls -ln /created-inside | awk '{print "owner", $3}'
grep -E '^[^ ]+ [^ ]+ (proc|sysfs|devpts|mqueue|tmpfs) ' /proc/mounts | awk '{print "fs_" $3 "_" $2, "mounted"}'
echo "keys_bytes $(cat /proc/keys | wc -c)"
echo x > /proc/sys/kernel/hostname 2>/dev/null; echo "proc_sys_write $?"`)
	if err != nil {
		t.Fatalf("exec into the user-namespaced container: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	if !strings.Contains(out, "uid=0(root) gid=0(root)") {
		t.Errorf("id inside = %q, want uid=0(root) gid=0(root)", out)
	}
	if !regexp.MustCompile(`(?m)^\s*0\s+100000\s+65536\s*$`).MatchString(out) {
		t.Errorf("uid_map inside is not 0 100000 65536:\n%s", out)
	}
	got := cmParse(out)
	// The kernel filesystems mount inside the user namespace too, and
	// masked and read-only paths still apply.
	cmExpect(t, "user-namespaced container", got, map[string]string{
		"fs_proc_/proc":         "mounted",
		"fs_sysfs_/sys":         "mounted",
		"fs_devpts_/dev/pts":    "mounted",
		"fs_mqueue_/dev/mqueue": "mounted",
		"fs_tmpfs_/dev":         "mounted",
		"keys_bytes":            "0",
		"proc_sys_write":        "1",
	}, out)
	if got["owner"] != "0" {
		t.Errorf("a file created by root inside is owned by %q inside, want 0\n%s", got["owner"], out)
	}
	// The rootfs is the remapped snapshot: what root creates is owned by
	// the mapped uid on the host.
	var st unix.Stat_t
	if err := unix.Stat(created, &st); err != nil {
		t.Errorf("file created inside not in the snapshot's upper dir: %v", err)
	} else if st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("file created by root inside is owned by %d:%d on the host, want 100000:100000", st.Uid, st.Gid)
	}
	// Combined with the other containment options.
	for _, tc := range []struct {
		name   string
		flags  []string
		script string
		want   map[string]string
	}{
		{
			// Every host device, bound in (mknod is not allowed in a user
			// namespace); /dev/ptmx stays the devpts symlink.
			name: "privileged", flags: []string{"--privileged"},
			script: `echo "ptmx $(readlink /dev/ptmx)"; echo "null $(head -c 3 /dev/zero | wc -c)"`,
			want:   map[string]string{"ptmx": "pts/ptmx", "null": "3"},
		},
		{
			name: "seccomp-read-only", flags: []string{"--seccomp", "--read-only"},
			script: `touch /x 2>/dev/null; echo "root_write $?"; unshare -U true 2>/dev/null; echo "unshare $?"; grep '^Seccomp:' /proc/self/status | tr -s ':\t' '  '`,
			want:   map[string]string{"root_write": "1", "unshare": "1", "Seccomp": "2"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub := uniqueID(t)
			out, _, err := ctrRun(t, sub, append(append([]string{}, maps...), tc.flags...), "sh", "-c", tc.script)
			if err != nil {
				t.Fatalf("%v\nstdout: %s", err, out)
			}
			cmExpect(t, "--uidmap "+strings.Join(tc.flags, " "), cmParse(out), tc.want, out)
			assertNoLeaks(t, sub, id)
		})
	}
	// The exec's own host uid, seen while it runs.
	out, _, err = cmExec(t, id, nil, "sh", "-c", `grep -E '^(Uid|NSpid):' /proc/self/status | tr -s ':\t' '  '`)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	if v := strings.Fields(cmParse(out)["Uid"]); len(v) == 0 || v[0] != "0" {
		t.Errorf("exec sees uid %v inside, want 0", v)
	}
}

// cmTraversableRunDir makes the run's temp dir searchable by others (0711)
// for the test. The container's root in a user namespace is an unprivileged
// host user that must reach the bundle's rootfs, like with runc; containerd
// makes its state dirs 0711 and the bundle group-searchable by the mapped
// gid, but the harness creates the run's top dir 0700.
func cmTraversableRunDir(t *testing.T) {
	t.Helper()
	fi, err := os.Stat(cd.dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o001 != 0 {
		return
	}
	if err := os.Chmod(cd.dir, fi.Mode().Perm()|0o011); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(cd.dir, fi.Mode().Perm()) })
}

// ---------------------------------------------------------------------------
// CVE-2019-5736: overwriting the runtime binary through /proc/<pid>/exe

func cmSHA256(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestEscapeCVE20195736(t *testing.T) {
	before := cmSHA256(t, shimPath)
	defer func() {
		if after := cmSHA256(t, shimPath); after != before {
			t.Errorf("the shim binary %s changed: sha256 %s -> %s", shimPath, before, after)
		}
	}()

	// Container A runs; container B is created (its init, our binary,
	// waits for Start) in A's pid namespace, so A's processes see it.
	idA, pidA := cmDetached(t, cmHelperMount(t), "sleep", "1000")
	defer stopContainer(t, idA)

	ctx := testCtx(t)
	idB := uniqueID(t)
	cB := newContainer(t, ctx, idB,
		oci.WithProcessArgs("true"),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace, Path: fmt.Sprintf("/proc/%d/ns/pid", pidA)}))
	taskB, err := cB.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("create B in A's pid namespace: %v", err)
	}
	defer func() {
		if _, err := taskB.Delete(ctx, containerd.WithProcessKill); err != nil {
			t.Errorf("delete task B: %v", err)
		}
		deleteContainer(t, ctx, cB)
		assertNoLeaks(t, idB, idA)
	}()
	pidB := int(taskB.Pid())
	exeB := fmt.Sprintf("/proc/%d/exe", pidB)

	// From the host, as root: the init's executable cannot be written,
	// and the mount it lives on is read-only (so waiting for the binary to
	// stop running and reopening a saved handle does not help either).
	if fd, err := unix.Open(exeB, unix.O_WRONLY|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		t.Errorf("host root opened %s (the created init's binary) for writing", exeB)
	} else {
		t.Logf("host open of %s for writing: %v (expected)", exeB, err)
	}
	if h, err := unix.Open(exeB, unix.O_PATH|unix.O_CLOEXEC, 0); err != nil {
		t.Errorf("open %s O_PATH: %v", exeB, err)
	} else {
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(h, &sfs); err != nil || sfs.Flags&unix.ST_RDONLY == 0 {
			t.Errorf("the created init's binary is not on a read-only mount (statfs flags %#x, err %v)", sfs.Flags, err)
		}
		unix.Close(h)
	}

	// From inside A: B's init shows up with its pid in A's namespace.
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pidB))
	if err != nil {
		t.Fatal(err)
	}
	nspid := strings.Fields(cmStatusField(string(st), "NSpid"))
	if len(nspid) < 2 {
		t.Fatalf("B's init has no pid in A's namespace: NSpid %v", nspid)
	}
	inA := nspid[len(nspid)-1]
	out, errOut, err := cmExec(t, idA, nil, "/helper", "exe")
	if err != nil {
		t.Fatalf("exec helper in A: %v\nstdout %s\nstderr %s", err, out, errOut)
	}
	sawB := false
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 3 || f[0] != "pid" {
			continue
		}
		for _, kv := range f[2:] {
			k, v, _ := strings.Cut(kv, "=")
			if (k == "open_wr" || k == "reopen_wr" || k == "reopen_trunc") && v == "ok" {
				t.Errorf("a process in the container opened the executable of pid %s for writing (%s): %s", f[1], k, l)
			}
		}
		if f[1] == inA {
			sawB = true
			if !strings.Contains(l, "ro=true") && !strings.Contains(l, "open_path=") {
				t.Errorf("B's init binary, seen from A, is not on a read-only mount: %s", l)
			}
			t.Logf("B's init seen from A: %s", l)
		}
	}
	if !sawB {
		t.Errorf("A's helper did not see B's init (pid %s in A's namespace): the test proved nothing\n%s", inA, out)
	}
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: leaked fds and a cwd outside the container

// cmCheckFds fails if the helper's fd list has anything but stdio and the
// helper's own directory handle.
func cmCheckFds(t *testing.T, what, out string) {
	t.Helper()
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != "fd" {
			continue
		}
		n++
		if f[1] == "0" || f[1] == "1" || f[1] == "2" || f[2] == "self" {
			continue
		}
		t.Errorf("%s: fd %s (%s) is open in the container process: only 0, 1, 2 may be", what, f[1], f[2])
	}
	if n < 3 {
		t.Errorf("%s: the helper listed %d fds, want at least stdio\n%s", what, n, out)
	}
}

func TestEscapeCVE202421626(t *testing.T) {
	helper := cmHelperMount(t)
	t.Run("no-leaked-fds-init", func(t *testing.T) {
		out, _ := cmRun(t, helper, "/helper", "fds")
		cmCheckFds(t, "init", out)
	})
	t.Run("no-leaked-fds-exec", func(t *testing.T) {
		id, _ := cmDetached(t, helper, "sleep", "1000")
		defer stopContainer(t, id)
		out, errOut, err := cmExec(t, id, nil, "/helper", "fds")
		if err != nil {
			t.Fatalf("exec: %v (stderr %q)", err, errOut)
		}
		cmCheckFds(t, "exec", out)
	})
	// A cwd through /proc/self/fd/N of whatever the init may hold open:
	// either refused, or inside the container.
	t.Run("cwd-proc-self-fd", func(t *testing.T) {
		for _, n := range []int{3, 4, 5, 6, 7, 8, 100, 101} {
			id := uniqueID(t)
			cwd := fmt.Sprintf("/proc/self/fd/%d", n)
			out, errOut, err := ctrRun(t, id, append([]string{"--cwd", cwd}, helper...), "/helper", "cwd")
			if err == nil {
				got := cmParse(out)
				if !strings.HasPrefix(got["getcwd"], "/") || got["climb_reaches_root"] != "true" {
					t.Errorf("cwd %s: the process started outside the container root: %q", cwd, out)
				}
			} else {
				t.Logf("cwd %s refused: %s", cwd, strings.TrimSpace(errOut))
			}
			assertNoLeaks(t, id)
		}
	})
	// A container sharing the host's pid namespace can name a host
	// process's cwd or root through /proc: /proc/<containerd>/root/tmp is
	// the host's /tmp. That cwd must be refused (without the check the
	// process starts in the host's /tmp).
	hostTmp := fmt.Sprintf("/proc/%d/root/tmp", cd.cmd.Process.Pid)
	hostPidNS := fmt.Sprintf("pid:/proc/%d/ns/pid", cd.cmd.Process.Pid)
	t.Run("cwd-host-dir-init", func(t *testing.T) {
		id := uniqueID(t)
		out, errOut, err := ctrRun(t, id, append([]string{"--with-ns", hostPidNS, "--cwd", hostTmp}, helper...), "/helper", "cwd")
		if err == nil {
			t.Errorf("a container with cwd %s (the host's /tmp) started; helper says %q", hostTmp, out)
		} else if !strings.Contains(errOut, "outside the container") {
			t.Errorf("cwd %s refused, but not by the root check: %s", hostTmp, errOut)
		}
		assertNoLeaks(t, id)
	})
	t.Run("cwd-host-dir-exec", func(t *testing.T) {
		id, _ := cmDetached(t, append([]string{"--with-ns", hostPidNS}, helper...), "sleep", "1000")
		defer stopContainer(t, id)
		out, errOut, err := cmExec(t, id, []string{"--cwd", hostTmp}, "/helper", "cwd")
		if err == nil {
			t.Errorf("an exec with cwd %s (the host's /tmp) started; helper says %q", hostTmp, out)
		} else if !strings.Contains(errOut, "outside the container") {
			t.Errorf("exec cwd %s refused, but not by the root check: %s", hostTmp, errOut)
		}
		// The container is unharmed.
		if out, _, err := cmExec(t, id, nil, "/helper", "cwd"); err != nil || cmParse(out)["climb_reaches_root"] != "true" {
			t.Errorf("ordinary exec after the refused one: %v %q", err, out)
		}
	})
}

// ---------------------------------------------------------------------------
// symlinks in the rootfs pointing out of it

func TestEscapeSymlinks(t *testing.T) {
	// Host directories the image's symlinks point at. Nothing may be
	// mounted on them or appear in them.
	hostDir, hostDir2 := t.TempDir(), t.TempDir()
	for _, d := range []string{hostDir, hostDir2} {
		if err := os.WriteFile(filepath.Join(d, "host-only"), []byte("host"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "from-source"), []byte("src"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)

	t.Run("mount-targets", func(t *testing.T) {
		id := uniqueID(t)
		mounts := []specs.Mount{
			{Destination: "/abs-link", Type: "bind", Source: src, Options: []string{"rbind", "ro"}},
			{Destination: "/rel-link/sub", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		}
		c := newContainer(t, ctx, id, oci.WithMounts(mounts), oci.WithProcessArgs("sh", "-c",
			`ls /abs-link | sed 's/^/abs /'; grep -q " $(readlink -f /rel-link)/sub tmpfs " /proc/mounts && echo "rel mounted-inside"; readlink -f /abs-link | sed 's/^/absres /'`))
		upper := upperDir(t, ctx, c)
		// /abs-link -> <hostDir> (absolute host path), /rel-link -> ../../../../..<hostDir2>.
		if err := os.Symlink(hostDir, filepath.Join(upper, "abs-link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(strings.Repeat("../", 12)+strings.TrimPrefix(hostDir2, "/"), filepath.Join(upper, "rel-link")); err != nil {
			t.Fatal(err)
		}
		var out syncBuffer
		task, exitc := startTask(t, ctx, c, outputIO(&out, &out))
		es := <-exitc
		if _, err := task.Delete(ctx); err != nil {
			t.Errorf("delete task: %v", err)
		}
		got := cmParse(out.String())
		if es.ExitCode() != 0 || got["abs"] != "from-source" || got["rel"] != "mounted-inside" {
			t.Errorf("mounts on symlinked targets did not land inside the container (exit %d):\n%s", es.ExitCode(), out.String())
		}
		if got["absres"] != hostDir {
			t.Errorf("/abs-link resolves to %q inside, want %q (the symlink, resolved inside the root)", got["absres"], hostDir)
		}
		// The host directories got nothing: no mount, no new entries.
		for _, d := range []string{hostDir, hostDir2} {
			if m := mountsUnder(d); len(m) > 0 {
				t.Errorf("mounts appeared on the host under %s: %v", d, m)
			}
			if ents, _ := os.ReadDir(d); len(ents) != 1 {
				t.Errorf("the host directory %s changed: %v", d, ents)
			}
			// The mount points were created inside the rootfs instead.
			if !fileExists(filepath.Join(upper, d)) {
				t.Errorf("the symlinked mount target was not created inside the rootfs (%s)", filepath.Join(upper, d))
			}
		}
		deleteContainer(t, ctx, c)
		assertNoLeaks(t, id)
	})

	// Masking binds /dev/null over files: a /dev/null that is not the null
	// device (a symlink to a host-controlled or sensitive file, or a file
	// bind-mounted there) is refused, not bound over the masked paths
	// (CVE-2025-31133 style).
	fake := filepath.Join(t.TempDir(), "not-null")
	if err := os.WriteFile(fake, []byte("fake"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		opts  []oci.SpecOpts
		setup func(t *testing.T, upper string)
	}{
		{
			name: "dev-null-bind",
			opts: []oci.SpecOpts{oci.WithMounts([]specs.Mount{{Destination: "/dev/null", Type: "bind", Source: fake, Options: []string{"bind"}}})},
		},
		{
			// No /dev tmpfs: /dev comes from the image, where /dev/null is
			// a symlink to a procfs file.
			name: "dev-null-symlink",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				var ms []specs.Mount
				for _, m := range s.Mounts {
					if m.Destination != "/dev" && !strings.HasPrefix(m.Destination, "/dev/") {
						ms = append(ms, m)
					}
				}
				s.Mounts = ms
				return nil
			}},
			setup: func(t *testing.T, upper string) {
				if err := os.MkdirAll(filepath.Join(upper, "dev"), 0o755); err != nil {
					t.Fatal(err)
				}
				os.Remove(filepath.Join(upper, "dev", "null"))
				if err := os.Symlink("/proc/sys/kernel/core_pattern", filepath.Join(upper, "dev", "null")); err != nil {
					t.Fatal(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			c := newContainer(t, ctx, id, append(tc.opts, oci.WithProcessArgs("true"))...)
			if tc.setup != nil {
				tc.setup(t, upperDir(t, ctx, c))
			}
			task, err := c.NewTask(ctx, cio.NullIO)
			if err == nil {
				task.Delete(ctx, containerd.WithProcessKill)
				t.Fatalf("a container whose /dev/null is not the null device was created (masked paths bound to it)")
			}
			if !strings.Contains(err.Error(), "/dev/null") {
				t.Errorf("error %q does not name /dev/null", err)
			}
			t.Logf("refused (expected): %v", err)
			deleteContainer(t, ctx, c)
			assertNoLeaks(t, id)
		})
	}
}

// ---------------------------------------------------------------------------
// bad input

func TestContainmentBadInput(t *testing.T) {
	big := uint(1 << 20)
	userNS := func(uid, gid []specs.LinuxIDMapping) oci.SpecOpts {
		return oci.WithUserNamespace(uid, gid)
	}
	std := []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	cases := []struct {
		name string
		opts []oci.SpecOpts
		want string
		skip string
	}{
		{
			name: "seccomp-unknown-action",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
					{Names: []string{"mkdir"}, Action: "SCMP_ACT_EXPLODE"}}}
				return nil
			}},
			want: "unknown action",
		},
		{
			name: "seccomp-malformed-errnoret",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
					{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: &big}}}
				return nil
			}},
			want: "errnoret",
		},
		{
			name: "seccomp-unknown-operator",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
					{Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_SOMETIMES"}}}}}
				return nil
			}},
			want: "unknown operator",
		},
		{
			name: "uid-ranges-overlap",
			opts: []oci.SpecOpts{userNS(append(std, specs.LinuxIDMapping{ContainerID: 1000, HostID: 300000, Size: 10}), std)},
			want: "overlap",
		},
		{
			name: "gid-host-ranges-overlap",
			opts: []oci.SpecOpts{userNS(std, append(std, specs.LinuxIDMapping{ContainerID: 70000, HostID: 100010, Size: 10}))},
			want: "overlap",
		},
		{
			name: "mapping-exceeds-host-range",
			opts: []oci.SpecOpts{userNS([]specs.LinuxIDMapping{{ContainerID: 0, HostID: 4294900000, Size: 100000}}, std)},
			want: "range",
		},
		{
			name: "root-not-mapped",
			opts: []oci.SpecOpts{userNS([]specs.LinuxIDMapping{{ContainerID: 1, HostID: 100000, Size: 65536}}, std)},
			want: "uid 0",
		},
		{
			name: "apparmor-without-apparmor",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Process.ApparmorProfile = "husk-test-profile"
				return nil
			}},
			want: "apparmor is not enabled",
			skip: cmIf(fileExists("/sys/kernel/security/apparmor"), "the host runs AppArmor"),
		},
		{
			name: "selinux-without-selinux",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Process.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2"
				return nil
			}},
			want: "selinux is not enabled",
			skip: cmIf(fileExists("/sys/fs/selinux/enforce"), "the host runs SELinux"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip(tc.skip)
			}
			ctx := testCtx(t)
			assertNewTaskRefused(t, ctx, newContainer(t, ctx, uniqueID(t), tc.opts...), []string{tc.want})
		})
	}
	// Through ctr as well: the AppArmor flag users actually type.
	t.Run("ctr-apparmor-profile", func(t *testing.T) {
		if fileExists("/sys/kernel/security/apparmor") {
			t.Skip("the host runs AppArmor")
		}
		id := uniqueID(t)
		_, errOut, err := ctrRun(t, id, []string{"--apparmor-profile", "husk-test-profile"}, "true")
		if err == nil || !strings.Contains(errOut, "AppArmor is not enabled") {
			t.Errorf("ctr run --apparmor-profile on a host without AppArmor: err %v, stderr %q; want a clear error", err, errOut)
		}
		assertNoLeaks(t, id)
	})
}

func cmIf(cond bool, msg string) string {
	if cond {
		return msg
	}
	return ""
}

//go:build linux && amd64

package security

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Seccomp kernel tests need no root: the child sets no_new_privs first.

func errnoRule(names []string, errno unix.Errno, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
	e := uint(errno)
	return specs.LinuxSyscall{Names: names, Action: specs.ActErrno, ErrnoRet: &e, Args: args}
}

func runProbes(t *testing.T, s *specs.LinuxSeccomp, probes []probe) {
	t.Helper()
	out, stderr, state := runHelper(t, "seccomp", map[string]any{"HUSK_TEST_SPEC": s, "HUSK_TEST_PROBES": probes})
	if !state.Success() {
		t.Fatalf("helper failed (%v): %s", state, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] != "loaded" {
		t.Fatalf("unexpected helper output %q", out)
	}
	var res []probeResult
	if err := json.Unmarshal([]byte(lines[1]), &res); err != nil {
		t.Fatalf("helper output %q: %v", lines[1], err)
	}
	for i, p := range probes {
		if res[i].Errno != p.Errno {
			t.Errorf("%s: errno %d (%v), want %d (%v)", p.Name, res[i].Errno, res[i].Errno, p.Errno, p.Errno)
		}
	}
}

func TestSeccompKernel(t *testing.T) {
	const (
		ppid = unix.SYS_GETPPID
		big  = uint64(0x00000001_80000000)
	)
	cmp := func(op specs.LinuxSeccompOperator, v uint64) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			errnoRule([]string{"getppid"}, unix.EXDEV, specs.LinuxSeccompArg{Index: 1, Value: v, Op: op})}}
	}
	p1 := func(name string, arg1 uint64, errno unix.Errno) probe {
		return probe{Name: name, Nr: ppid, Args: [6]uint64{0, arg1}, Errno: errno}
	}
	tests := []struct {
		name   string
		s      *specs.LinuxSeccomp
		probes []probe
	}{
		{
			name: "errno rules, allowed syscalls work",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid"}, Action: specs.ActErrno},
				errnoRule([]string{"mkdir"}, unix.EACCES),
				errnoRule([]string{"unshare"}, unix.EXDEV),
				errnoRule([]string{"keyctl", "no_such_syscall"}, unix.ENOKEY),
			}},
			probes: []probe{
				{Name: "getppid", Nr: ppid, Errno: unix.EPERM},
				{Name: "getpid", Nr: unix.SYS_GETPID},
				{Name: "mkdir", Nr: unix.SYS_MKDIR, Strs: map[int]string{0: "/nonexistent-husk/x"}, Args: [6]uint64{1: 0o755}, Errno: unix.EACCES},
				{Name: "rmdir (allowed, ENOENT from the kernel)", Nr: unix.SYS_RMDIR, Strs: map[int]string{0: "/nonexistent-husk/x"}, Errno: unix.ENOENT},
				{Name: "unshare(0)", Nr: unix.SYS_UNSHARE, Errno: unix.EXDEV},
				{Name: "keyctl(9999)", Nr: unix.SYS_KEYCTL, Args: [6]uint64{9999}, Errno: unix.ENOKEY},
			},
		},
		{
			name: "default errno with defaultErrnoRet",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(uint(unix.ENOSYS)), Syscalls: []specs.LinuxSyscall{
				{Names: goRuntimeSyscalls, Action: specs.ActAllow}}},
			probes: []probe{
				{Name: "getppid", Nr: ppid, Errno: unix.ENOSYS},
				{Name: "getpid", Nr: unix.SYS_GETPID},
			},
		},
		{
			name: "personality blocked only for arg0 == 0xffffffff",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				errnoRule([]string{"personality"}, unix.EPERM, specs.LinuxSeccompArg{Index: 0, Value: 0xffffffff, Op: specs.OpEqualTo})}},
			probes: []probe{
				{Name: "personality(0xffffffff)", Nr: unix.SYS_PERSONALITY, Args: [6]uint64{0xffffffff}, Errno: unix.EPERM},
				// The kernel truncates to unsigned int (a query), the
				// filter compares all 64 bits.
				{Name: "personality(0x1_ffffffff)", Nr: unix.SYS_PERSONALITY, Args: [6]uint64{0x1_ffffffff}},
			},
		},
		{
			name: "socket(AF_INET) denied, AF_UNIX allowed",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				errnoRule([]string{"socket"}, unix.EACCES, specs.LinuxSeccompArg{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo})}},
			probes: []probe{
				{Name: "socket(AF_INET)", Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_INET, unix.SOCK_DGRAM}, Errno: unix.EACCES},
				{Name: "socket(AF_UNIX)", Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_UNIX, unix.SOCK_DGRAM}},
			},
		},
		{
			name: "MASKED_EQ on umask",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				errnoRule([]string{"umask"}, unix.EXDEV, specs.LinuxSeccompArg{Index: 0, Value: 0xffffffff_0000003f, ValueTwo: 0x1_00000012, Op: specs.OpMaskedEqual})}},
			probes: []probe{
				{Name: "umask(0x1_00000012)", Nr: unix.SYS_UMASK, Args: [6]uint64{0x1_00000012}, Errno: unix.EXDEV},
				{Name: "umask(0x1_000001d2)", Nr: unix.SYS_UMASK, Args: [6]uint64{0x1_000001d2}, Errno: unix.EXDEV},
				{Name: "umask(0x12)", Nr: unix.SYS_UMASK, Args: [6]uint64{0x12}},
				{Name: "umask(0x1_00000017)", Nr: unix.SYS_UMASK, Args: [6]uint64{0x1_00000017}},
			},
		},
		{name: "EQ", s: cmp(specs.OpEqualTo, big), probes: []probe{p1("==", big, unix.EXDEV), p1("lo only", 0x80000000, 0), p1("+1", big+1, 0)}},
		{name: "NE", s: cmp(specs.OpNotEqual, big), probes: []probe{p1("==", big, 0), p1("lo only", 0x80000000, unix.EXDEV), p1("hi differs", 0x2_80000000, unix.EXDEV)}},
		{name: "LT", s: cmp(specs.OpLessThan, big), probes: []probe{p1("==", big, 0), p1("-1", big-1, unix.EXDEV), p1("hi greater, lo less", 0x2_00000000, 0), p1("hi less, lo greater", 0xffffffff, unix.EXDEV)}},
		{name: "LE", s: cmp(specs.OpLessEqual, big), probes: []probe{p1("==", big, unix.EXDEV), p1("+1", big+1, 0), p1("0", 0, unix.EXDEV)}},
		{name: "GT", s: cmp(specs.OpGreaterThan, big), probes: []probe{p1("==", big, 0), p1("+1", big+1, unix.EXDEV), p1("hi greater, lo less", 0x2_00000000, unix.EXDEV), p1("hi less, lo greater", 0xffffffff, 0)}},
		{name: "GE", s: cmp(specs.OpGreaterEqual, big), probes: []probe{p1("==", big, unix.EXDEV), p1("-1", big-1, 0), p1("max", ^uint64(0), unix.EXDEV)}},
		{
			name: "args ANDed, rules ORed",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				errnoRule([]string{"getppid"}, unix.EXDEV, specs.LinuxSeccompArg{Index: 0, Value: 1, Op: specs.OpEqualTo}, specs.LinuxSeccompArg{Index: 2, Value: 3, Op: specs.OpEqualTo}),
				errnoRule([]string{"getppid"}, unix.EXDEV, specs.LinuxSeccompArg{Index: 5, Value: 7, Op: specs.OpEqualTo}),
			}},
			probes: []probe{
				{Name: "both", Nr: ppid, Args: [6]uint64{1, 0, 3}, Errno: unix.EXDEV},
				{Name: "first only", Nr: ppid, Args: [6]uint64{1, 0, 4}},
				{Name: "second only", Nr: ppid, Args: [6]uint64{0, 0, 3}},
				{Name: "other rule", Nr: ppid, Args: [6]uint64{5: 7}, Errno: unix.EXDEV},
			},
		},
		{
			name: "LOG allows, TRACE without tracer is ENOSYS",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid"}, Action: specs.ActLog},
				{Names: []string{"unshare"}, Action: specs.ActTrace},
			}},
			probes: []probe{
				{Name: "getppid (LOG)", Nr: ppid},
				{Name: "unshare (TRACE)", Nr: unix.SYS_UNSHARE, Errno: unix.ENOSYS},
			},
		},
		{
			name: "flags TSYNC, LOG, SPEC_ALLOW are accepted",
			s: &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
				Flags:    []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno}}},
			probes: []probe{{Name: "getppid", Nr: ppid, Errno: unix.EPERM}},
		},
		{
			name: "containerd default profile, default caps",
			s:    defaultProfile(defaultCaps),
			probes: []probe{
				{Name: "getpid", Nr: unix.SYS_GETPID},
				{Name: "unshare(0)", Nr: unix.SYS_UNSHARE, Errno: unix.EPERM},
				{Name: "mount", Nr: unix.SYS_MOUNT, Strs: map[int]string{0: "none", 1: "/nonexistent-husk", 2: "tmpfs"}, Errno: unix.EPERM},
				{Name: "keyctl(9999)", Nr: unix.SYS_KEYCTL, Args: [6]uint64{9999}, Errno: unix.EPERM},
				{Name: "reboot(bad magic)", Nr: unix.SYS_REBOOT, Errno: unix.EPERM},
				{Name: "clone3(NULL)", Nr: unix.SYS_CLONE3, Errno: unix.ENOSYS},
				{Name: "socket(AF_UNIX)", Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_UNIX, unix.SOCK_DGRAM}},
				{Name: "socket(AF_ALG)", Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_ALG, unix.SOCK_SEQPACKET}, Errno: unix.EPERM},
				{Name: "socket(AF_VSOCK)", Nr: unix.SYS_SOCKET, Args: [6]uint64{unix.AF_VSOCK, unix.SOCK_STREAM}, Errno: unix.EPERM},
				{Name: "personality(0xffffffff)", Nr: unix.SYS_PERSONALITY, Args: [6]uint64{0xffffffff}},
				{Name: "personality(READ_IMPLIES_EXEC)", Nr: unix.SYS_PERSONALITY, Args: [6]uint64{0x0400000}, Errno: unix.EPERM},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runProbes(t, tc.s, tc.probes)
		})
	}
}

// goRuntimeSyscalls keep a Go child alive under a deny-by-default filter
// long enough to report its results.
var goRuntimeSyscalls = []string{
	"write", "exit", "exit_group", "futex", "rt_sigreturn", "rt_sigprocmask", "rt_sigaction",
	"sigaltstack", "mmap", "munmap", "madvise", "mprotect", "nanosleep", "sched_yield",
	"tgkill", "gettid", "getpid", "clock_gettime", "clock_nanosleep", "epoll_pwait", "epoll_wait", "read",
}

func TestSeccompKernelKillProcess(t *testing.T) {
	for _, tc := range []struct {
		name   string
		allow  bool
		signal syscall.Signal
	}{{"getppid denied: SIGSYS", false, unix.SIGSYS}, {"control: getppid allowed", true, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			names := append([]string{}, goRuntimeSyscalls...)
			if tc.allow {
				names = append(names, "getppid")
			}
			s := &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{{Names: names, Action: specs.ActAllow}}}
			out, stderr, state := runHelper(t, "seccomp", map[string]any{"HUSK_TEST_SPEC": s, "HUSK_TEST_PROBES": []probe{{Name: "getppid", Nr: unix.SYS_GETPPID}}})
			if !strings.HasPrefix(out, "loaded\n") {
				t.Fatalf("filter not loaded; stdout %q stderr %q", out, stderr)
			}
			ws := state.Sys().(syscall.WaitStatus)
			if tc.signal == 0 {
				if !state.Success() {
					t.Fatalf("control child failed: %v, stderr %s", state, stderr)
				}
				return
			}
			if !ws.Signaled() || ws.Signal() != tc.signal {
				t.Fatalf("child state %v, want killed by %v; stdout %q", state, tc.signal, out)
			}
		})
	}
}

func TestSeccompKernelTrap(t *testing.T) {
	// SECCOMP_RET_TRAP delivers SIGSYS to the thread; the Go runtime treats
	// an unexpected SIGSYS as fatal and says so.
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActTrap}}}
	out, stderr, state := runHelper(t, "seccomp", map[string]any{"HUSK_TEST_SPEC": s, "HUSK_TEST_PROBES": []probe{{Name: "getppid", Nr: unix.SYS_GETPPID}}})
	if state.Success() || !strings.Contains(stderr, "SIGSYS") || !strings.HasPrefix(out, "loaded\n") {
		t.Fatalf("state %v, stdout %q, stderr %q: want a SIGSYS crash", state, out, stderr)
	}
}

func TestSeccompKernelNotify(t *testing.T) {
	for _, flags := range [][]specs.LinuxSeccompFlag{
		nil,
		// TSYNC with a listener also needs TSYNC_ESRCH (added by the compiler).
		{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagWaitKillableRecv},
	} {
		t.Run(fmt.Sprint(flags), func(t *testing.T) {
			out, stderr, state := runHelper(t, "notify", map[string]any{"HUSK_TEST_FLAGS": flags})
			if !state.Success() || !strings.Contains(out, "notify ok") {
				t.Fatalf("state %v, stdout %q, stderr %q", state, out, stderr)
			}
		})
	}
}

func capMask(t *testing.T, names ...string) string {
	var m uint64
	for _, n := range names {
		c, ok := capabilityNumber(n)
		if !ok {
			t.Fatalf("no capability %s", n)
		}
		m |= 1 << c
	}
	return fmt.Sprintf("%016x", m)
}

func TestApplyUserAndCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: bounding-set drop (CAP_SETPCAP), setgroups/setresuid to another user and capset")
	}
	umask := uint32(0o027)
	small := &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_NOT_A_CAP"},
		Effective:   []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"},
		Permitted:   []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE"},
	}
	user := specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{1001, 1002}, Umask: &umask}
	zero := fmt.Sprintf("%016x", 0)
	tests := []struct {
		name     string
		user     specs.User
		caps     *specs.LinuxCapabilities
		exec     bool
		seccomp  *specs.LinuxSeccomp
		want     map[string]string
		warnings []string
	}{
		{
			name: "uid 1000, small set (thread state)",
			user: user, caps: small,
			want: map[string]string{
				"Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000", "Groups": "1001 1002", "Umask": "0027",
				"CapBnd": capMask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
				"CapEff": capMask(t, "CAP_KILL", "CAP_NET_BIND_SERVICE"),
				"CapPrm": capMask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
				"CapInh": capMask(t, "CAP_NET_BIND_SERVICE"),
				"CapAmb": capMask(t, "CAP_NET_BIND_SERVICE"),
			},
			warnings: []string{`unknown capability "CAP_NOT_A_CAP" ignored`},
		},
		{
			name: "uid 1000, small set, after execve",
			user: user, caps: small, exec: true,
			want: map[string]string{
				"Uid": "1000 1000 1000 1000", "Gid": "1000 1000 1000 1000", "Groups": "1001 1002", "Umask": "0027",
				"CapBnd": capMask(t, "CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"),
				// Non-root execve: permitted and effective become the ambient set.
				"CapEff":     capMask(t, "CAP_NET_BIND_SERVICE"),
				"CapPrm":     capMask(t, "CAP_NET_BIND_SERVICE"),
				"CapInh":     capMask(t, "CAP_NET_BIND_SERVICE"),
				"CapAmb":     capMask(t, "CAP_NET_BIND_SERVICE"),
				"NoNewPrivs": "0", "Seccomp": "0",
			},
		},
		{
			name: "nil caps: nothing, groups dropped",
			user: specs.User{UID: 0, GID: 0},
			want: map[string]string{"Uid": "0 0 0 0", "Groups": "", "CapBnd": zero, "CapEff": zero, "CapPrm": zero, "CapInh": zero, "CapAmb": zero},
		},
		{
			name:     "ambient not in inheritable: warning",
			user:     specs.User{UID: 1000, GID: 1000},
			caps:     &specs.LinuxCapabilities{Bounding: []string{"CAP_KILL"}, Permitted: []string{"CAP_KILL"}, Ambient: []string{"CAP_KILL"}},
			want:     map[string]string{"Uid": "1000 1000 1000 1000", "CapPrm": capMask(t, "CAP_KILL"), "CapAmb": zero},
			warnings: []string{"cannot raise ambient capability 5"},
		},
		{
			name: "runc order without no_new_privs: default seccomp profile first, then uid 1000, execve",
			user: specs.User{UID: 1000, GID: 1000},
			caps: &specs.LinuxCapabilities{Bounding: defaultCaps, Effective: defaultCaps, Permitted: defaultCaps},
			exec: true, seccomp: defaultProfile(defaultCaps),
			want: map[string]string{"Uid": "1000 1000 1000 1000", "CapBnd": capMask(t, defaultCaps...), "CapEff": zero, "CapPrm": zero, "NoNewPrivs": "0", "Seccomp": "2"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]any{"HUSK_TEST_USER": tc.user, "HUSK_TEST_CAPS": tc.caps}
			if tc.exec {
				env["HUSK_TEST_EXEC"] = "1"
			}
			if tc.seccomp != nil {
				env["HUSK_TEST_SECCOMP_FIRST"] = tc.seccomp
			}
			out, stderr, state := runHelper(t, "caps", env)
			if !state.Success() {
				t.Fatalf("helper: %v: %s", state, stderr)
			}
			status := out
			if !tc.exec {
				var res capsResult
				if err := json.Unmarshal([]byte(out), &res); err != nil {
					t.Fatalf("%q: %v", out, err)
				}
				if res.Err != "" {
					t.Fatalf("ApplyUserAndCapabilities: %s", res.Err)
				}
				if strings.Join(res.Warnings, "\n") != strings.Join(tc.warnings, "\n") {
					if len(res.Warnings) != len(tc.warnings) || !strings.Contains(res.Warnings[0], tc.warnings[0]) {
						t.Errorf("warnings %q, want %q", res.Warnings, tc.warnings)
					}
				}
				status = res.Status
			}
			for k, want := range tc.want {
				if got := statusField(status, k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func TestSetRlimitsKernel(t *testing.T) {
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Max < 300 {
		t.Skipf("RLIMIT_NOFILE hard limit %d too low for the test", cur.Max)
	}
	steps := [][]specs.POSIXRlimit{
		{{Type: "RLIMIT_NOFILE", Soft: 100, Hard: 200}},
		// Raising the hard limit needs CAP_SYS_RESOURCE: without it the hard
		// limit stays 200 and the soft one becomes min(250, 200).
		{{Type: "RLIMIT_NOFILE", Soft: 250, Hard: 300}},
	}
	out, stderr, state := runHelper(t, "rlimits", map[string]any{"HUSK_TEST_RLIMITS": steps})
	if !state.Success() {
		t.Fatalf("helper: %v: %s", state, stderr)
	}
	var res rlimitResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	if res.Err != "" {
		t.Fatalf("SetRlimits: %s", res.Err)
	}
	if res.SysResource {
		if res.Soft != 250 || res.Hard != 300 || len(res.Warnings) != 0 {
			t.Fatalf("with CAP_SYS_RESOURCE: got %d/%d warnings %q, want 250/300 and no warning", res.Soft, res.Hard, res.Warnings)
		}
		return
	}
	if res.Soft != 200 || res.Hard != 200 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "RLIMIT_NOFILE") {
		t.Fatalf("without CAP_SYS_RESOURCE: got %d/%d warnings %q, want 200/200 and one warning", res.Soft, res.Hard, res.Warnings)
	}
	t.Logf("warning: %s", res.Warnings[0])
}

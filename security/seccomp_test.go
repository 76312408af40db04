//go:build linux && amd64

package security

import (
	"strings"
	"testing"
	"time"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func uintp(v uint) *uint { return &v }

var x86Arches = []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}

// defaultCaps is containerd's default capability set (oci.WithDefaultSpec).
var defaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

func defaultProfile(bounding []string) *specs.LinuxSeccomp {
	sp := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
	return cseccomp.DefaultProfile(sp)
}

// compileChecked compiles s and checks the program structurally and against
// the reference semantics of the normalized form.
func compileChecked(t testing.TB, s *specs.LinuxSeccomp) (*Filter, *program, []string) {
	t.Helper()
	f, warnings, err := CompileSeccomp(s)
	if err != nil {
		t.Fatalf("CompileSeccomp: %v", err)
	}
	p, _, err := normalize(s)
	if err != nil {
		t.Fatalf("normalize: %v", err)
	}
	if err := verifyProgram(f.insns); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, d := range p.probeInputs(1 << 20) {
		got, err := runBPF(f.insns, d)
		if err != nil {
			t.Fatalf("run %+v: %v", d, err)
		}
		if want := p.eval(d); got != want {
			t.Fatalf("input %+v: BPF returns %#x, reference %#x", d, got, want)
		}
	}
	return f, p, warnings
}

func nrOf(t testing.TB, table map[string]uint32, name string) uint32 {
	t.Helper()
	nr, ok := table[name]
	if !ok {
		t.Fatalf("no syscall %q", name)
	}
	return nr
}

func TestCompileErrorsAndWarnings(t *testing.T) {
	allowGetpid := []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow}}
	tests := []struct {
		name     string
		s        specs.LinuxSeccomp
		err      string // substring; "" = success
		warnings []string
	}{
		{"ok", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: allowGetpid}, "", nil},
		{"empty default action", specs.LinuxSeccomp{}, "defaultAction: empty action", nil},
		{"unknown default action", specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}, `unknown action "SCMP_ACT_NOPE"`, nil},
		{"notify default", specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "cannot be the default action", nil},
		{"unknown rule action", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: "X"}}}, `syscalls[0] [getpid]: unknown action "X"`, nil},
		{"unknown operator", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_XX"}}}}}, `unknown operator "SCMP_CMP_XX"`, nil},
		{"arg index", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}}, "index 6 out of range", nil},
		{"errno range", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(70000)}}}, "errnoRet 70000 out of range", nil},
		{"unknown arch", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}}, `unknown architecture "SCMP_ARCH_VAX"`, nil},
		{"only foreign arches", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchAARCH64}}, "none of the architectures", nil},
		{"foreign arch skipped", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64}}, "", []string{"SCMP_ARCH_AARCH64 cannot occur"}},
		{"unknown flag", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NOPE"}}, `unknown flag "SECCOMP_FILTER_FLAG_NOPE"`, nil},
		{"malformed syscall name", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"get pid"}, Action: specs.ActErrno}}}, `malformed syscall name "get pid"`, nil},
		{"notify on write", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActNotify}}}, "cannot be used for the write syscall", nil},
		{"unknown syscall skipped", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid", "no_such_call", "no_such_call"}, Action: specs.ActAllow}}}, "", []string{`unknown syscall "no_such_call" skipped`}},
		{"errnoRet ignored", specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow, ErrnoRet: uintp(5)}}}, "", []string{"errnoRet is ignored"}},
		{"wait killable without notify", specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}}, "", []string{"WAIT_KILLABLE_RECV ignored"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, warnings, err := CompileSeccomp(&tc.s)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want containing %q", err, tc.err)
				}
				if f != nil {
					t.Fatalf("filter returned with error")
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if len(warnings) != len(tc.warnings) {
				t.Fatalf("warnings = %q, want %d matching %q", warnings, len(tc.warnings), tc.warnings)
			}
			for i, w := range tc.warnings {
				if !strings.Contains(warnings[i], w) {
					t.Errorf("warning %q does not contain %q", warnings[i], w)
				}
			}
		})
	}
	if f, w, err := CompileSeccomp(nil); f != nil || w != nil || err != nil {
		t.Fatalf("nil profile: %v %v %v", f, w, err)
	}
	if err := (*Filter)(nil).Load(); err != nil {
		t.Fatalf("nil filter Load: %v", err)
	}
}

func TestCompileSemantics(t *testing.T) {
	nr64 := func(n string) uint32 { return nrOf(t, syscallsX86_64, n) }
	type probe struct {
		arch uint32
		nr   uint32
		args [6]uint64
		want uint32
	}
	const (
		allow = unix.SECCOMP_RET_ALLOW
		eperm = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		kill  = unix.SECCOMP_RET_KILL_PROCESS
		x64   = unix.AUDIT_ARCH_X86_64
		i386  = unix.AUDIT_ARCH_I386
	)
	arg := func(i int, v uint64) (a [6]uint64) { a[i] = v; return }
	cmp := func(op specs.LinuxSeccompOperator, v uint64) []specs.LinuxSyscall {
		return []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 1, Value: v, Op: op}}}}
	}
	big := uint64(0x00000001_80000000)
	tests := []struct {
		name   string
		s      specs.LinuxSeccomp
		flags  uint
		probes []probe
	}{
		{
			name: "actions",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(uint(unix.ENOSYS)), Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid"}, Action: specs.ActAllow},
				{Names: []string{"getppid"}, Action: specs.ActKill},
				{Names: []string{"getuid"}, Action: specs.ActKillThread},
				{Names: []string{"getgid"}, Action: specs.ActKillProcess},
				{Names: []string{"geteuid"}, Action: specs.ActTrap},
				{Names: []string{"getegid"}, Action: specs.ActErrno},
				{Names: []string{"gettid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))},
				{Names: []string{"uname"}, Action: specs.ActTrace},
				{Names: []string{"getpgrp"}, Action: specs.ActTrace, ErrnoRet: uintp(7)},
				{Names: []string{"getsid"}, Action: specs.ActLog},
				{Names: []string{"sync"}, Action: specs.ActNotify},
				{Names: []string{"mkdir"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))}, // == default: dropped
			}},
			flags: unix.SECCOMP_FILTER_FLAG_NEW_LISTENER,
			probes: []probe{
				{x64, nr64("getpid"), [6]uint64{}, allow},
				{x64, nr64("getppid"), [6]uint64{}, unix.SECCOMP_RET_KILL_THREAD},
				{x64, nr64("getuid"), [6]uint64{}, unix.SECCOMP_RET_KILL_THREAD},
				{x64, nr64("getgid"), [6]uint64{}, kill},
				{x64, nr64("geteuid"), [6]uint64{}, unix.SECCOMP_RET_TRAP},
				{x64, nr64("getegid"), [6]uint64{}, eperm},
				{x64, nr64("gettid"), [6]uint64{}, unix.SECCOMP_RET_ERRNO | uint32(unix.EXDEV)},
				{x64, nr64("uname"), [6]uint64{}, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
				{x64, nr64("getpgrp"), [6]uint64{}, unix.SECCOMP_RET_TRACE | 7},
				{x64, nr64("getsid"), [6]uint64{}, unix.SECCOMP_RET_LOG},
				{x64, nr64("sync"), [6]uint64{}, unix.SECCOMP_RET_USER_NOTIF},
				{x64, nr64("mkdir"), [6]uint64{}, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
				{x64, nr64("read"), [6]uint64{}, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
			},
		},
		{
			name: "native arch only: x32 and i386 are bad arch",
			s:    specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno}}},
			probes: []probe{
				{x64, nr64("getppid"), [6]uint64{}, eperm},
				{x64, nr64("getpid"), [6]uint64{}, allow},
				{x64, nr64("getpid") | x32SyscallBit, [6]uint64{}, kill},
				{x64, 0xffffffff, [6]uint64{}, kill},
				{i386, 20, [6]uint64{}, kill},
				{0xc00000b7, 172, [6]uint64{}, kill},
			},
		},
		{
			name: "x86_64 + x86 + x32",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: x86Arches, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid", "socketcall", "readv"}, Action: specs.ActAllow},
			}},
			probes: []probe{
				{x64, nr64("getpid"), [6]uint64{}, allow},
				{x64, nr64("readv"), [6]uint64{}, allow},
				{x64, nr64("getpid") | x32SyscallBit, [6]uint64{}, allow},
				{x64, 515 | x32SyscallBit, [6]uint64{}, allow},             // x32 readv
				{x64, nr64("readv") | x32SyscallBit, [6]uint64{}, eperm},   // 64-only number under x32
				{x64, nr64("getppid") | x32SyscallBit, [6]uint64{}, eperm}, // x32, not allowed
				{i386, 20, [6]uint64{}, allow},                             // i386 getpid
				{i386, 102, [6]uint64{}, allow},                            // i386 socketcall
				{i386, 39, [6]uint64{}, eperm},                             // i386 mkdir
				{0xc00000b7, nr64("getpid"), [6]uint64{}, kill},            // aarch64
			},
		},
		{
			name: "x32 only",
			s:    specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchX32}},
			probes: []probe{
				{x64, nr64("getpid"), [6]uint64{}, kill},
				{x64, nr64("getpid") | x32SyscallBit, [6]uint64{}, allow},
			},
		},
		{
			name: "EQ 64-bit",
			s:    specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: x86Arches, Syscalls: cmp(specs.OpEqualTo, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), eperm},
				{x64, nr64("getppid"), arg(1, 0x80000000), allow},
				{x64, nr64("getppid"), arg(1, big+1), allow},
				{x64, nr64("getppid"), arg(0, big), allow},
				{i386, 64, arg(1, 0x80000000), eperm}, // low word only
				{x64, nr64("getppid") | x32SyscallBit, arg(1, 0x80000000), eperm},
			},
		},
		{
			name: "NE", s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: cmp(specs.OpNotEqual, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), allow},
				{x64, nr64("getppid"), arg(1, 0x80000000), eperm},
				{x64, nr64("getppid"), arg(1, 0x00000002_80000000), eperm},
			},
		},
		{
			name: "GT", s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: cmp(specs.OpGreaterThan, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), allow},
				{x64, nr64("getppid"), arg(1, big+1), eperm},
				{x64, nr64("getppid"), arg(1, 0x00000002_00000000), eperm},
				{x64, nr64("getppid"), arg(1, 0xffffffff), allow},
				{x64, nr64("getppid"), arg(1, 0x00000001_7fffffff), allow},
			},
		},
		{
			name: "GE", s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: cmp(specs.OpGreaterEqual, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), eperm},
				{x64, nr64("getppid"), arg(1, big-1), allow},
				{x64, nr64("getppid"), arg(1, ^uint64(0)), eperm},
			},
		},
		{
			name: "LT", s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: cmp(specs.OpLessThan, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), allow},
				{x64, nr64("getppid"), arg(1, big-1), eperm},
				{x64, nr64("getppid"), arg(1, 0xffffffff), eperm},
				{x64, nr64("getppid"), arg(1, 0x00000002_00000000), allow},
				{x64, nr64("getppid"), arg(1, 0x00000001_90000000), allow},
			},
		},
		{
			name: "LE", s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: cmp(specs.OpLessEqual, big)},
			probes: []probe{
				{x64, nr64("getppid"), arg(1, big), eperm},
				{x64, nr64("getppid"), arg(1, big+1), allow},
				{x64, nr64("getppid"), arg(1, 0), eperm},
			},
		},
		{
			name: "MASKED_EQ",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: x86Arches, Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActErrno,
				Args: []specs.LinuxSeccompArg{{Index: 2, Value: 0xff000000_000000f0, ValueTwo: 0x01000000_00000010, Op: specs.OpMaskedEqual}}}}},
			probes: []probe{
				{x64, nr64("getppid"), arg(2, 0x01000000_00000010), eperm},
				{x64, nr64("getppid"), arg(2, 0x01ffffff_ffffff1f), eperm},
				{x64, nr64("getppid"), arg(2, 0x02000000_00000010), allow},
				{x64, nr64("getppid"), arg(2, 0x01000000_00000020), allow},
				{i386, 64, arg(2, 0x00000000_00000010), eperm},
			},
		},
		{
			name: "AND across arguments, OR across rules",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 1, Value: 2, Op: specs.OpEqualTo}}},
				{Names: []string{"getppid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 3, Value: 9, Op: specs.OpEqualTo}}},
			}},
			probes: []probe{
				{x64, nr64("getppid"), [6]uint64{1, 2}, eperm},
				{x64, nr64("getppid"), [6]uint64{1, 3}, allow},
				{x64, nr64("getppid"), [6]uint64{0, 2}, allow},
				{x64, nr64("getppid"), [6]uint64{0, 0, 0, 9}, eperm},
			},
		},
		{
			name: "repeated argument index: runc ORs the conditions",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}, {Index: 0, Value: 10, Op: specs.OpEqualTo}}},
			}},
			probes: []probe{
				{x64, nr64("socket"), arg(0, 1), allow},
				{x64, nr64("socket"), arg(0, 10), allow},
				{x64, nr64("socket"), arg(0, 2), eperm},
			},
		},
		{
			name: "unconditional rule wins, first conditional match wins",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(1), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
				{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(2)},
				{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(3), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 5, Op: specs.OpGreaterThan}}},
				{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(4), Args: []specs.LinuxSeccompArg{{Index: 0, Value: 9, Op: specs.OpGreaterThan}}},
			}},
			probes: []probe{
				{x64, nr64("getppid"), arg(0, 1), unix.SECCOMP_RET_ERRNO | 2},
				{x64, nr64("getpid"), arg(0, 10), unix.SECCOMP_RET_ERRNO | 3},
				{x64, nr64("getpid"), arg(0, 5), allow},
			},
		},
		{
			name:  "flags",
			s:     specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow}},
			flags: unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
		},
		{
			name: "notify with TSYNC and WAIT_KILLABLE_RECV",
			s: specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagWaitKillableRecv},
				Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}}},
			flags: unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _, _ := compileChecked(t, &tc.s)
			if f.Flags() != tc.flags {
				t.Errorf("flags = %s, want %s", flagNames(f.Flags()), flagNames(tc.flags))
			}
			for _, pr := range tc.probes {
				got, err := runBPF(f.insns, seccompData{nr: pr.nr, arch: pr.arch, args: pr.args})
				if err != nil {
					t.Fatal(err)
				}
				if got != pr.want {
					t.Errorf("arch %#x nr %#x args %#x: got %#x, want %#x", pr.arch, pr.nr, pr.args, got, pr.want)
				}
			}
		})
	}
}

// TestLongJumps forces jumps beyond the 8-bit conditional offsets: many
// syscalls with large, distinct conditional bodies.
func TestLongJumps(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: x86Arches}
	names := []string{"read", "write", "openat", "close", "getpid", "getppid", "uname", "mkdir", "socket", "personality", "unshare", "keyctl"}
	for i, n := range names {
		for j := 0; j < 12; j++ {
			s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{n}, Action: specs.ActAllow,
				Args: []specs.LinuxSeccompArg{
					{Index: uint(j % 6), Value: uint64(i*1000+j) << 20, Op: specs.OpGreaterEqual},
					{Index: uint((j + 1) % 6), Value: uint64(j)<<33 | 7, Op: specs.OpNotEqual},
				}})
		}
	}
	f, _, _ := compileChecked(t, s)
	ja := 0
	for _, in := range f.insns {
		if in.Code == opJa {
			ja++
		}
	}
	if ja == 0 {
		t.Fatalf("expected trampolines in a %d-instruction program", len(f.insns))
	}
	t.Logf("%d instructions, %d ja trampolines", len(f.insns), ja)
}

func TestTooLarge(t *testing.T) {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno}
	for j := 0; j < 1000; j++ {
		s.Syscalls = append(s.Syscalls, specs.LinuxSyscall{Names: []string{"getppid"}, Action: specs.ActAllow,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: uint64(j) << 32, Op: specs.OpEqualTo}}})
	}
	_, _, err := CompileSeccomp(s)
	if err == nil || !strings.Contains(err.Error(), "BPF_MAXINSNS") {
		t.Fatalf("err = %v, want BPF_MAXINSNS error", err)
	}
}

func TestCompileDefaultProfile(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps []string
	}{{"default caps", defaultCaps}, {"all caps", append(append([]string{}, defaultCaps...), "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_PTRACE", "CAP_BPF")}} {
		t.Run(tc.name, func(t *testing.T) {
			prof := defaultProfile(tc.caps)
			start := time.Now()
			f, _, warnings := compileChecked(t, prof)
			t.Logf("%d instructions (limit %d), compile+check %v, %d warnings: %q", len(f.insns), MaxInstructions, time.Since(start), len(warnings), warnings)
			nr := func(n string) uint32 { return nrOf(t, syscallsX86_64, n) }
			eperm := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
			admin := len(tc.caps) > len(defaultCaps)
			checks := []struct {
				nr   uint32
				args [6]uint64
				want uint32
				adm  uint32
			}{
				{nr("read"), [6]uint64{}, unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ALLOW},
				{nr("mount"), [6]uint64{}, eperm, unix.SECCOMP_RET_ALLOW},
				{nr("keyctl"), [6]uint64{}, eperm, eperm},
				{nr("reboot"), [6]uint64{}, eperm, unix.SECCOMP_RET_ALLOW},
				{nr("clone3"), [6]uint64{}, unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS), unix.SECCOMP_RET_ALLOW},
				{nr("clone"), [6]uint64{unix.CLONE_NEWUSER}, eperm, unix.SECCOMP_RET_ALLOW},
				{nr("clone"), [6]uint64{uint64(unix.SIGCHLD)}, unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ALLOW},
				{nr("socket"), [6]uint64{unix.AF_UNIX}, unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ALLOW},
				{nr("socket"), [6]uint64{unix.AF_ALG}, eperm, eperm},
				{nr("socket"), [6]uint64{unix.AF_VSOCK}, eperm, eperm},
				{nr("socket"), [6]uint64{1<<32 | unix.AF_UNIX}, eperm, eperm},
				{nr("personality"), [6]uint64{0xffffffff}, unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ALLOW},
				{nr("personality"), [6]uint64{0x0400000}, eperm, eperm},
			}
			for _, c := range checks {
				want := c.want
				if admin {
					want = c.adm
				}
				got, err := runBPF(f.insns, seccompData{nr: c.nr, arch: unix.AUDIT_ARCH_X86_64, args: c.args})
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("nr %d args %#x: got %#x, want %#x", c.nr, c.args, got, want)
				}
			}
		})
	}
}

func BenchmarkCompileDefaultProfile(b *testing.B) {
	prof := defaultProfile(defaultCaps)
	var n int
	for b.Loop() {
		f, _, err := CompileSeccomp(prof)
		if err != nil {
			b.Fatal(err)
		}
		n = len(f.insns)
	}
	b.ReportMetric(float64(n), "insns")
}

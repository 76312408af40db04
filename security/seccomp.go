// Seccomp: translation of linux.seccomp into a classic-BPF program.
//
// Choice of compiler: husk carries its own pure-Go BPF generator (this file
// and seccomp_bpf.go) instead of libseccomp (via libseccomp-golang) or any
// other third-party package, because
//   - no cgo: the shim and its init re-exec stay one static binary, built with
//     CGO_ENABLED=0, with no libseccomp.so that must exist (in the right
//     version) on every host;
//   - compile speed: containerd's default profile compiles in about 0.5 ms
//     into ~450 instructions (BenchmarkCompileDefaultProfile), which matters
//     because the filter is built for every container start and every exec;
//   - no runtime dependency and a small, auditable surface: the only inputs
//     are the runtime-spec types and golang.org/x/sys/unix constants; the
//     syscall tables are generated from x/sys (mksyscalls.go).
//
// Semantics follow runc + libseccomp, which is what OCI profiles are written
// against:
//   - unknown syscall names (in none of our x86 tables) are skipped with a
//     warning ("recv" and "send", which exist only as socketcall operations,
//     silently, like runc); a name that exists only on some of the filter's
//     architectures is applied to those (e.g. "socketcall" to SCMP_ARCH_X86);
//   - rules whose action equals the default action are dropped (runc);
//   - conditions on distinct arguments of one rule are ANDed; if the same
//     argument index appears more than once, every condition becomes its own
//     rule (ORed), exactly as runc does (runc#2735);
//   - several rules on one syscall are ORed; an unconditional rule takes
//     precedence over conditional ones (libseccomp), otherwise the first
//     matching rule in spec order wins;
//   - SCMP_ACT_ERRNO and SCMP_ACT_TRACE without errnoRet use EPERM (runc);
//   - SCMP_ARCH_X86_64 compares all 64 bits of an argument; SCMP_ARCH_X86 and
//     SCMP_ARCH_X32 compare the low 32 bits only (libseccomp ARCH_SIZE_32);
//   - syscalls of an architecture not in the filter (including x32 numbers,
//     i.e. nr >= 0x40000000 under AUDIT_ARCH_X86_64, when SCMP_ARCH_X32 is
//     not listed) are killed with SECCOMP_RET_KILL_PROCESS (libseccomp's
//     "bad arch" action, hardened from KILL_THREAD to KILL_PROCESS);
//   - with no architectures listed, only the native one is used;
//     non-x86 architectures (which the kernel can never report on an x86
//     host) are skipped with a warning;
//   - socketcall(2)/ipc(2) multiplexing on i386 is not rewritten (libseccomp
//     does); rules on "socket" only match the direct i386 socket syscall.

package security

//go:generate go run mksyscalls.go

import (
	"fmt"
	"runtime"
	"sort"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// MaxInstructions is the kernel's BPF_MAXINSNS.
const MaxInstructions = 4096

const (
	x32SyscallBit = 0x40000000
	// badArchAction is returned for syscalls of an architecture the filter
	// does not list.
	badArchAction = unix.SECCOMP_RET_KILL_PROCESS
	// seccomp_data layout.
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// Filter is a compiled seccomp program, ready to be loaded. A nil *Filter
// (no linux.seccomp in the spec) loads as a no-op.
type Filter struct {
	insns []unix.SockFilter
	flags uint // SECCOMP_FILTER_FLAG_*
	// actions are the distinct SECCOMP_RET_* action values the program can
	// return, checked with SECCOMP_GET_ACTION_AVAIL before loading.
	actions []uint32
}

// Instructions returns a copy of the BPF program.
func (f *Filter) Instructions() []unix.SockFilter {
	if f == nil {
		return nil
	}
	return append([]unix.SockFilter(nil), f.insns...)
}

// Flags returns the SECCOMP_FILTER_FLAG_* bits Load passes to seccomp(2).
func (f *Filter) Flags() uint {
	if f == nil {
		return 0
	}
	return f.flags
}

// NeedsListener reports whether the filter uses SCMP_ACT_NOTIFY, in which
// case it must be installed with LoadWithListener.
func (f *Filter) NeedsListener() bool {
	return f != nil && f.flags&unix.SECCOMP_FILTER_FLAG_NEW_LISTENER != 0
}

// Load installs the filter on the calling thread (on all threads with
// SECCOMP_FILTER_FLAG_TSYNC). The caller must have set no_new_privs or hold
// CAP_SYS_ADMIN. A filter using SCMP_ACT_NOTIFY must be loaded with
// LoadWithListener instead (Load returns an error and installs nothing).
func (f *Filter) Load() error {
	if f == nil {
		return nil
	}
	if f.NeedsListener() {
		return fmt.Errorf("seccomp: filter uses SCMP_ACT_NOTIFY: use LoadWithListener to get the notification fd")
	}
	_, err := f.load()
	return err
}

// LoadWithListener is Load for filters that may use SCMP_ACT_NOTIFY: it
// returns the seccomp user-notification listener fd (close-on-exec, owned by
// the caller, who normally sends it to the listenerPath agent before execve),
// or -1 when the filter has no SCMP_ACT_NOTIFY rule.
func (f *Filter) LoadWithListener() (fd int, err error) {
	if f == nil {
		return -1, nil
	}
	return f.load()
}

func (f *Filter) load() (int, error) {
	if len(f.insns) == 0 || len(f.insns) > MaxInstructions {
		return -1, fmt.Errorf("seccomp: invalid program length %d", len(f.insns))
	}
	if err := f.checkKernelSupport(); err != nil {
		return -1, err
	}
	prog := unix.SockFprog{Len: uint16(len(f.insns)), Filter: &f.insns[0]}
	r, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(f.flags), uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(f)
	if errno != 0 {
		switch errno {
		case unix.EACCES:
			return -1, fmt.Errorf("seccomp: load filter: no_new_privs is not set and CAP_SYS_ADMIN is missing: %w", errno)
		case unix.ESRCH:
			return -1, fmt.Errorf("seccomp: load filter with SECCOMP_FILTER_FLAG_TSYNC: another thread cannot be synchronized: %w", errno)
		case unix.EBUSY:
			return -1, fmt.Errorf("seccomp: load filter: a user-notification listener is already installed: %w", errno)
		}
		return -1, fmt.Errorf("seccomp: load filter (%d instructions, flags %s): %w", len(f.insns), flagNames(f.flags), errno)
	}
	if f.NeedsListener() {
		return int(r), nil
	}
	if f.flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 && r != 0 {
		return -1, fmt.Errorf("seccomp: SECCOMP_FILTER_FLAG_TSYNC: thread %d could not be synchronized", r)
	}
	return -1, nil
}

// checkKernelSupport probes every flag and action the filter needs, so an old
// kernel produces a precise error instead of a bare EINVAL.
func (f *Filter) checkKernelSupport() error {
	for bit := uint(1); bit != 0 && bit <= f.flags; bit <<= 1 {
		if f.flags&bit == 0 {
			continue
		}
		probe := bit
		if bit == unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
			probe |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER // rejected alone
		}
		// A supported flag with a NULL program fails with EFAULT (the
		// program is copied in only after the flags were validated).
		_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(probe), 0)
		switch errno {
		case unix.EFAULT:
		case unix.EINVAL:
			return fmt.Errorf("seccomp: the running kernel does not support %s: %w", flagNames(bit), errno)
		case unix.ENOSYS:
			return fmt.Errorf("seccomp: the running kernel has no seccomp(2): %w", errno)
		default:
			return fmt.Errorf("seccomp: probing %s: unexpected result: %w", flagNames(bit), errno)
		}
	}
	for _, a := range f.actions {
		act := a
		_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_GET_ACTION_AVAIL, 0, uintptr(unsafe.Pointer(&act)))
		if errno != 0 {
			return fmt.Errorf("seccomp: the running kernel does not support action %#x: %w", a, errno)
		}
	}
	return nil
}

var flagTable = []struct {
	name string
	bit  uint
}{
	{"SECCOMP_FILTER_FLAG_TSYNC", unix.SECCOMP_FILTER_FLAG_TSYNC},
	{"SECCOMP_FILTER_FLAG_LOG", unix.SECCOMP_FILTER_FLAG_LOG},
	{"SECCOMP_FILTER_FLAG_SPEC_ALLOW", unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW},
	{"SECCOMP_FILTER_FLAG_NEW_LISTENER", unix.SECCOMP_FILTER_FLAG_NEW_LISTENER},
	{"SECCOMP_FILTER_FLAG_TSYNC_ESRCH", unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH},
	{"SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV},
}

func flagNames(flags uint) string {
	var names []string
	for _, ft := range flagTable {
		if flags&ft.bit != 0 {
			names = append(names, ft.name)
			flags &^= ft.bit
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", flags))
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

// Flags accepted in linux.seccomp.flags. NEW_LISTENER and TSYNC_ESRCH are
// set by the compiler itself when needed.
func specFlag(name specs.LinuxSeccompFlag) (uint, bool) {
	switch name {
	case "SECCOMP_FILTER_FLAG_TSYNC":
		return unix.SECCOMP_FILTER_FLAG_TSYNC, true
	case specs.LinuxSeccompFlagLog:
		return unix.SECCOMP_FILTER_FLAG_LOG, true
	case specs.LinuxSeccompFlagSpecAllow:
		return unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW, true
	case specs.LinuxSeccompFlagWaitKillableRecv:
		return unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, true
	}
	return 0, false
}

// arch describes one seccomp architecture (an ABI) we can generate code for.
type arch struct {
	name  specs.Arch
	audit uint32 // AUDIT_ARCH_* reported in seccomp_data.arch
	is64  bool   // compare 64-bit arguments (else the low 32 bits)
	table map[string]uint32
	// syscall number range the ABI occupies under its audit arch.
	lo, hi uint32
}

var (
	archX86_64 = &arch{specs.ArchX86_64, unix.AUDIT_ARCH_X86_64, true, syscallsX86_64, 0, x32SyscallBit - 1}
	archX32    = &arch{specs.ArchX32, unix.AUDIT_ARCH_X86_64, false, syscallsX32, x32SyscallBit, 0xffffffff}
	archX86    = &arch{specs.ArchX86, unix.AUDIT_ARCH_I386, false, syscallsX86, 0, 0xffffffff}
)

func lookupArch(name specs.Arch) (*arch, bool, error) {
	switch name {
	case specs.ArchX86_64:
		return archX86_64, true, nil
	case specs.ArchX32:
		return archX32, true, nil
	case specs.ArchX86:
		return archX86, true, nil
	case specs.ArchARM, specs.ArchAARCH64, specs.ArchMIPS, specs.ArchMIPS64,
		specs.ArchMIPS64N32, specs.ArchMIPSEL, specs.ArchMIPSEL64,
		specs.ArchMIPSEL64N32, specs.ArchPPC, specs.ArchPPC64, specs.ArchPPC64LE,
		specs.ArchS390, specs.ArchS390X, specs.ArchPARISC, specs.ArchPARISC64,
		specs.ArchRISCV64, specs.ArchLOONGARCH64, specs.ArchM68K, specs.ArchSH,
		specs.ArchSHEB:
		return nil, false, nil
	}
	return nil, false, fmt.Errorf("unknown architecture %q", name)
}

func nativeArch() (*arch, error) {
	switch runtime.GOARCH {
	case "amd64":
		return archX86_64, nil
	case "386":
		return archX86, nil
	}
	return nil, fmt.Errorf("seccomp: native architecture %s is not supported (only x86 tables are built in)", runtime.GOARCH)
}

// cond is one argument comparison.
type cond struct {
	idx  uint
	op   specs.LinuxSeccompOperator
	a, b uint64 // value, valueTwo
}

// rule is a list of ANDed conditions (none: unconditional) and the action.
type rule struct {
	action uint32
	conds  []cond
}

// archRules are the rules of one architecture, by syscall number.
type archRules struct {
	arch  *arch
	calls map[uint32][]rule
}

// program is the normalized, architecture-resolved form of a profile.
type program struct {
	defaultAction uint32
	arches        []*archRules // in a fixed order: x86_64, x32, x86
	flags         uint
}

func action(act specs.LinuxSeccompAction, errnoRet *uint) (uint32, error) {
	data := func() (uint32, error) {
		if errnoRet == nil {
			return uint32(unix.EPERM), nil
		}
		if *errnoRet > unix.SECCOMP_RET_DATA {
			return 0, fmt.Errorf("errnoRet %d out of range (max %d)", *errnoRet, unix.SECCOMP_RET_DATA)
		}
		return uint32(*errnoRet), nil
	}
	switch act {
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActErrno:
		d, err := data()
		return unix.SECCOMP_RET_ERRNO | d, err
	case specs.ActTrace:
		d, err := data()
		return unix.SECCOMP_RET_TRACE | d, err
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	case specs.ActNotify:
		return unix.SECCOMP_RET_USER_NOTIF, nil
	case "":
		return 0, fmt.Errorf("empty action")
	}
	return 0, fmt.Errorf("unknown action %q", act)
}

func validOp(op specs.LinuxSeccompOperator) bool {
	switch op {
	case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		return true
	}
	return false
}

// socketcallOnly reports names libseccomp knows only as socketcall(2)
// multiplexer operations on x86 (no syscall number on any x86 ABI). They are
// in containerd's and Docker's default profiles; skip them without a warning
// since runc does not warn either.
func socketcallOnly(name string) bool { return name == "recv" || name == "send" }

// validSyscallName accepts ^[a-z_][a-z0-9_]*$ (kernel syscall names).
func validSyscallName(name string) bool {
	if name == "" || name[0] >= '0' && name[0] <= '9' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// CompileSeccomp translates linux.seccomp into a BPF program. Unknown syscall
// names (and non-x86 architectures) are skipped and returned as warnings;
// unknown actions, operators, flags or architecture names and malformed
// rules are errors. A nil s yields a nil *Filter (loading it is a no-op).
func CompileSeccomp(s *specs.LinuxSeccomp) (f *Filter, warnings []string, err error) {
	if s == nil {
		return nil, nil, nil
	}
	p, warnings, err := normalize(s)
	if err != nil {
		return nil, warnings, err
	}
	insns, err := p.generate()
	if err != nil {
		return nil, warnings, fmt.Errorf("seccomp: %w", err)
	}
	return &Filter{insns: insns, flags: p.flags, actions: p.actionSet()}, warnings, nil
}

// CheckSeccomp validates linux.seccomp without loading anything (for early
// validation, before anything is set up): it compiles the profile and checks
// that SCMP_ACT_NOTIFY and listenerPath come together. The compiled filter
// is returned so callers can inspect it; warnings are those of
// CompileSeccomp.
func CheckSeccomp(s *specs.LinuxSeccomp) (*Filter, []string, error) {
	f, warnings, err := CompileSeccompCached(s)
	if err != nil {
		return nil, warnings, err
	}
	if f == nil {
		return nil, warnings, nil
	}
	switch {
	case f.NeedsListener() && s.ListenerPath == "":
		return nil, warnings, fmt.Errorf("seccomp: SCMP_ACT_NOTIFY is used but linux.seccomp.listenerPath is not set")
	case s.ListenerPath != "":
		warnings = append(warnings, fmt.Sprintf("seccomp: listenerPath %q ignored: no SCMP_ACT_NOTIFY rule", s.ListenerPath))
	}
	return f, warnings, nil
}

func normalize(s *specs.LinuxSeccomp) (*program, []string, error) {
	var warnings []string
	warnf := func(format string, a ...any) { warnings = append(warnings, fmt.Sprintf(format, a...)) }

	def, err := action(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	if def == unix.SECCOMP_RET_USER_NOTIF {
		// The init could not even send the listener fd: every syscall
		// would wait for an agent that does not have it yet (runc refuses
		// it for the same reason).
		return nil, nil, fmt.Errorf("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
	}
	p := &program{defaultAction: def}

	// Architectures.
	selected := map[*arch]bool{}
	for _, name := range s.Architectures {
		a, ok, err := lookupArch(name)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp: architectures: %w", err)
		}
		if !ok {
			warnf("seccomp: architecture %s cannot occur on an x86 host: skipped", name)
			continue
		}
		selected[a] = true
	}
	if len(s.Architectures) == 0 {
		a, err := nativeArch()
		if err != nil {
			return nil, nil, err
		}
		selected[a] = true
	}
	if len(selected) == 0 {
		return nil, nil, fmt.Errorf("seccomp: none of the architectures %v is supported", s.Architectures)
	}
	for _, a := range []*arch{archX86_64, archX32, archX86} {
		if selected[a] {
			p.arches = append(p.arches, &archRules{arch: a, calls: make(map[uint32][]rule, 512)})
		}
	}

	// Flags.
	for _, fl := range s.Flags {
		bit, ok := specFlag(fl)
		if !ok {
			return nil, nil, fmt.Errorf("seccomp: unknown flag %q", fl)
		}
		p.flags |= bit
	}

	// Rules.
	notify := false
	unknown := map[string]bool{}
	for i, sc := range s.Syscalls {
		act, err := action(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, sc.Names, err)
		}
		if sc.ErrnoRet != nil && sc.Action != specs.ActErrno && sc.Action != specs.ActTrace {
			warnf("seccomp: syscalls[%d] %v: errnoRet is ignored for %s", i, sc.Names, sc.Action)
		}
		var count [6]int
		for j, a := range sc.Args {
			if a.Index >= 6 {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: args[%d]: index %d out of range (0-5)", i, sc.Names, j, a.Index)
			}
			if !validOp(a.Op) {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: args[%d]: unknown operator %q", i, sc.Names, j, a.Op)
			}
			count[a.Index]++
		}
		for _, name := range sc.Names {
			if !validSyscallName(name) {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: malformed syscall name %q", i, name)
			}
			if act == unix.SECCOMP_RET_USER_NOTIF && name == "write" {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for the write syscall", i)
			}
		}
		if act == def {
			continue // runc: same as the default action, no rule needed
		}
		// Condition sets: ANDed, unless an argument repeats (runc: then
		// every condition is a separate rule).
		var sets [][]cond
		repeated := false
		for _, c := range count {
			repeated = repeated || c > 1
		}
		if repeated {
			for _, a := range sc.Args {
				sets = append(sets, []cond{{a.Index, a.Op, a.Value, a.ValueTwo}})
			}
		} else {
			var cs []cond
			for _, a := range sc.Args {
				cs = append(cs, cond{a.Index, a.Op, a.Value, a.ValueTwo})
			}
			sets = [][]cond{cs}
		}
		for _, name := range sc.Names {
			_, k1 := syscallsX86_64[name]
			_, k2 := syscallsX86[name]
			_, k3 := syscallsX32[name]
			if !k1 && !k2 && !k3 {
				if socketcallOnly(name) {
					continue // known to libseccomp, no syscall of its own on x86
				}
				if !unknown[name] {
					unknown[name] = true
					warnf("seccomp: unknown syscall %q skipped", name)
				}
				continue
			}
			for _, ar := range p.arches {
				nr, ok := ar.arch.table[name]
				if !ok {
					continue
				}
				for _, cs := range sets {
					ar.calls[nr] = append(ar.calls[nr], rule{action: act, conds: cs})
				}
				if act == unix.SECCOMP_RET_USER_NOTIF {
					notify = true
				}
			}
		}
	}

	// Per syscall: an unconditional rule wins over conditional ones.
	for _, ar := range p.arches {
		for nr, rs := range ar.calls {
			for _, r := range rs {
				if len(r.conds) == 0 {
					ar.calls[nr] = []rule{r}
					break
				}
			}
		}
	}

	if notify {
		p.flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if p.flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// TSYNC with a listener needs TSYNC_ESRCH (the return
			// value is the fd, not a thread id).
			p.flags |= unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
		}
	} else if p.flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
		p.flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
		warnf("seccomp: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV ignored: no SCMP_ACT_NOTIFY rule")
	}
	return p, warnings, nil
}

// actionSet lists the distinct actions (SECCOMP_RET_ACTION_FULL part) the
// program can return.
func (p *program) actionSet() []uint32 {
	set := map[uint32]bool{p.defaultAction & unix.SECCOMP_RET_ACTION_FULL: true, badArchAction: true}
	for _, ar := range p.arches {
		for _, rs := range ar.calls {
			for _, r := range rs {
				set[r.action&unix.SECCOMP_RET_ACTION_FULL] = true
			}
		}
	}
	out := make([]uint32, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

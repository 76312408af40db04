package security

import (
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// What husk's security layer implements, for the OCI features document
// (`runc features`). Every list names only what the spec can ask for and
// husk then really does.

// capNames are the capabilities capabilityNumber knows, in kernel order.
var capNames = []string{
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

// KnownCapabilities lists the capability names husk can apply, in kernel
// order (capabilities the running kernel lacks are ignored with a warning).
func KnownCapabilities() []string { return append([]string(nil), capNames...) }

// SeccompActions lists the seccomp actions husk implements.
// SCMP_ACT_NOTIFY hands the listener fd, with the container's state, to the
// agent at linux.seccomp.listenerPath.
func SeccompActions() []string {
	return []string{
		string(specs.ActAllow), string(specs.ActErrno), string(specs.ActKill),
		string(specs.ActKillProcess), string(specs.ActKillThread), string(specs.ActLog),
		string(specs.ActNotify), string(specs.ActTrace), string(specs.ActTrap),
	}
}

// SeccompOperators lists the argument comparison operators.
func SeccompOperators() []string {
	return []string{
		string(specs.OpEqualTo), string(specs.OpGreaterEqual), string(specs.OpGreaterThan),
		string(specs.OpLessEqual), string(specs.OpLessThan), string(specs.OpMaskedEqual),
		string(specs.OpNotEqual),
	}
}

// SeccompArchs lists the architectures husk generates filter code for (other
// architectures in a profile are skipped: they cannot occur on an x86 host).
func SeccompArchs() []string {
	return []string{string(specs.ArchX86), string(specs.ArchX32), string(specs.ArchX86_64)}
}

// seccompSpecFlags are the flags linux.seccomp.flags accepts, in order.
var seccompSpecFlags = []specs.LinuxSeccompFlag{
	"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagSpecAllow,
	specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagWaitKillableRecv,
}

// SeccompKnownFlags lists the linux.seccomp.flags husk understands.
func SeccompKnownFlags() []string {
	out := make([]string, 0, len(seccompSpecFlags))
	for _, f := range seccompSpecFlags {
		out = append(out, string(f))
	}
	return out
}

// SeccompSupportedFlags lists the known flags the running kernel supports,
// probed the way Load checks them (a supported flag with a NULL program
// fails with EFAULT, an unknown one with EINVAL). It changes nothing.
func SeccompSupportedFlags() []string {
	var out []string
	for _, f := range seccompSpecFlags {
		bit, _ := specFlag(f)
		probe := bit
		if bit == unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV {
			probe |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER // rejected alone
		}
		_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(probe), uintptr(unsafe.Pointer(nil)))
		if errno == unix.EFAULT {
			out = append(out, string(f))
		}
	}
	return out
}

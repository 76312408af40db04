package security

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// capabilityNumber maps a capability name to its number (linux/capability.h
// up to CAP_CHECKPOINT_RESTORE, the last one as of Linux 6.x).
func capabilityNumber(name string) (uint, bool) {
	switch name {
	case "CAP_CHOWN":
		return unix.CAP_CHOWN, true
	case "CAP_DAC_OVERRIDE":
		return unix.CAP_DAC_OVERRIDE, true
	case "CAP_DAC_READ_SEARCH":
		return unix.CAP_DAC_READ_SEARCH, true
	case "CAP_FOWNER":
		return unix.CAP_FOWNER, true
	case "CAP_FSETID":
		return unix.CAP_FSETID, true
	case "CAP_KILL":
		return unix.CAP_KILL, true
	case "CAP_SETGID":
		return unix.CAP_SETGID, true
	case "CAP_SETUID":
		return unix.CAP_SETUID, true
	case "CAP_SETPCAP":
		return unix.CAP_SETPCAP, true
	case "CAP_LINUX_IMMUTABLE":
		return unix.CAP_LINUX_IMMUTABLE, true
	case "CAP_NET_BIND_SERVICE":
		return unix.CAP_NET_BIND_SERVICE, true
	case "CAP_NET_BROADCAST":
		return unix.CAP_NET_BROADCAST, true
	case "CAP_NET_ADMIN":
		return unix.CAP_NET_ADMIN, true
	case "CAP_NET_RAW":
		return unix.CAP_NET_RAW, true
	case "CAP_IPC_LOCK":
		return unix.CAP_IPC_LOCK, true
	case "CAP_IPC_OWNER":
		return unix.CAP_IPC_OWNER, true
	case "CAP_SYS_MODULE":
		return unix.CAP_SYS_MODULE, true
	case "CAP_SYS_RAWIO":
		return unix.CAP_SYS_RAWIO, true
	case "CAP_SYS_CHROOT":
		return unix.CAP_SYS_CHROOT, true
	case "CAP_SYS_PTRACE":
		return unix.CAP_SYS_PTRACE, true
	case "CAP_SYS_PACCT":
		return unix.CAP_SYS_PACCT, true
	case "CAP_SYS_ADMIN":
		return unix.CAP_SYS_ADMIN, true
	case "CAP_SYS_BOOT":
		return unix.CAP_SYS_BOOT, true
	case "CAP_SYS_NICE":
		return unix.CAP_SYS_NICE, true
	case "CAP_SYS_RESOURCE":
		return unix.CAP_SYS_RESOURCE, true
	case "CAP_SYS_TIME":
		return unix.CAP_SYS_TIME, true
	case "CAP_SYS_TTY_CONFIG":
		return unix.CAP_SYS_TTY_CONFIG, true
	case "CAP_MKNOD":
		return unix.CAP_MKNOD, true
	case "CAP_LEASE":
		return unix.CAP_LEASE, true
	case "CAP_AUDIT_WRITE":
		return unix.CAP_AUDIT_WRITE, true
	case "CAP_AUDIT_CONTROL":
		return unix.CAP_AUDIT_CONTROL, true
	case "CAP_SETFCAP":
		return unix.CAP_SETFCAP, true
	case "CAP_MAC_OVERRIDE":
		return unix.CAP_MAC_OVERRIDE, true
	case "CAP_MAC_ADMIN":
		return unix.CAP_MAC_ADMIN, true
	case "CAP_SYSLOG":
		return unix.CAP_SYSLOG, true
	case "CAP_WAKE_ALARM":
		return unix.CAP_WAKE_ALARM, true
	case "CAP_BLOCK_SUSPEND":
		return unix.CAP_BLOCK_SUSPEND, true
	case "CAP_AUDIT_READ":
		return unix.CAP_AUDIT_READ, true
	case "CAP_PERFMON":
		return unix.CAP_PERFMON, true
	case "CAP_BPF":
		return unix.CAP_BPF, true
	case "CAP_CHECKPOINT_RESTORE":
		return unix.CAP_CHECKPOINT_RESTORE, true
	}
	return 0, false
}

// capSets are the five capability sets as bit masks.
type capSets struct {
	bounding, effective, permitted, inheritable, ambient uint64
}

// LastCap returns the highest capability number the running kernel knows,
// from /proc/sys/kernel/cap_last_cap, or by probing PR_CAPBSET_READ when
// /proc is not available.
func LastCap() (uint, error) {
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		n, perr := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 8)
		if perr == nil && n < 64 {
			return uint(n), nil
		}
	}
	return lastCapProbe()
}

// lastCapProbe finds the last capability with PR_CAPBSET_READ, which fails
// with EINVAL past it.
func lastCapProbe() (uint, error) {
	last := -1
	for c := 0; c < 64; c++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0); err != nil {
			if errors.Is(err, unix.EINVAL) {
				break
			}
			return 0, fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
		last = c
	}
	if last < 0 {
		return 0, errors.New("cannot determine the last capability: /proc/sys/kernel/cap_last_cap unreadable and PR_CAPBSET_READ failed")
	}
	return uint(last), nil
}

func validCapName(name string) bool {
	if len(name) <= len("CAP_") || !strings.HasPrefix(name, "CAP_") {
		return false
	}
	for _, r := range name[len("CAP_"):] {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_') {
			return false
		}
	}
	return true
}

// parseCapabilities converts the spec's names to masks. Unknown names and
// names the kernel does not support (above last) are ignored with a warning,
// as runc does; a name that is not of the form CAP_[A-Z0-9_]+ is an error.
func parseCapabilities(caps *specs.LinuxCapabilities, last uint) (capSets, []string, error) {
	var cs capSets
	if caps == nil {
		return cs, nil, nil
	}
	var warnings []string
	warned := map[string]bool{}
	conv := func(set string, names []string) (uint64, error) {
		var m uint64
		for _, n := range names {
			if !validCapName(n) {
				return 0, fmt.Errorf("capabilities.%s: malformed capability name %q", set, n)
			}
			c, ok := capabilityNumber(n)
			switch {
			case !ok:
				if !warned[n] {
					warned[n] = true
					warnings = append(warnings, fmt.Sprintf("unknown capability %q ignored", n))
				}
			case c > last:
				if !warned[n] {
					warned[n] = true
					warnings = append(warnings, fmt.Sprintf("capability %s is not supported by the running kernel (cap_last_cap %d): ignored", n, last))
				}
			default:
				m |= 1 << c
			}
		}
		return m, nil
	}
	var err error
	if cs.bounding, err = conv("bounding", caps.Bounding); err != nil {
		return cs, nil, err
	}
	if cs.effective, err = conv("effective", caps.Effective); err != nil {
		return cs, nil, err
	}
	if cs.permitted, err = conv("permitted", caps.Permitted); err != nil {
		return cs, nil, err
	}
	if cs.inheritable, err = conv("inheritable", caps.Inheritable); err != nil {
		return cs, nil, err
	}
	if cs.ambient, err = conv("ambient", caps.Ambient); err != nil {
		return cs, nil, err
	}
	return cs, warnings, nil
}

// CheckCapabilities validates caps without changing anything (for early,
// pre-fork validation): it returns the warnings ApplyUserAndCapabilities
// would return for unknown names, or an error for malformed ones.
func CheckCapabilities(caps *specs.LinuxCapabilities) (warnings []string, err error) {
	last, err := LastCap()
	if err != nil {
		return nil, err
	}
	_, warnings, err = parseCapabilities(caps, last)
	return warnings, err
}

// setgroupsDenied reports whether /proc/self/setgroups is "deny" (a user
// namespace whose creator disabled setgroups(2)).
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && string(bytes.TrimSpace(b)) == "deny"
}

// ApplyUserAndCapabilities runs, on the calling (locked) OS thread, runc's
// finalizeNamespace order:
//
//  1. drop every capability not in caps.Bounding from the bounding set
//     (PR_CAPBSET_DROP, 0..cap_last_cap; only those still present, so a
//     process without CAP_SETPCAP works when nothing has to be dropped);
//  2. PR_SET_KEEPCAPS=1, so permitted survives the switch from uid 0;
//  3. setgroups(additionalGids) (an empty list drops the inherited groups;
//     skipped when setgroups is denied in the user namespace and the list is
//     empty, an error if it is not), setresgid(gid), setresuid(uid);
//  4. PR_SET_KEEPCAPS=0;
//  5. capset(2) v3: effective, permitted, inheritable;
//  6. PR_CAP_AMBIENT_CLEAR_ALL, then PR_CAP_AMBIENT_RAISE for each ambient
//     capability (a failure, e.g. a capability missing from permitted or
//     inheritable, is a warning, as in runc);
//  7. umask, if user.Umask is set.
//
// Credentials are changed with raw per-thread system calls
// (RawSyscall(SYS_SETGROUPS/SYS_SETRESGID/SYS_SETRESUID)), like runc, not
// with syscall.Setuid & co, which broadcast the change to every thread of
// the Go runtime: only the thread that calls execve needs the new ids, and
// execve discards the other threads. The caller must therefore stay locked
// to this thread until execve.
//
// A nil caps means no capabilities at all. Unknown capability names are
// ignored and returned as warnings; malformed names are errors (nothing is
// changed then).
func ApplyUserAndCapabilities(user specs.User, caps *specs.LinuxCapabilities) (warnings []string, err error) {
	if user.UID == 0xffffffff || user.GID == 0xffffffff {
		return nil, fmt.Errorf("invalid user %d:%d: (uid_t)-1 is not a valid id", user.UID, user.GID)
	}
	last, err := LastCap()
	if err != nil {
		return nil, err
	}
	cs, warnings, err := parseCapabilities(caps, last)
	if err != nil {
		return nil, err
	}

	// 1. Bounding set.
	for c := uint(0); c <= last; c++ {
		if cs.bounding&(1<<c) != 0 {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(c), 0, 0, 0)
		if err != nil {
			return warnings, fmt.Errorf("prctl(PR_CAPBSET_READ, %d): %w", c, err)
		}
		if in == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return warnings, fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
		}
	}

	// 2-4. Ids, keeping the permitted set across the uid change.
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return warnings, fmt.Errorf("prctl(PR_SET_KEEPCAPS, 1): %w", err)
	}
	if err := setIDs(user); err != nil {
		return warnings, err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return warnings, fmt.Errorf("prctl(PR_SET_KEEPCAPS, 0): %w", err)
	}

	// 5. Effective, permitted, inheritable.
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Effective: uint32(cs.effective), Permitted: uint32(cs.permitted), Inheritable: uint32(cs.inheritable)},
		{Effective: uint32(cs.effective >> 32), Permitted: uint32(cs.permitted >> 32), Inheritable: uint32(cs.inheritable >> 32)},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return warnings, fmt.Errorf("capset(effective %#x, permitted %#x, inheritable %#x): %w", cs.effective, cs.permitted, cs.inheritable, err)
	}

	// 6. Ambient.
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return warnings, fmt.Errorf("prctl(PR_CAP_AMBIENT_CLEAR_ALL): %w", err)
	}
	for c := uint(0); c <= last; c++ {
		if cs.ambient&(1<<c) == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(c), 0, 0); err != nil {
			warnings = append(warnings, fmt.Sprintf("cannot raise ambient capability %d: %v", c, err))
		}
	}

	// 7. Umask.
	if user.Umask != nil {
		unix.Umask(int(*user.Umask & 0o777))
	}
	return warnings, nil
}

// setIDs sets the supplementary groups, gid and uid of the calling thread.
func setIDs(user specs.User) error {
	switch {
	case setgroupsDenied() && len(user.AdditionalGids) == 0:
		// Inside a user namespace with setgroups disabled: there are no
		// inherited host groups to drop and setgroups(2) would fail.
	case setgroupsDenied():
		return fmt.Errorf("setgroups(%v): denied by /proc/self/setgroups in this user namespace", user.AdditionalGids)
	default:
		var p unsafe.Pointer
		if len(user.AdditionalGids) > 0 {
			p = unsafe.Pointer(&user.AdditionalGids[0]) // gid_t is uint32
		}
		_, _, errno := unix.RawSyscall(sysSetgroups, uintptr(len(user.AdditionalGids)), uintptr(p), 0)
		if errno != 0 {
			return fmt.Errorf("setgroups(%v): %w", user.AdditionalGids, errno)
		}
	}
	gid, uid := uintptr(user.GID), uintptr(user.UID)
	if _, _, errno := unix.RawSyscall(sysSetresgid, gid, gid, gid); errno != 0 {
		return fmt.Errorf("setresgid(%d): %w", user.GID, errno)
	}
	if _, _, errno := unix.RawSyscall(sysSetresuid, uid, uid, uid); errno != 0 {
		return fmt.Errorf("setresuid(%d): %w", user.UID, errno)
	}
	return nil
}

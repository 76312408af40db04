package security

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rlimitNumber maps an OCI rlimit type to the kernel resource number.
func rlimitNumber(name string) (int, bool) {
	switch name {
	case "RLIMIT_AS":
		return unix.RLIMIT_AS, true
	case "RLIMIT_CORE":
		return unix.RLIMIT_CORE, true
	case "RLIMIT_CPU":
		return unix.RLIMIT_CPU, true
	case "RLIMIT_DATA":
		return unix.RLIMIT_DATA, true
	case "RLIMIT_FSIZE":
		return unix.RLIMIT_FSIZE, true
	case "RLIMIT_LOCKS":
		return unix.RLIMIT_LOCKS, true
	case "RLIMIT_MEMLOCK":
		return unix.RLIMIT_MEMLOCK, true
	case "RLIMIT_MSGQUEUE":
		return unix.RLIMIT_MSGQUEUE, true
	case "RLIMIT_NICE":
		return unix.RLIMIT_NICE, true
	case "RLIMIT_NOFILE":
		return unix.RLIMIT_NOFILE, true
	case "RLIMIT_NPROC":
		return unix.RLIMIT_NPROC, true
	case "RLIMIT_RSS":
		return unix.RLIMIT_RSS, true
	case "RLIMIT_RTPRIO":
		return unix.RLIMIT_RTPRIO, true
	case "RLIMIT_RTTIME":
		return unix.RLIMIT_RTTIME, true
	case "RLIMIT_SIGPENDING":
		return unix.RLIMIT_SIGPENDING, true
	case "RLIMIT_STACK":
		return unix.RLIMIT_STACK, true
	}
	return 0, false
}

// SetRlimits applies the spec's rlimits to the calling process (rlimits are
// per process) with prlimit(0, ...). All entries are validated before any is
// applied: an unknown type or soft > hard is an error. Raising a hard limit
// without CAP_SYS_RESOURCE fails with EPERM (so does RLIMIT_NOFILE above
// fs.nr_open): then the hard limit is set to min(hard, current hard)
// and the soft limit to min(soft, that), and a warning string is returned (the caller logs
// it) instead of an error.
//
// unix.Prlimit goes through the syscall package, so Go's saved original
// RLIMIT_NOFILE is dropped and not restored on execve.
func SetRlimits(rlimits []specs.POSIXRlimit) (warnings []string, err error) {
	res, err := checkRlimits(rlimits)
	if err != nil {
		return nil, err
	}
	for i, rl := range rlimits {
		want := unix.Rlimit{Cur: rl.Soft, Max: rl.Hard}
		err := unix.Prlimit(0, res[i], &want, nil)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.EPERM) {
			return warnings, fmt.Errorf("rlimit %s (soft %d, hard %d): %w", rl.Type, rl.Soft, rl.Hard, err)
		}
		var cur unix.Rlimit
		if gerr := unix.Prlimit(0, res[i], nil, &cur); gerr != nil {
			return warnings, fmt.Errorf("rlimit %s: get current limit after EPERM: %w", rl.Type, gerr)
		}
		hard := min(rl.Hard, cur.Max)
		fallback := unix.Rlimit{Cur: min(rl.Soft, hard), Max: hard}
		if ferr := unix.Prlimit(0, res[i], &fallback, nil); ferr != nil {
			return warnings, fmt.Errorf("rlimit %s: setting soft %d, hard %d failed (%v), then keeping hard %d with soft %d: %w",
				rl.Type, rl.Soft, rl.Hard, err, fallback.Max, fallback.Cur, ferr)
		}
		warnings = append(warnings, fmt.Sprintf("rlimit %s: cannot set hard limit %d (%v, CAP_SYS_RESOURCE needed): kept hard limit %d, soft limit set to %d",
			rl.Type, rl.Hard, err, fallback.Max, fallback.Cur))
	}
	return warnings, nil
}

// CheckRlimits validates the spec's rlimits without applying them (for early
// validation, before anything is set up): an unknown type, a type listed
// twice, or soft > hard is an error.
func CheckRlimits(rlimits []specs.POSIXRlimit) error {
	_, err := checkRlimits(rlimits)
	return err
}

func checkRlimits(rlimits []specs.POSIXRlimit) ([]int, error) {
	res := make([]int, len(rlimits))
	seen := make(map[string]bool, len(rlimits))
	for i, rl := range rlimits {
		n, ok := rlimitNumber(rl.Type)
		if !ok {
			return nil, fmt.Errorf("rlimit %q: unknown type", rl.Type)
		}
		if seen[rl.Type] {
			return nil, fmt.Errorf("rlimit %s is listed twice", rl.Type)
		}
		seen[rl.Type] = true
		if rl.Soft > rl.Hard {
			return nil, fmt.Errorf("rlimit %s: soft limit %d exceeds hard limit %d", rl.Type, rl.Soft, rl.Hard)
		}
		res[i] = n
	}
	return res, nil
}

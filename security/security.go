// Package security applies the process-level containment of the OCI spec:
// capabilities, user and groups, no_new_privs, rlimits, seccomp, and the
// AppArmor profile / SELinux label (lsm.go). The Check* functions validate
// the same spec fields in the shim before anything is set up; features.go
// lists what is implemented for the OCI features document.
//
// It runs inside the container's init (a re-exec of the husk binary) on an
// OS thread locked with runtime.LockOSThread that later calls execve. All
// per-thread kernel state (credentials, capabilities, keepcaps,
// no_new_privs, seccomp without TSYNC) is therefore set on the calling thread
// only, with direct system calls; see ApplyUserAndCapabilities. The package
// has no mutable global state besides the host paths lsm.go probes (tests
// point them at fixtures); its tables are constant.
//
// Caller order (runc's libcontainer order):
//
//	SetRlimits
//	... (namespaces, rootfs, ...)
//	ApplyLSM                               // takes effect at execve
//	if !noNewPrivileges { seccomp Load }   // needs CAP_SYS_ADMIN
//	ApplyUserAndCapabilities
//	if noNewPrivileges { SetNoNewPrivs }
//	if noNewPrivileges { seccomp Load }    // last before execve
//	execve
package security

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// SetNoNewPrivs sets PR_SET_NO_NEW_PRIVS on the calling thread (it is
// inherited by execve and by threads/processes created afterwards).
func SetNoNewPrivs() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	return nil
}

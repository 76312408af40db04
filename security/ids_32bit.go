//go:build linux && (386 || arm)

package security

import "golang.org/x/sys/unix"

// The 32-bit-id variants; the unsuffixed ones take 16-bit ids here.
const (
	sysSetgroups = unix.SYS_SETGROUPS32
	sysSetresgid = unix.SYS_SETRESGID32
	sysSetresuid = unix.SYS_SETRESUID32
)

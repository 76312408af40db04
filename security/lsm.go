package security

// Linux security modules: AppArmor profiles and SELinux labels.
//
// husk applies them the way runc does: the process label or profile is
// written to /proc/thread-self/attr/... of the thread that will call execve
// ("exec" attributes take effect at the next execve), and the mount label is
// passed as a context= option to the filesystems the container mounts. When
// a spec asks for a module the host does not run, that is an error before
// anything is set up (runc fails too, later), never a silent downgrade: a
// user who asked for a profile must not get an unconfined container.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Where the host's LSM state is read. Variables so tests can point them at
// fixtures.
var (
	apparmorSecurityfsDir = "/sys/kernel/security/apparmor"
	apparmorEnabledParam  = "/sys/module/apparmor/parameters/enabled"
	selinuxfsMounts       = []string{"/sys/fs/selinux", "/selinux"}
	mountinfoPath         = "/proc/self/mountinfo"
)

// selinuxMagic is SELINUX_MAGIC (linux/magic.h).
const selinuxMagic = 0xf97cff8c

// AppArmorEnabled reports whether the host runs AppArmor (runc's
// apparmor.IsEnabled: the securityfs directory exists and the module
// parameter says Y).
func AppArmorEnabled() bool {
	if _, err := os.Stat(apparmorSecurityfsDir); err != nil {
		return false
	}
	b, err := os.ReadFile(apparmorEnabledParam)
	return err == nil && bytes.HasPrefix(b, []byte("Y"))
}

// SELinuxEnabled reports whether the host runs SELinux: a selinuxfs is
// mounted (at its usual place or anywhere in the mount table).
func SELinuxEnabled() bool {
	for _, p := range selinuxfsMounts {
		var st unix.Statfs_t
		if unix.Statfs(p, &st) == nil && uint32(st.Type) == selinuxMagic {
			return true
		}
	}
	b, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "... - selinuxfs selinuxfs rw"
		if _, after, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(after, "selinuxfs ") {
			return true
		}
	}
	return false
}

// CheckLSM validates, on the host and before anything is set up, that the
// host runs the security modules the spec asks for. Empty values ask for
// nothing.
func CheckLSM(apparmorProfile, selinuxLabel, mountLabel string) error {
	if apparmorProfile != "" && !AppArmorEnabled() {
		return fmt.Errorf("process.apparmorProfile %q: AppArmor is not enabled on this host (%s is missing or %s is not Y)",
			apparmorProfile, apparmorSecurityfsDir, apparmorEnabledParam)
	}
	if selinuxLabel != "" || mountLabel != "" {
		if !SELinuxEnabled() {
			field, v := "process.selinuxLabel", selinuxLabel
			if v == "" {
				field, v = "linux.mountLabel", mountLabel
			}
			return fmt.Errorf("%s %q: SELinux is not enabled on this host (no selinuxfs mounted)", field, v)
		}
	}
	for _, s := range []string{apparmorProfile, selinuxLabel, mountLabel} {
		if strings.ContainsAny(s, "\x00\n") {
			return fmt.Errorf("security label %q contains a NUL or newline", s)
		}
	}
	return nil
}

// ApplyLSM sets the AppArmor profile and the SELinux process label the next
// execve of the calling thread transitions to. It runs in the container
// init after pivot_root, so /proc is the container's own procfs (checked
// to be a procfs before writing). Empty values are no-ops.
func ApplyLSM(apparmorProfile, selinuxLabel string) error {
	if apparmorProfile != "" {
		// AppArmor's own attr directory (Linux 5.8+) first, then the
		// shared one older kernels use (runc's changeOnExec).
		err := writeAttr("/proc/thread-self/attr/apparmor/exec", "exec "+apparmorProfile)
		if errors.Is(err, os.ErrNotExist) {
			err = writeAttr("/proc/thread-self/attr/exec", "exec "+apparmorProfile)
		}
		if err != nil {
			return fmt.Errorf("apply AppArmor profile %q: %w", apparmorProfile, err)
		}
	}
	if selinuxLabel != "" {
		if err := writeAttr("/proc/thread-self/attr/exec", selinuxLabel); err != nil {
			return fmt.Errorf("set SELinux exec label %q: %w", selinuxLabel, err)
		}
	}
	return nil
}

// writeAttr writes an LSM attribute file, refusing anything that is not on a
// procfs (a fake /proc could otherwise swallow the write: CVE-2019-16884).
func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstatfs", Path: path, Err: err}
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not on a procfs (type %#x): refusing to write a security label there", path, st.Type)
	}
	if _, err := f.Write([]byte(value)); err != nil {
		return err
	}
	return nil
}

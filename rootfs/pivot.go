//go:build linux

package rootfs

import (
	"fmt"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// rootPropagation returns the propagation flags for linux.rootfsPropagation
// (0 when unset).
func rootPropagation(spec *specs.Spec) (uintptr, error) {
	if spec.Linux == nil || spec.Linux.RootfsPropagation == "" {
		return 0, nil
	}
	p, ok := propagationOptions[spec.Linux.RootfsPropagation]
	if !ok {
		return 0, fmt.Errorf("unknown rootfsPropagation %q", spec.Linux.RootfsPropagation)
	}
	return p, nil
}

// prepareRoot is runc's prepareRoot: / becomes rslave (or takes
// rootfsPropagation) so nothing done here reaches the host, the rootfs'
// parent mount is made private if it is shared (pivot_root refuses a shared
// parent), and the rootfs is bind-mounted onto itself to be a mount point.
func prepareRoot(rootfs string, prop uintptr) error {
	flag := uintptr(unix.MS_SLAVE | unix.MS_REC)
	if prop != 0 {
		flag = prop
	}
	if err := unix.Mount("", "/", "", flag, ""); err != nil {
		return &os.PathError{Op: "set propagation", Path: "/", Err: err}
	}
	if err := rootfsParentMountPrivate(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, rootfs, "bind", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind mount rootfs", Path: rootfs, Err: err}
	}
	return nil
}

// rootfsParentMountPrivate makes the mount rootfs is on private if it is
// shared.
func rootfsParentMountPrivate(rootfs string) error {
	mounts, err := mountinfo.GetMounts(mountinfo.ParentsFilter(rootfs))
	if err != nil {
		return fmt.Errorf("read mountinfo: %w", err)
	}
	var parent *mountinfo.Info
	for _, m := range mounts {
		// ParentsFilter matches string prefixes ("/foo" for "/foobar").
		if m.Mountpoint != "/" && m.Mountpoint != rootfs && !strings.HasPrefix(rootfs, m.Mountpoint+"/") {
			continue
		}
		// The longest mountpoint wins; among stacked ones, the last (top).
		if parent == nil || len(m.Mountpoint) >= len(parent.Mountpoint) {
			parent = m
		}
	}
	if parent == nil {
		return fmt.Errorf("no mount found for %s", rootfs)
	}
	for _, opt := range strings.Fields(parent.Optional) {
		if strings.HasPrefix(opt, "shared:") {
			if err := unix.Mount("", parent.Mountpoint, "", unix.MS_PRIVATE, ""); err != nil {
				return &os.PathError{Op: "make private", Path: parent.Mountpoint, Err: err}
			}
			break
		}
	}
	return nil
}

// pivotRoot switches the calling process' root to rootfs and detaches the old
// root, with runc's pivot_root(".", ".") trick (no put_old directory needed,
// works on a read-only rootfs). On return the cwd is the new "/".
func pivotRoot(rootfs string) error {
	oldroot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(oldroot)
	newroot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: rootfs, Err: err}
	}
	defer unix.Close(newroot)

	if err := unix.Fchdir(newroot); err != nil {
		return &os.PathError{Op: "fchdir", Path: rootfs, Err: err}
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return &os.PathError{Op: "pivot_root", Path: rootfs, Err: err}
	}
	// The old root is now mounted on top of "."; step onto it.
	if err := unix.Fchdir(oldroot); err != nil {
		return &os.PathError{Op: "fchdir", Path: "old root", Err: err}
	}
	// Keep our unmount of the old root from propagating anywhere.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "make rslave", Path: "old root", Err: err}
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return &os.PathError{Op: "umount", Path: "old root", Err: err}
	}
	if err := unix.Chdir("/"); err != nil {
		return &os.PathError{Op: "chdir", Path: "/", Err: err}
	}
	return nil
}

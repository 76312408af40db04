//go:build linux

// Package rootfs builds a container's filesystem view: containerd's rootfs
// mounts on the host side, and inside the container's mount namespace the
// spec mounts, /dev, pivot_root, masked and read-only paths.
//
// The container side follows runc's libcontainer/rootfs_linux.go. Known
// differences: linux.mountLabel is passed as context= to new filesystems
// other than proc, sysfs and cgroup (untested: no SELinux host), "tmpcopyup" is
// accepted and ignored, idmapped mounts are rejected, /dev/console is not
// set up here, and there is no non-pivot_root (MS_MOVE/chroot) mode.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/containerd/v2/core/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// MountRootfs mounts containerd's rootfs mounts (the Create request's Rootfs,
// overlay from the overlayfs snapshotter or bind from the native one) on
// target, in the caller's (host) mount namespace. On error nothing it mounted
// is left mounted. With no mounts, target is taken to be populated already
// and is left alone.
func MountRootfs(mounts []mount.Mount, target string) error {
	return mountRootfs(mounts, target)
}

// UnmountRootfs unmounts everything at and below target. It is idempotent
// (nothing mounted, or no target, is not an error) and retries EBUSY for
// about a second before falling back to a lazy detach, logging it.
func UnmountRootfs(target string) error {
	return unmountRootfs(target)
}

// Prepare runs in the container init, inside the container's new mount
// namespace, on a locked OS thread, before any privilege is dropped (and
// after the init joined its cgroups: cgroup v1 mounts bind its own cgroup).
// It makes / rslave (or the spec's rootfsPropagation), bind-mounts rootfs
// onto itself, performs spec.Mounts in order with targets resolved inside
// rootfs, sets up /dev (device nodes, symlinks, devpts ptmx) when a spec
// mount puts a fresh filesystem on /dev, pivot_roots into rootfs and
// detaches the old root. On return the cwd is "/" of the new root. Read-only
// tmpfs and /dev mounts stay writable until Finalize.
func Prepare(spec *specs.Spec, rootfs string) error {
	if spec == nil {
		return errors.New("rootfs: nil spec")
	}
	real, err := realPath(rootfs)
	if err != nil {
		if errors.Is(err, unix.EACCES) && inUserNamespace() {
			return fmt.Errorf("rootfs %s: %w (the container's root is an unprivileged host user here: every directory above the rootfs must be searchable by it, as containerd's state dirs are)", rootfs, err)
		}
		return fmt.Errorf("rootfs %s: %w", rootfs, err)
	}
	prop, err := rootPropagation(spec)
	if err != nil {
		return err
	}
	if err := prepareRoot(real, prop); err != nil {
		return err
	}
	if err := mountAll(spec, real); err != nil {
		return err
	}
	if err := pivotRoot(real); err != nil {
		return err
	}
	// Applied again on the new "/" (runc does it after pivoting too).
	if prop != 0 {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("apply rootfsPropagation: %w", err)
		}
	}
	return nil
}

// mountAll performs the spec mounts and /dev setup inside the rootfs at real.
func mountAll(spec *specs.Spec, real string) error {
	r, err := openRoot(real)
	if err != nil {
		return err
	}
	defer r.Close()
	mt := &mounter{root: r, cgroupNS: hasNamespace(spec, specs.CgroupNamespace)}
	if spec.Linux != nil {
		mt.mountLabel = spec.Linux.MountLabel
	}
	for _, m := range spec.Mounts {
		if err := mt.mount(m); err != nil {
			return err
		}
	}
	if needsSetupDev(spec.Mounts) {
		if err := setupDev(r, spec); err != nil {
			return fmt.Errorf("setup /dev: %w", err)
		}
	}
	return nil
}

// Finalize runs after Prepare (and after hostname and sysctls): it makes the
// read-only tmpfs and /dev mounts read-only, then applies
// linux.readonlyPaths, linux.maskedPaths and root.readonly.
func Finalize(spec *specs.Spec) error {
	if spec == nil {
		return errors.New("rootfs: nil spec")
	}
	if err := remountDelayedReadonly(spec.Mounts); err != nil {
		return err
	}
	f := newFinalizer()
	defer f.close()
	if spec.Linux != nil {
		for _, p := range spec.Linux.ReadonlyPaths {
			if err := f.readonlyPath(p); err != nil {
				return fmt.Errorf("readonly path %s: %w", p, err)
			}
		}
		for _, p := range spec.Linux.MaskedPaths {
			if err := f.maskPath(p); err != nil {
				return fmt.Errorf("masked path %s: %w", p, err)
			}
		}
	}
	if spec.Root != nil && spec.Root.Readonly {
		if err := setRootReadonly(); err != nil {
			return fmt.Errorf("readonly root: %w", err)
		}
	}
	return nil
}

func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux == nil {
		return false
	}
	for _, ns := range spec.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// inUserNamespace reports whether the caller is in a user namespace other
// than the initial one (whose uid_map is the identity over all ids).
func inUserNamespace() bool {
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return !(len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295")
}

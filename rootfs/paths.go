//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// These run after pivot_root, so paths are container paths resolved by the
// kernel against the container root. Targets are opened once and mounted on
// through their /proc/self/fd path when the container has a procfs, so the
// object that was checked is the one mounted on.

// finalizer holds what one Finalize call learned about the container.
type finalizer struct {
	procFd  bool     // /proc/self/fd works (a procfs is mounted on /proc)
	devNull *os.File // verified /dev/null, opened lazily for maskedPaths
}

func newFinalizer() *finalizer {
	var st unix.Statfs_t
	ok := unix.Statfs("/proc/self/fd", &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
	return &finalizer{procFd: ok}
}

func (f *finalizer) close() {
	if f.devNull != nil {
		f.devNull.Close()
	}
}

// target is the path to hand to mount(2) for h, opened from p.
func (f *finalizer) target(h *os.File, p string) string {
	if f.procFd {
		return fdPath(h)
	}
	return p
}

// remountDelayedReadonly makes read-only the tmpfs and /dev mounts that
// Prepare mounted read-write (runc's finalizeRootfs).
func remountDelayedReadonly(mounts []specs.Mount) error {
	for _, m := range mounts {
		opts, err := parseMountOptions(m.Options)
		if err != nil || !delaysReadonly(m.Type, m.Destination, opts) {
			continue
		}
		dest := cleanPath(m.Destination)
		flags := opts.flags | unix.MS_REMOUNT | unix.MS_RDONLY
		if err := retryBusy(func() error { return unix.Mount("", dest, "", flags, "") }); err != nil {
			return fmt.Errorf("remount %s read-only: %w", dest, err)
		}
	}
	return nil
}

// retryBusy retries fn while it fails with EBUSY, up to about half a second.
func retryBusy(fn func() error) error {
	var err error
	for range 5 {
		if err = fn(); !errors.Is(err, unix.EBUSY) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// readonlyPath bind-mounts p onto itself and remounts it read-only, keeping
// the other flags of the mount (including any the kernel locked). A missing
// path is skipped.
func (f *finalizer) readonlyPath(p string) error {
	h, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer h.Close()
	t := f.target(h, p)
	if err := unix.Mount(t, t, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: p, Err: err}
	}
	// Reopen: the handle still refers to what is now covered.
	mnt, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer mnt.Close()
	cur, err := mountFlagsOf(mnt)
	if err != nil {
		return err
	}
	flags := cur | unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_REC
	if err := unix.Mount("", f.target(mnt, p), "", flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: p, Err: err}
	}
	return nil
}

// maskPath hides p: a directory gets an empty read-only tmpfs, anything else
// a bind of /dev/null (checked to be the 1:3 character device, so an image
// cannot substitute its own file). A missing path is skipped.
func (f *finalizer) maskPath(p string) error {
	h, err := os.OpenFile(p, unix.O_PATH|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		if err := unix.Mount("tmpfs", f.target(h, p), "tmpfs", unix.MS_RDONLY, ""); err != nil {
			return &os.PathError{Op: "mount tmpfs", Path: p, Err: err}
		}
		return nil
	}
	if f.devNull == nil {
		dn, err := openDevNull()
		if err != nil {
			return err
		}
		f.devNull = dn
	}
	if err := unix.Mount(f.target(f.devNull, "/dev/null"), f.target(h, p), "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind /dev/null", Path: p, Err: err}
	}
	return nil
}

// openDevNull opens /dev/null and checks it is the real null device.
func openDevNull() (*os.File, error) {
	f, err := os.OpenFile("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "fstat", Path: "/dev/null", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		f.Close()
		return nil, errors.New("/dev/null is not the 1:3 character device")
	}
	return f, nil
}

// setRootReadonly remounts / read-only, keeping the flags of the mount when
// the kernel requires it (runc's setReadonly).
func setRootReadonly() error {
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	if err := unix.Mount("", "/", "", flags, ""); err == nil {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/", &st); err != nil {
		return &os.PathError{Op: "statfs", Path: "/", Err: err}
	}
	flags |= statfsToMountFlags(st.Flags)
	if err := unix.Mount("", "/", "", flags, ""); err != nil {
		return &os.PathError{Op: "remount read-only", Path: "/", Err: err}
	}
	return nil
}

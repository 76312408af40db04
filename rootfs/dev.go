//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// device is a device node to create in the container.
type device struct {
	path         string // container path
	typ          uint32 // S_IFCHR, S_IFBLK or S_IFIFO
	major, minor int64
	mode         uint32 // permission bits
	uid, gid     uint32
}

// defaultDevices are created whenever /dev is a fresh filesystem (runc's
// AllowedDevices that have a node).
func defaultDevices() []device {
	return []device{
		{path: "/dev/null", typ: unix.S_IFCHR, major: 1, minor: 3, mode: 0o666},
		{path: "/dev/zero", typ: unix.S_IFCHR, major: 1, minor: 5, mode: 0o666},
		{path: "/dev/full", typ: unix.S_IFCHR, major: 1, minor: 7, mode: 0o666},
		{path: "/dev/random", typ: unix.S_IFCHR, major: 1, minor: 8, mode: 0o666},
		{path: "/dev/urandom", typ: unix.S_IFCHR, major: 1, minor: 9, mode: 0o666},
		{path: "/dev/tty", typ: unix.S_IFCHR, major: 5, minor: 0, mode: 0o666},
	}
}

// needsSetupDev reports whether /dev must be populated: a spec mount puts a
// new filesystem (not a bind) on /dev, as runc decides.
func needsSetupDev(mounts []specs.Mount) bool {
	for _, m := range mounts {
		if cleanPath(m.Destination) != "/dev" {
			continue
		}
		opts, err := parseMountOptions(m.Options)
		if err == nil && m.Type != "bind" && !opts.isBind() {
			return true
		}
	}
	return false
}

// specDevices merges the defaults with linux.devices; a spec device replaces
// a default one with the same path.
func specDevices(spec *specs.Spec) ([]device, error) {
	var devs []device
	byPath := map[string]int{}
	for _, d := range defaultDevices() {
		byPath[d.path] = len(devs)
		devs = append(devs, d)
	}
	if spec.Linux == nil {
		return devs, nil
	}
	for _, sd := range spec.Linux.Devices {
		d := device{path: cleanPath(sd.Path), major: sd.Major, minor: sd.Minor, mode: 0o666}
		switch sd.Type {
		case "c", "u":
			d.typ = unix.S_IFCHR
		case "b":
			d.typ = unix.S_IFBLK
		case "p":
			d.typ = unix.S_IFIFO
			d.major, d.minor = 0, 0
		default:
			return nil, fmt.Errorf("device %s: unknown type %q", sd.Path, sd.Type)
		}
		if d.path == "/" {
			return nil, fmt.Errorf("device %q: invalid path", sd.Path)
		}
		if sd.FileMode != nil {
			d.mode = uint32(sd.FileMode.Perm())
		}
		if sd.UID != nil {
			d.uid = *sd.UID
		}
		if sd.GID != nil {
			d.gid = *sd.GID
		}
		if i, ok := byPath[d.path]; ok {
			devs[i] = d
			continue
		}
		byPath[d.path] = len(devs)
		devs = append(devs, d)
	}
	return devs, nil
}

// setupDev populates a fresh /dev: device nodes, the ptmx symlink into the
// devpts instance, and the fd/stdio/core symlinks (runc's createDevices,
// setupPtmx and setupDevSymlinks).
func setupDev(r *root, spec *specs.Spec) error {
	devs, err := specDevices(spec)
	if err != nil {
		return err
	}
	for _, d := range devs {
		if d.path == "/dev/ptmx" {
			// Replaced by the devpts symlink below (runc skips it too): a
			// node bind-mounted from the host in a user namespace could
			// not even be removed.
			continue
		}
		if err := r.createDevice(d); err != nil {
			return fmt.Errorf("device %s: %w", d.path, err)
		}
	}
	rel, err := r.resolve("/dev")
	if err != nil {
		return err
	}
	dev, err := r.open(rel)
	if err != nil {
		return err
	}
	defer dev.Close()
	devFd := int(dev.Fd())

	if err := unix.Unlinkat(devFd, "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return &os.PathError{Op: "remove", Path: "/dev/ptmx", Err: err}
	}
	if err := unix.Symlinkat("pts/ptmx", devFd, "ptmx"); err != nil {
		return &os.PathError{Op: "symlink", Path: "/dev/ptmx", Err: err}
	}

	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	// CONFIG_PROC_KCORE may be off; the container gets the host's kernel.
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	for _, l := range links {
		if err := unix.Symlinkat(l[0], devFd, l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "symlink", Path: "/dev/" + l[1], Err: err}
		}
	}
	return nil
}

// createDevice makes the node with mknod, or, where mknod is not permitted
// (a user namespace), bind-mounts the host's node onto an empty file. An
// existing entry is left alone, like runc.
func (r *root) createDevice(d device) error {
	rel, err := r.resolve(d.path)
	if err != nil {
		return err
	}
	if rel == "" {
		return errors.New("refusing to create a device over the container root")
	}
	parent, err := r.mkdirAll(path.Dir(rel), 0o755)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, name := int(parent.Fd()), path.Base(rel)

	err = unix.Mknodat(pfd, name, d.typ|d.mode, int(unix.Mkdev(uint32(d.major), uint32(d.minor))))
	switch {
	case errors.Is(err, unix.EEXIST):
		return nil
	case errors.Is(err, unix.EPERM):
		return bindHostDevice(parent, name, d.path)
	case err != nil:
		return &os.PathError{Op: "mknod", Path: d.path, Err: err}
	}
	// The umask applied to mknod; set the exact mode, then the owner.
	if err := unix.Fchmodat(pfd, name, d.mode, 0); err != nil {
		return &os.PathError{Op: "chmod", Path: d.path, Err: err}
	}
	if err := unix.Fchownat(pfd, name, int(d.uid), int(d.gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: d.path, Err: err}
	}
	return nil
}

// bindHostDevice bind-mounts the host node hostPath onto a new empty file
// name in dir.
func bindHostDevice(dir *os.File, name, hostPath string) error {
	src, err := os.OpenFile(hostPath, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("mknod not permitted and no host device to bind: %w", err)
	}
	defer src.Close()
	target, err := createFileAt(dir, name, 0)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Mount(fdPath(src), fdPath(target), "", unix.MS_BIND, ""); err != nil {
		return &os.PathError{Op: "bind mount host device", Path: hostPath, Err: err}
	}
	return nil
}

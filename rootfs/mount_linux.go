package rootfs

import (
	"errors"
	"fmt"
	"os"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mounter performs the spec mounts of one Prepare call inside one rootfs.
type mounter struct {
	root     *root
	cgroupNS bool // the container has its own cgroup namespace
	// mountLabel is linux.mountLabel: the SELinux context of the
	// filesystems the container mounts (checked by the shim to be usable).
	mountLabel string
}

// labelsFS reports whether a new filesystem of type typ takes the mount
// label as a context= option. procfs, sysfs and cgroupfs have fixed labels
// (runc labels only the other ones too).
func labelsFS(typ string) bool {
	switch typ {
	case "proc", "sysfs", "cgroup", "cgroup2", "bind":
		return false
	}
	return true
}

// withMountLabel appends the SELinux context=<label> option to filesystem
// data (go-selinux's FormatMountLabel). An empty label changes nothing.
func withMountLabel(data, label string) string {
	if label == "" {
		return data
	}
	ctx := fmt.Sprintf("context=%q", label)
	if data == "" {
		return ctx
	}
	return data + "," + ctx
}

// mount performs one spec mount (runc's mountToRootfs).
func (mt *mounter) mount(m specs.Mount) error {
	typ := m.Type
	opts, err := parseMountOptions(m.Options)
	if err == nil {
		if typ == "bind" {
			opts.flags |= unix.MS_BIND
		}
		if typ == "" && opts.isBind() {
			typ = "bind"
		}
		err = mt.mountEntry(m, typ, cleanPath(m.Destination), opts)
	}
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", typ, m.Destination, err)
	}
	return nil
}

func (mt *mounter) mountEntry(m specs.Mount, typ, dest string, opts mountOptions) error {
	if dest == "/" {
		return errors.New("refusing to mount over the container root")
	}
	if opts.isBind() {
		return mt.bindMount(m.Source, dest, opts)
	}
	switch typ {
	case "proc", "sysfs":
		err := mt.mountFS(m.Source, dest, typ, opts)
		if typ == "sysfs" && errors.Is(err, unix.EPERM) {
			// No sysfs of our own (a user namespace without its own network
			// namespace): bind the host's, like runc's rootless specs do.
			return mt.bindMount("/sys", dest, hostBindOptions(opts))
		}
		return err
	case "cgroup":
		return mt.mountCgroup(m, dest, opts)
	default:
		return mt.mountFS(m.Source, dest, typ, opts)
	}
}

// hostBindOptions turns a filesystem mount's options into those of a
// recursive bind of the host's instance: same flags, no fs data, and
// read-only reaching the submounts too.
func hostBindOptions(opts mountOptions) mountOptions {
	opts.flags |= unix.MS_BIND | unix.MS_REC
	opts.data = nil
	if opts.flags&unix.MS_RDONLY != 0 {
		opts.recAttrSet |= unix.MOUNT_ATTR_RDONLY
		opts.recAttrClr &^= unix.MOUNT_ATTR_RDONLY
	}
	return opts
}

// delaysReadonly reports whether a mount is made read-only only in Finalize:
// like runc, tmpfs and /dev are mounted read-write first so that /dev can
// be populated and tmpfs modes fixed.
func delaysReadonly(typ, dest string, opts mountOptions) bool {
	return !opts.isBind() && opts.flags&unix.MS_RDONLY != 0 && (typ == "tmpfs" || cleanPath(dest) == "/dev")
}

// mountFS mounts a new filesystem instance of type typ on dest.
func (mt *mounter) mountFS(source, dest, typ string, opts mountOptions) error {
	rel, err := mt.root.resolve(dest)
	if err != nil {
		return err
	}
	if err := checkProcMount(rel, typ, nil); err != nil {
		return err
	}
	// Like runc, procfs and sysfs go only onto a real directory, reached
	// without any symlink (they were an attack vector on runtimes).
	strict := typ == "proc" || typ == "sysfs"
	if strict && rel != strings.TrimPrefix(dest, "/") {
		return fmt.Errorf("filesystem %q must be mounted on an ordinary directory: %s is a symlink", typ, dest)
	}
	target, err := mt.root.mountpoint(rel, true)
	if err != nil {
		return err
	}
	if strict {
		target.Close()
		target, err = openat2(mt.root.dir, rel, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW,
			unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_SYMLINKS)
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			return fmt.Errorf("filesystem %q must be mounted on an ordinary directory: %w", typ, err)
		} else if err != nil {
			return err
		}
	}
	defer target.Close()

	var before unix.Stat_t
	if err := unix.Fstat(int(target.Fd()), &before); err != nil {
		return &os.PathError{Op: "fstat", Path: dest, Err: err}
	}
	flags := opts.flags
	if delaysReadonly(typ, dest, opts) {
		flags &^= unix.MS_RDONLY
	}
	data := opts.dataString()
	if labelsFS(typ) {
		data = withMountLabel(data, mt.mountLabel)
	}
	if err := unix.Mount(source, fdPath(target), typ, flags, data); err != nil {
		return &os.PathError{Op: "mount", Path: dest, Err: err}
	}
	mnt, err := mt.root.open(rel)
	if err != nil {
		return err
	}
	defer mnt.Close()
	// Like runc, a tmpfs keeps the mode of the directory it covers unless a
	// mode= was given.
	if typ == "tmpfs" && !opts.hasData("mode") {
		if err := unix.Fchmodat(unix.AT_FDCWD, fdPath(mnt), before.Mode&0o7777, 0); err != nil {
			return &os.PathError{Op: "chmod", Path: dest, Err: err}
		}
	}
	return applyPropagationAndAttrs(mnt, dest, opts)
}

// bindMount bind-mounts the host path source on dest, then applies the
// flags with a MS_BIND|MS_REMOUNT, keeping flags the kernel locked.
func (mt *mounter) bindMount(source, dest string, opts mountOptions) error {
	src, err := os.OpenFile(source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open bind source: %w", err)
	}
	defer src.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: source, Err: err}
	}
	rel, err := mt.root.resolve(dest)
	if err != nil {
		return err
	}
	if err := checkProcMount(rel, "bind", src); err != nil {
		return err
	}
	target, err := mt.root.mountpoint(rel, st.Mode&unix.S_IFMT == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := unix.Mount(fdPath(src), fdPath(target), "", unix.MS_BIND|opts.flags&unix.MS_REC, ""); err != nil {
		return &os.PathError{Op: "bind mount", Path: dest, Err: err}
	}
	mnt, err := mt.root.open(rel)
	if err != nil {
		return err
	}
	defer mnt.Close()
	// The bind itself ignores every flag but MS_REC; a remount applies them.
	// Skipped when no flag was given at all, so the source's flags stay.
	if opts.flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) != 0 || opts.cleared != 0 {
		if err := bindRemount(mnt, opts); err != nil {
			return err
		}
	}
	return applyPropagationAndAttrs(mnt, dest, opts)
}

// bindRemount applies the flags of opts to the bind mount mnt
// (MS_BIND|MS_REMOUNT sets exactly those per-mount flags, as runc does for
// "mount --bind -o ..."). If the kernel refuses because flags of the mount
// are locked (a mount inherited by a less privileged user namespace), it
// retries keeping the locked flags, unless the caller explicitly cleared one
// of them or asked for a different atime setting (runc's logic).
func bindRemount(mnt *os.File, opts mountOptions) error {
	flags := (opts.flags | unix.MS_BIND | unix.MS_REMOUNT) &^ unix.MS_REC
	err := unix.Mount("", fdPath(mnt), "", flags, "")
	if err == nil || !errors.Is(err, unix.EPERM) {
		return wrapRemountErr(err)
	}
	cur, serr := mountFlagsOf(mnt)
	if serr != nil {
		return errors.Join(wrapRemountErr(err), serr)
	}
	if cur&opts.cleared&mntLockFlags != 0 {
		return fmt.Errorf("remount: cannot clear flags locked on the mount: %w", err)
	}
	if req := flags & mntAtimeFlags; req != 0 && req != cur&mntAtimeFlags {
		return fmt.Errorf("remount: cannot change the locked atime flags: %w", err)
	}
	flags |= cur & mntLockFlags
	return wrapRemountErr(unix.Mount("", fdPath(mnt), "", flags, ""))
}

func wrapRemountErr(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("remount: %w", err)
}

// mountFlagsOf returns the MS_* per-mount flags of the mount f is on; a mount
// with neither noatime nor relatime is strictatime.
func mountFlagsOf(f *os.File) (uintptr, error) {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return 0, &os.PathError{Op: "fstatfs", Path: f.Name(), Err: err}
	}
	flags := statfsToMountFlags(st.Flags)
	if flags&(unix.MS_NOATIME|unix.MS_RELATIME) == 0 {
		flags |= unix.MS_STRICTATIME
	}
	return flags, nil
}

// applyPropagationAndAttrs applies the propagation options in order, then
// the recursive attributes ("rro", ...) with mount_setattr(2).
func applyPropagationAndAttrs(mnt *os.File, dest string, opts mountOptions) error {
	for _, p := range opts.propagation {
		if err := unix.Mount("", fdPath(mnt), "", p, ""); err != nil {
			return &os.PathError{Op: "set propagation", Path: dest, Err: err}
		}
	}
	if opts.recAttrSet != 0 || opts.recAttrClr != 0 {
		attr := unix.MountAttr{Attr_set: opts.recAttrSet, Attr_clr: opts.recAttrClr}
		if err := unix.MountSetattr(int(mnt.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return &os.PathError{Op: "mount_setattr", Path: dest, Err: err}
		}
	}
	return nil
}

// isValidProcMount reports whether rel, below proc/, may be mounted over:
// the files lxcfs emulates, and a few more runc allows.
func isValidProcMount(rel string) bool {
	switch rel {
	case "proc/cpuinfo", "proc/diskstats", "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime",
		"proc/loadavg", "proc/slabinfo", "proc/pressure/cpu", "proc/pressure/io", "proc/pressure/memory",
		"proc/net/dev", "proc/sys/kernel/ns_last_pid":
		return true
	}
	return false
}

// checkProcMount is runc's guard against mounting over procfs (which could
// redirect /proc/self/attr or similar writes of the runtime). rel is the
// resolved destination relative to the root, src the bind source (nil for a
// new filesystem of type typ): /proc itself takes only a proc filesystem or a
// bind of a procfs root; below /proc only a few files may be
// covered.
func checkProcMount(rel, typ string, src *os.File) error {
	if rel != "proc" && !strings.HasPrefix(rel, "proc/") {
		return nil
	}
	if rel == "proc" {
		if src == nil {
			if typ == "proc" {
				return nil
			}
			return fmt.Errorf("%q cannot be mounted on /proc", typ)
		}
		var sfs unix.Statfs_t
		var st unix.Stat_t
		if err := unix.Fstatfs(int(src.Fd()), &sfs); err != nil {
			return err
		}
		if err := unix.Fstat(int(src.Fd()), &st); err != nil {
			return err
		}
		if sfs.Type == unix.PROC_SUPER_MAGIC && st.Ino == 1 {
			return nil
		}
		return fmt.Errorf("%q cannot be bind-mounted on /proc: not the root of a procfs", src.Name())
	}
	if isValidProcMount(rel) {
		return nil
	}
	return fmt.Errorf("%q cannot be mounted because it is inside /proc", "/"+rel)
}

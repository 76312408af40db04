package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const hostCgroupRoot = "/sys/fs/cgroup"

// mountCgroup handles a "cgroup" spec mount the way runc does.
//
// cgroup v2 (unified) hosts: a cgroup2 filesystem is mounted; if that is not
// permitted (no cgroup namespace in a user namespace), the host's
// /sys/fs/cgroup is bind-mounted instead.
//
// cgroup v1 and hybrid hosts: a tmpfs (mode 755) is mounted on the
// destination and each v1 hierarchy gets a subdirectory: with a cgroup
// namespace a fresh cgroup filesystem of that hierarchy, without one a bind
// of the init's own cgroup directory in the host's hierarchy (so Prepare must
// run after the init joined its cgroups). Co-mounted controllers get
// symlinks ("cpu" -> "cpu,cpuacct"). The hybrid unified hierarchy
// (/sys/fs/cgroup/unified) is not exposed, like runc. With "ro" the binds
// and the tmpfs end up read-only.
func (mt *mounter) mountCgroup(m specs.Mount, dest string, opts mountOptions) error {
	var st unix.Statfs_t
	if err := unix.Statfs(hostCgroupRoot, &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		err := mt.mountFS(m.Source, dest, "cgroup2", opts)
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EBUSY) {
			return mt.bindMount(hostCgroupRoot, dest, hostBindOptions(opts))
		}
		return err
	}

	hierarchies, err := mountinfo.GetMounts(mountinfo.FSTypeFilter("cgroup"))
	if err != nil {
		return fmt.Errorf("read host cgroup mounts: %w", err)
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return err
	}
	own, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return err
	}
	binds := cgroupV1Binds(hierarchies, own)

	tmpfs := mountOptions{
		flags:       unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV,
		data:        []string{"mode=755"},
		propagation: opts.propagation,
	}
	if err := mt.mountFS("tmpfs", dest, "tmpfs", tmpfs); err != nil {
		return err
	}
	for _, b := range binds {
		sub := path.Join(dest, b.name)
		if mt.cgroupNS {
			o := mountOptions{
				flags: unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV | opts.flags&unix.MS_RDONLY,
				data:  []string{b.fsData},
			}
			err = mt.mountFS("cgroup", sub, "cgroup", o)
		} else {
			o := opts
			o.flags |= unix.MS_BIND | unix.MS_REC
			o.data = nil
			err = mt.bindMount(b.source, sub, o)
		}
		if err != nil {
			return fmt.Errorf("cgroup hierarchy %s: %w", b.name, err)
		}
	}

	rel, err := mt.root.resolve(dest)
	if err != nil {
		return err
	}
	dir, err := mt.root.open(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	for _, b := range binds {
		if !strings.Contains(b.name, ",") {
			continue
		}
		for _, ss := range strings.Split(b.name, ",") {
			if err := unix.Symlinkat(b.name, int(dir.Fd()), ss); err != nil && !errors.Is(err, unix.EEXIST) {
				return &os.PathError{Op: "symlink", Path: path.Join(dest, ss), Err: err}
			}
		}
	}
	if opts.flags&unix.MS_RDONLY != 0 {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV)
		if err := unix.Mount("", fdPath(dir), "", flags, ""); err != nil {
			return &os.PathError{Op: "remount read-only", Path: dest, Err: err}
		}
	}
	return nil
}

// cgroupBind is one cgroup v1 hierarchy to expose in the container.
type cgroupBind struct {
	name   string // directory under the cgroup mount: base of the host mountpoint ("cpu,cpuacct")
	source string // host directory of the init's own cgroup in that hierarchy
	fsData string // cgroup fs data to mount the hierarchy afresh ("cpu,cpuacct", "name=systemd")
}

// cgroupV1Binds pairs each host v1 hierarchy with the caller's own cgroup in
// it. Hierarchies the caller's cgroup is not visible in are skipped.
func cgroupV1Binds(hierarchies []*mountinfo.Info, own map[string]string) []cgroupBind {
	var binds []cgroupBind
	seen := map[string]bool{}
	for _, h := range hierarchies {
		if h.FSType != "cgroup" {
			continue
		}
		name := filepath.Base(h.Mountpoint)
		if seen[name] {
			continue
		}
		var cgPath string
		var found bool
		var data []string
		for _, o := range strings.Split(h.VFSOptions, ",") {
			if p, ok := own[o]; ok && o != "" {
				data = append(data, o)
				if !found {
					cgPath, found = p, true
				}
			}
		}
		if !found {
			continue
		}
		rel, err := filepath.Rel(h.Root, cgPath)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		seen[name] = true
		binds = append(binds, cgroupBind{
			name:   name,
			source: filepath.Join(h.Mountpoint, rel),
			fsData: strings.Join(data, ","),
		})
	}
	return binds
}

// parseProcCgroup parses /proc/<pid>/cgroup into controller (or
// "name=<name>" for named hierarchies) -> cgroup path; the v2 entry is
// keyed "".
func parseProcCgroup(r io.Reader) (map[string]string, error) {
	own := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			own[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			own[c] = parts[2]
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parse /proc/self/cgroup: %w", err)
	}
	return own, nil
}

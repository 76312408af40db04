//go:build linux

package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
)

const (
	cgroupRoot = "/sys/fs/cgroup"
	// cgroup2Magic is CGROUP2_SUPER_MAGIC, the statfs type of a v2 hierarchy.
	cgroup2Magic = 0x63677270
	// An emptied cgroup can be busy for a moment (its killed processes are
	// still exiting): rmdir is tried rmdirTries times, rmdirPause apart.
	rmdirTries = 50
	rmdirPause = 100 * time.Millisecond
)

// CgroupBases lists the cgroup hierarchies: /sys/fs/cgroup itself if it is
// cgroup v2, and every directory below it (the v1 and hybrid hierarchies).
func CgroupBases() []string {
	bases := []string{}
	var st syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &st); err == nil && st.Type == cgroup2Magic {
		bases = append(bases, cgroupRoot)
	}
	entries, _ := os.ReadDir(cgroupRoot)
	for _, e := range entries {
		if e.IsDir() {
			bases = append(bases, filepath.Join(cgroupRoot, e.Name()))
		}
	}
	return bases
}

// CgroupPids lists the processes in cgroup dir (its cgroup.procs); nil if
// that cannot be read.
func CgroupPids(dir string) []int {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil
	}
	return parsePids(string(b))
}

func parsePids(s string) []int {
	var pids []int
	for _, f := range strings.Fields(s) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// RemoveCgroups removes the cgroup name (a directory at the top of every
// hierarchy) and all cgroups below it: it SIGKILLs their processes, deepest
// cgroup first, then removes the cgroups, deepest first, trying each for 5s.
// With thaw, it thaws each cgroup before the kill (v1 freezer.state, v2
// cgroup.freeze), as a frozen process does not die of SIGKILL. logf hears
// of each cgroup it could not remove.
func RemoveCgroups(name string, thaw bool, logf Logf) {
	var dirs []string
	for _, base := range CgroupBases() {
		_ = filepath.WalkDir(filepath.Join(base, name), func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	deepestFirst(dirs)
	for _, dir := range dirs {
		if thaw {
			_ = os.WriteFile(filepath.Join(dir, "freezer.state"), []byte("THAWED"), 0)
			_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
		}
		for _, pid := range CgroupPids(dir) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, dir := range dirs {
		var err error
		for range rmdirTries {
			if err = syscall.Rmdir(dir); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(rmdirPause)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			logf.printf("rmdir %s: %v", dir, err)
		}
	}
}

// MountsUnder lists the mount points at or below dir (nil if the mount
// table cannot be read).
func MountsUnder(dir string) []string {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	return out
}

// UnmountAll detaches (MNT_DETACH) every mount point at or below dir,
// deepest first. logf hears of each one that fails.
func UnmountAll(dir string, logf Logf) {
	mounts := MountsUnder(dir)
	deepestFirst(mounts)
	for _, mp := range mounts {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			logf.printf("unmount %s: %v", mp, err)
		}
	}
}

// deepestFirst sorts paths longest first, so a path comes before the paths
// it lies below.
func deepestFirst(paths []string) {
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
}

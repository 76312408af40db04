package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// Placement is how a new process enters its cgroup without the shim writing
// its pid to cgroup.procs after fork. That write takes the kernel's global
// cgroup_threadgroup_rwsem for writing, and the first writer after a quiet
// spell waits for a whole RCU grace period (5-8 ms on an idle machine, 10-20
// ms under load), on the critical path of every create and exec. runc pays
// it; husk avoids it:
//   - cgroup v2 (and the unified mount of a hybrid host): clone3 with
//     CLONE_INTO_CGROUP and Dir: the process is born in the cgroup;
//   - cgroup v1: the process, while still single-threaded (process/nsenter's
//     C constructor, before the Go runtime starts), writes "0" to each
//     hierarchy's tasks file in Tasks. Moving the calling thread needs only
//     cgroup_mutex, not the global rwsem; the files are opened by the shim, and
//     the kernel checks the opener's credentials, so this works from inside a
//     new user namespace too.
//
// The caller closes the Placement once the process has started.
type Placement struct {
	// Tasks are the v1 hierarchies' tasks files, open for writing.
	Tasks []*os.File
	// Dir is the cgroup2 directory for CLONE_INTO_CGROUP, nil if none.
	Dir *os.File
	// addDir adds a pid to Dir's cgroup (cgroup.procs).
	addDir func(pid int) error
}

// AddToDir adds pid to the cgroup of Dir with a cgroup.procs write, for a
// process that could not be cloned into it (a kernel without clone3 or
// CLONE_INTO_CGROUP; a clone from a thread in another cgroup namespace).
func (p *Placement) AddToDir(pid int) error {
	if p.addDir == nil {
		return nil
	}
	return p.addDir(pid)
}

// Close closes the files.
func (p *Placement) Close() {
	for _, f := range p.Tasks {
		f.Close()
	}
	if p.Dir != nil {
		p.Dir.Close()
	}
	p.Tasks, p.Dir = nil, nil
}

// openCloneDir opens a cgroup2 directory for clone3(CLONE_INTO_CGROUP)
// (syscall.SysProcAttr.UseCgroupFD).
func openCloneDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroups: open %s for CLONE_INTO_CGROUP: %w", dir, err)
	}
	return f, nil
}

func (noop) Placement() (*Placement, error) { return &Placement{}, nil }

func (c *v2) Placement() (*Placement, error) {
	f, err := openCloneDir(c.dir)
	if err != nil {
		return nil, err
	}
	return &Placement{Dir: f, addDir: c.Add}, nil
}

func (c *v1) Placement() (_ *Placement, retErr error) {
	p := &Placement{}
	defer func() {
		if retErr != nil {
			p.Close()
		}
	}()
	dirs := c.dirs()
	// A stable order (the map's is random), so that failures repeat.
	paths := make([]string, 0, len(dirs))
	for _, d := range dirs {
		paths = append(paths, d)
	}
	sort.Strings(paths)
	// Co-mounted controllers (cpu,cpuacct) reach one hierarchy by two
	// paths: one tasks file each.
	type key struct{ dev, ino uint64 }
	seen := map[key]bool{}
	for _, d := range paths {
		f, err := os.OpenFile(filepath.Join(d, "tasks"), os.O_WRONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("cgroups: open %s for a process to join: %w", d, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err == nil {
			k := key{uint64(st.Dev), st.Ino}
			if seen[k] {
				f.Close()
				continue
			}
			seen[k] = true
		}
		p.Tasks = append(p.Tasks, f)
	}
	if c.unified != nil {
		f, err := openCloneDir(c.unifDir)
		if err != nil {
			return nil, err
		}
		p.Dir = f
		p.addDir = func(pid int) error {
			if err := c.unified.AddProc(uint64(pid)); err != nil {
				return fmt.Errorf("cgroups: add %d to %s: %w", pid, c.unifDir, err)
			}
			return nil
		}
	}
	return p, nil
}

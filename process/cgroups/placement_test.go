package cgroups

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/cgroups/v3"
	"golang.org/x/sys/unix"
)

// openInto lists this process's open fds that refer to the cgroup p (its
// directory or a file in it, in any hierarchy). A count of all fds would be
// racy: other tests' background goroutines close files (watchers, pidfds).
func openInto(t *testing.T, p string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err == nil && strings.HasPrefix(target, "/sys/fs/cgroup/") &&
			(strings.HasSuffix(target, p) || strings.Contains(target, p+"/")) {
			out = append(out, e.Name()+" -> "+target)
		}
	}
	return out
}

// fdTarget is what /proc/self/fd says f is.
func fdTarget(t *testing.T, f *os.File) string {
	t.Helper()
	s, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func devOf(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return st.Dev
}

// v1HierarchyDevs is the set of the mounted v1 hierarchies (each its own
// cgroupfs superblock, co-mounted controllers one hierarchy), by device.
func v1HierarchyDevs(t *testing.T) map[uint64]string {
	t.Helper()
	devs := map[uint64]string{}
	for _, r := range hierarchyRoots(t) {
		if r != hybridMountpoint {
			devs[devOf(t, r)] = r
		}
	}
	return devs
}

// sleeper starts a single-threaded process owned by the test (killed and
// reaped at cleanup).
func sleeper(t *testing.T) int {
	t.Helper()
	return start(t, "exec sleep 1000").Process.Pid
}

// inUnified reads cgroup.procs of unified/<p>.
func inUnified(t *testing.T, p string, pid int) bool {
	t.Helper()
	for _, l := range strings.Fields(readTrim(t, filepath.Join(hybridMountpoint, p, "cgroup.procs"))) {
		if l == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// TestV1Placement: a v1 cgroup's Placement has one tasks file (write-only,
// close-on-exec) per hierarchy, plus the unified directory on a hybrid host;
// both work; Close closes everything. For a cgroup from New and from Load.
func TestV1Placement(t *testing.T) {
	requireV1(t)
	hybrid := cgroups.Mode() == cgroups.Hybrid
	for _, tc := range []struct {
		name string
		load bool
	}{{"new", false}, {"load", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := testParent(t) + "/place"
			cg, err := New(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				if err := cg.Delete(); err != nil {
					t.Errorf("delete: %v", err)
				}
			})
			if tc.load {
				if cg, err = Load(p); err != nil {
					t.Fatal(err)
				}
			}
			if open := openInto(t, p); len(open) != 0 {
				t.Fatalf("open before Placement: %v", open)
			}
			pl, err := cg.Placement()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pl.Close)

			// Tasks: exactly the tasks files of the cgroup's directories,
			// one per mounted v1 hierarchy.
			var wantNames []string
			for _, d := range cg.(*v1).dirs() {
				wantNames = append(wantNames, filepath.Join(d, "tasks"))
			}
			slices.Sort(wantNames)
			wantNames = slices.Compact(wantNames)
			var names []string
			devs := map[uint64]string{}
			for _, f := range pl.Tasks {
				names = append(names, f.Name())
				if got := fdTarget(t, f); filepath.Base(got) != "tasks" || filepath.Base(filepath.Dir(got)) != "place" {
					t.Errorf("fd %d is %s, want a tasks file of .../place", f.Fd(), got)
				}
				flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
				if err != nil || flags&unix.O_ACCMODE != unix.O_WRONLY {
					t.Errorf("%s: flags %#x (%v), want O_WRONLY", f.Name(), flags, err)
				}
				if fdf, err := unix.FcntlInt(f.Fd(), unix.F_GETFD, 0); err != nil || fdf&unix.FD_CLOEXEC == 0 {
					t.Errorf("%s: not close-on-exec (%#x, %v)", f.Name(), fdf, err)
				}
				d := devOf(t, f.Name())
				if prev, dup := devs[d]; dup {
					t.Errorf("%s and %s are the same hierarchy: the child would write to it twice", prev, f.Name())
				}
				devs[d] = f.Name()
			}
			slices.Sort(names)
			if !slices.Equal(names, wantNames) {
				t.Errorf("tasks files\n got  %v\n want %v", names, wantNames)
			}
			for d, root := range v1HierarchyDevs(t) {
				if _, ok := devs[d]; !ok {
					t.Errorf("no tasks file for the hierarchy at %s", root)
				}
			}
			// /proc/self/cgroup lists every v1 hierarchy of the kernel; all
			// are mounted here (checked above by device).
			var listed int
			for ctrls := range procCgroups(t, os.Getpid()) {
				if ctrls != "" {
					listed++
				}
			}
			if listed != len(pl.Tasks) {
				t.Logf("note: /proc/self/cgroup lists %d v1 hierarchies, Placement has %d tasks files (unmounted hierarchies?)", listed, len(pl.Tasks))
			}

			// Dir: the unified placement on a hybrid host, nothing on legacy.
			n := len(pl.Tasks)
			switch {
			case hybrid && pl.Dir == nil:
				t.Error("hybrid host: no Dir for the unified mount")
			case !hybrid && pl.Dir != nil:
				t.Errorf("legacy host: Dir %s", pl.Dir.Name())
			case pl.Dir != nil:
				n++
				if got, want := fdTarget(t, pl.Dir), filepath.Join(hybridMountpoint, p); got != want {
					t.Errorf("Dir is %s, want %s", got, want)
				}
				flags, err := unix.FcntlInt(pl.Dir.Fd(), unix.F_GETFL, 0)
				if err != nil || flags&unix.O_PATH == 0 || flags&unix.O_DIRECTORY == 0 {
					t.Errorf("Dir flags %#x (%v), want O_PATH|O_DIRECTORY", flags, err)
				}
			}
			if open := openInto(t, p); len(open) != n {
				t.Errorf("open after Placement: %v, want %d fds", open, n)
			}

			t.Run("tasks files move a thread", func(t *testing.T) {
				pid := sleeper(t)
				own := procCgroups(t, pid)
				for _, f := range pl.Tasks {
					// sleep is single-threaded: its tid is its pid.
					if _, err := f.WriteString(strconv.Itoa(pid)); err != nil {
						t.Fatalf("write %d to %s: %v", pid, f.Name(), err)
					}
				}
				for ctrls, path := range procCgroups(t, pid) {
					want := p
					if ctrls == "" {
						want = own[""] // the unified placement is the Dir's job
					}
					if path != want {
						t.Errorf("/proc/%d/cgroup %q: %s, want %s", pid, ctrls, path, want)
					}
				}
			})

			t.Run("AddToDir", func(t *testing.T) {
				pid := sleeper(t)
				own := procCgroups(t, pid)
				if err := pl.AddToDir(pid); err != nil {
					t.Fatal(err)
				}
				got := procCgroups(t, pid)
				for ctrls, path := range got {
					want := own[ctrls] // v1: untouched
					if ctrls == "" && hybrid {
						want = p
					}
					if path != want {
						t.Errorf("/proc/%d/cgroup %q: %s, want %s", pid, ctrls, path, want)
					}
				}
				if hybrid && !inUnified(t, p, pid) {
					t.Errorf("%d not in %s/cgroup.procs", pid, filepath.Join(hybridMountpoint, p))
				}
			})

			t.Run("clone into Dir", func(t *testing.T) {
				if pl.Dir == nil {
					t.Skip("no cgroup2 placement (legacy host)")
				}
				cmd := exec.Command("sleep", "1000")
				cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(pl.Dir.Fd())}
				if err := cmd.Start(); err != nil {
					t.Skipf("CLONE_INTO_CGROUP: %v", err)
				}
				t.Cleanup(func() {
					_ = cmd.Process.Kill()
					_ = cmd.Wait()
				})
				if got := procCgroups(t, cmd.Process.Pid)[""]; got != p {
					t.Errorf("born in %q, want %q", got, p)
				}
			})

			pl.Close()
			if pl.Tasks != nil || pl.Dir != nil {
				t.Errorf("after Close: Tasks %v, Dir %v", pl.Tasks, pl.Dir)
			}
			if open := openInto(t, p); len(open) != 0 {
				t.Errorf("open after Close: %v", open)
			}
			pl.Close() // a second Close is harmless
		})
	}
}

// TestV1PlacementFails: when a directory cannot be opened, Placement fails
// naming it and leaves no file open.
func TestV1PlacementFails(t *testing.T) {
	requireV1(t)
	for _, tc := range []struct {
		name   string
		remove func(c *v1) string // removes a directory of c, returns it
	}{
		{"last v1 hierarchy", func(c *v1) string {
			var dirs []string
			for _, d := range c.dirs() {
				dirs = append(dirs, d)
			}
			slices.Sort(dirs)
			return dirs[len(dirs)-1] // opened last: all the others are open by then
		}},
		{"unified", func(c *v1) string { return c.unifDir }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := testParent(t) + "/broken"
			cg, err := New(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cg.Delete() })
			c := cg.(*v1)
			if tc.name == "unified" && c.unified == nil {
				t.Skip("no unified placement (legacy host)")
			}
			dir := tc.remove(c)
			if err := syscall.Rmdir(dir); err != nil {
				t.Fatal(err)
			}
			pl, err := cg.Placement()
			if err == nil {
				pl.Close()
				t.Fatalf("Placement with %s removed: no error", dir)
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q does not name %s", err, dir)
			}
			if open := openInto(t, p); len(open) != 0 {
				t.Errorf("open after the failed Placement: %v", open)
			}
		})
	}
}

// TestNoCgroupPlacement: the no-op cgroup (empty cgroupsPath) has an empty
// Placement: nothing to pass, nothing to clone into, AddToDir a no-op.
func TestNoCgroupPlacement(t *testing.T) {
	for _, load := range []bool{false, true} {
		cg, err := New("", nil)
		if load {
			cg, err = Load("")
		}
		if err != nil {
			t.Fatal(err)
		}
		pl, err := cg.Placement()
		if err != nil {
			t.Fatal(err)
		}
		if len(pl.Tasks) != 0 || pl.Dir != nil {
			t.Errorf("load=%v: Placement %+v, want empty", load, pl)
		}
		own := procCgroups(t, os.Getpid())
		if err := pl.AddToDir(os.Getpid()); err != nil {
			t.Errorf("AddToDir: %v", err)
		}
		if got := procCgroups(t, os.Getpid()); len(got) != len(own) {
			t.Errorf("cgroups changed: %v -> %v", own, got)
		} else {
			for k, v := range own {
				if got[k] != v {
					t.Errorf("cgroups changed: %v -> %v", own, got)
				}
			}
		}
		pl.Close() // nothing to close
	}
}

// TestV2PlacementDir: a cgroup v2 cgroup (here on the hybrid unified mount
// when the host is not v2) has only a Dir, which a process can be cloned
// into, and AddToDir writes cgroup.procs.
func TestV2PlacementDir(t *testing.T) {
	mnt, _ := v2Mount(t)
	p := testParent(t) + "/place2"
	cg, err := newV2(mnt, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	pid := sleeper(t)
	pl, err := cg.Placement()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pl.Close)
	if len(pl.Tasks) != 0 || pl.Dir == nil {
		t.Fatalf("Placement: %d tasks files, Dir %v; want none and a Dir", len(pl.Tasks), pl.Dir)
	}
	if got, want := fdTarget(t, pl.Dir), filepath.Join(mnt, p); got != want {
		t.Errorf("Dir is %s, want %s", got, want)
	}
	if err := pl.AddToDir(pid); err != nil {
		t.Fatal(err)
	}
	if got := procCgroups(t, pid)[""]; got != p {
		t.Errorf("after AddToDir: %q, want %q", got, p)
	}
	if open := openInto(t, p); len(open) != 1 {
		t.Errorf("open: %v, want the Dir only", open)
	}
	pl.Close()
	if open := openInto(t, p); len(open) != 0 {
		t.Errorf("open after Close: %v", open)
	}
}

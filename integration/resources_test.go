//go:build linux

package integration

// Resource budgets through containerd: a container's cgroup (placement in
// every hierarchy, removal on delete), its limits read back from the host's
// cgroupfs and measured in effect, OOM, metrics, ps, live updates, pause and
// resume, kill --all, the cgroup namespace, and bad input. The limits are
// cgroup v1 files: on a pure cgroup v2 host those tests skip (the v2 code
// paths are unit-tested in process/cgroups).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/moby/sys/mountinfo"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const resCgroupRoot = "/sys/fs/cgroup"

// resCgroupRel is the cgroup path ctr and the client's default spec give
// container id (linux.cgroupsPath "/<namespace>/<id>").
func resCgroupRel(id string) string { return "/" + testNS + "/" + id }

// resCgroupMounts lists the mount points of every cgroup filesystem below
// /sys/fs/cgroup: each v1 hierarchy and the cgroup2 mount (the unified one
// on a hybrid host), or /sys/fs/cgroup itself on a cgroup v2 host.
func resCgroupMounts(t *testing.T) []string {
	t.Helper()
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(resCgroupRoot))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Mountpoint)
		}
	}
	if len(out) == 0 {
		t.Skip("no cgroup filesystem mounted under /sys/fs/cgroup")
	}
	return out
}

// resRequireV1 skips unless the host mounts the cgroup v1 controllers the test
// reads back (in /sys/fs/cgroup/<controller>).
func resRequireV1(t *testing.T, controllers ...string) {
	t.Helper()
	for _, c := range controllers {
		var st syscall.Statfs_t
		if err := syscall.Statfs(filepath.Join(resCgroupRoot, c), &st); err != nil || st.Type != 0x27e0eb { // CGROUP_SUPER_MAGIC
			t.Skipf("needs the cgroup v1 %s controller mounted at %s/%s (the v2 paths are unit-tested in process/cgroups)", c, resCgroupRoot, c)
		}
	}
}

// resCgFile is the path of a control file of cgroup rel in a v1 hierarchy.
func resCgFile(controller, rel, file string) string {
	return filepath.Join(resCgroupRoot, controller, rel, file)
}

func resReadCg(t *testing.T, controller, rel, file string) string {
	t.Helper()
	b, err := os.ReadFile(resCgFile(controller, rel, file))
	if err != nil {
		t.Fatalf("read back %s: %v", resCgFile(controller, rel, file), err)
	}
	return strings.TrimSpace(string(b))
}

func resReadCgInt(t *testing.T, controller, rel, file string) int64 {
	t.Helper()
	s := resReadCg(t, controller, rel, file)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s: %q is not a number", resCgFile(controller, rel, file), s)
	}
	return n
}

// resFlatKeyed reads a "key value" per line control file (cpu.stat,
// pids.events) into a map.
func resFlatKeyed(t *testing.T, controller, rel, file string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, l := range strings.Split(resReadCg(t, controller, rel, file), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

// resProcCgroupPaths returns the cgroup path of each line of /proc/<pid>/cgroup
// ("hierarchy-id:controllers:path"), keyed by the controllers field.
func resProcCgroupPaths(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	return resParseProcCgroup(string(b))
}

func resParseProcCgroup(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		parts := strings.SplitN(strings.TrimSpace(l), ":", 3)
		if len(parts) == 3 {
			m[parts[1]] = parts[2]
		}
	}
	return m
}

// resAssertPlaced checks that cgroup rel exists in every hierarchy and that pid
// is in it in every hierarchy it belongs to (v1 controllers, named
// hierarchies and the unified one).
func resAssertPlaced(t *testing.T, rel string, pid int) {
	t.Helper()
	for _, mp := range resCgroupMounts(t) {
		if _, err := os.Stat(filepath.Join(mp, rel)); err != nil {
			t.Errorf("cgroup %s missing in hierarchy %s: %v", rel, mp, err)
		}
	}
	paths := resProcCgroupPaths(t, pid)
	if len(paths) == 0 {
		t.Fatalf("/proc/%d/cgroup is empty", pid)
	}
	for ctrls, p := range paths {
		if p != rel {
			t.Errorf("init %d is in %q in hierarchy %q, want %q", pid, p, ctrls, rel)
		}
	}
}

// resAssertCgroupGone checks that cgroup rel exists in no hierarchy.
func resAssertCgroupGone(t *testing.T, rel string) {
	t.Helper()
	for _, mp := range resCgroupMounts(t) {
		d := filepath.Join(mp, rel)
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			t.Errorf("cgroup dir %s still exists after delete (err %v, procs %q)", d, err, strings.Fields(string(b)))
		}
	}
}

// resCgroupProcs is the sorted union of cgroup.procs of rel over all
// hierarchies.
func resCgroupProcs(t *testing.T, rel string) []int {
	t.Helper()
	var pids []int
	for _, mp := range resCgroupMounts(t) {
		pids = append(pids, cgroupPids(filepath.Join(mp, rel))...)
	}
	sort.Ints(pids)
	return slices.Compact(pids)
}

// resFinish SIGKILLs every process of the task of container id, deletes task
// and container, and checks that the cgroup is gone in every hierarchy as
// soon as Delete returned, and that nothing else is left.
func resFinish(t *testing.T, id string) {
	t.Helper()
	ctx := testCtx(t)
	c, task := loadContainer(t, ctx, id)
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil {
		t.Errorf("kill --all: %v", err)
	}
	select {
	case <-exitc:
	case <-time.After(15 * time.Second):
		t.Fatalf("task %s did not exit 15s after SIGKILL --all", id)
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("delete task %s: %v", id, err)
	}
	rel := resCgroupRel(id)
	if info, err := c.Spec(ctx); err == nil && info.Linux != nil && info.Linux.CgroupsPath != "" {
		rel = resExpectedCgroup(info.Linux.CgroupsPath)
	}
	resAssertCgroupGone(t, rel)
	deleteContainer(t, ctx, c)
	assertNoLeaks(t, id)
}

// resExpectedCgroup is where husk puts a cgroupsPath (see process/cgroups
// CgroupfsPath), for the forms the tests use.
func resExpectedCgroup(cgroupsPath string) string {
	if parts := strings.Split(cgroupsPath, ":"); len(parts) == 3 && !strings.HasPrefix(cgroupsPath, "/") {
		// "system.slice:prefix:name" → /system.slice/prefix-name.scope
		return "/" + parts[0] + "/" + parts[1] + "-" + parts[2] + ".scope"
	}
	return filepath.Clean("/" + cgroupsPath)
}

// ---------------------------------------------------------------------------

// TestResourcesPlacement: the init is in the container's cgroup in every
// hierarchy (v1 controllers, name=systemd, the unified cgroup2 mount) for
// each cgroupsPath form, and after Delete the directory is gone everywhere,
// also when the container left a stray process behind.
func TestResourcesPlacement(t *testing.T) {
	cases := []struct {
		name        string
		cgroupsPath func(id string) string // nil: the client's default "/<ns>/<id>"
	}{
		{name: "default-absolute"},
		{name: "relative", cgroupsPath: func(id string) string { return testNS + "/" + id }},
		{name: "systemd", cgroupsPath: func(id string) string { return "system.slice:husk:" + id }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			ctx := testCtx(t)
			rel := resCgroupRel(id)
			opts := []oci.SpecOpts{oci.WithProcessArgs("sleep", "1000")}
			if tc.cgroupsPath != nil {
				cp := tc.cgroupsPath(id)
				rel = resExpectedCgroup(cp)
				if strings.HasPrefix(rel, "/system.slice/") {
					resCleanupSlice(t, "/system.slice", rel)
				}
				opts = append(opts, oci.WithCgroup(cp))
			}
			c := newContainer(t, ctx, id, opts...)
			task, err := c.NewTask(ctx, cio.NullIO)
			if err != nil {
				t.Fatalf("NewTask: %v", err)
			}
			// Placed before the user's process runs: already at Create.
			resAssertPlaced(t, rel, int(task.Pid()))
			if err := task.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
			resAssertPlaced(t, rel, int(task.Pid()))
			resFinish(t, id)
		})
	}

	t.Run("stray-process", func(t *testing.T) {
		// In the host pid namespace nothing but the cgroup ties the stray
		// sleep to the container.
		id := uniqueID(t)
		ctx := testCtx(t)
		rel := resCgroupRel(id)
		c := newContainer(t, ctx, id,
			oci.WithHostNamespace(specs.PIDNamespace),
			oci.WithProcessArgs("sh", "-c", "sleep 1000 & exec sleep 999"))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		var procs []int
		if !waitFor(10*time.Second, func() bool { procs = resCgroupProcs(t, rel); return len(procs) == 2 }) {
			t.Fatalf("want the init and one stray in %s, cgroup.procs: %v", rel, procs)
		}
		stray := procs[0]
		if stray == int(task.Pid()) {
			stray = procs[1]
		}
		// Kill only the init: the stray must not survive the container.
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("Kill: %v", err)
		}
		select {
		case <-exitc:
		case <-time.After(15 * time.Second):
			t.Fatal("init did not exit after SIGKILL")
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		resAssertCgroupGone(t, rel)
		if !waitProcGone(stray, "sleep 1000", 5*time.Second) {
			t.Errorf("stray process %d (sleep 1000) survived the container", stray)
		}
		deleteContainer(t, ctx, c)
		assertNoLeaks(t, id)
	})
}

// TestResourcesDeleteAction: when a shim dies, containerd runs the shim's
// `delete` action, which must remove the cgroup, killing what is in it, even
// if the container was paused (frozen) and left a stray process behind.
func TestResourcesDeleteAction(t *testing.T) {
	resRequireV1(t, "freezer")
	id := uniqueID(t)
	ctx := testCtx(t)
	rel := resCgroupRel(id)
	resCleanupFrozen(t, rel)
	topics := watchTopics(t, ctx, id)
	c := newContainer(t, ctx, id,
		oci.WithHostNamespace(specs.PIDNamespace),
		oci.WithProcessArgs("sh", "-c", "sleep 1000 & exec sleep 999"))
	task, _ := startTask(t, ctx, c, cio.NullIO)
	var procs []int
	if !waitFor(10*time.Second, func() bool { procs = resCgroupProcs(t, rel); return len(procs) == 2 }) {
		t.Fatalf("want the init and a stray in %s, have %v", rel, procs)
	}
	if err := task.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	killShim(t, id, topics, 30*time.Second)
	resAssertCgroupGone(t, rel)
	for _, pid := range procs {
		if !waitProcGone(pid, "sleep", 5*time.Second) {
			t.Errorf("container process %d survived the delete action", pid)
		}
	}
	deleteContainer(t, ctx, c)
	assertNoLeaks(t, id)
}

// resCleanupFrozen makes sure, when the test ends (after the container's
// own cleanup, so register it first), that cgroup rel is gone: it thaws a
// frozen container (SIGKILL does nothing to v1-frozen tasks, so the
// harness's teardown could not remove it), kills what is left in it and
// removes the directory in every hierarchy. Normally there is nothing left.
func resCleanupFrozen(t *testing.T, rel string) {
	t.Helper()
	mounts := resCgroupMounts(t)
	t.Cleanup(func() {
		_ = os.WriteFile(resCgFile("freezer", rel, "freezer.state"), []byte("THAWED"), 0)
		_ = os.WriteFile(filepath.Join(resCgroupRoot, "unified", rel, "cgroup.freeze"), []byte("0"), 0)
		for _, mp := range mounts {
			d := filepath.Join(mp, rel)
			for _, pid := range cgroupPids(d) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		for _, mp := range mounts {
			d := filepath.Join(mp, rel)
			if !waitFor(5*time.Second, func() bool {
				err := syscall.Rmdir(d)
				return err == nil || errors.Is(err, syscall.ENOENT)
			}) {
				t.Errorf("cleanup: cannot remove %s (procs %v)", d, cgroupPids(d))
			}
		}
	})
}

// resCleanupSlice removes, when the test ends, the test's cgroup rel (killing
// what is left in it) and the slice directory above it in the hierarchies
// where the slice did not exist before the test (only if empty: rmdir).
func resCleanupSlice(t *testing.T, slice, rel string) {
	t.Helper()
	var created []string
	for _, mp := range resCgroupMounts(t) {
		if _, err := os.Stat(filepath.Join(mp, slice)); errors.Is(err, fs.ErrNotExist) {
			created = append(created, filepath.Join(mp, slice))
		}
	}
	mounts := resCgroupMounts(t)
	t.Cleanup(func() {
		for _, mp := range mounts {
			d := filepath.Join(mp, rel)
			for _, pid := range cgroupPids(d) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			waitFor(5*time.Second, func() bool {
				err := syscall.Rmdir(d)
				return err == nil || errors.Is(err, syscall.ENOENT)
			})
		}
		for _, d := range created {
			_ = syscall.Rmdir(d)
		}
	})
}

// TestResourcesOOM: over its memory limit the container is OOM-killed: exit
// 137 and a /tasks/oom event.
func TestResourcesOOM(t *testing.T) {
	resRequireV1(t, "memory")
	if resSwapTotal(t) > 0 {
		t.Skip("the host has swap: ctr run --memory-limit sets no memory+swap limit, so the hog would swap instead of being OOM-killed (process/cgroups TestV1OOMEvents covers memsw)")
	}
	id := uniqueID(t)
	ctx := testCtx(t)
	topics := watchTopics(t, ctx, id)
	// dd's 256 MiB buffer is touched by read(2) from /dev/zero.
	out, errOut, err := ctrRun(t, id, []string{"--memory-limit", "67108864"},
		"dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1")
	if got := exitCode(err); got != 137 {
		t.Errorf("memory hog under --memory-limit 64MiB exited %d, want 137 (err %v, stdout %q, stderr %q)", got, err, out, errOut)
	}
	if ok, seen := waitTopic(topics, "/tasks/oom", 10*time.Second); !ok {
		t.Errorf("no /tasks/oom event for %s; saw %v", id, seen)
	} else {
		t.Logf("events: %v", seen)
	}
	resAssertCgroupGone(t, resCgroupRel(id))
	assertNoLeaks(t, id)
}

// resSwapTotal is SwapTotal from /proc/meminfo (kB).
func resSwapTotal(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "SwapTotal:" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("/proc/meminfo: %q", l)
			}
			return n
		}
	}
	return 0
}

// resCpuUsage is the cgroup's cpuacct.usage (ns) and the wall clock.
func resCpuUsage(t *testing.T, rel string) (int64, time.Time) {
	t.Helper()
	return resReadCgInt(t, "cpuacct", rel, "cpuacct.usage"), time.Now()
}

// TestResourcesCPUQuota: --cpu-quota/--cpu-period and --cpus are read back
// from the host's cpu controller, and busy loops inside use no more CPU than
// the quota (cpuacct usage over wall time, with a generous margin), being
// throttled by the kernel.
func TestResourcesCPUQuota(t *testing.T) {
	resRequireV1(t, "cpu", "cpuacct")
	cases := []struct {
		name   string
		flags  []string
		loops  int
		quota  int64
		period int64
		cpus   float64 // quota/period
	}{
		// Unthrottled, each loop would use a whole CPU (on an idle host).
		{"quota-period", []string{"--cpu-quota", "20000", "--cpu-period", "100000"}, 1, 20000, 100000, 0.2},
		{"cpus", []string{"--cpus", "0.3"}, 2, 30000, 100000, 0.3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			rel := resCgroupRel(id)
			script := strings.Repeat("while :; do :; done & ", tc.loops) + "wait"
			runDetached(t, id, tc.flags, "sh", "-c", script)

			if got := resReadCgInt(t, "cpu", rel, "cpu.cfs_quota_us"); got != tc.quota {
				t.Errorf("cpu.cfs_quota_us = %d, want %d", got, tc.quota)
			}
			if got := resReadCgInt(t, "cpu", rel, "cpu.cfs_period_us"); got != tc.period {
				t.Errorf("cpu.cfs_period_us = %d, want %d", got, tc.period)
			}

			// Let the loops start, then measure over a window of 15 periods.
			if !waitFor(5*time.Second, func() bool { u, _ := resCpuUsage(t, rel); return u > 0 }) {
				t.Fatal("the busy loops never used any CPU")
			}
			throttled0 := resFlatKeyed(t, "cpu", rel, "cpu.stat")["nr_throttled"]
			u0, t0 := resCpuUsage(t, rel)
			time.Sleep(1500 * time.Millisecond)
			u1, t1 := resCpuUsage(t, rel)
			throttled1 := resFlatKeyed(t, "cpu", rel, "cpu.stat")["nr_throttled"]
			ratio := float64(u1-u0) / float64(t1.Sub(t0).Nanoseconds())
			t.Logf("%d busy loop(s) used %.3f CPUs under a quota of %.2f CPUs (nr_throttled +%d)", tc.loops, ratio, tc.cpus, throttled1-throttled0)
			// Unthrottled the loops would use up to one CPU each; the quota
			// must hold them to it.
			if limit := tc.cpus*1.5 + 0.05; ratio > limit {
				t.Errorf("usage %.3f CPUs exceeds the quota of %.2f CPUs (allowed up to %.2f)", ratio, tc.cpus, limit)
			}
			if ratio < 0.02 {
				t.Errorf("usage %.3f CPUs: the busy loops hardly ran (quota %.2f CPUs)", ratio, tc.cpus)
			}
			// Loops that reach the quota are throttled. On a host too busy
			// to give them their quota there is nothing to throttle.
			switch {
			case ratio >= tc.cpus*0.8 && throttled1 <= throttled0:
				t.Errorf("usage %.3f CPUs reaches the quota but cpu.stat nr_throttled did not grow (%d → %d)", ratio, throttled0, throttled1)
			case ratio < tc.cpus*0.8:
				t.Logf("the host is too busy for the loops to reach their quota; throttling not checked")
			}
			resFinish(t, id)
		})
	}
}

// TestResourcesCpuset: --cpuset-cpus/--cpuset-mems are read back from the
// host and from inside (the container's cpuset cgroup), and the kernel keeps
// the container's processes on that CPU.
func TestResourcesCpuset(t *testing.T) {
	resRequireV1(t, "cpuset")
	eff := resReadCg(t, "cpuset", "/", "cpuset.effective_cpus")
	cpus, err := resExpandCPUList(eff)
	if err != nil || len(cpus) == 0 {
		t.Fatalf("root cpuset.effective_cpus %q: %v", eff, err)
	}
	cpu := strconv.Itoa(cpus[len(cpus)-1]) // the last CPU: not the default 0 when there are several
	id := uniqueID(t)
	script := `cat /sys/fs/cgroup/cpuset/cpuset.cpus /sys/fs/cgroup/cpuset/cpuset.mems; ` +
		`grep Cpus_allowed_list /proc/self/status; ` +
		// Burn a little CPU, then report the CPU this process last ran on
		// (field 39 of /proc/self/stat, read by awk itself).
		`i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; awk '{print "ran_on", $39}' /proc/self/stat`
	flags := []string{"--cpuset-cpus", cpu, "--cpuset-mems", "0"}
	cleanupContainer(t, id)
	full := append([]string{"run", "--rm", "--fifo-dir", cd.fifoDir}, runtimeFlag()...)
	// ctr's default spec has no cgroup mount; ask for one, as CRI does.
	full = append(full, "--mount", "type=cgroup,src=cgroup,dst=/sys/fs/cgroup,options=ro")
	full = append(full, flags...)
	full = append(full, imageRef, id, "sh", "-c", script)
	out := mustCtr(t, full...)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{cpu, "0", "Cpus_allowed_list:\t" + cpu, "ran_on " + cpu}
	if len(lines) != len(want) {
		t.Fatalf("output %q, want lines %q", out, want)
	}
	for i, w := range want {
		if strings.TrimSpace(lines[i]) != strings.TrimSpace(w) {
			t.Errorf("line %d = %q, want %q (full output %q)", i, lines[i], w, out)
		}
	}
	assertNoLeaks(t, id)

	t.Run("host-readback", func(t *testing.T) {
		id := uniqueID(t)
		runDetached(t, id, flags, "sleep", "1000")
		if got := resReadCg(t, "cpuset", resCgroupRel(id), "cpuset.cpus"); got != cpu {
			t.Errorf("host cpuset.cpus = %q, want %q", got, cpu)
		}
		if got := resReadCg(t, "cpuset", resCgroupRel(id), "cpuset.mems"); got != "0" {
			t.Errorf("host cpuset.mems = %q, want 0", got)
		}
		resFinish(t, id)
	})
}

// resExpandCPUList parses a cpuset list ("0-3,5").
func resExpandCPUList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

// TestResourcesPidsLimit: a fork bomb in a container with pids.max 32 stops
// at the limit (forks fail, counted in pids.events), the host can still
// fork, and kill --all ends it. The bomb is also held to half a CPU.
func TestResourcesPidsLimit(t *testing.T) {
	resRequireV1(t, "pids")
	const limit = 32
	id := uniqueID(t)
	ctx := testCtx(t)
	rel := resCgroupRel(id)
	// Every bomb process forks a background pipeline of two more and
	// returns; the orphans are never reaped (PID 1 is sleep), so the pids
	// they hold fill the cgroup and the bomb stops there.
	bomb := `echo bomb; b(){ b | b & }; b; exec sleep 1000`
	c := newContainer(t, ctx, id,
		oci.WithPidsLimit(limit),
		oci.WithCPUCFS(50000, 100000),
		oci.WithProcessArgs("sh", "-c", bomb))
	var out syncBuffer
	task, err := c.NewTask(ctx, outputIO(&out, &out))
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	// Safety: never start the bomb without its limit.
	if got := resReadCg(t, "pids", rel, "pids.max"); got != strconv.Itoa(limit) {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		t.Fatalf("pids.max = %q before Start, want %d; not starting the fork bomb", got, limit)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !waitFor(15*time.Second, func() bool { return resFlatKeyed(t, "pids", rel, "pids.events")["max"] > 0 }) {
		t.Fatalf("pids.events never counted a fork refused at the limit; pids.current %s, output %q",
			resReadCg(t, "pids", rel, "pids.current"), truncate(out.String(), 500))
	}
	peak := int64(0)
	for i := 0; i < 20; i++ {
		peak = max(peak, resReadCgInt(t, "pids", rel, "pids.current"))
		if n := len(cgroupPids(resCgFile("pids", rel, ""))); n > limit {
			t.Errorf("%d processes in the container's cgroup, limit %d", n, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if peak > limit {
		t.Errorf("pids.current reached %d, above pids.max %d", peak, limit)
	}
	t.Logf("fork bomb: pids.current peak %d, refused forks %d", peak, resFlatKeyed(t, "pids", rel, "pids.events")["max"])
	// Inside, a fork past the limit fails ("can't fork").
	if !waitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "can't fork") }) {
		t.Errorf("the shell never reported a failed fork; output %q", truncate(out.String(), 500))
	}
	// The host is unharmed: it can still fork and run a process.
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("the host cannot run a process while the bomb runs: %v", err)
	}
	resFinish(t, id)
}

// TestResourcesMetricsAndPs: `ctr task metrics` reports memory and pids of
// the container; `ctr task ps` lists all its processes, an exec with its id.
func TestResourcesMetricsAndPs(t *testing.T) {
	resRequireV1(t, "memory", "pids")
	const memLimit = 134217728
	id := uniqueID(t)
	rel := resCgroupRel(id)
	initPid := runDetached(t, id, []string{"--memory-limit", strconv.Itoa(memLimit)},
		"sh", "-c", "sleep 1000 & sleep 1000 & wait")
	mustCtr(t, "task", "exec", "-d", "--fifo-dir", cd.fifoDir, "--exec-id", "ps-exec", id, "sleep", "999")
	var host []int
	if !waitFor(10*time.Second, func() bool { host = resCgroupProcs(t, rel); return len(host) == 4 }) {
		t.Fatalf("want 4 processes (sh, 2 sleeps, the exec) in %s, host sees %v", rel, host)
	}

	t.Run("ps", func(t *testing.T) {
		out := mustCtr(t, "task", "ps", id)
		var pids []int
		execLine := ""
		for _, l := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) == 0 {
				continue
			}
			pid, err := strconv.Atoi(f[0])
			if err != nil {
				t.Fatalf("ctr task ps line %q: %v", l, err)
			}
			pids = append(pids, pid)
			if strings.Contains(l, "ps-exec") {
				execLine = l
			}
		}
		sort.Ints(pids)
		if !slices.Equal(pids, host) {
			t.Errorf("ctr task ps pids %v, the host's cgroup has %v; output:\n%s", pids, host, out)
		}
		if !slices.Contains(pids, initPid) {
			t.Errorf("ctr task ps misses the init %d:\n%s", initPid, out)
		}
		if execLine == "" {
			t.Errorf("ctr task ps does not name the exec process ps-exec:\n%s", out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		out := mustCtr(t, "task", "metrics", id)
		m := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) >= 2 {
				m[f[0]] = f[1]
			}
		}
		num := func(k string) int64 {
			n, err := strconv.ParseInt(m[k], 10, 64)
			if err != nil {
				t.Errorf("ctr task metrics: %s = %q, want a number; output:\n%s", k, m[k], out)
			}
			return n
		}
		if n := num("memory.usage_in_bytes"); n <= 0 {
			t.Errorf("memory.usage_in_bytes = %d, want > 0", n)
		}
		if n := num("memory.limit_in_bytes"); n != memLimit {
			t.Errorf("memory.limit_in_bytes = %d, want %d", n, memLimit)
		}
		if n := num("pids.current"); n != 4 {
			t.Errorf("pids.current = %d, want 4", n)
		}
		if n := num("cpuacct.usage"); n <= 0 {
			t.Errorf("cpuacct.usage = %d, want > 0", n)
		}
	})
	resFinish(t, id)
}

// TestResourcesUpdate: Task.Update (as the kubelet's
// UpdateContainerResources) changes the memory and CPU limits of a running
// container; updates the kernel or husk rejects are clear errors and leave
// every old value in place.
func TestResourcesUpdate(t *testing.T) {
	resRequireV1(t, "memory", "cpu", "cpuset", "devices")
	id := uniqueID(t)
	ctx := testCtx(t)
	rel := resCgroupRel(id)
	c := newContainer(t, ctx, id,
		oci.WithMemoryLimit(64<<20),
		oci.WithCPUCFS(20000, 100000),
		oci.WithProcessArgs("sleep", "1000"))
	task, _ := startTask(t, ctx, c, cio.NullIO)
	type values struct{ mem, quota, period, cpus string }
	read := func() values {
		return values{
			resReadCg(t, "memory", rel, "memory.limit_in_bytes"),
			resReadCg(t, "cpu", rel, "cpu.cfs_quota_us"),
			resReadCg(t, "cpu", rel, "cpu.cfs_period_us"),
			resReadCg(t, "cpuset", rel, "cpuset.cpus"),
		}
	}
	before := read()
	if before.mem != strconv.Itoa(64<<20) || before.quota != "20000" || before.period != "100000" {
		t.Fatalf("initial limits %+v, want memory 64MiB, quota 20000/100000", before)
	}

	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	err := task.Update(ctx, containerd.WithResources(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: i64(128 << 20)},
		CPU:    &specs.LinuxCPU{Quota: i64(50000), Period: u64(200000)},
	}))
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	updated := read()
	want := values{strconv.Itoa(128 << 20), "50000", "200000", before.cpus}
	if updated != want {
		t.Fatalf("after Update: %+v, want %+v", updated, want)
	}

	t.Run("kubelet-style", func(t *testing.T) {
		// CRI's UpdateContainerResources sends the whole linux.resources of
		// the updated spec, device rules included: they must not change.
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		devicesBefore := resReadCg(t, "devices", rel, "devices.list")
		res := *spec.Linux.Resources
		mem := *res.Memory
		mem.Limit = i64(160 << 20)
		res.Memory = &mem
		res.CPU = &specs.LinuxCPU{Quota: i64(50000), Period: u64(200000)}
		if len(res.Devices) == 0 {
			t.Fatalf("the spec has no device rules to send: %+v", res)
		}
		if err := task.Update(ctx, containerd.WithResources(&res)); err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got := resReadCg(t, "memory", rel, "memory.limit_in_bytes"); got != strconv.Itoa(160<<20) {
			t.Errorf("memory.limit_in_bytes = %s, want %d", got, 160<<20)
		}
		if got := resReadCg(t, "devices", rel, "devices.list"); got != devicesBefore {
			t.Errorf("devices.list changed by an update with the same rules:\n%s\nwas\n%s", got, devicesBefore)
		}
		// Back to the values the error cases below expect to be kept.
		if err := task.Update(ctx, containerd.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(128 << 20)}})); err != nil {
			t.Fatal(err)
		}
	})

	for _, tc := range []struct {
		name     string
		res      *specs.LinuxResources
		wantText string
	}{
		{"cpuset-99-100", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: i64(96 << 20)}, // valid, must be rolled back
			CPU:    &specs.LinuxCPU{Cpus: "99-100"},
		}, "cpuset.cpus"},
		{"memory-minus-2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, "memory.limit -2"},
		{"period-too-small", &specs.LinuxResources{
			CPU: &specs.LinuxCPU{Quota: i64(30000), Period: u64(10)},
		}, "cpu.cfs_period_us"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := task.Update(ctx, containerd.WithResources(tc.res))
			if err == nil {
				t.Fatalf("Update succeeded, want an error mentioning %q", tc.wantText)
			}
			t.Logf("Update error (expected): %v", err)
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Update error %q does not mention %q", err, tc.wantText)
			}
			if got := read(); got != updated {
				t.Errorf("after the failed Update: %+v, want the old values %+v", got, updated)
			}
			if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
				t.Errorf("after the failed Update: status %+v err %v, want running", st, err)
			}
		})
	}
	resFinish(t, id)
}

// TestResourcesPauseResume: `ctr task pause` freezes the container (a
// counter loop inside does not advance), State reports paused, and `ctr task
// resume` lets it go on; TaskPaused/TaskResumed are published.
func TestResourcesPauseResume(t *testing.T) {
	resRequireV1(t, "freezer")
	id := uniqueID(t)
	ctx := testCtx(t)
	topics := watchTopics(t, ctx, id)
	resCleanupFrozen(t, resCgroupRel(id))
	runDetached(t, id, nil, "sh", "-c", `i=0; while :; do i=$((i+1)); echo $i >> /counter; sleep 0.02; done`)
	c, task := loadContainer(t, ctx, id)
	counter := filepath.Join(upperDir(t, ctx, c), "counter")
	if !fileGrows(counter, 5*time.Second) {
		t.Fatalf("the counter loop does not run (%s)", counter)
	}

	mustCtr(t, "task", "pause", id)
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Errorf("after pause: status %+v err %v, want paused", st, err)
	}
	if ls := mustCtr(t, "task", "ls"); !resTaskListed(ls, id, "PAUSED") {
		t.Errorf("ctr task ls does not show %s PAUSED:\n%s", id, ls)
	}
	if got := resReadCg(t, "freezer", resCgroupRel(id), "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state = %q, want FROZEN", got)
	}
	s0 := fileSize(counter)
	time.Sleep(500 * time.Millisecond) // 25 iterations if it ran
	if s1 := fileSize(counter); s1 != s0 {
		t.Errorf("the counter advanced while paused (%d → %d bytes)", s0, s1)
	}

	mustCtr(t, "task", "resume", id)
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("after resume: status %+v err %v, want running", st, err)
	}
	if !fileGrows(counter, 5*time.Second) {
		t.Errorf("the counter does not advance after resume")
	}
	expectTopics(t, topics, id, 10*time.Second, "/tasks/paused", "/tasks/resumed")

	// SIGKILL (to the init only) ends a paused container: a v1-frozen task
	// acts on it only once thawed, so the runtime must thaw (runc does).
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCtr(t, "task", "pause", id)
	mustCtr(t, "task", "kill", "-s", "SIGKILL", id)
	select {
	case es := <-exitc:
		if code, _, _ := es.Result(); code != 137 {
			t.Errorf("paused container killed with SIGKILL exited %d, want 137", code)
		}
	case <-time.After(10 * time.Second):
		st, _ := task.Status(ctx)
		t.Errorf("a paused container did not exit 10s after SIGKILL (status %+v)", st)
	}
	resFinish(t, id)
}

// resTaskListed reports whether `ctr task ls` output lists id with status.
func resTaskListed(ls, id, status string) bool {
	for _, l := range strings.Split(ls, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[0] == id && f[2] == status {
			return true
		}
	}
	return false
}

// TestResourcesKillAll: Kill with all reaches every process of the
// container (v1: freeze, signal each, thaw), not just its init. SIGTERM
// shows it: the container's init (pid 1 of its namespace, no handler)
// ignores it, its children die of it.
func TestResourcesKillAll(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)
	rel := resCgroupRel(id)
	script := `sleep 1000 & sleep 1000 & sleep 1000 & echo ready; wait; echo children-gone; exec sleep 999`
	resCleanupFrozen(t, rel)
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", script))
	var out syncBuffer
	task, _ := startTask(t, ctx, c, outputIO(&out, &out))
	var procs []int
	if !waitFor(10*time.Second, func() bool {
		procs = resCgroupProcs(t, rel)
		return len(procs) == 4 && strings.Contains(out.String(), "ready")
	}) {
		t.Fatalf("want sh and 3 sleeps in %s, have %v; output %q", rel, procs, out.String())
	}
	if err := task.Kill(ctx, syscall.SIGTERM); err != nil {
		t.Fatalf("Kill(SIGTERM): %v", err)
	}
	if err := task.Kill(ctx, syscall.SIGTERM, containerd.WithKillAll); err != nil {
		t.Fatalf("Kill(SIGTERM, all): %v", err)
	}
	if !waitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "children-gone") }) {
		t.Fatalf("the children did not die of SIGTERM --all; output %q, cgroup procs %v", out.String(), resCgroupProcs(t, rel))
	}
	if !waitFor(5*time.Second, func() bool { return len(resCgroupProcs(t, rel)) == 1 }) {
		t.Errorf("after SIGTERM --all the cgroup should hold only the init, has %v", resCgroupProcs(t, rel))
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("the init should survive SIGTERM (no handler, pid 1): status %+v err %v", st, err)
	}
	if paused, err := resCgroupFrozen(rel); err == nil && paused {
		t.Errorf("the container was left frozen by kill --all")
	}
	resFinish(t, id)
}

// resCgroupFrozen reads the v1 freezer state of rel (an error without the v1
// freezer).
func resCgroupFrozen(rel string) (bool, error) {
	b, err := os.ReadFile(resCgFile("freezer", rel, "freezer.state"))
	if err != nil {
		return false, err
	}
	return strings.TrimSpace(string(b)) != "THAWED", nil
}

// TestResourcesCgroupNamespace: with a cgroup namespace in the spec the
// container (init and exec) sees its own cgroup as "/" in every hierarchy;
// without one it sees the host path.
func TestResourcesCgroupNamespace(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ns    bool
		want  func(id string) string
		extra []oci.SpecOpts
	}{
		{"with-cgroupns", true, func(string) string { return "/" }, []oci.SpecOpts{oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace})}},
		{"without", false, resCgroupRel, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			ctx := testCtx(t)
			opts := append([]oci.SpecOpts{oci.WithProcessArgs("sh", "-c", "cat /proc/self/cgroup; exec sleep 1000")}, tc.extra...)
			c := newContainer(t, ctx, id, opts...)
			var out syncBuffer
			task, _ := startTask(t, ctx, c, outputIO(&out, &out))
			if !waitFor(10*time.Second, func() bool { return strings.Count(out.String(), "\n") >= len(resCgroupMounts(t)) }) {
				t.Fatalf("no /proc/self/cgroup from the container: %q", out.String())
			}
			want := tc.want(id)
			resCheckCgroupView(t, "init", out.String(), want)

			var eout syncBuffer
			runExec(t, ctx, task, "cgview", execSpec(t, ctx, id, "cat", "/proc/self/cgroup"), outputIO(&eout, &eout), 15*time.Second)
			resCheckCgroupView(t, "exec", eout.String(), want)
			resFinish(t, id)
		})
	}
}

func resCheckCgroupView(t *testing.T, who, procCgroup, want string) {
	t.Helper()
	paths := resParseProcCgroup(procCgroup)
	if len(paths) == 0 {
		t.Fatalf("%s: cannot parse /proc/self/cgroup %q", who, procCgroup)
	}
	for ctrls, p := range paths {
		if p != want {
			t.Errorf("%s sees its cgroup in hierarchy %q as %q, want %q; /proc/self/cgroup:\n%s", who, ctrls, p, want, procCgroup)
		}
	}
}

// TestResourcesBadInput: resources husk or the kernel rejects make NewTask
// fail with a clear error, and nothing is left behind (no cgroup in any
// hierarchy, no intermediate directory, no mount, no shim).
func TestResourcesBadInput(t *testing.T) {
	resRequireV1(t, "memory", "cpu", "cpuset", "pids")
	res := func(f func(r *specs.LinuxResources)) oci.SpecOpts {
		return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			f(s.Linux.Resources)
			return nil
		}
	}
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	cases := []struct {
		name     string
		opt      oci.SpecOpts
		wantText string
	}{
		{"cpuset-99-100", oci.WithCPUs("99-100"), `cpuset.cpus="99-100"`},
		{"cpuset-garbage", oci.WithCPUs("zero"), `cpu.cpus "zero"`},
		{"memory-minus-2", res(func(r *specs.LinuxResources) { r.Memory = &specs.LinuxMemory{Limit: i64(-2)} }), "memory.limit -2"},
		{"pids-minus-5", oci.WithPidsLimit(-5), "pids.limit -5"},
		{"swap-below-limit", res(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: i64(64 << 20), Swap: i64(1 << 20)}
		}), "memory+swap"},
		{"cpu-period-10us", res(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Quota: i64(5000), Period: u64(10)}
		}), "cpu.cfs_period_us"},
		{"cpu-quota-absurd", res(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Quota: i64(1 << 62), Period: u64(100000)}
		}), "cpu.cfs_quota_us"},
		{"swappiness-1000", res(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Swappiness: u64(1000)}
		}), "swappiness 1000"},
		{"unified-on-v1", res(func(r *specs.LinuxResources) {
			r.Unified = map[string]string{"memory.high": "1"}
		}), "cgroup v2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			ctx := testCtx(t)
			c := newContainer(t, ctx, id, oci.WithProcessArgs("true"), tc.opt)
			err := newTaskMustFail(t, ctx, c, tc.wantText)
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("NewTask error %q does not mention %q", err, tc.wantText)
			}
			if _, err := c.Task(ctx, nil); err == nil {
				t.Errorf("a task exists after the failed NewTask")
			}
			resAssertCgroupGone(t, resCgroupRel(id))
			deleteContainer(t, ctx, c)
			assertNoLeaks(t, id)
		})
	}
}

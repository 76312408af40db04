//go:build linux

package integration

// cgroup v2 only: what husk does on a unified host, read back from the
// host's cgroup2 files and measured in effect. memory.max/high/low/swap.max
// with memory.events (high, oom_kill → TaskOOM), cpu.max/cpu.weight/cpuset,
// pids.max with pids.events, io.max/io weight with io.stat, the eBPF device
// program, cgroup.freeze, cgroup.kill, placement of the init and execs,
// the cgroup namespace, Stats in cgroup2 types, live Update, bad input, and
// that Delete leaves no cgroup behind.
//
// Every test skips unless /sys/fs/cgroup is a cgroup2 mount (a unified
// host); `make test-v2` runs them in a VM that is one. The io tests and the
// block-device part of the device tests need HUSK_TEST_BLOCKDEV, a scratch
// block device the test may read (the VM provides /dev/vda).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const v2Root = "/sys/fs/cgroup"

// v2Require skips the test unless the host is cgroup v2 unified and its root
// cgroup offers the given controllers.
func v2Require(t *testing.T, controllers ...string) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(v2Root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		t.Skipf("needs a cgroup v2 (unified) host: %s is not a cgroup2 mount (`make test-v2` runs these tests in a VM)", v2Root)
	}
	b, err := os.ReadFile(filepath.Join(v2Root, "cgroup.controllers"))
	if err != nil {
		t.Fatalf("read the root's cgroup.controllers: %v", err)
	}
	avail := strings.Fields(string(b))
	for _, c := range controllers {
		if !slices.Contains(avail, c) {
			t.Skipf("needs the cgroup v2 %s controller; the root offers %q", c, avail)
		}
	}
}

// v2Ctx is a namespaced context for one test: longer than testCtx's minute,
// because under emulation a test with several containers takes longer.
func v2Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 4*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// v2Dir is container id's cgroup directory (ctr's and the client's default
// cgroupsPath is /<namespace>/<id>).
func v2Dir(id string) string { return filepath.Join(v2Root, testNS, id) }

func v2Read(t *testing.T, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v2Dir(id), file))
	if err != nil {
		t.Fatalf("read back %s: %v", filepath.Join(v2Dir(id), file), err)
	}
	return strings.TrimSpace(string(b))
}

// v2Keyed reads a flat keyed file ("key value" lines: memory.events,
// pids.events, cpu.stat, cgroup.events).
func v2Keyed(t *testing.T, id, file string) map[string]int64 {
	t.Helper()
	m := map[string]int64{}
	for _, l := range strings.Split(v2Read(t, id, file), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

func v2Exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// v2Container is a container with its task and combined output.
type v2Container struct {
	id   string
	dir  string // the cgroup directory
	c    containerd.Container
	task containerd.Task
	out  *syncBuffer
	exit <-chan containerd.ExitStatus
}

// v2Create creates container id (image config, then opts) and its task
// (created, not started), with stdout+stderr collected.
func v2Create(t *testing.T, ctx context.Context, id string, opts ...oci.SpecOpts) *v2Container {
	t.Helper()
	c := newContainer(t, ctx, id, opts...)
	out := &syncBuffer{}
	task, err := c.NewTask(ctx, outputIO(out, out))
	if err != nil {
		t.Fatalf("NewTask %s: %v", id, err)
	}
	exit, err := task.Wait(ctx)
	if err != nil {
		t.Fatalf("Wait %s: %v", id, err)
	}
	dir := v2Dir(id)
	if s := v2Spec(t, ctx, c); s.Linux != nil && s.Linux.CgroupsPath != "" {
		dir = filepath.Join(v2Root, s.Linux.CgroupsPath)
	}
	return &v2Container{id: id, dir: dir, c: c, task: task, out: out, exit: exit}
}

func (v *v2Container) start(t *testing.T, ctx context.Context) {
	t.Helper()
	if err := v.task.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", v.id, err)
	}
}

// v2Run is v2Create + start.
func v2Run(t *testing.T, ctx context.Context, opts ...oci.SpecOpts) *v2Container {
	t.Helper()
	v := v2Create(t, ctx, uniqueID(t), opts...)
	v.start(t, ctx)
	return v
}

// waitOutput waits until the container printed want.
func (v *v2Container) waitOutput(t *testing.T, want string, timeout time.Duration) {
	t.Helper()
	if !waitFor(timeout, func() bool { return strings.Contains(v.out.String(), want) }) {
		t.Fatalf("container %s did not print %q within %v; output:\n%s", v.id, want, timeout, truncate(v.out.String(), 3000))
	}
}

// waitExit waits for the task's exit and returns its code.
func (v *v2Container) waitExit(t *testing.T, timeout time.Duration) uint32 {
	t.Helper()
	select {
	case st := <-v.exit:
		code, _, err := st.Result()
		if err != nil {
			t.Fatalf("exit status of %s: %v", v.id, err)
		}
		return code
	case <-time.After(timeout):
		t.Fatalf("task %s did not exit within %v; output:\n%s", v.id, timeout, truncate(v.out.String(), 3000))
	}
	return 0
}

// finish SIGKILLs every process of the task unless it already exited,
// deletes the task and checks that the cgroup directory is gone as soon as
// Delete returned, then deletes the container and checks for leaks.
func (v *v2Container) finish(t *testing.T, ctx context.Context) {
	t.Helper()
	if st, err := v.task.Status(ctx); err == nil && st.Status != containerd.Stopped {
		if err := v.task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil {
			t.Errorf("kill --all %s: %v", v.id, err)
		}
		v.waitExit(t, 30*time.Second)
	}
	if _, err := v.task.Delete(ctx); err != nil {
		t.Fatalf("delete task %s: %v", v.id, err)
	}
	if v2Exists(v.dir) {
		t.Errorf("cgroup %s still exists after Delete returned (procs %v)", v.dir, cgroupPids(v.dir))
	}
	deleteContainer(t, ctx, v.c)
	assertNoLeaks(t, v.id)
}

// withResources edits linux.resources of the spec.
func v2WithResources(f func(r *specs.LinuxResources)) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Linux == nil {
			s.Linux = &specs.Linux{}
		}
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		f(s.Linux.Resources)
		return nil
	}
}

func v2I64(v int64) *int64            { return &v }
func v2U64(v uint64) *uint64          { return &v }
func v2U16(v uint16) *uint16          { return &v }
func v2Sh(script string) oci.SpecOpts { return oci.WithProcessArgs("sh", "-c", script) }

// ---------------------------------------------------------------------------

// TestCgroupV2Placement: the init is in the container's cgroup (and only
// there: one "0::" line) already when Create returns, before the user's
// process runs; an exec joins the same cgroup; Delete removes it. Both are
// born there (clone3 CLONE_INTO_CGROUP) rather than moved after fork: the
// kernel keeps no trace of how a process got into its cgroup, so this is
// read from the shim's debug log.
func TestCgroupV2Placement(t *testing.T) {
	v2Require(t)
	ctx := v2Ctx(t)
	id := uniqueID(t)
	v := v2Create(t, ctx, id, oci.WithProcessArgs("sleep", "1000"))
	want := "0::/" + testNS + "/" + id
	pid := int(v.task.Pid())
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("created init %d: /proc/%d/cgroup = %q, want %q", pid, pid, got, want)
	}
	if procs := cgroupPids(v2Dir(id)); !slices.Equal(procs, []int{pid}) {
		t.Errorf("%s/cgroup.procs = %v, want only the init %d", v2Dir(id), procs, pid)
	}
	if typ := v2Read(t, id, "cgroup.type"); typ != "domain" {
		t.Errorf("cgroup.type = %q, want domain", typ)
	}
	v.start(t, ctx)

	var eout syncBuffer
	p, _ := runExec(t, ctx, v.task, "cgview", execSpec(t, ctx, id, "cat", "/proc/self/cgroup"), outputIO(&eout, &eout), 30*time.Second)
	if got := strings.TrimSpace(eout.String()); got != want {
		t.Errorf("exec: /proc/self/cgroup = %q, want %q", got, want)
	}
	if v2KernelAtLeast(5, 7) {
		for what, pid := range map[string]int{"init": pid, "exec": int(p.Pid())} {
			line := fmt.Sprintf("pid=%d", pid)
			if !waitFor(10*time.Second, func() bool { return v2LogHas(`msg="process born in its cgroup (CLONE_INTO_CGROUP)"`, line) }) {
				t.Errorf("the shim did not log that the %s (pid %d) was born in its cgroup (CLONE_INTO_CGROUP)", what, pid)
			}
		}
	}
	v.finish(t, ctx)
}

// v2LogHas reports whether a line of containerd's log (which has the shims'
// logs) contains msg and the exact field (key=value).
func v2LogHas(msg, field string) bool {
	b, err := os.ReadFile(cd.logPath)
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, msg) && slices.Contains(strings.Fields(l), field) {
			return true
		}
	}
	return false
}

// v2KernelAtLeast compares the running kernel's version with major.minor.
func v2KernelAtLeast(major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}

func v2Spec(t *testing.T, ctx context.Context, c containerd.Container) *oci.Spec {
	t.Helper()
	s, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCgroupV2Memory: memory.max, memory.low, memory.swap.max and
// memory.high (linux.resources.unified) are written; going over memory.high
// is counted in memory.events "high" without a kill; going over memory.max
// kills the process (exit 137), counts oom_kill and publishes /tasks/oom.
func TestCgroupV2Memory(t *testing.T) {
	v2Require(t, "memory")
	const (
		limit = 64 << 20
		high  = 32 << 20
		low   = 16 << 20
		swap  = limit + 32<<20 // OCI swap is memory+swap
	)

	t.Run("limits-and-high", func(t *testing.T) {
		ctx := v2Ctx(t)
		// dd's 33 MiB buffer, touched by read(2) from /dev/zero, crosses
		// memory.high (the kernel throttles and counts it) but not
		// memory.max.
		v := v2Run(t, ctx,
			v2WithResources(func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: v2I64(limit), Reservation: v2I64(low), Swap: v2I64(swap)}
				r.Unified = map[string]string{"memory.high": strconv.Itoa(high)}
			}),
			v2Sh(`dd if=/dev/zero of=/dev/null bs=33M count=1 2>/dev/null; echo dd=$?; exec sleep 1000`))
		for file, want := range map[string]string{
			"memory.max":  strconv.Itoa(limit),
			"memory.high": strconv.Itoa(high),
			"memory.low":  strconv.Itoa(low),
		} {
			if got := v2Read(t, v.id, file); got != want {
				t.Errorf("%s = %q, want %q", file, got, want)
			}
		}
		if v2Exists(filepath.Join(v2Dir(v.id), "memory.swap.max")) {
			if got := v2Read(t, v.id, "memory.swap.max"); got != strconv.Itoa(swap-limit) {
				t.Errorf("memory.swap.max = %q, want %d (OCI swap %d is memory+swap)", got, swap-limit, swap)
			}
		} else {
			t.Logf("no memory.swap.max (kernel without swap accounting): not checked")
		}
		v.waitOutput(t, "dd=", 2*time.Minute)
		if !strings.Contains(v.out.String(), "dd=0") {
			t.Errorf("dd of 33 MiB under memory.high 32 MiB / memory.max 64 MiB failed: %q", v.out.String())
		}
		ev := v2Keyed(t, v.id, "memory.events")
		t.Logf("memory.events: %v", ev)
		if ev["high"] == 0 {
			t.Errorf("memory.events high = 0 after using more than memory.high: %v", ev)
		}
		if ev["oom_kill"] != 0 {
			t.Errorf("memory.events oom_kill = %d, want 0 (below memory.max)", ev["oom_kill"])
		}
		v.finish(t, ctx)
	})

	t.Run("oom", func(t *testing.T) {
		ctx := v2Ctx(t)
		id := uniqueID(t)
		topics := watchTopics(t, ctx, id)
		// Swap == limit: no swap, so the hog is killed whatever the host's swap.
		v := v2Create(t, ctx, id,
			v2WithResources(func(r *specs.LinuxResources) {
				r.Memory = &specs.LinuxMemory{Limit: v2I64(limit), Swap: v2I64(limit)}
			}),
			oci.WithProcessArgs("dd", "if=/dev/zero", "of=/dev/null", "bs=256M", "count=1"))
		if got := v2Read(t, id, "memory.max"); got != strconv.Itoa(limit) {
			t.Fatalf("memory.max = %q before Start, want %d", got, limit)
		}
		v.start(t, ctx)
		if code := v.waitExit(t, 2*time.Minute); code != 137 {
			t.Errorf("memory hog under memory.max 64 MiB exited %d, want 137; output %q", code, v.out.String())
		}
		if ok, seen := waitTopic(topics, "/tasks/oom", 15*time.Second); !ok {
			t.Errorf("no /tasks/oom event for %s; saw %v", id, seen)
		}
		ev := v2Keyed(t, id, "memory.events")
		if ev["oom_kill"] < 1 || ev["max"] < 1 {
			t.Errorf("memory.events after the OOM kill: %v, want oom_kill >= 1 and max >= 1", ev)
		}
		v.finish(t, ctx)
	})
}

// TestCgroupV2CPU: cpu.max from quota/period, cpu.weight from shares (the
// runc/crun conversion), cpuset.cpus/mems (and the effective set); a busy
// loop is throttled by the kernel (cpu.stat nr_throttled grows) and runs only
// on its CPU.
func TestCgroupV2CPU(t *testing.T) {
	v2Require(t, "cpu", "cpuset")
	ctx := v2Ctx(t)
	effective := strings.TrimSpace(v2ReadFile(t, filepath.Join(v2Root, "cpuset.cpus.effective")))
	cpus, err := resExpandCPUList(effective)
	if err != nil || len(cpus) == 0 {
		t.Fatalf("root cpuset.cpus.effective %q: %v", effective, err)
	}
	cpu := strconv.Itoa(cpus[len(cpus)-1])
	const shares = 512
	v := v2Run(t, ctx,
		oci.WithCPUShares(shares),
		oci.WithCPUCFS(20000, 100000),
		oci.WithCPUs(cpu),
		oci.WithCPUsMems("0"),
		v2Sh(`grep Cpus_allowed_list /proc/self/status; while :; do :; done`))
	for file, want := range map[string]string{
		"cpu.max":               "20000 100000",
		"cpu.weight":            strconv.FormatUint(cgroup2.ConvertCPUSharesToCgroupV2Value(shares), 10),
		"cpuset.cpus":           cpu,
		"cpuset.mems":           "0",
		"cpuset.cpus.effective": cpu,
	} {
		if got := v2Read(t, v.id, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	v.waitOutput(t, "Cpus_allowed_list", time.Minute)
	if want := "Cpus_allowed_list:\t" + cpu; !strings.Contains(v.out.String(), want) {
		t.Errorf("inside: %q, want %q", strings.TrimSpace(v.out.String()), want)
	}
	if !waitFor(time.Minute, func() bool { return v2Keyed(t, v.id, "cpu.stat")["nr_throttled"] > 0 }) {
		t.Errorf("cpu.stat nr_throttled stays 0 for a busy loop under cpu.max 20000 100000: %v", v2Keyed(t, v.id, "cpu.stat"))
	}
	if st := v2Keyed(t, v.id, "cpu.stat"); st["usage_usec"] == 0 {
		t.Errorf("cpu.stat usage_usec = 0 for a busy loop: %v", st)
	}
	v.finish(t, ctx)
}

func v2ReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCgroupV2Pids: pids.max holds: forks past it fail inside ("can't
// fork"), pids.events counts them, pids.current never exceeds the limit,
// and the host can still fork.
func TestCgroupV2Pids(t *testing.T) {
	v2Require(t, "pids")
	ctx := v2Ctx(t)
	const limit = 8
	// The subshell forks sleeps until a fork fails (ash gives up), the init
	// goes on.
	id := uniqueID(t)
	v := v2Create(t, ctx, id, oci.WithPidsLimit(limit),
		v2Sh(`(i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); done); echo forks-done; exec sleep 999`))
	if got := v2Read(t, id, "pids.max"); got != strconv.Itoa(limit) {
		t.Fatalf("pids.max = %q before Start, want %d; not starting", got, limit)
	}
	v.start(t, ctx)
	v.waitOutput(t, "forks-done", 2*time.Minute)
	if !strings.Contains(v.out.String(), "can't fork") {
		t.Errorf("no failed fork reported inside; output %q", truncate(v.out.String(), 1000))
	}
	if ev := v2Keyed(t, id, "pids.events"); ev["max"] < 1 {
		t.Errorf("pids.events max = %d, want >= 1 (forks refused at the limit)", ev["max"])
	}
	if n, err := strconv.Atoi(v2Read(t, id, "pids.current")); err != nil || n > limit || n < 2 {
		t.Errorf("pids.current = %d (%v), want 2..%d", n, err, limit)
	}
	if n := len(cgroupPids(v2Dir(id))); n > limit {
		t.Errorf("%d processes in the cgroup, pids.max %d", n, limit)
	}
	if err := exec.Command("true").Run(); err != nil {
		t.Errorf("the host cannot run a process: %v", err)
	}
	v.finish(t, ctx)
}

// v2BlockDev returns HUSK_TEST_BLOCKDEV's path and numbers, or skips.
func v2BlockDev(t *testing.T) (string, uint32, uint32) {
	t.Helper()
	dev := os.Getenv("HUSK_TEST_BLOCKDEV")
	if dev == "" {
		t.Skip("set HUSK_TEST_BLOCKDEV to a scratch block device the test may read (the test-v2 VM uses /dev/vda)")
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFBLK {
		t.Fatalf("HUSK_TEST_BLOCKDEV=%s is not a block device (%v)", dev, err)
	}
	return dev, unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
}

// TestCgroupV2IO: io.max from the throttle devices, the blkio weight as
// io.bfq.weight (the value itself, as runc writes it) or io.weight
// (converted to 1..10000) when BFQ is not there; reads from the device are
// accounted in io.stat.
func TestCgroupV2IO(t *testing.T) {
	v2Require(t, "io")
	dev, major, minor := v2BlockDev(t)
	ctx := v2Ctx(t)
	const (
		weight = 300
		rbps   = 8 << 20
		wiops  = 100
	)
	id := uniqueID(t)
	v := v2Create(t, ctx, id,
		oci.WithLinuxDevice(dev, "r"),
		v2WithResources(func(r *specs.LinuxResources) {
			r.BlockIO = &specs.LinuxBlockIO{
				Weight:                  v2U16(weight),
				ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{v2Throttle(major, minor, rbps)},
				ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{v2Throttle(major, minor, wiops)},
			}
		}),
		v2Sh(fmt.Sprintf(`dd if=%s of=/dev/null bs=64k count=64 2>/dev/null; echo dd=$?; exec sleep 1000`, dev)))
	devno := fmt.Sprintf("%d:%d", major, minor)
	var line string
	for _, l := range strings.Split(v2Read(t, id, "io.max"), "\n") {
		if strings.HasPrefix(l, devno+" ") {
			line = l
		}
	}
	for _, want := range []string{fmt.Sprintf("rbps=%d", rbps), fmt.Sprintf("wiops=%d", wiops), "wbps=max", "riops=max"} {
		if !slices.Contains(strings.Fields(line), want) {
			t.Errorf("io.max line for %s = %q, want %s in it", devno, line, want)
		}
	}
	if v2Exists(filepath.Join(v2Dir(id), "io.bfq.weight")) {
		if got := v2Read(t, id, "io.bfq.weight"); !strings.Contains(got, fmt.Sprintf("default %d", weight)) {
			t.Errorf("io.bfq.weight = %q, want \"default %d\" (runc and nerdctl write the blkio weight itself)", got, weight)
		}
	} else if v2Exists(filepath.Join(v2Dir(id), "io.weight")) {
		want := 1 + (weight-10)*9999/990
		if got := v2Read(t, id, "io.weight"); !strings.Contains(got, fmt.Sprintf("default %d", want)) {
			t.Errorf("io.weight = %q, want \"default %d\" (blkio weight %d in 1..10000)", got, want, weight)
		}
	} else {
		t.Errorf("neither io.bfq.weight nor io.weight in %s, yet a weight was asked for", v2Dir(id))
	}
	v.start(t, ctx)
	v.waitOutput(t, "dd=", 2*time.Minute)
	if !strings.Contains(v.out.String(), "dd=0") {
		t.Errorf("reading %s inside failed: %q", dev, v.out.String())
	}
	var rbytes int64
	for _, l := range strings.Split(v2Read(t, id, "io.stat"), "\n") {
		f := strings.Fields(l)
		if len(f) > 1 && f[0] == devno {
			for _, kv := range f[1:] {
				if k, val, _ := strings.Cut(kv, "="); k == "rbytes" {
					rbytes, _ = strconv.ParseInt(val, 10, 64)
				}
			}
		}
	}
	if rbytes < 64*65536 {
		t.Errorf("io.stat rbytes for %s = %d after reading 4 MiB inside, want >= %d; io.stat:\n%s", devno, rbytes, 64*65536, v2Read(t, id, "io.stat"))
	}
	v.finish(t, ctx)
}

func v2Throttle(major, minor uint32, rate uint64) specs.LinuxThrottleDevice {
	d := specs.LinuxThrottleDevice{Rate: rate}
	d.Major, d.Minor = int64(major), int64(minor)
	return d
}

// TestCgroupV2Devices: the eBPF device program. A device node the container
// makes itself (mknod is allowed) can be opened only if a rule allows its
// numbers: denied → EPERM from the program; allowed → the open reaches the
// driver (major 42 has none: ENXIO). The defaults (/dev/null, zero, ...)
// stay usable, and a device from the spec is usable with exactly the access
// it was given.
func TestCgroupV2Devices(t *testing.T) {
	v2Require(t)
	// "cat: can't open 'X': <strerror>" → the strerror for each node.
	script := `mknod /tmp/c42 c 42 0; mknod /tmp/zero c 1 5
for n in /tmp/c42 /tmp/zero /dev/null; do
	if head -c 1 $n >/dev/null 2>/tmp/err; then echo "$n: open"; else echo "$n: $(cat /tmp/err)"; fi
done
echo done; exec sleep 1000`

	t.Run("default-rules", func(t *testing.T) {
		ctx := v2Ctx(t)
		v := v2Run(t, ctx, v2Sh(script))
		v.waitOutput(t, "done", time.Minute)
		out := v.out.String()
		for _, want := range []string{"/tmp/c42: ", "/tmp/zero: open", "/dev/null: open"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(v2Line(out, "/tmp/c42"), "Operation not permitted") {
			t.Errorf("opening c 42:0 (no rule allows it) should fail with EPERM from the device program:\n%s", out)
		}
		if n, err := v2DeviceProgs(v2Dir(v.id)); err != nil {
			t.Errorf("query the device programs of %s: %v", v2Dir(v.id), err)
		} else if n != 1 {
			t.Errorf("%d BPF_CGROUP_DEVICE programs attached to %s, want 1", n, v2Dir(v.id))
		}
		v.finish(t, ctx)
	})

	t.Run("spec-rule", func(t *testing.T) {
		ctx := v2Ctx(t)
		v := v2Run(t, ctx, v2WithResources(func(r *specs.LinuxResources) {
			r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: v2I64(42), Minor: v2I64(0), Access: "rw"})
		}), v2Sh(script))
		v.waitOutput(t, "done", time.Minute)
		out := v.out.String()
		if l := v2Line(out, "/tmp/c42"); !strings.Contains(l, "No such device") {
			t.Errorf("with a rule allowing c 42:0 rw, opening it should reach the (absent) driver (ENXIO), got %q:\n%s", l, out)
		}
		v.finish(t, ctx)
	})

	t.Run("spec-device-read-only", func(t *testing.T) {
		dev, _, _ := v2BlockDev(t)
		ctx := v2Ctx(t)
		v := v2Run(t, ctx, oci.WithLinuxDevice(dev, "r"), v2Sh(fmt.Sprintf(
			`if head -c 512 %[1]s >/dev/null 2>/tmp/err; then echo read: ok; else echo "read: $(cat /tmp/err)"; fi
if (true >>%[1]s) 2>/tmp/err; then echo write: ok; else echo "write: $(cat /tmp/err)"; fi
echo done; exec sleep 1000`, dev)))
		v.waitOutput(t, "done", time.Minute)
		out := v.out.String()
		if l := v2Line(out, "read:"); l != "read: ok" {
			t.Errorf("reading %s (allowed r) failed: %q", dev, l)
		}
		if l := v2Line(out, "write:"); !strings.Contains(l, "Operation not permitted") {
			t.Errorf("opening %s for writing (allowed r only) should fail with EPERM, got %q", dev, l)
		}
		v.finish(t, ctx)
	})
}

// v2Line returns the first line of out that starts with prefix.
func v2Line(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// v2DeviceProgs counts the BPF_CGROUP_DEVICE programs attached to the
// cgroup directory dir (BPF_PROG_QUERY).
func v2DeviceProgs(dir string) (int, error) {
	f, err := os.Open(dir)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ids := make([]uint32, 64)
	attr := struct {
		targetFd    uint32
		attachType  uint32
		queryFlags  uint32
		attachFlags uint32
		progIds     uint64
		progCnt     uint32
		_           uint32
	}{
		targetFd:   uint32(f.Fd()),
		attachType: unix.BPF_CGROUP_DEVICE,
		progIds:    uint64(uintptr(unsafe.Pointer(&ids[0]))),
		progCnt:    uint32(len(ids)),
	}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_QUERY, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return 0, fmt.Errorf("bpf(BPF_PROG_QUERY): %w", errno)
	}
	return int(attr.progCnt), nil
}

// TestCgroupV2Freeze: pause writes cgroup.freeze and returns once
// cgroup.events says frozen; a counter loop does not advance; resume thaws
// it; TaskPaused/TaskResumed are published. A paused container can be
// killed (SIGKILL passes the v2 freezer) and deleted.
func TestCgroupV2Freeze(t *testing.T) {
	v2Require(t)
	ctx := v2Ctx(t)
	id := uniqueID(t)
	topics := watchTopics(t, ctx, id)
	v := v2Create(t, ctx, id, v2Sh(`i=0; while :; do i=$((i+1)); echo $i >> /counter; sleep 0.05; done`))
	v.start(t, ctx)
	counter := filepath.Join(upperDir(t, ctx, v.c), "counter")
	if !fileGrows(counter, 20*time.Second) {
		t.Fatalf("the counter loop does not run (%s)", counter)
	}

	if err := v.task.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if got := v2Read(t, id, "cgroup.freeze"); got != "1" {
		t.Errorf("cgroup.freeze = %q after Pause, want 1", got)
	}
	if ev := v2Keyed(t, id, "cgroup.events"); ev["frozen"] != 1 {
		t.Errorf("cgroup.events %v right after Pause returned, want frozen 1", ev)
	}
	if st, err := v.task.Status(ctx); err != nil || st.Status != containerd.Paused {
		t.Errorf("after Pause: status %+v err %v, want paused", st, err)
	}
	s0 := fileSize(counter)
	time.Sleep(time.Second)
	if s1 := fileSize(counter); s1 != s0 {
		t.Errorf("the counter advanced while paused (%d → %d bytes)", s0, s1)
	}

	if err := v.task.Resume(ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	if got := v2Read(t, id, "cgroup.freeze"); got != "0" {
		t.Errorf("cgroup.freeze = %q after Resume, want 0", got)
	}
	if st, err := v.task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("after Resume: status %+v err %v, want running", st, err)
	}
	if !fileGrows(counter, 20*time.Second) {
		t.Errorf("the counter does not advance after Resume")
	}
	expectTopics(t, topics, id, 15*time.Second, "/tasks/paused", "/tasks/resumed")

	// Killed while paused: SIGKILL reaches frozen tasks on v2.
	if err := v.task.Pause(ctx); err != nil {
		t.Fatalf("second Pause: %v", err)
	}
	if err := v.task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil {
		t.Fatalf("Kill(SIGKILL, all) of a paused task: %v", err)
	}
	if code := v.waitExit(t, 30*time.Second); code != 137 {
		t.Errorf("paused task killed with SIGKILL exited %d, want 137", code)
	}
	v.finish(t, ctx)
}

// TestCgroupV2Kill: Kill with all reaches every process of the cgroup, also
// those no pid namespace ties to the container (host pid namespace), and
// never leaves the cgroup frozen; Delete kills what a dead init left
// behind and removes the cgroup.
func TestCgroupV2Kill(t *testing.T) {
	v2Require(t)

	t.Run("kill-all", func(t *testing.T) {
		ctx := v2Ctx(t)
		// SIGTERM: the init ignores it (trapped after the children were
		// forked, who keep the default action), its children die of it.
		v := v2Run(t, ctx, oci.WithHostNamespace(specs.PIDNamespace),
			v2Sh(`sleep 1000 & sleep 1000 & (sleep 1000 &); trap "" TERM; echo ready; wait; echo children-gone; while :; do sleep 1; done`))
		v.waitOutput(t, "ready", time.Minute)
		if !waitFor(30*time.Second, func() bool { return len(cgroupPids(v2Dir(v.id))) == 4 }) {
			t.Fatalf("want sh and 3 sleeps in %s, have %v", v2Dir(v.id), cgroupPids(v2Dir(v.id)))
		}
		if err := v.task.Kill(ctx, syscall.SIGTERM, containerd.WithKillAll); err != nil {
			t.Fatalf("Kill(SIGTERM, all): %v", err)
		}
		v.waitOutput(t, "children-gone", time.Minute)
		if got := v2Read(t, v.id, "cgroup.freeze"); got != "0" {
			t.Errorf("cgroup.freeze = %q after kill --all SIGTERM, want 0 (not left frozen)", got)
		}
		// The orphaned sleep (reparented to the host's init) and the init's
		// sleep die too: everything in the cgroup gets the SIGKILL.
		procs := cgroupPids(v2Dir(v.id))
		if err := v.task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil {
			t.Fatalf("Kill(SIGKILL, all): %v", err)
		}
		if code := v.waitExit(t, 30*time.Second); code != 137 {
			t.Errorf("exit %d after kill --all SIGKILL, want 137", code)
		}
		if !waitFor(10*time.Second, func() bool { return len(cgroupPids(v2Dir(v.id))) == 0 }) {
			t.Errorf("processes left in %s after kill --all SIGKILL: %v (before: %v)", v2Dir(v.id), cgroupPids(v2Dir(v.id)), procs)
		}
		if ev := v2Keyed(t, v.id, "cgroup.events"); ev["populated"] != 0 {
			t.Errorf("cgroup.events %v, want populated 0", ev)
		}
		v.finish(t, ctx)
	})

	t.Run("delete-kills-strays", func(t *testing.T) {
		ctx := v2Ctx(t)
		v := v2Run(t, ctx, oci.WithHostNamespace(specs.PIDNamespace), v2Sh(`sleep 1000 & echo ready; exec sleep 999`))
		v.waitOutput(t, "ready", time.Minute)
		var procs []int
		if !waitFor(30*time.Second, func() bool { procs = cgroupPids(v2Dir(v.id)); return len(procs) == 2 }) {
			t.Fatalf("want the init and a stray sleep in %s, have %v", v2Dir(v.id), procs)
		}
		if err := v.task.Kill(ctx, syscall.SIGKILL); err != nil { // the init only
			t.Fatalf("Kill: %v", err)
		}
		v.waitExit(t, 30*time.Second)
		stray := slices.DeleteFunc(slices.Clone(procs), func(p int) bool { return p == int(v.task.Pid()) })
		if got := cgroupPids(v2Dir(v.id)); !slices.Equal(got, stray) {
			t.Logf("after the init's death the cgroup holds %v (stray %v)", got, stray)
		}
		if _, err := v.task.Delete(ctx); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if v2Exists(v2Dir(v.id)) {
			t.Errorf("cgroup %s still exists after Delete (procs %v)", v2Dir(v.id), cgroupPids(v2Dir(v.id)))
		}
		for _, p := range stray {
			if !waitProcGone(p, "sleep 1000", 10*time.Second) {
				t.Errorf("stray process %d (sleep 1000) survived Delete", p)
			}
		}
		deleteContainer(t, ctx, v.c)
		assertNoLeaks(t, v.id)
	})
}

// TestCgroupV2Namespace: with a cgroup namespace and a cgroup mount (as CRI
// asks for), the container sees its own cgroup as "/" and its own limits at
// /sys/fs/cgroup, nothing of the host's hierarchy, read-only.
func TestCgroupV2Namespace(t *testing.T) {
	v2Require(t, "memory", "pids")
	ctx := v2Ctx(t)
	v := v2Run(t, ctx,
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.CgroupNamespace}),
		oci.WithMounts([]specs.Mount{{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}}}),
		oci.WithMemoryLimit(64<<20),
		oci.WithPidsLimit(20),
		v2Sh(fmt.Sprintf(`echo "cgroup $(cat /proc/self/cgroup)"
echo "memory.max $(cat /sys/fs/cgroup/memory.max)"
echo "pids.max $(cat /sys/fs/cgroup/pids.max)"
echo "procs $(cat /sys/fs/cgroup/cgroup.procs | tr '\n' ' ')"
if [ -e /sys/fs/cgroup/%s ]; then echo "host visible"; else echo "host hidden"; fi
if echo 1 2>/dev/null >/sys/fs/cgroup/cgroup.freeze; then echo "freeze writable"; else echo "freeze read-only"; fi
echo done; exec sleep 1000`, testNS)))
	v.waitOutput(t, "done", time.Minute)
	out := v.out.String()
	for _, want := range []string{"cgroup 0::/", "memory.max 67108864", "pids.max 20", "host hidden", "freeze read-only"} {
		if v2Line(out, strings.Fields(want)[0]) != want {
			t.Errorf("inside: want line %q; output:\n%s", want, out)
		}
	}
	if !slices.Contains(strings.Fields(v2Line(out, "procs")), "1") {
		t.Errorf("inside: cgroup.procs should list pid 1 (the container's init): %q", v2Line(out, "procs"))
	}
	v.finish(t, ctx)
}

// TestCgroupV2Stats: the Stats RPC returns cgroup2 stats.Metrics with the
// container's memory, pids and cpu; a container without any limit, in a
// parent cgroup nobody enabled a controller in, still gets them (husk enables
// the controllers for it, as runc does; the kubelet reads them for every
// container); `ctr task metrics` prints them.
func TestCgroupV2Stats(t *testing.T) {
	v2Require(t, "memory", "pids", "cpu")
	for _, tc := range []struct {
		name   string
		opts   []oci.SpecOpts
		limits bool
	}{
		{"limits", []oci.SpecOpts{oci.WithMemoryLimit(128 << 20), oci.WithPidsLimit(50)}, true},
		{"no-limits-fresh-parent", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := v2Ctx(t)
			id := uniqueID(t)
			opts := tc.opts
			if !tc.limits {
				// A parent of its own (below the run's namespace cgroup,
				// which teardown removes); removed after the container.
				parent := "/" + testNS + "/fresh-" + id
				t.Cleanup(func() { _ = syscall.Rmdir(filepath.Join(v2Root, parent)) })
				opts = append(opts, oci.WithCgroup(parent+"/"+id))
			}
			v := v2Create(t, ctx, id, append(opts, v2Sh(`sleep 1000 & i=0; while [ $i -lt 2000 ]; do i=$((i+1)); done; echo ready; exec sleep 999`))...)
			v.start(t, ctx)
			v.waitOutput(t, "ready", time.Minute)
			ctrls := strings.Fields(v2ReadFile(t, filepath.Join(v.dir, "cgroup.controllers")))
			for _, c := range []string{"cpu", "memory", "pids"} {
				if !slices.Contains(ctrls, c) {
					t.Errorf("controller %s is not enabled for %s (cgroup.controllers %q)", c, v.dir, ctrls)
				}
			}
			m, err := v.task.Metrics(ctx)
			if err != nil {
				t.Fatalf("Metrics: %v", err)
			}
			data, err := typeurl.UnmarshalAny(m.Data)
			if err != nil {
				t.Fatalf("unmarshal metrics (%s): %v", m.Data.GetTypeUrl(), err)
			}
			st, ok := data.(*v2stats.Metrics)
			if !ok {
				t.Fatalf("metrics are %T (%s), want cgroup2 *stats.Metrics", data, m.Data.GetTypeUrl())
			}
			if st.Pids == nil || st.Pids.Current != 2 {
				t.Errorf("pids = %+v, want current 2", st.Pids)
			}
			if st.Memory == nil || st.Memory.Usage == 0 {
				t.Errorf("memory = %+v, want usage > 0", st.Memory)
			}
			if st.CPU == nil || st.CPU.UsageUsec == 0 {
				t.Errorf("cpu = %+v, want usage_usec > 0", st.CPU)
			}
			if st.MemoryEvents == nil {
				t.Errorf("no memory events in the metrics")
			}
			if tc.limits {
				if st.Memory != nil && st.Memory.UsageLimit != 128<<20 {
					t.Errorf("memory usage_limit = %d, want %d", st.Memory.UsageLimit, 128<<20)
				}
				if st.Pids != nil && st.Pids.Limit != 50 {
					t.Errorf("pids limit = %d, want 50", st.Pids.Limit)
				}
				out := mustCtr(t, "task", "metrics", v.id)
				for _, want := range []string{"memory.usage_limit  134217728", "pids.limit  50", "pids.current  2"} {
					if !strings.Contains(strings.Join(strings.Fields(out), "  "), want) {
						t.Errorf("ctr task metrics lacks %q:\n%s", want, out)
					}
				}
			}
			v.finish(t, ctx)
		})
	}
}

// TestCgroupV2Update: Task.Update changes memory.max, memory.high, cpu.max,
// cpu.weight and pids.max of a running container; quota -1 means "max"; an
// update the kernel rejects is an error naming the file, and every value
// stays as it was.
func TestCgroupV2Update(t *testing.T) {
	v2Require(t, "memory", "cpu", "pids", "cpuset")
	ctx := v2Ctx(t)
	v := v2Run(t, ctx, oci.WithMemoryLimit(64<<20), oci.WithCPUCFS(20000, 100000), oci.WithPidsLimit(20),
		oci.WithProcessArgs("sleep", "1000"))
	files := []string{"memory.max", "memory.high", "cpu.max", "cpu.weight", "pids.max", "cpuset.cpus"}
	read := func() map[string]string {
		m := map[string]string{}
		for _, f := range files {
			m[f] = v2Read(t, v.id, f)
		}
		return m
	}
	check := func(what string, want map[string]string) {
		t.Helper()
		got := read()
		for f, w := range want {
			if got[f] != w {
				t.Errorf("%s: %s = %q, want %q", what, f, got[f], w)
			}
		}
	}
	check("before", map[string]string{"memory.max": strconv.Itoa(64 << 20), "cpu.max": "20000 100000", "pids.max": "20"})

	err := v.task.Update(ctx, containerd.WithResources(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: v2I64(128 << 20)},
		CPU:     &specs.LinuxCPU{Quota: v2I64(50000), Period: v2U64(200000), Shares: v2U64(2048)},
		Pids:    &specs.LinuxPids{Limit: v2I64(40)},
		Unified: map[string]string{"memory.high": strconv.Itoa(96 << 20)},
	}))
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	check("after Update", map[string]string{
		"memory.max":  strconv.Itoa(128 << 20),
		"memory.high": strconv.Itoa(96 << 20),
		"cpu.max":     "50000 200000",
		"cpu.weight":  strconv.FormatUint(cgroup2.ConvertCPUSharesToCgroupV2Value(2048), 10),
		"pids.max":    "40",
	})

	if err := v.task.Update(ctx, containerd.WithResources(&specs.LinuxResources{
		CPU: &specs.LinuxCPU{Quota: v2I64(-1), Period: v2U64(100000)},
	})); err != nil {
		t.Fatalf("Update quota -1: %v", err)
	}
	check("after quota -1", map[string]string{"cpu.max": "max 100000"})
	good := read()

	for _, tc := range []struct {
		name     string
		res      *specs.LinuxResources
		wantText string
	}{
		{"cpuset-99-100", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: v2I64(96 << 20)}, // valid, must be rolled back
			CPU:    &specs.LinuxCPU{Cpus: "99-100"},
		}, "cpuset.cpus"},
		{"unknown-unified-key", &specs.LinuxResources{
			Pids:    &specs.LinuxPids{Limit: v2I64(30)}, // valid, must be rolled back
			Unified: map[string]string{"memory.bogus": "1"},
		}, "memory.bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := v.task.Update(ctx, containerd.WithResources(tc.res))
			if err == nil {
				t.Fatalf("Update succeeded, want an error mentioning %q", tc.wantText)
			}
			t.Logf("Update error (expected): %v", err)
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("Update error %q does not mention %q", err, tc.wantText)
			}
			check("after the failed Update", good)
			if st, err := v.task.Status(ctx); err != nil || st.Status != containerd.Running {
				t.Errorf("after the failed Update: status %+v err %v, want running", st, err)
			}
		})
	}
	v.finish(t, ctx)
}

// TestCgroupV2BadInput: resources a cgroup v2 host cannot honour make
// NewTask fail with a clear error, and nothing is left: no cgroup, no
// intermediate directory of it, no mount, no shim.
func TestCgroupV2BadInput(t *testing.T) {
	v2Require(t, "cpuset", "memory")
	cases := []struct {
		name     string
		opt      oci.SpecOpts
		wantText string
	}{
		{"cpuset-99-100", oci.WithCPUs("99-100"), "cpuset.cpus"},
		{"realtime-cpu", v2WithResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{RealtimeRuntime: v2I64(1000), RealtimePeriod: v2U64(10000)}
		}), "realtime"},
		{"unified-unknown-file", v2WithResources(func(r *specs.LinuxResources) {
			r.Unified = map[string]string{"memory.bogus": "1"}
		}), "memory.bogus"},
		{"swap-below-limit", v2WithResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: v2I64(64 << 20), Swap: v2I64(1 << 20)}
		}), "swap"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := v2Ctx(t)
			id := uniqueID(t)
			c := newContainer(t, ctx, id, oci.WithProcessArgs("true"), tc.opt)
			err := newTaskMustFail(t, ctx, c, tc.wantText)
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("NewTask error %q does not mention %q", err, tc.wantText)
			}
			if _, err := os.Lstat(v2Dir(id)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("cgroup %s exists after the failed NewTask (%v)", v2Dir(id), err)
			}
			deleteContainer(t, ctx, c)
			assertNoLeaks(t, id)
		})
	}
}

// TestCgroupV2DeleteAction: when a shim dies, containerd runs the shim's
// `delete` action, which must remove the cgroup of a paused (frozen)
// container, killing what is in it, a stray process included (on v2 a
// frozen cgroup can be killed and removed without thawing it first).
func TestCgroupV2DeleteAction(t *testing.T) {
	v2Require(t)
	ctx := v2Ctx(t)
	id := uniqueID(t)
	topics := watchTopics(t, ctx, id)
	v := v2Create(t, ctx, id, oci.WithHostNamespace(specs.PIDNamespace), v2Sh(`sleep 1000 & echo ready; exec sleep 999`))
	v.start(t, ctx)
	v.waitOutput(t, "ready", time.Minute)
	var procs []int
	if !waitFor(30*time.Second, func() bool { procs = cgroupPids(v.dir); return len(procs) == 2 }) {
		t.Fatalf("want the init and a stray in %s, have %v", v.dir, procs)
	}
	if err := v.task.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	killShim(t, id, topics, time.Minute)
	if v2Exists(v.dir) {
		t.Errorf("cgroup %s still exists after the delete action (procs %v, cgroup.freeze %q)", v.dir, cgroupPids(v.dir), v2ReadFile(t, filepath.Join(v.dir, "cgroup.freeze")))
	}
	for _, pid := range procs {
		if !waitProcGone(pid, "sleep", 10*time.Second) {
			t.Errorf("container process %d survived the delete action", pid)
		}
	}
	deleteContainer(t, ctx, v.c)
	assertNoLeaks(t, id)
}

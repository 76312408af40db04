package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// v1 is a cgroup on a cgroup v1 (legacy or hybrid) host.
type v1 struct {
	path string
	cg   cgroup1.Cgroup
	// unified is the placement in the hybrid unified mount, nil if none.
	unified *cgroup2.Manager
	unifDir string
	w       watchers
}

type pather interface{ Path(string) string }

func hierarchy() ([]cgroup1.Subsystem, cgroup1.InitOpts, error) {
	subs, err := cgroup1.Default()
	if err != nil {
		return nil, nil, err
	}
	return subs, cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) { return subs, nil }), nil
}

func has(subs []cgroup1.Subsystem, n cgroup1.Name) bool {
	for _, s := range subs {
		if s.Name() == n {
			return true
		}
	}
	return false
}

// v1Check rejects resources whose controller is not mounted, which the
// library would otherwise skip silently.
func v1Check(subs []cgroup1.Subsystem, r *specs.LinuxResources) error {
	need := map[cgroup1.Name]bool{
		cgroup1.Memory:  r.Memory != nil && (r.Memory.Limit != nil || r.Memory.Reservation != nil || r.Memory.Swap != nil || r.Memory.Swappiness != nil || r.Memory.DisableOOMKiller != nil || r.Memory.KernelTCP != nil),
		cgroup1.Cpu:     r.CPU != nil && (r.CPU.Shares != nil || r.CPU.Quota != nil || r.CPU.Period != nil || r.CPU.RealtimeRuntime != nil || r.CPU.RealtimePeriod != nil),
		cgroup1.Cpuset:  r.CPU != nil && (r.CPU.Cpus != "" || r.CPU.Mems != ""),
		cgroup1.Pids:    r.Pids != nil && r.Pids.Limit != nil,
		cgroup1.Blkio:   r.BlockIO != nil,
		cgroup1.Hugetlb: len(r.HugepageLimits) > 0,
		cgroup1.Devices: len(r.Devices) > 0,
	}
	for n, needed := range need {
		if needed && !has(subs, n) {
			return fmt.Errorf("cgroups: resources need the %s controller, which is not mounted (cgroup v1)", n)
		}
	}
	if len(r.Unified) > 0 {
		return errors.New("cgroups: linux.resources.unified needs cgroup v2")
	}
	return nil
}

// v1Resources returns what is handed to the library: Kernel dropped
// (deprecated, ignored) and blkio weights taken out (the leaf may not exist
// yet to tell CFQ from BFQ; v1Fixups applies them).
func v1Resources(r *specs.LinuxResources) *specs.LinuxResources {
	c := *r
	if r.Memory != nil {
		m := *r.Memory
		m.Kernel = nil //nolint:staticcheck // deprecated, ignored on purpose
		c.Memory = &m
	}
	if b := r.BlockIO; b != nil {
		bc := *b
		bc.Weight, bc.LeafWeight, bc.WeightDevice = nil, nil, nil
		c.BlockIO = &bc
	}
	return &c
}

// v1Fixups applies what v1Resources held back, and does by hand what the
// library lacks: BFQ blkio weights (blkio.bfq.weight, kernels >= 5.0 have no
// CFQ and so no blkio.weight) and resetting pids.max to "max".
func v1Fixups(cg cgroup1.Cgroup, r *specs.LinuxResources, dirs map[cgroup1.Name]string) error {
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit <= 0 {
		if d, ok := dirs[cgroup1.Pids]; ok {
			if err := write(filepath.Join(d, "pids.max"), "max"); err != nil {
				return err
			}
		}
	}
	b := r.BlockIO
	if b == nil || (b.Weight == nil && b.LeafWeight == nil && len(b.WeightDevice) == 0) {
		return nil
	}
	d := dirs[cgroup1.Blkio]
	if exists(filepath.Join(d, "blkio.weight")) { // CFQ: the library knows these files
		return cg.Update(&specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			Weight: b.Weight, LeafWeight: b.LeafWeight, WeightDevice: b.WeightDevice,
		}})
	}
	if !exists(filepath.Join(d, "blkio.bfq.weight")) {
		return errors.New("cgroups: blkio weight requested but neither blkio.weight nor blkio.bfq.weight exists (no CFQ/BFQ scheduler)")
	}
	if b.LeafWeight != nil {
		return errors.New("cgroups: blkio leaf weight is not supported with the BFQ scheduler")
	}
	if b.Weight != nil {
		if err := write(filepath.Join(d, "blkio.bfq.weight"), strconv.Itoa(int(*b.Weight))); err != nil {
			return err
		}
	}
	for _, wd := range b.WeightDevice {
		if wd.LeafWeight != nil {
			return errors.New("cgroups: blkio leaf weight is not supported with the BFQ scheduler")
		}
		if wd.Weight != nil {
			if err := write(filepath.Join(d, "blkio.bfq.weight_device"), fmt.Sprintf("%d:%d %d", wd.Major, wd.Minor, *wd.Weight)); err != nil {
				return err
			}
		}
	}
	return nil
}

func subsystemDirs(subs []cgroup1.Subsystem, p string) map[cgroup1.Name]string {
	dirs := map[cgroup1.Name]string{}
	for _, s := range subs {
		if pt, ok := s.(pather); ok {
			dirs[s.Name()] = pt.Path(p)
		}
	}
	return dirs
}

func v1Requested(r *specs.LinuxResources) map[string]string {
	m := map[string]string{}
	i := func(f string, v *int64) {
		if v != nil {
			m[f] = strconv.FormatInt(*v, 10)
		}
	}
	u := func(f string, v *uint64) {
		if v != nil {
			m[f] = strconv.FormatUint(*v, 10)
		}
	}
	if c := r.CPU; c != nil {
		u("cpu.shares", c.Shares)
		i("cpu.cfs_quota_us", c.Quota)
		u("cpu.cfs_period_us", c.Period)
		i("cpu.rt_runtime_us", c.RealtimeRuntime)
		u("cpu.rt_period_us", c.RealtimePeriod)
		m["cpuset.cpus"], m["cpuset.mems"] = c.Cpus, c.Mems
	}
	if mem := r.Memory; mem != nil {
		i("memory.limit_in_bytes", mem.Limit)
		i("memory.soft_limit_in_bytes", mem.Reservation)
		i("memory.memsw.limit_in_bytes", mem.Swap)
		u("memory.swappiness", mem.Swappiness)
	}
	if p := r.Pids; p != nil {
		i("pids.max", p.Limit)
	}
	return m
}

// v1Snapshot saves the control files an update may write.
func v1Snapshot(dirs map[cgroup1.Name]string) snapshot {
	var s snapshot
	for n, d := range dirs {
		switch n {
		case cgroup1.Memory:
			s.save(d, scalar, "memory.limit_in_bytes", "memory.soft_limit_in_bytes", "memory.memsw.limit_in_bytes",
				"memory.kmem.tcp.limit_in_bytes", "memory.swappiness")
			s.save(d, oomControl, "memory.oom_control")
		case cgroup1.Cpu:
			s.save(d, scalar, "cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.rt_period_us", "cpu.rt_runtime_us")
		case cgroup1.Cpuset:
			s.save(d, scalar, "cpuset.cpus", "cpuset.mems")
		case cgroup1.Pids:
			s.save(d, scalar, "pids.max")
		case cgroup1.Blkio:
			s.save(d, scalar, "blkio.weight", "blkio.leaf_weight", "blkio.bfq.weight")
			s.save(d, v1WeightDev, "blkio.bfq.weight_device", "blkio.weight_device")
			s.save(d, v1Throttle, "blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device",
				"blkio.throttle.read_iops_device", "blkio.throttle.write_iops_device")
		case cgroup1.Hugetlb:
			s.save(d, scalar, "hugetlb.*.limit_in_bytes")
		case cgroup1.Devices:
			s.save(d, v1Devices, "devices.list")
		}
	}
	return s
}

func newV1(p string, r *specs.LinuxResources, unifiedMnt string) (_ Cgroup, retErr error) {
	subs, opt, err := hierarchy()
	if err != nil {
		return nil, err
	}
	if err := v1Check(subs, r); err != nil {
		return nil, err
	}
	if has(subs, cgroup1.Devices) {
		r = withDefaultDevices(r)
	}
	// Remember what exists so that a failure removes only what we created
	// and restores the values of a cgroup that already existed.
	var created []string
	for _, s := range subs {
		if pt, ok := s.(pather); ok {
			created = append(created, missingDirs(pt.Path("/"), p)...)
		}
	}
	if unifiedMnt != "" {
		created = append(created, missingDirs(unifiedMnt, p)...)
	}
	dirs := subsystemDirs(subs, p)
	snap := v1Snapshot(dirs)
	defer func() {
		if retErr != nil {
			snap.restore()
			removeDirs(created)
		}
	}()
	cg, err := cgroup1.New(cgroup1.StaticPath(p), v1Resources(r), opt)
	if err != nil {
		return nil, explain("create "+p, err, v1Requested(r))
	}
	if err := v1Fixups(cg, r, dirs); err != nil {
		return nil, explain("create "+p, err, v1Requested(r))
	}
	c := &v1{path: p, cg: cg}
	if unifiedMnt != "" {
		// Best effort: the unified placement is only an extra.
		d := filepath.Join(unifiedMnt, p)
		if err := os.MkdirAll(d, 0o755); err == nil {
			if m, err := cgroup2.Load(p, cgroup2.WithMountpoint(unifiedMnt)); err == nil {
				c.unified, c.unifDir = m, d
			}
		}
	}
	return c, nil
}

func loadV1(p, unifiedMnt string) (Cgroup, error) {
	_, opt, err := hierarchy()
	if err != nil {
		return nil, err
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), opt)
	if err != nil {
		if errors.Is(err, cgroup1.ErrCgroupDeleted) || errors.Is(err, os.ErrNotExist) {
			return nil, notExist(p)
		}
		return nil, err
	}
	c := &v1{path: p, cg: cg}
	if unifiedMnt != "" {
		d := filepath.Join(unifiedMnt, p)
		if exists(d) {
			if m, err := cgroup2.Load(p, cgroup2.WithMountpoint(unifiedMnt)); err == nil {
				c.unified, c.unifDir = m, d
			}
		}
	}
	return c, nil
}

func (c *v1) Path() string { return c.path }

func (c *v1) dirs() map[cgroup1.Name]string { return subsystemDirs(c.cg.Subsystems(), c.path) }

func (c *v1) Add(pid int) error {
	if err := c.cg.Add(cgroup1.Process{Pid: pid}); err != nil {
		return fmt.Errorf("cgroups: add %d to %s: %w", pid, c.path, err)
	}
	if c.unified != nil {
		if err := c.unified.AddProc(uint64(pid)); err != nil {
			return fmt.Errorf("cgroups: add %d to %s: %w", pid, c.unifDir, err)
		}
	}
	return nil
}

func (c *v1) Update(r *specs.LinuxResources) error {
	if isEmpty(r) {
		return nil
	}
	if err := validate(r); err != nil {
		return err
	}
	if err := v1Check(c.cg.Subsystems(), r); err != nil {
		return err
	}
	dirs := c.dirs()
	if len(r.Devices) > 0 {
		r = withDefaultDevices(r)
		if b, err := os.ReadFile(filepath.Join(dirs[cgroup1.Devices], "devices.list")); err == nil {
			// Change the running container's devices without a moment of
			// "deny all" (see v1DeviceTransition).
			rc := *r
			rc.Devices = v1DeviceTransition(string(b), r.Devices)
			r = &rc
		}
	}
	snap := v1Snapshot(dirs)
	err := c.raiseMemsw(r, dirs[cgroup1.Memory])
	if err == nil {
		err = c.cg.Update(v1Resources(r))
	}
	if err == nil {
		err = v1Fixups(c.cg, r, dirs)
	}
	if err != nil {
		snap.restore()
		return explain("update "+c.path, err, v1Requested(r))
	}
	return nil
}

// raiseMemsw writes memory.memsw.limit_in_bytes ahead of the library when
// the new memory limit would exceed the current memsw limit (the kernel wants
// limit <= memsw at every step). The library tries to order this itself but
// swaps the wrong entries (limit with soft_limit).
func (c *v1) raiseMemsw(r *specs.LinuxResources, memDir string) error {
	m := r.Memory
	if m == nil || m.Swap == nil || m.Limit == nil || *m.Limit == 0 || memDir == "" {
		return nil
	}
	cur, err := os.ReadFile(filepath.Join(memDir, "memory.limit_in_bytes"))
	if err != nil {
		return err
	}
	curLimit, err := strconv.ParseInt(strings.TrimSpace(string(cur)), 10, 64)
	if err != nil {
		return err
	}
	if *m.Swap == -1 || *m.Swap >= curLimit {
		return c.cg.Update(&specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: m.Swap}})
	}
	return nil
}

func (c *v1) Freeze() error { return c.cg.Freeze() }
func (c *v1) Thaw() error   { return c.cg.Thaw() }

func (c *v1) State() (bool, error) {
	switch st := c.cg.State(); st {
	case cgroup1.Frozen:
		return true, nil
	case cgroup1.Thawed, cgroup1.Freezing:
		return false, nil
	case cgroup1.Deleted:
		return false, notExist(c.path)
	default:
		return false, fmt.Errorf("cgroups: %s: unknown freezer state %q", c.path, st)
	}
}

func (c *v1) Pids() ([]int, error) {
	var pids []int
	for _, s := range c.cg.Subsystems() {
		procs, err := c.cg.Processes(s.Name(), true)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, p := range procs {
			pids = append(pids, p.Pid)
		}
	}
	if c.unified != nil && exists(c.unifDir) {
		procs, err := c.unified.Procs(true)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, p := range procs {
			pids = append(pids, int(p))
		}
	}
	return sortedUnique(pids), nil
}

func (c *v1) Stats() (any, error) {
	return c.cg.Stat(cgroup1.IgnoreNotExist)
}

func (c *v1) KillAll(sig syscall.Signal) error {
	if sig == unix.SIGKILL && c.unified != nil && exists(filepath.Join(c.unifDir, "cgroup.kill")) {
		if err := c.unified.Kill(); err != nil {
			return err
		}
		// A process may have been put in some v1 hierarchy only.
		pids, err := c.Pids()
		if err == nil {
			err = signalPids(pids, sig)
		}
		// v1-frozen tasks do not act on SIGKILL until thawed.
		if c.cg.State() == cgroup1.Frozen {
			if terr := c.cg.Thaw(); terr != nil && err == nil {
				err = terr
			}
		}
		return err
	}
	hasFreezer := has(c.cg.Subsystems(), cgroup1.Freezer)
	wasFrozen := false
	if hasFreezer {
		wasFrozen = c.cg.State() == cgroup1.Frozen
		if !wasFrozen {
			if err := c.cg.Freeze(); err != nil {
				return err
			}
		}
	}
	pids, err := c.Pids()
	if err == nil {
		err = signalPids(pids, sig)
	}
	// v1-frozen tasks do not act on SIGKILL until thawed.
	if hasFreezer && (!wasFrozen || sig == unix.SIGKILL) {
		if terr := c.cg.Thaw(); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

func (c *v1) OOMEvents() (<-chan struct{}, error) {
	memDir, ok := c.dirs()[cgroup1.Memory]
	if !ok {
		return nil, cgroup1.ErrMemoryNotSupported
	}
	efd, err := c.cg.OOMEventFD()
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: oom eventfd: %w", c.path, err)
	}
	f, err := pollableFile(int(efd), "oom-eventfd")
	if err != nil {
		return nil, err
	}
	c.w.add(f)
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		defer f.Close()
		buf := make([]byte, 8)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			// The kernel also signals the eventfd when the cgroup is removed.
			if !exists(memDir) {
				return
			}
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}()
	return ch, nil
}

func (c *v1) Delete() error {
	var dirs []string
	for _, d := range c.dirs() {
		dirs = append(dirs, d)
	}
	if c.unified != nil {
		dirs = append(dirs, c.unifDir)
	}
	// The common case, a container whose processes are gone and that made
	// no cgroups of its own: one rmdir per hierarchy. (The library's Delete
	// walks every hierarchy's tree, lstat'ing each control file: ~4 ms.)
	// A cgroup still busy (processes, children) takes the long way.
	var busy []string
	for _, d := range dirs {
		if err := unix.Rmdir(d); err != nil && !errors.Is(err, unix.ENOENT) {
			busy = append(busy, d)
		}
	}
	if len(busy) > 0 {
		if err := killAndWait(c); err != nil {
			return err
		}
		var errs []error
		for _, d := range busy {
			if err := rmdirTree(d); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("cgroups: delete %s: %w", c.path, errors.Join(errs...))
		}
	}
	c.w.closeAll()
	return nil
}

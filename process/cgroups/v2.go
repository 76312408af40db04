package cgroups

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// freezeTimeout bounds how long Freeze waits for cgroup.events "frozen 1".
const freezeTimeout = 5 * time.Second

// v2 is a cgroup in a cgroup v2 (unified) hierarchy mounted at mnt.
type v2 struct {
	mnt, path, dir string
	mgr            *cgroup2.Manager
	w              watchers
}

// toV2Resources converts OCI resources for cgroup v2 with
// cgroup2.ToResources and corrects what it gets wrong or leaves out:
//   - devices are passed on (an eBPF program is attached by the library);
//   - cpu: shares→weight via cgroup2.ConvertCPUSharesToCgroupV2Value, but 0
//     shares means unset; quota without period uses the default period
//     (100000); quota -1 → "max";
//   - memory: -1 → max; swap follows runc (OCI swap is memory+swap, v2
//     memory.swap.max is swap only: swap-limit; -1 → max; limit -1 with no
//     swap → swap max too); reservation -1 → memory.low 0;
//   - pids: -1 or 0 → "max";
//   - blkio weight: written as is to io.bfq.weight (1..1000, what runc and
//     nerdctl write); where the cgroup has no io.bfq.weight, converted to
//     io.weight's 1..10000 (see write); 0 → unset;
//   - device rules get the OCI defaults filled in (type "a", major/minor -1)
//     for the eBPF filter (see v2Devices).
//
// Not supported on v2 (error): realtime CPU, blkio leaf/per-device weights.
// Ignored on v2: memory swappiness, kernel, kernelTCP, disableOOMKiller.
func toV2Resources(r *specs.LinuxResources) (*cgroup2.Resources, error) {
	if r == nil {
		return &cgroup2.Resources{}, nil
	}
	if c := r.CPU; c != nil && ((c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0) || (c.RealtimePeriod != nil && *c.RealtimePeriod != 0)) {
		return nil, errors.New("cgroups: realtime cpu runtime/period is not supported on cgroup v2")
	}
	if b := r.BlockIO; b != nil && (b.LeafWeight != nil || len(b.WeightDevice) > 0) {
		return nil, errors.New("cgroups: blkio leafWeight/weightDevice are not supported on cgroup v2")
	}
	out := cgroup2.ToResources(r)
	if c := r.CPU; c != nil {
		if c.Shares == nil || *c.Shares == 0 {
			out.CPU.Weight = nil
		}
		if c.Quota != nil || c.Period != nil {
			q := c.Quota
			if q != nil && *q <= 0 {
				q = nil // "max"
			}
			out.CPU.Max = cgroup2.NewCPUMax(q, c.Period)
		}
		if out.CPU.Weight == nil && out.CPU.Max == "" && out.CPU.Cpus == "" && out.CPU.Mems == "" {
			out.CPU = nil
		}
	}
	if m := r.Memory; m != nil {
		mem := &cgroup2.Memory{}
		unlimited := func(v int64) *int64 {
			if v == -1 {
				v = math.MaxInt64 // the kernel clamps this to "max"
			}
			return &v
		}
		var limit int64
		if m.Limit != nil {
			limit = *m.Limit
			mem.Max = unlimited(limit)
		}
		if m.Reservation != nil {
			v := max(*m.Reservation, 0)
			mem.Low = &v
		}
		var swap int64
		if m.Swap != nil {
			swap = *m.Swap
		}
		switch {
		case limit == -1 && swap == 0, swap == -1:
			mem.Swap = unlimited(-1)
		case swap == 0:
		case limit <= 0:
			return nil, fmt.Errorf("cgroups: memory.swap %d needs a memory.limit on cgroup v2", swap)
		case swap < limit:
			return nil, fmt.Errorf("cgroups: invalid memory.swap %d: memory+swap must be >= memory.limit %d", swap, limit)
		default:
			v := swap - limit
			mem.Swap = &v
		}
		out.Memory = mem
		if mem.Max == nil && mem.Low == nil && mem.Swap == nil {
			out.Memory = nil
		}
	}
	if out.Pids != nil && out.Pids.Max == 0 {
		out.Pids.Max = -1
	}
	if b := r.BlockIO; b != nil {
		// io.bfq.weight takes the blkio weight itself (1..1000), as runc
		// writes it; ToResources' conversion (to io.weight's range) would be
		// rejected there.
		out.IO.BFQ.Weight = 0
		if b.Weight != nil && *b.Weight != 0 {
			out.IO.BFQ.Weight = *b.Weight
		}
		if out.IO.BFQ.Weight == 0 && len(out.IO.Max) == 0 {
			out.IO = nil
		} else {
			slices.SortFunc(out.IO.Max, func(a, b cgroup2.Entry) int { return strings.Compare(a.String(), b.String()) })
		}
	}
	if len(r.HugepageLimits) == 0 {
		out.HugeTlb = nil
	}
	if out.RDMA != nil && len(out.RDMA.Limit) == 0 {
		out.RDMA = nil
	}
	out.Devices = v2Devices(r.Devices)
	return out, nil
}

// v2Devices normalizes device rules for the library's eBPF filter
// (cgroup2.DeviceFilter), which dereferences Major and Minor and refuses an
// empty type: the OCI defaults (type "a", major and minor -1, i.e. any) are
// filled in. containerd's default spec rule {allow: false, access: rwm} would
// otherwise crash the shim.
func v2Devices(devs []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	if devs == nil {
		return nil
	}
	out := make([]specs.LinuxDeviceCgroup, len(devs))
	for i, d := range devs {
		if d.Type == "" {
			d.Type = "a"
		}
		if d.Major == nil {
			d.Major = ptr(int64(-1))
		}
		if d.Minor == nil {
			d.Minor = ptr(int64(-1))
		}
		out[i] = d
	}
	return out
}

func ptr[T any](v T) *T { return &v }

// v2Controllers lists the controllers res and the raw unified keys need.
func v2Controllers(res *cgroup2.Resources, unified map[string]string) []string {
	ctrls := res.EnabledControllers()
	for k := range unified {
		c, _, _ := strings.Cut(k, ".")
		if c != "cgroup" && !slices.Contains(ctrls, c) {
			ctrls = append(ctrls, c)
		}
	}
	slices.Sort(ctrls)
	return ctrls
}

// v2Check rejects controllers the hierarchy does not offer, with a clearer
// message than a failed write to cgroup.subtree_control.
func v2Check(mnt string, ctrls []string) error {
	if len(ctrls) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
	if err != nil {
		return err
	}
	avail := strings.Fields(string(b))
	for _, c := range ctrls {
		if !slices.Contains(avail, c) {
			return fmt.Errorf("cgroups: controller %q is not available in %s (cgroup.controllers: %q)", c, mnt, strings.Join(avail, " "))
		}
	}
	return nil
}

func v2Requested(res *cgroup2.Resources, unified map[string]string) map[string]string {
	m := map[string]string{}
	if c := res.CPU; c != nil {
		if c.Weight != nil {
			m["cpu.weight"] = strconv.FormatUint(*c.Weight, 10)
		}
		m["cpu.max"], m["cpuset.cpus"], m["cpuset.mems"] = string(c.Max), c.Cpus, c.Mems
	}
	if mem := res.Memory; mem != nil {
		for f, v := range map[string]*int64{"memory.max": mem.Max, "memory.low": mem.Low, "memory.swap.max": mem.Swap} {
			if v != nil {
				m[f] = strconv.FormatInt(*v, 10)
			}
		}
	}
	if res.Pids != nil {
		m["pids.max"] = strconv.FormatInt(res.Pids.Max, 10)
	}
	if res.IO != nil && res.IO.BFQ.Weight != 0 {
		m["io.bfq.weight"] = strconv.Itoa(int(res.IO.BFQ.Weight))
	}
	for k, v := range unified {
		m[k] = v
	}
	return m
}

func v2Snapshot(dir string, unified map[string]string) snapshot {
	var s snapshot
	s.save(dir, scalar, "cpu.weight", "cpu.max", "cpuset.cpus", "cpuset.mems", "memory.max", "memory.low",
		"memory.high", "memory.min", "memory.swap.max", "memory.oom.group", "pids.max", "io.bfq.weight", "hugetlb.*.max")
	s.save(dir, v2IOMax, "io.max")
	for k := range unified {
		s.save(dir, scalar, k)
	}
	return s
}

// newV2 creates group p below the cgroup2 mount mnt ("/sys/fs/cgroup", or
// "/sys/fs/cgroup/unified" on hybrid hosts) and applies r.
func newV2(mnt, p string, r *specs.LinuxResources) (_ Cgroup, retErr error) {
	if err := validate(r); err != nil {
		return nil, err
	}
	if r == nil {
		r = &specs.LinuxResources{}
	}
	r = withDefaultDevices(r)
	res, err := toV2Resources(r)
	if err != nil {
		return nil, err
	}
	ctrls := v2Controllers(res, r.Unified)
	if err := v2Check(mnt, ctrls); err != nil {
		return nil, err
	}
	mgr, err := cgroup2.Load(p, cgroup2.WithMountpoint(mnt))
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: %w", p, err)
	}
	c := &v2{mnt: mnt, path: p, dir: filepath.Join(mnt, p), mgr: mgr}
	created := missingDirs(mnt, p)
	snap := v2Snapshot(c.dir, r.Unified)
	defer func() {
		if retErr != nil {
			snap.restore()
			removeDirs(created)
		}
	}()
	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, fmt.Errorf("cgroups: create %s: %w", p, err)
	}
	// Enable every controller the hierarchy offers along the path (as runc
	// and the runc shim do), so a container without limits still has its
	// memory, pids and io accounting (Stats). Best effort: a parent that
	// holds processes cannot delegate domain controllers.
	if b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers")); err == nil {
		if all := strings.Fields(string(b)); len(all) > 0 {
			_ = mgr.ToggleControllers(all, cgroup2.Enable)
		}
	}
	if err := c.apply(res, ctrls, r.Unified); err != nil {
		return nil, explain("create "+p, err, v2Requested(res, r.Unified))
	}
	return c, nil
}

func loadV2(mnt, p string) (Cgroup, error) {
	mgr, err := cgroup2.Load(p, cgroup2.WithMountpoint(mnt))
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: %w", p, err)
	}
	c := &v2{mnt: mnt, path: p, dir: filepath.Join(mnt, p), mgr: mgr}
	if !exists(c.dir) {
		return nil, notExist(p)
	}
	return c, nil
}

func (c *v2) apply(res *cgroup2.Resources, ctrls []string, unified map[string]string) error {
	if len(res.Devices) == 0 {
		return c.write(res, ctrls, unified)
	}
	// The new device filter replaces the old ones only if everything else
	// was written too (see v2devices.go).
	oldProgs, err := c.deviceProgs()
	if err != nil {
		return err
	}
	if err := c.write(res, ctrls, unified); err != nil {
		if now, qerr := c.deviceProgs(); qerr == nil {
			_ = c.detachDeviceProgs(newIDs(now, oldProgs))
		}
		return err
	}
	if err := c.detachDeviceProgs(oldProgs); err != nil {
		return fmt.Errorf("replace the device filter: %w", err)
	}
	return nil
}

func (c *v2) write(res *cgroup2.Resources, ctrls []string, unified map[string]string) error {
	if len(ctrls) > 0 {
		if err := c.mgr.ToggleControllers(ctrls, cgroup2.Enable); err != nil {
			return err
		}
	}
	var ioWeight string
	if res.IO != nil && res.IO.BFQ.Weight != 0 && !exists(filepath.Join(c.dir, "io.bfq.weight")) {
		// No BFQ: the weight goes to io.weight, whose range is 1..10000
		// (runc's conversion from blkio's 10..1000).
		r := *res
		io := *res.IO
		ioWeight = "default " + strconv.FormatUint(1+(uint64(io.BFQ.Weight)-10)*9999/990, 10)
		io.BFQ.Weight = 0
		r.IO = &io
		res = &r
	}
	if err := c.mgr.Update(res); err != nil {
		return err
	}
	if ioWeight != "" {
		if err := write(filepath.Join(c.dir, "io.weight"), ioWeight); err != nil {
			return err
		}
	}
	// linux.resources.unified: raw key/values, which the library lacks.
	keys := make([]string, 0, len(unified))
	for k := range unified {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := write(filepath.Join(c.dir, k), unified[k]); err != nil {
			return err
		}
	}
	return nil
}

func (c *v2) Path() string { return c.path }

func (c *v2) Add(pid int) error {
	if err := c.mgr.AddProc(uint64(pid)); err != nil {
		return fmt.Errorf("cgroups: add %d to %s: %w", pid, c.dir, err)
	}
	return nil
}

func (c *v2) Update(r *specs.LinuxResources) error {
	if isEmpty(r) {
		return nil
	}
	if err := validate(r); err != nil {
		return err
	}
	if len(r.Devices) > 0 {
		r = withDefaultDevices(r)
	}
	res, err := toV2Resources(r)
	if err != nil {
		return err
	}
	ctrls := v2Controllers(res, r.Unified)
	if err := v2Check(c.mnt, ctrls); err != nil {
		return err
	}
	snap := v2Snapshot(c.dir, r.Unified)
	if err := c.apply(res, ctrls, r.Unified); err != nil {
		snap.restore()
		return explain("update "+c.path, err, v2Requested(res, r.Unified))
	}
	return nil
}

// readKV reads a flat keyed file (cgroup.events, memory.events) into a map.
func readKV(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for _, l := range lines(string(b)) {
		k, v, _ := strings.Cut(l, " ")
		n, _ := strconv.ParseUint(v, 10, 64)
		m[k] = n
	}
	return m, nil
}

func (c *v2) Freeze() error {
	if err := c.mgr.Freeze(); err != nil {
		return fmt.Errorf("cgroups: freeze %s: %w", c.path, err)
	}
	// cgroup.freeze only records the request; cgroup.events says when every
	// task is actually frozen.
	deadline := time.Now().Add(freezeTimeout)
	for {
		ev, err := readKV(filepath.Join(c.dir, "cgroup.events"))
		if err != nil {
			return fmt.Errorf("cgroups: freeze %s: %w", c.path, err)
		}
		if f, ok := ev["frozen"]; !ok || f == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			_ = c.mgr.Thaw()
			return fmt.Errorf("cgroups: freeze %s: not frozen after %v", c.path, freezeTimeout)
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *v2) Thaw() error {
	if err := c.mgr.Thaw(); err != nil {
		return fmt.Errorf("cgroups: thaw %s: %w", c.path, err)
	}
	return nil
}

func (c *v2) State() (bool, error) {
	b, err := os.ReadFile(filepath.Join(c.dir, "cgroup.freeze"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, notExist(c.path)
		}
		return false, err
	}
	return strings.TrimSpace(string(b)) == "1", nil
}

func (c *v2) Pids() ([]int, error) {
	procs, err := c.mgr.Procs(true)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, notExist(c.path)
		}
		return nil, err
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, int(p))
	}
	return sortedUnique(pids), nil
}

func (c *v2) Stats() (any, error) { return c.mgr.Stat() }

func (c *v2) KillAll(sig syscall.Signal) error {
	if sig == unix.SIGKILL && exists(filepath.Join(c.dir, "cgroup.kill")) {
		if err := c.mgr.Kill(); err != nil {
			return fmt.Errorf("cgroups: kill %s: %w", c.path, err)
		}
		return nil
	}
	// The v2 freezer lets fatal signals through, so a frozen cgroup can stay
	// frozen for any signal.
	wasFrozen, err := c.State()
	if err != nil {
		return err
	}
	if !wasFrozen {
		if err := c.Freeze(); err != nil {
			return err
		}
	}
	pids, err := c.Pids()
	if err == nil {
		err = signalPids(pids, sig)
	}
	if !wasFrozen {
		if terr := c.Thaw(); terr != nil && err == nil {
			err = terr
		}
	}
	return err
}

func (c *v2) OOMEvents() (<-chan struct{}, error) {
	eventsFile := filepath.Join(c.dir, "memory.events")
	ev, err := readKV(eventsFile)
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: oom events need the memory controller: %w", c.path, err)
	}
	last := ev["oom_kill"]
	fd, wd, err := c.mgr.MemoryEventFD()
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: %w", c.path, err)
	}
	f, err := pollableFile(fd, "memory-events-inotify")
	if err != nil {
		return nil, err
	}
	c.w.add(f)
	ch := make(chan struct{}, 1)
	go func() {
		defer close(ch)
		defer f.Close()
		buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
		for {
			n, err := f.Read(buf)
			if err != nil {
				return
			}
			gone := false
			for off := 0; off+unix.SizeofInotifyEvent <= n; {
				w := int32(binary.NativeEndian.Uint32(buf[off:]))
				mask := binary.NativeEndian.Uint32(buf[off+4:])
				nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
				if w == int32(wd) && mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF) != 0 {
					gone = true
				}
				off += unix.SizeofInotifyEvent + nameLen
			}
			ev, err := readKV(eventsFile)
			if err != nil {
				return // cgroup removed
			}
			if ev["oom_kill"] > last {
				last = ev["oom_kill"]
				select {
				case ch <- struct{}{}:
				default:
				}
			}
			if gone {
				return
			}
		}
	}()
	return ch, nil
}

func (c *v2) Delete() error {
	if !exists(c.dir) {
		c.w.closeAll()
		return nil
	}
	if err := killAndWait(c); err != nil {
		return err
	}
	if err := c.mgr.Delete(); err != nil && exists(c.dir) {
		return fmt.Errorf("cgroups: delete %s: %w", c.path, err)
	}
	c.w.closeAll()
	return nil
}

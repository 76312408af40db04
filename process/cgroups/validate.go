package cgroups

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// validate rejects obviously invalid resources before anything on the host
// is touched. Values only the kernel can judge (a cpuset the machine does
// not have, a CFS period out of range, ...) are left to the kernel; the
// error it gives is decorated by explain.
func validate(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if m := r.Memory; m != nil {
		for _, f := range []struct {
			name string
			v    *int64
		}{{"memory.limit", m.Limit}, {"memory.reservation", m.Reservation}, {"memory.swap", m.Swap}} {
			if f.v != nil && *f.v < -1 {
				return fmt.Errorf("cgroups: invalid %s %d: must be >= 0, or -1 for unlimited", f.name, *f.v)
			}
		}
		if m.Limit != nil && m.Swap != nil && *m.Limit > 0 && *m.Swap > 0 && *m.Swap < *m.Limit {
			return fmt.Errorf("cgroups: invalid memory.swap %d: memory+swap must be >= memory.limit %d", *m.Swap, *m.Limit)
		}
		if m.Swappiness != nil && *m.Swappiness > 100 {
			return fmt.Errorf("cgroups: invalid memory.swappiness %d: must be 0..100", *m.Swappiness)
		}
	}
	if p := r.Pids; p != nil && p.Limit != nil && *p.Limit < -1 {
		return fmt.Errorf("cgroups: invalid pids.limit %d: must be > 0, or -1/0 for unlimited", *p.Limit)
	}
	if c := r.CPU; c != nil {
		if c.Quota != nil && *c.Quota < -1 {
			return fmt.Errorf("cgroups: invalid cpu.quota %d: must be > 0, or -1 for unlimited", *c.Quota)
		}
		if c.Cpus != "" {
			if err := parseCPUList(c.Cpus); err != nil {
				return fmt.Errorf("cgroups: invalid cpu.cpus %q: %w", c.Cpus, err)
			}
		}
		if c.Mems != "" {
			if err := parseCPUList(c.Mems); err != nil {
				return fmt.Errorf("cgroups: invalid cpu.mems %q: %w", c.Mems, err)
			}
		}
	}
	if b := r.BlockIO; b != nil {
		for _, w := range []struct {
			name string
			v    *uint16
		}{{"blockIO.weight", b.Weight}, {"blockIO.leafWeight", b.LeafWeight}} {
			if w.v != nil && *w.v != 0 && (*w.v < 10 || *w.v > 1000) {
				return fmt.Errorf("cgroups: invalid %s %d: must be 10..1000", w.name, *w.v)
			}
		}
	}
	for i, d := range r.Devices {
		switch d.Type {
		case "", "a", "b", "c":
		default:
			return fmt.Errorf("cgroups: devices[%d]: invalid type %q", i, d.Type)
		}
		if d.Access == "" || strings.Trim(d.Access, "rwm") != "" {
			return fmt.Errorf("cgroups: devices[%d]: invalid access %q", i, d.Access)
		}
	}
	for _, h := range r.HugepageLimits {
		if h.Pagesize == "" || strings.ContainsAny(h.Pagesize, "/ ") {
			return fmt.Errorf("cgroups: invalid hugepage size %q", h.Pagesize)
		}
	}
	for k := range r.Unified {
		if k == "" || strings.ContainsAny(k, "/\x00") || !strings.Contains(k, ".") {
			return fmt.Errorf("cgroups: invalid unified key %q", k)
		}
	}
	return nil
}

// parseCPUList checks the syntax of a cpuset list ("0-3,5,7-8").
func parseCPUList(s string) error {
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 32)
		if err != nil {
			return fmt.Errorf("bad element %q", part)
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 32)
			if err != nil || b < a {
				return fmt.Errorf("bad range %q", part)
			}
		}
	}
	return nil
}

// isEmpty reports whether r asks for nothing.
func isEmpty(r *specs.LinuxResources) bool {
	if r == nil {
		return true
	}
	return r.Memory == nil && r.CPU == nil && r.Pids == nil && r.BlockIO == nil &&
		len(r.HugepageLimits) == 0 && len(r.Devices) == 0 && len(r.Unified) == 0 &&
		len(r.Rdma) == 0 && r.Network == nil
}

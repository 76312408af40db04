package cgroups

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// The library attaches each device filter with BPF_F_ALLOW_MULTI and never
// detaches the previous one. The kernel runs every attached program and
// allows an access only if all of them do, so an Update that widens access
// would not take effect, and the kubelet, which sends the device list with
// every UpdateContainerResources, would pile up programs until the kernel's
// limit (64) makes updates fail. apply therefore detaches the programs that
// were attached before once the new one is in (or the new one if the update
// failed; the new one is attached before the old ones go, so there is no
// moment without a filter), as runc does.

// deviceProgs lists the BPF_CGROUP_DEVICE programs attached to the cgroup.
func (c *v2) deviceProgs() ([]ebpf.ProgramID, error) {
	fd, err := unix.Open(c.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("cgroups: open %s: %w", c.dir, err)
	}
	defer unix.Close(fd)
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, fmt.Errorf("cgroups: %s: query device programs: %w", c.path, err)
	}
	ids := make([]ebpf.ProgramID, 0, len(res.Programs))
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids, nil
}

// detachDeviceProgs detaches the given device programs from the cgroup.
func (c *v2) detachDeviceProgs(ids []ebpf.ProgramID) error {
	if len(ids) == 0 {
		return nil
	}
	fd, err := unix.Open(c.dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("cgroups: open %s: %w", c.dir, err)
	}
	defer unix.Close(fd)
	var errs []error
	for _, id := range ids {
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue // gone already
			}
			errs = append(errs, fmt.Errorf("device program %d: %w", id, err))
			continue
		}
		err = link.RawDetachProgram(link.RawDetachProgramOptions{Target: fd, Program: prog, Attach: ebpf.AttachCGroupDevice})
		prog.Close()
		if err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("detach device program %d: %w", id, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("cgroups: %s: %w", c.path, err)
	}
	return nil
}

// newIDs returns the ids in now that are not in before.
func newIDs(now, before []ebpf.ProgramID) []ebpf.ProgramID {
	var out []ebpf.ProgramID
	for _, id := range now {
		if !slices.Contains(before, id) {
			out = append(out, id)
		}
	}
	return out
}

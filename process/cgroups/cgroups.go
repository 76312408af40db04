// Package cgroups places a container in its cgroup and manages its resource
// budget through containerd/cgroups/v3, for both cgroup v1 and v2 hosts.
//
// The cgroup version is picked with cgroups.Mode(): Unified → cgroup v2
// (mounted at /sys/fs/cgroup); Legacy or Hybrid → cgroup v1 (one hierarchy
// per controller under /sys/fs/cgroup/<controller>). In Hybrid mode the
// container is additionally placed at the same path in the unified (v2)
// mount (/sys/fs/cgroup/unified) when that is possible; that placement is
// used for cgroup.kill (KillAll(SIGKILL), Delete) and is removed on Delete.
//
// cgroupsPath is translated by CgroupfsPath. An empty cgroupsPath means "no
// cgroup": New and Load return a no-op Cgroup whose Add/Update/Delete do
// nothing (the container stays in the shim's cgroup, as with runc) and whose
// Freeze/Thaw/State/Pids/Stats/KillAll/OOMEvents return ErrNoCgroup.
//
// Resource semantics common to v1 and v2: -1 means unlimited for memory
// limit/swap/reservation, cpu quota and pids; a pids limit of 0 also means
// unlimited; memory.kernel is ignored; linux.resources.network and rdma are
// ignored. Version specifics are documented on toV2Resources (v2) and
// v1Fixups (v1: BFQ blkio weights).
//
// Device rules follow runc: the device cgroup denies by default (a leading
// "deny all" is added unless the spec starts with one), then come the spec's
// rules in order, then runc's default allowed devices (defaultDevices:
// mknod, /dev/null, zero, full, random, urandom, tty, ptmx, pts, net/tun),
// which a container from containerd's default spec needs (the shell opens
// /dev/null for every background job). On v2 the rules become an eBPF
// program (the library's DeviceFilter); on a v1 host without the devices
// controller the defaults are skipped. An Update with device rules gets the
// same treatment (one without leaves the devices as they are), applied
// without a moment of "deny all" on v1 (v1DeviceTransition: the kubelet
// sends the device list with every update) and replacing, not adding to, the
// eBPF filter on v2 (v2devices.go).
//
// When systemd runs the host (/run/systemd/system exists) the cgroup is still
// created directly in cgroupfs.
// TODO: with systemd, create a transient scope/slice over D-Bus
// (StartTransientUnit, as runc's systemd driver does) instead, so that
// systemd does not consider the directories foreign.
package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/containerd/cgroups/v3"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Cgroup is one container's cgroup.
type Cgroup interface {
	// Add moves pid into the cgroup (every hierarchy on v1).
	Add(pid int) error
	// Placement opens what lets a new process enter the cgroup without an
	// Add after fork (see Placement).
	Placement() (*Placement, error)
	// Path is the cgroup's path below each hierarchy root ("/default/c1"),
	// "" for the no-op cgroup.
	Path() string
	// Update applies resources. Invalid input is rejected before anything is
	// written; if the kernel rejects a value the error names the file and
	// the values written so far are restored (best effort, read back first;
	// v2 eBPF device filters are not restored).
	Update(resources *specs.LinuxResources) error
	// Freeze stops every process of the cgroup; returns once frozen.
	Freeze() error
	// Thaw resumes the processes.
	Thaw() error
	// State reports whether the cgroup is frozen.
	State() (paused bool, err error)
	// Pids lists every process in the cgroup and its descendants (on v1 the
	// union over all hierarchies), sorted.
	Pids() ([]int, error)
	// Stats returns the runc shim's Stats payload: *cgroup1/stats.Metrics on
	// v1, *cgroup2/stats.Metrics on v2 (both proto messages; pass them to
	// typeurl.MarshalAny).
	Stats() (any, error)
	// KillAll sends sig to every process in the cgroup. v2 (and the hybrid
	// unified placement) with SIGKILL uses cgroup.kill when present;
	// otherwise freeze, signal each pid, thaw (a cgroup that was already
	// frozen stays frozen unless sig is SIGKILL).
	KillAll(sig syscall.Signal) error
	// OOMEvents returns a channel that receives a value (coalesced) for each
	// OOM event in the cgroup (v1: memory.oom_control eventfd; v2:
	// memory.events oom_kill increments via inotify). The channel is closed
	// when the cgroup is deleted.
	OOMEvents() (<-chan struct{}, error)
	// Delete SIGKILLs any process still inside (waiting at most
	// 5s for the cgroup to empty), then removes the cgroup
	// directory in every hierarchy. Deleting a gone cgroup is not an error.
	Delete() error
}

var (
	// ErrNoCgroup is returned by the no-op Cgroup (empty cgroupsPath) for
	// operations that need a real cgroup.
	ErrNoCgroup = errors.New("cgroups: container has no cgroup (empty cgroupsPath)")
	// ErrUnavailable means no cgroup filesystem is mounted.
	ErrUnavailable = errors.New("cgroups: no cgroup filesystem mounted at /sys/fs/cgroup")
)

const (
	v2Mountpoint     = "/sys/fs/cgroup"
	hybridMountpoint = "/sys/fs/cgroup/unified"
)

// New creates the cgroup named by cgroupsPath (or uses it if it already
// exists) and applies resources. Invalid resources are rejected before the
// host is touched; on any error the directories New created are removed (and
// the values of a pre-existing cgroup restored).
func New(cgroupsPath string, resources *specs.LinuxResources) (Cgroup, error) {
	p, err := CgroupfsPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	if p == "" {
		return noop{}, nil
	}
	if err := validate(resources); err != nil {
		return nil, err
	}
	if resources == nil {
		resources = &specs.LinuxResources{}
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		return newV2(v2Mountpoint, p, resources)
	case cgroups.Legacy:
		return newV1(p, resources, "")
	case cgroups.Hybrid:
		return newV1(p, resources, hybridMountpoint)
	default:
		return nil, ErrUnavailable
	}
}

// Load opens an existing cgroup without changing it (for the shim's delete
// action after a crash). If it does not exist in any hierarchy the error
// matches errors.Is(err, fs.ErrNotExist).
func Load(cgroupsPath string) (Cgroup, error) {
	p, err := CgroupfsPath(cgroupsPath)
	if err != nil {
		return nil, err
	}
	if p == "" {
		return noop{}, nil
	}
	switch cgroups.Mode() {
	case cgroups.Unified:
		return loadV2(v2Mountpoint, p)
	case cgroups.Legacy:
		return loadV1(p, "")
	case cgroups.Hybrid:
		return loadV1(p, hybridMountpoint)
	default:
		return nil, ErrUnavailable
	}
}

func notExist(p string) error {
	return fmt.Errorf("cgroups: cgroup %s: %w", p, fs.ErrNotExist)
}

// noop is the Cgroup of a container without cgroupsPath.
type noop struct{}

func (noop) Add(int) error                       { return nil }
func (noop) Path() string                        { return "" }
func (noop) Update(*specs.LinuxResources) error  { return nil }
func (noop) Freeze() error                       { return ErrNoCgroup }
func (noop) Thaw() error                         { return ErrNoCgroup }
func (noop) State() (bool, error)                { return false, ErrNoCgroup }
func (noop) Pids() ([]int, error)                { return nil, ErrNoCgroup }
func (noop) Stats() (any, error)                 { return nil, ErrNoCgroup }
func (noop) KillAll(syscall.Signal) error        { return ErrNoCgroup }
func (noop) OOMEvents() (<-chan struct{}, error) { return nil, ErrNoCgroup }
func (noop) Delete() error                       { return nil }

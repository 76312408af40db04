package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// stateFile is the only thing husk persists: one small JSON record per
// container, in its bundle (which containerd keeps on tmpfs under its state
// dir and removes after a successful delete). It is what the shim's `delete`
// action needs when containerd runs it after the shim died: which process is
// the init (pid plus start time, so a recycled pid is never killed), which
// cgroup to kill and remove, whether husk mounted the rootfs (and must
// unmount it), and the init's exit once it is known.
//
// It is written at three points, each time whole and atomically (temp file
// in the bundle, renamed over the old one): before the rootfs is mounted
// and the cgroup made (nothing else is created on the host before), after
// the init is spawned (pid, start time), and when the init's
// exit is recorded. Delete removes it last, after the cgroup and the mount
// are gone. A reader therefore sees either no record or a complete one; a
// crash between two writes leaves the previous record, which is enough to
// find what exists: the cgroup path is in it from the first write, and an
// init spawned but not yet recorded is in that cgroup (or, without one,
// exits when its sync socket to the dead shim closes).
//
// The writes are not fsynced: the record is for a shim that died, and the
// page cache outlives a process; after a machine crash no container is left
// to clean up (and the bundle is normally on tmpfs). An fsync pair costs ~0.4
// ms on an ext4 /run, three times per container, for nothing.
//
// A restarted containerd needs nothing from it: it reconnects to the
// running shim (bootstrap.json, written by containerd), whose memory holds
// the live state.
const stateFile = "husk-state.json"

// State is the persisted record of one container.
type State struct {
	ID          string `json:"id"`
	Pid         int    `json:"pid"`
	StartTime   uint64 `json:"startTime"` // /proc/<pid>/stat field 22, guards against pid reuse
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	Rootfs      string `json:"rootfs"`
	// MountedRootfs says husk mounts (or mounted) the rootfs, and must
	// unmount it.
	MountedRootfs bool  `json:"mountedRootfs"`
	OwnPidNS      bool  `json:"ownPidNS"`
	Exit          *Exit `json:"exit,omitempty"`
}

// WriteState stores st in bundle atomically (temp file, rename).
func WriteState(bundle string, st *State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return writeFileAtomic(filepath.Join(bundle, stateFile), data)
}

// ReadState loads the state of the container in bundle.
func ReadState(bundle string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(bundle, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decode state %s: %w", filepath.Join(bundle, stateFile), err)
	}
	return &st, nil
}

// RemoveState deletes the state file; a missing one is not an error.
func RemoveState(bundle string) error {
	if err := os.Remove(filepath.Join(bundle, stateFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove state: %w", err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

// procStartTime reads the start time (in clock ticks since boot) of pid.
func procStartTime(pid int) (uint64, error) {
	_, start, err := procStat(pid)
	return start, err
}

// procStat reads the state letter (field 3) and the start time (field 22,
// clock ticks since boot) of pid from /proc/<pid>/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(pid, string(data))
}

func parseStat(pid int, s string) (byte, uint64, error) {
	// comm may contain spaces and parentheses: fields start after the last ')'
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22
	if len(fields) < 20 || len(fields[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed /proc/%d/stat: start time: %w", pid, err)
	}
	return fields[0][0], start, nil
}

// alive reports whether pid is still the process that started at start. A
// zombie is dead: once the shim is gone the init's parent is whatever
// adopted it, which reaps when it likes.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	state, st, err := procStat(pid)
	return err == nil && st == start && state != 'Z' && state != 'X'
}

// waitGone polls until pid (started at start) is gone, up to timeout.
func waitGone(pid int, start uint64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for alive(pid, start) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

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

// stateFile is what husk keeps on disk in each bundle, so that the shim's
// `delete` action (run by containerd after the shim died) and a restarted
// shim can find the container's processes, cgroup and rootfs.
const stateFile = "husk-state.json"

// State is the persisted record of one container.
type State struct {
	ID          string `json:"id"`
	Pid         int    `json:"pid"`
	StartTime   uint64 `json:"startTime"` // /proc/<pid>/stat field 22, guards against pid reuse
	CgroupsPath string `json:"cgroupsPath,omitempty"`
	Rootfs      string `json:"rootfs"`
	// MountedRootfs says husk mounted the rootfs (and must unmount it).
	MountedRootfs bool  `json:"mountedRootfs"`
	OwnPidNS      bool  `json:"ownPidNS"`
	Exit          *Exit `json:"exit,omitempty"`
}

// WriteState stores st in bundle atomically (temp file, fsync, rename).
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
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
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
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// comm may contain spaces and parentheses: fields start after the last ')'
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); start time is field 22
	if len(fields) < 20 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return strconv.ParseUint(fields[19], 10, 64)
}

// alive reports whether pid is still the process that started at start.
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := procStartTime(pid)
	return err == nil && st == start
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

package cgroups

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
)

// requireRoot skips unless the test may create cgroups.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create cgroups")
	}
}

func requireV1(t *testing.T) {
	t.Helper()
	requireRoot(t)
	if m := cgroups.Mode(); m != cgroups.Legacy && m != cgroups.Hybrid {
		t.Skipf("host is not cgroup v1 (mode %d)", m)
	}
}

// hierarchyRoots lists every cgroupfs mount below /sys/fs/cgroup (v1
// hierarchies, the hybrid unified mount) or /sys/fs/cgroup itself on v2.
func hierarchyRoots(t *testing.T) []string {
	t.Helper()
	if cgroups.Mode() == cgroups.Unified {
		return []string{v2Mountpoint}
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var roots []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 {
			continue
		}
		fstype := f[len(f)-3]
		if (fstype == "cgroup" || fstype == "cgroup2") && strings.HasPrefix(f[4], "/sys/fs/cgroup/") {
			roots = append(roots, f[4])
		}
	}
	return roots
}

// testParent returns a fresh private parent path ("/husk-test-<hex>") and
// removes it from every hierarchy when the test ends, even on failure.
// Processes started by start() are killed before (their cleanups run first).
func testParent(t *testing.T) string {
	t.Helper()
	return testParentNamed(t, "husk-test-"+randHex())
}

func randHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testParentNamed(t *testing.T, name string) string {
	t.Helper()
	p := "/" + name
	roots := hierarchyRoots(t)
	t.Cleanup(func() {
		for _, r := range roots {
			removeTree(t, filepath.Join(r, p))
		}
	})
	return p
}

// removeTree rmdirs a cgroup directory tree bottom-up.
func removeTree(t *testing.T, dir string) {
	if err := rmdirTree(dir); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// start runs a child that the test owns; it is killed and reaped at cleanup.
func start(t *testing.T, script string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
	})
	return cmd
}

// startIn is start with a pipe to the child's stdin.
func startIn(t *testing.T, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, stdin
}

// waitSignaled waits for cmd and reports the signal that ended it (0 if
// none) within 10s.
func waitSignaled(t *testing.T, cmd *exec.Cmd) syscall.Signal {
	t.Helper()
	done := make(chan *os.ProcessState, 1)
	go func() {
		st, _ := cmd.Process.Wait()
		done <- st
	}()
	select {
	case st := <-done:
		if st == nil {
			return 0
		}
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
		return 0
	case <-time.After(10 * time.Second):
		t.Fatalf("pid %d did not exit", cmd.Process.Pid)
		return 0
	}
}

func readTrim(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// procCgroups parses /proc/<pid>/cgroup into controller-list → path ("" is
// the unified hierarchy).
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(readTrim(t, "/proc/"+strconv.Itoa(pid)+"/cgroup"), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) == 3 {
			m[parts[1]] = parts[2]
		}
	}
	return m
}

// utime is the user CPU time (clock ticks) of pid, /proc/<pid>/stat field 14.
func utime(t *testing.T, pid int) uint64 {
	t.Helper()
	s := readTrim(t, "/proc/"+strconv.Itoa(pid)+"/stat")
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	v, err := strconv.ParseUint(f[11], 10, 64) // field 14 overall; 3 is f[0]
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// busyFor reports whether pid accumulates user time over d.
func busyFor(t *testing.T, pid int, d time.Duration) bool {
	t.Helper()
	before := utime(t, pid)
	time.Sleep(d)
	return utime(t, pid) > before
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

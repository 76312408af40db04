package process

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseStat(t *testing.T) {
	for _, tc := range []struct {
		in    string
		state byte
		start uint64
		bad   bool
	}{
		{in: "42 (sleep) S 1 42 42 0 -1 4194560 105 0 0 0 0 0 0 0 20 0 1 0 123456 2256896 128", state: 'S', start: 123456},
		{in: "7 (a) b) (c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0", state: 'Z', start: 99},
		{in: "7 (x y) R 1", bad: true},
		{in: "no paren", bad: true},
		{in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 notanumber 0 0", bad: true},
	} {
		state, start, err := parseStat(1, tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("parseStat(%q) = %c %d, want an error", tc.in, state, start)
			}
			continue
		}
		if err != nil || state != tc.state || start != tc.start {
			t.Errorf("parseStat(%q) = %c %d %v, want %c %d", tc.in, state, start, err, tc.state, tc.start)
		}
	}
}

func TestWriteStateAtomic(t *testing.T) {
	dir := t.TempDir()
	want := &State{ID: "c1", Pid: 42, StartTime: 7, CgroupsPath: "/ns/c1", Rootfs: dir + "/rootfs", MountedRootfs: true, OwnPidNS: true}
	for i := range 3 { // overwrite in place
		want.Pid = 42 + i
		if err := WriteState(dir, want); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ReadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(want)
	b, _ := json.Marshal(got)
	if string(a) != string(b) {
		t.Errorf("read back %s, wrote %s", b, a)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != stateFile {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("bundle holds %v, want only %s (no temp files)", names, stateFile)
	}
	if err := RemoveState(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveState(dir); err != nil {
		t.Errorf("removing a missing state: %v", err)
	}
	if _, err := ReadState(dir); !os.IsNotExist(unwrapAll(err)) {
		t.Errorf("ReadState after RemoveState: %v, want not exist", err)
	}
	if err := WriteState(filepath.Join(dir, "missing"), want); err == nil {
		t.Errorf("WriteState into a missing dir succeeded")
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestAliveZombieAndReuse(t *testing.T) {
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	pid := cmd.Process.Pid
	start, err := procStartTime(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !alive(pid, start) {
		t.Errorf("a running process is not alive")
	}
	if alive(pid, start+1) {
		t.Errorf("a process with another start time (a reused pid) is alive")
	}
	cmd.Process.Kill()
	// Not reaped yet: a zombie, which is dead.
	if !waitGone(pid, start, 5*time.Second) {
		t.Errorf("a killed (zombie) process is still alive")
	}
	cmd.Wait()
	if alive(pid, start) || alive(0, 0) || alive(-1, 0) {
		t.Errorf("a reaped process or a bad pid is alive")
	}
}

// forceDeleteBundle makes a bundle whose state names a live process (ours)
// and, as root, a tmpfs mounted on its rootfs.
func forceDeleteBundle(t *testing.T, mount bool) (string, *exec.Cmd) {
	t.Helper()
	bundle := t.TempDir()
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if mount {
		if err := unix.Mount("tmpfs", rootfs, "tmpfs", 0, ""); err != nil {
			t.Skipf("mount tmpfs (needs root): %v", err)
		}
		t.Cleanup(func() { unix.Unmount(rootfs, unix.MNT_DETACH) })
	}
	cmd := exec.Command("sleep", "1000")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	start, err := procStartTime(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	st := &State{ID: "c1", Pid: cmd.Process.Pid, StartTime: start, Rootfs: rootfs, MountedRootfs: mount, OwnPidNS: true}
	if err := WriteState(bundle, st); err != nil {
		t.Fatal(err)
	}
	return bundle, cmd
}

func TestForceDeleteIdempotent(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
	bundle, cmd := forceDeleteBundle(t, true)
	exit, err := ForceDelete(context.Background(), bundle)
	if err != nil {
		t.Fatalf("ForceDelete: %v", err)
	}
	if exit.Status != 137 || exit.Pid != cmd.Process.Pid {
		t.Errorf("exit %+v, want pid %d status 137", exit, cmd.Process.Pid)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("the init was not killed: wait %v", err)
	}
	if mounted(t, filepath.Join(bundle, "rootfs")) {
		t.Errorf("rootfs still mounted")
	}
	if _, err := os.Stat(filepath.Join(bundle, stateFile)); !os.IsNotExist(err) {
		t.Errorf("state file left: %v", err)
	}
	// Again: nothing left to do, no error.
	exit, err = ForceDelete(context.Background(), bundle)
	if err != nil || exit.Status != 137 {
		t.Errorf("second ForceDelete: %+v %v", exit, err)
	}
}

func TestForceDeleteRecordedExit(t *testing.T) {
	bundle, cmd := forceDeleteBundle(t, false)
	st, err := ReadState(bundle)
	if err != nil {
		t.Fatal(err)
	}
	// The init exited (recorded) and its pid is now someone else's: the
	// start time differs, so that process must survive.
	ts := time.Unix(1700000000, 0)
	st.StartTime++
	st.Exit = &Exit{Pid: st.Pid, Status: 3, Timestamp: ts}
	if err := WriteState(bundle, st); err != nil {
		t.Fatal(err)
	}
	exit, err := ForceDelete(context.Background(), bundle)
	if err != nil {
		t.Fatalf("ForceDelete: %v", err)
	}
	if exit.Status != 3 || !exit.Timestamp.Equal(ts) {
		t.Errorf("exit %+v, want the recorded status 3 at %v", exit, ts)
	}
	if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("a process that only reuses the init's pid was killed: %v", err)
	}
}

func TestForceDeleteBadState(t *testing.T) {
	for name, content := range map[string]string{"garbage": "{not json", "empty": ""} {
		t.Run(name, func(t *testing.T) {
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, stateFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			exit, err := ForceDelete(context.Background(), bundle)
			if err != nil || exit.Status != 137 {
				t.Errorf("ForceDelete with a %s state: %+v %v; want a SIGKILL exit, no error", name, exit, err)
			}
		})
	}
	// No bundle at all (containerd retrying after it removed it).
	if _, err := ForceDelete(context.Background(), filepath.Join(t.TempDir(), "gone")); err != nil {
		t.Errorf("ForceDelete of a missing bundle: %v", err)
	}
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 4 && f[4] == dir {
			return true
		}
	}
	return false
}

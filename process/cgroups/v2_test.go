package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"
)

// v2Mount returns a cgroup2 mount the v2 code can be exercised on: the
// unified mount of a hybrid host (which has no controllers here: placement,
// freeze, kill and delete still work) or /sys/fs/cgroup on a v2 host.
func v2Mount(t *testing.T) (mnt string, controllers []string) {
	t.Helper()
	requireRoot(t)
	switch cgroups.Mode() {
	case cgroups.Unified:
		mnt = v2Mountpoint
	case cgroups.Hybrid:
		mnt = hybridMountpoint
	default:
		t.Skip("no cgroup2 mount on this host")
	}
	probe := filepath.Join(mnt, "husk-probe-"+randHex())
	if err := os.Mkdir(probe, 0o755); err != nil {
		t.Skipf("cannot create a child cgroup in %s: %v", mnt, err)
	}
	_ = os.Remove(probe)
	b, err := os.ReadFile(filepath.Join(mnt, "cgroup.controllers"))
	if err != nil {
		t.Fatal(err)
	}
	return mnt, strings.Fields(string(b))
}

func TestV2Placement(t *testing.T) {
	mnt, ctrls := v2Mount(t)
	p := testParent(t) + "/c2"
	dir := filepath.Join(mnt, p)
	cg, err := newV2(mnt, p, &specs.LinuxResources{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}

	busy := start(t, "while :; do :; done")
	bpid := busy.Process.Pid
	if err := cg.Add(bpid); err != nil {
		t.Fatal(err)
	}
	t.Run("add", func(t *testing.T) {
		if got := procCgroups(t, bpid)[""]; got != p {
			t.Fatalf("/proc/%d/cgroup 0:: = %q, want %q", bpid, got, p)
		}
		pids, err := cg.Pids()
		if err != nil || !contains(pids, bpid) {
			t.Fatalf("Pids() = %v, %v", pids, err)
		}
	})

	t.Run("freeze and thaw (cgroup.freeze)", func(t *testing.T) {
		if err := cg.Freeze(); err != nil {
			t.Fatal(err)
		}
		if paused, err := cg.State(); err != nil || !paused {
			t.Fatalf("State() = %v, %v", paused, err)
		}
		if !strings.Contains(readTrim(t, filepath.Join(dir, "cgroup.events")), "frozen 1") {
			t.Error("cgroup.events does not say frozen")
		}
		if busyFor(t, bpid, 300*time.Millisecond) {
			t.Error("utime advanced while frozen")
		}
		if err := cg.Thaw(); err != nil {
			t.Fatal(err)
		}
		if paused, _ := cg.State(); paused {
			t.Fatal("still paused after Thaw")
		}
		if !busyFor(t, bpid, 300*time.Millisecond) {
			t.Error("utime did not advance after thaw")
		}
	})

	t.Run("stats", func(t *testing.T) {
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		m, ok := st.(*v2stats.Metrics)
		if !ok {
			t.Fatalf("Stats() is %T", st)
		}
		if m.CPU == nil || m.CPU.UsageUsec == 0 {
			t.Errorf("cpu usage missing: %v", m.CPU)
		}
		if slices.Contains(ctrls, "pids") && (m.Pids == nil || m.Pids.Current < 1) {
			t.Errorf("pids stats = %v", m.Pids)
		}
		if _, err := anypb.New(m); err != nil {
			t.Error(err)
		}
	})

	t.Run("killall SIGTERM (freeze, signal, thaw)", func(t *testing.T) {
		child := start(t, "exec sleep 1000")
		if err := cg.Add(child.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if err := cg.KillAll(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if got := waitSignaled(t, child); got != syscall.SIGTERM {
			t.Errorf("child ended by %v", got)
		}
		if got := waitSignaled(t, busy); got != syscall.SIGTERM {
			t.Errorf("busy loop ended by %v", got)
		}
		if paused, _ := cg.State(); paused {
			t.Error("left frozen")
		}
	})

	t.Run("killall SIGKILL (cgroup.kill)", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(dir, "cgroup.kill")); err != nil {
			t.Skip("kernel has no cgroup.kill")
		}
		child := start(t, "exec sleep 1000")
		if err := cg.Add(child.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if err := cg.Freeze(); err != nil { // cgroup.kill works on frozen cgroups too
			t.Fatal(err)
		}
		if err := cg.KillAll(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if got := waitSignaled(t, child); got != syscall.SIGKILL {
			t.Errorf("child ended by %v", got)
		}
		if err := cg.Thaw(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("update and rollback", func(t *testing.T) {
		// Only core files exist without controllers: use raw unified keys.
		if err := cg.Update(&specs.LinuxResources{Unified: map[string]string{"cgroup.max.depth": "3"}}); err != nil {
			t.Fatal(err)
		}
		if got := readTrim(t, filepath.Join(dir, "cgroup.max.depth")); got != "3" {
			t.Fatalf("cgroup.max.depth = %q", got)
		}
		// Keys are written in order: descendants succeeds, depth is rejected.
		err := cg.Update(&specs.LinuxResources{Unified: map[string]string{
			"cgroup.max.descendants": "10", "cgroup.max.depth": "-5"}})
		if err == nil || !strings.Contains(err.Error(), `cgroup.max.depth="-5"`) {
			t.Fatalf("Update error = %v", err)
		}
		t.Log(err)
		if got := readTrim(t, filepath.Join(dir, "cgroup.max.descendants")); got != "max" {
			t.Errorf("cgroup.max.descendants = %q, want max (restored)", got)
		}
		if got := readTrim(t, filepath.Join(dir, "cgroup.max.depth")); got != "3" {
			t.Errorf("cgroup.max.depth = %q, want 3", got)
		}
	})

	t.Run("oom events need memory", func(t *testing.T) {
		if slices.Contains(ctrls, "memory") {
			t.Skip("memory controller available; covered by v1 test on v1 hosts")
		}
		if _, err := cg.OOMEvents(); err == nil {
			t.Fatal("OOMEvents succeeded without memory.events")
		}
	})

	t.Run("load", func(t *testing.T) {
		l, err := loadV2(mnt, p)
		if err != nil || l.Path() != p {
			t.Fatalf("loadV2 = %v, %v", l, err)
		}
	})

	t.Run("delete with a stray process", func(t *testing.T) {
		stray := start(t, "exec sleep 1000")
		if err := cg.Add(stray.Process.Pid); err != nil {
			t.Fatal(err)
		}
		// A nested child cgroup with a process must not block Delete.
		nested := filepath.Join(dir, "nested")
		if err := os.Mkdir(nested, 0o755); err != nil {
			t.Fatal(err)
		}
		stray2 := start(t, "exec sleep 1000")
		if err := os.WriteFile(filepath.Join(nested, "cgroup.procs"), []byte(itoa(int64(stray2.Process.Pid))), 0); err != nil {
			t.Fatal(err)
		}
		if pids, _ := cg.Pids(); !contains(pids, stray2.Process.Pid) {
			t.Errorf("Pids() = %v is not recursive", pids)
		}
		if err := cg.Delete(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s still there: %v", dir, err)
		}
		if got := waitSignaled(t, stray); got != syscall.SIGKILL {
			t.Errorf("stray ended by %v", got)
		}
		if got := waitSignaled(t, stray2); got != syscall.SIGKILL {
			t.Errorf("nested stray ended by %v", got)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if _, err := loadV2(mnt, p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("loadV2 after Delete: %v", err)
		}
	})
}

func TestV2BadInputLeavesNothing(t *testing.T) {
	mnt, ctrls := v2Mount(t)
	parent := testParent(t)
	cases := []struct {
		name    string
		r       *specs.LinuxResources
		wantErr string
	}{
		{"memory -2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, "memory.limit -2"},
		{"pids -5", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-5)}}, "pids.limit -5"},
		{"swap without limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: mib(8)}}, "needs a memory.limit"},
		{"kernel rejects", &specs.LinuxResources{Unified: map[string]string{"cgroup.max.depth": "-5"}}, `cgroup.max.depth="-5"`},
	}
	if !slices.Contains(ctrls, "memory") {
		cases = append(cases, struct {
			name    string
			r       *specs.LinuxResources
			wantErr string
		}{"controller not available", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(8)}}, `controller "memory" is not available`})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := parent + "/mid-" + randHex() + "/bad"
			cg, err := newV2(mnt, p, tc.r)
			if err == nil {
				_ = cg.Delete()
				t.Fatal("newV2 succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			t.Log(err)
			if _, err := os.Stat(filepath.Join(mnt, filepath.Dir(p))); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s left behind", filepath.Dir(p))
			}
		})
	}
}

package cgroups

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

const v1Root = "/sys/fs/cgroup"

func v1File(ctrl, p, file string) string { return filepath.Join(v1Root, ctrl, p, file) }

// v1Controllers lists the mounted v1 hierarchies the library manages here.
func v1Controllers(t *testing.T) []string {
	t.Helper()
	subs, err := cgroup1.Default()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range subs {
		out = append(out, string(s.Name()))
	}
	return out
}

// assertGone checks p exists in no hierarchy.
func assertGone(t *testing.T, p string) {
	t.Helper()
	for _, r := range hierarchyRoots(t) {
		if _, err := os.Lstat(filepath.Join(r, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists (err=%v)", filepath.Join(r, p), err)
		}
	}
}

type readback struct{ ctrl, file, want string }

func checkReadbacks(t *testing.T, p string, rbs []readback) {
	t.Helper()
	for _, rb := range rbs {
		if got := readTrim(t, v1File(rb.ctrl, p, rb.file)); got != rb.want {
			t.Errorf("%s/%s = %q, want %q", rb.ctrl, rb.file, got, rb.want)
		}
	}
}

func rootDisk(t *testing.T) (int64, int64) {
	t.Helper()
	// Any real block device works for blkio.throttle; take the first disk.
	for _, l := range strings.Split(readTrim(t, "/proc/partitions"), "\n")[1:] {
		f := strings.Fields(l)
		if len(f) == 4 && !strings.HasPrefix(f[3], "loop") && !strings.HasPrefix(f[3], "zram") && !strings.HasPrefix(f[3], "ram") {
			maj, _ := strconv.ParseInt(f[0], 10, 64)
			minor, _ := strconv.ParseInt(f[1], 10, 64)
			return maj, minor
		}
	}
	t.Skip("no block device for blkio throttle")
	return 0, 0
}

func TestV1Lifecycle(t *testing.T) {
	requireV1(t)
	parent := testParent(t)
	p := parent + "/c1"
	maj, minor := rootDisk(t)
	dev := specs.LinuxBlockIODevice{Major: maj, Minor: minor}
	devStr := strconv.FormatInt(maj, 10) + ":" + strconv.FormatInt(minor, 10)

	res := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: mib(64), Reservation: mib(32), Swap: mib(64), Swappiness: u64(10),
			Kernel: mib(1)}, //nolint:staticcheck // ignored, must not fail
		CPU:     &specs.LinuxCPU{Shares: u64(512), Quota: i64(50000), Period: u64(100000), Cpus: "0", Mems: "0"},
		Pids:    &specs.LinuxPids{Limit: i64(50)},
		BlockIO: &specs.LinuxBlockIO{Weight: u16(200), ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: dev, Rate: 1 << 20}}},
		Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"},
			{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"},
			{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rw"},
		},
	}
	cg, err := New(p, res)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	if cg.Path() != p {
		t.Fatalf("Path() = %q", cg.Path())
	}

	t.Run("limits applied", func(t *testing.T) {
		checkReadbacks(t, p, []readback{
			{"memory", "memory.limit_in_bytes", strconv.Itoa(64 << 20)},
			{"memory", "memory.soft_limit_in_bytes", strconv.Itoa(32 << 20)},
			{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(64 << 20)},
			{"memory", "memory.swappiness", "10"},
			{"cpu", "cpu.shares", "512"},
			{"cpu", "cpu.cfs_quota_us", "50000"},
			{"cpu", "cpu.cfs_period_us", "100000"},
			{"cpuset", "cpuset.cpus", "0"},
			{"cpuset", "cpuset.mems", "0"},
			{"pids", "pids.max", "50"},
			{"blkio", "blkio.throttle.read_bps_device", devStr + " 1048576"},
			// The spec's rules (1:5 merged with the default 1:5 rwm), then runc's defaults.
			{"devices", "devices.list", "c 1:3 rwm\nc 1:5 rwm\nc *:* m\nb *:* m\nc 1:8 rwm\nc 1:7 rwm\nc 5:0 rwm\nc 1:9 rwm\nc 136:* rwm\nc 5:2 rwm\nc 10:200 rwm"},
		})
		if _, err := os.Stat(v1File("blkio", p, "blkio.bfq.weight")); err == nil {
			if got := readTrim(t, v1File("blkio", p, "blkio.bfq.weight")); !strings.HasSuffix(got, "200") {
				t.Errorf("blkio.bfq.weight = %q, want 200", got)
			}
		} else if got := readTrim(t, v1File("blkio", p, "blkio.weight")); got != "200" {
			t.Errorf("blkio.weight = %q, want 200", got)
		}
	})

	sleeper := start(t, "exec sleep 1000")
	pid := sleeper.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatal(err)
	}

	t.Run("add places the pid in every hierarchy", func(t *testing.T) {
		got := procCgroups(t, pid)
		for _, ctrl := range v1Controllers(t) {
			key := ctrl
			if ctrl == "systemd" {
				key = "name=systemd"
			}
			if got[key] != p {
				t.Errorf("/proc/%d/cgroup %s = %q, want %q", pid, key, got[key], p)
			}
		}
		if cgroups.Mode() == cgroups.Hybrid {
			if got[""] != p {
				t.Errorf("hybrid: unified placement = %q, want %q", got[""], p)
			}
		}
	})

	t.Run("pids", func(t *testing.T) {
		pids, err := cg.Pids()
		if err != nil || !contains(pids, pid) {
			t.Fatalf("Pids() = %v, %v; want %d in it", pids, err, pid)
		}
	})

	t.Run("stats", func(t *testing.T) {
		// v1 charges memory where it is allocated: exec after joining.
		child, stdin := startIn(t, "read x; exec sleep 1000")
		if err := cg.Add(child.Process.Pid); err != nil {
			t.Fatal(err)
		}
		_, _ = stdin.Write([]byte("go\n"))
		waitFor(t, "child to exec sleep", func() bool {
			b, _ := os.ReadFile("/proc/" + strconv.Itoa(child.Process.Pid) + "/cmdline")
			return strings.HasPrefix(string(b), "sleep")
		})
		st, err := cg.Stats()
		if err != nil {
			t.Fatal(err)
		}
		m, ok := st.(*v1stats.Metrics)
		if !ok {
			t.Fatalf("Stats() is %T", st)
		}
		if m.Memory == nil || m.Memory.Usage == nil || m.Memory.Usage.Usage == 0 {
			t.Errorf("memory usage missing: %v", m.Memory)
		}
		if m.Memory.Usage.Limit != 64<<20 {
			t.Errorf("memory limit in stats = %d", m.Memory.Usage.Limit)
		}
		if m.Pids == nil || m.Pids.Current < 2 || m.Pids.Limit != 50 {
			t.Errorf("pids stats = %v", m.Pids)
		}
		// What the shim's Stats RPC does with it (typeurl.MarshalAny of a proto).
		a, err := anypb.New(proto.Message(m))
		if err != nil || !strings.HasSuffix(a.TypeUrl, "io.containerd.cgroups.v1.Metrics") {
			t.Errorf("anypb.New = %v, %v", a, err)
		}
	})

	t.Run("live update", func(t *testing.T) {
		// Growing limit and memsw together needs memsw first; the library orders it.
		if err := cg.Update(&specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: mib(128), Swap: mib(128)},
			CPU:    &specs.LinuxCPU{Shares: u64(1024), Quota: i64(20000)},
			Pids:   &specs.LinuxPids{Limit: i64(-1)},
		}); err != nil {
			t.Fatal(err)
		}
		checkReadbacks(t, p, []readback{
			{"memory", "memory.limit_in_bytes", strconv.Itoa(128 << 20)},
			{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(128 << 20)},
			{"cpu", "cpu.shares", "1024"},
			{"cpu", "cpu.cfs_quota_us", "20000"},
			{"pids", "pids.max", "max"},
		})
	})

	t.Run("invalid update keeps old values", func(t *testing.T) {
		unchanged := []readback{
			{"memory", "memory.limit_in_bytes", strconv.Itoa(128 << 20)},
			{"memory", "memory.memsw.limit_in_bytes", strconv.Itoa(128 << 20)},
			{"cpu", "cpu.shares", "1024"},
			{"cpuset", "cpuset.cpus", "0"},
			{"pids", "pids.max", "max"},
			{"blkio", "blkio.throttle.read_bps_device", devStr + " 1048576"},
		}
		for _, tc := range []struct {
			name    string
			r       *specs.LinuxResources
			wantErr []string
		}{
			{"cpuset the machine lacks", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "99-100"}},
				[]string{`cpuset.cpus="99-100"`, "parent allows"}},
			{"memory -2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, []string{"memory.limit -2"}},
			{"pids -5", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-5)}}, []string{"pids.limit -5"}},
			// cpu and memory are written before blkio, which the kernel then
			// rejects (no such device): both must be rolled back.
			{"rollback across controllers", &specs.LinuxResources{
				CPU:    &specs.LinuxCPU{Shares: u64(2048)},
				Memory: &specs.LinuxMemory{Limit: mib(32), Swap: mib(32)},
				Pids:   &specs.LinuxPids{Limit: i64(10)},
				BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{
					{LinuxBlockIODevice: dev, Rate: 2 << 20},
					{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 4000, Minor: 0}, Rate: 1}}},
			}, []string{"blkio.throttle.read_bps_device"}},
			{"cfs period out of range", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(10)}},
				[]string{`cpu.cfs_period_us="10"`}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := cg.Update(tc.r)
				if err == nil {
					t.Fatal("Update succeeded, want error")
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				t.Log(err)
				checkReadbacks(t, p, unchanged)
			})
		}
	})

	t.Run("freeze and thaw", func(t *testing.T) {
		busy := start(t, "while :; do :; done")
		if err := cg.Add(busy.Process.Pid); err != nil {
			t.Fatal(err)
		}
		bpid := busy.Process.Pid
		if !busyFor(t, bpid, 300*time.Millisecond) {
			t.Fatal("busy loop is not running before freeze")
		}
		if err := cg.Freeze(); err != nil {
			t.Fatal(err)
		}
		if paused, err := cg.State(); err != nil || !paused {
			t.Fatalf("State() = %v, %v after Freeze", paused, err)
		}
		if got := readTrim(t, v1File("freezer", p, "freezer.state")); got != "FROZEN" {
			t.Errorf("freezer.state = %q", got)
		}
		if busyFor(t, bpid, 300*time.Millisecond) {
			t.Error("utime advanced while frozen")
		}
		if err := cg.Thaw(); err != nil {
			t.Fatal(err)
		}
		if paused, err := cg.State(); err != nil || paused {
			t.Fatalf("State() = %v, %v after Thaw", paused, err)
		}
		if !busyFor(t, bpid, 300*time.Millisecond) {
			t.Error("utime did not advance after thaw")
		}
		// KillAll from a frozen cgroup with SIGKILL must still kill.
		if err := cg.Freeze(); err != nil {
			t.Fatal(err)
		}
		if err := cg.KillAll(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if sig := waitSignaled(t, busy); sig != syscall.SIGKILL {
			t.Fatalf("busy loop ended by %v", sig)
		}
		if paused, _ := cg.State(); paused {
			t.Error("cgroup left frozen after KillAll(SIGKILL)")
		}
	})

	t.Run("killall", func(t *testing.T) {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
			child := start(t, "exec sleep 1000")
			if err := cg.Add(child.Process.Pid); err != nil {
				t.Fatal(err)
			}
			if err := cg.KillAll(sig); err != nil {
				t.Fatal(err)
			}
			if got := waitSignaled(t, child); got != sig {
				t.Errorf("KillAll(%v): child ended by %v", sig, got)
			}
			if paused, _ := cg.State(); paused {
				t.Errorf("KillAll(%v) left the cgroup frozen", sig)
			}
		}
		// sleeper from above went with the SIGKILL of "freeze and thaw".
		if got := waitSignaled(t, sleeper); got != syscall.SIGKILL {
			t.Errorf("first sleeper ended by %v", got)
		}
		pids, err := cg.Pids()
		if err != nil || len(pids) != 0 {
			t.Errorf("Pids() after KillAll = %v, %v", pids, err)
		}
	})

	t.Run("load", func(t *testing.T) {
		l, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		if l.Path() != p {
			t.Fatalf("Load().Path() = %q", l.Path())
		}
		child := start(t, "exec sleep 1000")
		if err := l.Add(child.Process.Pid); err != nil {
			t.Fatal(err)
		}
		pids, err := cg.Pids()
		if err != nil || !contains(pids, child.Process.Pid) {
			t.Fatalf("Pids() = %v, %v", pids, err)
		}
	})

	t.Run("delete with a stray process", func(t *testing.T) {
		stray := start(t, "exec sleep 1000") // never waited for before Delete
		if err := cg.Add(stray.Process.Pid); err != nil {
			t.Fatal(err)
		}
		// ... in a cgroup of its own below the container's (as systemd in a
		// container makes), and an empty one beside it.
		for _, sub := range []string{"sub", "sub/deeper", "empty"} {
			if err := os.Mkdir(filepath.Dir(v1File("pids", p+"/"+sub, "x")), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(v1File("pids", p+"/sub/deeper", "cgroup.procs"), []byte(strconv.Itoa(stray.Process.Pid)), 0); err != nil {
			t.Fatal(err)
		}
		if err := cg.Delete(); err != nil {
			t.Fatal(err)
		}
		assertGone(t, p)
		if got := waitSignaled(t, stray); got != syscall.SIGKILL {
			t.Errorf("stray ended by %v", got)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("second Delete: %v", err)
		}
		if _, err := Load(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load after Delete: %v, want ErrNotExist", err)
		}
	})
}

func TestV1OOMEvents(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/oom"
	// memsw = limit: the child cannot escape to swap.
	cg, err := New(p, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(8), Swap: mib(8)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	ch, err := cg.OOMEvents()
	if err != nil {
		t.Fatal(err)
	}
	// The child waits on stdin until it is in the cgroup, then allocates ~50MB.
	cmd, stdin := startIn(t, `read x; a=$(head -c 50000000 /dev/zero | tr "\0" x); echo ${#a}`)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("channel closed before an OOM event")
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no OOM event")
	}
	// The eventfd fires when the OOM starts; the kill is counted just after.
	waitFor(t, "oom_kill in memory.oom_control", func() bool {
		return !strings.Contains(readTrim(t, v1File("memory", p, "memory.oom_control")), "\noom_kill 0")
	})
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	// Deleting the cgroup closes the channel.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("OOM channel not closed after Delete")
		}
	}
}

func TestV1BadInputLeavesNothing(t *testing.T) {
	requireV1(t)
	parent := testParent(t)
	for _, tc := range []struct {
		name    string
		r       *specs.LinuxResources
		wantErr string
	}{
		{"cpuset 99-100 (kernel rejects)", &specs.LinuxResources{
			Memory: &specs.LinuxMemory{Limit: mib(16)}, // written by other controllers before the failure
			CPU:    &specs.LinuxCPU{Shares: u64(256), Cpus: "99-100"}}, `cpuset.cpus="99-100"`},
		{"memory limit -2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, "memory.limit -2"},
		{"pids limit -5", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-5)}}, "pids.limit -5"},
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(16), Swap: mib(8)}}, "memory+swap"},
		{"cfs period too small (kernel rejects)", &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(10)}}, "cpu.cfs_period_us"},
		{"unified on v1", &specs.LinuxResources{Unified: map[string]string{"memory.high": "1"}}, "cgroup v2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A not-yet-existing intermediate dir must go too.
			mid := parent + "/mid-" + randHex()
			p := mid + "/bad"
			cg, err := New(p, tc.r)
			if err == nil {
				_ = cg.Delete()
				t.Fatal("New succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantErr)
			}
			t.Log(err)
			assertGone(t, p)
			assertGone(t, mid)
		})
	}
}

func TestV1SystemdPath(t *testing.T) {
	requireV1(t)
	if _, err := os.Stat("/run/systemd/system"); err == nil {
		t.Skip("systemd runs this host: would create units' directories behind its back")
	}
	// The slice's first component is the private test parent.
	top := "husktest" + randHex()
	testParentNamed(t, top+".slice")
	cg, err := New(top+"-sub.slice:husk:c1", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(7)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	want := "/" + top + ".slice/" + top + "-sub.slice/husk-c1.scope"
	if cg.Path() != want {
		t.Fatalf("Path() = %q, want %q", cg.Path(), want)
	}
	if got := readTrim(t, v1File("pids", want, "pids.max")); got != "7" {
		t.Fatalf("pids.max = %q", got)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, want)
}

func TestNoCgroup(t *testing.T) {
	for _, f := range []func(string, *specs.LinuxResources) (Cgroup, error){
		New, func(p string, _ *specs.LinuxResources) (Cgroup, error) { return Load(p) },
	} {
		cg, err := f("", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(5)}})
		if err != nil {
			t.Fatal(err)
		}
		if cg.Path() != "" || cg.Add(os.Getpid()) != nil || cg.Update(nil) != nil || cg.Delete() != nil {
			t.Fatal("no-op cgroup misbehaves")
		}
		if err := cg.Freeze(); !errors.Is(err, ErrNoCgroup) {
			t.Fatalf("Freeze = %v", err)
		}
		if _, err := cg.Stats(); !errors.Is(err, ErrNoCgroup) {
			t.Fatalf("Stats = %v", err)
		}
	}
	if _, err := New("/", nil); err == nil {
		t.Fatal("New(\"/\") must refuse the root cgroup")
	}
}

// Without a unified placement (pure legacy host) KillAll(SIGKILL) must thaw
// a frozen cgroup for the kill to take effect.
func TestV1LegacyKillFrozen(t *testing.T) {
	requireV1(t)
	p := testParent(t) + "/legacy"
	cg, err := newV1(p, &specs.LinuxResources{}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	child := start(t, "exec sleep 1000")
	if err := cg.Add(child.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := procCgroups(t, child.Process.Pid)[""]; got == p {
		t.Fatal("legacy cgroup placed the pid in the unified hierarchy")
	}
	if err := cg.Freeze(); err != nil {
		t.Fatal(err)
	}
	if err := cg.KillAll(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if got := waitSignaled(t, child); got != syscall.SIGKILL {
		t.Fatalf("child ended by %v", got)
	}
	if paused, _ := cg.State(); paused {
		t.Error("left frozen")
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	assertGone(t, p)
}

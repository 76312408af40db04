package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestWithDefaultDevices(t *testing.T) {
	denyAll := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	fuse := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"}
	allowAll := specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"}
	for _, tc := range []struct {
		name string
		in   []specs.LinuxDeviceCgroup
		want []specs.LinuxDeviceCgroup // before the defaults
	}{
		{"none: deny by default", nil, []specs.LinuxDeviceCgroup{denyAll}},
		{"containerd default (deny all) kept once", []specs.LinuxDeviceCgroup{denyAll, fuse}, []specs.LinuxDeviceCgroup{denyAll, fuse}},
		{"deny all spelled a/mwr", []specs.LinuxDeviceCgroup{{Type: "a", Access: "mwr"}}, []specs.LinuxDeviceCgroup{{Type: "a", Access: "mwr"}}},
		{"rules without a leading deny get one", []specs.LinuxDeviceCgroup{fuse}, []specs.LinuxDeviceCgroup{denyAll, fuse}},
		{"privileged: allow all stays effective", []specs.LinuxDeviceCgroup{denyAll, allowAll}, []specs.LinuxDeviceCgroup{denyAll, allowAll}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &specs.LinuxResources{Devices: tc.in, Pids: &specs.LinuxPids{Limit: i64(3)}}
			orig := append([]specs.LinuxDeviceCgroup(nil), tc.in...)
			got := withDefaultDevices(r)
			want := append(append([]specs.LinuxDeviceCgroup(nil), tc.want...), defaultDevices...)
			if !reflect.DeepEqual(got.Devices, want) {
				t.Fatalf("devices:\n got  %s\n want %s", dumpDevs(got.Devices), dumpDevs(want))
			}
			if got.Pids != r.Pids {
				t.Error("other resources not carried over")
			}
			if !reflect.DeepEqual(r.Devices, orig) {
				t.Error("input modified")
			}
		})
	}
}

// The library's eBPF device filter dereferences Major/Minor and refuses an
// empty type: every rule husk hands it must compile.
func TestV2DeviceFilterCompiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		devs []specs.LinuxDeviceCgroup
	}{
		{"none", nil},
		{"containerd default spec", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}},
		{"privileged", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Access: "rwm"}}},
		{"typed without numbers", []specs.LinuxDeviceCgroup{{Allow: true, Type: "c", Access: "r"}, {Allow: false, Type: "b", Major: i64(8), Access: "w"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := toV2Resources(withDefaultDevices(&specs.LinuxResources{Devices: tc.devs}))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := cgroup2.DeviceFilter(res.Devices); err != nil {
				t.Fatalf("DeviceFilter(%s): %v", dumpDevs(res.Devices), err)
			}
		})
	}
}

// devicesProbe runs a shell in cg that opens /dev/null and /dev/kmsg (1:11,
// not in the defaults) for reading and reports which opens worked.
func devicesProbe(t *testing.T, cg Cgroup) string {
	t.Helper()
	cmd := exec.Command("sh", "-c", `read x; (exec 3</dev/null) 2>/dev/null && echo null-ok; (exec 3</dev/kmsg) 2>/dev/null && echo kmsg-ok; echo done`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-waited
	})
	// The shell blocks in read until it is in the cgroup.
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		waited <- err
		if err != nil {
			t.Fatalf("device probe: %v (output %q)", err, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("device probe did not finish")
	}
	return out.String()
}

// v2MountOK is v2Mount without skipping: ok is false without a usable
// cgroup2 mount.
func v2MountOK() (string, bool) {
	var mnt string
	switch cgroups.Mode() {
	case cgroups.Unified:
		mnt = v2Mountpoint
	case cgroups.Hybrid:
		mnt = hybridMountpoint
	default:
		return "", false
	}
	probe := filepath.Join(mnt, "husk-probe-"+randHex())
	if err := os.Mkdir(probe, 0o755); err != nil {
		return "", false
	}
	_ = os.Remove(probe)
	return mnt, true
}

func TestDevicesEnforced(t *testing.T) {
	requireRoot(t)
	type newFunc func(p string, r *specs.LinuxResources) (Cgroup, error)
	impls := map[string]newFunc{}
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("the probe needs /dev/kmsg: %v", err)
	}
	if m := cgroups.Mode(); m == cgroups.Legacy || m == cgroups.Hybrid {
		impls["v1"] = func(p string, r *specs.LinuxResources) (Cgroup, error) { return New(p, r) }
	}
	if mnt, ok := v2MountOK(); ok {
		impls["v2 eBPF"] = func(p string, r *specs.LinuxResources) (Cgroup, error) { return newV2(mnt, p, r) }
	}
	if len(impls) == 0 {
		t.Skip("no usable cgroup hierarchy")
	}
	for name, newCg := range impls {
		t.Run(name, func(t *testing.T) {
			parent := testParent(t)
			for _, tc := range []struct {
				name string
				devs []specs.LinuxDeviceCgroup
				want string
			}{
				{"containerd default", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}, "null-ok\ndone\n"},
				{"no rules: deny by default", nil, "null-ok\ndone\n"},
				{"allow kmsg", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(11), Access: "r"}}, "null-ok\nkmsg-ok\ndone\n"},
				{"privileged", []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}, {Allow: true, Access: "rwm"}}, "null-ok\nkmsg-ok\ndone\n"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					cg, err := newCg(parent+"/dev-"+randHex(), &specs.LinuxResources{Devices: tc.devs})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = cg.Delete() })
					if got := devicesProbe(t, cg); got != tc.want {
						t.Errorf("probe printed %q, want %q", got, tc.want)
					}
				})
			}
		})
	}
}

func dumpDevs(devs []specs.LinuxDeviceCgroup) string {
	var parts []string
	for _, d := range devs {
		n := func(p *int64) string {
			if p == nil {
				return "nil"
			}
			return itoa(*p)
		}
		parts = append(parts, fmt.Sprintf("{%v %q %s:%s %q}", d.Allow, d.Type, n(d.Major), n(d.Minor), d.Access))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (s *devState) list() string {
	if s.allow {
		return "a *:* rwm"
	}
	var out []string
	for _, k := range s.keys {
		out = append(out, ruleString(ruleFor(k, true, s.acc[k])))
	}
	return strings.Join(out, "\n")
}

func ruleString(d specs.LinuxDeviceCgroup) string {
	n := func(p *int64) string {
		if p == nil || *p < 0 {
			return "*"
		}
		return itoa(*p)
	}
	t := d.Type
	if t == "" {
		t = "a"
	}
	return t + " " + n(d.Major) + ":" + n(d.Minor) + " " + d.Access
}

func devs(allow bool, spec ...string) []specs.LinuxDeviceCgroup {
	var out []specs.LinuxDeviceCgroup
	for _, s := range spec {
		f := strings.Fields(s)
		mm := strings.SplitN(f[1], ":", 2)
		n := func(v string) *int64 {
			if v == "*" {
				return nil
			}
			x, _ := strconv.ParseInt(v, 10, 64)
			return &x
		}
		out = append(out, specs.LinuxDeviceCgroup{Allow: allow, Type: f[0], Major: n(mm[0]), Minor: n(mm[1]), Access: f[2]})
	}
	return out
}

func sortedLines(s string) []string {
	l := lines(s)
	sort.Strings(l)
	return l
}

func TestV1DeviceTransition(t *testing.T) {
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	allowAll := specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"}
	withDeny := func(d ...specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
		return append([]specs.LinuxDeviceCgroup{deny}, d...)
	}
	for _, tc := range []struct {
		name    string
		current string
		rules   []specs.LinuxDeviceCgroup
		want    []string // rules written, as strings ("+" allow, "-" deny)
	}{
		{"same list: nothing written", "c 1:3 rwm\nc 1:5 rwm",
			withDeny(devs(true, "c 1:5 rwm", "c 1:3 rwm")...), nil},
		{"one more device", "c 1:3 rwm",
			withDeny(devs(true, "c 1:3 rwm", "c 10:229 rw")...), []string{"+c 10:229 rw"}},
		{"narrower access, one device less", "c 1:3 rwm\nc 10:229 rwm",
			withDeny(devs(true, "c 1:3 rw")...), []string{"-c 1:3 m", "-c 10:229 rwm"}},
		{"spec deny rules are emulated", "c 1:3 rwm",
			withDeny(append(devs(true, "c 1:3 rwm", "c 1:5 rwm"), devs(false, "c 1:5 w")...)...), []string{"+c 1:5 rm"}},
		{"from allow-all: rules as they are", "a *:* rwm",
			withDeny(devs(true, "c 1:3 rwm")...), []string{"-a *:* rwm", "+c 1:3 rwm"}},
		{"to allow-all: from the last a rule", "c 1:3 rwm",
			withDeny(allowAll), []string{"+a *:* rwm"}},
		{"no a rule: as they are", "c 1:3 rwm",
			devs(true, "c 1:5 rwm"), []string{"+c 1:5 rwm"}},
		{"wildcards", "c *:* m\nb *:* m",
			withDeny(devs(true, "c *:* m", "c 136:* rwm")...), []string{"+c 136:* rwm", "-b *:* m"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, d := range v1DeviceTransition(tc.current, tc.rules) {
				sign := "-"
				if d.Allow {
					sign = "+"
				}
				got = append(got, sign+ruleString(d))
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("transition = %q, want %q", got, tc.want)
			}
		})
	}
}

// The emulation of the v1 devices controller matches the kernel, and an
// Update through the transition leaves a running cgroup with the same device
// list as a fresh one with those rules, without ever denying /dev/null.
func TestV1DevicesUpdate(t *testing.T) {
	requireV1(t)
	if !slices.Contains(v1Controllers(t), "devices") {
		t.Skip("no v1 devices controller")
	}
	parent := testParent(t)
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	ruleSets := map[string][]specs.LinuxDeviceCgroup{
		"containerd default": {deny},
		"fuse":               append([]specs.LinuxDeviceCgroup{deny}, devs(true, "c 10:229 rwm")...),
		"kmsg read, null narrowed": append(append([]specs.LinuxDeviceCgroup{deny}, devs(true, "c 1:11 r")...),
			devs(false, "c 1:3 m", "b *:* m")...),
		"privileged": {deny, {Allow: true, Access: "rwm"}},
		"privileged minus kmsg": append([]specs.LinuxDeviceCgroup{deny, {Allow: true, Access: "rwm"}},
			devs(false, "c 1:11 rwm")...),
	}
	names := make([]string, 0, len(ruleSets))
	for n := range ruleSets {
		names = append(names, n)
	}
	sort.Strings(names)

	fresh := map[string]string{}
	for _, n := range names {
		p := parent + "/fresh-" + randHex()
		cg, err := New(p, &specs.LinuxResources{Devices: ruleSets[n]})
		if err != nil {
			t.Fatal(err)
		}
		fresh[n] = readTrim(t, v1File("devices", p, "devices.list"))
		// The emulation agrees with the kernel.
		st := newDevState(false)
		for _, d := range withDefaultDevices(&specs.LinuxResources{Devices: ruleSets[n]}).Devices {
			st.apply(d)
		}
		if st.list() != fresh[n] {
			t.Errorf("%s: emulated devices.list\n%s\nkernel\n%s", n, st.list(), fresh[n])
		}
		if err := cg.Delete(); err != nil {
			t.Fatal(err)
		}
	}

	p := parent + "/live"
	cg, err := New(p, &specs.LinuxResources{Devices: ruleSets["containerd default"]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cg.Delete() })
	// A process in the cgroup opens /dev/null in a loop and counts failures.
	cmd := exec.Command("sh", "-c", `read x; n=0; while [ ! -e /tmp/husk-devstop-$$ ]; do (: </dev/null) 2>/dev/null || n=$((n+1)); done; rm -f /tmp/husk-devstop-$$; echo $n`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stop := "/tmp/husk-devstop-" + itoa(int64(cmd.Process.Pid))
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = os.Remove(stop) })
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	update := func(n string) {
		t.Helper()
		if err := cg.Update(&specs.LinuxResources{Devices: ruleSets[n]}); err != nil {
			t.Fatalf("Update(%s): %v", n, err)
		}
		got := readTrim(t, v1File("devices", p, "devices.list"))
		if !reflect.DeepEqual(sortedLines(got), sortedLines(fresh[n])) {
			t.Fatalf("after Update(%s): devices.list\n%s\nwant (fresh cgroup)\n%s", n, got, fresh[n])
		}
	}
	// Between deny-by-default rule sets (what the kubelet sends again with
	// every update), then to allow-all: /dev/null stays usable throughout.
	for i := 0; i < 30; i++ {
		for _, n := range []string{"containerd default", "containerd default", "fuse", "kmsg read, null narrowed", "fuse"} {
			update(n)
		}
	}
	if err := os.WriteFile(stop, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	// Going to allow-all is not counted: the kernel's own "a" handling
	// clears the exceptions before it flips the default, a short deny-all
	// window that no writer can avoid.
	update("privileged")
	update("privileged minus kmsg")
	// From allow-by-default back to deny-by-default goes through "deny all"
	// (the denied exceptions of an allow-all list cannot be read back);
	// the result must still be right.
	for _, n := range names {
		update("privileged minus kmsg")
		update(n)
	}
	if got := strings.TrimSpace(out.String()); got != "0" {
		t.Errorf("/dev/null could not be opened %s times during the updates", got)
	}
}

// An Update of the device rules replaces the eBPF filter: a widened access
// takes effect, and repeated updates (the kubelet sends the device list
// every time) keep one program attached instead of piling them up.
func TestV2DevicesUpdate(t *testing.T) {
	requireRoot(t)
	if _, err := os.Stat("/dev/kmsg"); err != nil {
		t.Skipf("the probe needs /dev/kmsg: %v", err)
	}
	mnt, ok := v2MountOK()
	if !ok {
		t.Skip("no usable cgroup2 mount")
	}
	deny := specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"}
	kmsg := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(11), Access: "r"}
	cgi, err := newV2(mnt, testParent(t)+"/devupd", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cgi.Delete() })
	cg := cgi.(*v2)
	progs := func() int {
		t.Helper()
		ids, err := cg.deviceProgs()
		if err != nil {
			t.Fatal(err)
		}
		return len(ids)
	}
	if n := progs(); n != 1 {
		t.Fatalf("%d device programs after create, want 1", n)
	}
	if got := devicesProbe(t, cg); got != "null-ok\ndone\n" {
		t.Fatalf("before the update the probe printed %q", got)
	}
	for i := 0; i < 70; i++ { // more than the kernel's 64 programs per cgroup
		if err := cg.Update(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny, kmsg}}); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}
	if n := progs(); n != 1 {
		t.Errorf("%d device programs after 70 updates, want 1", n)
	}
	if got := devicesProbe(t, cg); got != "null-ok\nkmsg-ok\ndone\n" {
		t.Errorf("after allowing kmsg the probe printed %q, want kmsg opened", got)
	}
	// A failed update keeps the filter it had.
	err = cg.Update(&specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{deny}, Unified: map[string]string{"cgroup.max.depth": "-5"}})
	if err == nil {
		t.Fatal("Update with cgroup.max.depth=-5 succeeded")
	}
	if n := progs(); n != 1 {
		t.Errorf("%d device programs after a failed update, want 1", n)
	}
	if got := devicesProbe(t, cg); got != "null-ok\nkmsg-ok\ndone\n" {
		t.Errorf("after a failed update the probe printed %q, want the old filter (kmsg allowed)", got)
	}
}

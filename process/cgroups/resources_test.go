package cgroups

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func u16(v uint16) *uint16 { return &v }
func boolp(v bool) *bool   { return &v }
func mib(n int64) *int64   { return i64(n << 20) }

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		r       *specs.LinuxResources
		wantErr string // "" = valid
	}{
		{"nil", nil, ""},
		{"empty", &specs.LinuxResources{}, ""},
		{"unlimited memory", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1), Swap: i64(-1), Reservation: i64(-1)}}, ""},
		{"memory -2", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-2)}}, "memory.limit -2"},
		{"swap -3", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: i64(-3)}}, "memory.swap -3"},
		{"reservation -9", &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: i64(-9)}}, "memory.reservation"},
		{"swap below limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(64), Swap: mib(32)}}, "memory+swap"},
		{"swappiness 101", &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(101)}}, "swappiness"},
		{"pids -1", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-1)}}, ""},
		{"pids -5", &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-5)}}, "pids.limit -5"},
		{"quota -7", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-7)}}, "cpu.quota"},
		{"cpuset ok", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-3,5,7-8", Mems: "0"}}, ""},
		// Syntactically fine: only the kernel knows whether CPUs 99-100 exist.
		{"cpuset absent cpus", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "99-100"}}, ""},
		{"cpuset reversed", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "3-1"}}, "cpu.cpus"},
		{"cpuset garbage", &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0,x"}}, "cpu.cpus"},
		{"mems garbage", &specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "-1"}}, "cpu.mems"},
		{"blkio weight 5", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}, "blockIO.weight"},
		{"blkio weight 500", &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}}, ""},
		{"device type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}}, "invalid type"},
		{"device access", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwx"}}}, "invalid access"},
		{"device ok", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}}, ""},
		{"hugetlb size", &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "../x"}}}, "hugepage"},
		{"unified key", &specs.LinuxResources{Unified: map[string]string{"../memory.max": "1"}}, "unified key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate(tc.r)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestToV2Resources(t *testing.T) {
	weight := func(shares uint64) *uint64 { w := cgroup2.ConvertCPUSharesToCgroupV2Value(shares); return &w }
	for _, tc := range []struct {
		name    string
		in      *specs.LinuxResources
		want    *cgroup2.Resources
		wantErr string
	}{
		{name: "nil", in: nil, want: &cgroup2.Resources{}},
		{name: "shares default", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1024)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Weight: u64(100)}}},
		{name: "shares min/max", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(2)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Weight: u64(1)}}},
		{name: "shares 512 uses library conversion", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(512)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Weight: weight(512)}}},
		{name: "shares 0 unset", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(0)}}, want: &cgroup2.Resources{}},
		{name: "quota+period", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(50000), Period: u64(200000)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Max: "50000 200000"}}},
		{name: "quota only → default period", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(25000)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Max: "25000 100000"}}},
		{name: "quota -1 → max", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(-1), Period: u64(100000)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Max: "max 100000"}}},
		{name: "period only", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(50000)}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Max: "max 50000"}}},
		{name: "cpuset", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-1", Mems: "0"}},
			want: &cgroup2.Resources{CPU: &cgroup2.CPU{Cpus: "0-1", Mems: "0"}}},
		{name: "realtime", in: &specs.LinuxResources{CPU: &specs.LinuxCPU{RealtimeRuntime: i64(1000)}}, wantErr: "realtime"},
		{name: "memory limit+swap", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(64), Swap: mib(96), Reservation: mib(32)}},
			want: &cgroup2.Resources{Memory: &cgroup2.Memory{Max: mib(64), Swap: mib(32), Low: mib(32)}}},
		{name: "memory limit = swap → no swap", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(8), Swap: mib(8)}},
			want: &cgroup2.Resources{Memory: &cgroup2.Memory{Max: mib(8), Swap: i64(0)}}},
		{name: "memory unlimited", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-1)}},
			want: &cgroup2.Resources{Memory: &cgroup2.Memory{Max: i64(math.MaxInt64), Swap: i64(math.MaxInt64)}}},
		{name: "swap unlimited", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(8), Swap: i64(-1)}},
			want: &cgroup2.Resources{Memory: &cgroup2.Memory{Max: mib(8), Swap: i64(math.MaxInt64)}}},
		{name: "reservation -1", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Reservation: i64(-1)}},
			want: &cgroup2.Resources{Memory: &cgroup2.Memory{Low: i64(0)}}},
		{name: "v1-only memory knobs ignored", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(10), KernelTCP: mib(1), DisableOOMKiller: boolp(true)}},
			want: &cgroup2.Resources{}},
		{name: "swap without limit", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Swap: mib(8)}}, wantErr: "needs a memory.limit"},
		{name: "swap below limit", in: &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: mib(8), Swap: mib(4)}}, wantErr: "memory+swap"},
		{name: "pids", in: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(32)}},
			want: &cgroup2.Resources{Pids: &cgroup2.Pids{Max: 32}}},
		{name: "pids -1", in: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-1)}},
			want: &cgroup2.Resources{Pids: &cgroup2.Pids{Max: -1}}},
		{name: "pids 0 → max", in: &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(0)}},
			want: &cgroup2.Resources{Pids: &cgroup2.Pids{Max: -1}}},
		{name: "blkio weight", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(1000)}},
			want: &cgroup2.Resources{IO: &cgroup2.IO{BFQ: cgroup2.BFQ{Weight: 1000}}}},
		{name: "blkio weight min", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(10)}},
			want: &cgroup2.Resources{IO: &cgroup2.IO{BFQ: cgroup2.BFQ{Weight: 10}}}},
		{name: "blkio weight 500", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(500)}},
			want: &cgroup2.Resources{IO: &cgroup2.IO{BFQ: cgroup2.BFQ{Weight: 500}}}},
		{name: "blkio weight 0 unset", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(0)}}, want: &cgroup2.Resources{}},
		{name: "blkio throttle", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{
			ThrottleReadBpsDevice:   []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 1 << 20}},
			ThrottleWriteIOPSDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: 8, Minor: 0}, Rate: 100}},
		}}, want: &cgroup2.Resources{IO: &cgroup2.IO{Max: []cgroup2.Entry{
			{Type: cgroup2.ReadBPS, Major: 8, Minor: 0, Rate: 1 << 20},
			{Type: cgroup2.WriteIOPS, Major: 8, Minor: 0, Rate: 100},
		}}}},
		{name: "blkio leaf weight", in: &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{LeafWeight: u16(100)}}, wantErr: "leafWeight"},
		{name: "hugetlb", in: &specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "2MB", Limit: 4 << 20}}},
			want: &cgroup2.Resources{HugeTlb: &cgroup2.HugeTlb{{HugePageSize: "2MB", Limit: 4 << 20}}}},
		{name: "devices passed to the eBPF filter", in: &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
			{Allow: false, Access: "rwm"}, {Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}},
			want: &cgroup2.Resources{Devices: []specs.LinuxDeviceCgroup{
				{Allow: false, Type: "a", Major: i64(-1), Minor: i64(-1), Access: "rwm"},
				{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := toV2Resources(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("toV2Resources:\n got  %s\n want %s", dump(got), dump(tc.want))
			}
		})
	}
}

func TestV2ControllersAndRequested(t *testing.T) {
	res, err := toV2Resources(&specs.LinuxResources{
		CPU:    &specs.LinuxCPU{Shares: u64(1024), Cpus: "0"},
		Memory: &specs.LinuxMemory{Limit: mib(8)},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := v2Controllers(res, map[string]string{"io.weight": "50", "cgroup.max.depth": "3"})
	want := []string{"cpu", "cpuset", "io", "memory"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("controllers = %v, want %v", got, want)
	}
	req := v2Requested(res, nil)
	if req["cpu.weight"] != "100" || req["memory.max"] != "8388608" || req["cpuset.cpus"] != "0" {
		t.Fatalf("requested = %v", req)
	}
}

func dump(r *cgroup2.Resources) string {
	var b strings.Builder
	if r == nil {
		return "<nil>"
	}
	if c := r.CPU; c != nil {
		b.WriteString("CPU{")
		if c.Weight != nil {
			b.WriteString("Weight:" + itoa(int64(*c.Weight)) + " ")
		}
		b.WriteString("Max:" + string(c.Max) + " Cpus:" + c.Cpus + " Mems:" + c.Mems + "} ")
	}
	if m := r.Memory; m != nil {
		b.WriteString("Memory{")
		for n, v := range map[string]*int64{"Max": m.Max, "Low": m.Low, "Swap": m.Swap, "High": m.High, "Min": m.Min} {
			if v != nil {
				b.WriteString(n + ":" + itoa(*v) + " ")
			}
		}
		b.WriteString("} ")
	}
	if r.Pids != nil {
		b.WriteString("Pids{" + itoa(r.Pids.Max) + "} ")
	}
	if r.IO != nil {
		b.WriteString("IO{bfq:" + itoa(int64(r.IO.BFQ.Weight)))
		for _, e := range r.IO.Max {
			b.WriteString(" " + e.String())
		}
		b.WriteString("} ")
	}
	if r.HugeTlb != nil {
		b.WriteString("HugeTlb ")
	}
	if r.Devices != nil {
		b.WriteString("Devices ")
	}
	return b.String()
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

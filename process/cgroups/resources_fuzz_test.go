package cgroups

import (
	"encoding/json"
	"math"
	"path"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzResources feeds JSON linux.resources objects to the translation of
// resources: validate, the v1 hand-off (v1Resources, v1Requested) and the v2
// translation (toV2Resources). None may panic or change its input; what
// validate accepts must translate to values the kernel files can take.
// Seeds: testdata/fuzz/FuzzResources plus the ones added here.
func FuzzResources(f *testing.F) {
	for _, s := range []string{
		`{}`,
		`{"memory":{"limit":104857600,"reservation":1048576,"swap":209715200,"swappiness":60}}`,
		`{"memory":{"limit":-1,"swap":-1},"pids":{"limit":0},"cpu":{"shares":1024,"quota":-1,"period":100000}}`,
		`{"cpu":{"cpus":"0-1,3","mems":"0","quota":50000,"period":100000}}`,
		`{"blockIO":{"weight":500,"throttleReadBpsDevice":[{"major":8,"minor":0,"rate":1048576}]}}`,
		`{"devices":[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]}`,
		`{"hugepageLimits":[{"pageSize":"2MB","limit":0}],"unified":{"memory.high":"max"}}`,
		`{"memory":{"limit":-2}}`,
		`{"cpu":{"cpus":"99-100"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r specs.LinuxResources
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		before, _ := json.Marshal(&r)
		unchanged := func(what string) {
			if after, _ := json.Marshal(&r); string(after) != string(before) {
				t.Fatalf("%s changed its input:\n%s\n%s", what, before, after)
			}
		}
		err := validate(&r)
		unchanged("validate")
		if err2 := validate(&r); (err == nil) != (err2 == nil) {
			t.Fatalf("validate is not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cgroups: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}

		v1 := v1Resources(&r)
		unchanged("v1Resources")
		if v1.BlockIO != nil && (v1.BlockIO.Weight != nil || v1.BlockIO.LeafWeight != nil || len(v1.BlockIO.WeightDevice) > 0) {
			t.Fatalf("v1Resources kept blkio weights: %+v", v1.BlockIO)
		}
		v1Requested(&r)
		unchanged("v1Requested")

		res, err := toV2Resources(&r)
		unchanged("toV2Resources")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "cgroups: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if m := res.Memory; m != nil {
			if m.Max != nil && *m.Max < 0 {
				t.Fatalf("memory.max %d", *m.Max)
			}
			if m.Swap != nil && *m.Swap < 0 {
				t.Fatalf("memory.swap.max %d", *m.Swap)
			}
			if m.Low != nil && *m.Low < 0 {
				t.Fatalf("memory.low %d", *m.Low)
			}
			if m.Max != nil && *m.Max == math.MaxInt64 && (r.Memory.Limit == nil || *r.Memory.Limit != -1) {
				t.Fatalf("memory.max unlimited for limit %v", r.Memory.Limit)
			}
		}
		if res.Pids != nil && res.Pids.Max == 0 {
			t.Fatalf("pids.max 0 (the kernel would allow no process)")
		}
		if res.IO != nil && res.IO.BFQ.Weight > 10000 {
			t.Fatalf("io.bfq.weight %d", res.IO.BFQ.Weight)
		}
		for _, d := range res.Devices {
			if d.Type == "" || d.Major == nil || d.Minor == nil {
				t.Fatalf("device rule not normalized: %+v", d)
			}
		}
		again, _ := toV2Resources(&r)
		if !reflect.DeepEqual(res, again) {
			t.Fatalf("toV2Resources is not deterministic")
		}
	})
}

// FuzzCgroupfsPath checks the translation of linux.cgroupsPath (cgroupfs
// and systemd "slice:prefix:name" forms) to a path below the hierarchy
// roots: never the root, never above it, always clean and absolute.
func FuzzCgroupfsPath(f *testing.F) {
	for _, s := range []string{"", "/default/c1", "default/c1", "/", "/..", "../../etc",
		"system.slice:docker:abc", "a-b-c.slice:cri:id", ":prefix:name", "-.slice:p:n", "/a/./b//c/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		p, err := CgroupfsPath(in)
		if err != nil {
			return
		}
		if p == "" {
			if in != "" {
				t.Fatalf("%q: empty path", in)
			}
			return
		}
		if !path.IsAbs(p) || path.Clean(p) != p || p == "/" || strings.Contains(p, "\x00") {
			t.Fatalf("%q -> %q: not a clean path below the root", in, p)
		}
		for _, part := range strings.Split(p[1:], "/") {
			if part == ".." || part == "." || part == "" {
				t.Fatalf("%q -> %q: bad component %q", in, p, part)
			}
		}
		if p2, _ := CgroupfsPath(in); p2 != p {
			t.Fatalf("%q: not deterministic", in)
		}
	})
}

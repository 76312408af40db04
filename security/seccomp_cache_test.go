//go:build linux && amd64

package security

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestCompileSeccompCached(t *testing.T) {
	prof := defaultProfile(defaultCaps)
	f1, _, err := CompileSeccompCached(prof)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := CompileSeccomp(prof)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f1, want) {
		t.Fatal("cached compile differs from CompileSeccomp")
	}

	// An equal profile (a different object) is a hit: the same Filter.
	again := defaultProfile(defaultCaps)
	f2, _, err := CompileSeccompCached(again)
	if err != nil {
		t.Fatal(err)
	}
	if f2 != f1 {
		t.Error("an equal profile was compiled again instead of coming from the cache")
	}

	// A profile differing in one field is not.
	other := defaultProfile(defaultCaps)
	other.DefaultAction = specs.ActKillProcess
	f3, _, err := CompileSeccompCached(other)
	if err != nil {
		t.Fatal(err)
	}
	if f3 == f1 || reflect.DeepEqual(f3.insns, f1.insns) {
		t.Error("a different profile got the cached program of another")
	}

	// Warnings come back on every call, as copies.
	warn := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"no_such_syscall_husk"}, Action: specs.ActErrno},
	}}
	for i := range 2 {
		_, ws, err := CompileSeccompCached(warn)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || !strings.Contains(ws[0], "no_such_syscall_husk") {
			t.Fatalf("call %d: warnings %q, want one about no_such_syscall_husk", i, ws)
		}
		ws[0] = "scribbled"
	}

	// Errors are returned, not cached.
	bad := &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NO_SUCH_ACTION"}
	for i := range 2 {
		if f, _, err := CompileSeccompCached(bad); err == nil || f != nil {
			t.Fatalf("call %d: bad profile: filter %v, error %v; want an error", i, f, err)
		}
	}

	if f, ws, err := CompileSeccompCached(nil); f != nil || ws != nil || err != nil {
		t.Errorf("nil profile: %v %v %v, want nothing", f, ws, err)
	}
}

func TestCompileSeccompCachedBounded(t *testing.T) {
	for i := range compileCacheSize * 3 {
		p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(i + 1))},
		}}
		if _, _, err := CompileSeccompCached(p); err != nil {
			t.Fatal(err)
		}
	}
	compileCache.mu.Lock()
	n := len(compileCache.entries)
	compileCache.mu.Unlock()
	if n > compileCacheSize {
		t.Errorf("cache holds %d profiles, more than %d", n, compileCacheSize)
	}
}

func TestFilterJSONRoundTrip(t *testing.T) {
	f, _, err := CompileSeccomp(defaultProfile(defaultCaps))
	if err != nil {
		t.Fatal(err)
	}
	f.flags = 1 // SECCOMP_FILTER_FLAG_TSYNC: make sure flags travel
	data, err := json.Marshal(struct {
		F *Filter `json:"f"`
	}{f})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		F *Filter `json:"f"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.F, f) {
		t.Fatalf("round trip changed the filter:\n got %+v\nwant %+v", got.F, f)
	}

	for _, tc := range []struct{ name, in string }{
		{"empty program", `{"insns":""}`},
		{"partial instruction", `{"insns":"AAAAAAAAAAAA"}`}, // 9 bytes
		{"not an object", `[1,2]`},
		{"bad base64", `{"insns":"%%%"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Filter
			if err := json.Unmarshal([]byte(tc.in), &f); err == nil {
				t.Errorf("decoded %s without an error: %+v", tc.in, f)
			}
		})
	}
	// Longer than the kernel's limit.
	big, _ := json.Marshal(filterWire{Insns: make([]byte, sockFilterSize*(MaxInstructions+1))})
	var f2 Filter
	if err := json.Unmarshal(big, &f2); err == nil {
		t.Error("decoded a program longer than MaxInstructions")
	}
}

// BenchmarkCompileSeccompCached is the cost of a profile the shim has seen
// (its key is the profile's JSON encoding); compare with
// BenchmarkCompileDefaultProfile.
func BenchmarkCompileSeccompCached(b *testing.B) {
	prof := defaultProfile(defaultCaps)
	if _, _, err := CompileSeccompCached(prof); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := CompileSeccompCached(prof); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterUnmarshal is what the container init pays to receive the
// compiled default profile instead of compiling it.
func BenchmarkFilterUnmarshal(b *testing.B) {
	f, _, err := CompileSeccomp(defaultProfile(defaultCaps))
	if err != nil {
		b.Fatal(err)
	}
	data, err := json.Marshal(f)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var g Filter
		if err := json.Unmarshal(data, &g); err != nil {
			b.Fatal(err)
		}
	}
}

//go:build linux

package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/husk-runtime/husk/process"
	"github.com/husk-runtime/husk/security"
)

// Unit tests of the report's arithmetic and parsing (no timing is asserted
// anywhere: the figures are measurements, not pass/fail criteria).

func TestPercentile(t *testing.T) {
	ms := func(vs ...float64) []time.Duration {
		var out []time.Duration
		for _, v := range vs {
			out = append(out, time.Duration(v*float64(time.Millisecond)))
		}
		return out
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want float64
	}{
		{"single", ms(7), 50, 7},
		{"odd median", ms(3, 1, 2), 50, 2},
		{"even median interpolates", ms(4, 1, 3, 2), 50, 2.5},
		{"p90 of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9.1},
		{"p0 is the minimum", ms(5, 9, 1), 0, 1},
		{"p100 is the maximum", ms(5, 9, 1), 100, 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.in, tc.p); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.in, tc.p, got, tc.want)
			}
		})
	}
	if !math.IsNaN(percentile(nil, 50)) {
		t.Error("percentile of no samples is not NaN")
	}
}

func TestParsePhases(t *testing.T) {
	log := strings.Join([]string{
		`time="2026-11-28T12:57:36.49Z" level=debug msg="container created" cgroup=1.908025ms id=start-husk-3 init=2241 mount=1.5ms phase=create runtime=husk spawn=17.96608ms spec="861.476µs" total=22.5ms`,
		`time="2026-11-28T12:57:36.50Z" level=debug msg="container started" id=start-husk-3 phase=start runtime=io.containerd.husk.v2 total=2.5ms`,
		`time="2026-11-28T12:57:36.51Z" level=debug msg="container created" cgroup=9ms id=start-husk-base-3 init=2242 mount=9ms phase=create runtime=husk spawn=9ms spec=9ms total=9ms`,
		`time="2026-11-28T12:57:36.52Z" level=info msg="something else" id=start-husk-4 total=1s`,
		`garbage line without fields`,
	}, "\n")
	got := parsePhases(strings.NewReader(log), regexp.MustCompile(`^start-husk-[0-9]+$`))
	want := map[string]time.Duration{
		"create.cgroup": 1908025 * time.Nanosecond,
		"create.mount":  1500 * time.Microsecond,
		"create.spawn":  17966080 * time.Nanosecond,
		"create.spec":   861476 * time.Nanosecond,
		"create.total":  22500 * time.Microsecond,
		"start.total":   2500 * time.Microsecond,
	}
	if len(got) != len(want) {
		t.Fatalf("phases %v, want exactly %v", got, want)
	}
	for k, v := range want {
		if len(got[k]) != 1 || got[k][0] != v {
			t.Errorf("%s = %v, want [%v]", k, got[k], v)
		}
	}
}

func TestSpliceGenerated(t *testing.T) {
	gen := "new table\n"
	tests := []struct {
		name, doc, want string
	}{
		{"empty doc", "", "\n" + beginMarker + "\nnew table\n" + endMarker + "\n"},
		{"no markers: appended", "# Title\nnotes", "# Title\nnotes\n\n" + beginMarker + "\nnew table\n" + endMarker + "\n"},
		{"replaced between markers, the rest kept",
			"# Title\n" + beginMarker + "\nold\n" + endMarker + "\n## Optimizations\nkept\n",
			"# Title\n" + beginMarker + "\nnew table\n" + endMarker + "\n## Optimizations\nkept\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := spliceGenerated(tc.doc, gen); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestTableRatios(t *testing.T) {
	r := newResults()
	r.Runtimes = []string{"husk", "runc"}
	for _, d := range []time.Duration{100, 110, 120} {
		r.add("start", "husk", d*time.Millisecond)
		r.add("start", "runc", 2*d*time.Millisecond)
	}
	r.setValue("mem1.rss", "husk", 9)
	r.setValue("mem1.rss", "runc", 18)
	r.add("pipe.exit", "husk", 2*time.Millisecond)
	r.add("pipe.exit", "runc", 0) // below the resolution: no ratio
	tab := r.table()
	for _, want := range []string{
		"| start: ctr run --rm /bin/true p50 (n=3) | ms | 110 | 220 | - | 0.50 | - |",
		"| memory, 1 container: shim RSS | MiB | 9.00 | 18.0 | - | 0.50 | - |",
		"| client: start -> exit of /bin/true p50 (n=1) | ms | 2.00 | 0.00 | - | - | - |",
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

// Micro-benchmarks of husk's hot paths. The seccomp compiler has its own in
// package security (BenchmarkCompileDefaultProfile, and the per-profile
// cache's BenchmarkCompileSeccompCached / BenchmarkFilterUnmarshal); these
// cover the spec as a container init receives it.

// defaultSpec is containerd's default spec for a container (what ctr run
// writes to config.json), optionally with its default seccomp profile (what
// docker, nerdctl and CRI add).
func defaultSpec(tb testing.TB, seccomp bool) *specs.Spec {
	tb.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "bench")
	var opts []oci.SpecOpts
	if seccomp {
		opts = append(opts, cseccomp.WithDefaultProfile())
	}
	s, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: "bench"}, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	s.Root.Path = "rootfs"
	s.Process.Args = []string{"/bin/true"}
	return s
}

// BenchmarkLoadSpec is process.LoadSpec: read, decode and validate
// config.json (validation compiles a seccomp profile once per profile).
func BenchmarkLoadSpec(b *testing.B) {
	for _, sc := range []bool{false, true} {
		name := "default"
		if sc {
			name = "default+seccomp"
		}
		b.Run(name, func(b *testing.B) {
			dir := b.TempDir()
			data, err := json.Marshal(defaultSpec(b, sc))
			if err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := process.LoadSpec(dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkInitReceivesSpec is what a container init spends on its spec and
// seccomp program: before, it decoded the whole spec, profile included, and
// compiled the profile; now the shim sends the compiled program and a spec
// without the profile.
func BenchmarkInitReceivesSpec(b *testing.B) {
	full := defaultSpec(b, true)
	withProfile, err := json.Marshal(full)
	if err != nil {
		b.Fatal(err)
	}
	filter, _, err := security.CompileSeccomp(full.Linux.Seccomp)
	if err != nil {
		b.Fatal(err)
	}
	stripped := *full
	linux := *full.Linux
	linux.Seccomp = nil
	stripped.Linux = &linux
	type msg struct {
		Spec    *specs.Spec      `json:"spec"`
		Seccomp *security.Filter `json:"seccomp,omitempty"`
	}
	precompiled, err := json.Marshal(msg{Spec: &stripped, Seccomp: filter})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode+compile", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s specs.Spec
			if err := json.Unmarshal(withProfile, &s); err != nil {
				b.Fatal(err)
			}
			if _, _, err := security.CompileSeccomp(s.Linux.Seccomp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("precompiled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var m msg
			if err := json.Unmarshal(precompiled, &m); err != nil {
				b.Fatal(err)
			}
			if m.Seccomp == nil {
				b.Fatal("no filter decoded")
			}
		}
	})
}

package shim

import (
	"context"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/containerd/ttrpc"
)

const smapsSample = `00400000-00402000 r--p 00000000 fd:01 123 /usr/bin/containerd-shim-husk-v2
Size:                  8 kB
Rss:                   8 kB
Anonymous:             0 kB
Swap:                  0 kB
00402000-00a60000 r-xp 00002000 fd:01 123 /usr/bin/containerd-shim-husk-v2
Size:               6520 kB
Rss:                6072 kB
Anonymous:             0 kB
Swap:                  0 kB
00a60000-011fc000 r--p 00660000 fd:01 123 /usr/bin/containerd-shim-husk-v2
Size:               7792 kB
Anonymous:             0 kB
011fc000-011fd000 r--p 00dfc000 fd:01 123 /usr/bin/containerd-shim-husk-v2
Size:                  4 kB
Anonymous:             4 kB
Swap:                  0 kB
011fd000-01279000 rw-p 00dfd000 fd:01 123 /usr/bin/containerd-shim-husk-v2
Size:                496 kB
Anonymous:           112 kB
01279000-032be000 rw-p 00000000 00:00 0
Anonymous:           112 kB
7f8207fa3000-7f82080f9000 r-xp 00026000 fd:01 456 /usr/lib/x86_64-linux-gnu/libc.so.6
Anonymous:             0 kB
7f8300000000-7f8300001000 r-xp 00000000 fd:01 789 /opt/my shim (deleted)
Anonymous:             0 kB
7f8300001000-7f8300002000 r-xp 00001000 fd:01 789 /opt/my shim (deleted)
Anonymous:             0 kB
Swap:                  4 kB
7ffd29e7d000-7ffd29e9e000 rw-p 00000000 00:00 0                          [stack]
Anonymous:            16 kB
`

func TestTrimmableRanges(t *testing.T) {
	for _, tc := range []struct {
		exe  string
		want []addrRange
	}{
		// text and rodata; not the relro page (a private copy), the data
		// segment (writable) nor another file's mappings.
		{"/usr/bin/containerd-shim-husk-v2", []addrRange{{0x400000, 0x402000}, {0x402000, 0xa60000}, {0xa60000, 0x11fc000}}},
		// a path with a space, replaced on disk; not the swapped mapping.
		{"/opt/my shim (deleted)", []addrRange{{0x7f8300000000, 0x7f8300001000}}},
		{"/usr/bin/other", nil},
	} {
		got, err := trimmableRanges(strings.NewReader(smapsSample), tc.exe)
		if err != nil {
			t.Fatalf("%s: %v", tc.exe, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %x, want %x", tc.exe, got, tc.want)
		}
	}
}

// TestTrimBinary trims the test binary itself: it must keep running on
// pages it maps again.
func TestTrimBinary(t *testing.T) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Skip(err)
	}
	before, err := residentFile()
	if err != nil {
		t.Fatal(err)
	}
	n, err := trimBinary(exe)
	if err != nil {
		t.Fatal(err)
	}
	after, err := residentFile()
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no mapping of %s trimmed", exe)
	}
	t.Logf("trimmed %d KiB of mappings; resident file-backed %d -> %d KiB", n>>10, before>>10, after>>10)
	// Code, rodata and pclntab are all still there.
	runtime.GC()
	var pcs [8]uintptr
	if runtime.Callers(0, pcs[:]) == 0 {
		t.Fatal("no stack after the trim")
	}
	if f := runtime.FuncForPC(pcs[0]); f == nil || f.Name() == "" {
		t.Fatal("no function name after the trim")
	}
}

func (m *memoryTuner) trimRuns() int {
	m.trimMu.Lock()
	defer m.trimMu.Unlock()
	return m.runs
}

// waitRuns waits until the tuner has trimmed more than n times.
func waitRuns(t *testing.T, m *memoryTuner, n int, why string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for m.trimRuns() <= n {
		if time.Now().After(deadline) {
			t.Fatalf("no trim %s", why)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMemoryTunerIdle(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const idle = 20 * time.Millisecond
	m := newMemoryTuner(ctx, idle)
	intercept := m.UnaryServerInterceptor()

	call := func(method string, release <-chan struct{}) <-chan struct{} {
		started, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			_, _ = intercept(ctx, func(any) error { return nil }, &ttrpc.UnaryServerInfo{FullMethod: method},
				func(context.Context, func(any) error) (any, error) {
					close(started)
					<-release
					return nil, nil
				})
		}()
		<-started
		return done
	}

	// No trim while a request runs, one after it.
	release := make(chan struct{})
	done := call("/containerd.task.v3.Task/Create", release)
	runs := m.trimRuns()
	time.Sleep(10 * idle)
	if got := m.trimRuns(); got != runs {
		t.Fatalf("%d trims while a request was in flight", got-runs)
	}
	close(release)
	<-done
	waitRuns(t, m, runs, "after the request ended")

	// A Wait in flight does not keep the daemon from trimming.
	release = make(chan struct{})
	done = call(waitMethod, release)
	defer func() { close(release); <-done }()
	runs = m.trimRuns()
	runtime.GC() // a GC cycle schedules a trim
	waitRuns(t, m, runs, "after a GC cycle while Wait was in flight")
}

// BenchmarkTrimBinary is the cost of one trim (smaps read, madvise) plus
// mapping back what the loop touches.
func BenchmarkTrimBinary(b *testing.B) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := trimBinary(exe); err != nil {
			b.Fatal(err)
		}
	}
}

package shim

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"golang.org/x/sys/unix"
)

// The shim daemon lives as long as its containers and idles in between, so
// what it keeps resident is what it costs. An idle daemon with one
// container held ~18 MiB RSS: ~14 MiB were pages of the binary, ~4 MiB
// anonymous memory (Go heap and runtime metadata, about what the runc shim
// has). Most of those pages of the binary were mapped once and not used
// again: by package init, by Create, and by every GC cycle (the GC reads
// the pclntab and type data of what is on the stacks and in the heap), and
// the kernel maps up to 64 KiB of page cache around every page fault.
//
// memoryTuner unmaps them once the daemon is idle, after the last ttrpc
// request and after every GC cycle (pkg/shim forces one every 30s): it
// drops the page-table entries of the binary's read-only mappings. The
// pages stay in the page cache, shared with every other process of the
// binary, and a later access maps them again with a minor fault. (Returning
// the heap to the OS as well, debug.FreeOSMemory, saved under 0.2 MiB and
// made a burst of 50 container starts 3-7% slower: pkg/shim does it every
// 30s anyway.)
type memoryTuner struct {
	idle time.Duration

	mu       sync.Mutex
	timer    *time.Timer
	inflight int // requests running, except Wait (it lasts as long as its process)

	trimMu sync.Mutex // one trim at a time; guards the fields below
	exe    string     // the binary's path as /proc/self/maps shows it; "" disables the trim
	mapped int64      // resident file-backed bytes right after the last trim
	runs   int        // trims run (after idle periods)
}

const (
	// trimIdle is how long the daemon must have been idle (no request, no
	// GC cycle) before it trims: a burst of calls (Create, Start, State,
	// Exec, ...) runs on mapped pages.
	trimIdle = 500 * time.Millisecond
	// mapSlack: the binary's pages are trimmed only if this much was mapped
	// again since the last trim (two of the kernel's fault-around blocks).
	mapSlack = 128 << 10

	// waitMethod is the task API's Wait, in flight as long as the process it
	// waits for runs: it must not keep the daemon from trimming.
	waitMethod = "/containerd.task.v3.Task/Wait"
)

// newMemoryTuner starts trimming the daemon's memory whenever it goes idle.
func newMemoryTuner(ctx context.Context, idle time.Duration) *memoryTuner {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		log.G(ctx).WithError(err).Warn("memory: no path of the shim binary: its pages are not trimmed")
		exe = ""
	}
	m := &memoryTuner{idle: idle, exe: exe}
	m.mu.Lock()
	m.timer = time.AfterFunc(idle, func() { m.trim(ctx) })
	m.mu.Unlock()
	m.watchGC(ctx)
	return m
}

// UnaryServerInterceptor postpones the trim while requests run and until
// the daemon has been idle for m.idle after the last one (pkg/shim installs
// it: shim.TTRPCServerUnaryOptioner).
func (m *memoryTuner) UnaryServerInterceptor() ttrpc.UnaryServerInterceptor {
	return func(ctx context.Context, unmarshal ttrpc.Unmarshaler, info *ttrpc.UnaryServerInfo, method ttrpc.Method) (any, error) {
		if info.FullMethod == waitMethod {
			return method(ctx, unmarshal)
		}
		m.mu.Lock()
		m.inflight++
		m.timer.Stop()
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			m.inflight--
			if m.inflight == 0 {
				m.timer.Reset(m.idle)
			}
			m.mu.Unlock()
		}()
		return method(ctx, unmarshal)
	}
}

// watchGC schedules a trim after every GC cycle: a sentinel object dies in
// each cycle, and its cleanup arms the next one.
func (m *memoryTuner) watchGC(ctx context.Context) {
	// An allocation of its own (pointers keep it out of the tiny allocator,
	// whose blocks are shared with objects that may live on).
	type sentinel struct{ _ [2]*byte }
	runtime.AddCleanup(&sentinel{}, func(m *memoryTuner) {
		if ctx.Err() != nil {
			return
		}
		m.mu.Lock()
		if m.inflight == 0 {
			m.timer.Reset(m.idle)
		}
		m.mu.Unlock()
		m.watchGC(ctx)
	}, m)
}

// trim runs when the daemon has been idle for m.idle.
func (m *memoryTuner) trim(ctx context.Context) {
	m.mu.Lock()
	busy := m.inflight > 0
	m.mu.Unlock()
	if busy || ctx.Err() != nil {
		return
	}
	// Requests that start meanwhile are not held up: they run on whatever
	// is mapped, and reset the timer when they end.
	m.trimMu.Lock()
	defer m.trimMu.Unlock()
	m.runs++
	if m.exe == "" {
		return
	}
	before, err := residentFile()
	if err != nil || before-m.mapped <= mapSlack {
		return
	}
	start := time.Now()
	trimmed, err := trimBinary(m.exe)
	if err != nil {
		log.G(ctx).WithError(err).Warn("memory: trim the shim binary's pages; not trying again")
		m.exe = ""
	}
	m.mapped, _ = residentFile()
	if log.GetLevel() >= log.TraceLevel {
		log.G(ctx).WithFields(log.Fields{
			"resident_kib": before >> 10, "after_kib": m.mapped >> 10,
			"unmapped_kib": trimmed >> 10, "took": time.Since(start),
		}).Trace("memory: trimmed")
	}
}

// residentFile is the process's resident file-backed memory in bytes: the
// third field of /proc/self/statm, in pages.
func residentFile() (int64, error) {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0, err
	}
	f := bytes.Fields(data)
	if len(f) < 3 {
		return 0, fmt.Errorf("statm: %q", data)
	}
	pages, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("statm: %w", err)
	}
	return pages * int64(os.Getpagesize()), nil
}

// trimBinary drops the page-table entries of the read-only private
// mappings of the binary at path exe (text, rodata, pclntab) and returns how
// many bytes they span. A mapping that holds anonymous pages is left alone:
// a private copy of a read-only page is a breakpoint or uprobe, which
// MADV_DONTNEED would discard. Writable mappings (data, bss) are never
// touched.
func trimBinary(exe string) (int, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	ranges, err := trimmableRanges(f, exe)
	if err != nil {
		return 0, fmt.Errorf("read smaps: %w", err)
	}
	total := 0
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.lo, r.hi-r.lo, unix.MADV_DONTNEED); errno != 0 {
			return total, fmt.Errorf("madvise %#x-%#x: %w", r.lo, r.hi, errno)
		}
		total += int(r.hi - r.lo)
	}
	return total, nil
}

type addrRange struct{ lo, hi uintptr }

// trimmableRanges reads smaps for the read-only private mappings of exe
// that hold neither anonymous nor swapped pages.
func trimmableRanges(r io.Reader, exe string) ([]addrRange, error) {
	var (
		out []addrRange
		cur *addrRange // the mapping being read, nil if it is no candidate
	)
	flush := func() {
		if cur != nil {
			out = append(out, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") {
			// A mapping's header: "lo-hi perms offset dev inode [path]".
			flush()
			if len(fields) < 6 || strings.Join(fields[5:], " ") != exe {
				continue
			}
			if perms := fields[1]; len(perms) != 4 || perms[0] != 'r' || perms[1] != '-' || perms[3] != 'p' {
				continue
			}
			lo, hi, ok := strings.Cut(fields[0], "-")
			if !ok {
				continue
			}
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || h <= l {
				continue
			}
			cur = &addrRange{uintptr(l), uintptr(h)}
			continue
		}
		if cur != nil && (fields[0] == "Anonymous:" || fields[0] == "Swap:") && len(fields) > 1 && fields[1] != "0" {
			cur = nil
		}
	}
	flush()
	return out, sc.Err()
}

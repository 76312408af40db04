//go:build linux

// Command bench measures husk side by side with containerd's runc shim
// (containerd-shim-runc-v2) driving runc, and the same shim driving crun,
// against one private containerd, and writes the results to
// bench/results.md. `make bench` (scripts/bench.sh) builds everything it
// needs and runs it; run it directly only as root, from the repo root, with
// bin/containerd-shim-husk-v2, .cache/bin/{containerd,ctr,
// containerd-shim-runc-v2,runc} and .cache/busybox.tar built:
//
//	go run ./bench -runc .cache/bin/runc -crun bench/crun-wrapper
//
// It lives in the main module (package main under bench/), so it uses the
// containerd Go client at the version husk pins, with no extra module.
//
// What it measures, in one run (all three runtimes interleaved A B C A B C
// where a figure is repeated):
//
//   - start: wall time of `ctr run --rm IMAGE id /bin/true`
//   - start in a running pod: the same with io.kubernetes.cri.sandbox-id
//     naming a pod whose shim an idle container keeps up
//   - exec: wall time of `ctr task exec` of /bin/true into a running container
//   - start and exec with containerd's default seccomp profile (ctr --seccomp)
//   - stop: `ctr task kill` (SIGTERM) of a PID 1 that exits on SIGTERM, from
//     before ctr starts to the TaskExit event on the Go client's stream
//   - memory: PSS and RSS (smaps_rollup) of the shim processes with 1 and
//     with 10 idle containers, one shim each and grouped into one shim by
//     the io.kubernetes.cri.sandbox-id annotation, per container
//   - burst: 50 containers started in parallel (Go client), time until all
//     run, then until all are deleted
//   - client: the Go client's calls of a container's life, timed one by one
//   - husk's own per-phase timings ("container created"/"container started"
//     debug lines) from containerd's log
//
// runc and crun are selected with the runc shim's BinaryName option (ctr
// --runc-binary; the Go client's runc options.Options). containerd's
// per-runtime config entries belong to the CRI plugin, which this private
// containerd does not load.
//
// The shim binaries are copied into the run's temp dir, so that the PSS of
// the measured shims is not shared with shims others run from the same files.
// Nothing asserts timings: this is a measurement, not a test.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		repo       = flag.String("repo", "", "repo root (default: found from the working directory)")
		huskBin    = flag.String("husk", "bin/containerd-shim-husk-v2", "husk shim binary")
		huskBase   = flag.String("husk-base", "", "a second husk shim build, measured as husk-base next to husk (A/B of an optimization)")
		runcBin    = flag.String("runc", ".cache/bin/runc", "runc binary for the runc runtime (BinaryName); make runc builds it with seccomp")
		crunBin    = flag.String("crun", "bench/crun-wrapper", "crun (wrapper) for the crun runtime; empty leaves crun out")
		crunSkip   = flag.String("crun-skip", "", "reason crun is left out (printed and written to the results)")
		runtimesF  = flag.String("runtimes", "husk,husk-base,runc,crun", "runtimes to measure (husk-base only with -husk-base)")
		only       = flag.String("only", "start,pod,seccomp,exec,stop,memory,burst,client", "measurements to run")
		startRuns  = flag.Int("start-runs", 50, "start latency runs per runtime")
		podRuns    = flag.Int("pod-runs", 30, "start latency runs per runtime into a running pod (shim already up)")
		scRuns     = flag.Int("seccomp-runs", 30, "start and exec latency runs per runtime with the default seccomp profile")
		execRuns   = flag.Int("exec-runs", 30, "exec latency runs per runtime")
		stopRuns   = flag.Int("stop-runs", 20, "stop latency runs per runtime")
		clientRuns = flag.Int("client-runs", 20, "client pipeline runs per runtime")
		burstN     = flag.Int("burst", 50, "containers per burst")
		memN       = flag.Int("mem", 10, "idle containers for the memory figures")
		warmup     = flag.Int("warmup", 3, "unrecorded warm-up runs before each latency figure")
		resultsMD  = flag.String("results", "bench/results.md", "results file whose generated section is rewritten (empty: none)")
		outDir     = flag.String("out", "bench/out", "directory for this run's full report (empty: none)")
		keep       = flag.Bool("keep", false, "keep the temp dir (containerd log) after the run")
	)
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: must run as root (it starts containerd and containers)")
		return 2
	}
	root := *repo
	if root == "" {
		var err error
		if root, err = findRepoRoot(); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(root, p)
	}
	huskShim := abs(*huskBin)
	runcShim := abs(".cache/bin/containerd-shim-runc-v2")
	for _, p := range []string{huskShim, runcShim, abs(".cache/bin/containerd"), abs(".cache/bin/ctr"), abs(".cache/busybox.tar")} {
		if _, err := os.Stat(p); err != nil {
			fmt.Fprintf(os.Stderr, "bench: missing %s: run `make bench` (scripts/bench.sh) to build everything\n", p)
			return 2
		}
	}

	res := newResults()
	rts := []runtimeDef{{Name: "husk", Type: huskType, Shim: "containerd-shim-husk-v2"}}
	shims := map[string]string{
		"containerd-shim-husk-v2": huskShim,
		"containerd-shim-runc-v2": runcShim,
	}
	if *huskBase != "" {
		if _, err := os.Stat(abs(*huskBase)); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -husk-base: %v\n", err)
			return 2
		}
		// Its own runtime name, so that containerd runs the copy.
		rts = append(rts, runtimeDef{Name: "husk-base", Type: "io.containerd.huskbase.v2", Shim: "containerd-shim-huskbase-v2"})
		shims["containerd-shim-huskbase-v2"] = abs(*huskBase)
	}
	if _, err := os.Stat(abs(*runcBin)); err != nil {
		res.Skipped["runc"] = fmt.Sprintf("runc binary %s: %v", abs(*runcBin), err)
	} else {
		rts = append(rts, runtimeDef{Name: "runc", Type: runcType, Binary: abs(*runcBin), Shim: "containerd-shim-runc-v2"})
	}
	switch {
	case *crunBin == "":
		why := *crunSkip
		if why == "" {
			why = "no crun given (-crun)"
		}
		res.Skipped["crun"] = why
	default:
		if _, err := os.Stat(abs(*crunBin)); err != nil {
			res.Skipped["crun"] = fmt.Sprintf("crun wrapper %s: %v", abs(*crunBin), err)
		} else {
			rts = append(rts, runtimeDef{Name: "crun", Type: runcType, Binary: abs(*crunBin), Shim: "containerd-shim-runc-v2"})
		}
	}
	keepRT := map[string]bool{}
	for _, n := range strings.Split(*runtimesF, ",") {
		keepRT[strings.TrimSpace(n)] = true
	}
	var kept []runtimeDef
	for _, rt := range rts {
		if keepRT[rt.Name] {
			kept = append(kept, rt)
		} else {
			res.Skipped[rt.Name] = "not selected (-runtimes)"
		}
	}
	rts = kept
	for name, why := range res.Skipped {
		fmt.Fprintf(os.Stderr, "bench: %s left out: %s\n", name, why)
	}
	for _, rt := range rts {
		res.Runtimes = append(res.Runtimes, rt.Name)
	}
	res.MemN, res.BurstN = *memN, *burstN
	res.Machine = machine(root, rts)
	res.Started = time.Now()
	res.Config = fmt.Sprintf("Runs per runtime: start %d, start in a running pod %d, exec %d, start and exec with seccomp %d each, stop %d, client %d (after %d warm-up runs each); burst %d; memory with %d containers.",
		*startRuns, *podRuns, *execRuns, *scRuns, *stopRuns, *clientRuns, *warmup, *burstN, *memN)

	want := map[string]bool{}
	for _, w := range strings.Split(*only, ",") {
		want[strings.TrimSpace(w)] = true
	}

	fmt.Fprintln(os.Stderr, "bench: starting a private containerd")
	e, err := startEnv(root, shims)
	var teardownOnce sync.Once
	teardown := func() { teardownOnce.Do(func() { e.teardown(*keep) }) }
	defer teardown()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "bench: got %v, cleaning up\n", s)
		teardown()
		os.Exit(130)
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	img, err := e.client.GetImage(e.ctx(), imageRef)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: image:", err)
		return 1
	}
	b := &bench{e: e, rts: rts, img: img, res: res, failures: map[string]int{}}

	step := func(name string, f func()) {
		if !want[name] {
			return
		}
		t0 := time.Now()
		fmt.Fprintf(os.Stderr, "bench: %s ...", name)
		f()
		fmt.Fprintf(os.Stderr, " %s\n", time.Since(t0).Round(100*time.Millisecond))
	}
	if want["hold"] {
		// Debugging aid: keep the private containerd up until a signal.
		fmt.Fprintf(os.Stderr, "bench: holding; ctr --address %s --namespace %s ...; ^C or SIGTERM ends\n", e.address, e.ns)
		select {}
	}
	step("start", func() {
		b.ctrBaseline(10)
		b.startLatency(*startRuns, *warmup, false)
	})
	step("pod", func() { b.startInPod(*podRuns, *warmup) })
	step("exec", func() { b.execLatency(*execRuns, *warmup, false) })
	step("seccomp", func() {
		b.startLatency(*scRuns, *warmup, true)
		b.execLatency(*scRuns, *warmup, true)
	})
	step("stop", func() { b.stopLatency(*stopRuns, 1) })
	step("client", func() { b.pipeline(*clientRuns, *warmup) })
	step("memory", func() {
		for _, rt := range rts {
			b.memory(rt, 1, false, "mem1")
			b.memory(rt, *memN, false, "mem10")
			b.memory(rt, *memN, true, "mem10g")
		}
	})
	step("burst", func() {
		for _, rt := range rts {
			b.burst(rt, *burstN)
		}
	})
	for _, p := range []struct {
		dst      *map[string][]time.Duration
		re, exec string // the start runs' containers; the exec runs' container
	}{
		{&res.Phases, `^start-husk-[0-9]+$`, `^exec-husk$`},
		{&res.PhasesSeccomp, `^startsc-husk-[0-9]+$`, `^execsc-husk$`},
		{&res.BasePhases, `^start-husk-base-[0-9]+$`, `^exec-husk-base$`},
		{&res.BasePhasesSeccomp, `^startsc-husk-base-[0-9]+$`, `^execsc-husk-base$`},
	} {
		if f, err := os.Open(e.logPath); err == nil {
			*p.dst = parsePhases(f, regexp.MustCompile(p.re))
			f.Close()
		}
		if f, err := os.Open(e.logPath); err == nil {
			for k, v := range parsePhases(f, regexp.MustCompile(p.exec)) {
				if strings.HasPrefix(k, "exec.") {
					if *p.dst == nil {
						*p.dst = map[string][]time.Duration{}
					}
					(*p.dst)[k] = v
				}
			}
			f.Close()
		}
	}
	res.Elapsed = time.Since(res.Started)

	md := res.markdown()
	fmt.Println()
	fmt.Println(md)
	if *outDir != "" {
		dir := abs(*outDir)
		if err := os.MkdirAll(dir, 0o755); err == nil {
			p := filepath.Join(dir, "results-"+res.Started.UTC().Format("20060102-150405")+".md")
			if err := os.WriteFile(p, []byte(md), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			} else {
				fmt.Fprintf(os.Stderr, "bench: full report in %s\n", p)
			}
		}
	}
	if *resultsMD != "" {
		p := abs(*resultsMD)
		doc, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := os.WriteFile(p, []byte(spliceGenerated(string(doc), md)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "bench: results written to %s\n", p)
	}
	return 0
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/husk-runtime/husk\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the husk repo root (go.mod) above the working directory; use -repo")
		}
		dir = parent
	}
}

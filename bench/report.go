//go:build linux

package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// results holds every sample of one run.
type results struct {
	mu       sync.Mutex
	Runtimes []string
	// Skipped names runtimes left out, with the reason.
	Skipped map[string]string
	// Samples are durations per metric key and runtime.
	Samples map[string]map[string][]time.Duration
	// Values are single figures (memory) per metric key and runtime.
	Values map[string]map[string]float64
	// Phases are husk's own per-phase timings from the shim log, per phase.
	Phases     map[string][]time.Duration
	BasePhases map[string][]time.Duration
	// ... of the runs with the default seccomp profile.
	PhasesSeccomp, BasePhasesSeccomp map[string][]time.Duration
	CtrBaseline                      []time.Duration
	Errors                           []string
	Machine                          []string
	Started                          time.Time
	Elapsed                          time.Duration
	Config                           string
	// MemN and BurstN are the container counts of the memory and burst
	// figures (their labels say them).
	MemN, BurstN int
}

func newResults() *results {
	return &results{
		Skipped: map[string]string{},
		Samples: map[string]map[string][]time.Duration{},
		Values:  map[string]map[string]float64{},
		Phases:  map[string][]time.Duration{},
		MemN:    10,
		BurstN:  50,
	}
}

func (r *results) add(key, rt string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Samples[key] == nil {
		r.Samples[key] = map[string][]time.Duration{}
	}
	r.Samples[key][rt] = append(r.Samples[key][rt], d)
}

func (r *results) setValue(key, rt string, v float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Values[key] == nil {
		r.Values[key] = map[string]float64{}
	}
	r.Values[key][rt] = v
}

func (r *results) addError(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Errors = append(r.Errors, s)
}

// percentile is the p-th percentile (0..100) of ds, linearly interpolated
// between the closest ranks; NaN for no samples.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return math.NaN()
	}
	s := make([]float64, len(ds))
	for i, d := range ds {
		s[i] = float64(d) / float64(time.Millisecond)
	}
	sort.Float64s(s)
	if len(s) == 1 {
		return s[0]
	}
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo))
}

// row is one line of the results table.
type row struct {
	label string
	unit  string
	vals  map[string]float64
	n     int // samples per runtime (0 for single figures)
}

// rows turns the samples into the table, in a fixed order.
func (r *results) rows() []row {
	var out []row
	lat := func(key, label string, pcts ...float64) {
		m := r.Samples[key]
		if len(m) == 0 {
			return
		}
		for _, p := range pcts {
			rw := row{label: fmt.Sprintf("%s p%.0f", label, p), unit: "ms", vals: map[string]float64{}}
			for rt, ds := range m {
				rw.vals[rt] = percentile(ds, p)
				rw.n = max(rw.n, len(ds))
			}
			out = append(out, rw)
		}
	}
	val := func(key, label, unit string) {
		m := r.Values[key]
		if len(m) == 0 {
			return
		}
		out = append(out, row{label: label, unit: unit, vals: m})
	}
	lat("start", "start: ctr run --rm /bin/true", 50, 90)
	lat("start.pod", "start in a running pod (shim up): ctr run --rm", 50, 90)
	lat("exec", "exec: ctr task exec /bin/true", 50, 90)
	lat("start.seccomp", "start, default seccomp profile: ctr run --rm --seccomp", 50, 90)
	lat("exec.seccomp", "exec, default seccomp profile: ctr task exec", 50, 90)
	lat("stop", "stop: ctr task kill -> TaskExit", 50, 90)
	val("mem1.pss", "memory, 1 container: shim PSS", "MiB")
	val("mem1.rss", "memory, 1 container: shim RSS", "MiB")
	val("mem1.anon", "memory, 1 container: shim anonymous (unshareable)", "MiB")
	val("mem10.pss", fmt.Sprintf("memory, %d containers, 1 shim each: PSS/container", r.MemN), "MiB")
	val("mem10.rss", fmt.Sprintf("memory, %d containers, 1 shim each: RSS/container", r.MemN), "MiB")
	val("mem10.anon", fmt.Sprintf("memory, %d containers, 1 shim each: anonymous/container", r.MemN), "MiB")
	val("mem10g.pss", fmt.Sprintf("memory, %d containers grouped (1 pod): PSS/container", r.MemN), "MiB")
	val("mem10g.rss", fmt.Sprintf("memory, %d containers grouped (1 pod): RSS/container", r.MemN), "MiB")
	val("mem10g.anon", fmt.Sprintf("memory, %d containers grouped (1 pod): anonymous/container", r.MemN), "MiB")
	val("mem10g.shims", fmt.Sprintf("memory, %d containers grouped: shim processes", r.MemN), "")
	lat("burst.run", fmt.Sprintf("burst: %d in parallel, until all run", r.BurstN), 50)
	lat("burst.delete", fmt.Sprintf("burst: %d in parallel, until all deleted", r.BurstN), 50)
	lat("pipe.container", "client: NewContainer (snapshot)", 50)
	lat("pipe.newtask", "client: NewTask (shim start + create)", 50)
	lat("pipe.start", "client: Task.Start", 50)
	lat("pipe.exit", "client: start -> exit of /bin/true", 50)
	lat("pipe.taskdelete", "client: Task.Delete", 50)
	lat("pipe.cdelete", "client: Container.Delete (snapshot)", 50)
	lat("pipe.total", "client: whole life of /bin/true", 50)
	for i := range out {
		if strings.HasPrefix(out[i].label, "burst:") {
			// one sample per runtime: it is a single figure
			out[i].label = strings.TrimSuffix(out[i].label, " p50")
			out[i].n = 0
		}
	}
	return out
}

func fmtVal(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// ratio is a/b, or "-" when either is missing or b is too small for a
// meaningful ratio (below the table's resolution).
func ratio(a, b float64, okA, okB bool) string {
	if !okA || !okB || math.IsNaN(a) || math.IsNaN(b) || b < 0.01 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// columns are the runtimes shown: husk, husk-base when measured, runc and
// crun (shown even when left out).
func (r *results) columns() []string {
	cols := []string{"husk"}
	for _, rt := range r.Runtimes {
		if rt == "husk-base" {
			cols = append(cols, rt)
		}
	}
	return append(cols, "runc", "crun")
}

// table renders the results as a Markdown table.
func (r *results) table() string {
	var b strings.Builder
	cols := r.columns()
	ratios := []string{"runc", "crun"}
	if len(cols) == 4 {
		ratios = append(ratios, "husk-base")
	}
	fmt.Fprintf(&b, "| figure | unit | %s |", strings.Join(cols, " | "))
	for _, c := range ratios {
		fmt.Fprintf(&b, " husk/%s |", c)
	}
	b.WriteString("\n| --- | --- |" + strings.Repeat(" ---: |", len(cols)+len(ratios)) + "\n")
	for _, rw := range r.rows() {
		label := rw.label
		if rw.n > 0 {
			label += fmt.Sprintf(" (n=%d)", rw.n)
		}
		fmt.Fprintf(&b, "| %s | %s |", label, rw.unit)
		for _, c := range cols {
			v, ok := rw.vals[c]
			if !ok {
				b.WriteString(" - |")
				continue
			}
			fmt.Fprintf(&b, " %s |", fmtVal(v))
		}
		h, okH := rw.vals["husk"]
		for _, c := range ratios {
			o, okO := rw.vals[c]
			fmt.Fprintf(&b, " %s |", ratio(h, o, okH, okO))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// phaseOrder is how husk's debug log names the phases of Create ("container
// created": spec, mount, cgroup, spawn, total), Start ("container started":
// total), Delete ("container deleted": cgroup, unmount, total) and an exec's
// Start ("exec started": spawn, total).
var phaseOrder = []struct{ key, label string }{
	{"create.spec", "create: load + validate config.json"},
	{"create.mount", "create: mount rootfs + write state"},
	{"create.cgroup", "create: create cgroup"},
	{"create.spawn", "create: spawn init (clone, exec, rootfs, ready)"},
	{"create.total", "create: total"},
	{"start.total", "start: release init -> execve"},
	{"delete.cgroup", "delete: remove cgroup (beside the unmount)"},
	{"delete.unmount", "delete: unmount rootfs"},
	{"delete.total", "delete: total"},
	{"exec.spawn", "exec: spawn (clone, exec, join, ready)"},
	{"exec.total", "exec: total (-> execve of /bin/true)"},
}

var kvRe = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S+)`)

// parseLogFields parses one logrus text line into its key=value fields.
func parseLogFields(line string) map[string]string {
	out := map[string]string{}
	for _, m := range kvRe.FindAllStringSubmatch(line, -1) {
		v := m[2]
		if strings.HasPrefix(v, `"`) {
			v = strings.Trim(v, `"`)
			v = strings.ReplaceAll(v, `\"`, `"`)
		}
		out[m[1]] = v
	}
	return out
}

// parsePhases reads husk's per-phase timings of the containers whose id
// matches idRe from containerd's log.
func parsePhases(rd io.Reader, idRe *regexp.Regexp) map[string][]time.Duration {
	out := map[string][]time.Duration{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var phase string
		switch {
		case strings.Contains(line, `msg="container created"`):
			phase = "create"
		case strings.Contains(line, `msg="container started"`):
			phase = "start"
		case strings.Contains(line, `msg="container deleted"`):
			phase = "delete"
		case strings.Contains(line, `msg="exec started"`):
			phase = "exec"
		default:
			continue
		}
		f := parseLogFields(line)
		if !idRe.MatchString(f["id"]) {
			continue
		}
		for k, v := range f {
			if k == "time" || k == "level" || k == "msg" || k == "id" || k == "init" || k == "exec" || k == "phase" || k == "runtime" {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				continue
			}
			out[phase+"."+k] = append(out[phase+"."+k], d)
		}
	}
	return out
}

// phaseSet is one column group of the phase table.
type phaseSet struct {
	label  string
	phases map[string][]time.Duration
}

// phaseTable renders husk's phases: p50 and p90 of the plain start runs,
// p50 of the others (seccomp, husk-base).
func (r *results) phaseTable() string {
	if len(r.Phases) == 0 {
		return "(no \"container created\" lines from husk in containerd's log: is the shim's debug level on?)\n"
	}
	var sets []phaseSet
	for _, s := range []phaseSet{
		{"husk, seccomp", r.PhasesSeccomp},
		{"husk-base", r.BasePhases},
		{"husk-base, seccomp", r.BasePhasesSeccomp},
	} {
		if len(s.phases) > 0 {
			sets = append(sets, s)
		}
	}
	var b strings.Builder
	b.WriteString("| husk phase | n | p50 ms | p90 ms |")
	for _, s := range sets {
		fmt.Fprintf(&b, " %s p50 ms |", s.label)
	}
	b.WriteString("\n| --- | ---: | ---: | ---: |" + strings.Repeat(" ---: |", len(sets)) + "\n")
	seen := map[string]bool{}
	emit := func(key, label string) {
		ds := r.Phases[key]
		if len(ds) == 0 {
			return
		}
		seen[key] = true
		fmt.Fprintf(&b, "| %s | %d | %s | %s |", label, len(ds), fmtVal(percentile(ds, 50)), fmtVal(percentile(ds, 90)))
		for _, s := range sets {
			fmt.Fprintf(&b, " %s |", fmtVal(percentile(s.phases[key], 50)))
		}
		b.WriteString("\n")
	}
	for _, p := range phaseOrder {
		emit(p.key, p.label)
	}
	var rest []string
	for k := range r.Phases {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		emit(k, k)
	}
	return b.String()
}

// machine describes the host for the results file.
func machine(repo string, rts []runtimeDef) []string {
	var out []string
	cpu := "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	out = append(out, fmt.Sprintf("CPU: %s, %d CPUs online", cpu, runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l := strings.SplitN(string(b), "\n", 2)[0]
		out = append(out, "Memory: "+strings.Join(strings.Fields(l)[1:], " "))
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		out = append(out, "Kernel: "+cstr(u.Release[:]))
	}
	if b, err := os.ReadFile("/etc/debian_version"); err == nil {
		out = append(out, "OS: Debian "+strings.TrimSpace(string(b)))
	}
	out = append(out, "cgroups: "+cgroupMode())
	out = append(out, "Go: "+runtime.Version())
	first := func(name string, args ...string) string {
		o, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			return "unavailable (" + err.Error() + ")"
		}
		return strings.SplitN(strings.TrimSpace(string(o)), "\n", 2)[0]
	}
	out = append(out, "containerd: "+first(repo+"/.cache/bin/containerd", "--version"))
	for _, rt := range rts {
		if rt.Binary != "" {
			out = append(out, rt.Name+": "+first(rt.Binary, "--version"))
		}
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		out = append(out, "Load average at start: "+strings.Join(strings.Fields(string(b))[:3], " ")+
			" (the machine is shared: other work may run during the benchmark)")
	}
	return out
}

func cstr(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func cgroupMode() string {
	var st syscall.Statfs_t
	if syscall.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == 0x63677270 {
		return "v2 (unified)"
	}
	if syscall.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == 0x63677270 {
		return "v1 controllers + cgroup2 at /sys/fs/cgroup/unified (hybrid)"
	}
	return "v1"
}

// markdown is the whole generated section of the results file.
func (r *results) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run of %s, %s wall time. %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second), r.Config)
	b.WriteString("Machine:\n\n")
	for _, m := range r.Machine {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	b.WriteString("\n")
	for _, rt := range []string{"husk", "runc", "crun"} {
		if why, ok := r.Skipped[rt]; ok {
			fmt.Fprintf(&b, "**%s left out:** %s\n\n", rt, why)
		}
	}
	b.WriteString("Lower is better everywhere; a ratio below 1 means husk wins. Latencies are medians (p50) and p90 of wall time.\n\n")
	b.WriteString(r.table())
	if len(r.CtrBaseline) > 0 {
		fmt.Fprintf(&b, "\nFor scale: a ctr call that does nothing (`ctr tasks ls -q`) takes %s ms (p50, n=%d); every ctr-measured figure includes it.\n",
			fmtVal(percentile(r.CtrBaseline, 50)), len(r.CtrBaseline))
	}
	b.WriteString("\nWhere husk's time goes (its own debug-level timings from the `ctr run` start runs, parsed from containerd's log):\n\n")
	b.WriteString(r.phaseTable())
	if len(r.Errors) > 0 {
		b.WriteString("\nErrors during the run:\n\n")
		for i, e := range r.Errors {
			if i == 20 {
				fmt.Fprintf(&b, "- ... and %d more\n", len(r.Errors)-20)
				break
			}
			fmt.Fprintf(&b, "- %s\n", oneLine(e, 300))
		}
	}
	return b.String()
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

const (
	beginMarker = "<!-- BEGIN GENERATED BY make bench: everything up to the END marker is rewritten on each run -->"
	endMarker   = "<!-- END GENERATED -->"
)

// spliceGenerated replaces the generated section of doc (between the
// markers) with gen; without markers the section is appended.
func spliceGenerated(doc, gen string) string {
	section := beginMarker + "\n" + gen + endMarker
	i := strings.Index(doc, beginMarker)
	j := strings.Index(doc, endMarker)
	if i < 0 || j < i {
		if doc != "" && !strings.HasSuffix(doc, "\n") {
			doc += "\n"
		}
		return doc + "\n" + section + "\n"
	}
	return doc[:i] + section + doc[j+len(endMarker):]
}

//go:build linux

// CRI end-to-end tests: a second private containerd, with the CRI plugin
// enabled and a `husk` runtime handler, driven through crictl, with real pod
// networking from the standard CNI plugins on a private subnet that exists
// only in the pods' network namespaces and a bridge created for the test.
//
// Prerequisites (the tests skip, saying which, if one is missing):
//
//	.cache/bin/crictl                          scripts/build-crictl.sh
//	/usr/lib/cni/{bridge,host-local,loopback}  apt-get install containernetworking-plugins
//	ip (iproute2)                              to remove the test's bridge
//
// The pause image is built by the test itself (go run ./scripts/mkpause) and
// imported into the k8s.io namespace with the busybox test image.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/internal/testenv"
	huskcg "github.com/husk-runtime/husk/process/cgroups"
)

const (
	// criPauseImage is the sandbox image the CRI config pins; built by
	// scripts/mkpause.
	criPauseImage = "localhost/husk/pause:1.0"
	// criHandler is the runtime handler (RuntimeClass handler) for husk.
	criHandler = "husk"
	// criSubnet exists only inside the pods' network namespaces: the bridge
	// gets no address and the pods no default route.
	criSubnet = "10.88.77.0/24"
	// crictlTimeout bounds every crictl invocation.
	crictlTimeout = 90 * time.Second
	cniBinDir     = "/usr/lib/cni"
)

// criEnv is a private containerd with the CRI plugin, for one test.
type criEnv struct {
	dir          string
	root, state  string
	address      string
	configPath   string
	logPath      string
	crictlBin    string
	crictlConfig string
	netName      string
	bridge       string
	ipamDir      string
	// cgroupName is the top-level cgroup (in every hierarchy) below which
	// the pods' cgroups (cgroup_parent) and the shim's cgroup live.
	cgroupName string
	shimCgroup string
	shimCg     huskcg.Cgroup
	// sandboxes are the pods run so far, for teardown.
	sandboxes []string
	// hostDirs are directories outside dir that this env's containerd
	// creates when they are missing (libcni's cache, the runc shim's
	// state root); teardown removes those it created, once empty.
	hostDirs []string

	cmd     *exec.Cmd
	exited  <-chan struct{}
	exitErr error
}

// newCRIEnv starts the CRI-enabled containerd and registers its teardown.
func newCRIEnv(t *testing.T) *criEnv {
	t.Helper()
	crictlBin := filepath.Join(repoRoot, ".cache/bin/crictl")
	if _, err := os.Stat(crictlBin); err != nil {
		t.Skipf("crictl missing (%v): run scripts/build-crictl.sh", err)
	}
	for _, p := range []string{"bridge", "host-local", "loopback"} {
		if _, err := os.Stat(filepath.Join(cniBinDir, p)); err != nil {
			t.Skipf("CNI plugin %s missing (%v): apt-get install containernetworking-plugins", p, err)
		}
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) missing: needed to remove the test's bridge")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go"
		if _, err := os.Stat(goBin); err != nil {
			t.Skip("go toolchain not found: needed to build the pause image (scripts/mkpause)")
		}
	}

	// Short paths: the shim socket dir is limited to 42 bytes.
	dir, err := os.MkdirTemp("/tmp", "husk-cri-")
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.TrimPrefix(filepath.Base(dir), "husk-cri-")
	tag := strings.ToLower(nonAlnum.ReplaceAllString(suffix, ""))
	if len(tag) > 8 {
		tag = tag[:8]
	}
	e := &criEnv{
		dir:          dir,
		root:         filepath.Join(dir, "root"),
		state:        filepath.Join(dir, "state"),
		address:      filepath.Join(dir, "c.sock"),
		configPath:   filepath.Join(dir, "config.toml"),
		logPath:      filepath.Join(dir, "containerd.log"),
		crictlBin:    crictlBin,
		crictlConfig: filepath.Join(dir, "crictl.yaml"),
		netName:      "husk-" + tag,
		bridge:       "huskbr" + tag, // at most 14 bytes: fits IFNAMSIZ
		ipamDir:      filepath.Join(dir, "ipam"),
		cgroupName:   "husk-cri-" + tag,
	}
	e.shimCgroup = "/" + e.cgroupName + "/shim"
	for _, d := range []string{"/var/lib/cni", "/var/lib/cni/results", "/run/containerd/runc/k8s.io"} {
		if !criExists(d) {
			e.hostDirs = append(e.hostDirs, d)
		}
	}
	t.Cleanup(func() { e.teardown(t) })

	// The pause image.
	pauseTar := filepath.Join(dir, "pause.tar")
	build := exec.Command(goBin, "run", "./scripts/mkpause", "-o", pauseTar, "-name", criPauseImage)
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the pause image: %v\n%s", err, out)
	}

	// CNI: one bridge network on a private subnet. No gateway address on
	// the bridge, no masquerading, no default route: pods reach each other
	// on this box and nothing else. containerd adds loopback itself
	// (the loopback plugin, from the same bin dir).
	confDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(confDir, 0o755); err != nil {
		t.Fatal(err)
	}
	conflist := map[string]any{
		"cniVersion": "1.0.0",
		"name":       e.netName,
		"plugins": []any{map[string]any{
			"type":             "bridge",
			"bridge":           e.bridge,
			"isGateway":        false,
			"isDefaultGateway": false,
			"ipMasq":           false,
			"hairpinMode":      false,
			"ipam": map[string]any{
				"type":    "host-local",
				"dataDir": e.ipamDir,
				"ranges": []any{[]any{map[string]any{
					"subnet":     criSubnet,
					"rangeStart": "10.88.77.10",
					"rangeEnd":   "10.88.77.250",
				}}},
			},
		}},
	}
	b, _ := json.MarshalIndent(conflist, "", "  ")
	if err := os.WriteFile(filepath.Join(confDir, "10-husk.conflist"), b, 0o644); err != nil {
		t.Fatal(err)
	}

	// The shim's cgroup, named by the handler's ShimCgroup option.
	if e.shimCg, err = huskcg.New(e.shimCgroup, nil); err != nil {
		t.Fatalf("create shim cgroup %s: %v", e.shimCgroup, err)
	}

	runtimeType, runtimePath := criRuntime()
	pathLine := ""
	if runtimePath != "" {
		pathLine = fmt.Sprintf("  runtime_path = %q\n", runtimePath)
	}
	cfg := testenv.Config{
		Root:            e.root,
		State:           e.state,
		Address:         e.address,
		TTRPCAddress:    e.address + ".ttrpc",
		SocketDir:       filepath.Join(dir, "s"),
		OptDir:          filepath.Join(dir, "opt"),
		DisabledPlugins: []string{"io.containerd.nri.v1.nri"},
		Extra: fmt.Sprintf(`
[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = %[1]q

[plugins.'io.containerd.cri.v1.runtime']
  # root here lacks CAP_SYS_RESOURCE: never ask for an oom_score_adj below
  # containerd's own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces are bind-mounted under state/netns, not /var/run/netns.
  netns_mounts_under_state_dir = true

[plugins.'io.containerd.cri.v1.runtime'.cni]
  bin_dirs = [%[2]q]
  conf_dir = %[3]q

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.husk]
  runtime_type = %[4]q
%[5]s
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.husk.options]
  ShimCgroup = %[6]q
  Debug = true
`, criPauseImage, cniBinDir, confDir, runtimeType, pathLine, e.shimCgroup),
	}
	if err := cfg.Write(e.configPath); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.crictlConfig, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	if e.cmd, e.exited, err = testenv.StartContainerd(containerdBin, e.configPath, e.logPath, daemonEnv(),
		func(err error) { e.exitErr = err }); err != nil {
		t.Fatal(err)
	}

	// Wait for CRI to be ready, network included (CNI config loaded).
	ready := false
	var last string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		select {
		case <-e.exited:
			t.Fatalf("containerd exited during startup (%v); log:\n%s", e.exitErr, tail(e.logPath, 40))
		default:
		}
		if _, err := os.Stat(e.address); err != nil {
			continue
		}
		out, _, err := e.crictl(t, "info")
		if err != nil {
			last = err.Error()
			continue
		}
		last = out
		var info struct {
			Status struct {
				Conditions []struct {
					Type   string `json:"type"`
					Status bool   `json:"status"`
				} `json:"conditions"`
			} `json:"status"`
		}
		if json.Unmarshal([]byte(out), &info) != nil {
			continue
		}
		ok := 0
		for _, c := range info.Status.Conditions {
			if (c.Type == "RuntimeReady" || c.Type == "NetworkReady") && c.Status {
				ok++
			}
		}
		if ok == 2 {
			ready = true
			break
		}
	}
	if !ready {
		t.Fatalf("CRI not ready within 60s; last `crictl info`: %s\nlog:\n%s", truncate(last, 3000), tail(e.logPath, 40))
	}

	for _, tar := range []string{pauseTar, imageTar} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, ctrBin, "--address", e.address, "--namespace", "k8s.io",
			"images", "import", "--platform", "linux/amd64", tar)
		cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("import %s into k8s.io: %v\n%s", tar, err, out)
		}
	}
	// CRI sees images imported into k8s.io through containerd's events.
	for _, img := range []string{criPauseImage, imageRef} {
		if !waitFor(20*time.Second, func() bool {
			_, _, err := e.crictl(t, "inspecti", img)
			return err == nil
		}) {
			t.Fatalf("CRI does not see image %s after import", img)
		}
	}
	return e
}

// criRuntime is the CRI handler's runtime_type and runtime_path for the
// runtime under test (HUSK_TEST_RUNTIME).
func criRuntime() (typ, path string) {
	if filepath.IsAbs(runtimeName) {
		return huskRuntime, runtimeName
	}
	return runtimeName, ""
}

func (e *criEnv) crictl(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), crictlTimeout)
	defer cancel()
	full := append([]string{
		"--config", e.crictlConfig,
		"--runtime-endpoint", "unix://" + e.address,
		"--image-endpoint", "unix://" + e.address,
		"--timeout", "60s",
	}, args...)
	cmd := exec.CommandContext(ctx, e.crictlBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out: %w (%v)", ctx.Err(), err)
	}
	if err != nil {
		err = fmt.Errorf("crictl %s: %w (stderr: %q)", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), stderr.String(), err
}

// runPod runs `crictl runp --runtime husk podFile` and returns the pod id.
func (e *criEnv) runPod(t testing.TB, podFile string) string {
	t.Helper()
	id := strings.TrimSpace(e.mustCrictl(t, "runp", "--runtime", criHandler, podFile))
	e.sandboxes = append(e.sandboxes, id)
	return id
}

func (e *criEnv) mustCrictl(t testing.TB, args ...string) string {
	t.Helper()
	out, _, err := e.crictl(t, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, truncate(out, 2000))
	}
	return out
}

// inspect runs `crictl inspect[p] -o json id` and decodes it.
func (e *criEnv) inspect(t testing.TB, cmd, id string) map[string]any {
	t.Helper()
	out := e.mustCrictl(t, cmd, "-o", "json", id)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("crictl %s %s: bad JSON: %v\n%s", cmd, id, err, truncate(out, 2000))
	}
	return m
}

// jget walks a decoded JSON document along keys.
func criJGet(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func criJStr(v any, keys ...string) string {
	s, _ := criJGet(v, keys...).(string)
	return s
}

// jnum reads a number that protojson may have written as a string (uint64).
func criJNum(v any, keys ...string) float64 {
	switch x := criJGet(v, keys...).(type) {
	case float64:
		return x
	case string:
		f, _ := strconv.ParseFloat(x, 64)
		return f
	}
	return 0
}

// writeJSON writes v as a crictl config file in the env's dir.
func (e *criEnv) writeJSON(t testing.TB, name string, v any) string {
	t.Helper()
	p := filepath.Join(e.dir, "specs", name+".json")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// podConfig returns a pod sandbox config for crictl and its file.
func (e *criEnv) podConfig(t testing.TB, name string, pidMode int) (string, string) {
	t.Helper()
	logDir := filepath.Join(e.dir, "logs", name)
	cfg := map[string]any{
		"metadata": map[string]any{
			"name":      name,
			"namespace": "husk-test",
			"uid":       name + "-" + e.netName,
			"attempt":   0,
		},
		"hostname":      "huskpod",
		"log_directory": logDir,
		"linux": map[string]any{
			"cgroup_parent": "/" + e.cgroupName,
			"security_context": map[string]any{
				"namespace_options": map[string]any{"network": nsPod, "pid": pidMode, "ipc": nsPod},
			},
		},
	}
	return e.writeJSON(t, "pod-"+name, cfg), logDir
}

// CRI's NamespaceMode values.
const (
	nsPod       = 0 // shared with the pod (the pause container)
	nsContainer = 1 // the container's own
)

// containerConfig is a container of a pod whose PID namespace mode is
// pidMode, as the kubelet sets it (the same for the pod and its containers).
func (e *criEnv) containerConfig(t testing.TB, name string, pidMode int, command ...string) string {
	t.Helper()
	cfg := map[string]any{
		"metadata": map[string]any{"name": name},
		"image":    map[string]any{"image": imageRef},
		"command":  command,
		"log_path": name + ".log",
		"linux": map[string]any{
			"security_context": map[string]any{
				"namespace_options": map[string]any{"network": nsPod, "pid": pidMode, "ipc": nsPod},
			},
		},
	}
	return e.writeJSON(t, "ctr-"+name, cfg)
}

// netnsDir is where CRI bind-mounts the pods' network namespaces
// (netns_mounts_under_state_dir).
func (e *criEnv) netnsDir() string {
	return filepath.Join(e.state, "io.containerd.grpc.v1.cri", "netns")
}

// shims lists the live shim processes of this CRI containerd.
func (e *criEnv) shims() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if exe := filepath.Base(args[0]); exe != shimName && !strings.HasPrefix(exe, "containerd-shim") {
			continue
		}
		cmdline := strings.Join(args, " ")
		ours := strings.Contains(cmdline, e.address)
		if !ours {
			if cwd, err := os.Readlink(filepath.Join("/proc", ent.Name(), "cwd")); err == nil {
				ours = strings.HasPrefix(cwd, e.dir+"/")
			}
		}
		if ours {
			out = append(out, proc{pid: pid, cmdline: cmdline})
		}
	}
	return out
}

// cgroupOf returns the path of pid's cgroup in the v1 hierarchy holding
// controller (or the v2 path for ""), from /proc/<pid>/cgroup.
func criCgroupOf(pid int, controller string) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if controller == "" && parts[0] == "0" {
			return parts[2]
		}
		for _, c := range strings.Split(parts[1], ",") {
			if controller != "" && c == controller {
				return parts[2]
			}
		}
	}
	return ""
}

// leftovers lists what is left of pods and containers on the host: shim
// processes, mounts, network namespaces, cgroups (besides the shim's
// cgroup), bridge ports, IP reservations, CNI result caches and the given
// processes.
func (e *criEnv) leftovers(pids []int, sandboxIDs []string) []string {
	var problems []string
	for _, p := range e.shims() {
		problems = append(problems, fmt.Sprintf("shim process left: pid %d: %s", p.pid, p.cmdline))
	}
	for _, mp := range mountsUnder(e.dir) {
		problems = append(problems, "mount left: "+mp)
	}
	if ents, err := os.ReadDir(e.netnsDir()); err == nil && len(ents) > 0 {
		var names []string
		for _, x := range ents {
			names = append(names, x.Name())
		}
		problems = append(problems, fmt.Sprintf("netns left in %s: %v", e.netnsDir(), names))
	}
	for _, base := range cgroupBases() {
		top := filepath.Join(base, e.cgroupName)
		ents, err := os.ReadDir(top)
		if err != nil {
			continue
		}
		for _, x := range ents {
			if x.IsDir() && x.Name() != "shim" {
				problems = append(problems, "cgroup left: "+filepath.Join(top, x.Name()))
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show", "master", e.bridge).CombinedOutput(); err == nil && strings.TrimSpace(string(out)) != "" {
		problems = append(problems, "bridge ports left: "+strings.TrimSpace(string(out)))
	}
	if ents, err := os.ReadDir(filepath.Join(e.ipamDir, e.netName)); err == nil {
		for _, x := range ents {
			if net.ParseIP(x.Name()) != nil {
				problems = append(problems, "IP still reserved: "+x.Name())
			}
		}
	}
	if ents, err := os.ReadDir("/var/lib/cni/results"); err == nil {
		for _, x := range ents {
			for _, id := range sandboxIDs {
				if strings.Contains(x.Name(), id) {
					problems = append(problems, "CNI result cache left: /var/lib/cni/results/"+x.Name())
				}
			}
		}
	}
	for _, pid := range pids {
		if procAlive(pid) {
			problems = append(problems, fmt.Sprintf("process %d still alive", pid))
		}
	}
	return problems
}

func (e *criEnv) assertClean(t *testing.T, pids []int, sandboxIDs []string) {
	t.Helper()
	var problems []string
	if !waitFor(leakTimeout, func() bool {
		problems = e.leftovers(pids, sandboxIDs)
		return len(problems) == 0
	}) {
		t.Errorf("left behind after the pod was removed (after %v):\n  %s", leakTimeout, strings.Join(problems, "\n  "))
	}
}

// teardown removes everything the env created, also after a failure.
func (e *criEnv) teardown(t *testing.T) {
	logf := func(format string, args ...any) { t.Logf("teardown: "+format, args...) }
	if e.cmd != nil && e.cmd.Process != nil {
		select {
		case <-e.exited:
		default:
			// Remove what is left through CRI first (stops the network).
			if out, _, err := e.crictl(t, "pods", "-q"); err == nil && strings.TrimSpace(out) != "" {
				if _, _, err := e.crictl(t, "rmp", "-f", "-a"); err != nil {
					t.Logf("teardown: %v", err)
				}
			}
		}
	}
	testenv.StopContainerd(e.cmd, e.exited, 10*time.Second, logf)
	for _, p := range e.shims() {
		t.Logf("teardown: killing leftover shim pid %d (%s)", p.pid, p.cmdline)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	// Kills what is left inside (thawed first), removes the dirs; reported
	// on stderr, as the package's teardown does.
	testenv.RemoveCgroups(e.cgroupName, true, teardownLogf)
	testenv.UnmountAll(e.dir, logf)
	if _, err := net.InterfaceByName(e.bridge); err == nil {
		if out, err := exec.Command("ip", "link", "del", e.bridge).CombinedOutput(); err != nil {
			t.Logf("teardown: ip link del %s: %v: %s", e.bridge, err, out)
		}
	}
	// libcni's result cache (no way to move it): <network>-<sandbox>-<ifname>.
	if ents, err := os.ReadDir("/var/lib/cni/results"); err == nil {
		for _, x := range ents {
			ours := strings.HasPrefix(x.Name(), e.netName+"-")
			for _, id := range e.sandboxes {
				ours = ours || strings.Contains(x.Name(), "-"+id+"-")
			}
			if ours {
				_ = os.Remove(filepath.Join("/var/lib/cni/results", x.Name()))
			}
		}
	}
	// Deepest first; rmdir only removes what is empty.
	for i := len(e.hostDirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(e.hostDirs[i])
	}
	if t.Failed() {
		t.Logf("----- CRI containerd log (last 150 lines of %s) -----\n%s\n-----", e.logPath, tail(e.logPath, 150))
	}
	if dir := os.Getenv("HUSK_TEST_LOG_DIR"); dir != "" {
		if b, err := os.ReadFile(e.logPath); err == nil {
			_ = os.MkdirAll(dir, 0o755)
			dst := filepath.Join(dir, "containerd-cri-"+e.netName+".log")
			if err := os.WriteFile(dst, b, 0o644); err == nil {
				t.Logf("CRI containerd log saved to %s", dst)
			}
		}
	}
	if left := mountsUnder(e.dir); len(left) > 0 {
		t.Errorf("teardown: NOT removing %s, still mounted: %v", e.dir, left)
	} else if err := os.RemoveAll(e.dir); err != nil {
		t.Logf("teardown: %v", err)
	}
}

// ---------------------------------------------------------------------------

func TestCRI(t *testing.T) {
	e := newCRIEnv(t)

	t.Run("runtime-handler", func(t *testing.T) {
		// CRI introspects every handler at startup by running the shim's
		// -info with the handler's options on stdin; a failure leaves the
		// handler without features.
		out := e.mustCrictl(t, "info")
		var info struct {
			RuntimeHandlers []struct {
				Name     string          `json:"name"`
				Features json.RawMessage `json:"features"`
			} `json:"runtimeHandlers"`
		}
		if err := json.Unmarshal([]byte(out), &info); err != nil {
			t.Fatalf("crictl info: %v\n%s", err, truncate(out, 2000))
		}
		found := false
		for _, h := range info.RuntimeHandlers {
			if h.Name == criHandler {
				found = true
				if len(h.Features) == 0 || string(h.Features) == "null" {
					t.Errorf("runtime handler %q has no features: `-info` with the handler's options failed (see containerd's log)", criHandler)
				}
			}
		}
		if !found {
			t.Errorf("crictl info lists no runtime handler %q:\n%s", criHandler, truncate(out, 3000))
		}
	})

	t.Run("pod", func(t *testing.T) { testCRIPod(t, e) })
	t.Run("shared-pid-pod", func(t *testing.T) { testCRISharedPID(t, e) })
}

// testCRISharedPID runs a pod that shares its PID namespace
// (shareProcessNamespace): the container joins the pause process's PID
// namespace by path, and the pause process is its PID 1.
func testCRISharedPID(t *testing.T, e *criEnv) {
	podFile, _ := e.podConfig(t, "shared", nsPod)
	podID := e.runPod(t, podFile)
	removed := false
	t.Cleanup(func() {
		if !removed {
			e.crictl(t, "stopp", podID)
			e.crictl(t, "rmp", "-f", podID)
		}
	})
	pausePid := int(criJNum(e.inspect(t, "inspectp", podID), "info", "pid"))
	f := e.containerConfig(t, "shared-app", nsPod, "sh", "-c", "echo up; exec sleep 100000")
	id := strings.TrimSpace(e.mustCrictl(t, "create", podID, f, podFile))
	e.mustCrictl(t, "start", id)
	appPid := int(criJNum(e.inspect(t, "inspect", id), "info", "pid"))

	out := e.mustCrictl(t, "exec", "-s", id, "sh", "-c", "readlink /proc/self/ns/pid; tr '\\0' ' ' </proc/1/cmdline; echo; ps -o pid,args")
	pauseNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pausePid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, pauseNS+"\n/pause \n") {
		t.Errorf("the container should be in the pause process's PID namespace %s with /pause as PID 1, got:\n%s", pauseNS, out)
	}
	if !strings.Contains(out, "sleep 100000") {
		t.Errorf("ps in the shared PID namespace does not show the app:\n%s", out)
	}
	e.mustCrictl(t, "stop", "--timeout", "2", id)
	e.mustCrictl(t, "rm", id)
	e.mustCrictl(t, "stopp", podID)
	e.mustCrictl(t, "rmp", podID)
	removed = true
	e.assertClean(t, []int{pausePid, appPid}, []string{podID})
}

// testCRIPod runs a pod of three app containers through its whole life.
func testCRIPod(t *testing.T, e *criEnv) {
	podFile, logDir := e.podConfig(t, "web", nsContainer)
	podID := e.runPod(t, podFile)
	var pids []int
	removed := false
	t.Cleanup(func() {
		if !removed {
			e.crictl(t, "stopp", podID)
			e.crictl(t, "rmp", "-f", podID)
		}
	})

	pod := e.inspect(t, "inspectp", podID)
	if st := criJStr(pod, "status", "state"); st != "SANDBOX_READY" {
		t.Fatalf("pod state %q, want SANDBOX_READY", st)
	}
	if h := criJStr(pod, "status", "runtimeHandler"); h != criHandler {
		t.Errorf("pod runtime handler %q, want %q", h, criHandler)
	}
	podIP := criJStr(pod, "status", "network", "ip")
	_, subnet, _ := net.ParseCIDR(criSubnet)
	if ip := net.ParseIP(podIP); ip == nil || !subnet.Contains(ip) {
		t.Fatalf("pod IP %q is not in %s (CNI)", podIP, criSubnet)
	}
	pausePid := int(criJNum(pod, "info", "pid"))
	if !procAlive(pausePid) {
		t.Fatalf("pause pid %d is not alive", pausePid)
	}
	pids = append(pids, pausePid)
	netnsPath := ""
	if nss, ok := criJGet(pod, "info", "runtimeSpec", "linux", "namespaces").([]any); ok {
		for _, ns := range nss {
			if criJStr(ns, "type") == "network" {
				netnsPath = criJStr(ns, "path")
			}
		}
	}
	if !strings.HasPrefix(netnsPath, e.netnsDir()+"/") {
		t.Errorf("pod network namespace %q is not one CRI prepared under %s", netnsPath, e.netnsDir())
	}

	// Three app containers: a web server, a chatty one, a sleeper.
	ctrs := map[string]string{}
	for _, c := range []struct {
		name string
		cmd  []string
	}{
		{"web", []string{"sh", "-c", "echo web started; echo web to stderr >&2; mkdir -p /tmp/www; echo pong > /tmp/www/index.html; exec httpd -f -p 9000 -h /tmp/www"}},
		{"chat", []string{"sh", "-c", "echo chat says hi; echo chat to stderr >&2; exec sleep 100000"}},
		{"sleeper", []string{"sleep", "100000"}},
	} {
		f := e.containerConfig(t, c.name, nsContainer, c.cmd...)
		id := strings.TrimSpace(e.mustCrictl(t, "create", podID, f, podFile))
		e.mustCrictl(t, "start", id)
		ctrs[c.name] = id
	}
	ctrPid := map[string]int{}
	for name, id := range ctrs {
		var st map[string]any
		if !waitFor(20*time.Second, func() bool {
			st = e.inspect(t, "inspect", id)
			return criJStr(st, "status", "state") == "CONTAINER_RUNNING"
		}) {
			t.Fatalf("container %s (%s) is %q, want CONTAINER_RUNNING", name, id, criJStr(st, "status", "state"))
		}
		ctrPid[name] = int(criJNum(st, "info", "pid"))
		pids = append(pids, ctrPid[name])
	}

	// Shim version 3: one shim serves the whole pod, and is the parent of
	// the pause process and of every app container's init.
	shims := e.shims()
	if len(shims) != 1 {
		t.Fatalf("%d shim processes serve a pod of pause + 3 containers, want 1 (shim version 3):\n%v", len(shims), shims)
	}
	shimPid := shims[0].pid
	// What husk's start reported (version 3), and that containerd connects
	// every container of the pod to the same shim address.
	var addrs []string
	for _, id := range []string{podID, ctrs["web"], ctrs["chat"], ctrs["sleeper"]} {
		var bs struct {
			Version int    `json:"version"`
			Address string `json:"address"`
		}
		p := filepath.Join(e.state, "io.containerd.runtime.v2.task", "k8s.io", id, "bootstrap.json")
		b, err := os.ReadFile(p)
		if err == nil {
			err = json.Unmarshal(b, &bs)
		}
		if err != nil {
			t.Errorf("bootstrap params of %s: %v", id, err)
			continue
		}
		if bs.Version != 3 {
			t.Errorf("%s: shim version %d, want 3", id, bs.Version)
		}
		addrs = append(addrs, bs.Address)
	}
	for _, a := range addrs {
		if a != addrs[0] {
			t.Errorf("the pod's containers use different shim addresses: %q", addrs)
			break
		}
	}
	for name, pid := range map[string]int{"pause": pausePid, "web": ctrPid["web"], "chat": ctrPid["chat"], "sleeper": ctrPid["sleeper"]} {
		if pp := procParent(pid); pp != shimPid {
			t.Errorf("%s (pid %d) has parent %d, want the pod's shim %d", name, pid, pp, shimPid)
		}
	}
	// The handler's options reached the shim's start: ShimCgroup.
	if got := criCgroupOf(shimPid, "memory"); got != e.shimCgroup {
		t.Errorf("shim pid %d is in memory cgroup %q, want %q (ShimCgroup runtime option)", shimPid, got, e.shimCgroup)
	}
	// Every container is in its own cgroup below the pod's cgroup_parent.
	for name, pid := range map[string]int{"web": ctrPid["web"], "chat": ctrPid["chat"]} {
		want := "/" + e.cgroupName + "/" + ctrs[name]
		if got := criCgroupOf(pid, "memory"); got != want {
			t.Errorf("%s is in memory cgroup %q, want %q", name, got, want)
		}
	}

	t.Run("shared-network", func(t *testing.T) {
		probe := []string{"sh", "-c", "for n in net ipc uts; do readlink /proc/self/ns/$n; done; ls /sys/class/net; ip -o -4 addr show | awk '{print $2, $4}'; hostname"}
		var outs []string
		for _, name := range []string{"web", "chat"} {
			out := e.mustCrictl(t, append([]string{"exec", "-s", ctrs[name]}, probe...)...)
			outs = append(outs, out)
			if !strings.Contains(out, "eth0 "+podIP+"/24") {
				t.Errorf("%s: eth0 does not have the pod IP %s:\n%s", name, podIP, out)
			}
			if !strings.Contains(out, "\nhuskpod\n") && !strings.HasSuffix(out, "huskpod\n") {
				t.Errorf("%s: hostname is not the pod's (huskpod):\n%s", name, out)
			}
		}
		if outs[0] != outs[1] {
			t.Errorf("the containers see different networks:\nweb:\n%s\nchat:\n%s", outs[0], outs[1])
		}
		var pauseNSs []string
		for _, ns := range []string{"net", "ipc", "uts"} {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pausePid, ns))
			if err != nil {
				t.Fatal(err)
			}
			pauseNSs = append(pauseNSs, l)
		}
		pauseNS := pauseNSs[0]
		if got := strings.SplitN(outs[0], "\n", 4)[:3]; !reflect.DeepEqual(got, pauseNSs) {
			t.Errorf("containers are in namespaces %q, the pause process in %q (net, ipc, uts are the pod's)", got, pauseNSs)
		}
		var st unix.Stat_t
		if err := unix.Stat(netnsPath, &st); err != nil {
			t.Errorf("stat pod netns %s: %v", netnsPath, err)
		} else if want := fmt.Sprintf("net:[%d]", st.Ino); pauseNS != want {
			t.Errorf("the pod runs in %s, not in the namespace CNI set up (%s, %s): it must be joined, not replaced", pauseNS, netnsPath, want)
		}
		// Loopback and the pod IP are shared: chat reaches web's server.
		for _, url := range []string{"http://127.0.0.1:9000/", "http://" + podIP + ":9000/"} {
			var out string
			var err error
			ok := waitFor(15*time.Second, func() bool {
				out, _, err = e.crictl(t, "exec", "-s", ctrs["chat"], "wget", "-q", "-O", "-", url)
				return err == nil && strings.TrimSpace(out) == "pong"
			})
			if !ok {
				t.Errorf("chat: wget %s = %q, %v; want pong from web (same network namespace)", url, out, err)
			}
		}
	})

	t.Run("own-pid-namespaces", func(t *testing.T) {
		// The kubelet's default: every container has its own PID namespace,
		// its command is PID 1 there.
		seen := map[string]string{}
		pauseNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pausePid))
		seen[pauseNS] = "pause"
		for _, name := range []string{"web", "chat"} {
			out := e.mustCrictl(t, "exec", "-s", ctrs[name], "sh", "-c", "readlink /proc/self/ns/pid; tr '\\0' ' ' </proc/1/cmdline")
			lines := strings.SplitN(strings.TrimSpace(out), "\n", 2)
			if len(lines) != 2 {
				t.Errorf("%s: unexpected output %q", name, out)
				continue
			}
			if other, dup := seen[lines[0]]; dup {
				t.Errorf("%s shares PID namespace %s with %s; want its own", name, lines[0], other)
			}
			seen[lines[0]] = name
			if want := map[string]string{"web": "httpd", "chat": "sleep"}[name]; !strings.HasPrefix(lines[1], want+" ") {
				t.Errorf("%s: PID 1 is %q, want its command %s", name, lines[1], want)
			}
		}
	})

	t.Run("exec", func(t *testing.T) {
		// Streaming exec (through CRI's stream server) and sync exec.
		if out := e.mustCrictl(t, "exec", ctrs["chat"], "sh", "-c", "echo streamed $((6*7))"); strings.TrimSpace(out) != "streamed 42" {
			t.Errorf("crictl exec printed %q, want %q", out, "streamed 42")
		}
		if out := e.mustCrictl(t, "exec", "-s", ctrs["web"], "sh", "-c", "echo sync $((6*7))"); strings.TrimSpace(out) != "sync 42" {
			t.Errorf("crictl exec -s printed %q, want %q", out, "sync 42")
		}
		// A failing command: its exit code and stderr come back through CRI.
		_, stderr, err := e.crictl(t, "exec", "-s", ctrs["web"], "sh", "-c", "echo bad thing >&2; exit 3")
		if err == nil || !strings.Contains(stderr, "exited with 3") || !strings.Contains(stderr, "bad thing") {
			t.Errorf("crictl exec -s ... exit 3: err %v, stderr %q; want a failure naming exit code 3 and the command's stderr", err, stderr)
		}
	})

	t.Run("logs", func(t *testing.T) {
		for name, want := range map[string][]string{
			"web":  {"web started", "web to stderr"},
			"chat": {"chat says hi", "chat to stderr"},
		} {
			var stdout, stderr string
			ok := waitFor(10*time.Second, func() bool {
				var err error
				stdout, stderr, err = e.crictl(t, "logs", ctrs[name])
				all := stdout + stderr
				return err == nil && strings.Contains(all, want[0]) && strings.Contains(all, want[1])
			})
			if !ok {
				t.Errorf("crictl logs %s: stdout %q, stderr %q; want %q on stdout and %q on stderr", name, stdout, stderr, want[0], want[1])
				continue
			}
			if !strings.Contains(stdout, want[0]) || !strings.Contains(stderr, want[1]) {
				t.Errorf("crictl logs %s mixed up the streams: stdout %q, stderr %q", name, stdout, stderr)
			}
			// CRI's own log file, in CRI format: "<time> <stream> F <line>".
			b, err := os.ReadFile(filepath.Join(logDir, name+".log"))
			if err != nil {
				t.Errorf("CRI log file of %s: %v", name, err)
			} else if !strings.Contains(string(b), " stdout F "+want[0]) || !strings.Contains(string(b), " stderr F "+want[1]) {
				t.Errorf("CRI log file of %s lacks its output:\n%s", name, b)
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		id := ctrs["web"]
		var st map[string]any
		ok := waitFor(15*time.Second, func() bool {
			out, _, err := e.crictl(t, "stats", "-o", "json", "--id", id)
			if err != nil || json.Unmarshal([]byte(out), &st) != nil {
				return false
			}
			list, _ := criJGet(st, "stats").([]any)
			return len(list) == 1 && criJNum(list[0], "cpu", "usageCoreNanoSeconds", "value") > 0 &&
				criJNum(list[0], "memory", "workingSetBytes", "value") > 0
		})
		if !ok {
			b, _ := json.Marshal(st)
			t.Errorf("crictl stats %s: want CPU usage and a memory working set > 0, got %s", id, truncate(string(b), 2000))
		}
	})

	t.Run("survives-container-removal", func(t *testing.T) {
		id := ctrs["sleeper"]
		e.mustCrictl(t, "stop", "--timeout", "2", id)
		e.mustCrictl(t, "rm", id)
		if out, _, err := e.crictl(t, "inspect", id); err == nil {
			t.Errorf("container %s still listed after rm:\n%s", id, truncate(out, 500))
		}
		if s := e.shims(); len(s) != 1 || s[0].pid != shimPid {
			t.Fatalf("after removing one container the pod's shim changed: %v, want only pid %d", s, shimPid)
		}
		if st := criJStr(e.inspect(t, "inspectp", podID), "status", "state"); st != "SANDBOX_READY" {
			t.Errorf("pod state %q after removing one container, want SANDBOX_READY", st)
		}
		for _, name := range []string{"web", "chat"} {
			if st := criJStr(e.inspect(t, "inspect", ctrs[name]), "status", "state"); st != "CONTAINER_RUNNING" {
				t.Errorf("%s is %q after removing the sleeper, want CONTAINER_RUNNING", name, st)
			}
		}
		if out := e.mustCrictl(t, "exec", "-s", ctrs["chat"], "wget", "-q", "-O", "-", "http://127.0.0.1:9000/"); strings.TrimSpace(out) != "pong" {
			t.Errorf("after removing the sleeper, chat -> web printed %q, want pong", out)
		}
		if !procAlive(pausePid) {
			t.Errorf("pause process %d died with the sleeper", pausePid)
		}
		if procAlive(ctrPid["sleeper"]) {
			t.Errorf("the sleeper's process %d is still alive after rm", ctrPid["sleeper"])
		}
		for _, base := range cgroupBases() {
			if p := filepath.Join(base, e.cgroupName, id); criExists(p) {
				t.Errorf("cgroup of the removed container left: %s", p)
			}
		}
		bundle := filepath.Join(e.state, "io.containerd.runtime.v2.task", "k8s.io", id)
		if m := mountsUnder(bundle); len(m) > 0 {
			t.Errorf("mounts of the removed container left: %v", m)
		}
	})

	// Tear the pod down the way the kubelet does.
	for _, name := range []string{"web", "chat"} {
		e.mustCrictl(t, "stop", "--timeout", "2", ctrs[name])
		e.mustCrictl(t, "rm", ctrs[name])
	}
	e.mustCrictl(t, "stopp", podID)
	e.mustCrictl(t, "rmp", podID)
	removed = true
	if out := strings.TrimSpace(e.mustCrictl(t, "pods", "-q")); out != "" {
		t.Errorf("crictl pods lists %q after rmp", out)
	}
	if out := strings.TrimSpace(e.mustCrictl(t, "ps", "-a", "-q")); out != "" {
		t.Errorf("crictl ps -a lists %q after rmp", out)
	}
	e.assertClean(t, pids, []string{podID})
}

func criExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil || !errors.Is(err, os.ErrNotExist)
}

// TestRuntimeOptionsConfigPath passes husk's options the way ctr and the Go
// client do for a runtime that is not runc: runtimeoptions.v1.Options with a
// ConfigPath (ctr --runtime-config-path). They reach the shim's start
// (ShimCgroup) and Create; a config that cannot be read fails the run
// cleanly.
func TestRuntimeOptionsConfigPath(t *testing.T) {
	if isRunc() {
		t.Skip("husk's options: ctr passes runc its own options instead")
	}
	dir := t.TempDir()
	shimCg := "/" + testNS + "/husk-shim-opts"
	cg, err := huskcg.New(shimCg, nil)
	if err != nil {
		t.Fatalf("create %s: %v", shimCg, err)
	}
	t.Cleanup(func() {
		// Once the shim is gone the cgroup is empty.
		waitFor(leakTimeout, func() bool { return cg.Delete() == nil })
	})
	good := filepath.Join(dir, "husk.toml")
	if err := os.WriteFile(good, []byte(fmt.Sprintf("# husk options\nShimCgroup = %q\nDebug = true\nUnknownKey = 'ignored'\n", shimCg)), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("applied", func(t *testing.T) {
		id := uniqueID(t)
		cleanupContainer(t, id)
		mustCtr(t, append(append([]string{"run", "-d", "--null-io"}, runtimeFlag()...),
			"--runtime-config-path", good, imageRef, id, "sleep", "100000")...)
		var shimPid int
		for _, p := range ourShims() {
			if p.id == id {
				shimPid = p.pid
			}
		}
		if shimPid == 0 {
			t.Fatalf("no shim process for %s", id)
		}
		if got := criCgroupOf(shimPid, "memory"); got != shimCg {
			t.Errorf("shim %d is in memory cgroup %q, want %q (ShimCgroup from --runtime-config-path)", shimPid, got, shimCg)
		}
		mustCtr(t, "task", "rm", "-f", id)
		mustCtr(t, "container", "rm", id)
		assertNoLeaks(t, id)
	})

	t.Run("unreadable", func(t *testing.T) {
		id := uniqueID(t)
		cleanupContainer(t, id)
		_, _, err := ctr(t, append(append([]string{"run", "-d", "--null-io"}, runtimeFlag()...),
			"--runtime-config-path", filepath.Join(dir, "missing.toml"), imageRef, id, "true")...)
		if err == nil || !strings.Contains(err.Error(), "config_path") {
			t.Errorf("ctr run with a missing --runtime-config-path: %v; want a failure naming config_path", err)
		}
		ctr(t, "container", "rm", id)
		assertNoLeaks(t, id)
	})
}

//go:build linux

// Package integration holds husk's end-to-end tests. TestMain starts one
// private containerd (own root, state, sockets and shim socket dir under a
// temp dir) for the whole package, imports the busybox test image into a
// namespace unique to the run, and tears everything down on exit.
//
// Prerequisites (all built by `make test`):
//
//	bin/containerd-shim-husk-v2               make build
//	.cache/bin/{containerd,ctr}              make containerd
//	.cache/busybox.tar                        make image
//
// Environment:
//
//	HUSK_TEST_RUNTIME   runtime under test: a runtime name (default
//	                    io.containerd.husk.v2) or an absolute shim path.
//	                    io.containerd.runc.v2 validates the harness itself
//	                    (needs .cache/bin/runc).
//	HUSK_TEST_LOG_DIR   if set, containerd's log is copied there on exit.
package integration

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/husk-runtime/husk/internal/testenv"
)

const (
	imageRef    = "docker.io/library/busybox:husk"
	huskRuntime = "io.containerd.husk.v2"
	snapshotter = "overlayfs"

	// ctrTimeout bounds every single ctr invocation.
	ctrTimeout = 30 * time.Second
	// leakTimeout is how long assertNoLeaks waits for asynchronous cleanup
	// (shim exit, cgroup removal) before reporting.
	leakTimeout = 10 * time.Second
)

// Paths and state shared by all tests; set up by TestMain.
var (
	repoRoot      string
	containerdBin string
	ctrBin        string
	imageTar      string

	// runtimeName is what tests pass to --runtime / WithRuntime.
	runtimeName string
	// shimPath is the absolute path of the shim binary for runtimeName.
	shimPath string
	// shimName is filepath.Base(shimPath), used to find shim processes.
	shimName string

	testNS string
	cd     *daemon
	client *containerd.Client
)

// daemon is the private containerd.
type daemon struct {
	dir          string
	root         string
	state        string
	address      string
	ttrpcAddress string
	socketDir    string
	configPath   string
	fifoDir      string // ctr --fifo-dir, instead of /run/containerd/fifo
	logPath      string
	cmd          *exec.Cmd
	exited       <-chan struct{}
	exitErr      error
}

func TestMain(m *testing.M) {
	flag.Parse()
	// containerd is started from this (locked) thread with Pdeathsig, so it
	// is killed if the test binary dies without running teardown.
	runtime.LockOSThread()
	os.Exit(runMain(m))
}

var teardownOnce sync.Once

func runMain(m *testing.M) (code int) {
	code = 1
	defer func() { teardownOnce.Do(func() { teardown(code) }) }()

	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "\nintegration: setup failed: %v\n\n", err)
		return 1
	}

	// Clean up on ^C / SIGTERM and shortly before `go test -timeout` would
	// kill the binary (which skips deferred functions).
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigc
		fmt.Fprintf(os.Stderr, "integration: got %v, cleaning up\n", s)
		teardownOnce.Do(func() { teardown(1) })
		os.Exit(130)
	}()
	if f := flag.Lookup("test.timeout"); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			if d, ok := g.Get().(time.Duration); ok && d > 0 {
				margin := 20 * time.Second
				if d < 2*margin {
					margin = d / 4
				}
				time.AfterFunc(d-margin, func() {
					buf := make([]byte, 1<<20)
					n := runtime.Stack(buf, true)
					fmt.Fprintf(os.Stderr, "integration: test timeout (%v) is near, cleaning up. goroutines:\n%s\n", d, buf[:n])
					teardownOnce.Do(func() { teardown(1) })
					os.Exit(2)
				})
			}
		}
	}

	code = m.Run()
	return code
}

func setup() error {
	if os.Geteuid() != 0 {
		return errors.New("the integration tests must run as root")
	}
	var err error
	if repoRoot, err = findRepoRoot(); err != nil {
		return err
	}
	hint := "run `make test` (or `make build containerd image`) from the repo root first"
	need := func(rel string) (string, error) {
		p := filepath.Join(repoRoot, rel)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("missing %s: %s", p, hint)
		}
		return p, nil
	}
	if containerdBin, err = need(".cache/bin/containerd"); err != nil {
		return err
	}
	if ctrBin, err = need(".cache/bin/ctr"); err != nil {
		return err
	}
	if imageTar, err = need(".cache/busybox.tar"); err != nil {
		return err
	}

	runtimeName = os.Getenv("HUSK_TEST_RUNTIME")
	if runtimeName == "" {
		runtimeName = huskRuntime
	}
	if filepath.IsAbs(runtimeName) {
		shimPath = runtimeName
		if _, err := os.Stat(shimPath); err != nil {
			return fmt.Errorf("HUSK_TEST_RUNTIME=%s: %w", runtimeName, err)
		}
	} else {
		bin, err := shimBinaryName(runtimeName)
		if err != nil {
			return err
		}
		for _, dir := range []string{"bin", ".cache/bin"} {
			p := filepath.Join(repoRoot, dir, bin)
			if _, err := os.Stat(p); err == nil {
				shimPath = p
				break
			}
		}
		if shimPath == "" {
			return fmt.Errorf("missing %s (shim for %s) in %s/bin or %s/.cache/bin: %s",
				bin, runtimeName, repoRoot, repoRoot, hint)
		}
	}
	shimName = filepath.Base(shimPath)
	if strings.Contains(shimName, "runc") {
		if _, err := os.Stat(filepath.Join(repoRoot, ".cache/bin/runc")); err != nil {
			if _, err := exec.LookPath("runc"); err != nil {
				return errors.New("runtime io.containerd.runc.v2 needs runc: GOBIN=$PWD/.cache/bin go install github.com/opencontainers/runc@v1.5.3")
			}
		}
	}

	if cd, err = startContainerd(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "integration: containerd pid %d, dir %s, namespace %s, runtime %s (%s)\n",
		cd.cmd.Process.Pid, cd.dir, testNS, runtimeName, shimPath)

	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 2*time.Minute)
	defer cancel()
	out, errOut, err := runCtrCtx(ctx, nil, "images", "import", "--platform", "linux/amd64", imageTar)
	if err != nil {
		return fmt.Errorf("importing %s: %w\nstdout: %s\nstderr: %s", imageTar, err, out, errOut)
	}
	img, err := client.GetImage(ctx, imageRef)
	if err != nil {
		return fmt.Errorf("image %s not found after import (stdout: %s): %w", imageRef, out, err)
	}
	unpacked, err := img.IsUnpacked(ctx, snapshotter)
	if err != nil {
		return fmt.Errorf("checking unpack of %s: %w", imageRef, err)
	}
	if !unpacked {
		return fmt.Errorf("image %s was imported but not unpacked for %s", imageRef, snapshotter)
	}
	return nil
}

// shimBinaryName maps io.containerd.NAME.VERSION to containerd-shim-NAME-VERSION,
// as containerd does.
func shimBinaryName(name string) (string, error) {
	parts := strings.Split(name, ".")
	if len(parts) < 2 {
		return "", fmt.Errorf("invalid runtime name %q", name)
	}
	return fmt.Sprintf("containerd-shim-%s-%s", parts[len(parts)-2], parts[len(parts)-1]), nil
}

func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/husk-runtime/husk")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the husk repo root (go.mod) above the working directory")
		}
		dir = parent
	}
}

func startContainerd() (*daemon, error) {
	// Keep the path short: the shim socket dir may be at most 42 bytes.
	dir, err := os.MkdirTemp("/tmp", "husk-it-")
	if err != nil {
		return nil, err
	}
	// Root of a user-namespaced container is an unprivileged host user: it
	// must be able to search its way to the bundle's rootfs, as containerd
	// makes its own state dirs 0711 for.
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d := &daemon{
		dir:          dir,
		root:         filepath.Join(dir, "root"),
		state:        filepath.Join(dir, "state"),
		address:      filepath.Join(dir, "c.sock"),
		ttrpcAddress: filepath.Join(dir, "c.sock.ttrpc"),
		socketDir:    filepath.Join(dir, "s"),
		configPath:   filepath.Join(dir, "config.toml"),
		fifoDir:      filepath.Join(dir, "fifo"),
		logPath:      filepath.Join(dir, "containerd.log"),
	}
	cd = d // teardown must find it even if the start fails
	testNS = "husk-it-" + strings.TrimPrefix(filepath.Base(dir), "husk-it-")

	cfg := testenv.Config{
		Root:            d.root,
		State:           d.state,
		Address:         d.address,
		TTRPCAddress:    d.ttrpcAddress,
		SocketDir:       d.socketDir,
		OptDir:          filepath.Join(dir, "opt"),
		DisabledPlugins: []string{"io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"},
		Extra: `
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.husk]
  runtime_type = 'io.containerd.husk.v2'
`,
	}
	if err := cfg.Write(d.configPath); err != nil {
		return nil, err
	}
	d.cmd, d.exited, err = testenv.StartContainerd(containerdBin, d.configPath, d.logPath, daemonEnv(),
		func(err error) { d.exitErr = err })
	if err != nil {
		return nil, err
	}
	if client, err = testenv.DialContainerd(d.address, testNS, d.exited, 30*time.Second, 100*time.Millisecond); err != nil {
		if errors.Is(err, testenv.ErrExited) {
			err = fmt.Errorf("%w (%v)", err, d.exitErr)
		}
		return nil, fmt.Errorf("%w; log:\n%s", err, tail(d.logPath, 40))
	}
	return d, nil
}

// daemonEnv puts husk's bin/ (then .cache/bin for runc and the runc shim)
// first in containerd's PATH so runtime names resolve to our binaries.
func daemonEnv() []string {
	return testenv.ContainerdEnv(filepath.Join(repoRoot, "bin"), filepath.Join(repoRoot, ".cache/bin"))
}

// teardown removes everything the package created. It never touches
// processes, mounts or cgroups that do not belong to this run.
func teardown(code int) {
	if cd == nil {
		return
	}
	running.Range(func(k, _ any) bool {
		if c := k.(*exec.Cmd); c.Process != nil {
			_ = c.Process.Kill()
		}
		return true
	})
	if client != nil {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 60*time.Second)
		if cs, err := client.Containers(ctx); err == nil {
			for _, c := range cs {
				fmt.Fprintf(os.Stderr, "integration: teardown: removing leftover container %s\n", c.ID())
				forceDelete(ctx, c.ID())
			}
		}
		cancel()
		client.Close()
	}

	testenv.StopContainerd(cd.cmd, cd.exited, 10*time.Second, teardownLogf)

	// Shims this containerd started and anything left in this run's cgroups.
	for _, p := range ourShims() {
		fmt.Fprintf(os.Stderr, "integration: teardown: killing leftover shim pid %d (%s)\n", p.pid, p.cmdline)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	testenv.RemoveCgroups(testNS, true, teardownLogf)
	testenv.UnmountAll(cd.dir, teardownLogf)

	if code != 0 {
		fmt.Fprintf(os.Stderr, "\n----- containerd log (last 120 lines of %s) -----\n%s\n-----\n", cd.logPath, tail(cd.logPath, 120))
	}
	if dir := os.Getenv("HUSK_TEST_LOG_DIR"); dir != "" {
		if b, err := os.ReadFile(cd.logPath); err == nil {
			_ = os.MkdirAll(dir, 0o755)
			dst := filepath.Join(dir, "containerd-"+testNS+".log")
			if err := os.WriteFile(dst, b, 0o644); err == nil {
				fmt.Fprintf(os.Stderr, "integration: containerd log saved to %s\n", dst)
			}
		}
	}

	if left := mountsUnder(cd.dir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: teardown: NOT removing %s, still mounted: %v\n", cd.dir, left)
	} else if err := os.RemoveAll(cd.dir); err != nil {
		fmt.Fprintf(os.Stderr, "integration: teardown: %v\n", err)
	}
	// The runc shim keeps its state under a global root, per namespace.
	_ = os.RemoveAll(filepath.Join("/run/containerd/runc", testNS))
}

// teardownLogf prints a teardown problem of the package's containerd (or
// of a test's: TestCRI) to stderr.
func teardownLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "integration: teardown: "+format+"\n", args...)
}

// cgroupPids lists the processes in cgroup dir.
func cgroupPids(dir string) []int { return testenv.CgroupPids(dir) }

// cgroupBases lists the cgroup hierarchies: /sys/fs/cgroup itself (cgroup v2)
// and every mounted hierarchy below it (v1 and hybrid).
func cgroupBases() []string { return testenv.CgroupBases() }

// ---------------------------------------------------------------------------
// ctr helpers

// ctrError is returned by ctr helpers when ctr fails; it keeps the exit code.
type ctrError struct {
	args   []string
	stderr string
	err    error
}

func (e *ctrError) Error() string {
	return fmt.Sprintf("ctr %s: %v (stderr: %q)", strings.Join(e.args, " "), e.err, strings.TrimSpace(e.stderr))
}

func (e *ctrError) Unwrap() error { return e.err }

// exitCode returns the exit code of a failed command, 0 for nil, -1 if the
// command did not exit normally.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// ctr runs ctr against the test containerd in the test namespace.
func ctr(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runCtr(t, nil, args...)
}

// runCtr is ctr with stdin.
func runCtr(t testing.TB, stdin io.Reader, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctrTimeout)
	defer cancel()
	return runCtrCtx(ctx, stdin, args...)
}

// mustCtr runs ctr and fails the test if it does not exit 0.
func mustCtr(t testing.TB, args ...string) string {
	t.Helper()
	out, _, err := ctr(t, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, truncate(out, 2000))
	}
	return out
}

// running holds the ctr commands in flight (*exec.Cmd), for teardown.
var running sync.Map

func runCtrCtx(ctx context.Context, stdin io.Reader, args ...string) (string, string, error) {
	full := append([]string{"--address", cd.address, "--namespace", testNS}, args...)
	cmd := exec.CommandContext(ctx, ctrBin, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	cmd.WaitDelay = 5 * time.Second
	// Killed with the test binary; teardown also kills ctrs still running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", "", &ctrError{args: args, err: err}
	}
	running.Store(cmd, struct{}{})
	err := cmd.Wait()
	running.Delete(cmd)
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out: %w (%v)", ctx.Err(), err)
	}
	if err != nil {
		err = &ctrError{args: args, stderr: stderr.String(), err: err}
	}
	return stdout.String(), stderr.String(), err
}

// runtimeFlag is the --runtime argument for the runtime under test.
func runtimeFlag() []string { return []string{"--runtime", runtimeName} }

// ---------------------------------------------------------------------------
// client helpers

// testCtx returns a namespaced context cancelled when the test ends.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testImage(t testing.TB) containerd.Image {
	t.Helper()
	img, err := client.GetImage(testCtx(t), imageRef)
	if err != nil {
		t.Fatalf("get image %s: %v", imageRef, err)
	}
	return img
}

// cleanupContainer makes sure container id is gone when the test ends, even
// if the test failed half-way.
func cleanupContainer(t testing.TB, id string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 60*time.Second)
		defer cancel()
		forceDelete(ctx, id)
	})
}

// forceDelete kills and deletes the task of container id (if any), then the
// container and its snapshot. Missing objects are ignored.
func forceDelete(ctx context.Context, id string) {
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		return
	}
	if task, err := c.Task(ctx, nil); err == nil {
		testenv.KillTask(ctx, task, 10*time.Second)
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			fmt.Fprintf(os.Stderr, "integration: cleanup: delete task %s: %v\n", id, err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		fmt.Fprintf(os.Stderr, "integration: cleanup: delete container %s: %v\n", id, err)
	}
}

var idCounter atomic.Int64

var nonAlnum = regexp.MustCompile(`[^a-z0-9]+`)

// uniqueID returns a container id derived from the test name, unique within
// the run and valid for containerd (and as a cgroup/dir name).
func uniqueID(t testing.TB) string {
	name := nonAlnum.ReplaceAllString(strings.ToLower(t.Name()), "-")
	name = strings.Trim(strings.TrimPrefix(name, "test"), "-")
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
	}
	if name == "" {
		name = "c"
	}
	return fmt.Sprintf("%s-%d", name, idCounter.Add(1))
}

// ---------------------------------------------------------------------------
// leak checks

type proc struct {
	pid     int
	cmdline string
	id      string // value of -id, if any
}

// ourShims lists live processes of the shim under test (or any containerd
// shim) that belong to this run's containerd: their command line or
// environment names our containerd address, or their cwd is in our state dir.
func ourShims() []proc {
	var out []proc
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // gone or a zombie
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		cmdline := strings.Join(args, " ")
		if exe := filepath.Base(args[0]); exe != shimName && !strings.HasPrefix(exe, "containerd-shim") {
			continue
		}
		ours := strings.Contains(cmdline, cd.address)
		if !ours {
			if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil {
				ours = bytes.Contains(env, []byte("="+cd.address+"\x00")) || bytes.Contains(env, []byte("=unix://"+cd.address+"\x00"))
			}
		}
		if !ours {
			if cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd")); err == nil {
				ours = strings.HasPrefix(cwd, cd.dir+"/")
			}
		}
		if !ours {
			continue
		}
		p := proc{pid: pid, cmdline: cmdline}
		for i, a := range args {
			if (a == "-id" || a == "--id") && i+1 < len(args) {
				p.id = args[i+1]
			}
		}
		out = append(out, p)
	}
	return out
}

// mountsUnder returns mount points at or below dir, from /proc/self/mountinfo.
func mountsUnder(dir string) []string { return testenv.MountsUnder(dir) }

// bundleDir is where containerd keeps the bundle of task id.
func bundleDir(id string) string {
	return filepath.Join(cd.state, "io.containerd.runtime.v2.task", testNS, id)
}

// leaks returns what is left behind for container id, ignoring the
// containers listed in keep (whose tasks the test expects to be alive).
func leaks(id string, keep ...string) []string {
	var problems []string
	keepSet := map[string]bool{}
	for _, k := range keep {
		keepSet[k] = true
	}

	for _, base := range []string{cd.root, cd.state} {
		for _, mp := range mountsUnder(base) {
			skip := false
			for k := range keepSet {
				if mp == bundleDir(k) || strings.HasPrefix(mp, bundleDir(k)+"/") {
					skip = true
				}
			}
			if !skip {
				problems = append(problems, "mount left: "+mp)
			}
		}
	}
	for _, p := range ourShims() {
		if p.id != "" && keepSet[p.id] {
			continue
		}
		problems = append(problems, fmt.Sprintf("shim process left: pid %d: %s", p.pid, p.cmdline))
	}
	if _, err := os.Lstat(bundleDir(id)); err == nil {
		entries, _ := os.ReadDir(bundleDir(id))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		problems = append(problems, fmt.Sprintf("bundle dir left: %s %v", bundleDir(id), names))
	}
	for _, base := range cgroupBases() {
		p := filepath.Join(base, testNS, id)
		if _, err := os.Stat(p); err == nil {
			problems = append(problems, fmt.Sprintf("cgroup left: %s (procs %v)", p, cgroupPids(p)))
		}
	}
	return problems
}

// assertNoLeaks checks that nothing of container id is left behind: no mount
// under containerd's root/state, no shim process of this run (except for the
// containers in keep), no bundle dir, no cgroup /sys/fs/cgroup/*/<ns>/<id>.
// Cleanup is asynchronous (the shim exits after delete), so it retries for a
// few seconds before failing.
func assertNoLeaks(t testing.TB, id string, keep ...string) {
	t.Helper()
	deadline := time.Now().Add(leakTimeout)
	for {
		problems := leaks(id, keep...)
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("container %s left things behind (after %v):\n  %s", id, leakTimeout, strings.Join(problems, "\n  "))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// misc

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes total)", len(s))
}

// syncBuffer is a bytes.Buffer safe for concurrent Write and String.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor polls cond every 50ms until it is true or timeout passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// processes and files

// procStat reads /proc/<pid>/stat: the command name, the state letter and
// the parent pid; ok is false if pid is gone or the line cannot be parsed.
func procStat(pid int) (comm string, state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", 0, 0, false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i {
		return "", 0, 0, false
	}
	f := strings.Fields(s[j+1:])
	if len(f) < 2 || len(f[0]) != 1 {
		return "", 0, 0, false
	}
	if ppid, err = strconv.Atoi(f[1]); err != nil {
		return "", 0, 0, false
	}
	return s[i+1 : j], f[0][0], ppid, true
}

// procAlive says pid exists and is neither a zombie nor dead. (This
// machine's PID 1 reaps orphaned zombies only now and then; a zombie is dead
// for our purposes.)
func procAlive(pid int) bool {
	_, state, _, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// procParent is the parent pid of pid (0 if it cannot be read).
func procParent(pid int) int {
	_, _, ppid, _ := procStat(pid)
	return ppid
}

// isZombie is a procChildren filter: the zombie children.
func isZombie(_ string, state byte) bool { return state == 'Z' }

// procChildren lists the children of parent for which keep(comm, state)
// holds.
func procChildren(parent int, keep func(comm string, state byte) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if comm, state, ppid, ok := procStat(pid); ok && ppid == parent && keep(comm, state) {
			out = append(out, pid)
		}
	}
	return out
}

// waitProcGone waits up to timeout until pid no longer runs a command line
// starting with cmd (its arguments joined by spaces): it exited, is a zombie
// or its pid now belongs to another program.
func waitProcGone(pid int, cmd string, timeout time.Duration) bool {
	return waitFor(timeout, func() bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err != nil || !strings.HasPrefix(strings.ReplaceAll(string(b), "\x00", " "), cmd)
	})
}

// fileSize is the size of file p, 0 if it cannot be read.
func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// fileGrows reports whether file p grows within timeout (a container's
// counter loop runs).
func fileGrows(p string, timeout time.Duration) bool {
	s0 := fileSize(p)
	return waitFor(timeout, func() bool { return fileSize(p) > s0 })
}

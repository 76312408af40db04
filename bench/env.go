//go:build linux

package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/husk-runtime/husk/internal/testenv"
)

const (
	imageRef    = "docker.io/library/busybox:husk"
	snapshotter = "overlayfs"
	huskType    = "io.containerd.husk.v2"
	runcType    = "io.containerd.runc.v2"
	// groupLabel puts containers into one shim (husk and the runc shim both
	// honour it).
	groupLabel = "io.kubernetes.cri.sandbox-id"
	ctrTimeout = 60 * time.Second
)

// runtimeDef is one of the compared runtimes.
type runtimeDef struct {
	Name string // husk, runc, crun
	Type string // the containerd runtime type
	// Binary is the runc shim's BinaryName option (empty for husk).
	Binary string
	// Shim is the base name of the shim binary, to find its processes.
	Shim string
}

// ctrArgs are the ctr flags that select the runtime.
func (r runtimeDef) ctrArgs() []string {
	a := []string{"--runtime", r.Type}
	if r.Binary != "" {
		a = append(a, "--runc-binary", r.Binary)
	}
	return a
}

// clientOpt selects the runtime for the Go client.
func (r runtimeDef) clientOpt() containerd.NewContainerOpts {
	if r.Binary != "" {
		return containerd.WithRuntime(r.Type, &options.Options{BinaryName: r.Binary})
	}
	return containerd.WithRuntime(r.Type, nil)
}

// env is the private containerd and everything the run created.
type env struct {
	repo    string
	dir     string // temp dir: config, root, state, sockets, log, bin
	binDir  string // private copies of the shims (so PSS is not shared with other users of the same files)
	ns      string
	address string
	fifoDir string
	logPath string
	ctrBin  string

	cmd    *exec.Cmd
	exited <-chan struct{}
	client *containerd.Client

	mu      sync.Mutex
	running map[*exec.Cmd]struct{}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return out.Close()
}

// startEnv starts a private containerd whose PATH begins with a private bin
// dir holding copies of the husk shim and the runc shim.
func startEnv(repo string, bins map[string]string) (*env, error) {
	dir, err := os.MkdirTemp("/tmp", "husk-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{
		repo:    repo,
		dir:     dir,
		binDir:  filepath.Join(dir, "bin"),
		ns:      "husk-bench-" + strings.ToLower(strings.TrimPrefix(filepath.Base(dir), "husk-bench-")),
		address: filepath.Join(dir, "c.sock"),
		fifoDir: filepath.Join(dir, "fifo"),
		logPath: filepath.Join(dir, "containerd.log"),
		ctrBin:  filepath.Join(repo, ".cache/bin/ctr"),
		running: map[*exec.Cmd]struct{}{},
	}
	if err := os.MkdirAll(e.binDir, 0o755); err != nil {
		return e, err
	}
	for name, src := range bins {
		if err := copyFile(src, filepath.Join(e.binDir, name), 0o755); err != nil {
			return e, err
		}
	}
	// debug: the shims are started with -debug, so husk's per-phase timings
	// ("container created" / "container started") land in containerd's log.
	cfg := testenv.Config{
		Root:            filepath.Join(dir, "root"),
		State:           filepath.Join(dir, "state"),
		Address:         e.address,
		TTRPCAddress:    e.address + ".ttrpc",
		SocketDir:       filepath.Join(dir, "s"),
		OptDir:          filepath.Join(dir, "opt"),
		DisabledPlugins: []string{"io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"},
	}
	cfgPath := filepath.Join(dir, "config.toml")
	if err := cfg.Write(cfgPath); err != nil {
		return e, err
	}
	cmd, exited, err := testenv.StartContainerd(filepath.Join(repo, ".cache/bin/containerd"), cfgPath, e.logPath,
		testenv.ContainerdEnv(e.binDir), nil)
	if err != nil {
		return e, err
	}
	e.cmd, e.exited = cmd, exited
	if e.client, err = testenv.DialContainerd(e.address, e.ns, e.exited, 30*time.Second, 50*time.Millisecond); err != nil {
		return e, fmt.Errorf("%w; log:\n%s", err, tail(e.logPath, 30))
	}
	out, err := e.ctr(context.Background(), "images", "import", "--platform", "linux/amd64", filepath.Join(repo, ".cache/busybox.tar"))
	if err != nil {
		return e, fmt.Errorf("import image: %w (%s)", err, out)
	}
	return e, nil
}

func (e *env) ctx() context.Context {
	return namespaces.WithNamespace(context.Background(), e.ns)
}

// ctr runs ctr against the private containerd and returns its combined
// output.
func (e *env) ctr(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, ctrTimeout)
	defer cancel()
	cmd := e.ctrCmd(ctx, args...)
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := e.runCmd(cmd)
	if err != nil {
		return buf.String(), fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(buf.String()))
	}
	return buf.String(), nil
}

func (e *env) ctrCmd(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--address", e.address, "--namespace", e.ns}, args...)
	cmd := exec.CommandContext(ctx, e.ctrBin, full...)
	cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// runCmd runs cmd and remembers it while it runs, so teardown can kill it.
func (e *env) runCmd(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	e.mu.Lock()
	e.running[cmd] = struct{}{}
	e.mu.Unlock()
	err := cmd.Wait()
	e.mu.Lock()
	delete(e.running, cmd)
	e.mu.Unlock()
	return err
}

// forceDelete removes container id, its task and its snapshot, whatever
// state they are in. Missing objects are fine.
func (e *env) forceDelete(ctx context.Context, id string) error {
	c, err := e.client.LoadContainer(ctx, id)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return nil
		}
		return err
	}
	if task, err := c.Task(ctx, nil); err == nil {
		testenv.KillTask(ctx, task, 10*time.Second)
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			return fmt.Errorf("delete task %s: %w", id, err)
		}
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("delete container %s: %w", id, err)
	}
	return nil
}

// teardown removes everything the run created: containers, containerd, shims
// left behind, the namespace's cgroups, mounts under the temp dir and the dir
// itself (unless keep).
func (e *env) teardown(keep bool) {
	if e == nil {
		return
	}
	e.mu.Lock()
	for c := range e.running {
		if c.Process != nil {
			_ = c.Process.Kill()
		}
	}
	e.mu.Unlock()
	if e.client != nil {
		ctx, cancel := context.WithTimeout(e.ctx(), 90*time.Second)
		if cs, err := e.client.Containers(ctx); err == nil {
			for _, c := range cs {
				if err := e.forceDelete(ctx, c.ID()); err != nil {
					fmt.Fprintf(os.Stderr, "bench: teardown: %v\n", err)
				}
			}
		}
		cancel()
		e.client.Close()
	}
	// nil Logf: the bench does not report a containerd that needed SIGKILL.
	testenv.StopContainerd(e.cmd, e.exited, 10*time.Second, nil)
	for _, p := range e.shimPids(nil, "") {
		fmt.Fprintf(os.Stderr, "bench: teardown: killing leftover shim %d\n", p)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	// Nothing of the bench freezes a cgroup: no thaw before the kill.
	testenv.RemoveCgroups(e.ns, false, teardownLogf)
	testenv.UnmountAll(e.dir, teardownLogf)
	// The runc shim keeps runc's (and here crun's) state under a global
	// root, per namespace.
	_ = os.RemoveAll(filepath.Join("/run/containerd/runc", e.ns))
	if keep {
		fmt.Fprintf(os.Stderr, "bench: kept %s (containerd log: %s)\n", e.dir, e.logPath)
		return
	}
	if left := testenv.MountsUnder(e.dir); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "bench: teardown: not removing %s, still mounted: %v\n", e.dir, left)
	} else if err := os.RemoveAll(e.dir); err != nil {
		fmt.Fprintf(os.Stderr, "bench: teardown: %v\n", err)
	}
}

// shimPids lists the live shim daemons started by our containerd: their
// command line names our containerd address. With rt set, only that
// runtime's shim binary; with idPrefix set, only shims started for a
// container whose id has that prefix (the daemon's -id is the first
// container of its group).
func (e *env) shimPids(rt *runtimeDef, idPrefix string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		base := filepath.Base(args[0])
		if !strings.HasPrefix(base, "containerd-shim") {
			continue
		}
		if rt != nil && base != rt.Shim {
			continue
		}
		ours, idOK := false, idPrefix == ""
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-address" && args[i+1] == e.address {
				ours = true
			}
			if args[i] == "-id" && strings.HasPrefix(args[i+1], idPrefix) {
				idOK = true
			}
		}
		if ours && idOK {
			out = append(out, pid)
		}
	}
	return out
}

// teardownLogf prints a teardown problem to stderr.
func teardownLogf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: teardown: "+format+"\n", args...)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/api/types/runc/options"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/moby/sys/mountinfo"
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
	exited chan struct{}
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
		exited:  make(chan struct{}),
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
	config := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

# debug: the shims are started with -debug, so husk's per-phase timings
# ("container created" / "container started") land in this log.
[debug]
  level = "debug"

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %[5]q

[plugins.'io.containerd.internal.v1.opt']
  path = %[6]q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), e.address, e.address+".ttrpc",
		filepath.Join(dir, "s"), filepath.Join(dir, "opt"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		return e, err
	}
	logf, err := os.Create(e.logPath)
	if err != nil {
		return e, err
	}
	defer logf.Close()
	e.cmd = exec.Command(filepath.Join(repo, ".cache/bin/containerd"), "--config", cfgPath)
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	e.cmd.Env = append(filteredEnv("PATH", "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS"),
		"PATH="+e.binDir+":"+os.Getenv("PATH"), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		return e, fmt.Errorf("start containerd: %w", err)
	}
	go func() { e.cmd.Wait(); close(e.exited) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-e.exited:
			return e, fmt.Errorf("containerd exited during startup; log:\n%s", tail(e.logPath, 30))
		default:
		}
		if _, err := os.Stat(e.address); err == nil {
			c, err := containerd.New(e.address, containerd.WithDefaultNamespace(e.ns), containerd.WithTimeout(2*time.Second))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = c.Version(ctx)
				cancel()
				if err == nil {
					e.client = c
					break
				}
				c.Close()
			}
		}
		if time.Now().After(deadline) {
			return e, fmt.Errorf("containerd did not answer on %s within 30s; log:\n%s", e.address, tail(e.logPath, 30))
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := e.ctr(context.Background(), "images", "import", "--platform", "linux/amd64", filepath.Join(repo, ".cache/busybox.tar"))
	if err != nil {
		return e, fmt.Errorf("import image: %w (%s)", err, out)
	}
	return e, nil
}

func filteredEnv(drop ...string) []string {
	var out []string
next:
	for _, kv := range os.Environ() {
		for _, d := range drop {
			if strings.HasPrefix(kv, d+"=") {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
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
		if st, err := task.Status(ctx); err == nil && st.Status != containerd.Stopped && st.Status != containerd.Created {
			if ch, err := task.Wait(ctx); err == nil {
				_ = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
				select {
				case <-ch:
				case <-time.After(10 * time.Second):
				}
			}
		}
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
	if e.cmd != nil && e.cmd.Process != nil {
		select {
		case <-e.exited:
		default:
			_ = e.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-e.exited:
			case <-time.After(10 * time.Second):
				_ = e.cmd.Process.Kill()
				<-e.exited
			}
		}
	}
	for _, p := range e.shimPids(nil, "") {
		fmt.Fprintf(os.Stderr, "bench: teardown: killing leftover shim %d\n", p)
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	cleanupCgroups(e.ns)
	mounts := mountsUnder(e.dir)
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	for _, mp := range mounts {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			fmt.Fprintf(os.Stderr, "bench: teardown: unmount %s: %v\n", mp, err)
		}
	}
	// The runc shim keeps runc's (and here crun's) state under a global
	// root, per namespace.
	_ = os.RemoveAll(filepath.Join("/run/containerd/runc", e.ns))
	if keep {
		fmt.Fprintf(os.Stderr, "bench: kept %s (containerd log: %s)\n", e.dir, e.logPath)
		return
	}
	if left := mountsUnder(e.dir); len(left) > 0 {
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

// cleanupCgroups kills what is left in the namespace's cgroups (ctr puts
// containers in /<namespace>/<id>) and removes them, deepest first.
func cleanupCgroups(ns string) {
	var dirs []string
	var bases []string
	var st syscall.Statfs_t
	if err := syscall.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == 0x63677270 {
		bases = append(bases, "/sys/fs/cgroup")
	}
	if ents, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, ent := range ents {
			if ent.IsDir() {
				bases = append(bases, filepath.Join("/sys/fs/cgroup", ent.Name()))
			}
		}
	}
	for _, b := range bases {
		_ = filepath.WalkDir(filepath.Join(b, ns), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "cgroup.procs")); err == nil {
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	for _, d := range dirs {
		var err error
		for range 50 {
			if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil && !errors.Is(err, syscall.ENOENT) {
			fmt.Fprintf(os.Stderr, "bench: teardown: rmdir %s: %v\n", d, err)
		}
	}
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Mountpoint
	}
	return out
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

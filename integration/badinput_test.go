//go:build linux

package integration

// Bad input (issue 7): malformed specs through containerd, and malformed
// requests straight to a shim's ttrpc task API (the containerd client
// refuses to send some of them). Each must fail with a clear error and leave
// nothing behind.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/fifo"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// ---------------------------------------------------------------------------
// a shim started by the test, spoken to over ttrpc

// relShim is a husk shim daemon the test started itself, the way
// containerd does (the `start` action with bootstrap params on stdin, in a
// bundle dir with a `log` FIFO), with a ttrpc task client on its socket.
// Its events still go to the package's containerd.
type relShim struct {
	t         *testing.T
	id        string
	dir       string // temp dir holding the bundles and the socket dir
	bundle    string // the first bundle, the daemon's cwd
	socketDir string
	address   string
	pid       int
	log       *syncBuffer
	conn      net.Conn
	task      taskAPI.TTRPCTaskService
	rootfs    string // a busybox rootfs shared by the bundles
}

// relStartDirectShim starts a shim for a first container id. The bundle gets a
// valid config.json, which tests may overwrite before Create.
func relStartDirectShim(t *testing.T, id string) *relShim {
	return relStartShim(t, id, false)
}

// relStartShim is relStartDirectShim; an isolated shim is given containerd
// addresses where nothing listens (its events go nowhere), so that the
// harness's leak checks, which look for shims of the package's containerd,
// do not count it.
func relStartShim(t *testing.T, id string, isolated bool) *relShim {
	t.Helper()
	if strings.Contains(shimName, "runc") {
		t.Skip("direct shim tests talk to husk's own shim")
	}
	dir, err := os.MkdirTemp("/tmp", "hs-") // short: socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	s := &relShim{t: t, id: id, dir: dir, socketDir: filepath.Join(dir, "s"), log: &syncBuffer{}}
	t.Cleanup(s.cleanup)
	if err := os.Mkdir(s.socketDir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.rootfs = relBusyboxRootfs(t, filepath.Join(dir, "rootfs"))
	s.bundle = s.newBundle(id, nil)

	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 30*time.Second)
	defer cancel()
	logf, err := fifo.OpenFifo(ctx, filepath.Join(s.bundle, "log"), unix.O_RDONLY|unix.O_CREAT|unix.O_NONBLOCK, 0o700)
	if err != nil {
		t.Fatalf("shim log fifo: %v", err)
	}
	go func() { io.Copy(s.log, logf); logf.Close() }()

	socketDir := s.socketDir
	grpcAddress, ttrpcAddress := cd.address, cd.ttrpcAddress
	if isolated {
		grpcAddress, ttrpcAddress = filepath.Join(dir, "none.sock"), filepath.Join(dir, "none.sock.ttrpc")
	}
	params, err := proto.Marshal(&bootapi.BootstrapParams{
		InstanceID:             id,
		Namespace:              testNS,
		LogLevel:               bootapi.LogLevel_LOG_LEVEL_DEBUG,
		ContainerdGrpcAddress:  grpcAddress,
		ContainerdTtrpcAddress: ttrpcAddress,
		ContainerdBinary:       containerdBin,
		SocketDir:              &socketDir,
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, shimPath, "-namespace", testNS, "-address", grpcAddress,
		"-publish-binary", containerdBin, "-id", id, "-debug", "start")
	cmd.Dir = s.bundle
	cmd.Env = append(daemonEnv(), "TTRPC_ADDRESS="+ttrpcAddress, "GRPC_ADDRESS="+grpcAddress, "NAMESPACE="+testNS)
	cmd.Stdin = bytes.NewReader(params)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("shim start: %v (stderr %q)", err, stderr.String())
	}
	var res bootapi.BootstrapResult
	if err := proto.Unmarshal(stdout.Bytes(), &res); err != nil || res.Address == "" {
		t.Fatalf("shim start printed %q: %v", stdout.String(), err)
	}
	s.address = res.Address
	s.conn, err = net.Dial("unix", strings.TrimPrefix(res.Address, "unix://"))
	if err != nil {
		t.Fatalf("connect to shim %s: %v", res.Address, err)
	}
	s.task = taskAPI.NewTTRPCTaskClient(ttrpc.NewClient(s.conn))
	cr, err := s.task.Connect(ctx, &taskAPI.ConnectRequest{ID: id})
	if err != nil {
		t.Fatalf("Connect to shim: %v", err)
	}
	s.pid = int(cr.ShimPid)
	return s
}

// relBusyboxRootfs creates a minimal rootfs with the host's static busybox.
func relBusyboxRootfs(t *testing.T, dir string) string {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skipf("direct shim tests need the host's /bin/busybox (busybox-static): %v", err)
	}
	for _, d := range []string{"bin", "proc", "dev", "sys", "tmp", "etc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "sleep", "true", "cat", "echo"} {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// newBundle creates the bundle of container id with containerd's default
// spec (cgroupsPath /<namespace>/<id>), changed by opts.
func (s *relShim) newBundle(id string, opts []oci.SpecOpts) string {
	s.t.Helper()
	bundle := filepath.Join(s.dir, id)
	if err := os.Mkdir(bundle, 0o711); err != nil {
		s.t.Fatal(err)
	}
	ctx := namespaces.WithNamespace(context.Background(), testNS)
	opts = append([]oci.SpecOpts{oci.WithProcessArgs("sleep", "1000"), oci.WithRootFSPath(s.rootfs), oci.WithRootFSReadonly()}, opts...)
	spec, err := oci.GenerateSpec(ctx, nil, &containers.Container{ID: id}, opts...)
	if err != nil {
		s.t.Fatalf("generate spec: %v", err)
	}
	data, err := json.Marshal(spec)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	return bundle
}

func (s *relShim) ctx() context.Context {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 30*time.Second)
	s.t.Cleanup(cancel)
	return ctx
}

// create creates container id from its bundle (no stdio).
func (s *relShim) create(id, bundle string) (*taskAPI.CreateTaskResponse, error) {
	return s.task.Create(s.ctx(), &taskAPI.CreateTaskRequest{ID: id, Bundle: bundle})
}

// stop kills and deletes container id (ignoring errors: it may not exist).
func (s *relShim) stop(id string) {
	ctx := s.ctx()
	if _, err := s.task.State(ctx, &taskAPI.StateRequest{ID: id}); err != nil {
		return
	}
	s.task.Kill(ctx, &taskAPI.KillRequest{ID: id, Signal: uint32(syscall.SIGKILL), All: true})
	waitFor(10*time.Second, func() bool {
		st, err := s.task.State(ctx, &taskAPI.StateRequest{ID: id})
		return err != nil || st.Status.String() == "STOPPED"
	})
	if _, err := s.task.Delete(ctx, &taskAPI.DeleteRequest{ID: id}); err != nil {
		s.t.Errorf("delete %s: %v", id, err)
	}
}

// alive says the shim daemon still runs (a zombie does not).
func (s *relShim) alive() bool { return procAlive(s.pid) }

// shutdown asks the shim to exit and waits for it.
func (s *relShim) shutdown() error {
	if _, err := s.task.Shutdown(s.ctx(), &taskAPI.ShutdownRequest{ID: s.id}); err != nil && !errors.Is(err, ttrpc.ErrClosed) {
		return fmt.Errorf("Shutdown: %w", err)
	}
	if !waitFor(10*time.Second, func() bool { return !s.alive() }) {
		return fmt.Errorf("shim %d still runs 10s after Shutdown", s.pid)
	}
	return nil
}

// leftovers lists what container id left behind: mounts under the test's
// dir, its cgroup, its husk-state.json, children of the shim.
func (s *relShim) leftovers(id string) []string {
	var out []string
	for _, m := range mountsUnder(s.dir) {
		out = append(out, "mount "+m)
	}
	if id != "" && !strings.Contains(id, "/") {
		for _, d := range relCgroupDirs(id) {
			out = append(out, "cgroup "+d)
		}
		if _, err := os.Stat(filepath.Join(s.dir, id, "husk-state.json")); err == nil {
			out = append(out, "state file "+filepath.Join(s.dir, id, "husk-state.json"))
		}
	}
	if s.pid > 0 {
		for _, c := range procChildren(s.pid, func(_ string, st byte) bool { return st != 'Z' }) {
			out = append(out, fmt.Sprintf("shim child %d", c))
		}
	}
	return out
}

func (s *relShim) cleanup() {
	t := s.t
	if s.pid > 0 && s.alive() {
		if s.task != nil {
			if err := s.shutdown(); err != nil {
				t.Logf("direct shim: %v; killing it", err)
			}
		}
		if s.alive() {
			syscall.Kill(s.pid, syscall.SIGKILL)
			waitFor(5*time.Second, func() bool { return !s.alive() })
		}
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if left := mountsUnder(s.dir); len(left) > 0 {
		t.Errorf("direct shim left mounts: %v", left)
		slices.Reverse(left)
		for _, m := range left {
			unix.Unmount(m, unix.MNT_DETACH)
		}
	}
	if t.Failed() {
		t.Logf("direct shim log:\n%s", truncate(s.log.String(), 8000))
	}
	os.RemoveAll(s.dir)
}

// relErrKind names the errdefs kind of a ttrpc/grpc error.
func relErrKind(err error) string {
	if _, ok := status.FromError(err); ok {
		err = errgrpc.ToNative(err) // a ttrpc error; the client's are native
	}
	for _, k := range []struct {
		name string
		is   func(error) bool
	}{
		{"InvalidArgument", errdefs.IsInvalidArgument},
		{"NotFound", errdefs.IsNotFound},
		{"AlreadyExists", errdefs.IsAlreadyExists},
		{"FailedPrecondition", errdefs.IsFailedPrecondition},
		{"NotImplemented", errdefs.IsNotImplemented},
	} {
		if k.is(err) {
			return k.name
		}
	}
	return "Unknown"
}

// ---------------------------------------------------------------------------
// malformed specs, through containerd

func relSpecOpt(f func(s *oci.Spec)) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		f(s)
		return nil
	}
}

func relWithNamespace(ns specs.LinuxNamespace) oci.SpecOpts {
	return relSpecOpt(func(s *oci.Spec) { s.Linux.Namespaces = append(s.Linux.Namespaces, ns) })
}

func relWithNSPath(typ specs.LinuxNamespaceType, path string) oci.SpecOpts {
	return relSpecOpt(func(s *oci.Spec) {
		for i, ns := range s.Linux.Namespaces {
			if ns.Type == typ {
				s.Linux.Namespaces[i].Path = path
			}
		}
	})
}

func relWithMount(m specs.Mount) oci.SpecOpts {
	return relSpecOpt(func(s *oci.Spec) { s.Mounts = append(s.Mounts, m) })
}

func relWithResources(f func(r *specs.LinuxResources)) oci.SpecOpts {
	return relSpecOpt(func(s *oci.Spec) {
		if s.Linux.Resources == nil {
			s.Linux.Resources = &specs.LinuxResources{}
		}
		f(s.Linux.Resources)
	})
}

func relI64(v int64) *int64 { return &v }

type relBadSpec struct {
	name string
	opts []oci.SpecOpts
	// noSnapshot: the container has no rootfs snapshot; rootfs (maybe
	// empty) is given to NewTask.
	noSnapshot bool
	rootfs     []mount.Mount
	want       []string // the error must contain one of these (case-insensitive)
	kind       string   // errdefs kind, if the error has a definite one
}

func relBadSpecCases(t *testing.T) []relBadSpec {
	notNS := filepath.Join(t.TempDir(), "not-a-namespace")
	if err := os.WriteFile(notNS, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return []relBadSpec{
		{name: "unknown-namespace-type", opts: []oci.SpecOpts{relWithNamespace(specs.LinuxNamespace{Type: "frobnicate"})},
			want: []string{"unknown namespace type"}, kind: "InvalidArgument"},
		{name: "namespace-path-not-a-namespace", opts: []oci.SpecOpts{relWithNSPath(specs.NetworkNamespace, notNS)},
			want: []string{"not a namespace"}, kind: "InvalidArgument"},
		{name: "namespace-path-missing", opts: []oci.SpecOpts{relWithNSPath(specs.NetworkNamespace, "/nonexistent/netns")},
			want: []string{"no such file"}, kind: "InvalidArgument"},
		{name: "namespace-path-wrong-type", opts: []oci.SpecOpts{relWithNSPath(specs.NetworkNamespace, "/proc/self/ns/uts")},
			want: []string{"not a network namespace"}, kind: "InvalidArgument"},
		{name: "namespace-listed-twice", opts: []oci.SpecOpts{relWithNamespace(specs.LinuxNamespace{Type: specs.PIDNamespace})},
			want: []string{"twice"}, kind: "InvalidArgument"},
		{name: "no-mount-namespace", opts: []oci.SpecOpts{oci.WithHostNamespace(specs.MountNamespace)},
			want: []string{"mount namespace"}, kind: "InvalidArgument"},
		{name: "new-time-namespace", opts: []oci.SpecOpts{relWithNamespace(specs.LinuxNamespace{Type: specs.TimeNamespace})},
			want: []string{"time namespace"}, kind: "InvalidArgument"},
		{name: "mount-unknown-type", opts: []oci.SpecOpts{relWithMount(specs.Mount{Destination: "/mnt", Type: "frobnicatefs", Source: "none"})},
			want: []string{"frobnicatefs", "no such device"}},
		{name: "mount-unknown-option", opts: []oci.SpecOpts{relWithMount(specs.Mount{Destination: "/mnt", Type: "tmpfs", Source: "tmpfs", Options: []string{"frobnicate=1"}})},
			want: []string{"frobnicate", "/mnt"}},
		{name: "mount-relative-destination", opts: []oci.SpecOpts{relWithMount(specs.Mount{Destination: "mnt", Type: "tmpfs", Source: "tmpfs"})},
			want: []string{"not absolute"}, kind: "InvalidArgument"},
		{name: "mount-bind-missing-source", opts: []oci.SpecOpts{relWithMount(specs.Mount{Destination: "/mnt", Type: "bind", Source: "/nonexistent/src", Options: []string{"rbind"}})},
			want: []string{"/nonexistent/src"}},
		{name: "rootfs-path-missing", noSnapshot: true, opts: []oci.SpecOpts{oci.WithRootFSPath("/nonexistent/rootfs")},
			want: []string{"/nonexistent/rootfs"}, kind: "NotFound"},
		// (No spec mounts: mountpoints would be created in the bundle's
		// rootfs dir, which containerd then cannot remove.)
		{name: "rootfs-empty", noSnapshot: true, opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) { s.Mounts = nil })},
			want: []string{"executable file not found"}},
		{name: "rootfs-mount-unknown-type", noSnapshot: true, rootfs: []mount.Mount{{Type: "frobnicatefs", Source: "none"}},
			want: []string{"mount rootfs"}},
		{name: "rootfs-overlay-bad-lowerdir", noSnapshot: true, rootfs: []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/nonexistent"}}},
			want: []string{"mount rootfs"}},
		{name: "relative-cwd", opts: []oci.SpecOpts{oci.WithProcessCwd("relative/dir")},
			want: []string{"cwd"}, kind: "InvalidArgument"},
		{name: "env-without-equals", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) { s.Process.Env = append(s.Process.Env, "JUSTANAME") })},
			want: []string{"justaname"}, kind: "InvalidArgument"},
		{name: "empty-args", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) { s.Process.Args = nil })},
			want: []string{"args"}, kind: "InvalidArgument"},
		{name: "hostname-too-long", opts: []oci.SpecOpts{oci.WithHostname(strings.Repeat("h", 65))},
			want: []string{"hostname"}, kind: "InvalidArgument"},
		{name: "hostname-without-uts-namespace", opts: []oci.SpecOpts{oci.WithHostname("foo"), oci.WithHostNamespace(specs.UTSNamespace)},
			want: []string{"uts"}, kind: "InvalidArgument"},
		{name: "uid-mappings-overlap", opts: []oci.SpecOpts{relWithNamespace(specs.LinuxNamespace{Type: specs.UserNamespace}), relSpecOpt(func(s *oci.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}, {ContainerID: 1000, HostID: 300000, Size: 10}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		})}, want: []string{"overlap"}, kind: "InvalidArgument"},
		{name: "uid-mapping-size-zero", opts: []oci.SpecOpts{relWithNamespace(specs.LinuxNamespace{Type: specs.UserNamespace}), relSpecOpt(func(s *oci.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 0}}
			s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		})}, want: []string{"size 0"}, kind: "InvalidArgument"},
		{name: "mappings-without-user-namespace", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		})}, want: []string{"user namespace"}, kind: "InvalidArgument"},
		{name: "seccomp-unknown-action", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_FROBNICATE"}
		})}, want: []string{"scmp_act_frobnicate"}, kind: "InvalidArgument"},
		{name: "seccomp-unknown-arch", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_FROBNICATE"}}
		})}, want: []string{"scmp_arch_frobnicate"}, kind: "InvalidArgument"},
		{name: "seccomp-unknown-operator", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{
				Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_FROB"}}}}}
		})}, want: []string{"scmp_cmp_frob"}, kind: "InvalidArgument"},
		{name: "memory-limit-minus-2", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.Memory = &specs.LinuxMemory{Limit: relI64(-2)}
		})}, want: []string{"memory.limit"}},
		{name: "cpuset-99-100", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Cpus: "99-100"}
		})}, want: []string{"99-100"}},
		{name: "cpuset-garbage", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Cpus: "0-x"}
		})}, want: []string{"0-x"}},
		{name: "pids-limit-minus-2", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.Pids = &specs.LinuxPids{Limit: relI64(-2)}
		})}, want: []string{"pids.limit"}},
		{name: "cpu-quota-minus-2", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.CPU = &specs.LinuxCPU{Quota: relI64(-2)}
		})}, want: []string{"cpu.quota"}},
		{name: "device-rule-bad-access", opts: []oci.SpecOpts{relWithResources(func(r *specs.LinuxResources) {
			r.Devices = append(r.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "rwx"})
		})}, want: []string{"access"}},
		{name: "wrong-oci-version-major", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) { s.Version = "2.0.0" })},
			want: []string{"ociversion"}, kind: "InvalidArgument"},
		{name: "no-linux-section", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) { s.Linux = nil })},
			want: []string{"linux"}, kind: "InvalidArgument"},
		{name: "unknown-rlimit", opts: []oci.SpecOpts{relSpecOpt(func(s *oci.Spec) {
			s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_FROBNICATE", Hard: 1, Soft: 1})
		})}, want: []string{"rlimit_frobnicate"}, kind: "InvalidArgument"},
		{name: "mount-over-root", opts: []oci.SpecOpts{relWithMount(specs.Mount{Destination: "/", Type: "tmpfs", Source: "tmpfs"})},
			want: []string{"root"}},
	}
}

// TestBadInputSpecs creates a container from each malformed spec through
// containerd: NewTask must fail with a clear error, no task may exist
// afterwards, and nothing may be left on the host.
func TestBadInputSpecs(t *testing.T) {
	cases := relBadSpecCases(t)
	if len(cases) < 25 {
		t.Fatalf("only %d cases", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, taskOpts := newBadContainer(t, ctx, uniqueID(t), tc.noSnapshot, tc.rootfs, tc.opts...)
			err := assertNewTaskRefused(t, ctx, c, tc.want, taskOpts...)
			if tc.kind != "" {
				if k := relErrKind(err); k != tc.kind {
					t.Errorf("NewTask error is %s, want %s: %v", k, tc.kind, err)
				}
			}
		})
	}
}

// TestBadInputSymlinkEscape: a mount destination that leads out of the
// rootfs through a symlink is resolved inside the rootfs (as runc does):
// the mount lands in the container, nothing outside is touched.
func TestBadInputSymlinkEscape(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)
	outside := t.TempDir()
	c := newContainer(t, ctx, id,
		relWithMount(specs.Mount{Destination: "/escape/x", Type: "tmpfs", Source: "tmpfs"}),
		oci.WithProcessArgs("sh", "-c", "grep ' /tmp/.*/x tmpfs ' /proc/mounts || grep ' /escape/x ' /proc/mounts || cat /proc/mounts"))
	// /escape -> /../../../../<outside>, absolute and climbing.
	if err := os.Symlink("/../../../../../.."+outside, filepath.Join(upperDir(t, ctx, c), "escape")); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	task, err := c.NewTask(ctx, outputIO(&out, &out))
	if err != nil {
		// Refusing is fine too, if it says why.
		t.Logf("NewTask refused the escaping destination: %v", err)
		if !strings.Contains(strings.ToLower(err.Error()), "escape") && !strings.Contains(err.Error(), "/escape/x") {
			t.Errorf("the error does not name the destination: %v", err)
		}
	} else {
		exitc, _ := task.Wait(ctx)
		if err := task.Start(ctx); err != nil {
			t.Fatal(err)
		}
		<-exitc
		task.IO().Wait()
		task.Delete(ctx)
		t.Logf("container's view: %s", out.String())
		if !strings.Contains(out.String(), outside+"/x tmpfs") {
			t.Errorf("the tmpfs is not mounted inside the container at %s/x:\n%s", outside, out.String())
		}
	}
	if ents, err := os.ReadDir(outside); err != nil || len(ents) > 0 {
		t.Errorf("the host dir %s was touched through the symlink: %v %v", outside, ents, err)
	}
	if m := mountsUnder(outside); len(m) > 0 {
		t.Errorf("mounted outside the rootfs: %v", m)
	}
	deleteContainer(t, ctx, c)
	assertNoLeaks(t, id)
}

// ---------------------------------------------------------------------------
// malformed requests, straight to a shim

// TestBadInputRequests sends malformed requests to a shim's task API. One
// container (created, then running) is there throughout, to aim requests
// at; every failing request must leave no trace.
func TestBadInputRequests(t *testing.T) {
	s := relStartDirectShim(t, uniqueID(t))
	good := s.id
	if _, err := s.create(good, s.bundle); err != nil {
		t.Fatalf("create of a good container: %v\nlog:\n%s", err, s.log.String())
	}
	ctx := s.ctx()
	anyOf := func(v any) *relAny {
		a, err := typeurl.MarshalAnyToProto(v)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	execSpec := func(args ...string) *relAny {
		p := specs.Process{Args: args, Cwd: "/", Env: []string{"PATH=/bin"}}
		return anyOf(&p)
	}
	bundleWith := func(name string, write func(dir string)) string {
		dir := filepath.Join(s.dir, name)
		if err := os.MkdirAll(dir, 0o711); err != nil {
			t.Fatal(err)
		}
		write(dir)
		return dir
	}
	configIs := func(content string) func(string) {
		return func(dir string) {
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	goodSpec, err := os.ReadFile(filepath.Join(s.bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	withVersion := strings.Replace(string(goodSpec), `"ociVersion":"`, `"ociVersion":"9`, 1)

	type reqCase struct {
		name string
		id   string // container the request names, for the leak check
		call func() error
		kind string
		want string // substring of the error (case-insensitive)
	}
	phase1 := []reqCase{ // while the good container is created, not started
		{name: "config-not-json", id: "c-notjson", kind: "InvalidArgument", want: "json", call: func() error {
			_, err := s.create("c-notjson", bundleWith("c-notjson", configIs("{this is not json")))
			return err
		}},
		{name: "config-empty", id: "c-empty", kind: "InvalidArgument", want: "json", call: func() error {
			_, err := s.create("c-empty", bundleWith("c-empty", configIs("")))
			return err
		}},
		{name: "config-wrong-oci-major", id: "c-version", kind: "InvalidArgument", want: "ociversion", call: func() error {
			_, err := s.create("c-version", bundleWith("c-version", configIs(withVersion)))
			return err
		}},
		{name: "config-missing", id: "c-noconfig", kind: "NotFound", want: "config", call: func() error {
			_, err := s.create("c-noconfig", bundleWith("c-noconfig", func(string) {}))
			return err
		}},
		{name: "bundle-missing", id: "c-nobundle", kind: "NotFound", want: "/nonexistent/bundle", call: func() error {
			_, err := s.create("c-nobundle", "/nonexistent/bundle")
			return err
		}},
		{name: "create-existing-id", id: good, kind: "AlreadyExists", want: good, call: func() error {
			_, err := s.create(good, s.bundle)
			return err
		}},
		{name: "create-empty-id", id: "", kind: "InvalidArgument", want: "id", call: func() error {
			_, err := s.create("", bundleWith("c-emptyid", configIs(string(goodSpec))))
			return err
		}},
		{name: "create-id-with-slash", id: "../x", kind: "InvalidArgument", want: "../x", call: func() error {
			_, err := s.create("../x", bundleWith("c-slash", configIs(string(goodSpec))))
			return err
		}},
		{name: "create-with-checkpoint", id: "c-ckpt", kind: "NotImplemented", want: "checkpoint", call: func() error {
			_, err := s.task.Create(ctx, &taskAPI.CreateTaskRequest{ID: "c-ckpt", Bundle: s.bundle, Checkpoint: "/tmp/ckpt"})
			return err
		}},
		{name: "kill-unknown-id", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.Kill(ctx, &taskAPI.KillRequest{ID: "nosuch", Signal: 9})
			return err
		}},
		{name: "delete-unknown-id", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.Delete(ctx, &taskAPI.DeleteRequest{ID: "nosuch"})
			return err
		}},
		{name: "state-unknown-id", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.State(ctx, &taskAPI.StateRequest{ID: "nosuch"})
			return err
		}},
		{name: "start-unknown-id", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: "nosuch"})
			return err
		}},
		{name: "pause-unknown-id", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.Pause(ctx, &taskAPI.PauseRequest{ID: "nosuch"})
			return err
		}},
		{name: "kill-unknown-signal", id: good, kind: "InvalidArgument", want: "signal", call: func() error {
			_, err := s.task.Kill(ctx, &taskAPI.KillRequest{ID: good, Signal: 99})
			return err
		}},
		{name: "pause-created-container", id: good, kind: "FailedPrecondition", want: "created", call: func() error {
			_, err := s.task.Pause(ctx, &taskAPI.PauseRequest{ID: good})
			return err
		}},
	}
	phase2 := []reqCase{ // the good container is running, with exec "e1" running
		{name: "start-twice", id: good, kind: "FailedPrecondition", want: "running", call: func() error {
			_, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: good})
			return err
		}},
		{name: "delete-running", id: good, kind: "FailedPrecondition", want: "running", call: func() error {
			_, err := s.task.Delete(ctx, &taskAPI.DeleteRequest{ID: good})
			return err
		}},
		{name: "exec-duplicate-id", id: good, kind: "AlreadyExists", want: "e1", call: func() error {
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e1", Spec: execSpec("true")})
			return err
		}},
		{name: "exec-empty-id", id: good, kind: "InvalidArgument", want: "exec id", call: func() error {
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "", Spec: execSpec("true")})
			return err
		}},
		{name: "exec-no-spec", id: good, kind: "InvalidArgument", want: "spec", call: func() error {
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e2"})
			return err
		}},
		{name: "exec-spec-not-json", id: good, kind: "InvalidArgument", want: "spec", call: func() error {
			a := execSpec("true")
			a.Value = []byte("{not json")
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e3", Spec: a})
			return err
		}},
		{name: "exec-empty-args", id: good, kind: "InvalidArgument", want: "args", call: func() error {
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e4", Spec: execSpec()})
			return err
		}},
		{name: "exec-relative-cwd", id: good, kind: "InvalidArgument", want: "cwd", call: func() error {
			p := specs.Process{Args: []string{"true"}, Cwd: "tmp"}
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e5", Spec: anyOf(&p)})
			return err
		}},
		{name: "exec-in-unknown-container", id: "nosuch", kind: "NotFound", want: "nosuch", call: func() error {
			_, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: "nosuch", ExecID: "e6", Spec: execSpec("true")})
			return err
		}},
		{name: "start-unknown-exec", id: good, kind: "NotFound", want: "e7", call: func() error {
			_, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: good, ExecID: "e7"})
			return err
		}},
		{name: "kill-unknown-exec", id: good, kind: "NotFound", want: "e7", call: func() error {
			_, err := s.task.Kill(ctx, &taskAPI.KillRequest{ID: good, ExecID: "e7", Signal: 9})
			return err
		}},
		{name: "delete-running-exec", id: good, kind: "FailedPrecondition", want: "running", call: func() error {
			_, err := s.task.Delete(ctx, &taskAPI.DeleteRequest{ID: good, ExecID: "e1"})
			return err
		}},
		{name: "resize-unknown-exec", id: good, kind: "NotFound", want: "e7", call: func() error {
			_, err := s.task.ResizePty(ctx, &taskAPI.ResizePtyRequest{ID: good, ExecID: "e7", Width: 80, Height: 24})
			return err
		}},
		{name: "update-no-resources", id: good, kind: "InvalidArgument", want: "resources", call: func() error {
			_, err := s.task.Update(ctx, &taskAPI.UpdateTaskRequest{ID: good})
			return err
		}},
		{name: "update-resources-not-json", id: good, kind: "InvalidArgument", want: "resources", call: func() error {
			a := anyOf(&specs.LinuxResources{})
			a.Value = []byte("[1,2")
			_, err := s.task.Update(ctx, &taskAPI.UpdateTaskRequest{ID: good, Resources: a})
			return err
		}},
		// (process/cgroups does not mark its validation errors, so the kind
		// of these two is Unknown.)
		{name: "update-memory-minus-2", id: good, want: "memory.limit", call: func() error {
			_, err := s.task.Update(ctx, &taskAPI.UpdateTaskRequest{ID: good, Resources: anyOf(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: relI64(-2)}})})
			return err
		}},
		{name: "update-cpuset-99-100", id: good, want: "99-100", call: func() error {
			_, err := s.task.Update(ctx, &taskAPI.UpdateTaskRequest{ID: good, Resources: anyOf(&specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "99-100"}})})
			return err
		}},
	}
	check := func(t *testing.T, tc reqCase) {
		err := tc.call()
		if err == nil {
			t.Fatalf("request succeeded, want a %s error", tc.kind)
		}
		t.Logf("error (expected): %v", err)
		if tc.kind != "" {
			if k := relErrKind(err); k != tc.kind {
				t.Errorf("error is %s, want %s: %v", k, tc.kind, err)
			}
		}
		if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
			t.Errorf("error %q does not mention %q", err, tc.want)
		}
		if tc.id != good {
			if left := s.leftovers(tc.id); len(left) > 0 {
				// The good container's own mounts/child are expected.
				left = slices.DeleteFunc(left, func(l string) bool { return strings.Contains(l, "/"+good+"/") || strings.HasPrefix(l, "shim child") })
				if len(left) > 0 {
					t.Errorf("left behind: %v", left)
				}
			}
		}
		if !s.alive() {
			t.Fatalf("the shim died")
		}
	}
	for _, tc := range phase1 {
		t.Run(tc.name, func(t *testing.T) { check(t, tc) })
	}

	if _, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: good}); err != nil {
		t.Fatalf("start the good container: %v", err)
	}
	if _, err := s.task.Exec(ctx, &taskAPI.ExecProcessRequest{ID: good, ExecID: "e1", Spec: execSpec("sleep", "1000")}); err != nil {
		t.Fatalf("exec e1: %v", err)
	}
	if _, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: good, ExecID: "e1"}); err != nil {
		t.Fatalf("start exec e1: %v", err)
	}
	for _, tc := range phase2 {
		t.Run(tc.name, func(t *testing.T) { check(t, tc) })
	}
	if n := len(phase1) + len(phase2); n < 25 {
		t.Errorf("only %d request cases", n)
	}

	// The shim still works after all that: the good container is intact.
	st, err := s.task.State(ctx, &taskAPI.StateRequest{ID: good})
	if err != nil || st.Status.String() != "RUNNING" {
		t.Errorf("good container after the bad requests: %v %v", st, err)
	}
	s.stop(good)
	if left := s.leftovers(good); len(left) > 0 {
		t.Errorf("after deleting the good container: left %v", left)
	}
	if err := s.shutdown(); err != nil {
		t.Error(err)
	}
}

type relAny = anypb.Any

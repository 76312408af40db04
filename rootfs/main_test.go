//go:build linux

package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// childEnv carries a childConfig (JSON) to a re-executed test binary, which
// then plays container init instead of running tests.
const childEnv = "HUSK_ROOTFS_TEST_CHILD"

const hostBusybox = "/bin/busybox"

type childConfig struct {
	Spec   *specs.Spec `json:"spec"`
	Rootfs string      `json:"rootfs"`
	Script string      `json:"script"`
}

func TestMain(m *testing.M) {
	if cfg, ok := os.LookupEnv(childEnv); ok {
		os.Exit(runChild(cfg))
	}
	os.Exit(m.Run())
}

// runChild is the container init: Prepare, Finalize, then exec the script
// with the rootfs' busybox sh.
func runChild(cfgJSON string) int {
	runtime.LockOSThread()
	var cfg childConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "CONFIG:", err)
		return 2
	}
	if err := Prepare(cfg.Spec, cfg.Rootfs); err != nil {
		fmt.Fprintln(os.Stderr, "PREPARE:", err)
		return 3
	}
	if err := Finalize(cfg.Spec); err != nil {
		fmt.Fprintln(os.Stderr, "FINALIZE:", err)
		return 4
	}
	err := unix.Exec("/bin/sh", []string{"sh", "-c", cfg.Script}, []string{"PATH=/bin"})
	fmt.Fprintln(os.Stderr, "EXEC:", err)
	return 5
}

// requireKernelTests skips tests that need root, namespaces and busybox.
func requireKernelTests(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts, namespaces)")
	}
	if _, err := os.Stat(hostBusybox); err != nil {
		t.Skipf("needs a static %s (Debian busybox-static): %v", hostBusybox, err)
	}
}

// busyboxApplets are linked in each test rootfs' /bin.
var busyboxApplets = []string{
	"sh", "ls", "cat", "echo", "stat", "readlink", "touch", "grep", "wc", "mkdir", "test", "head", "id",
}

// newRootfs makes a minimal rootfs holding busybox in a temp dir.
func newRootfs(t *testing.T) string {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	bin := filepath.Join(rootfs, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(hostBusybox)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bin, "busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(bin, a)); err != nil {
			t.Fatal(err)
		}
	}
	return rootfs
}

// defaultSpec is containerd's default Linux spec (pkg/oci), plus the cgroup
// mount the CRI plugin adds, adjusted by opts.
func defaultSpec(t *testing.T, opts ...oci.SpecOpts) *specs.Spec {
	t.Helper()
	ctx := namespaces.WithNamespace(context.Background(), "husk-test")
	s, err := oci.GenerateSpecWithPlatform(ctx, nil, "linux/"+runtime.GOARCH, &containers.Container{ID: "rootfs-test"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Mounts = append(s.Mounts, specs.Mount{
		Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
		Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"},
	})
	return s
}

// runContainer runs Prepare+Finalize on rootfs in a child with new mount,
// pid, uts, ipc and net namespaces, then the shell script; it returns the
// script's stdout, the child's stderr and its exit error. The child's mounts
// vanish with its mount namespace.
func runContainer(t *testing.T, spec *specs.Spec, rootfs, script string) (string, string, error) {
	t.Helper()
	return runContainerAttr(t, spec, rootfs, script, &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
	})
}

// runContainerAttr is runContainer with the child's namespaces given by attr.
func runContainerAttr(t *testing.T, spec *specs.Spec, rootfs, script string, attr *syscall.SysProcAttr) (string, string, error) {
	t.Helper()
	cfg, err := json.Marshal(childConfig{Spec: spec, Rootfs: rootfs, Script: script})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(cfg))
	attr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr = attr
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EINVAL) {
			t.Skipf("cannot create namespaces here: %v", err)
		}
		t.Fatalf("start child: %v", err)
	}
	return stdout.String(), stderr.String(), err
}

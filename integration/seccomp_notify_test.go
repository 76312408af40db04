package integration

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The kernel's seccomp notification structs (linux/seccomp.h).
type ntfSeccompData struct {
	Nr                 int32
	Arch               uint32
	InstructionPointer uint64
	Args               [6]uint64
}

type ntfNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  ntfSeccompData
}

type ntfResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// notifyAgent is a seccomp agent: it receives the container's state and
// listener fd on a unix socket, then answers every notified syscall with
// EXDEV.
type notifyAgent struct {
	states   chan specs.ContainerProcessState
	answered chan int32 // syscall numbers answered
	errs     chan error
}

func startNotifyAgent(t *testing.T, path string) *notifyAgent {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	a := &notifyAgent{states: make(chan specs.ContainerProcessState, 4), answered: make(chan int32, 64), errs: make(chan error, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); l.Close() })
	go func() {
		for {
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			buf := make([]byte, 1<<16)
			oob := make([]byte, unix.CmsgSpace(4))
			n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
			conn.Close()
			if err != nil {
				a.errs <- err
				continue
			}
			var st specs.ContainerProcessState
			if err := json.Unmarshal(buf[:n], &st); err != nil {
				a.errs <- err
				continue
			}
			msgs, _ := unix.ParseSocketControlMessage(oob[:oobn])
			var fd int = -1
			if len(msgs) == 1 {
				if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
					fd = fds[0]
				}
			}
			a.states <- st
			if fd < 0 {
				a.errs <- os.ErrInvalid
				continue
			}
			go a.serve(ctx, fd)
		}
	}()
	return a
}

func (a *notifyAgent) serve(ctx context.Context, fd int) {
	defer unix.Close(fd)
	for ctx.Err() == nil {
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 200); err != nil || n == 0 {
			if pfd[0].Revents&unix.POLLHUP != 0 {
				return
			}
			continue
		}
		if pfd[0].Revents&unix.POLLHUP != 0 && pfd[0].Revents&unix.POLLIN == 0 {
			return // the filter's last user is gone
		}
		var req ntfNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&req))); e != 0 {
			if e == unix.ENOENT || e == unix.EINTR {
				continue
			}
			return
		}
		resp := ntfResp{ID: req.ID, Error: -int32(unix.EXDEV)}
		unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp)))
		a.answered <- req.Data.Nr
	}
}

// A profile with SCMP_ACT_NOTIFY: the agent at listenerPath gets the
// container's state and the listener fd, and its answers are what the
// container's syscalls return, for the init and for an exec.
func TestSeccompNotify(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "agent.sock")
	agent := startNotifyAgent(t, sock)

	withNotify := func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction:    specs.ActAllow,
			ListenerPath:     sock,
			ListenerMetadata: "husk-test-metadata",
			Architectures:    []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{
				{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify},
			},
		}
		return nil
	}
	script := `mkdir /tmp/notified 2>/tmp/err; echo "init-mkdir $?"; cat /tmp/err; echo ready; exec sleep 1000`
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", script), withNotify)
	defer deleteContainer(t, ctx, c)
	var out syncBuffer
	task, err := c.NewTask(ctx, outputIO(&out, &out))
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	defer func() {
		task.Kill(ctx, syscall.SIGKILL)
		if ch, err := task.Wait(ctx); err == nil {
			<-ch
		}
		task.Delete(ctx)
		assertNoLeaks(t, id)
	}()
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	select {
	case st := <-agent.states:
		if st.State.ID != id || st.Pid != int(task.Pid()) || st.Metadata != "husk-test-metadata" ||
			len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName || st.State.Bundle == "" {
			t.Errorf("agent got state %+v; want id %s, pid %d, metadata, fds [seccompFd], a bundle", st, id, task.Pid())
		}
	case err := <-agent.errs:
		t.Fatalf("agent: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatalf("the agent never got the listener fd; output %q", out.String())
	}
	if !waitFor(20*time.Second, func() bool { return strings.Contains(out.String(), "ready") }) {
		t.Fatalf("container never got ready; output %q", out.String())
	}
	// The agent answered mkdir with EXDEV: the directory was not made.
	if !strings.Contains(out.String(), "init-mkdir 1") || !strings.Contains(strings.ToLower(out.String()), "cross-device") {
		t.Errorf("init's mkdir under notify: output %q, want a failure with EXDEV (Invalid cross-device link)", out.String())
	}
	select {
	case nr := <-agent.answered:
		if nr != unix.SYS_MKDIR && nr != unix.SYS_MKDIRAT {
			t.Errorf("agent answered syscall %d, want mkdir/mkdirat", nr)
		}
	default:
		t.Errorf("the agent answered no syscall")
	}

	// An exec loads the same profile and hands its own listener fd over.
	stdout, stderr, err := ctr(t, "task", "exec", "--exec-id", "notify-exec", id, "sh", "-c", "mkdir /tmp/e 2>&1; echo rc=$?")
	if err != nil {
		t.Fatalf("exec: %v\n%s%s", err, stdout, stderr)
	}
	if !strings.Contains(stdout, "rc=1") || !strings.Contains(strings.ToLower(stdout), "cross-device") {
		t.Errorf("exec's mkdir under notify: %q, want EXDEV from the agent", stdout)
	}
	select {
	case st := <-agent.states:
		if st.State.ID != id || st.State.Status != specs.StateRunning {
			t.Errorf("exec's state %+v; want id %s, status running", st, id)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the agent never got the exec's listener fd")
	}
}

// Without an agent listening, Start fails with a clear error and leaves no
// process behind.
func TestSeccompNotifyNoAgent(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)
	sock := filepath.Join(t.TempDir(), "nobody.sock")
	withNotify := func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			ListenerPath:  sock,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
		}
		return nil
	}
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"), withNotify)
	defer deleteContainer(t, ctx, c)
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	err = task.Start(ctx)
	if err == nil || !strings.Contains(err.Error(), "seccomp agent") {
		t.Errorf("Start without an agent: %v, want an error naming the seccomp agent", err)
	}
	select {
	case <-exitc:
	case <-time.After(10 * time.Second):
		t.Errorf("the process is still running after the failed Start")
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Errorf("Delete: %v", err)
	}
	assertNoLeaks(t, id)
}

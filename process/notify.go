package process

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/security"
)

// A seccomp profile with SCMP_ACT_NOTIFY rules needs a listener: the
// container process loads its filter with a notification fd and passes it to
// the shim over a socket pair of its own; the shim hands it, with the OCI
// ContainerProcessState, to the agent listening on linux.seccomp.listenerPath
// (as runc does).

// notifyTarget is where a process's seccomp listener fd goes.
type notifyTarget struct {
	sock  *os.File // the shim's end of the socket pair the fd arrives on
	path  string   // linux.seccomp.listenerPath
	state specs.ContainerProcessState
}

// notifyTimeout bounds the wait for the listener fd once the process exec'd
// (it was sent before execve) and the connection to the agent.
const notifyTimeout = 10 * time.Second

// processState is the OCI state a seccomp agent receives (pid set later).
func processState(id, bundle string, status specs.ContainerState, annotations map[string]string) specs.ContainerProcessState {
	return specs.ContainerProcessState{
		Version: specs.Version,
		Fds:     []string{specs.SeccompFdName},
		State: specs.State{
			Version:     specs.Version,
			ID:          id,
			Status:      status,
			Bundle:      bundle,
			Annotations: annotations,
		},
	}
}

// forward receives the listener fd and hands it to the agent with the
// process's state.
func (n *notifyTarget) forward(pid int) error {
	n.sock.SetReadDeadline(time.Now().Add(notifyTimeout))
	fd, err := recvFd(n.sock)
	if err != nil {
		return fmt.Errorf("receive seccomp listener fd: %w", err)
	}
	defer unix.Close(fd)
	st := n.state
	st.Pid = pid
	st.State.Pid = pid
	data, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode container process state: %w", err)
	}
	d := net.Dialer{Timeout: notifyTimeout}
	conn, err := d.Dial("unix", n.path)
	if err != nil {
		return fmt.Errorf("connect to seccomp agent at %s: %w", n.path, err)
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("seccomp agent at %s: not a unix socket", n.path)
	}
	uc.SetWriteDeadline(time.Now().Add(notifyTimeout))
	if _, _, err := uc.WriteMsgUnix(data, unix.UnixRights(fd), nil); err != nil {
		return fmt.Errorf("send seccomp listener fd to agent at %s: %w", n.path, err)
	}
	return nil
}

// recvFd receives one fd sent with SCM_RIGHTS on sock (the pty master, the
// seccomp listener).
func recvFd(sock *os.File) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	rc, err := sock.SyscallConn()
	if err != nil {
		return -1, err
	}
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return -1, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("no fd in message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) == 0 {
		return -1, fmt.Errorf("bad rights (%v)", err)
	}
	for _, fd := range fds[1:] {
		unix.Close(fd) // one fd is expected; never leak extras
	}
	return fds[0], nil
}

// loadSeccomp installs the filter in the container process. A filter with
// notify rules sends its listener fd to the shim on notifyFd.
func loadSeccomp(f *security.Filter, notifyFd int) error {
	if !f.NeedsListener() {
		return f.Load()
	}
	if notifyFd <= 0 {
		return fmt.Errorf("seccomp: notify rules but no listener socket from the shim")
	}
	fd, err := f.LoadWithListener()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Sendmsg(notifyFd, []byte("n"), unix.UnixRights(fd), nil, 0); err != nil {
		return fmt.Errorf("send seccomp listener fd to the shim: %w", err)
	}
	return nil
}

package process

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// loggerTermTimeout is how long a logging binary gets to exit after its
// pipes closed, and again after SIGTERM.
const loggerTermTimeout = 2 * time.Second

// loggerReadyTimeout bounds the wait for a logging binary's ready signal.
const loggerReadyTimeout = 30 * time.Second

// binaryLogger is a logging binary (binary:// or binary-v2:// log URI), as
// containerd defines it: the container's stdout and stderr pipes' read ends
// are its fds 3 and 4, a ready pipe is fd 5, and CONTAINER_ID and
// CONTAINER_NAMESPACE name the container. The container writes straight
// into the pipes; nothing is copied through the shim.
type binaryLogger struct {
	pid    int
	exited chan struct{} // closed once the reaper saw it exit
}

// startLogger starts the logging binary of uri and waits until it is ready.
// It returns the write ends for the container's stdout and stderr.
func startLogger(ctx context.Context, exits *Exits, id string, u *url.URL) (_ *binaryLogger, stdout, stderr *os.File, retErr error) {
	ns, _ := namespaces.Namespace(ctx)
	var args []string
	// As containerd's NewBinaryCmd: each query key, then its first value
	// (even an empty one).
	for k, vs := range u.Query() {
		args = append(args, k)
		if len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	defer closeAll()
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("logger stdout pipe: %w", err)
	}
	files = append(files, outR)
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return nil, nil, nil, fmt.Errorf("logger stderr pipe: %w", err)
	}
	files = append(files, errR)
	readyR, readyW, err := os.Pipe()
	if err != nil {
		outW.Close()
		errW.Close()
		return nil, nil, nil, fmt.Errorf("logger ready pipe: %w", err)
	}
	files = append(files, readyR, readyW)
	defer func() {
		if retErr != nil {
			outW.Close()
			errW.Close()
		}
	}()
	cmd := exec.Command(u.Path, args...)
	cmd.Env = []string{"CONTAINER_ID=" + id, "CONTAINER_NAMESPACE=" + ns}
	cmd.ExtraFiles = []*os.File{outR, errR, readyW}
	done := exits.BeginStart()
	err = cmd.Start()
	if err != nil {
		done()
		return nil, nil, nil, fmt.Errorf("start logging binary %s: %w", u.Path, err)
	}
	l := &binaryLogger{pid: cmd.Process.Pid, exited: make(chan struct{})}
	exitCh := exits.Watch(l.pid)
	done()
	go func() { <-exitCh; close(l.exited) }()
	cmd.Process.Release()
	readyW.Close()
	// A logger that never signals readiness must not hang Create.
	deadline := time.Now().Add(loggerReadyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	readyR.SetReadDeadline(deadline)
	b := make([]byte, 1)
	n, err := readyR.Read(b)
	if err != nil && err != io.EOF {
		l.stop(ctx, 0)
		return nil, nil, nil, fmt.Errorf("wait for logging binary: %w", err)
	}
	if u.Scheme == "binary-v2" && n == 0 {
		l.stop(ctx, 0)
		return nil, nil, nil, fmt.Errorf("logging binary %s exited before it was ready", u.Path)
	}
	return l, outW, errW, nil
}

// stop waits up to grace for the logger to finish on its own (it sees EOF
// once the container's last writer is gone), then SIGTERMs it, then kills.
func (l *binaryLogger) stop(ctx context.Context, grace time.Duration) {
	select {
	case <-l.exited:
		return
	case <-time.After(grace):
	}
	unix.Kill(l.pid, syscall.SIGTERM)
	select {
	case <-l.exited:
		return
	case <-time.After(loggerTermTimeout):
	}
	log.G(ctx).WithField("pid", l.pid).Warn("logging binary did not exit after SIGTERM; killing it")
	unix.Kill(l.pid, syscall.SIGKILL)
	<-l.exited
}

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/process/cgroups"
)

// spawnOpts is how to start one container process (an init or an exec)
// from our own binary.
type spawnOpts struct {
	// notifyState is the OCI state sent to a seccomp agent with the
	// listener fd (pid filled in once known).
	notifyState specs.ContainerProcessState
	id          string // the container's id (for a logging binary)
	config      *initConfig
	stdio       Stdio
	clone       uintptr
	uidMap      []syscall.SysProcIDMap
	gidMap      []syscall.SysProcIDMap
	// join is joined by the forking thread (pid, net, ipc, uts, cgroup).
	join []nsJoin
	// nsenter is joined by the child's C constructor before Go starts (mnt,
	// user), as "type:path,..." (see process/nsenter).
	nsenter string
	cg      cgroups.Cgroup
}

// child is a started container process, set up and waiting for start.
type child struct {
	pid       int
	startTime uint64
	exitCh    <-chan Exit
	sync      *syncPipe
	io        *processIO
	notify    *notifyTarget // nil unless the seccomp profile has notify rules
}

// spawn starts a container process and waits until it reports ready (or
// fails). On failure nothing of it is left: the process is killed and
// reaped, its stdio and sockets closed.
func (r *Runtime) spawn(ctx context.Context, o spawnOpts) (_ *child, retErr error) {
	exe, err := r.initBinary()
	if err != nil {
		return nil, fmt.Errorf("prepare init binary: %w", err)
	}
	var listener *specs.LinuxSeccomp
	if o.config.Spec != nil && o.config.Spec.Linux != nil {
		listener = o.config.Spec.Linux.Seccomp
	}
	if err := compileForInit(ctx, o.config); err != nil {
		return nil, err
	}
	var undo cleanups
	defer func() {
		if retErr != nil {
			undo.run()
		}
	}()
	pio, err := newProcessIO(ctx, r.exits, o.id, o.stdio)
	if err != nil {
		return nil, err
	}
	undo.add(func() { pio.closeChildEnds(); pio.Close() })

	parentSock, childSock, err := socketPair()
	if err != nil {
		return nil, err
	}
	defer childSock.Close()
	undo.add(func() { parentSock.Close() })
	extra := []*os.File{childSock}
	var consoleSock *os.File
	if o.stdio.Terminal {
		var childConsole *os.File
		consoleSock, childConsole, err = socketPair()
		if err != nil {
			return nil, err
		}
		defer consoleSock.Close()
		defer childConsole.Close()
		extra = append(extra, childConsole)
	}
	var notify *notifyTarget
	if o.config.Seccomp != nil && o.config.Seccomp.NeedsListener() && listener != nil {
		parentNotify, childNotify, err := socketPair()
		if err != nil {
			return nil, err
		}
		defer childNotify.Close()
		undo.add(func() { parentNotify.Close() })
		extra = append(extra, childNotify)
		o.config.NotifyFd = 3 + len(extra) - 1
		notify = &notifyTarget{sock: parentNotify, path: listener.ListenerPath, state: o.notifyState}
		notify.state.Metadata = listener.ListenerMetadata
	}
	env := []string{initEnv + "=1"}
	if o.nsenter != "" {
		env = append(env, nsenterEnv+"="+o.nsenter)
	}
	cmd := &exec.Cmd{
		Path:       exe.path(),
		Args:       []string{"husk-init"},
		Env:        env,
		Stdin:      pio.childIn,
		Stdout:     pio.childOut,
		Stderr:     pio.childErr,
		ExtraFiles: extra,
		SysProcAttr: &syscall.SysProcAttr{
			Cloneflags:                 o.clone,
			Setsid:                     true,
			UidMappings:                o.uidMap,
			GidMappings:                o.gidMap,
			GidMappingsEnableSetgroups: len(o.gidMap) > 0,
		},
	}
	if len(o.uidMap) > 0 {
		// In a new user namespace the child is the overflow uid (host root is
		// not mapped) and would lose every capability at execve. Become root
		// of the namespace first, as runc does (ValidateSpec requires the
		// container's uid and gid 0 to be mapped).
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0}
	}
	// The child enters its cgroup without a cgroup.procs write by the shim
	// (see cgroups.Placement): on v2 (and a hybrid host's unified mount) it
	// is born there (clone3 CLONE_INTO_CGROUP), on v1 it moves itself before
	// Go starts (process/nsenter). Not CLONE_INTO_CGROUP when the forking
	// thread joins the container's cgroup namespace (an exec): with
	// nsdelegate (systemd's mount option) the kernel refuses the clone
	// (ENOENT), as the shim's own cgroup is not visible from there. What is
	// left (or all of it, if the cgroup cannot be opened) is added below,
	// before the child is told to go on.
	var place *cgroups.Placement
	if o.cg != nil {
		if place, err = o.cg.Placement(); err != nil {
			log.G(ctx).WithError(err).Warn("adding the process to its cgroup after fork instead")
			place = nil
		} else {
			defer place.Close()
		}
	}
	if place != nil {
		withPlacement(cmd, place, !joinsNS(o.join, specs.CgroupNamespace))
	}
	done := r.exits.BeginStart()
	err = startIn(cmd, o.join)
	if err != nil && cmd.SysProcAttr.UseCgroupFD && cloneIntoUnsupported(err) {
		log.G(ctx).WithError(err).Debug("CLONE_INTO_CGROUP unsupported, adding the process to its cgroup after fork")
		cmd = withoutCgroupFD(cmd)
		err = startIn(cmd, o.join)
	}
	for i := 0; i < 2 && err != nil && errors.Is(err, syscall.EACCES); i++ {
		// Seen once in thousands of starts under heavy parallel load: the
		// execve of the read-only self bind failed with EACCES in one child
		// while its siblings started. A new fork succeeds; the cause is not
		// understood yet, so it is logged.
		log.G(ctx).WithError(err).Warn("starting the container process failed with EACCES; retrying")
		cmd = withCgroupFD(cmd, cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD)
		err = startIn(cmd, o.join)
	}
	childSock.Close()
	pio.closeChildEnds()
	if err != nil {
		done()
		return nil, fmt.Errorf("start container process: %w", err)
	}
	c := &child{pid: cmd.Process.Pid, sync: newSyncPipe(parentSock), io: pio, notify: notify}
	c.exitCh = r.exits.Watch(c.pid)
	done()
	cmd.Process.Release()
	undo.add(func() { c.killAndReap(ctx) })

	switch {
	case o.cg == nil:
	case place == nil:
		if err := o.cg.Add(c.pid); err != nil {
			return nil, fmt.Errorf("add process %d to cgroup: %w", c.pid, err)
		}
	case !cmd.SysProcAttr.UseCgroupFD:
		if err := place.AddToDir(c.pid); err != nil {
			return nil, fmt.Errorf("add process %d to cgroup: %w", c.pid, err)
		}
	default:
		log.G(ctx).WithField("pid", c.pid).Debug("process born in its cgroup (CLONE_INTO_CGROUP)")
	}
	if st, err := procStartTime(c.pid); err == nil {
		c.startTime = st
	}
	if err := c.sync.send(syncMsg{Type: msgConfig, Config: o.config}); err != nil {
		// The child may have failed before Go started (joining its cgroup or
		// namespaces, process/nsenter) and said why: that is the error.
		parentSock.SetReadDeadline(time.Now().Add(time.Second))
		var ie *initError
		if werr := c.waitFor(ctx, msgReady); errors.As(werr, &ie) {
			return nil, werr
		}
		return nil, fmt.Errorf("send config to container process: %w", err)
	}
	parentSock.SetReadDeadline(time.Now().Add(setupTimeout))
	if err := c.waitFor(ctx, msgReady); err != nil {
		return nil, err
	}
	parentSock.SetReadDeadline(time.Time{})
	if consoleSock != nil {
		con, err := recvConsole(consoleSock)
		if err != nil {
			return nil, err
		}
		if err := pio.attachConsole(ctx, con, o.stdio); err != nil {
			con.Close()
			return nil, err
		}
	}
	return c, nil
}

func joinsNS(join []nsJoin, typ specs.LinuxNamespaceType) bool {
	for _, j := range join {
		if j.typ == typ {
			return true
		}
	}
	return false
}

// cloneIntoUnsupported reports whether starting with CLONE_INTO_CGROUP failed
// because the kernel lacks clone3 (< 5.3) or the flag (< 5.7).
func cloneIntoUnsupported(err error) bool {
	return errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.E2BIG)
}

// withoutCgroupFD is an unstarted copy of cmd (an exec.Cmd cannot be started
// twice) that does not use CLONE_INTO_CGROUP.
func withoutCgroupFD(cmd *exec.Cmd) *exec.Cmd { return withCgroupFD(cmd, false, 0) }

// withCgroupFD is a fresh copy of cmd (an exec.Cmd starts once) with the
// given CLONE_INTO_CGROUP setting.
func withCgroupFD(cmd *exec.Cmd, use bool, fd int) *exec.Cmd {
	attr := *cmd.SysProcAttr
	attr.UseCgroupFD, attr.CgroupFD = use, fd
	return &exec.Cmd{
		Path:        cmd.Path,
		Args:        cmd.Args,
		Env:         cmd.Env,
		Dir:         cmd.Dir,
		Stdin:       cmd.Stdin,
		Stdout:      cmd.Stdout,
		Stderr:      cmd.Stderr,
		ExtraFiles:  cmd.ExtraFiles,
		SysProcAttr: &attr,
	}
}

// start tells the child to exec and waits until it did (the sync socket
// closes on exec) or reported why it could not.
func (c *child) start(ctx context.Context) error {
	defer c.sync.Close()
	if err := c.sync.send(syncMsg{Type: msgStart}); err != nil {
		return err
	}
	err := c.waitFor(ctx, "exec'd")
	var ie *initError
	if errors.As(err, &ie) {
		return err
	}
	// EOF: exec'd (or killed meanwhile, which the reaper reports).
	if c.notify != nil {
		defer c.notify.sock.Close()
		if err := c.notify.forward(c.pid); err != nil {
			return err
		}
	}
	return nil
}

// startIn starts cmd from a thread that first joined the given namespaces,
// so the child is born in them (setns affects the calling thread, and pid
// namespaces only its future children). The thread is never unlocked, so
// the Go runtime throws it away instead of reusing it.
func startIn(cmd *exec.Cmd, join []nsJoin) error {
	if len(join) == 0 {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		for _, j := range join {
			f, err := os.Open(j.path)
			if err != nil {
				errc <- fmt.Errorf("open %s namespace %s: %w", j.typ, j.path, err)
				return
			}
			err = unix.Setns(int(f.Fd()), j.flag)
			f.Close()
			if err != nil {
				errc <- fmt.Errorf("join %s namespace %s: %w", j.typ, j.path, err)
				return
			}
		}
		errc <- cmd.Start()
	}()
	return <-errc
}

// waitFor reads messages from the child until want arrives. Warnings are
// logged; an error message or EOF ends the wait with an error.
func (c *child) waitFor(ctx context.Context, want string) error {
	for {
		m, err := c.sync.recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("container process exited before it was %s: %w", want, io.EOF)
			}
			return err
		}
		switch m.Type {
		case want:
			return nil
		case msgWarning:
			log.G(ctx).WithField("pid", c.pid).Warn(m.Msg)
		case msgError:
			return &initError{Step: m.Step, Errno: syscall.Errno(m.Errno), Msg: m.Msg}
		default:
			return fmt.Errorf("unexpected %q message from container process", m.Type)
		}
	}
}

// killAndReap SIGKILLs the child and waits (bounded) until the reaper saw it.
func (c *child) killAndReap(ctx context.Context) {
	unix.Kill(c.pid, unix.SIGKILL)
	select {
	case <-c.exitCh:
	case <-time.After(10 * time.Second):
		log.G(ctx).WithField("pid", c.pid).Error("container process did not die after SIGKILL")
	}
}

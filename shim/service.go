package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/pkg/sys/reaper"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/ttrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/husk-runtime/husk/process"
	"github.com/husk-runtime/husk/process/cgroups"
)

var empty = &emptypb.Empty{}

// container is one task of the shim's group.
type container struct {
	id   string
	init *process.Init
	// lifecycle orders a container's events: TaskStart is sent under it, and
	// the exit waits for it, so an exit never precedes its start.
	lifecycle sync.Mutex
	// exitSent is closed once TaskExit is queued.
	exitSent chan struct{}

	execMu sync.Mutex
	execs  map[string]*execProc
	// running counts started execs whose TaskExit is not queued yet: the
	// init's TaskExit waits for them.
	running sync.WaitGroup
}

type execProc struct {
	p        *process.Exec
	exitSent chan struct{}
}

// proc is what the task API does alike to a container's init and its execs.
type proc interface {
	Pid() int
	Status() process.Status
	Stdio() process.Stdio
	Exited() <-chan struct{}
	ExitStatus() process.Exit
	Resize(width, height uint32) error
	CloseStdin()
}

// proc returns the init ("" exec id) or the named exec.
func (c *container) proc(execID string) (proc, error) {
	if execID == "" {
		return c.init, nil
	}
	e, err := c.exec(execID)
	if err != nil {
		return nil, err
	}
	return e.p, nil
}

func (c *container) exec(id string) (*execProc, error) {
	c.execMu.Lock()
	defer c.execMu.Unlock()
	e, ok := c.execs[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "exec %q not found in container %q", id, c.id)
	}
	return e, nil
}

// service is the ttrpc task service of one shim daemon. It serves every
// container of its group.
type service struct {
	ctx    context.Context
	events chan any
	// unpublished counts queued events not yet handed to containerd.
	unpublished sync.WaitGroup
	shutdown    shutdown.Service
	rt          *process.Runtime

	mu         sync.Mutex
	containers map[string]*container
	idle       *time.Timer // runs while the shim serves no container
}

// idleExit is how long a shim that serves no container waits for one
// (containerd normally sends Shutdown right away) before it exits by itself.
const idleExit = 30 * time.Second

// removeLocked forgets a container; a shim left with none arms its idle
// timer. s.mu must be held.
func (s *service) removeLocked(id string) {
	delete(s.containers, id)
	s.armIdleLocked()
}

// armIdleLocked starts the idle timer if the shim serves no container.
// s.mu must be held.
func (s *service) armIdleLocked() {
	if len(s.containers) > 0 {
		return
	}
	if s.idle != nil {
		s.idle.Stop()
	}
	s.idle = time.AfterFunc(idleExit, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.containers) == 0 {
			log.G(s.ctx).Info("no container left; shim exits")
			s.shutdown.Shutdown()
		}
	})
}

// NewTaskService returns the task service, publishing through publisher.
func NewTaskService(ctx context.Context, publisher shim.Publisher, sd shutdown.Service) (taskAPI.TTRPCTaskService, error) {
	exits := make(chan process.Exit, 128)
	ec := reaper.Default.Subscribe()
	go func() {
		for e := range ec {
			exits <- process.Exit{Pid: e.Pid, Status: e.Status, Timestamp: e.Timestamp}
		}
		close(exits)
	}()
	s := &service{
		ctx:        ctx,
		events:     make(chan any, 128),
		shutdown:   sd,
		rt:         process.NewRuntime(process.NewExits(exits)),
		containers: make(map[string]*container),
	}
	sd.RegisterCallback(func(context.Context) error {
		reaper.Default.Unsubscribe(ec)
		return nil
	})
	if address := os.Getenv(socketEnv); address != "" {
		sd.RegisterCallback(removeOwnSocket(address))
	}
	// The last events (TaskExit, TaskDelete) must reach containerd before
	// the shim exits: wait, bounded, until every queued event is published.
	sd.RegisterCallback(func(ctx context.Context) error {
		done := make(chan struct{})
		go func() { s.unpublished.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			log.G(ctx).Warn("shim exits with events still unpublished")
		case <-ctx.Done():
		}
		return nil
	})
	// A shim that never gets its first container (containerd died between
	// `start` and Create) must not linger either.
	s.mu.Lock()
	s.armIdleLocked()
	s.mu.Unlock()
	go s.forward(publisher)
	return s, nil
}

// removeOwnSocket returns a shutdown callback that removes the shim's socket
// if it is still the one this shim serves: a `start` for the same group may
// already have replaced it with a new shim's.
func removeOwnSocket(address string) func(context.Context) error {
	path := strings.TrimPrefix(address, "unix://")
	var ino uint64
	if fi, err := os.Stat(path); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
	}
	return func(context.Context) error {
		fi, err := os.Stat(path)
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || st.Ino != ino {
			return nil
		}
		return shim.RemoveSocket(address)
	}
}

func (s *service) RegisterTTRPC(server *ttrpc.Server) error {
	taskAPI.RegisterTTRPCTaskService(server, s)
	return nil
}

// toGRPC converts husk's errors to errdefs kinds at the ttrpc edge.
func toGRPC(err error) error {
	if err == nil {
		return nil
	}
	var kind error
	switch {
	case errdefs.IsNotFound(err):
		kind = errdefs.ErrNotFound
	case errdefs.IsAlreadyExists(err):
		kind = errdefs.ErrAlreadyExists
	case errdefs.IsInvalidArgument(err):
		kind = errdefs.ErrInvalidArgument
	case errdefs.IsFailedPrecondition(err):
		kind = errdefs.ErrFailedPrecondition
	case errdefs.IsNotImplemented(err):
		kind = errdefs.ErrNotImplemented
	case errors.Is(err, process.ErrInvalidSpec):
		kind = errdefs.ErrInvalidArgument
	case errors.Is(err, process.ErrWrongState):
		kind = errdefs.ErrFailedPrecondition
	case errors.Is(err, process.ErrNotRunning):
		kind = errdefs.ErrNotFound
	case errors.Is(err, errors.ErrUnsupported):
		kind = errdefs.ErrNotImplemented
	case errors.Is(err, cgroups.ErrNoCgroup):
		kind = errdefs.ErrFailedPrecondition
	case errors.Is(err, os.ErrNotExist):
		kind = errdefs.ErrNotFound
	default:
		kind = errdefs.ErrUnknown
	}
	// Flatten to "message: kind". errgrpc sends every error a chain wraps
	// with a multi-%w link as a status detail of its own (code Unknown);
	// containerd joins those to ours when it decodes the error, and its
	// client then no longer sees the kind (NewTask of a bad spec came back
	// as Unknown instead of InvalidArgument).
	msg := strings.TrimSuffix(err.Error(), ": "+kind.Error())
	return errgrpc.ToGRPC(fmt.Errorf("%s: %w", msg, kind))
}

func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.containers[id]
	if !ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %q not found in this shim", id)
	}
	return c, nil
}

func notImplemented(what string) error {
	return errgrpc.ToGRPCf(errdefs.ErrNotImplemented, "%s is not implemented by husk yet", what)
}

func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, notImplemented("checkpoint/restore")
	}
	// The runtime's options (CRI: runtimeoptions.v1.Options) apply to the
	// shim as a whole (see manager.go); here they are only checked.
	_, notes, err := ParseOptions(r.Options)
	if err != nil {
		return nil, toGRPC(fmt.Errorf("create %s: %w", r.ID, err))
	}
	for _, n := range notes {
		log.G(ctx).WithField("id", r.ID).Warn(n)
	}
	// containerd never sends an invalid id, but the id names the
	// container in state, events and logs: refuse what containerd would.
	if err := identifiers.Validate(r.ID); err != nil {
		return nil, toGRPC(fmt.Errorf("create: container id: %w", err))
	}
	s.mu.Lock()
	if _, ok := s.containers[r.ID]; ok {
		s.mu.Unlock()
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "container %q already exists", r.ID)
	}
	// Reserve the id while the container is built.
	c := &container{id: r.ID, exitSent: make(chan struct{}), execs: map[string]*execProc{}}
	s.containers[r.ID] = c
	s.mu.Unlock()

	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	p, err := s.rt.Create(ctx, process.CreateConfig{
		ID:     r.ID,
		Bundle: r.Bundle,
		Rootfs: mount.FromProto(r.Rootfs),
		Stdio:  process.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
	})
	if err != nil {
		s.mu.Lock()
		s.removeLocked(r.ID)
		s.mu.Unlock()
		log.G(ctx).WithError(err).WithField("id", r.ID).Warn("create failed")
		return nil, toGRPC(fmt.Errorf("create %s: %w", r.ID, err))
	}
	c.init = p
	s.send(&eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO: &eventstypes.TaskIO{
			Stdin:    r.Stdin,
			Stdout:   r.Stdout,
			Stderr:   r.Stderr,
			Terminal: r.Terminal,
		},
		Pid: uint32(p.Pid()),
	})
	s.watchOOM(ctx, c)
	go s.publishExit(c)
	return &taskAPI.CreateTaskResponse{Pid: uint32(p.Pid())}, nil
}

// publishExit sends the init's TaskExit once it exited, never before its
// TaskStart (Start holds the lifecycle lock until TaskStart is queued).
func (s *service) publishExit(c *container) {
	<-c.init.Exited()
	// A barrier: no exec start is in flight past this point, and none can
	// start (the init is stopped). Then wait for the execs' exits, so the
	// init's exit is the container's last.
	c.lifecycle.Lock()
	c.lifecycle.Unlock()
	if !c.init.OwnPidNS() {
		c.init.Kill(s.ctx, syscall.SIGKILL, true)
	}
	c.running.Wait()
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	e := c.init.ExitStatus()
	s.send(&eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          c.id,
		Pid:         uint32(e.Pid),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.Timestamp),
	})
	close(c.exitSent)
}

// ready returns the container once its Create finished.
func (s *service) ready(id string) (*container, error) {
	c, err := s.get(id)
	if err != nil {
		return nil, err
	}
	c.lifecycle.Lock()
	p := c.init
	c.lifecycle.Unlock()
	if p == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrNotFound, "container %q not created", id)
	}
	return c, nil
}

func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	if r.ExecID != "" {
		return s.startExec(ctx, c, r.ExecID)
	}
	if err := c.init.Start(ctx); err != nil {
		return nil, toGRPC(fmt.Errorf("start %s: %w", r.ID, err))
	}
	s.send(&eventstypes.TaskStart{ContainerID: r.ID, Pid: uint32(c.init.Pid())})
	return &taskAPI.StartResponse{Pid: uint32(c.init.Pid())}, nil
}

func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		return s.deleteExec(ctx, c, r.ExecID)
	}
	if err := c.init.Delete(ctx); err != nil {
		return nil, toGRPC(fmt.Errorf("delete %s: %w", r.ID, err))
	}
	<-c.exitSent // TaskExit is queued before TaskDelete
	s.mu.Lock()
	s.removeLocked(r.ID)
	s.mu.Unlock()
	e := c.init.ExitStatus()
	s.send(&eventstypes.TaskDelete{
		ContainerID: r.ID,
		Pid:         uint32(c.init.Pid()),
		ExitStatus:  uint32(e.Status),
		ExitedAt:    protobuf.ToTimestamp(e.Timestamp),
	})
	return &taskAPI.DeleteResponse{
		Pid:        uint32(c.init.Pid()),
		ExitStatus: uint32(e.Status),
		ExitedAt:   protobuf.ToTimestamp(e.Timestamp),
	}, nil
}

func toStatus(st process.Status) task.Status {
	switch st {
	case process.Created:
		return task.Status_CREATED
	case process.Running:
		return task.Status_RUNNING
	case process.Paused:
		return task.Status_PAUSED
	case process.Stopped, process.Deleted:
		return task.Status_STOPPED
	}
	return task.Status_UNKNOWN
}

func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.proc(r.ExecID)
	if err != nil {
		return nil, err
	}
	id := r.ExecID
	if id == "" {
		id = r.ID
	}
	x := p.ExitStatus()
	sio := p.Stdio()
	return &taskAPI.StateResponse{
		ID:         id,
		Bundle:     c.init.Bundle,
		Pid:        uint32(p.Pid()),
		Status:     toStatus(p.Status()),
		Stdin:      sio.Stdin,
		Stdout:     sio.Stdout,
		Stderr:     sio.Stderr,
		Terminal:   sio.Terminal,
		ExitStatus: uint32(x.Status),
		ExitedAt:   protobuf.ToTimestamp(x.Timestamp),
	}, nil
}

func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*emptypb.Empty, error) {
	if r.Signal > 64 {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "unknown signal %d", r.Signal)
	}
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID != "" {
		e, err := c.exec(r.ExecID)
		if err != nil {
			return nil, err
		}
		if err := e.p.Kill(syscall.Signal(r.Signal)); err != nil {
			return nil, toGRPC(fmt.Errorf("kill exec %s: %w", r.ExecID, err))
		}
		return empty, nil
	}
	if err := c.init.Kill(ctx, syscall.Signal(r.Signal), r.All); err != nil {
		return nil, toGRPC(fmt.Errorf("kill %s: %w", r.ID, err))
	}
	return empty, nil
}

func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.proc(r.ExecID)
	if err != nil {
		return nil, err
	}
	select {
	case <-p.Exited():
	case <-ctx.Done():
		return nil, errgrpc.ToGRPC(ctx.Err())
	}
	x := p.ExitStatus()
	return &taskAPI.WaitResponse{ExitStatus: uint32(x.Status), ExitedAt: protobuf.ToTimestamp(x.Timestamp)}, nil
}

func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	var pid int
	if c, err := s.get(r.ID); err == nil && c.init != nil {
		pid = c.init.Pid()
	}
	return &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(pid)}, nil
}

// Shutdown ends the shim once it serves no container; while any remain it
// does nothing (one shim serves a whole group).
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.containers) > 0 {
		return empty, nil
	}
	s.shutdown.Shutdown()
	return empty, nil
}

func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	// A restarted containerd asks every shim it reloads for its pids and
	// deletes the tasks that have none (containerd#6860): an empty list for
	// an exited, not yet deleted, container would drop its exit status
	// before any client could read it. Say it has exited instead.
	if st := c.init.Status(); st == process.Stopped {
		e := c.init.ExitStatus()
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "container %q has exited (status %d): it has no processes", r.ID, e.Status)
	}
	pids, err := c.init.Pids()
	if err != nil {
		return nil, toGRPC(fmt.Errorf("list processes of %s: %w", r.ID, err))
	}
	execOf := map[int]string{}
	c.execMu.Lock()
	for id, e := range c.execs {
		if pid := e.p.Pid(); pid > 0 {
			execOf[pid] = id
		}
	}
	c.execMu.Unlock()
	out := make([]*task.ProcessInfo, 0, len(pids))
	for _, pid := range pids {
		pi := &task.ProcessInfo{Pid: uint32(pid)}
		if id, ok := execOf[pid]; ok {
			if a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id}); err == nil {
				pi.Info = a
			}
		}
		out = append(out, pi)
	}
	return &taskAPI.PidsResponse{Processes: out}, nil
}

func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Pause(); err != nil {
		return nil, toGRPC(fmt.Errorf("pause %s: %w", r.ID, err))
	}
	s.send(&eventstypes.TaskPaused{ContainerID: r.ID})
	return empty, nil
}

func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if err := c.init.Resume(); err != nil {
		return nil, toGRPC(fmt.Errorf("resume %s: %w", r.ID, err))
	}
	s.send(&eventstypes.TaskResumed{ContainerID: r.ID})
	return empty, nil
}

func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("checkpoint")
}

func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if r.ExecID == "" {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec id must not be empty")
	}
	var spec specs.Process
	if r.Spec == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec %q has no process spec", r.ExecID)
	}
	if err := json.Unmarshal(r.Spec.GetValue(), &spec); err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "exec %q process spec: %v", r.ExecID, err)
	}
	c.lifecycle.Lock()
	defer c.lifecycle.Unlock()
	// As with the runc shim: into a created (not yet started) container too,
	// whose init has set everything up and waits for Start.
	if st := c.init.Status(); st != process.Running && st != process.Created {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "cannot exec in a %s container %q", st, r.ID)
	}
	c.execMu.Lock()
	defer c.execMu.Unlock()
	if _, ok := c.execs[r.ExecID]; ok {
		return nil, errgrpc.ToGRPCf(errdefs.ErrAlreadyExists, "exec %q already exists in container %q", r.ExecID, r.ID)
	}
	p, err := c.init.NewExec(r.ExecID, &spec, process.Stdio{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal})
	if err != nil {
		return nil, toGRPC(fmt.Errorf("exec %s: %w", r.ExecID, err))
	}
	c.execs[r.ExecID] = &execProc{p: p, exitSent: make(chan struct{})}
	s.send(&eventstypes.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return empty, nil
}

// startExec runs under the container's lifecycle lock.
func (s *service) startExec(ctx context.Context, c *container, execID string) (*taskAPI.StartResponse, error) {
	e, err := c.exec(execID)
	if err != nil {
		return nil, err
	}
	if st := c.init.Status(); st != process.Running && st != process.Created {
		return nil, errgrpc.ToGRPCf(errdefs.ErrFailedPrecondition, "cannot start exec %q in a %s container", execID, st)
	}
	if err := e.p.Start(ctx, s.rt); err != nil {
		return nil, toGRPC(fmt.Errorf("start exec %s: %w", execID, err))
	}
	c.running.Add(1)
	s.send(&eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: execID, Pid: uint32(e.p.Pid())})
	go func() {
		<-e.p.Exited()
		x := e.p.ExitStatus()
		s.send(&eventstypes.TaskExit{
			ContainerID: c.id,
			ID:          execID,
			Pid:         uint32(x.Pid),
			ExitStatus:  uint32(x.Status),
			ExitedAt:    protobuf.ToTimestamp(x.Timestamp),
		})
		close(e.exitSent)
		c.running.Done()
	}()
	return &taskAPI.StartResponse{Pid: uint32(e.p.Pid())}, nil
}

func (s *service) deleteExec(ctx context.Context, c *container, execID string) (*taskAPI.DeleteResponse, error) {
	e, err := c.exec(execID)
	if err != nil {
		return nil, err
	}
	if err := e.p.Delete(ctx); err != nil {
		return nil, toGRPC(fmt.Errorf("delete exec %s: %w", execID, err))
	}
	if e.p.Pid() != 0 {
		// A started exec: its TaskExit is queued before Delete answers,
		// as the init's is.
		<-e.exitSent
	}
	c.execMu.Lock()
	delete(c.execs, execID)
	c.execMu.Unlock()
	x := e.p.ExitStatus()
	return &taskAPI.DeleteResponse{
		Pid:        uint32(e.p.Pid()),
		ExitStatus: uint32(x.Status),
		ExitedAt:   protobuf.ToTimestamp(x.Timestamp),
	}, nil
}

func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.proc(r.ExecID)
	if err != nil {
		return nil, err
	}
	if err := p.Resize(r.Width, r.Height); err != nil {
		return nil, toGRPC(fmt.Errorf("resize %s %s: %w", r.ID, r.ExecID, err))
	}
	return empty, nil
}

func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	p, err := c.proc(r.ExecID)
	if err != nil {
		return nil, err
	}
	if r.Stdin {
		p.CloseStdin()
	}
	return empty, nil
}

func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*emptypb.Empty, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	if r.Resources == nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "update of %q has no resources", r.ID)
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.Resources.GetValue(), &res); err != nil {
		return nil, errgrpc.ToGRPCf(errdefs.ErrInvalidArgument, "update of %q: resources: %v", r.ID, err)
	}
	if err := c.init.Update(&res); err != nil {
		return nil, toGRPC(fmt.Errorf("update %s: %w", r.ID, err))
	}
	return empty, nil
}

func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.ready(r.ID)
	if err != nil {
		return nil, err
	}
	st, err := c.init.Stats()
	if err != nil {
		return nil, toGRPC(fmt.Errorf("stats of %s: %w", r.ID, err))
	}
	a, err := typeurl.MarshalAnyToProto(st)
	if err != nil {
		return nil, toGRPC(fmt.Errorf("stats of %s: %w", r.ID, err))
	}
	return &taskAPI.StatsResponse{Stats: a}, nil
}

// watchOOM publishes a TaskOOM for each OOM kill in the container's cgroup.
func (s *service) watchOOM(ctx context.Context, c *container) {
	ch, err := c.init.OOMEvents()
	if err != nil {
		if !errors.Is(err, cgroups.ErrNoCgroup) {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("watch oom events")
		}
		return
	}
	go func() {
		for range ch {
			s.send(&eventstypes.TaskOOM{ContainerID: c.id})
		}
	}()
}

func (s *service) send(evt any) {
	s.unpublished.Add(1)
	select {
	case s.events <- evt:
	case <-s.shutdown.Done():
		s.unpublished.Done()
	}
}

// forward publishes events to containerd in the order they were queued.
func (s *service) forward(publisher shim.Publisher) {
	ctx := context.WithoutCancel(s.ctx)
	defer publisher.Close()
	publish := func(e any) {
		defer s.unpublished.Done()
		if err := publisher.Publish(ctx, runtime.GetTopic(e), e); err != nil {
			log.G(ctx).WithError(err).Error("publish event")
		}
	}
	for {
		select {
		case e := <-s.events:
			publish(e)
		case <-s.shutdown.Done():
			for {
				select {
				case e := <-s.events:
					publish(e)
				default:
					return
				}
			}
		}
	}
}

package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/process/cgroups"
	"github.com/husk-runtime/husk/rootfs"
)

// Status is a process's lifecycle state.
type Status string

const (
	Created Status = "created"
	Running Status = "running"
	Paused  Status = "paused"
	Stopped Status = "stopped"
	Deleted Status = "deleted"
)

// ErrNotRunning is returned for a signal to a process that already ended.
var ErrNotRunning = errors.New("process already finished")

// ErrWrongState is returned for a transition its state does not allow.
var ErrWrongState = errors.New("wrong process state")

// setupTimeout bounds the container init's setup between clone and ready.
const setupTimeout = 60 * time.Second

// Runtime starts containers. One per shim; it shares the exit router and the
// handle on our own binary between all containers of the shim.
type Runtime struct {
	exits   *Exits
	exeOnce sync.Once
	exe     *selfExe
	exeErr  error
}

// NewRuntime returns a Runtime that learns about exits from exits.
func NewRuntime(exits *Exits) *Runtime {
	return &Runtime{exits: exits}
}

func (r *Runtime) initBinary() (*selfExe, error) {
	r.exeOnce.Do(func() { r.exe, r.exeErr = openSelfExe() })
	return r.exe, r.exeErr
}

// CreateConfig is a Create request in husk's terms.
type CreateConfig struct {
	ID     string
	Bundle string
	Rootfs []mount.Mount
	Stdio  Stdio
}

// Init is a container's init process, and with it the container: its
// rootfs mount, its cgroup, its stdio.
type Init struct {
	ID     string
	Bundle string
	Spec   *specs.Spec

	rootfs   string
	mounted  bool
	ownPidNS bool
	cg       cgroups.Cgroup
	stdio    Stdio
	*child   // nil until spawned

	mu     sync.Mutex
	status Status
	exit   Exit
	exited chan struct{} // closed once the exit is recorded
}

// cleanups is one Create's rollback stack: on failure it undoes exactly
// what was done, newest first.
type cleanups []func()

func (c *cleanups) add(f func()) { *c = append(*c, f) }
func (c cleanups) run() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// Create builds the container up to the point where only exec is left, and
// returns with the init waiting for Start.
func (r *Runtime) Create(ctx context.Context, cfg CreateConfig) (_ *Init, retErr error) {
	t0 := time.Now()
	spec, err := LoadSpec(cfg.Bundle)
	if err != nil {
		return nil, err
	}
	plan, err := planNamespaces(spec.Linux.Namespaces)
	if err != nil {
		return nil, err
	}
	if err := plan.checkJoinable(); err != nil {
		return nil, err
	}
	cfg.Stdio.Terminal = spec.Process.Terminal
	rootfsDir := spec.Root.Path
	if !filepath.IsAbs(rootfsDir) {
		rootfsDir = filepath.Join(cfg.Bundle, rootfsDir)
	}
	tSpec := time.Now()

	var undo cleanups
	defer func() {
		if retErr != nil {
			undo.run()
		}
	}()

	// The request's rootfs mounts go on <bundle>/rootfs, as with the runc
	// shim, whatever root.path says: root.path names the container's root
	// (normally that same dir), never a host dir for husk to create or to
	// mount over.
	mountDir := filepath.Join(cfg.Bundle, "rootfs")
	p := &Init{
		ID:       cfg.ID,
		Bundle:   cfg.Bundle,
		Spec:     spec,
		rootfs:   mountDir,
		stdio:    cfg.Stdio,
		status:   Created,
		exited:   make(chan struct{}),
		ownPidNS: plan.clone&unix.CLONE_NEWPID != 0,
	}

	// From here on, a shim that dies leaves a record for the `delete` action,
	// written before anything is created on the host (it names the cgroup,
	// and the rootfs mount husk is about to make).
	p.mounted = len(cfg.Rootfs) > 0
	undo.add(func() { RemoveState(cfg.Bundle) })
	if err := p.persist(); err != nil {
		return nil, err
	}
	// The cgroup and the rootfs mount do not depend on each other: the
	// cgroup is made while the rootfs is mounted.
	type cgResult struct {
		cg  cgroups.Cgroup
		err error
		at  time.Time
	}
	cgc := make(chan cgResult, 1)
	go func() {
		cg, err := cgroups.New(spec.Linux.CgroupsPath, spec.Linux.Resources)
		cgc <- cgResult{cg, err, time.Now()}
	}()
	mountErr := p.mountRootfs(ctx, cfg.Rootfs, rootfsDir, &undo)
	tMount := time.Now()
	cgr := <-cgc
	if cgr.err == nil {
		cg := cgr.cg
		p.cg = cg
		undo.add(func() {
			if err := cg.Delete(); err != nil {
				log.G(ctx).WithError(err).Warn("delete cgroup after failed create")
			}
		})
	}
	if mountErr != nil {
		return nil, mountErr
	}
	if cgr.err != nil {
		return nil, fmt.Errorf("cgroup %q: %w", spec.Linux.CgroupsPath, cgr.err)
	}
	cg := cgr.cg
	tCgroup := cgr.at
	if tCgroup.Before(tMount) {
		tCgroup = tMount
	}

	var uidMap, gidMap []syscall.SysProcIDMap
	if plan.clone&unix.CLONE_NEWUSER != 0 {
		uidMap = toSysMappings(spec.Linux.UIDMappings)
		gidMap = toSysMappings(spec.Linux.GIDMappings)
	}
	c, err := r.spawn(ctx, spawnOpts{
		id:          cfg.ID,
		notifyState: processState(cfg.ID, cfg.Bundle, specs.StateCreating, spec.Annotations),
		config:      &initConfig{Spec: spec, Rootfs: rootfsDir, CgroupNS: plan.cgroupNS},
		stdio:       cfg.Stdio,
		clone:       plan.clone,
		uidMap:      uidMap,
		gidMap:      gidMap,
		join:        plan.join,
		cg:          cg,
	})
	if err != nil {
		return nil, err
	}
	p.child = c
	if err := p.persist(); err != nil {
		c.killAndReap(ctx)
		c.io.Close()
		c.sync.Close()
		return nil, err
	}
	tReady := time.Now()
	go p.watchExit()
	log.G(ctx).WithFields(log.Fields{
		"id":      cfg.ID,
		"spec":    tSpec.Sub(t0),
		"mount":   tMount.Sub(tSpec),
		"cgroup":  tCgroup.Sub(tMount),
		"spawn":   tReady.Sub(tCgroup),
		"total":   tReady.Sub(t0),
		"init":    c.pid,
		"phase":   "create",
		"runtime": "husk",
	}).Debug("container created")
	return p, nil
}

// mountRootfs mounts the request's rootfs on the bundle's rootfs dir (if
// there are mounts) and checks the container's root dir; undo gets what
// unmounts it.
func (p *Init) mountRootfs(ctx context.Context, mounts []mount.Mount, rootfsDir string, undo *cleanups) error {
	if len(mounts) > 0 {
		if err := os.MkdirAll(p.rootfs, 0o711); err != nil {
			return fmt.Errorf("create rootfs dir: %w", err)
		}
		if err := rootfs.MountRootfs(mounts, p.rootfs); err != nil {
			return fmt.Errorf("mount rootfs: %w", err)
		}
		undo.add(func() {
			if err := rootfs.UnmountRootfs(p.rootfs); err != nil {
				log.G(ctx).WithError(err).Warn("unmount rootfs after failed create")
			}
		})
	}
	if fi, err := os.Stat(rootfsDir); err != nil || !fi.IsDir() {
		return fmt.Errorf("rootfs %s: %w", rootfsDir, errOrNotDir(err))
	}
	return nil
}

func errOrNotDir(err error) error {
	if err != nil {
		return err
	}
	return syscall.ENOTDIR
}

func toSysMappings(ms []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, 0, len(ms))
	for _, m := range ms {
		out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	return out
}

func (p *Init) watchExit() {
	e := <-p.exitCh
	p.mu.Lock()
	p.exit = e
	p.status = Stopped
	p.mu.Unlock()
	if err := p.persist(); err != nil {
		log.L.WithError(err).WithField("id", p.ID).Warn("record exit status")
	}
	close(p.exited)
}

func (p *Init) persist() error {
	p.mu.Lock()
	st := &State{
		ID:            p.ID,
		CgroupsPath:   p.Spec.Linux.CgroupsPath,
		Rootfs:        p.rootfs,
		MountedRootfs: p.mounted,
		OwnPidNS:      p.ownPidNS,
	}
	if p.child != nil {
		st.Pid, st.StartTime = p.pid, p.startTime
	}
	if p.status == Stopped {
		e := p.exit
		st.Exit = &e
	}
	p.mu.Unlock()
	return WriteState(p.Bundle, st)
}

// Resize sets the size of the init's terminal.
func (p *Init) Resize(width, height uint32) error { return p.io.Resize(width, height) }

// CloseStdin closes the init's stdin.
func (p *Init) CloseStdin() { p.io.CloseStdin() }

// OwnPidNS says the container has its own pid namespace.
func (p *Init) OwnPidNS() bool { return p.ownPidNS }

// Pid is the init's pid in the shim's pid namespace.
func (p *Init) Pid() int { return p.pid }

// Stdio is what the init's streams were created with.
func (p *Init) Stdio() Stdio { return p.stdio }

// Status is the init's current state.
func (p *Init) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Exited is closed once the init's exit is recorded.
func (p *Init) Exited() <-chan struct{} { return p.exited }

// ExitStatus is the init's exit (zero until it exited).
func (p *Init) ExitStatus() Exit {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exit
}

// Start releases the init: it execs the user's process.
func (p *Init) Start(ctx context.Context) error {
	p.mu.Lock()
	if p.status != Created {
		st := p.status
		p.mu.Unlock()
		return fmt.Errorf("start a %s container: %w", st, ErrWrongState)
	}
	p.mu.Unlock()
	t0 := time.Now()
	if err := p.child.start(ctx); err != nil {
		// It may have exec'd (a seccomp agent that could not be reached):
		// a failed Start leaves no process running.
		unix.Kill(p.pid, unix.SIGKILL)
		return err
	}
	p.mu.Lock()
	if p.status == Created {
		p.status = Running
	}
	p.mu.Unlock()
	log.G(ctx).WithFields(log.Fields{"id": p.ID, "phase": "start", "total": time.Since(t0)}).Debug("container started")
	return nil
}

// Kill signals the init, or with all every process of the container.
func (p *Init) Kill(ctx context.Context, sig syscall.Signal, all bool) error {
	p.mu.Lock()
	defer p.mu.Unlock() // the pid stays ours (unreaped or recorded) while we hold the lock
	if all {
		return p.killAll(sig)
	}
	if p.status == Stopped || p.status == Deleted {
		return ErrNotRunning
	}
	if err := unix.Kill(p.pid, sig); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return ErrNotRunning
		}
		return fmt.Errorf("signal %d to init %d: %w", sig, p.pid, err)
	}
	if sig == unix.SIGKILL && p.status == Paused {
		// A v1-frozen task acts on SIGKILL only once thawed (runc thaws too).
		if err := p.cg.Thaw(); err != nil {
			return fmt.Errorf("thaw paused container after SIGKILL: %w", err)
		}
		p.status = Running
	}
	return nil
}

func (p *Init) killAll(sig syscall.Signal) error {
	if p.cg != nil {
		if err := p.cg.KillAll(sig); err == nil {
			if sig == unix.SIGKILL && p.status == Paused {
				p.status = Running // KillAll(SIGKILL) thaws the cgroup
			}
			return nil
		}
	}
	if p.status == Stopped || p.status == Deleted {
		return nil
	}
	if p.ownPidNS {
		// Killing every process of a pid namespace: SIGKILL to its init does
		// it in the kernel; other signals go to each member.
		pids, err := pidsInNamespaceOf(p.pid)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			unix.Kill(pid, sig)
		}
		return nil
	}
	return unix.Kill(p.pid, sig)
}

// Pids lists the container's processes (host pids).
func (p *Init) Pids() ([]int, error) {
	if p.cg != nil {
		if pids, err := p.cg.Pids(); err == nil && len(pids) > 0 {
			return pids, nil
		}
	}
	if p.ownPidNS && p.Status() != Stopped {
		return pidsInNamespaceOf(p.pid)
	}
	return nil, nil
}

// pidsInNamespaceOf scans /proc for processes sharing pid's pid namespace.
func pidsInNamespaceOf(pid int) ([]int, error) {
	want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	if err != nil {
		return nil, fmt.Errorf("read pid namespace of %d: %w", pid, err)
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, e := range ents {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "%d", &n); err != nil || n <= 0 {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", n)); err == nil && ns == want {
			out = append(out, n)
		}
	}
	return out, nil
}

// Delete tears the container down: a created init is killed first; a
// running one is refused.
func (p *Init) Delete(ctx context.Context) error {
	p.mu.Lock()
	st := p.status
	p.mu.Unlock()
	switch st {
	case Running, Paused:
		return fmt.Errorf("cannot delete a %s container: %w", st, ErrWrongState)
	case Deleted:
		return nil
	case Created:
		unix.Kill(p.pid, unix.SIGKILL)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("container init %d did not die after SIGKILL", p.pid)
		}
	case Stopped:
		// The status turns Stopped before watchExit has written the exit to
		// the state file: wait for that write, or it could recreate the
		// file after RemoveState below (and race containerd's removal of
		// the bundle).
		<-p.exited
	}
	if !p.ownPidNS && p.cg != nil {
		p.cg.KillAll(unix.SIGKILL)
	}
	if !p.io.Wait(2 * time.Second) {
		log.G(ctx).WithField("id", p.ID).Warn("container output still open at delete; closing it")
	}
	p.io.Close()
	p.sync.Close()
	// The cgroup and the rootfs mount go side by side (the init is gone).
	t0 := time.Now()
	var cgErr error
	var tCgroup time.Duration
	cgDone := make(chan struct{})
	go func() {
		defer close(cgDone)
		if p.cg != nil {
			cgErr = p.cg.Delete()
		}
		tCgroup = time.Since(t0)
	}()
	var errs []error
	if p.mounted {
		if err := rootfs.UnmountRootfs(p.rootfs); err != nil {
			errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
		}
	}
	tUnmount := time.Since(t0)
	<-cgDone
	if cgErr != nil {
		errs = append(errs, fmt.Errorf("delete cgroup: %w", cgErr))
	}
	if err := RemoveState(p.Bundle); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	p.mu.Lock()
	p.status = Deleted
	p.mu.Unlock()
	log.G(ctx).WithFields(log.Fields{
		"id":      p.ID,
		"cgroup":  tCgroup,
		"unmount": tUnmount,
		"total":   time.Since(t0),
		"phase":   "delete",
		"runtime": "husk",
	}).Debug("container deleted")
	return nil
}

// Pause freezes every process of the container.
func (p *Init) Pause() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != Running {
		return fmt.Errorf("pause a %s container: %w", p.status, ErrWrongState)
	}
	if err := p.cg.Freeze(); err != nil {
		return fmt.Errorf("freeze cgroup: %w", err)
	}
	p.status = Paused
	return nil
}

// Resume thaws a paused container.
func (p *Init) Resume() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.status != Paused {
		return fmt.Errorf("resume a %s container: %w", p.status, ErrWrongState)
	}
	if err := p.cg.Thaw(); err != nil {
		return fmt.Errorf("thaw cgroup: %w", err)
	}
	p.status = Running
	return nil
}

// Update changes the container's resources live.
func (p *Init) Update(res *specs.LinuxResources) error {
	switch st := p.Status(); st {
	case Created, Running, Paused:
	default:
		return fmt.Errorf("update a %s container: %w", st, ErrWrongState)
	}
	if err := p.cg.Update(res); err != nil {
		return fmt.Errorf("update resources: %w", err)
	}
	return nil
}

// Stats returns the container's cgroup metrics (containerd's cgroup1 or
// cgroup2 stats.Metrics).
func (p *Init) Stats() (any, error) { return p.cg.Stats() }

// OOMEvents signals each OOM kill in the container's cgroup.
func (p *Init) OOMEvents() (<-chan struct{}, error) { return p.cg.OOMEvents() }

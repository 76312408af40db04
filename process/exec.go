package process

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Exec is an extra process in a running container (ctr task exec, kubectl
// exec). It joins every namespace of the container and its cgroup, and is
// set up from its own process spec exactly as the init is.
type Exec struct {
	ID    string
	init  *Init
	spec  *specs.Process
	stdio Stdio

	mu     sync.Mutex
	status Status
	exit   Exit
	exited chan struct{}
	*child // nil until started
}

// NewExec registers an exec process; nothing runs until Start.
func (p *Init) NewExec(id string, spec *specs.Process, stdio Stdio) (*Exec, error) {
	// The request's terminal flag wins over the process spec's, as with the
	// runc shim: containerd creates the FIFOs for what the request says.
	proc := *spec
	proc.Terminal = stdio.Terminal
	if err := ValidateProcess(&proc); err != nil {
		return nil, err
	}
	return &Exec{ID: id, init: p, spec: &proc, stdio: stdio, status: Created, exited: make(chan struct{})}, nil
}

// Start runs the exec process inside the container.
func (e *Exec) Start(ctx context.Context, r *Runtime) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status != Created {
		return fmt.Errorf("start a %s exec: %w", e.status, ErrWrongState)
	}
	if st := e.init.Status(); st != Running && st != Created {
		return fmt.Errorf("exec into a %s container: %w", st, ErrWrongState)
	}
	t0 := time.Now()
	pid := e.init.Pid()
	join, nsenter, err := execNamespaces(pid)
	if err != nil {
		return err
	}
	spec := *e.init.Spec
	spec.Process = e.spec
	c, err := r.spawn(ctx, spawnOpts{
		id:          e.init.ID,
		notifyState: processState(e.init.ID, e.init.Bundle, specs.StateRunning, spec.Annotations),
		config:      &initConfig{Spec: &spec, Exec: true},
		stdio:       e.stdio,
		join:        join,
		nsenter:     nsenter,
		cg:          e.init.cg,
	})
	if err != nil {
		return err
	}
	tReady := time.Now()
	if err := c.start(ctx); err != nil {
		c.killAndReap(ctx)
		c.io.Close()
		return err
	}
	e.child = c
	e.status = Running
	go e.watchExit()
	log.G(ctx).WithFields(log.Fields{
		"id":      e.init.ID,
		"exec":    e.ID,
		"spawn":   tReady.Sub(t0),
		"total":   time.Since(t0),
		"phase":   "exec",
		"runtime": "husk",
	}).Debug("exec started")
	return nil
}

// execNamespaces lists how an exec joins the namespaces of the process pid:
// the ones a forking thread can join, and mnt/user for the C constructor.
// A namespace the shim already shares is skipped (setns into one's own user
// namespace is refused).
func execNamespaces(pid int) (join []nsJoin, nsenter string, err error) {
	var enter []string
	for _, ns := range []struct {
		name string
		typ  specs.LinuxNamespaceType
	}{
		{"user", specs.UserNamespace}, {"mnt", specs.MountNamespace},
		{"pid", specs.PIDNamespace}, {"net", specs.NetworkNamespace},
		{"ipc", specs.IPCNamespace}, {"uts", specs.UTSNamespace},
		{"cgroup", specs.CgroupNamespace},
	} {
		path := fmt.Sprintf("/proc/%d/ns/%s", pid, ns.name)
		theirs, err := os.Readlink(path)
		if err != nil {
			return nil, "", fmt.Errorf("read %s namespace of init %d: %w", ns.name, pid, err)
		}
		ours, _ := os.Readlink("/proc/self/ns/" + ns.name)
		if theirs == ours {
			continue
		}
		switch ns.typ {
		case specs.UserNamespace, specs.MountNamespace:
			enter = append(enter, ns.name+":"+path)
		default:
			join = append(join, nsJoin{typ: ns.typ, flag: int(nsFlags[ns.typ]), path: path})
		}
	}
	return join, strings.Join(enter, ","), nil
}

func (e *Exec) watchExit() {
	x := <-e.exitCh
	e.mu.Lock()
	e.exit = x
	e.status = Stopped
	e.mu.Unlock()
	close(e.exited)
}

// Pid is the exec's host pid (0 before Start).
func (e *Exec) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.child == nil {
		return 0
	}
	return e.pid
}

// Status is the exec's state.
func (e *Exec) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.status
}

// Stdio is what the exec's streams were created with.
func (e *Exec) Stdio() Stdio { return e.stdio }

// Exited is closed once the exec's exit is recorded.
func (e *Exec) Exited() <-chan struct{} { return e.exited }

// ExitStatus is the exec's exit.
func (e *Exec) ExitStatus() Exit {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.exit
}

// Kill signals the exec process.
func (e *Exec) Kill(sig syscall.Signal) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.status != Running {
		if e.status == Created {
			return fmt.Errorf("exec %s is not started: %w", e.ID, ErrNotRunning)
		}
		return ErrNotRunning
	}
	if err := unix.Kill(e.pid, sig); err != nil {
		if err == unix.ESRCH {
			return ErrNotRunning
		}
		return fmt.Errorf("signal %d to exec %d: %w", sig, e.pid, err)
	}
	return nil
}

// Resize sets the exec's terminal size.
func (e *Exec) Resize(width, height uint32) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.child == nil {
		return fmt.Errorf("exec %s is not started: %w", e.ID, ErrWrongState)
	}
	return e.io.Resize(width, height)
}

// CloseStdin closes the exec's stdin.
func (e *Exec) CloseStdin() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.child != nil {
		e.io.CloseStdin()
	}
}

// Delete releases a stopped (or never started) exec.
func (e *Exec) Delete(ctx context.Context) error {
	e.mu.Lock()
	st := e.status
	e.mu.Unlock()
	switch st {
	case Running:
		return fmt.Errorf("cannot delete a running exec: %w", ErrWrongState)
	case Created:
		e.mu.Lock()
		e.status = Deleted
		e.mu.Unlock()
		return nil
	}
	e.io.Wait(2 * time.Second)
	e.io.Close()
	e.mu.Lock()
	e.status = Deleted
	e.mu.Unlock()
	return nil
}

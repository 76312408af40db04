//go:build linux

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
)

// bench runs the measurements against one env.
type bench struct {
	e   *env
	rts []runtimeDef
	img containerd.Image
	res *results
	// failures counts errors per runtime and measurement; a runtime that
	// keeps failing is dropped from that measurement.
	failures map[string]int
}

const maxFailures = 3

func (b *bench) fail(what string, rt runtimeDef, err error) {
	key := what + "/" + rt.Name
	b.failures[key]++
	fmt.Fprintf(os.Stderr, "bench: %s with %s failed: %v\n", what, rt.Name, err)
	b.res.addError(fmt.Sprintf("%s (%s): %v", what, rt.Name, err))
}

func (b *bench) gaveUp(what string, rt runtimeDef) bool {
	return b.failures[what+"/"+rt.Name] >= maxFailures
}

// timeCtr runs ctr and returns its wall time.
func (b *bench) timeCtr(args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(b.e.ctx(), ctrTimeout)
	defer cancel()
	cmd := b.e.ctrCmd(ctx, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := b.e.runCmd(cmd)
	d := time.Since(t0)
	if err != nil {
		return d, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return d, nil
}

// ctrBaseline is the wall time of a ctr call that does almost nothing: the
// part of every ctr-measured figure that no runtime can change.
func (b *bench) ctrBaseline(n int) {
	var s []time.Duration
	for range n {
		d, err := b.timeCtr("tasks", "ls", "-q")
		if err != nil {
			b.res.addError(err.Error())
			continue
		}
		s = append(s, d)
	}
	b.res.CtrBaseline = s
}

// startLatency: `ctr run --rm IMAGE id /bin/true`, interleaved A B C A B C;
// with seccomp, `ctr run --seccomp` (containerd's default profile, as
// docker, nerdctl and CRI apply it).
func (b *bench) startLatency(n, warmup int, seccomp bool) {
	what, prefix := "start", "start"
	if seccomp {
		what, prefix = "start.seccomp", "startsc"
	}
	for i := -warmup; i < n; i++ {
		for _, rt := range b.rts {
			if b.gaveUp(what, rt) {
				continue
			}
			id := fmt.Sprintf("%s-%s-%d", prefix, rt.Name, i+warmup)
			args := append([]string{"run", "--rm", "--fifo-dir", b.e.fifoDir}, rt.ctrArgs()...)
			if seccomp {
				args = append(args, "--seccomp")
			}
			args = append(args, imageRef, id, "/bin/true")
			d, err := b.timeCtr(args...)
			if err != nil {
				b.fail(what, rt, err)
				b.e.forceDelete(b.e.ctx(), id)
				continue
			}
			if i >= 0 {
				b.res.add(what, rt.Name, d)
			}
		}
	}
}

// startInPod: `ctr run --rm` of /bin/true into a pod whose shim already
// runs (an idle container of the same io.kubernetes.cri.sandbox-id keeps it
// up), as CRI starts a pod's containers: no shim is started or stopped.
func (b *bench) startInPod(n, warmup int) {
	const what = "start.pod"
	ctx := b.e.ctx()
	type anchor struct {
		c containerd.Container
		t containerd.Task
	}
	anchors := map[string]anchor{}
	defer func() {
		for _, a := range anchors {
			if err := removeContainer(ctx, a.c, a.t); err != nil {
				b.res.addError(err.Error())
			}
		}
	}()
	for _, rt := range b.rts {
		c, t, err := b.startContainer(ctx, rt, "podanchor-"+rt.Name, map[string]string{groupLabel: "pod-" + rt.Name}, "sleep", "3600")
		if err != nil {
			b.fail(what, rt, err)
			b.failures[what+"/"+rt.Name] = maxFailures
			continue
		}
		anchors[rt.Name] = anchor{c, t}
	}
	for i := -warmup; i < n; i++ {
		for _, rt := range b.rts {
			if b.gaveUp(what, rt) {
				continue
			}
			id := fmt.Sprintf("startpod-%s-%d", rt.Name, i+warmup)
			args := append([]string{"run", "--rm", "--fifo-dir", b.e.fifoDir, "--annotation", groupLabel + "=pod-" + rt.Name}, rt.ctrArgs()...)
			args = append(args, imageRef, id, "/bin/true")
			d, err := b.timeCtr(args...)
			if err != nil {
				b.fail(what, rt, err)
				b.e.forceDelete(ctx, id)
				continue
			}
			if i >= 0 {
				b.res.add(what, rt.Name, d)
			}
		}
	}
}

// startContainer creates and starts a container with the Go client.
func (b *bench) startContainer(ctx context.Context, rt runtimeDef, id string, annotations map[string]string, args ...string) (containerd.Container, containerd.Task, error) {
	return b.startContainerOpts(ctx, rt, id, annotations, nil, args...)
}

func (b *bench) startContainerOpts(ctx context.Context, rt runtimeDef, id string, annotations map[string]string, extra []oci.SpecOpts, args ...string) (containerd.Container, containerd.Task, error) {
	specOpts := []oci.SpecOpts{oci.WithImageConfig(b.img), oci.WithProcessArgs(args...)}
	if len(annotations) > 0 {
		specOpts = append(specOpts, oci.WithAnnotations(annotations))
	}
	specOpts = append(specOpts, extra...)
	c, err := b.e.client.NewContainer(ctx, id,
		rt.clientOpt(),
		containerd.WithImage(b.img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id+"-snap", b.img),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("new container %s: %w", id, err)
	}
	t, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		c.Delete(ctx, containerd.WithSnapshotCleanup)
		return nil, nil, fmt.Errorf("new task %s: %w", id, err)
	}
	if err := t.Start(ctx); err != nil {
		t.Delete(ctx, containerd.WithProcessKill)
		c.Delete(ctx, containerd.WithSnapshotCleanup)
		return nil, nil, fmt.Errorf("start task %s: %w", id, err)
	}
	return c, t, nil
}

// removeContainer SIGKILLs a running task, waits for it, and deletes task,
// container and snapshot.
func removeContainer(ctx context.Context, c containerd.Container, t containerd.Task) error {
	ch, err := t.Wait(ctx)
	if err != nil {
		return fmt.Errorf("wait %s: %w", c.ID(), err)
	}
	if err := t.Kill(ctx, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", c.ID(), err)
	}
	select {
	case <-ch:
	case <-ctx.Done():
		return fmt.Errorf("wait for %s to exit: %w", c.ID(), ctx.Err())
	}
	if _, err := t.Delete(ctx); err != nil {
		return fmt.Errorf("delete task %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

// execLatency: `ctr task exec` of /bin/true into a running container; with
// seccomp, into one with containerd's default seccomp profile (which every
// exec process gets too).
func (b *bench) execLatency(n, warmup int, seccomp bool) {
	what, prefix := "exec", "exec"
	var extra []oci.SpecOpts
	if seccomp {
		what, prefix = "exec.seccomp", "execsc"
		extra = append(extra, cseccomp.WithDefaultProfile())
	}
	ctx := b.e.ctx()
	type target struct {
		c containerd.Container
		t containerd.Task
	}
	targets := map[string]target{}
	for _, rt := range b.rts {
		id := prefix + "-" + rt.Name
		c, t, err := b.startContainerOpts(ctx, rt, id, nil, extra, "sleep", "3600")
		if err != nil {
			b.fail(what, rt, err)
			b.failures[what+"/"+rt.Name] = maxFailures
			continue
		}
		targets[rt.Name] = target{c, t}
	}
	defer func() {
		for _, tg := range targets {
			if err := removeContainer(ctx, tg.c, tg.t); err != nil {
				b.res.addError(err.Error())
			}
		}
	}()
	for i := -warmup; i < n; i++ {
		for _, rt := range b.rts {
			if _, ok := targets[rt.Name]; !ok || b.gaveUp(what, rt) {
				continue
			}
			d, err := b.timeCtr("tasks", "exec", "--fifo-dir", b.e.fifoDir, "--exec-id", fmt.Sprintf("x%d", i+warmup), prefix+"-"+rt.Name, "/bin/true")
			if err != nil {
				b.fail(what, rt, err)
				continue
			}
			if i >= 0 {
				b.res.add(what, rt.Name, d)
			}
		}
	}
}

// exitWatcher hands TaskExit events of init processes to whoever waits for
// that container.
type exitWatcher struct {
	mu      sync.Mutex
	waiters map[string]chan exitEvent
}

type exitEvent struct {
	at     time.Time
	status uint32
}

func (b *bench) watchExits(ctx context.Context) (*exitWatcher, error) {
	w := &exitWatcher{waiters: map[string]chan exitEvent{}}
	evc, errc := b.e.client.Subscribe(ctx, `topic=="/tasks/exit"`)
	go func() {
		for {
			select {
			case env := <-evc:
				at := time.Now()
				if env == nil || env.Event == nil {
					continue
				}
				v, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				ev, ok := v.(*eventsapi.TaskExit)
				if !ok || ev.ID != ev.ContainerID {
					continue
				}
				w.mu.Lock()
				ch := w.waiters[ev.ContainerID]
				delete(w.waiters, ev.ContainerID)
				w.mu.Unlock()
				if ch != nil {
					ch <- exitEvent{at: at, status: ev.ExitStatus}
				}
			case <-errc:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return w, nil
}

func (w *exitWatcher) expect(id string) <-chan exitEvent {
	ch := make(chan exitEvent, 1)
	w.mu.Lock()
	w.waiters[id] = ch
	w.mu.Unlock()
	return ch
}

// stopScript is a PID 1 that exits 0 on SIGTERM (a PID 1 without a handler
// ignores it). `wait` returns as soon as the trapped signal arrives.
const stopScript = `trap "exit 0" TERM; sleep 3600 & wait`

// stopLatency: `ctr task kill` (SIGTERM) to the TaskExit event, timed from
// before ctr starts to the event's arrival on the Go client's stream.
func (b *bench) stopLatency(n, warmup int) {
	const what = "stop"
	ctx, cancel := context.WithCancel(b.e.ctx())
	defer cancel()
	w, err := b.watchExits(ctx)
	if err != nil {
		b.res.addError(fmt.Sprintf("stop: subscribe: %v", err))
		return
	}
	for i := -warmup; i < n; i++ {
		for _, rt := range b.rts {
			if b.gaveUp(what, rt) {
				continue
			}
			id := fmt.Sprintf("stop-%s-%d", rt.Name, i+warmup)
			c, t, err := b.startContainer(ctx, rt, id, nil, "sh", "-c", stopScript)
			if err != nil {
				b.fail(what, rt, err)
				continue
			}
			// Let the shell install its trap.
			time.Sleep(200 * time.Millisecond)
			exited := w.expect(id)
			t0 := time.Now()
			_, err = b.timeCtr("tasks", "kill", id)
			if err == nil {
				select {
				case ev := <-exited:
					if ev.status != 0 {
						err = fmt.Errorf("PID 1 exited with %d, not 0 (trap not installed yet?)", ev.status)
					} else if i >= 0 {
						b.res.add(what, rt.Name, ev.at.Sub(t0))
					}
				case <-time.After(20 * time.Second):
					err = errors.New("no TaskExit within 20s of SIGTERM")
				}
			}
			if err != nil {
				b.fail(what, rt, err)
				b.e.forceDelete(ctx, c.ID())
				continue
			}
			if _, err := t.Delete(ctx); err != nil {
				b.fail(what, rt, err)
			}
			if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
				b.fail(what, rt, err)
			}
		}
	}
}

// pipeline times each client call of a container's life, to show where the
// time goes for every runtime: NewContainer (snapshot, metadata), NewTask
// (shim start + create), Start, run to exit, task Delete, container Delete.
func (b *bench) pipeline(n, warmup int) {
	const what = "pipeline"
	ctx := b.e.ctx()
	for i := -warmup; i < n; i++ {
		for _, rt := range b.rts {
			if b.gaveUp(what, rt) {
				continue
			}
			id := fmt.Sprintf("pipe-%s-%d", rt.Name, i+warmup)
			err := func() error {
				t0 := time.Now()
				c, err := b.e.client.NewContainer(ctx, id, rt.clientOpt(),
					containerd.WithImage(b.img), containerd.WithSnapshotter(snapshotter),
					containerd.WithNewSnapshot(id+"-snap", b.img),
					containerd.WithNewSpec(oci.WithImageConfig(b.img), oci.WithProcessArgs("/bin/true")))
				if err != nil {
					return err
				}
				defer b.e.forceDelete(ctx, id)
				t1 := time.Now()
				t, err := c.NewTask(ctx, cio.NullIO)
				if err != nil {
					return err
				}
				t2 := time.Now()
				ch, err := t.Wait(ctx)
				if err != nil {
					return err
				}
				if err := t.Start(ctx); err != nil {
					return err
				}
				t3 := time.Now()
				<-ch
				t4 := time.Now()
				if _, err := t.Delete(ctx); err != nil {
					return err
				}
				t5 := time.Now()
				if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
					return err
				}
				t6 := time.Now()
				if i >= 0 {
					b.res.add("pipe.container", rt.Name, t1.Sub(t0))
					b.res.add("pipe.newtask", rt.Name, t2.Sub(t1))
					b.res.add("pipe.start", rt.Name, t3.Sub(t2))
					b.res.add("pipe.exit", rt.Name, t4.Sub(t3))
					b.res.add("pipe.taskdelete", rt.Name, t5.Sub(t4))
					b.res.add("pipe.cdelete", rt.Name, t6.Sub(t5))
					b.res.add("pipe.total", rt.Name, t6.Sub(t0))
				}
				return nil
			}()
			if err != nil {
				b.fail(what, rt, err)
			}
		}
	}
}

// memStat is PSS, RSS and the anonymous (private, unshareable) part in KiB.
type memStat struct{ pss, rss, anon int64 }

func readSmapsRollup(pid int) (memStat, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return memStat{}, err
	}
	defer f.Close()
	var m memStat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Rss:":
			m.rss = v
		case "Pss:":
			m.pss = v
		case "Anonymous:":
			m.anon = v
		}
	}
	return m, sc.Err()
}

// waitNoShims waits until rt has no shim process left (the previous
// scenario's shims exit after their last container is deleted).
func (b *bench) waitNoShims(rt runtimeDef) {
	deadline := time.Now().Add(15 * time.Second)
	for len(b.e.shimPids(&rt, "")) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
}

// memory measures the shims of rt with n idle containers, grouped into one
// shim or not, and records PSS and RSS per container.
func (b *bench) memory(rt runtimeDef, n int, grouped bool, key string) {
	ctx := b.e.ctx()
	b.waitNoShims(rt)
	var ann map[string]string
	if grouped {
		ann = map[string]string{groupLabel: "mem-" + rt.Name + "-group"}
	}
	type ct struct {
		c containerd.Container
		t containerd.Task
	}
	var cs []ct
	defer func() {
		var wg sync.WaitGroup
		for _, x := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := removeContainer(ctx, x.c, x.t); err != nil {
					b.res.addError(err.Error())
				}
			}()
		}
		wg.Wait()
	}()
	for i := range n {
		id := fmt.Sprintf("%s-%s-%d", key, rt.Name, i)
		c, t, err := b.startContainer(ctx, rt, id, ann, "sleep", "3600")
		if err != nil {
			b.fail("memory", rt, err)
			return
		}
		cs = append(cs, ct{c, t})
	}
	// Let the shims settle (goroutines parked, start-up garbage collected
	// by the runtime's background work).
	time.Sleep(2 * time.Second)
	pids := b.e.shimPids(&rt, key+"-"+rt.Name+"-")
	var sum memStat
	for _, pid := range pids {
		m, err := readSmapsRollup(pid)
		if err != nil {
			b.fail("memory", rt, fmt.Errorf("read smaps_rollup of shim %d: %w", pid, err))
			return
		}
		sum.pss += m.pss
		sum.rss += m.rss
		sum.anon += m.anon
	}
	b.res.setValue(key+".pss", rt.Name, float64(sum.pss)/1024/float64(n))
	b.res.setValue(key+".rss", rt.Name, float64(sum.rss)/1024/float64(n))
	b.res.setValue(key+".anon", rt.Name, float64(sum.anon)/1024/float64(n))
	b.res.setValue(key+".shims", rt.Name, float64(len(pids)))
}

// burst starts n containers in parallel, and then deletes them in parallel.
func (b *bench) burst(rt runtimeDef, n int) {
	ctx := b.e.ctx()
	b.waitNoShims(rt)
	type ct struct {
		c containerd.Container
		t containerd.Task
	}
	cs := make([]ct, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, t, err := b.startContainer(ctx, rt, fmt.Sprintf("burst-%s-%d", rt.Name, i), nil, "sleep", "3600")
			cs[i], errs[i] = ct{c, t}, err
		}()
	}
	wg.Wait()
	tRun := time.Since(t0)
	failed := 0
	for _, err := range errs {
		if err != nil {
			failed++
			b.fail("burst", rt, err)
		}
	}
	t1 := time.Now()
	for i := range n {
		if cs[i].c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := removeContainer(ctx, cs[i].c, cs[i].t); err != nil {
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	tDel := time.Since(t1)
	for i := range n {
		if cs[i].c != nil && errs[i] != nil {
			failed++
			b.fail("burst", rt, errs[i])
			b.e.forceDelete(ctx, cs[i].c.ID())
		}
	}
	if failed == 0 {
		b.res.add("burst.run", rt.Name, tRun)
		b.res.add("burst.delete", rt.Name, tDel)
	}
}

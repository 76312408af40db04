//go:build linux

package integration

// Reliability tests (issue 7): containerd restarts, shim crashes, exits
// under load, leaks under load, delete semantics. They run against the
// package's private containerd (harness_test.go); the restart tests stop and
// start that containerd again with the same config (relRestartContainerd).

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ---------------------------------------------------------------------------
// containerd restart

// relLockedThread runs functions on one OS thread that is locked for the life
// of the test binary: containerd is started with Pdeathsig, which fires when
// the *thread* that started it exits, so a restarted containerd must not be
// started from a goroutine's (reusable, disposable) thread.
var relLockedThread = sync.OnceValue(func() chan func() {
	ch := make(chan func())
	go func() {
		runtime.LockOSThread() // never unlocked: the thread lives as long as the binary
		for f := range ch {
			f()
		}
	}()
	return ch
})

func relOnLockedThread(f func()) {
	done := make(chan struct{})
	relLockedThread() <- func() { defer close(done); f() }
	<-done
}

// relRestartContainerd stops the package's containerd with sig (SIGTERM: a
// clean stop; SIGKILL: a crash), runs whileDown while it is gone, then starts
// it again with the same config, root, state and sockets (appending to the
// same log) and reconnects the package's client. Shims keep running
// throughout; the new containerd reconnects to them through each bundle's
// bootstrap.json.
func relRestartContainerd(t *testing.T, sig syscall.Signal, whileDown func()) {
	t.Helper()
	if client != nil {
		client.Close()
		client = nil
	}
	if err := cd.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal containerd (pid %d) with %v: %v", cd.cmd.Process.Pid, sig, err)
	}
	select {
	case <-cd.exited:
	case <-time.After(30 * time.Second):
		t.Errorf("containerd did not exit 30s after %v; killing it", sig)
		_ = cd.cmd.Process.Kill()
		<-cd.exited
	}
	if whileDown != nil {
		whileDown()
	}
	if err := relStartContainerdAgain(); err != nil {
		t.Fatalf("restart containerd: %v", err)
	}
	t.Logf("containerd restarted after %v: pid %d", sig, cd.cmd.Process.Pid)
}

// relStartContainerdAgain starts containerd with the config startContainerd
// wrote, waits until it answers and sets cd.cmd, cd.exited and client.
func relStartContainerdAgain() error {
	logf, err := os.OpenFile(cd.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n----- integration: containerd restarted -----\n")
	cmd := exec.Command(containerdBin, "--config", cd.configPath)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = daemonEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	relOnLockedThread(func() { err = cmd.Start() })
	if err != nil {
		return fmt.Errorf("starting containerd: %w", err)
	}
	exited := make(chan struct{})
	cd.cmd, cd.exited, cd.exitErr = cmd, exited, nil
	go func() {
		err := cmd.Wait()
		cd.exitErr = err
		close(exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("containerd exited during startup (%v); log:\n%s", cd.exitErr, tail(cd.logPath, 40))
		default:
		}
		c, err := containerd.New(cd.address, containerd.WithDefaultNamespace(testNS), containerd.WithTimeout(2*time.Second))
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = c.Version(ctx)
			cancel()
			if err == nil {
				client = c
				return nil
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd did not answer on %s within 30s (%v); log:\n%s", cd.address, err, tail(cd.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// relCtrTasks parses `ctr task ls` into id -> (pid, status).
func relCtrTasks(t *testing.T) map[string]relCtrTask {
	t.Helper()
	out := mustCtr(t, "task", "ls")
	tasks := map[string]relCtrTask{}
	for _, l := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(l)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("ctr task ls: bad pid in %q", l)
		}
		tasks[f[0]] = relCtrTask{pid: pid, status: f[2]}
	}
	return tasks
}

type relCtrTask struct {
	pid    int
	status string
}

// relCatches says pid has a handler for sig (/proc/pid/status SigCgt).
func relCatches(pid int, sig syscall.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "SigCgt:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(uint(sig)-1)) != 0
		}
	}
	return false
}

// relSubscribe records the task events of the whole test namespace until
// the test ends (not bound to the minute of testCtx).
func relSubscribe(t *testing.T) *eventLog {
	t.Helper()
	return recordEvents(t, namespaces.WithNamespace(context.Background(), testNS), "")
}

// relTaskExit finds the TaskExit of process id (the container id for the init,
// or an exec id) of container cid.
func relTaskExit(evs []any, cid, id string) *apievents.TaskExit {
	for _, e := range evs {
		if x, ok := e.(*apievents.TaskExit); ok && x.ContainerID == cid && x.ID == id {
			return x
		}
	}
	return nil
}

// relStartTask creates and starts the task of c (no stdio) and returns it with
// its exit channel.
func relStartTask(ctx context.Context, c containerd.Container, ioc cio.Creator) (containerd.Task, <-chan containerd.ExitStatus, error) {
	if ioc == nil {
		ioc = cio.NullIO
	}
	task, err := c.NewTask(ctx, ioc)
	if err != nil {
		return nil, nil, fmt.Errorf("NewTask %s: %w", c.ID(), err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return nil, nil, fmt.Errorf("Wait %s: %w", c.ID(), err)
	}
	if err := task.Start(ctx); err != nil {
		task.Delete(ctx, containerd.WithProcessKill)
		return nil, nil, fmt.Errorf("Start %s: %w", c.ID(), err)
	}
	return task, exitc, nil
}

// relKillAndDelete SIGKILLs the task, waits for its exit and deletes the task
// and the container with its snapshot.
func relKillAndDelete(ctx context.Context, c containerd.Container, task containerd.Task, exitc <-chan containerd.ExitStatus) error {
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("kill %s: %w", c.ID(), err)
	}
	select {
	case <-exitc:
	case <-time.After(20 * time.Second):
		return fmt.Errorf("%s did not exit 20s after SIGKILL", c.ID())
	}
	if _, err := task.Delete(ctx); err != nil {
		return fmt.Errorf("delete task %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		return fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return nil
}

func TestContainerdRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		name := map[syscall.Signal]string{syscall.SIGTERM: "sigterm", syscall.SIGKILL: "sigkill"}[sig]
		t.Run(name, func(t *testing.T) { testContainerdRestart(t, sig) })
	}
}

func testContainerdRestart(t *testing.T, sig syscall.Signal) {
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 3*time.Minute)
	defer cancel()

	const n = 5
	const exiter = n - 1 // exits with 42 while containerd is down
	ids := make([]string, n)
	conts := make([]containerd.Container, n)
	pids := make([]int, n)
	for i := range n {
		ids[i] = uniqueID(t)
		args := []string{"sleep", "1000"}
		if i == exiter {
			// Signalled from the host while containerd is down. (A file
			// dropped into the overlay upperdir would not be seen: overlayfs
			// caches the negative lookup.)
			args = []string{"sh", "-c", "trap 'exit 42' USR1; while :; do sleep 0.1; done"}
		}
		conts[i] = newContainer(t, ctx, ids[i], oci.WithProcessArgs(args...))
		task, _ := startTask(t, ctx, conts[i], cio.NullIO)
		pids[i] = int(task.Pid())
	}
	// The trap must be installed before the signal is sent: a PID 1 ignores
	// signals it has no handler for.
	if !waitFor(10*time.Second, func() bool { return relCatches(pids[exiter], syscall.SIGUSR1) }) {
		t.Fatalf("%s never installed its USR1 trap", ids[exiter])
	}

	relRestartContainerd(t, sig, func() {
		// The exiter ends while containerd is down.
		if err := syscall.Kill(pids[exiter], syscall.SIGUSR1); err != nil {
			t.Errorf("signal %s (pid %d): %v", ids[exiter], pids[exiter], err)
		}
		if !waitFor(20*time.Second, func() bool { return !procAlive(pids[exiter]) }) {
			t.Errorf("container %s (pid %d) did not exit while containerd was down", ids[exiter], pids[exiter])
		}
		for i := range exiter {
			if !procAlive(pids[i]) {
				t.Errorf("container %s (pid %d) died with containerd", ids[i], pids[i])
			}
		}
	})
	evs := relSubscribe(t)

	ls := relCtrTasks(t)
	for i, id := range ids {
		want := relCtrTask{pid: pids[i], status: "RUNNING"}
		if i == exiter {
			want.status = "STOPPED"
		}
		if got, ok := ls[id]; !ok || got != want {
			t.Errorf("after restart, ctr task ls shows %s as %+v (listed: %v), want %+v", id, got, ok, want)
		}
	}

	// Reload containers and tasks through the new client.
	tasks := make([]containerd.Task, n)
	exitcs := make([]<-chan containerd.ExitStatus, n)
	for i, id := range ids {
		c, err := client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatalf("load container %s after restart: %v", id, err)
		}
		conts[i] = c
		if tasks[i], err = c.Task(ctx, nil); err != nil {
			t.Fatalf("load task %s after restart: %v", id, err)
		}
		if exitcs[i], err = tasks[i].Wait(ctx); err != nil {
			t.Fatalf("wait %s after restart: %v", id, err)
		}
	}

	// The exit that happened while containerd was down is reported.
	st, err := tasks[exiter].Status(ctx)
	if err != nil || st.Status != containerd.Stopped || st.ExitStatus != 42 {
		t.Errorf("status of %s (exited while containerd was down) = %+v, err %v; want stopped, exit 42", ids[exiter], st, err)
	}
	select {
	case es := <-exitcs[exiter]:
		if code, _, err := es.Result(); err != nil || code != 42 {
			t.Errorf("Wait of %s after restart = %d (err %v), want 42", ids[exiter], code, err)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("Wait of %s after restart did not return", ids[exiter])
	}
	if es, err := tasks[exiter].Delete(ctx); err != nil {
		t.Errorf("Delete of %s after restart: %v", ids[exiter], err)
	} else if es.ExitCode() != 42 {
		t.Errorf("Delete of %s after restart: exit %d, want 42", ids[exiter], es.ExitCode())
	}

	// exec works.
	var out syncBuffer
	spec := execSpec(t, ctx, ids[0], "sh", "-c", "echo exec-after-restart; exit 3")
	if _, es := runExec(t, ctx, tasks[0], "x1", spec, outputIO(&out, &out), 15*time.Second); es.ExitCode() != 3 {
		t.Errorf("exec after restart exited %d, want 3", es.ExitCode())
	}
	if got := out.String(); got != "exec-after-restart\n" {
		t.Errorf("exec after restart printed %q", got)
	}

	// kill works, and its exit is published through the new containerd.
	if err := tasks[1].Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s after restart: %v", ids[1], err)
	}
	select {
	case es := <-exitcs[1]:
		if code, _, _ := es.Result(); code != 137 {
			t.Errorf("%s exited %d after SIGKILL, want 137", ids[1], code)
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not exit after SIGKILL", ids[1])
	}
	if got, ok := evs.waitFor(10*time.Second, func(e []any) bool {
		return relTaskExit(e, ids[1], ids[1]) != nil && relTaskExit(e, ids[0], "x1") != nil
	}); !ok {
		t.Errorf("after restart, TaskExit events of the kill (%s) and the exec (x1) were not delivered; got %d events", ids[1], len(got))
	} else if x := relTaskExit(got, ids[1], ids[1]); x.ExitStatus != 137 || int(x.Pid) != pids[1] {
		t.Errorf("TaskExit of %s = %+v, want pid %d status 137", ids[1], x, pids[1])
	}

	// delete works for all.
	for i := range n {
		if i == exiter {
			if err := conts[i].Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
				t.Errorf("delete container %s: %v", ids[i], err)
			}
			continue
		}
		if err := relKillAndDelete(ctx, conts[i], tasks[i], exitcs[i]); err != nil {
			t.Error(err)
		}
	}
	for _, id := range ids {
		assertNoLeaks(t, id)
	}
}

// ---------------------------------------------------------------------------
// the shim dies

// relCgroupDirs lists the cgroup directories of container id (default
// cgroupsPath /<namespace>/<id>) that exist, in every hierarchy.
func relCgroupDirs(id string) []string {
	var out []string
	for _, base := range cgroupBases() {
		p := filepath.Join(base, testNS, id)
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// relSockets lists the shim sockets in containerd's shim socket dir.
func relSockets() []string {
	ents, _ := os.ReadDir(cd.socketDir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

func TestShimKilled(t *testing.T) {
	ctx := testCtx(t)
	id := uniqueID(t)
	evs := relSubscribe(t)
	sockets := relSockets()
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", "sleep 1000 | sleep 1000"))
	task, _ := startTask(t, ctx, c, cio.NullIO)
	var pids []int
	if !waitFor(10*time.Second, func() bool {
		ps, err := task.Pids(ctx)
		pids = pids[:0]
		for _, p := range ps {
			pids = append(pids, int(p.Pid))
		}
		return err == nil && len(pids) == 3
	}) {
		t.Fatalf("want 3 processes in %s, have %v", id, pids)
	}
	if len(relCgroupDirs(id)) == 0 {
		t.Fatalf("container %s has no cgroup dir under any of %v", id, cgroupBases())
	}
	rootfs := filepath.Join(bundleDir(id), "rootfs")
	if m := mountsUnder(rootfs); len(m) == 0 {
		t.Fatalf("rootfs of %s is not mounted at %s", id, rootfs)
	}
	if len(relSockets()) != len(sockets)+1 {
		t.Fatalf("shim sockets: %v before, %v with %s running; want one more", sockets, relSockets(), id)
	}

	shim := shimOf(t, id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill shim %d: %v", shim, err)
	}
	t.Logf("killed shim %d of %s (processes %v)", shim, id, pids)

	// containerd notices, runs the delete action and reports the task exited.
	got, ok := evs.waitFor(30*time.Second, func(e []any) bool {
		for _, ev := range e {
			if d, ok := ev.(*apievents.TaskDelete); ok && d.ContainerID == id {
				return true
			}
		}
		return false
	})
	if !ok {
		t.Fatalf("no TaskDelete for %s within 30s of the shim's death; events: %v", id, got)
	}
	if x := relTaskExit(got, id, id); x == nil {
		t.Errorf("no TaskExit for %s after its shim died", id)
	} else if x.ExitStatus != 137 || int(x.Pid) != int(task.Pid()) {
		t.Errorf("TaskExit of %s after its shim died = %+v; want pid %d, status 137 (SIGKILL)", id, x, task.Pid())
	}
	for _, pid := range pids {
		if procAlive(pid) {
			t.Errorf("container process %d still alive after the shim's death and cleanup", pid)
		}
	}
	if d := relCgroupDirs(id); len(d) > 0 {
		t.Errorf("cgroup of %s left after cleanup: %v", id, d)
	}
	if m := mountsUnder(rootfs); len(m) > 0 {
		t.Errorf("rootfs of %s still mounted after cleanup: %v", id, m)
	}
	if _, err := task.Status(ctx); !errdefs.IsNotFound(err) {
		t.Errorf("task %s after cleanup: status error %v, want not found", id, err)
	}
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("delete of the cleaned up task %s: %v (want success or not found)", id, err)
	}
	deleteContainer(t, ctx, c)
	assertNoLeaks(t, id)
	if now := relSockets(); len(now) != len(sockets) {
		t.Errorf("shim sockets left: %v before, %v after", sockets, now)
	}
}

// ---------------------------------------------------------------------------
// exits are never lost or reordered

// relParallel runs f(0..n-1) with at most width calls in flight and returns
// the errors, in index order.
func relParallel(n, width int, f func(i int) error) []error {
	errs := make([]error, n)
	sem := make(chan struct{}, width)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errs
}

// relNewContainer is newContainer for goroutines: it returns errors instead
// of failing the test. The container is force-deleted when the test ends.
func relNewContainer(t *testing.T, ctx context.Context, id string, opts ...oci.SpecOpts) (containerd.Container, error) {
	img, err := client.GetImage(ctx, imageRef)
	if err != nil {
		return nil, err
	}
	cleanupContainer(t, id)
	return client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithRuntime(runtimeName, nil),
		containerd.WithNewSpec(append([]oci.SpecOpts{oci.WithImageConfig(img)}, opts...)...),
	)
}

// relRunToExit starts c's task, waits for its exit, deletes the task and
// the container, and returns the exit code.
func relRunToExit(ctx context.Context, c containerd.Container, ioc cio.Creator) (uint32, error) {
	task, exitc, err := relStartTask(ctx, c, ioc)
	if err != nil {
		return 0, err
	}
	var code uint32
	select {
	case es := <-exitc:
		code, _, err = es.Result()
		if err != nil {
			return 0, fmt.Errorf("wait %s: %w", c.ID(), err)
		}
	case <-ctx.Done():
		return 0, fmt.Errorf("wait %s: %w", c.ID(), ctx.Err())
	}
	if ioc != nil {
		task.IO().Wait()
	}
	if _, err := task.Delete(ctx); err != nil {
		return 0, fmt.Errorf("delete task %s: %w", c.ID(), err)
	}
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		return 0, fmt.Errorf("delete container %s: %w", c.ID(), err)
	}
	return code, nil
}

// relCheckOrder checks the events of one process (the init of cid when
// execID is "", else exec execID): exactly one start, then exactly one
// TaskExit with the wanted code.
func relCheckOrder(evs []any, cid, execID string, want uint32) error {
	started, exitAt, exits := -1, -1, 0
	id := execID
	if id == "" {
		id = cid
	}
	var got uint32
	for i, e := range evs {
		switch x := e.(type) {
		case *apievents.TaskStart:
			if execID == "" && x.ContainerID == cid {
				if started >= 0 {
					return fmt.Errorf("%s: two TaskStart events", id)
				}
				started = i
			}
		case *apievents.TaskExecStarted:
			if execID != "" && x.ContainerID == cid && x.ExecID == execID {
				if started >= 0 {
					return fmt.Errorf("%s: two TaskExecStarted events", id)
				}
				started = i
			}
		case *apievents.TaskExit:
			if x.ContainerID == cid && x.ID == id {
				exits++
				exitAt, got = i, x.ExitStatus
			}
		}
	}
	switch {
	case started < 0:
		return fmt.Errorf("%s: no start event", id)
	case exits != 1:
		return fmt.Errorf("%s: %d TaskExit events, want 1", id, exits)
	case exitAt < started:
		return fmt.Errorf("%s: TaskExit (event %d) before its start (event %d)", id, exitAt, started)
	case got != want:
		return fmt.Errorf("%s: TaskExit status %d, want %d", id, got, want)
	}
	return nil
}

func relCountExits(evs []any, cid string) int {
	n := 0
	for _, e := range evs {
		if x, ok := e.(*apievents.TaskExit); ok && x.ContainerID == cid {
			n++
		}
	}
	return n
}

func relReportErrs(t *testing.T, what string, errs []error) {
	t.Helper()
	var msgs []string
	for i, err := range errs {
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("#%d: %v", i, err))
		}
	}
	if len(msgs) > 0 {
		if len(msgs) > 20 {
			msgs = append(msgs[:20], fmt.Sprintf("... and %d more", len(msgs)-20))
		}
		t.Errorf("%s: %d failures:\n  %s", what, len(msgs), strings.Join(msgs, "\n  "))
	}
}

func TestExitsUnderLoad(t *testing.T) {
	const n, width = 200, 20
	t.Run("containers", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 3*time.Minute)
		defer cancel()
		evs := relSubscribe(t)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = uniqueID(t)
		}
		code := func(i int) uint32 { return uint32(i % 251) }
		errs := relParallel(n, width, func(i int) error {
			c, err := relNewContainer(t, ctx, ids[i], oci.WithProcessArgs("sh", "-c", fmt.Sprintf("exit %d", code(i))))
			if err != nil {
				return err
			}
			got, err := relRunToExit(ctx, c, nil)
			if err == nil && got != code(i) {
				err = fmt.Errorf("%s: Wait returned %d, want %d", ids[i], got, code(i))
			}
			return err
		})
		relReportErrs(t, "run 200 containers", errs)
		got, ok := evs.waitFor(30*time.Second, func(e []any) bool {
			for _, id := range ids {
				if relCountExits(e, id) == 0 {
					return false
				}
			}
			return true
		})
		if !ok {
			t.Errorf("not every container's TaskExit arrived within 30s")
		}
		errs = make([]error, n)
		for i, id := range ids {
			errs[i] = relCheckOrder(got, id, "", code(i))
		}
		relReportErrs(t, "events of 200 containers", errs)
		for _, id := range ids {
			assertNoLeaks(t, id)
		}
	})

	t.Run("execs", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 3*time.Minute)
		defer cancel()
		evs := relSubscribe(t)
		id := uniqueID(t)
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		code := func(i int) uint32 { return uint32((i * 7) % 253) }
		errs := relParallel(n, width, func(i int) error {
			p := *spec.Process
			p.Args = []string{"sh", "-c", fmt.Sprintf("exit %d", code(i))}
			execID := fmt.Sprintf("x%d", i)
			proc, err := task.Exec(ctx, execID, &p, cio.NullIO)
			if err != nil {
				return fmt.Errorf("exec %s: %w", execID, err)
			}
			pexit, err := proc.Wait(ctx)
			if err != nil {
				return err
			}
			if err := proc.Start(ctx); err != nil {
				return fmt.Errorf("start exec %s: %w", execID, err)
			}
			select {
			case es := <-pexit:
				if got, _, _ := es.Result(); got != code(i) {
					return fmt.Errorf("exec %s: Wait returned %d, want %d", execID, got, code(i))
				}
			case <-ctx.Done():
				return fmt.Errorf("exec %s: %w", execID, ctx.Err())
			}
			if _, err := proc.Delete(ctx); err != nil {
				return fmt.Errorf("delete exec %s: %w", execID, err)
			}
			return nil
		})
		relReportErrs(t, "run 200 execs", errs)
		if err := relKillAndDelete(ctx, c, task, exitc); err != nil {
			t.Fatal(err)
		}
		got, ok := evs.waitFor(30*time.Second, func(e []any) bool { return relCountExits(e, id) == n+1 })
		if !ok {
			t.Errorf("%d TaskExit events for %s within 30s, want %d (200 execs and the init)", relCountExits(got, id), id, n+1)
		}
		errs = make([]error, n)
		for i := range n {
			errs[i] = relCheckOrder(got, id, fmt.Sprintf("x%d", i), code(i))
		}
		relReportErrs(t, "events of 200 execs", errs)
		if err := relCheckOrder(got, id, "", 137); err != nil {
			t.Error(err)
		}
		// The init's exit is the container's last.
		for i := len(got) - 1; i >= 0; i-- {
			if x, ok := got[i].(*apievents.TaskExit); ok && x.ContainerID == id {
				if x.ID != id {
					t.Errorf("the last TaskExit of %s is exec %s's, want the init's", id, x.ID)
				}
				break
			}
		}
		assertNoLeaks(t, id)
	})

	t.Run("zombies", func(t *testing.T) {
		// PID 1 is sleep, which never reaps. An exec leaves orphans that
		// exit at once: they are re-parented to sleep and stay zombies until
		// the container ends; then they are gone.
		ctx := testCtx(t)
		id := uniqueID(t)
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		init := int(task.Pid())
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := *spec.Process
		// setsid forks (and its parent exits) when it already leads a
		// process group, which the outer setsid made it: the inner sleeps
		// are orphans from the start.
		p.Args = []string{"sh", "-c", "for i in 1 2 3 4 5; do setsid setsid sleep 0.1; done"}
		proc, pexit := startExec(t, ctx, task, "orphans", &p, cio.NullIO)
		<-pexit
		proc.Delete(ctx)
		var zombies []int
		if !waitFor(10*time.Second, func() bool { zombies = procChildren(init, isZombie); return len(zombies) == 5 }) {
			t.Fatalf("want 5 zombie children of the container's PID 1 (%d), have %v", init, zombies)
		}
		if err := relKillAndDelete(ctx, c, task, exitc); err != nil {
			t.Fatal(err)
		}
		for _, z := range zombies {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", z)); err == nil {
				t.Errorf("zombie %d of %s still there after the container ended", z, id)
			}
		}
		assertNoLeaks(t, id)
	})

	t.Run("zombies-host-pidns", func(t *testing.T) {
		// Without its own pid namespace, a container's orphans are
		// re-parented to the shim (a subreaper), which must reap them.
		ctx := testCtx(t)
		id := uniqueID(t)
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"), oci.WithHostNamespace(specs.PIDNamespace))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		shim := shimOf(t, id)
		spec, err := c.Spec(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p := *spec.Process
		// (The orphans must not keep the exec's stdout open.)
		p.Args = []string{"sh", "-c", "for i in 1 2 3 4 5; do setsid setsid sleep 3 >/tmp/orphan.out 2>&1; done; echo done"}
		var out syncBuffer
		proc, pexit := startExec(t, ctx, task, "orphans", &p, outputIO(&out, &out))
		<-pexit
		proc.IO().Wait()
		proc.Delete(ctx)
		if out.String() != "done\n" {
			t.Fatalf("orphan maker printed %q", out.String())
		}
		// The orphans are the shim's now; once they exit none may stay a
		// zombie.
		init := int(task.Pid())
		orphansOf := func() []int {
			return slices.DeleteFunc(procChildren(shim, func(comm string, _ byte) bool { return comm == "sleep" }), func(p int) bool { return p == init })
		}
		var orphans []int
		if !waitFor(5*time.Second, func() bool { orphans = orphansOf(); return len(orphans) == 5 }) {
			t.Fatalf("want the 5 orphaned sleeps re-parented to the shim %d, its sleep children are %v", shim, orphans)
		}
		var zombies []int
		if !waitFor(15*time.Second, func() bool {
			zombies = procChildren(shim, isZombie)
			return len(zombies) == 0 && len(orphansOf()) == 0
		}) {
			t.Errorf("shim %d leaves zombie children %v (orphans still there: %v)", shim, zombies, orphansOf())
		}
		if err := relKillAndDelete(ctx, c, task, exitc); err != nil {
			t.Fatal(err)
		}
		assertNoLeaks(t, id)
	})
}

// ---------------------------------------------------------------------------
// load without leaks

// relGroupAnnotation puts containers into one shim (shim/manager.go).
const relGroupAnnotation = "io.containerd.husk.v2.group"

// relResources is what containers leave behind if they leak, counted.
type relResources struct {
	counts map[string]int
	fds    []string // of the watched shim
}

func relMeasure(shim int) relResources {
	r := relResources{counts: map[string]int{}}
	r.counts["mounts under containerd's dirs"] = len(mountsUnder(cd.dir))
	cgroups, procs := 0, 0
	for _, base := range cgroupBases() {
		_ = filepath.WalkDir(filepath.Join(base, testNS), func(p string, e os.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				cgroups++
				procs += len(cgroupPids(p))
			}
			return nil
		})
	}
	r.counts["cgroup dirs"] = cgroups
	r.counts["processes in the run's cgroups (sum over hierarchies)"] = procs
	r.counts["shim processes"] = len(ourShims())
	for what, dir := range map[string]string{
		"bundle dirs":      filepath.Join(cd.state, "io.containerd.runtime.v2.task", testNS),
		"task work dirs":   filepath.Join(cd.root, "io.containerd.runtime.v2.task", testNS),
		"shim sockets":     cd.socketDir,
		"fifo dir entries": cd.fifoDir,
	} {
		ents, _ := os.ReadDir(dir)
		r.counts[what] = len(ents)
	}
	if shim > 0 {
		r.fds = relShimFds(shim)
		r.counts["fds of the surviving shim"] = len(r.fds)
	}
	return r
}

func relShimFds(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	return out
}

// relDiff describes how now differs from base ("" if it does not).
func relDiff(base, now relResources) string {
	var d []string
	for k, v := range base.counts {
		if now.counts[k] != v {
			d = append(d, fmt.Sprintf("%s: %d, baseline %d", k, now.counts[k], v))
		}
	}
	sort.Strings(d)
	if len(d) > 0 && len(base.fds) != len(now.fds) {
		d = append(d, fmt.Sprintf("shim fds now:\n    %s\n  baseline:\n    %s", strings.Join(now.fds, "\n    "), strings.Join(base.fds, "\n    ")))
	}
	return strings.Join(d, "\n  ")
}

func TestLoadNoLeaks(t *testing.T) {
	const rounds, n = 3, 50
	ctx, cancel := context.WithTimeout(namespaces.WithNamespace(context.Background(), testNS), 4*time.Minute)
	defer cancel()
	sockets := relSockets()

	// Half of each round shares the shim of a long-lived anchor container,
	// whose fds must come back to their count after every round; the other
	// half get a shim each.
	group := map[string]string{relGroupAnnotation: "load-" + testNS}
	anchorID := uniqueID(t)
	anchor := newContainer(t, ctx, anchorID, oci.WithProcessArgs("sleep", "1000"), oci.WithAnnotations(group))
	anchorTask, anchorExit := startTask(t, ctx, anchor, cio.NullIO)
	shim := shimOf(t, anchorID)

	run := func(id string, grouped bool) error {
		opts := []oci.SpecOpts{oci.WithProcessArgs("sh", "-c", `i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; echo done $i`)}
		if grouped {
			opts = append(opts, oci.WithAnnotations(group))
		}
		c, err := relNewContainer(t, ctx, id, opts...)
		if err != nil {
			return err
		}
		var out syncBuffer
		code, err := relRunToExit(ctx, c, outputIO(&out, &out))
		if err != nil {
			return err
		}
		if code != 0 || out.String() != "done 300\n" {
			return fmt.Errorf("%s: exit %d, output %q; want 0, %q", id, code, out.String(), "done 300\n")
		}
		return nil
	}
	// The grouped containers do share the anchor's shim.
	probeID := uniqueID(t)
	probe := newContainer(t, ctx, probeID, oci.WithProcessArgs("sleep", "1000"), oci.WithAnnotations(group))
	probeTask, probeExit := startTask(t, ctx, probe, cio.NullIO)
	if ppid := procParent(int(probeTask.Pid())); ppid != shim {
		t.Errorf("a container with the anchor's group annotation runs under pid %d, not the anchor's shim %d", ppid, shim)
	}
	if err := relKillAndDelete(ctx, probe, probeTask, probeExit); err != nil {
		t.Fatal(err)
	}
	// Warm up the anchor's shim (lazily opened handles) before the baseline.
	if err := run(uniqueID(t), true); err != nil {
		t.Fatal(err)
	}
	var base relResources
	waitFor(5*time.Second, func() bool { base = relMeasure(shim); return relDiff(base, relMeasure(shim)) == "" })
	t.Logf("baseline: %v", base.counts)

	for round := range rounds {
		ids := make([]string, n)
		for i := range ids {
			ids[i] = uniqueID(t)
		}
		errs := relParallel(n, n, func(i int) error { return run(ids[i], i%2 == 0) })
		relReportErrs(t, fmt.Sprintf("round %d", round+1), errs)
		var diff string
		if !waitFor(15*time.Second, func() bool { diff = relDiff(base, relMeasure(shim)); return diff == "" }) {
			t.Errorf("after round %d of %d containers, not back to the baseline:\n  %s", round+1, n, diff)
		}
		if t.Failed() {
			break
		}
	}
	if err := relKillAndDelete(ctx, anchor, anchorTask, anchorExit); err != nil {
		t.Fatal(err)
	}
	assertNoLeaks(t, anchorID)
	if !waitFor(leakTimeout, func() bool { return len(relSockets()) == len(sockets) }) {
		t.Errorf("shim sockets: %v before the test, %v after", sockets, relSockets())
	}
}

// ---------------------------------------------------------------------------
// delete is fast, idempotent and retriable; shims do not linger

func TestDeleteSemantics(t *testing.T) {
	// Two shims that will never serve a container: one never gets a Create,
	// the other only a failing one. Both must exit by themselves (the
	// service's idle timer, 30s); they are checked last, so the wait
	// overlaps the other subtests. (Isolated: the harness's leak checks
	// must not count them.)
	idleNone := relStartShim(t, uniqueID(t), true)
	idleFailed := relStartShim(t, uniqueID(t), true)
	if err := os.WriteFile(filepath.Join(idleFailed.bundle, "config.json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := idleFailed.create(idleFailed.id, idleFailed.bundle); err == nil {
		t.Fatalf("create from a config.json that is not JSON succeeded")
	}
	idleSince := time.Now()

	t.Run("twice", func(t *testing.T) {
		ctx := testCtx(t)
		id := uniqueID(t)
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", "exit 5"))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		<-exitc
		es, err := task.Delete(ctx)
		if err != nil || es.ExitCode() != 5 {
			t.Fatalf("first delete: %v, %v; want exit 5", es, err)
		}
		if _, err := task.Delete(ctx); !errdefs.IsNotFound(err) {
			t.Errorf("second delete: %v, want not found", err)
		}
		if _, stderr, err := ctr(t, "task", "delete", id); err == nil || !strings.Contains(stderr, "not found") {
			t.Errorf("ctr task delete of a deleted task: err %v, stderr %q; want a not found error", err, stderr)
		}
		deleteContainer(t, ctx, c)
		assertNoLeaks(t, id)
	})

	t.Run("busy-rootfs", func(t *testing.T) {
		ctx := testCtx(t)
		id := uniqueID(t)
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"))
		task, exitc := startTask(t, ctx, c, cio.NullIO)
		rootfs := filepath.Join(bundleDir(id), "rootfs")
		// A host process whose cwd is in the rootfs keeps the mount busy.
		holder := exec.Command("sleep", "1000")
		holder.Dir = rootfs
		if err := holder.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { holder.Process.Kill(); holder.Wait() }()
		if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-exitc
		if _, err := task.Delete(ctx); err != nil {
			t.Fatalf("delete with a busy rootfs: %v", err)
		}
		if m := mountsUnder(rootfs); len(m) > 0 {
			t.Errorf("rootfs still mounted after delete: %v", m)
		}
		if !waitFor(5*time.Second, func() bool {
			b, _ := os.ReadFile(cd.logPath)
			return bytes.Contains(b, []byte("detaching it lazily")) && bytes.Contains(b, []byte(rootfs))
		}) {
			t.Errorf("no log line about the lazy detach of %s", rootfs)
		}
		holder.Process.Kill()
		holder.Wait()
		deleteContainer(t, ctx, c)
		assertNoLeaks(t, id)
	})

	t.Run("shutdown", func(t *testing.T) {
		s := relStartDirectShim(t, uniqueID(t))
		ctx := s.ctx()
		if _, err := s.create(s.id, s.bundle); err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, err := s.task.Start(ctx, &taskAPI.StartRequest{ID: s.id}); err != nil {
			t.Fatalf("start: %v", err)
		}
		// With a container, Shutdown does nothing (one shim serves a group).
		if _, err := s.task.Shutdown(ctx, &taskAPI.ShutdownRequest{ID: s.id}); err != nil {
			t.Fatalf("Shutdown with a container: %v", err)
		}
		if st, err := s.task.State(ctx, &taskAPI.StateRequest{ID: s.id}); err != nil || st.Status.String() != "RUNNING" {
			t.Fatalf("after Shutdown with a running container: state %v, %v; want it running and served", st, err)
		}
		s.stop(s.id)
		if _, err := s.task.Delete(ctx, &taskAPI.DeleteRequest{ID: s.id}); relErrKind(err) != "NotFound" {
			t.Errorf("second Delete: %v, want NotFound", err)
		}
		if left := s.leftovers(s.id); len(left) > 0 {
			t.Errorf("left after delete: %v", left)
		}
		socket := strings.TrimPrefix(s.address, "unix://")
		if err := s.shutdown(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(socket); err == nil {
			t.Errorf("shim socket %s left after Shutdown", socket)
		}
	})

	t.Run("idle", func(t *testing.T) {
		// idleExit (shim/service.go) is 30s; allow for a slow machine.
		for _, s := range []*relShim{idleNone, idleFailed} {
			if !waitFor(time.Until(idleSince.Add(60*time.Second)), func() bool { return !s.alive() }) {
				t.Errorf("shim %d with no container still runs %v after it started", s.pid, time.Since(idleSince).Round(time.Second))
			}
		}
	})
}

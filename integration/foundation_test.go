//go:build linux

package integration

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ctrRun runs `ctr run --rm --runtime RUNTIME [flags] IMAGE id args...` and
// returns stdout, stderr and ctr's error (whose exit code is the container's).
func ctrRun(t *testing.T, id string, flags []string, args ...string) (string, string, error) {
	t.Helper()
	cleanupContainer(t, id)
	full := append([]string{"run", "--rm", "--fifo-dir", cd.fifoDir}, runtimeFlag()...)
	full = append(full, flags...)
	full = append(full, imageRef, id)
	full = append(full, args...)
	return ctr(t, full...)
}

// mustRun is ctrRun that requires exit 0 and returns stdout.
func mustRun(t *testing.T, id string, flags []string, args ...string) string {
	t.Helper()
	out, _, err := ctrRun(t, id, flags, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s", err, truncate(out, 2000))
	}
	return out
}

func TestRunEchoPid(t *testing.T) {
	t.Run("name", func(t *testing.T) {
		id := uniqueID(t)
		out := mustRun(t, id, nil, "sh", "-c", "echo $$")
		if out != "1\n" {
			t.Errorf("sh -c 'echo $$' printed %q, want %q (the container process must be PID 1 of a new PID namespace)", out, "1\n")
		}
		assertNoLeaks(t, id)
	})
	t.Run("abspath", func(t *testing.T) {
		id := uniqueID(t)
		cleanupContainer(t, id)
		out, _, err := ctr(t, "run", "--rm", "--fifo-dir", cd.fifoDir, "--runtime", shimPath, imageRef, id, "sh", "-c", "echo $$")
		if err != nil {
			t.Fatalf("--runtime %s: %v", shimPath, err)
		}
		if out != "1\n" {
			t.Errorf("with --runtime %s: printed %q, want %q", shimPath, out, "1\n")
		}
		assertNoLeaks(t, id)
	})
}

func TestIsolation(t *testing.T) {
	t.Run("pid", func(t *testing.T) {
		id := uniqueID(t)
		// "; true" keeps sh from exec'ing ps, so ps sees sh (PID 1) and itself.
		out := mustRun(t, id, nil, "sh", "-c", "ps -o pid,args; true")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var pids []string
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) > 0 {
				pids = append(pids, f[0])
			}
		}
		if len(pids) != 2 || pids[0] != "1" {
			t.Errorf("ps inside the container should list only PID 1 (sh) and ps itself, got pids %v:\n%s", pids, out)
		}
		assertNoLeaks(t, id)
	})
	t.Run("hostname", func(t *testing.T) {
		id := uniqueID(t)
		out := mustRun(t, id, []string{"--hostname", "foo"}, "hostname")
		if strings.TrimSpace(out) != "foo" {
			t.Errorf("--hostname foo: hostname printed %q, want foo (UTS namespace + spec.hostname)", out)
		}
		assertNoLeaks(t, id)
	})
	t.Run("rootfs-overlay", func(t *testing.T) {
		id := uniqueID(t)
		out := mustRun(t, id, nil, "cat", "/proc/mounts")
		var rootTypes []string
		for _, l := range strings.Split(out, "\n") {
			f := strings.Fields(l)
			if len(f) >= 3 && f[1] == "/" {
				rootTypes = append(rootTypes, f[2])
			}
		}
		if len(rootTypes) == 0 || rootTypes[len(rootTypes)-1] != "overlay" {
			t.Errorf("/ in the container should be the overlay snapshot, got types %v; /proc/mounts:\n%s", rootTypes, out)
		}
		assertNoLeaks(t, id)
	})
	t.Run("network", func(t *testing.T) {
		id := uniqueID(t)
		out := mustRun(t, id, nil, "ls", "/sys/class/net")
		if got := strings.Fields(out); len(got) != 1 || got[0] != "lo" {
			t.Errorf("ls /sys/class/net = %q, want only lo (new network namespace)", out)
		}
		assertNoLeaks(t, id)
	})
}

func TestExitCodes(t *testing.T) {
	for _, code := range []int{0, 3} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			id := uniqueID(t)
			out, errOut, err := ctrRun(t, id, nil, "sh", "-c", fmt.Sprintf("exit %d", code))
			if got := exitCode(err); got != code {
				t.Errorf("ctr run ... sh -c 'exit %d' exited %d, want %d (err %v, stdout %q, stderr %q)", code, got, code, err, out, errOut)
			}
			assertNoLeaks(t, id)
		})
	}

	t.Run("sigkill-137", func(t *testing.T) {
		id := uniqueID(t)
		cleanupContainer(t, id)
		args := append([]string{"run", "-d", "--null-io"}, runtimeFlag()...)
		mustCtr(t, append(args, imageRef, id, "sleep", "1000")...)

		ctx := testCtx(t)
		_, task := loadContainer(t, ctx, id)
		if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
			t.Fatalf("after ctr run -d: status %+v, err %v; want running", st, err)
		}
		mustCtr(t, "task", "kill", "-s", "SIGKILL", id)

		var ls string
		if !waitFor(10*time.Second, func() bool {
			ls, _, _ = ctr(t, "task", "ls")
			for _, l := range strings.Split(ls, "\n") {
				if f := strings.Fields(l); len(f) >= 3 && f[0] == id && f[2] == "STOPPED" {
					return true
				}
			}
			return false
		}) {
			t.Fatalf("task %s not STOPPED 10s after SIGKILL; ctr task ls:\n%s", id, ls)
		}
		st, err := task.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Status != containerd.Stopped || st.ExitStatus != 137 {
			t.Errorf("status after SIGKILL = %s exit %d, want stopped exit 137", st.Status, st.ExitStatus)
		}
		_, errOut, err := ctr(t, "task", "delete", id)
		if err != nil {
			t.Fatalf("ctr task delete: %v", err)
		}
		if !strings.Contains(errOut, "137") {
			t.Errorf("ctr task delete should warn about exit code 137, stderr: %q", errOut)
		}
		mustCtr(t, "container", "delete", id)
		assertNoLeaks(t, id)
	})

	t.Run("sigterm-trap", func(t *testing.T) {
		id := uniqueID(t)
		ctx := testCtx(t)
		script := `trap "echo trapped; exit 7" TERM; echo ready; while true; do sleep 0.1; done`
		c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", script))
		var out syncBuffer
		task, exitc := startTask(t, ctx, c, outputIO(&out, &out))
		if !waitFor(10*time.Second, func() bool { return strings.Contains(out.String(), "ready") }) {
			t.Fatalf("container never printed ready; output %q", out.String())
		}
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil {
			t.Fatalf("Kill(SIGTERM): %v", err)
		}
		select {
		case st := <-exitc:
			code, _, err := st.Result()
			if err != nil || code != 7 {
				t.Errorf("exit after SIGTERM = %d (err %v), want 7 from the trap", code, err)
			}
		case <-time.After(15 * time.Second):
			t.Fatalf("task did not exit 15s after SIGTERM; output %q", out.String())
		}
		if _, err := task.Delete(ctx); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if got := out.String(); got != "ready\ntrapped\n" {
			t.Errorf("output = %q, want %q", got, "ready\ntrapped\n")
		}
		deleteContainer(t, ctx, c)
		assertNoLeaks(t, id)
	})
}

func TestLargeOutput(t *testing.T) {
	const size = 1 << 20
	const runs = 20
	for i := 0; i < runs; i++ {
		id := uniqueID(t)
		out, errOut, err := ctrRun(t, id, nil, "sh", "-c", `head -c 1048576 /dev/zero | tr "\0" x; exit 3`)
		if got := exitCode(err); got != 3 {
			t.Errorf("run %d: exit code %d, want 3 (err %v, stderr %q)", i, got, err, errOut)
		}
		if len(out) != size || strings.Count(out, "x") != size {
			t.Errorf("run %d: stdout has %d bytes (%d 'x'), want exactly %d 'x'", i, len(out), strings.Count(out, "x"), size)
		}
		assertNoLeaks(t, id)
		if t.Failed() {
			t.FailNow()
		}
	}
}

func TestPersistenceAcrossTasks(t *testing.T) {
	id := uniqueID(t)
	cleanupContainer(t, id)
	args := append([]string{"container", "create"}, runtimeFlag()...)
	mustCtr(t, append(args, imageRef, id, "sh", "-c", "cat /data 2>/dev/null || true; echo hi > /data")...)

	// `ctr task start` (not detached) waits for the exit and deletes the task.
	if out := mustCtr(t, "task", "start", "--fifo-dir", cd.fifoDir, id); out != "" {
		t.Errorf("first task printed %q, want nothing (no /data yet)", out)
	}
	assertNoLeaks(t, id)
	if out := mustCtr(t, "task", "start", "--fifo-dir", cd.fifoDir, id); out != "hi\n" {
		t.Errorf("second task of the same container printed %q, want %q (rootfs changes must persist across tasks)", out, "hi\n")
	}
	mustCtr(t, "container", "delete", id)
	assertNoLeaks(t, id)
}

func TestLifecycleClient(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)

	topics := watchTopics(t, ctx, id)

	c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", "touch /ran; exec sleep 1000"))
	upper := upperDir(t, ctx, c)
	ran := filepath.Join(upper, "ran")

	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	st, err := task.Status(ctx)
	if err != nil || st.Status != containerd.Created {
		t.Fatalf("after NewTask: status %+v err %v, want created", st, err)
	}
	if task.Pid() == 0 {
		t.Errorf("created task has pid 0")
	}
	time.Sleep(200 * time.Millisecond)
	if _, err := os.Stat(ran); err == nil {
		t.Errorf("the process ran before Start: %s exists", ran)
	}

	exitc := waitAndStart(t, ctx, "task "+id, task)
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("after Start: status %+v err %v, want running", st, err)
	}
	if !waitFor(10*time.Second, func() bool { _, err := os.Stat(ran); return err == nil }) {
		t.Errorf("the process did not run after Start: %s missing", ran)
	}

	if _, err := task.Delete(ctx); err == nil {
		t.Fatalf("Delete of a running task succeeded, want an error")
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Running {
		t.Errorf("after refused Delete: status %+v err %v, want still running", st, err)
	}

	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	select {
	case es := <-exitc:
		if code, _, err := es.Result(); err != nil || code != 137 {
			t.Errorf("Wait after SIGKILL: code %d err %v, want 137", code, err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("task did not exit 15s after SIGKILL")
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Stopped || st.ExitStatus != 137 {
		t.Errorf("after exit: status %+v err %v, want stopped 137", st, err)
	}
	es, err := task.Delete(ctx)
	if err != nil {
		t.Fatalf("Delete of stopped task: %v", err)
	}
	if es.ExitCode() != 137 {
		t.Errorf("Delete returned exit %d, want 137", es.ExitCode())
	}

	want := []string{"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete"}
	_, got := waitTopic(topics, "/tasks/delete", 10*time.Second)
	if !inOrder(got, want) {
		t.Errorf("task events for %s = %v, want %v in that order", id, got, want)
	}

	deleteContainer(t, ctx, c)
	assertNoLeaks(t, id)
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name     string
		opts     []oci.SpecOpts
		rootfs   []mount.Mount // if set: no snapshot, NewTask gets these mounts
		wantText []string      // error must contain one of these (case-insensitive)
	}{
		{
			name: "empty-args",
			opts: []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
				s.Process.Args = nil
				return nil
			}},
			wantText: []string{"args"},
		},
		{
			name:     "relative-cwd",
			opts:     []oci.SpecOpts{oci.WithProcessCwd("relative/dir")},
			wantText: []string{"cwd"},
		},
		{
			name:     "bad-rootfs-mount",
			rootfs:   []mount.Mount{{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=/nonexistent"}}},
			wantText: []string{"mount", "rootfs"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			c, taskOpts := newBadContainer(t, ctx, uniqueID(t), tc.rootfs != nil, tc.rootfs, tc.opts...)
			assertNewTaskRefused(t, ctx, c, tc.wantText, taskOpts...)
		})
	}
}

// ---------------------------------------------------------------------------

// newContainer creates container id from the test image with a fresh
// snapshot and the runtime under test; extra spec options are applied after
// the image config. It is force-deleted when the test ends.
func newContainer(t *testing.T, ctx context.Context, id string, opts ...oci.SpecOpts) containerd.Container {
	t.Helper()
	img := testImage(t)
	cleanupContainer(t, id)
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img)}, opts...)
	c, err := client.NewContainer(ctx, id,
		containerd.WithImage(img),
		containerd.WithSnapshotter(snapshotter),
		containerd.WithNewSnapshot(id+"-snapshot", img),
		containerd.WithRuntime(runtimeName, nil),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	return c
}

// newContainerNoSnapshot creates a container without a rootfs snapshot; the
// caller passes the rootfs mounts to NewTask.
func newContainerNoSnapshot(t *testing.T, ctx context.Context, id string, opts ...oci.SpecOpts) containerd.Container {
	t.Helper()
	cleanupContainer(t, id)
	// No oci.WithImageConfig: it reads /etc/passwd from the (absent) rootfs.
	specOpts := append([]oci.SpecOpts{oci.WithDefaultPathEnv, oci.WithProcessArgs("true")}, opts...)
	c, err := client.NewContainer(ctx, id,
		containerd.WithRuntime(runtimeName, nil),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	return c
}

func deleteContainer(t *testing.T, ctx context.Context, c containerd.Container) {
	t.Helper()
	if err := c.Delete(ctx, containerd.WithSnapshotCleanup); err != nil {
		t.Errorf("delete container %s: %v", c.ID(), err)
	}
}

// outputIO is the stdio of a process without stdin whose stdout and stderr
// go to the given writers (through FIFOs in the test containerd's fifo dir).
func outputIO(stdout, stderr io.Writer) cio.Creator {
	return cio.NewCreator(cio.WithStreams(nil, stdout, stderr), cio.WithFIFODir(cd.fifoDir))
}

// waitAndStart subscribes to the exit of p (a task or an exec), then starts
// it, so that its exit cannot be missed. what names p in failure messages.
func waitAndStart(t testing.TB, ctx context.Context, what string, p containerd.Process) <-chan containerd.ExitStatus {
	t.Helper()
	exitc, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("%s: Wait: %v", what, err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("%s: Start: %v", what, err)
	}
	return exitc
}

// startTask creates the task of c with stdio ioc and starts it; it returns
// the task and its exit channel.
func startTask(t testing.TB, ctx context.Context, c containerd.Container, ioc cio.Creator) (containerd.Task, <-chan containerd.ExitStatus) {
	t.Helper()
	task, err := c.NewTask(ctx, ioc)
	if err != nil {
		t.Fatalf("task %s: NewTask: %v", c.ID(), err)
	}
	return task, waitAndStart(t, ctx, "task "+c.ID(), task)
}

// newTaskMustFail creates the task of c, which must fail: if it does not,
// the task is deleted and the test stops, saying it wanted an error
// mentioning want. The (logged) error is returned for the caller to check.
func newTaskMustFail(t testing.TB, ctx context.Context, c containerd.Container, want any, opts ...containerd.NewTaskOpts) error {
	t.Helper()
	task, err := c.NewTask(ctx, cio.NullIO, opts...)
	if err == nil {
		_, _ = task.Delete(ctx, containerd.WithProcessKill)
		t.Fatalf("NewTask succeeded, want an error mentioning %q", want)
	}
	t.Logf("NewTask error (expected): %v", err)
	return err
}

// newBadContainer creates container id for a NewTask that is to fail: from
// the test image or, if noSnapshot, without a rootfs snapshot, in which case
// the returned NewTask options pass rootfs (if any) as the task's root.
func newBadContainer(t *testing.T, ctx context.Context, id string, noSnapshot bool, rootfs []mount.Mount, opts ...oci.SpecOpts) (containerd.Container, []containerd.NewTaskOpts) {
	t.Helper()
	if !noSnapshot {
		return newContainer(t, ctx, id, opts...), nil
	}
	c := newContainerNoSnapshot(t, ctx, id, opts...)
	if rootfs == nil {
		return c, nil
	}
	return c, []containerd.NewTaskOpts{containerd.WithRootFS(rootfs)}
}

// assertNewTaskRefused checks that NewTask of c fails with an error that
// mentions one of want (lower case; the error is compared in lower case)
// and that no task exists afterwards; then it deletes c and checks that
// nothing is left of it. The error is returned for further checks.
func assertNewTaskRefused(t *testing.T, ctx context.Context, c containerd.Container, want []string, opts ...containerd.NewTaskOpts) error {
	t.Helper()
	err := newTaskMustFail(t, ctx, c, want, opts...)
	msg := strings.ToLower(err.Error())
	if !slices.ContainsFunc(want, func(w string) bool { return strings.Contains(msg, w) }) {
		t.Errorf("NewTask error %q does not mention %q", err, want)
	}
	if _, err := c.Task(ctx, nil); err == nil {
		t.Errorf("a task exists after the failed NewTask")
	}
	deleteContainer(t, ctx, c)
	assertNoLeaks(t, c.ID())
	return err
}

// startExec adds exec execID with process spec and stdio ioc to task and
// starts it; it returns the exec and its exit channel.
func startExec(t testing.TB, ctx context.Context, task containerd.Task, execID string, spec *specs.Process, ioc cio.Creator) (containerd.Process, <-chan containerd.ExitStatus) {
	t.Helper()
	what := fmt.Sprintf("exec %s %q", execID, spec.Args)
	p, err := task.Exec(ctx, execID, spec, ioc)
	if err != nil {
		t.Fatalf("%s: Exec: %v", what, err)
	}
	return p, waitAndStart(t, ctx, what, p)
}

// runExec runs exec execID (startExec) to its end: it waits up to timeout
// for the exit, then for the output to be copied, and deletes the exec. It
// returns the exec (its pid stays readable) and its exit status.
func runExec(t testing.TB, ctx context.Context, task containerd.Task, execID string, spec *specs.Process, ioc cio.Creator, timeout time.Duration) (containerd.Process, containerd.ExitStatus) {
	t.Helper()
	p, exitc := startExec(t, ctx, task, execID, spec, ioc)
	var st containerd.ExitStatus
	select {
	case st = <-exitc:
	case <-time.After(timeout):
		t.Fatalf("exec %s %q did not exit within %v", execID, spec.Args, timeout)
	}
	p.IO().Wait()
	if _, err := p.Delete(ctx); err != nil {
		t.Errorf("exec %s: Delete: %v", execID, err)
	}
	return p, st
}

// upperDir returns the overlay upperdir of the container's snapshot, where
// files the container creates appear on the host.
func upperDir(t *testing.T, ctx context.Context, c containerd.Container) string {
	t.Helper()
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := client.SnapshotService(info.Snapshotter).Mounts(ctx, info.SnapshotKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		for _, o := range m.Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				return v
			}
		}
		if m.Type == "bind" {
			return m.Source
		}
	}
	t.Fatalf("no upperdir in snapshot mounts %+v", mounts)
	return ""
}

// eventContainerID is the container a task event is about ("" for an event
// that names none).
func eventContainerID(ev any) string {
	if e, ok := ev.(interface{ GetContainerID() string }); ok {
		return e.GetContainerID()
	}
	return ""
}

// watchTaskEvents subscribes to the /tasks/ events of the test namespace and
// calls f with the topic and the decoded event of each, in the order
// containerd delivers them, from one goroutine, until ctx ends or the
// subscription fails. The returned channel is closed when it stops.
func watchTaskEvents(ctx context.Context, f func(topic string, ev any)) <-chan struct{} {
	envc, errc := client.Subscribe(ctx, fmt.Sprintf(`namespace==%s,topic~="^/tasks/"`, testNS))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case env := <-envc:
				ev, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				f(env.Topic, ev)
			case <-errc:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

// watchTopics sends the topics of the /tasks/ events of container id on the
// returned channel (dropping them if nobody reads) until the test ends.
func watchTopics(t *testing.T, ctx context.Context, id string) <-chan string {
	t.Helper()
	evctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	topics := make(chan string, 100)
	watchTaskEvents(evctx, func(topic string, ev any) {
		if eventContainerID(ev) == id {
			select {
			case topics <- topic:
			default:
			}
		}
	})
	return topics
}

// waitTopic waits for topic on topics; the topics seen meanwhile are
// returned for the error message.
func waitTopic(topics <-chan string, topic string, timeout time.Duration) (bool, []string) {
	var seen []string
	deadline := time.After(timeout)
	for {
		select {
		case tp := <-topics:
			seen = append(seen, tp)
			if tp == topic {
				return true, seen
			}
		case <-deadline:
			return false, seen
		}
	}
}

// expectTopics waits for each of want on topics in turn (up to timeout
// each) and reports those that do not come for container id.
func expectTopics(t *testing.T, topics <-chan string, id string, timeout time.Duration, want ...string) {
	t.Helper()
	for _, tp := range want {
		if ok, seen := waitTopic(topics, tp, timeout); !ok {
			t.Errorf("no %s event for %s; saw %v", tp, id, seen)
		}
	}
}

// eventLog records task events, in the order containerd delivered them.
type eventLog struct {
	mu     sync.Mutex
	events []any
}

// recordEvents records the task events of container id (of the whole test
// namespace if id is "") until ctx or the test ends.
func recordEvents(t *testing.T, ctx context.Context, id string) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	l := &eventLog{}
	done := watchTaskEvents(ctx, func(_ string, ev any) {
		if id != "" && eventContainerID(ev) != id {
			return
		}
		l.mu.Lock()
		l.events = append(l.events, ev)
		l.mu.Unlock()
	})
	t.Cleanup(func() { cancel(); <-done })
	return l
}

func (l *eventLog) snapshot() []any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]any(nil), l.events...)
}

// waitFor waits until cond holds over the recorded events.
func (l *eventLog) waitFor(timeout time.Duration, cond func([]any) bool) ([]any, bool) {
	var evs []any
	ok := waitFor(timeout, func() bool { evs = l.snapshot(); return cond(evs) })
	return evs, ok
}

// inOrder reports whether the first occurrences of want appear in got in
// that order, each of them present.
func inOrder(got, want []string) bool {
	last := -1
	for _, w := range want {
		idx := -1
		for i, g := range got {
			if g == w {
				idx = i
				break
			}
		}
		if idx <= last {
			return false
		}
		last = idx
	}
	return true
}

// TestHarnessDetectsLeaks checks the leak checker itself: while a container
// runs, leaks() must see its shim, its rootfs mount and its bundle dir.
func TestHarnessDetectsLeaks(t *testing.T) {
	id := uniqueID(t)
	cleanupContainer(t, id)
	args := append([]string{"run", "-d", "--null-io"}, runtimeFlag()...)
	mustCtr(t, append(args, imageRef, id, "sleep", "1000")...)

	got := strings.Join(leaks(id), "\n")
	for _, want := range []string{"shim process left", "mount left: " + bundleDir(id) + "/rootfs", "bundle dir left: " + bundleDir(id)} {
		if !strings.Contains(got, want) {
			t.Errorf("leak checker missed %q while %s runs; it found:\n%s", want, id, got)
		}
	}
	if p := leaks(id+"-other", id); len(p) > 0 {
		t.Errorf("leaks(other, keep=%s) should ignore the kept container, found:\n%s", id, strings.Join(p, "\n"))
	}

	mustCtr(t, "task", "kill", "-s", "SIGKILL", id)
	if !waitFor(10*time.Second, func() bool {
		ls, _, _ := ctr(t, "task", "ls")
		return strings.Contains(ls, "STOPPED")
	}) {
		t.Fatalf("task %s not stopped after SIGKILL", id)
	}
	ctr(t, "task", "delete", id)
	mustCtr(t, "container", "delete", id)
	assertNoLeaks(t, id)
}

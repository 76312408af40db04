//go:build linux

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/typeurl/v2"
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
		c, err := client.LoadContainer(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		task, err := c.Task(ctx, nil)
		if err != nil {
			t.Fatalf("load task after ctr run -d: %v", err)
		}
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
		task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &out, &out), cio.WithFIFODir(cd.fifoDir)))
		if err != nil {
			t.Fatalf("NewTask: %v", err)
		}
		exitc, err := task.Wait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Start(ctx); err != nil {
			t.Fatalf("Start: %v", err)
		}
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

	evctx, evcancel := context.WithCancel(ctx)
	defer evcancel()
	envc, errc := client.Subscribe(evctx, fmt.Sprintf(`namespace==%s,topic~="^/tasks/"`, testNS))
	topics := make(chan string, 100)
	go func() {
		for {
			select {
			case env := <-envc:
				ev, err := typeurl.UnmarshalAny(env.Event)
				if err != nil {
					continue
				}
				if cid := eventContainerID(ev); cid == id {
					topics <- env.Topic
				}
			case <-errc:
				return
			case <-evctx.Done():
				return
			}
		}
	}()

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

	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
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
	var got []string
	timeout := time.After(10 * time.Second)
collect:
	for {
		select {
		case tp := <-topics:
			got = append(got, tp)
			if tp == "/tasks/delete" {
				break collect
			}
		case <-timeout:
			break collect
		}
	}
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
			id := uniqueID(t)
			ctx := testCtx(t)
			var c containerd.Container
			var taskOpts []containerd.NewTaskOpts
			if tc.rootfs != nil {
				c = newContainerNoSnapshot(t, ctx, id, tc.opts...)
				taskOpts = append(taskOpts, containerd.WithRootFS(tc.rootfs))
			} else {
				c = newContainer(t, ctx, id, tc.opts...)
			}
			task, err := c.NewTask(ctx, cio.NullIO, taskOpts...)
			if err == nil {
				_, _ = task.Delete(ctx, containerd.WithProcessKill)
				t.Fatalf("NewTask succeeded, want an error mentioning %q", tc.wantText)
			}
			t.Logf("NewTask error (expected): %v", err)
			msg := strings.ToLower(err.Error())
			found := false
			for _, w := range tc.wantText {
				if strings.Contains(msg, w) {
					found = true
				}
			}
			if !found {
				t.Errorf("NewTask error %q does not mention %q", err, tc.wantText)
			}
			if _, err := c.Task(ctx, nil); err == nil {
				t.Errorf("a task exists after the failed NewTask")
			}
			deleteContainer(t, ctx, c)
			assertNoLeaks(t, id)
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

func eventContainerID(ev any) string {
	switch e := ev.(type) {
	case *apievents.TaskCreate:
		return e.ContainerID
	case *apievents.TaskStart:
		return e.ContainerID
	case *apievents.TaskExit:
		return e.ContainerID
	case *apievents.TaskDelete:
		return e.ContainerID
	case *apievents.TaskOOM:
		return e.ContainerID
	case *apievents.TaskExecAdded:
		return e.ContainerID
	case *apievents.TaskExecStarted:
		return e.ContainerID
	case *apievents.TaskPaused:
		return e.ContainerID
	case *apievents.TaskResumed:
		return e.ContainerID
	}
	return ""
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

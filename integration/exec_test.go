//go:build linux

package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	apievents "github.com/containerd/containerd/api/events"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ---------------------------------------------------------------------------
// helpers

// isRunc says the runtime under test is the runc shim (HUSK_TEST_RUNTIME),
// for the few places where husk deliberately differs.
func isRunc() bool { return strings.Contains(shimName, "runc") }

// runDetached starts container id with `ctr run -d --null-io` and returns
// the host pid of its init. The container is force-deleted when the test
// ends.
func runDetached(t *testing.T, id string, flags []string, args ...string) int {
	t.Helper()
	cleanupContainer(t, id)
	full := append([]string{"run", "-d", "--null-io"}, runtimeFlag()...)
	full = append(full, flags...)
	full = append(full, imageRef, id)
	mustCtr(t, append(full, args...)...)
	return int(loadTask(t, id).Pid())
}

// loadTask returns the task of container id.
func loadTask(t *testing.T, id string) containerd.Task {
	t.Helper()
	_, task := loadContainer(t, testCtx(t), id)
	return task
}

// loadContainer returns container id and its task.
func loadContainer(t testing.TB, ctx context.Context, id string) (containerd.Container, containerd.Task) {
	t.Helper()
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatalf("load container %s: %v", id, err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatalf("load task %s: %v", id, err)
	}
	return c, task
}

// stopContainer kills the task of id, deletes it and the container, and
// checks nothing is left behind.
func stopContainer(t *testing.T, id string) {
	t.Helper()
	ctx := testCtx(t)
	forceDelete(ctx, id)
	assertNoLeaks(t, id)
}

// ctrExec runs `ctr task exec --fifo-dir DIR --exec-id execID [flags] id args...`.
func ctrExec(t *testing.T, id, execID string, flags []string, args ...string) (string, string, error) {
	t.Helper()
	full := []string{"task", "exec", "--fifo-dir", cd.fifoDir, "--exec-id", execID}
	full = append(full, flags...)
	full = append(full, id)
	return ctr(t, append(full, args...)...)
}

func mustExec(t *testing.T, id, execID string, flags []string, args ...string) string {
	t.Helper()
	out, errOut, err := ctrExec(t, id, execID, flags, args...)
	if err != nil {
		t.Fatalf("%v\nstdout: %s\nstderr: %s", err, truncate(out, 2000), truncate(errOut, 2000))
	}
	return out
}

// execSpec is the container's process spec with args (what ctr task exec
// sends).
func execSpec(t *testing.T, ctx context.Context, id string, args ...string) *specs.Process {
	t.Helper()
	c, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := c.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := *spec.Process
	p.Args = args
	p.Terminal = false
	return &p
}

// shimOf returns the pid of the shim serving container id.
func shimOf(t *testing.T, id string) int {
	t.Helper()
	for _, p := range ourShims() {
		if p.id == id {
			return p.pid
		}
	}
	t.Fatalf("no shim process found for container %s", id)
	return 0
}

// killShim SIGKILLs the shim serving container id and waits up to timeout
// for the /tasks/delete of id on topics (watchTopics), which containerd
// publishes once it has run the shim's delete action.
func killShim(t *testing.T, id string, topics <-chan string, timeout time.Duration) {
	t.Helper()
	shim := shimOf(t, id)
	if err := syscall.Kill(shim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill shim %d: %v", shim, err)
	}
	if ok, seen := waitTopic(topics, "/tasks/delete", timeout); !ok {
		t.Fatalf("no /tasks/delete within %v of the shim's death; saw %v", timeout, seen)
	}
}

// shimFds lists the shim's open fds as "fd -> target".
func shimFds(pid int) []string {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+" -> "+target)
	}
	sort.Strings(out)
	return out
}

// shimChildren lists the children of the shim (all its threads).
func shimChildren(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, tk := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, tk.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Ints(out)
	return out
}

// shimBaseline records the shim's fds so that checkShimClean can tell
// whether execs left any behind.
type shimBaseline struct {
	pid int
	fds []string
}

func takeShimBaseline(t *testing.T, id string) shimBaseline {
	pid := shimOf(t, id)
	return shimBaseline{pid: pid, fds: shimFds(pid)}
}

// checkShimClean checks that the shim is back to its baseline fds, that its
// only child is the container's init, and that the container holds no
// process but its init. It retries for a few seconds (exits and closes are
// asynchronous).
func checkShimClean(t *testing.T, id string, b shimBaseline, initPid int) {
	t.Helper()
	var problems []string
	ctx := testCtx(t)
	task := loadTask(t, id)
	ok := waitFor(leakTimeout, func() bool {
		problems = nil
		// New fds are leaks; fds that went away are the shim's own
		// business (its bootstrap socket is closed asynchronously).
		fds := shimFds(b.pid)
		before := map[string]bool{}
		for _, fd := range b.fds {
			before[fd] = true
		}
		var added []string
		for _, fd := range fds {
			if strings.HasSuffix(fd, "[pidfd]") && isRunc() {
				continue // the runc shim keeps a pidfd per exec (os.Process never released)
			}
			if !before[fd] {
				added = append(added, fd)
			}
		}
		if len(added) > 0 {
			problems = append(problems, fmt.Sprintf("shim %d has new fds %v\n    before: %v\n    now:    %v", b.pid, added, b.fds, fds))
		}
		for _, fd := range fds {
			if strings.Contains(fd, cd.fifoDir) || strings.Contains(fd, "fifo") {
				problems = append(problems, "shim holds a FIFO: "+fd)
			}
		}
		if kids := shimChildren(b.pid); len(kids) != 1 || kids[0] != initPid {
			problems = append(problems, fmt.Sprintf("shim children %v, want only the init %d", kids, initPid))
		}
		ps, err := task.Pids(ctx)
		if err != nil {
			problems = append(problems, fmt.Sprintf("pids of %s: %v", id, err))
		} else if len(ps) != 1 || int(ps[0].Pid) != initPid {
			problems = append(problems, fmt.Sprintf("container %s has processes %v, want only its init %d", id, ps, initPid))
		}
		return len(problems) == 0
	})
	if !ok {
		t.Errorf("execs left things behind in container %s:\n  %s", id, strings.Join(problems, "\n  "))
	}
}

// fifoDirEmpty checks that no FIFO is left in dir.
func checkFifoDirEmpty(t *testing.T, dir string) {
	t.Helper()
	var left []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && p != dir {
			left = append(left, p)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("FIFOs left in %s: %v", dir, left)
	}
}

// ---------------------------------------------------------------------------
// exec basics

func TestExecJoinsContainer(t *testing.T) {
	id := uniqueID(t)
	initPid := runDetached(t, id, []string{"--hostname", "exechost"}, "sh", "-c", "touch /from-init; exec sleep 1000")
	base := takeShimBaseline(t, id)

	script := `echo $$; cat /proc/1/cmdline; echo; hostname; ` +
		`for ns in cgroup ipc mnt net pid uts user; do echo "$ns $(readlink /proc/self/ns/$ns) $(readlink /proc/1/ns/$ns)"; done; ` +
		`ls /from-init; ls /sys/class/net`
	out := mustExec(t, id, "e1", nil, "sh", "-c", script)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) < 12 {
		t.Fatalf("exec printed %d lines, want at least 12:\n%s", len(lines), out)
	}
	if n, err := strconv.Atoi(lines[0]); err != nil || n <= 1 || n > 1000 {
		t.Errorf("the exec's sh has pid %q, want a small pid > 1 of the container's pid namespace", lines[0])
	}
	if want := "sleep\x001000\x00"; lines[1] != want {
		t.Errorf("/proc/1/cmdline in the exec = %q, want %q (the container's init)", lines[1], want)
	}
	if lines[2] != "exechost" {
		t.Errorf("hostname in the exec = %q, want exechost (the container's UTS namespace)", lines[2])
	}
	for _, l := range lines[3:10] {
		f := strings.Fields(l)
		if len(f) != 3 {
			t.Errorf("bad namespace line %q", l)
			continue
		}
		if f[1] != f[2] {
			t.Errorf("the exec's %s namespace %s differs from the init's %s", f[0], f[1], f[2])
		}
		host, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", initPid, f[0]))
		if host != f[2] {
			t.Errorf("%s namespace of pid 1 seen from the exec is %s, but the init (host pid %d) has %s", f[0], f[2], initPid, host)
		}
	}
	if lines[10] != "/from-init" {
		t.Errorf("ls /from-init in the exec = %q: the exec does not see the container's mounts", lines[10])
	}
	if got := strings.Join(lines[11:], " "); got != "lo" {
		t.Errorf("ls /sys/class/net in the exec = %q, want lo (the container's network namespace)", got)
	}

	// The exec joins the container's cgroup.
	out = mustExec(t, id, "e2", nil, "sh", "-c", "cat /proc/self/cgroup; echo --; cat /proc/1/cgroup")
	self, init, _ := strings.Cut(out, "--\n")
	if strings.TrimSpace(self) != strings.TrimSpace(init) {
		t.Errorf("the exec's cgroups differ from the init's:\nexec:\n%s\ninit:\n%s", self, init)
	}

	users := []struct{ user, want string }{
		{"", "uid=0(root) gid=0(root)"},
		{"1000", "uid=1000(husk) gid=1000(husk)"},
		{"1000:65534", "uid=1000(husk) gid=65534(nogroup)"},
		{"nobody", "uid=65534(nobody) gid=65534(nogroup)"},
	}
	for i, u := range users {
		var flags []string
		if u.user != "" {
			flags = []string{"--user", u.user}
		}
		out := mustExec(t, id, fmt.Sprintf("id%d", i), flags, "id")
		if !strings.HasPrefix(strings.TrimSpace(out), u.want) {
			t.Errorf("exec --user %q: id printed %q, want it to start with %q", u.user, strings.TrimSpace(out), u.want)
		}
	}
	// The exec's own cwd.
	if out := mustExec(t, id, "cwd", []string{"--cwd", "/home/husk"}, "pwd"); strings.TrimSpace(out) != "/home/husk" {
		t.Errorf("exec --cwd /home/husk: pwd printed %q", out)
	}

	checkShimClean(t, id, base, initPid)
	stopContainer(t, id)
}

// TestExecProcessSettings: an exec is set up from its own process spec as
// the init is (user, groups, env, cwd, capabilities, rlimits,
// no_new_privs), and gets the container's seccomp filter.
func TestExecProcessSettings(t *testing.T) {
	id := uniqueID(t)
	ctx := testCtx(t)
	initPid := runDetached(t, id, []string{"--seccomp"}, "sleep", "1000")
	base := takeShimBaseline(t, id)
	task := loadTask(t, id)

	spec := execSpec(t, ctx, id, "sh", "-c",
		`id; echo "FOO=$FOO"; pwd; ulimit -n; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status`)
	spec.User = specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{65534}}
	spec.Env = append(spec.Env, "FOO=bar")
	spec.Cwd = "/home/husk"
	caps := []string{"CAP_CHOWN", "CAP_KILL"}
	spec.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps}
	spec.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 321, Soft: 123}}
	spec.NoNewPrivileges = true
	var out syncBuffer
	if _, st := runExec(t, ctx, task, "settings", spec, outputIO(&out, &out), ctrTimeout); st.ExitCode() != 0 {
		t.Errorf("exec exited %d: %s", st.ExitCode(), out.String())
	}
	got := out.String()
	for _, want := range []string{
		"uid=1000(husk) gid=1000(husk) groups=65534(nogroup)\n",
		"FOO=bar\n",
		"/home/husk\n",
		"123\n",
		// CAP_CHOWN (0) and CAP_KILL (5).
		"CapEff:\t0000000000000000\n", // a non-root user keeps no effective caps
		"CapBnd:\t0000000000000021\n",
		"NoNewPrivs:\t1\n",
		"Seccomp:\t2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("exec output lacks %q:\n%s", want, got)
		}
	}
	checkShimClean(t, id, base, initPid)
	stopContainer(t, id)
}

func TestExecUserNamespace(t *testing.T) {
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		t.Skip("no user namespaces on this kernel")
	}
	// The container's root is host uid 100000: it must be able to reach its
	// rootfs through containerd's state dir, which is below the harness's
	// temp dir (made 0700 by MkdirTemp). containerd's own dirs are 0711.
	if fi, err := os.Stat(cd.dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(cd.dir, fi.Mode().Perm()|0o011); err != nil {
			t.Fatal(err)
		}
	}
	id := uniqueID(t)
	cleanupContainer(t, id)
	full := append([]string{"run", "-d", "--null-io", "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536"}, runtimeFlag()...)
	_, errOut, err := ctr(t, append(full, imageRef, id, "sleep", "1000")...)
	if err != nil {
		t.Skipf("a container with --uidmap does not run here, so exec into one cannot be tested: %v (stderr %q)", err, errOut)
	}
	initPid := int(loadTask(t, id).Pid())
	base := takeShimBaseline(t, id)

	out := mustExec(t, id, "u1", nil, "sh", "-c",
		`id; cat /proc/self/uid_map; echo "$(readlink /proc/self/ns/user) $(readlink /proc/1/ns/user) $(readlink /proc/self/ns/mnt) $(readlink /proc/1/ns/mnt)"; echo $$`)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("exec printed %q, want 4 lines", out)
	}
	if !strings.HasPrefix(lines[0], "uid=0(root) gid=0(root)") {
		t.Errorf("id in the user-namespaced exec = %q, want uid=0(root) gid=0(root)", lines[0])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "0 100000 65536" {
		t.Errorf("uid_map seen by the exec = %q, want \"0 100000 65536\" (the container's user namespace)", lines[1])
	}
	ns := strings.Fields(lines[2])
	hostUser, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/user", initPid))
	if len(ns) != 4 || ns[0] != ns[1] || ns[2] != ns[3] || ns[0] != hostUser {
		t.Errorf("exec namespaces (user self, user init, mnt self, mnt init) = %v, init's user ns %s: the exec must join both", ns, hostUser)
	}
	if self, _ := os.Readlink("/proc/self/ns/user"); len(ns) > 0 && ns[0] == self {
		t.Errorf("the exec runs in the host's user namespace %s", self)
	}

	// A non-root user inside maps to 100000+uid outside: check it on the
	// host while the exec runs.
	ctx := testCtx(t)
	task := loadTask(t, id)
	spec := execSpec(t, ctx, id, "sleep", "1000")
	spec.User = specs.User{UID: 1000, GID: 1000}
	p, exitc := startExec(t, ctx, task, "u2", spec, cio.NullIO)
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if m := regexp.MustCompile(`(?m)^Uid:\s+(\d+)`).FindSubmatch(status); m == nil || string(m[1]) != "101000" {
		t.Errorf("host uid of the exec running as 1000 in the container = %q, want 101000\n%s", m, status)
	}
	p.Kill(ctx, syscall.SIGKILL)
	<-exitc
	if _, err := p.Delete(ctx); err != nil {
		t.Errorf("delete exec: %v", err)
	}
	checkShimClean(t, id, base, initPid)
	stopContainer(t, id)
}

// ---------------------------------------------------------------------------
// terminals

// ptyCtr is ctr running with a pty as its controlling terminal and stdio.
type ptyCtr struct {
	cmd    *exec.Cmd
	master console.Console
	out    syncBuffer
	copied chan struct{}
	exited chan struct{}
	err    error
}

func startCtrInPty(t *testing.T, rows, cols uint16, args ...string) *ptyCtr {
	t.Helper()
	master, slavePath, err := console.NewPty()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	if err := master.Resize(console.WinSize{Height: rows, Width: cols}); err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open pty slave: %v", err)
	}
	full := append([]string{"--address", cd.address, "--namespace", testNS}, args...)
	p := &ptyCtr{master: master, copied: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(ctrBin, full...)
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = slave, slave, slave
	p.cmd.Env = append(os.Environ(), "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0, Pdeathsig: syscall.SIGKILL}
	err = p.cmd.Start()
	slave.Close()
	if err != nil {
		master.Close()
		t.Fatalf("start ctr: %v", err)
	}
	running.Store(p.cmd, struct{}{})
	go func() {
		io.Copy(&p.out, master) // ends with EIO once ctr is gone
		close(p.copied)
	}()
	go func() {
		p.err = p.cmd.Wait()
		running.Delete(p.cmd)
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
		}
		select {
		case <-p.copied:
		case <-time.After(5 * time.Second):
		}
		master.Close()
	})
	return p
}

// text is the output so far without carriage returns.
func (p *ptyCtr) text() string { return strings.ReplaceAll(p.out.String(), "\r", "") }

// poke writes input until cond holds on the output, or fails the test.
func (p *ptyCtr) poke(t *testing.T, input, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond(p.text()) {
		select {
		case <-p.exited:
			t.Fatalf("ctr exited (%v) before %s; output %q", p.err, what, p.text())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s after 15s; output %q", what, p.text())
		}
		if input != "" {
			p.master.Write([]byte(input))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *ptyCtr) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(ctrTimeout):
		t.Fatalf("ctr did not exit; output %q", p.text())
	}
	select {
	case <-p.copied:
	case <-time.After(5 * time.Second):
	}
	return exitCode(p.err)
}

// ttyScript prints its tty, then its terminal size each time it reads a
// line, until it reads "q".
const ttyScript = `echo "tty=$(tty)"; echo "size=$(stty size)"; ` +
	`while read x; do [ "$x" = q ] && exit 7; echo "size=$(stty size)"; done`

var ttyRE = regexp.MustCompile(`(?m)^tty=/dev/pts/[0-9]+$`)

// driveTTY runs ttyScript's protocol: the tty is a pts, the initial size and
// a resize reach the process, and "q" ends it with exit code 7.
func driveTTY(t *testing.T, p *ptyCtr) {
	t.Helper()
	p.poke(t, "", "tty line", func(s string) bool { return strings.Contains(s, "tty=") && strings.Contains(s, "size=") })
	if !ttyRE.MatchString(p.text()) {
		t.Errorf("tty in the container did not print a /dev/pts path: %q", p.text())
	}
	p.poke(t, "\n", "initial size 30 100", func(s string) bool { return strings.Contains(s, "size=30 100\n") })
	if err := p.master.Resize(console.WinSize{Height: 45, Width: 132}); err != nil {
		t.Fatal(err)
	}
	p.poke(t, "\n", "resized size 45 132", func(s string) bool { return strings.Contains(s, "size=45 132\n") })
	p.master.Write([]byte("q\n"))
	if code := p.wait(t); code != 7 {
		t.Errorf("ctr exited %d (%v), want 7; output %q", code, p.err, p.text())
	}
}

func TestExecTerminal(t *testing.T) {
	id := uniqueID(t)
	initPid := runDetached(t, id, nil, "sleep", "1000")
	base := takeShimBaseline(t, id)
	p := startCtrInPty(t, 30, 100, "task", "exec", "-t", "--exec-id", "tty1", id, "sh", "-c", ttyScript)
	driveTTY(t, p)
	checkShimClean(t, id, base, initPid)
	stopContainer(t, id)
}

func TestRunTerminal(t *testing.T) {
	id := uniqueID(t)
	cleanupContainer(t, id)
	args := append([]string{"run", "--rm", "-t"}, runtimeFlag()...)
	p := startCtrInPty(t, 30, 100, append(args, imageRef, id, "sh", "-c", ttyScript)...)
	driveTTY(t, p)
	if !strings.Contains(p.text(), "tty=/dev/pts/0\n") {
		t.Errorf("the init's terminal should be /dev/pts/0 of the container's own devpts; output %q", p.text())
	}
	assertNoLeaks(t, id)
}

// TestTerminalOutputLikeRunc: what `ctr run -t` and `ctr task exec -t`
// print through husk is byte for byte what they print through the runc shim,
// and holds no NUL (a ^@ was once seen at the start of `ctr run -t` output).
func TestTerminalOutputLikeRunc(t *testing.T) {
	runc := "io.containerd.runc.v2"
	if _, err := os.Stat(filepath.Join(repoRoot, ".cache/bin/runc")); err != nil {
		t.Skip("no .cache/bin/runc to compare with (GOBIN=$PWD/.cache/bin go install github.com/opencontainers/runc@v1.5.3)")
	}
	if runtimeName == runc {
		t.Skip("the runtime under test is runc itself")
	}
	// Interactive: sh reads a command from the terminal.
	const input = "echo hi; exit 3\r"
	modes := []struct {
		name  string
		input string
		code  int
		args  []string
	}{
		{"run-echo", "", 0, []string{"echo", "hello"}},
		{"run-sh", input, 3, []string{"sh"}},
		{"exec-sh", input, 3, []string{"sh"}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			outs := map[string]string{}
			for _, rt := range []string{runtimeName, runc, runc, runc} {
				if rt == runc && outs[runc] != "" {
					// The runc shim sometimes loses the whole output of a
					// process that exits at once; try it again then.
					break
				}
				id := uniqueID(t)
				cleanupContainer(t, id)
				var p *ptyCtr
				if strings.HasPrefix(m.name, "exec") {
					mustCtr(t, "run", "-d", "--null-io", "--runtime", rt, imageRef, id, "sleep", "1000")
					p = startCtrInPty(t, 24, 80, append([]string{"task", "exec", "-t", "--exec-id", "x", id}, m.args...)...)
				} else {
					p = startCtrInPty(t, 24, 80, append([]string{"run", "--rm", "-t", "--runtime", rt, imageRef, id}, m.args...)...)
				}
				if m.input != "" {
					// Type once the shell prompts.
					p.poke(t, "", "prompt", func(s string) bool { return strings.Contains(s, "# ") })
					p.master.Write([]byte(m.input))
				}
				if code := p.wait(t); code != m.code {
					t.Errorf("%s: ctr exited %d (%v), want %d; output %q", rt, code, p.err, m.code, p.out.String())
				}
				outs[rt] = p.out.String()
				if strings.ContainsRune(outs[rt], 0) {
					t.Errorf("%s: output has a NUL byte: %q", rt, outs[rt])
				}
				stopContainer(t, id)
			}
			// busybox sh asks for the cursor position (ESC[6n) and, when
			// its input comes before the (never sent) answer, redraws the
			// prompt: timing, not the runtime.
			for rt, o := range outs {
				outs[rt] = strings.ReplaceAll(o, "\r/ # \x1b[J", "")
			}
			if outs[runtimeName] != outs[runc] {
				t.Errorf("terminal output differs:\n%s: %q\n%s: %q", runtimeName, outs[runtimeName], runc, outs[runc])
			}
		})
	}
}

// ---------------------------------------------------------------------------
// stdin

// TestCloseIO: a cat reading stdin ends once the client closed its end and
// called CloseIO, with all its input echoed; a client that goes away without
// CloseIO does not end the process's stdin (another one may attach).
func TestCloseIO(t *testing.T) {
	cases := []struct {
		name     string
		exec     bool
		terminal bool
	}{
		{"init", false, false},
		{"exec", true, false},
		{"exec-terminal", true, true},
		{"init-terminal", false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := uniqueID(t)
			ctx := testCtx(t)
			fifoDir := filepath.Join(cd.dir, "fifo-"+id)
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			defer w.Close()
			var out syncBuffer
			opts := []cio.Opt{cio.WithStreams(r, &out, &out), cio.WithFIFODir(fifoDir)}
			if tc.terminal {
				opts = []cio.Opt{cio.WithStreams(r, &out, nil), cio.WithTerminal, cio.WithFIFODir(fifoDir)}
			}
			var (
				p       containerd.Process
				initPid int
				base    shimBaseline
			)
			if tc.exec {
				initPid = runDetached(t, id, nil, "sleep", "1000")
				base = takeShimBaseline(t, id)
				spec := execSpec(t, ctx, id, "cat")
				spec.Terminal = tc.terminal
				p, err = loadTask(t, id).Exec(ctx, "cat", spec, cio.NewCreator(opts...))
			} else {
				specOpts := []oci.SpecOpts{oci.WithProcessArgs("cat")}
				if tc.terminal {
					specOpts = append(specOpts, oci.WithTTY)
				}
				c := newContainer(t, ctx, id, specOpts...)
				p, err = c.NewTask(ctx, cio.NewCreator(opts...))
			}
			if err != nil {
				t.Fatal(err)
			}
			exitc := waitAndStart(t, ctx, "cat", p)
			w.Write([]byte("hello\n"))
			want := "hello\n"
			if tc.terminal {
				want = "hello\r\nhello\r\n" // the terminal's echo, then cat's
			}
			if !waitFor(10*time.Second, func() bool { return out.String() == want }) {
				t.Fatalf("cat did not echo its input: %q, want %q", out.String(), want)
			}
			// The client closes its end: the process's stdin stays open.
			w.Close()
			time.Sleep(300 * time.Millisecond)
			select {
			case st := <-exitc:
				t.Fatalf("cat exited (%d) when the client closed its stdin FIFO, before CloseIO", st.ExitCode())
			default:
			}
			if err := p.CloseIO(ctx, containerd.WithStdinCloser); err != nil {
				t.Fatalf("CloseIO: %v", err)
			}
			select {
			case st := <-exitc:
				code, _, err := st.Result()
				if err != nil || (code != 0 && !tc.terminal) {
					t.Errorf("cat exited %d (%v) after CloseIO, want 0", code, err)
				}
				t.Logf("cat exited %d after CloseIO", code)
			case <-time.After(10 * time.Second):
				t.Fatalf("cat did not end 10s after CloseIO")
			}
			p.IO().Wait()
			if _, err := p.Delete(ctx); err != nil {
				t.Errorf("delete: %v", err)
			}
			p.IO().Close()
			if got := out.String(); got != want {
				t.Errorf("output %q, want %q", got, want)
			}
			if tc.exec {
				checkShimClean(t, id, base, initPid)
			}
			checkFifoDirEmpty(t, fifoDir)
			os.Remove(fifoDir)
			stopContainer(t, id)
		})
	}
}

// TestExecStdinComplete: everything a client writes to stdin before it
// closes it reaches the process (ctr calls CloseIO at its stdin's EOF, while
// data may still be in the FIFO).
func TestExecStdinComplete(t *testing.T) {
	id := uniqueID(t)
	initPid := runDetached(t, id, nil, "sleep", "1000")
	base := takeShimBaseline(t, id)
	var data bytes.Buffer
	for i := 0; data.Len() < 256<<10; i++ {
		fmt.Fprintf(&data, "line %d of the input\n", i)
	}
	for i := 0; i < 5; i++ {
		out, errOut, err := runCtr(t, bytes.NewReader(data.Bytes()), "task", "exec", "--exec-id", fmt.Sprintf("in%d", i), id, "wc", "-c")
		if err != nil {
			t.Fatalf("%v (stderr %q)", err, errOut)
		}
		if got := strings.TrimSpace(out); got != strconv.Itoa(data.Len()) {
			t.Errorf("run %d: wc -c in the exec counted %s bytes of stdin, want %d", i, got, data.Len())
		}
	}
	checkShimClean(t, id, base, initPid)
	stopContainer(t, id)
}

// ---------------------------------------------------------------------------
// log URIs

// loggerScript is a binary:// logging binary: it copies fd 3 and 4 into
// files of the directory given as "dir" in the URI and records its
// environment. fd 5 is closed first, which signals readiness (and keeps the
// background readers from holding the ready pipe open). %s is where a
// binary-v2:// logger writes its ready byte.
const loggerScript = `#!/bin/sh
[ "$1" = dir ] || exit 2
dir=$2
%s
exec 5>&-
echo "$CONTAINER_ID $CONTAINER_NAMESPACE" > "$dir/env"
/bin/cat <&3 > "$dir/stdout" &
/bin/cat <&4 > "$dir/stderr" &
wait
`

// chattyScript prints numbered lines on stdout and stderr.
func chattyScript(n int) string {
	return fmt.Sprintf(`i=1; while [ $i -le %d ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done`, n)
}

// checkLines checks that text holds exactly the lines "prefix 1".."prefix n"
// in order (other lines are ignored if mixed is set).
func checkLines(t *testing.T, what, text, prefix string, n int, mixed bool) {
	t.Helper()
	next := 1
	for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if !strings.HasPrefix(l, prefix+" ") {
			if !mixed {
				t.Errorf("%s: unexpected line %q", what, l)
				return
			}
			continue
		}
		if l != fmt.Sprintf("%s %d", prefix, next) {
			t.Errorf("%s: line %q where %q was expected", what, l, fmt.Sprintf("%s %d", prefix, next))
			return
		}
		next++
	}
	if next != n+1 {
		t.Errorf("%s: %d of %d %q lines (%d bytes)", what, next-1, n, prefix, len(text))
	}
}

func TestLogURIs(t *testing.T) {
	const lines = 2000
	dir := t.TempDir()
	loggers := map[string]string{
		"binary":    filepath.Join(dir, "logger.sh"),
		"binary-v2": filepath.Join(dir, "logger-v2.sh"),
	}
	if err := os.WriteFile(loggers["binary"], []byte(fmt.Sprintf(loggerScript, "")), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loggers["binary-v2"], []byte(fmt.Sprintf(loggerScript, "printf x >&5")), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ scheme, kind string }{
		{"binary", "run"},
		{"binary", "exec"},
		{"binary", "terminal"},
		{"binary-v2", "run"},
		{"binary-v2", "exec"},
		{"file", "run"},
		{"file", "exec"},
		{"file", "terminal"},
	}
	for _, tc := range cases {
		t.Run(tc.scheme+"-"+tc.kind, func(t *testing.T) {
			if tc.scheme == "file" && tc.kind == "terminal" && isRunc() {
				t.Skip("the runc shim takes a terminal's file:// log for a FIFO path")
			}
			id := uniqueID(t)
			ctx := testCtx(t)
			out := filepath.Join(dir, id)
			if err := os.Mkdir(out, 0o755); err != nil {
				t.Fatal(err)
			}
			uri := tc.scheme + "://" + loggers[tc.scheme] + "?dir=" + out
			if tc.scheme == "file" {
				uri = "file://" + filepath.Join(out, "log")
			}
			var initPid int
			var base shimBaseline
			switch tc.kind {
			case "run":
				cleanupContainer(t, id)
				args := append([]string{"run", "--rm", "--log-uri", uri}, runtimeFlag()...)
				mustCtr(t, append(args, imageRef, id, "sh", "-c", chattyScript(lines))...)
			case "exec":
				initPid = runDetached(t, id, nil, "sleep", "1000")
				base = takeShimBaseline(t, id)
				mustCtr(t, "task", "exec", "--exec-id", "log", "--log-uri", uri, id, "sh", "-c", chattyScript(lines))
			case "terminal":
				// ctr refuses --log-uri with -t; nerdctl run -d -t does it.
				c := newContainer(t, ctx, id, oci.WithProcessArgs("sh", "-c", chattyScript(lines)), oci.WithTTY)
				u, err := url.Parse(uri)
				if err != nil {
					t.Fatal(err)
				}
				// As nerdctl: a terminal log URI (Terminal set in the request).
				task, err := c.NewTask(ctx, cio.TerminalLogURI(u))
				if err != nil {
					t.Fatalf("NewTask with a terminal and %s: %v", uri, err)
				}
				exitc := waitAndStart(t, ctx, "task with a terminal and "+uri, task)
				select {
				case <-exitc:
				case <-time.After(20 * time.Second):
					t.Fatal("the task did not exit")
				}
				if _, err := task.Delete(ctx); err != nil {
					t.Fatal(err)
				}
			}
			read := func(name string) string {
				b, _ := os.ReadFile(filepath.Join(out, name))
				return strings.ReplaceAll(string(b), "\r", "")
			}
			switch {
			case tc.kind == "terminal":
				// One stream: stdout and stderr both went to the terminal.
				name := "stdout"
				if tc.scheme == "file" {
					name = "log"
				}
				checkLines(t, "terminal log (stdout)", read(name), "out", lines, true)
				checkLines(t, "terminal log (stderr)", read(name), "err", lines, true)
			case tc.scheme == "file":
				checkLines(t, "file log (stdout)", read("log"), "out", lines, true)
				checkLines(t, "file log (stderr)", read("log"), "err", lines, true)
			default:
				checkLines(t, "logger stdout", read("stdout"), "out", lines, false)
				checkLines(t, "logger stderr", read("stderr"), "err", lines, false)
			}
			if strings.HasPrefix(tc.scheme, "binary") {
				want := id + " " + testNS
				if tc.kind == "exec" && isRunc() {
					// The runc shim names the exec, not the container.
					want = "log " + testNS
				}
				if got := strings.TrimSpace(read("env")); got != want {
					t.Errorf("logger environment CONTAINER_ID CONTAINER_NAMESPACE = %q, want %q", got, want)
				}
			}
			if tc.kind == "exec" {
				checkShimClean(t, id, base, initPid)
				stopContainer(t, id)
			} else {
				stopContainer(t, id)
			}
		})
	}

	// A binary-v2 logger must say it is ready; one that exits without
	// doing so fails the task's creation, and nothing is left behind.
	t.Run("binary-v2-not-ready", func(t *testing.T) {
		id := uniqueID(t)
		bad := filepath.Join(dir, "bad-logger.sh")
		if err := os.WriteFile(bad, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		cleanupContainer(t, id)
		args := append([]string{"run", "--rm", "--log-uri", "binary-v2://" + bad}, runtimeFlag()...)
		_, errOut, err := ctr(t, append(args, imageRef, id, "true")...)
		if err == nil {
			t.Fatal("a binary-v2 logger that never signals readiness was accepted")
		}
		if !strings.Contains(errOut, "ready") {
			t.Errorf("error %q does not say the logger was not ready", errOut)
		}
		stopContainer(t, id)
	})
}

// ---------------------------------------------------------------------------
// many execs

func TestConcurrentExecs(t *testing.T) {
	const n = 50
	id := uniqueID(t)
	ctx := testCtx(t)
	initPid := runDetached(t, id, nil, "sleep", "1000")
	base := takeShimBaseline(t, id)
	events := recordEvents(t, ctx, id)
	task := loadTask(t, id)
	fifoDir := filepath.Join(cd.dir, "fifo-"+id)

	type result struct {
		stdout, stderr string
		code           uint32
		err            error
	}
	results := make([]result, n)
	baseSpec := execSpec(t, ctx, id, "true")
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := &results[i]
			var stdout, stderr syncBuffer
			spec := *baseSpec
			spec.Args = []string{"sh", "-c", fmt.Sprintf("echo marker-%d; echo errmarker-%d >&2; exit %d", i, i, i%7)}
			p, err := task.Exec(ctx, fmt.Sprintf("x%d", i), &spec, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(fifoDir)))
			if err != nil {
				res.err = fmt.Errorf("exec: %w", err)
				return
			}
			defer p.IO().Close()
			exitc, err := p.Wait(ctx)
			if err != nil {
				res.err = fmt.Errorf("wait: %w", err)
				return
			}
			if err := p.Start(ctx); err != nil {
				res.err = fmt.Errorf("start: %w", err)
				p.Delete(ctx)
				return
			}
			st := <-exitc
			res.code, _, res.err = st.Result()
			p.IO().Wait()
			if _, err := p.Delete(ctx); err != nil && res.err == nil {
				res.err = fmt.Errorf("delete: %w", err)
			}
			res.stdout, res.stderr = stdout.String(), stderr.String()
		}(i)
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("exec %d: %v", i, r.err)
			continue
		}
		if want := fmt.Sprintf("marker-%d\n", i); r.stdout != want {
			t.Errorf("exec %d: stdout %q, want %q", i, r.stdout, want)
		}
		if want := fmt.Sprintf("errmarker-%d\n", i); r.stderr != want {
			t.Errorf("exec %d: stderr %q, want %q", i, r.stderr, want)
		}
		if r.code != uint32(i%7) {
			t.Errorf("exec %d: exit code %d, want %d", i, r.code, i%7)
		}
	}

	// Events: one TaskExecAdded, TaskExecStarted and TaskExit per exec,
	// the exit after the start; nothing for the (running) init.
	var evs []any
	countExits := func() int {
		evs = events.snapshot()
		k := 0
		for _, e := range evs {
			if x, ok := e.(*apievents.TaskExit); ok && x.ID != id {
				k++
			}
		}
		return k
	}
	waitFor(10*time.Second, func() bool { return countExits() >= n })
	added, started, exited := map[string]int{}, map[string]int{}, map[string]int{}
	for i, e := range evs {
		switch e := e.(type) {
		case *apievents.TaskExecAdded:
			added[e.ExecID]++
		case *apievents.TaskExecStarted:
			if started[e.ExecID] == 0 {
				started[e.ExecID] = i + 1
			} else {
				t.Errorf("TaskExecStarted for %s twice", e.ExecID)
			}
		case *apievents.TaskExit:
			if e.ID == id || e.ID == "" {
				t.Errorf("TaskExit for the init (%+v) while it runs", e)
				continue
			}
			if exited[e.ID] != 0 {
				t.Errorf("TaskExit for exec %s twice", e.ID)
			}
			exited[e.ID] = i + 1
			var k int
			fmt.Sscanf(e.ID, "x%d", &k)
			if e.ExitStatus != uint32(k%7) {
				t.Errorf("TaskExit of %s has status %d, want %d", e.ID, e.ExitStatus, k%7)
			}
		}
	}
	for i := 0; i < n; i++ {
		x := fmt.Sprintf("x%d", i)
		switch {
		case added[x] != 1:
			t.Errorf("exec %s: %d TaskExecAdded events, want 1", x, added[x])
		case started[x] == 0:
			t.Errorf("exec %s: no TaskExecStarted event", x)
		case exited[x] == 0:
			t.Errorf("exec %s: no TaskExit event", x)
		case exited[x] < started[x]:
			t.Errorf("exec %s: TaskExit (event #%d) before TaskExecStarted (#%d)", x, exited[x], started[x])
		}
	}

	checkShimClean(t, id, base, initPid)
	checkFifoDirEmpty(t, fifoDir)
	os.Remove(fifoDir)

	// The init's exit comes after the exits of its execs: start a few
	// execs that outlive the init's SIGKILL... (they die with it: their
	// exits must be published first).
	for i := 0; i < 3; i++ {
		spec := execSpec(t, ctx, id, "sleep", "1000")
		p, err := task.Exec(ctx, fmt.Sprintf("long%d", i), spec, cio.NullIO)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exitc
	var initExit int
	if !waitFor(10*time.Second, func() bool {
		evs = events.snapshot()
		initExit = 0
		for i, e := range evs {
			if x, ok := e.(*apievents.TaskExit); ok && x.ID == id {
				initExit = i + 1
			}
		}
		return initExit > 0
	}) {
		t.Fatalf("no TaskExit for the init")
	}
	for i := 0; i < 3; i++ {
		x := fmt.Sprintf("long%d", i)
		found := 0
		for j, e := range evs {
			if ex, ok := e.(*apievents.TaskExit); ok && ex.ID == x {
				found = j + 1
			}
		}
		if found == 0 || found > initExit {
			t.Errorf("TaskExit of exec %s is event #%d, the init's is #%d: the init's exit must come last", x, found, initExit)
		}
	}
	stopContainer(t, id)
}

// ---------------------------------------------------------------------------
// errors

func TestExecErrors(t *testing.T) {
	ctx := testCtx(t)

	t.Run("unknown-container", func(t *testing.T) {
		_, errOut, err := ctrExec(t, "no-such-container", "e1", nil, "true")
		if err == nil {
			t.Fatal("exec into an unknown container succeeded")
		}
		if !strings.Contains(errOut, "not found") {
			t.Errorf("exec into an unknown container: error %q does not say \"not found\"", errOut)
		}
	})

	t.Run("duplicate-id", func(t *testing.T) {
		id := uniqueID(t)
		initPid := runDetached(t, id, nil, "sleep", "1000")
		base := takeShimBaseline(t, id)
		task := loadTask(t, id)
		p, exitc := startExec(t, ctx, task, "dup", execSpec(t, ctx, id, "sleep", "1000"), cio.NullIO)
		_, err := task.Exec(ctx, "dup", execSpec(t, ctx, id, "true"), cio.NullIO)
		if err == nil {
			t.Errorf("a second exec with id dup succeeded")
		} else if !errdefs.IsAlreadyExists(err) || !strings.Contains(err.Error(), "dup") {
			t.Errorf("duplicate exec id: error %q is not AlreadyExists naming the id", err)
		}
		_, errOut, err := ctrExec(t, id, "dup", nil, "true")
		if err == nil || !strings.Contains(errOut, "already exists") {
			t.Errorf("ctr task exec with a duplicate id: err %v, stderr %q; want an \"already exists\" error", err, errOut)
		}
		// State, Delete and Kill by exec id.
		if st, err := p.Status(ctx); err != nil || st.Status != containerd.Running {
			t.Errorf("status of the running exec: %+v, %v", st, err)
		}
		if _, err := p.Delete(ctx); err == nil {
			t.Errorf("deleting a running exec succeeded")
		}
		if err := p.Kill(ctx, syscall.SIGKILL); err != nil {
			t.Fatalf("kill exec: %v", err)
		}
		if st := <-exitc; st.ExitCode() != 137 {
			t.Errorf("exec killed with SIGKILL exited %d, want 137", st.ExitCode())
		}
		if st, err := p.Status(ctx); err != nil || st.Status != containerd.Stopped || st.ExitStatus != 137 {
			t.Errorf("status of the killed exec: %+v, %v; want stopped 137", st, err)
		}
		if err := p.Kill(ctx, syscall.SIGKILL); err == nil || !errdefs.IsNotFound(err) {
			t.Errorf("kill of an exited exec: %v, want a NotFound error", err)
		}
		if st, err := loadTask(t, id).Status(ctx); err != nil || st.Status != containerd.Running {
			t.Errorf("the container's status after its exec was killed: %+v, %v; want running", st, err)
		}
		if _, err := p.Delete(ctx); err != nil {
			t.Errorf("delete exec: %v", err)
		}
		// The id is free again.
		if out := mustExec(t, id, "dup", nil, "echo", "again"); out != "again\n" {
			t.Errorf("exec with a reused id printed %q", out)
		}
		checkShimClean(t, id, base, initPid)
		stopContainer(t, id)
	})

	t.Run("stopped", func(t *testing.T) {
		id := uniqueID(t)
		runDetached(t, id, nil, "sh", "-c", "exit 3")
		task := loadTask(t, id)
		if !waitFor(10*time.Second, func() bool {
			st, err := task.Status(ctx)
			return err == nil && st.Status == containerd.Stopped
		}) {
			t.Fatal("container did not stop")
		}
		_, errOut, err := ctrExec(t, id, "e1", nil, "true")
		if err == nil {
			t.Fatal("exec into a stopped container succeeded")
		}
		if !strings.Contains(errOut, "stopped") {
			t.Errorf("exec into a stopped container: error %q does not say it is stopped", errOut)
		}
		_, err = task.Exec(ctx, "e2", execSpec(t, ctx, id, "true"), cio.NullIO)
		// The runc shim says so too, but as an Unknown error.
		if err == nil || !strings.Contains(err.Error(), "stopped") || (!errdefs.IsFailedPrecondition(err) && !isRunc()) {
			t.Errorf("Exec into a stopped container: %v, want a FailedPrecondition error saying it is stopped", err)
		}
		stopContainer(t, id)
	})

	t.Run("paused", func(t *testing.T) {
		id := uniqueID(t)
		initPid := runDetached(t, id, nil, "sleep", "1000")
		base := takeShimBaseline(t, id)
		task := loadTask(t, id)
		if err := task.Pause(ctx); err != nil {
			t.Skipf("cannot pause here (freezer cgroup?): %v", err)
		}
		_, errOut, err := ctrExec(t, id, "e1", nil, "true")
		if err == nil {
			t.Error("exec into a paused container succeeded")
		} else if !strings.Contains(errOut, "paused") {
			t.Errorf("exec into a paused container: error %q does not say it is paused", errOut)
		}
		if err := task.Resume(ctx); err != nil {
			t.Fatal(err)
		}
		if out := mustExec(t, id, "e1", nil, "echo", "resumed"); out != "resumed\n" {
			t.Errorf("exec after resume printed %q", out)
		}
		checkShimClean(t, id, base, initPid)
		stopContainer(t, id)
	})

	t.Run("bad-process", func(t *testing.T) {
		id := uniqueID(t)
		initPid := runDetached(t, id, nil, "sleep", "1000")
		base := takeShimBaseline(t, id)
		cases := []struct {
			args []string
			cwd  string
			want string
		}{
			{[]string{"/no/such/binary"}, "", "/no/such/binary"},
			{[]string{"no-such-command"}, "", "no-such-command"},
			{[]string{"true"}, "/no/such/dir", "/no/such/dir"},
		}
		for i, c := range cases {
			var flags []string
			if c.cwd != "" {
				flags = []string{"--cwd", c.cwd}
			}
			_, errOut, err := ctrExec(t, id, fmt.Sprintf("bad%d", i), flags, c.args...)
			if err == nil {
				t.Errorf("exec %v (cwd %q) succeeded", c.args, c.cwd)
			} else if !strings.Contains(errOut, c.want) {
				t.Errorf("exec %v (cwd %q): error %q does not name %q", c.args, c.cwd, errOut, c.want)
			}
		}
		checkShimClean(t, id, base, initPid)
		stopContainer(t, id)
	})
}

// TestExecIntoCreated: as with the runc shim, a created (not yet started)
// container takes an exec, which runs in its namespaces beside the waiting
// init; the init then starts as usual.
func TestExecIntoCreated(t *testing.T) {
	ctx := testCtx(t)
	id := uniqueID(t)
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"), oci.WithHostname("created-host"))
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	t.Cleanup(func() { stopContainer(t, id) })
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Created {
		t.Fatalf("status before the exec: %+v, %v; want created", st, err)
	}
	out := mustExec(t, id, "e1", nil, "sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "created-host" || lines[1] == "1" || !strings.HasPrefix(lines[2], "husk-init") {
		t.Errorf("exec in the created container printed %q; want its hostname, a pid other than 1, and the waiting init as pid 1", out)
	}
	if st, err := task.Status(ctx); err != nil || st.Status != containerd.Created {
		t.Errorf("status after the exec: %+v, %v; want still created", st, err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start after the exec: %v", err)
	}
	if got := strings.TrimSpace(mustExec(t, id, "e2", nil, "cat", "/proc/1/cmdline")); !strings.HasPrefix(got, "sleep") {
		t.Errorf("pid 1 after Start runs %q, want sleep", got)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if st := <-exitc; st.ExitCode() != 137 {
		t.Errorf("init exited %d, want 137", st.ExitCode())
	}
}

// TestExecIntoCreatedThenDelete: deleting a created container whose exec
// still runs kills both; the exec's exit is reported and nothing is left.
func TestExecIntoCreatedThenDelete(t *testing.T) {
	ctx := testCtx(t)
	id := uniqueID(t)
	c := newContainer(t, ctx, id, oci.WithProcessArgs("sleep", "1000"))
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	t.Cleanup(func() { stopContainer(t, id) })
	p, exitc := startExec(t, ctx, task, "long", execSpec(t, ctx, id, "sleep", "1000"), cio.NullIO)
	execPid := int(p.Pid())
	if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil {
		t.Fatalf("delete the created task with a running exec: %v", err)
	}
	select {
	case st := <-exitc:
		if st.ExitCode() != 137 {
			t.Errorf("exec exited %d, want 137 (killed with the container)", st.ExitCode())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit for the exec 10s after the container was deleted")
	}
	if err := syscall.Kill(execPid, 0); err == nil {
		t.Errorf("exec process %d still exists after the delete", execPid)
	}
}

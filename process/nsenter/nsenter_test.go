package nsenter_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/husk-runtime/husk/process/nsenter"
)

const (
	envVar       = "_HUSK_NSENTER"
	cgroupEnvVar = "_HUSK_CGROUP_FDS"
	// childEnv makes the test binary a child that reports (childReport)
	// instead of running tests; its value is a path whose existence it
	// reports ("" for none).
	childEnv = "HUSK_NSENTER_TEST_CHILD"
)

// The subject is testdata/helper, built once per run both as a normal
// (dynamically linked) cgo binary and fully static, since husk may ship either.
var (
	buildOnce  sync.Once
	buildDir   string
	helpers    = map[string]string{} // flavour -> binary
	buildErr   error
	staticErr  error
	staticWarn string
)

func TestMain(m *testing.M) {
	// The test binary links the constructor too: run as a child (see
	// runSelf), it reports where the constructor put it.
	if marker, ok := os.LookupEnv(childEnv); ok {
		os.Exit(childMain(marker))
	}
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: joining mount/user namespaces needs CAP_SYS_ADMIN, and the tests create namespaces and mounts")
	}
}

func buildHelpers(t *testing.T) map[string]string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go toolchain not found: %w", err)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "husk-nsenter-test-"); buildErr != nil {
			return
		}
		build := func(out string, args ...string) (string, error) {
			cmd := exec.Command(goBin, append(append([]string{"build", "-o", out}, args...), "./testdata/helper")...)
			cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
			b, err := cmd.CombinedOutput()
			if err != nil {
				return string(b), fmt.Errorf("go build %v: %w\n%s", args, err, b)
			}
			return string(b), nil
		}
		dyn := filepath.Join(buildDir, "helper")
		if _, buildErr = build(dyn); buildErr != nil {
			return
		}
		helpers["dynamic"] = dyn
		static := filepath.Join(buildDir, "helper-static")
		if staticWarn, staticErr = build(static, "-ldflags", "-extldflags=-static"); staticErr == nil {
			helpers["static"] = static
		}
	})
	if buildErr != nil {
		t.Fatalf("build helper: %v", buildErr)
	}
	return helpers
}

// TestStaticBuild checks that the package links into a fully static binary
// (go build -ldflags '-extldflags=-static'); the join and error tests then
// run against that binary too.
func TestStaticBuild(t *testing.T) {
	requireRoot(t) // only to keep the non-root run build-free
	buildHelpers(t)
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	if staticWarn != "" {
		t.Logf("static link output (glibc warnings?):\n%s", staticWarn)
	}
	f, err := elf.Open(helpers["static"])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("static helper has a PT_INTERP: it is dynamically linked")
		}
	}
}

type report struct {
	Mnt     string `json:"mnt"`
	User    string `json:"user"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Cwd     string `json:"cwd"`
	EnvLeft bool   `json:"envLeft"`
	Marker  bool   `json:"marker"`
}

type result struct {
	code           int
	stdout, stderr string
	sync           string // what arrived on fd 3
}

// runHelper runs bin with _HUSK_NSENTER=value (unset when value is nil) and a
// pipe as fd 3 (none when noSync).
func runHelper(t *testing.T, bin string, value *string, noSync bool, args ...string) result {
	t.Helper()
	var env []string
	if value != nil {
		env = []string{envVar + "=" + *value}
	}
	return runWith(t, bin, runOpts{env: env, noSync: noSync, args: args})
}

// runOpts is how runWith starts a child.
type runOpts struct {
	env    []string   // added to the environment, which never has envVar, cgroupEnvVar or childEnv otherwise
	files  []*os.File // fd 4, 5, ... (fd 3, 4, ... when noSync)
	noSync bool       // no pipe as fd 3
	args   []string
}

// runWith runs bin to its end (it is always reaped before runWith returns)
// and collects its output.
func runWith(t *testing.T, bin string, o runOpts) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, o.args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envVar+"=") && !strings.HasPrefix(kv, cgroupEnvVar+"=") && !strings.HasPrefix(kv, childEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, o.env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var r, w *os.File
	if !o.noSync {
		var err error
		if r, w, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		cmd.ExtraFiles = []*os.File{w}
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, o.files...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sync []byte
	if r != nil {
		w.Close()
		sync, _ = io.ReadAll(r) // EOF once the helper is gone
	}
	err := cmd.Wait() // always reaped; CommandContext kills it on timeout
	res := result{stdout: stdout.String(), stderr: stderr.String(), sync: string(sync)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("helper: %v (stderr %q)", err, res.stderr)
	}
	return res
}

// holder is a process sitting in fresh namespaces with a private tmpfs,
// holding a marker file, mounted on dir.
type holder struct {
	pid int
	dir string
}

func (h holder) ns(typ string) string { return fmt.Sprintf("/proc/%d/ns/%s", h.pid, typ) }

func startHolder(t *testing.T, userns bool) holder {
	t.Helper()
	dir, err := os.MkdirTemp("", "husk-nsenter-mnt-")
	if err != nil {
		t.Fatal(err)
	}
	// Registered first so it runs last, after the holder (and its mount
	// namespace with the tmpfs) is gone. 0755: the userns root (host uid
	// 100000) must be able to reach it.
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// --make-rprivate keeps the tmpfs from propagating back to the host if
	// "/" is a shared mount.
	cmd := exec.Command("/bin/sh", "-c",
		`mount --make-rprivate / && mount -t tmpfs husk-nsenter-test "$1" && touch "$1/marker" && exec sleep 60`, "sh", dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if userns {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 100000, Size: 65536}}
		// Become the namespace's root (host 100000); host uid 0 is unmapped.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start holder: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited // reaped
	})
	marker := fmt.Sprintf("/proc/%d/root%s/marker", cmd.Process.Pid, dir)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("holder exited early: %v: %s", err, stderr.String())
		default:
		}
		if _, err := os.Stat(marker); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("holder: no %s after 10s", marker)
		}
	}
	return holder{pid: cmd.Process.Pid, dir: dir}
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func link(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJoin(t *testing.T) {
	requireRoot(t)
	bins := buildHelpers(t)
	mntH := startHolder(t, false)
	userH := startHolder(t, true)
	self := holder{pid: os.Getpid()}
	// Joining a user namespace does not change credentials: the helper keeps
	// host uid/gid 0, which the holder's mapping (0->100000 size 65536) does
	// not cover, so getuid()/getgid() report the overflow ids (65534 by
	// default, see /proc/sys/kernel/overflow{u,g}id). The Go side switches
	// to the container's user afterwards.
	overflowUID := readInt(t, "/proc/sys/kernel/overflowuid")
	overflowGID := readInt(t, "/proc/sys/kernel/overflowgid")

	str := func(s string) *string { return &s }
	cases := []struct {
		name     string
		value    *string
		marker   string // path the helper checks
		mnt, usr holder // whose namespaces the helper must report
		uid, gid int
	}{
		{name: "unset", marker: mntH.dir + "/marker", mnt: self, usr: self},
		{name: "mnt", value: str("mnt:" + mntH.ns("mnt")), marker: mntH.dir + "/marker", mnt: mntH, usr: self},
		{
			name: "user then mnt", value: str("user:" + userH.ns("user") + ",mnt:" + userH.ns("mnt")),
			marker: userH.dir + "/marker", mnt: userH, usr: userH, uid: overflowUID, gid: overflowGID,
		},
		{
			// Other types are accepted too; uts of the holder is the host's.
			name: "mnt and uts", value: str("uts:" + mntH.ns("uts") + ",mnt:" + mntH.ns("mnt")),
			marker: mntH.dir + "/marker", mnt: mntH, usr: self,
		},
	}
	for flavour, bin := range bins {
		for _, tc := range cases {
			t.Run(flavour+"/"+tc.name, func(t *testing.T) {
				res := runHelper(t, bin, tc.value, false, tc.marker)
				if res.code != 0 || res.sync != "" {
					t.Fatalf("exit %d, fd 3 %q, stderr %q", res.code, res.sync, res.stderr)
				}
				var got report
				if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
					t.Fatalf("helper output %q: %v", res.stdout, err)
				}
				want := report{
					Mnt: link(t, tc.mnt.ns("mnt")), User: link(t, tc.usr.ns("user")),
					UID: tc.uid, GID: tc.gid, Marker: tc.value != nil, Cwd: got.Cwd,
				}
				if tc.value != nil {
					want.Cwd = "/" // chdir("/") after the mnt join
				}
				if got != want {
					t.Errorf("got  %+v\nwant %+v", got, want)
				}
			})
		}
	}
}

func TestErrors(t *testing.T) {
	requireRoot(t)
	bins := buildHelpers(t)
	str := func(s string) *string { return &s }
	weird := `mnt:/nonexistent/"q\b` + "\t\n\x01\xff"
	cases := []struct {
		name   string
		value  string
		noSync bool // no fd 3: the line goes to stderr
		errno  syscall.Errno
		msg    []string // substrings of the decoded msg
	}{
		{"missing path", "mnt:/nonexistent/husk", false, syscall.ENOENT, []string{`open "mnt:/nonexistent/husk"`, "No such file"}},
		{"not a namespace", "mnt:/etc/passwd", false, syscall.EINVAL, []string{`setns "mnt:/etc/passwd"`, "Invalid argument"}},
		{"own user namespace", "user:/proc/self/ns/user", false, syscall.EINVAL, []string{`setns "user:/proc/self/ns/user"`}},
		{"second entry fails", "mnt:/proc/self/ns/mnt,net:/etc/passwd", false, syscall.EINVAL, []string{`setns "net:/etc/passwd"`}},
		{"bogus", "bogus", false, syscall.EINVAL, []string{`parse "bogus"`, "type:/absolute/path"}},
		{"no path", "mnt:", false, syscall.EINVAL, []string{`parse "mnt:"`}},
		{"relative path", "mnt:proc/1/ns/mnt", false, syscall.EINVAL, []string{`parse "mnt:proc/1/ns/mnt"`}},
		{"unknown type", "foo:/proc/1/ns/mnt", false, syscall.EINVAL, []string{`parse "foo:/proc/1/ns/mnt"`, "unknown namespace type"}},
		{"type prefix", "mn:/proc/1/ns/mnt", false, syscall.EINVAL, []string{`parse "mn:/proc/1/ns/mnt"`, "unknown namespace type"}},
		{"empty value", "", false, syscall.EINVAL, []string{"empty value"}},
		{"empty entry", "mnt:/proc/self/ns/mnt,,uts:/proc/self/ns/uts", false, syscall.EINVAL, []string{`parse ""`}},
		{"trailing comma", "mnt:/proc/self/ns/mnt,", false, syscall.EINVAL, []string{`parse ""`}},
		{"too long", "mnt:/" + strings.Repeat("a", 5000), false, syscall.E2BIG, []string{"value too long"}},
		{"too many", strings.Repeat("uts:/proc/self/ns/uts,", 17) + "uts:/proc/self/ns/uts", false, syscall.E2BIG, []string{"too many entries"}},
		{"escaping", weird, false, syscall.ENOENT, []string{`open "mnt:/nonexistent/"q\b` + "\t\n\x01\u00ff\""}},
		{"no sync fd", "bogus", true, syscall.EINVAL, []string{`parse "bogus"`}},
	}
	for flavour, bin := range bins {
		for _, tc := range cases {
			t.Run(flavour+"/"+tc.name, func(t *testing.T) {
				res := runHelper(t, bin, str(tc.value), tc.noSync)
				if res.code != 1 || res.stdout != "" {
					t.Fatalf("exit %d, stdout %q (want 1 and nothing: Go must never run)", res.code, res.stdout)
				}
				line := res.sync
				if tc.noSync {
					line = res.stderr
				} else if res.stderr != "" {
					t.Errorf("stderr %q, want nothing", res.stderr)
				}
				checkErrorLine(t, line, tc.errno, tc.msg)
			})
		}
	}
}

// checkErrorLine checks that line is exactly one JSON error line of step
// nsenter with errno and a msg containing every one of msg.
func checkErrorLine(t *testing.T, line string, errno syscall.Errno, msg []string) {
	t.Helper()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
		t.Fatalf("want exactly one line, got %q", line)
	}
	var m struct {
		Type  string `json:"type"`
		Step  string `json:"step"`
		Errno int    `json:"errno"`
		Msg   string `json:"msg"`
	}
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("invalid JSON %q: %v", line, err)
	}
	if m.Type != "error" || m.Step != "nsenter" || m.Errno != int(errno) {
		t.Errorf("got %+v, want type error, step nsenter, errno %d (%v)", m, int(errno), errno)
	}
	for _, s := range msg {
		if !strings.Contains(m.Msg, s) {
			t.Errorf("msg %q does not contain %q", m.Msg, s)
		}
	}
}

// childReport is what the test binary, run as a child (childEnv), prints.
type childReport struct {
	// Cgroup maps the controllers field of /proc/self/cgroup ("pids",
	// "name=systemd", "" for cgroup2) to the path.
	Cgroup map[string]string `json:"cgroup"`
	// Fds maps every open fd (when the Go code started) to its target.
	Fds     map[int]string `json:"fds"`
	Mnt     string         `json:"mnt"`
	Marker  bool           `json:"marker"`
	EnvLeft []string       `json:"envLeft"` // envVar, cgroupEnvVar if still set
}

// childMain is the test binary run as a child: it reports (childReport) on
// stdout where the constructor put it.
func childMain(marker string) int {
	r := childReport{Fds: map[int]string{}}
	// First, before anything else opens files.
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		for _, e := range ents {
			fd, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil {
				r.Fds[fd] = target
			}
		}
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	r.Cgroup = parseProcCgroup(string(b))
	r.Mnt, _ = os.Readlink("/proc/self/ns/mnt")
	if marker != "" {
		_, err := os.Stat(marker)
		r.Marker = err == nil
	}
	for _, v := range []string{envVar, cgroupEnvVar} {
		if _, ok := os.LookupEnv(v); ok {
			r.EnvLeft = append(r.EnvLeft, v)
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		return 2
	}
	return 0
}

// parseProcCgroup maps the controllers field of a /proc/<pid>/cgroup to the
// path.
func parseProcCgroup(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if f := strings.SplitN(l, ":", 3); len(f) == 3 {
			m[f[1]] = f[2]
		}
	}
	return m
}

// runSelf runs the test binary as a child (childMain) and decodes its report;
// it fails the test unless the child exited 0 with nothing on fd 3.
func runSelf(t *testing.T, marker string, env []string, files []*os.File) childReport {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	res := runWith(t, exe, runOpts{env: append([]string{childEnv + "=" + marker}, env...), files: files})
	if res.code != 0 || res.sync != "" {
		t.Fatalf("child: exit %d, fd 3 %q, stderr %q", res.code, res.sync, res.stderr)
	}
	var r childReport
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("child output %q: %v", res.stdout, err)
	}
	return r
}

// v1Hierarchy is a cgroup v1 hierarchy mounted whole under /sys/fs/cgroup.
type v1Hierarchy struct {
	mnt  string // "/sys/fs/cgroup/pids"
	name string // its controllers field in /proc/<pid>/cgroup: "pids", "cpu,cpuacct", "name=systemd"
}

func (h v1Hierarchy) has(ctrl string) bool {
	for _, c := range strings.Split(h.name, ",") {
		if c == ctrl {
			return true
		}
	}
	return false
}

// requireV1 skips unless root with at least one cgroup v1 hierarchy to
// create cgroups in, and returns those hierarchies: the ones mounted whole
// under /sys/fs/cgroup in which the test process is in the root cgroup. The
// others (the machine's own cgroups, such as a memory cgroup the test runs
// in) are left alone.
func requireV1(t *testing.T) []v1Hierarchy {
	t.Helper()
	requireRoot(t)
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounts := map[string]map[string]bool{} // mount point -> super options
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[len(f)-3] != "cgroup" || f[3] != "/" || !strings.HasPrefix(f[4], "/sys/fs/cgroup/") {
			continue
		}
		opts := map[string]bool{}
		for _, o := range strings.Split(f[len(f)-1], ",") {
			opts[o] = true
		}
		mounts[f[4]] = opts
	}
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var hs []v1Hierarchy
	for name, path := range parseProcCgroup(string(self)) {
		if name == "" || path != "/" {
			continue
		}
		for mnt, opts := range mounts {
			all := true
			for _, c := range strings.Split(name, ",") {
				all = all && opts[c]
			}
			if all {
				hs = append(hs, v1Hierarchy{mnt: mnt, name: name})
				break
			}
		}
	}
	if len(hs) == 0 {
		t.Skip("no cgroup v1 hierarchy mounted under /sys/fs/cgroup in which this process is in the root cgroup")
	}
	sort.Slice(hs, func(i, j int) bool { return hs[i].name < hs[j].name })
	return hs
}

// findHierarchy returns the hierarchy with controller ctrl; skips without.
func findHierarchy(t *testing.T, hs []v1Hierarchy, ctrl string) v1Hierarchy {
	t.Helper()
	for _, h := range hs {
		if h.has(ctrl) {
			return h
		}
	}
	t.Skipf("no cgroup v1 %s hierarchy to create a cgroup in", ctrl)
	return v1Hierarchy{}
}

// mkCgroup creates a fresh cgroup in h, removed when the test ends (after
// the children runWith ran, which are reaped by then). With usable, a cpuset
// cgroup gets its parent's cpus and mems (without them a task cannot join:
// ENOSPC).
func mkCgroup(t *testing.T, h v1Hierarchy, usable bool) string {
	t.Helper()
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(h.mnt, fmt.Sprintf("husk-nsenter-test-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:])))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("create cgroup: %v", err)
	}
	t.Cleanup(func() {
		var err error
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if err = syscall.Rmdir(dir); err == nil || errors.Is(err, os.ErrNotExist) || time.Now().After(deadline) {
				break
			}
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cleanup: rmdir %s: %v", dir, err)
		}
	})
	if usable && h.has("cpuset") {
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			b, err := os.ReadFile(filepath.Join(h.mnt, f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), b, 0); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
	}
	return dir
}

// openFile opens path, closed when the test ends.
func openFile(t *testing.T, path string, flag int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, flag|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// TestCgroupJoin: with _HUSK_CGROUP_FDS the child is in the cgroups whose
// tasks files it got (and only there changed) when Go starts, the fds are
// closed and the variable is gone.
func TestCgroupJoin(t *testing.T) {
	hs := requireV1(t)
	own := ownCgroups(t)
	var every []string
	for _, h := range hs {
		every = append(every, strings.Split(h.name, ",")[0])
	}
	cases := []struct {
		name    string
		ctrls   []string // one controller of each hierarchy to join
		fillers int      // other files before the tasks files (tasks not from fd 4)
		reverse bool     // list the fds in reverse order
	}{
		{name: "pids", ctrls: []string{"pids"}},
		{name: "pids and freezer", ctrls: []string{"pids", "freezer"}},
		{name: "reversed after other fds", ctrls: []string{"pids", "freezer"}, fillers: 2, reverse: true},
		{name: "cpuset", ctrls: []string{"cpuset"}},
		{name: "every v1 hierarchy", ctrls: every},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var files []*os.File
			for i := 0; i < tc.fillers; i++ {
				files = append(files, openFile(t, "/dev/null", os.O_RDONLY))
			}
			want := map[string]string{}
			for k, v := range own {
				want[k] = v
			}
			var fds []string
			tasks := map[string]bool{}
			for _, c := range tc.ctrls {
				h := findHierarchy(t, hs, c)
				dir := mkCgroup(t, h, true)
				files = append(files, openFile(t, filepath.Join(dir, "tasks"), os.O_WRONLY))
				fds = append(fds, strconv.Itoa(3+len(files)))
				want[h.name] = "/" + filepath.Base(dir)
				tasks[filepath.Join(dir, "tasks")] = true
			}
			if tc.reverse {
				slices.Reverse(fds)
			}
			got := runSelf(t, "", []string{cgroupEnvVar + "=" + strings.Join(fds, ",")}, files)
			if !maps.Equal(got.Cgroup, want) {
				t.Errorf("/proc/self/cgroup of the child:\n got  %v\n want %v", got.Cgroup, want)
			}
			for fd, target := range got.Fds {
				if tasks[target] {
					t.Errorf("fd %d (%s) still open when Go started", fd, target)
				}
			}
			if len(got.EnvLeft) != 0 {
				t.Errorf("left in the environment: %v", got.EnvLeft)
			}
		})
	}
}

// TestCgroupJoinHelpers: the helper binaries (dynamic and static) join too:
// the CPU time of their whole run is charged to a fresh cpuacct cgroup.
func TestCgroupJoinHelpers(t *testing.T) {
	hs := requireV1(t)
	h := findHierarchy(t, hs, "cpuacct")
	for flavour, bin := range buildHelpers(t) {
		t.Run(flavour, func(t *testing.T) {
			dir := mkCgroup(t, h, true)
			f := openFile(t, filepath.Join(dir, "tasks"), os.O_WRONLY)
			res := runWith(t, bin, runOpts{env: []string{cgroupEnvVar + "=4"}, files: []*os.File{f}})
			if res.code != 0 || res.sync != "" {
				t.Fatalf("exit %d, fd 3 %q, stderr %q", res.code, res.sync, res.stderr)
			}
			var got map[string]any // Go ran: the helper's report
			if err := json.Unmarshal([]byte(res.stdout), &got); err != nil {
				t.Fatalf("helper output %q: %v", res.stdout, err)
			}
			if usage := readInt(t, filepath.Join(dir, "cpuacct.usage")); usage <= 0 {
				t.Errorf("cpuacct.usage of %s = %d: the helper never ran there", dir, usage)
			}
		})
	}
}

// cgroupErrCase is a _HUSK_CGROUP_FDS that must fail: setup returns the
// value and the files for fd 4 on.
type cgroupErrCase struct {
	name  string
	setup func(t *testing.T) (string, []*os.File)
	errno syscall.Errno
	msg   func(files []*os.File) []string // substrings of the msg
}

func runCgroupErrCases(t *testing.T, cases []cgroupErrCase, extraEnv []string) {
	t.Helper()
	for flavour, bin := range buildHelpers(t) {
		for _, tc := range cases {
			t.Run(flavour+"/"+tc.name, func(t *testing.T) {
				value, files := tc.setup(t)
				res := runWith(t, bin, runOpts{env: append([]string{cgroupEnvVar + "=" + value}, extraEnv...), files: files})
				if res.code != 1 || res.stdout != "" {
					t.Fatalf("exit %d, stdout %q (want 1 and nothing: Go must never run)", res.code, res.stdout)
				}
				if res.stderr != "" {
					t.Errorf("stderr %q, want nothing (the line belongs on fd 3)", res.stderr)
				}
				checkErrorLine(t, res.sync, tc.errno, tc.msg(files))
			})
		}
	}
}

func fixed(s ...string) func([]*os.File) []string { return func([]*os.File) []string { return s } }

func only(value string) func(*testing.T) (string, []*os.File) {
	return func(*testing.T) (string, []*os.File) { return value, nil }
}

// devNull is fd 4: a file a "0" can be written to.
func devNull(value string) func(*testing.T) (string, []*os.File) {
	return func(t *testing.T) (string, []*os.File) {
		return value, []*os.File{openFile(t, "/dev/null", os.O_WRONLY)}
	}
}

// TestCgroupFdsMalformed: a malformed _HUSK_CGROUP_FDS fails closed.
func TestCgroupFdsMalformed(t *testing.T) {
	requireRoot(t)
	const want = "want a file descriptor number"
	runCgroupErrCases(t, []cgroupErrCase{
		{"empty", only(""), syscall.EINVAL, fixed("empty cgroup fd list")},
		{"not a number", only("abc"), syscall.EINVAL, fixed(`parse "abc"`, want)},
		{"stderr", only("2"), syscall.EINVAL, fixed(`parse "2"`, want)},
		{"zero", only("0"), syscall.EINVAL, fixed(`parse "0"`)},
		{"negative", only("-4"), syscall.EINVAL, fixed(`parse "-4"`)},
		{"above 1023", only("1024"), syscall.EINVAL, fixed(`parse "1024"`, want)},
		{"trailing garbage", devNull("4x"), syscall.EINVAL, fixed(`parse "4x"`)},
		{"out of range", only("99999999999999999999"), syscall.EINVAL, fixed(`parse "99999999999999999999"`)},
		{"leading comma", devNull(",4"), syscall.EINVAL, fixed(`parse ""`)},
		{"trailing comma", devNull("4,"), syscall.EINVAL, fixed(`parse ""`)},
		{"empty entry", devNull("4,,5"), syscall.EINVAL, fixed(`parse ""`)},
		// The sync fd itself: writing "0" to it would corrupt (and closing
		// it lose) the channel the error must be reported on.
		{"sync fd", only("3,"), syscall.EINVAL, fixed(`parse "3"`)},
		{"too long", devNull(strings.Repeat("4,", 127) + "44"), syscall.E2BIG, fixed("cgroup fd list too long")},
	}, nil)
}

// TestCgroupJoinRejected: a write the kernel refuses is reported with the
// file's path (or the entry when the fd is not open) and the errno.
func TestCgroupJoinRejected(t *testing.T) {
	hs := requireV1(t)
	tasksOf := func(ctrl string, usable bool, flag int) func(*testing.T) (string, []*os.File) {
		return func(t *testing.T) (string, []*os.File) {
			dir := mkCgroup(t, findHierarchy(t, hs, ctrl), usable)
			return "4", []*os.File{openFile(t, filepath.Join(dir, "tasks"), flag)}
		}
	}
	name := func(i int) func([]*os.File) []string {
		return func(files []*os.File) []string { return []string{`join cgroup "` + files[i].Name() + `"`} }
	}
	runCgroupErrCases(t, []cgroupErrCase{
		{"cpuset without cpus", tasksOf("cpuset", false, os.O_WRONLY), syscall.ENOSPC,
			func(f []*os.File) []string { return append(name(0)(f), "No space left on device") }},
		{"/dev/full", func(t *testing.T) (string, []*os.File) {
			return "4", []*os.File{openFile(t, "/dev/full", os.O_WRONLY)}
		}, syscall.ENOSPC, fixed(`join cgroup "/dev/full": No space left on device`)},
		{"read-only fd", tasksOf("pids", true, os.O_RDONLY), syscall.EBADF,
			func(f []*os.File) []string { return append(name(0)(f), "Bad file descriptor") }},
		{"fd not open", only("9"), syscall.EBADF, fixed(`join cgroup "9": Bad file descriptor`)},
		{"removed cgroup", func(t *testing.T) (string, []*os.File) {
			dir := mkCgroup(t, findHierarchy(t, hs, "pids"), true)
			f := openFile(t, filepath.Join(dir, "tasks"), os.O_WRONLY)
			if err := syscall.Rmdir(dir); err != nil {
				t.Fatal(err)
			}
			return "4", []*os.File{f}
		}, syscall.ENODEV, name(0)},
		{"second entry fails", func(t *testing.T) (string, []*os.File) {
			_, good := tasksOf("pids", true, os.O_WRONLY)(t)
			return "4,5", append(good, openFile(t, "/dev/full", os.O_WRONLY))
		}, syscall.ENOSPC, fixed(`join cgroup "/dev/full"`)},
		{"same fd twice (closed after use)", devNull("4,4"), syscall.EBADF, fixed(`join cgroup "4": Bad file descriptor`)},
	}, nil)
}

// TestCgroupJoinWithNsenter: both variables together: the cgroups are
// joined first (with the host's paths), then the namespaces.
func TestCgroupJoinWithNsenter(t *testing.T) {
	hs := requireV1(t)
	mntH := startHolder(t, false)
	userH := startHolder(t, true)
	pids := findHierarchy(t, hs, "pids")
	own := ownCgroups(t)
	for _, tc := range []struct {
		name    string
		nsenter string
		h       holder
	}{
		{"mnt", "mnt:" + mntH.ns("mnt"), mntH},
		{"user then mnt", "user:" + userH.ns("user") + ",mnt:" + userH.ns("mnt"), userH},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mkCgroup(t, pids, true)
			f := openFile(t, filepath.Join(dir, "tasks"), os.O_WRONLY)
			got := runSelf(t, tc.h.dir+"/marker", []string{envVar + "=" + tc.nsenter, cgroupEnvVar + "=4"}, []*os.File{f})
			want := map[string]string{}
			for k, v := range own {
				want[k] = v
			}
			want[pids.name] = "/" + filepath.Base(dir)
			if !maps.Equal(got.Cgroup, want) {
				t.Errorf("/proc/self/cgroup of the child:\n got  %v\n want %v", got.Cgroup, want)
			}
			if wantMnt := link(t, tc.h.ns("mnt")); got.Mnt != wantMnt || !got.Marker {
				t.Errorf("mnt %s (marker %v), want %s with the marker", got.Mnt, got.Marker, wantMnt)
			}
			if len(got.EnvLeft) != 0 {
				t.Errorf("left in the environment: %v", got.EnvLeft)
			}
		})
	}
	// Failures: the cgroup step comes first, so its error is the one.
	t.Run("errors", func(t *testing.T) {
		runCgroupErrCases(t, []cgroupErrCase{
			{"both malformed", only("abc"), syscall.EINVAL, fixed(`parse "abc"`)},
		}, []string{envVar + "=bogus"})
		runCgroupErrCases(t, []cgroupErrCase{
			{"cgroup rejected, namespaces fine", func(t *testing.T) (string, []*os.File) {
				return "4", []*os.File{openFile(t, "/dev/full", os.O_WRONLY)}
			}, syscall.ENOSPC, fixed(`join cgroup "/dev/full"`)},
		}, []string{envVar + "=mnt:" + mntH.ns("mnt")})
		runCgroupErrCases(t, []cgroupErrCase{
			{"cgroup fine, namespaces malformed", func(t *testing.T) (string, []*os.File) {
				dir := mkCgroup(t, pids, true)
				return "4", []*os.File{openFile(t, filepath.Join(dir, "tasks"), os.O_WRONLY)}
			}, syscall.EINVAL, fixed(`parse "bogus"`)},
		}, []string{envVar + "=bogus"})
	})
}

// ownCgroups is /proc/self/cgroup of the test process (parseProcCgroup).
func ownCgroups(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	return parseProcCgroup(string(b))
}

package nsenter_test

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/husk-runtime/husk/process/nsenter"
)

const envVar = "_HUSK_NSENTER"

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
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envVar+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	if value != nil {
		cmd.Env = append(cmd.Env, envVar+"="+*value)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var r *os.File
	if !noSync {
		var w *os.File
		var err error
		if r, w, err = os.Pipe(); err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cmd.ExtraFiles = []*os.File{w}
		defer w.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var sync []byte
	if r != nil {
		cmd.ExtraFiles[0].Close()
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
				if m.Type != "error" || m.Step != "nsenter" || m.Errno != int(tc.errno) {
					t.Errorf("got %+v, want type error, step nsenter, errno %d", m, tc.errno)
				}
				for _, s := range tc.msg {
					if !strings.Contains(m.Msg, s) {
						t.Errorf("msg %q does not contain %q", m.Msg, s)
					}
				}
			})
		}
	}
}

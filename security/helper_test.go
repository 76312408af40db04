//go:build linux && amd64

package security

// Child-process helpers: kernel tests re-exec the test binary with
// HUSK_TEST_HELPER set; TestMain then runs the helper on a locked OS thread
// instead of the tests, so that seccomp filters, credentials and
// capabilities only ever change in the throw-away child.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const helperEnv = "HUSK_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runtime.LockOSThread() // never unlocked, like the container init
		if err := runHelperMode(mode); err != nil {
			fmt.Fprintf(os.Stderr, "helper %s: %v\n", mode, err)
			os.Exit(3)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// probe is one raw syscall made by the child on the filtered thread. Strs
// replaces arguments by pointers to NUL-terminated strings.
type probe struct {
	Name  string
	Nr    uintptr
	Args  [6]uint64
	Strs  map[int]string `json:",omitempty"`
	Errno unix.Errno     // expected; 0 = success
}

type probeResult struct {
	R1    uint64
	Errno unix.Errno
}

func envJSON(name string, v any) error {
	return json.Unmarshal([]byte(os.Getenv(name)), v)
}

func runHelperMode(mode string) error {
	switch mode {
	case "seccomp":
		return helperSeccomp()
	case "notify":
		return helperNotify()
	case "caps":
		return helperCaps()
	case "rlimits":
		return helperRlimits()
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

func helperSeccomp() error {
	var s specs.LinuxSeccomp
	var probes []probe
	if err := envJSON("HUSK_TEST_SPEC", &s); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	if err := envJSON("HUSK_TEST_PROBES", &probes); err != nil {
		return fmt.Errorf("probes: %w", err)
	}
	f, _, err := CompileSeccomp(&s)
	if err != nil {
		return err
	}
	// Everything the probes need is allocated before the filter is on.
	results := make([]probeResult, len(probes))
	ptrs := make([]map[int]*byte, len(probes))
	for i, p := range probes {
		ptrs[i] = map[int]*byte{}
		for idx, str := range p.Strs {
			b, err := unix.BytePtrFromString(str)
			if err != nil {
				return err
			}
			ptrs[i][idx] = b
		}
	}
	if err := SetNoNewPrivs(); err != nil {
		return err
	}
	if err := f.Load(); err != nil {
		return err
	}
	unix.Write(1, []byte("loaded\n"))
	for i, p := range probes {
		a := p.Args
		for idx, b := range ptrs[i] {
			a[idx] = uint64(uintptr(unsafe.Pointer(b)))
		}
		r1, _, errno := unix.RawSyscall6(p.Nr, uintptr(a[0]), uintptr(a[1]), uintptr(a[2]), uintptr(a[3]), uintptr(a[4]), uintptr(a[5]))
		results[i] = probeResult{uint64(r1), errno}
	}
	runtime.KeepAlive(ptrs)
	out, err := json.Marshal(results)
	if err != nil {
		return err
	}
	unix.Write(1, append(out, '\n'))
	return nil
}

// struct seccomp_notif and seccomp_notif_resp.
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Data  struct {
		Nr   int32
		Arch uint32
		IP   uint64
		Args [6]uint64
	}
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

func helperNotify() error {
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}}}
	if v := os.Getenv("HUSK_TEST_FLAGS"); v != "" {
		if err := json.Unmarshal([]byte(v), &s.Flags); err != nil {
			return err
		}
	}
	f, _, err := CompileSeccomp(s)
	if err != nil {
		return err
	}
	if err := f.Load(); err == nil {
		return fmt.Errorf("Load of a NOTIFY filter succeeded, want an error")
	}
	if err := SetNoNewPrivs(); err != nil {
		return err
	}
	fd, err := f.LoadWithListener()
	if err != nil {
		return err
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil || !strings.Contains(link, "seccomp notify") {
		return fmt.Errorf("listener fd %d is %q (%v), want a seccomp notify fd", fd, link, err)
	}
	done := make(chan error, 1)
	go func() { // runs on another, unfiltered thread
		var n seccompNotif
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_RECV, uintptr(unsafe.Pointer(&n))); e != 0 {
			done <- fmt.Errorf("NOTIF_RECV: %w", e)
			return
		}
		if n.Data.Nr != unix.SYS_GETPPID {
			done <- fmt.Errorf("notified syscall %d, want getppid", n.Data.Nr)
			return
		}
		resp := seccompNotifResp{ID: n.ID, Error: -int32(unix.EXDEV)}
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SECCOMP_IOCTL_NOTIF_SEND, uintptr(unsafe.Pointer(&resp))); e != 0 {
			done <- fmt.Errorf("NOTIF_SEND: %w", e)
			return
		}
		done <- nil
	}()
	// Syscall, not RawSyscall: the notified call blocks until the listener
	// goroutine answers, and that goroutine needs a P to run on. A raw
	// syscall keeps this thread's P, so with GOMAXPROCS=1 (a 1-CPU VM) the
	// listener never runs and both wait forever.
	_, _, errno := unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
	if err := <-done; err != nil {
		return err
	}
	if errno != unix.EXDEV {
		return fmt.Errorf("getppid under NOTIFY returned errno %v, want EXDEV from the listener", errno)
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0); errno != 0 {
		return fmt.Errorf("getpid: %v", errno)
	}
	fmt.Println("notify ok")
	return nil
}

type capsResult struct {
	Warnings []string
	Err      string
	Status   string
}

func helperCaps() error {
	var user specs.User
	var caps *specs.LinuxCapabilities
	if err := envJSON("HUSK_TEST_USER", &user); err != nil {
		return fmt.Errorf("user: %w", err)
	}
	if err := envJSON("HUSK_TEST_CAPS", &caps); err != nil {
		return fmt.Errorf("caps: %w", err)
	}
	if v := os.Getenv("HUSK_TEST_SECCOMP_FIRST"); v != "" {
		// runc's order without noNewPrivileges: seccomp before the caps
		// drop (loading needs CAP_SYS_ADMIN).
		var s specs.LinuxSeccomp
		if err := json.Unmarshal([]byte(v), &s); err != nil {
			return err
		}
		f, _, err := CompileSeccomp(&s)
		if err != nil {
			return err
		}
		if err := f.Load(); err != nil {
			return err
		}
	}
	warnings, err := ApplyUserAndCapabilities(user, caps)
	res := capsResult{Warnings: warnings}
	if err != nil {
		res.Err = err.Error()
	}
	if os.Getenv("HUSK_TEST_EXEC") != "" && err == nil {
		// execve from this very thread: the process image the user gets.
		return syscall.Exec("/bin/cat", []string{"cat", "/proc/self/status"}, nil)
	}
	st, rerr := os.ReadFile("/proc/thread-self/status")
	if rerr != nil {
		return rerr
	}
	res.Status = string(st)
	return json.NewEncoder(os.Stdout).Encode(res)
}

type rlimitResult struct {
	Warnings    []string
	Err         string
	Soft, Hard  uint64
	SysResource bool
}

func helperRlimits() error {
	var rl [][]specs.POSIXRlimit
	if err := envJSON("HUSK_TEST_RLIMITS", &rl); err != nil {
		return err
	}
	var res rlimitResult
	for _, step := range rl {
		w, err := SetRlimits(step)
		res.Warnings = append(res.Warnings, w...)
		if err != nil {
			res.Err = err.Error()
			break
		}
	}
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &cur); err != nil {
		return err
	}
	res.Soft, res.Hard = cur.Cur, cur.Max
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return err
	}
	res.SysResource = data[0].Effective&(1<<unix.CAP_SYS_RESOURCE) != 0
	return json.NewEncoder(os.Stdout).Encode(res)
}

// runHelper re-executes the test binary in helper mode.
func runHelper(t *testing.T, mode string, env map[string]any) (stdout, stderr string, state *os.ProcessState) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	for k, v := range env {
		s, ok := v.(string)
		if !ok {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			s = string(b)
		}
		cmd.Env = append(cmd.Env, k+"="+s)
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("helper %s timed out; stderr: %s", mode, errb.String())
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("helper %s: %v", mode, err)
		}
	}
	return out.String(), errb.String(), cmd.ProcessState
}

// statusField returns a field of a /proc/<pid>/status text.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && k == name {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

package process

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	// The C constructor that joins an exec's mount and user namespaces
	// before the Go runtime starts.
	_ "github.com/husk-runtime/husk/process/nsenter"
	"github.com/husk-runtime/husk/rootfs"
	"github.com/husk-runtime/husk/security"
)

// initEnv marks a process started as a container init.
const initEnv = "_HUSK_INIT"

// nsenterEnv passes the mount and user namespaces an exec joins to the C
// constructor of process/nsenter, which runs before the Go runtime.
const nsenterEnv = "_HUSK_NSENTER"

// cgroupFdsEnv lists the cgroup v1 tasks files (fd numbers) the C
// constructor of process/nsenter writes "0" to (cgroups.Placement).
const cgroupFdsEnv = "_HUSK_CGROUP_FDS"

// syncFd is where the init finds its end of the sync socket.
const syncFd = 3

// IsInit reports whether this process was started as a container init. main
// checks it before anything else.
func IsInit() bool { return os.Getenv(initEnv) != "" }

// InitMain is the container init: it builds the container from inside its
// namespaces, in runc's order, waits for Start and execs the user's process.
// It never returns.
func InitMain() {
	// Per-thread kernel state (namespaces joined later, capabilities, no_new_privs,
	// seccomp) must all land on the thread that finally calls execve.
	runtime.LockOSThread()
	runtime.GOMAXPROCS(1)
	sp := newSyncPipe(os.NewFile(syncFd, "sync"))
	step, err := runInit(sp)
	if err != nil && !errors.Is(err, io.EOF) {
		sp.send(errorMsg(step, err))
	}
	os.Exit(1)
}

// runInit returns the step that failed and why.
func runInit(sp *syncPipe) (string, error) {
	m, err := sp.recv()
	if err != nil {
		return "read config", err
	}
	if m.Type != msgConfig || m.Config == nil || m.Config.Spec == nil {
		return "read config", fmt.Errorf("expected a config message, got %q", m.Type)
	}
	cfg := m.Config
	spec := cfg.Spec
	proc := spec.Process
	warn := func(msg string) { sp.send(syncMsg{Type: msgWarning, Msg: msg}) }

	// The shim sends the profile compiled (compileForInit); compiling here
	// is only a fallback.
	filter := cfg.Seccomp
	if filter == nil && spec.Linux != nil && spec.Linux.Seccomp != nil {
		f, warnings, err := security.CompileSeccomp(spec.Linux.Seccomp)
		if err != nil {
			return "seccomp", err
		}
		for _, w := range warnings {
			warn("seccomp: " + w)
		}
		filter = f
	}

	if !cfg.Exec {
		if cfg.CgroupNS {
			if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
				return "cgroup namespace", fmt.Errorf("unshare cgroup namespace: %w", err)
			}
		}
		if err := rootfs.Prepare(spec, cfg.Rootfs); err != nil {
			return "rootfs", err
		}
		if proc.Terminal {
			if err := setupConsole(proc.ConsoleSize, true); err != nil {
				return "console", err
			}
		}
		if spec.Hostname != "" {
			if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
				return "hostname", fmt.Errorf("sethostname %q: %w", spec.Hostname, err)
			}
		}
		if spec.Domainname != "" {
			if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
				return "domainname", fmt.Errorf("setdomainname %q: %w", spec.Domainname, err)
			}
		}
		if err := applySysctls(spec.Linux.Sysctl); err != nil {
			return "sysctl", err
		}
		if err := rootfs.Finalize(spec); err != nil {
			return "rootfs finalize", err
		}
	} else if proc.Terminal {
		if err := setupConsole(proc.ConsoleSize, false); err != nil {
			return "console", err
		}
	}
	if proc.OOMScoreAdj != nil {
		if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*proc.OOMScoreAdj)), 0); err != nil {
			if !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
				return "oom_score_adj", fmt.Errorf("set oom_score_adj: %w", err)
			}
			warn(fmt.Sprintf("cannot set oom_score_adj to %d (the host lacks CAP_SYS_RESOURCE?): %v", *proc.OOMScoreAdj, err))
		}
	}
	warnings, err := security.SetRlimits(proc.Rlimits)
	if err != nil {
		return "rlimits", err
	}
	for _, w := range warnings {
		warn(w)
	}
	if err := unix.Chdir(proc.Cwd); err != nil {
		return "cwd", fmt.Errorf("chdir to cwd %q: %w", proc.Cwd, err)
	}
	// CVE-2024-21626: a cwd reached through a magic link (/proc/self/fd/N
	// of an fd that points outside the container) is not below the root,
	// and getcwd(2) says so.
	if wd, err := unix.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return "cwd", fmt.Errorf("cwd %q is outside the container's root filesystem (possible breakout attempt): getcwd: %v", proc.Cwd, err)
	}
	env := withHome(proc.Env, proc.User.UID)
	path, err := lookPath(proc.Args[0], env)
	if err != nil {
		return "exec", err
	}
	// AppArmor profile and SELinux label take effect at execve; the shim
	// checked that the host runs the modules asked for.
	if err := security.ApplyLSM(proc.ApparmorProfile, proc.SelinuxLabel); err != nil {
		return "lsm", err
	}
	if filter != nil && !proc.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
		// while we still have it, as runc does.
		if err := loadSeccomp(filter, cfg.NotifyFd); err != nil {
			return "seccomp", err
		}
	}
	capWarnings, err := security.ApplyUserAndCapabilities(proc.User, proc.Capabilities)
	if err != nil {
		return "user and capabilities", err
	}
	for _, w := range capWarnings {
		warn(w)
	}
	if proc.NoNewPrivileges {
		if err := security.SetNoNewPrivs(); err != nil {
			return "no_new_privs", err
		}
	}
	// CVE-2024-21626: no host fd may reach the user's process.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return "close fds", fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	if err := sp.send(syncMsg{Type: msgReady}); err != nil {
		return "ready", err
	}
	m, err = sp.recv()
	if err != nil {
		return "wait for start", err
	}
	if m.Type != msgStart {
		return "wait for start", fmt.Errorf("expected start, got %q", m.Type)
	}
	if filter != nil && proc.NoNewPrivileges {
		if err := loadSeccomp(filter, cfg.NotifyFd); err != nil {
			return "seccomp", err
		}
	}
	err = unix.Exec(path, proc.Args, env)
	return "exec", fmt.Errorf("exec %q: %w", path, err)
}

func applySysctls(sysctls map[string]string) error {
	for k, v := range sysctls {
		if strings.Contains(k, "..") || strings.HasPrefix(k, "/") {
			return fmt.Errorf("invalid sysctl name %q", k)
		}
		path := filepath.Join("/proc/sys", strings.ReplaceAll(k, ".", "/"))
		if err := os.WriteFile(path, []byte(v), 0); err != nil {
			return fmt.Errorf("set sysctl %s=%s: %w", k, v, err)
		}
	}
	return nil
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// lookPath resolves the process's executable inside the container, with the
// process's own PATH, so a missing binary fails Create as it does with runc.
func lookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", fmt.Errorf("%q: %w", file, err)
		}
		return file, nil
	}
	pathEnv := defaultPath
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in $PATH", file)
}

func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return unix.EISDIR
	}
	if fi.Mode()&0o111 == 0 {
		return unix.EACCES
	}
	return nil
}

// withHome adds HOME from the container's /etc/passwd when the spec has none,
// as runc does.
func withHome(env []string, uid uint32) []string {
	for _, e := range env {
		if strings.HasPrefix(e, "HOME=") {
			return env
		}
	}
	home := "/"
	if f, err := os.Open("/etc/passwd"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Split(sc.Text(), ":")
			if len(fields) >= 6 && fields[2] == strconv.FormatUint(uint64(uid), 10) {
				home = fields[5]
				break
			}
		}
		f.Close()
	}
	return append(append([]string(nil), env...), "HOME="+home)
}

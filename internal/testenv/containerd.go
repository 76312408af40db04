//go:build linux

package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// Config is the part of a private containerd's config.toml that every user
// of this package writes: its own root, state, sockets, shim socket dir and
// opt dir, and debug logging.
type Config struct {
	Root         string
	State        string
	Address      string // the gRPC socket
	TTRPCAddress string
	// SocketDir is the shim manager's socket_dir (at most 42 bytes: the
	// shims' socket paths must fit sun_path).
	SocketDir string
	OptDir    string
	// DisabledPlugins are the plugin IDs containerd must not load.
	DisabledPlugins []string
	// Extra is appended as is (TOML, usually starting with an empty line).
	Extra string
}

// TOML renders c as a version 3 containerd config.
func (c Config) TOML() string {
	quoted := make([]string, len(c.DisabledPlugins))
	for i, p := range c.DisabledPlugins {
		quoted[i] = fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = [%s]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  level = "debug"

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = %q

[plugins.'io.containerd.internal.v1.opt']
  path = %q
`, c.Root, c.State, strings.Join(quoted, ", "), c.Address, c.TTRPCAddress, c.SocketDir, c.OptDir) + c.Extra
}

// Write writes c as TOML to path (mode 0644).
func (c Config) Write(path string) error {
	if err := os.WriteFile(path, []byte(c.TOML()), 0o644); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	return nil
}

// ContainerdEnv is this process's environment for containerd, with dirs put
// in front of PATH (so the runtime names it resolves find the caller's
// shims first) and CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1.
func ContainerdEnv(dirs ...string) []string {
	return containerdEnv(os.Environ(), os.Getenv("PATH"), dirs)
}

func containerdEnv(environ []string, path string, dirs []string) []string {
	var env []string
	for _, kv := range environ {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"PATH="+strings.Join(append(dirs[:len(dirs):len(dirs)], path), ":"),
		"CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1",
	)
}

// StartContainerd starts `bin --config config` with env, its stdout and
// stderr going to logPath (created or truncated). containerd gets a process
// group of its own and SIGKILL when the thread that started it exits
// (Pdeathsig): call it from a locked thread that lives as long as the
// caller's process. exited is closed once containerd has exited, after
// onExit (if not nil) got what Wait returned.
func StartContainerd(bin, config, logPath string, env []string, onExit func(error)) (cmd *exec.Cmd, exited <-chan struct{}, err error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, nil, fmt.Errorf("containerd log: %w", err)
	}
	defer logf.Close()
	cmd = exec.Command(bin, "--config", config)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start containerd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		if onExit != nil {
			onExit(err)
		}
		close(done)
	}()
	return cmd, done, nil
}

// ErrExited is returned by DialContainerd when containerd exits before it
// answers.
var ErrExited = errors.New("containerd exited during startup")

// DialContainerd waits up to timeout, looking every poll, until the
// containerd listening on address answers a Version call, and returns a
// client for it whose default namespace is namespace. It gives up with
// ErrExited as soon as exited is closed.
func DialContainerd(address, namespace string, exited <-chan struct{}, timeout, poll time.Duration) (*containerd.Client, error) {
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-exited:
			return nil, ErrExited
		default:
		}
		if _, err := os.Stat(address); err == nil {
			c, err := containerd.New(address, containerd.WithDefaultNamespace(namespace), containerd.WithTimeout(2*time.Second))
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err = c.Version(ctx)
				cancel()
				if err == nil {
					return c, nil
				}
				c.Close()
			}
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("containerd did not answer on %s within %v", address, timeout)
		}
		time.Sleep(poll)
	}
}

// StopContainerd stops the containerd started as cmd unless it has exited
// already (exited is closed): SIGTERM, then SIGKILL if it is still running
// after grace. It returns once containerd has exited. logf hears about the
// SIGKILL.
func StopContainerd(cmd *exec.Cmd, exited <-chan struct{}, grace time.Duration, logf Logf) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(grace):
		logf.printf("containerd ignored SIGTERM, killing it")
		_ = cmd.Process.Kill()
		<-exited
	}
}

// KillTask SIGKILLs all processes of task, unless it is stopped or only
// created, and waits up to wait for it to exit. It is for teardown: it
// ignores errors, the Delete that follows it reports what matters.
func KillTask(ctx context.Context, task containerd.Task, wait time.Duration) {
	st, err := task.Status(ctx)
	if err != nil || st.Status == containerd.Stopped || st.Status == containerd.Created {
		return
	}
	ch, err := task.Wait(ctx)
	if err != nil {
		return
	}
	_ = task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll)
	select {
	case <-ch:
	case <-time.After(wait):
	}
}

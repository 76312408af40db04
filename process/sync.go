package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/security"
)

// The parent (shim) and the container init talk over one stream socket pair
// in small typed JSON messages. The init's end is close-on-exec, so a clean
// EOF after "start" means the user's process was exec'd.
const (
	msgConfig  = "config"  // parent -> init: what to build
	msgStart   = "start"   // parent -> init: exec the user's process now
	msgReady   = "ready"   // init -> parent: everything is set up, waiting for start
	msgWarning = "warning" // init -> parent: a host limit was hit, keep going
	msgError   = "error"   // init -> parent: step failed; the init exits
)

type syncMsg struct {
	Type   string      `json:"type"`
	Config *initConfig `json:"config,omitempty"`
	Step   string      `json:"step,omitempty"`
	Errno  int         `json:"errno,omitempty"`
	Msg    string      `json:"msg,omitempty"`
}

// initConfig is what the container init needs beyond its namespaces.
type initConfig struct {
	Spec   *specs.Spec `json:"spec"`
	Rootfs string      `json:"rootfs"`
	// CgroupNS asks the init to unshare its cgroup namespace once it sits in
	// its cgroup (the parent places it there before sending the config).
	CgroupNS bool `json:"cgroupNS,omitempty"`
	// Seccomp is linux.seccomp compiled by the shim (once per profile, see
	// security.CompileSeccompCached); the Spec sent with it has no seccomp
	// section, and the init only loads the program.
	Seccomp *security.Filter `json:"seccomp,omitempty"`
	// NotifyFd is where the process sends its seccomp listener fd (a
	// profile with SCMP_ACT_NOTIFY rules), 0 if none.
	NotifyFd int `json:"notifyFd,omitempty"`
	// Exec marks an exec process: the namespaces are the container's and the
	// rootfs is already in place, only the process is set up.
	Exec bool `json:"exec,omitempty"`
}

type syncPipe struct {
	f   *os.File
	enc *json.Encoder
	dec *json.Decoder
}

func newSyncPipe(f *os.File) *syncPipe {
	return &syncPipe{f: f, enc: json.NewEncoder(f), dec: json.NewDecoder(f)}
}

func (p *syncPipe) send(m syncMsg) error {
	if err := p.enc.Encode(m); err != nil {
		return fmt.Errorf("send %s message: %w", m.Type, err)
	}
	return nil
}

// recv returns io.EOF when the other end closed.
func (p *syncPipe) recv() (syncMsg, error) {
	var m syncMsg
	if err := p.dec.Decode(&m); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			return m, io.EOF
		}
		return m, fmt.Errorf("read sync message: %w", err)
	}
	return m, nil
}

func (p *syncPipe) Close() error { return p.f.Close() }

// initError is an error the container init reported, with its step.
type initError struct {
	Step  string
	Errno syscall.Errno
	Msg   string
}

func (e *initError) Error() string {
	return fmt.Sprintf("start container process: %s: %s", e.Step, e.Msg)
}

func (e *initError) Unwrap() error {
	if e.Errno != 0 {
		return e.Errno
	}
	return nil
}

func errorMsg(step string, err error) syncMsg {
	var errno syscall.Errno
	errors.As(err, &errno)
	return syncMsg{Type: msgError, Step: step, Errno: int(errno), Msg: err.Error()}
}

func socketPair() (parent, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	// The parent's end is non-blocking so that reads on it honour deadlines.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "sync-parent"), os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

// Package shim is husk's containerd shim: the manager that containerd's
// pkg/shim runs for the `start` and `delete` actions, and the ttrpc task
// service of the long-lived shim daemon.
package shim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/version"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/husk-runtime/husk/process"
)

// ShimVersion is the bootstrap version husk reports: task API v3, and one
// shim process per group of containers.
const ShimVersion = 3

// socketEnv tells the shim daemon the address it serves on, so it removes
// its socket when it exits (pkg/shim would derive the address from the
// first container's id, not from the group).
const socketEnv = "HUSK_SHIM_SOCKET"

// groupLabels name the annotation that puts containers into one shim, in
// order of precedence.
var groupLabels = []string{
	"io.containerd.husk.v2.group",
	"io.kubernetes.cri.sandbox-id",
}

type manager struct {
	name string
}

// NewManager returns husk's shim manager, for shim.RunShim.
func NewManager(name string) shim.Shim {
	return &manager{name: name}
}

func (m *manager) Name() string { return m.name }

// groupOf reads the bundle's config.json (in the working directory) for
// the annotation that names the container's group.
func groupOf(id string) (string, error) {
	data, err := os.ReadFile("config.json")
	if err != nil {
		return "", fmt.Errorf("read bundle config: %w", err)
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return "", fmt.Errorf("%w: config.json: %v", errdefs.ErrInvalidArgument, err)
	}
	for _, l := range groupLabels {
		if g := s.Annotations[l]; g != "" {
			return g, nil
		}
	}
	return id, nil
}

// Start is the `start` action: find the group's shim, or start one, and
// return its address. It must be quick: containerd waits for it.
func (m *manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	result := &bootapi.BootstrapResult{Version: ShimVersion, Protocol: "ttrpc"}
	id := params.GetInstanceID()
	group, err := groupOf(id)
	if err != nil {
		return nil, err
	}
	// Nothing in `start` may log: containerd parses its stdout and stderr
	// together as the bootstrap result. What the options ignore is logged
	// by the daemon's Create.
	opts, err := startOptions(params)
	if err != nil {
		return nil, err
	}
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	address, err := shim.CreateSocketAddress(ctx, socketDir, params.GetContainerdGrpcAddress(), group, false)
	if err != nil {
		return nil, fmt.Errorf("socket address: %w", err)
	}
	l, err := shim.NewSocket(address)
	if err != nil {
		if !shim.SocketEaddrinuse(err) {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
		if shim.CanConnect(address) {
			// The group's shim is already serving: reuse it.
			result.Address = address
			return result, nil
		}
		if err := shim.RemoveSocket(address); err != nil {
			return nil, fmt.Errorf("remove stale shim socket: %w", err)
		}
		if l, err = shim.NewSocket(address); err != nil {
			return nil, fmt.Errorf("create shim socket: %w", err)
		}
	}
	defer func() {
		if retErr != nil {
			l.Close()
			shim.RemoveSocket(address)
		}
	}()
	f, err := l.File()
	if err != nil {
		return nil, fmt.Errorf("shim socket file: %w", err)
	}
	defer f.Close()

	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", params.GetContainerdGrpcAddress()}
	if params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG || opts.Debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2", socketEnv+"="+address)
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shim daemon: %w", err)
	}
	defer func() {
		if retErr != nil {
			cmd.Process.Kill()
		}
	}()
	go cmd.Wait()
	// A cgroup.procs write, not the self-placement of container processes
	// (process/placement.go): the daemon could only report a failed join on
	// its stderr, which nobody reads, so a bad ShimCgroup would become a
	// "connection refused" at Create instead of this error.
	if err := opts.joinShimCgroup(cmd.Process.Pid); err != nil {
		return nil, err
	}
	// Lowering an oom_score_adj needs CAP_SYS_RESOURCE: if that fails the
	// shim runs anyway (and, see above, says nothing).
	_ = shim.AdjustOOMScore(cmd.Process.Pid)
	result.Address = address
	return result, nil
}

// Stop is the `delete` action: containerd runs it when the shim is gone (or
// never answered). It kills whatever is left of the container, removes its
// cgroup and rootfs mount, and reports how the init ended.
func (m *manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return shim.StopStatus{}, err
	}
	bundle := filepath.Join(filepath.Dir(cwd), id)
	e, err := process.ForceDelete(ctx, bundle)
	// A shim that was killed leaves its socket in the socket dir (it removes
	// it only when it shuts down). Remove it once nothing answers on it: the
	// shim of a group that still serves other containers keeps it.
	if address := bundleShimAddress(bundle); address != "" && !shim.CanConnect(address) {
		if rerr := shim.RemoveSocket(address); rerr != nil && !os.IsNotExist(rerr) {
			log.G(ctx).WithError(rerr).WithField("address", address).Warn("remove the dead shim's socket")
		}
	}
	if err != nil {
		return shim.StopStatus{}, err
	}
	return shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.Timestamp}, nil
}

// bundleShimAddress is the address of the shim serving the task in bundle,
// from the bootstrap.json containerd wrote there (the address file of
// older containerds otherwise); "" if neither can be read.
func bundleShimAddress(bundle string) string {
	if data, err := os.ReadFile(filepath.Join(bundle, "bootstrap.json")); err == nil {
		var b struct {
			Address string `json:"address"`
		}
		if json.Unmarshal(data, &b) == nil && b.Address != "" {
			return b.Address
		}
	}
	if address, err := shim.ReadAddress(filepath.Join(bundle, "address")); err == nil {
		return address
	}
	return ""
}

// startOptions finds the runtime options containerd put in the bootstrap
// params' extensions (the defaults if there are none).
func startOptions(params *bootapi.BootstrapParams) (*Options, error) {
	for _, ext := range params.GetExtensions() {
		v := ext.GetValue()
		if v.MessageIs(&runtimeoptions.Options{}) || v.MessageIs(&runcoptions.Options{}) {
			o, _, err := ParseOptions(v)
			return o, err
		}
	}
	return &Options{}, nil
}

// Info is `-info`: what husk is and what it supports, for containerd and CRI.
// containerd passes the runtime's options on stdin (CRI does, for every
// runtime handler, when it starts); they are checked and echoed back in
// RuntimeInfo.Options, as the runc shim does.
func (m *manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	info := &types.RuntimeInfo{
		Name: m.name,
		Version: &types.RuntimeVersion{
			Version:  version.Version,
			Revision: version.Revision,
		},
	}
	if optionsR != nil {
		data, err := io.ReadAll(io.LimitReader(optionsR, 10<<20))
		if err != nil {
			return nil, fmt.Errorf("read runtime options from stdin: %w", err)
		}
		if len(data) > 0 {
			var a anypb.Any
			if err := proto.Unmarshal(data, &a); err != nil {
				return nil, fmt.Errorf("%w: runtime options on stdin: %v", errdefs.ErrInvalidArgument, err)
			}
			if _, _, err := ParseOptions(&a); err != nil {
				return nil, err
			}
			info.Options = optionsAny(&a)
		}
	}
	feat, err := typeurl.MarshalAnyToProto(Features())
	if err != nil {
		return nil, fmt.Errorf("marshal features: %w", err)
	}
	info.Features = feat
	return info, nil
}

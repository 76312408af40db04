package shim

import (
	"errors"
	"fmt"
	"os"
	"strings"

	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	toml "github.com/pelletier/go-toml/v2"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/husk-runtime/husk/process/cgroups"
)

// Options are husk's runtime options. containerd hands the options of a
// runtime (CRI: the `options` table of the runtime handler; the Go client:
// WithRuntime's second argument; ctr: --runtime-config-path) to the shim's
// `start` action (bootstrap extensions), to every Create, and to `-info`.
//
// Accepted encodings:
//
//   - runtimeoptions.v1.Options, what CRI sends to every runtime that is not
//     runc: ConfigBody is the handler's options table as TOML; if ConfigPath
//     is set instead, that TOML file is read. The keys are the field names
//     below (matched case-insensitively).
//   - runc's options (containerd.runc.v1.Options), which some clients send
//     whatever the runtime: ShimCgroup is honoured, the runc-specific fields
//     (BinaryName, Root, CriuPath, IoUid, ...) are ignored.
//
// Unknown keys are logged and ignored, so that a handler section shared with
// another runtime never makes husk fail.
type Options struct {
	// ShimCgroup is an existing cgroup the shim daemon is moved into when it
	// starts (a cgroupfs path like "/husk/shims", or the systemd form
	// "slice:prefix:name"). Empty: the shim stays in containerd's cgroup.
	ShimCgroup string `toml:"ShimCgroup"`
	// Debug makes the shim log at debug level even when containerd does not.
	Debug bool `toml:"Debug"`
	// SystemdCgroup is accepted for configuration copied from runc's. husk
	// needs no switch: a cgroupsPath of the form "slice:prefix:name" is laid
	// out the way runc's systemd driver does, any other path is a cgroupfs
	// path.
	SystemdCgroup bool `toml:"SystemdCgroup"`
}

// ParseOptions decodes the runtime options containerd passed (nil or empty:
// the defaults). Malformed options are an InvalidArgument error. The
// returned notes say what was ignored (unknown keys, runc-only fields); the
// caller decides where to log them: the `start` action must not write to
// stderr, which containerd reads together with the bootstrap result.
func ParseOptions(a typeurl.Any) (*Options, []string, error) {
	o := &Options{}
	if a == nil || (a.GetTypeUrl() == "" && len(a.GetValue()) == 0) {
		return o, nil, nil
	}
	v, err := typeurl.UnmarshalAny(a)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: runtime options of type %q: %v", errdefs.ErrInvalidArgument, a.GetTypeUrl(), err)
	}
	var notes []string
	switch v := v.(type) {
	case *runtimeoptions.Options:
		body := v.GetConfigBody()
		if len(body) == 0 && v.GetConfigPath() != "" {
			body, err = os.ReadFile(v.GetConfigPath())
			if err != nil {
				return nil, nil, fmt.Errorf("%w: runtime options config_path: %v", errdefs.ErrInvalidArgument, err)
			}
		}
		if notes, err = decodeTOML(body, o); err != nil {
			return nil, nil, err
		}
	case *runcoptions.Options:
		o.ShimCgroup = v.GetShimCgroup()
		o.SystemdCgroup = v.GetSystemdCgroup()
		if v.GetBinaryName() != "" || v.GetRoot() != "" || v.GetCriuImagePath() != "" || v.GetCriuWorkPath() != "" {
			notes = append(notes, "runc-specific runtime options (BinaryName, Root, Criu*) do not apply to husk; ignored")
		}
	default:
		return nil, nil, fmt.Errorf("%w: runtime options of type %T are not husk's (want runtimeoptions.v1.Options or containerd.runc.v1.Options)", errdefs.ErrInvalidArgument, v)
	}
	if o.ShimCgroup != "" {
		if _, err := cgroups.CgroupfsPath(o.ShimCgroup); err != nil {
			return nil, nil, fmt.Errorf("%w: ShimCgroup: %v", errdefs.ErrInvalidArgument, err)
		}
	}
	return o, notes, nil
}

// decodeTOML decodes body into o; keys o does not know are ignored and
// reported in notes.
func decodeTOML(body []byte, o *Options) (notes []string, err error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil, nil
	}
	dec := toml.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	err = dec.Decode(o)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		for _, e := range strict.Errors {
			notes = append(notes, fmt.Sprintf("unknown runtime option %q ignored", strings.Join(e.Key(), ".")))
		}
		*o = Options{}
		err = toml.Unmarshal(body, o)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: husk runtime options (TOML): %v", errdefs.ErrInvalidArgument, err)
	}
	return notes, nil
}

// optionsAny returns the options in an Any as containerd sent them, for
// RuntimeInfo.Options (nil if there were none).
func optionsAny(a typeurl.Any) *anypb.Any {
	if a == nil || (a.GetTypeUrl() == "" && len(a.GetValue()) == 0) {
		return nil
	}
	return &anypb.Any{TypeUrl: a.GetTypeUrl(), Value: a.GetValue()}
}

// joinShimCgroup moves pid into the cgroup named by o.ShimCgroup.
func (o *Options) joinShimCgroup(pid int) error {
	if o.ShimCgroup == "" {
		return nil
	}
	cg, err := cgroups.Load(o.ShimCgroup)
	if err != nil {
		return fmt.Errorf("shim cgroup %q: %w", o.ShimCgroup, err)
	}
	if err := cg.Add(pid); err != nil {
		return fmt.Errorf("move shim into cgroup %q: %w", o.ShimCgroup, err)
	}
	return nil
}

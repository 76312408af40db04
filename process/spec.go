package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ErrInvalidSpec marks a spec husk refuses before touching the host.
var ErrInvalidSpec = errors.New("invalid spec")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidSpec, fmt.Sprintf(format, args...))
}

// LoadSpec reads and validates <bundle>/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	data, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read bundle config: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, invalid("config.json is not valid JSON: %v", err)
	}
	if err := ValidateSpec(&spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

// ValidateSpec checks what can be checked without touching the host.
func ValidateSpec(spec *specs.Spec) error {
	if major, _, _ := strings.Cut(spec.Version, "."); major != "1" {
		return invalid("unsupported ociVersion %q: husk implements runtime-spec 1.x", spec.Version)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return invalid("root.path is not set")
	}
	if spec.Linux == nil {
		return invalid("linux section is missing")
	}
	if err := ValidateProcess(spec.Process); err != nil {
		return err
	}
	if len(spec.Hostname) > 64 {
		return invalid("hostname %q is longer than 64 bytes", spec.Hostname)
	}
	for _, m := range spec.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return invalid("mount destination %q is not absolute", m.Destination)
		}
	}
	plan, err := planNamespaces(spec.Linux.Namespaces)
	if err != nil {
		return err
	}
	if spec.Hostname != "" && !plan.has(specs.UTSNamespace) {
		return invalid("hostname %q needs a private UTS namespace", spec.Hostname)
	}
	if !plan.has(specs.MountNamespace) {
		return invalid("a mount namespace is required to set up the root filesystem")
	}
	if err := validateIDMappings(spec.Linux, plan.has(specs.UserNamespace)); err != nil {
		return err
	}
	return nil
}

// ValidateProcess checks a process spec (the init's or an exec's).
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		return invalid("process is missing")
	}
	if len(p.Args) == 0 || p.Args[0] == "" {
		return invalid("process args must not be empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return invalid("process cwd %q is not an absolute path", p.Cwd)
	}
	for _, e := range p.Env {
		if name, _, ok := strings.Cut(e, "="); !ok || name == "" {
			return invalid("env entry %q is not NAME=value", e)
		}
	}
	if p.Terminal && p.ConsoleSize != nil && (p.ConsoleSize.Height > 1<<16 || p.ConsoleSize.Width > 1<<16) {
		return invalid("console size %dx%d is absurd", p.ConsoleSize.Width, p.ConsoleSize.Height)
	}
	return nil
}

func validateIDMappings(l *specs.Linux, userNS bool) error {
	if !userNS {
		if len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0 {
			return invalid("uid/gid mappings need a user namespace")
		}
		return nil
	}
	for name, ms := range map[string][]specs.LinuxIDMapping{"uid": l.UIDMappings, "gid": l.GIDMappings} {
		for i, a := range ms {
			if a.Size == 0 {
				return invalid("%s mapping %d has size 0", name, i)
			}
			if uint64(a.ContainerID)+uint64(a.Size) > 1<<32 || uint64(a.HostID)+uint64(a.Size) > 1<<32 {
				return invalid("%s mapping %d exceeds the 32-bit id range", name, i)
			}
			for j := range i {
				b := ms[j]
				if overlaps(a.ContainerID, b.ContainerID, a.Size, b.Size) || overlaps(a.HostID, b.HostID, a.Size, b.Size) {
					return invalid("%s mappings %d and %d overlap", name, j, i)
				}
			}
		}
	}
	return nil
}

func overlaps(a, b, asz, bsz uint32) bool {
	return uint64(a) < uint64(b)+uint64(bsz) && uint64(b) < uint64(a)+uint64(asz)
}

var nsFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
	specs.TimeNamespace:    unix.CLONE_NEWTIME,
}

// nsPlan is how the init gets each namespace: cloned new, or joined by path.
type nsPlan struct {
	clone uintptr // CLONE_NEW* flags for the clone
	// cgroupNS is created by the init itself once it is in its cgroup, so
	// that its cgroup is the namespace's root.
	cgroupNS bool
	join     []nsJoin
	types    map[specs.LinuxNamespaceType]bool
}

type nsJoin struct {
	typ  specs.LinuxNamespaceType
	flag int
	path string
}

func (p *nsPlan) has(t specs.LinuxNamespaceType) bool { return p.types[t] }

func planNamespaces(nss []specs.LinuxNamespace) (*nsPlan, error) {
	plan := &nsPlan{types: map[specs.LinuxNamespaceType]bool{}}
	for _, ns := range nss {
		flag, ok := nsFlags[ns.Type]
		if !ok {
			return nil, invalid("unknown namespace type %q", ns.Type)
		}
		if plan.types[ns.Type] {
			return nil, invalid("namespace %q is listed twice", ns.Type)
		}
		plan.types[ns.Type] = true
		if ns.Path == "" {
			switch ns.Type {
			case specs.CgroupNamespace:
				plan.cgroupNS = true
			case specs.TimeNamespace:
				return nil, invalid("a new time namespace is not supported")
			default:
				plan.clone |= flag
			}
			continue
		}
		if !filepath.IsAbs(ns.Path) {
			return nil, invalid("%s namespace path %q is not absolute", ns.Type, ns.Path)
		}
		plan.join = append(plan.join, nsJoin{typ: ns.Type, flag: int(flag), path: ns.Path})
	}
	return plan, nil
}

// checkJoinable opens every namespace to join and checks that it is one, of
// the right type. Mount and user namespaces cannot be joined by a
// multithreaded Go process (setns refuses), so they are refused here too.
func (p *nsPlan) checkJoinable() error {
	for _, j := range p.join {
		if j.typ == specs.MountNamespace || j.typ == specs.UserNamespace {
			return invalid("joining an existing %s namespace (%s) is not supported", j.typ, j.path)
		}
		f, err := os.Open(j.path)
		if err != nil {
			return invalid("%s namespace %s: %v", j.typ, j.path, err)
		}
		t, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_NSTYPE)
		f.Close()
		if err != nil {
			return invalid("%s namespace path %s is not a namespace: %v", j.typ, j.path, err)
		}
		if t != j.flag {
			return invalid("%s is not a %s namespace", j.path, j.typ)
		}
	}
	return nil
}

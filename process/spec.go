package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/security"
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

// ValidateSpec checks what can be checked without changing the host (it
// reads the shim's id maps and which security modules the host runs, and
// compiles the seccomp profile), so bad input fails before anything is
// mounted or created.
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
	if err := validateIDMappings(spec.Linux, plan.has(specs.UserNamespace), plan.clone&unix.CLONE_NEWUSER != 0); err != nil {
		return err
	}
	// Compiled again by the init; this catches a bad profile before the
	// rootfs is mounted (about a millisecond for containerd's default).
	if _, _, err := security.CheckSeccomp(spec.Linux.Seccomp); err != nil {
		return invalid("%v", err)
	}
	if err := security.CheckLSM("", "", spec.Linux.MountLabel); err != nil {
		return invalid("%v", err)
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
	if _, err := security.CheckCapabilities(p.Capabilities); err != nil {
		return invalid("%v", err)
	}
	if err := security.CheckRlimits(p.Rlimits); err != nil {
		return invalid("%v", err)
	}
	if err := security.CheckLSM(p.ApparmorProfile, p.SelinuxLabel, ""); err != nil {
		return invalid("%v", err)
	}
	return nil
}

// maxIDMapLines is the kernel's limit on lines in uid_map/gid_map (Linux
// 4.15+; older kernels allow 5).
const maxIDMapLines = 340

// hostIDMapFiles are the shim's own uid and gid maps: the host ids a
// container mapping may use must be mapped in the shim's user namespace.
var hostIDMapFiles = map[string]string{"uid": "/proc/self/uid_map", "gid": "/proc/self/gid_map"}

func validateIDMappings(l *specs.Linux, userNS, newUserNS bool) error {
	if !userNS {
		if len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0 {
			return invalid("uid/gid mappings need a user namespace")
		}
		return nil
	}
	kinds := []struct {
		name string
		ms   []specs.LinuxIDMapping
	}{{"uid", l.UIDMappings}, {"gid", l.GIDMappings}}
	for _, k := range kinds {
		name, ms := k.name, k.ms
		if len(ms) > maxIDMapLines {
			return invalid("%d %s mappings: the kernel accepts at most %d", len(ms), name, maxIDMapLines)
		}
		for i, a := range ms {
			if a.Size == 0 {
				return invalid("%s mapping %d has size 0", name, i)
			}
			// (uid_t)-1 is never a valid id, so ranges end at 4294967294.
			if uint64(a.ContainerID)+uint64(a.Size) > 1<<32-1 || uint64(a.HostID)+uint64(a.Size) > 1<<32-1 {
				return invalid("%s mapping %d (%d:%d:%d) exceeds the 32-bit id range", name, i, a.ContainerID, a.HostID, a.Size)
			}
			for j := range i {
				b := ms[j]
				if overlaps(a.ContainerID, b.ContainerID, a.Size, b.Size) || overlaps(a.HostID, b.HostID, a.Size, b.Size) {
					return invalid("%s mappings %d and %d overlap", name, j, i)
				}
			}
		}
	}
	if !newUserNS {
		return nil
	}
	for _, k := range kinds {
		if len(k.ms) == 0 {
			return invalid("a new user namespace needs %s mappings", k.name)
		}
		if !maps0(k.ms) {
			return invalid("%s mappings must map the container's %s 0: the container is set up as root of its user namespace", k.name, k.name)
		}
		if err := checkHostRange(k.name, k.ms); err != nil {
			return err
		}
	}
	return nil
}

func maps0(ms []specs.LinuxIDMapping) bool {
	for _, m := range ms {
		if m.ContainerID == 0 {
			return true
		}
	}
	return false
}

// checkHostRange checks that every host id of ms is mapped in the shim's own
// user namespace (writing the container's map would fail with a bare EPERM
// otherwise).
func checkHostRange(name string, ms []specs.LinuxIDMapping) error {
	b, err := os.ReadFile(hostIDMapFiles[name])
	if err != nil {
		// No /proc: nothing to check against; the kernel still refuses.
		return nil
	}
	type span struct{ lo, hi uint64 } // [lo, hi)
	var have []span
	for _, line := range strings.Split(string(b), "\n") {
		var in, out, size uint64
		if n, _ := fmt.Sscan(line, &in, &out, &size); n == 3 && size > 0 {
			have = append(have, span{in, in + size})
		}
	}
	sort.Slice(have, func(i, j int) bool { return have[i].lo < have[j].lo })
	covered := func(lo, hi uint64) bool {
		for _, h := range have {
			if h.lo > lo {
				return false // a gap before h
			}
			if h.hi > lo {
				lo = h.hi
			}
			if lo >= hi {
				return true
			}
		}
		return false
	}
	for i, m := range ms {
		lo := uint64(m.HostID)
		if !covered(lo, lo+uint64(m.Size)) {
			return invalid("%s mapping %d (%d:%d:%d): host %ss %d-%d are not all mapped in the runtime's user namespace (%s)",
				name, i, m.ContainerID, m.HostID, m.Size, name, lo, lo+uint64(m.Size)-1, strings.Join(strings.Fields(string(b)), " "))
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

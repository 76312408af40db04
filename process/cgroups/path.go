package cgroups

import (
	"fmt"
	"path/filepath"
	"strings"
)

// CgroupfsPath translates an OCI linux.cgroupsPath into the path of the
// cgroup below the root of every hierarchy (e.g. "/default/c1"). It is pure:
// it does not look at the host.
//
//   - "" → "" (no cgroup; see New).
//   - "slice:prefix:name" (a path that does not start with "/" and has exactly
//     two colons) is the systemd form, expanded the way runc's systemd driver
//     lays it out: "<ExpandSlice(slice)>/<prefix>-<name>.scope", e.g.
//     "kubepods-besteffort-pod1.slice:cri-containerd:abc" →
//     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope".
//     An empty slice means "system.slice"; an empty prefix gives "<name>.scope";
//     a name ending in ".slice" is used as is (runc does the same).
//   - An absolute path is cleaned ("/a/../b" → "/b").
//   - A relative path is taken relative to the ROOT of each hierarchy
//     ("a/b" → "/a/b"), like containerd's cgroup1.StaticPath. Note: runc's
//     cgroupfs driver instead nests relative paths below the cgroup of the
//     runc process itself; we do not, because the shim's own cgroup is
//     different per v1 hierarchy and, on v2, has processes in it (a child
//     there could not get controllers enabled).
//
// The root cgroup itself ("/", ".", "/..") is refused.
func CgroupfsPath(cgroupsPath string) (string, error) {
	if cgroupsPath == "" {
		return "", nil
	}
	if strings.ContainsRune(cgroupsPath, 0) {
		return "", fmt.Errorf("cgroups: invalid cgroupsPath %q", cgroupsPath)
	}
	if !strings.HasPrefix(cgroupsPath, "/") && strings.Count(cgroupsPath, ":") == 2 {
		return systemdPath(cgroupsPath)
	}
	p := filepath.Clean("/" + cgroupsPath)
	if p == "/" {
		return "", fmt.Errorf("cgroups: refusing to use the root cgroup (cgroupsPath %q)", cgroupsPath)
	}
	return p, nil
}

func systemdPath(cgroupsPath string) (string, error) {
	parts := strings.Split(cgroupsPath, ":")
	slice, prefix, name := parts[0], parts[1], parts[2]
	if slice == "" {
		slice = "system.slice"
	}
	if name == "" {
		return "", fmt.Errorf("cgroups: systemd cgroupsPath %q: empty unit name", cgroupsPath)
	}
	if strings.Contains(prefix, "/") || strings.Contains(name, "/") {
		return "", fmt.Errorf("cgroups: systemd cgroupsPath %q: prefix and name must not contain '/'", cgroupsPath)
	}
	parent, err := ExpandSlice(slice)
	if err != nil {
		return "", fmt.Errorf("cgroups: systemd cgroupsPath %q: %w", cgroupsPath, err)
	}
	unit := name
	if !strings.HasSuffix(name, ".slice") {
		if prefix != "" {
			unit = prefix + "-" + name + ".scope"
		} else {
			unit = name + ".scope"
		}
	}
	p := filepath.Join(parent, unit)
	if p == "/" || filepath.Dir(p) != filepath.Clean(parent) {
		return "", fmt.Errorf("cgroups: systemd cgroupsPath %q: invalid unit name %q", cgroupsPath, unit)
	}
	return p, nil
}

// ExpandSlice expands a systemd slice name to its cgroupfs path, as systemd
// (and runc) do: "a-b-c.slice" → "/a.slice/a-b.slice/a-b-c.slice",
// "-.slice" → "/".
func ExpandSlice(slice string) (string, error) {
	const suffix = ".slice"
	// systemd's unit names are at most 255 bytes (UNIT_NAME_MAX); the
	// expansion is quadratic in the number of components, so a long name
	// would stall the shim (10 KB took 30 s).
	if len(slice) > 255 {
		return "", fmt.Errorf("invalid slice name %.32q...: longer than 255 bytes", slice)
	}
	if len(slice) <= len(suffix) || !strings.HasSuffix(slice, suffix) || strings.Contains(slice, "/") {
		return "", fmt.Errorf("invalid slice name %q", slice)
	}
	name := strings.TrimSuffix(slice, suffix)
	if name == "-" {
		return "/", nil
	}
	var path, prefix string
	for _, component := range strings.Split(name, "-") {
		if component == "" { // "-a.slice", "a--b.slice", "a-.slice"
			return "", fmt.Errorf("invalid slice name %q", slice)
		}
		path += "/" + prefix + component + suffix
		prefix += component + "-"
	}
	return path, nil
}

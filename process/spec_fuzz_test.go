package process

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// FuzzValidateSpec feeds JSON config.json documents to the spec validation
// (ValidateSpec: process, hostname, mounts, namespaces, id mappings,
// seccomp, capabilities, rlimits). It must never panic, every refusal must
// be an ErrInvalidSpec, it must not change the spec, it must be
// deterministic, and what it accepts must hold the invariants Create relies
// on. Seeds: testdata/fuzz/FuzzValidateSpec plus the ones added here.
func FuzzValidateSpec(f *testing.F) {
	if b, err := json.Marshal(validSpec()); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"ociVersion":"1.0.0","root":{"path":"rootfs"},"process":{"args":["sh"],"cwd":"/"},` +
		`"linux":{"namespaces":[{"type":"mount"},{"type":"user"}],` +
		`"uidMappings":[{"containerID":0,"hostID":0,"size":1}],"gidMappings":[{"containerID":0,"hostID":0,"size":1}]}}`))
	f.Add([]byte(`{"ociVersion":"1.2.0","hostname":"h","root":{"path":"/r"},"process":{"args":["a"],"cwd":"/","env":["A=1","=x"]},` +
		`"mounts":[{"destination":"/proc","type":"proc"}],"linux":{"namespaces":[{"type":"mount"},{"type":"uts"},{"type":"network","path":"/proc/1/ns/net"}]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var spec specs.Spec
		if err := json.Unmarshal(data, &spec); err != nil {
			return
		}
		before, _ := json.Marshal(&spec)
		err := ValidateSpec(&spec)
		if after, _ := json.Marshal(&spec); string(after) != string(before) {
			t.Fatalf("ValidateSpec changed the spec:\n%s\n%s", before, after)
		}
		if err2 := ValidateSpec(&spec); (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("not deterministic: %v, then %v", err, err2)
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("refusal is not an ErrInvalidSpec: %v", err)
			}
			return
		}
		checkAccepted(t, &spec)
	})
}

// checkAccepted asserts what a spec ValidateSpec accepted guarantees.
func checkAccepted(t *testing.T, s *specs.Spec) {
	t.Helper()
	if major, _, _ := strings.Cut(s.Version, "."); major != "1" {
		t.Fatalf("accepted ociVersion %q", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" || s.Linux == nil || s.Process == nil {
		t.Fatalf("accepted a spec without root, linux or process")
	}
	p := s.Process
	if len(p.Args) == 0 || p.Args[0] == "" || !filepath.IsAbs(p.Cwd) {
		t.Fatalf("accepted args %q, cwd %q", p.Args, p.Cwd)
	}
	for _, e := range p.Env {
		if name, _, ok := strings.Cut(e, "="); !ok || name == "" {
			t.Fatalf("accepted env entry %q", e)
		}
	}
	if len(s.Hostname) > 64 {
		t.Fatalf("accepted a %d-byte hostname", len(s.Hostname))
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			t.Fatalf("accepted mount destination %q", m.Destination)
		}
	}
	plan, err := planNamespaces(s.Linux.Namespaces)
	if err != nil {
		t.Fatalf("accepted, but planNamespaces fails: %v", err)
	}
	if !plan.has(specs.MountNamespace) {
		t.Fatalf("accepted a spec without a mount namespace")
	}
	if s.Hostname != "" && !plan.has(specs.UTSNamespace) {
		t.Fatalf("accepted a hostname without a UTS namespace")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := nsFlags[ns.Type]; !ok || seen[ns.Type] {
			t.Fatalf("accepted namespaces %+v", s.Linux.Namespaces)
		}
		seen[ns.Type] = true
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			t.Fatalf("accepted namespace path %q", ns.Path)
		}
	}
	for _, j := range plan.join {
		if plan.clone&uintptr(j.flag) != 0 {
			t.Fatalf("namespace %s both cloned and joined", j.typ)
		}
	}
	if !plan.has(specs.UserNamespace) && (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) {
		t.Fatalf("accepted id mappings without a user namespace")
	}
	for _, ms := range [][]specs.LinuxIDMapping{s.Linux.UIDMappings, s.Linux.GIDMappings} {
		for i, a := range ms {
			if a.Size == 0 {
				t.Fatalf("accepted a mapping of size 0")
			}
			for _, b := range ms[:i] {
				if overlaps(a.ContainerID, b.ContainerID, a.Size, b.Size) || overlaps(a.HostID, b.HostID, a.Size, b.Size) {
					t.Fatalf("accepted overlapping mappings %+v and %+v", a, b)
				}
			}
		}
	}
	// Validating the process alone (as for an exec) accepts it too.
	if err := ValidateProcess(p); err != nil {
		t.Fatalf("spec accepted but its process refused: %v", err)
	}
	if !reflect.DeepEqual(plan, mustPlan(t, s.Linux.Namespaces)) {
		t.Fatalf("planNamespaces is not deterministic")
	}
}

func mustPlan(t *testing.T, nss []specs.LinuxNamespace) *nsPlan {
	t.Helper()
	p, err := planNamespaces(nss)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

package process

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/husk-runtime/husk/security"
)

func TestCompileForInit(t *testing.T) {
	prof := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActErrno},
	}}
	spec := validSpec()
	spec.Linux.Seccomp = prof
	cfg := &initConfig{Spec: spec, Rootfs: "/r"}
	if err := compileForInit(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if spec.Linux.Seccomp != prof {
		t.Error("the caller's spec lost its seccomp profile")
	}
	if cfg.Spec == spec || cfg.Spec.Linux.Seccomp != nil {
		t.Error("the init's spec is not a copy without the seccomp profile")
	}
	want, _, err := security.CompileSeccomp(prof)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Seccomp, want) {
		t.Error("the init's filter is not the compiled profile")
	}
	if !reflect.DeepEqual(cfg.Spec.Linux.Namespaces, spec.Linux.Namespaces) || cfg.Rootfs != "/r" {
		t.Error("compileForInit changed more than the seccomp profile")
	}

	// What the init receives decodes to the same program.
	data, err := json.Marshal(syncMsg{Type: msgConfig, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	var m syncMsg
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(m.Config.Seccomp, want) || m.Config.Spec.Linux.Seccomp != nil {
		t.Error("the config message does not carry the compiled filter (and no profile)")
	}

	// Nothing to do without a profile; a bad profile is an error.
	plain := &initConfig{Spec: validSpec()}
	if err := compileForInit(context.Background(), plain); err != nil || plain.Seccomp != nil {
		t.Errorf("no profile: filter %v, error %v", plain.Seccomp, err)
	}
	badSpec := validSpec()
	badSpec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NO_SUCH"}
	if err := compileForInit(context.Background(), &initConfig{Spec: badSpec}); err == nil {
		t.Error("a bad profile compiled without an error")
	}
}

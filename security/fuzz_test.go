//go:build linux && amd64

package security

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"testing"
)

// FuzzCompileSeccomp feeds JSON linux.seccomp objects to the compiler: it
// must never panic, every program must pass the structural verifier, fit in
// BPF_MAXINSNS and agree with the reference semantics on derived inputs.
// Seeds: testdata/fuzz/FuzzCompileSeccomp plus the ones added here.
func FuzzCompileSeccomp(f *testing.F) {
	if b, err := json.Marshal(defaultProfile(defaultCaps)); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{"defaultAction":"SCMP_ACT_ALLOW"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var s specs.LinuxSeccomp
		if err := json.Unmarshal(data, &s); err != nil {
			return
		}
		fl, _, err := CompileSeccomp(&s)
		if err != nil {
			return
		}
		if n := len(fl.insns); n == 0 || n > MaxInstructions {
			t.Fatalf("program length %d", n)
		}
		if err := verifyProgram(fl.insns); err != nil {
			t.Fatalf("verify: %v", err)
		}
		p, _, err := normalize(&s)
		if err != nil {
			t.Fatalf("normalize failed after compile succeeded: %v", err)
		}
		for _, d := range p.probeInputs(3000) {
			got, err := runBPF(fl.insns, d)
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			if want := p.eval(d); got != want {
				t.Fatalf("input %+v: BPF %#x, reference %#x", d, got, want)
			}
		}
	})
}

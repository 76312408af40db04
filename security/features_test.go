package security

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The features lists must agree with what the compiler accepts.
func TestFeaturesAgreeWithCompiler(t *testing.T) {
	for i, n := range KnownCapabilities() {
		if c, ok := capabilityNumber(n); !ok || int(c) != i {
			t.Errorf("capability %s at index %d: capabilityNumber = %d, %v", n, i, c, ok)
		}
	}
	for _, a := range SeccompActions() {
		if _, err := action(specs.LinuxSeccompAction(a), nil); err != nil {
			t.Errorf("declared action %s: %v", a, err)
		}
	}
	for _, op := range SeccompOperators() {
		if !validOp(specs.LinuxSeccompOperator(op)) {
			t.Errorf("declared operator %s is not accepted", op)
		}
	}
	for _, a := range SeccompArchs() {
		if _, ok, err := lookupArch(specs.Arch(a)); !ok || err != nil {
			t.Errorf("declared arch %s: ok %v, err %v", a, ok, err)
		}
	}
	for _, f := range SeccompKnownFlags() {
		if _, ok := specFlag(specs.LinuxSeccompFlag(f)); !ok {
			t.Errorf("declared flag %s is not accepted", f)
		}
	}
	supported := SeccompSupportedFlags()
	for _, f := range supported {
		if !slices.Contains(SeccompKnownFlags(), f) {
			t.Errorf("supported flag %s is not a known flag", f)
		}
	}
	// Every kernel husk can run on (seccomp filters with TSYNC: 3.17+) has
	// TSYNC; LOG and SPEC_ALLOW arrived in 4.14 and 4.17.
	if !slices.Contains(supported, "SECCOMP_FILTER_FLAG_TSYNC") {
		t.Errorf("SECCOMP_FILTER_FLAG_TSYNC not reported as supported: %v", supported)
	}
	t.Logf("kernel supports %v", supported)
}

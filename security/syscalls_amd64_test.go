//go:build linux && amd64

package security

import "testing"

func TestSyscallTableMatchesUnix(t *testing.T) {
	if len(x86_64FromUnix) != len(syscallsX86_64) {
		t.Fatalf("table sizes differ: unix %d, generated %d", len(x86_64FromUnix), len(syscallsX86_64))
	}
	for name, nr := range x86_64FromUnix {
		if syscallsX86_64[name] != nr {
			t.Errorf("%s: unix %d, table %d", name, nr, syscallsX86_64[name])
		}
	}
	for name, want := range map[string]uint32{"socketcall": 102, "getpid": 20, "socket": 359, "clock_settime64": 404} {
		if got := syscallsX86[name]; got != want {
			t.Errorf("i386 %s = %d, want %d", name, got, want)
		}
	}
	for name, want := range map[string]uint32{"getpid": 39 | x32SyscallBit, "readv": 515 | x32SyscallBit, "ioctl": 514 | x32SyscallBit} {
		if got := syscallsX32[name]; got != want {
			t.Errorf("x32 %s = %#x, want %#x", name, got, want)
		}
	}
	if _, ok := syscallsX32["uselib"]; ok {
		t.Errorf("x32 must not have the 64-only uselib")
	}
}

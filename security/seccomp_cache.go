package security

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// compileCacheSize bounds the profiles CompileSeccompCached remembers: a
// shim normally sees one or two (the runtime's default, a pod's own).
const compileCacheSize = 8

var compileCache struct {
	mu      sync.Mutex
	entries []cachedFilter // most recently used last
}

type cachedFilter struct {
	key      string // the profile's JSON encoding
	f        *Filter
	warnings []string
}

// CompileSeccompCached is CompileSeccomp, compiling each distinct profile
// only once per process: a shim checks the profile when it loads the spec,
// compiles it for the container's init and again for every exec, and a
// grouped shim sees the same profile for every container of a pod. A
// profile is identified by its whole JSON encoding, so a hit is an exact
// match. The returned Filter is shared and must not be modified (nothing in
// this package modifies a compiled Filter). Errors are not cached.
func CompileSeccompCached(s *specs.LinuxSeccomp) (*Filter, []string, error) {
	if s == nil {
		return nil, nil, nil
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return CompileSeccomp(s)
	}
	key := string(raw)
	compileCache.mu.Lock()
	for i, e := range compileCache.entries {
		if e.key == key {
			compileCache.entries = append(append(compileCache.entries[:i:i], compileCache.entries[i+1:]...), e)
			compileCache.mu.Unlock()
			return e.f, append([]string(nil), e.warnings...), nil
		}
	}
	compileCache.mu.Unlock()

	f, warnings, err := CompileSeccomp(s)
	if err != nil {
		return nil, warnings, err
	}
	compileCache.mu.Lock()
	if len(compileCache.entries) >= compileCacheSize {
		compileCache.entries = append(compileCache.entries[:0:0], compileCache.entries[1:]...)
	}
	compileCache.entries = append(compileCache.entries, cachedFilter{key: key, f: f, warnings: append([]string(nil), warnings...)})
	compileCache.mu.Unlock()
	return f, warnings, nil
}

// filterWire is how a compiled Filter travels from the shim to a container
// init: the program as raw struct sock_filter bytes (base64 in JSON).
type filterWire struct {
	Insns   []byte   `json:"insns"`
	Flags   uint     `json:"flags,omitempty"`
	Actions []uint32 `json:"actions,omitempty"`
}

const sockFilterSize = 8 // u16 code, u8 jt, u8 jf, u32 k

// MarshalJSON encodes the compiled program, so that the shim compiles a
// profile once and the container init only loads it.
func (f *Filter) MarshalJSON() ([]byte, error) {
	w := filterWire{Flags: f.flags, Actions: f.actions, Insns: make([]byte, sockFilterSize*len(f.insns))}
	for i, in := range f.insns {
		b := w.Insns[i*sockFilterSize:]
		binary.LittleEndian.PutUint16(b, in.Code)
		b[2], b[3] = in.Jt, in.Jf
		binary.LittleEndian.PutUint32(b[4:], in.K)
	}
	return json.Marshal(w)
}

// UnmarshalJSON decodes what MarshalJSON encoded, checking the program's
// length (the kernel checks the program itself when it is loaded).
func (f *Filter) UnmarshalJSON(data []byte) error {
	var w filterWire
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("seccomp: decode compiled filter: %w", err)
	}
	n := len(w.Insns) / sockFilterSize
	if len(w.Insns)%sockFilterSize != 0 || n == 0 || n > MaxInstructions {
		return fmt.Errorf("seccomp: decode compiled filter: bad program size %d bytes", len(w.Insns))
	}
	insns := make([]unix.SockFilter, n)
	for i := range insns {
		b := w.Insns[i*sockFilterSize:]
		insns[i] = unix.SockFilter{Code: binary.LittleEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.LittleEndian.Uint32(b[4:])}
	}
	*f = Filter{insns: insns, flags: w.Flags, actions: w.Actions}
	return nil
}

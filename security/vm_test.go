//go:build linux && amd64

package security

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// verifyProgram does the structural checks of the kernel's classic-BPF and
// seccomp verifiers that matter for our generator.
func verifyProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > MaxInstructions {
		return fmt.Errorf("length %d", len(prog))
	}
	if prog[len(prog)-1].Code != opRet {
		return fmt.Errorf("last instruction is not ret")
	}
	for i, in := range prog {
		switch {
		case in.Code == opLd:
			if in.K%4 != 0 || in.K >= 64 {
				return fmt.Errorf("%d: bad load offset %d", i, in.K)
			}
		case in.Code == opAnd, in.Code == opRet:
		case in.Code == opJa:
			if uint64(i)+1+uint64(in.K) >= uint64(len(prog)) {
				return fmt.Errorf("%d: ja out of range", i)
			}
		case isCondJump(in.Code):
			if i+1+int(in.Jt) >= len(prog) || i+1+int(in.Jf) >= len(prog) {
				return fmt.Errorf("%d: jump out of range", i)
			}
		default:
			return fmt.Errorf("%d: unexpected opcode %#x", i, in.Code)
		}
	}
	return nil
}

// runBPF interprets a seccomp program over d.
func runBPF(prog []unix.SockFilter, d seccompData) (uint32, error) {
	data := d.bytes()
	var acc uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch in.Code {
		case opLd:
			if in.K+4 > 64 {
				return 0, fmt.Errorf("pc %d: load out of range", pc)
			}
			acc = binary.LittleEndian.Uint32(data[in.K:])
		case opAnd:
			acc &= in.K
		case opRet:
			return in.K, nil
		case opJa:
			pc += int(in.K)
		case opJeq, opJgt, opJge:
			var cond bool
			switch in.Code {
			case opJeq:
				cond = acc == in.K
			case opJgt:
				cond = acc > in.K
			case opJge:
				cond = acc >= in.K
			}
			if cond {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		default:
			return 0, fmt.Errorf("pc %d: unsupported opcode %#x", pc, in.Code)
		}
	}
	return 0, fmt.Errorf("fell off the end of the program")
}

// eval is the reference semantics of a normalized program, used to check
// the generated BPF.
func (p *program) eval(d seccompData) uint32 {
	var ar *archRules
	find := func(a *arch) *archRules {
		for _, x := range p.arches {
			if x.arch == a {
				return x
			}
		}
		return nil
	}
	switch d.arch {
	case unix.AUDIT_ARCH_X86_64:
		if d.nr >= x32SyscallBit {
			ar = find(archX32)
		} else {
			ar = find(archX86_64)
		}
	case unix.AUDIT_ARCH_I386:
		ar = find(archX86)
	}
	if ar == nil {
		return badArchAction
	}
	for _, r := range ar.calls[d.nr] {
		match := true
		for _, c := range r.conds {
			match = match && condHolds(c, d.args[c.idx], ar.arch.is64)
		}
		if match {
			return r.action
		}
	}
	return p.defaultAction
}

func condHolds(c cond, arg uint64, is64 bool) bool {
	a, b := c.a, c.b
	if !is64 {
		arg, a, b = arg&0xffffffff, a&0xffffffff, b&0xffffffff
	}
	switch c.op {
	case "SCMP_CMP_EQ":
		return arg == a
	case "SCMP_CMP_NE":
		return arg != a
	case "SCMP_CMP_LT":
		return arg < a
	case "SCMP_CMP_LE":
		return arg <= a
	case "SCMP_CMP_GT":
		return arg > a
	case "SCMP_CMP_GE":
		return arg >= a
	case "SCMP_CMP_MASKED_EQ":
		return arg&a == b
	}
	panic("bad op " + string(c.op))
}

// probeInputs derives interesting seccomp_data values from a program: every
// syscall with rules on every audit arch, arguments at, around and across
// the 32-bit halves of each compared value, plus a few fixed numbers; at
// most about limit inputs.
func (p *program) probeInputs(limit int) []seccompData {
	var out []seccompData
	values := []uint64{0, 1, 0xffffffff, 1 << 32, 0xffffffffffffffff}
	for _, ar := range p.arches {
		for _, rs := range ar.calls {
			for _, r := range rs {
				for _, c := range r.conds {
					for _, v := range []uint64{c.a, c.b} {
						values = append(values, v, v+1, v-1, v^(1<<32), v&0xffffffff, v|0xffffffff00000000, v&c.a)
					}
				}
			}
		}
	}
	if len(values) > 64 {
		values = values[:64]
	}
	// Inputs satisfying every condition of a rule, and each one-off variant.
	for _, ar := range p.arches {
		for nr, rs := range ar.calls {
			for _, r := range rs {
				var d seccompData
				d.nr, d.arch = nr, ar.arch.audit
				for _, c := range r.conds {
					d.args[c.idx] = c.a
					if c.op == "SCMP_CMP_MASKED_EQ" {
						d.args[c.idx] = c.b
					}
				}
				out = append(out, d)
				if len(out) >= limit {
					return out
				}
				for _, c := range r.conds {
					for _, delta := range []uint64{1, 1 << 32, 1<<32 | 1} {
						v := d
						v.args[c.idx] += delta
						out = append(out, v)
						v.args[c.idx] -= 2 * delta
						out = append(out, v)
					}
				}
			}
		}
	}
	for _, audit := range []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386, 0xc00000b7} {
		nrs := map[uint32]bool{0: true, 1: true, 0x3fffffff: true, 0x40000000: true, 0xffffffff: true, 500: true}
		for _, ar := range p.arches {
			for nr := range ar.calls {
				nrs[nr] = true
				nrs[nr+1] = true
				nrs[nr-1] = true
			}
		}
		for nr := range nrs {
			out = append(out, seccompData{nr: nr, arch: audit})
			if len(out) >= limit {
				return out
			}
			for i, v := range values {
				d := seccompData{nr: nr, arch: audit}
				for j := range d.args {
					d.args[j] = values[(i+j*7)%len(values)]
				}
				d.args[i%6] = v
				out = append(out, d)
			}
		}
	}
	return out
}

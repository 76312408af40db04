package security

// Code generation for the normalized program (see seccomp.go).
//
// Layout:
//
//	ld  arch
//	jeq AUDIT_ARCH_X86_64 -> sec64      (if x86_64 or x32 is in the filter)
//	jeq AUDIT_ARCH_I386   -> sec32      (if x86 is in the filter)
//	ret KILL_PROCESS                    (bad arch)
//	sec64: ld nr
//	       jge 0x40000000 -> x32 tree | bad arch     (x32 bit check)
//	       x86_64 tree ...  x32 tree ...  argument bodies ...  returns
//	sec32: ld nr; tree ...; bodies ...; returns
//
// A "tree" is a balanced binary search (jge) over the intervals of syscall
// numbers that share a target, so a lookup costs O(log n) instructions and
// every allowed range of consecutive syscalls is a single leaf. A target is a
// shared "ret" (unconditional rules, default action) or a "body" evaluating
// the argument conditions of one syscall's rules. All jumps go forward;
// conditional jumps have 8-bit offsets, so the assembler inserts "ja"
// trampolines (32-bit offset) after any conditional jump whose target is
// more than 255 instructions away.

import (
	"fmt"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	opLd   = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	opAnd  = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opJa   = unix.BPF_JMP | unix.BPF_JA
	opJeq  = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJgt  = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	opJge  = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opRet  = unix.BPF_RET | unix.BPF_K
	maxJmp = 255
)

type label int

// ins is an instruction whose jump targets are labels.
type ins struct {
	op     uint16
	k      uint32
	jt, jf label // conditional jumps; jt is also the target of ja
}

func isCondJump(op uint16) bool {
	return op&0x07 == unix.BPF_JMP && op&0xf0 != unix.BPF_JA
}

type assembler struct {
	code []ins
	pos  []int // label -> instruction index, -1 while unbound
}

func (a *assembler) newLabel() label {
	a.pos = append(a.pos, -1)
	return label(len(a.pos) - 1)
}

func (a *assembler) bind(l label) { a.pos[l] = len(a.code) }

func (a *assembler) here() label {
	l := a.newLabel()
	a.bind(l)
	return l
}

func (a *assembler) stmt(op uint16, k uint32) { a.code = append(a.code, ins{op: op, k: k}) }

func (a *assembler) jump(op uint16, k uint32, jt, jf label) {
	a.code = append(a.code, ins{op: op, k: k, jt: jt, jf: jf})
}

// assemble resolves labels, inserting ja trampolines for far conditional
// jumps until every offset fits, and returns the kernel encoding.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	for l, p := range a.pos {
		if p < 0 {
			return nil, fmt.Errorf("internal error: label %d unbound", l)
		}
	}
	// Trampolines only add instructions: fail early on oversized programs.
	if len(a.code) > MaxInstructions {
		return nil, fmt.Errorf("program has %d instructions, more than BPF_MAXINSNS (%d)", len(a.code), MaxInstructions)
	}
	for round := 0; ; round++ {
		if round > MaxInstructions {
			return nil, fmt.Errorf("internal error: trampoline insertion does not converge")
		}
		far := map[int][]label{} // instruction -> far targets needing a trampoline
		for i, in := range a.code {
			if !isCondJump(in.op) {
				continue
			}
			for _, l := range []label{in.jt, in.jf} {
				off := a.pos[l] - (i + 1)
				if off < 0 {
					return nil, fmt.Errorf("internal error: backward jump at %d", i)
				}
				if off > maxJmp && (len(far[i]) == 0 || far[i][0] != l) {
					far[i] = append(far[i], l)
				}
			}
		}
		if len(far) == 0 {
			break
		}
		if len(a.code)+len(far) > MaxInstructions {
			return nil, fmt.Errorf("program needs more than BPF_MAXINSNS (%d) instructions", MaxInstructions)
		}
		// Rebuild with trampolines right after each far jump (a
		// conditional jump never falls through, so the slots after it are
		// only reached through the new labels).
		newIndex := make([]int, len(a.code)+1)
		code := make([]ins, 0, len(a.code)+2*len(far))
		type retarget struct {
			at       int
			from, to label
		}
		var fix []retarget
		for i, in := range a.code {
			newIndex[i] = len(code)
			code = append(code, in)
			for _, l := range far[i] {
				t := label(len(a.pos))
				a.pos = append(a.pos, -1)
				fix = append(fix, retarget{at: newIndex[i], from: l, to: t})
				a.pos[t] = -2 - len(code) // placeholder: already a new index
				code = append(code, ins{op: opJa, jt: l})
			}
		}
		newIndex[len(a.code)] = len(code)
		for l, p := range a.pos {
			if p <= -2 {
				a.pos[l] = -2 - p
			} else {
				a.pos[l] = newIndex[p]
			}
		}
		for _, f := range fix {
			if code[f.at].jt == f.from {
				code[f.at].jt = f.to
			}
			if code[f.at].jf == f.from {
				code[f.at].jf = f.to
			}
		}
		a.code = code
	}
	if len(a.code) > MaxInstructions {
		return nil, fmt.Errorf("program has %d instructions, more than BPF_MAXINSNS (%d)", len(a.code), MaxInstructions)
	}
	if len(a.code) == 0 || a.code[len(a.code)-1].op != opRet {
		return nil, fmt.Errorf("internal error: program does not end with ret")
	}
	out := make([]unix.SockFilter, len(a.code))
	for i, in := range a.code {
		out[i] = unix.SockFilter{Code: in.op, K: in.k}
		switch {
		case in.op == opJa:
			off := a.pos[in.jt] - (i + 1)
			if off < 0 {
				return nil, fmt.Errorf("internal error: backward ja at %d", i)
			}
			out[i].K = uint32(off)
		case isCondJump(in.op):
			out[i].Jt = uint8(a.pos[in.jt] - (i + 1))
			out[i].Jf = uint8(a.pos[in.jf] - (i + 1))
		}
	}
	return out, nil
}

// section is the code for one audit arch; targets are local to it so jumps
// stay short.
type section struct {
	a      *assembler
	rets   map[uint32]label
	order  []uint32 // rets in creation order
	bodies map[string]label
	pend   []pendingBody
}

type pendingBody struct {
	l     label
	is64  bool
	rules []rule
	def   uint32
}

func (s *section) ret(action uint32) label {
	if l, ok := s.rets[action]; ok {
		return l
	}
	l := s.a.newLabel()
	s.rets[action] = l
	s.order = append(s.order, action)
	return l
}

func (s *section) body(is64 bool, rules []rule, def uint32) label {
	b := make([]byte, 0, 64)
	if is64 {
		b = append(b, '6')
	}
	for _, r := range rules {
		b = append(b, '|')
		b = strconv.AppendUint(b, uint64(r.action), 16)
		for _, c := range r.conds {
			b = append(b, ',')
			b = strconv.AppendUint(b, uint64(c.idx), 10)
			b = append(b, c.op...)
			b = strconv.AppendUint(b, c.a, 16)
			b = append(b, '/')
			b = strconv.AppendUint(b, c.b, 16)
		}
	}
	key := string(b)
	if l, ok := s.bodies[key]; ok {
		return l
	}
	l := s.a.newLabel()
	s.bodies[key] = l
	s.pend = append(s.pend, pendingBody{l, is64, rules, def})
	return l
}

type interval struct {
	start  uint32
	target label
}

// tree emits a binary search over ivs (sorted, contiguous, first start is
// the lowest possible value of A) and returns the label to enter it.
func (s *section) tree(ivs []interval) label {
	if len(ivs) == 1 {
		return ivs[0].target
	}
	a := s.a
	entry := a.here()
	at := len(a.code)
	a.jump(opJge, ivs[len(ivs)/2].start, 0, 0)
	left := s.tree(ivs[:len(ivs)/2])
	right := s.tree(ivs[len(ivs)/2:])
	a.code[at].jt, a.code[at].jf = right, left
	return entry
}

// intervals maps [lo, hi] to targets: syscalls with rules to their body or
// return, everything else to the default return.
func (s *section) intervals(ar *archRules, def uint32) []interval {
	nrs := make([]uint32, 0, len(ar.calls))
	for nr := range ar.calls {
		if nr >= ar.arch.lo && nr <= ar.arch.hi {
			nrs = append(nrs, nr)
		}
	}
	slices.Sort(nrs)
	defL := s.ret(def)
	ivs := []interval{{ar.arch.lo, defL}}
	add := func(start uint32, t label) {
		if ivs[len(ivs)-1].start == start {
			ivs[len(ivs)-1].target = t
		} else if ivs[len(ivs)-1].target != t {
			ivs = append(ivs, interval{start, t})
		}
		// Merge with the previous interval if it now has the same target.
		if n := len(ivs); n >= 2 && ivs[n-2].target == ivs[n-1].target {
			ivs = ivs[:n-1]
		}
	}
	for _, nr := range nrs {
		rs := ar.calls[nr]
		var t label
		if len(rs) == 1 && len(rs[0].conds) == 0 {
			t = s.ret(rs[0].action)
		} else {
			t = s.body(ar.arch.is64, rs, def)
		}
		add(nr, t)
		if nr < ar.arch.hi {
			add(nr+1, defL)
		}
	}
	return ivs
}

// emitBodies emits the argument checks of the pending bodies.
func (s *section) emitBodies() {
	for i := 0; i < len(s.pend); i++ {
		b := s.pend[i]
		s.a.bind(b.l)
		for _, r := range b.rules {
			next := s.a.newLabel()
			for _, c := range r.conds {
				emitCond(s.a, c, b.is64, next)
			}
			s.a.stmt(opRet, r.action)
			s.a.bind(next)
		}
		s.a.stmt(opRet, b.def)
	}
	s.pend = nil
}

func (s *section) emitRets() {
	for _, act := range s.order {
		s.a.bind(s.rets[act])
		s.a.stmt(opRet, act)
	}
}

// emitCond emits code that falls through when c holds and jumps to fail
// otherwise. 64-bit comparisons follow libseccomp: the high words decide
// unless they are equal, then the low words decide (unsigned).
func emitCond(a *assembler, c cond, is64 bool, fail label) {
	lo := uint32(offArgs + 8*c.idx) // little endian
	hi := lo + 4
	vlo, vhi := uint32(c.a), uint32(c.a>>32)
	ok := a.newLabel()
	if c.op == specs.OpMaskedEqual {
		// (arg & Value) == ValueTwo
		mlo, mhi := vlo, vhi
		dlo, dhi := uint32(c.b), uint32(c.b>>32)
		if is64 {
			a.stmt(opLd, hi)
			if mhi != 0xffffffff {
				a.stmt(opAnd, mhi)
			}
			n := a.newLabel()
			a.jump(opJeq, dhi, n, fail)
			a.bind(n)
		}
		a.stmt(opLd, lo)
		if mlo != 0xffffffff {
			a.stmt(opAnd, mlo)
		}
		a.jump(opJeq, dlo, ok, fail)
		a.bind(ok)
		return
	}
	if !is64 {
		a.stmt(opLd, lo)
		switch c.op {
		case specs.OpEqualTo:
			a.jump(opJeq, vlo, ok, fail)
		case specs.OpNotEqual:
			a.jump(opJeq, vlo, fail, ok)
		case specs.OpGreaterThan:
			a.jump(opJgt, vlo, ok, fail)
		case specs.OpGreaterEqual:
			a.jump(opJge, vlo, ok, fail)
		case specs.OpLessThan:
			a.jump(opJge, vlo, fail, ok)
		case specs.OpLessEqual:
			a.jump(opJgt, vlo, fail, ok)
		}
		a.bind(ok)
		return
	}
	a.stmt(opLd, hi)
	switch c.op {
	case specs.OpEqualTo:
		n := a.newLabel()
		a.jump(opJeq, vhi, n, fail)
		a.bind(n)
		a.stmt(opLd, lo)
		a.jump(opJeq, vlo, ok, fail)
	case specs.OpNotEqual:
		n := a.newLabel()
		a.jump(opJeq, vhi, n, ok)
		a.bind(n)
		a.stmt(opLd, lo)
		a.jump(opJeq, vlo, fail, ok)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		n1, n2 := a.newLabel(), a.newLabel()
		a.jump(opJgt, vhi, ok, n1)
		a.bind(n1)
		a.jump(opJeq, vhi, n2, fail)
		a.bind(n2)
		a.stmt(opLd, lo)
		if c.op == specs.OpGreaterThan {
			a.jump(opJgt, vlo, ok, fail)
		} else {
			a.jump(opJge, vlo, ok, fail)
		}
	case specs.OpLessThan, specs.OpLessEqual:
		n1, n2 := a.newLabel(), a.newLabel()
		a.jump(opJgt, vhi, fail, n1)
		a.bind(n1)
		a.jump(opJeq, vhi, n2, ok)
		a.bind(n2)
		a.stmt(opLd, lo)
		if c.op == specs.OpLessThan {
			a.jump(opJge, vlo, fail, ok)
		} else {
			a.jump(opJgt, vlo, fail, ok)
		}
	}
	a.bind(ok)
}

// generate emits the whole program.
func (p *program) generate() ([]unix.SockFilter, error) {
	a := &assembler{}
	var x8664, x32, i386 *archRules
	for _, ar := range p.arches {
		switch ar.arch {
		case archX86_64:
			x8664 = ar
		case archX32:
			x32 = ar
		case archX86:
			i386 = ar
		}
	}
	fam64 := x8664 != nil || x32 != nil
	sec64, sec32 := a.newLabel(), a.newLabel()
	a.stmt(opLd, offArch)
	if fam64 {
		next := a.newLabel()
		a.jump(opJeq, unix.AUDIT_ARCH_X86_64, sec64, next)
		a.bind(next)
	}
	if i386 != nil {
		next := a.newLabel()
		a.jump(opJeq, unix.AUDIT_ARCH_I386, sec32, next)
		a.bind(next)
	}
	a.stmt(opRet, badArchAction)

	if fam64 {
		s := &section{a: a, rets: map[uint32]label{}, bodies: map[string]label{}}
		a.bind(sec64)
		a.stmt(opLd, offNr)
		at := len(a.code)
		a.jump(opJge, x32SyscallBit, 0, 0)
		var t64, t32 label
		if x8664 != nil {
			t64 = s.tree(s.intervals(x8664, p.defaultAction))
		} else {
			t64 = s.ret(badArchAction)
		}
		if x32 != nil {
			t32 = s.tree(s.intervals(x32, p.defaultAction))
		} else {
			t32 = s.ret(badArchAction)
		}
		a.code[at].jt, a.code[at].jf = t32, t64
		s.emitBodies()
		s.emitRets()
	} else {
		a.bind(sec64)
	}
	if i386 != nil {
		s := &section{a: a, rets: map[uint32]label{}, bodies: map[string]label{}}
		a.bind(sec32)
		a.stmt(opLd, offNr)
		start := len(a.code)
		entry := s.tree(s.intervals(i386, p.defaultAction))
		if len(a.code) == start {
			// A single interval: no tree code, jump to its target.
			a.code = append(a.code, ins{op: opJa, jt: entry})
		}
		s.emitBodies()
		s.emitRets()
	} else {
		a.bind(sec32)
	}
	return a.assemble()
}

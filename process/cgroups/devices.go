package cgroups

import (
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultDevices are allowed in every container's device cgroup after the
// spec's own rules, as runc does (libcontainer/specconv.AllowedDevices):
// mknod of any device, /dev/null, /dev/random, /dev/full, /dev/tty,
// /dev/zero, /dev/urandom, the pty slaves (136:*), /dev/ptmx and
// /dev/net/tun. Without them a container from containerd's default spec
// (whose only rule is "deny all") could not even open /dev/null, which the
// shell does for every background job.
var defaultDevices = []specs.LinuxDeviceCgroup{
	devRule("c", -1, -1, "m"),
	devRule("b", -1, -1, "m"),
	devRule("c", 1, 3, "rwm"),
	devRule("c", 1, 8, "rwm"),
	devRule("c", 1, 7, "rwm"),
	devRule("c", 5, 0, "rwm"),
	devRule("c", 1, 5, "rwm"),
	devRule("c", 1, 9, "rwm"),
	devRule("c", 136, -1, "rwm"),
	devRule("c", 5, 2, "rwm"),
	devRule("c", 10, 200, "rwm"),
}

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// isDenyAll reports whether d is "deny every access to every device".
func isDenyAll(d specs.LinuxDeviceCgroup) bool {
	return !d.Allow && (d.Type == "" || d.Type == "a") && d.Major == nil && d.Minor == nil &&
		strings.Contains(d.Access, "r") && strings.Contains(d.Access, "w") && strings.Contains(d.Access, "m")
}

// withDefaultDevices returns a copy of r whose device rules are runc's: deny
// everything first (the device cgroup is deny-by-default, whatever the spec
// lists), then the spec's rules in order, then defaultDevices. r itself is
// not modified.
func withDefaultDevices(r *specs.LinuxResources) *specs.LinuxResources {
	c := *r
	devs := make([]specs.LinuxDeviceCgroup, 0, 1+len(r.Devices)+len(defaultDevices))
	if len(r.Devices) == 0 || !isDenyAll(r.Devices[0]) {
		devs = append(devs, specs.LinuxDeviceCgroup{Allow: false, Access: "rwm"})
	}
	devs = append(devs, r.Devices...)
	devs = append(devs, defaultDevices...)
	c.Devices = devs
	return &c
}

// A devState emulates a cgroup v1 devices controller (the kernel's
// security/device_cgroup.c): a default behaviour and a list of exceptions,
// each a (type, major, minor) key with access bits. Writing "a" to
// devices.allow or devices.deny sets the default and clears the exceptions;
// any other rule adds its access bits to the exception with the same key
// when it goes against the default, and removes them otherwise.
type devState struct {
	allow bool
	keys  []devKey // insertion order, as devices.list shows them
	acc   map[devKey]uint8
}

type devKey struct {
	typ          byte // 'c' or 'b'
	major, minor int64
}

const (
	accR uint8 = 1 << iota
	accW
	accM
)

func accessBits(s string) uint8 {
	var b uint8
	for _, c := range s {
		switch c {
		case 'r':
			b |= accR
		case 'w':
			b |= accW
		case 'm':
			b |= accM
		}
	}
	return b
}

func accessString(b uint8) string {
	s := ""
	if b&accR != 0 {
		s += "r"
	}
	if b&accW != 0 {
		s += "w"
	}
	if b&accM != 0 {
		s += "m"
	}
	return s
}

func num(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func newDevState(allow bool) *devState {
	return &devState{allow: allow, acc: map[devKey]uint8{}}
}

func (s *devState) apply(d specs.LinuxDeviceCgroup) {
	if d.Type == "" || d.Type == "a" {
		*s = *newDevState(d.Allow)
		return
	}
	k := devKey{typ: d.Type[0], major: num(d.Major), minor: num(d.Minor)}
	bits := accessBits(d.Access)
	if d.Allow != s.allow { // an exception to the default
		if _, ok := s.acc[k]; !ok {
			s.keys = append(s.keys, k)
		}
		s.acc[k] |= bits
		return
	}
	if cur, ok := s.acc[k]; ok {
		if cur &^= bits; cur != 0 {
			s.acc[k] = cur
		} else {
			s.remove(k)
		}
	}
}

func (s *devState) remove(k devKey) {
	delete(s.acc, k)
	for i, kk := range s.keys {
		if kk == k {
			s.keys = append(s.keys[:i], s.keys[i+1:]...)
			return
		}
	}
}

// parseDevicesList reads a v1 devices.list. ok is false when the state
// cannot be known from it: the default is "allow" (the kernel then shows
// only "a *:* rwm", not the denied exceptions) or a line is not understood.
func parseDevicesList(list string) (_ *devState, ok bool) {
	s := newDevState(false)
	for _, l := range lines(list) {
		f := strings.Fields(l)
		if len(f) != 3 {
			return nil, false
		}
		majMin := strings.SplitN(f[1], ":", 2)
		if len(majMin) != 2 || (f[0] != "c" && f[0] != "b") {
			return nil, false // "a *:* rwm": allow by default
		}
		n := func(v string) (*int64, bool) {
			if v == "*" {
				return nil, true
			}
			x, err := strconv.ParseInt(v, 10, 64)
			return &x, err == nil
		}
		major, ok1 := n(majMin[0])
		minor, ok2 := n(majMin[1])
		if !ok1 || !ok2 {
			return nil, false
		}
		s.apply(specs.LinuxDeviceCgroup{Allow: true, Type: f[0], Major: major, Minor: minor, Access: f[2]})
	}
	return s, true
}

func ruleFor(k devKey, allow bool, bits uint8) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: allow, Type: string(k.typ), Access: accessString(bits)}
	if k.major >= 0 {
		r.Major = &k.major
	}
	if k.minor >= 0 {
		r.Minor = &k.minor
	}
	return r
}

// v1DeviceTransition returns the device rules to write to a v1 cgroup whose
// devices.list is current so that it ends up as rules would leave a fresh
// one. Writing rules as they are would start with "deny all", leaving the
// running container without even /dev/null for a moment: the kubelet's
// UpdateContainerResources sends the whole device list on every update. So:
//   - from a known deny-by-default state to a deny-by-default target, add
//     the target's exceptions, then take away what the target does not
//     have (nothing is written when they are the same);
//   - to an allow-by-default target, start from the last "a" rule (which
//     resets the list anyway) so that nothing is denied on the way;
//   - otherwise (from allow-by-default to deny-by-default) the rules as they
//     are.
func v1DeviceTransition(current string, rules []specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	last := -1
	for i, d := range rules {
		if d.Type == "" || d.Type == "a" {
			last = i
		}
	}
	if last < 0 {
		return rules // relative to whatever is there: nothing to emulate
	}
	target := newDevState(false)
	for _, d := range rules[last:] {
		target.apply(d)
	}
	if target.allow {
		return rules[last:]
	}
	cur, ok := parseDevicesList(current)
	if !ok {
		return rules[last:]
	}
	out := []specs.LinuxDeviceCgroup{}
	for _, k := range target.keys {
		if add := target.acc[k] &^ cur.acc[k]; add != 0 {
			out = append(out, ruleFor(k, true, add))
		}
	}
	for _, k := range cur.keys {
		if drop := cur.acc[k] &^ target.acc[k]; drop != 0 {
			out = append(out, ruleFor(k, false, drop))
		}
	}
	return out
}

//go:build linux

package rootfs

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is the parsed form of an OCI mount's options, following runc's
// libcontainer/specconv parseMountOptions.
type mountOptions struct {
	// flags are the MS_* flags to set (no propagation flags).
	flags uintptr
	// cleared are the MS_* flags the user explicitly asked to be unset
	// ("rw", "suid", "dev", "exec", "atime", ...).
	cleared uintptr
	// propagation holds the propagation changes (MS_SHARED, MS_SLAVE|MS_REC,
	// ...) in order; each needs its own mount(2) call.
	propagation []uintptr
	// recAttrSet and recAttrClr are MOUNT_ATTR_* flags applied recursively
	// with mount_setattr(2) ("rro", "rnosuid", ...).
	recAttrSet, recAttrClr uint64
	// data are the remaining options, passed to the filesystem.
	data []string
	// tmpcopyup was requested. It is accepted and ignored (runc copies the
	// image's directory content into the new tmpfs; husk does not yet).
	tmpcopyup bool
}

type flagOpt struct {
	clear bool
	flag  uintptr
}

// mountFlagOptions maps mount(8) flag options to MS_* flags. A clear entry
// removes the flag instead of setting it.
var mountFlagOptions = map[string]flagOpt{
	"acl":           {false, unix.MS_POSIXACL},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noacl":         {true, unix.MS_POSIXACL},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"nosymfollow":   {false, unix.MS_NOSYMFOLLOW},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"symfollow":     {true, unix.MS_NOSYMFOLLOW},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions maps propagation options to MS_* propagation flags.
var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type recAttrOpt struct {
	clear bool
	attr  uint64
}

// recAttrOptions maps the recursive options of the runtime-spec (applied with
// mount_setattr(2) and AT_RECURSIVE) to MOUNT_ATTR_* flags.
var recAttrOptions = map[string]recAttrOpt{
	"rro":            {false, unix.MOUNT_ATTR_RDONLY},
	"rrw":            {true, unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {false, unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {true, unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {false, unix.MOUNT_ATTR_NODEV},
	"rdev":           {true, unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {false, unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {true, unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {false, unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {true, unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {false, unix.MOUNT_ATTR_RELATIME},
	"rnorelatime":    {true, unix.MOUNT_ATTR_RELATIME},
	"rnoatime":       {false, unix.MOUNT_ATTR_NOATIME},
	"ratime":         {true, unix.MOUNT_ATTR_NOATIME},
	"rstrictatime":   {false, unix.MOUNT_ATTR_STRICTATIME},
	"rnostrictatime": {true, unix.MOUNT_ATTR_STRICTATIME},
	"rnosymfollow":   {false, unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {true, unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// parseMountOptions splits OCI mount options into flags, propagation changes,
// recursive attributes and filesystem data, like runc. Later options win over
// earlier ones. Unknown options are filesystem data. The only errors are for
// options runc knows but husk does not implement (idmapped mounts).
func parseMountOptions(options []string) (mountOptions, error) {
	var o mountOptions
	for _, opt := range options {
		if f, ok := mountFlagOptions[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
				o.cleared |= f.flag
			} else {
				o.flags |= f.flag
				o.cleared &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if a, ok := recAttrOptions[opt]; ok {
			if a.clear {
				o.recAttrClr |= a.attr
				o.recAttrSet &^= a.attr
			} else {
				o.recAttrSet |= a.attr
				o.recAttrClr &^= a.attr
				// The atime attributes are an enum: setting one requires
				// clearing the whole field (mount_setattr(2)).
				if a.attr&unix.MOUNT_ATTR__ATIME == a.attr {
					o.recAttrClr |= unix.MOUNT_ATTR__ATIME
				}
			}
			continue
		}
		switch opt {
		case "defaults", "":
			// mount(8) no-ops; runc would pass "defaults" on as data, which
			// most filesystems reject.
			continue
		case "tmpcopyup":
			o.tmpcopyup = true
			continue
		case "idmap", "ridmap":
			return mountOptions{}, fmt.Errorf("mount option %q: idmapped mounts are not supported", opt)
		}
		o.data = append(o.data, opt)
	}
	return o, nil
}

// isBind reports whether the options ask for a bind mount.
func (o *mountOptions) isBind() bool { return o.flags&unix.MS_BIND != 0 }

// dataString is the filesystem data passed to mount(2).
func (o *mountOptions) dataString() string { return strings.Join(o.data, ",") }

// hasData reports whether the filesystem data sets key ("mode" matches
// "mode=755").
func (o *mountOptions) hasData(key string) bool {
	for _, d := range o.data {
		if k, _, _ := strings.Cut(d, "="); k == key {
			return true
		}
	}
	return false
}

// statfsToMountFlags converts statfs(2) f_flags to the MS_* flags a
// MS_BIND|MS_REMOUNT must repeat to keep them (runc's getMountFlags).
func statfsToMountFlags(stFlags int64) uintptr {
	var flags uintptr
	for _, f := range [...]struct {
		st int64
		ms uintptr
	}{
		{unix.ST_MANDLOCK, unix.MS_MANDLOCK},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_RELATIME, unix.MS_RELATIME},
		{unix.ST_SYNCHRONOUS, unix.MS_SYNCHRONOUS},
		{stNoSymFollow, unix.MS_NOSYMFOLLOW},
	} {
		if stFlags&f.st != 0 {
			flags |= f.ms
		}
	}
	return flags
}

// stNoSymFollow is ST_NOSYMFOLLOW (Linux 5.10), missing from x/sys/unix.
const stNoSymFollow = 0x2000

// mntLockFlags are the per-mount flags the kernel locks on mounts copied into
// a less privileged mount namespace (MNT_LOCK_*): a remount must keep them.
const mntLockFlags = unix.MS_RDONLY | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOSUID |
	unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_NODIRATIME | unix.MS_STRICTATIME

// mntAtimeFlags are the atime "enum" flags.
const mntAtimeFlags = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// KnownMountOptions lists the mount options husk implements (for the OCI
// features document): flag, propagation and recursive-attribute options,
// and "defaults". Anything else is passed to the filesystem as data;
// "tmpcopyup" is accepted but not implemented, so it is not listed.
func KnownMountOptions() []string {
	opts := []string{"defaults"}
	for o := range mountFlagOptions {
		opts = append(opts, o)
	}
	for o := range propagationOptions {
		opts = append(opts, o)
	}
	for o := range recAttrOptions {
		opts = append(opts, o)
	}
	sort.Strings(opts)
	return opts
}

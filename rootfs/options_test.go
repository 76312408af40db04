//go:build linux

package rootfs

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    mountOptions
		wantErr string
	}{
		{name: "empty"},
		{
			name: "containerd /dev",
			in:   []string{"nosuid", "strictatime", "mode=755", "size=65536k"},
			want: mountOptions{flags: unix.MS_NOSUID | unix.MS_STRICTATIME, data: []string{"mode=755", "size=65536k"}},
		},
		{
			name: "containerd /dev/pts",
			in:   []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			want: mountOptions{flags: unix.MS_NOSUID | unix.MS_NOEXEC, data: []string{"newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		},
		{
			name: "all set flags",
			in:   []string{"ro", "nosuid", "nodev", "noexec", "sync", "dirsync", "remount", "mand", "noatime", "nodiratime", "bind"},
			want: mountOptions{flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_SYNCHRONOUS |
				unix.MS_DIRSYNC | unix.MS_REMOUNT | unix.MS_MANDLOCK | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_BIND},
		},
		{
			name: "clearing flags",
			in:   []string{"rw", "suid", "dev", "exec", "atime", "diratime", "norelatime", "async"},
			want: mountOptions{cleared: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME |
				unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_SYNCHRONOUS},
		},
		{
			name: "later option wins: ro then rw",
			in:   []string{"ro", "rw"},
			want: mountOptions{cleared: unix.MS_RDONLY},
		},
		{
			name: "later option wins: rw then ro",
			in:   []string{"rw", "ro"},
			want: mountOptions{flags: unix.MS_RDONLY},
		},
		{
			name: "atime flags",
			in:   []string{"relatime", "strictatime"},
			want: mountOptions{flags: unix.MS_RELATIME | unix.MS_STRICTATIME},
		},
		{
			name: "rbind and propagation in order",
			in:   []string{"rbind", "rprivate", "shared", "rslave", "unbindable", "runbindable", "slave", "private", "rshared"},
			want: mountOptions{flags: unix.MS_BIND | unix.MS_REC, propagation: []uintptr{
				unix.MS_PRIVATE | unix.MS_REC, unix.MS_SHARED, unix.MS_SLAVE | unix.MS_REC, unix.MS_UNBINDABLE,
				unix.MS_UNBINDABLE | unix.MS_REC, unix.MS_SLAVE, unix.MS_PRIVATE, unix.MS_SHARED | unix.MS_REC,
			}},
		},
		{
			name: "rro",
			in:   []string{"rbind", "rro"},
			want: mountOptions{flags: unix.MS_BIND | unix.MS_REC, recAttrSet: unix.MOUNT_ATTR_RDONLY},
		},
		{
			name: "rro then rrw",
			in:   []string{"rro", "rrw"},
			want: mountOptions{recAttrClr: unix.MOUNT_ATTR_RDONLY},
		},
		{
			name: "recursive atime clears the atime field",
			in:   []string{"rnoatime", "rnosuid"},
			want: mountOptions{recAttrSet: unix.MOUNT_ATTR_NOATIME | unix.MOUNT_ATTR_NOSUID, recAttrClr: unix.MOUNT_ATTR__ATIME},
		},
		{
			name: "tmpcopyup and defaults",
			in:   []string{"defaults", "tmpcopyup", "mode=1777"},
			want: mountOptions{tmpcopyup: true, data: []string{"mode=1777"}},
		},
		{
			name: "unknown options are data",
			in:   []string{"lowerdir=/a:/b", "upperdir=/u", "xino=off", "RO", "rbind2"},
			want: mountOptions{data: []string{"lowerdir=/a:/b", "upperdir=/u", "xino=off", "RO", "rbind2"}},
		},
		{name: "idmap unsupported", in: []string{"rbind", "idmap"}, wantErr: "idmapped"},
		{name: "ridmap unsupported", in: []string{"ridmap"}, wantErr: "idmapped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseMountOptions(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("parseMountOptions(%q)\n got %+v\nwant %+v", tt.in, got, tt.want)
			}
		})
	}
}

func TestMountOptionsHelpers(t *testing.T) {
	o, err := parseMountOptions([]string{"bind", "mode=0755", "size=1m", "mode"})
	if err != nil {
		t.Fatal(err)
	}
	if !o.isBind() || o.dataString() != "mode=0755,size=1m,mode" {
		t.Fatalf("isBind=%v data=%q", o.isBind(), o.dataString())
	}
	for key, want := range map[string]bool{"mode": true, "size": true, "gid": false, "mod": false} {
		if got := o.hasData(key); got != want {
			t.Errorf("hasData(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestDelaysReadonly(t *testing.T) {
	tests := []struct {
		typ, dest string
		opts      []string
		want      bool
	}{
		{"tmpfs", "/run", []string{"ro"}, true},
		{"tmpfs", "/run", []string{"rw"}, false},
		{"devtmpfs", "/dev/", []string{"ro"}, true},
		{"bind", "/dev", []string{"rbind", "ro"}, false},
		{"proc", "/proc", []string{"ro"}, false},
	}
	for _, tt := range tests {
		o, _ := parseMountOptions(tt.opts)
		if tt.typ == "bind" {
			o.flags |= unix.MS_BIND
		}
		if got := delaysReadonly(tt.typ, tt.dest, o); got != tt.want {
			t.Errorf("delaysReadonly(%s, %s, %v) = %v, want %v", tt.typ, tt.dest, tt.opts, got, tt.want)
		}
	}
}

func TestStatfsToMountFlags(t *testing.T) {
	tests := []struct {
		st   int64
		want uintptr
	}{
		{0, 0},
		{unix.ST_RDONLY | unix.ST_NOSUID, unix.MS_RDONLY | unix.MS_NOSUID},
		{unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME, unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME},
		{unix.ST_NOATIME | unix.ST_NODIRATIME | unix.ST_SYNCHRONOUS | unix.ST_MANDLOCK,
			unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_SYNCHRONOUS | unix.MS_MANDLOCK},
		{stNoSymFollow, unix.MS_NOSYMFOLLOW},
	}
	for _, tt := range tests {
		if got := statfsToMountFlags(tt.st); got != tt.want {
			t.Errorf("statfsToMountFlags(%#x) = %#x, want %#x", tt.st, got, tt.want)
		}
	}
}

func TestCleanPath(t *testing.T) {
	for in, want := range map[string]string{
		"":             "/",
		"proc":         "/proc",
		"/dev/":        "/dev",
		"../../etc":    "/etc",
		"/a/../../b/.": "/b",
		"//x//y":       "/x/y",
	} {
		if got := cleanPath(in); got != want {
			t.Errorf("cleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseMountOptions checks that parsing never panics and that its result
// is consistent: flags set and cleared are disjoint, fs data holds no option
// the parser knows, and parsing is deterministic.
func FuzzParseMountOptions(f *testing.F) {
	for _, s := range []string{
		"", "ro", "nosuid,noexec,nodev,ro", "rbind,rro,rprivate", "nosuid,strictatime,mode=755,size=65536k",
		"rw,ro,rw", "idmap", "rnoatime,ratime", "lowerdir=/a:/b,upperdir=/u,workdir=/w",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := strings.Split(s, ",")
		o, err := parseMountOptions(in)
		if err != nil {
			if !slices.Contains(in, "idmap") && !slices.Contains(in, "ridmap") {
				t.Fatalf("unexpected error for %q: %v", s, err)
			}
			return
		}
		if o.flags&o.cleared != 0 {
			t.Fatalf("%q: flags %#x and cleared %#x overlap", s, o.flags, o.cleared)
		}
		const ptypes = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE
		if o.flags&ptypes != 0 {
			t.Fatalf("%q: propagation in flags %#x", s, o.flags)
		}
		for _, p := range o.propagation {
			if p&ptypes == 0 || p&^(ptypes|unix.MS_REC) != 0 {
				t.Fatalf("%q: bad propagation %#x", s, p)
			}
		}
		if (o.recAttrSet&o.recAttrClr)&^unix.MOUNT_ATTR__ATIME != 0 {
			t.Fatalf("%q: recursive set %#x and clear %#x overlap", s, o.recAttrSet, o.recAttrClr)
		}
		for _, d := range o.data {
			if d == "" {
				t.Fatalf("%q: empty data entry", s)
			}
			if again, err := parseMountOptions([]string{d}); err != nil || len(again.data) != 1 || again.flags != 0 ||
				again.cleared != 0 || len(again.propagation) != 0 || again.recAttrSet != 0 || again.recAttrClr != 0 || again.tmpcopyup {
				t.Fatalf("%q: data entry %q is a known option", s, d)
			}
		}
		if o2, _ := parseMountOptions(in); !reflect.DeepEqual(o, o2) {
			t.Fatalf("%q: parse is not deterministic", s)
		}
	})
}

//go:build linux

package rootfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// These tests mount in the test process' own mount namespace, under temp
// dirs only, and detach whatever is left there on cleanup.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
}

// scratch returns a temp dir whose mounts are detached on cleanup (before
// the dir itself is removed).
func scratch(t *testing.T) string {
	t.Helper()
	dir, err := realPath(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ms, _ := mountsUnder(dir)
		for i := len(ms) - 1; i >= 0; i-- {
			_ = unix.Unmount(ms[i].Mountpoint, unix.MNT_DETACH)
		}
	})
	return dir
}

func mountpointsUnder(t *testing.T, dir string) []string {
	t.Helper()
	ms, err := mountsUnder(dir)
	if err != nil {
		t.Fatal(err)
	}
	var mps []string
	for _, m := range ms {
		mps = append(mps, m.Mountpoint+" ("+m.FSType+")")
	}
	return mps
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMountRootfsOverlay(t *testing.T) {
	requireRoot(t)
	dir := scratch(t)
	lower, upper, work, target := filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "rootfs")
	mkdirs(t, lower, upper, work)
	mustWrite(t, filepath.Join(lower, "from-lower"), "lower\n")
	mounts := []mount.Mount{{
		Type: "overlay", Source: "overlay",
		Options: []string{"lowerdir=" + lower, "upperdir=" + upper, "workdir=" + work},
	}}
	if err := MountRootfs(mounts, target); err != nil {
		t.Fatalf("MountRootfs: %v", err)
	}
	if got := mountpointsUnder(t, target); len(got) != 1 || got[0] != target+" (overlay)" {
		t.Fatalf("mounts after MountRootfs: %v", got)
	}
	if b, err := os.ReadFile(filepath.Join(target, "from-lower")); err != nil || string(b) != "lower\n" {
		t.Fatalf("lower file through overlay: %q, %v", b, err)
	}
	mustWrite(t, filepath.Join(target, "new"), "x")
	// A nested mount below the rootfs goes too.
	mkdirs(t, filepath.Join(target, "sub"))
	if err := unix.Mount("tmpfs", filepath.Join(target, "sub"), "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}

	if err := UnmountRootfs(target); err != nil {
		t.Fatalf("UnmountRootfs: %v", err)
	}
	if got := mountpointsUnder(t, target); len(got) != 0 {
		t.Fatalf("left mounted: %v", got)
	}
	if _, err := os.Stat(filepath.Join(upper, "new")); err != nil {
		t.Errorf("write not in upperdir: %v", err)
	}
	// Idempotent, also for a missing target.
	if err := UnmountRootfs(target); err != nil {
		t.Errorf("second UnmountRootfs: %v", err)
	}
	if err := UnmountRootfs(filepath.Join(dir, "missing")); err != nil {
		t.Errorf("UnmountRootfs(missing): %v", err)
	}
	if err := UnmountRootfs("/"); err == nil {
		t.Error("UnmountRootfs(/) must refuse")
	}
}

func TestMountRootfsFailureLeavesNothing(t *testing.T) {
	requireRoot(t)
	dir := scratch(t)
	src := filepath.Join(dir, "src")
	mkdirs(t, src)
	tests := []struct {
		name     string
		preMount bool // a mount of ours already on target must survive
		mounts   []mount.Mount
		wantErr  string
	}{
		{
			name:    "unknown type",
			mounts:  []mount.Mount{{Type: "nosuchfs", Source: "none"}},
			wantErr: "mount nosuchfs on",
		},
		{
			name: "second mount fails",
			mounts: []mount.Mount{
				{Type: "bind", Source: src, Options: []string{"rbind"}},
				{Type: "tmpfs", Source: "tmpfs", Target: "sub"},
				{Type: "overlay", Source: "overlay", Options: []string{"lowerdir=" + filepath.Join(dir, "nope"), "upperdir=" + src, "workdir=" + src}},
			},
			wantErr: "mount overlay on",
		},
		{
			name:     "pre-existing mount is kept",
			preMount: true,
			mounts: []mount.Mount{
				{Type: "tmpfs", Source: "tmpfs"},
				{Type: "nosuchfs", Source: "none"},
			},
			wantErr: "mount nosuchfs on",
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := filepath.Join(dir, "rootfs", string(rune('a'+i)))
			mkdirs(t, filepath.Join(src, "sub"), target)
			var before []string
			if tt.preMount {
				if err := unix.Mount("tmpfs", target, "tmpfs", 0, "size=1m"); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = unix.Unmount(target, unix.MNT_DETACH) })
				before = mountpointsUnder(t, target)
			}
			err := MountRootfs(tt.mounts, target)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("MountRootfs error %v, want %q", err, tt.wantErr)
			}
			t.Logf("error: %v", err)
			if got := mountpointsUnder(t, target); strings.Join(got, ",") != strings.Join(before, ",") {
				t.Fatalf("mounts after failure %v, want %v", got, before)
			}
		})
	}
}

func TestMountRootfsEmpty(t *testing.T) {
	requireRoot(t)
	dir := scratch(t)
	target := filepath.Join(dir, "rootfs")
	mkdirs(t, target)
	mustWrite(t, filepath.Join(target, "populated"), "x")
	if err := MountRootfs(nil, target); err != nil {
		t.Fatal(err)
	}
	if got := mountpointsUnder(t, target); len(got) != 0 {
		t.Fatalf("mounted something: %v", got)
	}
	if _, err := os.Stat(filepath.Join(target, "populated")); err != nil {
		t.Fatal(err)
	}
}

func TestUnmountRootfsBusyDetaches(t *testing.T) {
	requireRoot(t)
	dir := scratch(t)
	target := filepath.Join(dir, "rootfs")
	if err := MountRootfs([]mount.Mount{{Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}}}, target); err != nil {
		t.Fatal(err)
	}
	busy, err := os.Create(filepath.Join(target, "open"))
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	var logs bytes.Buffer
	logger := log.L.Logger
	out := logger.Out
	logger.SetOutput(&logs)
	t.Cleanup(func() { logger.SetOutput(out) })

	start := time.Now()
	if err := UnmountRootfs(target); err != nil {
		t.Fatalf("UnmountRootfs: %v", err)
	}
	if d := time.Since(start); d < unmountBusyTimeout || d > unmountBusyTimeout+2*time.Second {
		t.Errorf("took %v, want about %v of retries", d, unmountBusyTimeout)
	}
	if got := mountpointsUnder(t, target); len(got) != 0 {
		t.Fatalf("left mounted: %v", got)
	}
	if !strings.Contains(logs.String(), "detaching") || !strings.Contains(logs.String(), target) {
		t.Errorf("no detach warning logged: %q", logs.String())
	}
}

//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/log"
	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
)

// unmountBusyTimeout bounds the EBUSY retries of one unmount call before it
// falls back to a lazy detach.
const unmountBusyTimeout = time.Second

func mountRootfs(mounts []mount.Mount, target string) error {
	if len(mounts) == 0 {
		return nil
	}
	if err := os.MkdirAll(target, 0o711); err != nil {
		return fmt.Errorf("create rootfs dir: %w", err)
	}
	real, err := realPath(target)
	if err != nil {
		return err
	}
	if real == "/" {
		return errors.New("refusing to mount a rootfs on /")
	}
	before, err := mountsUnder(real)
	if err != nil {
		return err
	}
	existing := map[int]bool{}
	for _, m := range before {
		existing[m.ID] = true
	}
	for _, m := range mounts {
		if err := m.Mount(real); err != nil {
			err = fmt.Errorf("mount %s on %s: %w", m.Type, target, err)
			if cerr := unmountAllBut(real, existing); cerr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", cerr))
			}
			return err
		}
	}
	return nil
}

func unmountRootfs(target string) error {
	real, err := realPath(target)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if real == "/" {
		return errors.New("refusing to unmount everything below /")
	}
	return unmountAllBut(real, nil)
}

// mountsUnder lists the mounts at or below dir, in mountinfo order.
func mountsUnder(dir string) ([]*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(dir))
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return ms, nil
}

// unmountAllBut unmounts every mount at or below dir except those in keep,
// deepest first and, on one mountpoint, topmost first. A few passes cover
// mounts that hid others.
func unmountAllBut(dir string, keep map[int]bool) error {
	deadline := time.Now().Add(unmountBusyTimeout)
	var errs []error
	for pass := 0; ; pass++ {
		ms, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		ms = slices.DeleteFunc(ms, func(m *mountinfo.Info) bool { return keep[m.ID] })
		if len(ms) == 0 {
			return nil
		}
		if pass == 3 {
			left := make([]string, len(ms))
			for i, m := range ms {
				left[i] = m.Mountpoint
			}
			return errors.Join(append(errs, fmt.Errorf("still mounted: %s", strings.Join(left, ", ")))...)
		}
		slices.Reverse(ms) // later mounts are on top
		slices.SortStableFunc(ms, func(a, b *mountinfo.Info) int {
			return strings.Count(b.Mountpoint, "/") - strings.Count(a.Mountpoint, "/")
		})
		errs = errs[:0]
		for _, m := range ms {
			if err := unmountOne(m.Mountpoint, deadline); err != nil {
				errs = append(errs, err)
			}
		}
	}
}

// unmountOne unmounts the top mount on mp, retrying EBUSY until deadline,
// then detaching it lazily. "Not mounted" is success.
func unmountOne(mp string, deadline time.Time) error {
	for {
		err := unix.Unmount(mp, 0)
		switch {
		case err == nil, errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
			return nil
		case !errors.Is(err, unix.EBUSY):
			return &os.PathError{Op: "umount", Path: mp, Err: err}
		case time.Now().Before(deadline):
			time.Sleep(50 * time.Millisecond)
			continue
		}
		log.L.WithField("mountpoint", mp).WithError(err).Warn("rootfs still busy, detaching it lazily")
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
			return &os.PathError{Op: "umount (detach)", Path: mp, Err: err}
		}
		return nil
	}
}

package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/husk-runtime/husk/process/cgroups"
	"github.com/husk-runtime/husk/rootfs"
)

// ForceDelete removes what is left of the container in bundle when its shim
// is gone: it kills the init (if it is still the process we started), every
// process of the cgroup, removes the cgroup and unmounts the rootfs. It is
// idempotent, and retriable: the state file is removed only once everything
// it names is gone, so a failed attempt leaves the record for the next one.
// The returned exit is the recorded one, or a SIGKILL exit.
func ForceDelete(ctx context.Context, bundle string) (Exit, error) {
	exit := Exit{Status: 128 + int(unix.SIGKILL), Timestamp: time.Now()}
	st, err := ReadState(bundle)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).Warn("read husk state; cleaning up what can be found")
	}
	var errs []error
	if st != nil {
		exit.Pid = st.Pid
		if st.Exit != nil {
			exit = *st.Exit
		}
		l := log.G(ctx).WithFields(log.Fields{"id": st.ID, "pid": st.Pid, "cgroup": st.CgroupsPath})
		// The cgroup first: its Delete kills every process in it, the init
		// included, and thaws a paused (v1-frozen) container, whose init
		// would otherwise not act on SIGKILL while we wait for it.
		if st.CgroupsPath != "" {
			cg, err := cgroups.Load(st.CgroupsPath)
			switch {
			case err == nil:
				if err := cg.Delete(); err != nil {
					errs = append(errs, fmt.Errorf("delete cgroup %s: %w", st.CgroupsPath, err))
				}
			case !errors.Is(err, fs.ErrNotExist):
				errs = append(errs, fmt.Errorf("load cgroup %s: %w", st.CgroupsPath, err))
			}
		}
		if alive(st.Pid, st.StartTime) {
			l.Info("killing the init of a container whose shim is gone")
			unix.Kill(st.Pid, unix.SIGKILL)
			if !waitGone(st.Pid, st.StartTime, 5*time.Second) {
				errs = append(errs, fmt.Errorf("container init %d still there 5s after SIGKILL", st.Pid))
			}
		}
		if st.MountedRootfs && st.Rootfs != "" {
			if err := rootfs.UnmountRootfs(st.Rootfs); err != nil {
				errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
			}
		}
	}
	// The record is written before husk mounts anything: without one (the
	// daemon's Delete removed it after cleaning up, or Create never got that
	// far) husk left no mount. A record that could not be read may hide one.
	if st == nil && !errors.Is(err, os.ErrNotExist) {
		if err := rootfs.UnmountRootfs(filepath.Join(bundle, "rootfs")); err != nil {
			errs = append(errs, fmt.Errorf("unmount rootfs: %w", err))
		}
	}
	if len(errs) > 0 {
		return exit, fmt.Errorf("clean up %s (state kept for a retry): %w", bundle, errors.Join(errs...))
	}
	if err := RemoveState(bundle); err != nil {
		return exit, err
	}
	return exit, nil
}

package process

import (
	"context"
	"errors"
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
// idempotent. The returned exit is the recorded one, or a SIGKILL exit.
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
		if alive(st.Pid, st.StartTime) {
			unix.Kill(st.Pid, unix.SIGKILL)
			if !waitGone(st.Pid, st.StartTime, 5*time.Second) {
				log.G(ctx).WithField("pid", st.Pid).Warn("container init still there after SIGKILL")
			}
		}
		if st.CgroupsPath != "" {
			if cg, err := cgroups.Load(st.CgroupsPath); err == nil {
				if err := cg.Delete(); err != nil {
					errs = append(errs, err)
				}
			}
		}
		if st.MountedRootfs && st.Rootfs != "" {
			if err := rootfs.UnmountRootfs(st.Rootfs); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// containerd mounts nothing itself here, but a shim that died between
	// mounting and writing its state leaves the bundle's rootfs mounted.
	if err := rootfs.UnmountRootfs(filepath.Join(bundle, "rootfs")); err != nil {
		errs = append(errs, err)
	}
	if err := RemoveState(bundle); err != nil {
		errs = append(errs, err)
	}
	return exit, errors.Join(errs...)
}

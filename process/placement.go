package process

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/husk-runtime/husk/process/cgroups"
)

// withPlacement sets cmd, which runs this binary, up so that its process
// enters the cgroup of p without being added after it starts (see
// cgroups.Placement): the v1 tasks files go to its C constructor
// (process/nsenter), and, if cloneInto, the cgroup2 dir to clone3
// (CLONE_INTO_CGROUP). Without cloneInto, or if the kernel refuses the
// clone, the caller adds the process with p.AddToDir once it runs.
func withPlacement(cmd *exec.Cmd, p *cgroups.Placement, cloneInto bool) {
	if len(p.Tasks) > 0 {
		fds := make([]string, len(p.Tasks))
		for i, f := range p.Tasks {
			fds[i] = strconv.Itoa(3 + len(cmd.ExtraFiles))
			cmd.ExtraFiles = append(cmd.ExtraFiles, f)
		}
		cmd.Env = append(cmd.Env, cgroupFdsEnv+"="+strings.Join(fds, ","))
	}
	if p.Dir != nil && cloneInto {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(p.Dir.Fd())
	}
}

// StartInCgroup starts cmd, which must run this binary (the shim daemon),
// in the cgroup cg the way container processes enter theirs, without the
// cgroup.procs write that waits for an RCU grace period on cgroup v1. It
// returns the command that was started (a copy of cmd if the first start
// had to be retried without CLONE_INTO_CGROUP).
func StartInCgroup(cmd *exec.Cmd, cg cgroups.Cgroup) (*exec.Cmd, error) {
	place, err := cg.Placement()
	if err != nil {
		// Start it where it is, then move it.
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		if err := cg.Add(cmd.Process.Pid); err != nil {
			return cmd, fmt.Errorf("add %d to cgroup %s: %w", cmd.Process.Pid, cg.Path(), err)
		}
		return cmd, nil
	}
	defer place.Close()
	withPlacement(cmd, place, true)
	err = cmd.Start()
	if err != nil && cmd.SysProcAttr.UseCgroupFD && cloneIntoUnsupported(err) {
		cmd = withoutCgroupFD(cmd)
		err = cmd.Start()
	}
	if err != nil {
		return nil, err
	}
	if cmd.SysProcAttr == nil || !cmd.SysProcAttr.UseCgroupFD {
		if err := place.AddToDir(cmd.Process.Pid); err != nil {
			return cmd, err
		}
	}
	return cmd, nil
}

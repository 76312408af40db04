package process

import (
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

package process

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// selfExe is the binary that container inits are started from: the shim's
// own executable, but never through a path a container could write back to
// (CVE-2019-5736: a container opening /proc/<init>/exe for writing must not
// reach the host binary).
//
// The preferred form is a detached, read-only bind mount of the binary
// (open_tree + mount_setattr): no copy, no memory, and a write through
// /proc/<pid>/exe fails with EROFS. Where the kernel refuses that, a sealed
// memfd copy is used instead.
type selfExe struct {
	f *os.File
}

// minExeFd keeps the handle above the fds exec.Cmd dup2s into the child
// (stdio and ExtraFiles), so the child's /proc/self/fd/N still names it.
const minExeFd = 100

func openSelfExe() (*selfExe, error) {
	fd, err := readOnlyBind("/proc/self/exe")
	if err != nil {
		fd, err = sealedCopy("/proc/self/exe")
		if err != nil {
			return nil, err
		}
	}
	high, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, minExeFd)
	unix.Close(fd)
	if err != nil {
		return nil, fmt.Errorf("dup self exe handle: %w", err)
	}
	return &selfExe{f: os.NewFile(uintptr(high), "husk-init")}, nil
}

// path is what the child execs: resolved by the kernel in the forked child,
// whose fd table is a copy of ours.
func (s *selfExe) path() string {
	return fmt.Sprintf("/proc/self/fd/%d", s.f.Fd())
}

func (s *selfExe) Close() error { return s.f.Close() }

func readOnlyBind(path string) (int, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("open_tree %s: %w", path, err)
	}
	attr := &unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOSUID}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, attr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("make %s bind read-only: %w", path, err)
	}
	return fd, nil
}

func sealedCopy(path string) (int, error) {
	src, err := os.Open(path)
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("husk-init", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	dst := os.NewFile(uintptr(fd), "husk-init")
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return -1, fmt.Errorf("copy %s to memfd: %w", path, err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(dst.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		dst.Close()
		return -1, fmt.Errorf("seal memfd: %w", err)
	}
	nfd, err := unix.Dup(int(dst.Fd()))
	dst.Close()
	if err != nil {
		return -1, fmt.Errorf("dup memfd: %w", err)
	}
	return nfd, nil
}

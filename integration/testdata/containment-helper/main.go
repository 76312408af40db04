// Command containment-helper is run inside containers by
// integration/containment_test.go. It is built static (CGO_ENABLED=0) into a
// temp dir and bind-mounted read-only into the container at /helper.
//
// Each subcommand prints one "key value" line per probe, where value is "ok"
// or the errno name (EPERM, EACCES, ...), so the test can tell a seccomp or
// capability refusal from any other failure:
//
//	helper syscalls   keyctl, reboot, mount, sethostname, personality, sockets
//	helper fds        every open fd and what it points to
//	helper cwd        getcwd, and whether ".." from the cwd leads to "/"
//	helper exe        CVE-2019-5736 probes on every other process's exe
package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: helper syscalls|fds|cwd|exe")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "syscalls":
		syscalls()
	case "fds":
		fds()
	case "cwd":
		cwd()
	case "exe":
		exe()
	default:
		fmt.Fprintf(os.Stderr, "unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}

func res(err error) string {
	if err == nil {
		return "ok"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
		return "errno" + strconv.Itoa(int(errno))
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

func errnoRes(errno syscall.Errno) string {
	if errno == 0 {
		return "ok"
	}
	return res(errno)
}

func syscalls() {
	// keyctl(KEYCTL_JOIN_SESSION_KEYRING): blocked by containerd's default
	// profile, allowed without one.
	_, err := unix.KeyctlJoinSessionKeyring("husk-test")
	fmt.Println("keyctl", res(err))
	// add_key: same family.
	_, err = unix.AddKey("user", "husk-test", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
	fmt.Println("add_key", res(err))
	// reboot with wrong magic numbers: never reboots anything; EPERM without
	// CAP_SYS_BOOT or under seccomp, EINVAL when the call reached the magic check.
	_, _, e := unix.RawSyscall6(unix.SYS_REBOOT, 0, 0, 0, 0, 0, 0)
	fmt.Println("reboot", errnoRes(e))
	err = unix.Mount("husk", "/tmp", "tmpfs", 0, "size=1m")
	fmt.Println("mount", res(err))
	if err == nil {
		unix.Unmount("/tmp", 0)
	}
	fmt.Println("sethostname", res(unix.Sethostname([]byte("husk-helper"))))
	// personality(0xffffffff) only queries.
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	fmt.Println("personality_query", errnoRes(e))
	// personality(PER_LINUX32 = 0x0008): in the default profile's allowlist.
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0x0008, 0, 0)
	fmt.Println("personality_linux32", errnoRes(e))
	// personality(ADDR_NO_RANDOMIZE = 0x0040000): not in it.
	_, _, e = unix.RawSyscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0)
	fmt.Println("personality_no_randomize", errnoRes(e))
	unix.RawSyscall(unix.SYS_PERSONALITY, 0, 0, 0) // back to PER_LINUX
	for _, s := range []struct {
		name   string
		domain int
	}{{"socket_inet", unix.AF_INET}, {"socket_inet6", unix.AF_INET6}, {"socket_unix", unix.AF_UNIX}} {
		fd, err := unix.Socket(s.domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		fmt.Println(s.name, res(err))
	}
}

// fds lists the open fds. It uses raw system calls only, so the listing is
// not disturbed by fds of the Go runtime (an os.File on a directory would
// bring the netpoller's epoll and eventfd). The directory handle used to
// list them is reported as "self".
func fds() {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error", res(err))
		os.Exit(1)
	}
	var names []string
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(dfd, buf)
		if err != nil {
			fmt.Println("error", res(err))
			os.Exit(1)
		}
		if n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	for _, n := range names {
		if n == strconv.Itoa(dfd) {
			fmt.Println("fd", n, "self")
			continue
		}
		target, err := os.Readlink("/proc/self/fd/" + n)
		if err != nil {
			target = "readlink:" + res(err)
		}
		fmt.Println("fd", n, strings.ReplaceAll(target, " ", "_"))
	}
}

// cwd reports getcwd and whether climbing ".." from the cwd ends at the
// container's "/": a cwd outside the root climbs to the host's root instead.
func cwd() {
	wd, err := unix.Getwd()
	if err != nil {
		fmt.Println("getcwd", res(err))
	} else {
		fmt.Println("getcwd", wd)
	}
	var root, top unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		fmt.Println("error", res(err))
		os.Exit(1)
	}
	if err := unix.Stat(strings.Repeat("../", 64), &top); err != nil {
		fmt.Println("climb", res(err))
		return
	}
	fmt.Println("climb_reaches_root", top.Dev == root.Dev && top.Ino == root.Ino)
}

// exe probes, for every other process it can see, the CVE-2019-5736 paths:
// opening /proc/<pid>/exe for writing, and holding an O_PATH handle on it and
// reopening that through /proc/self/fd for writing (what the exploit does
// once the runtime exited). It also reports whether the handle's mount is
// read-only.
func exe() {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		fmt.Println("error", res(err))
		os.Exit(1)
	}
	self := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		p := fmt.Sprintf("/proc/%d/exe", pid)
		link, err := os.Readlink(p)
		if err != nil {
			link = "readlink:" + res(err)
		}
		line := fmt.Sprintf("pid %d exe=%s", pid, strings.ReplaceAll(link, " ", "_"))
		fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		line += " open_wr=" + res(err)
		h, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			line += " open_path=" + res(err)
			fmt.Println(line)
			continue
		}
		var st unix.Statfs_t
		if err := unix.Fstatfs(h, &st); err == nil {
			line += fmt.Sprintf(" ro=%v", st.Flags&unix.ST_RDONLY != 0)
		}
		fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", h), unix.O_WRONLY|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		line += " reopen_wr=" + res(err)
		fd, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", h), unix.O_RDWR|unix.O_TRUNC|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		line += " reopen_trunc=" + res(err)
		unix.Close(h)
		fmt.Println(line)
	}
}

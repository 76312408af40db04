package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/containerd/console"
	"github.com/containerd/fifo"
	"github.com/containerd/log"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// consoleFd is where a terminal process finds the socket it sends its pty
// master back on.
const consoleFd = 4

// setupConsole runs in the container (after pivot_root, so /dev/ptmx is the
// container's devpts): it opens a pty, sends the master to the shim, binds
// the slave on /dev/console and makes it the process's controlling terminal
// and stdio.
func setupConsole(size *specs.Box, bindConsole bool) error {
	master, slavePath, err := console.NewPty()
	if err != nil {
		return fmt.Errorf("open pty in container devpts: %w", err)
	}
	defer master.Close()
	if size != nil {
		if err := master.Resize(console.WinSize{Height: uint16(size.Height), Width: uint16(size.Width)}); err != nil {
			return fmt.Errorf("set console size: %w", err)
		}
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open pty slave %s: %w", slavePath, err)
	}
	defer slave.Close()
	if bindConsole {
		if err := bindDevConsole(slavePath); err != nil {
			return err
		}
	}
	rights := unix.UnixRights(int(master.Fd()))
	if err := unix.Sendmsg(consoleFd, []byte("c"), rights, nil, 0); err != nil {
		return fmt.Errorf("send pty master to shim: %w", err)
	}
	unix.Close(consoleFd)
	for fd := 0; fd < 3; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup pty slave to fd %d: %w", fd, err)
		}
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make pty the controlling terminal: %w", err)
	}
	return nil
}

func bindDevConsole(slavePath string) error {
	const dst = "/dev/console"
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	f.Close()
	if err := unix.Mount(slavePath, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", slavePath, dst, err)
	}
	return nil
}

// recvConsole receives the pty master the init sent on sock.
func recvConsole(sock *os.File) (console.Console, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	rc, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	var oobn int
	var rerr error
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, fmt.Errorf("receive pty master: no fd in message (%v)", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, fmt.Errorf("receive pty master: bad rights (%v)", err)
	}
	f := os.NewFile(uintptr(fds[0]), "pty-master")
	c, err := console.ConsoleFromFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return c, nil
}

// attachConsole copies between the pty master and containerd's FIFOs.
func (p *processIO) attachConsole(ctx context.Context, con console.Console, s Stdio) error {
	p.closers = append(p.closers, con)
	p.console = con
	if s.Stdin != "" {
		in, err := fifo.OpenFifo(context.WithoutCancel(ctx), s.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open stdin fifo %s: %w", s.Stdin, err)
		}
		p.closers = append(p.closers, in)
		go func() {
			bp := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(bp)
			io.CopyBuffer(con, in, *bp)
			in.Close()
		}()
	}
	if s.Stdout == "" {
		return nil
	}
	w, err := fifo.OpenFifo(context.WithoutCancel(ctx), s.Stdout, syscall.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open stdout fifo %s: %w", s.Stdout, err)
	}
	rd, err := fifo.OpenFifo(context.WithoutCancel(ctx), s.Stdout, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return fmt.Errorf("open stdout fifo %s for reading: %w", s.Stdout, err)
	}
	p.closers = append(p.closers, w, rd)
	p.copying.Add(1)
	go func() {
		defer p.copying.Done()
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		// The master reads EIO once the last slave fd is closed: the end.
		if _, err := io.CopyBuffer(w, con, *bp); err != nil && !isEIO(err) {
			log.G(ctx).WithError(err).Warn("copy console output")
		}
		w.Close()
		rd.Close()
	}()
	return nil
}

func isEIO(err error) bool { return errors.Is(err, syscall.EIO) }

// Resize sets the process's terminal size.
func (p *processIO) Resize(width, height uint32) error {
	if p.console == nil {
		return fmt.Errorf("process has no terminal: %w", ErrWrongState)
	}
	return p.console.Resize(console.WinSize{Width: uint16(width), Height: uint16(height)})
}

package process

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
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
func recvConsole(sock *os.File) (*ptyMaster, error) {
	fd, err := recvFd(sock)
	if err != nil {
		return nil, fmt.Errorf("receive pty master: %w", err)
	}
	return newPtyMaster(fd)
}

// ptyMaster is the shim's end of a process's terminal. Its fd is
// non-blocking and belongs to Go's poller, so that Close interrupts a
// pending Read (containerd/console's Fd() would turn the fd back to blocking
// mode, and a blocked Read would then keep the fd, and the terminal, open).
type ptyMaster struct {
	f  *os.File
	rc syscall.RawConn
}

func newPtyMaster(fd int) (*ptyMaster, error) {
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pty master: not a terminal: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("pty master: set non-blocking: %w", err)
	}
	f := os.NewFile(uintptr(fd), "pty-master")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pty master: %w", err)
	}
	return &ptyMaster{f: f, rc: rc}, nil
}

func (m *ptyMaster) Read(b []byte) (int, error)  { return m.f.Read(b) }
func (m *ptyMaster) Write(b []byte) (int, error) { return m.f.Write(b) }

// Close closes the master; once the shim's (only) fd is gone the kernel
// hangs the terminal up.
func (m *ptyMaster) Close() error { return m.f.Close() }

// Resize sets the terminal's window size; the kernel sends SIGWINCH to the
// terminal's foreground process group.
func (m *ptyMaster) Resize(width, height uint32) error {
	if width > 0xffff || height > 0xffff {
		return fmt.Errorf("terminal size %dx%d out of range: %w", width, height, ErrInvalidSpec)
	}
	var err error
	cerr := m.rc.Control(func(fd uintptr) {
		err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(height), Col: uint16(width)})
	})
	if cerr != nil {
		return fmt.Errorf("resize terminal: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("resize terminal: %w", err)
	}
	return nil
}

// attachConsole copies between the pty master and containerd's stdio: stdin
// from its FIFO into the terminal, the terminal's output to a FIFO, a
// file:// log or a binary:// logger (stderr is part of the terminal's
// output).
//
// Once stdin has ended (CloseIO, and every client closed its end) the
// terminal is hung up, as the runc shim does: there is no other way to end
// the input of a terminal; its readers see EOF or SIGHUP.
func (p *processIO) attachConsole(ctx context.Context, con *ptyMaster, s Stdio) error {
	p.closers = append(p.closers, con)
	p.console = con
	if s.Stdin != "" {
		in, err := p.openStdin(ctx, s.Stdin)
		if err != nil {
			return err
		}
		go func() {
			bp := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(bp)
			if _, err := io.CopyBuffer(con, in, *bp); err == nil {
				// EOF on stdin, not a closed terminal or FIFO.
				log.G(ctx).Debug("stdin of a terminal ended: hanging up")
				con.Close()
			}
		}()
	}
	w, err := p.consoleSink(ctx, s.Stdout)
	if err != nil {
		return err
	}
	p.copying.Add(1)
	go func() {
		defer p.copying.Done()
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		// The master reads EIO once the last slave fd is closed: the end.
		// After a hang-up (or Close) it reads "file already closed".
		if _, err := io.CopyBuffer(w, con, *bp); err != nil && !isEIO(err) && !errors.Is(err, os.ErrClosed) {
			log.G(ctx).WithError(err).Warn("copy console output")
		}
		w.Close()
	}()
	return nil
}

// consoleSink opens where a terminal's output goes. Closing it ends the
// output (and closes what consoleSink opened).
func (p *processIO) consoleSink(ctx context.Context, target string) (io.WriteCloser, error) {
	if target == "" {
		// Nobody reads: drain, or the process blocks on a full terminal.
		return nopWriteCloser{io.Discard}, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse stdout %q: %w", target, err)
	}
	switch u.Scheme {
	case "file":
		f, err := openLogFile(u.Path)
		if err != nil {
			return nil, err
		}
		p.closers = append(p.closers, f)
		return f, nil
	case "binary", "binary-v2":
		l, out, errW, err := startLogger(ctx, p.exits, p.id, u)
		if err != nil {
			return nil, err
		}
		errW.Close() // a terminal has no separate stderr
		p.logger = l
		p.closers = append(p.closers, out)
		return out, nil
	case "", "fifo":
	default:
		return nil, fmt.Errorf("log URI scheme %q of %q is not supported", u.Scheme, target)
	}
	w, err := fifo.OpenFifo(context.WithoutCancel(ctx), u.Path, syscall.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdout fifo %s: %w", u.Path, err)
	}
	// Hold a reader too, so the copy never gets EPIPE while containerd's
	// reader reconnects.
	rd, err := fifo.OpenFifo(context.WithoutCancel(ctx), u.Path, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open stdout fifo %s for reading: %w", u.Path, err)
	}
	p.closers = append(p.closers, w, rd)
	return multiCloser{w, rd}, nil
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// multiCloser writes to its first element and closes all.
type multiCloser []io.WriteCloser

func (m multiCloser) Write(b []byte) (int, error) { return m[0].Write(b) }
func (m multiCloser) Close() error {
	var errs []error
	for _, c := range m {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func isEIO(err error) bool { return errors.Is(err, syscall.EIO) }

// Resize sets the process's terminal size.
func (p *processIO) Resize(width, height uint32) error {
	if p.console == nil {
		return fmt.Errorf("process has no terminal: %w", ErrWrongState)
	}
	return p.console.Resize(width, height)
}

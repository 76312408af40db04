package process

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/console"
	"github.com/containerd/fifo"
	"golang.org/x/sys/unix"
)

// The process's stdin outlives a client that goes away; it ends once
// CloseStdin (CloseIO) was called and every client closed its end, after
// everything written was delivered.
func TestStdinHeldUntilCloseStdin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stdin")
	if err := unix.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := newProcessIO(ctx, NewExits(make(chan Exit)), "c1", Stdio{Stdin: path})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p.closeChildEnds(); p.Close() }()

	client, err := fifo.OpenFifo(ctx, path, syscall.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	// The client's data, then its CloseIO before it closes its end (ctr's
	// order): nothing may be lost.
	p.CloseStdin()
	client.Close()
	got, err := readAllTimeout(p.childIn, 5*time.Second)
	if err != nil {
		t.Fatalf("reading the child's stdin: %v (got %q)", err, got)
	}
	if got != "hello" {
		t.Errorf("child's stdin = %q, want %q", got, "hello")
	}

	// A client that goes away without CloseIO does not end stdin.
	path2 := filepath.Join(t.TempDir(), "stdin")
	if err := unix.Mkfifo(path2, 0o600); err != nil {
		t.Fatal(err)
	}
	p2, err := newProcessIO(ctx, NewExits(make(chan Exit)), "c1", Stdio{Stdin: path2})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { p2.closeChildEnds(); p2.Close() }()
	client, err = fifo.OpenFifo(ctx, path2, syscall.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	client.Write([]byte("a"))
	client.Close()
	buf := make([]byte, 8)
	if n, err := p2.childIn.Read(buf); err != nil || string(buf[:n]) != "a" {
		t.Fatalf("read %q, %v; want %q", buf[:n], err, "a")
	}
	p2.childIn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := p2.childIn.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("after the client left: read %q, %v; want the stdin still open (deadline exceeded)", buf[:n], err)
	}
	p2.childIn.SetReadDeadline(time.Time{})
	p2.CloseStdin()
	if got, err := readAllTimeout(p2.childIn, 5*time.Second); err != nil || got != "" {
		t.Errorf("after CloseStdin: %q, %v; want EOF", got, err)
	}
}

func readAllTimeout(f *os.File, d time.Duration) (string, error) {
	f.SetReadDeadline(time.Now().Add(d))
	defer f.SetReadDeadline(time.Time{})
	b, err := io.ReadAll(f)
	return string(b), err
}

// Close of the shim's pty master interrupts a pending Read (so a hang-up
// really closes the terminal), and Resize reaches the terminal.
func TestPtyMaster(t *testing.T) {
	m, slavePath, err := console.NewPty()
	if err != nil {
		t.Skipf("no pty: %v", err)
	}
	fd, err := unix.Dup(int(m.Fd()))
	m.Close()
	if err != nil {
		t.Fatal(err)
	}
	pm, err := newPtyMaster(fd)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(slavePath, os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		pm.Close()
		t.Fatal(err)
	}
	defer slave.Close()

	if err := pm.Resize(132, 45); err != nil {
		t.Fatal(err)
	}
	ws, err := unix.IoctlGetWinsize(int(slave.Fd()), unix.TIOCGWINSZ)
	if err != nil {
		t.Fatal(err)
	}
	if ws.Col != 132 || ws.Row != 45 {
		t.Errorf("terminal size %dx%d, want 132x45", ws.Col, ws.Row)
	}
	if err := pm.Resize(1<<16, 1); err == nil {
		t.Errorf("Resize to a width of 65536 succeeded")
	}

	if _, err := slave.Write([]byte("out\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := pm.Read(buf); err != nil || n == 0 {
		t.Fatalf("read from master: %q, %v", buf[:n], err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := pm.Read(buf) // nothing to read: blocks
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	pm.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("pending Read after Close returned %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not interrupt a pending Read")
	}
	// The terminal is hung up: the slave reads EOF or EIO, never blocks.
	slave.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := slave.Read(buf); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("slave read after the master closed: %q, %v; want a hang-up", buf[:n], err)
	}
}

package process

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/fifo"
	"github.com/containerd/log"
)

// Stdio names where a process's standard streams go, as containerd gives
// them: FIFO paths (the default), file:// URIs, or nothing (/dev/null).
type Stdio struct {
	Stdin    string
	Stdout   string
	Stderr   string
	Terminal bool
}

// processIO is a process's standard streams: the ends the child gets, and
// the copies between pipes and containerd's FIFOs.
//
// Stdin follows containerd's contract (the runc shim's): the shim holds a
// writer on the stdin FIFO of its own, so the process's stdin stays open
// while clients come and go (ctr task attach, a restarted CRI stream).
// CloseIO closes that writer; the process sees EOF once every client has
// closed its end too and everything written before has been delivered.
type processIO struct {
	// child ends, closed in the shim once the child holds them
	childIn, childOut, childErr *os.File

	stdinHold io.Closer // our writer on the stdin FIFO; CloseIO closes it
	stdinW    *os.File  // our end of the stdin pipe; closed at the FIFO's EOF
	console   *ptyMaster
	logger    *binaryLogger
	ctx       context.Context
	exits     *Exits
	id        string
	closers   []io.Closer
	copying   sync.WaitGroup
	once      sync.Once
	stdinMu   sync.Mutex
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newProcessIO(ctx context.Context, exits *Exits, id string, s Stdio) (_ *processIO, retErr error) {
	p := &processIO{ctx: context.WithoutCancel(ctx), exits: exits, id: id}
	defer func() {
		if retErr != nil {
			p.closeChildEnds()
			p.Close()
		}
	}()
	null, err := os.OpenFile(os.DevNull, os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	p.closers = append(p.closers, null)

	p.childIn, p.childOut, p.childErr = null, null, null
	if s.Terminal {
		// The pty is made inside the container; attachConsole copies.
		return p, nil
	}
	// stdin: FIFO -> pipe -> child
	if s.Stdin != "" {
		in, err := p.openStdin(ctx, s.Stdin)
		if err != nil {
			return nil, err
		}
		r, w, err := os.Pipe()
		if err != nil {
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		p.childIn, p.stdinW = r, w
		go func() {
			bp := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(bp)
			io.CopyBuffer(w, in, *bp)
			p.closeStdinPipe()
		}()
	}

	if u, err := url.Parse(s.Stdout); err == nil && (u.Scheme == "binary" || u.Scheme == "binary-v2") {
		l, out, errW, err := startLogger(ctx, exits, id, u)
		if err != nil {
			return nil, err
		}
		p.logger = l
		p.childOut, p.childErr = out, errW
		return p, nil
	}
	out, err := p.output(ctx, s.Stdout, null, nil)
	if err != nil {
		return nil, fmt.Errorf("stdout: %w", err)
	}
	p.childOut = out
	var same *os.File
	if s.Stderr == s.Stdout && isFileURI(s.Stdout) {
		same = out
	}
	errF, err := p.output(ctx, s.Stderr, null, same)
	if err != nil {
		return nil, fmt.Errorf("stderr: %w", err)
	}
	p.childErr = errF
	return p, nil
}

// openLogFile opens a file:// log for appending, creating it (and its
// directory) if needed.
func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create log dir for %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log file: %w", err)
	}
	return f, nil
}

func isFileURI(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "file"
}

// output returns the file the child writes one stream to.
func (p *processIO) output(ctx context.Context, target string, null, same *os.File) (*os.File, error) {
	if target == "" {
		return null, nil
	}
	if same != nil {
		return same, nil
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse %q: %w", target, err)
	}
	switch u.Scheme {
	case "file":
		// The child appends to the log file directly: nothing to copy.
		return openLogFile(u.Path)
	case "", "fifo":
	default:
		return nil, fmt.Errorf("log URI scheme %q of %q is not supported", u.Scheme, target)
	}
	path := u.Path
	w, err := fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open fifo %s: %w", path, err)
	}
	// Hold a reader too, as the runc shim does, so a writer never gets
	// EPIPE while containerd's reader reconnects.
	rd, err := fifo.OpenFifo(context.WithoutCancel(ctx), path, syscall.O_RDONLY, 0)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open fifo %s for reading: %w", path, err)
	}
	r, cw, err := os.Pipe()
	if err != nil {
		w.Close()
		rd.Close()
		return nil, fmt.Errorf("pipe: %w", err)
	}
	p.closers = append(p.closers, w, rd, r)
	p.copying.Add(1)
	go func() {
		defer p.copying.Done()
		bp := copyBufs.Get().(*[]byte)
		defer copyBufs.Put(bp)
		if _, err := io.CopyBuffer(w, r, *bp); err != nil {
			log.G(ctx).WithError(err).WithField("fifo", path).Warn("copy container output")
		}
		r.Close()
		w.Close()
		rd.Close()
	}()
	return cw, nil
}

// closeChildEnds closes the shim's copies of the child's ends, so the
// output copies see EOF when the container's last writer is gone.
func (p *processIO) closeChildEnds() {
	for _, f := range []*os.File{p.childIn, p.childOut, p.childErr} {
		if f != nil {
			f.Close()
		}
	}
}

// openStdin opens the stdin FIFO for reading, and for writing to hold it
// open until CloseStdin.
func (p *processIO) openStdin(ctx context.Context, path string) (io.ReadCloser, error) {
	// Both ends are opened here and now (fifo.OpenFifo may finish a
	// non-blocking open later, after a client that came and went already
	// made the reader see EOF). A non-blocking read open never waits, and
	// with our reader open the write open succeeds at once.
	in, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdin fifo %s: %w", path, err)
	}
	p.closers = append(p.closers, in)
	hold, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open stdin fifo %s for writing: %w", path, err)
	}
	p.stdinMu.Lock()
	p.stdinHold = hold
	p.stdinMu.Unlock()
	return in, nil
}

// CloseStdin (CloseIO) closes the shim's own writer on the stdin FIFO: the
// process's stdin ends once the clients' writers are closed too.
func (p *processIO) CloseStdin() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinHold != nil {
		p.stdinHold.Close()
		p.stdinHold = nil
	}
}

func (p *processIO) closeStdinPipe() {
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdinW != nil {
		p.stdinW.Close()
		p.stdinW = nil
	}
}

// Wait waits until all output has been copied (or the logging binary
// consumed it), at most for timeout.
func (p *processIO) Wait(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		p.copying.Wait()
		if p.logger != nil {
			p.logger.stop(p.ctx, timeout)
		}
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Close releases everything; output still in flight is abandoned.
func (p *processIO) Close() error {
	p.once.Do(func() {
		if p.logger != nil {
			p.logger.stop(p.ctx, 0)
		}
		p.CloseStdin()
		p.closeStdinPipe()
		for _, c := range p.closers {
			c.Close()
		}
	})
	return nil
}

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

	"github.com/containerd/console"
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
type processIO struct {
	// child ends, closed in the shim once the child holds them
	childIn, childOut, childErr *os.File

	stdinW  *os.File // our end of the stdin pipe; CloseIO closes it
	console console.Console
	logger  *binaryLogger
	ctx     context.Context
	closers []io.Closer
	copying sync.WaitGroup
	once    sync.Once
	stdinMu sync.Mutex
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func newProcessIO(ctx context.Context, exits *Exits, id string, s Stdio) (_ *processIO, retErr error) {
	p := &processIO{ctx: context.WithoutCancel(ctx)}
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
		in, err := fifo.OpenFifo(context.WithoutCancel(ctx), s.Stdin, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return nil, fmt.Errorf("open stdin fifo %s: %w", s.Stdin, err)
		}
		r, w, err := os.Pipe()
		if err != nil {
			in.Close()
			return nil, fmt.Errorf("stdin pipe: %w", err)
		}
		p.childIn, p.stdinW = r, w
		p.closers = append(p.closers, in)
		go func() {
			bp := copyBufs.Get().(*[]byte)
			defer copyBufs.Put(bp)
			io.CopyBuffer(w, in, *bp)
			p.CloseStdin()
			in.Close()
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
		if err := os.MkdirAll(filepath.Dir(u.Path), 0o755); err != nil {
			return nil, fmt.Errorf("create log dir for %s: %w", u.Path, err)
		}
		f, err := os.OpenFile(u.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_CLOEXEC, 0o640)
		if err != nil {
			return nil, fmt.Errorf("open log file: %w", err)
		}
		return f, nil
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

// CloseStdin closes the process's stdin (CloseIO).
func (p *processIO) CloseStdin() {
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
		for _, c := range p.closers {
			c.Close()
		}
	})
	return nil
}

package process

import (
	"sync"
	"time"
)

// Exit is the end of a process: its host pid, its status (the exit code, or
// 128+signal), and when it was reaped.
type Exit struct {
	Pid       int
	Status    int
	Timestamp time.Time
}

// Exits routes the exits of the shim's children (reaped by the one reaper
// of the shim) to whoever watches their pid.
//
// A child can exit before its parent has learnt its pid (fork returned, the
// child died, the reaper reaped it, and only then did the starting goroutine
// call Watch). So while any start is in flight (between BeginStart and its
// done func), exits of pids nobody watches are kept; when no start is in
// flight they belong to nobody we know (reparented grandchildren) and are
// dropped.
type Exits struct {
	mu       sync.Mutex
	watchers map[int]chan Exit
	pending  map[int]Exit
	starting int
}

// NewExits returns an exit router fed by src; it runs until src is closed.
func NewExits(src <-chan Exit) *Exits {
	e := &Exits{
		watchers: make(map[int]chan Exit),
		pending:  make(map[int]Exit),
	}
	go e.run(src)
	return e
}

func (e *Exits) run(src <-chan Exit) {
	for x := range src {
		e.deliver(x)
	}
}

func (e *Exits) deliver(x Exit) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if ch, ok := e.watchers[x.Pid]; ok {
		delete(e.watchers, x.Pid)
		ch <- x // buffered, never blocks
		return
	}
	if e.starting > 0 {
		e.pending[x.Pid] = x
	}
}

// BeginStart marks a start in flight; call the returned func once the child's
// pid is watched (or the start failed).
func (e *Exits) BeginStart() (done func()) {
	e.mu.Lock()
	e.starting++
	e.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			e.starting--
			if e.starting == 0 {
				clear(e.pending)
			}
			e.mu.Unlock()
		})
	}
}

// Watch returns a channel that receives pid's exit exactly once.
func (e *Exits) Watch(pid int) <-chan Exit {
	ch := make(chan Exit, 1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if x, ok := e.pending[pid]; ok {
		delete(e.pending, pid)
		ch <- x
		return ch
	}
	e.watchers[pid] = ch
	return ch
}

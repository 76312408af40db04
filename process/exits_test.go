package process

import (
	"testing"
	"time"
)

func recvExit(t *testing.T, ch <-chan Exit) (Exit, bool) {
	t.Helper()
	select {
	case e := <-ch:
		return e, true
	case <-time.After(200 * time.Millisecond):
		return Exit{}, false
	}
}

func TestExitsRouting(t *testing.T) {
	tests := []struct {
		name      string
		starting  bool // a start is in flight when the exit arrives
		watchLate bool // Watch is called after the exit arrived
		want      bool
	}{
		{name: "watched before exit", want: true},
		{name: "exit before watch during start", starting: true, watchLate: true, want: true},
		{name: "unknown exit outside a start is dropped", watchLate: true, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := make(chan Exit)
			e := NewExits(src)
			defer close(src)
			var done func()
			if tt.starting {
				done = e.BeginStart()
			}
			var ch <-chan Exit
			if !tt.watchLate {
				ch = e.Watch(42)
			}
			src <- Exit{Pid: 42, Status: 3}
			src <- Exit{Pid: 7, Status: 1} // sync point: the first exit was delivered
			if tt.watchLate {
				ch = e.Watch(42)
			}
			if done != nil {
				done()
			}
			got, ok := recvExit(t, ch)
			if ok != tt.want {
				t.Fatalf("exit delivered = %v, want %v", ok, tt.want)
			}
			if ok && got.Status != 3 {
				t.Fatalf("status = %d, want 3", got.Status)
			}
		})
	}
}

func TestExitsPendingClearedAfterStarts(t *testing.T) {
	src := make(chan Exit)
	e := NewExits(src)
	defer close(src)
	done := e.BeginStart()
	src <- Exit{Pid: 5, Status: 9}
	src <- Exit{Pid: 6} // sync
	done()
	if _, ok := recvExit(t, e.Watch(5)); ok {
		t.Fatal("an exit kept past the last start was delivered to a later watcher of a reused pid")
	}
}

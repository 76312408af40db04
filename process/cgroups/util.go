package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// deleteTimeout bounds how long Delete waits for killed processes to leave.
const deleteTimeout = 5 * time.Second

// missingDirs lists, top-down, the directories of root+rel that do not exist
// yet, i.e. those a MkdirAll would create.
func missingDirs(root, rel string) []string {
	var out []string
	cur := root
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		if c == "" {
			continue
		}
		cur = filepath.Join(cur, c)
		if len(out) > 0 {
			out = append(out, cur)
			continue
		}
		if _, err := os.Lstat(cur); errors.Is(err, fs.ErrNotExist) {
			out = append(out, cur)
		}
	}
	return out
}

// removeDirs rmdirs dirs bottom-up (the reverse of missingDirs' order),
// ignoring errors: cleanup after a failed creation.
func removeDirs(dirs []string) {
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = unix.Rmdir(dirs[i])
	}
}

// rmdirTree rmdirs the cgroup dir and every cgroup below it, deepest first.
// EBUSY (a killed process not yet gone from the cgroup) is retried for a
// while, as the cgroups library does; a missing dir is not an error.
func rmdirTree(dir string) error {
	delay := 10 * time.Millisecond
	var err error
	for i := 0; i < 8; i++ {
		if i > 0 {
			time.Sleep(delay)
			delay *= 2
		}
		if err = rmdirTreeOnce(dir); err == nil {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return err
}

func rmdirTreeOnce(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := rmdirTreeOnce(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := unix.Rmdir(dir); err != nil && !errors.Is(err, unix.ENOENT) {
		return &fs.PathError{Op: "rmdir", Path: dir, Err: err}
	}
	return nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// signalPids sends sig to pids, ignoring processes that are already gone.
func signalPids(pids []int, sig syscall.Signal) error {
	var errs []error
	for _, pid := range pids {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("signal %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

func sortedUnique(pids []int) []int {
	slices.Sort(pids)
	return slices.Compact(pids)
}

// killAndWait SIGKILLs the cgroup's processes until it is empty or
// deleteTimeout passes.
func killAndWait(c Cgroup) error {
	deadline := time.Now().Add(deleteTimeout)
	for {
		pids, err := c.Pids()
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroups: %s: processes %v still running %v after SIGKILL", c.Path(), pids, deleteTimeout)
		}
		if err := c.KillAll(unix.SIGKILL); err != nil {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// explain decorates a write error of the kernel with the value asked for
// (and, for cpusets, what the parent allows).
func explain(op string, err error, requested map[string]string) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return fmt.Errorf("cgroups: %s: %w", op, err)
	}
	file := filepath.Base(pe.Path)
	v, ok := requested[file]
	if !ok {
		return fmt.Errorf("cgroups: %s: kernel rejected a value: %w", op, err)
	}
	msg := fmt.Sprintf("cgroups: %s: kernel rejected %s=%q", op, file, v)
	if file == "cpuset.cpus" || file == "cpuset.mems" {
		parent := filepath.Dir(filepath.Dir(pe.Path))
		for _, f := range []string{file + ".effective", "cpuset.effective_" + strings.TrimPrefix(file, "cpuset."), file} {
			if b, rerr := os.ReadFile(filepath.Join(parent, f)); rerr == nil {
				msg += fmt.Sprintf(" (parent allows %q)", strings.TrimSpace(string(b)))
				break
			}
		}
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// A snapshot holds the values of a cgroup's control files before a write so
// that they can be put back when the kernel rejects part of an update.
type snapshot []savedFile

type savedFile struct {
	path string
	kind fileKind
	data string
}

type fileKind int

const (
	scalar      fileKind = iota
	oomControl           // v1 memory.oom_control: only oom_kill_disable is writable
	v1Throttle           // v1 blkio.throttle.*: "maj:min value" lines, 0 removes
	v1Devices            // v1 devices.list → devices.deny "a" + devices.allow lines
	v2IOMax              // v2 io.max: "maj:min rbps=.. wbps=.." lines
	v1WeightDev          // v1 blkio.bfq.weight_device: "maj:min weight" lines
)

// save reads dir/name for each file that exists. Names may be globs.
func (s *snapshot) save(dir string, kind fileKind, names ...string) {
	for _, n := range names {
		matches := []string{filepath.Join(dir, n)}
		if strings.ContainsAny(n, "*?[") {
			matches, _ = filepath.Glob(filepath.Join(dir, n))
		}
		for _, p := range matches {
			if b, err := os.ReadFile(p); err == nil {
				*s = append(*s, savedFile{path: p, kind: kind, data: string(b)})
			}
		}
	}
}

// restore writes back every saved file whose content changed. Writes that
// fail are retried in later passes, which resolves ordering constraints such
// as memory.limit_in_bytes <= memory.memsw.limit_in_bytes.
func (s snapshot) restore() {
	for pass := 0; pass < 3; pass++ {
		failed := false
		for _, f := range s {
			cur, err := os.ReadFile(f.path)
			if err != nil || string(cur) == f.data {
				continue
			}
			if err := f.writeBack(string(cur)); err != nil {
				failed = true
			}
		}
		if !failed {
			return
		}
	}
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func write(path, data string) error {
	return os.WriteFile(path, []byte(data), 0)
}

func (f savedFile) writeBack(cur string) error {
	switch f.kind {
	case oomControl:
		for _, l := range lines(f.data) {
			if v, ok := strings.CutPrefix(l, "oom_kill_disable "); ok {
				return write(f.path, v)
			}
		}
		return nil
	case v1Throttle, v1WeightDev, v2IOMax:
		var errs []error
		old := map[string]bool{}
		for _, l := range lines(f.data) {
			dev, _, _ := strings.Cut(l, " ")
			old[dev] = true
			if err := write(f.path, l); err != nil {
				errs = append(errs, err)
			}
		}
		for _, l := range lines(cur) {
			dev, _, _ := strings.Cut(l, " ")
			if old[dev] {
				continue
			}
			reset := dev + " 0"
			switch f.kind {
			case v2IOMax:
				reset = dev + " rbps=max wbps=max riops=max wiops=max"
			case v1WeightDev:
				continue // no way to "unset" a per-device weight
			}
			if err := write(f.path, reset); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	case v1Devices:
		dir := filepath.Dir(f.path)
		if err := write(filepath.Join(dir, "devices.deny"), "a"); err != nil {
			return err
		}
		for _, l := range lines(f.data) {
			if err := write(filepath.Join(dir, "devices.allow"), l); err != nil {
				return err
			}
		}
		return nil
	default:
		return write(f.path, strings.TrimSpace(f.data))
	}
}

// watchers tracks the files behind OOMEvents channels so that Delete can
// stop their goroutines.
type watchers struct {
	mu    sync.Mutex
	files []*os.File
}

func (w *watchers) add(f *os.File) {
	w.mu.Lock()
	w.files = append(w.files, f)
	w.mu.Unlock()
}

func (w *watchers) closeAll() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, f := range w.files {
		_ = f.Close()
	}
	w.files = nil
}

// pollableFile wraps a raw fd (eventfd, inotify) into an *os.File managed
// by the Go poller, so that reads do not pin a thread and Close unblocks them.
func pollableFile(fd int, name string) (*os.File, error) {
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

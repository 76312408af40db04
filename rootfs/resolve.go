//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// root is an open handle on a container rootfs. Every lookup through it is
// confined to the rootfs: symlinks resolve as if the rootfs were "/".
type root struct {
	path string   // absolute, symlink-free host path of the rootfs
	dir  *os.File // O_PATH|O_DIRECTORY handle on path
}

func openRoot(p string) (*root, error) {
	f, err := os.OpenFile(p, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open rootfs: %w", err)
	}
	return &root{path: p, dir: f}, nil
}

func (r *root) Close() error { return r.dir.Close() }

// cleanPath makes p absolute and lexically clean; ".." cannot climb above "/".
func cleanPath(p string) string { return filepath.Clean("/" + p) }

// fdPath is the magic-link path of f, usable as a mount(2) source or target:
// the kernel acts on the inode the handle was opened on, so a symlink swapped
// in after the lookup cannot redirect the mount.
func fdPath(f *os.File) string { return "/proc/self/fd/" + strconv.Itoa(int(f.Fd())) }

// resolve returns the container path p with every symlink (dangling ones
// included) resolved inside the root, relative to the root: "" is the root
// itself. Creating missing components of the result can therefore never
// create anything outside the root.
func (r *root) resolve(p string) (string, error) {
	full, err := securejoin.SecureJoin(r.path, cleanPath(p))
	if err != nil {
		return "", fmt.Errorf("resolve %s in rootfs: %w", p, err)
	}
	rel, err := filepath.Rel(r.path, full)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("resolve %s in rootfs: %q escapes the root", p, full)
	}
	if rel == "." {
		return "", nil
	}
	return rel, nil
}

// openat2 wraps unix.Openat2, retrying the EAGAIN that RESOLVE_IN_ROOT and
// RESOLVE_BENEATH return when a concurrent rename may have raced the lookup.
func openat2(dir *os.File, rel string, flags, resolve uint64) (*os.File, error) {
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: resolve}
	var err error
	for range 64 {
		var fd int
		fd, err = unix.Openat2(int(dir.Fd()), rel, &how)
		if err == nil {
			return os.NewFile(uintptr(fd), path.Join(dir.Name(), rel)), nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EINTR) {
			break
		}
	}
	return nil, &os.PathError{Op: "openat2", Path: path.Join(dir.Name(), rel), Err: err}
}

// open returns an O_PATH handle on rel (relative to the root), following
// symlinks inside the root. Opened after a mount, it is the mounted root.
func (r *root) open(rel string) (*os.File, error) {
	return openat2(r.dir, rel, unix.O_PATH, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
}

// mkdirAll creates rel and its missing parents inside the root and returns a
// handle on it.
func (r *root) mkdirAll(rel string, mode os.FileMode) (*os.File, error) {
	if rel == "" {
		return openat2(r.dir, ".", unix.O_PATH|unix.O_DIRECTORY, unix.RESOLVE_IN_ROOT)
	}
	f, err := pathrs.MkdirAllHandle(r.dir, rel, mode)
	if err != nil {
		return nil, fmt.Errorf("mkdir %s in rootfs: %w", rel, err)
	}
	return f, nil
}

// mountpoint returns an O_PATH handle on rel, an already resolved path (see
// resolve), creating it when missing: a directory when dir is set, else an
// empty regular file (parents are directories either way).
func (r *root) mountpoint(rel string, dir bool) (*os.File, error) {
	if rel == "" {
		return nil, errors.New("refusing to mount over the container root")
	}
	f, err := r.open(rel)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return f, err
	}
	if dir {
		return r.mkdirAll(rel, 0o755)
	}
	parent, err := r.mkdirAll(path.Dir(rel), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	return createFileAt(parent, path.Base(rel), 0o644)
}

// createFileAt creates an empty regular file name in dir (an existing entry
// is kept) and returns an O_PATH handle on it, refusing symlinks.
func createFileAt(dir *os.File, name string, mode uint32) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, mode)
	if err == nil {
		_ = unix.Close(fd)
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "create", Path: path.Join(dir.Name(), name), Err: err}
	}
	return openat2(dir, name, unix.O_PATH|unix.O_NOFOLLOW, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS)
}

// realPath makes p absolute and resolves its symlinks (host side).
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	return filepath.EvalSymlinks(abs)
}

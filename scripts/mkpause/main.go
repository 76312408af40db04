// Command mkpause builds husk's pod sandbox ("pause") image for the CRI
// tests: an OCI image-layout tar with one layer holding /pause, a tiny
// static Go program (scripts/mkpause/pause) that blocks until SIGTERM or
// SIGINT. No registry is needed: the tar is imported into containerd's
// k8s.io namespace under the name the CRI config pins as sandbox image.
//
// Usage (from the repo root):
//
//	go run ./scripts/mkpause -o .cache/pause.tar [-name localhost/husk/pause:1.0] [-binary prebuilt]
//	ctr -n k8s.io images import --platform linux/amd64 .cache/pause.tar
//
// Without -binary the program is compiled with CGO_ENABLED=0, -trimpath and
// no build id; every timestamp in the tar is fixed, so the output depends
// only on the Go toolchain and the source.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/husk-runtime/husk/scripts/internal/ocilayout"
)

// DefaultName is the image name the CRI tests pin as sandbox image.
const DefaultName = "localhost/husk/pause:1.0"

func main() {
	var (
		out    = flag.String("o", ".cache/pause.tar", "output OCI image-layout tar")
		name   = flag.String("name", DefaultName, "image name (io.containerd.image.name annotation)")
		binary = flag.String("binary", "", "prebuilt static pause binary (default: build scripts/mkpause/pause)")
	)
	flag.Parse()
	if err := run(*out, *name, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "mkpause:", err)
		os.Exit(1)
	}
}

func run(out, name, binary string) error {
	if binary == "" {
		tmp, err := os.MkdirTemp("", "mkpause-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		binary = filepath.Join(tmp, "pause")
		if err := buildPause(binary); err != nil {
			return err
		}
	}
	bin, err := os.ReadFile(binary)
	if err != nil {
		return fmt.Errorf("read pause binary: %w", err)
	}
	if err := ocilayout.CheckStatic(bin, "build it with CGO_ENABLED=0"); err != nil {
		return fmt.Errorf("%s: %w", binary, err)
	}
	data, err := imageTar(bin, name, runtime.GOARCH)
	if err != nil {
		return err
	}
	if err := ocilayout.WriteFile(out, ".mkpause-*", data); err != nil {
		return err
	}
	fmt.Printf("mkpause: wrote %s (%s, %d bytes)\n", out, name, len(data))
	return nil
}

// buildPause compiles scripts/mkpause/pause (next to this source) into dst.
func buildPause(dst string) error {
	_, self, _, ok := runtime.Caller(0)
	src := "./scripts/mkpause/pause"
	dir := ""
	if ok {
		if d := filepath.Join(filepath.Dir(self), "pause"); isDir(d) {
			src, dir = ".", d
		}
	}
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -buildid=", "-o", dst, src)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", src, err, out)
	}
	return nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// imageTar returns the OCI image-layout tar of an image holding bin as /pause.
func imageTar(bin []byte, name, arch string) ([]byte, error) {
	lw := ocilayout.NewLayerWriter()
	if err := lw.File("pause", 0o755, bin); err != nil {
		return nil, err
	}
	layer, err := lw.Close()
	if err != nil {
		return nil, err
	}
	created := ocilayout.Epoch().Format(time.RFC3339)
	cfgJSON, err := json.Marshal(map[string]any{
		"created":      created,
		"architecture": arch,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/pause"},
			"User":       "65535:65535",
			"Env":        []string{"PATH=/"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{layer.DiffID}},
		"history": []map[string]string{{"created": created, "created_by": "husk scripts/mkpause"}},
	})
	if err != nil {
		return nil, fmt.Errorf("encode image config: %w", err)
	}
	img := ocilayout.Image{
		Name:       name,
		Platform:   ocilayout.Platform{Architecture: arch, OS: "linux"},
		Config:     cfgJSON,
		Layer:      layer,
		SortedKeys: true,
	}
	data, _, err := img.Tar()
	return data, err
}

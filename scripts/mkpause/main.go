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
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"

	// DefaultName is the image name the CRI tests pin as sandbox image.
	DefaultName = "localhost/husk/pause:1.0"
)

// epoch is the fixed timestamp of every file and of the image config.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

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
	if len(bin) < 4 || string(bin[:4]) != "\x7fELF" {
		return fmt.Errorf("%s is not an ELF binary", binary)
	}
	if bytes.Contains(bin, []byte("/lib64/ld-linux")) || bytes.Contains(bin, []byte("/lib/ld-linux")) {
		return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0", binary)
	}
	data, err := imageTar(bin, name, runtime.GOARCH)
	if err != nil {
		return err
	}
	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkpause-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
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
	layer, diffID, err := buildLayer(bin)
	if err != nil {
		return nil, err
	}
	layerDesc := blobDesc(mediaTypeLayerGz, layer)
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": arch,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": []string{"/pause"},
			"User":       "65535:65535",
			"Env":        []string{"PATH=/"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		"history": []map[string]string{{"created": epoch.Format(time.RFC3339), "created_by": "husk scripts/mkpause"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgDesc := blobDesc(mediaTypeConfig, cfgJSON)
	manJSON, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeManifest,
		"config":        cfgDesc,
		"layers":        []descriptor{layerDesc},
	})
	if err != nil {
		return nil, err
	}
	manDesc := blobDesc(mediaTypeManifest, manJSON)
	manDesc.Platform = map[string]string{"architecture": arch, "os": "linux"}
	manDesc.Annotations = map[string]string{
		"io.containerd.image.name":          name,
		"org.opencontainers.image.ref.name": refName(name),
	}
	idxJSON, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaTypeIndex,
		"manifests":     []descriptor{manDesc},
	})
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(cfgDesc.Digest), cfgJSON},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(manDesc.Digest), manJSON},
	} {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// buildLayer returns the gzipped layer and the digest of the uncompressed tar.
func buildLayer(bin []byte) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "pause", Mode: 0o755, Size: int64(len(bin)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID := digest(raw.Bytes())
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, "", err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return gz.Bytes(), diffID, nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobDesc(mediaType string, b []byte) descriptor {
	return descriptor{MediaType: mediaType, Digest: digest(b), Size: int64(len(b))}
}

func blobPath(d string) string {
	return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:")
}

// refName is the tag of a reference ("1.0" for localhost/husk/pause:1.0).
func refName(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}

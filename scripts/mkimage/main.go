// Command mkimage builds a minimal busybox OCI image-layout tar from the
// host's static busybox binary (Debian package busybox-static), so that husk
// can be tested and demoed without a container registry.
//
// The image has one layer holding /bin/busybox, one symlink per applet in
// /bin, /etc/passwd and /etc/group (root, nobody 65534, husk 1000), an empty
// /tmp (1777), /proc, /sys, /dev, /root and /home/husk. The output is
// reproducible: every timestamp is fixed, so the same busybox gives the same
// digests.
//
// Usage:
//
//	go run ./scripts/mkimage -o .cache/busybox.tar [-busybox /bin/busybox] [-name docker.io/library/busybox:husk]
//	ctr -n NS images import --platform linux/amd64 .cache/busybox.tar
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
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"

	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"

	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// epoch is the fixed timestamp used for every file and the image config.
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type imageConfig struct {
	Created      string        `json:"created"`
	Architecture string        `json:"architecture"`
	OS           string        `json:"os"`
	Config       runConfig     `json:"config"`
	RootFS       rootFS        `json:"rootfs"`
	History      []historyItem `json:"history"`
}

type runConfig struct {
	Env        []string `json:"Env"`
	Cmd        []string `json:"Cmd"`
	WorkingDir string   `json:"WorkingDir,omitempty"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type historyItem struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

func main() {
	var (
		out     = flag.String("o", ".cache/busybox.tar", "output OCI image-layout tar")
		busybox = flag.String("busybox", "/bin/busybox", "static busybox binary to put in the image")
		name    = flag.String("name", "docker.io/library/busybox:husk", "image name (io.containerd.image.name annotation)")
	)
	flag.Parse()
	if err := run(*out, *busybox, *name); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(out, busybox, name string) error {
	bin, err := os.ReadFile(busybox)
	if err != nil {
		return fmt.Errorf("read busybox (apt-get install busybox-static): %w", err)
	}
	if err := checkStatic(bin); err != nil {
		return fmt.Errorf("%s: %w", busybox, err)
	}
	applets, err := listApplets(busybox)
	if err != nil {
		return err
	}

	layer, diffID, err := buildLayer(bin, applets)
	if err != nil {
		return err
	}
	layerDesc := blobDesc(mediaTypeLayerGz, layer)

	cfg := imageConfig{
		Created:      epoch.Format(time.RFC3339),
		Architecture: "amd64",
		OS:           "linux",
		Config: runConfig{
			Env: []string{"PATH=" + defaultPath},
			Cmd: []string{"sh"},
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{diffID}},
		History: []historyItem{{Created: epoch.Format(time.RFC3339), CreatedBy: "husk scripts/mkimage from " + busybox}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgDesc := blobDesc(mediaTypeConfig, cfgJSON)

	man := manifest{SchemaVersion: 2, MediaType: mediaTypeManifest, Config: cfgDesc, Layers: []descriptor{layerDesc}}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return err
	}
	manDesc := blobDesc(mediaTypeManifest, manJSON)
	manDesc.Platform = &platform{Architecture: "amd64", OS: "linux"}
	manDesc.Annotations = map[string]string{
		annotationImageName: name,
		annotationRefName:   refName(name),
	}

	idx := index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{manDesc}}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}

	if dir := filepath.Dir(out); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".mkimage-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())

	tw := tar.NewWriter(tmp)
	files := []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(cfgDesc.Digest), cfgJSON},
		{blobPath(layerDesc.Digest), layer},
		{blobPath(manDesc.Digest), manJSON},
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	for _, f := range files {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Printf("mkimage: wrote %s (%s, manifest %s, %d applets)\n", out, name, manDesc.Digest, len(applets))
	return nil
}

// checkStatic refuses a dynamically linked binary: it would not run in an
// image without the host's libc.
func checkStatic(bin []byte) error {
	if len(bin) < 4 || string(bin[:4]) != "\x7fELF" {
		return fmt.Errorf("not an ELF binary")
	}
	if bytes.Contains(bin, []byte("/lib64/ld-linux")) || bytes.Contains(bin, []byte("/lib/ld-linux")) {
		return fmt.Errorf("busybox is dynamically linked; install busybox-static")
	}
	return nil
}

func listApplets(busybox string) ([]string, error) {
	out, err := exec.Command(busybox, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", busybox, err)
	}
	seen := map[string]bool{}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a == "busybox" || strings.Contains(a, "/") || seen[a] {
			continue
		}
		seen[a] = true
		applets = append(applets, a)
	}
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", busybox)
	}
	sort.Strings(applets)
	return applets, nil
}

// buildLayer returns the gzipped layer tar and the digest of the uncompressed tar.
func buildLayer(bin []byte, applets []string) ([]byte, string, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)

	dir := func(name string, mode int64, uid int) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}

	passwd := "root:x:0:0:root:/root:/bin/sh\n" +
		"husk:x:1000:1000:husk:/home/husk:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\n" +
		"husk:x:1000:\n" +
		"nogroup:x:65534:\n"

	steps := []func() error{
		func() error { return dir("bin", 0o755, 0) },
		func() error { return file("bin/busybox", 0o755, bin) },
	}
	for _, a := range applets {
		a := a
		steps = append(steps, func() error {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch, Format: tar.FormatPAX})
		})
	}
	steps = append(steps,
		func() error { return dir("dev", 0o755, 0) },
		func() error { return dir("etc", 0o755, 0) },
		func() error { return file("etc/group", 0o644, []byte(group)) },
		func() error { return file("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return dir("home", 0o755, 0) },
		func() error { return dir("home/husk", 0o755, 1000) },
		func() error { return dir("proc", 0o555, 0) },
		func() error { return dir("root", 0o700, 0) },
		func() error { return dir("sys", 0o555, 0) },
		func() error { return dir("tmp", 0o1777, 0) },
	)
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, "", err
		}
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
	if _, err := io.Copy(zw, &raw); err != nil {
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

// refName returns the tag of a reference ("husk" for busybox:husk), used as
// the OCI ref name annotation.
func refName(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}

// Package ocilayout writes reproducible single-layer OCI image-layout tars,
// the format the husk image tools (scripts/mkimage, scripts/mkpause) produce
// for `ctr images import`.
//
// Every tar entry carries the fixed timestamp Epoch, the layer is gzipped
// at best compression and all JSON is compact, so the same inputs always
// give the same bytes and digests.
package ocilayout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OCI media types and annotations used in the layout.
const (
	MediaTypeIndex     = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig    = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"

	AnnotationImageName = "io.containerd.image.name"
	AnnotationRefName   = "org.opencontainers.image.ref.name"
)

// Epoch is the fixed timestamp of every tar entry; image configs use it as
// their creation time.
func Epoch() time.Time {
	return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is the platform of a manifest in the index.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// Layer is a gzipped layer tar and the digest of its uncompressed form.
type Layer struct {
	Gzip   []byte
	DiffID string
}

// LayerWriter builds a layer tar entry by entry; Close compresses it.
type LayerWriter struct {
	raw bytes.Buffer
	tw  *tar.Writer
}

// NewLayerWriter returns an empty layer.
func NewLayerWriter() *LayerWriter {
	w := &LayerWriter{}
	w.tw = tar.NewWriter(&w.raw)
	return w
}

// Dir adds directory name (without trailing slash) owned by uid:uid.
func (w *LayerWriter) Dir(name string, mode int64, uid int) error {
	return w.header(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, Uid: uid, Gid: uid})
}

// File adds a regular file owned by root.
func (w *LayerWriter) File(name string, mode int64, data []byte) error {
	if err := w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}); err != nil {
		return err
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("layer: write %s: %w", name, err)
	}
	return nil
}

// Symlink adds a symbolic link name -> target.
func (w *LayerWriter) Symlink(name, target string) error {
	return w.header(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777})
}

func (w *LayerWriter) header(hdr *tar.Header) error {
	hdr.ModTime = Epoch()
	hdr.Format = tar.FormatPAX
	if err := w.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("layer: %s: %w", hdr.Name, err)
	}
	return nil
}

// Close ends the tar and returns it gzipped (best compression) with its
// diff ID. The LayerWriter must not be used afterwards.
func (w *LayerWriter) Close() (Layer, error) {
	if err := w.tw.Close(); err != nil {
		return Layer{}, fmt.Errorf("layer: close tar: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return Layer{}, fmt.Errorf("layer: gzip: %w", err)
	}
	if _, err := zw.Write(w.raw.Bytes()); err != nil {
		return Layer{}, fmt.Errorf("layer: gzip: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Layer{}, fmt.Errorf("layer: gzip: %w", err)
	}
	return Layer{Gzip: gz.Bytes(), DiffID: Digest(w.raw.Bytes())}, nil
}

// Image is a single-platform, single-layer image.
type Image struct {
	// Name is the io.containerd.image.name annotation; its tag is the ref
	// name annotation.
	Name     string
	Platform Platform
	// Config is the image config JSON; it must name Layer.DiffID.
	Config []byte
	Layer  Layer
	// SortedKeys encodes index.json and the manifest with their top-level
	// keys sorted instead of in OCI spec order. It exists because
	// scripts/mkpause has always written that form; flipping it changes
	// the image's digests.
	SortedKeys bool
}

// Tar returns the image-layout tar of img and the descriptor of its
// manifest, as listed in index.json.
func (img Image) Tar() ([]byte, Descriptor, error) {
	cfgDesc := blobDesc(MediaTypeConfig, img.Config)
	layerDesc := blobDesc(MediaTypeLayerGzip, img.Layer.Gzip)
	manJSON, err := marshal(manifest{SchemaVersion: 2, MediaType: MediaTypeManifest, Config: cfgDesc, Layers: []Descriptor{layerDesc}}, img.SortedKeys)
	if err != nil {
		return nil, Descriptor{}, fmt.Errorf("encode manifest: %w", err)
	}
	manDesc := blobDesc(MediaTypeManifest, manJSON)
	manDesc.Platform = &Platform{Architecture: img.Platform.Architecture, OS: img.Platform.OS}
	manDesc.Annotations = map[string]string{
		AnnotationImageName: img.Name,
		AnnotationRefName:   refName(img.Name),
	}
	idxJSON, err := marshal(index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{manDesc}}, img.SortedKeys)
	if err != nil {
		return nil, Descriptor{}, fmt.Errorf("encode index: %w", err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: Epoch(), Format: tar.FormatPAX}); err != nil {
			return nil, Descriptor{}, fmt.Errorf("layout: %s: %w", d, err)
		}
	}
	for _, f := range []struct {
		name string
		data []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", idxJSON},
		{blobPath(cfgDesc.Digest), img.Config},
		{blobPath(layerDesc.Digest), img.Layer.Gzip},
		{blobPath(manDesc.Digest), manJSON},
	} {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: 0o644, Size: int64(len(f.data)), ModTime: Epoch(), Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, Descriptor{}, fmt.Errorf("layout: %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, Descriptor{}, fmt.Errorf("layout: write %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, Descriptor{}, fmt.Errorf("layout: close tar: %w", err)
	}
	return buf.Bytes(), manDesc, nil
}

// marshal encodes v compactly; with sortKeys its top-level keys are sorted
// (nested objects keep their field order).
func marshal(v any, sortKeys bool) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || !sortKeys {
		return b, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(b, &top); err != nil {
		return nil, err
	}
	return json.Marshal(top)
}

// WriteFile atomically replaces path with data (mode 0644), creating its
// directory; the temporary file is named after tmpPattern (os.CreateTemp).
func WriteFile(path, tmpPattern string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, tmpPattern)
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
	return os.Rename(tmp.Name(), path)
}

// CheckStatic refuses anything but a statically linked ELF binary: a
// dynamically linked one would not run in an image without the host's libc.
// fix is appended to the error for a dynamically linked binary and should
// say how to get a static one.
func CheckStatic(bin []byte, fix string) error {
	if len(bin) < 4 || string(bin[:4]) != "\x7fELF" {
		return fmt.Errorf("not an ELF binary")
	}
	if bytes.Contains(bin, []byte("/lib64/ld-linux")) || bytes.Contains(bin, []byte("/lib/ld-linux")) {
		return fmt.Errorf("dynamically linked; %s", fix)
	}
	return nil
}

// Digest returns the sha256 digest of b ("sha256:<hex>").
func Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobDesc(mediaType string, b []byte) Descriptor {
	return Descriptor{MediaType: mediaType, Digest: Digest(b), Size: int64(len(b))}
}

// blobPath is the path of the blob with digest d inside the layout.
func blobPath(d string) string {
	return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:")
}

// refName returns the tag of a reference ("husk" for busybox:husk, "latest"
// without one), used as the OCI ref name annotation.
func refName(name string) string {
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		return name[i+1:]
	}
	return "latest"
}

package ocilayout

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type entry struct {
	typ      byte
	name     string
	mode     int64
	uid      int
	linkname string
	data     string
}

// readTar returns the entries of a tar, checking the fixed timestamp.
func readTar(t *testing.T, b []byte) []entry {
	t.Helper()
	var out []entry
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		if !hdr.ModTime.Equal(Epoch()) {
			t.Errorf("%s: mtime %v, want %v", hdr.Name, hdr.ModTime, Epoch())
		}
		if hdr.Uid != hdr.Gid {
			t.Errorf("%s: uid %d != gid %d", hdr.Name, hdr.Uid, hdr.Gid)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("read %s: %v", hdr.Name, err)
		}
		out = append(out, entry{hdr.Typeflag, hdr.Name, hdr.Mode, hdr.Uid, hdr.Linkname, string(data)})
	}
}

func TestImageTar(t *testing.T) {
	layer := Layer{Gzip: []byte("not really gzip"), DiffID: Digest([]byte("raw layer"))}
	config := []byte(`{"architecture":"arm64","os":"linux"}`)
	cfgD, layerD := Digest(config), Digest(layer.Gzip)
	// The manifest does not depend on the name, the platform or the key
	// order of index.json, only on its own key order.
	specManifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":%d}]}`,
		MediaTypeManifest, MediaTypeConfig, cfgD, len(config), MediaTypeLayerGzip, layerD, len(layer.Gzip))
	sortedManifest := fmt.Sprintf(`{"config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":%d}],"mediaType":"%s","schemaVersion":2}`,
		MediaTypeConfig, cfgD, len(config), MediaTypeLayerGzip, layerD, len(layer.Gzip), MediaTypeManifest)
	manDesc := func(man, arch, name, ref string) string {
		return fmt.Sprintf(`{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"%s","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}`,
			MediaTypeManifest, Digest([]byte(man)), len(man), arch, name, ref)
	}

	tests := []struct {
		name         string
		img          Image
		wantManifest string
		wantIndex    string
	}{
		{
			name:         "spec order",
			img:          Image{Name: "docker.io/library/busybox:husk", Platform: Platform{Architecture: "amd64", OS: "linux"}},
			wantManifest: specManifest,
			wantIndex: `{"schemaVersion":2,"mediaType":"` + MediaTypeIndex + `","manifests":[` +
				manDesc(specManifest, "amd64", "docker.io/library/busybox:husk", "husk") + `]}`,
		},
		{
			name:         "sorted keys",
			img:          Image{Name: "localhost/husk/pause:1.0", Platform: Platform{Architecture: "arm64", OS: "linux"}, SortedKeys: true},
			wantManifest: sortedManifest,
			wantIndex: `{"manifests":[` + manDesc(sortedManifest, "arm64", "localhost/husk/pause:1.0", "1.0") +
				`],"mediaType":"` + MediaTypeIndex + `","schemaVersion":2}`,
		},
		{
			name:         "registry port, no tag",
			img:          Image{Name: "registry:5000/pause", Platform: Platform{Architecture: "amd64", OS: "linux"}},
			wantManifest: specManifest,
			wantIndex: `{"schemaVersion":2,"mediaType":"` + MediaTypeIndex + `","manifests":[` +
				manDesc(specManifest, "amd64", "registry:5000/pause", "latest") + `]}`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.img.Config, tc.img.Layer = config, layer
			data, desc, err := tc.img.Tar()
			if err != nil {
				t.Fatal(err)
			}
			again, _, err := tc.img.Tar()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, again) {
				t.Error("two builds of the same image differ")
			}
			if want := Digest([]byte(tc.wantManifest)); desc.Digest != want {
				t.Errorf("manifest digest %s, want %s", desc.Digest, want)
			}
			want := []entry{
				{typ: tar.TypeDir, name: "blobs/", mode: 0o755},
				{typ: tar.TypeDir, name: "blobs/sha256/", mode: 0o755},
				{typ: tar.TypeReg, name: "oci-layout", mode: 0o644, data: `{"imageLayoutVersion":"1.0.0"}`},
				{typ: tar.TypeReg, name: "index.json", mode: 0o644, data: tc.wantIndex},
				{typ: tar.TypeReg, name: blobPath(cfgD), mode: 0o644, data: string(config)},
				{typ: tar.TypeReg, name: blobPath(layerD), mode: 0o644, data: string(layer.Gzip)},
				{typ: tar.TypeReg, name: blobPath(desc.Digest), mode: 0o644, data: tc.wantManifest},
			}
			got := readTar(t, data)
			if len(got) != len(want) {
				t.Fatalf("%d entries, want %d: %+v", len(got), len(want), got)
			}
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], want[i])
				}
			}
		})
	}
}

func TestLayerWriter(t *testing.T) {
	tests := []struct {
		name  string
		build func(*LayerWriter) error
		want  []entry
	}{
		{
			name:  "empty",
			build: func(*LayerWriter) error { return nil },
		},
		{
			name: "dir file symlink",
			build: func(w *LayerWriter) error {
				return errors.Join(
					w.Dir("bin", 0o755, 0),
					w.File("bin/busybox", 0o755, []byte("ELF")),
					w.Symlink("bin/sh", "busybox"),
					w.Dir("home/husk", 0o700, 1000),
					w.Dir("tmp", 0o1777, 0),
				)
			},
			want: []entry{
				{typ: tar.TypeDir, name: "bin/", mode: 0o755},
				{typ: tar.TypeReg, name: "bin/busybox", mode: 0o755, data: "ELF"},
				{typ: tar.TypeSymlink, name: "bin/sh", mode: 0o777, linkname: "busybox"},
				{typ: tar.TypeDir, name: "home/husk/", mode: 0o700, uid: 1000},
				{typ: tar.TypeDir, name: "tmp/", mode: 0o1777},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			build := func() Layer {
				t.Helper()
				w := NewLayerWriter()
				if err := tc.build(w); err != nil {
					t.Fatal(err)
				}
				l, err := w.Close()
				if err != nil {
					t.Fatal(err)
				}
				return l
			}
			l := build()
			if !bytes.Equal(l.Gzip, build().Gzip) {
				t.Error("two builds of the same layer differ")
			}
			zr, err := gzip.NewReader(bytes.NewReader(l.Gzip))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if d := Digest(raw); l.DiffID != d {
				t.Errorf("diff ID %s, want %s", l.DiffID, d)
			}
			got := readTar(t, raw)
			if len(got) != len(tc.want) {
				t.Fatalf("%d entries, want %d: %+v", len(got), len(tc.want), got)
			}
			for i := range tc.want {
				if got[i] != tc.want[i] {
					t.Errorf("entry %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestRefName(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"docker.io/library/busybox:husk", "husk"},
		{"localhost/husk/pause:1.0", "1.0"},
		{"busybox", "latest"},
		{"registry:5000/pause", "latest"},
		{"registry:5000/pause:3.9", "3.9"},
	} {
		if got := refName(tc.name); got != tc.want {
			t.Errorf("refName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCheckStatic(t *testing.T) {
	for _, tc := range []struct {
		name, bin, wantErr string
	}{
		{"static", "\x7fELF\x02\x01\x01 static code", ""},
		{"dynamic lib64", "\x7fELF\x02 /lib64/ld-linux-x86-64.so.2", "dynamically linked; fix it"},
		{"dynamic lib", "\x7fELF\x01 /lib/ld-linux.so.2", "dynamically linked; fix it"},
		{"script", "#!/bin/sh\n", "not an ELF binary"},
		{"short", "\x7fEL", "not an ELF binary"},
		{"empty", "", "not an ELF binary"},
	} {
		err := CheckStatic([]byte(tc.bin), "fix it")
		if got := fmt.Sprint(err); (tc.wantErr == "" && err != nil) || (tc.wantErr != "" && got != tc.wantErr) {
			t.Errorf("%s: CheckStatic = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, path, data string }{
		{"new dir", filepath.Join(dir, "a", "b", "img.tar"), "one"},
		{"replace", filepath.Join(dir, "a", "b", "img.tar"), "two"},
		{"existing dir", filepath.Join(dir, "img.tar"), "three"},
	} {
		if err := WriteFile(tc.path, ".test-*", []byte(tc.data)); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got, err := os.ReadFile(tc.path)
		if err != nil || string(got) != tc.data {
			t.Errorf("%s: read %q, %v; want %q", tc.name, got, err, tc.data)
		}
		if fi, err := os.Stat(tc.path); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		} else if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644", tc.name, fi.Mode().Perm())
		}
		leftover, _ := filepath.Glob(filepath.Join(filepath.Dir(tc.path), ".test-*"))
		if len(leftover) != 0 {
			t.Errorf("%s: temporary files left: %v", tc.name, strings.Join(leftover, " "))
		}
	}
}

// Command imageproxy serves, offline, the registry images that containerd's
// integration/client test suite pulls by their public names
// (ghcr.io/containerd/busybox:1.36, registry.k8s.io/pause:3.10.2, ...).
//
// It is an HTTPS proxy for those hosts only: a client that has
// HTTPS_PROXY=http://ADDR and trusts the throwaway CA written to -ca (Go
// reads SSL_CERT_FILE) sends "CONNECT ghcr.io:443"; the proxy terminates TLS
// with a certificate for that host signed by the CA and answers the OCI
// distribution API (pull only) from memory. CONNECT to any other host is
// refused at once, so nothing leaves the machine. Everything listens on
// loopback only.
//
// The images are built at start-up from the busybox OCI image-layout tar
// that scripts/mkimage writes: each served name is an image index with a
// runnable linux/amd64 image (the busybox layer plus a layer with the
// official busybox image's /etc/passwd and /etc/group, and /bin/nc wrapped so
// that it exits 143 on SIGTERM as PID 1) and stub manifests for other
// platforms, so multi-platform pulls behave as they do against the real
// registries. Every image gets its own digests and a last layer of its own.
//
// Usage:
//
//	imageproxy -base busybox.tar -ca ca.pem -addr-file addr [-listen 127.0.0.1:0]
package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	mtIndex    = "application/vnd.oci.image.index.v1+json"
	mtManifest = "application/vnd.oci.image.manifest.v1+json"
	mtConfig   = "application/vnd.oci.image.config.v1+json"
	mtLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
)

// image is one name the suite pulls and what its linux/amd64 image holds on
// top of the busybox base.
type image struct {
	ref    string   // host/repo:tag
	layers []*layer // extra layers after the base ones
	volume string   // config Volumes entry, if any
}

// stubPlatforms are the non-runnable platforms each index lists next to
// linux/amd64 (the real images are multi-platform).
var stubPlatforms = []platform{
	{OS: "linux", Architecture: "arm64", Variant: "v8"},
	{OS: "linux", Architecture: "arm", Variant: "v7"},
	{OS: "linux", Architecture: "ppc64le"},
	{OS: "linux", Architecture: "s390x"},
}

// Contents of the official busybox image's account files (plus backup, 34,
// of the volume-ownership image): tests use www-data (33), sys (3) and 34,
// and expect no user 1000.
const passwd = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
sync:x:4:100:sync:/bin:/bin/sync
mail:x:8:8:mail:/var/spool/mail:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
backup:x:34:34:backup:/var/backups:/bin/false
operator:x:37:37:Operator:/var:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
`

const group = `root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
adm:x:4:
tty:x:5:
disk:x:6:
lp:x:7:
mail:x:8:
kmem:x:9:
wheel:x:10:root
cdrom:x:11:
dialout:x:18:
floppy:x:19:
video:x:28:
audio:x:29:
tape:x:32:
www-data:x:33:
backup:x:34:
operator:x:37:
utmp:x:43:
plugdev:x:46:
staff:x:50:
lock:x:54:
netdev:x:82:
users:x:100:
nogroup:x:65534:
`

// ncWrapper replaces the /bin/nc applet link: busybox nc as PID 1 has no
// SIGTERM handler, so the kernel drops the signal and a test that stops an
// nc container would hang. The shell traps TERM and exits 143 (128+15), as
// the nc of the official image does. Stdin is passed through fd 3 because
// a background job's stdin is /dev/null otherwise.
const ncWrapper = `#!/bin/sh
trap 'exit 143' TERM
exec 3<&0
busybox nc "$@" <&3 3<&- &
wait $!
`

// bashShim stands in for bash (busybox has none) in the volume-ownership
// image, whose tests run "bash -c ...".
const bashShim = `#!/bin/sh
exec /bin/sh "$@"
`

func images() []image {
	common := &layer{files: []file{
		{name: "bin/nc", mode: 0o755, data: ncWrapper},
		{name: "etc/passwd", mode: 0o644, data: passwd},
		{name: "etc/group", mode: 0o644, data: group},
		{name: "var/", mode: 0o755, dir: true},
		{name: "var/www/", mode: 0o755, dir: true, uid: 33, gid: 33},
		{name: "var/backups/", mode: 0o755, dir: true, uid: 34, gid: 34},
	}}
	copyUp := &layer{files: []file{
		{name: "test_dir/", mode: 0o755, dir: true},
		{name: "test_dir/test_file", mode: 0o644, data: "test_content\n"},
	}}
	ownership := &layer{files: []file{
		{name: "bin/bash", mode: 0o755, data: bashShim},
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/bin/", mode: 0o755, dir: true},
		// A setuid file, as /usr/bin/passwd is in the real image (the
		// suite checks that remapping keeps the bit).
		{name: "usr/bin/passwd", mode: 0o4755, data: "#!/bin/sh\nexec /bin/busybox passwd \"$@\"\n"},
		{name: "run/", mode: 0o755, dir: true},
		{name: "volumes/", mode: 0o755, dir: true},
		{name: "volumes/test_dir/", mode: 0o755, dir: true, uid: 34, gid: 34},
	}}
	return []image{
		{ref: "ghcr.io/containerd/busybox:1.36", layers: []*layer{common}},
		{ref: "ghcr.io/containerd/alpine:3.14.0", layers: []*layer{common}},
		{ref: "ghcr.io/containerd/volume-copy-up:2.2", layers: []*layer{common, copyUp}, volume: "/test_dir"},
		{ref: "ghcr.io/containerd/volume-ownership:2.1", layers: []*layer{common, ownership}, volume: "/volumes/test_dir"},
		{ref: "registry.k8s.io/pause:3.10.2", layers: []*layer{common}},
		{ref: "registry.k8s.io/pause:3.6", layers: []*layer{common}},
		{ref: "registry.k8s.io/e2e-test-images/busybox:1.29-2", layers: []*layer{common}},
	}
}

func main() {
	var (
		listen   = flag.String("listen", "127.0.0.1:0", "proxy address (loopback only)")
		base     = flag.String("base", "", "busybox OCI image-layout tar written by scripts/mkimage")
		caFile   = flag.String("ca", "", "write the throwaway CA certificate (PEM) here")
		addrFile = flag.String("addr-file", "", "write the proxy URL (http://HOST:PORT) here once listening")
		list     = flag.Bool("list", false, "print the served image names and exit")
	)
	flag.Parse()
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("imageproxy: ")
	if *list {
		for _, im := range images() {
			fmt.Println(im.ref)
		}
		return
	}
	if *base == "" || *caFile == "" || *addrFile == "" {
		log.Fatal("-base, -ca and -addr-file are required")
	}
	if err := run(*listen, *base, *caFile, *addrFile); err != nil {
		log.Fatal(err)
	}
}

func run(listen, base, caFile, addrFile string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-listen %s: only a loopback IP address is allowed", listen)
	}

	st := newStore()
	if err := st.load(base, images()); err != nil {
		return err
	}

	ca, err := newCA()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(caFile, ca.pem); err != nil {
		return err
	}

	// Internal TLS registry endpoint; reached only through the proxy.
	regLn, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return err
	}
	tlsLn := tls.NewListener(regLn, &tls.Config{
		GetCertificate: ca.certFor,
		MinVersion:     tls.VersionTLS12,
	})
	regSrv := &http.Server{Handler: st, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.Default()}
	go regSrv.Serve(tlsLn)

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	px := &proxy{backend: regLn.Addr().String(), hosts: st.hosts()}
	srv := &http.Server{Handler: px, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.Default()}

	url := "http://" + ln.Addr().String()
	if err := writeFileAtomic(addrFile, []byte(url+"\n")); err != nil {
		return err
	}
	log.Printf("listening on %s for %s (%d images, %d blobs)", url, strings.Join(px.hostList(), ", "), len(images()), len(st.blobs))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		log.Printf("%s: exiting", s)
		ln.Close()
		regLn.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// ---- proxy ----

type proxy struct {
	backend string
	hosts   map[string]bool
}

func (p *proxy) hostList() []string {
	var l []string
	for h := range p.hosts {
		l = append(l, h)
	}
	sort.Strings(l)
	return l
}

func (p *proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		log.Printf("refused %s %s: only CONNECT is proxied", r.Method, r.URL)
		http.Error(w, "imageproxy: only CONNECT to the served registries", http.StatusForbidden)
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil || port != "443" || !p.hosts[host] {
		log.Printf("refused CONNECT %s: not a served registry", r.Host)
		http.Error(w, "imageproxy: "+r.Host+" is not served here (offline)", http.StatusForbidden)
		return
	}
	back, err := net.DialTimeout("tcp", p.backend, 5*time.Second)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		back.Close()
		http.Error(w, "no hijack", http.StatusInternalServerError)
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		back.Close()
		return
	}
	if _, err := conn.Write([]byte("HTTP/1.1 200 Connection Established\r\n\r\n")); err != nil {
		conn.Close()
		back.Close()
		return
	}
	go func() {
		defer back.Close()
		defer conn.Close()
		io.Copy(back, brw) // brw holds bytes the client may have sent early
	}()
	go func() {
		defer back.Close()
		defer conn.Close()
		io.Copy(conn, back)
	}()
}

// ---- registry ----

type store struct {
	mu        sync.Mutex
	blobs     map[string][]byte            // digest -> bytes
	mediaType map[string]string            // manifest/index digest -> media type
	repos     map[string]map[string]string // host/repo -> tag -> digest
}

func newStore() *store {
	return &store{blobs: map[string][]byte{}, mediaType: map[string]string{}, repos: map[string]map[string]string{}}
}

func (s *store) hosts() map[string]bool {
	h := map[string]bool{}
	for repo := range s.repos {
		h[strings.SplitN(repo, "/", 2)[0]] = true
	}
	return h
}

func (s *store) put(b []byte) descriptor {
	d := digestOf(b)
	s.blobs[d] = b
	return descriptor{Digest: d, Size: int64(len(b))}
}

func (s *store) putJSON(mediaType string, v any) (descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return descriptor{}, err
	}
	d := s.put(b)
	d.MediaType = mediaType
	if mediaType == mtIndex || mediaType == mtManifest {
		s.mediaType[d.Digest] = mediaType
	}
	return d, nil
}

func (s *store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, code: 200}
	s.serve(rec, r)
	log.Printf("%s %s%s -> %d", r.Method, r.Host, r.URL.Path, rec.code)
}

func (s *store) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeErr(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "read-only registry")
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	p := r.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, "{}")
		return
	}
	if !strings.HasPrefix(p, "/v2/") {
		writeErr(w, http.StatusNotFound, "NOT_FOUND", "not found")
		return
	}
	p = strings.TrimPrefix(p, "/v2/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := strings.LastIndex(p, "/manifests/"); i > 0 {
		repo, ref := host+"/"+p[:i], p[i+len("/manifests/"):]
		tags, ok := s.repos[repo]
		if !ok {
			writeErr(w, http.StatusNotFound, "NAME_UNKNOWN", "repository "+repo+" not known")
			return
		}
		d := ref
		if !strings.HasPrefix(ref, "sha256:") {
			if d, ok = tags[ref]; !ok {
				writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "tag "+ref+" not known")
				return
			}
		}
		mt, ok := s.mediaType[d]
		if !ok {
			writeErr(w, http.StatusNotFound, "MANIFEST_UNKNOWN", "manifest "+d+" not known")
			return
		}
		s.serveBlob(w, r, d, mt)
		return
	}
	if i := strings.LastIndex(p, "/blobs/"); i > 0 {
		if _, ok := s.repos[host+"/"+p[:i]]; !ok {
			writeErr(w, http.StatusNotFound, "NAME_UNKNOWN", "repository not known")
			return
		}
		s.serveBlob(w, r, p[i+len("/blobs/"):], "application/octet-stream")
		return
	}
	writeErr(w, http.StatusNotFound, "NOT_FOUND", "not found")
}

func (s *store) serveBlob(w http.ResponseWriter, r *http.Request, d, mediaType string) {
	b, ok := s.blobs[d]
	if !ok {
		writeErr(w, http.StatusNotFound, "BLOB_UNKNOWN", "blob "+d+" not known")
		return
	}
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", d)
	w.Header().Set("Etag", `"`+d+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(b))
}

func writeErr(w http.ResponseWriter, code int, errCode, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": errCode, "message": msg}}})
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// ---- image building ----

type descriptor struct {
	MediaType string    `json:"mediaType"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	Platform  *platform `json:"platform,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type file struct {
	name     string
	mode     int64
	data     string
	dir      bool
	uid, gid int
}

type layer struct {
	files []file

	once   sync.Once
	gz     []byte
	diffID string
	err    error
}

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// build returns the gzipped tar and the digest of the uncompressed tar.
func (l *layer) build() ([]byte, string, error) {
	l.once.Do(func() {
		var raw bytes.Buffer
		tw := tar.NewWriter(&raw)
		for _, f := range l.files {
			h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.gid, ModTime: epoch, Format: tar.FormatPAX}
			if f.dir {
				h.Typeflag = tar.TypeDir
			} else {
				h.Typeflag = tar.TypeReg
				h.Size = int64(len(f.data))
			}
			if l.err = tw.WriteHeader(h); l.err != nil {
				return
			}
			if !f.dir {
				if _, l.err = io.WriteString(tw, f.data); l.err != nil {
					return
				}
			}
		}
		if l.err = tw.Close(); l.err != nil {
			return
		}
		l.diffID = digestOf(raw.Bytes())
		l.gz, l.err = gzipBytes(raw.Bytes())
	})
	return l.gz, l.diffID, l.err
}

func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	zw := gzip.NewWriter(&out) // no name, no mtime: reproducible
	if _, err := zw.Write(b); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

type baseImage struct {
	config map[string]any
	layers []descriptor
}

// readBase reads the single linux/amd64 image of an OCI image-layout tar.
func (s *store) readBase(path string) (*baseImage, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			return nil, err
		}
		files[filepath.Clean(h.Name)] = b
	}
	blob := func(d string) ([]byte, error) {
		b, ok := files[filepath.Join("blobs/sha256", strings.TrimPrefix(d, "sha256:"))]
		if !ok {
			return nil, fmt.Errorf("%s: blob %s missing", path, d)
		}
		return b, nil
	}
	var idx struct {
		Manifests []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(files["index.json"], &idx); err != nil {
		return nil, fmt.Errorf("%s: index.json: %w", path, err)
	}
	if len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("%s: want one manifest in index.json, have %d", path, len(idx.Manifests))
	}
	mb, err := blob(idx.Manifests[0].Digest)
	if err != nil {
		return nil, err
	}
	var man struct {
		Config descriptor   `json:"config"`
		Layers []descriptor `json:"layers"`
	}
	if err := json.Unmarshal(mb, &man); err != nil {
		return nil, err
	}
	cb, err := blob(man.Config.Digest)
	if err != nil {
		return nil, err
	}
	bi := &baseImage{layers: man.Layers}
	if err := json.Unmarshal(cb, &bi.config); err != nil {
		return nil, err
	}
	if bi.config["architecture"] != "amd64" || bi.config["os"] != "linux" {
		return nil, fmt.Errorf("%s: base image is %v/%v, want linux/amd64", path, bi.config["os"], bi.config["architecture"])
	}
	for _, l := range man.Layers {
		b, err := blob(l.Digest)
		if err != nil {
			return nil, err
		}
		s.put(b)
	}
	return bi, nil
}

func (s *store) load(basePath string, ims []image) error {
	base, err := s.readBase(basePath)
	if err != nil {
		return err
	}
	for _, im := range ims {
		if err := s.addImage(base, im); err != nil {
			return fmt.Errorf("%s: %w", im.ref, err)
		}
	}
	return nil
}

func (s *store) addImage(base *baseImage, im image) error {
	i := strings.LastIndex(im.ref, ":")
	repo, tag := im.ref[:i], im.ref[i+1:]
	label := map[string]any{"io.husk.conformance.image": im.ref}

	// linux/amd64: base + extra layers; the label makes the digests differ
	// from image to image, as the real ones do.
	cfg := deepCopy(base.config)
	rootfs := cfg["rootfs"].(map[string]any)
	diffIDs := rootfs["diff_ids"].([]any)
	history, _ := cfg["history"].([]any)
	layers := append([]descriptor(nil), base.layers...)
	// A last layer of its own, so that no two images share a snapshot
	// chain (the suite checks that pulling one does not unpack another).
	own := &layer{files: []file{{name: "etc/", mode: 0o755, dir: true}, {name: "etc/image-name", mode: 0o644, data: im.ref + "\n"}}}
	for _, l := range append(append([]*layer(nil), im.layers...), own) {
		gz, diffID, err := l.build()
		if err != nil {
			return err
		}
		d := s.put(gz)
		d.MediaType = mtLayerGz
		layers = append(layers, d)
		diffIDs = append(diffIDs, diffID)
		history = append(history, map[string]any{"created": epoch.Format(time.RFC3339), "created_by": "husk conformance/imageproxy"})
	}
	rootfs["diff_ids"] = diffIDs
	cfg["history"] = history
	rc, _ := cfg["config"].(map[string]any)
	if rc == nil {
		rc = map[string]any{}
		cfg["config"] = rc
	}
	rc["Labels"] = label
	if im.volume != "" {
		rc["Volumes"] = map[string]any{im.volume: map[string]any{}}
	}
	cd, err := s.putJSON(mtConfig, cfg)
	if err != nil {
		return err
	}
	md, err := s.putJSON(mtManifest, map[string]any{"schemaVersion": 2, "mediaType": mtManifest, "config": cd, "layers": layers})
	if err != nil {
		return err
	}
	md.Platform = &platform{OS: "linux", Architecture: "amd64"}
	manifests := []descriptor{md}

	// Other platforms: a config and a one-file layer each, never run.
	for _, p := range stubPlatforms {
		pl := p
		name := pl.OS + "/" + pl.Architecture + "/" + pl.Variant
		l := &layer{files: []file{{name: "stub", mode: 0o644, data: im.ref + " " + name + "\n"}}}
		gz, diffID, err := l.build()
		if err != nil {
			return err
		}
		ld := s.put(gz)
		ld.MediaType = mtLayerGz
		scfg := map[string]any{
			"created":      epoch.Format(time.RFC3339),
			"architecture": pl.Architecture, "os": pl.OS,
			"config": map[string]any{"Labels": label, "Cmd": []string{"/stub"}},
			"rootfs": map[string]any{"type": "layers", "diff_ids": []string{diffID}},
		}
		if pl.Variant != "" {
			scfg["variant"] = pl.Variant
		}
		scd, err := s.putJSON(mtConfig, scfg)
		if err != nil {
			return err
		}
		smd, err := s.putJSON(mtManifest, map[string]any{"schemaVersion": 2, "mediaType": mtManifest, "config": scd, "layers": []descriptor{ld}})
		if err != nil {
			return err
		}
		smd.Platform = &pl
		manifests = append(manifests, smd)
	}
	id, err := s.putJSON(mtIndex, map[string]any{"schemaVersion": 2, "mediaType": mtIndex, "manifests": manifests})
	if err != nil {
		return err
	}
	if s.repos[repo] == nil {
		s.repos[repo] = map[string]string{}
	}
	s.repos[repo][tag] = id.Digest
	return nil
}

func deepCopy(m map[string]any) map[string]any {
	b, _ := json.Marshal(m)
	var out map[string]any
	json.Unmarshal(b, &out)
	return out
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ---- throwaway CA ----

type ca struct {
	cert  *x509.Certificate
	key   *ecdsa.PrivateKey
	pem   []byte
	mu    sync.Mutex
	cache map[string]*tls.Certificate
}

func newCA() (*ca, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "husk conformance throwaway CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ca{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), cache: map[string]*tls.Certificate{}}, nil
}

func (c *ca) certFor(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	host := hello.ServerName
	if host == "" {
		return nil, errors.New("no SNI")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if crt, ok := c.cache[host]; ok {
		return crt, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: host},
		DNSNames:     []string{host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	crt := &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	c.cache[host] = crt
	return crt, nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

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
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"

	"github.com/husk-runtime/husk/scripts/internal/ocilayout"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

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
	if err := ocilayout.CheckStatic(bin, "install busybox-static"); err != nil {
		return fmt.Errorf("%s: %w", busybox, err)
	}
	applets, err := listApplets(busybox)
	if err != nil {
		return err
	}

	layer, err := buildLayer(bin, applets)
	if err != nil {
		return err
	}

	created := ocilayout.Epoch().Format(time.RFC3339)
	cfg := imageConfig{
		Created:      created,
		Architecture: "amd64",
		OS:           "linux",
		Config: runConfig{
			Env: []string{"PATH=" + defaultPath},
			Cmd: []string{"sh"},
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{layer.DiffID}},
		History: []historyItem{{Created: created, CreatedBy: "husk scripts/mkimage from " + busybox}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("encode image config: %w", err)
	}
	img := ocilayout.Image{
		Name:     name,
		Platform: ocilayout.Platform{Architecture: "amd64", OS: "linux"},
		Config:   cfgJSON,
		Layer:    layer,
	}
	data, manDesc, err := img.Tar()
	if err != nil {
		return err
	}
	if err := ocilayout.WriteFile(out, ".mkimage-*", data); err != nil {
		return err
	}
	fmt.Printf("mkimage: wrote %s (%s, manifest %s, %d applets)\n", out, name, manDesc.Digest, len(applets))
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

// buildLayer returns the busybox layer: /bin/busybox, one symlink per applet,
// /etc/passwd and /etc/group and the empty base directories.
func buildLayer(bin []byte, applets []string) (ocilayout.Layer, error) {
	lw := ocilayout.NewLayerWriter()

	passwd := "root:x:0:0:root:/root:/bin/sh\n" +
		"husk:x:1000:1000:husk:/home/husk:/bin/sh\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\n" +
		"husk:x:1000:\n" +
		"nogroup:x:65534:\n"

	steps := []func() error{
		func() error { return lw.Dir("bin", 0o755, 0) },
		func() error { return lw.File("bin/busybox", 0o755, bin) },
	}
	for _, a := range applets {
		steps = append(steps, func() error { return lw.Symlink("bin/"+a, "busybox") })
	}
	steps = append(steps,
		func() error { return lw.Dir("dev", 0o755, 0) },
		func() error { return lw.Dir("etc", 0o755, 0) },
		func() error { return lw.File("etc/group", 0o644, []byte(group)) },
		func() error { return lw.File("etc/passwd", 0o644, []byte(passwd)) },
		func() error { return lw.Dir("home", 0o755, 0) },
		func() error { return lw.Dir("home/husk", 0o755, 1000) },
		func() error { return lw.Dir("proc", 0o555, 0) },
		func() error { return lw.Dir("root", 0o700, 0) },
		func() error { return lw.Dir("sys", 0o555, 0) },
		func() error { return lw.Dir("tmp", 0o1777, 0) },
	)
	for _, s := range steps {
		if err := s(); err != nil {
			return ocilayout.Layer{}, err
		}
	}
	return lw.Close()
}

package shim

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	runcoptions "github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func mustAny(t *testing.T, v any) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAnyToProto(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return a
}

func TestParseOptions(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "husk.toml")
	if err := os.WriteFile(cfgFile, []byte("ShimCgroup = \"/from/file\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	body := func(s string) *anypb.Any {
		return mustAny(t, &runtimeoptions.Options{ConfigBody: []byte(s)})
	}
	tests := []struct {
		name    string
		in      typeurl.Any
		want    Options
		notes   int
		invalid bool
	}{
		{name: "nil", in: nil},
		{name: "empty any", in: &anypb.Any{}},
		{name: "empty body", in: body("")},
		{name: "cri body", in: body("Debug = true\nShimCgroup = '/husk/shims'\n"), want: Options{Debug: true, ShimCgroup: "/husk/shims"}},
		{name: "keys case-insensitive", in: body("debug = true\nshimcgroup = 'a.slice:husk:shim'\n"), want: Options{Debug: true, ShimCgroup: "a.slice:husk:shim"}},
		{name: "runc keys ignored", in: body("BinaryName = 'runc'\nSystemdCgroup = true\nNoPivotRoot = false\n"), want: Options{SystemdCgroup: true}, notes: 2},
		{name: "config path", in: mustAny(t, &runtimeoptions.Options{ConfigPath: cfgFile}), want: Options{ShimCgroup: "/from/file"}},
		{name: "body wins over path", in: mustAny(t, &runtimeoptions.Options{ConfigPath: cfgFile, ConfigBody: []byte("Debug = true")}), want: Options{Debug: true}},
		{name: "missing config path", in: mustAny(t, &runtimeoptions.Options{ConfigPath: filepath.Join(dir, "nope.toml")}), invalid: true},
		{name: "bad toml", in: body("Debug = = true"), invalid: true},
		{name: "wrong value type", in: body("Debug = 'yes'"), invalid: true},
		{name: "root shim cgroup", in: body("ShimCgroup = '/'"), invalid: true},
		{name: "runc options", in: mustAny(t, &runcoptions.Options{ShimCgroup: "/runc/shim", BinaryName: "crun", SystemdCgroup: true}), want: Options{ShimCgroup: "/runc/shim", SystemdCgroup: true}, notes: 1},
		{name: "foreign type", in: mustAny(t, &task.ProcessInfo{Pid: 1}), invalid: true},
		{name: "garbage", in: &anypb.Any{TypeUrl: "runtimeoptions.v1.Options", Value: []byte{0xff, 0xff, 0xff}}, invalid: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, notes, err := ParseOptions(tc.in)
			if tc.invalid {
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("ParseOptions = %+v, %v; want an InvalidArgument error", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseOptions: %v", err)
			}
			if *got != tc.want {
				t.Errorf("ParseOptions = %+v, want %+v", *got, tc.want)
			}
			if len(notes) != tc.notes {
				t.Errorf("ParseOptions notes %q, want %d", notes, tc.notes)
			}
		})
	}
}

func TestStartOptions(t *testing.T) {
	p := &bootapi.BootstrapParams{}
	if o, err := startOptions(p); err != nil || *o != (Options{}) {
		t.Fatalf("no extensions: %+v, %v; want defaults", o, err)
	}
	// An extension of another kind is skipped; the options one is used.
	if err := p.AddExtension(&task.ProcessInfo{Pid: 7}); err != nil {
		t.Fatal(err)
	}
	if err := p.AddExtension(&runtimeoptions.Options{ConfigBody: []byte("Debug = true")}); err != nil {
		t.Fatal(err)
	}
	o, err := startOptions(p)
	if err != nil || !o.Debug {
		t.Fatalf("startOptions = %+v, %v; want Debug", o, err)
	}
}

func TestInfoOptions(t *testing.T) {
	m := &manager{name: "io.containerd.husk.v2"}
	ctx := context.Background()

	info, err := m.Info(ctx, bytes.NewReader(nil))
	if err != nil {
		t.Fatalf("Info without options: %v", err)
	}
	if info.Options != nil || info.Features == nil {
		t.Errorf("Info without options: Options %v (want nil), Features %v (want set)", info.Options, info.Features)
	}

	opts := mustAny(t, &runtimeoptions.Options{ConfigBody: []byte("ShimCgroup = '/x'\nSomethingElse = 1\n")})
	raw, err := proto.Marshal(opts)
	if err != nil {
		t.Fatal(err)
	}
	info, err = m.Info(ctx, bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("Info with CRI options: %v", err)
	}
	if info.Options == nil || info.Options.GetTypeUrl() != opts.GetTypeUrl() || !bytes.Equal(info.Options.GetValue(), opts.GetValue()) {
		t.Errorf("Info did not echo the options: got %v, want %v", info.Options, opts)
	}

	if _, err := m.Info(ctx, bytes.NewReader([]byte("not a proto \xff\xff"))); err == nil {
		t.Error("Info with garbage on stdin: want an error")
	}
}

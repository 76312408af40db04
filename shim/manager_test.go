package shim

import (
	"os"
	"testing"

	"github.com/containerd/errdefs"
)

func TestGroupOf(t *testing.T) {
	tests := []struct {
		name    string
		config  string // "" : no config.json
		want    string
		wantErr bool
		invalid bool
	}{
		{name: "no annotations", config: `{"ociVersion":"1.2.0"}`, want: "c1"},
		{name: "cri sandbox", config: `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}`, want: "pod1"},
		{name: "pause container names itself", config: `{"annotations":{"io.kubernetes.cri.sandbox-id":"c1","io.kubernetes.cri.container-type":"sandbox"}}`, want: "c1"},
		{name: "husk group wins", config: `{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1","io.containerd.husk.v2.group":"g"}}`, want: "g"},
		{name: "empty value ignored", config: `{"annotations":{"io.containerd.husk.v2.group":"","io.kubernetes.cri.sandbox-id":"pod1"}}`, want: "pod1"},
		{name: "bad json", config: `{"annotations":`, wantErr: true, invalid: true},
		{name: "missing config", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Chdir(t.TempDir())
			if tc.config != "" {
				if err := os.WriteFile("config.json", []byte(tc.config), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := groupOf("c1")
			if tc.wantErr {
				if err == nil {
					t.Fatalf("groupOf = %q, want an error", got)
				}
				if tc.invalid && !errdefs.IsInvalidArgument(err) {
					t.Errorf("error %v, want InvalidArgument", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("groupOf = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

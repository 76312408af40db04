package cgroups

import "testing"

func TestCgroupfsPath(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		wantErr  bool
	}{
		{in: "", want: ""},
		{in: "/default/c1", want: "/default/c1"},
		{in: "/a/../b//c/", want: "/b/c"},
		{in: "/../../etc", want: "/etc"},
		{in: "default/c1", want: "/default/c1"}, // relative: below the root
		{in: "c1", want: "/c1"},
		{in: "/with:colon:s", want: "/with:colon:s"}, // absolute: never systemd form
		{in: "a:b", want: "/a:b"},                    // one colon: a plain name
		{in: "system.slice:nerdctl:abc", want: "/system.slice/nerdctl-abc.scope"},
		{in: "kubepods-besteffort-pod123.slice:cri-containerd:abc",
			want: "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice/cri-containerd-abc.scope"},
		{in: ":docker:abc", want: "/system.slice/docker-abc.scope"}, // empty slice → system.slice
		{in: "-.slice:p:abc", want: "/p-abc.scope"},                 // root slice
		{in: "user.slice::abc", want: "/user.slice/abc.scope"},      // empty prefix
		{in: "a-b.slice:p:c-d.slice", want: "/a.slice/a-b.slice/c-d.slice"},
		{in: "/", wantErr: true},
		{in: ".", wantErr: true},
		{in: "/..", wantErr: true},
		{in: "a\x00b", wantErr: true},
		{in: "system.slice:p:", wantErr: true},      // no name
		{in: "system:p:abc", wantErr: true},         // not a slice
		{in: "a--b.slice:p:abc", wantErr: true},     // empty component
		{in: "-a.slice:p:abc", wantErr: true},       // leading dash
		{in: "a-.slice:p:abc", wantErr: true},       // trailing dash
		{in: ".slice:p:abc", wantErr: true},         // just the suffix
		{in: "system.slice:p:a/b", wantErr: true},   // slash in name
		{in: "system.slice:p/x:abc", wantErr: true}, // slash in prefix
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CgroupfsPath(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("CgroupfsPath(%q) = %q, want error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("CgroupfsPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestExpandSlice(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"system.slice", "/system.slice"},
		{"a-b-c.slice", "/a.slice/a-b.slice/a-b-c.slice"},
		{"-.slice", "/"},
		{"bad", ""},
		{"a/b.slice", ""},
	} {
		got, err := ExpandSlice(tc.in)
		if (tc.want == "") != (err != nil) || got != tc.want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// Command containerd-shim-husk-v2 is husk, containerd's runtime shim that
// builds containers itself (runtime type io.containerd.husk.v2).
package main

import (
	"context"

	"github.com/containerd/containerd/v2/pkg/shim"

	"github.com/husk-runtime/husk/process"
	huskshim "github.com/husk-runtime/husk/shim"
)

func main() {
	// A container init is this binary re-executed: it never reaches the shim.
	if process.IsInit() {
		process.InitMain()
	}
	huskshim.Register()
	shim.RunShim(context.Background(), huskshim.NewManager("io.containerd.husk.v2"))
}

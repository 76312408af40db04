//go:build tools

// Package conformance pins containerd's integration/client test package (the
// suite that scripts/conformance.sh runs against husk) in this module's
// go.mod and go.sum.
package conformance

import _ "github.com/containerd/containerd/v2/integration/client"

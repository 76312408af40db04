package shim

import (
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/containerd/v2/pkg/shutdown"
	"github.com/containerd/containerd/v2/plugins"
	"github.com/containerd/plugin"
	"github.com/containerd/plugin/registry"
)

// Register adds husk's task service to containerd's shim plugin registry,
// where shim.RunShim finds it, and the memory tuner of the daemon (see
// memory.go; pkg/shim installs its ttrpc interceptor).
func Register() {
	registry.Register(&plugin.Registration{
		Type: plugins.InternalPlugin,
		ID:   "memory",
		InitFn: func(ic *plugin.InitContext) (any, error) {
			return newMemoryTuner(ic.Context, trimIdle), nil
		},
	})
	registry.Register(&plugin.Registration{
		Type: plugins.TTRPCPlugin,
		ID:   "task",
		Requires: []plugin.Type{
			plugins.EventPlugin,
			plugins.InternalPlugin,
		},
		InitFn: func(ic *plugin.InitContext) (any, error) {
			pp, err := ic.GetByID(plugins.EventPlugin, "publisher")
			if err != nil {
				return nil, err
			}
			ss, err := ic.GetByID(plugins.InternalPlugin, "shutdown")
			if err != nil {
				return nil, err
			}
			return NewTaskService(ic.Context, pp.(shim.Publisher), ss.(shutdown.Service))
		},
	})
}

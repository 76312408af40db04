# husk: containerd runtime shim v2 (io.containerd.husk.v2).
#
#   make build        bin/containerd-shim-husk-v2
#   make containerd   containerd, ctr, containerd-shim-runc-v2 (version from go.mod) in .cache/bin
#   make image        .cache/busybox.tar (OCI image from the host's busybox-static)
#   make unit         unit tests
#   make integration  end-to-end tests against a private containerd (root)
#   make test         unit + integration
#   make demo         scripts/demo.sh
#   make bench        husk vs the runc shim (runc, crun) side by side; rewrites bench/results.md

GO        ?= go
SHIM      := bin/containerd-shim-husk-v2
IMAGE_TAR := .cache/busybox.tar
BUSYBOX   ?= /bin/busybox
UNIT_PKGS := ./shim/... ./process/... ./rootfs/... ./security/... ./internal/... ./scripts/... ./bench/...
GOTESTFLAGS ?=
INTEGRATION_TIMEOUT ?= 15m

.PHONY: all build containerd crictl runc image test unit integration conformance test-v2 fuzz bench demo clean

all: build

# Static (glibc linked in; netgo/osusergo keep glibc's NSS, which dlopens,
# out): every container costs four starts of this binary (containerd's
# `start` and `delete` actions, the daemon, the container init) and every
# exec one, and a static start skips the dynamic loader: 0.5-1 ms each.
SHIM_BUILD := CGO_ENABLED=1 $(GO) build -tags netgo,osusergo -ldflags '-extldflags=-static'

build:
	$(SHIM_BUILD) -o $(SHIM) ./cmd/containerd-shim-husk-v2

containerd:
	scripts/build-containerd.sh

# crictl (CRI tests) and runc with seccomp (the reference the tests compare with)
crictl:
	scripts/build-crictl.sh

runc:
	scripts/build-runc.sh

# Always regenerated (takes a second); the output is reproducible.
image:
	$(GO) run ./scripts/mkimage -busybox $(BUSYBOX) -o $(IMAGE_TAR)

unit:
	$(GO) test $(GOTESTFLAGS) $(UNIT_PKGS)

integration: build containerd image crictl runc
	$(GO) test -count=1 -v -timeout $(INTEGRATION_TIMEOUT) $(GOTESTFLAGS) ./integration/...

# containerd's own integration/client suite, run against husk
conformance: build containerd
	scripts/conformance.sh $(CONFORMANCE_FLAGS)

# every fuzz target, FUZZTIME each, from the committed corpora
FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# husk's cgroup v2 code in a qemu VM with a unified hierarchy
test-v2: image
	GO=$(GO) scripts/test-v2.sh

test: unit
	$(MAKE) fuzz FUZZTIME=5s
	$(MAKE) integration
	$(MAKE) conformance
	$(MAKE) test-v2

# husk vs the runc shim (runc, crun) side by side; rewrites bench/results.md
bench:
	scripts/bench.sh

demo:
	scripts/demo.sh

clean:
	rm -rf bin $(IMAGE_TAR)

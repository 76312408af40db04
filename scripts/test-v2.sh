#!/usr/bin/env bash
# make test-v2: husk's cgroup and containment tests on a cgroup v2 (unified)
# host, in a throw-away qemu VM.
#
# This machine mounts the cgroup v1 controllers, so husk's v2 code (memory.max,
# memory.events OOM, cpu.max, pids.max, io.max, the eBPF device program,
# cgroup.freeze, cgroup.kill) cannot run here. The VM boots a Debian kernel
# with cgroup2 alone at /sys/fs/cgroup, a private containerd and husk, and
# runs there:
#   - the unit tests of process/cgroups and security (static test binaries),
#   - the integration tests matching HUSK_V2_RUN (default below), which
#     include integration/cgroupv2_test.go's v2-only tests,
# and reports their result here: output live on the console, logs in
# .cache/vm/share/out, the exit code of this script.
#
# Builds (cached in .cache/vm, git-ignored): the kernel (apt-get download +
# dpkg -x; nothing is installed on the host) and a busybox initramfs
# (vm/build-image.sh); containerd and ctr at the go.mod version, static
# (CGO_ENABLED=0); per run: the shim static (cgo + -static), the test
# binaries (go test -c), .cache/busybox.tar if missing.
#
# Needs qemu-system-x86_64 (Debian: qemu-system-x86), busybox-static, Go and a
# C toolchain with static glibc (libc6-dev). Without qemu it prints
# "test-v2: SKIP (...)" and exits 0 (likewise on a non-amd64 host).
#
# Env:
#   HUSK_V2_RUN           -test.run for the integration package
#   HUSK_V2_SUITES        suites to run (default "cgroups security integration")
#   HUSK_V2_TEST_TIMEOUT  integration -test.timeout (default 12m)
#   HUSK_V2_UNIT_TIMEOUT  unit suites' -test.timeout (default 4m)
#   HUSK_VM_TIMEOUT       hard limit of the VM's wall time in s (default 1200)
#   HUSK_VM_MEM, HUSK_VM_CPUS, HUSK_VM_ACCEL  see vm/run.sh
#   HUSK_VM_KERNEL, HUSK_VM_REFRESH            see vm/build-image.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/vm"
SHARE="$CACHE/share"
MOD="github.com/containerd/containerd/v2"
GO="${GO:-go}"

# The cgroup tests (resources_test.go, cgroupv2_test.go), the containment
# tests (containment_test.go) and a few foundation smoke tests.
DEFAULT_RUN='^Test(Resources|CgroupV2|Seccomp|Capabilities|MaskedAndReadonlyPaths|UserNamespaceContainment|Escape|ContainmentBadInput|RunEchoPid|Isolation|LifecycleClient)'
export HUSK_V2_RUN="${HUSK_V2_RUN:-$DEFAULT_RUN}"
export HUSK_V2_SUITES="${HUSK_V2_SUITES:-cgroups security integration}"
export HUSK_V2_TEST_TIMEOUT="${HUSK_V2_TEST_TIMEOUT:-12m}"
export HUSK_V2_UNIT_TIMEOUT="${HUSK_V2_UNIT_TIMEOUT:-4m}"

log() { printf '==> test-v2: %s\n' "$*" >&2; }
die() { printf 'test-v2: FAIL (%s)\n' "$*" >&2; exit 1; }

start=$SECONDS

# --- can it run at all? ----------------------------------------------------
if [[ "$(uname -m)" != x86_64 ]]; then
	echo "test-v2: SKIP (the VM image is amd64 and this host is $(uname -m); the cgroup v2 tests did not run)"
	exit 0
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
	echo "test-v2: SKIP (qemu-system-x86_64 not found: apt-get install qemu-system-x86; the cgroup v2 tests did not run)"
	exit 0
fi
command -v "$GO" >/dev/null || die "Go not found"

mkdir -p "$CACHE"
# One run at a time: the share and the scratch disk are per checkout.
exec 9>"$CACHE/.lock"
if ! flock -n 9; then
	log "another test-v2 run holds $CACHE/.lock, waiting"
	flock 9
fi

# --- VM image ----------------------------------------------------------------
kdir="$("$ROOT/vm/build-image.sh" | tail -1)" || die "building the VM image failed"

# --- binaries ----------------------------------------------------------------
cd "$ROOT"
version="$($GO list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$MOD")" ||
	die "cannot read the $MOD version from go.mod"

# is_static FILE: no ELF interpreter (PT_INTERP).
is_static() {
	if command -v readelf >/dev/null; then
		! readelf -lW "$1" 2>/dev/null | grep -q 'Requesting program interpreter'
	else
		! grep -aq '/lib64/ld-linux' "$1"
	fi
}

cbin="$CACHE/bin"
if [[ ! -x "$cbin/containerd" || ! -x "$cbin/ctr" || "$(cat "$cbin/.version" 2>/dev/null)" != "$version" ]]; then
	log "building static containerd and ctr $version"
	mkdir -p "$cbin"
	tmp="$(mktemp -d "$CACHE/.b.XXXXXX")"
	(cd "$tmp" && GOFLAGS= GO111MODULE=on CGO_ENABLED=0 GOBIN="$tmp" $GO install \
		-ldflags "-s -w -X $MOD/version.Version=$version" \
		"$MOD/cmd/containerd@$version" "$MOD/cmd/ctr@$version") || { rm -rf "$tmp"; die "building containerd $version"; }
	mv -f "$tmp/containerd" "$tmp/ctr" "$cbin/"
	rm -rf "$tmp"
	echo "$version" >"$cbin/.version"
fi

if [[ ! -f "$ROOT/.cache/busybox.tar" ]]; then
	log "building .cache/busybox.tar"
	$GO run ./scripts/mkimage -busybox "${BUSYBOX:-/bin/busybox}" -o "$ROOT/.cache/busybox.tar" || die "building the busybox image"
fi

log "building the static shim and test binaries"
rm -rf "$SHARE"
husk="$SHARE/husk"
mkdir -p "$husk/bin" "$husk/.cache/bin" "$SHARE/tests" "$SHARE/out"
# The shim needs cgo (process/nsenter's constructor): link glibc statically;
# netgo/osusergo keep glibc's NSS (dlopen) out.
CGO_ENABLED=1 $GO build -tags netgo,osusergo -ldflags '-s -w -extldflags=-static' \
	-o "$husk/bin/containerd-shim-husk-v2" ./cmd/containerd-shim-husk-v2 || die "building the static shim"
# suite name -> package
declare -A suite_pkg=([integration]=./integration [cgroups]=./process/cgroups [security]=./security)
for s in $HUSK_V2_SUITES; do
	[[ -n "${suite_pkg[$s]:-}" ]] || die "unknown suite $s in HUSK_V2_SUITES (known: ${!suite_pkg[*]})"
	CGO_ENABLED=0 $GO test -c -ldflags '-s -w' -o "$SHARE/tests/$s.test" "${suite_pkg[$s]}" ||
		die "building the ${suite_pkg[$s]} tests"
done
for f in "$husk/bin/containerd-shim-husk-v2" "$SHARE"/tests/*.test "$cbin/containerd" "$cbin/ctr"; do
	is_static "$f" || die "$f is dynamically linked; the VM has no shared libraries"
done
cp "$cbin/containerd" "$cbin/ctr" "$husk/.cache/bin/"
cp "$ROOT/.cache/busybox.tar" "$husk/.cache/"
cp "$ROOT/go.mod" "$husk/"
# Each test binary runs in its package dir, as under `go test`.
for s in $HUSK_V2_SUITES; do
	pkg="${suite_pkg[$s]#./}"
	mkdir -p "$husk/$pkg"
	[[ -d "$ROOT/$pkg/testdata" ]] && cp -a "$ROOT/$pkg/testdata" "$husk/$pkg/"
done
# containment_test.go runs a helper binary in containers; the VM has no Go
# toolchain to build it, so it is prebuilt (HUSK_TEST_CONTAINMENT_HELPER).
helper_pkg=./integration/testdata/containment-helper
if [[ " $HUSK_V2_SUITES " == *" integration "* && -d "$helper_pkg" ]]; then
	CGO_ENABLED=0 $GO build -ldflags '-s -w' -o "$husk/.cache/containment-helper" "$helper_pkg" ||
		die "building $helper_pkg"
fi
cp "$ROOT/vm/guest-run.sh" "$SHARE/guest-run.sh"
chmod 0755 "$SHARE/guest-run.sh"
{
	printf 'HUSK_V2_RUN=%q\n' "$HUSK_V2_RUN"
	printf 'HUSK_V2_SUITES=%q\n' "$HUSK_V2_SUITES"
	printf 'HUSK_V2_TEST_TIMEOUT=%q\n' "$HUSK_V2_TEST_TIMEOUT"
	printf 'HUSK_V2_UNIT_TIMEOUT=%q\n' "$HUSK_V2_UNIT_TIMEOUT"
	printf 'HUSK_V2_VERBOSE=%q\n' "${HUSK_V2_VERBOSE:-1}"
} >"$SHARE/run.conf"
log "build done in $((SECONDS - start))s; booting $(basename "$kdir") (suites: $HUSK_V2_SUITES; -test.run '$HUSK_V2_RUN')"

# --- run -----------------------------------------------------------------------
vstart=$SECONDS
set +e
"$ROOT/vm/run.sh" "$kdir" "$SHARE"
rc=$?
set -e

# --- report ----------------------------------------------------------------------
out="$SHARE/out"
echo
echo "----- test-v2 summary (cgroup v2 VM, kernel $(basename "$kdir"), VM wall time $((SECONDS - vstart))s) -----"
[[ -f "$out/summary.txt" ]] && sed 's/^/  suite /' "$out/summary.txt"
for f in "$out"/*.log; do
	[[ -f "$f" && "$(basename "$f")" != console.log ]] || continue
	s="$(basename "$f" .log)"
	pass=$(grep -c -- '^--- PASS' "$f" || true)
	fail=$(grep -c -- '^--- FAIL' "$f" || true)
	skip=$(grep -c -- '^--- SKIP' "$f" || true)
	echo "  $s: top-level tests: $pass passed, $fail failed, $skip skipped"
	grep -E -- '^\s*--- FAIL' "$f" | sed 's/^/    /' || true
done
echo "  logs: $out"
case $rc in
0) echo "test-v2: PASS" ;;
124) echo "test-v2: FAIL (the VM ran out of time)" ;;
125) echo "test-v2: FAIL (the VM did not report a result; see $out/console.log)" ;;
*) echo "test-v2: FAIL (exit $rc)" ;;
esac
exit "$rc"

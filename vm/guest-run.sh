#!/bin/sh
# Runs inside the cgroup v2 test VM (started by vm/init from the 9p share).
#
# The share (/mnt/share, prepared by scripts/test-v2.sh) holds:
#   run.conf          settings (sourced): HUSK_V2_RUN, HUSK_V2_SUITES,
#                     HUSK_V2_TEST_TIMEOUT, HUSK_V2_UNIT_TIMEOUT, HUSK_V2_VERBOSE
#   husk/             a minimal husk tree the integration harness recognises:
#                     go.mod, bin/containerd-shim-husk-v2 (static),
#                     .cache/bin/{containerd,ctr} (static), .cache/busybox.tar,
#                     and each test package's testdata
#   tests/*.test      static test binaries (integration, process/cgroups, security)
# It writes to /mnt/share/out: <suite>.log per suite, summary.txt,
# containerd logs (logs/), and the exit code (vm-rc, written by vm/init).
#
# The tree is copied to the VM's tmpfs first: containers need the shim and
# their state on a local filesystem, and 9p is slow under emulation.
set -u
set -o pipefail 2>/dev/null

SHARE=/mnt/share
OUT=$SHARE/out
mkdir -p "$OUT/logs"
. "$SHARE/run.conf"

say() { echo "HUSK-V2: $*"; }

now() { cut -d. -f1 /proc/uptime; }

t0=$(now)
cp -a "$SHARE/husk" /husk || { say "copying the husk tree failed"; exit 125; }
mkdir -p /husk/tests
cp -a "$SHARE"/tests/*.test /husk/tests/ || { say "copying the test binaries failed"; exit 125; }
say "copied binaries in $(($(now) - t0))s"

export HOME=/root TMPDIR=/tmp CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1
export HUSK_TEST_LOG_DIR="$OUT/logs"
[ -x /husk/.cache/containment-helper ] && export HUSK_TEST_CONTAINMENT_HELPER=/husk/.cache/containment-helper
# Scratch disk for the io tests (virtio-blk, only this VM uses it), with BFQ
# so that io.bfq.weight exists, as on distributions that default to it.
if [ -b /dev/vda ]; then
	export HUSK_TEST_BLOCKDEV=/dev/vda
	echo bfq >/sys/block/vda/queue/scheduler 2>/dev/null || say "cannot select bfq for vda"
fi

say "kernel $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
say "memory $(awk '/MemTotal/ {print $2 " kB"}' /proc/meminfo), cpus $(nproc)"

v=""
[ "${HUSK_V2_VERBOSE:-1}" = 1 ] && v="-test.v"

# run_suite NAME DIR BINARY ARGS...: runs a test binary with DIR as its
# working directory (as `go test` does with the package dir).
overall=0
run_suite() {
	name=$1 dir=$2 bin=$3
	shift 3
	say "BEGIN $name"
	s=$(now)
	(cd "$dir" && "$bin" $v -test.count=1 "$@") 2>&1 | tee "$OUT/$name.log"
	rc=$?
	d=$(($(now) - s))
	say "END $name rc=$rc ${d}s"
	echo "$name rc=$rc ${d}s" >>"$OUT/summary.txt"
	[ "$rc" = 0 ] || overall=1
}

for suite in $HUSK_V2_SUITES; do
	case $suite in
	cgroups)
		run_suite cgroups /husk/process/cgroups /husk/tests/cgroups.test -test.timeout="$HUSK_V2_UNIT_TIMEOUT"
		;;
	security)
		run_suite security /husk/security /husk/tests/security.test -test.timeout="$HUSK_V2_UNIT_TIMEOUT"
		;;
	integration)
		run_suite integration /husk/integration /husk/tests/integration.test \
			-test.timeout="$HUSK_V2_TEST_TIMEOUT" -test.run="$HUSK_V2_RUN"
		;;
	*)
		say "unknown suite $suite"
		overall=1
		;;
	esac
done

# Nothing of the tests may be left: cgroups below the root, mounts, processes.
left=$(find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null)
if [ -n "$left" ]; then
	say "cgroups left behind after the tests:"
	echo "$left"
	overall=1
fi
if grep -qE ' (/tmp/husk-it-|/run/containerd)' /proc/self/mountinfo; then
	say "mounts left behind after the tests:"
	grep -E ' (/tmp/husk-it-|/run/containerd)' /proc/self/mountinfo
	overall=1
fi
exit $overall

#!/usr/bin/env bash
# husk demo: on a Debian machine, as root, build husk, containerd and the
# busybox test image, start a private containerd (nothing shared with a system
# containerd; ctr's FIFOs go to the temp dir too, not /run/containerd/fifo),
# and run
#
#   ctr run --rm --runtime io.containerd.husk.v2 docker.io/library/busybox:husk demo \
#       sh -c 'echo pid $$; hostname; cat /proc/mounts'
#
# Everything it starts or mounts is removed on exit, whatever happens.
#
# Env: HUSK_DEMO_RUNTIME (default io.containerd.husk.v2; io.containerd.runc.v2
#      works too when .cache/bin/runc exists), HUSK_DEMO_KEEP=1 keeps the temp
#      dir (containerd log) for inspection, HUSK_DEMO_TIMEOUT (seconds, default
#      120) bounds the ctr run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNTIME="${HUSK_DEMO_RUNTIME:-io.containerd.husk.v2}"
IMAGE="docker.io/library/busybox:husk"
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	echo "demo.sh must run as root (it starts containerd and containers)" >&2
	exit 1
fi

# --- packages --------------------------------------------------------------
missing=()
for pkg in busybox-static make gcc libc6-dev; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "demo.sh needs Go (see go.mod for the version)" >&2; exit 1; }

# --- build -----------------------------------------------------------------
cd "$ROOT"
if [[ "$RUNTIME" == io.containerd.husk.v2 ]]; then
	log "make build"
	make --no-print-directory build
fi
log "make containerd"
make --no-print-directory containerd
log "make image"
make --no-print-directory image

CTRD="$ROOT/.cache/bin/containerd"
CTR_BIN="$ROOT/.cache/bin/ctr"

# --- private containerd ----------------------------------------------------
# Short path: the shim socket dir must be <= 42 bytes.
D="$(mktemp -d /tmp/husk-demo-XXXXXX)"
NS="husk-demo-$(basename "$D" | sed 's/^husk-demo-//' | tr 'A-Z' 'a-z')"
ADDR="$D/c.sock"
CTRD_PID=""

ctr() { "$CTR_BIN" --address "$ADDR" --namespace "$NS" "$@"; }

# PIDs of processes started by our containerd (shims): their command line or
# environment names our socket.
our_shims() {
	local p
	for p in /proc/[0-9]*; do
		[[ "${p#/proc/}" == "$$" ]] && continue
		{
			if tr '\0' ' ' <"$p/cmdline" | grep -q -- "containerd-shim.*$ADDR\|$ADDR.*containerd-shim" ||
				{ tr '\0' '\n' <"$p/cmdline" | head -1 | grep -q containerd-shim &&
					tr '\0' '\n' <"$p/environ" | grep -qx ".*=$ADDR"; }; then
				echo "${p#/proc/}"
			fi
		} 2>/dev/null
	done
}

cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	log "cleaning up"
	if [[ -n "$CTRD_PID" ]] && kill -0 "$CTRD_PID" 2>/dev/null; then
		timeout -s KILL 10 "$CTR_BIN" --address "$ADDR" --namespace "$NS" task kill -s SIGKILL demo >/dev/null 2>&1
		sleep 0.2
		timeout -s KILL 10 "$CTR_BIN" --address "$ADDR" --namespace "$NS" task delete -f demo >/dev/null 2>&1
		timeout -s KILL 10 "$CTR_BIN" --address "$ADDR" --namespace "$NS" container delete demo >/dev/null 2>&1
		kill -TERM "$CTRD_PID" 2>/dev/null
		for _ in $(seq 100); do kill -0 "$CTRD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$CTRD_PID" 2>/dev/null
		wait "$CTRD_PID" 2>/dev/null
	fi
	local pid
	for pid in $(our_shims); do
		echo "killing leftover shim $pid" >&2
		kill -KILL "$pid" 2>/dev/null
	done
	# Containers left in this run's cgroups (named after the unique namespace).
	local cg
	for cg in $(find /sys/fs/cgroup/ -maxdepth 3 -type d -path "*/$NS*" 2>/dev/null | sort -r); do
		for pid in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
	done
	sleep 0.1
	for cg in $(find /sys/fs/cgroup/ -maxdepth 3 -type d -path "*/$NS*" 2>/dev/null | sort -r); do
		rmdir "$cg" 2>/dev/null
	done
	# Mounts under the temp dir, deepest first.
	local mp
	awk -v d="$D" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r mp; do umount -l "$mp" || echo "umount $mp failed" >&2; done
	rm -rf "/run/containerd/runc/$NS"
	if [[ "${HUSK_DEMO_KEEP:-}" == 1 ]]; then
		echo "kept $D (containerd log: $D/containerd.log)" >&2
	elif awk -v d="$D" 'index($5, d "/") == 1 { found=1 } END { exit !found }' /proc/self/mountinfo; then
		echo "not removing $D: still mounted" >&2
	else
		rm -rf "$D"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cat >"$D/config.toml" <<EOF
version = 3
root = "$D/root"
state = "$D/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]

[grpc]
  address = "$ADDR"

[ttrpc]
  address = "$ADDR.ttrpc"

[plugins.'io.containerd.shim.v1.manager']
  socket_dir = "$D/s"

[plugins.'io.containerd.internal.v1.opt']
  path = "$D/opt"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.husk]
  runtime_type = 'io.containerd.husk.v2'
EOF

log "starting containerd ($D)"
# husk's bin/ first so io.containerd.husk.v2 resolves to bin/containerd-shim-husk-v2.
PATH="$ROOT/bin:$ROOT/.cache/bin:$PATH" "$CTRD" --config "$D/config.toml" >"$D/containerd.log" 2>&1 &
CTRD_PID=$!

for i in $(seq 300); do
	if ! kill -0 "$CTRD_PID" 2>/dev/null; then
		echo "containerd exited; log:" >&2
		tail -30 "$D/containerd.log" >&2
		exit 1
	fi
	[[ -S "$ADDR" ]] && ctr version >/dev/null 2>&1 && break
	((i == 300)) && { echo "containerd did not come up in 30s" >&2; tail -30 "$D/containerd.log" >&2; exit 1; }
	sleep 0.1
done

log "importing $IMAGE"
ctr images import --platform linux/amd64 "$ROOT/.cache/busybox.tar" >/dev/null
ctr images ls -q

log "ctr run --rm --runtime $RUNTIME $IMAGE demo sh -c 'echo pid \$\$; hostname; cat /proc/mounts'"
set +e
# ctr forwards SIGTERM to the container, so only SIGKILL stops a hung ctr.
timeout -s KILL "${HUSK_DEMO_TIMEOUT:-120}" \
	"$CTR_BIN" --address "$ADDR" --namespace "$NS" run --rm --fifo-dir "$D/fifo" --runtime "$RUNTIME" "$IMAGE" demo \
	sh -c 'echo pid $$; hostname; cat /proc/mounts' </dev/null
rc=$?
set -e
if ((rc != 0)); then
	((rc == 137)) && echo "ctr run did not finish within ${HUSK_DEMO_TIMEOUT:-120}s (or was killed)" >&2
	echo "ctr run failed with exit code $rc; containerd log tail:" >&2
	tail -30 "$D/containerd.log" >&2
	exit "$rc"
fi
log "demo ok"

#!/usr/bin/env bash
# husk benchmark (`make bench`): husk side by side with containerd's runc shim
# driving runc, and the same shim driving crun, against one private
# containerd. Builds what it needs, runs bench/ (see bench/main.go for what is
# measured), prints the table and rewrites the generated section of
# bench/results.md. Root only; everything it starts or mounts is removed.
#
#   husk                      make build               bin/containerd-shim-husk-v2
#   containerd, ctr, runc shim scripts/build-containerd.sh  .cache/bin
#   busybox image             make image               .cache/busybox.tar
#   runc v1.5.3 + seccomp     make runc                .cache/bin/runc
#                             (scripts/build-runc.sh; libseccomp-dev from apt)
#   crun                      apt (Debian 12: 1.8.1), run through bench/crun-wrapper
#                             (ociVersion rewrite, cgroup2 mount hidden); left out,
#                             with the reason printed, if it cannot be installed
#
# Env: BENCH_ARGS   extra flags for the bench program, e.g.
#                   BENCH_ARGS="-start-runs 10 -only start,exec" make bench
#                   (-husk-base PATH adds a second husk build as husk-base: A/B)
#      BENCH_TIMEOUT seconds for the whole measurement (default 1200)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.cache/bin"
RUNC_VERSION="v1.5.3"
RUNC="$BIN/runc"
CRUN_WRAPPER="$ROOT/bench/crun-wrapper"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
	echo "bench.sh must run as root (it starts containerd and containers)" >&2
	exit 1
fi
command -v go >/dev/null || { echo "bench.sh needs Go (see go.mod for the version)" >&2; exit 1; }
cd "$ROOT"

# --- packages --------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
missing=()
for pkg in busybox-static make gcc libc6-dev libseccomp-dev pkg-config; do
	installed "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${missing[@]}" >/dev/null
fi
crun_skip=""
if ! installed crun; then
	log "installing crun"
	export DEBIAN_FRONTEND=noninteractive
	if ! { apt-get install -y -qq crun >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq crun >/dev/null; }; }; then
		crun_skip="apt-get install crun failed"
	fi
fi

# --- build -----------------------------------------------------------------
log "make build containerd image runc"
RUNC_VERSION="$RUNC_VERSION" make --no-print-directory build containerd image runc

# The reference must be runc with seccomp: every seccomp figure depends on it.
if ! { "$RUNC" --version 2>/dev/null | grep -q "runc version ${RUNC_VERSION#v}" &&
	"$RUNC" features 2>/dev/null | grep -A1 '"seccomp": {' | grep -q '"enabled": *true'; }; then
	echo "bench.sh: $RUNC is not runc ${RUNC_VERSION} with seccomp (scripts/build-runc.sh --force rebuilds it)" >&2
	exit 1
fi

crun_args=(-crun "$CRUN_WRAPPER")
if [[ -z "$crun_skip" ]]; then
	if ! out="$("$CRUN_WRAPPER" --version 2>&1)"; then
		crun_skip="crun does not run through bench/crun-wrapper: $(echo "$out" | head -1)"
	fi
fi
if [[ -n "$crun_skip" ]]; then
	echo "bench.sh: crun is left out: $crun_skip" >&2
	crun_args=(-crun "" -crun-skip "$crun_skip")
fi

log "building the bench program"
go build -o "$BIN/husk-bench" ./bench

# --- run -------------------------------------------------------------------
log "running (one private containerd; husk, runc and crun interleaved)"
# SIGTERM first: the bench cleans up (containers, containerd, mounts, cgroups).
# shellcheck disable=SC2086
timeout --signal=TERM --kill-after=60 "${BENCH_TIMEOUT:-1200}" \
	"$BIN/husk-bench" -repo "$ROOT" -runc "$RUNC" "${crun_args[@]}" ${BENCH_ARGS:-}

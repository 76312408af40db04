#!/usr/bin/env bash
# Build runc (the reference runtime the integration tests compare husk with)
# into .cache/bin, WITH seccomp support (build tag "seccomp", needs
# libseccomp-dev and pkg-config). A runc built by a plain `go install` has no
# seccomp and refuses every spec that carries a seccomp profile, such as
# containerd's and nerdctl's default one.
# Idempotent: does nothing if .cache/bin/runc is this version and reports
# seccomp in `runc features`.
#
# Usage: scripts/build-runc.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.cache/bin"
VERSION="${RUNC_VERSION:-v1.5.3}"

force=0
[[ "${1:-}" == "--force" ]] && force=1

has_seccomp() {
	"$1" features 2>/dev/null | grep -q '"seccomp"'
}
if [[ $force -eq 0 && -x "${BIN}/runc" ]] && "${BIN}/runc" --version 2>/dev/null | grep -q "runc version ${VERSION#v}" && has_seccomp "${BIN}/runc"; then
	echo "build-runc: runc ${VERSION} with seccomp already in ${BIN}"
	exit 0
fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
	echo "build-runc: libseccomp not found: apt-get install libseccomp-dev pkg-config" >&2
	exit 1
fi

echo "build-runc: building runc ${VERSION} (seccomp) into ${BIN}"
mkdir -p "$BIN"
tmp="$(mktemp -d "${BIN}/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && GOFLAGS= GO111MODULE=on CGO_ENABLED=1 GOBIN="$tmp" go install -tags seccomp \
	"github.com/opencontainers/runc@${VERSION}")
has_seccomp "$tmp/runc" || { echo "build-runc: the new runc reports no seccomp support" >&2; exit 1; }
# rename(2): a runc that is running keeps its old inode.
mv -f "$tmp/runc" "$BIN/runc"
"$BIN/runc" --version

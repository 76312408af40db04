#!/usr/bin/env bash
# Build containerd, ctr and containerd-shim-runc-v2 at the version pinned in
# go.mod into .cache/bin. Idempotent: does nothing if the binaries are present
# and the stamp file records the same version.
#
# Usage: scripts/build-containerd.sh [--force]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${ROOT}/.cache/bin"
STAMP="${BIN}/.containerd-version"
MOD="github.com/containerd/containerd/v2"
TOOLS=(containerd ctr containerd-shim-runc-v2)

force=0
[[ "${1:-}" == "--force" ]] && force=1

# Read the pinned version from go.mod (handles both block and one-line
# require forms, and a replace directive pointing at another version).
version="$(cd "$ROOT" && go mod edit -json | awk -v mod="$MOD" '
	/"Require"/ {sec="req"} /"Replace"/ {sec="rep"}
	/"Path":/ { gsub(/[",]/, "", $2); path=$2 }
	/"Version":/ { gsub(/[",]/, "", $2); if (path == mod) { if (sec=="rep") rep=$2; else req=$2 } }
	END { if (rep != "") print rep; else print req }')"
if [[ -z "$version" ]]; then
	echo "build-containerd: cannot find $MOD in $ROOT/go.mod" >&2
	exit 1
fi

have_all=1
for t in "${TOOLS[@]}"; do
	[[ -x "${BIN}/${t}" ]] || have_all=0
done
if [[ $force -eq 0 && $have_all -eq 1 && -f "$STAMP" && "$(cat "$STAMP")" == "$version" ]]; then
	echo "build-containerd: containerd ${version} already in ${BIN}"
	exit 0
fi

echo "build-containerd: building containerd ${version} into ${BIN}"
mkdir -p "$BIN"
tmp="$(mktemp -d "${BIN}/.build.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

pkgs=()
for t in "${TOOLS[@]}"; do
	pkgs+=("${MOD}/cmd/${t}@${version}")
done
# `go install pkg@version` ignores the enclosing module, so run it from the
# temp dir with module mode forced on and no inherited GOFLAGS.
ldflags="-X ${MOD}/version.Version=${version}"
(cd "$tmp" && GOFLAGS= GO111MODULE=on GOBIN="$tmp" go install -ldflags "$ldflags" "${pkgs[@]}")

for t in "${TOOLS[@]}"; do
	mv -f "$tmp/$t" "$BIN/$t"
done
echo "$version" > "$STAMP"
"$BIN/containerd" --version

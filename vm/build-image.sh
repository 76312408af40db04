#!/usr/bin/env bash
# Build the cgroup v2 test VM image: a Debian kernel and a busybox initramfs,
# cached in .cache/vm (git-ignored). Nothing is installed on the host: the
# kernel package is fetched with `apt-get download` and unpacked with
# `dpkg -x`.
#
#   .cache/vm/kernel/<kver>/vmlinuz        the kernel
#   .cache/vm/kernel/<kver>/modules/*.ko   the modules the guest loads
#   .cache/vm/kernel/<kver>/modules.order  their insmod order (dependencies first)
#   .cache/vm/initrd.gz                    busybox + modules + vm/init
#
# The kernel is the one linux-image-amd64 points at when it is first fetched;
# once cached it is reused (HUSK_VM_KERNEL=linux-image-6.1.0-N-amd64 picks a
# package explicitly, HUSK_VM_REFRESH=1 fetches the current one again). The
# initramfs is rebuilt when vm/init, busybox or the kernel changed.
#
# Prints the kernel dir on the last line of stdout.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="$ROOT/.cache/vm"
BUSYBOX="${BUSYBOX:-/bin/busybox}"
# Modules the guest needs, by name; their dependencies are added from each
# module's modinfo "depends=" (the package ships no modules.dep).
MODULES=(
	overlay                 # containerd's overlayfs snapshotter
	9p 9pnet_virtio virtio_pci # the host share
	virtio_blk              # scratch disk for io.max / io weight tests
	bfq                     # io.bfq.weight
	veth bridge             # network tests that build their own links
)

log() { echo "vm/build-image: $*" >&2; }
die() { log "error: $*"; exit 1; }

mkdir -p "$CACHE/dl" "$CACHE/kernel"

# --- kernel ----------------------------------------------------------------
pick_cached() {
	# Newest cached kernel dir that is complete.
	local d best=""
	for d in "$CACHE"/kernel/*/; do
		[[ -f "$d/.complete" ]] && best="${d%/}"
	done
	echo "$best"
}

kdir=""
if [[ -z "${HUSK_VM_KERNEL:-}" && "${HUSK_VM_REFRESH:-0}" != 1 ]]; then
	kdir="$(pick_cached)"
fi
if [[ -n "${HUSK_VM_KERNEL:-}" ]]; then
	for d in "$CACHE"/kernel/*/; do
		[[ -f "$d/.complete" && "$(cat "$d/.package")" == "$HUSK_VM_KERNEL" ]] && kdir="${d%/}"
	done
fi

if [[ -z "$kdir" ]]; then
	command -v apt-get >/dev/null || die "no cached kernel and no apt-get to fetch one"
	pkg="${HUSK_VM_KERNEL:-}"
	if [[ -z "$pkg" ]]; then
		resolve() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
		pkg="$(resolve)"
		if [[ -z "$pkg" && $(id -u) -eq 0 ]]; then
			log "apt does not know linux-image-amd64 yet: apt-get update"
			apt-get update -qq >/dev/null 2>&1 || true
			pkg="$(resolve)"
		fi
		[[ -n "$pkg" ]] || die "apt-cache does not know linux-image-amd64 (apt-get update as root first)"
	fi
	log "fetching $pkg (apt-get download; not installed)"
	rm -f "$CACHE"/dl/*.deb
	(cd "$CACHE/dl" && apt-get download "$pkg" >/dev/null 2>"$CACHE/dl/apt.log") ||
		die "apt-get download $pkg failed: $(tail -3 "$CACHE/dl/apt.log")"
	deb="$(ls "$CACHE"/dl/*.deb | head -1)"

	tmp="$(mktemp -d "$CACHE/.x.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	dpkg -x "$deb" "$tmp/x"
	kver="$(ls "$tmp/x/lib/modules" | head -1)"
	[[ -n "$kver" && -f "$tmp/x/boot/vmlinuz-$kver" ]] || die "$deb has no vmlinuz/modules"
	mods="$tmp/x/lib/modules/$kver"
	out="$tmp/k"
	mkdir -p "$out/modules"
	cp "$tmp/x/boot/vmlinuz-$kver" "$out/vmlinuz"
	cp "$tmp/x/boot/config-$kver" "$out/config"

	# Resolve dependencies (depth first, dependencies before dependents).
	declare -A path_of=() done_=()
	while read -r rel; do
		n="$(basename "$rel" .ko)"
		path_of["${n//-/_}"]="$rel"
	done <"$mods/modules.order"
	order=()
	add() {
		local m="${1//-/_}" deps d
		[[ -n "${done_[$m]:-}" ]] && return 0
		done_[$m]=1
		local rel="${path_of[$m]:-}"
		if [[ -z "$rel" ]]; then
			# Built in (or absent): nothing to load.
			grep -qE "/${1}\.ko$|/${m}\.ko$" "$mods/modules.builtin" 2>/dev/null ||
				log "note: module $1 is neither in modules.order nor builtin"
			return 0
		fi
		deps="$(tr '\0' '\n' <"$mods/$rel" | sed -n 's/^depends=//p' | head -1)"
		for d in ${deps//,/ }; do add "$d"; done
		cp "$mods/$rel" "$out/modules/"
		order+=("$(basename "$rel")")
	}
	for m in "${MODULES[@]}"; do add "$m"; done
	printf '%s\n' "${order[@]}" >"$out/modules.order"
	echo "$pkg" >"$out/.package"
	touch "$out/.complete"
	rm -rf "$CACHE/kernel/$kver"
	mv "$out" "$CACHE/kernel/$kver"
	rm -rf "$tmp" "$deb"
	trap - EXIT
	kdir="$CACHE/kernel/$kver"
	log "kernel $kver cached in $kdir (modules: $(tr '\n' ' ' <"$kdir/modules.order"))"
fi

# --- initramfs ---------------------------------------------------------------
[[ -x "$BUSYBOX" ]] || die "$BUSYBOX missing (apt-get install busybox-static)"
if command -v file >/dev/null && ! file -L "$BUSYBOX" | grep -q 'statically linked'; then
	die "$BUSYBOX is not statically linked (install busybox-static)"
fi

key="$( (sha256sum "$ROOT/vm/init" "$BUSYBOX" "$kdir/modules.order"; echo "$kdir") | sha256sum | cut -c1-16)"
if [[ -f "$CACHE/initrd.gz" && "$(cat "$CACHE/initrd.key" 2>/dev/null)" == "$key" ]]; then
	log "initramfs up to date"
else
	log "building initramfs"
	tmp="$(mktemp -d "$CACHE/.i.XXXXXX")"
	trap 'rm -rf "$tmp"' EXIT
	r="$tmp/root"
	mkdir -p "$r"/{bin,dev,proc,sys,etc,lib/modules,mnt,tmp,run,newroot}
	cp "$BUSYBOX" "$r/bin/busybox"
	ln -s busybox "$r/bin/sh"
	cp "$ROOT/vm/init" "$r/init"
	chmod 0755 "$r/init"
	cp "$kdir"/modules/*.ko "$r/lib/modules/"
	cp "$kdir/modules.order" "$r/lib/modules/order"
	echo "root:x:0:0:root:/root:/bin/sh" >"$r/etc/passwd"
	echo "root:x:0:" >"$r/etc/group"
	(cd "$r" && find . | LC_ALL=C sort | "$BUSYBOX" cpio -o -H newc -R 0:0 2>/dev/null) | gzip -1 >"$tmp/initrd.gz"
	mv "$tmp/initrd.gz" "$CACHE/initrd.gz"
	echo "$key" >"$CACHE/initrd.key"
	rm -rf "$tmp"
	trap - EXIT
fi

echo "$kdir"

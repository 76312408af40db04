#!/usr/bin/env bash
# Boot the cgroup v2 test VM once and return the guest's result.
#
# Usage: vm/run.sh KERNEL_DIR SHARE_DIR
#
# KERNEL_DIR is what vm/build-image.sh printed; SHARE_DIR is shared with the
# guest as 9p tag host0 (read-write: the guest writes SHARE_DIR/out). The
# console goes to stdout and to SHARE_DIR/out/console.log. Exit code: the
# guest's (from SHARE_DIR/out/vm-rc, else the console's "HUSK-VM-EXIT N"
# line); 124 if the VM ran out of time, 125 if it reported nothing.
#
# Env: HUSK_VM_MEM (MiB, default 2048), HUSK_VM_CPUS (default 2),
#      HUSK_VM_TIMEOUT (seconds of wall time, default 1200),
#      HUSK_VM_ACCEL (qemu -accel, default tcg: this host's /dev/kvm
#      cannot run a guest; set kvm where it can).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kdir="${1:?usage: vm/run.sh KERNEL_DIR SHARE_DIR}"
share="${2:?usage: vm/run.sh KERNEL_DIR SHARE_DIR}"
mem="${HUSK_VM_MEM:-2048}"
cpus="${HUSK_VM_CPUS:-2}"
limit="${HUSK_VM_TIMEOUT:-1200}"
accel="${HUSK_VM_ACCEL:-tcg}"
initrd="$ROOT/.cache/vm/initrd.gz"
disk="$ROOT/.cache/vm/scratch.img"

qemu="$(command -v qemu-system-x86_64)" || { echo "vm/run.sh: qemu-system-x86_64 not found" >&2; exit 127; }
[[ -f "$kdir/vmlinuz" && -f "$initrd" ]] || { echo "vm/run.sh: no kernel/initrd (run vm/build-image.sh)" >&2; exit 125; }

mkdir -p "$share/out"
rm -f "$share/out/vm-rc" "$share/out/console.log"
# A fresh sparse scratch disk every run (io tests read it; nothing else).
rm -f "$disk"
truncate -s 256M "$disk"

accel_opt=(-accel "$accel")
[[ "$accel" == tcg ]] && accel_opt=(-accel tcg,thread=multi)

# mitigations=off: no speculative-execution workarounds, which cost a lot
# under emulation and protect nothing in a throw-away test VM.
append="console=ttyS0 quiet panic=-1 cgroup_no_v1=all mitigations=off"

set +e
# The console: strip the firmware's terminal escapes, keep a copy.
timeout --kill-after=10 "$limit" "$qemu" \
	"${accel_opt[@]}" -m "$mem" -smp "$cpus" \
	-kernel "$kdir/vmlinuz" -initrd "$initrd" -append "$append" \
	-nographic -no-reboot -nic none \
	-virtfs "local,path=$share,mount_tag=host0,security_model=none" \
	-drive "file=$disk,if=virtio,format=raw,cache=unsafe" \
	</dev/null 2>&1 |
	sed -u -e 's/\x1b\[[0-9;?]*[a-zA-Z]//g' -e 's/\x1bc//g' -e 's/\r$//' |
	tee "$share/out/console.log"
qrc=${PIPESTATUS[0]}
set -e
rm -f "$disk"

if [[ -s "$share/out/vm-rc" ]]; then
	exit "$(cat "$share/out/vm-rc")"
fi
line="$(grep -a -o 'HUSK-VM-EXIT [0-9]*' "$share/out/console.log" | tail -1 || true)"
if [[ -n "$line" ]]; then
	exit "${line#HUSK-VM-EXIT }"
fi
if [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
	echo "vm/run.sh: the VM did not finish within ${limit}s" >&2
	exit 124
fi
echo "vm/run.sh: the VM exited ($qrc) without reporting a result" >&2
exit 125

#!/usr/bin/env bash
# Boots the VM test guest (build.sh) under qemu with the .deb and the suite
# shared by 9p, prints the suite's output as it runs, and exits with the
# suite's exit code (2 when the guest gave none: boot failure, timeout).
#
# usage: run.sh DEB
# env:   VM_TIMEOUT  seconds for the whole boot-run-poweroff (default 1200)
#        VM_MEM      MiB (default 2048)     VM_CPUS (default 2)
#        VM_ACCEL    tcg or kvm (default: kvm only where kvm_intel/kvm_amd
#                    is loaded and /dev/kvm is usable, else tcg)
#        VM_SUITE    the suite to run (default packaging/vm/suite.sh)
#        VM_CACHE    cache root (default <repo>/.cache/vm)
#        VM_KEEP=1   keep the run's share directory (results, console log)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if [ $# -ne 1 ] || [ ! -f "$1" ]; then
	echo "usage: $0 DEB (got: ${*:-nothing})" >&2
	exit 2
fi
deb=$1
suite=${VM_SUITE:-$here/suite.sh}
cache_root=${VM_CACHE:-$repo/.cache/vm}
timeout=${VM_TIMEOUT:-1200}

if ! command -v qemu-system-x86_64 >/dev/null; then
	[ "$(id -u)" = 0 ] || { echo "run.sh: qemu-system-x86_64 missing (apt-get install qemu-system-x86)" >&2; exit 2; }
	echo "run.sh: installing qemu-system-x86" >&2
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends qemu-system-x86 >&2
fi

t0=$(date +%s%N)
img=$(VM_CACHE=$cache_root "$here/build.sh" "$cache_root")
t1=$(date +%s%N)

# This machine's /dev/kvm may be a paravirtual device that cannot run a
# stock kernel: KVM only where the real modules are loaded.
accel=${VM_ACCEL:-}
if [ -z "$accel" ]; then
	accel=tcg
	if [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; then
		[ -r /dev/kvm ] && [ -w /dev/kvm ] && accel=kvm
	fi
fi
case $accel in
kvm) accel_args=(-accel kvm -cpu host) ;;
tcg) accel_args=(-accel tcg,thread=multi -cpu max) ;;
*) echo "run.sh: VM_ACCEL must be kvm or tcg" >&2; exit 2 ;;
esac

share=$(mktemp -d "$cache_root/run.XXXXXX")
tailpid=
cleanup() {
	[ -z "$tailpid" ] || kill "$tailpid" 2>/dev/null || true
	if [ "${VM_KEEP:-}" = 1 ]; then echo "run.sh: results kept in $share" >&2; else rm -rf "$share"; fi
}
trap cleanup EXIT
cp "$deb" "$share/"
cp "$suite" "$share/suite.sh"
: >"$share/suite.log"
chmod 0755 "$share"

echo "run.sh: booting $img ($accel, ${VM_CPUS:-2} vCPUs, ${VM_MEM:-2048} MiB, timeout ${timeout}s) with ${deb##*/}" >&2
tail -n +1 -F "$share/suite.log" 2>/dev/null &
tailpid=$!
set +e
timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
	"${accel_args[@]}" -smp "${VM_CPUS:-2}" -m "${VM_MEM:-2048}" \
	-nodefaults -no-user-config -display none -monitor none -no-reboot \
	-serial "file:$share/console.log" \
	-kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
	-append "console=ttyS0 panic=-1 quiet systemd.unified_cgroup_hierarchy=1 systemd.firstboot=off systemd.show_status=error" \
	-drive "file=$img/rootfs.img,if=virtio,format=raw,snapshot=on" \
	-virtfs "local,path=$share,mount_tag=host,security_model=none,id=host" \
	-nic none
qrc=$?
set -e
t2=$(date +%s%N)
sleep 1 # let tail print the last lines
kill "$tailpid" 2>/dev/null || true
wait "$tailpid" 2>/dev/null || true
tailpid=

echo "run.sh: image $(((t1 - t0) / 1000000000))s, boot-run-poweroff $(((t2 - t1) / 1000000000))s (qemu exit $qrc)" >&2
if [ -f "$share/exit-code" ]; then
	rc=$(cat "$share/exit-code")
	if [ "$rc" != 0 ]; then
		echo "run.sh: the suite failed ($rc); the end of sandboxd's journal:" >&2
		grep -E ' sandboxd\[[0-9]+\]:| systemd\[1\]: sandboxd' "$share/journal.txt" | tail -n 40 >&2 || true
	fi
	exit "$rc"
fi
[ "$qrc" = 124 ] || [ "$qrc" = 137 ] && echo "run.sh: timed out after ${timeout}s" >&2
echo "run.sh: the guest reported no result; its console:" >&2
tail -n 150 "$share/console.log" >&2 || true
exit 2

#!/usr/bin/env bash
# Builds the Debian bookworm guest that `make vmtest` boots, or finds it in
# the cache, and prints the directory that holds it:
#
#   vmlinuz      the pinned Debian kernel (extracted with dpkg -x)
#   initrd.img   busybox + the modules to reach the root disk and the 9p share
#   rootfs.img   ext4 image (mkfs.ext4 -d, no loop mount) of an mmdebstrap
#                minbase with systemd from bookworm-backports
#
# usage: build.sh [CACHE_ROOT]          (default: <repo>/.cache/vm)
#
# The cache directory is named after a hash of this script, the initramfs
# init and the guest harness files (guest/): the pinned kernel and the package
# lists live in this script, so changing any of them rebuilds. The .deb under
# test is not an input: run.sh shares it with the guest at boot.
set -euo pipefail

# stdout is the answer (the directory); everything else goes to stderr.
exec 3>&1 1>&2
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${1:-${VM_CACHE:-$here/../../.cache/vm}}

MIRROR=${VM_MIRROR:-http://deb.debian.org/debian}
DIST=bookworm

# The kernel is pinned: a point release's kernel stays in the main archive
# until the next point release, then the mirror drops it. When the download
# below fails with 404, take the current one from
#   apt-cache show linux-image-amd64   (Depends: linux-image-<ABI>)
#   apt-cache show linux-image-<ABI>   (Version, Filename, SHA256)
# and update these four lines.
KERNEL_ABI=6.1.0-50-amd64
KERNEL_VERSION=6.1.176-1
KERNEL_FILE=pool/main/l/linux-signed-amd64/linux-image-6.1.0-50-amd64_6.1.176-1_amd64.deb
KERNEL_SHA256=7b5597492a0a65aee61985a492e6bcc3f2cde830072a0e3b3d8c7e1b90279bd3

# systemd >= 254 (DelegateSubgroup=) comes from bookworm-backports; these are
# the packages of its source that must move together.
BACKPORTS=(systemd systemd-sysv libsystemd0 libsystemd-shared)
# What the suite and the sandboxd package need in the guest (it has no
# network: dpkg -i only works when every Depends is already here), and the
# python3-* packages the package recommends for the base environment.
PACKAGES=(python3 python3-venv python3-pip curl procps kmod iproute2
	python3-pandas python3-numpy python3-openpyxl python3-reportlab python3-matplotlib python3-requests)
# Modules the initramfs loads (with their dependencies, from modules.dep).
INITRD_MODULES=(virtio_pci virtio_blk crc32c_generic ext4 9p 9pnet_virtio)
IMAGE_SIZE=3G

# Host tools, installed when missing (CI starts from a fresh machine).
need=()
for t in mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs cpio:cpio curl:curl; do
	command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
# The initramfs needs a static busybox.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed' || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || { echo "build.sh: need root to install ${need[*]}" >&2; exit 1; }
	echo "build.sh: installing ${need[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

key=$(cat "$0" "$here/init" "$here"/guest/* | sha256sum | cut -c1-16)
out=$cache_root/$key
mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if [ -f "$out/done" ]; then
	echo "$out" >&3
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "build.sh: the image build needs root (mmdebstrap, file ownership)" >&2; exit 1; }
t0=$(date +%s)
tmp=$(mktemp -d "$cache_root/build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { echo "build.sh: [$(($(date +%s) - t0))s] $*" >&2; }

# The kernel package, downloaded once and checked against its pinned hash.
deb=$cache_root/downloads/${KERNEL_FILE##*/}
if ! echo "$KERNEL_SHA256  $deb" | sha256sum -c --status 2>/dev/null; then
	log "downloading $KERNEL_FILE"
	mkdir -p "$cache_root/downloads"
	if ! curl -fsSL --retry 3 -o "$deb.part" "$MIRROR/$KERNEL_FILE"; then
		echo "build.sh: cannot download $MIRROR/$KERNEL_FILE: the mirror may have dropped"
		echo "build.sh: the pinned kernel; update KERNEL_* in $0 (see the comment there)"
		exit 1
	fi
	echo "$KERNEL_SHA256  $deb.part" | sha256sum -c --quiet
	mv "$deb.part" "$deb"
fi

log "mmdebstrap $DIST minbase + ${BACKPORTS[*]} from $DIST-backports + ${PACKAGES[*]}"
include=$(printf '%s/'"$DIST"'-backports,' "${BACKPORTS[@]}")$(IFS=,; echo "${PACKAGES[*]}")
root=$tmp/root
mmdebstrap --quiet --mode=root --variant=minbase --include="$include" \
	--hook-dir=/usr/share/mmdebstrap/hooks/eatmydata \
	"$DIST" "$root" "deb $MIRROR $DIST main" "deb $MIRROR $DIST-backports main"

log "kernel $KERNEL_ABI ($KERNEL_VERSION)"
dpkg -x "$deb" "$tmp/kernel"
cp "$tmp/kernel/boot/vmlinuz-$KERNEL_ABI" "$tmp/vmlinuz"
# The modules, without the drivers for hardware the guest does not have.
mods=$tmp/kernel/lib/modules/$KERNEL_ABI
rm -rf "$mods/kernel/sound" "$mods/kernel/drivers/net/wireless" "$mods/kernel/drivers/net/ethernet"
for d in "$mods"/kernel/drivers/*; do
	case ${d##*/} in virtio | block | char | md | net | nvdimm | vhost) ;; *) rm -rf "$d" ;; esac
done
mkdir -p "$root/lib/modules"
mv "$mods" "$root/lib/modules/"
chroot "$root" depmod -a "$KERNEL_ABI"

log "initramfs"
ird=$tmp/initrd
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,lib/modules}
cp /bin/busybox "$ird/bin/busybox"
cp "$here/init" "$ird/init"
chmod 755 "$ird/init"
# modules.dep lists each module's dependencies transitively, so that loading
# them from the last to the first one is a valid order.
declare -A seen=()
order=()
for m in "${INITRD_MODULES[@]}"; do
	line=$(grep -E "/${m//_/[_-]}\.ko(\.[a-z]+)?:" "$root/lib/modules/$KERNEL_ABI/modules.dep") ||
		{ echo "build.sh: module $m not in modules.dep" >&2; exit 1; }
	read -r -a deps <<<"${line#*:}"
	for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
		[ -n "${seen[${deps[i]}]:-}" ] || { seen[${deps[i]}]=1; order+=("${deps[i]}"); }
	done
	self=${line%%:*}
	[ -n "${seen[$self]:-}" ] || { seen[$self]=1; order+=("$self"); }
done
: >"$ird/modules"
for f in "${order[@]}"; do
	cp "$root/lib/modules/$KERNEL_ABI/$f" "$ird/lib/modules/"
	echo "${f##*/}" >>"$ird/modules"
done
(cd "$ird" && find . | LC_ALL=C sort | cpio --quiet -o -H newc) >"$tmp/initrd.img"

log "guest configuration"
echo sandboxd-vm >"$root/etc/hostname"
echo "# the root is mounted by the initramfs; /host (9p) too" >"$root/etc/fstab"
mkdir -p "$root/host"
# Nothing on the consoles (the serial one is the log), no timers.
ln -sf /dev/null "$root/etc/systemd/system/getty.target"
ln -sf /dev/null "$root/etc/systemd/system/serial-getty@ttyS0.service"
rm -f "$root"/etc/systemd/system/timers.target.wants/* "$root/etc/systemd/system/multi-user.target.wants/e2scrub_reap.service"
install -m 0755 "$here/guest/sandboxd-vmtest" "$root/usr/local/sbin/sandboxd-vmtest"
install -m 0644 "$here/guest/sandboxd-vmtest.service" "$root/etc/systemd/system/sandboxd-vmtest.service"
ln -sf ../sandboxd-vmtest.service "$root/etc/systemd/system/multi-user.target.wants/sandboxd-vmtest.service"
chroot "$root" systemctl --version | head -1

log "rootfs.img ($IMAGE_SIZE, mkfs.ext4 -d)"
mkfs.ext4 -q -F -L root -d "$root" "$tmp/rootfs.img" "$IMAGE_SIZE"
rm -rf "$root" "$tmp/kernel" "$ird"

# Publish: one image at a time is kept.
for old in "$cache_root"/*; do
	[[ ${old##*/} =~ ^[0-9a-f]{16}$ ]] && [ "$old" != "$out" ] && rm -rf "$old"
done
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
date -u +%FT%TZ >"$out/done"
log "built $out"
echo "$out" >&3

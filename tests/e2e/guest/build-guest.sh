#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds a tiny Linux guest for the end-to-end tests into DIR (cached):
# Debian's kernel (downloaded and unpacked, never installed on the host) and
# an initramfs of busybox plus the virtio balloon modules, whose init loads
# a workload of vmem_workload_mib=N MiB (kernel command line) and idles.
set -euo pipefail
out=${1:?usage: build-guest.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -f "$out/vmlinuz" ] && [ -f "$out/initrd.gz" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1)
[ -n "$kpkg" ] || { echo "build-guest: cannot find the kernel package behind linux-image-amd64 (run apt-get update)" >&2; exit 1; }
apt-get download -q "$kpkg" >/dev/null
dpkg -x linux-image-*.deb kernel
kver=${kpkg#linux-image-}
cp kernel/boot/vmlinuz-"$kver" "$out/vmlinuz.tmp"

busybox=/bin/busybox
if ! "$busybox" --list 2>/dev/null | grep -qx insmod || ! file "$busybox" 2>/dev/null | grep -q static; then
  apt-get download -q busybox-static >/dev/null
  dpkg -x busybox-static_*.deb bb
  busybox=$PWD/bb/bin/busybox
fi

root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,mnt,lib/modules}
cp "$busybox" "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem; do
  f=$(find kernel/lib/modules/"$kver" -name "$m.ko*" | head -n1)
  [ -n "$f" ] || { [ "$m" = virtio_mem ] && continue; echo "build-guest: module $m not in $kpkg" >&2; exit 1; }
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done

cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem; do
  [ -f /lib/modules/$m.ko ] && insmod /lib/modules/$m.ko
done
echo "vmem-guest: modules loaded"
mib=$(sed -n 's/.*vmem_workload_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
mount -t tmpfs -o size=95% tmpfs /mnt
if [ -n "$mib" ] && [ "$mib" -gt 0 ]; then
  dd if=/dev/zero of=/mnt/load bs=1M count="$mib" 2>/dev/null
fi
echo "vmem-guest: workload ${mib:-0} MiB loaded"
while true; do sleep 3600; done
INIT
chmod 755 "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.gz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$kpkg" > "$out/kernel-package"
echo "build-guest: $kpkg + busybox initramfs in $out"

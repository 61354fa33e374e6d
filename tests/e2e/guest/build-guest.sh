#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds a tiny Linux guest for the end-to-end tests into DIR:
#   DIR/vmlinuz    Debian's kernel (downloaded and unpacked, never installed)
#   DIR/initrd.gz  busybox plus the virtio balloon and virtio-mem modules;
#                  its /init loads a workload of vmem_workload_mib=N MiB
#                  (kernel command line) into a tmpfs, reports on the serial
#                  console, then follows vmem_schedule=MIB@SECONDS,... if
#                  given (the workload resized to MIB MiB at SECONDS after
#                  boot, each step reported) and idles; with
#                  vmem_schedule_wait=1 the schedule waits for the line "go" on
#                  the second serial port (ttyS1) and counts its SECONDS
#                  from that line.  Before the
#                  workload, vmem_touch_mib=N runs vmem-touch N (a static
#                  program built here from vmem-touch.c): it touches N MiB
#                  and prints how long that took.
# Idempotent: a DIR built by this same script is left as it is.
set -euo pipefail
out=${1:?usage: build-guest.sh DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Concurrent test runs share DIR: one builds, the others wait and reuse it.
command -v flock >/dev/null || { echo "build-guest: flock not found (util-linux)" >&2; exit 1; }
exec 9>"$out/.lock"
flock 9

# The cache is valid for this script's and vmem-touch.c's exact content:
# editing the init, the module list or the program rebuilds.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
stamp=$(cat "${BASH_SOURCE[0]}" "$here/vmem-touch.c" | sha256sum | cut -d' ' -f1)
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.gz" ] && [ "$(cat "$out/stamp" 2>/dev/null)" = "$stamp" ]; then
  exit 0
fi

for tool in apt-get apt-cache dpkg cpio gzip xz sha256sum cc; do
  command -v "$tool" >/dev/null || { echo "build-guest: $tool not found (see tests/e2e/host-deps.sh)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get download as root drops privileges to _apt, which must be able to
# write here.
chmod 755 "$work"

kernel_package () {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *|\{0,1\}Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
kpkg=$(kernel_package)
if [ -z "$kpkg" ]; then
  apt-get update -q >/dev/null
  kpkg=$(kernel_package)
fi
[ -n "$kpkg" ] || { echo "build-guest: no kernel package behind linux-image-amd64 in the apt lists" >&2; exit 1; }
kver=${kpkg#linux-image-}

apt-get download -q "$kpkg" >/dev/null 2>&1 ||
  { echo "build-guest: apt-get download $kpkg failed" >&2; exit 1; }
dpkg -x "$kpkg"_*.deb kernel
[ -f kernel/boot/vmlinuz-"$kver" ] || { echo "build-guest: $kpkg has no /boot/vmlinuz-$kver" >&2; exit 1; }

if [ "$(dpkg-query -W -f='${Status}' busybox-static 2>/dev/null)" = "install ok installed" ]; then
  busybox=/bin/busybox
else
  apt-get download -q busybox-static >/dev/null 2>&1 ||
    { echo "build-guest: apt-get download busybox-static failed" >&2; exit 1; }
  dpkg -x busybox-static_*.deb bb
  busybox=$work/bb/bin/busybox
fi

root=$work/root
mkdir -p "$root"/{bin,proc,sys,dev,mnt,lib/modules}
cp "$busybox" "$root/bin/busybox"
cc -static -O2 -o "$root/bin/vmem-touch" "$here/vmem-touch.c" ||
  { echo "build-guest: cannot build vmem-touch statically (gcc and libc6-dev)" >&2; exit 1; }

# Load order matters: each module needs the ones before it.  virtio_mem is
# optional (not every kernel has it).
modules="virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_balloon virtio_mem"
for m in $modules; do
  f=$(find kernel/lib/modules/"$kver" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" | head -n1)
  if [ -z "$f" ]; then
    [ "$m" = virtio_mem ] && continue
    echo "build-guest: module $m is not in $kpkg" >&2
    exit 1
  fi
  case "$f" in
    *.xz) xz -dc "$f" > "$root/lib/modules/$m.ko" ;;
    *.zst) zstd -qdc "$f" > "$root/lib/modules/$m.ko" ;;
    *) cp "$f" "$root/lib/modules/$m.ko" ;;
  esac
done

cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
echo "vmem-guest: init started"
# vmem_no_balloon=1 leaves the balloon driver out: a guest that never
# reports memory statistics.
skip=
grep -q vmem_no_balloon=1 /proc/cmdline && skip=virtio_balloon
for m in $modules; do
  [ "\$m" = "\$skip" ] && continue
  [ -f /lib/modules/\$m.ko ] && insmod /lib/modules/\$m.ko
done
echo "vmem-guest: modules loaded"
# vmem_touch_mib=N: touch N MiB right after boot, timed by the guest.
touch_mib=\$(sed -n 's/.*vmem_touch_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
if [ -n "\$touch_mib" ]; then
  /bin/vmem-touch "\$touch_mib" || echo "vmem-guest: touch failed"
fi
mib=\$(sed -n 's/.*vmem_workload_mib=\([0-9]*\).*/\1/p' /proc/cmdline)
mib=\${mib:-0}
mount -t tmpfs -o size=95% tmpfs /mnt
if [ "\$mib" -gt 0 ]; then
  echo "vmem-guest: loading a workload of \$mib MiB"
  dd if=/dev/zero of=/mnt/load bs=1M count="\$mib" 2>/dev/null || echo "vmem-guest: workload failed"
fi
echo "vmem-guest: workload \$mib MiB loaded"
# A workload that changes size on a schedule: vmem_schedule=400@60,150@180
# resizes it to 400 MiB 60 s after boot, then to 150 MiB at 180 s.
schedule=\$(sed -n 's/.*vmem_schedule=\([0-9@,]*\).*/\1/p' /proc/cmdline)
# vmem_schedule_wait=1: the schedule's clock starts at the line "go" read
# from ttyS1 (the host's go), not at boot.
base=0
if [ -n "\$schedule" ] && grep -q vmem_schedule_wait=1 /proc/cmdline; then
  # No modem control (a port with nobody connected reads as hung up), no
  # echo; the port stays open, and only the line "go" counts.
  stty -F /dev/ttyS1 clocal -echo 2>/dev/null
  exec 3</dev/ttyS1
  echo "vmem-guest: schedule waits for a line on ttyS1"
  go=
  until [ "\$go" = go ]; do
    read -r go <&3 || sleep 1
    go=\$(echo "\$go" | tr -d '\r')
  done
  exec 3<&-
  base=\$(cut -d. -f1 /proc/uptime)
  echo "vmem-guest: schedule started at \$base s"
fi
for step in \$(echo "\$schedule" | tr ',' ' '); do
  size=\${step%@*}
  at=\$((\${step#*@} + base))
  now=\$(cut -d. -f1 /proc/uptime)
  [ "\$at" -gt "\$now" ] && sleep \$((at - now))
  if [ "\$size" -ge "\$mib" ]; then
    dd if=/dev/zero of=/mnt/load bs=1M seek="\$mib" count=\$((size - mib)) conv=notrunc 2>/dev/null ||
      echo "vmem-guest: workload failed to grow to \$size MiB"
  else
    truncate -s "\${size}M" /mnt/load
  fi
  mib=\$size
  echo "vmem-guest: workload \$mib MiB at \$(cut -d' ' -f1 /proc/uptime) s"
done
while true; do sleep 3600; done
INIT
chmod 755 "$root/init"

(cd "$root" && find . | cpio -o -H newc --quiet | gzip -9) > "$out/initrd.gz.tmp"
cp kernel/boot/vmlinuz-"$kver" "$out/vmlinuz.tmp"
mv "$out/initrd.gz.tmp" "$out/initrd.gz"
mv "$out/vmlinuz.tmp" "$out/vmlinuz"
echo "$kpkg" > "$out/kernel-package"
echo "$stamp" > "$out/stamp"
echo "build-guest: $kpkg and a busybox initramfs in $out"

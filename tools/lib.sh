# SPDX-License-Identifier: LGPL-2.1-or-later
# Shared by install.sh and test.sh.

die () { echo "error: $*" >&2; exit 1; }
step () { echo "==> $*"; }

need_root () {
  [ "$(id -u)" = 0 ] || die "run this as root"
}

install_packages () {
  local top=$1; shift
  local pkgs
  pkgs=$(grep -v '^#' "$top/tools/debian-packages.txt" | grep -v '^$')
  if [ -f "$top/tests/e2e/host-deps.sh" ]; then
    pkgs="$pkgs $(bash "$top/tests/e2e/host-deps.sh")"
  fi
  step "installing Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null || die "apt-get update failed"
  # With recommends, as a default Debian install gets them (virt-xml-validate
  # runs xmllint, QEMU guests want its firmware and helpers).
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs >/dev/null || die "apt-get install failed"
}

have_systemd () {
  [ -d /run/systemd/system ]
}

# Starts virtlogd and libvirtd if they are not running; without systemd
# they are started directly.
start_libvirtd () {
  if have_systemd; then
    systemctl enable --now virtlogd.socket libvirtd.service >/dev/null 2>&1 || systemctl start libvirtd
    return
  fi
  mkdir -p /run/libvirt /var/log/libvirt /var/lib/libvirt
  # Judged by their sockets, not by process names: a libvirtd of another
  # mount namespace (a test's private one) does not serve this host.
  if [ ! -S /run/libvirt/virtlogd-sock ]; then
    virtlogd -d || die "cannot start virtlogd"
  fi
  if ! virsh -c qemu:///system version >/dev/null 2>&1; then
    libvirtd -d || die "cannot start libvirtd"
  fi
  for _ in $(seq 150); do
    virsh -c qemu:///system version >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "libvirtd does not answer on qemu:///system"
}

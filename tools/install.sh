#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what vmemd needs on Debian 12, builds and installs it, and starts
# libvirtd (if not running) and vmemd with the embedded SQLite store.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tools/lib.sh"
need_root

install_packages "$top"

step "building"
build="$top/build"
if [ ! -f "$build/build.ninja" ]; then
  meson setup "$build" "$top" --prefix=/usr --sysconfdir=/etc --localstatedir=/var \
    --buildtype=debugoptimized -Dtests=false >/dev/null
fi
ninja -C "$build" >/dev/null
step "installing"
meson install -C "$build" --no-rebuild >/dev/null

getent group vmemd >/dev/null || groupadd --system vmemd
install -d -m 2750 -g vmemd /var/lib/vmemd

step "starting libvirtd"
start_libvirtd
# libvirtd reads whether hooks exist when it starts or reloads: make it see ours.
if have_systemd; then
  systemctl reload libvirtd 2>/dev/null || systemctl restart libvirtd
else
  pkill -HUP -x libvirtd || true
fi

step "starting vmemd"
if have_systemd; then
  systemctl daemon-reload
  systemctl enable --now vmemd.service
else
  if [ -f /run/vmemd/vmemd.pid ] && kill -0 "$(cat /run/vmemd/vmemd.pid)" 2>/dev/null; then
    kill "$(cat /run/vmemd/vmemd.pid)"
    for _ in $(seq 50); do kill -0 "$(cat /run/vmemd/vmemd.pid)" 2>/dev/null || break; sleep 0.1; done
  fi
  install -d -m 0755 /run/vmemd
  setsid /usr/sbin/vmemd </dev/null >>/var/log/vmemd.log 2>&1 &
  echo $! > /run/vmemd/vmemd.pid
fi
for _ in $(seq 100); do
  if vmemctl status >/dev/null 2>&1; then
    vmemctl status
    echo
    echo "vmemd is running.  Try: vmemctl profile add web --demand 1G && vmemctl assign VM web"
    have_systemd || echo "Logs: /var/log/vmemd.log"
    exit 0
  fi
  sleep 0.1
done
have_systemd || tail -n 20 /var/log/vmemd.log >&2
die "vmemd did not come up"

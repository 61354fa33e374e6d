#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
# Prints the Debian packages the end-to-end suite needs on the host, one per
# line:  apt-get install -y $(sh tests/e2e/host-deps.sh)
# The guest's kernel is not among them: build-guest.sh downloads it with
# apt-get download and unpacks it beside the build, never installing it.
cat <<'LIST'
libvirt-daemon-system
libvirt-daemon-driver-qemu
libvirt-clients
qemu-system-x86
dnsmasq-base
busybox-static
gcc
libc6-dev
cpio
gzip
xz-utils
apt
dpkg
python3
util-linux
mount
postgresql
postgresql-client
cockpit-ws
cockpit-bridge
chromium
python3-websocket
passwd
LIST

#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds the Debian package from this tree and checks it in a clean Debian
# chroot (debootstrap --variant=minbase: no systemd, no libvirt running):
#
#   build     dpkg-buildpackage -us -uc -b (nocheck: the unit suite has run
#             already), then lintian, which must report no error or warning
#   install   over the store an earlier vmemd left, a database of schema 3
#             (tests/data/db/v3.sql): the group, the store's directory, the
#             hook link, the units enabled, the conffile; vmemctl --version,
#             vmemd --check-config, the hook failing open with vmemd down
#   use       vmemd on the package's database with a test configuration (a
#             private socket, libvirt's test driver): the store migrated
#             from schema 3 with its profiles, a profile added, the hook
#             admitting one start and refusing another
#   upgrade   the same build relabelled as a newer version, installed over
#             it with systemd (sysusers, tmpfiles) now in the chroot: the
#             edited conffile, the hook and the profiles stay;
#             systemd-analyze verify and security on the installed units
#   remove    the hook goes before the daemon is stopped (a recording
#             deb-systemd-invoke, with /run/systemd/system faked), the
#             binaries go, the store and the conffile stay
#   purge     the store, the configuration and the hook directory go
#
# Needs root, debootstrap, dpkg-dev, debhelper, lintian, sqlite3, and a
# Debian mirror (the one apt uses here).  Set VMEM_KEEP=1 to keep the work
# directory.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tools/lib.sh"
need_root

for tool in dpkg-buildpackage dh lintian debootstrap sqlite3 chroot; do
  command -v "$tool" >/dev/null || die "$tool is not installed (tools/debian-packages.txt)"
done

work=$(mktemp -d /var/tmp/vmemd-package.XXXXXX)
root="$work/root"
# Every path below is under $root: never let it be the host's.
case "$root" in /var/tmp/vmemd-package.*/root) ;; *) die "bad root '$root'" ;; esac
daemon_pid=

cleanup () {
  if [ -n "$daemon_pid" ]; then
    kill "$daemon_pid" 2>/dev/null || true
    wait "$daemon_pid" 2>/dev/null || true
  fi
  # Ours (proc) and any debootstrap left behind when it was interrupted,
  # deepest first; rm then stays on this file system whatever happens.
  awk -v r="$root/" 'index($2, r) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
  if [ "${VMEM_KEEP:-}" = 1 ]; then
    echo "kept $work"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT

fail () { echo "FAIL: $*" >&2; exit 1; }
ok () { echo "    ok: $*"; }
in_root () { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
t0=$SECONDS

# --- build ------------------------------------------------------------------
step "package: building the .deb"
mkdir "$work/src"
tar -C "$top" --exclude=./.git --exclude='./build*' --exclude=./debian/.debhelper \
  --exclude=./debian/vmemd --exclude=./obj-* -cf - . | tar -C "$work/src" -xf -
if ! (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
      dpkg-buildpackage -us -uc -b -Pnocheck) >"$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log" >&2
  die "dpkg-buildpackage failed"
fi
debs=("$work"/vmemd_*.deb)
deb=${debs[0]}
version=$(dpkg-deb -f "$deb" Version)
ok "built $(basename "$deb") in $((SECONDS - t0)) s"

step "package: lintian"
# lintian warns on stderr when run as root; its findings go to stdout.
# Overridden tags (debian/vmemd.lintian-overrides says why each is) do not
# fail the check; lintian counts them when it is asked to show them, so
# they are listed by a second run.
if ! lintian --fail-on error,warning --display-level '>=warning' \
     "$work"/vmemd_*.changes >"$work/lintian.log" 2>"$work/lintian.err"; then
  cat "$work/lintian.log" "$work/lintian.err" >&2
  fail "lintian reports errors or warnings"
fi
lintian --display-level '>=warning' --show-overrides --no-tag-display-limit \
  "$work"/vmemd_*.changes 2>/dev/null | grep '^O: ' | sed 's/^/    overridden: /' || true
ok "lintian: no error or warning"

# --- a clean root -----------------------------------------------------------
step "package: debootstrap a clean root"
codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
# The mirror apt uses here, so that no address is written into this script.
mirror=$(apt-get indextargets --format '$(RELEASE) $(REPO_URI)' 2>/dev/null |
           awk -v c="$codename" '$1 == c { print $2; exit }')
[ -n "$mirror" ] || die "no apt source for $codename: run apt-get update"
t1=$SECONDS
debootstrap --variant=minbase "$codename" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
mount -t proc proc "$root/proc"
ok "$codename from $mirror in $((SECONDS - t1)) s"

# --- install, over a store of schema 3 ---------------------------------------
step "package: install $version over a schema-3 store"
install -d -m 0750 "$root/var/lib/vmemd"
sqlite3 "$root/var/lib/vmemd/vmemd.db" <"$top/tests/data/db/v3.sql"
[ "$(sqlite3 "$root/var/lib/vmemd/vmemd.db" 'SELECT MAX(version) FROM schema_version')" = 3 ] ||
  fail "the seeded store is not of schema 3"
cp "$deb" "$root/tmp/"
in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" \
  >"$work/install.log" 2>&1 || { tail -n 30 "$work/install.log" >&2; fail "apt-get install"; }
[ "$(in_root dpkg-query -W -f '${Status}' vmemd)" = "install ok installed" ] || fail "not installed"
in_root getent group vmemd >/dev/null || fail "no vmemd group"
ok "group vmemd made without systemd"
[ "$(stat -c '%a %U' "$root/var/lib/vmemd")" = "2750 root" ] || fail "/var/lib/vmemd mode"
hook="$root/etc/libvirt/hooks/qemu.d/50-vmemd"
[ "$(readlink "$hook")" = /usr/libexec/vmem-hook ] || fail "hook link missing"
ok "hook linked: /etc/libvirt/hooks/qemu.d/50-vmemd -> /usr/libexec/vmem-hook"
[ -L "$root/etc/systemd/system/multi-user.target.wants/vmemd.service" ] &&
  [ -L "$root/etc/systemd/system/sockets.target.wants/vmemd.socket" ] || fail "units not enabled"
ok "vmemd.service and vmemd.socket enabled"
in_root dpkg-query -W -f '${Conffiles}' vmemd | grep -q ' /etc/vmemd/vmemd.conf ' ||
  fail "/etc/vmemd/vmemd.conf is not a conffile"
for f in /usr/share/bash-completion/completions/vmemctl /usr/lib/systemd/catalog/vmemd.catalog \
         /usr/lib/sysusers.d/vmemd.conf /usr/lib/tmpfiles.d/vmemd.conf \
         /usr/share/man/man8/vmemctl.8.gz /usr/share/man/man5/vmemd.conf.5.gz \
         /usr/share/vmemd/vmemd-grafana.json /usr/share/cockpit/vmemd/manifest.json \
         /usr/share/cockpit/vmemd/index.html /usr/share/cockpit/vmemd/vmemd.js \
         /usr/share/cockpit/vmemd/vmemd.css; do
  [ -e "$root$f" ] || fail "$f not installed"
done
in_root bash -c '. /usr/share/bash-completion/completions/vmemctl && complete -p vmemctl' \
  >/dev/null || fail "the bash completion does not load"

out=$(in_root vmemctl --version 2>&1) && fail "vmemctl --version: vmemd is not running, yet exit 0"
echo "$out" | grep -qx "vmemctl ${version%%[-+]*}" || fail "vmemctl --version printed: $out"
ok "vmemctl --version prints vmemctl ${version%%[-+]*} with vmemd down"
in_root vmemd --check-config | grep -q '^/etc/vmemd/vmemd.conf: OK$' || fail "vmemd --check-config"
ok "vmemd --check-config: /etc/vmemd/vmemd.conf: OK"
xml () {  # NAME UUID MEMORY_GIB
  printf "<domain type='kvm'><name>%s</name><uuid>%s</uuid><memory unit='GiB'>%s</memory>" "$@"
  printf "<vcpu>1</vcpu><os><type arch='x86_64'>hvm</type></os></domain>\n"
}
xml web-1 5c6a4c6e-8a3e-4d8e-9a51-000000000001 1 >"$root/tmp/web-1.xml"
xml web-2 5c6a4c6e-8a3e-4d8e-9a51-000000000002 100 >"$root/tmp/web-2.xml"
in_root sh -c '/etc/libvirt/hooks/qemu.d/50-vmemd web-1 prepare begin - </tmp/web-1.xml' \
  2>"$work/hook.err" || fail "the hook did not fail open with vmemd down: $(cat "$work/hook.err")"
ok "the hook fails open while vmemd is down"

# --- use: vmemd on the package's store -------------------------------------
conf=/etc/vmemd-test.conf
cat >"$root$conf" <<'EOF'
[daemon]
socket=/run/vmemd-test/io.vmemd
uri=test:///default
[store]
database=/var/lib/vmemd/vmemd.db
[admission]
capacity=64G
reserve=1G
EOF
sock=/run/vmemd-test/io.vmemd
start_vmemd () {
  in_root vmemd --check-config --config "$conf" >/dev/null || fail "vmemd --check-config --config"
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin LC_ALL=C.UTF-8 \
    vmemd --config "$conf" --log-level debug >>"$work/vmemd.log" 2>&1 &
  daemon_pid=$!
  for _ in $(seq 100); do
    in_root vmemctl --socket "$sock" --timeout 2 version >/dev/null 2>&1 && return 0
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  tail -n 20 "$work/vmemd.log" >&2
  fail "vmemd did not come up"
}
stop_vmemd () {
  kill "$daemon_pid"
  wait "$daemon_pid" || fail "vmemd did not stop cleanly"
  daemon_pid=
}
ctl () { in_root vmemctl --socket "$sock" "$@"; }
profiles () { ctl --json profile list | sed -n 's/^ *"name": "\(.*\)",$/\1/p' | sort | tr '\n' ' '; }

step "package: use (vmemd on the package's store, a private socket)"
start_vmemd
schema=$(ctl --json status | sed -n 's/^ *"schema_version": \([0-9]*\),$/\1/p')
[ -n "$schema" ] && [ "$schema" -gt 3 ] || fail "schema not migrated: '$schema'"
[ "$(sqlite3 "$root/var/lib/vmemd/vmemd.db" 'SELECT MAX(version) FROM schema_version')" = "$schema" ] ||
  fail "the database's schema_version is not $schema"
ok "store migrated from schema 3 to $schema"
[ "$(profiles)" = "erp pg " ] || fail "profiles after migration: $(profiles)"
ctl profile show erp | grep -q 'erp-\*' || fail "profile erp lost its pattern"
ok "profiles erp and pg kept"
ctl profile add web --demand 1G --match 'web-*' >/dev/null || fail "profile add"
[ "$(profiles)" = "erp pg web " ] || fail "profiles: $(profiles)"
ok "profile web added"
for _ in $(seq 100); do
  ctl --json status | grep -q '"ready": true' && break
  sleep 0.1
done
ctl --json status | grep -q '"ready": true' || fail "vmemd never got ready on test:///default"
in_root sh -c "VMEMD_CONFIG=$conf /etc/libvirt/hooks/qemu.d/50-vmemd web-1 prepare begin - \
  </tmp/web-1.xml" || fail "the hook refused web-1 (1 GiB)"
ok "the hook admits web-1 (1 GiB)"
if in_root sh -c "VMEMD_CONFIG=$conf /etc/libvirt/hooks/qemu.d/50-vmemd web-2 prepare begin - \
     </tmp/web-2.xml" 2>"$work/hook.err"; then
  fail "the hook admitted web-2 (100 GiB on a 64 GiB host)"
fi
ok "the hook refuses web-2 (100 GiB): $(head -c 100 "$work/hook.err")"
stop_vmemd
echo "# edited by the administrator" >>"$root/etc/vmemd/vmemd.conf"

# --- upgrade ----------------------------------------------------------------
new="$version+upgrade1"
step "package: upgrade to $new (the same build, relabelled), with systemd in the root"
in_root apt-get install -y -q --no-install-recommends systemd >"$work/systemd.log" 2>&1 ||
  { tail -n 20 "$work/systemd.log" >&2; fail "installing systemd in the root"; }
dpkg-deb -R "$deb" "$work/repack"
sed -i "s/^Version: .*/Version: $new/" "$work/repack/DEBIAN/control"
dpkg-deb -b "$work/repack" "$root/tmp/vmemd_new.deb" >/dev/null
in_root dpkg -i /tmp/vmemd_new.deb >"$work/upgrade.log" 2>&1 ||
  { cat "$work/upgrade.log" >&2; fail "dpkg -i (upgrade)"; }
[ "$(in_root dpkg-query -W -f '${Version}' vmemd)" = "$new" ] || fail "not upgraded"
grep -q '^# edited by the administrator$' "$root/etc/vmemd/vmemd.conf" || fail "conffile edit lost"
[ ! -e "$root/etc/vmemd/vmemd.conf.dpkg-new" ] || fail "conffile prompt"
[ "$(readlink "$hook")" = /usr/libexec/vmem-hook ] || fail "hook link lost on upgrade"
ok "conffile edit and hook kept"
# stat in the root: its group names are not the host's.
[ "$(in_root stat -c '%a %U %G' /var/lib/vmemd)" = "2750 root vmemd" ] ||
  fail "/var/lib/vmemd is $(in_root stat -c '%a %U %G' /var/lib/vmemd) after systemd-tmpfiles"
ok "systemd-tmpfiles gave /var/lib/vmemd to root:vmemd 2750"
start_vmemd
[ "$(profiles)" = "erp pg web " ] || fail "profiles after the upgrade: $(profiles)"
ok "profiles erp, pg and web kept"
stop_vmemd

units=(/lib/systemd/system/vmemd.service /lib/systemd/system/vmemd.socket)
# The man pages are linted by tools/check-docs; the root has no man.
in_root systemd-analyze verify --man=no "${units[@]}" >"$work/verify.log" 2>&1 ||
  { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
[ ! -s "$work/verify.log" ] || { cat "$work/verify.log" >&2; fail "systemd-analyze verify warns"; }
ok "systemd-analyze verify: vmemd.service and vmemd.socket"
in_root systemd-analyze security --offline=true /lib/systemd/system/vmemd.service \
  >"$work/security.log" 2>&1 || true
score=$(grep -a 'Overall exposure level' "$work/security.log" || true)
[ -n "$score" ] || { cat "$work/security.log" >&2; fail "systemd-analyze security printed no score"; }
echo "    systemd-analyze security: ${score#→ }"

# --- remove -----------------------------------------------------------------
step "package: remove (as if systemd ran: the hook must go before the daemon)"
mkdir -p "$root/run/systemd/system"
# Found first on the PATH the maintainer scripts get: records each call and
# whether the hook link still exists at that moment.
cat >"$root/usr/local/sbin/deb-systemd-invoke" <<'EOF'
#!/bin/sh
if [ -e /etc/libvirt/hooks/qemu.d/50-vmemd ]; then h=present; else h=absent; fi
echo "$* hook=$h" >>/tmp/invoke.log
EOF
chmod 0755 "$root/usr/local/sbin/deb-systemd-invoke"
chroot "$root" env -i PATH=/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
  dpkg -r vmemd >"$work/remove.log" 2>&1 || { cat "$work/remove.log" >&2; fail "dpkg -r"; }
grep -q "^stop vmemd.service vmemd.socket hook=absent$" "$root/tmp/invoke.log" ||
  { cat "$root/tmp/invoke.log" "$work/remove.log" >&2
    fail "the daemon was not stopped, or stopped before the hook was removed"; }
ok "the hook was gone when the daemon was stopped"
rm -f "$root/usr/local/sbin/deb-systemd-invoke"
rmdir "$root/run/systemd/system"
[ "$(in_root dpkg-query -W -f '${Status}' vmemd)" = "deinstall ok config-files" ] ||
  fail "status after remove"
[ ! -e "$hook" ] && [ ! -L "$hook" ] || fail "hook left behind"
[ ! -e "$root/usr/sbin/vmemd" ] && [ ! -e "$root/usr/libexec/vmem-hook" ] || fail "binaries left"
[ -f "$root/var/lib/vmemd/vmemd.db" ] || fail "remove deleted the store"
[ -f "$root/etc/vmemd/vmemd.conf" ] || fail "remove deleted the conffile"
ok "binaries and hook gone; store and configuration kept"

# --- purge ------------------------------------------------------------------
step "package: purge"
in_root dpkg -P vmemd >"$work/purge.log" 2>&1 || { cat "$work/purge.log" >&2; fail "dpkg -P"; }
in_root dpkg-query -W vmemd >/dev/null 2>&1 && fail "still known to dpkg after purge"
[ ! -e "$root/var/lib/vmemd" ] || fail "purge left /var/lib/vmemd"
[ ! -e "$root/etc/vmemd" ] || fail "purge left /etc/vmemd"
[ ! -e "$root/etc/libvirt/hooks/qemu.d" ] || fail "purge left /etc/libvirt/hooks/qemu.d"
[ ! -e "$root/etc/systemd/system/multi-user.target.wants/vmemd.service" ] ||
  fail "purge left the unit enabled"
ok "store, configuration, hook directory and unit links gone"

echo "package: passed in $((SECONDS - t0)) s"

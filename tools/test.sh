#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Installs what the tests need, builds with -Werror, and runs every test:
# the unit suite (also under AddressSanitizer/UBSan with leak detection,
# tools/lsan.supp listing the few third-party allocations it ignores), the
# store's half of it on both backends (PostgreSQL: a private server this
# script starts, its data in a temporary directory, stopped at exit), the
# end-to-end suite against a private libvirtd with QEMU guests (and the
# modules that cover every daemon path again with the sanitized vmemd and
# hook), cppcheck (in the unit suite), and the Debian package's test
# (tools/test-package.sh: build, lintian, systemd-analyze, install, upgrade,
# remove and purge in a clean debootstrapped root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
. "$top/tools/lib.sh"
need_root

install_packages "$top"

build="$top/build-test"
step "building ($build)"
rm -rf "$build"
meson setup "$build" "$top" -Dwerror=true --buildtype=debugoptimized >/dev/null
ninja -C "$build"

step "starting a private PostgreSQL server for the store tests"
pgdir=$(mktemp -d /tmp/vmem-pg.XXXXXX)
trap '"$top/tools/test-postgres" stop "$pgdir"' EXIT
pgenv=$("$top/tools/test-postgres" start "$pgdir") || die "cannot start PostgreSQL"
eval "$pgenv"   # VMEM_TEST_PG, for the test store-pg

step "unit and end-to-end tests"
rc=0
meson test -C "$build" --no-rebuild --print-errorlogs --suite unit --suite e2e || rc=$?

asan="$top/build-asan"
step "unit tests under AddressSanitizer and UBSan ($asan)"
rm -rf "$asan"
meson setup "$asan" "$top" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
ninja -C "$asan" >/dev/null
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
LSAN_OPTIONS="suppressions=$top/tools/lsan.supp:print_suppressions=0" \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  meson test -C "$asan" --no-rebuild --print-errorlogs --suite unit || rc=$?

# The sanitized vmemd and hook under the end-to-end modules that go through
# every daemon path: the hook and fail-open (foundation), staging, the
# collector, the controller moving a virtio-mem device (virtio_mem: the
# controller's whole path in the module that takes least time), and the
# store under faults.  The harness sets the sanitizers' options and fails a
# module on any report.
step "end-to-end tests with the sanitized vmemd and hook"
VMEM_E2E_BUILD="$asan" meson test -C "$build" --no-rebuild --print-errorlogs --logbase e2e-asan \
  --suite e2e e2e-foundation e2e-staging e2e-collector e2e-virtio_mem e2e-faults || rc=$?

step "Debian package: build, lintian, install, upgrade, remove, purge in a clean root"
package=passed
bash "$top/tools/test-package.sh" || { package=failed; rc=1; }

# One closing line over both builds, the sanitized end-to-end run and the package: tests passed and failed.
python3 - "$package" "$build/meson-logs/testlog.json" "$asan/meson-logs/testlog.json" \
  "$build/meson-logs/e2e-asan.json" <<'PY'
import json, sys
ok = bad = 0
if sys.argv[1] == "passed":
    ok += 1
else:
    bad += 1
for path in sys.argv[2:]:
    try:
        lines = open(path).read().splitlines()
    except OSError:
        bad += 1
        continue
    for line in lines:
        r = json.loads(line)
        if r.get("result") in ("OK", "EXPECTEDFAIL"):
            ok += 1
        else:
            bad += 1
print(f"tests: {ok} passed, {bad} failed")
PY
exit "$rc"

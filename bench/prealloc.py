#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""What preallocation buys: a guest whose workload touches N MiB right after
boot, started three ways on a real libvirtd with the real vmemd and hook:

  balloon     vmemd's balloon-mode plan: the demand staged, the whole
              <memory> preallocated by QEMU, the balloon brought down to
              the demand once the guest's driver runs;
  lazy        no plan: the definition as it is, nothing preallocated
              (the baseline of every ratio);
  virtio-mem  vmemd's virtio-mem plan: the demand as base memory,
              preallocated, the rest of <memory> in an unplugged virtio-mem
              device.

For each: the touch time the guest measures (vmem-touch, in the e2e guest's
initramfs), how long `virsh start` takes, and the QEMU process's RSS and
high-water mark (VmRSS, VmHWM in /proc/PID/status) right after `virsh
start` returns, the lowest RSS seen (every 0.1 s) from then until the
touch is reported, and the RSS and high-water mark after the guest has
settled.  Runs are interleaved (the
order of the modes rotates every round); p50, the range (min-max) and the
number of runs are printed per figure, with the ratio of each p50 to
lazy's.

Run as root, from the source tree, after building it:

    python3 bench/prealloc.py --build build [--runs 5] [--sizes 256,1024]

It uses the end-to-end harness (tests/e2e/vmemtest.py): a private libvirtd
in a mount namespace, holding the harness's lock, so that it queues behind
end-to-end runs.  VMEM_E2E_DOMAIN_TYPE=kvm runs the guests under KVM; the
default is TCG, whose page faults cost far less relative to its slow guest
code than KVM's do, so TCG understates what preallocation saves."""

import argparse
import json
import os
import re
import signal
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(HERE)
MODES = ("balloon", "lazy", "virtio-mem")
BASELINE = "lazy"


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("VMEM_BUILDDIR", os.path.join(SRC, "build")),
                    help="the meson build directory (default: build)")
    ap.add_argument("--runs", type=int, default=5, help="runs per size and mode (default 5)")
    ap.add_argument("--sizes", default="256,1024", help="MiB touched, comma-separated (default 256,1024)")
    ap.add_argument("--settle", type=int, default=10,
                    help="seconds after the touch (and the balloon's move) before the settled "
                         "figures are read (default 10)")
    a = ap.parse_args()
    try:
        a.sizes = [int(s) for s in a.sizes.split(",")]
    except ValueError:
        ap.error(f"--sizes: {a.sizes!r} is not a comma-separated list of MiB")
    if not a.sizes or any(s < 16 or s > 16384 for s in a.sizes):
        ap.error("--sizes: each size must be 16 to 16384 MiB")
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if a.settle < 0:
        ap.error("--settle must not be negative")
    return a


def harness_env(build):
    """The environment the harness takes from meson test, from the build
    directory's own description."""
    info = os.path.join(build, "meson-info", "intro-buildoptions.json")
    try:
        with open(info) as f:
            opts = {o["name"]: o["value"] for o in json.load(f)}
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"prealloc: {build} is not a meson build directory of this tree ({e})")
    sysconfdir = opts.get("sysconfdir", "etc")
    if not os.path.isabs(sysconfdir):
        sysconfdir = os.path.join(opts.get("prefix", "/usr/local"), sysconfdir)
    os.environ.setdefault("VMEM_BUILDDIR", os.path.abspath(build))
    os.environ.setdefault("VMEM_SRCDIR", SRC)
    os.environ.setdefault("VMEM_SYSCONFDIR", sysconfdir)


def proc_mem(pid):
    """(VmRSS, VmHWM) of a process, MiB."""
    with open(f"/proc/{pid}/status") as f:
        text = f.read()
    rss = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    hwm = re.search(r"^VmHWM:\s+(\d+) kB", text, re.M)
    return int(rss.group(1)) / 1024, int(hwm.group(1)) / 1024


def one_run(h, wait_for, mib, mode, settle, run):
    """Starts one guest that touches mib MiB right after boot; returns its
    figures."""
    # A name per run: vmemd re-stages a managed domain when it stops, and
    # that definition may land after the undefine below.
    name = f"pre-{mode}-{mib}-{run}"
    memory = mib + 512       # <memory>: room above what the workload touches
    demand = mib + 256       # what vmemd's plan gives it from the start: the touch and
                             # about 150 MiB of the guest's own (kernel, initramfs)
    virtio = mode == "virtio-mem"
    cmdline = f"vmem_touch_mib={mib}" + (" memhp_default_state=online_movable" if virtio else "")
    h.define_guest(name, memory_mib=memory, workload_mib=0, stats_period=2, cmdline=cmdline)
    if mode != "lazy":
        profile = f"pre-{mode}-{mib}-{run}"
        h.vmemctl("profile", "remove", profile, "--force", check=False)
        args = ["profile", "add", profile, "--demand", f"{demand}M", "--prealloc", "on"]
        if virtio:
            args += ["--mode", "virtio-mem"]
        h.vmemctl(*args)
        h.vmemctl("assign", name, profile)
        if virtio:
            wait_for(lambda: "model='virtio-mem'" in h.domain_xml(name), timeout=30,
                     what=f"{name} staged in virtio-mem form")
        else:
            wait_for(lambda: f"<currentMemory unit='KiB'>{demand * 1024}</currentMemory>"
                     in h.domain_xml(name), timeout=30, what=f"{name} staged at {demand} MiB")
    start_s = h.start_guest(name)
    pid = h.qemu_pid(name)
    rss_boot, hwm_boot = proc_mem(pid)
    # The RSS is sampled while the guest boots and touches: whatever QEMU
    # gives back before the touch is over (a balloon inflating, free pages
    # reported) is memory the touch may fault in again.
    rss_seen = [rss_boot]

    def touch_reported():
        rss_seen.append(proc_mem(pid)[0])
        return re.search(r"vmem-touch: (\d+) MiB touched in ([0-9.]+) ms|vmem-guest: touch failed",
                         h.console(name))

    line = wait_for(touch_reported, timeout=300, interval=0.1, what=f"{name} to report its touch")
    if line.group(1) is None:
        raise AssertionError(f"{name}: the guest could not touch {mib} MiB:\n{h.console(name)[-2000:]}")
    touch_ms = float(line.group(2))
    target = None
    if mode == "balloon":
        # Settled: the balloon is where vmemd wants it.  That is the demand
        # unless the controller has moved it since (a guest whose touch left
        # it less free memory than its buffer is given more).
        target = wait_for(lambda: balloon_at_target(h, name, demand), timeout=120, interval=0.5,
                          what=f"{name}'s balloon at vmemd's target (the demand {demand} MiB or "
                               "the controller's since)")
    time.sleep(settle)
    rss_settled, hwm_settled = proc_mem(pid)
    console = h.console(name)
    if "Out of memory" in console or "oom-kill" in console:
        raise AssertionError(f"{name}: the guest ran out of memory:\n{console[-2000:]}")
    h.virsh("destroy", name)
    h.virsh("undefine", name)
    fig = {"touch_ms": touch_ms, "start_s": start_s, "rss_boot": rss_boot, "hwm_boot": hwm_boot,
           "rss_low": min(rss_seen), "rss_settled": rss_settled, "hwm_settled": hwm_settled}
    if target is not None:
        fig["balloon_mib"] = target
    return fig


def balloon_at_target(h, name, demand):
    """The target in MiB once the balloon of a running guest has reached
    it (within 1 MiB), else None: vmemd's last target (vmemctl status), or
    the demand before the controller has set one."""
    target = demand
    for d in h.status()["domains"]:
        if d["name"] == name and "target_mib" in d:
            target = d["target_mib"]
    return target if abs(h.dommemstat(name)["actual"] / 1024 - target) <= 1 else None


FIGURES = (
    ("touch_ms", "touch ms (guest)", "{:.0f}"),
    ("start_s", "virsh start s", "{:.2f}"),
    ("rss_boot", "RSS at boot MiB", "{:.0f}"),
    ("hwm_boot", "HWM at boot MiB", "{:.0f}"),
    ("rss_low", "RSS low to touch MiB", "{:.0f}"),
    ("rss_settled", "RSS settled MiB", "{:.0f}"),
    ("hwm_settled", "HWM settled MiB", "{:.0f}"),
)


def cell(vals, base_p50, fmt):
    """One cell of a table: p50, the range [min-max], n and the ratio of the
    p50 to the baseline's; "-" without runs."""
    if not vals:
        return "-"
    p50 = statistics.median(vals)
    ratio = f"{p50 / base_p50:.2f}x" if base_p50 > 0 else "-"
    return f"{fmt.format(p50)} [{fmt.format(min(vals))}-{fmt.format(max(vals))}] ({len(vals)}) {ratio}"


def table(results, mib):
    """The lines of the markdown table of one size: a row per figure, a
    column per mode."""
    rows = []
    for key, label, fmt in FIGURES:
        base = [r[key] for r in results[(mib, BASELINE)]]
        base_p50 = statistics.median(base) if base else 0
        rows.append((label, [cell([r[key] for r in results[(mib, m)]], base_p50, fmt) for m in MODES]))
    lw = max(len(label) for label, _ in rows)
    width = max([len(m) for m in MODES] + [len(c) for _, cells in rows for c in cells])
    lines = [f"| {'figure':<{lw}} |" + "".join(f" {m:>{width}} |" for m in MODES),
             "|" + "-" * (lw + 2) + "|" + "".join("-" * (width + 1) + ":|" for _ in MODES)]
    for label, cells in rows:
        lines.append(f"| {label:<{lw}} |" + "".join(f" {c:>{width}} |" for c in cells))
    return lines


def report(results, sizes, domain_type):
    print()
    print(f"Guests under {'KVM' if domain_type == 'kvm' else 'TCG'} (domain type {domain_type!r}).")
    if domain_type != "kvm":
        print("TCG understates KVM's fault cost: under TCG the guest's own code runs many times "
              "slower while a host page fault costs about the same, so the share of the touch "
              "time that lazy allocation adds is smaller than it would be under KVM.")
    for mib in sizes:
        print()
        print(f"N = {mib} MiB touched (<memory> {mib + 512} MiB, plan's demand {mib + 256} MiB); "
              "p50 [min-max] (n), and the ratio of the p50 to lazy's")
        for line in table(results, mib):
            print(line)


def main():
    args = parse_args()
    harness_env(args.build)
    sys.path.insert(0, os.path.join(SRC, "tests", "e2e"))
    import vmemtest  # noqa: E402  (reads the environment set above)
    vmemtest.enter_namespace()

    def terminate(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)
    results = {(mib, m): [] for mib in args.sizes for m in MODES}
    h = None
    ok = False
    try:
        h = vmemtest.host()
        h.cleanup_domains()
        h.start_vmemd(admission__mode="warn")
        for r in range(args.runs):
            for mib in args.sizes:
                order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
                for mode in order:
                    fig = one_run(h, vmemtest.wait_for, mib, mode, args.settle, r + 1)
                    results[(mib, mode)].append(fig)
                    print(f"prealloc: run {r + 1}/{args.runs} N={mib} {mode}: "
                          + ", ".join(f"{k} {v:.2f}" for k, v in fig.items()), flush=True)
        ok = True
    except KeyboardInterrupt:
        print("prealloc: interrupted", file=sys.stderr)
    except AssertionError as e:
        print(f"prealloc: {e}", file=sys.stderr)
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        if h is not None:
            h.close(failed=not ok)
    report(results, args.sizes, vmemtest.DOMAIN_TYPE)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end harness: a private libvirtd in a mount namespace, QEMU (TCG)
guests, the real vmemd, vmemctl and hook.

Run as root.  The test re-executes itself under `unshare -m` so that its
own /etc/libvirt (with only vmemd's hook), /run/libvirt, /var/lib/libvirt,
/var/log/libvirt, /var/cache/libvirt and /etc/vmemd hide the host's.  A
missing prerequisite is a failure, never a skip."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

BUILD = os.environ.get("VMEM_BUILDDIR", "")
SRC = os.environ.get("VMEM_SRCDIR", os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
VMEMD = os.environ.get("VMEMD", os.path.join(BUILD, "src/daemon/vmemd"))
VMEMCTL = os.environ.get("VMEMCTL", os.path.join(BUILD, "src/cli/vmemctl"))
HOOK = os.environ.get("VMEM_HOOK", os.path.join(BUILD, "hooks/vmem-hook"))

# Where the hook built with this tree reads its configuration (libvirt
# clears the hook's environment, so it cannot be pointed elsewhere).
VMEM_CONFDIR = os.path.join(os.environ.get("VMEM_SYSCONFDIR", "/etc"), "vmemd")
PRIVATE_DIRS = ["/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
                "/var/cache/libvirt", VMEM_CONFDIR]


def fail(msg):
    print(f"e2e: {msg}", file=sys.stderr)
    sys.exit(1)


def enter_namespace():
    """Re-exec this test in a private mount namespace."""
    if os.environ.get("VMEM_E2E_NS") == "1":
        return
    if os.geteuid() != 0:
        fail("the end-to-end tests need root (they run a private libvirtd)")
    for tool in ("unshare", "libvirtd", "virtlogd", "virsh", "qemu-system-x86_64", "virt-xml-validate"):
        if shutil.which(tool) is None:
            fail(f"{tool} not found: install the packages listed in tools/debian-packages.txt")
    if not os.path.isdir("/etc/libvirt"):
        fail("/etc/libvirt is missing: install libvirt-daemon-system")
    env = dict(os.environ, VMEM_E2E_NS="1")
    os.execvpe("unshare", ["unshare", "-m", "--propagation", "private", sys.executable] + sys.argv, env)


def run(*args, check=True, timeout=120, input=None, env=None):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, input=input, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def wait_for(cond, timeout=30, interval=0.2, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            last = cond()
            if last:
                return last
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Host:
    """The private host: libvirtd, virtlogd, vmemd and their files."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="vmem-e2e-")
        os.chmod(self.tmp, 0o755)
        self.libvirtd_pid = os.path.join(self.tmp, "libvirtd.pid")
        self.virtlogd_pid = os.path.join(self.tmp, "virtlogd.pid")
        self.socket = os.path.join(self.tmp, "vmemd", "io.vmemd")
        self.database = os.path.join(self.tmp, "vmemd", "vmemd.db")
        self.vmemd_log = os.path.join(self.tmp, "vmemd.log")
        self.vmemd = None
        self.guest_dir = os.path.join(BUILD or self.tmp, "e2e-guest")
        self.config = {}
        self._mount()
        self.start_libvirtd()
        self.build_guest()

    # -- files -------------------------------------------------------------
    def _mount(self):
        etc = os.path.join(self.tmp, "etc-libvirt")
        shutil.copytree("/etc/libvirt", etc, symlinks=True,
                        ignore=shutil.ignore_patterns("*.xml", "autostart", "qemu.d"))
        hooks = os.path.join(etc, "hooks", "qemu.d")
        os.makedirs(hooks, exist_ok=True)
        for f in os.listdir(os.path.join(etc, "hooks")):
            p = os.path.join(etc, "hooks", f)
            if f != "qemu.d":
                os.remove(p) if not os.path.isdir(p) else shutil.rmtree(p)
        os.symlink(os.path.abspath(HOOK), os.path.join(hooks, "50-vmemd"))
        with open(os.path.join(etc, "qemu.conf"), "a") as f:
            # Guests read kernels from the build tree; no confinement needed.
            f.write('\nuser = "root"\ngroup = "root"\nsecurity_driver = "none"\n')
        for d in PRIVATE_DIRS:
            src = etc if d == "/etc/libvirt" else os.path.join(self.tmp, d.strip("/").replace("/", "-"))
            # Mount points that do not exist yet are created on the host (empty).
            os.makedirs(src, exist_ok=True)
            os.makedirs(d, exist_ok=True)
            subprocess.run(["mount", "--bind", src, d], check=True)
        self.write_config()

    def write_config(self, **overrides):
        """vmemd.conf in the private /etc/vmemd (the hook reads it there)."""
        conf = {
            "daemon": {"uri": "qemu:///system", "socket": self.socket, "log_level": "debug",
                       "stats_interval": "2", "request_timeout": "5"},
            "store": {"database": self.database},
            "hook": {"timeout_ms": "2000"},
            "admission": {"mode": "enforce", "reserve": "0"},
        }
        for key, value in overrides.items():
            group, name = key.split("__")
            conf.setdefault(group, {})[name] = str(value)
        self.config = conf
        path = os.path.join(VMEM_CONFDIR, "vmemd.conf")
        with open(path, "w") as f:
            for group, keys in conf.items():
                f.write(f"[{group}]\n")
                for k, v in keys.items():
                    f.write(f"{k}={v}\n")
        return path

    # -- daemons -----------------------------------------------------------
    def start_libvirtd(self):
        if not os.path.exists(self.virtlogd_pid):
            run("virtlogd", "-d", "-p", self.virtlogd_pid)
        run("libvirtd", "-d", "-p", self.libvirtd_pid)
        wait_for(lambda: run("virsh", "-c", "qemu:///system", "version", check=False).returncode == 0,
                 timeout=30, what="libvirtd to answer")

    def stop_libvirtd(self):
        self._kill_pidfile(self.libvirtd_pid)

    def restart_libvirtd(self):
        self.stop_libvirtd()
        self.start_libvirtd()

    def _kill_pidfile(self, path):
        try:
            pid = int(open(path).read().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.remove(path)
        except OSError:
            pass

    def start_vmemd(self, **overrides):
        self.stop_vmemd()
        conf = self.write_config(**overrides)
        self.vmemd = subprocess.Popen([VMEMD, "--config", conf], stdout=subprocess.DEVNULL,
                                      stderr=open(self.vmemd_log, "a"))
        wait_for(lambda: self.vmemctl("status", check=False).returncode == 0, timeout=20,
                 what="vmemd to answer")
        wait_for(lambda: self.status()["libvirt_connected"], timeout=20, what="vmemd to reach libvirtd")

    def stop_vmemd(self):
        if self.vmemd is not None:
            self.vmemd.terminate()
            try:
                self.vmemd.wait(10)
            except subprocess.TimeoutExpired:
                self.vmemd.kill()
                self.vmemd.wait()
            self.vmemd = None

    def log(self):
        with open(self.vmemd_log) as f:
            return f.read()

    # -- clients -----------------------------------------------------------
    def vmemctl(self, *args, check=True, input=None):
        return run(VMEMCTL, "--socket", self.socket, *args, check=check, input=input)

    def vmemctl_json(self, *args):
        return json.loads(self.vmemctl("--json", *args).stdout)

    def status(self):
        return self.vmemctl_json("status")

    def virsh(self, *args, check=True, timeout=120):
        return run("virsh", "-c", "qemu:///system", *args, check=check, timeout=timeout)

    def dumpxml(self, name, inactive=True):
        args = ["dumpxml", name, "--security-info"] + (["--inactive"] if inactive else [])
        return self.virsh(*args).stdout

    # -- guests ------------------------------------------------------------
    def build_guest(self):
        run("bash", os.path.join(SRC, "tests/e2e/guest/build-guest.sh"), self.guest_dir, timeout=600)

    def define_guest(self, name, memory_mib=256, current_mib=None, workload_mib=0, extra_devices="",
                     metadata=""):
        xml = f"""<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <currentMemory unit='MiB'>{current_mib or memory_mib}</currentMemory>
  {metadata}
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{self.guest_dir}/vmlinuz</kernel>
    <initrd>{self.guest_dir}/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet vmem_workload_mib={workload_mib}</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{self.tmp}/{name}.console'/><target port='0'/></serial>
    {extra_devices}
  </devices>
</domain>
"""
        path = os.path.join(self.tmp, f"{name}.xml")
        with open(path, "w") as f:
            f.write(xml)
        self.virsh("define", path)
        return name

    def qemu_cmdline(self, name):
        pid = open(f"/run/libvirt/qemu/{name}.pid").read().strip()
        return open(f"/proc/{pid}/cmdline").read().replace("\0", " ")

    def cleanup_domains(self):
        out = self.virsh("list", "--all", "--name", check=False).stdout.split()
        for d in out:
            self.virsh("destroy", d, check=False)
            self.virsh("undefine", d, check=False)

    def close(self):
        self.stop_vmemd()
        self.cleanup_domains()
        self.stop_libvirtd()
        self._kill_pidfile(self.virtlogd_pid)


class E2ETestCase(unittest.TestCase):
    host = None

    @classmethod
    def setUpClass(cls):
        cls.host = Host()

    @classmethod
    def tearDownClass(cls):
        if cls.host is not None:
            if os.environ.get("VMEM_E2E_KEEP_LOG") or not cls._passed:
                print("---- vmemd log (tail) ----", file=sys.stderr)
                print("\n".join(cls.host.log().splitlines()[-60:]) if os.path.exists(cls.host.vmemd_log) else "(none)",
                      file=sys.stderr)
            cls.host.close()

    _passed = True

    def run(self, result=None):
        result = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._passed = False
        return result


def main():
    enter_namespace()
    runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout)
    prog = unittest.main(module="__main__", testRunner=runner, exit=False)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(getattr(r, "unexpectedSuccesses", []))
    passed = r.testsRun - failed - len(r.skipped)
    # Skips are not allowed here: a missing prerequisite is a failure.
    failed += len(r.skipped)
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)

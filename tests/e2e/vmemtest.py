# SPDX-License-Identifier: LGPL-2.1-or-later
"""End-to-end harness: a private libvirtd in a mount namespace, QEMU (TCG)
guests, the real vmemd, vmemctl and hook.

Run as root.  A test module re-executes itself under
`unshare -m --propagation private` so that its own /etc/libvirt (the host's
copy without domains, networks or hooks, plus vmemd's hook as
hooks/qemu.d/50-vmemd), /run/libvirt, /var/lib/libvirt, /var/log/libvirt,
/var/cache/libvirt and vmemd's configuration directory hide the host's.
Nothing the tests do is visible outside.  A missing prerequisite is a
failure naming the Debian package, never a skip.

A test module looks like:

    import vmemtest
    from vmemtest import wait_for

    class Thing(vmemtest.E2ETestCase):
        def test_it(self):
            h = self.host
            h.start_vmemd(admission__mode="warn")
            h.define_guest("vm1", memory_mib=256, workload_mib=64)
            h.vmemctl("profile", "add", "erp", "--demand", "192M")
            h.vmemctl("assign", "vm1", "erp")
            h.virsh("start", "vm1")
            h.wait_booted("vm1")

    if __name__ == "__main__":
        vmemtest.main()
"""

import ctypes
import fcntl
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

BUILD = os.environ.get("VMEM_BUILDDIR", "")
SRC = os.environ.get("VMEM_SRCDIR") or os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VMEMD = os.environ.get("VMEMD", os.path.join(BUILD, "src/daemon/vmemd"))
VMEMCTL = os.environ.get("VMEMCTL", os.path.join(BUILD, "src/cli/vmemctl"))
HOOK = os.environ.get("VMEM_HOOK", os.path.join(BUILD, "hooks/vmem-hook"))
# VMEM_E2E_BUILD: the binaries of another build directory (an
# AddressSanitizer build, say) instead of those of the build running the
# tests; the guest stays cached in the running build's directory.
E2E_BUILD = os.environ.get("VMEM_E2E_BUILD", "")
if E2E_BUILD:
    VMEMD = os.path.join(E2E_BUILD, "src/daemon/vmemd")
    VMEMCTL = os.path.join(E2E_BUILD, "src/cli/vmemctl")
    HOOK = os.path.join(E2E_BUILD, "hooks/vmem-hook")

# Sanitized binaries report every error and stop at the first one; the
# reports are looked for in vmemd's output and the hook's log files when
# the module ends, and any is a failure.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:abort_on_error=0:exitcode=99:detect_leaks=1:print_summary=1",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1:exitcode=99",
    "LSAN_OPTIONS": f"suppressions={os.path.join(SRC, 'tools', 'lsan.supp')}:print_suppressions=0",
}
SANITIZER_REPORT = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: UndefinedBehaviorSanitizer")


def sanitized(path):
    """Whether the binary at path was built with AddressSanitizer or UBSan."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data

# Where the hook built with this tree reads its configuration: libvirt
# clears the hook's environment, so it cannot be pointed elsewhere.
VMEM_CONFDIR = os.path.join(os.environ.get("VMEM_SYSCONFDIR", "/etc"), "vmemd")
PRIVATE_DIRS = ["/etc/libvirt", "/run/libvirt", "/var/lib/libvirt", "/var/log/libvirt",
                "/var/cache/libvirt", VMEM_CONFDIR]
URI = "qemu:///system"
# The port of the hosts of a cluster (qemu+tcp), each on its own loopback
# address; not libvirt's default, so that a libvirtd of the machine that
# listens on every address cannot be in the way.
LIBVIRT_TCP_PORT = 16519

# Linux guests hang early under nested KVM on some machines, so guests run
# under TCG unless told otherwise.
KVM_PRESENT = os.access("/dev/kvm", os.R_OK | os.W_OK)
DOMAIN_TYPE = os.environ.get("VMEM_E2E_DOMAIN_TYPE", "qemu")

# What must be installed, and in which Debian package it comes.
REQUIRED_TOOLS = {
    "unshare": "util-linux",
    "nsenter": "util-linux",
    "mount": "mount",
    "libvirtd": "libvirt-daemon",
    "virtlogd": "libvirt-daemon",
    "virsh": "libvirt-clients",
    "qemu-system-x86_64": "qemu-system-x86",
    "apt-get": "apt",
    "dpkg": "dpkg",
    "cpio": "cpio",
    "gzip": "gzip",
    "xz": "xz-utils",
    "cc": "gcc",
}
REQUIRED_FILES = {
    "/etc/libvirt/libvirtd.conf": "libvirt-daemon-system",
    "/etc/libvirt/qemu.conf": "libvirt-daemon-system",
    # build-guest.sh links the guest's vmem-touch statically.
    "/usr/lib/x86_64-linux-gnu/libc.a": "libc6-dev",
}

_NS_ENV = "VMEM_E2E_PARENT_MNTNS"


def _tool(name):
    # Daemons live in /usr/sbin, which a non-login root PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") or name


def fail(msg):
    print(f"e2e: {msg}", file=sys.stderr)
    print("0 passed, 1 failed")
    sys.exit(1)


def check_prerequisites():
    """Everything the suite needs, or a failure that says what to install."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the end-to-end tests need root (they run a private libvirtd)")
    for tool, package in REQUIRED_TOOLS.items():
        if not os.path.isabs(_tool(tool)):
            problems.append(f"{tool} not found: install the Debian package {package}")
    for path, package in REQUIRED_FILES.items():
        if not os.path.exists(path):
            problems.append(f"{path} is missing: install the Debian package {package}")
    for what, path in (("vmemd", VMEMD), ("vmemctl", VMEMCTL), ("the hook", HOOK)):
        if not os.access(path, os.X_OK):
            problems.append(f"{what} is not built at {path} (set VMEMD, VMEMCTL, VMEM_HOOK or run through meson test)")
    if problems:
        fail("missing prerequisites (tests/e2e/host-deps.sh lists the packages):\n  " + "\n  ".join(problems))


def enter_namespace():
    """Re-executes this test in a private mount namespace (once)."""
    mine = os.readlink("/proc/self/ns/mnt")
    parent = os.environ.get(_NS_ENV)
    if parent is not None:
        # Never bind-mount over the host's directories: being in a new
        # namespace is checked, not assumed from the variable.
        if parent == mine:
            fail(f"{_NS_ENV} is set but this is not a private mount namespace")
        return
    check_prerequisites()
    env = dict(os.environ, **{_NS_ENV: mine})
    argv = ["unshare", "-m", "--propagation", "private", sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe("unshare", argv, env)


class Result(subprocess.CompletedProcess):
    """A finished command: .returncode/.stdout/.stderr, .rc, and it unpacks
    as (rc, stdout, stderr)."""

    @property
    def rc(self):
        return self.returncode

    def __iter__(self):
        return iter((self.returncode, self.stdout, self.stderr))


def run(*args, check=True, timeout=120, input=None, env=None):
    """Runs a command; with check, a non-zero exit is an AssertionError that
    quotes its stderr.  A timeout is always an AssertionError."""
    try:
        p = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                           input=input, env=env, stdin=None if input is not None else subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{' '.join(map(str, args))} did not finish within {timeout}s") from None
    r = Result(p.args, p.returncode, p.stdout, p.stderr)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({r.returncode}): "
                             f"{(r.stderr.strip() or r.stdout.strip())}")
    return r


def wait_for(cond, timeout=30, interval=0.2, what="condition"):
    """Polls cond() until it returns something true, and returns that.  An
    exception in cond() counts as not yet; the last one is in the message."""
    end = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = cond()
            if last:
                return last
        except AssertionError as e:
            last = e
        except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            last = e
        if time.monotonic() >= end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def _pid_from(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is gone for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_pid(pid, timeout=10):
    """SIGTERM, then SIGKILL after timeout seconds.  True if it was running."""
    if pid is None or not _alive(pid):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    end = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < end:
        time.sleep(0.05)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_for(lambda: not _alive(pid), timeout=10, interval=0.05, what=f"pid {pid} to die")
    return True


_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def _die_with_parent():
    # vmemd must not outlive a test that is killed outright.
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Host:
    """A private host: libvirtd, virtlogd, vmemd, their files and guests.

    Attributes: tmp (this run's scratch directory), socket (vmemd's socket),
    database, vmemd_log, config (the last vmemd.conf as a dict of dicts),
    config_path, guest_dir (vmlinuz and initrd.gz).

    The module's host (host()) lives in the test process's own mount
    namespace.  A cluster (cluster()) adds hosts with own_namespace: their
    libvirtd, virtlogd, vmemd, hook and virsh run in a mount namespace of
    their own (entered with nsenter), so that each host has its own
    /etc/libvirt, /run/libvirt, ... and vmemd configuration directory.
    listen makes libvirtd accept qemu+tcp on that loopback address (auth
    none) and QEMU take incoming migrations there; host_uuid goes into
    libvirtd.conf; store is the [store] group of vmemd.conf (the SQLite
    file in tmp by default); host_name is vmemd's host_name and host_id
    (the hosts of one machine share its /etc/machine-id)."""

    def __init__(self, name="", listen=None, host_uuid=None, own_namespace=False, store=None,
                 host_name=None, lock=True):
        # One private host at a time on a machine: two would share the
        # configuration directory the hook reads and the machine's CPUs.
        # The lock goes with the process; the hosts of one cluster share it.
        self._lock = None
        if lock:
            self._lock = open(os.path.join(tempfile.gettempdir(), "vmem-e2e.lock"), "w")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
        self.locked_at = time.monotonic()
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"vmem-e2e-{name + '-' if name else ''}")
        os.chmod(self.tmp, 0o755)
        self.listen = listen
        self.host_uuid = host_uuid
        self.remote_uri = f"qemu+tcp://{listen}:{LIBVIRT_TCP_PORT}/system" if listen else None
        self.libvirtd_pidfile = os.path.join(self.tmp, "libvirtd.pid")
        self.virtlogd_pidfile = os.path.join(self.tmp, "virtlogd.pid")
        self.socket = os.path.join(self.tmp, "vmemd", "io.vmemd")
        self.database = os.path.join(self.tmp, "vmemd", "vmemd.db")
        self.store = dict(store) if store else {"database": self.database}
        self.host_name = host_name
        self.vmemd_log = os.path.join(self.tmp, "vmemd.log")
        self.guest_dir = os.path.join(BUILD, "e2e-guest") if BUILD else os.path.join(self.tmp, "guest")
        self.vmemd = None
        self.hook_sanitizer_dir = None
        self.config = {}
        self.keep = bool(os.environ.get("VMEM_E2E_KEEP"))
        self._mounted = []
        self._closed = False
        self._holder = None
        self._ns = []
        open(self.vmemd_log, "w").close()
        try:
            if own_namespace:
                self._enter_own_namespace()
            self.config_path = self.private_path(os.path.join(VMEM_CONFDIR, "vmemd.conf"))
            self._mount()
            self.write_config()
            self.build_guest()
            self.start_libvirtd()
        except BaseException:
            self.close(failed=True)
            raise
        where = f" listening on {self.remote_uri}" if self.remote_uri else ""
        print(f"e2e: private libvirtd{' ' + name if name else ''} in {self.tmp}{where}; guests "
              f"type='{DOMAIN_TYPE}'"
              f"{' (/dev/kvm present, not used)' if KVM_PRESENT and DOMAIN_TYPE != 'kvm' else ''}",
              file=sys.stderr)

    def _enter_own_namespace(self):
        """Starts a process that holds a new mount namespace for this host;
        every command of the host runs in it through nsenter."""
        self._holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "infinity"],
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        mine = os.readlink("/proc/self/ns/mnt")

        def entered():
            if self._holder.poll() is not None:
                raise RuntimeError(f"unshare exited with status {self._holder.returncode}")
            # unshare execs sleep once it has made the namespace.
            with open(f"/proc/{self._holder.pid}/comm") as f:
                if f.read().strip() != "sleep":
                    return False
            return os.readlink(f"/proc/{self._holder.pid}/ns/mnt") != mine

        try:
            wait_for(entered, timeout=10, interval=0.05, what="a private mount namespace")
        except RuntimeError as e:
            raise AssertionError(str(e)) from None
        self._ns = ["nsenter", f"--mount=/proc/{self._holder.pid}/ns/mnt", "--"]

    def private_path(self, path):
        """Where this test process sees path as this host's processes see
        it: a host in its own namespace has its private directories in tmp."""
        if not self._ns:
            return path
        for d in PRIVATE_DIRS:
            if path == d or path.startswith(d + "/"):
                return self._private_source(d) + path[len(d):]
        return path

    def _private_source(self, d):
        return os.path.join(self.tmp, "etc-libvirt" if d == "/etc/libvirt" else d.strip("/").replace("/", "-"))

    def cmd(self, *args, **kwargs):
        """run() in this host's mount namespace."""
        return run(*self._ns, *args, **kwargs)

    # -- files -------------------------------------------------------------
    @staticmethod
    def _set_conf_keys(path, values):
        """Sets KEY = VALUE lines in a libvirt .conf file, dropping any
        earlier setting of the same keys."""
        with open(path) as f:
            lines = f.read().splitlines()
        keys = set(values)
        lines = [ln for ln in lines if ln.split("=", 1)[0].strip() not in keys]
        lines += [f"{k} = {v}" for k, v in values.items()]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _mount(self):
        etc = os.path.join(self.tmp, "etc-libvirt")
        # No domain, network or filter definitions, no autostart, no hooks
        # of the host's: the private libvirtd starts empty.
        # (A host in its own namespace copies the module host's copy,
        # whose settings it overrides.)
        shutil.copytree("/etc/libvirt", etc, symlinks=True,
                        ignore=shutil.ignore_patterns("*.xml", "autostart"))
        shutil.rmtree(os.path.join(etc, "hooks"), ignore_errors=True)
        hooks = os.path.join(etc, "hooks", "qemu.d")
        os.makedirs(hooks)
        if sanitized(HOOK):
            # libvirt clears a hook's environment: a wrapper gives the
            # sanitized hook its options and a log file per process.
            self.hook_sanitizer_dir = os.path.join(self.tmp, "hook-sanitizer")
            os.makedirs(self.hook_sanitizer_dir)
            opts = {k: f"{v}:log_path={self.hook_sanitizer_dir}/report" for k, v in SANITIZER_ENV.items()}
            with open(os.path.join(hooks, "50-vmemd"), "w") as f:
                f.write("#!/bin/sh\n" + "".join(f"export {k}='{v}'\n" for k, v in opts.items())
                        + f"exec '{os.path.abspath(HOOK)}' \"$@\"\n")
            os.chmod(os.path.join(hooks, "50-vmemd"), 0o755)
        else:
            os.symlink(os.path.abspath(HOOK), os.path.join(hooks, "50-vmemd"))
        # Guests read their kernel from the build tree: no confinement.
        qemu_conf = {"user": '"root"', "group": '"root"', "security_driver": '"none"'}
        libvirtd_conf = {"log_outputs": '"3:file:/var/log/libvirt/libvirtd.log"'}
        if self.listen:
            # qemu+tcp without authentication, on a loopback address only;
            # incoming migrations on the same address.
            libvirtd_conf.update({"listen_tls": "0", "listen_tcp": "1", "auth_tcp": '"none"',
                                  "listen_addr": f'"{self.listen}"', "tcp_port": f'"{LIBVIRT_TCP_PORT}"'})
            qemu_conf.update({"migration_address": f'"{self.listen}"', "migration_host": f'"{self.listen}"'})
        if self.host_uuid:
            libvirtd_conf["host_uuid"] = f'"{self.host_uuid}"'
        if self.listen:
            # Two libvirtds on one machine number their domains alike, and
            # a domain's cgroup is named by number and name: without
            # cgroups, a domain that moves between them never meets itself.
            qemu_conf["cgroup_controllers"] = "[ ]"
        self._set_conf_keys(os.path.join(etc, "qemu.conf"), qemu_conf)
        self._set_conf_keys(os.path.join(etc, "libvirtd.conf"), libvirtd_conf)
        for d in PRIVATE_DIRS:
            src = self._private_source(d)
            os.makedirs(src, exist_ok=True)
            if not self._ns and not os.path.isdir(d):
                # The mount point has to exist.  It is left in place at
                # close: removing it would detach the same mount from any
                # other run's namespace (rmdir of a mount point in another
                # namespace succeeds and unmounts it there).
                os.makedirs(d)
            self.cmd("mount", "--bind", src, d)
            self._mounted.append(d)

    def write_config(self, config=None, **overrides):
        """Writes vmemd.conf into the private configuration directory (where
        the hook reads it too) and returns its path.  Overrides are
        group__key=value keywords (hook__fail_closed="true") or a dict
        {"hook": {"fail_closed": "true"}}; each call starts from the
        harness defaults."""
        conf = {
            "daemon": {"uri": URI, "socket": self.socket, "log_level": "debug",
                       "stats_interval": "2", "request_timeout": "5",
                       **({"host_name": self.host_name, "host_id": self.host_name} if self.host_name else {})},
            "store": dict(self.store),
            "hook": {"timeout_ms": "2000"},
            "admission": {"mode": "enforce", "reserve": "0"},
            # Test guests are small: a buffer sized for them, so that the
            # on-demand controller moves them only on real pressure.
            "controller": {"min_buffer": "32M", "min_buffer_pct": "0"},
        }
        for group, keys in (config or {}).items():
            for name, value in keys.items():
                conf.setdefault(group, {})[name] = str(value)
        for key, value in overrides.items():
            group, sep, name = key.partition("__")
            if not sep:
                raise ValueError(f"config override {key!r} is not GROUP__KEY")
            conf.setdefault(group, {})[name] = str(value)
        for keys in conf.values():
            for name in [n for n, v in keys.items() if v == "None"]:
                del keys[name]
        self.config = conf
        with open(self.config_path, "w") as f:
            for group, keys in conf.items():
                f.write(f"[{group}]\n")
                for k, v in keys.items():
                    f.write(f"{k}={v}\n")
                f.write("\n")
        return self.config_path

    @property
    def hook_timeout(self):
        """The configured hook timeout in seconds."""
        return int(self.config.get("hook", {}).get("timeout_ms", 2000)) / 1000

    # -- libvirtd ----------------------------------------------------------
    def start_libvirtd(self):
        if _pid_from(self.virtlogd_pidfile) is None or not _alive(_pid_from(self.virtlogd_pidfile)):
            self.cmd(_tool("virtlogd"), "-d", "-p", self.virtlogd_pidfile)
        self.cmd(_tool("libvirtd"), "-d", "-p", self.libvirtd_pidfile, *(["--listen"] if self.listen else []))
        last = None

        def answers():
            nonlocal last
            last = self.cmd("virsh", "-c", URI, "version", check=False, timeout=30)
            return last.returncode == 0

        try:
            wait_for(answers, timeout=60, interval=0.25, what="libvirtd to answer")
        except AssertionError:
            raise AssertionError("the private libvirtd does not answer on qemu:///system: "
                                 f"{last.stderr.strip() if last else ''} (is libvirt-daemon-driver-qemu "
                                 f"installed? see {self.tmp}/var-log-libvirt/libvirtd.log)") from None
        if self.remote_uri:
            wait_for(lambda: run("virsh", "-c", self.remote_uri, "version", check=False, timeout=30).rc == 0,
                     timeout=30, interval=0.25, what=f"libvirtd to answer on {self.remote_uri}")

    def stop_libvirtd(self):
        kill_pid(_pid_from(self.libvirtd_pidfile), timeout=20)
        try:
            os.remove(self.libvirtd_pidfile)
        except OSError:
            pass

    def restart_libvirtd(self):
        """Stops libvirtd (running guests keep running) and starts it again."""
        self.stop_libvirtd()
        self.start_libvirtd()

    # -- vmemd -------------------------------------------------------------
    def start_vmemd(self, config=None, fresh_store=False, wait_libvirt=True, nofile=None, **overrides):
        """(Re)starts vmemd in the foreground with a fresh vmemd.conf (see
        write_config for the overrides), appending its output to vmemd_log,
        and waits until `vmemctl status` answers and, with wait_libvirt,
        until it reports libvirt connected.  fresh_store deletes the
        database first.  nofile: vmemd's soft RLIMIT_NOFILE at exec (the
        hard limit stays)."""
        self.stop_vmemd()
        conf = self.write_config(config, **overrides)
        if fresh_store:
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.remove(self.database + suffix)
                except FileNotFoundError:
                    pass
        with open(self.vmemd_log, "a") as log:
            log.write(f"==== e2e: starting vmemd --config {conf} ====\n")
            log.flush()
            def preexec():
                _die_with_parent()
                if nofile is not None:
                    resource.setrlimit(resource.RLIMIT_NOFILE,
                                       (nofile, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

            self.vmemd = subprocess.Popen([*self._ns, VMEMD, "--config", conf, "--foreground"],
                                          stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          env=dict(os.environ, **SANITIZER_ENV), preexec_fn=preexec)

        def answers():
            if self.vmemd.poll() is not None:
                raise RuntimeError(f"vmemd exited with status {self.vmemd.returncode}:\n"
                                   + "\n".join(self.log().splitlines()[-20:]))
            return self.vmemctl("status", check=False, timeout=10).returncode == 0

        try:
            wait_for(answers, timeout=20, interval=0.1, what="vmemd to answer `vmemctl status`")
        except RuntimeError as e:
            self.vmemd = None
            raise AssertionError(str(e)) from None
        if wait_libvirt:
            wait_for(lambda: self.status().get("libvirt_connected"), timeout=20,
                     what="vmemd to report libvirt connected")
        return self.vmemd

    def stop_vmemd(self):
        """Stops vmemd with SIGTERM (SIGKILL after 10 s); returns its exit
        status, or None if it was not running."""
        if self.vmemd is None:
            return None
        p, self.vmemd = self.vmemd, None
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def vmemd_running(self):
        return self.vmemd is not None and self.vmemd.poll() is None

    def log(self, since=0):
        """vmemd's output (all starts), from byte offset since."""
        try:
            with open(self.vmemd_log, errors="replace") as f:
                f.seek(since)
                return f.read()
        except OSError:
            return ""

    def log_mark(self):
        """An offset for log(since=...) and log_lines(since=...): only what
        is logged from now on."""
        try:
            return os.path.getsize(self.vmemd_log)
        except OSError:
            return 0

    def log_lines(self, *words, since=0):
        """The lines of vmemd's log that contain every one of words."""
        return [ln for ln in self.log(since).splitlines() if all(w in ln for w in words)]

    def wait_log(self, *words, since=0, timeout=15):
        """Waits for a vmemd log line containing every one of words and
        returns the first such line."""
        return wait_for(lambda: (self.log_lines(*words, since=since) or [None])[0], timeout=timeout,
                        what=f"a vmemd log line with {words!r}")

    # -- clients -----------------------------------------------------------
    def vmemctl(self, *args, check=True, input=None, timeout=30):
        """vmemctl --socket SOCKET ARGS -> Result (rc, stdout, stderr);
        with check (default), a non-zero exit fails the test."""
        return run(VMEMCTL, "--socket", self.socket, *args, check=check, input=input, timeout=timeout)

    def vmemctl_json(self, *args):
        """vmemctl --json ARGS, parsed; a non-zero exit fails the test."""
        out = self.vmemctl("--json", *args).stdout
        try:
            return json.loads(out)
        except ValueError as e:
            raise AssertionError(f"vmemctl --json {' '.join(args)} printed no JSON ({e}): {out!r}") from None

    def status(self):
        return self.vmemctl_json("status")

    def virsh(self, *args, check=True, timeout=120):
        """virsh -c qemu:///system ARGS -> Result, against the private libvirtd."""
        return self.cmd("virsh", "-c", URI, *args, check=check, timeout=timeout)

    def domain_xml(self, name, inactive=True, secure=True):
        """virsh dumpxml: the persistent definition by default, with secrets."""
        args = ["dumpxml", name] + (["--security-info"] if secure else []) + (["--inactive"] if inactive else [])
        return self.virsh(*args).stdout

    dumpxml = domain_xml

    def domstate(self, name):
        return self.virsh("domstate", name).stdout.strip()

    def dommemstat(self, name):
        """virsh dommemstat as a dict of ints (KiB; last_update in seconds)."""
        out = self.virsh("dommemstat", name).stdout
        return {k: int(v) for k, v in (ln.split() for ln in out.splitlines() if len(ln.split()) == 2)}

    # -- guests ------------------------------------------------------------
    def build_guest(self):
        """Builds (or reuses) the guest kernel and initramfs in guest_dir."""
        run("bash", os.path.join(SRC, "tests/e2e/guest/build-guest.sh"), self.guest_dir, timeout=600)

    def define_guest(self, name, memory_mib=256, current_mib=None, workload_mib=0, vcpus=1,
                     stats_period=None, extra_devices="", extra_xml="", metadata="", cmdline="",
                     go_port=False):
        """Defines a diskless, networkless guest booting the test kernel
        directly, its serial console going to console_path(name).  Its init
        writes workload_mib MiB into a tmpfs, then idles.  stats_period adds
        an explicit virtio memballoon with guest statistics (otherwise
        libvirt's default balloon, without statistics).  extra_devices goes
        inside <devices>, extra_xml inside <domain>, metadata inside
        <metadata>; cmdline is appended to the kernel command line.
        go_port adds a second serial port on a Unix socket (go_path(name))
        and vmem_schedule_wait=1: the guest's vmem_schedule then counts from
        go(name), not from boot."""
        balloon = ""
        if stats_period is not None:
            balloon = f"<memballoon model='virtio'><stats period='{stats_period}'/></memballoon>"
        meta = f"<metadata>{metadata}</metadata>" if metadata else ""
        go = ""
        if go_port:
            go = (f"<serial type='unix'><source mode='bind' path='{self.go_path(name)}'/>"
                  "<target port='1'/></serial>")
            cmdline = f"{cmdline} vmem_schedule_wait=1"
        xml = f"""<domain type='{DOMAIN_TYPE}'>
  <name>{name}</name>
  <memory unit='MiB'>{memory_mib}</memory>
  <currentMemory unit='MiB'>{current_mib or memory_mib}</currentMemory>
  {meta}
  <vcpu>{vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{self.guest_dir}/vmlinuz</kernel>
    <initrd>{self.guest_dir}/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet vmem_workload_mib={workload_mib} {cmdline}</cmdline>
  </os>
  {extra_xml}
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <serial type='file'><source path='{self.console_path(name)}'/><target port='0'/></serial>
    {go}
    {balloon}
    {extra_devices}
  </devices>
</domain>
"""
        path = os.path.join(self.tmp, f"{name}.xml")
        with open(path, "w") as f:
            f.write(xml)
        # A console from an earlier guest of the same name must not count.
        try:
            os.remove(self.console_path(name))
        except FileNotFoundError:
            pass
        self.virsh("define", path)
        return name

    def go_path(self, name):
        return os.path.join(self.tmp, f"{name}.go")

    def go(self, name, timeout=30):
        """Starts the schedule of a guest defined with go_port: a line on
        its second serial port, sent again each second until its console
        says the schedule started (a line sent before the guest's init
        opened the port is lost).  Returns the guest's uptime at the go."""
        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.go_path(name))
            while True:
                s.sendall(b"go\n")
                m = re.search(r"vmem-guest: schedule started at (\d+) s", self.console(name))
                if m:
                    return int(m.group(1))
                if time.monotonic() > deadline:
                    raise AssertionError(f"{name}: no 'schedule started' on its console {timeout} s "
                                         "after the go was sent")
                time.sleep(1)

    def console_path(self, name):
        return os.path.join(self.tmp, f"{name}.console")

    def console(self, name):
        """The guest's serial console output so far."""
        try:
            with open(self.console_path(name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_booted(self, name, timeout=60):
        """Waits until the guest's init reports its workload loaded."""
        return wait_for(lambda: re.search(r"vmem-guest: workload \d+ MiB loaded", self.console(name)),
                        timeout=timeout, interval=0.25, what=f"{name} to boot to its workload")

    def start_guest(self, name, wait=False, timeout=60):
        """virsh start; with wait, also waits for the workload.  Returns the
        seconds `virsh start` took."""
        t0 = time.monotonic()
        self.virsh("start", name)
        elapsed = time.monotonic() - t0
        if wait:
            self.wait_booted(name, timeout)
        return elapsed

    def qemu_pid(self, name):
        pid = _pid_from(self.private_path(f"/run/libvirt/qemu/{name}.pid"))
        if pid is None:
            raise AssertionError(f"{name} has no QEMU process")
        return pid

    def qemu_cmdline(self, name):
        with open(f"/proc/{self.qemu_pid(name)}/cmdline") as f:
            return f.read().replace("\0", " ")

    def qemu_rss_mib(self, name):
        with open(f"/proc/{self.qemu_pid(name)}/status") as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) // 1024

    def domains(self):
        """Names of all defined and running domains."""
        return self.virsh("list", "--all", "--name", check=False).stdout.split()

    def cleanup_domains(self):
        """Destroys and undefines every domain of the private libvirtd."""
        for d in self.domains():
            self.virsh("destroy", d, check=False)
            self.virsh("undefine", d, "--managed-save", "--snapshots-metadata", check=False)

    def sanitizer_reports(self):
        """Sanitizer reports of vmemd (in its output) and of the hook run by
        libvirtd (its log files), as text; empty when there are none."""
        found = []
        lines = self.log().splitlines()
        for i, ln in enumerate(lines):
            if SANITIZER_REPORT.search(ln):
                found.append("vmemd: " + "\n".join(lines[i:i + 30]))
        if self.hook_sanitizer_dir and os.path.isdir(self.hook_sanitizer_dir):
            for name in sorted(os.listdir(self.hook_sanitizer_dir)):
                with open(os.path.join(self.hook_sanitizer_dir, name), errors="replace") as f:
                    found.append(f"hook ({name}): " + f.read())
        return "\n".join(found)

    # -- teardown ----------------------------------------------------------
    def close(self, failed=False):
        """Stops everything this host started and unmounts its directories.
        Safe to call twice and after a partial start.  The scratch directory
        is kept after a failure or with VMEM_E2E_KEEP=1."""
        if self._closed:
            return
        self._closed = True
        self.stop_vmemd()
        if _pid_from(self.libvirtd_pidfile) is not None:
            try:
                for d in self.virsh("list", "--name", check=False, timeout=20).stdout.split():
                    self.virsh("destroy", d, check=False, timeout=30)
            except AssertionError:
                pass
            self.stop_libvirtd()
        # Guests left by a libvirtd that did not answer.
        qemu_run = self.private_path("/run/libvirt/qemu")
        if os.path.isdir(qemu_run):
            for f in os.listdir(qemu_run):
                if f.endswith(".pid"):
                    kill_pid(_pid_from(os.path.join(qemu_run, f)))
        kill_pid(_pid_from(self.virtlogd_pidfile))
        for d in reversed(self._mounted):
            subprocess.run([*self._ns, "umount", "-l", d], capture_output=True)
        if self._holder is not None:
            # The namespace goes with its last process.
            self._holder.kill()
            self._holder.wait()
        if failed or self.keep:
            print(f"e2e: logs kept in {self.tmp} (vmemd.log, var-log-libvirt/, *.console)", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


_host = None
_host_error = None


def host():
    """The one Host of this process, started on first use."""
    global _host, _host_error
    if _host_error is not None:
        raise AssertionError(f"the test host could not be set up: {_host_error}")
    if _host is None:
        try:
            _host = Host()
        except Exception as e:
            _host_error = e
            raise
    return _host


class Cluster:
    """Two hosts on one PostgreSQL store: a (the test process's own mount
    namespace, libvirtd on qemu+tcp://127.0.0.2) and b (a mount namespace
    of its own, qemu+tcp://127.0.0.3), each with its own host_uuid and
    vmemd host name, so that a domain can be migrated live between them.
    The PostgreSQL server is Debian's, started by tools/test-postgres with
    its data in a scratch directory; postgres is the libpq connection
    string both vmemds use, pg_dir that directory."""

    ADDRESSES = {"a": "127.0.0.2", "b": "127.0.0.3"}

    def __init__(self):
        self.hosts = {}
        self.pg_dir = None
        self._closed = False
        try:
            self._lock = open(os.path.join(tempfile.gettempdir(), "vmem-e2e.lock"), "w")
            fcntl.flock(self._lock, fcntl.LOCK_EX)
            self.pg_dir = tempfile.mkdtemp(prefix="vmem-e2e-pg-")
            self.postgres = self._start_postgres()
            store = {"backend": "postgres", "postgres": self.postgres}
            for name, addr in self.ADDRESSES.items():
                self.hosts[name] = Host(name, listen=addr, host_uuid=str(uuid.uuid4()),
                                        own_namespace=name != "a", store=store,
                                        host_name=f"host-{name}", lock=False)
        except BaseException:
            self.close(failed=True)
            raise
        self.a, self.b = self.hosts["a"], self.hosts["b"]

    # -- PostgreSQL --------------------------------------------------------
    def _start_postgres(self):
        if shutil.which("psql") is None:
            raise AssertionError("psql not found: install the Debian package postgresql-client")
        out = run("bash", os.path.join(SRC, "tools/test-postgres"), "start", self.pg_dir, timeout=120).stdout
        env = dict(re.findall(r"^export (\w+)='([^']*)'$", out, re.M))
        admin = env.get("VMEM_TEST_PG")
        if not admin:
            raise AssertionError(f"tools/test-postgres printed no connection string: {out!r}")
        self.psql(admin, "CREATE DATABASE vmemd")
        return admin.replace("dbname=postgres", "dbname=vmemd")

    @staticmethod
    def _pg_bindir():
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                       key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")])
        if not found:
            raise AssertionError("no PostgreSQL server in /usr/lib/postgresql: install the Debian package postgresql")
        return os.path.dirname(found[-1])

    def psql(self, conninfo, sql):
        """Runs sql through psql on conninfo (the vmemd database by default)
        and returns its unaligned, tuples-only output."""
        return run("psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-d", conninfo or self.postgres,
                   "-c", sql, timeout=60).stdout

    def pg_stop(self):
        """Stops the PostgreSQL server (fast shutdown: connections are cut)."""
        run("runuser", "-u", "postgres", "--", os.path.join(self._pg_bindir(), "pg_ctl"), "-D",
            os.path.join(self.pg_dir, "data"), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)

    def pg_start(self):
        """Starts it again, as tools/test-postgres does."""
        d = self.pg_dir
        run("runuser", "-u", "postgres", "--", os.path.join(self._pg_bindir(), "pg_ctl"), "-D",
            os.path.join(d, "data"), "-l", os.path.join(d, "server.log"), "-w", "-t", "60",
            "-o", f"-k {d}/run -c listen_addresses='' -c fsync=off -c max_connections=200", "start",
            timeout=90)

    # -- teardown ----------------------------------------------------------
    def close(self, failed=False):
        if self._closed:
            return
        self._closed = True
        for h in reversed(list(self.hosts.values())):
            h.close(failed=failed)
        if self.pg_dir is not None:
            if (failed or os.environ.get("VMEM_E2E_KEEP")) and self.hosts:
                keep = next(iter(self.hosts.values())).tmp
                try:
                    shutil.copy(os.path.join(self.pg_dir, "server.log"), os.path.join(keep, "postgres.log"))
                except OSError:
                    pass
            subprocess.run(["bash", os.path.join(SRC, "tools/test-postgres"), "stop", self.pg_dir],
                           capture_output=True)


_cluster = None
_cluster_error = None


def cluster():
    """The one Cluster of this process, started on first use."""
    global _cluster, _cluster_error
    if _cluster_error is not None:
        raise AssertionError(f"the test cluster could not be set up: {_cluster_error}")
    if _cluster is None:
        try:
            _cluster = Cluster()
        except Exception as e:
            _cluster_error = e
            raise
    return _cluster


class E2ETestCase(unittest.TestCase):
    """Base class: self.host is the shared Host.  After each class the guests
    are removed and vmemd stopped; a failing test prints what vmemd logged
    while it ran."""

    host = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.host = host()

    @classmethod
    def tearDownClass(cls):
        if cls.host is not None:
            cls.host.stop_vmemd()
            cls.host.cleanup_domains()

    def run(self, result=None):
        mark = self.host.log_mark() if self.host is not None else 0
        bad_before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > bad_before and self.host:
            lines = self.host.log(mark).splitlines()
            print(f"\n---- vmemd log during {self.id()} ({len(lines)} lines, last 80) ----", file=sys.stderr)
            print("\n".join(lines[-80:]) or "(empty)", file=sys.stderr)
            print("---- end of vmemd log ----", file=sys.stderr)
        return result


class ClusterTestCase(unittest.TestCase):
    """Base class of two-host tests: self.cluster, self.a and self.b.  After
    each class the guests of both are removed and both vmemds stopped; a
    failing test prints what each vmemd logged while it ran."""

    cluster = a = b = None
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.cluster = cluster()
        cls.a, cls.b = cls.cluster.a, cls.cluster.b

    @classmethod
    def tearDownClass(cls):
        if cls.cluster is not None:
            for h in (cls.b, cls.a):
                h.stop_vmemd()
                h.cleanup_domains()

    def run(self, result=None):
        hosts = [h for h in (self.a, self.b) if h is not None]
        marks = [h.log_mark() for h in hosts]
        bad_before = len(result.failures) + len(result.errors) if result is not None else 0
        result = super().run(result)
        if result is not None and len(result.failures) + len(result.errors) > bad_before:
            for h, mark in zip(hosts, marks):
                lines = h.log(mark).splitlines()
                print(f"\n---- vmemd log of host {h.name} during {self.id()} ({len(lines)} lines, last 60) ----",
                      file=sys.stderr)
                print("\n".join(lines[-60:]) or "(empty)", file=sys.stderr)
            print("---- end of vmemd logs ----", file=sys.stderr)
        return result


def _terminate(signum, frame):
    # unittest records SystemExit as a test error and carries on; a
    # KeyboardInterrupt stops the run and reaches main()'s cleanup.
    raise KeyboardInterrupt(f"signal {signum}")


_results = []


class _Result(unittest.TextTestResult):
    """Remembered so that an interrupted run still counts what it did."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _results.append(self)


def main():
    """Runs the calling module's tests (unittest's command line: names, -k,
    -f) in the private namespace, cleans up whatever happens, prints
    `N passed, N failed` and exits non-zero on any failure.  Skips count as
    failures: nothing here is optional."""
    enter_namespace()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    interrupted = False
    try:
        runner = unittest.TextTestRunner(verbosity=2, stream=sys.stdout, resultclass=_Result)
        unittest.main(module="__main__", testRunner=runner, exit=False)
    except KeyboardInterrupt:
        print("\ne2e: interrupted", file=sys.stderr)
        interrupted = True
    finally:
        for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(s, signal.SIG_IGN)
        ok = not interrupted and bool(_results) and all(r.wasSuccessful() and not r.skipped for r in _results)
        reports = ""
        if _host is not None:
            _host.stop_vmemd()
            reports = _host.sanitizer_reports()
            if reports:
                print(f"e2e: sanitizer reports:\n{reports}", file=sys.stderr)
                ok = False
            _host.close(failed=not ok)
        if _cluster is not None:
            for h in _cluster.hosts.values():
                h.stop_vmemd()
                if h.sanitizer_reports():
                    print(f"e2e: sanitizer reports of host {h.name}:\n{h.sanitizer_reports()}", file=sys.stderr)
                    ok = False
            _cluster.close(failed=not ok)
    passed = failed = 0
    for r in _results:
        test_errors = [e for e in r.errors if isinstance(e[0], unittest.TestCase)]
        failed += len(r.failures) + len(r.errors) + len(r.skipped) + len(r.unexpectedSuccesses)
        passed += r.testsRun - len(r.failures) - len(test_errors) - len(r.skipped) - len(r.unexpectedSuccesses)
    if reports:
        failed += 1
    if interrupted or not _results:
        # The test that was running when interrupted counted as run.
        passed -= 1 if interrupted else 0
        failed += 1
    if _host is not None:
        # What the module costs, without the wait for other runs' lock.
        print(f"e2e: {time.monotonic() - _host.locked_at:.0f} s from taking the lock to the end",
              file=sys.stderr)
    print(f"{max(passed, 0)} passed, {failed} failed")
    sys.exit(1 if failed else 0)

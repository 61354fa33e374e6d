#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""The Cockpit page in a real browser: a real cockpit-ws, a password login
through PAM as a member of vmemd's admin group and as a user outside it,
headless Chromium driven over the DevTools protocol, and the page talking
to a real vmemd (through vmemctl, run by the user's cockpit-bridge) about
real guests.  Screenshots of each page go to BUILDDIR/meson-logs/cockpit/
(or VMEM_COCKPIT_SHOTS), and their paths are printed."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import browser  # noqa: E402
import vmemtest  # noqa: E402
from vmemtest import run, wait_for  # noqa: E402

GROUP = "vmemcp-admins"
ADMIN = "vmemcp-admin"
READER = "vmemcp-reader"
PASSWORD = "vmem-Cockpit-7"
PAGE = "/cockpit/@localhost/vmemd/index.html"
FIELDS = ["demand_mib", "target_mib", "current_mib", "used_mib"]


def mib(v):
    return "-" if v is None else f"{v} MiB"


def shots_dir():
    d = os.environ.get("VMEM_COCKPIT_SHOTS") or os.path.join(
        vmemtest.BUILD or vmemtest.SRC, "meson-logs", "cockpit")
    os.makedirs(d, exist_ok=True)
    return d


def kill_user_processes(user):
    """The test users' own processes (their cockpit-bridge), by pid."""
    try:
        uid = pwd.getpwnam(user).pw_uid
    except KeyError:
        return
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid == uid:
                vmemtest.kill_pid(int(pid))
        except OSError:
            pass


def remove_users():
    for user in (ADMIN, READER):
        kill_user_processes(user)
        subprocess.run(["userdel", "-r", user], capture_output=True)
    subprocess.run(["groupdel", GROUP], capture_output=True)


class CockpitPage(vmemtest.E2ETestCase):
    browser = None
    cockpit = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        problems = browser.missing()
        if problems:
            raise AssertionError("missing prerequisites:\n  " + "\n  ".join(problems))
        h = cls.host
        cls.shots = shots_dir()
        remove_users()
        # Class cleanups run also when setUpClass fails half-way.
        cls.addClassCleanup(remove_users)
        run("groupadd", GROUP)
        run("useradd", "-m", "-G", GROUP, ADMIN)
        run("useradd", "-m", READER)
        run("chpasswd", input=f"{ADMIN}:{PASSWORD}\n{READER}:{PASSWORD}\n")
        # The page as a user's own Cockpit package, as `meson install`
        # lays it out under /usr/share/cockpit/vmemd.
        for user in (ADMIN, READER):
            pw = pwd.getpwnam(user)
            dest = os.path.join(pw.pw_dir, ".local", "share", "cockpit", "vmemd")
            os.makedirs(dest)
            for f in ("manifest.json", "index.html", "vmemd.js", "vmemd.css"):
                shutil.copy(os.path.join(vmemtest.SRC, "cockpit", f), dest)
            run("chown", "-R", f"{user}:", os.path.join(pw.pw_dir, ".local"))
        # vmemctl where a package puts it on the bridge's PATH; in this
        # mount namespace only.
        bindir = os.path.join(h.tmp, "cockpit-bin")
        os.makedirs(bindir, exist_ok=True)
        os.chmod(bindir, 0o755)
        os.symlink(os.path.abspath(vmemtest.VMEMCTL), os.path.join(bindir, "vmemctl"))
        run("mount", "--bind", bindir, "/usr/local/bin")
        h._mounted.append("/usr/local/bin")

        h.cleanup_domains()
        h.start_vmemd(daemon__admin_group=GROUP, admission__mode="warn")
        # The harness keeps the socket beside the store, whose directory
        # vmemd makes 0750; open it as systemd's RuntimeDirectory is.
        os.chmod(os.path.dirname(h.socket), 0o755)
        h.vmemctl("profile", "add", "web", "--demand", "160M", "--prealloc", "off")
        h.vmemctl("profile", "add", "db", "--demand", "192M", "--prealloc", "off")
        for name, wl in (("cp-web", "web"), ("cp-db", "db")):
            h.define_guest(name, memory_mib=288, workload_mib=48, stats_period=2)
            h.vmemctl("assign", name, wl)
        h.define_guest("cp-other", memory_mib=128)
        for name, demand in (("cp-web", 160), ("cp-db", 192)):
            wait_for(lambda n=name, d=demand: f"<currentMemory unit='KiB'>{d * 1024}</currentMemory>" in h.domain_xml(n),
                     timeout=30, what=f"{name} staged at {demand}M")
            h.start_guest(name)
        for name in ("cp-web", "cp-db"):
            h.wait_booted(name, timeout=120)

        def reported():
            doms = {d["name"]: d for d in h.status()["domains"]}
            return all("used_mib" in doms[n] and "target_mib" in doms[n] for n in ("cp-web", "cp-db"))
        wait_for(reported, timeout=120, interval=1, what="both guests' used memory and a controller action")

        cls.cockpit = browser.Cockpit(os.path.join(h.tmp, "cockpit-ws.log"))
        cls.addClassCleanup(cls.cockpit.close)
        cls.browser = browser.Browser(os.path.join(h.tmp, "chromium.log"))
        cls.addClassCleanup(cls.browser.close)

    # -- helpers ----------------------------------------------------------
    def login(self, user):
        self.browser.login(self.cockpit.url, user, PASSWORD)
        # The shell knows the page: it is in the user's packages.
        self.open("host")

    def open(self, path):
        b = self.browser
        b.goto(f"{self.cockpit.url}{PAGE}#/{path}")
        # A new hash on the same page is no new document: wait for its section.
        section = "page-" + path.split("/")[0]
        try:
            b.wait_js(f"+document.body.dataset.loaded > 0 && !document.getElementById('{section}').hidden",
                      timeout=90, what=f"the page #/{path} to render")
        except AssertionError as e:
            raise AssertionError(f"{e}; the page says: {self.error_text()!r}") from None

    def shot(self, name):
        path = self.browser.screenshot(os.path.join(self.shots, f"{name}.png"))
        print(f"cockpit: screenshot {name}: {path}", file=sys.stderr)
        return path

    def refresh(self):
        """Has the page reload everything now."""
        self.browser.js("refresh().then(() => true)")

    def error_text(self):
        return self.browser.js("document.getElementById('error').hidden ? null : document.getElementById('error').textContent")

    def domain_rows(self):
        return self.browser.js("""Array.from(document.querySelectorAll('#domains tbody tr[data-name]')).map(tr => {
            const r = { name: tr.dataset.name };
            for (const td of tr.querySelectorAll('td[data-key]')) r[td.dataset.key] = td.textContent;
            return r; })""")

    def profile_rows(self):
        return self.browser.js("""Object.fromEntries(Array.from(document.querySelectorAll('#profiles tbody tr[data-name]')).map(tr => {
            const r = {};
            for (const td of tr.querySelectorAll('td[data-key]')) r[td.dataset.key] = td.textContent;
            return [tr.dataset.name, r]; }))""")

    def submit_profile(self, name, values, new=False):
        b = self.browser
        if new:
            b.js("document.getElementById('profile-new').click(), true")
            b.js(f"document.querySelector('#profile-form [name=name]').value = {json.dumps(name)}, true")
        else:
            b.js(f"document.querySelector('#profiles tr[data-name={json.dumps(name)}] button[data-action=edit]').click(), true")
        for k, v in values.items():
            b.js(f"document.querySelector('#profile-form [name={k}]').value = {json.dumps(v)}, true")
        b.js("document.getElementById('error').hidden = true, true")
        mark = b.js("+document.body.dataset.loaded")
        b.js("document.getElementById('profile-save').click(), true")
        b.wait_js(f"+document.body.dataset.loaded > {mark}", what="the page to reload after the change")

    def vmemctl_as(self, user, *args):
        return run("runuser", "-u", user, "--", vmemtest.VMEMCTL, *args, check=False)

    def assert_domains_match(self):
        """The table against `vmemctl status --json` taken just before and
        just after the page's own reload (values move between samples)."""
        h = self.host
        last = None
        for _ in range(5):
            before = {d["name"]: d for d in h.status()["domains"]}
            self.refresh()
            after = {d["name"]: d for d in h.status()["domains"]}
            rows = {r["name"]: r for r in self.domain_rows()}
            managed = sorted(n for n, d in after.items() if d["managed"])
            problems = []
            if sorted(rows) != managed:
                problems.append(f"rows {sorted(rows)}, managed {managed}")
            for n in managed:
                r = rows.get(n, {})
                for k in FIELDS:
                    want = {mib(before[n].get(k)), mib(after[n].get(k))}
                    if r.get(k) not in want:
                        problems.append(f"{n} {k}: page {r.get(k)!r}, vmemctl {sorted(want)}")
                if r.get("workload") != after[n]["workload"]:
                    problems.append(f"{n} workload: page {r.get('workload')!r}, vmemctl {after[n]['workload']!r}")
                if (r.get("reason") or "") not in (before[n].get("reason", ""), after[n].get("reason", "")):
                    problems.append(f"{n} reason: page {r.get('reason')!r}")
            if not problems:
                return rows
            last = problems
        self.fail("the domain list does not show what vmemctl status says: " + "; ".join(last))

    # -- tests -------------------------------------------------------------
    def test_1_admin_pages(self):
        h = self.host
        b = self.browser
        self.login(ADMIN)

        # Host: the daemon's figures, one stacked area per managed domain.
        s = h.status()
        self.refresh()
        s2 = h.status()
        figures = b.js("""Object.fromEntries(Array.from(document.querySelectorAll('#host-figures [data-key]'))
                          .map(d => [d.dataset.key, d.querySelector('dd').textContent]))""")
        self.assertEqual(figures["capacity_mib"], mib(s["capacity_mib"]))
        self.assertEqual(figures["admission"], s["admission"])
        self.assertIn(figures["committed_mib"], (mib(s["committed_mib"]), mib(s2["committed_mib"])))
        b.wait_js("document.querySelectorAll('#host-chart path[data-series]').length === 2",
                  what="the host chart's two areas")
        series = b.js("Array.from(document.querySelectorAll('#host-chart path[data-series]')).map(p => p.dataset.series).sort()")
        self.assertEqual(series, ["cp-db", "cp-web"])
        self.shot("host")

        # Domains: one row per managed domain, the numbers vmemctl prints.
        self.open("domains")
        rows = self.assert_domains_match()
        self.assertNotIn("cp-other", rows)
        self.assertIn(rows["cp-web"]["status"], ("ok", "pressure", "starved", "no driver"))
        # Sortable: by demand, both ways.
        b.js("document.querySelector('#domains th[data-key=demand_mib]').click(), true")
        self.assertEqual([r["name"] for r in self.domain_rows()], ["cp-web", "cp-db"])
        b.js("document.querySelector('#domains th[data-key=demand_mib]').click(), true")
        self.assertEqual([r["name"] for r in self.domain_rows()], ["cp-db", "cp-web"])
        self.shot("domains")

        # A domain's page: its chart from history, and explain's text.
        self.open("domain/cp-web")
        b.wait_js("document.querySelectorAll('#domain-chart path[data-series]').length === 3",
                  what="the domain chart's used, target and demand")
        used_points = b.js("document.querySelector('#domain-chart path[data-series=used]').getAttribute('d').split('L').length")
        samples = len(h.vmemctl_json("history", "cp-web")["samples"])
        self.assertGreater(samples, 1)
        self.assertGreaterEqual(used_points, min(samples, 2))
        explain = b.wait_js("document.getElementById('domain-explain').textContent || null", what="the explain text")
        self.assertEqual(explain.splitlines()[:3], h.vmemctl("explain", "cp-web").stdout.splitlines()[:3])
        self.shot("domain")

        # Hosts: the store is not shared, so there is no Hosts tab.
        self.assertTrue(b.js("document.getElementById('tab-hosts').hidden"))

    def test_2_admin_edits(self):
        h = self.host
        b = self.browser
        self.login(ADMIN)
        self.open("workloads")
        b.wait_js("document.querySelectorAll('#profiles tbody tr[data-name]').length === 2", what="two profiles")
        rows = self.profile_rows()
        x = h.vmemctl_json("explain", "--workload", "web")
        self.assertEqual(rows["web"]["estimate"], mib(x["plan"]["demand_mib"]))
        self.assertEqual(rows["web"]["domains"], "cp-web")

        # Edit: what the page saved is what vmemctl profile show prints.
        self.submit_profile("web", {"demand": "200M", "margin": "25", "priority": "70"})
        self.assertIsNone(self.error_text())
        p = h.vmemctl_json("profile", "show", "web")
        p = p.get("profile", p)
        self.assertEqual((p["demand_mib"], p["margin_pct"], p["priority"]), (200, 25, 70))
        text = h.vmemctl("profile", "show", "web").stdout
        self.assertRegex(text, r"Demand:\s+200M")
        self.assertRegex(text, r"Priority:\s+70")
        self.assertEqual(self.profile_rows()["web"]["demand_mib"], "200 MiB")

        # A bad value: the daemon's (here vmemctl's) error, as it is, and
        # nothing changed.
        self.submit_profile("web", {"quantile": "2"})
        want = self.vmemctl_as("root", "profile", "set", "web", "--quantile", "2").stderr.strip()
        self.assertTrue(want)
        self.assertEqual(self.error_text(), want)
        self.shot("workloads-error")
        b.js("document.getElementById('profile-cancel').click(), true")
        p2 = h.vmemctl_json("profile", "show", "web")
        self.assertEqual(p2.get("profile", p2), p)

        # Add, assign, unassign, delete.
        self.submit_profile("batch", {"demand": "96M", "prealloc": "off"}, new=True)
        self.assertIsNone(self.error_text())
        p = h.vmemctl_json("profile", "show", "batch")
        self.assertEqual(p.get("profile", p)["demand_mib"], 96)
        b.js("document.querySelector('#assign-form [name=domain]').value = 'cp-other', true")
        b.js("document.querySelector('#assign-form [name=workload]').value = 'batch', true")
        mark = b.js("+document.body.dataset.loaded")
        b.js("document.getElementById('assign').click(), true")
        b.wait_js(f"+document.body.dataset.loaded > {mark}")
        self.assertIsNone(self.error_text())
        other = next(d for d in h.status()["domains"] if d["name"] == "cp-other")
        self.assertEqual((other["managed"], other["workload"]), (True, "batch"))
        self.assertEqual(self.profile_rows()["batch"]["domains"], "cp-other")
        self.shot("workloads")
        mark = b.js("+document.body.dataset.loaded")
        b.js("document.getElementById('unassign').click(), true")
        b.wait_js(f"+document.body.dataset.loaded > {mark}")
        self.assertIsNone(self.error_text())
        other = next(d for d in h.status()["domains"] if d["name"] == "cp-other")
        self.assertFalse(other["managed"])
        sel = "#profiles tr[data-name=batch] button[data-action=delete]"
        b.js(f"document.querySelector('{sel}').click(), true")
        self.assertIn("batch", h.vmemctl("profile", "list").stdout)   # asks first
        mark = b.js("+document.body.dataset.loaded")
        b.js(f"document.querySelector('{sel}').click(), true")
        b.wait_js(f"+document.body.dataset.loaded > {mark}")
        self.assertIsNone(self.error_text())
        names = [p["name"] for p in h.vmemctl_json("profile", "list")]
        self.assertEqual(sorted(names), ["db", "web"])

    def test_3_reader(self):
        h = self.host
        b = self.browser
        self.login(READER)
        # Sees the data.
        self.open("domains")
        rows = self.assert_domains_match()
        self.assertEqual(sorted(rows), ["cp-db", "cp-web"])
        self.shot("reader-domains")
        # Is refused an edit with the daemon's own message; nothing changes.
        self.open("workloads")
        b.wait_js("document.querySelectorAll('#profiles tbody tr[data-name]').length === 2", what="two profiles")
        before = h.vmemctl_json("profile", "show", "db")
        self.submit_profile("db", {"demand": "256M"})
        uid = pwd.getpwnam(READER).pw_uid
        want = (f"vmemctl: io.vmemd.ProfileSet is for root and members of group {GROUP} "
                f"(caller uid {uid} is neither)")
        self.assertEqual(self.vmemctl_as(READER, "profile", "set", "db", "--demand", "256M").stderr.strip(), want)
        self.assertEqual(self.error_text(), want)
        self.shot("reader-refused")
        self.assertEqual(h.vmemctl_json("profile", "show", "db"), before)
        self.assertEqual(self.profile_rows()["db"]["demand_mib"], "192 MiB")

    def test_3a_hosts_of_a_shared_store(self):
        """Another host's heartbeat in the store, as a host sharing it
        writes one, brings the Hosts tab with what `vmemctl hosts` says."""
        h = self.host
        b = self.browser
        self.login(ADMIN)
        now = int(time.time())
        run("sqlite3", h.database,
            "INSERT INTO hosts (id, name, capacity_mib, reserved_mib, overcommit, committed_mib,"
            " reservations_mib, reservations, domains, interval_s, heartbeat)"
            f" VALUES ('cp-peer-host', 'peer', 8192, 512, 1.0, 3072, 0, 0, 2, 3600, {now})")
        try:
            listed = h.vmemctl_json("hosts")["hosts"]
            self.assertIn("cp-peer-host", [x["id"] for x in listed])
            b.js("probeHosts().then(() => { render(); return true; })")
            self.assertFalse(b.js("document.getElementById('tab-hosts').hidden"))
            self.open("hosts")
            rows = b.js("""Object.fromEntries(Array.from(document.querySelectorAll('#hosts tbody tr[data-name]'))
                          .map(tr => [tr.dataset.name, Array.from(tr.querySelectorAll('td')).map(td => td.textContent)]))""")
            self.assertEqual(sorted(rows), sorted(x["id"] for x in listed))
            for x in listed:
                self.assertEqual(rows[x["id"]][1:4], [mib(x["capacity_mib"]), mib(x["committed_mib"]), mib(x["free_mib"])],
                                 f"host {x['id']}")
            self.assertEqual(rows["cp-peer-host"][0], "peer (cp-peer-host)")
            self.shot("hosts")
        finally:
            run("sqlite3", h.database, "DELETE FROM hosts WHERE id = 'cp-peer-host'")

    def test_4_no_script_errors(self):
        errors = self.browser.console_errors()
        self.assertEqual(errors, [])


if __name__ == "__main__":
    vmemtest.main()

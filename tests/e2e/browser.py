# SPDX-License-Identifier: LGPL-2.1-or-later
"""A real Cockpit and a real headless Chromium for the page's tests.

Cockpit: cockpit-ws on 127.0.0.1 without TLS, run as root, so that a
password login goes through cockpit-session and PAM as on a host, and the
bridge runs as the user who logged in.  Chromium: `chromium --headless`,
driven through the Chrome DevTools Protocol over python3-websocket."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

try:
    import websocket
except ImportError:
    websocket = None

COCKPIT_WS = "/usr/lib/cockpit/cockpit-ws"
CHROMIUM = "/usr/bin/chromium"

# path -> Debian package, for the prerequisites' failure message.
REQUIRED = {
    COCKPIT_WS: "cockpit-ws",
    "/usr/lib/cockpit/cockpit-session": "cockpit-ws",
    "/usr/bin/cockpit-bridge": "cockpit-bridge",
    "/usr/share/cockpit/base1/cockpit.js.gz": "cockpit-bridge",
    CHROMIUM: "chromium",
    "/usr/sbin/useradd": "passwd",
    "/usr/sbin/chpasswd": "passwd",
}


def missing():
    """What is not installed, as 'PATH (Debian package P)' lines."""
    out = [f"{p} (install the Debian package {pkg})" for p, pkg in REQUIRED.items() if not os.path.exists(p)]
    if websocket is None:
        out.append("python3's websocket module (install the Debian package python3-websocket)")
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(cond, timeout, what, interval=0.2):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class Cockpit:
    """cockpit-ws on 127.0.0.1:port, its output in log."""

    def __init__(self, log):
        self.port = free_port()
        self.log = log
        with open(log, "a") as f:
            self.proc = subprocess.Popen([COCKPIT_WS, "--no-tls", "--address", "127.0.0.1",
                                          "--port", str(self.port)],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.url = f"http://127.0.0.1:{self.port}"
        try:
            self._wait_up(log)
        except BaseException:
            self.close()
            raise

    def _wait_up(self, log):
        def up():
            if self.proc.poll() is not None:
                raise AssertionError(f"cockpit-ws exited with status {self.proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=2):
                    return True
            except OSError:
                return False
        wait(up, 30, "cockpit-ws to answer")

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Browser:
    """One headless Chromium with one page, driven over CDP."""

    def __init__(self, log):
        self.profile = tempfile.mkdtemp(prefix="vmem-chromium-")
        self.log = log
        with open(log, "a") as f:
            # --no-sandbox: the tests run as root, where Chromium's sandbox
            # refuses to start.
            self.proc = subprocess.Popen([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                          "--no-first-run", "--disable-dev-shm-usage",
                                          "--remote-debugging-port=0", "--remote-allow-origins=*",
                                          f"--user-data-dir={self.profile}", "--window-size=1280,900",
                                          "about:blank"],
                                         stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.ws = None
        try:
            self._connect(log)
        except BaseException:
            self.close()
            raise

    def _connect(self, log):
        port_file = os.path.join(self.profile, "DevToolsActivePort")

        def port():
            if self.proc.poll() is not None:
                raise AssertionError(f"chromium exited with status {self.proc.returncode}; see {log}")
            try:
                with open(port_file) as f:
                    return int(f.readline())
            except (OSError, ValueError):
                return None
        self.port = wait(port, 60, "chromium's DevTools port")
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/list", timeout=10) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self.next_id = 0
        self.events = []
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900,
                  deviceScaleFactor=1, mobile=False)

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def goto(self, url):
        self.call("Page.navigate", url=url)
        self.wait_js("document.readyState === 'complete'", what=f"{url} to load")

    def js(self, expr):
        """The value of a JavaScript expression (awaited when a promise)."""
        r = self.call("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails'].get('exception', {}).get('description', r['exceptionDetails'])}")
        return r.get("result", {}).get("value")

    def wait_js(self, expr, timeout=60, what=None):
        def ok():
            try:
                return self.js(expr)
            except AssertionError:
                return None
        return wait(ok, timeout, what or expr, interval=0.3)

    def console_errors(self):
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.exceptionThrown":
                out.append(json.dumps(e["params"]["exceptionDetails"])[:400])
            elif e.get("method") == "Runtime.consoleAPICalled" and e["params"].get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
        return out

    def login(self, url, user, password):
        """Logs in through Cockpit's login page, as a person would: once its
        script shows the form, fills it in and waits for the shell."""
        self.call("Network.clearBrowserCookies")
        self.goto(url + "/")
        self.wait_js("(() => { const u = document.getElementById('login-user-input');"
                     " return !!u && u.offsetParent !== null })()", what="the login form")
        self.js(f"""(() => {{
            document.getElementById('login-user-input').value = {json.dumps(user)};
            document.getElementById('login-password-input').value = {json.dumps(password)};
            document.getElementById('login-button').click();
            return true }})()""")

        def done():
            state = self.js("""(() => {
                if (!document.getElementById('login-button')) return 'in';
                const e = document.getElementById('login-error-message');
                return e && e.offsetParent !== null && e.textContent ? 'error: ' + e.textContent : null })()""")
            if state and state.startswith("error"):
                raise AssertionError(f"login as {user} refused: {state}")
            return state
        wait(done, 60, f"{user} to be logged in", interval=0.3)

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def close(self):
        if self.ws is not None:
            self.ws.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

#!/usr/bin/python3
"""browser.py: a user in a real browser, for the enrolment tests: headless Chromium driven over the
DevTools protocol on a pipe (--remote-debugging-pipe; nothing listens on a port, no extra package).

  browser.py --out DIR [--spki HASH] URL [--type-code-from CMD]

Opens URL, saves DIR/page.png (a screenshot of the whole page), DIR/page.html, DIR/page.txt and
DIR/headers.json (the main document's response headers and status), and DIR/style.txt (the computed
background colour of the body: the page's own style block applies only when the Content-Security-
Policy lets it). With --type-code-from, runs CMD with the screenshot's path as its argument, types
what it prints into the page's code field, presses the button, waits for the next page and saves it
as DIR/after.{png,html,txt} and DIR/after-headers.json.

--spki HASH: trust exactly the server key with this base64 SHA-256 SPKI hash (the test CA's leaf),
the way Chromium pins a certificate; any other certificate error still fails the load.
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

CHROMIUM = os.environ.get("FTM_CHROMIUM", "/usr/bin/chromium")


class Browser:
    def __init__(self, spki, timeout):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="ftm-chromium-")
        to_child_r, self.to_child_w = os.pipe()
        self.from_child_r, from_child_w = os.pipe()
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "--window-size=800,1200",
                "--hide-scrollbars", "about:blank"]
        if spki:
            args.insert(1, "--ignore-certificate-errors-spki-list=" + spki)

        def fds():
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        self.proc = subprocess.Popen(args, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.profile, "chromium.log"), "w"))
        os.close(to_child_r)
        os.close(from_child_w)
        self.buf = b""
        self.next_id = 0
        self.events = []
        self.session = None
        self.last_document = None

    def close(self):
        try:
            self.call("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline):
        while b"\0" not in self.buf:
            if time.time() > deadline:
                raise TimeoutError("chromium did not answer")
            import select
            r, _, _ = select.select([self.from_child_r], [], [], 0.2)
            if r:
                chunk = os.read(self.from_child_r, 65536)
                if not chunk:
                    raise RuntimeError("chromium exited")
                self.buf += chunk
        msg, self.buf = self.buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=True):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.to_child_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == self.next_id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self._note(m)

    def _note(self, m):
        self.events.append(m)
        if m.get("method") == "Network.responseReceived" and m["params"].get("type") == "Document":
            self.last_document = m["params"]["response"]

    def wait_event(self, method, pred=lambda p: True):
        deadline = time.time() + self.timeout
        while True:
            for i, e in enumerate(self.events):
                if e["method"] == method and pred(e.get("params", {})):
                    del self.events[: i + 1]
                    return e["params"]
            self._note(self._read_message(deadline))

    def attach(self):
        targets = self.call("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Network.enable")
        self.call("Runtime.enable")

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"page script failed: {r['exceptionDetails']}")
        return r["result"].get("value")

    def document_headers(self):
        """The status and headers of the last main-document response."""
        doc = self.last_document
        if doc is None:
            return {}
        return {"status": doc.get("status"), "url": doc.get("url"),
                "headers": {k.lower(): v for k, v in doc.get("headers", {}).items()}}

    def save(self, out, name):
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(os.path.join(out, name + ".png"), "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        with open(os.path.join(out, name + ".html"), "w", encoding="utf-8") as f:
            f.write(self.eval("document.documentElement.outerHTML"))
        with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
            f.write(self.eval("document.body ? document.body.innerText : ''"))
        with open(os.path.join(out, name + "-headers.json"), "w", encoding="utf-8") as f:
            json.dump(self.document_headers(), f, indent=1)
        return os.path.join(out, name + ".png")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--out", required=True)
    ap.add_argument("--spki")
    ap.add_argument("--type-code-from")
    ap.add_argument("--timeout", type=float, default=20)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)

    b = Browser(a.spki, a.timeout)
    try:
        b.attach()
        nav = b.call("Page.navigate", {"url": a.url})
        if nav.get("errorText"):
            print(f"browser: cannot open the page: {nav['errorText']}", file=sys.stderr)
            return 1
        b.wait_event("Page.loadEventFired")
        # the full page height, so the screenshot holds every QR code
        height = b.eval("Math.ceil(document.documentElement.scrollHeight)") or 1200
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 800, "height": int(height), "deviceScaleFactor": 1, "mobile": False})
        shot = b.save(a.out, "page")
        with open(os.path.join(a.out, "style.txt"), "w") as f:
            f.write(b.eval("getComputedStyle(document.body).backgroundColor") + "\n")
        if a.type_code_from:
            code = subprocess.run([a.type_code_from, shot], capture_output=True, text=True, check=True,
                                  timeout=a.timeout).stdout.strip()
            b.events.clear()
            if not b.eval("!!document.querySelector('form input[name=code]')"):
                print("browser: the page has no code field", file=sys.stderr)
                return 1
            b.eval("document.querySelector('form input[name=code]').focus()")
            b.call("Input.insertText", {"text": code})
            b.eval("document.querySelector('form button').click()")
            b.wait_event("Page.loadEventFired")
            b.save(a.out, "after")
        print("browser: ok")
        return 0
    finally:
        b.close()


if __name__ == "__main__":
    sys.exit(main())

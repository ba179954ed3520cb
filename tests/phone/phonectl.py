#!/usr/bin/env python3
"""phonectl.py: drive the simulated phone (tests/phone/phone.py) from shell tests.

  phonectl.py [--port P | --state-dir DIR] COMMAND ...

Commands (exit 0 on success, 1 on a failed wait or error):
  wait-ready [--timeout S]            wait until the simulator answers (needs --state-dir or --port)
  behave KEY BEHAVIOUR                KEY = topic, user, registration id, serial, or '*' (default)
                                      BEHAVIOUR = approve | deny | ignore | hold | number:N |
                                      right-number | wrong-number | replay[:ACTION] |
                                      forge[:ACTION] | delay:S[:BEHAVIOUR] (S may be A-B, random);
                                      a comma list is used one per push, the last one sticks;
                                      '-' clears KEY
  pushes KEY [--json]                 count of pushes received for KEY ('*' = all), or the JSON list
  last-push KEY [--field F]           the latest push as JSON, or one field of it (message, number...)
  number KEY                          the number shown by the latest push for KEY
  wait-push KEY [--count N] [--timeout S]
                                      wait until KEY has at least N pushes (default 1); prints the
                                      latest one as JSON
  callbacks KEY [--json]              HTTP status of each callback sent for KEY, one per line
                                      ('ERR reason' when no HTTP status came back)
  wait-callback KEY [--count N] [--timeout S]
                                      wait for at least N callbacks for KEY; prints their statuses
  act KEY ACTION [--push SEQ]         answer a held push now (ACTION as in behave)
  rejected [--service ntfy|gateway] [--json]
                                      count (or JSON) of refused publishes / envelopes
  wait-rejected [--service S] [--count N] [--timeout S]
  seed SERIAL HEXSEED                 tell the gateway a token's seed
  fail ntfy|gateway MODE              MODE = STATUS (e.g. 503) | hang | close | off
  ntfy-token TOKEN|-                  require (or stop requiring) this Bearer token
  reset [--all]                       forget pushes, callbacks, behaviours (--all: seeds too)
  shutdown                            stop the simulator
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def die(msg, rc=1):
    sys.stderr.write("phonectl: %s\n" % msg)
    sys.exit(rc)


class Ctl:
    def __init__(self, port, state_dir):
        self.port = port
        self.state_dir = state_dir

    def base(self):
        if not self.port and self.state_dir:
            try:
                with open(os.path.join(self.state_dir, "ready.json")) as f:
                    self.port = json.load(f)["ports"]["control"]
            except (OSError, ValueError, KeyError):
                return None
        if not self.port:
            return None
        return "http://127.0.0.1:%d" % int(self.port)

    def call(self, method, path, body=None, timeout=30):
        base = self.base()
        if base is None:
            die("no control port (use --port or --state-dir of a running phone.py)")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as r:
                return r.status, json.loads(r.read().decode() or "{}")
        except urllib.error.HTTPError as e:
            try:
                return e.code, json.loads(e.read().decode() or "{}")
            except ValueError:
                return e.code, {}


def q(**kw):
    from urllib.parse import urlencode
    kw = {k: v for k, v in kw.items() if v is not None}
    return "?" + urlencode(kw) if kw else ""


def fmt_cb(c):
    if c.get("status") is not None:
        return str(c["status"])
    return "ERR %s" % (c.get("error") or "no answer")


def main():
    ap = argparse.ArgumentParser(prog="phonectl.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=int(os.environ.get("PHONE_CONTROL_PORT") or 0))
    ap.add_argument("--state-dir", default=os.environ.get("PHONE_STATE_DIR"))
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("wait-ready"); p.add_argument("--timeout", type=float, default=15)
    p = sub.add_parser("behave"); p.add_argument("key"); p.add_argument("behaviour")
    p = sub.add_parser("pushes"); p.add_argument("key", nargs="?", default="*")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("last-push"); p.add_argument("key", nargs="?", default="*")
    p.add_argument("--field")
    p = sub.add_parser("number"); p.add_argument("key", nargs="?", default="*")
    p = sub.add_parser("wait-push"); p.add_argument("key", nargs="?", default="*")
    p.add_argument("--count", type=int, default=1); p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("callbacks"); p.add_argument("key", nargs="?", default="*")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("wait-callback"); p.add_argument("key", nargs="?", default="*")
    p.add_argument("--count", type=int, default=1); p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("act"); p.add_argument("key"); p.add_argument("action")
    p.add_argument("--push", type=int)
    p = sub.add_parser("rejected"); p.add_argument("--service"); p.add_argument("--json", action="store_true")
    p = sub.add_parser("wait-rejected"); p.add_argument("--service")
    p.add_argument("--count", type=int, default=1); p.add_argument("--timeout", type=float, default=10)
    p = sub.add_parser("seed"); p.add_argument("serial"); p.add_argument("hexseed")
    p = sub.add_parser("fail"); p.add_argument("service"); p.add_argument("mode")
    p = sub.add_parser("ntfy-token"); p.add_argument("token")
    p = sub.add_parser("route"); p.add_argument("src"); p.add_argument("dst")
    p = sub.add_parser("reset"); p.add_argument("--all", action="store_true")
    sub.add_parser("shutdown")
    a = ap.parse_args()
    c = Ctl(a.port, a.state_dir)

    if a.cmd == "wait-ready":
        end = time.time() + a.timeout
        while time.time() < end:
            if a.state_dir and not a.port:
                c.port = 0          # re-read ready.json: a previous run may have left one
            if c.base() is not None:
                try:
                    st, r = c.call("GET", "/health", timeout=2)
                    if st == 200:
                        print(json.dumps(r))
                        return 0
                except (OSError, urllib.error.URLError):
                    pass
            time.sleep(0.1)
        die("phone not ready after %gs" % a.timeout)
    if a.cmd == "behave":
        st, r = c.call("POST", "/behave", {"key": a.key,
                                           "behaviour": None if a.behaviour == "-" else a.behaviour})
    elif a.cmd in ("pushes", "last-push", "number"):
        st, r = c.call("GET", "/pushes" + q(key=a.key))
        if st != 200:
            die(r.get("error", st))
        ps = r["pushes"]
        if a.cmd == "pushes":
            print(json.dumps(ps, indent=1) if a.json else len(ps))
            return 0
        if not ps:
            die("no push for %s" % a.key)
        last = ps[-1]
        if a.cmd == "number":
            if last.get("number") is None:
                die("the latest push for %s shows no number" % a.key)
            print(last["number"])
        elif a.field:
            v = last.get(a.field)
            print(v if isinstance(v, str) else json.dumps(v))
        else:
            print(json.dumps(last, indent=1))
        return 0
    elif a.cmd in ("wait-push", "wait-callback", "wait-rejected"):
        path = "/" + a.cmd + q(key=getattr(a, "key", None), count=a.count, timeout=a.timeout,
                               service=getattr(a, "service", None))
        st, r = c.call("GET", path, timeout=a.timeout + 10)
        items = r.get("items", [])
        if a.cmd == "wait-push":
            if items:
                print(json.dumps(items[-1], indent=1))
        elif a.cmd == "wait-callback":
            for it in items:
                print(fmt_cb(it))
        else:
            print(len(items))
        if st != 200:
            die("%s %s: %d of %d after %gs" % (a.cmd, getattr(a, "key", ""), r.get("count", 0),
                                               a.count, a.timeout))
        return 0
    elif a.cmd == "callbacks":
        st, r = c.call("GET", "/callbacks" + q(key=a.key))
        if st == 200:
            if a.json:
                print(json.dumps(r["callbacks"], indent=1))
            else:
                for cb in r["callbacks"]:
                    print(fmt_cb(cb))
            return 0
    elif a.cmd == "act":
        st, r = c.call("POST", "/act", {"key": a.key, "action": a.action, "push": a.push},
                       timeout=120)
        if st == 200:
            for cb in r.get("callbacks", []):
                print(fmt_cb(cb))
            return 0
    elif a.cmd == "rejected":
        st, r = c.call("GET", "/rejected" + q(service=a.service))
        if st == 200:
            print(json.dumps(r["rejected"], indent=1) if a.json else r["count"])
            return 0
    elif a.cmd == "seed":
        st, r = c.call("POST", "/seeds", {a.serial: a.hexseed})
    elif a.cmd == "fail":
        st, r = c.call("POST", "/fail", {"service": a.service, "mode": a.mode})
    elif a.cmd == "ntfy-token":
        st, r = c.call("POST", "/ntfy-token", {"token": None if a.token == "-" else a.token})
    elif a.cmd == "route":
        st, r = c.call("POST", "/route", {"from": a.src, "to": None if a.dst == "-" else a.dst})
    elif a.cmd == "reset":
        st, r = c.call("POST", "/reset", {"all": a.all})
    elif a.cmd == "shutdown":
        try:
            st, r = c.call("POST", "/shutdown", {})
        except (OSError, urllib.error.URLError):
            return 0
    if st != 200:
        die(r.get("error", "HTTP %d" % st))
    return 0


if __name__ == "__main__":
    sys.exit(main() or 0)

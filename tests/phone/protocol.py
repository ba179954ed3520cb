"""docs/protocol.md as seen by a phone and a push gateway (the simulator's side of the wire).

Written from the text of docs/protocol.md, never from ftmpush's C code.
"""

import re

GATEWAY_PATHS = ["/"]
GATEWAY_BODY_LIMIT = 64 * 1024
GATEWAY_OK_STATUS = 200


class GatewayError(Exception):
    def __init__(self, status, msg):
        super().__init__(msg)
        self.status = status


def seed_bytes(s):
    s = str(s).strip()
    if s.lower().startswith("0x"):
        s = s[2:]
    return bytes.fromhex(s)


# ---------------------------------------------------------------------------------------------
# ntfy channel
# ---------------------------------------------------------------------------------------------
NUMBER_RE = re.compile(r"(?i)\bnumber\b[^0-9]{0,20}(\d{2})\b")
USER_RE = re.compile(r"(?i)\buser\b[\s:=]+['\"]?([A-Za-z0-9_.@+-]+)")


def parse_ntfy_message(title, message, actions):
    """What the phone's screen shows: the user logging in, the number to match, number buttons."""
    text = "%s\n%s" % (title or "", message or "")
    info = {}
    m = NUMBER_RE.search(text)
    if m:
        info["number"] = m.group(1)
    m = USER_RE.search(text)
    if m:
        info["user"] = m.group(1)
    nums = [a.get("label") for a in actions if re.fullmatch(r"\d{1,3}", a.get("label") or "")]
    info["numbers"] = nums
    return info


def _find_action(push, verdict, number):
    acts = [a for a in push.get("actions") or [] if (a.get("action") or "http") == "http"]
    if verdict == "number":
        for a in acts:
            if (a.get("label") or "").strip() == str(number):
                return a
        return None
    for a in acts:
        if (a.get("label") or "").strip().lower().startswith(verdict):
            return a
    for a in acts:
        if re.search(r"(?i)\b%s\b" % verdict, (a.get("url") or "") + " " + (a.get("body") or "")):
            return a
    return None


def _forge_text(s):
    """Corrupt the longest capability-looking run (>= 16 url-safe chars) in s."""
    runs = list(re.finditer(r"[A-Za-z0-9_-]{16,}", s or ""))
    if not runs:
        return None
    r = max(runs, key=lambda m: len(m.group(0)))
    tok = r.group(0)
    last = tok[-1]
    repl = "A" if last != "A" else "B"
    return s[:r.start()] + tok[:-1] + repl + s[r.end():]


def ntfy_callback(push, verdict, number, forge):
    """The HTTP request the phone sends when the user taps a button."""
    a = _find_action(push, verdict, number)
    if a is None:
        return None
    req = {"url": a.get("url"), "method": a.get("method") or "POST",
           "headers": dict(a.get("headers") or {}), "body": a.get("body") or ""}
    if forge:
        body = _forge_text(req["body"])
        if body is not None:
            req["body"] = body
        else:
            url = _forge_text(req["url"])
            if url is None:
                return None
            req["url"] = url
    return req


# ---------------------------------------------------------------------------------------------
# gateway channel (filled in from docs/protocol.md)
# ---------------------------------------------------------------------------------------------
def open_envelope(raw, headers, seeds):
    raise GatewayError(501, "gateway envelope not implemented yet")


def gateway_reply(env):
    return {"ok": True}


def gateway_callback(env, verdict, number, forge):
    return None


def listener_check(method, path, headers, body, txs, answered):
    """fake_ftmpush.py: (status, reply) for a callback it can judge, or (None, None)."""
    return None, None

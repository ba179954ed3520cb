#!/usr/bin/env python3
"""Simulated ntfy server, push gateway and phone for ftmpush's tests.

Written from ntfy's public publishing API and from docs/protocol.md only; it never calls ftmpush's
code. One process runs:

  * an ntfy server (HTTPS): JSON publish (POST /), topic publish (PUT/POST /TOPIC), poll
    (GET /TOPIC/json?poll=1); ntfy-style validation and errors, optional access token;
  * a push gateway (HTTPS): accepts the envelope of docs/protocol.md, checks its HMAC and decrypts
    it with the seed of the token named in it;
  * the phone: reacts to every push as configured for that user (approve, deny, ignore, numbers,
    replay, forge, delay, hold) and sends the callback itself over HTTPS, verifying the listener's
    certificate against --callback-ca;
  * a control API (plain HTTP on loopback) for tests: see README.md and phonectl.py.

Standard library + python3-cryptography only.
"""

import argparse
import base64
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import ssl
import string
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import protocol  # tests/phone/protocol.py: the gateway envelope and callbacks of docs/protocol.md

# ---------------------------------------------------------------------------------------------
# ntfy facts (public API, https://docs.ntfy.sh/publish/)
# ---------------------------------------------------------------------------------------------
NTFY_TOPIC_RE = re.compile(r"^[-_A-Za-z0-9]{1,64}$")
NTFY_DISALLOWED_TOPICS = {"docs", "static", "file", "app", "metrics", "account", "settings",
                          "signup", "login", "v1"}
NTFY_MAX_ACTIONS = 3
NTFY_MESSAGE_LIMIT = 4096          # larger messages become attachments
NTFY_JSON_BODY_LIMIT = 32768
NTFY_BODY_LIMIT = 15 * 1024 * 1024
NTFY_ACTION_TYPES = ("view", "broadcast", "http")

NTFY_ERRORS = {
    # name: (code, http status, message, link)
    "bad": (40000, 400, "invalid request", ""),
    "priority": (40007, 400, "invalid priority parameter",
                 "https://ntfy.sh/docs/publish/#message-priority"),
    "topic": (40009, 400, "invalid request: topic invalid", ""),
    "topic_disallowed": (40010, 400, "invalid request: topic name is not allowed", ""),
    "not_utf8": (40011, 400, "invalid message: message must be UTF-8 encoded", ""),
    "attachments": (40014, 400, "invalid request: attachments not allowed",
                    "https://ntfy.sh/docs/config/#attachments"),
    "json": (40017, 400, "invalid request: request body must be message JSON",
             "https://ntfy.sh/docs/publish/#publish-as-json"),
    "actions": (40018, 400, "invalid request: actions invalid",
                "https://ntfy.sh/docs/publish/#action-buttons"),
    "unauthorized": (40101, 401, "unauthorized", "https://ntfy.sh/docs/publish/#authentication"),
    "forbidden": (40301, 403, "forbidden", "https://ntfy.sh/docs/publish/#authentication"),
    "not_found": (40401, 404, "page not found", ""),
    "too_large": (41303, 413, "JSON body too large", ""),
    "internal": (50001, 500, "internal server error", ""),
}


class NtfyError(Exception):
    def __init__(self, name, detail=None):
        code, status, msg, link = NTFY_ERRORS[name]
        if detail:
            msg = "%s; %s" % (msg, detail)
        super().__init__(msg)
        self.status = status
        self.body = {"code": code, "http": status, "error": msg}
        if link:
            self.body["link"] = link


def random_id(n=12):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def now():
    return time.time()


def log(*a):
    sys.stderr.write("phone: " + " ".join(str(x) for x in a) + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------
# shared state
# ---------------------------------------------------------------------------------------------
class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.behaviours = {}        # key -> list of behaviour strings ("*" = default)
        self.default_behaviour = args.default_behaviour
        self.pushes = []            # every push the phone received (ntfy message or gateway envelope)
        self.callbacks = []         # every callback request the phone sent
        self.rejected = []          # every publish / envelope refused by the ntfy server or gateway
        self.messages = {}          # ntfy topic -> [message], for GET /TOPIC/json?poll=1
        self.seeds = {}             # token serial -> seed bytes
        self.fail = {"ntfy": None, "gateway": None}   # None | "hang" | HTTP status
        self.ntfy_token = args.ntfy_token
        self.routes = {}            # "host:port" of a callback URL -> "host:port" the phone reaches instead
        self.seq = 0
        self.events = None
        if args.state_dir:
            self.events = open(os.path.join(args.state_dir, "events.jsonl"), "a", buffering=1)

    def event(self, kind, obj):
        if self.events:
            try:
                self.events.write(json.dumps({"t": round(now(), 3), "event": kind, **obj},
                                             default=str) + "\n")
            except Exception:
                pass

    def next_seq(self):
        self.seq += 1
        return self.seq

    def behaviour_for(self, keys, consume=True):
        """Behaviour configured for the first of keys that has one; "*" is the default."""
        with self.lock:
            for k in list(keys) + ["*"]:
                if k is None or k == "":
                    continue
                seq = self.behaviours.get(str(k))
                if seq:
                    b = seq[0]
                    if consume and len(seq) > 1:
                        seq.pop(0)
                    return b, str(k)
            return self.default_behaviour, None

    def add_push(self, push):
        with self.cond:
            push["seq"] = self.next_seq()
            self.pushes.append(push)
            self.cond.notify_all()
        self.event("push", {k: v for k, v in push.items() if k not in ("_answer",)})
        return push

    def add_callback(self, cb):
        with self.cond:
            cb["seq"] = self.next_seq()
            self.callbacks.append(cb)
            self.cond.notify_all()
        self.event("callback", cb)

    def add_rejected(self, rec):
        with self.cond:
            rec["seq"] = self.next_seq()
            rec["time"] = now()
            self.rejected.append(rec)
            self.cond.notify_all()
        self.event("rejected", rec)


def push_matches(push, key):
    if key is None or key == "" or key == "*":
        return True
    return key in push.get("keys", [])


def public_push(p):
    return {k: v for k, v in p.items() if not k.startswith("_")}


# ---------------------------------------------------------------------------------------------
# HTTPS / HTTP servers
# ---------------------------------------------------------------------------------------------
class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, handler, state, tls=None):
        fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.address_family = fam
        super().__init__(addr, handler)
        self.state = state
        if tls is not None:
            # handshake in the handler thread (first read), not in the accept loop
            self.socket = tls.wrap_socket(self.socket, server_side=True,
                                          do_handshake_on_connect=False)


class BaseHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15
    server_version = "ftmpush-test-phone"
    sys_version = ""

    def log_message(self, fmt, *a):
        if self.server.state.args.verbose:
            log("%s %s" % (self.__class__.__name__, fmt % a))

    def send_json(self, status, obj, extra_headers=None):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra_headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self, limit):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            data = b""
            while True:
                line = self.rfile.readline(100)
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    self.rfile.readline(100)
                    break
                data += self.rfile.read(n)
                self.rfile.readline(100)
                if len(data) > limit:
                    return None
            return data
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            # read and drop (bounded) so the reply reaches the client
            left = n
            while left > 0:
                chunk = self.rfile.read(min(65536, left))
                if not chunk:
                    break
                left -= len(chunk)
            return None
        return self.rfile.read(n) if n else b""

    def service_failure(self, name):
        mode = self.server.state.fail.get(name)
        if mode is None:
            return False
        if mode == "hang":
            self.server.state.event("hang", {"service": name, "path": self.path})
            time.sleep(self.server.state.args.hang_seconds)
            self.close_connection = True
            return True
        if mode == "close":
            self.close_connection = True
            return True
        self.send_json(int(mode), {"code": int(mode) * 100 + 1, "http": int(mode),
                                   "error": "simulated failure"})
        return True


# ---------------------------------------------------------------------------------------------
# ntfy server
# ---------------------------------------------------------------------------------------------
def ntfy_validate_actions(actions):
    if actions is None:
        return []
    if not isinstance(actions, list):
        raise NtfyError("json")
    out = []
    for a in actions:
        if not isinstance(a, dict):
            raise NtfyError("json")
        a = dict(a)
        for f in ("action", "label", "url", "method", "body"):
            if f in a and not isinstance(a[f], str):
                raise NtfyError("json")
        if "headers" in a and a["headers"] is not None:
            if not isinstance(a["headers"], dict) or \
                    not all(isinstance(v, str) for v in a["headers"].values()):
                raise NtfyError("json")
        if "clear" in a and not isinstance(a["clear"], bool):
            raise NtfyError("json")
        a["action"] = a.get("action", "").lower()
        if "method" in a:
            a["method"] = a["method"].upper()
        out.append(a)
    if len(out) > NTFY_MAX_ACTIONS:
        raise NtfyError("actions", "only %d actions allowed" % NTFY_MAX_ACTIONS)
    for a in out:
        if a["action"] not in NTFY_ACTION_TYPES:
            raise NtfyError("actions", "action '%s' unknown" % a["action"])
        if not a.get("label"):
            raise NtfyError("actions", "parameter 'label' is required")
        if a["action"] in ("view", "http") and not a.get("url"):
            raise NtfyError("actions", "parameter 'url' is required for action '%s'" % a["action"])
        if a["action"] in ("view", "http") and not re.match(r"^https?://", a.get("url", "")):
            raise NtfyError("actions", "parameter 'url' must start with http:// or https://")
        if a["action"] != "http" and (a.get("method") or a.get("headers") or a.get("body")):
            raise NtfyError("actions", "parameters 'method', 'headers' and 'body' are only "
                            "allowed for http actions")
        if a["action"] == "http" and a.get("method") in ("GET", "HEAD") and a.get("body"):
            raise NtfyError("actions", "parameter 'body' cannot be set if method is %s"
                            % a["method"])
        a["id"] = random_id(10)
        if a["action"] == "http":
            a.setdefault("method", "POST")
            if not a["method"]:
                a["method"] = "POST"
        a.setdefault("clear", False)
    return out


def ntfy_parse_simple_actions(s):
    """ntfy's header form: 'http, Label, https://url, method=POST, body=..., clear=true; ...'"""
    out = []
    for raw in [x for x in s.split(";") if x.strip()]:
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if len(parts) < 3:
            raise NtfyError("actions", "action requires at least keys 'action', 'label' and one "
                            "parameter: %s" % raw)
        a = {"headers": {}}
        for i, part in enumerate(parts):
            key, eq, value = part.partition("=")
            if not eq or re.search(r"\s", key) or "://" in part.split("=")[0]:
                key, value = "", part
            key = key.strip().lower()
            if key == "" and i == 0:
                a["action"] = value
            elif key == "" and i == 1:
                a["label"] = value
            elif key == "" and i == 2 and a.get("action") in ("view", "http"):
                a["url"] = value
            elif key.startswith("headers."):
                a["headers"][key[len("headers."):]] = value
            elif key in ("action", "label", "url", "method", "body"):
                a[key] = value
            elif key == "clear":
                a["clear"] = value.lower() in ("true", "yes", "1")
            elif key:
                raise NtfyError("actions", "key '%s' unknown" % key)
            else:
                raise NtfyError("actions", "unknown term '%s'" % part)
        if not a["headers"]:
            del a["headers"]
        out.append(a)
    return out


def ntfy_priority(p):
    if p in (None, "", 0):
        return 3
    names = {"min": 1, "low": 2, "default": 3, "high": 4, "max": 5, "urgent": 5}
    if isinstance(p, str):
        p = names.get(p.lower(), p)
        try:
            p = int(p)
        except ValueError:
            raise NtfyError("priority")
    if isinstance(p, bool) or not isinstance(p, int) or p < 1 or p > 5:
        raise NtfyError("priority")
    return p


class NtfyHandler(BaseHandler):
    def check_auth(self):
        token = self.server.state.ntfy_token
        auth = self.headers.get("Authorization")
        if not auth:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            if "auth" in q:
                try:
                    auth = base64.b64decode(q["auth"][0] + "==").decode()
                except Exception:
                    raise NtfyError("unauthorized")
        if not token:
            return
        if not auth:
            raise NtfyError("forbidden")
        scheme, _, cred = auth.partition(" ")
        ok = False
        if scheme.lower() == "bearer":
            ok = hmac.compare_digest(cred.strip().encode(), token.encode())
        elif scheme.lower() == "basic":
            try:
                user, _, pw = base64.b64decode(cred.strip()).decode().partition(":")
                ok = user == "" and hmac.compare_digest(pw.encode(), token.encode())
            except Exception:
                ok = False
        if not ok:
            raise NtfyError("unauthorized")

    def fail(self, err, raw=None):
        st = self.server.state
        st.add_rejected({"service": "ntfy", "method": self.command, "path": self.path,
                         "status": err.status, "error": err.body["error"],
                         "body": (raw or b"")[:2000].decode("utf-8", "replace")})
        self.send_json(err.status, err.body)

    def do_GET(self):
        try:
            path = urllib.parse.urlsplit(self.path).path
            m = re.match(r"^/([-_A-Za-z0-9]{1,64})/json$", path)
            if path in ("/v1/health",):
                self.send_json(200, {"healthy": True})
                return
            if not m:
                raise NtfyError("not_found")
            self.check_auth()
            topic = m.group(1)
            with self.server.state.lock:
                msgs = list(self.server.state.messages.get(topic, []))
            body = "".join(json.dumps(x) + "\n" for x in msgs).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except NtfyError as e:
            self.send_json(e.status, e.body)

    def do_HEAD(self):
        self.do_GET()

    def do_PUT(self):
        self.do_POST()

    def do_POST(self):
        st = self.server.state
        raw = b""
        try:
            if self.service_failure("ntfy"):
                return
            path = urllib.parse.urlsplit(self.path).path
            raw = self.read_body(NTFY_BODY_LIMIT)
            if raw is None:
                raise NtfyError("too_large")
            if path == "/":
                if len(raw) > NTFY_JSON_BODY_LIMIT:
                    raise NtfyError("too_large")
                try:
                    m = json.loads(raw.decode("utf-8"))
                except Exception:
                    raise NtfyError("json")
                if not isinstance(m, dict):
                    raise NtfyError("json")
                self.check_auth()
                msg = self.from_json(m)
            else:
                mt = re.match(r"^/([^/]+)/?$", path)
                if not mt:
                    raise NtfyError("not_found")
                self.check_auth()
                msg = self.from_headers(urllib.parse.unquote(mt.group(1)), raw)
            reply = self.store(msg)
            self.send_json(200, reply)
            st.event("ntfy_publish", {"topic": reply["topic"], "id": reply["id"],
                                      "auth": bool(self.headers.get("Authorization"))})
            phone_receive_ntfy(st, reply, dict(self.headers))
        except NtfyError as e:
            self.fail(e, raw)
        except Exception as e:
            traceback.print_exc()
            self.fail(NtfyError("internal", str(e)), raw)

    def validate_topic(self, topic):
        if not isinstance(topic, str) or not NTFY_TOPIC_RE.match(topic):
            raise NtfyError("topic")
        if topic in NTFY_DISALLOWED_TOPICS:
            raise NtfyError("topic_disallowed")

    def from_json(self, m):
        for f in ("topic", "title", "message", "click", "icon", "attach", "filename", "email",
                  "delay", "call"):
            if f in m and m[f] is not None and not isinstance(m[f], str):
                raise NtfyError("json")
        if "tags" in m and m["tags"] is not None and (
                not isinstance(m["tags"], list) or
                not all(isinstance(t, str) for t in m["tags"])):
            raise NtfyError("json")
        if "priority" in m and m["priority"] is not None and \
                (isinstance(m["priority"], bool) or not isinstance(m["priority"], int)):
            raise NtfyError("json")
        if "markdown" in m and not isinstance(m["markdown"], bool):
            raise NtfyError("json")
        topic = m.get("topic") or ""
        self.validate_topic(topic)
        return {
            "topic": topic,
            "title": m.get("title") or "",
            "message": m.get("message") or "",
            "priority": ntfy_priority(m.get("priority")),
            "tags": list(m.get("tags") or []),
            "click": m.get("click") or "",
            "actions": ntfy_validate_actions(m.get("actions")),
            "markdown": bool(m.get("markdown")),
        }

    def hdr(self, *names):
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        for n in names:
            v = self.headers.get(n)
            if v:
                return v.strip()
        for n in names:
            v = q.get(n.lower())
            if v:
                return v[0].strip()
        return ""

    def from_headers(self, topic, raw):
        self.validate_topic(topic)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NtfyError("not_utf8")
        acts = self.hdr("X-Actions", "Actions", "Action")
        actions = []
        if acts:
            if acts.lstrip().startswith("["):
                try:
                    actions = json.loads(acts)
                except Exception:
                    raise NtfyError("actions", "invalid JSON")
            else:
                actions = ntfy_parse_simple_actions(acts)
        tags = self.hdr("X-Tags", "Tags", "Tag", "ta")
        return {
            "topic": topic,
            "title": self.hdr("X-Title", "Title", "t"),
            "message": text,
            "priority": ntfy_priority(self.hdr("X-Priority", "Priority", "prio", "p")),
            "tags": [t.strip() for t in tags.split(",") if t.strip()] if tags else [],
            "click": self.hdr("X-Click", "Click"),
            "actions": ntfy_validate_actions(actions),
            "markdown": False,
        }

    def store(self, msg):
        st = self.server.state
        t = int(now())
        out = {"id": random_id(12), "time": t, "expires": t + 43200, "event": "message",
               "topic": msg["topic"]}
        if msg["title"]:
            out["title"] = msg["title"]
        message = msg["message"] or "triggered"
        if len(message.encode("utf-8")) > NTFY_MESSAGE_LIMIT:
            if st.args.no_attachments:
                raise NtfyError("attachments")
            size = len(message.encode("utf-8"))
            out["message"] = "You received a file: attachment.txt"
            out["attachment"] = {"name": "attachment.txt", "type": "text/plain; charset=utf-8",
                                 "size": size, "expires": t + 10800,
                                 "url": "https://127.0.0.1:%d/file/%s.txt"
                                        % (self.server.server_address[1], out["id"])}
            out["_attachment_text"] = message
        else:
            out["message"] = message
        if msg["priority"] != 3:
            out["priority"] = msg["priority"]
        if msg["tags"]:
            out["tags"] = msg["tags"]
        if msg["click"]:
            out["click"] = msg["click"]
        if msg["actions"]:
            out["actions"] = msg["actions"]
        if msg["markdown"]:
            out["content_type"] = "text/markdown"
        with st.lock:
            st.messages.setdefault(msg["topic"], []).append(
                {k: v for k, v in out.items() if not k.startswith("_")})
        return out


# ---------------------------------------------------------------------------------------------
# push gateway
# ---------------------------------------------------------------------------------------------
class GatewayHandler(BaseHandler):
    def do_GET(self):
        self.send_json(405, {"error": "method not allowed"}, {"Allow": "POST"})

    def do_POST(self):
        st = self.server.state
        raw = b""
        try:
            if self.service_failure("gateway"):
                return
            path = urllib.parse.urlsplit(self.path).path
            raw = self.read_body(protocol.GATEWAY_BODY_LIMIT)
            if path not in protocol.GATEWAY_PATHS:
                raise protocol.GatewayError(404, "not found")
            if raw is None:
                raise protocol.GatewayError(413, "request body too large")
            with st.lock:
                seeds = dict(st.seeds)
            env = protocol.open_envelope(raw, dict(self.headers), seeds)
            push = make_gateway_push(st, env)
            self.send_json(protocol.GATEWAY_OK_STATUS, protocol.gateway_reply(env))
            phone_process(st, push)
        except protocol.GatewayError as e:
            st.add_rejected({"service": "gateway", "method": self.command, "path": self.path,
                             "status": e.status, "error": str(e),
                             "body": raw[:2000].decode("utf-8", "replace") if raw else ""})
            self.send_json(e.status, {"error": str(e)})
        except Exception as e:
            traceback.print_exc()
            st.add_rejected({"service": "gateway", "method": self.command, "path": self.path,
                             "status": 500, "error": repr(e)})
            self.send_json(500, {"error": "internal error"})


def make_gateway_push(st, env):
    """env: the dict protocol.open_envelope returned (decrypted, verified)."""
    push = {
        "channel": "gateway",
        "time": now(),
        "keys": [k for k in (env.get("registration_id"), env.get("sn"), env.get("user")) if k],
        "registration_id": env.get("registration_id"),
        "sn": env.get("sn"),
        "user": env.get("user"),
        "sender": env.get("sender"),
        "platform": env.get("platform"),
        "payload": env.get("payload"),
        "message": env.get("text", ""),
        "number": env.get("number"),
        "numbers": env.get("numbers") or [],
        "expired": env.get("expired", False),
        "callback_url": env.get("callback_url"),
        "outcome": None,
        "_env": env,
    }
    return st.add_push(push)


# ---------------------------------------------------------------------------------------------
# the phone
# ---------------------------------------------------------------------------------------------
def phone_receive_ntfy(st, msg, headers):
    text = msg.get("_attachment_text") or msg.get("message", "")
    info = protocol.parse_ntfy_message(msg.get("title", ""), text, msg.get("actions") or [])
    keys = [msg["topic"]]
    if info.get("user") and info["user"] not in keys:
        keys.append(info["user"])
    push = {
        "channel": "ntfy",
        "time": now(),
        "keys": keys,
        "topic": msg["topic"],
        "id": msg["id"],
        "title": msg.get("title", ""),
        "message": msg.get("message", ""),
        "attachment": bool(msg.get("attachment")),
        "priority": msg.get("priority", 3),
        "tags": msg.get("tags", []),
        "actions": [{k: a.get(k) for k in ("label", "url", "method", "headers", "body", "clear",
                                          "action")} for a in msg.get("actions") or []],
        "user": info.get("user"),
        "number": info.get("number"),
        "numbers": info.get("numbers") or [],
        "auth": bool(headers.get("Authorization")),
        "outcome": None,
    }
    st.add_push(push)
    phone_process(st, push)


def phone_process(st, push):
    t = threading.Thread(target=phone_act_safe, args=(st, push), daemon=True)
    t.start()


def phone_act_safe(st, push, behaviour=None):
    try:
        return phone_act(st, push, behaviour)
    except Exception as e:
        traceback.print_exc()
        with st.lock:
            push["outcome"] = "error: %r" % (e,)
        return []


def parse_behaviour(b):
    """-> (kind, arg, rest). delay:S[:BEHAVIOUR], number:N, replay[:ACTION], forge[:ACTION]"""
    b = (b or "ignore").strip()
    kind, _, rest = b.partition(":")
    kind = kind.lower()
    return kind, rest


def phone_act(st, push, behaviour=None):
    if behaviour is None:
        behaviour, matched = st.behaviour_for(push["keys"])
        with st.lock:
            push["behaviour"] = behaviour
            push["behaviour_key"] = matched
    kind, rest = parse_behaviour(behaviour)
    if kind == "delay":
        secs, _, then = rest.partition(":")
        if "-" in secs:
            lo, hi = secs.split("-", 1)
            d = random.uniform(float(lo), float(hi))
        else:
            d = float(secs or 0)
        with st.lock:
            push["delayed"] = round(d, 3)
        time.sleep(d)
        return phone_act(st, push, then or "approve")
    if kind in ("ignore", "none", "drop"):
        with st.lock:
            push["outcome"] = "ignored"
        return []
    if kind in ("hold", "manual"):
        with st.lock:
            push["outcome"] = "held"
        return []
    if push.get("channel") == "gateway" and push.get("expired") and kind != "forge":
        pass  # a real phone would still show it; ftmpush must refuse the late answer
    if kind in ("approve", "deny"):
        return send_answer(st, push, kind)
    if kind == "number":
        return send_answer(st, push, "number", number=rest)
    if kind == "right-number":
        if push.get("number") is None:
            with st.lock:
                push["outcome"] = "no number shown"
            return []
        return send_answer(st, push, "number", number=str(push["number"]))
    if kind == "wrong-number":
        return send_answer(st, push, "number", number=wrong_number(push))
    if kind == "replay":
        return send_answer(st, push, rest or "approve", times=2)
    if kind == "forge":
        return send_answer(st, push, rest or "approve", forge=True)
    with st.lock:
        push["outcome"] = "unknown behaviour %r" % behaviour
    return []


def wrong_number(push):
    right = push.get("number")
    for n in push.get("numbers") or []:
        if str(n) != str(right):
            return str(n)
    try:
        return "%02d" % ((int(right) + 37) % 90 + 10) if right is not None else "00"
    except ValueError:
        return "00"


def send_answer(st, push, verdict, number=None, times=1, forge=False):
    """Build the callback request(s) per channel and send them."""
    if verdict.startswith("number:"):
        verdict, number = "number", verdict.split(":", 1)[1]
    if push["channel"] == "ntfy":
        req = protocol.ntfy_callback(push, verdict, number, forge)
    else:
        req = protocol.gateway_callback(push["_env"], verdict, number, forge)
    if req is None:
        with st.lock:
            push["outcome"] = "no action for %s%s" % (verdict, ":" + number if number else "")
        return []
    results = []
    for i in range(times):
        results.append(send_callback(st, push, req, verdict, number, forge,
                                     "replay" if i else "first"))
    with st.lock:
        push["outcome"] = "%s%s%s%s" % ("forged " if forge else "", verdict,
                                        ":" + str(number) if number is not None else "",
                                        " x%d" % times if times > 1 else "")
    return results


def callback_context(st):
    ctx = ssl.create_default_context(cafile=st.args.callback_ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def send_callback(st, push, req, verdict, number, forge, attempt):
    """req: {"url","method","headers","body"(str|bytes)}"""
    body = req.get("body")
    if isinstance(body, str):
        body = body.encode("utf-8")
    method = (req.get("method") or "POST").upper()
    headers = {"User-Agent": "ntfy/1.16 (ftmpush simulated phone)"}
    headers.update(req.get("headers") or {})
    cb = {"push_seq": push["seq"], "channel": push["channel"], "keys": push["keys"],
          "verdict": verdict, "number": number, "forged": forge, "attempt": attempt,
          "url": req["url"], "method": method, "status": None, "error": None, "reply": None,
          "time": now()}
    conn = None
    try:
        u = urllib.parse.urlsplit(req["url"])
        if u.scheme != "https":
            raise ValueError("the phone only calls back over https, not %r" % u.scheme)
        # like the ntfy app: the action's method, headers and body as given, no Content-Type added
        # a balancer or DNS round robin in front of several nodes: the URL's name, another node
        with st.lock:
            route = st.routes.get("%s:%d" % (u.hostname, u.port or 443))
        if route:
            cb["routed_to"] = route
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443,
                                           timeout=st.args.callback_timeout,
                                           context=callback_context(st))
        if route:
            host, port = route.rsplit(":", 1)
            sock = socket.create_connection((host, int(port)), timeout=st.args.callback_timeout)
            conn.sock = callback_context(st).wrap_socket(sock, server_hostname=u.hostname)
        target = (u.path or "/") + ("?" + u.query if u.query else "")
        send_body = body if method not in ("GET", "HEAD") else None
        if send_body is None and method in ("POST", "PUT", "PATCH"):
            send_body = b""
        conn.request(method, target, body=send_body, headers=headers)
        resp = conn.getresponse()
        cb["status"] = resp.status
        cb["reply"] = resp.read(4096).decode("utf-8", "replace")
    except ssl.SSLError as e:
        cb["error"] = "TLS: %s" % (e,)
    except Exception as e:
        cb["error"] = "%s: %s" % (e.__class__.__name__, e)
    finally:
        if conn is not None:
            conn.close()
    cb["elapsed"] = round(now() - cb["time"], 3)
    st.add_callback(cb)
    return cb


# ---------------------------------------------------------------------------------------------
# control API (plain HTTP, loopback)
# ---------------------------------------------------------------------------------------------
class ControlHandler(BaseHandler):
    def q(self):
        return {k: v[-1] for k, v in
                urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query).items()}

    def body_json(self):
        raw = self.read_body(1 << 20) or b""
        if not raw.strip():
            return {}
        return json.loads(raw.decode())

    def do_GET(self):
        st = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        q = self.q()
        key = q.get("key")
        try:
            if path in ("/", "/health"):
                self.send_json(200, {"ok": True, "ports": st.ports, "pid": os.getpid()})
            elif path == "/behave":
                with st.lock:
                    self.send_json(200, {"default": st.default_behaviour,
                                         "behaviours": st.behaviours})
            elif path == "/pushes":
                with st.lock:
                    ps = [public_push(p) for p in st.pushes if push_matches(p, key)]
                self.send_json(200, {"count": len(ps), "pushes": ps})
            elif path == "/callbacks":
                with st.lock:
                    cs = [c for c in st.callbacks if push_matches(c, key)]
                self.send_json(200, {"count": len(cs), "callbacks": cs})
            elif path == "/rejected":
                svc = q.get("service")
                with st.lock:
                    rs = [r for r in st.rejected if not svc or r["service"] == svc]
                self.send_json(200, {"count": len(rs), "rejected": rs})
            elif path in ("/wait-push", "/wait-callback", "/wait-rejected"):
                count = int(q.get("count", 1))
                timeout = min(float(q.get("timeout", 10)), 600)
                deadline = now() + timeout
                with st.cond:
                    while True:
                        if path == "/wait-push":
                            items = [public_push(p) for p in st.pushes if push_matches(p, key)]
                        elif path == "/wait-callback":
                            items = [c for c in st.callbacks if push_matches(c, key)]
                        else:
                            items = [r for r in st.rejected
                                     if not q.get("service") or r["service"] == q["service"]]
                        left = deadline - now()
                        if len(items) >= count or left <= 0:
                            break
                        st.cond.wait(min(left, 1.0))
                ok = len(items) >= count
                self.send_json(200 if ok else 408, {"ok": ok, "count": len(items),
                                                    "items": items})
            elif path == "/seeds":
                with st.lock:
                    self.send_json(200, {"serials": sorted(st.seeds)})
            else:
                self.send_json(404, {"error": "not found"})
        except Exception as e:
            traceback.print_exc()
            self.send_json(500, {"error": repr(e)})

    def do_POST(self):
        st = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        try:
            b = self.body_json()
            if path == "/behave":
                key = b.get("key") or "*"
                beh = b.get("behaviour")
                with st.lock:
                    if not beh:
                        st.behaviours.pop(key, None)
                    else:
                        seq = [x.strip() for x in beh.split(",") if x.strip()]
                        for x in seq:
                            if parse_behaviour(x)[0] not in KNOWN_BEHAVIOURS:
                                raise ValueError("unknown behaviour %r" % x)
                        if key == "*" and b.get("default"):
                            st.default_behaviour = seq[0]
                        st.behaviours[key] = seq
                st.event("behave", {"key": key, "behaviour": beh})
                self.send_json(200, {"ok": True})
            elif path == "/act":
                key = b.get("key")
                action = b.get("action") or "approve"
                want = b.get("push")
                with st.lock:
                    cands = [p for p in st.pushes if push_matches(p, key)
                             and (want is None or p["seq"] == int(want))]
                    if want is None:
                        held = [p for p in cands if p.get("outcome") == "held"]
                        cands = held or cands
                if not cands:
                    self.send_json(404, {"error": "no push for %r" % key})
                    return
                p = cands[-1]
                res = phone_act_safe(st, p, action)
                self.send_json(200, {"ok": True, "push": public_push(p), "callbacks": res})
            elif path == "/seeds":
                with st.lock:
                    for serial, hexseed in b.items():
                        st.seeds[str(serial)] = protocol.seed_bytes(hexseed)
                self.send_json(200, {"ok": True, "count": len(b)})
            elif path == "/fail":
                svc = b.get("service")
                mode = b.get("mode")
                if svc not in ("ntfy", "gateway"):
                    raise ValueError("service must be ntfy or gateway")
                if mode in (None, "", "off", "ok", "none"):
                    mode = None
                elif mode not in ("hang", "close"):
                    mode = int(mode)
                st.fail[svc] = mode
                self.send_json(200, {"ok": True})
            elif path == "/route":
                src, dst = b.get("from"), b.get("to")
                if not src or ":" not in src or (dst and ":" not in dst):
                    raise ValueError("from and to are HOST:PORT")
                with st.lock:
                    if dst:
                        st.routes[src] = dst
                    else:
                        st.routes.pop(src, None)
                st.event("route", {"from": src, "to": dst})
                self.send_json(200, {"ok": True})
            elif path == "/ntfy-token":
                st.ntfy_token = b.get("token") or None
                self.send_json(200, {"ok": True})
            elif path == "/reset":
                with st.cond:
                    st.pushes.clear()
                    st.callbacks.clear()
                    st.rejected.clear()
                    st.messages.clear()
                    st.behaviours.clear()
                    st.default_behaviour = st.args.default_behaviour
                    st.fail = {"ntfy": None, "gateway": None}
                    if b.get("all"):
                        st.seeds.clear()
                    st.cond.notify_all()
                st.event("reset", {})
                self.send_json(200, {"ok": True})
            elif path == "/shutdown":
                self.send_json(200, {"ok": True})
                threading.Thread(target=st.stop, daemon=True).start()
            else:
                self.send_json(404, {"error": "not found"})
        except (ValueError, KeyError, TypeError, json.JSONDecodeError) as e:
            self.send_json(400, {"error": str(e)})
        except Exception as e:
            traceback.print_exc()
            self.send_json(500, {"error": repr(e)})


KNOWN_BEHAVIOURS = {"approve", "deny", "ignore", "none", "drop", "hold", "manual", "number",
                    "right-number", "wrong-number", "replay", "forge", "delay"}


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def load_seeds(path):
    with open(path) as f:
        text = f.read()
    try:
        obj = json.loads(text)
        return {str(k): protocol.seed_bytes(v) for k, v in obj.items()}
    except json.JSONDecodeError:
        out = {}
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            serial, _, seed = line.replace("=", " ").replace(":", " ").partition(" ")
            out[serial.strip()] = protocol.seed_bytes(seed.strip())
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--ntfy-port", type=int, default=0, help="0 = any free port; -1 = off")
    ap.add_argument("--gateway-port", type=int, default=0, help="0 = any free port; -1 = off")
    ap.add_argument("--control-port", type=int, default=0, help="0 = any free port")
    ap.add_argument("--tls-cert", required=True)
    ap.add_argument("--tls-key", required=True)
    ap.add_argument("--callback-ca", required=True,
                    help="CA file the phone trusts for ftmpush's callback listener")
    ap.add_argument("--ntfy-token", default=None, help="require 'Authorization: Bearer TOKEN'")
    ap.add_argument("--seeds", default=None,
                    help="JSON {serial: hexseed} or lines 'SERIAL HEXSEED'")
    ap.add_argument("--default-behaviour", default="ignore")
    ap.add_argument("--no-attachments", action="store_true",
                    help="refuse messages over 4096 bytes (40014) instead of attaching them")
    ap.add_argument("--callback-timeout", type=float, default=10.0)
    ap.add_argument("--hang-seconds", type=float, default=120.0)
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()

    os.makedirs(args.state_dir, exist_ok=True)
    ready_path = os.path.join(args.state_dir, "ready.json")
    try:
        os.unlink(ready_path)
    except FileNotFoundError:
        pass
    st = State(args)
    if args.seeds:
        st.seeds.update(load_seeds(args.seeds))

    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.minimum_version = ssl.TLSVersion.TLSv1_2
    tls.load_cert_chain(args.tls_cert, args.tls_key)

    servers = []
    ports = {}
    if args.ntfy_port >= 0:
        s = Server((args.bind, args.ntfy_port), NtfyHandler, st, tls)
        servers.append(s)
        ports["ntfy"] = s.server_address[1]
    if args.gateway_port >= 0:
        s = Server((args.bind, args.gateway_port), GatewayHandler, st, tls)
        servers.append(s)
        ports["gateway"] = s.server_address[1]
    s = Server((args.bind, args.control_port), ControlHandler, st, None)
    servers.append(s)
    ports["control"] = s.server_address[1]
    st.ports = ports

    done = threading.Event()
    st.stop = done.set
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    signal.signal(signal.SIGINT, lambda *a: done.set())
    threads = []
    for s in servers:
        t = threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        t.start()
        threads.append(t)

    host = "[%s]" % args.bind if ":" in args.bind else args.bind
    urls = {"pid": os.getpid(), "ports": ports}
    if "ntfy" in ports:
        urls["ntfy_url"] = "https://%s:%d" % (host, ports["ntfy"])
    if "gateway" in ports:
        urls["gateway_url"] = "https://%s:%d%s" % (host, ports["gateway"],
                                                   protocol.GATEWAY_PATHS[0])
    urls["control_url"] = "http://%s:%d" % (host, ports["control"])
    tmp = ready_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(urls, f)
    os.rename(tmp, ready_path)
    print("ready " + " ".join("%s=%s" % (k, v) for k, v in urls.items() if k.endswith("_url")),
          flush=True)
    st.event("ready", urls)

    done.wait(args.max_seconds)
    st.event("stop", {"reason": "signal/shutdown" if done.is_set() else "max-seconds"})
    for s in servers:
        s.shutdown()
        s.server_close()
    try:
        os.unlink(ready_path)
    except FileNotFoundError:
        pass
    log("stopped")


if __name__ == "__main__":
    main()

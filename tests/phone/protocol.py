"""docs/protocol.md as seen by a phone and a push gateway (the simulator's side of the wire).

Written from the text of docs/protocol.md, never from ftmpush's C code.
"""

import base64
import hashlib
import hmac
import json
import re
import time

GATEWAY_PATHS = ["/ftm-gateway/v1/push"]   # any path: ftmpush POSTs to push.gateway_url as given
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
# gateway channel (docs/protocol.md sections 3 and 4.2)
# ---------------------------------------------------------------------------------------------
LABEL_ENC = b"ftmpush v1 envelope encryption"
LABEL_MAC = b"ftmpush v1 envelope mac"
LABEL_CB = b"ftmpush v1 callback proof"
CALLBACK_PATH = "/ftm/v1/gw"


def derive_key(seed, label):
    """HKDF-SHA256, no salt, 32 bytes (protocol.md section 3, Keys)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(seed)


def callback_proof(seed, tx, verdict, number):
    """hex(HMAC-SHA256(k_cb, TX \n VERDICT \n NUMBER)) (protocol.md section 4.2)."""
    k_cb = derive_key(seed, LABEL_CB)
    msg = ("%s\n%s\n%s" % (tx, verdict, number or "")).encode("utf-8")
    return hmac.new(k_cb, msg, hashlib.sha256).hexdigest()


def _b64(s, what):
    if not isinstance(s, str):
        raise GatewayError(400, "%s is not a string" % what)
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except Exception:
        raise GatewayError(400, "%s is not base64" % what)


def open_envelope(raw, headers, seeds):
    """Check and decrypt an envelope; the dict phone.make_gateway_push expects, or GatewayError."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    try:
        env = json.loads(raw.decode("utf-8"))
    except Exception:
        raise GatewayError(400, "envelope is not JSON")
    if not isinstance(env, dict):
        raise GatewayError(400, "envelope is not a JSON object")
    for f in ("sender", "registration_id", "app", "platform", "message"):
        if not isinstance(env.get(f), str):
            raise GatewayError(400, "envelope member %r missing or not a string" % f)
    if env["app"] != "FTM":
        raise GatewayError(400, "app is %r, not FTM" % env["app"])
    if not env["registration_id"]:
        raise GatewayError(400, "empty registration_id")
    try:
        msg = json.loads(env["message"])
    except Exception:
        raise GatewayError(400, "message is not a JSON string")
    if not isinstance(msg, dict):
        raise GatewayError(400, "message is not a JSON object")
    for f in ("ciphertext", "sn", "hmac", "iv"):
        if not isinstance(msg.get(f), str):
            raise GatewayError(400, "message member %r missing or not a string" % f)
    sn = msg["sn"]
    if sn not in seeds:
        raise GatewayError(404, "no seed for serial %r" % sn)
    seed = seeds[sn]
    iv = _b64(msg["iv"], "iv")
    ct = _b64(msg["ciphertext"], "ciphertext")
    mac = _b64(msg["hmac"], "hmac")
    if len(iv) != 16 or len(ct) == 0 or len(ct) % 16 or len(mac) != 32:
        raise GatewayError(400, "bad iv, ciphertext or hmac length")
    want = hmac.new(derive_key(seed, LABEL_MAC), iv + ct, hashlib.sha256).digest()
    if not hmac.compare_digest(want, mac):
        raise GatewayError(403, "hmac mismatch")
    try:
        d = Cipher(algorithms.AES(derive_key(seed, LABEL_ENC)), modes.CBC(iv)).decryptor()
        padded = d.update(ct) + d.finalize()
        u = padding.PKCS7(128).unpadder()
        plain = json.loads((u.update(padded) + u.finalize()).decode("utf-8"))
    except Exception:
        raise GatewayError(400, "plaintext does not decrypt to JSON")
    if not isinstance(plain, dict) or plain.get("v") != 1:
        raise GatewayError(400, "plaintext is not a version 1 object")
    for f in ("tx", "callback"):
        if not isinstance(plain.get(f), str) or not plain[f]:
            raise GatewayError(400, "plaintext member %r missing" % f)
    if plain.get("sn") not in (None, sn):
        raise GatewayError(400, "plaintext serial differs from the envelope's")
    number = plain.get("number") or None
    numbers = [str(n) for n in (plain.get("numbers") or [])]
    expires = plain.get("expires")
    return {
        "sender": env["sender"], "registration_id": env["registration_id"],
        "platform": env["platform"], "sn": sn, "user": plain.get("user"),
        "payload": plain, "text": plain.get("message", ""), "number": number,
        "numbers": numbers, "callback_url": plain["callback"], "tx": plain["tx"],
        "expired": isinstance(expires, (int, float)) and time.time() > expires,
        "_seed": seed,
    }


def gateway_reply(env):
    return {"ok": True}


def gateway_callback(env, verdict, number, forge):
    """The phone app's answer (protocol.md section 4.2): POST the callback URL with a proof."""
    if verdict == "number":
        verdict = "approve"
    elif verdict not in ("approve", "deny"):
        return None
    else:
        number = ""
    number = "" if number is None else str(number)
    proof = callback_proof(env["_seed"], env["tx"], verdict, number)
    if forge:
        proof = proof[:-1] + ("0" if proof[-1] != "0" else "1")
    body = json.dumps({"tx": env["tx"], "verdict": verdict, "number": number, "proof": proof},
                      separators=(",", ":"))
    return {"url": env["callback_url"], "method": "POST",
            "headers": {"Content-Type": "application/json"}, "body": body}


def listener_check(method, path, headers, body, txs, answered):
    """fake_ftmpush.py: (status, reply) for a callback it can judge, or (None, None).

    txs: {tx: {"seed": HEX, "number": "NN"?}}; answered: {tx: status} (kept by the caller)."""
    if path.split("?", 1)[0] != CALLBACK_PATH:
        return None, None
    if method != "POST":
        return 405, {"error": "method not allowed"}
    if len(body) > 4096:
        return 413, {"error": "body too large"}
    try:
        req = json.loads(body.decode("utf-8"))
    except Exception:
        return 400, {"error": "body is not JSON"}
    if not isinstance(req, dict) or not all(isinstance(req.get(f), str)
                                            for f in ("tx", "verdict", "number", "proof")):
        return 400, {"error": "tx, verdict, number and proof are required strings"}
    tx = txs.get(req["tx"])
    if tx is None:
        return 404, {"error": "unknown transaction"}
    if req["tx"] in answered:
        return 409, {"error": "already decided", "status": answered[req["tx"]]}
    want = callback_proof(seed_bytes(tx["seed"]), req["tx"], req["verdict"], req["number"])
    if not hmac.compare_digest(want.encode(), req["proof"].encode()):
        return 403, {"error": "bad proof"}
    if req["verdict"] not in ("approve", "deny"):
        return 400, {"error": "bad verdict"}
    status = "approved" if req["verdict"] == "approve" else "denied"
    if tx.get("number") and req["number"] != str(tx["number"]):
        status = "denied"
    answered[req["tx"]] = status
    return 200, {"status": status}

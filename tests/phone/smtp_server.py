#!/usr/bin/python3
"""smtp_server.py: the simulated mail server of the tests (Debian's python3-aiosmtpd), on loopback.

Each accepted message is written to DIR/mail-N.eml; DIR/transcript.log records everything the server
received (the commands, the AUTH exchange as decoded, the envelope and the message text), so a test can
check that no seed ever travelled by mail. DIR/ready holds the port once the server listens.

  --port N            listen on 127.0.0.1:N
  --dir DIR           where messages, the transcript and ready go
  --tls-cert/--tls-key  offer STARTTLS with this certificate (and require it for AUTH and MAIL)
  --user U --password P   require AUTH PLAIN/LOGIN with these credentials
  --refuse-auth       answer every AUTH with 535 (a mail server whose password expired)
  --max-seconds S     exit after S seconds (a test that forgets to stop it leaves nothing behind)
"""
import argparse
import asyncio
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


class Recorder:
    """The handler: records what arrives and keeps each message."""

    def __init__(self, outdir, require_tls):
        self.outdir = outdir
        self.require_tls = require_tls
        self.count = 0
        self.lock = threading.Lock()

    def log(self, line):
        with self.lock, open(os.path.join(self.outdir, "transcript.log"), "a", encoding="utf-8") as f:
            f.write(line.rstrip("\r\n") + "\n")

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.log(f"EHLO {hostname} (tls={session.ssl is not None})")
        session.host_name = hostname
        return responses

    async def handle_STARTTLS(self, server, session, envelope):
        self.log("STARTTLS")
        return True

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.require_tls and session.ssl is None:
            self.log(f"MAIL FROM:<{address}> refused: no TLS")
            return "530 5.7.0 Must issue a STARTTLS command first"
        self.log(f"MAIL FROM:<{address}>")
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        self.log(f"RCPT TO:<{address}>")
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        text = envelope.content.decode("utf-8", "replace")
        self.log("DATA")
        for line in text.splitlines():
            self.log("  " + line)
        with self.lock:
            self.count += 1
            n = self.count
        path = os.path.join(self.outdir, f"mail-{n}.eml")
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
        return "250 Message accepted for delivery"


class Authenticator:
    def __init__(self, recorder, user, password, refuse):
        self.recorder = recorder
        self.user = user
        self.password = password
        self.refuse = refuse

    def __call__(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode("utf-8", "replace")
            ok = (not self.refuse and user == self.user and
                  auth_data.password.decode("utf-8", "replace") == self.password)
        else:
            user, ok = "?", False
        self.recorder.log(f"AUTH {mechanism} user={user} -> {'ok' if ok else 'refused'}")
        return AuthResult(success=ok, handled=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--refuse-auth", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=300)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)

    tls = None
    if a.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(a.tls_cert, a.tls_key)
    recorder = Recorder(a.dir, require_tls=tls is not None)
    auth = a.user is not None or a.refuse_auth
    kwargs = dict(
        hostname="127.0.0.1", port=a.port, server_hostname="smtp.test",
        tls_context=tls, require_starttls=tls is not None,
        auth_required=auth, auth_require_tls=tls is not None,
    )
    if auth:
        kwargs["authenticator"] = Authenticator(recorder, a.user, a.password, a.refuse_auth)
    ctl = Controller(recorder, **kwargs)
    ctl.start()
    with open(os.path.join(a.dir, "ready.tmp"), "w") as f:
        f.write(str(a.port))
    os.replace(os.path.join(a.dir, "ready.tmp"), os.path.join(a.dir, "ready"))
    print(f"smtp_server: listening on 127.0.0.1:{a.port} tls={tls is not None} auth={auth}", flush=True)
    try:
        threading.Event().wait(a.max_seconds)
    except KeyboardInterrupt:
        pass
    ctl.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""A tiny stand-in for ftmpush's HTTPS callback listener, for tests of the simulated phone only.

Written from docs/protocol.md; it never calls ftmpush. It records every request it receives, one
JSON object per line in --log ({"method","path","headers","body","status"}), and answers:
  * a gateway callback (see protocol.py) with a valid proof for a transaction it knows: 200;
    a bad proof: 403; an unknown or already answered transaction: 404/409 as protocol.md says;
  * any other request: --default-status (200).
Transactions for the gateway check come from --tx FILE (JSON {txid: {"seed": HEX, ...}}),
re-read on every request.

  fake_ftmpush.py --port P --cert server.pem --key server.key --log FILE [--tx FILE]
                  [--default-status 200] [--max-seconds 300]
"""

import argparse
import json
import os
import signal
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import protocol  # noqa: E402


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, *a):
        pass

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(n, 65536)) if n else b""
        args = self.server.args
        txs = {}
        if args.tx and os.path.exists(args.tx):
            with open(args.tx) as f:
                txs = json.load(f)
        status, reply = protocol.listener_check(self.command, self.path, dict(self.headers), body,
                                                txs, self.server.answered)
        if status is None:
            status, reply = args.default_status, {"status": "ok"}
        rec = {"method": self.command, "path": self.path, "headers": dict(self.headers),
               "body": body.decode("utf-8", "replace"), "status": status}
        with self.server.lock:
            with open(args.log, "a") as f:
                f.write(json.dumps(rec) + "\n")
        out = (json.dumps(reply) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_POST = do_PUT = do_GET = handle_any


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--tx")
    ap.add_argument("--default-status", type=int, default=200)
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    s = ThreadingHTTPServer((args.bind, args.port), H)
    s.daemon_threads = True
    s.args = args
    s.lock = threading.Lock()
    s.answered = {}
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    s.socket = ctx.wrap_socket(s.socket, server_side=True, do_handshake_on_connect=False)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    print("ready", flush=True)
    done.wait(args.max_seconds)
    s.shutdown()


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""listener_flood.py: hostile connections to ftmpush's callback listener, from many loopback addresses.

Kinds of connection (each from its own block of 127.0.0.0/8 source addresses, never 127.0.0.1):
  slow     TLS handshake, then a request header trickled one byte every --trickle seconds
  trickle  a TLS ClientHello (announcing a 16 KiB record) trickled one byte every --trickle seconds:
           the handshake never completes and the connection is never idle (cheap on both sides)
  hello    half a TLS ClientHello, then nothing
  silent   a TCP connection that sends nothing
Every connection the server closes is opened again (the flood keeps its numbers up) until --stop
FILE exists or --seconds have passed; every loop is bounded by that time and by --max-opens. Status goes to
--status (JSON, rewritten every second); the final line on stdout is the same JSON:
  open{kind}         connections open now (TLS done for slow)
  peak_open          most hostile connections open at once
  opens              connections the server accepted
  refused_fast       connections closed by the server within 0.5 s of connect (a limit refused them)
  life_max{kind}     the longest a connection lived before the server closed it (seconds)
  life_p90{kind}     the 90th percentile of those lives (robust on a loaded machine)
  t                  seconds since the flood started
  closed{kind}       connections the server closed
"""
import argparse
import heapq
import itertools
import json
import os
import selectors
import socket
import ssl
import sys
import time

HALF_HELLO = bytes.fromhex("16030100c4010000c00303") + os.urandom(16)  # a record header, then cut off
# A handshake record announcing 16 KiB, a ClientHello header, then random bytes: never complete.
TRICKLE_HELLO = bytes.fromhex("1603014000010003fc0303") + os.urandom(4096)


def now():
    return time.monotonic()


class Conn:
    __slots__ = ("kind", "src", "sock", "tls", "state", "t0", "sent")

    def __init__(self, kind, src):
        self.kind, self.src = kind, src
        self.sock = self.tls = None
        self.state = "connect"
        self.t0 = now()
        self.sent = 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--net", default="127.0.%d.%d", help="source address pattern (two %%d: block, host)")
    ap.add_argument("--addresses", type=int, default=80, help="source addresses for trickle connections")
    ap.add_argument("--per-address", type=int, default=20)
    ap.add_argument("--slow-addresses", type=int, default=20, help="source addresses for slow connections")
    ap.add_argument("--slow-per-address", type=int, default=16)
    ap.add_argument("--hello", type=int, default=100, help="half ClientHello connections (10 addresses)")
    ap.add_argument("--silent", type=int, default=100, help="silent TCP connections (10 addresses)")
    ap.add_argument("--trickle", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--max-opens", type=int, default=20000)
    ap.add_argument("--status", required=True)
    ap.add_argument("--stop", help="stop early once this file exists")
    a = ap.parse_args()

    ctx = ssl.create_default_context(cafile=a.ca)
    sel = selectors.DefaultSelector()
    slots = []  # (kind, source address): one connection each, reopened when closed
    for i in range(a.addresses):
        slots += [("trickle", a.net % (1 + i // 250, 1 + i % 250))] * a.per_address
    for i in range(a.slow_addresses):
        slots += [("slow", a.net % (5 + i // 250, 1 + i % 250))] * a.slow_per_address
    for i in range(a.hello):
        slots.append(("hello", a.net % (10, 1 + i % 10)))
    for i in range(a.silent):
        slots.append(("silent", a.net % (11, 1 + i % 10)))
    conns = [None] * len(slots)
    # Timers in heaps, so one turn costs what is due, not a walk over every connection:
    # (when, seq, slot) to reopen a closed slot, (when, seq, slot, conn) for a trickled byte.
    seq = itertools.count()
    reopen, due = [], []
    kinds = ("slow", "trickle", "hello", "silent")
    st = {"open": dict.fromkeys(kinds, 0), "peak_open": 0, "opens": 0, "refused_fast": 0,
          "life_max": dict.fromkeys(kinds, 0.0), "life_p90": dict.fromkeys(kinds, 0.0),
          "closed": dict.fromkeys(kinds, 0), "connect_errors": 0, "t": 0.0}
    lives = {k: [] for k in kinds}
    t_start = now()
    end = now() + a.seconds
    last_status = 0.0

    def close(i, by_server):
        c = conns[i]
        if c is None:
            return
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        if c.state == "up":
            st["open"][c.kind] -= 1
        if by_server:
            life = now() - c.t0
            st["closed"][c.kind] += 1
            if life < 0.5:
                st["refused_fast"] += 1
            if c.state == "up":
                lives[c.kind].append(life)
                st["life_max"][c.kind] = round(max(st["life_max"][c.kind], life), 2)
        (c.tls or c.sock).close()
        conns[i] = None
        # a slot refused at once waits 2 s: no busy loop against a limit
        heapq.heappush(reopen, (now() + (2.0 if by_server and now() - c.t0 < 0.5 else 0.0), next(seq), i))

    def up(c, i):
        if c.kind in ("slow", "trickle"):
            heapq.heappush(due, (now(), next(seq), i, c))
        c.state = "up"
        st["open"][c.kind] += 1
        st["peak_open"] = max(st["peak_open"], sum(st["open"].values()))

    def start(i):
        kind, src = slots[i]
        c = Conn(kind, src)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((src, 0))
            s.connect_ex(("127.0.0.1", a.port))
        except OSError:
            st["connect_errors"] += 1
            s.close()
            return
        c.sock = s
        conns[i] = c
        st["opens"] += 1
        sel.register(s, selectors.EVENT_WRITE, i)

    def step(i, ev):
        c = conns[i]
        try:
            if c.state == "connect":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    st["connect_errors"] += 1
                    close(i, False)
                    return
                if c.kind == "silent":
                    up(c, i)
                    sel.modify(c.sock, selectors.EVENT_READ, i)
                elif c.kind == "hello":
                    c.sock.send(HALF_HELLO)
                    up(c, i)
                    sel.modify(c.sock, selectors.EVENT_READ, i)
                elif c.kind == "trickle":
                    up(c, i)
                    sel.modify(c.sock, selectors.EVENT_READ, i)
                else:
                    sel.unregister(c.sock)
                    c.tls = ctx.wrap_socket(c.sock, server_hostname="127.0.0.1", do_handshake_on_connect=False)
                    c.sock = c.tls
                    c.state = "handshake"
                    sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
                    step(i, ev)
                return
            if c.state == "handshake":
                try:
                    c.tls.do_handshake()
                except ssl.SSLWantReadError:
                    sel.modify(c.sock, selectors.EVENT_READ, i)
                    return
                except ssl.SSLWantWriteError:
                    sel.modify(c.sock, selectors.EVENT_WRITE, i)
                    return
                up(c, i)
                sel.modify(c.sock, selectors.EVENT_READ, i)
                return
            # up: anything readable is the server closing (or answering, which it must not yet)
            try:
                data = c.sock.recv(4096)
            except (ssl.SSLWantReadError, BlockingIOError):
                return
            if not data:
                close(i, True)
        except (OSError, ssl.SSLError):
            close(i, True)

    header = b"POST /ftm/v1/cb/" + b"A" * 32 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4000
    for i in range(len(slots)):
        start(i)
    while now() < end and not (a.stop and os.path.exists(a.stop)):
        for key, ev in sel.select(timeout=0.05):
            if conns[key.data] is not None:
                step(key.data, ev)
        t = now()
        while reopen and reopen[0][0] <= t and st["opens"] < a.max_opens:
            i = heapq.heappop(reopen)[2]
            if conns[i] is None:
                start(i)
        while due and due[0][0] <= t:
            _, _, i, c = heapq.heappop(due)
            if conns[i] is not c:
                continue        # closed since
            try:
                if c.kind == "slow":
                    c.tls.send(header[c.sent % len(header):c.sent % len(header) + 1])
                else:
                    c.sock.send(TRICKLE_HELLO[c.sent % len(TRICKLE_HELLO):c.sent % len(TRICKLE_HELLO) + 1])
                c.sent += 1
            except (ssl.SSLWantWriteError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                close(i, True)
                continue
            heapq.heappush(due, (t + a.trickle, next(seq), i, c))
        if t - last_status >= 1.0:
            last_status = t
            st["t"] = round(t - t_start, 1)
            for k in kinds:
                if lives[k]:
                    v = sorted(lives[k])
                    st["life_p90"][k] = round(v[int(0.9 * (len(v) - 1))], 2)
            tmp = a.status + ".tmp"
            with open(tmp, "w") as f:
                json.dump(st, f)
            os.replace(tmp, a.status)
    for k in kinds:
        if lives[k]:
            v = sorted(lives[k])
            st["life_p90"][k] = round(v[int(0.9 * (len(v) - 1))], 2)
    st["t"] = round(now() - t_start, 1)
    for i in range(len(conns)):
        close(i, False)
    st["open"] = dict.fromkeys(kinds, 0)
    with open(a.status, "w") as f:
        json.dump(st, f)
    print(json.dumps(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())

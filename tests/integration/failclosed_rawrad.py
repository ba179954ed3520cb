#!/usr/bin/env python3
# Helper of failclosed_radius_input.test (not a test): radclient cannot put a NUL byte inside a string
# attribute, so this builds the Access-Request itself (RFC 2865 User-Password hiding, hashlib MD5).
# rawrad.py HOST PORT SECRET USER_HEX PASSWORD_HEX [STATE_HEX]: one Access-Request with exactly these
# bytes (NULs included) and a Message-Authenticator (RFC 3579, the server requires one: BlastRADIUS);
# prints the reply code name and the Reply-Message.
import hashlib, hmac, os, socket, struct, sys
host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
user, pw = bytes.fromhex(sys.argv[4]), bytes.fromhex(sys.argv[5])
state = bytes.fromhex(sys.argv[6]) if len(sys.argv) > 6 else None
auth = os.urandom(16)
def hide(p):
    p = p + b"\0" * (-len(p) % 16 or (16 if not p else 0))
    out, prev = b"", auth
    for i in range(0, len(p), 16):
        b = hashlib.md5(secret + prev).digest()
        c = bytes(x ^ y for x, y in zip(p[i:i+16], b))
        out += c; prev = c
    return out
attrs = bytes([1, 2 + len(user)]) + user
hp = hide(pw)
attrs += bytes([2, 2 + len(hp)]) + hp
if state is not None:
    attrs += bytes([24, 2 + len(state)]) + state
attrs += bytes([80, 18]) + b"\0" * 16
hdr = struct.pack(">BBH", 1, os.getpid() & 0xff, 20 + len(attrs))
mac = hmac.new(secret, hdr + auth + attrs, hashlib.md5).digest()
pkt = hdr + auth + attrs[:-16] + mac
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(10)
s.sendto(pkt, (host, port))
try:
    r = s.recv(4096)
except socket.timeout:
    print("none"); sys.exit(0)
names = {2: "Access-Accept", 3: "Access-Reject", 11: "Access-Challenge"}
msg, i = "", 20
while i < len(r):
    t, l = r[i], r[i+1]
    if t == 18: msg = r[i+2:i+l].decode(errors="replace")
    i += l
print(names.get(r[0], str(r[0])) + ("\t" + msg if msg else ""))

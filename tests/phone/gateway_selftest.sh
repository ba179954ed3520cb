# gateway_selftest.sh: the push gateway part of tests/integration/phone_selftest.test (sourced by it;
# uses its PH, C, GW, CB, FTM_TMP, ctl, check). Envelopes are sealed here with python3-cryptography
# from docs/protocol.md section 3; the doc's test vector is checked first.

# seal SERIAL SEEDHEX TX CALLBACK [NUMBER]: print an envelope (docs/protocol.md section 3)
seal() {
  python3 - "$@" <<'EOF'
import base64, hashlib, hmac, json, os, sys, time
sys.path.insert(0, os.environ["PH"])
import protocol
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
serial, seedhex, tx, cb = sys.argv[1:5]
number = sys.argv[5] if len(sys.argv) > 5 else ""
seed = bytes.fromhex(seedhex)
t = int(time.time())
numbers = sorted({number, "%02d" % ((int(number) + 23) % 90 + 10), "%02d" % ((int(number) + 61) % 90 + 10)}) if number else []
plain = {"v": 1, "tx": tx, "sn": serial, "user": "gwuser", "client": "192.0.2.10", "nas": "vpn",
         "host": "selftest", "time": t, "expires": t + 60, "callback": cb, "number": number,
         "numbers": numbers, "message": "Approve login for user gwuser from 192.0.2.10 to vpn (selftest)?"}
p = padding.PKCS7(128).padder()
padded = p.update(json.dumps(plain).encode()) + p.finalize()
iv = os.urandom(16)
e = Cipher(algorithms.AES(protocol.derive_key(seed, protocol.LABEL_ENC)), modes.CBC(iv)).encryptor()
ct = e.update(padded) + e.finalize()
mac = hmac.new(protocol.derive_key(seed, protocol.LABEL_MAC), iv + ct, hashlib.sha256).digest()
if os.environ.get("BADMAC"):
    mac = bytes([mac[0] ^ 1]) + mac[1:]
msg = json.dumps({"ciphertext": base64.b64encode(ct).decode(), "sn": serial,
                  "hmac": base64.b64encode(mac).decode(), "iv": base64.b64encode(iv).decode()})
print(json.dumps({"sender": "127.0.0.1", "registration_id": "reg-" + serial, "app": "FTM",
                  "platform": "android", "message": msg}))
EOF
}
export PH
GWURL="https://127.0.0.1:$GW/ftm-gateway/v1/push"
GWCB="https://127.0.0.1:$CB/ftm/v1/gw"
gwpost() { curl -s -o "$FTM_TMP/gw.out" -w '%{http_code}' --cacert "$C/ca.pem" -H 'Content-Type: application/json' --data-binary @- "$GWURL"; }
cb_status_count() { if [ -f "$FTM_TMP/cb.log" ]; then grep -F "$1" "$FTM_TMP/cb.log" | grep -c "\"status\": $2"; else echo 0; fi; }

check "the test vector of docs/protocol.md opens and its proof matches" python3 - "$FTM_SRCDIR/docs/protocol.md" <<'EOF'
import os, re, sys
sys.path.insert(0, os.environ["PH"])
import protocol
doc = open(sys.argv[1]).read()
env = re.search(r'\n(\{"sender":"127\.0\.0\.1".*\})\n', doc).group(1)
seed = bytes.fromhex("3132333435363738393031323334353637383930")
e = protocol.open_envelope(env.encode(), {}, {"FTKMOB0000000001": seed})
assert e["tx"] == "00112233445566778899aabbccddeeff" and e["user"] == "alice", e
assert e["callback_url"] == "https://127.0.0.1:4433/ftm/v1/gw"
req = protocol.gateway_callback(e, "approve", None, False)
assert "56533585b62a484eeb382d943cc7c8b194d347edfeb23660c23186b090246ede" in req["body"], req
assert req["body"] in doc, req["body"]
EOF

SEED1=$(openssl rand -hex 20); SEED2=$(openssl rand -hex 20)
TX1=$(openssl rand -hex 16); TX2=$(openssl rand -hex 16); TX3=$(openssl rand -hex 16); TX4=$(openssl rand -hex 16)
cat >"$FTM_TMP/tx.json" <<EOF
{"$TX1": {"seed": "$SEED1"}, "$TX2": {"seed": "$SEED1"}, "$TX3": {"seed": "$SEED2"},
 "$TX4": {"seed": "$SEED2", "number": "42"}}
EOF
ctlq seed FTKMOBGW00000001 "$SEED1"
ctlq seed FTKMOBGW00000002 "$SEED2"

ctlq behave FTKMOBGW00000001 approve,replay
check "gateway accepts a sealed envelope (200)" [ "$(seal FTKMOBGW00000001 "$SEED1" "$TX1" "$GWCB" | gwpost)" = 200 ]
check "the phone answered on the callback" ctlq wait-callback FTKMOBGW00000001 --timeout 10
check "the listener accepted the proof (200)" [ "$(cb_status_count "$TX1" 200)" = 1 ]
check "the push shows the user from the plaintext" [ "$(ctl last-push FTKMOBGW00000001 --field user)" = gwuser ]

check "replay: envelope accepted" [ "$(seal FTKMOBGW00000001 "$SEED1" "$TX2" "$GWCB" | gwpost)" = 200 ]
ctlq wait-callback FTKMOBGW00000001 --count 3 --timeout 10
check "replay: first 200, then 409" sh -c "[ $(cb_status_count "$TX2" 200) = 1 ] && [ $(cb_status_count "$TX2" 409) = 1 ]"

ctlq behave FTKMOBGW00000002 forge,right-number
check "forge: envelope accepted" [ "$(seal FTKMOBGW00000002 "$SEED2" "$TX3" "$GWCB" | gwpost)" = 200 ]
ctlq wait-callback FTKMOBGW00000002 --timeout 10
check "forge: the listener refused the proof (403)" [ "$(cb_status_count "$TX3" 403)" = 1 ]
check "number: envelope accepted" [ "$(seal FTKMOBGW00000002 "$SEED2" "$TX4" "$GWCB" 42 | gwpost)" = 200 ]
ctlq wait-callback FTKMOBGW00000002 --count 2 --timeout 10
check "number: the phone shows 42" [ "$(ctl number FTKMOBGW00000002)" = 42 ]
check "number: the right number approved (200)" sh -c "grep -F '$TX4' '$FTM_TMP/cb.log' | grep -F '\"status\": 200' | grep -q approve"

n=$(ctl rejected --service gateway)
check "bad hmac: 403" [ "$(BADMAC=1 seal FTKMOBGW00000001 "$SEED1" "$(openssl rand -hex 16)" "$GWCB" | gwpost)" = 403 ]
check "unknown serial: 404" [ "$(seal FTKMOBGW00000009 "$SEED1" "$(openssl rand -hex 16)" "$GWCB" | gwpost)" = 404 ]
check "wrong app: 400" [ "$(echo '{"sender":"x","registration_id":"r","app":"NOPE","platform":"android","message":"{}"}' | gwpost)" = 400 ]
check "refused envelopes recorded" [ "$(ctl rejected --service gateway)" = $((n + 3)) ]

# lib-push.sh: push helpers for the push_*.test scripts (sourced after lib-radius.sh, bash).
# The simulated phone (tests/phone/: ntfy server, push gateway, phone) on loopback, and the push
# options of rlm_ftmpush pointing at it. Ports: FTM_PORT_BASE = RADIUS, +1 ntfy, +2 gateway,
# +3 phone control, +4 ftmpush's callback listener.
#
#   push_setup [TIMEOUT]   radius_setup + push_phone_start
#   push_phone_start [TIMEOUT]  certificates + phone started + push options (status enable,
#                          server 127.0.0.1, listener on +4, ca_file = the test CA, gateway_url)
#   PHONECTL ...           tests/phone/phonectl.py for this phone
#   ntfy_target TOPIC      ntfy:https://127.0.0.1:NTFY/TOPIC
#   gw_target REGID        gateway:android/REGID
#   token_push USER TARGET [SEEDHEX]   token_add + its push target; the phone learns the seed
#   rad_auth_bg NAME USER PASSWORD [ATTR=VALUE...]   rad_auth in the background; rad_result NAME
#                          waits for it and sets RAD_CODE / RAD_MSG / RAD_STATE
PHONE_DIR=$FTM_TMP/phone
PHONE_PID=
PUSH_CERTS=$FTM_TMP/certs
NTFY_PORT=$(( FTM_PORT_BASE + 1 ))
GW_PORT=$(( FTM_PORT_BASE + 2 ))
PHONE_CTL_PORT=$(( FTM_PORT_BASE + 3 ))
PUSH_PORT=$(( FTM_PORT_BASE + 4 ))
PHONECTL="python3 $FTM_SRCDIR/tests/phone/phonectl.py --port $PHONE_CTL_PORT"
GATEWAY_URL=https://127.0.0.1:$GW_PORT/ftm-gateway/v1/push

push_cleanup() {
  if [ -n "$PHONE_PID" ]; then kill "$PHONE_PID" 2>/dev/null; wait "$PHONE_PID" 2>/dev/null; PHONE_PID=; fi
  return 0
}

push_setup() {
  radius_setup minimal
  trap 'radius_stop; push_cleanup' EXIT
  push_phone_start "${1:-10}"
}

# The simulated phone and the push options, without touching the RADIUS setup (scripts/demo.sh).
push_phone_start() {
  local timeout=${1:-10}
  python3 -c 'import cryptography' 2>/dev/null || skip "python3-cryptography not installed (scripts/deps.sh)"
  command -v openssl >/dev/null || skip "openssl not installed"
  sh "$FTM_SRCDIR/tests/phone/mkcerts.sh" "$PUSH_CERTS" || fail "mkcerts.sh"
  mkdir -p "$PHONE_DIR"
  python3 "$FTM_SRCDIR/tests/phone/phone.py" --state-dir "$PHONE_DIR" \
    --ntfy-port "$NTFY_PORT" --gateway-port "$GW_PORT" --control-port "$PHONE_CTL_PORT" \
    --tls-cert "$PUSH_CERTS/server.pem" --tls-key "$PUSH_CERTS/server.key" \
    --callback-ca "$PUSH_CERTS/ca.pem" --max-seconds 900 >"$FTM_TMP/phone.log" 2>&1 &
  PHONE_PID=$!
  $PHONECTL wait-ready --timeout 20 >/dev/null || { cat "$FTM_TMP/phone.log"; fail "phone.py not ready"; }
  radius_opt push.status enable
  radius_opt push.server 127.0.0.1
  radius_opt push.server_port "$PUSH_PORT"
  radius_opt push.server_cert "$PUSH_CERTS/server.pem"
  radius_opt push.server_key "$PUSH_CERTS/server.key"
  radius_opt push.ca_file "$PUSH_CERTS/ca.pem"
  radius_opt push.gateway_url "$GATEWAY_URL"
  radius_opt push.timeout "$timeout"
}

ntfy_target() { echo "ntfy:https://127.0.0.1:$NTFY_PORT/$1"; }
gw_target() { echo "gateway:android/$1"; }

token_push() { # USER TARGET [SEEDHEX]
  local out
  token_add "$1" "${3:-}"
  out=$(ctl token push "$TOKEN_SERIAL" "$2" 2>&1) || fail "ftmpushctl token push: $out"
  $PHONECTL seed "$TOKEN_SERIAL" "$TOKEN_SEED" >/dev/null || fail "phonectl seed"
}

# Wait until the callback listener answers (the server is up and its listener too).
push_wait_listener() {
  local i
  for i in $(seq 50); do
    curl -s -o /dev/null --cacert "$PUSH_CERTS/ca.pem" "https://127.0.0.1:$PUSH_PORT/ftm/v1/health" && return 0
    sleep 0.1
  done
  fail "the push callback listener does not answer on $PUSH_PORT"
}

rad_auth_bg() { # NAME USER PASSWORD [ATTR=VALUE...]
  local name=$1 user=$2 pass=$3 a
  shift 3
  {
    printf 'User-Name = "%s"\n' "$user"
    printf 'User-Password = "%s"\n' "$pass"
    echo 'Message-Authenticator = 0x00'
    for a in "$@"; do printf '%s = %s\n' "${a%%=*}" "${a#*=}"; done
  } >"$FTM_TMP/request-$name.txt"
  radclient -x -r 1 -t 60 -f "$FTM_TMP/request-$name.txt" "127.0.0.1:$RAD_PORT" auth "$RAD_SECRET" \
    >"$FTM_TMP/out-$name" 2>&1 &
  eval "RAD_BG_$name=\$!"
}

rad_result() { # NAME
  local pid
  eval "pid=\${RAD_BG_$1:-}"
  [ -n "$pid" ] && wait "$pid" 2>/dev/null
  cp "$FTM_TMP/out-$1" "$RAD_OUT"
  rad_parse
}

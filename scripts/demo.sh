#!/usr/bin/env bash
# README's main command: installs what is needed (scripts/deps.sh), builds ftmpush in build/demo,
# starts a private FreeRADIUS (the stock freeradius binary with rlm_ftmpush, the shipped
# raddb/mods-available/ftmpush and raddb/sites-available/ftmpush, on 127.0.0.1 only, nothing in /etc
# changed), creates a demo user and token, and shows radtest logins: password + code (the code from
# oathtool, as an authenticator app would show it) accepted, the same code again refused as a replay.
# Then a push approved by the simulated phone, and an enrolment by activation link: the link mailed
# through the simulated mail server (aiosmtpd), opened in headless Chromium (a screenshot is kept in
# build/demo-enrol.png), the QR code read by zbarimg, the code from oathtool typed into the page, and
# the first login with the app's next code. Then the same store through PAM: pamtester (via
# pam_wrapper) with a code, and with a push approved through ftmpushd.
# Everything it started is stopped at the end.
# `bash scripts/demo.sh ha`: after the same build, two FreeRADIUS nodes on one private PostgreSQL store
# instead (scripts/demo-ha.sh, docs/ha.md).
#   FTM_SKIP_DEPS=1      do not run scripts/deps.sh
#   FTM_DEMO_PORT=N      RADIUS port on 127.0.0.1 (default 18123)
#   FTM_KEEP=1           keep the demo's config and logs (build/demo-run)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -le 2 ] || jobs=2
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "${FTM_SKIP_DEPS:-0}" != 1 ]; then
  say "dependencies (scripts/deps.sh)"
  bash scripts/deps.sh
fi

say "FreeRADIUS headers (scripts/freeradius-headers.sh)"
bash scripts/freeradius-headers.sh

say "build (build/demo)"
# A tree configured in place (README's "from source" Quick start: ./configure && make) cannot also be
# built out of tree (automake: "source directory already configured"): clean it in place first.
if [ -f "$top/config.status" ]; then
  echo "an in-tree ./configure was run in $top: make distclean there first (the build goes to build/)"
  make -C "$top" distclean >/dev/null 2>&1 || rm -f "$top/config.status" "$top/Makefile" "$top/config.h"
fi
autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
mkdir -p build/demo
(cd build/demo && "$top/configure" --enable-werror --with-freeradius-include="$top/build/freeradius-include" \
   >configure.out || { tail -n 30 configure.out; exit 1; })
make -C build/demo -j"$jobs" >build/demo/make.out 2>&1 || { tail -n 40 build/demo/make.out; exit 1; }
echo "built: build/demo/rlm_ftmpush/.libs/rlm_ftmpush.so, build/demo/tools/ftmpushctl"
if [ "${1:-}" = ha ]; then exec bash "$top/scripts/demo-ha.sh"; fi

# The integration tests' helpers write the private server configuration (lib-radius.sh, "site" mode:
# the shipped raddb files with only token_db and the listen address changed).
run=$top/build/demo-run
rm -rf "$run"
mkdir -p "$run"
export FTM_SRCDIR=$top FTM_BUILDDIR=$top/build/demo FTM_TMP=$run FTM_PORT_BASE=${FTM_DEMO_PORT:-18123}
# shellcheck source=../tests/integration/lib-radius.sh
. "$top/tests/integration/lib-radius.sh"
skip() { echo "demo: cannot run: $*" >&2; exit 1; }
cleanup() {
  radius_stop
  declare -F push_cleanup >/dev/null && push_cleanup
  if [ "${FTM_KEEP:-0}" = 1 ]; then echo "kept: $run"; else rm -rf "$run"; fi
}

say "a private FreeRADIUS on 127.0.0.1:$RAD_PORT with rlm_ftmpush"
radius_setup site
trap cleanup EXIT
radius_user demo 'demo-pass'
radius_start
echo "freeradius -f -l stdout -xx -d $RAD_DIR (pid $RAD_PID), log: $RAD_LOG"
echo "modules: $RAD_DIR/mods-enabled/ftmpush, server: $RAD_DIR/sites-enabled/ftmpush"

say "a user and a token"
echo "users file: demo  Cleartext-Password := \"demo-pass\""
seed=$(openssl rand -hex 20)
echo "\$ ftmpushctl --db $RAD_DB token add demo --seed <20 random bytes>"
ctl token add demo --seed "$seed" | sed 's/^/    /'

# Two logins must fall in one 60 s step for the replay to be a replay: wait for a fresh one if needed.
left=$(( 60 - $(date +%s) % 60 ))
if [ "$left" -lt 10 ]; then echo "(waiting ${left}s for a fresh 60 s step)"; sleep "$left"; fi
code=$(oathtool --totp -s 60 -d 6 "$seed")

show_login() { # PASSWORD DESCRIPTION
  echo
  echo "\$ radtest demo '$1' 127.0.0.1:$RAD_PORT 0 $RAD_SECRET      # $2"
  radtest demo "$1" "127.0.0.1:$RAD_PORT" 0 "$RAD_SECRET" >"$RAD_OUT" 2>&1 || true
  sed -n '/^Received /,$p' "$RAD_OUT" | sed 's/^/    /'
  rad_parse
}

say "logins (the code from: oathtool --totp -s 60 -d 6 <seed>, what the phone app shows: $code)"
show_login "demo-pass$code" "password + code"
[ "$RAD_CODE" = Access-Accept ] || { cat "$RAD_OUT"; tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Accept" >&2; exit 1; }
echo "    -> Access-Accept: password and code verified"

show_login "demo-pass$code" "the same code again"
[ "$RAD_CODE" = Access-Reject ] || { cat "$RAD_OUT"; echo "demo: expected Access-Reject for the replay" >&2; exit 1; }
echo "    -> Access-Reject, Reply-Message: \"$RAD_MSG\""

show_login "wrong-pass$(oathtool --totp -s 60 -d 6 -N "now + 60 seconds" "$seed")" "a wrong password"
echo "    -> $RAD_CODE, Reply-Message: \"$RAD_MSG\" (the code was not consumed, no failure counted)"

say "token state"
ctl token list | sed 's/^/    /'

# ---- push demo (the push engineer adds a push login here) ----
# The simulated phone of the tests (tests/phone/: an ntfy server and a phone that taps Approve) stands
# in for the ntfy app; the server restarts with push { } enabled and its HTTPS callback listener.
. "$top/tests/integration/lib-push.sh"
say "push: the simulated phone (ntfy) and push { status = enable } in the module"
radius_stop
push_phone_start 30
radius_user erin 'erin-pass'
radius_start
push_wait_listener
echo "callback listener: https://127.0.0.1:$PUSH_PORT/ftm/v1/ (cert: $PUSH_CERTS/server.pem)"
topic=ftm-demo-$(openssl rand -hex 6)
echo "\$ ftmpushctl --db $RAD_DB token push <serial> ntfy:https://127.0.0.1:$NTFY_PORT/$topic"
serial=$(ctl token list --user demo | awk 'NR > 1 && $1 ~ /^FTK/ { print $1; exit }')
[ -n "$serial" ] || serial=$(ctl token list | grep -o 'FTKMOB[0-9A-F]*' | head -n 1)
ctl token push "$serial" "ntfy:https://127.0.0.1:$NTFY_PORT/$topic" | sed 's/^/    /'
$PHONECTL behave "$topic" 'delay:3:approve' >/dev/null
start=$(date +%s)
show_login "demo-pass" "password only: a push; the phone approves after 3 s"
echo "    -> $RAD_CODE after $(( $(date +%s) - start ))s"
echo "    the phone showed: $($PHONECTL last-push "$topic" --field message)"
[ "$RAD_CODE" = Access-Accept ] || { tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Accept for the approved push" >&2; exit 1; }
$PHONECTL behave "$topic" 'delay:1:deny' >/dev/null
show_login "demo-pass" "password only again; this time the phone denies"
echo "    -> $RAD_CODE, Reply-Message: \"$RAD_MSG\""

say "enrolment by activation link: the mail, the page in a browser, the first login"
smtp_dir=$run/mail
python=/usr/bin/python3
$python "$top/tests/phone/smtp_server.py" --port $(( FTM_PORT_BASE + 5 )) --dir "$smtp_dir" --max-seconds 120 \
  --tls-cert "$PUSH_CERTS/server.pem" --tls-key "$PUSH_CERTS/server.key" >"$run/smtp.log" 2>&1 &
smtp_pid=$!
for _ in $(seq 100); do [ -s "$smtp_dir/ready" ] && break; sleep 0.1; done
cat >"$run/ftmpush.conf" <<EOF
token_db = $RAD_DB
issuer = Demo Corp
[push]
status = enable
server = 127.0.0.1
server_port = $PUSH_PORT
[smtp]
server = smtp://127.0.0.1:$(( FTM_PORT_BASE + 5 ))
from = mfa@demo.example
ca_file = $PUSH_CERTS/ca.pem
EOF
echo "ftmpushctl's config $run/ftmpush.conf: the listener's address (push.server, push.server_port) and [smtp]"
echo "\$ ftmpushctl --config $run/ftmpush.conf token add erin --email erin@demo.example"
"$FTMPUSHCTL" --config "$run/ftmpush.conf" token add erin --email erin@demo.example | sed 's/^/    /'
link=$(grep -o "https://127.0.0.1:$PUSH_PORT/ftm/v1/enroll/[A-Za-z0-9_-]*" "$smtp_dir/mail-1.eml")
echo "the simulated mail server received ($smtp_dir/mail-1.eml):"
sed -n '/^Subject:/p; /^Hello/,$p' "$smtp_dir/mail-1.eml" | tr -d '\r' | sed 's/^/    /'
cat >"$run/app.sh" <<'EOF'
#!/bin/sh
# what the phone app does: scan the QR code in the screenshot, show the code
uri=$(zbarimg -q --raw "$1" | grep '^otpauth://' | head -n 1)
printf '%s\n' "$uri" >"$1.uri"
oathtool --totp -b -s 60 -d 6 "$(printf '%s' "$uri" | sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p')"
EOF
chmod +x "$run/app.sh"
left=$(( 60 - $(date +%s) % 60 ))
if [ "$left" -lt 10 ]; then echo "(waiting ${left}s for a fresh 60 s step)"; sleep "$left"; fi
spki=$(openssl x509 -in "$PUSH_CERTS/server.pem" -pubkey -noout | openssl pkey -pubin -outform der |
  openssl dgst -sha256 -binary | base64)
echo "headless Chromium opens the link, the QR code is scanned (zbarimg), the code typed, Activate pressed"
$python "$top/tests/phone/browser.py" --out "$run/web" --spki "$spki" "$link" --type-code-from "$run/app.sh" >/dev/null ||
  { echo "demo: the browser could not enrol" >&2; exit 1; }
cp "$run/web/page.png" "$top/build/demo-enrol.png"
echo "    screenshot of the page: build/demo-enrol.png"
echo "    the page then says: $(head -n 1 "$run/web/after.txt")"
kill "$smtp_pid" 2>/dev/null || true
eseed=$(sed -n 's/.*secret=\([A-Z2-7]*\).*/\1/p' "$run/web/page.png.uri")
ecode=$(oathtool --totp -b -s 60 -d 6 -N "now + 60 seconds" "$eseed")
echo
echo "\$ radtest erin 'erin-pass$ecode' 127.0.0.1:$RAD_PORT 0 $RAD_SECRET      # the first login: password + the app's next code"
radtest erin "erin-pass$ecode" "127.0.0.1:$RAD_PORT" 0 "$RAD_SECRET" >"$RAD_OUT" 2>&1 || true
sed -n '/^Received /,$p' "$RAD_OUT" | sed 's/^/    /'
rad_parse
[ "$RAD_CODE" = Access-Accept ] || { tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Accept after the enrolment" >&2; exit 1; }
echo "    -> Access-Accept: erin enrolled herself"
push_cleanup

# ---- PAM: the same store through pam_ftmpush, pamtester and pam_wrapper (no change to /etc/pam.d) ----
radius_stop
# lib-pam.sh is written for the tests (explicit checks, no errexit): every step below checks its outcome.
set +e +o pipefail
# shellcheck source=../tests/integration/lib-pam.sh
. "$top/tests/integration/lib-pam.sh"
skip() { echo "demo: cannot run: $*" >&2; exit 1; }
trap 'push_cleanup; cleanup' EXIT
say "PAM: pam_ftmpush with pamtester (through pam_wrapper), the same token store"
pam_setup
pam_user demo 'demo-pass'
pam_service login
echo "service file $PAM_SVCDIR/login:"
sed 's/^/    /' "$PAM_SVCDIR/login"
echo "config $PAM_CONF:"
sed 's/^/    /' "$PAM_CONF"
pcode=$(oathtool --totp -s 60 -d 6 -N "now + 60 seconds" "$seed")
echo
echo "\$ pamtester login demo authenticate      # typed: demo-pass$pcode (the next step's code, inside the drift window)"
login login demo "demo-pass$pcode"
[ "$LOGIN_RC" -eq 0 ] || { echo "demo: expected PAM success for password + code" >&2; exit 1; }
echo "    -> PAM_SUCCESS: password and code verified, no push"
echo
echo "\$ pamtester login demo authenticate      # the same code again"
login login demo "demo-pass$pcode"
[ "$LOGIN_RC" -ne 0 ] || { echo "demo: expected a PAM failure for the replay" >&2; exit 1; }
echo "    -> refused (a code used over RADIUS or PAM is a replay on both paths)"

say "PAM push: ftmpushd owns the callback port, the PAM login waits on its socket"
phone_start
push_conf 30
ptopic=ftm-demo-pam-$(openssl rand -hex 6)
ctl token push "$serial" "$(ntfy_target "$ptopic")" >"$FTM_TMP/push.out" 2>&1 || { cat "$FTM_TMP/push.out"; exit 1; }
sed 's/^/    /' "$FTM_TMP/push.out"
ftmpushd_start
echo "ftmpushd -f -d -c $PAM_CONF (pid $FTMPUSHD_PID), socket $PUSH_SOCKET, listener 127.0.0.1:$PUSH_PORT"
$PHONECTL behave "$ptopic" 'delay:2:approve' >/dev/null
echo
echo "\$ pamtester login demo authenticate      # typed: demo-pass, then Enter at the push prompt; the phone approves after 2 s"
start=$(date +%s)
login login demo "demo-pass" ""
[ "$LOGIN_RC" -eq 0 ] || { cat "$FTM_TMP/ftmpushd.log"; echo "demo: expected PAM success for the approved push" >&2; exit 1; }
echo "    -> PAM_SUCCESS after $(( $(date +%s) - start ))s; the phone showed: $($PHONECTL last-push "$ptopic" --field message)"
push_cleanup

say "done: stopping everything"

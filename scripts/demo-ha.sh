#!/usr/bin/env bash
# `bash scripts/demo.sh ha`: two FreeRADIUS nodes (the stock freeradius with rlm_ftmpush) on one private
# PostgreSQL store (initdb in a temp dir, Unix socket only, nothing in /etc changed): a user logs in
# with password + code on node A, and the same code is refused on node B as a replay; then a push held
# on node A is approved by the simulated phone through node B's callback listener (a balancer in front
# of the nodes). Run by demo.sh after it built ftmpush in build/demo; everything it started is stopped
# at the end.
#   FTM_DEMO_PORT=N   base port on 127.0.0.1 (default 18123; nodes on N+10 and N+11, the phone on
#                     N+1..N+3, the nodes' callback listeners on N+4 and N+5)
#   FTM_KEEP=1        keep the demo's configs and logs (build/demo-ha-run)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

run=$top/build/demo-ha-run
rm -rf "$run"
mkdir -p "$run"
export FTM_SRCDIR=$top FTM_BUILDDIR=$top/build/demo FTM_TMP=$run FTM_PORT_BASE=${FTM_DEMO_PORT:-18123}
export FTM_REQUIRE_PG=1
# The integration tests' helpers: lib-radius.sh writes each node's private configuration, lib-pg.sh
# runs the private PostgreSQL. They are written for tests (explicit checks, no errexit).
set +e +o pipefail
. "$top/tests/integration/lib-radius.sh"
. "$top/tests/integration/lib-pg.sh"
. "$top/tests/integration/lib-push.sh"
skip() { echo "demo: cannot run: $*" >&2; exit 1; }
cleanup() {
  rad_nodes_stop
  push_cleanup
  pg_cleanup
  if [ "${FTM_KEEP:-0}" = 1 ]; then echo "kept: $run"; else rm -rf "$run"; fi
}

say "a private PostgreSQL (initdb in a temp dir, Unix socket only)"
radius_setup minimal
trap cleanup EXIT
pg_store_setup
echo "server: $PG_BIN/postgres, socket directory $PG_HOST, log $PG_LOG"
echo "token_db = $PG_URI"
echo "key_file = $PG_KEY     (the same file on every node)"

say "two FreeRADIUS nodes on that database"
for n in A B; do
  rad_node "$n"
  radius_setup minimal
  trap cleanup EXIT
  radius_user demo 'demo-pass'
done
seed=$(openssl rand -hex 20)
echo "\$ ftmpushctl --db '$PG_URI' --key-file $PG_KEY token add demo --seed <20 random bytes>"
ctl token add demo --seed "$seed" --no-qr | sed 's/^/    /'
for n in A B; do
  rad_node "$n"
  radius_start
  echo "node $n: freeradius -f -d $RAD_DIR on 127.0.0.1:$RAD_PORT (pid $RAD_PID), module section:"
  sed 's/^/    /' "$RAD_DIR/mods-enabled/ftmpush"
done

left=$(( 60 - $(date +%s) % 60 ))
if [ "$left" -lt 10 ]; then echo "(waiting ${left}s for a fresh 60 s step)"; sleep "$left"; fi
code=$(oathtool --totp -s 60 -d 6 "$seed")

show_login() { # NODE PASSWORD DESCRIPTION
  rad_node "$1"
  echo
  echo "\$ radtest demo '$2' 127.0.0.1:$RAD_PORT 0 $RAD_SECRET      # node $1: $3"
  radtest demo "$2" "127.0.0.1:$RAD_PORT" 0 "$RAD_SECRET" >"$RAD_OUT" 2>&1 || true
  sed -n '/^Received /,$p' "$RAD_OUT" | sed 's/^/    /'
  rad_parse
}

say "logins (the code from: oathtool --totp -s 60 -d 6 <seed>: $code)"
show_login A "demo-pass$code" "password + code"
[ "$RAD_CODE" = Access-Accept ] || { tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Accept on node A" >&2; exit 1; }
echo "    -> Access-Accept on node A"
show_login B "demo-pass$code" "the same code on the other node"
[ "$RAD_CODE" = Access-Reject ] || { tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Reject on node B" >&2; exit 1; }
echo "    -> Access-Reject on node B, Reply-Message: \"$RAD_MSG\" (one database: a used code is used everywhere)"

say "the token as every node sees it"
ctl token list | sed 's/^/    /'

say "push: a push held on node A, approved through node B's callback listener"
# The simulated phone of the tests (tests/phone/: an ntfy server and a phone that taps Approve); each
# node gets push { } and its own callback listener. The phone's route stands in for a balancer that
# sends the callbacks for A's address to B.
push_phone_start 30
port_a=$PUSH_PORT port_b=$(( FTM_PORT_BASE + 5 ))
rad_nodes_stop
for n in A B; do
  rad_node "$n"
  port=$port_a; [ "$n" = B ] && port=$port_b
  radius_opt push.server_port "$port"
  radius_start
  PUSH_PORT=$port push_wait_listener
  echo "node $n: restarted with push { status = enable; server = 127.0.0.1; server_port = $port }"
done
topic=ftm-demo-$(openssl rand -hex 6)
serial=$(ctl token list | grep -o 'FTKMOB[0-9A-F]*' | head -n 1)
echo "\$ ftmpushctl --db '$PG_URI' --key-file $PG_KEY token push $serial ntfy:https://127.0.0.1:$NTFY_PORT/$topic"
ctl token push "$serial" "ntfy:https://127.0.0.1:$NTFY_PORT/$topic" | sed 's/^/    /'
$PHONECTL route "127.0.0.1:$port_a" "127.0.0.1:$port_b" >/dev/null
echo "the phone's callbacks for https://127.0.0.1:$port_a (node A) now reach 127.0.0.1:$port_b (node B)"
$PHONECTL behave "$topic" 'delay:2:approve' >/dev/null
start=$(date +%s)
show_login A "demo-pass" "password only: node A holds the login for the push; the phone approves after 2 s"
echo "    -> $RAD_CODE on node A after $(( $(date +%s) - start ))s"
[ "$RAD_CODE" = Access-Accept ] || { tail -n 40 "$RAD_LOG"; echo "demo: expected Access-Accept on node A" >&2; exit 1; }
cb=$($PHONECTL callbacks "$topic" --json | python3 -c 'import json,sys; c=json.load(sys.stdin)[-1]; print(c["url"].rsplit("/",1)[0]+"/...", "->", c.get("routed_to"), c.get("status"))')
echo "    the phone's Approve: $cb"
echo "    node B's log: $(grep -h 'recorded in the token store' "$FTM_TMP/radiusd-B.log" | tail -n 1 | sed 's/^.*push /push /')"
echo "    node A's log: $(grep -h "push [0-9a-f]\{8\} for 'demo' from .*: approved" "$FTM_TMP/radiusd-A.log" | tail -n 1 | sed 's/^.*push /push /')"
echo "    the row:      $(pg_sql ftm "SELECT left(id, 8) || '... user ' || username || ', verdict ' || verdict || ' (' || reason || ')' FROM ftm_pushes ORDER BY expires DESC LIMIT 1")"
say "done: stopping everything"

# lib-pg.sh: a private PostgreSQL server for the pg_*.test scripts and the PostgreSQL unit test (sourced, bash).
# initdb in a fresh directory, the server on a Unix socket in that directory only (no TCP port), trust
# authentication for the role ftm (initdb --no-sync: a throw-away cluster; the server keeps fsync on, and
# client_connection_check_interval ends the session of a client killed mid-statement within 200 ms). initdb refuses root: as root the directory belongs to nobody and
# the server runs as nobody.
#
#   pg_start              skip (77) without the server binaries, unless FTM_REQUIRE_PG=1 (CI: fail);
#                         sets PG_HOST (the socket directory), PG_DATA, PG_LOG
#   pg_uri DB             postgresql:///DB?host=PG_HOST&user=ftm
#   pg_createdb DB        a new empty database
#   pg_sql DB SQL         psql -XAtq -c SQL on DB; output on stdout
#   pg_stop [MODE]        pg_ctl stop -m MODE (fast by default; immediate = a crash)
#   pg_start_again        start the stopped server on the same data directory
#   pg_cleanup            stop the server and remove its directory (call it from the test's EXIT trap)
# FTM_PG_OPTS: more server options for a measurement run (e.g. "-c shared_preload_libraries=pg_stat_statements").
set -u

PG_BIN=${FTM_PG_BIN:-}
PG_HOST=
PG_DATA=
PG_LOG=
PG_AS=()

pg_skip() {
  if [ "${FTM_REQUIRE_PG:-0}" = 1 ]; then echo "FAIL: $* (FTM_REQUIRE_PG=1)"; exit 1; fi
  echo "SKIP: $*"; exit 77
}

pg_find_bin() {
  local d
  [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && return 0
  for d in /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PG_BIN=$d; return 0; fi
  done
  return 1
}

pg_ctl_run() { "${PG_AS[@]}" "$PG_BIN/pg_ctl" "$@"; }

pg_start() {
  pg_find_bin || pg_skip "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; scripts/deps.sh installs postgresql)"
  command -v psql >/dev/null || pg_skip "psql not found (postgresql-client; scripts/deps.sh)"
  PG_HOST=$(mktemp -d /tmp/ftm-pg.XXXXXX)
  PG_DATA=$PG_HOST/data
  PG_LOG=$PG_HOST/server.log
  if [ "$(id -u)" = 0 ]; then
    chown nobody "$PG_HOST"
    PG_AS=(runuser -u nobody --)
  fi
  "${PG_AS[@]}" "$PG_BIN/initdb" -N -D "$PG_DATA" -A trust -U ftm >"$PG_HOST/initdb.log" 2>&1 \
    || { cat "$PG_HOST/initdb.log"; echo "FAIL: initdb"; exit 1; }
  pg_start_again
}

pg_start_again() {
  pg_ctl_run -D "$PG_DATA" -o "-c listen_addresses= -k $PG_HOST -c fsync=on -c client_connection_check_interval=200ms ${FTM_PG_OPTS:-}" -l "$PG_LOG" -w -t 120 start \
    >/dev/null || { tail -n 30 "$PG_LOG"; echo "FAIL: pg_ctl start"; exit 1; }
}

pg_stop() {
  [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ] && pg_ctl_run -D "$PG_DATA" -m "${1:-fast}" -w -t 120 stop >/dev/null 2>&1
  return 0
}

pg_cleanup() {
  pg_stop immediate
  [ -n "$PG_HOST" ] && [ "${FTM_KEEP:-0}" != 1 ] && rm -rf "$PG_HOST"
  return 0
}

pg_uri() { echo "postgresql:///$1?host=$PG_HOST&user=ftm"; }
pg_sql() { psql -XAtq -v ON_ERROR_STOP=1 "$(pg_uri "$1")" -c "$2"; }
pg_createdb() { pg_sql postgres "CREATE DATABASE $1" >/dev/null || { echo "FAIL: createdb $1"; exit 1; }; }

# ---- FreeRADIUS nodes, PAM and ftmpushctl on one database (source lib-radius.sh first) ----
#   pg_store_setup   pg_start, the database ftm; PG_URI and PG_KEY (the one seed key file of every node);
#                    the RADIUS nodes use them (token_db, key_file), and so does ctl
#   pg_pam_setup     pam_setup (lib-pam.sh) with the same token_db and key_file
#   rad_node NAME    make NAME (A, B, C) the node radius_setup/radius_user/radius_start/rad_auth act on:
#                    its own config directory, log and port (FTM_PORT_BASE + 10, + 11, + 12)
#   rad_nodes_stop   stop every node (with pg_cleanup in the test's EXIT trap)
#   pg_wait_sleeping N  wait (10 s at most) until N sessions sit in pg_sleep (a test trigger)
PG_URI=
PG_KEY=
RAD_NODE=
declare -A NODE_PID=()

pg_store_setup() {
  pg_start
  pg_createdb ftm
  PG_URI=$(pg_uri ftm)
  PG_KEY=$FTM_TMP/seed.key
  RAD_DB=$PG_URI
  radius_opt key_file "$PG_KEY"
}

pg_pam_setup() {
  pam_setup
  pam_conf_set token_db "$PG_URI"
  pam_conf_set key_file "$PG_KEY"
  pg_ctl_fn
}

# lib-radius.sh and lib-pam.sh each define ctl for their own store: the shared one is this.
pg_ctl_fn() { ctl() { "$FTMPUSHCTL" --db "$PG_URI" --key-file "$PG_KEY" "$@"; }; }

rad_node() {
  local idx
  [ -n "$RAD_NODE" ] && NODE_PID[$RAD_NODE]=$RAD_PID
  RAD_NODE=$1
  case $1 in A) idx=0;; B) idx=1;; *) idx=2;; esac
  RAD_DIR=$FTM_TMP/raddb-$1
  RAD_USERS=$RAD_DIR/users
  RAD_LOG=$FTM_TMP/radiusd-$1.log
  RAD_OUT=$FTM_TMP/radclient-$1.out
  RAD_CHECK_OUT=$FTM_TMP/config-check-$1.log
  RAD_PORT=$(( FTM_PORT_BASE + 10 + idx ))
  RAD_PID=${NODE_PID[$1]:-}
  [ -z "$PG_URI" ] || pg_ctl_fn	# nodes on an SQLite file keep the test's own ctl
}

rad_nodes_stop() {
  local n cur=$RAD_NODE
  [ -n "$RAD_NODE" ] && NODE_PID[$RAD_NODE]=$RAD_PID
  for n in "${!NODE_PID[@]}"; do rad_node "$n"; radius_stop; NODE_PID[$n]=; done
  [ -n "$cur" ] && rad_node "$cur"
  return 0
}

pg_wait_sleeping() {
  local i
  for i in $(seq 1 100); do
    [ "$(pg_sql ftm "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'")" = "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

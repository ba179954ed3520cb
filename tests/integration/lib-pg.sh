# lib-pg.sh: a private PostgreSQL server for the pg_*.test scripts and the PostgreSQL unit test (sourced, bash).
# initdb in a fresh directory, the server on a Unix socket in that directory only (no TCP port), trust
# authentication for the role ftm (initdb --no-sync: a throw-away cluster; the server keeps fsync on). initdb refuses root: as root the directory belongs to nobody and
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
  pg_ctl_run -D "$PG_DATA" -o "-c listen_addresses= -k $PG_HOST -c fsync=on" -l "$PG_LOG" -w -t 30 start \
    >/dev/null || { tail -n 30 "$PG_LOG"; echo "FAIL: pg_ctl start"; exit 1; }
}

pg_stop() {
  [ -n "$PG_DATA" ] && [ -f "$PG_DATA/postmaster.pid" ] && pg_ctl_run -D "$PG_DATA" -m "${1:-fast}" -w -t 30 stop >/dev/null 2>&1
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

#!/usr/bin/env bash
# bench_store_pg.sh: starts a private PostgreSQL (tests/integration/lib-pg.sh: Unix socket, fsync on)
# and runs bench/bench_store_pg against it and a fresh SQLite file in the same run.
#   bash bench/bench_store_pg.sh [BUILDDIR] [-s SECONDS]     (BUILDDIR default build/test)
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
builddir=${1:-$top/build/test}; shift $(( $# > 0 ? 1 : 0 ))
. "$top/tests/integration/lib-pg.sh"
work=$(mktemp -d /tmp/ftm-bench-pg.XXXXXX)
trap 'pg_cleanup; rm -rf "$work"' EXIT
pg_start
pg_createdb ftm
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on a Unix socket, SQLite in $work (synchronous=FULL both)"
"$builddir/bench/bench_store_pg" -p "$(pg_uri ftm)" -k "$work/seed.key" -q "$work/tokens.db" "$@"

#!/usr/bin/env bash
# test_store_pg.sh: runs test_store_pg against a private PostgreSQL server started for it
# (tests/integration/lib-pg.sh); skip (77) without the server binaries unless FTM_REQUIRE_PG=1.
srcdir=${srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
. "$srcdir/tests/integration/lib-pg.sh"
trap pg_cleanup EXIT
pg_start
export FTM_TEST_PG_HOST=$PG_HOST
export FTM_TEST_PG_STOP="${PG_AS[*]} $PG_BIN/pg_ctl -D $PG_DATA -m immediate -w -t 120 stop >/dev/null"
export FTM_TEST_PG_START="${PG_AS[*]} $PG_BIN/pg_ctl -D $PG_DATA -o '-c listen_addresses= -k $PG_HOST' -l $PG_LOG -w -t 120 start >/dev/null"
./tests/unit/test_store_pg

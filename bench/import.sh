#!/usr/bin/env bash
# import.sh: `ftmpushctl token import` and `token list` of one file of N tokens (as bench/run.sh makes
# it), into a fresh SQLite file and/or a fresh database of a private PostgreSQL (tests/integration/lib-pg.sh:
# Unix socket, fsync on): time and peak RSS, for each build given, in turn, on the same file.
#   bash bench/import.sh [BUILDDIR...]        (default build/quick; two builds = an A/B in one run)
#   BENCH_IMPORT (100000), BENCH_STORE (sqlite|postgresql|both; both), BENCH_ROUNDS (1)
# PostgreSQL's own CPU is reported from /proc for the server's processes (user + sys, all backends),
# for the import and for the list.
# A command that fails is said so (its exit status); a listing must be a header and a line per token,
# and each store's listing the same bytes for every build and round (the time of day fixed: --time).
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || set -- "$top/build/quick"
n=${BENCH_IMPORT:-100000} store=${BENCH_STORE:-both} rounds=${BENCH_ROUNDS:-1}
pg=no
case $store in sqlite) ;; postgresql|both) pg=yes;; *) echo "bench: BENCH_STORE is sqlite, postgresql or both"; exit 1;; esac
work=$(mktemp -d /tmp/ftm-bench-import.XXXXXX)
. "$top/tests/integration/lib-pg.sh"
trap '[ $pg = yes ] && pg_cleanup; rm -rf "$work"' EXIT

python3 - "$n" "$work/import.csv" <<'EOF'
import os, sys
with open(sys.argv[2], "w") as f:
    for i in range(int(sys.argv[1])):
        f.write("FTKIMP%08d,%s,user%d\n" % (i, os.urandom(20).hex(), i))
EOF
if [ $pg = yes ]; then
  pg_start
  echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on a Unix socket (fsync on)"
fi

# The server's CPU so far (clock ticks): the postmaster's own and its reaped children's (a backend that
# ended), plus its live children's.
pg_ticks() {
  local pm t c
  pm=$(head -n 1 "$PG_DATA/postmaster.pid")
  t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for c in $(pgrep -P "$pm"); do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$c/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

db=0 at=$(date +%s)
for r in $(seq 1 "$rounds"); do
  for b in "$@"; do
    ctl=$b/tools/ftmpushctl
    rev=$(git -C "$(dirname "$(readlink -f "$b/config.status")")" rev-parse --short HEAD 2>/dev/null || echo "?")
    for s in sqlite postgresql; do
      case $store in both|$s) ;; *) continue;; esac
      db=$((db + 1))
      if [ $s = sqlite ]; then
        uri=$work/import$db.db args=(--db "$uri")
      else
        pg_createdb "imp$db"
        uri=$(pg_uri "imp$db") args=(--db "$uri" --key-file "$work/seed$db.key")
        t0=$(pg_ticks)
      fi
      echo "== round $r, $b ($rev), $s, $n tokens; $(uptime | sed 's/.*load/load/')"
      /usr/bin/time -f "import: %e s wall, %U s user, %S s sys, peak RSS %M KB, exit %x" \
        "$ctl" "${args[@]}" token import "$work/import.csv" 2>&1 >/dev/null | tail -n 1
      # the session's backend ends after the client: its CPU is the postmaster's once it is reaped
      [ $s = postgresql ] && sleep 0.5 && echo "        server CPU $(( ($(pg_ticks) - t0) * 1000 / $(getconf CLK_TCK) )) ms"
      [ $s = postgresql ] && t0=$(pg_ticks)
      /usr/bin/time -f "list:   %e s wall, %U s user, %S s sys, peak RSS %M KB, exit %x" \
        "$ctl" "${args[@]}" token list --time "$at" 2>&1 >"$work/list.out" | tail -n 1
      [ $s = postgresql ] && sleep 0.5 && echo "        server CPU $(( ($(pg_ticks) - t0) * 1000 / $(getconf CLK_TCK) )) ms"
      lines=$(wc -l <"$work/list.out")
      [ "$lines" = $((n + 1)) ] || echo "        LISTING WRONG: $lines lines, not a header and $n tokens"
      if [ ! -e "$work/first-$s.list" ]; then
        mv "$work/list.out" "$work/first-$s.list"
      elif cmp -s "$work/list.out" "$work/first-$s.list"; then
        echo "        the same listing as the first run's ($1, round 1)"
      else
        echo "        LISTING DIFFERS from the first run's ($1, round 1)"
      fi
      [ $s = postgresql ] && pg_sql postgres "DROP DATABASE imp$db" >/dev/null
    done
  done
done

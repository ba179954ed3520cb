#!/usr/bin/env bash
# bench/run.sh: the login fast path as ratios in one run (see bench/README.md for what it printed here).
#   RADIUS: bench/radius.sh: the PAP floor against rlm_ftmpush password+code on SQLite, on PostgreSQL
#           and on two freeradius nodes on one PostgreSQL database, interleaved rounds, freeradius without
#           -x, bench/radload keeping P requests in flight, N distinct users once each per round;
#   store:  bench_verify (verdicts/s by shape: threads sharing a handle get group commits);
#   import and list of 100k tokens on SQLite and PostgreSQL (bench/import.sh: time and peak RSS);
#   disk:   bench_sync on the benches' /tmp first (a commit's sync, and the inode's share of it), so that
#           every run's store figures can be read against the disk they came from.
# Usage: bash bench/run.sh [BUILDDIR]   (default build/test). Environment: BENCH_ROUNDS (3), BENCH_USERS (4000),
# BENCH_INFLIGHT (64), BENCH_STORE, BENCH_NODES (bench/radius.sh), BENCH_IMPORT (100000), BENCH_PORT
# (32040: loopback, BENCH_PORT .. +20), BENCH_PENDING ("100 1000 2000"), BENCH_ONLY_RADIUS=1 (stop after
# the store and import parts). Not a test: nothing here passes or fails on a figure.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
import_n=${BENCH_IMPORT:-100000} port=${BENCH_PORT:-32040}
ctl=$build/tools/ftmpushctl
for f in "$build/bench/radload" "$ctl" "$build/bench/bench_verify" "$build/bench/bench_sync" "$build/rlm_ftmpush/.libs/rlm_ftmpush.so"; do
  [ -e "$f" ] || { echo "bench: $f not built (make in $build)"; exit 1; }
done
for c in freeradius python3; do command -v $c >/dev/null || { echo "bench: $c not installed (scripts/deps.sh)"; exit 1; }; done

tmp=$(mktemp -d /tmp/ftm-bench.XXXXXX)
cleanup() { wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
umask 077

echo "== the disk under the stores: one commit's sync (bench_sync, 300 commits a shape)"
"$build/bench/bench_sync" "$tmp"
echo

# The RADIUS part is bench/radius.sh (SQLite, PostgreSQL and two PostgreSQL nodes against the PAP floor).
BENCH_PORT=$port bash "$top/bench/radius.sh" "$build"

echo
echo "== token store: verdicts per second (bench_verify, 2 s per shape)"
"$build/bench/bench_verify" -d "$tmp" | tail -n 5

echo
echo "== import and list of $import_n tokens in one file, SQLite and PostgreSQL (bench/import.sh)"
# one round per store (BENCH_ROUNDS is the RADIUS part's); a part that fails is said, not fatal
BENCH_IMPORT=$import_n BENCH_STORE=${BENCH_STORE:-both} BENCH_ROUNDS=1 bash "$top/bench/import.sh" "$build" \
  || echo "(bench/import.sh exited $?)"
echo "(target: import under 5 s; peak memory: import bounded by the file's tokens, list flat)"

[ "${BENCH_ONLY_RADIUS:-0}" = 1 ] && exit 0
echo
echo "== PAM code login: pam_ftmpush against pam_oath (bench/pam.sh)"
bash "$top/bench/pam.sh" "$build" | tail -n 4

echo
echo "== pending pushes held at once (bench/push_pending.sh; BENCH_PENDING sizes)"
bash "$top/bench/push_pending.sh" "$build" ${BENCH_PENDING:-100 1000 2000}

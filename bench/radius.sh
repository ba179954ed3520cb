#!/usr/bin/env bash
# bench/radius.sh: RADIUS password+code logins against the PAP floor, on SQLite, on PostgreSQL and on two
# freeradius nodes sharing one PostgreSQL database, as interleaved rounds of one run.
#   Each round: the PAP floor (a PAP-only virtual server of the SQLite node), then rlm_ftmpush
#   password+code on each store, N distinct users once each (a code is good once), P requests in flight;
#   the two-node figure is two radload instances at once, one per node, P/2 in flight each (P in all),
#   and its rate is all their requests over the longer of the two times.
#   The servers are stock freeradius without -x (readiness by Status-Server), configured by
#   tests/integration/lib-radius.sh's radius_write_conf (plus the bench's thread pool, quiet log and a
#   PAP virtual server); PostgreSQL is a private server of tests/integration/lib-pg.sh (Unix socket,
#   fsync on).
# Usage: bash bench/radius.sh [BUILDDIR]   (default build/test). Environment: BENCH_ROUNDS (3),
# BENCH_USERS (4000), BENCH_INFLIGHT (64), BENCH_PORT (32040: loopback, BENCH_PORT .. +20),
# BENCH_STORE (both: sqlite | postgresql | both), BENCH_NODES (2: 1 = no two-node figure), BENCH_NODE_CPUS (below),
# BENCH_PERF (unset: off; 1 or a perf event list: `perf stat -p` on the SQLite node around its PAP and
# SQLite runs, printed per request: context switches, syscalls by name; needs perf and root),
# BENCH_PERF_RECORD (a directory: `perf record -g -p` of the same runs into DIR/perf-{pap,sqlite}-R.data;
# BENCH_PERF_RECORD_ARGS replaces -g, e.g. "-e syscalls:sys_enter_futex --call-graph dwarf").
# Not a test: nothing here passes or fails on a figure. Codes are computed here (python3 hmac, RFC 6238)
# just before each run: a benchmark needs thousands per round; the tests take theirs from oathtool.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
rounds=${BENCH_ROUNDS:-3} users=${BENCH_USERS:-4000} inflight=${BENCH_INFLIGHT:-64}
stores=${BENCH_STORE:-both} nodes=${BENCH_NODES:-2}
# BENCH_NODE_CPUS (unset: every process on any CPU): "C1 C2" pins node S (SQLite and the PAP floor) and
# node A to CPU C1 and node B to C2 (taskset): each node a server of one vCPU, as nodes on machines of
# their own would be; the database and radload stay unpinned. Every ratio of the run is then one of
# one-vCPU servers (PAP floor included), and "2 nodes / 1 node" says whether a second node's CPU adds
# decisions (on one machine, unpinned, one node already keeps every CPU busy).
read -r cpu_first cpu_second _ <<<"${BENCH_NODE_CPUS:-}" || true
if [ -n "${cpu_first:-}" ]; then
  command -v taskset >/dev/null || { echo "bench: BENCH_NODE_CPUS needs taskset (util-linux)"; exit 1; }
  cpu_second=${cpu_second:-$cpu_first}
fi
radload=$build/bench/radload ctl=$build/tools/ftmpushctl
for f in "$radload" "$ctl" "$build/rlm_ftmpush/.libs/rlm_ftmpush.so"; do
  [ -e "$f" ] || { echo "bench: $f not built (make in $build)"; exit 1; }
done
command -v python3 >/dev/null || { echo "bench: python3 not installed (scripts/deps.sh)"; exit 1; }
case $stores in sqlite|postgresql|both) ;; *) echo "bench: BENCH_STORE is sqlite, postgresql or both"; exit 1;; esac

export FTM_SRCDIR=$top FTM_BUILDDIR=$build FTM_PORT_BASE=${BENCH_PORT:-32040}
export FTM_TMP; FTM_TMP=$(mktemp -d /tmp/ftm-bench-radius.XXXXXX)
. "$top/tests/integration/lib-radius.sh"
. "$top/tests/integration/lib-pg.sh"
set -e
with_sqlite=0 with_pg=0
[ "$stores" = postgresql ] || with_sqlite=1
if [ "$stores" != sqlite ]; then
  if pg_find_bin && command -v psql >/dev/null; then with_pg=1
  else echo "bench: no PostgreSQL server binaries (scripts/deps.sh installs postgresql): SQLite only"; fi
fi
[ "$with_pg" = 1 ] || nodes=1
# BENCH_PG_STATS=FILE: pg_stat_statements of the run (the server started with it, the counters reset
# after the warm-up) written to FILE before the servers stop.
pg_stats() {
  [ -n "${BENCH_PG_STATS:-}" ] && [ "$with_pg" = 1 ] && [ -n "$PG_URI" ] || return 0
  pg_sql ftm "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
    round((total_exec_time / greatest(calls, 1) * 1000)::numeric, 1) AS us_per_call, rows,
    shared_blks_hit, shared_blks_read, shared_blks_dirtied, wal_records, wal_bytes, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
    FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 15" >"$BENCH_PG_STATS" 2>&1 || true
  pg_sql ftm "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE n_tup_ins + n_tup_upd > 0
    ORDER BY relname" >>"$BENCH_PG_STATS" 2>&1 || true
  pg_sql ftm "SELECT 'wal', wal_records, wal_fpi, wal_bytes, wal_write, wal_sync FROM pg_stat_wal" >>"$BENCH_PG_STATS" 2>&1 || true
  pg_sql ftm "SELECT 'commits', xact_commit, xact_rollback FROM pg_stat_database WHERE datname = 'ftm'" >>"$BENCH_PG_STATS" 2>&1 || true
  pg_sql ftm "SELECT 'checkpoints', checkpoints_timed, checkpoints_req, buffers_checkpoint, buffers_backend FROM pg_stat_bgwriter" >>"$BENCH_PG_STATS" 2>&1 || true
}
cleanup() { pg_stats; rad_nodes_stop; pg_cleanup; rm -rf "$FTM_TMP"; }
radius_setup minimal	# skips when freeradius is missing; sets its own EXIT trap, replaced here
trap cleanup EXIT

# The kinds of password+code run each round does: its users (kind-round-i) are its own.
kinds=
[ "$with_sqlite" = 1 ] && kinds="$kinds sqlite"
[ "$with_pg" = 1 ] && kinds="$kinds pg"
[ "$nodes" = 2 ] && kinds="$kinds pg2"

# Seeds and users: USERS file (every node's), pap.tsv, tokens-STORE.csv to import, seeds-KIND-R.tsv.
python3 - "$users" "$rounds" "$FTM_TMP" $kinds <<'EOF'
import os, sys
n, rounds, d, kinds = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4:]
users = open(d + "/users", "w")
with open(d + "/pap.tsv", "w") as pap:
    for i in range(n):
        users.write('pap%d\tCleartext-Password := "pw-%d"\n\n' % (i, i))
        pap.write("pap%d\tpw-%d\n" % (i, i))
for k in kinds:
    with open("%s/tokens-%s.csv" % (d, "sqlite" if k == "sqlite" else "pg"), "a") as csv:
        for r in range(rounds):
            with open("%s/seeds-%s-%d.tsv" % (d, k, r), "w") as seeds:
                for i in range(n):
                    u, seed = "%s-%d-%d" % (k, r, i), os.urandom(20).hex()
                    csv.write("B%s%d%06d,%s,%s\n" % (k.upper(), r, i, seed, u))
                    users.write('%s\tCleartext-Password := "pw-%s"\n\n' % (u, u))
                    seeds.write("%s\t%s\n" % (u, seed))
EOF

# requests SEEDS OUT PARTS: OUT (PARTS 1) or OUT.0, OUT.1 (PARTS 2, every other user), codes of this step.
requests() {
  python3 - "$@" <<'EOF'
import hmac, hashlib, struct, sys, time
seeds, out, parts = sys.argv[1], sys.argv[2], int(sys.argv[3])
step = int(time.time()) // 60
def totp(seed):
    mac = hmac.new(bytes.fromhex(seed), struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000)
files = [open(out if parts == 1 else "%s.%d" % (out, p), "w") for p in range(parts)]
for i, line in enumerate(open(seeds)):
    u, seed = line.split()
    files[i % parts].write("%s\tpw-%s%s\n" % (u, u, totp(seed)))
EOF
}

# node NAME STORE: a freeradius node (lib-radius.sh's configuration) on the store STORE (a path or
# PG_URI), started without -x; its port is RAD_PORT. The SQLite node S also serves the PAP floor.
pap_port=$((FTM_PORT_BASE + 20))
node() {
  local name=$1 store=$2
  rad_node "$name"
  radius_setup minimal
  trap cleanup EXIT	# radius_setup sets its own
  cp "$FTM_TMP/users" "$RAD_USERS"
  RAD_DB=$store
  RAD_OPTS=()
  case $store in postgresql:*) radius_opt key_file "$PG_KEY";; esac
  radius_write_conf
  # What the bench changes in the test configuration: threads started up front (FreeRADIUS adds them
  # only when requests queue), no log line per login, room for every request of a round while
  # cleanup_delay holds the answered ones, and a receive buffer that holds P requests.
  sed -i -e 's/^\(\tstart_servers =\).*/\1 32/' -e 's/^\(\tmin_spare_servers =\).*/\1 8/' \
    -e 's/^\(\tmax_spare_servers =\).*/\1 64/' -e 's/^\(\tauth =\).*/\1 no/' \
    -e 's/^\(max_requests =\).*/\1 65536/' "$RAD_DIR/radiusd.conf"
  sed -i "s/^\(\t\tport = $RAD_PORT\)\$/\1\n\t\trecv_buff = 4194304/" "$RAD_DIR/sites-enabled/default"
  if [ "$name" = S ]; then
    cat >"$RAD_DIR/sites-enabled/pap_floor" <<EOF
server pap_floor {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $pap_port
		recv_buff = 4194304
	}
	authorize {
		files
		pap
	}
	authenticate {
		Auth-Type PAP {
			pap
		}
	}
}
EOF
  fi
  local pin=()
  if [ -n "${cpu_first:-}" ]; then
    case $name in B) pin=(taskset -c "$cpu_second");; *) pin=(taskset -c "$cpu_first");; esac
  fi
  "${pin[@]}" freeradius -f -d "$RAD_DIR" -n radiusd >"$RAD_LOG" 2>&1 &
  RAD_PID=$!
  NODE_PID[$name]=$RAD_PID
  "$radload" -s "127.0.0.1:$RAD_PORT" -w 15 >/dev/null || fail "node $name did not answer Status-Server"
  eval "port_$name=$RAD_PORT pid_$name=$RAD_PID"
}

label() { case $1 in sqlite) echo "SQLite";; pg) echo "PostgreSQL";; pg2) echo "PostgreSQL, 2 nodes";; esac; }
on=; for k in $kinds; do on="${on:+$on; }$(label "$k")"; done
pinned=; [ -z "${cpu_first:-}" ] || pinned=", nodes S and A on CPU $cpu_first, node B on CPU $cpu_second (BENCH_NODE_CPUS)"
echo "== RADIUS: PAP floor vs rlm_ftmpush password+code on $on ($users distinct users per round, $inflight in flight, $rounds rounds, freeradius without -x$pinned)"
if [ "$with_sqlite" = 1 ]; then
  "$ctl" --db "$FTM_TMP/tokens.db" token import "$FTM_TMP/tokens-sqlite.csv" >/dev/null
fi
node S "$FTM_TMP/tokens.db"
if [ "$with_pg" = 1 ]; then
  [ -z "${BENCH_PG_STATS:-}" ] || export FTM_PG_OPTS="${FTM_PG_OPTS:-} -c shared_preload_libraries=pg_stat_statements"
  pg_store_setup
  [ -z "${BENCH_PG_STATS:-}" ] || pg_sql ftm "CREATE EXTENSION pg_stat_statements" >/dev/null
  "$ctl" --db "$PG_URI" --key-file "$PG_KEY" token import "$FTM_TMP/tokens-pg.csv" >/dev/null
  node A "$PG_URI"
  [ "$nodes" = 2 ] && node B "$PG_URI"
fi

# CPU seconds (user + system) the servers PIDS have used: per request it is a figure the noise of a
# shared machine moves much less than requests/s.
server_cpu() {
  local p; for p in "$@"; do cat "/proc/$p/stat" 2>/dev/null; done \
    | awk -v hz="$(getconf CLK_TCK)" '{ s += $14 + $15 } END { printf "%.3f", s / hz }'
}
# The PostgreSQL server's processes (the postmaster's children: the nodes' sessions, the WAL writer...):
# their CPU per request is the database's share of a login on this machine.
pg_pids() { ps -o pid= --ppid "$(head -n 1 "$PG_DATA/postmaster.pid")" | tr '\n' ' '; }
# perf_around PID OUT CMD...: CMD with `perf stat -p PID` counting BENCH_PERF's events into OUT.
perf_events=context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_futex,syscalls:sys_enter_fdatasync,syscalls:sys_enter_pread64,syscalls:sys_enter_pwrite64,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_fcntl,syscalls:sys_enter_mmap,syscalls:sys_enter_munmap,syscalls:sys_enter_newfstatat,syscalls:sys_enter_sendto,syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendmsg,syscalls:sys_enter_recvmsg,syscalls:sys_enter_select,syscalls:sys_enter_poll,syscalls:sys_enter_read,syscalls:sys_enter_lseek
[ "${BENCH_PERF:-}" = 1 ] || perf_events=${BENCH_PERF:-$perf_events}
perf_around() {
  local pid=$1 out=$2 pp rc=0; shift 2
  if [ -n "${BENCH_PERF_RECORD:-}" ]; then
    perf record -q ${BENCH_PERF_RECORD_ARGS:--g} -p "$pid" -o "$BENCH_PERF_RECORD/$(basename "$out")-$r.data" 2>"$out.err" &
  elif [ -z "${BENCH_PERF:-}" ]; then "$@"; return
  else perf stat -x, -e "$perf_events" -p "$pid" -o "$out" 2>"$out.err" &
  fi
  pp=$!; sleep 0.5
  "$@" || rc=$?
  kill -INT "$pp"; wait "$pp" 2>/dev/null || true
  return $rc
}
# perf_line OUT N: OUT's non-zero counts per request (N requests), one line.
perf_line() {
  [ -n "${BENCH_PERF:-}" ] && [ -s "$1" ] || return 0
  awk -F, -v n="$2" '$1 ~ /^[0-9.]+$/ && $1 > 0 { e = $3; sub(/^syscalls:sys_enter_/, "", e); sub(/^raw_syscalls:sys_enter/, "syscalls", e)
    printf "%s%s %.2f", (k++ ? ", " : "  perf per request: "), e, $1 / n } END { if (k) print "" }' "$1"
}
cpu_per_req() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }'; }
rate() { sed -n 's/.* = \([0-9]*\) req\/s.*/\1/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

# One pass of PAP users through every server first, not counted: the first round otherwise measures
# cold servers (and PostgreSQL nodes without their connections).
"$radload" -s "127.0.0.1:$pap_port" -p "$inflight" -t 10 "$FTM_TMP/pap.tsv" >/dev/null || true
warm="S"; [ "$with_pg" = 1 ] && warm="$warm A"; [ "$nodes" = 2 ] && warm="$warm B"
for n in $warm; do
  eval "p=\$port_$n"
  "$radload" -s "127.0.0.1:$p" -p "$inflight" -t 10 "$FTM_TMP/pap.tsv" >/dev/null || true
done

[ -z "${BENCH_PG_STATS:-}" ] || [ "$with_pg" = 0 ] || pg_sql ftm "SELECT pg_stat_statements_reset(), pg_stat_reset(), pg_stat_reset_shared('wal'), pg_stat_reset_shared('bgwriter')" >/dev/null
declare -A ratios=() cpu=()
for r in $(seq 0 $((rounds - 1))); do
  c0=$(server_cpu "$pid_S")
  pap_out=$(perf_around "$pid_S" "$FTM_TMP/perf-pap" "$radload" -s "127.0.0.1:$pap_port" -p "$inflight" -t 10 "$FTM_TMP/pap.tsv" || true)
  c1=$(server_cpu "$pid_S")
  pap=$(echo "$pap_out" | rate) pap_cpu=$(cpu_per_req "$c0" "$c1" "$users")
  echo "round $((r + 1)) PAP floor:                 $pap_out; server CPU $pap_cpu us/request"
  perf_line "$FTM_TMP/perf-pap" "$users"
  for k in $kinds; do
    req=$FTM_TMP/req-$k-$r.tsv
    case $k in
      sqlite) pids=$pid_S;;
      pg) pids=$pid_A;;
      pg2) pids="$pid_A $pid_B";;
    esac
    if [ "$k" = pg2 ]; then
      requests "$FTM_TMP/seeds-$k-$r.tsv" "$req" 2
      dbp=$(pg_pids); d0=$(server_cpu $dbp)
      c0=$(server_cpu $pids)
      "$radload" -s "127.0.0.1:$port_A" -p $((inflight / 2)) -t 30 "$req.0" >"$req.out.0" || true &
      l0=$!
      "$radload" -s "127.0.0.1:$port_B" -p $((inflight - inflight / 2)) -t 30 "$req.1" >"$req.out.1" || true &
      l1=$!
      wait "$l0" "$l1" || true
      c1=$(server_cpu $pids) d1=$(server_cpu $dbp)
      # all requests over the longer of the two times
      ftm=$(cat "$req.out.0" "$req.out.1" | sed -n 's/^radload: \([0-9]*\) requests, \([0-9]*\) accept.* in \([0-9.]*\) s = .*/\1 \2 \3/p' \
        | awk '{ n += $1; a += $2; if ($3 > t) t = $3 } END { printf "%.0f", (t > 0 ? n / t : 0) }')
      out="node A: $(cat "$req.out.0")
round $((r + 1))   node B:                  $(cat "$req.out.1")
round $((r + 1))   2 nodes together:        $ftm req/s"
    else
      requests "$FTM_TMP/seeds-$k-$r.tsv" "$req" 1
      [ "$k" = pg ] && { dbp=$(pg_pids); d0=$(server_cpu $dbp); }
      c0=$(server_cpu $pids)
      eval "p=\$port_$([ "$k" = sqlite ] && echo S || echo A)"
      if [ "$k" = sqlite ]; then
        out=$(perf_around "$pid_S" "$FTM_TMP/perf-sqlite" "$radload" -s "127.0.0.1:$p" -p "$inflight" -t 30 "$req" || true)
      else
        out=$("$radload" -s "127.0.0.1:$p" -p "$inflight" -t 30 "$req" || true)
      fi
      c1=$(server_cpu $pids)
      [ "$k" = pg ] && d1=$(server_cpu $dbp)
      ftm=$(echo "$out" | rate)
    fi
    c=$(cpu_per_req "$c0" "$c1" "$users") db=
    [ "$k" = sqlite ] || db="; database CPU $(cpu_per_req "$d0" "$d1" "$users") us/request"
    printf 'round %d %-26s %s; server CPU %s us/request%s\n' $((r + 1)) "$(label "$k"):" "$out" "$c" "$db"
    [ "$k" = sqlite ] && perf_line "$FTM_TMP/perf-sqlite" "$users"
    printf 'round %d %-26s ratio %s (server CPU per request: PAP / password+code %s)\n' $((r + 1)) "$(label "$k"):" \
      "$(ratio "$ftm" "$pap")" "$(ratio "$pap_cpu" "$c")"
    ratios[$k]="${ratios[$k]:-} $(ratio "$ftm" "$pap")"
    cpu[$k]="${cpu[$k]:-} $(ratio "$pap_cpu" "$c")"
    eval "rate_${k}_$r=$ftm"
  done
  if [ "$with_pg" = 1 ] && [ "$with_sqlite" = 1 ]; then
    eval "a=\$rate_pg_$r b=\$rate_sqlite_$r"
    echo "round $((r + 1)) PostgreSQL / SQLite:       $(ratio "$a" "$b") (target >= 0.5)"
    pgsq="${pgsq:-} $(ratio "$a" "$b")"
  fi
  if [ "$nodes" = 2 ]; then
    eval "a=\$rate_pg2_$r b=\$rate_pg_$r"
    echo "round $((r + 1)) 2 nodes / 1 node:          $(ratio "$a" "$b") (target > 1)"
    two="${two:-} $(ratio "$a" "$b")"
  fi
done
echo
for k in $kinds; do
  printf '%-26s password+code / PAP floor: median %s (rounds:%s; target >= 0.5); server CPU PAP / password+code: median %s\n' \
    "RADIUS $(label "$k")" "$(echo "${ratios[$k]}" | median)" "${ratios[$k]}" "$(echo "${cpu[$k]}" | median)"
done
[ -n "${pgsq:-}" ] && echo "RADIUS PostgreSQL / SQLite: median $(echo "$pgsq" | median) (rounds:$pgsq; target >= 0.5)"
[ -n "${two:-}" ] && echo "RADIUS PostgreSQL 2 nodes / 1 node: median $(echo "$two" | median) (rounds:$two; target > 1)"
exit 0

#!/usr/bin/env bash
# bench/push_pending.sh: N push logins held at once in one freeradius (ntfy; the simulated phone of
# tests/phone holds every push), then approved one after another: are all pushed and all answered
# Accept, the server's RSS per pending push, and callback -> Access-Accept latency p50/p99.
# Usage: bash bench/push_pending.sh [BUILDDIR] [N...]   (default N: 100 1000 2000; BENCH_PORT 32060)
# Uses the integration harness (tests/integration/lib-radius.sh, lib-push.sh) outside the test suite.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
shift || true
sizes=${*:-100 1000 2000}
radload=$build/bench/radload
[ -x "$radload" ] || { echo "bench: $radload not built"; exit 1; }

run_one() { # N: one server, N logins held, then approved
  local n=$1
  export FTM_SRCDIR=$top FTM_BUILDDIR=$build FTM_PORT_BASE=${BENCH_PORT:-32060}
  export FTM_TMP; FTM_TMP=$(mktemp -d /tmp/ftm-bench-push.XXXXXX)
  (
    . "$top/tests/integration/lib-radius.sh"
    . "$top/tests/integration/lib-push.sh"
    push_setup 300
    threads=$((n + 64))
    eval "orig_$(declare -f radius_write_conf)"
    radius_write_conf() {
      orig_radius_write_conf
      # every pending push holds a worker: start them all (FreeRADIUS adds threads only when requests queue)
      sed -i -e "s/^\(\s*max_servers\s*=\).*/\1 $threads/" -e "s/^\(\s*start_servers\s*=\).*/\1 $threads/" \
        -e "s/^\(\s*max_spare_servers\s*=\).*/\1 $threads/" -e 's/^max_request_time = .*/max_request_time = 600/' \
        -e 's/^\(\s*port = [0-9]*\)$/\1\n\t\trecv_buff = 4194304/' "$RAD_DIR/radiusd.conf" "$RAD_DIR/sites-enabled/default"
    }
    csv=$FTM_TMP/tokens.csv reqs=$FTM_TMP/requests.tsv
    : >"$csv"; : >"$reqs"
    for i in $(seq 1 "$n"); do
      radius_user "u$i" "pw-$i"
      printf 'FTKPEND%06d,%s,u%d\n' "$i" "$(openssl rand -hex 20)" "$i" >>"$csv"
      printf 'u%d\tpw-%d\n' "$i" "$i" >>"$reqs"
    done
    ctl token import "$csv" >/dev/null || fail "import"
    # a push target per token in one statement (a benchmark may; ftmpushctl token push is one process each)
    sqlite3 "$RAD_DB" "UPDATE tokens SET push = 'ntfy:https://127.0.0.1:$NTFY_PORT/ftm-' || user" || fail "push targets"
    radius_start
    push_wait_listener
    $PHONECTL behave '*' hold >/dev/null
    rss() { awk '/^VmRSS/ { print $2 }' "/proc/$RAD_PID/status"; }
    rss0=$(rss)
    t0=$(date +%s.%N)
    "$radload" -s "127.0.0.1:$RAD_PORT" -S "$RAD_SECRET" -p "$n" -t 280 -o "$FTM_TMP/answers.tsv" "$reqs" \
      >"$FTM_TMP/radload.out" 2>&1 &
    load=$!
    $PHONECTL wait-push '*' --count "$n" --timeout 120 >/dev/null
    pushed=$($PHONECTL pushes '*')
    t1=$(date +%s.%N)
    rss1=$(rss)
    # approve every push, one client; the time each approval starts, for callback -> Accept
    python3 - "$PHONE_CTL_PORT" "$n" "$FTM_TMP/acts.tsv" <<'EOF'
import json, sys, time, urllib.error, urllib.request
port, n, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with open(out, "w") as f:
    for i in range(1, n + 1):
        t = time.time()
        req = urllib.request.Request("http://127.0.0.1:%d/act" % port, method="POST",
                                     data=json.dumps({"key": "ftm-u%d" % i, "action": "approve"}).encode())
        try:
            urllib.request.urlopen(req, timeout=60).read()
        except urllib.error.HTTPError:
            continue        # never pushed: nothing to approve (counted as not pushed)
        f.write("u%d\t%.6f\n" % (i, t))
EOF
    wait "$load"
    accepted=$(awk -F'\t' '$2 == "Access-Accept"' "$FTM_TMP/answers.tsv" | wc -l)
    lat=$(awk -F'\t' 'NR == FNR { act[$1] = $2; next } $2 == "Access-Accept" && ($1 in act) { print ($4 - act[$1]) * 1000 }' \
      "$FTM_TMP/acts.tsv" "$FTM_TMP/answers.tsv" | sort -g | awk '{ v[NR] = $1 } END {
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        if (NR) printf "p50 %.1f ms, p99 %.1f ms", v[int((NR + 1) / 2)], v[i99] }')
    awk -v n="$n" -v p="$pushed" -v a="$accepted" -v r0="$rss0" -v r1="$rss1" -v t0="$t0" -v t1="$t1" -v lat="$lat" -v th="$threads" 'BEGIN {
      printf "%5d pending: %d pushed in %.1f s, %d Access-Accept; server RSS %.0f MB with %d idle workers, %.0f MB with %d pending = %.1f KB per pending push; callback -> Accept %s\n",
        n, p, t1 - t0, a, r0 / 1024, th, r1 / 1024, n, (r1 - r0) / n, lat }'
  )
  rm -rf "$FTM_TMP"
}

for n in $sizes; do run_one "$n"; done

#!/usr/bin/env bash
# bench/run.sh: the login fast path as ratios in one run (see bench/README.md for what it printed here).
#   RADIUS: the PAP floor against rlm_ftmpush password+code, interleaved rounds, one freeradius without
#           -x (readiness by Status-Server), bench/radload keeping P requests in flight, N distinct users
#           once each per ftmpush round (a code is good once);
#   store:  bench_verify (verdicts/s by shape: threads sharing a handle get group commits);
#   import and list of 100k tokens (time and peak RSS).
# Usage: bash bench/run.sh [BUILDDIR]   (default build/test). Environment: BENCH_ROUNDS (3), BENCH_USERS (4000),
# BENCH_INFLIGHT (64), BENCH_IMPORT (100000), BENCH_PORT (32040: loopback, two ports).
# Not a test: nothing here passes or fails on a figure. Codes are computed here (python3 hmac, RFC 6238):
# a benchmark needs thousands per round; the tests take theirs from oathtool.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
rounds=${BENCH_ROUNDS:-3} users=${BENCH_USERS:-4000} inflight=${BENCH_INFLIGHT:-64}
import_n=${BENCH_IMPORT:-100000} port=${BENCH_PORT:-32040}
radload=$build/bench/radload ctl=$build/tools/ftmpushctl module_dir=$build/rlm_ftmpush/.libs
for f in "$radload" "$ctl" "$build/bench/bench_verify" "$module_dir/rlm_ftmpush.so"; do
  [ -e "$f" ] || { echo "bench: $f not built (make in $build)"; exit 1; }
done
for c in freeradius python3; do command -v $c >/dev/null || { echo "bench: $c not installed (scripts/deps.sh)"; exit 1; }; done

tmp=$(mktemp -d /tmp/ftm-bench.XXXXXX)
rad_pid=
cleanup() { [ -n "$rad_pid" ] && kill "$rad_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
umask 077

# Seeds, the users file and the request files of every round, from one python3 run.
gen_users() { # N ROUNDS DIR: tokens.csv, users, pap.tsv, ftm-R.tsv (codes of now: valid for the drift window)
  python3 - "$@" <<'EOF'
import hmac, hashlib, os, struct, sys, time
n, rounds, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
step = int(time.time()) // 60
def totp(seed):
    mac = hmac.new(seed, struct.pack(">Q", step), hashlib.sha1).digest()
    o = mac[-1] & 15
    return "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7fffffff) % 1000000)
with open(d + "/tokens.csv", "w") as csv, open(d + "/users", "w") as users, open(d + "/pap.tsv", "w") as pap:
    for i in range(n):
        users.write('pap%d\tCleartext-Password := "pw-%d"\n\n' % (i, i))
        pap.write("pap%d\tpw-%d\n" % (i, i))
    for r in range(rounds):
        with open("%s/ftm-%d.tsv" % (d, r), "w") as req:
            for i in range(n):
                u, seed = "u%d-%d" % (r, i), os.urandom(20)
                csv.write("BENCH%d%06d,%s,%s\n" % (r, i, seed.hex(), u))
                users.write('%s\tCleartext-Password := "pw-%s"\n\n' % (u, u))
                req.write("%s\tpw-%s%s\n" % (u, u, totp(seed)))
EOF
}

write_radiusd_conf() { # DIR
  local d=$1
  mkdir -p "$d/run" "$d/log"
  cat >"$d/radiusd.conf" <<EOF
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = $d
sbindir = /usr/sbin
logdir = $d/log
raddbdir = $d
radacctdir = $d/log
name = radiusd
confdir = $d
modconfdir = $d
certdir = $d
cadir = $d
run_dir = $d/run
db_dir = $d
dictdir = /usr/share/freeradius
libdir = $module_dir:/usr/lib/freeradius
pidfile = $d/run/radiusd.pid
max_request_time = 30
cleanup_delay = 2
max_requests = 65536
hostname_lookups = no
proxy_requests = no
log {
	destination = files
	file = $d/log/radius.log
	auth = no
}
security {
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = yes
}
thread pool {
	start_servers = 32
	max_servers = 64
	min_spare_servers = 8
	max_spare_servers = 64
	max_requests_per_server = 0
	auto_limit_acct = no
}
client localhost {
	ipaddr = 127.0.0.1
	secret = testing123
	require_message_authenticator = no
}
modules {
	files {
		filename = $d/users
		acctusersfile = $d/acct_users
		preproxy_usersfile = $d/preproxy_users
	}
	pap {
		normalise = yes
	}
	ftmpush {
		token_db = $d/tokens.db
	}
}
server pap_floor {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $port
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
server ftmpush_code {
	listen {
		type = auth
		ipaddr = 127.0.0.1
		port = $((port + 1))
		recv_buff = 4194304
	}
	authorize {
		ftmpush
		files
		pap
	}
	authenticate {
		Auth-Type ftmpush {
			pap
			ftmpush
		}
		Auth-Type PAP {
			pap
		}
	}
}
EOF
  : >"$d/acct_users"
  : >"$d/preproxy_users"
}

# CPU seconds (user + system) the server has used: per request it is a figure the noise of a shared
# machine moves much less than requests/s.
server_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' "/proc/$rad_pid/stat"; }
cpu_per_req() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.0f", (b - a) * 1e6 / n }'; }
rate() { sed -n 's/.* = \([0-9]*\) req\/s.*/\1/p'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

echo "== RADIUS: PAP floor vs rlm_ftmpush password+code ($users distinct users per round, $inflight in flight, $rounds rounds, freeradius without -x)"
d=$tmp/raddb
mkdir -p "$d"
write_radiusd_conf "$d"
gen_users "$users" "$rounds" "$d"
"$ctl" --db "$d/tokens.db" token import "$d/tokens.csv" >/dev/null
freeradius -f -d "$d" -n radiusd >"$d/log/stdout" 2>&1 &
rad_pid=$!
"$radload" -s "127.0.0.1:$port" -w 15 >/dev/null || { cat "$d/log/stdout" "$d/log/radius.log" 2>/dev/null | tail -20; exit 1; }
"$radload" -s "127.0.0.1:$((port + 1))" -w 15 >/dev/null
# one PAP pass first, not counted: the first round otherwise measures a cold server
"$radload" -s "127.0.0.1:$port" -p "$inflight" -t 10 "$d/pap.tsv" >/dev/null || true
ratios= cpu_ratios=
for r in $(seq 0 $((rounds - 1))); do
  c0=$(server_cpu)
  pap_out=$("$radload" -s "127.0.0.1:$port" -p "$inflight" -t 10 "$d/pap.tsv" || true)
  c1=$(server_cpu)
  ftm_out=$("$radload" -s "127.0.0.1:$((port + 1))" -p "$inflight" -t 30 "$d/ftm-$r.tsv" || true)
  c2=$(server_cpu)
  pap=$(echo "$pap_out" | rate) ftm=$(echo "$ftm_out" | rate)
  pap_cpu=$(cpu_per_req "$c0" "$c1" "$users") ftm_cpu=$(cpu_per_req "$c1" "$c2" "$users")
  echo "round $((r + 1)) PAP floor:      $pap_out; server CPU $pap_cpu us/request"
  echo "round $((r + 1)) password+code:  $ftm_out; server CPU $ftm_cpu us/request"
  echo "round $((r + 1)) ratio $(ratio "$ftm" "$pap") (server CPU per request: PAP / password+code $(ratio "$pap_cpu" "$ftm_cpu"))"
  ratios="$ratios $(ratio "$ftm" "$pap")"
  cpu_ratios="$cpu_ratios $(ratio "$pap_cpu" "$ftm_cpu")"
done
kill "$rad_pid"; wait "$rad_pid" 2>/dev/null || true; rad_pid=
echo "RADIUS password+code / PAP floor: median $(echo "$ratios" | median) (rounds:$ratios; target >= 0.5)"
echo "RADIUS server CPU per request, PAP / password+code: median $(echo "$cpu_ratios" | median) (rounds:$cpu_ratios)"

echo
echo "== token store: verdicts per second (bench_verify, 2 s per shape)"
"$build/bench/bench_verify" -d "$tmp" | tail -n 5

echo
echo "== import and list of $import_n tokens in one file"
python3 - "$import_n" "$tmp/import.csv" <<'EOF'
import os, sys
with open(sys.argv[2], "w") as f:
    for i in range(int(sys.argv[1])):
        f.write("FTKIMP%08d,%s,user%d\n" % (i, os.urandom(20).hex(), i))
EOF
/usr/bin/time -f "import: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
  "$ctl" --db "$tmp/import.db" token import "$tmp/import.csv" 2>&1 >/dev/null | tail -n 1
/usr/bin/time -f "list:   %e s wall, %U s user, %S s sys, peak RSS %M KB" \
  "$ctl" --db "$tmp/import.db" token list 2>&1 >/dev/null | tail -n 1
echo "(target: import under 5 s, memory linear)"

echo
echo "== PAM code login: pam_ftmpush against pam_oath (bench/pam.sh)"
bash "$top/bench/pam.sh" "$build" | tail -n 3

echo
echo "== pending pushes held at once (bench/push_pending.sh; BENCH_PENDING sizes)"
bash "$top/bench/push_pending.sh" "$build" ${BENCH_PENDING:-100 1000 2000}

#!/usr/bin/env bash
# bench/pam.sh: a PAM code login through pam_ftmpush against pam_oath, per login, interleaved, in one run.
# Both stacks: pam_pwdfile for the password, then the code module; pamtester under pam_wrapper (a private
# service directory, nothing in /etc), one pamtester process per login as a real login has. pam_ftmpush
# gets password+code typed as one string (its split); pam_oath asks for the code at its own prompt.
# Every user logs in once per module with a fresh code from oathtool (both refuse replays). The three
# paths take turns at going first (user i: oath, in process, ftmpushd rotated by i): measured here, a
# login's time moved by 0.2-0.3 ms with the path that ran just before it, so a fixed order favoured one.
# pam_ftmpush runs both ways in the same run (docs/pam.md "Who decides"): with ftmpushd running on its
# store (the split and the verdict are the daemon's; its CPU over the run is counted into that path's
# CPU per login: the daemon's work is part of the login), and without a daemon (in process, the core
# object loaded) on a store of its own: one user set each, interleaved with pam_oath. A store each, as
# a host has one or the other: on one file the in-process logins' close-time checkpoint (store_sqlite's
# sq_close) truncated the daemon's WAL every few logins, so each of its commits grew the file again.
# Before the timed logins, BENCH_PAM_WARMUP (400) untimed logins per path, of users of their own in a
# service directory, password file and pam_oath users file of their own (the timed logins see the same
# files as without a warm-up): past the daemon's first WAL checkpoint (~1000 frames, 3 a login), so
# its commits rewrite the WAL in place as a daemon's that has run a while do, instead of growing it
# (every fdatasync then also writes the inode and new blocks' metadata).
# Prints wall time and CPU time (user + system of the login's processes) per login: the CPU figure is
# what the module costs, and moves much less than the wall time on a loaded machine. The last line
# compares the per-login medians of the wall time, which a few preempted logins move less than the
# means above.
# Usage: bash bench/pam.sh [BUILDDIR]   BENCH_PAM_USERS (100), BENCH_PAM_WARMUP (400, 0: none),
#        BENCH_PORT (the daemon's callback port, 38990).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$top/build/test}" && pwd)
users=${BENCH_PAM_USERS:-100}
warm=${BENCH_PAM_WARMUP:-400}
module=$build/pam_ftmpush/.libs/pam_ftmpush.so ctl=$build/tools/ftmpushctl pushd=$build/tools/ftmpushd
port=${BENCH_PORT:-38990}
wrapper=$(dpkg -L libpam-wrapper 2>/dev/null | grep '/libpam_wrapper\.so$' | head -n 1)
pwdfile=$(dpkg -L libpam-pwdfile 2>/dev/null | grep '/pam_pwdfile\.so$' | head -n 1)
oath=$(dpkg -L libpam-oath 2>/dev/null | grep '/pam_oath\.so$' | head -n 1)
permit=$(dpkg -L libpam-modules 2>/dev/null | grep '/pam_permit\.so$' | head -n 1)
[ -f "$module" ] || { echo "bench: $module not built"; exit 1; }
[ -n "$wrapper" ] && [ -n "$pwdfile" ] && [ -n "$oath" ] || { echo "bench: libpam-wrapper, libpam-pwdfile, libpam-oath needed (scripts/deps.sh)"; exit 1; }
for c in pamtester oathtool; do command -v $c >/dev/null || { echo "bench: $c not installed"; exit 1; }; done

tmp=$(mktemp -d /tmp/ftm-bench-pam.XXXXXX)
daemon_pid=
trap '[ -z "$daemon_pid" ] || { kill "$daemon_pid"; wait "$daemon_pid"; } 2>/dev/null; rm -rf "$tmp"' EXIT
umask 077
mkdir -p "$tmp/pam.d" "$tmp/pam-warm.d"
hash=$(openssl passwd -6 "pw-bench")
: >"$tmp/passwd" ; : >"$tmp/users.oath" ; : >"$tmp/tokens.csv" ; : >"$tmp/tokens-d.csv"
: >"$tmp/passwd-warm" ; : >"$tmp/users-warm.oath"
# Seeds by user name: uN/wuN for pam_oath and pam_ftmpush in process, dN/wdN through ftmpushd.
declare -A oath_seed ftm_seed ftmd_seed
# add_users PREFIX SERIAL_TAG COUNT SUFFIX: users PREFIXu1.. and PREFIXd1.. in passwdSUFFIX and
# usersSUFFIX.oath (the warm-up's files are their own: pam_oath rewrites its whole users file)
add_users() {
  local p=$1 tag=$2 n=$3 sfx=$4 i
  for i in $(seq 1 "$n"); do
    oath_seed[${p}u$i]=$(openssl rand -hex 20) ftm_seed[${p}u$i]=$(openssl rand -hex 20) ftmd_seed[${p}d$i]=$(openssl rand -hex 20)
    echo "${p}u$i:$hash" >>"$tmp/passwd$sfx"
    echo "${p}d$i:$hash" >>"$tmp/passwd$sfx"
    printf 'HOTP/T60/6\t%su%d\t-\t%s\n' "$p" "$i" "${oath_seed[${p}u$i]}" >>"$tmp/users$sfx.oath"
    printf 'FTKPAM%s%06d,%s,%su%d\n' "$tag" "$i" "${ftm_seed[${p}u$i]}" "$p" "$i" >>"$tmp/tokens.csv"
    printf 'FTKPAD%s%06d,%s,%sd%d\n' "$tag" "$i" "${ftmd_seed[${p}d$i]}" "$p" "$i" >>"$tmp/tokens-d.csv"
  done
}
add_users w W "$warm" -warm
add_users "" "" "$users" ""
# in process: no daemon listens at this socket path
cat >"$tmp/ftmpush.conf" <<EOF
token_db = $tmp/tokens.db
window = 1
no_token = reject
[push]
socket = $tmp/none.sock
EOF
# through ftmpushd: the same store; push enabled because that is what ftmpushd serves (no token here
# has a push target, so no push is ever sent)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
  -keyout "$tmp/server.key" -out "$tmp/server.pem" >/dev/null 2>&1
cat >"$tmp/ftmpushd.conf" <<EOF
token_db = $tmp/tokens-d.db
window = 1
no_token = reject
[push]
status = enable
server = 127.0.0.1
server_port = $port
server_cert = $tmp/server.pem
server_key = $tmp/server.key
socket = $tmp/ftmpushd.sock
EOF
"$ctl" --db "$tmp/tokens.db" token import "$tmp/tokens.csv" >/dev/null
"$ctl" --db "$tmp/tokens-d.db" token import "$tmp/tokens-d.csv" >/dev/null
# the warm-up's services in a directory of their own: pam_wrapper copies every file of the service
# directory for each process, so more files there would slow every timed login
for w in "" -warm; do
  d=$tmp/pam${w}.d
  cat >"$d/oath" <<EOF
auth     requisite  $pwdfile pwdfile=$tmp/passwd$w
auth     required   $oath usersfile=$tmp/users$w.oath window=1 digits=6
account  required   $permit
EOF
  for svc in ftmpush ftmpushd; do
    cat >"$d/$svc" <<EOF
auth     requisite  $module split config=$tmp/$svc.conf
auth     requisite  $pwdfile pwdfile=$tmp/passwd$w use_first_pass
auth     required   $module config=$tmp/$svc.conf
account  required   $permit
EOF
  done
done
"$pushd" -f -c "$tmp/ftmpushd.conf" >"$tmp/ftmpushd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 50); do [ -S "$tmp/ftmpushd.sock" ] && break; sleep 0.2; done
[ -S "$tmp/ftmpushd.sock" ] || { cat "$tmp/ftmpushd.log"; echo "bench: ftmpushd did not start"; exit 1; }
# the daemon's CPU (user + system, clock ticks) from /proc, before and after the timed logins
daemon_ticks() { local f; read -r -a f <"/proc/$daemon_pid/stat"; echo $(( f[13] + f[14] )); }

login() { # SERVICE USER INPUT [SERVICE_DIR]: one pamtester process; 0 when authenticated
  printf '%b' "$3" | LD_PRELOAD=$wrapper PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR=${4:-$tmp/pam.d} \
    pamtester "$1" "$2" authenticate >/dev/null 2>&1
}

# CPU seconds of the waited-for children so far, into $cpu: `times` and `read` are builtins, so
# taking it forks nothing that would be counted
cpu_now() {
  local _ cu cs
  times >"$tmp/times"
  { read -r _; read -r cu cs; } <"$tmp/times"
  cpu="$cu $cs"
}
# both codes of a user computed before either login is timed; one line per login into $tmp/timed
: >"$tmp/timed"
ok_oath=0 ok_ftm=0 ok_ftmd=0
warm_failed=0
for i in $(seq 1 "$warm"); do
  login oath "wu$i" "pw-bench\n$(oathtool --totp -s 60 -d 6 "${oath_seed[wu$i]}")\n" "$tmp/pam-warm.d" || warm_failed=$((warm_failed + 1))
  login ftmpush "wu$i" "pw-bench$(oathtool --totp -s 60 -d 6 "${ftm_seed[wu$i]}")\n" "$tmp/pam-warm.d" || warm_failed=$((warm_failed + 1))
  login ftmpushd "wd$i" "pw-bench$(oathtool --totp -s 60 -d 6 "${ftmd_seed[wd$i]}")\n" "$tmp/pam-warm.d" || warm_failed=$((warm_failed + 1))
done
echo "warm-up: $warm untimed logins per path first ($warm_failed failed); ftmpushd's WAL $(stat -c %s "$tmp/tokens-d.db-wal" 2>/dev/null || echo 0) bytes"
d0=$(daemon_ticks)
for i in $(seq 1 "$users"); do
  c_oath=$(oathtool --totp -s 60 -d 6 "${oath_seed[u$i]}") c_ftm=$(oathtool --totp -s 60 -d 6 "${ftm_seed[u$i]}")
  c_ftmd=$(oathtool --totp -s 60 -d 6 "${ftmd_seed[d$i]}")
  # the three paths in turn, each first, second and third as often: a login is slower or faster by
  # what ran just before it (another path's writes, its sync), so no path always follows the same one
  case $(( i % 3 )) in 0) order="oath ftm ftmd";; 1) order="ftm ftmd oath";; *) order="ftmd oath ftm";; esac
  for k in $order; do
    cpu_now; c0=$cpu; s=$EPOCHREALTIME
    case $k in
      oath) login oath "u$i" "pw-bench\n$c_oath\n" && ok_oath=$((ok_oath + 1));;
      ftm) login ftmpush "u$i" "pw-bench$c_ftm\n" && ok_ftm=$((ok_ftm + 1));;
      ftmd) login ftmpushd "d$i" "pw-bench$c_ftmd\n" && ok_ftmd=$((ok_ftmd + 1));;
    esac
    e=$EPOCHREALTIME; cpu_now; echo "$k $s $e $c0 $cpu" >>"$tmp/timed"
  done
done
d1=$(daemon_ticks)
awk -v n="$users" -v oo="$ok_oath" -v of="$ok_ftm" -v od="$ok_ftmd" -v dt="$(( d1 - d0 ))" -v hz="$(getconf CLK_TCK)" '
  function sec(t) { sub(/s$/, "", t); split(t, p, "m"); return p[1] * 60 + p[2] }
  function median(a, k,   i, j, v) { # insertion sort of a[1..k] (mawk has no asort)
    for (i = 2; i <= k; i++) { v = a[i]; for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
    return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
  { wall[$1] += $3 - $2; cpu[$1] += sec($6) + sec($7) - sec($4) - sec($5)
    if ($1 == "oath") wo[++no] = $3 - $2; else if ($1 == "ftmd") wd[++nd] = $3 - $2 }
  END {
    d = dt / hz
    printf "pam_oath:                     %d of %d logins succeeded, %.2f ms per login, CPU %.2f ms per login\n", oo, n, wall["oath"] * 1000 / n, cpu["oath"] * 1000 / n
    printf "pam_ftmpush in process:       %d of %d logins succeeded, %.2f ms per login, CPU %.2f ms per login\n", of, n, wall["ftm"] * 1000 / n, cpu["ftm"] * 1000 / n
    printf "pam_ftmpush through ftmpushd: %d of %d logins succeeded, %.2f ms per login, CPU %.2f ms per login (login processes %.2f + ftmpushd %.2f)\n", od, n, wall["ftmd"] * 1000 / n, (cpu["ftmd"] + d) * 1000 / n, cpu["ftmd"] * 1000 / n, d * 1000 / n
    printf "PAM code login pam_ftmpush / pam_oath, in process: %.2f; CPU per login %.2f\n", wall["ftm"] / wall["oath"], cpu["ftm"] / cpu["oath"]
    printf "PAM code login pam_ftmpush / pam_oath, through ftmpushd: %.2f (target <= 1.0); CPU per login %.2f (ftmpushd included)\n", wall["ftmd"] / wall["oath"], (cpu["ftmd"] + d) / cpu["oath"]
    mo = median(wo, no); md = median(wd, nd)
    printf "per-login medians (a preempted login moves them less): pam_oath %.2f ms, through ftmpushd %.2f ms: %.2f\n", mo * 1000, md * 1000, md / mo }' "$tmp/timed"

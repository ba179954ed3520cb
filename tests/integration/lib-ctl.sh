# lib-ctl.sh: helpers for the ctl_*.test scripts (sourced, bash): a throw-away store and config for
# ftmpushctl, and codes computed independently by oathtool.
#
#   ctl_setup                  skip (77) when ftmpushctl or oathtool is missing; writes $CTL_CONF
#   conf_set KEY VALUE         set a top-level option in $CTL_CONF
#   policy_set NAME VALUE      a verdict policy, in the store: ftmpushctl policy set (window, lockout_threshold,
#                              lockout_duration, activation_expire, challenge_timeout)
#   ctl ARGS...                run ftmpushctl with $CTL_CONF; stdout in $OUT, stderr in $ERR, status in $RC
#   expect_rc N DESC           assert the last ctl exit status
#   out_has / err_has TEXT     assert the last stdout / stderr contains TEXT
#   show_field SERIAL FIELD    a field of `token show`
#   oath ALG PERIOD DIGITS TIME HEX   the code oathtool computes
set -u

FTM_SRCDIR=${FTM_SRCDIR:?run through tests/integration/run.sh}
FTM_BUILDDIR=${FTM_BUILDDIR:?run through tests/integration/run.sh}
FTM_TMP=${FTM_TMP:?run through tests/integration/run.sh}
FTMPUSHCTL=$FTM_BUILDDIR/tools/ftmpushctl
CTL_CONF=$FTM_TMP/ftmpush.conf
CTL_DB=$FTM_TMP/tokens.db
OUT=$FTM_TMP/ctl.out
ERR=$FTM_TMP/ctl.err
RC=0

skip() { echo "SKIP: $*"; exit 77; }
fail() {
  echo "FAIL: $*"
  [ -f "$OUT" ] && { echo "---- last stdout"; cat "$OUT"; }
  [ -f "$ERR" ] && { echo "---- last stderr"; cat "$ERR"; }
  exit 1
}
step() { echo; echo "== $*"; }
ok() { echo "ok: $*"; }

ctl_setup() {
  [ -x "$FTMPUSHCTL" ] || skip "ftmpushctl not built ($FTMPUSHCTL)"
  command -v oathtool >/dev/null || skip "oathtool not installed (scripts/deps.sh)"
  umask 077
  cat >"$CTL_CONF" <<EOF2
# ftmpushctl test configuration ($FTM_TMP)
token_db = $CTL_DB
EOF2
}

conf_set() {
  sed -i "/^$1 *=/d" "$CTL_CONF"
  echo "$1 = $2" >>"$CTL_CONF"
}

policy_set() {
  "$FTMPUSHCTL" --config "$CTL_CONF" policy set "$1" "$2" >"$OUT" 2>"$ERR" || fail "policy set $1 $2"
}

ctl() {
  "$FTMPUSHCTL" --config "$CTL_CONF" "$@" >"$OUT" 2>"$ERR"
  RC=$?
  sed 's/^/    > /' "$OUT" | head -n 20
  sed 's/^/    ! /' "$ERR" | head -n 20
  return 0
}

expect_rc() { [ "$RC" -eq "$1" ] || fail "$2: expected exit $1, got $RC"; ok "$2"; }
out_has() { grep -qF -- "$1" "$OUT" || fail "stdout lacks \"$1\""; }
err_has() { grep -qF -- "$1" "$ERR" || fail "stderr lacks \"$1\""; }
err_lines() { [ "$(wc -l <"$ERR")" -eq "$1" ] || fail "expected $1 stderr line(s), got $(wc -l <"$ERR")"; }

show_field() {
  "$FTMPUSHCTL" --config "$CTL_CONF" token show "$1" ${3:+--time "$3"} | sed -n "s/^$2: //p"
}

oath() {
  local alg=$1 period=$2 digits=$3 t=$4 hex=$5
  oathtool --totp="$alg" -s "$period" -d "$digits" -N "@$t" "$hex"
}

#!/usr/bin/env bash
# Runs every tests/integration/*.test (or the ones named) against a built tree.
# Each test is an executable script: exit 0 = pass, 77 = skip, anything else = fail.
# Environment given to each test:
#   FTM_SRCDIR    source tree (tests/phone/, raddb/ ...)
#   FTM_BUILDDIR  build tree (tools/ftmpushctl, rlm_ftmpush/.libs/rlm_ftmpush.so, pam_ftmpush/.libs/pam_ftmpush.so)
#   FTM_TMP       a fresh private directory for this test, removed afterwards unless FTM_KEEP=1
#   FTM_PORT_BASE a base port; a test may use FTM_PORT_BASE .. FTM_PORT_BASE+49 on loopback
# FTM_PORT_START (default 20000) moves the whole range, so two runs on one machine do not collide.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export FTM_SRCDIR=${FTM_SRCDIR:-$(cd "$here/../.." && pwd)}
export FTM_BUILDDIR=${FTM_BUILDDIR:-$FTM_SRCDIR}
timeout_s=${FTM_TEST_TIMEOUT:-600}

if [ $# -gt 0 ]; then tests=("$@"); else tests=("$here"/*.test); fi
pass=0 fail=0 skip=0 failed=()
port=${FTM_PORT_START:-20000}
logdir=${FTM_TEST_LOGDIR:-$FTM_BUILDDIR/tests/integration-logs}
mkdir -p "$logdir"
for t in "${tests[@]}"; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .test)
  export FTM_TMP; FTM_TMP=$(mktemp -d "/tmp/ftm-$name.XXXXXX")
  export FTM_PORT_BASE=$port
  port=$((port + 50))
  start=$(date +%s)
  # A test may need longer than the default (quickstart.test builds the .debs): "# ftm-timeout: SECONDS".
  t_timeout=$(sed -n 's/^# ftm-timeout: *\([0-9][0-9]*\)$/\1/p' "$t" | head -n 1)
  [ -n "$t_timeout" ] && [ "$t_timeout" -gt "$timeout_s" ] || t_timeout=$timeout_s
  timeout --kill-after=10 "$t_timeout" bash "$t" >"$logdir/$name.log" 2>&1
  rc=$?
  secs=$(( $(date +%s) - start ))
  case $rc in
    0)  pass=$((pass + 1)); echo "PASS: $name (${secs}s)";;
    77) skip=$((skip + 1)); echo "SKIP: $name ($(tail -n 1 "$logdir/$name.log"))";;
    *)  fail=$((fail + 1)); failed+=("$name"); echo "FAIL: $name (exit $rc, ${secs}s)"
        echo "---- last lines of $logdir/$name.log ----"; tail -n 40 "$logdir/$name.log"; echo "----";;
  esac
  [ "${FTM_KEEP:-0}" = 1 ] || rm -rf "$FTM_TMP"
done
echo "integration: $pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] || { echo "failed: ${failed[*]}"; exit 1; }
exit 0

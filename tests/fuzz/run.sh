#!/usr/bin/env bash
# Builds and runs each harness for a bounded time on a copy of its seed corpus; exits non-zero when a
# harness finds a crash (its reproducer is left in OUTDIR as crash-*):
#   bash tests/fuzz/run.sh [SECONDS]        (default 20 s each; FTM_FUZZ_OUT=DIR, default /tmp/ftm-fuzz)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
out=${FTM_FUZZ_OUT:-/tmp/ftm-fuzz}
failures=$out/failures.txt
mkdir -p "$out"
: >"$failures"	# emptied first: a failed build must not leave an earlier run's findings to be shown
bash "$src/tests/fuzz/build.sh" "$out"
# What a failed harness found, kept in $failures (scripts/test.sh prints it after its summary, so the
# tail of a CI log holds it): the sanitizer's or libFuzzer's own lines, the reproducer (base64 when
# small, to replay it from the log alone), and whether it fails again when replayed alone.
report() { # harness rc log stamp leaks
  local h=$1 hrc=$2 log=$3 stamp=$4 leaks=$5 art
  art=$(find "$out" -maxdepth 1 -newer "$stamp" \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
          -o -name 'oom-*' -o -name 'slow-unit-*' \) -print 2>/dev/null | head -n 1)
  {
    echo "fuzz: fuzz_$h FAILED (exit $hrc; its whole output: $log)"
    grep -E '^==[0-9]+==|^SUMMARY|^ *#[0-9]+ 0x|runtime error|^fuzz|deadly signal|-timeout|out-of-memory|Test unit written|^MS:|^artifact_prefix|^Base64' \
      "$log" | grep -v '^fuzz: built' | sed 's/ (BuildId: [0-9a-f]*)//' | head -n 40 || true
    if [ -n "$art" ]; then
      echo "reproducer: $art ($(stat -c %s "$art") bytes)"
      [ "$(stat -c %s "$art")" -le 4096 ] && { echo "reproducer, base64:"; base64 -w 100 "$art"; }
      if (cd "$out" && "./fuzz_$h" -detect_leaks="$leaks" -timeout=10 -runs=3 "$art" >"$log.replay" 2>&1); then
        echo "replayed alone (3 runs): does NOT fail again (a failure that depends on what ran before it or on timing)"
      else
        echo "replayed alone (3 runs): fails again ($log.replay)"
      fi
    else
      echo "no reproducer written; the log's last lines:"
      tail -n 15 "$log"
    fi
    echo
  } | tee -a "$failures"
}
rc=0
for c in "$src"/tests/fuzz/corpus/*/; do
  h=$(basename "$c")
  [ -x "$out/fuzz_$h" ] || { echo "fuzz: no harness for corpus/$h"; rc=1; continue; }
  mkdir -p "$out/corpus-$h"
  cp -n "$c"* "$out/corpus-$h/" 2>/dev/null || true
  # The push harnesses keep their engine across inputs (fuzz_push.h): LeakSanitizer would count it
  # as a leak and scan after every input (a hundredfold slower). Leaks there are the unit tests' job
  # under ASan; memory errors and the harnesses' own checks still fail here.
  leaks=1
  # socket: its server lives across inputs too; import: the tool's die() is caught with a longjmp
  case $h in callback|gateway|number|socket|import) leaks=0;; esac
  echo "fuzz: fuzz_$h for ${secs}s"
  log=$out/log-$h.txt stamp=$out/.start-$h
  : >"$stamp"
  # -timeout: one input taking over 10 s is a hang, reported like a crash
  if (cd "$out" && "./fuzz_$h" -detect_leaks=$leaks -max_total_time="$secs" -max_len=8192 -timeout=10 \
        -print_final_stats=1 "corpus-$h" >"$log" 2>&1); then
    { grep -E '^(Done|stat::(number_of_executed_units|new_units_added|peak_rss_mb))' "$log" || true; } | tr '\n' ' '; echo
  else
    hrc=$? rc=1
    report "$h" "$hrc" "$log" "$stamp" "$leaks"
  fi
done
exit $rc

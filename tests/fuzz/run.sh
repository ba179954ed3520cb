#!/usr/bin/env bash
# Builds and runs each harness for a bounded time on a copy of its seed corpus; exits non-zero when a
# harness finds a crash (its reproducer is left in OUTDIR as crash-*):
#   bash tests/fuzz/run.sh [SECONDS]        (default 20 s each; FTM_FUZZ_OUT=DIR, default /tmp/ftm-fuzz)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-20}
out=${FTM_FUZZ_OUT:-/tmp/ftm-fuzz}
bash "$src/tests/fuzz/build.sh" "$out"
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
  # -timeout: one input taking over 10 s is a hang, reported like a crash
  if ! (cd "$out" && "./fuzz_$h" -detect_leaks=$leaks -max_total_time="$secs" -max_len=8192 -timeout=10 \
         -print_final_stats=1 "corpus-$h" 2>&1 | tail -n 25); then
    echo "fuzz: fuzz_$h FAILED (reproducer: $out/crash-* or leak-* / timeout-*)"
    rc=1
  fi
done
exit $rc

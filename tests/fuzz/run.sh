#!/usr/bin/env bash
# Builds and runs each harness for a bounded time (default 30 s each) on a copy of the seed corpus:
#   bash tests/fuzz/run.sh [SECONDS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
secs=${1:-30}
out=${FTM_FUZZ_OUT:-/tmp/ftm-fuzz}
bash "$src/tests/fuzz/build.sh" "$out"
for h in passcode config enrol_form; do
	mkdir -p "$out/corpus-$h"
	cp -n "$src/tests/fuzz/corpus/$h/"* "$out/corpus-$h/" 2>/dev/null || true
	"$out/fuzz_$h" -max_total_time="$secs" -max_len=8192 "$out/corpus-$h"
done

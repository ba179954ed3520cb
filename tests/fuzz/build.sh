#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (not part of the default build): bash tests/fuzz/build.sh [OUTDIR]
# Then: OUTDIR/fuzz_passcode tests/fuzz/corpus/passcode  (add -max_total_time=60 for a bounded run)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/ftm-fuzz}
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (apt-get install clang)"; exit 77; }
mkdir -p "$out"
# The sources include the autoconf config.h; the harnesses need nothing from it.
: >"$out/config.h"
flags=(-g -O1 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer
       -I"$out" -I"$src/common" -Wall -Wextra)
ssl_cflags=$(pkg-config --cflags openssl)
ssl_libs=$(pkg-config --libs openssl)
# shellcheck disable=SC2086
"$cc" "${flags[@]}" $ssl_cflags -o "$out/fuzz_passcode" "$src/tests/fuzz/fuzz_passcode.c" \
	"$src/common/passcode.c" "$src/common/otp.c" $ssl_libs
# shellcheck disable=SC2086
"$cc" "${flags[@]}" $ssl_cflags -o "$out/fuzz_config" "$src/tests/fuzz/fuzz_config.c" \
	"$src/common/config.c" "$src/common/log.c" "$src/common/otp.c" $ssl_libs
"$cc" "${flags[@]}" -o "$out/fuzz_enrol_form" "$src/tests/fuzz/fuzz_enrol_form.c" "$src/common/enrol_form.c"
echo "fuzz: built $out/fuzz_passcode $out/fuzz_config $out/fuzz_enrol_form"

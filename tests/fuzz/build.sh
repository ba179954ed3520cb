#!/usr/bin/env bash
# Builds the libFuzzer harnesses with clang (not part of the default build): bash tests/fuzz/build.sh [OUTDIR]
# Then: OUTDIR/fuzz_NAME tests/fuzz/corpus/NAME  (add -max_total_time=60 for a bounded run)
# The core (common/*.c) is compiled once with coverage and sanitizers; the push harnesses link
# fuzz_mhd_stub.c in place of libmicrohttpd.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/ftm-fuzz}
cc=${CC:-clang}
command -v "$cc" >/dev/null || { echo "fuzz: $cc not found (apt-get install clang libclang-rt-14-dev)"; exit 77; }
mkdir -p "$out/obj"
# The sources include the autoconf config.h; the harnesses need only the version string from it.
echo '#define PACKAGE_VERSION "fuzz"' >"$out/config.h"
san=-fsanitize=address,undefined
flags=(-g -O1 -D_GNU_SOURCE -fno-omit-frame-pointer -fno-sanitize-recover=undefined
       -I"$out" -I"$src/common" -I"$src/tests/fuzz" -Wall -Wextra)
# -Werror is the gcc build's gate (configure --enable-werror); clang's warnings differ, so only the
# harnesses themselves are held to it here.
# shellcheck disable=SC2207
pkg_cflags=($(pkg-config --cflags openssl libcurl json-c sqlite3 libmicrohttpd libqrencode libpq))
# shellcheck disable=SC2207
pkg_libs=($(pkg-config --libs openssl libcurl json-c sqlite3 libqrencode libpq))

objs=()
for c in "$src"/common/*.c "$src/tests/fuzz/fuzz_mhd_stub.c"; do
  # The PostgreSQL backend is optional (HAVE_LIBPQ, which this config.h leaves undefined) and faces no peer.
  case $c in */common/store_pg.c) continue;; esac
  o=$out/obj/$(basename "$c" .c).o
  if [ ! -e "$o" ] || [ "$c" -nt "$o" ] || [ -n "$(find "$src/common" "$src/tests/fuzz" -name '*.h' -newer "$o")" ]; then
    werror=(); case $c in */tests/fuzz/*) werror=(-Werror);; esac
    "$cc" "${flags[@]}" "${werror[@]}" "$san" -fsanitize=fuzzer-no-link "${pkg_cflags[@]}" -c -o "$o" "$c"
  fi
  objs+=("$o")
done

harnesses=()
for h in "$src"/tests/fuzz/fuzz_*.c; do
  name=$(basename "$h" .c)
  [ "$name" = fuzz_mhd_stub ] && continue
  "$cc" "${flags[@]}" -Werror "$san" -fsanitize=fuzzer "${pkg_cflags[@]}" -o "$out/$name" "$h" "${objs[@]}" \
    "${pkg_libs[@]}" -lpthread
  harnesses+=("$name")
done
echo "fuzz: built ${harnesses[*]} in $out"

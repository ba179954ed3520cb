#!/usr/bin/env bash
# README's test command: installs what is needed, builds with -Werror, runs the unit tests (plain and
# under ASan/UBSan), the libFuzzer harnesses (tests/fuzz: clang, a fixed time each), the integration
# tests (stock freeradius + radclient, pamtester + pam_wrapper, sshd, the simulated phone; as root also
# tests/integration/quickstart.test, which builds the .debs and follows README's Quick starts on the real
# /etc and /var, about 6-10 minutes) and `make distcheck`. Exits non-zero when anything fails.
#   FTM_SKIP_DEPS=1       do not run scripts/deps.sh
#   FTM_SKIP_DISTCHECK=1  skip make distcheck
#   FTM_SKIP_FUZZ=1       skip the fuzz step; FTM_FUZZ_SECONDS=N runs each harness N s (default 20)
#   FTM_TESTS="a.test b.test"  run only these integration tests
#   FTM_REQUIRE_PG=0      let the PostgreSQL tests skip when no server binaries are installed
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
# deps.sh installs PostgreSQL: its tests (unit and pg_*.test) must run, not skip, here and in CI.
export FTM_REQUIRE_PG=${FTM_REQUIRE_PG:-1}
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
results=()
overall=0
step() { echo; echo "==== $* ===="; }
record() { # name rc
  if [ "$2" -eq 0 ]; then results+=("PASS: $1"); else results+=("FAIL: $1"); overall=1; fi
}

if [ "${FTM_SKIP_DEPS:-0}" != 1 ]; then
  step "dependencies (scripts/deps.sh)"
  bash scripts/deps.sh
fi

step "FreeRADIUS headers (scripts/freeradius-headers.sh)"
bash scripts/freeradius-headers.sh
frinc="$top/build/freeradius-include"

step "autoreconf"
autoreconf -fi >/dev/null

step "build (-Werror)"
# A tree configured in place (README's "from source" Quick start: ./configure && make) cannot also be
# built out of tree (automake: "source directory already configured"): clean it in place first.
if [ -f "$top/config.status" ]; then
  echo "an in-tree ./configure was run in $top: make distclean there first (the build goes to build/)"
  make -C "$top" distclean >/dev/null 2>&1 || rm -f "$top/config.status" "$top/Makefile" "$top/config.h"
fi
mkdir -p build/test
(cd build/test && "$top/configure" --enable-werror --with-freeradius-include="$frinc" >configure.out && make -j"$jobs")

step "unit tests"
rc=0; (cd build/test && make -j"$jobs" check) || rc=$?
[ $rc -eq 0 ] || cat build/test/tests/unit/*.log 2>/dev/null | tail -n 100
record "unit tests" $rc

step "unit tests under ASan/UBSan"
mkdir -p build/asan
rc=0
(cd build/asan && "$top/configure" --enable-werror --enable-sanitizers --without-freeradius --without-pam >configure.out \
  && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 make -j"$jobs" check) || rc=$?
[ $rc -eq 0 ] || cat build/asan/tests/unit/*.log 2>/dev/null | tail -n 100
record "unit tests (ASan/UBSan)" $rc

rm -f "$top/build/fuzz/failures.txt"	# shown after the summary: this run's only
if [ "${FTM_SKIP_FUZZ:-0}" != 1 ]; then
  step "fuzzing (tests/fuzz: each harness ${FTM_FUZZ_SECONDS:-20} s from its committed corpus)"
  rc=0
  FTM_FUZZ_OUT="$top/build/fuzz" bash tests/fuzz/run.sh "${FTM_FUZZ_SECONDS:-20}" || rc=$?
  record "fuzzing (a crash or leak fails)" $rc
fi

step "integration tests"
rc=0
if [ -n "${FTM_TESTS:-}" ]; then
  # shellcheck disable=SC2086
  set -- $(for t in $FTM_TESTS; do echo "$top/tests/integration/$t"; done)
else
  set --
fi
FTM_SRCDIR="$top" FTM_BUILDDIR="$top/build/test" bash tests/integration/run.sh "$@" || rc=$?
record "integration tests" $rc

if [ "${FTM_SKIP_DISTCHECK:-0}" != 1 ]; then
  step "make distcheck"
  rc=0
  (cd build/test && make -j"$jobs" distcheck DISTCHECK_CONFIGURE_FLAGS="--enable-werror --with-freeradius-include=$frinc" >distcheck.out 2>&1) || rc=$?
  [ $rc -eq 0 ] || tail -n 60 build/test/distcheck.out
  record "make distcheck" $rc
fi

step "summary"
np=0; nf=0
for r in "${results[@]}"; do echo "$r"; case $r in PASS*) np=$((np+1));; *) nf=$((nf+1));; esac; done
echo "$np passed, $nf failed"
# a failed harness's findings (tests/fuzz/run.sh), last, where the tail of a CI log shows them
if [ -s "$top/build/fuzz/failures.txt" ]; then echo; cat "$top/build/fuzz/failures.txt"; fi
exit $overall

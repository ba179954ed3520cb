# bench/bench.mk: the store benchmark (built, not installed; run bench/bench_verify, see bench/README.md)
noinst_PROGRAMS += bench/bench_verify
bench_bench_verify_SOURCES = bench/bench_verify.c
bench_bench_verify_LDADD = common/libftmpush.la

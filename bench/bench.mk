# bench/bench.mk: the store benchmark (built, not installed; run bench/bench_verify, see bench/README.md)
noinst_PROGRAMS += bench/bench_verify
bench_bench_verify_SOURCES = bench/bench_verify.c
bench_bench_verify_LDADD = common/libftmpush.la
if WITH_POSTGRESQL
noinst_PROGRAMS += bench/bench_store_pg
bench_bench_store_pg_SOURCES = bench/bench_store_pg.c
bench_bench_store_pg_LDADD = common/libftmpush.la
endif
EXTRA_DIST += bench/bench_store_pg.sh

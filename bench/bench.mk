# bench/bench.mk: the benchmarks (built, not installed; bash bench/run.sh runs them, see bench/README.md)
noinst_PROGRAMS += bench/bench_verify bench/bench_login bench/radload bench/bench_sync
bench_bench_verify_SOURCES = bench/bench_verify.c
bench_bench_verify_LDADD = common/libftmpush.la
bench_bench_login_SOURCES = bench/bench_login.c
bench_bench_login_LDADD = common/libftmpush.la
# the RADIUS load driver is a client of the server, not of the core: it links only OpenSSL (MD5, HMAC-MD5)
bench_radload_SOURCES = bench/radload.c
bench_radload_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS)
bench_radload_LDADD = $(OPENSSL_LIBS)
EXTRA_DIST += bench/run.sh bench/radius.sh bench/pam.sh bench/push_pending.sh bench/import.sh
if WITH_POSTGRESQL
noinst_PROGRAMS += bench/bench_store_pg
bench_bench_store_pg_SOURCES = bench/bench_store_pg.c
bench_bench_store_pg_LDADD = common/libftmpush.la
endif
EXTRA_DIST += bench/bench_store_pg.sh
# the disk under the store: a commit's sync cost on a directory's file system, no SQLite, no core
bench_bench_sync_SOURCES = bench/bench_sync.c

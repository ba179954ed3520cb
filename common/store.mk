# common/store.mk: the token store (interface + SQLite and PostgreSQL backends + seed encryption)
common_libftmpush_core_la_SOURCES += \
	common/ftm_store.h common/store.c \
	common/store_backend.h common/ftm_batch.h common/batch.c common/store_sqlite.c common/store_push.c \
	common/seedcrypt.h common/seedcrypt.c \
	common/ftm_policy.h common/policy.c
if WITH_POSTGRESQL
# libpq is not linked: pq_lazy loads it on the first PostgreSQL store open (a PAM login on an SQLite
# store would otherwise map libpq and 20 libraries it brings, for nothing)
common_libftmpush_core_la_SOURCES += common/store_pg.c common/pq_lazy.h common/pq_lazy.c
common_libftmpush_core_la_CFLAGS += $(PQ_CFLAGS)
common_libftmpush_core_la_LIBADD += $(DL_LIBS)
endif

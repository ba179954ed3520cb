# common/store.mk: the token store (interface + SQLite and PostgreSQL backends + seed encryption)
common_libftmpush_core_la_SOURCES += \
	common/ftm_store.h common/store.c \
	common/store_backend.h common/store_sqlite.c common/store_push.c \
	common/seedcrypt.h common/seedcrypt.c \
	common/ftm_policy.h common/policy.c
if WITH_POSTGRESQL
common_libftmpush_core_la_SOURCES += common/store_pg.c
common_libftmpush_core_la_CFLAGS += $(PQ_CFLAGS)
common_libftmpush_core_la_LIBADD += $(PQ_LIBS)
endif

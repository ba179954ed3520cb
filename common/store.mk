# common/store.mk: the token store (interface + SQLite backend + seed encryption)
common_libftmpush_core_la_SOURCES += \
	common/ftm_store.h common/store.c \
	common/store_backend.h common/store_sqlite.c \
	common/seedcrypt.h common/seedcrypt.c

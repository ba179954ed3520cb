# tests/unit/store.mk: unit tests of the store
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c tests/unit/store_fixture.h tests/unit/store_push_spec.h tests/unit/store_audit_cases.h
tests_unit_test_store_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_store_LDADD = common/libftmpush.la $(CMOCKA_LIBS) $(SQLITE_LIBS)
# statfs wrapped: a_store_on_a_network_file_system_is_refused makes the store's directory report NFS, CIFS...
tests_unit_test_store_LDFLAGS = $(AM_LDFLAGS) -Wl,--wrap=statfs

# The PostgreSQL backend, on a private server the wrapper script starts.
if WITH_POSTGRESQL
check_PROGRAMS += tests/unit/test_store_pg
TESTS += tests/unit/test_store_pg.sh
tests_unit_test_store_pg_SOURCES = tests/unit/test_store_pg.c tests/unit/store_fixture.h tests/unit/store_push_spec.h tests/unit/store_activation_spec.h tests/unit/store_audit_cases.h
tests_unit_test_store_pg_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(PQ_CFLAGS)
tests_unit_test_store_pg_LDADD = common/libftmpush.la $(CMOCKA_LIBS) $(PQ_LIBS)
endif
endif
EXTRA_DIST += tests/unit/test_store_pg.sh
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_activation
TESTS += tests/unit/test_activation
tests_unit_test_activation_SOURCES = tests/unit/test_activation.c tests/unit/store_fixture.h tests/unit/store_activation_spec.h
tests_unit_test_activation_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_activation_LDADD = common/libftmpush.la $(CMOCKA_LIBS)
endif

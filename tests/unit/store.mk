# tests/unit/store.mk: unit tests of the store
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_store
TESTS += tests/unit/test_store
tests_unit_test_store_SOURCES = tests/unit/test_store.c
tests_unit_test_store_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_store_LDADD = common/libftmpush.la $(CMOCKA_LIBS)
endif
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_activation
TESTS += tests/unit/test_activation
tests_unit_test_activation_SOURCES = tests/unit/test_activation.c
tests_unit_test_activation_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_activation_LDADD = common/libftmpush.la $(CMOCKA_LIBS)
endif

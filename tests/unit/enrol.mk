# tests/unit/enrol.mk: unit tests of the enrolment page, its links and its mail
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_enrol
TESTS += tests/unit/test_enrol
tests_unit_test_enrol_SOURCES = tests/unit/test_enrol.c tests/unit/store_fixture.h
tests_unit_test_enrol_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS)
tests_unit_test_enrol_LDADD = common/libftmpush.la $(CMOCKA_LIBS)
endif

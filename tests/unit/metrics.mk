# tests/unit/metrics.mk: unit tests of the metrics (counters, exposition, metrics_listen, the listener)
if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_metrics
TESTS += tests/unit/test_metrics
tests_unit_test_metrics_SOURCES = tests/unit/test_metrics.c tests/unit/free_port.h
tests_unit_test_metrics_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(CURL_CFLAGS) $(SQLITE_CFLAGS)
tests_unit_test_metrics_LDADD = common/libftmpush.la $(CMOCKA_LIBS) $(CURL_LIBS) $(SQLITE_LIBS)
endif

# tests/unit/push.mk: unit tests of push (engine, envelope, answers) and of the ftmpushd socket
if HAVE_CMOCKA
push_unit_tests = tests/unit/test_push tests/unit/test_push_listener tests/unit/test_rendezvous
check_PROGRAMS += $(push_unit_tests)
TESTS += $(push_unit_tests)

push_unit_cflags = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(OPENSSL_CFLAGS) $(JSONC_CFLAGS)
push_unit_ldadd = common/libftmpush.la $(CMOCKA_LIBS)

tests_unit_test_push_SOURCES = tests/unit/test_push.c
tests_unit_test_push_CFLAGS = $(push_unit_cflags)
tests_unit_test_push_LDADD = $(push_unit_ldadd)

tests_unit_test_push_listener_SOURCES = tests/unit/test_push_listener.c tests/unit/free_port.h
tests_unit_test_push_listener_CFLAGS = $(push_unit_cflags) $(CURL_CFLAGS)
tests_unit_test_push_listener_LDADD = $(push_unit_ldadd)

tests_unit_test_rendezvous_SOURCES = tests/unit/test_rendezvous.c
tests_unit_test_rendezvous_CFLAGS = $(push_unit_cflags)
tests_unit_test_rendezvous_LDADD = $(push_unit_ldadd)
endif

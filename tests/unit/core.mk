# tests/unit/core.mk: unit tests of log, otp, passcode, config, auth, peer, batch
if HAVE_CMOCKA
core_unit_tests = tests/unit/test_log tests/unit/test_otp tests/unit/test_passcode tests/unit/test_config tests/unit/test_auth \
	tests/unit/test_peer tests/unit/test_batch
check_PROGRAMS += $(core_unit_tests)
TESTS += $(core_unit_tests)

core_unit_cflags = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(OPENSSL_CFLAGS)
core_unit_ldadd = common/libftmpush.la $(CMOCKA_LIBS)

tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(core_unit_cflags)
tests_unit_test_log_LDADD = $(core_unit_ldadd)

tests_unit_test_otp_SOURCES = tests/unit/test_otp.c
tests_unit_test_otp_CFLAGS = $(core_unit_cflags)
tests_unit_test_otp_LDADD = $(core_unit_ldadd)

tests_unit_test_passcode_SOURCES = tests/unit/test_passcode.c
tests_unit_test_passcode_CFLAGS = $(core_unit_cflags)
tests_unit_test_passcode_LDADD = $(core_unit_ldadd)

tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CFLAGS = $(core_unit_cflags)
tests_unit_test_config_LDADD = $(core_unit_ldadd) $(OPENSSL_LIBS)

tests_unit_test_auth_SOURCES = tests/unit/test_auth.c
tests_unit_test_auth_CFLAGS = $(core_unit_cflags)
tests_unit_test_auth_LDADD = $(core_unit_ldadd)

tests_unit_test_peer_SOURCES = tests/unit/test_peer.c
tests_unit_test_peer_CFLAGS = $(core_unit_cflags)
tests_unit_test_peer_LDADD = $(core_unit_ldadd)

tests_unit_test_batch_SOURCES = tests/unit/test_batch.c
tests_unit_test_batch_CFLAGS = $(core_unit_cflags)
tests_unit_test_batch_LDADD = $(core_unit_ldadd)
endif

# common/core.mk: libftmpush, the core every front end links (helpers, messages, log, otp, passcode,
# config, the decisions in auth and its challenge States, the push verdict shared by both push paths,
# protect: secrets kept out of core dumps)
noinst_LTLIBRARIES += common/libftmpush.la
common_libftmpush_la_SOURCES = \
	common/ftm_util.h common/util.c \
	common/ftm_message.h common/message.c \
	common/ftm_log.h common/log.c \
	common/ftm_otp.h common/otp.c \
	common/ftm_passcode.h common/passcode.c \
	common/ftm_config.h common/config.c \
	common/ftm_auth.h common/auth.c \
	common/ftm_states.h common/states.c \
	common/ftm_push_verdict.h common/push_verdict.c \
	common/ftm_protect.h common/protect.c
common_libftmpush_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) $(SQLITE_CFLAGS) $(MHD_CFLAGS)
common_libftmpush_la_LIBADD = $(OPENSSL_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(SQLITE_LIBS) $(MHD_LIBS)

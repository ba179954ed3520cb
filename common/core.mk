# common/core.mk: libftmpush, the core every front end links (log, otp, passcode, config, auth, protect)
noinst_LTLIBRARIES += common/libftmpush.la
common_libftmpush_la_SOURCES = \
	common/ftm_log.h common/log.c \
	common/ftm_otp.h common/otp.c \
	common/ftm_passcode.h common/passcode.c \
	common/ftm_config.h common/config.c \
	common/ftm_auth.h common/auth.c \
	common/ftm_protect.h common/protect.c
common_libftmpush_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) $(SQLITE_CFLAGS) $(MHD_CFLAGS)
common_libftmpush_la_LIBADD = $(OPENSSL_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(SQLITE_LIBS) $(MHD_LIBS)

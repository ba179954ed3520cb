# common/push.mk: the in-process push engine (transactions, answers, callback listener, channels) and
# ftmpushd's request handling, which drives it; the diagnose checklist (it checks the listener and the
# push servers the way the engine reaches them); the only part of the core that needs libcurl and
# libmicrohttpd
noinst_LTLIBRARIES += common/libftmpush.la
common_libftmpush_la_SOURCES = \
	common/ftm_push.h common/push.c common/push_auth.c \
	common/push_listener.h common/push_listener.c \
	common/push_channel.h common/push_channel.c \
	common/ftm_push_daemon.h common/push_daemon.c \
	common/ftm_diagnose.h common/diagnose.c
common_libftmpush_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(CURL_CFLAGS) $(JSONC_CFLAGS) $(SQLITE_CFLAGS) $(MHD_CFLAGS)
common_libftmpush_la_LIBADD = common/libftmpush_core.la $(OPENSSL_LIBS) $(CURL_LIBS) $(JSONC_LIBS) $(MHD_LIBS)

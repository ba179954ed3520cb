# common/core.mk: libftmpush_core, the core every front end links (helpers, messages, log, otp, passcode,
# config, the decisions in auth and its challenge States, the push verdict shared by both push paths,
# protect: secrets kept out of core dumps; with store.mk and rendezvous.mk the store and ftmpushd's
# socket). No libcurl, no libmicrohttpd: those are the push engine's (push.mk, libftmpush), which a PAM
# process never runs.
noinst_LTLIBRARIES += common/libftmpush_core.la
common_libftmpush_core_la_SOURCES = \
	common/ftm_util.h common/util.c \
	common/ftm_message.h common/message.c \
	common/ftm_log.h common/log.c \
	common/ftm_otp.h common/otp.c \
	common/ftm_passcode.h common/passcode.c \
	common/ftm_config.h common/config_internal.h common/config.c common/config_validate.c \
	common/ftm_auth.h common/auth.c common/result.c \
	common/ftm_states.h \
	common/ftm_push_verdict.h common/push_verdict.c \
	common/ftm_protect.h common/protect.c \
	common/ftm_audit.h common/audit.c \
	common/ftm_trace.h common/trace.c \
	common/ftm_recovery.h common/recovery.c
common_libftmpush_core_la_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(JSONC_CFLAGS) $(SQLITE_CFLAGS)
common_libftmpush_core_la_LIBADD = $(OPENSSL_LIBS) $(JSONC_LIBS) $(SQLITE_LIBS)

# The PAM module's thin part (pam_ftmpush.so without the core: the config file, the messages, the log
# and the socket client of ftmpushd; json-c and libc only, no OpenSSL, no SQLite): docs/pam.md.
noinst_LTLIBRARIES += common/libftmpush_thin.la
common_libftmpush_thin_la_SOURCES = \
	common/ftm_util.h common/util.c \
	common/ftm_message.h common/message.c \
	common/ftm_log.h common/log.c \
	common/ftm_config.h common/config_internal.h common/config.c \
	common/ftm_policy.h common/policy.c \
	common/result.c \
	common/rdv_frame.h common/rdv_frame.c common/rendezvous_login.c
common_libftmpush_thin_la_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
common_libftmpush_thin_la_LIBADD = $(JSONC_LIBS)

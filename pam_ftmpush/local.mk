# pam_ftmpush/local.mk: the PAM module in two shared objects (docs/pam.md). pam_ftmpush.so is the thin
# part: PAM glue, the config file and ftmpushd's socket client (libpam, json-c, libc: no OpenSSL, no
# SQLite, no push engine), which asks ftmpushd for the split and the code's verdict when it runs.
# pam_ftmpush_core.so, installed in a private directory ($(pamdir)/ftmpush/) and found next to the
# module, is the core (store, verdicts, OpenSSL, SQLite): dlopen()ed only to decide a login in process.
if WITH_PAM
pam_LTLIBRARIES = pam_ftmpush/pam_ftmpush.la
pam_ftmpush_pam_ftmpush_la_SOURCES = pam_ftmpush/pam_ftmpush.c pam_ftmpush/pam_core.h
pam_ftmpush_pam_ftmpush_la_CFLAGS = $(AM_CFLAGS) $(JSONC_CFLAGS)
pam_ftmpush_pam_ftmpush_la_LIBADD = common/libftmpush_thin.la $(PAM_LIBS) $(DL_LIBS)
pam_ftmpush_pam_ftmpush_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols $(top_srcdir)/pam_ftmpush/pam_ftmpush.sym
EXTRA_pam_ftmpush_pam_ftmpush_la_DEPENDENCIES = $(top_srcdir)/pam_ftmpush/pam_ftmpush.sym

pamcoredir = $(pamdir)/ftmpush
pamcore_LTLIBRARIES = pam_ftmpush/pam_ftmpush_core.la
pam_ftmpush_pam_ftmpush_core_la_SOURCES = pam_ftmpush/pam_core.c pam_ftmpush/pam_core.h
pam_ftmpush_pam_ftmpush_core_la_LIBADD = common/libftmpush_core.la
pam_ftmpush_pam_ftmpush_core_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols $(top_srcdir)/pam_ftmpush/pam_ftmpush_core.sym
EXTRA_pam_ftmpush_pam_ftmpush_core_la_DEPENDENCIES = $(top_srcdir)/pam_ftmpush/pam_ftmpush_core.sym
endif
EXTRA_DIST += pam_ftmpush/pam_ftmpush.sym pam_ftmpush/pam_ftmpush_core.sym
dist_man_MANS += docs/pam_ftmpush.8

# pam_ftmpush/local.mk: the PAM module (glue only; links the core without the push engine: a PAM login
# reaches its push through ftmpushd's socket, so libcurl and libmicrohttpd are never loaded)
if WITH_PAM
pam_LTLIBRARIES = pam_ftmpush/pam_ftmpush.la
pam_ftmpush_pam_ftmpush_la_SOURCES = pam_ftmpush/pam_ftmpush.c
pam_ftmpush_pam_ftmpush_la_LIBADD = common/libftmpush_core.la $(PAM_LIBS)
pam_ftmpush_pam_ftmpush_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared \
	-export-symbols $(top_srcdir)/pam_ftmpush/pam_ftmpush.sym
EXTRA_pam_ftmpush_pam_ftmpush_la_DEPENDENCIES = $(top_srcdir)/pam_ftmpush/pam_ftmpush.sym
endif
EXTRA_DIST += pam_ftmpush/pam_ftmpush.sym
dist_man_MANS += docs/pam_ftmpush.8

# rlm_ftmpush/local.mk: the FreeRADIUS module (glue only; links the core)
if WITH_FREERADIUS
frmod_LTLIBRARIES = rlm_ftmpush/rlm_ftmpush.la
rlm_ftmpush_rlm_ftmpush_la_SOURCES = rlm_ftmpush/rlm_ftmpush.c rlm_ftmpush/shutdown.c rlm_ftmpush/shutdown.h
rlm_ftmpush_rlm_ftmpush_la_CFLAGS = $(AM_CFLAGS) $(FR_CFLAGS)
rlm_ftmpush_rlm_ftmpush_la_LIBADD = common/libftmpush.la
rlm_ftmpush_rlm_ftmpush_la_LDFLAGS = $(AM_LDFLAGS) -module -avoid-version -shared
endif
# distcheck installs into a throw-away prefix: keep the module there too, not in the real
# /usr/lib/freeradius (as root, distcheck would otherwise install and then uninstall the system's copy).
AM_DISTCHECK_CONFIGURE_FLAGS += --with-freeradius-moddir='$${libdir}/freeradius'

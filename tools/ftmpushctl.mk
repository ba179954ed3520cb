# tools/ftmpushctl.mk: the admin CLI
bin_PROGRAMS += tools/ftmpushctl
tools_ftmpushctl_SOURCES = tools/ftmpushctl.c
tools_ftmpushctl_CFLAGS = $(AM_CFLAGS) $(QRENCODE_CFLAGS)
tools_ftmpushctl_LDADD = common/libftmpush.la $(QRENCODE_LIBS)
dist_man_MANS += docs/ftmpushctl.1

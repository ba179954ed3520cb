# tools/ftmpushd.mk: the callback daemon for PAM hosts (its work is common/push_daemon.c)
sbin_PROGRAMS += tools/ftmpushd
tools_ftmpushd_SOURCES = tools/ftmpushd.c
tools_ftmpushd_LDADD = common/libftmpush.la
EXTRA_DIST += tools/ftmpushd.service
dist_man_MANS += docs/ftmpushd.8

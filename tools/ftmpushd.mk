# tools/ftmpushd.mk: the callback daemon for PAM hosts, and the Unix-socket rendezvous it serves
common_libftmpush_la_SOURCES += \
	common/ftm_rendezvous.h common/rendezvous_socket.c
sbin_PROGRAMS += tools/ftmpushd
tools_ftmpushd_SOURCES = tools/ftmpushd.c
tools_ftmpushd_LDADD = common/libftmpush.la
EXTRA_DIST += tools/ftmpushd.service
dist_man_MANS += docs/ftmpushd.8

# tools/ftmpushd.mk: the callback daemon for PAM hosts, and the Unix-socket rendezvous it serves
common_libftmpush_la_SOURCES += \
	common/ftm_rendezvous.h common/rendezvous_socket.c

# common/push.mk: push transactions, callback listener, channels, rendezvous
common_libftmpush_la_SOURCES += \
	common/ftm_push.h common/push.c common/push_auth.c \
	common/push_listener.c common/push_channel.c

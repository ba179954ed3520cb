# common/rendezvous.mk: ftmpushd's Unix socket (framing, client, server) and the push client a PAM
# process uses through it (json-c only: no libcurl, no libmicrohttpd)
common_libftmpush_core_la_SOURCES += \
	common/ftm_rendezvous.h common/rendezvous_socket.c common/rdv_frame.h common/rdv_frame.c common/rendezvous_login.c \
	common/ftm_peer.h common/peer.c \
	common/ftm_push_client.h common/push_client.c

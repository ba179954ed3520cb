# common/push.mk: push transactions, callback listener, channels, rendezvous

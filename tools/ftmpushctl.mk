# tools/ftmpushctl.mk: the admin CLI

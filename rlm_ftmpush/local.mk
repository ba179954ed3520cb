# rlm_ftmpush/local.mk: the FreeRADIUS module

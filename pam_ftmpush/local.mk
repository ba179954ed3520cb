# pam_ftmpush/local.mk: the PAM module

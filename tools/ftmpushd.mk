# tools/ftmpushd.mk: the callback daemon for PAM hosts

# tools/ftmpushd.mk: the callback daemon for PAM hosts (its work is common/push_daemon.c), and the
# systemd unit, init script, system user and state directory that run it.
sbin_PROGRAMS += tools/ftmpushd
tools_ftmpushd_SOURCES = tools/ftmpushd.c
tools_ftmpushd_CFLAGS = $(AM_CFLAGS) $(SYSTEMD_CFLAGS)
tools_ftmpushd_LDADD = common/libftmpush.la $(SYSTEMD_LIBS)
dist_man_MANS += docs/ftmpushd.8 docs/ftmpush.conf.5

# The unit names the installed daemon: substituted here (sbindir holds ${exec_prefix} until make).
systemdsystemunit_DATA = tools/ftmpushd.service
tools/ftmpushd.service: $(top_srcdir)/tools/ftmpushd.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) tools && sed -e 's|@sbindir[@]|$(sbindir)|g' -e 's|@FTM_UNIT_TYPE[@]|$(FTM_UNIT_TYPE)|g' \
	  -e 's|@FTM_SYSCONFDIR[@]|/etc/ftmpush|g' $(top_srcdir)/tools/ftmpushd.service.in >$@.tmp && mv $@.tmp $@
CLEANFILES += tools/ftmpushd.service
# The same for a box without systemd (README: `service ftmpushd start`); Debian installs it as
# /etc/init.d/ftmpushd, a source install copies it there by hand (README).
noinst_SCRIPTS = tools/ftmpushd.init
tools/ftmpushd.init: $(top_srcdir)/tools/ftmpushd.init.in Makefile
	$(AM_V_GEN)$(MKDIR_P) tools && sed -e 's|@sbindir[@]|$(sbindir)|g' $(top_srcdir)/tools/ftmpushd.init.in >$@.tmp \
	  && chmod 0755 $@.tmp && mv $@.tmp $@
CLEANFILES += tools/ftmpushd.init
EXTRA_DIST += tools/ftmpushd.service.in tools/ftmpushd.init.in tools/ftmpush.sysusers tools/ftmpush.tmpfiles

# sysusers.d and tmpfiles.d want NAME.conf: installed under the package's name.
install-data-local: install-ftmpush-sysusers
uninstall-local: uninstall-ftmpush-sysusers
install-ftmpush-sysusers:
	$(MKDIR_P) '$(DESTDIR)$(sysusersdir)' '$(DESTDIR)$(tmpfilesdir)'
	$(INSTALL_DATA) $(top_srcdir)/tools/ftmpush.sysusers '$(DESTDIR)$(sysusersdir)/ftmpush.conf'
	$(INSTALL_DATA) $(top_srcdir)/tools/ftmpush.tmpfiles '$(DESTDIR)$(tmpfilesdir)/ftmpush.conf'
uninstall-ftmpush-sysusers:
	rm -f '$(DESTDIR)$(sysusersdir)/ftmpush.conf' '$(DESTDIR)$(tmpfilesdir)/ftmpush.conf'
.PHONY: install-ftmpush-sysusers uninstall-ftmpush-sysusers

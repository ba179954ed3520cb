# common/enrol.mk: enrolment by activation link (the link, the mail through SMTP, the page and its QR codes)
common_libftmpush_la_SOURCES += \
	common/ftm_enrol.h common/enrol.c common/enrol_form.c \
	common/ftm_mail.h common/mail.c
common_libftmpush_la_CFLAGS += $(QRENCODE_CFLAGS)
common_libftmpush_la_LIBADD += $(QRENCODE_LIBS)

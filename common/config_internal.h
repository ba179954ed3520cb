/* config_internal: what config.c (the file) and config_validate.c (the cross-option checks) share. */
#ifndef FTM_CONFIG_INTERNAL_H
#define FTM_CONFIG_INTERNAL_H

#include "ftm_config.h"

struct load_state {
	ftm_config_report_fn	report;
	void			*ctx;
	char			*err;
	size_t			err_len;
	int			errors;
};

/* One problem: reported (with its line, 0 for none), the first kept in err, counted. */
void ftm_config_load_error(struct load_state *ls, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

/* pam_core: what pam_ftmpush.so (the thin part: PAM glue, the config file, ftmpushd's socket client)
 * asks of its private core object (pam_ftmpush_core.so: the store, the verdicts, OpenSSL, SQLite),
 * which it dlopen()s only to decide a login in process (no ftmpushd, or a push/challenge login). */
#ifndef FTM_PAM_CORE_H
#define FTM_PAM_CORE_H

#include "ftm_auth.h"

#define FTM_PAM_CORE_FILE	"pam_ftmpush_core.so"
#define FTM_PAM_CORE_SYMBOL	"ftm_pam_core"

/* Exactly ftm_auth's entry points the module uses; version and sizes catch a core of another build. */
typedef struct {
	const char	*version;	/* PACKAGE_VERSION of the core's build */
	size_t		config_size;	/* sizeof(ftm_config_t) */
	size_t		outcome_size;	/* sizeof(ftm_outcome_t) */
	ftm_auth_t	*(*open)(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len);
	void		(*close)(ftm_auth_t *auth);
	int		(*split)(ftm_auth_t *auth, const ftm_login_t *login, const char *typed, time_t now,
				 ftm_split_t *out);
	void		(*after_password)(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
					  ftm_outcome_t *out);
	void		(*prompt_answer)(ftm_auth_t *auth, const ftm_login_t *login, const char *proven_password,
					 const char *state, const char *answer, time_t now, ftm_outcome_t *out);
	bool		(*push_prompt_asks_push)(const char *proven_password, const char *answer);
} ftm_pam_core_t;

#endif

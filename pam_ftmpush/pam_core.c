/* pam_core: pam_ftmpush's private core object (pam_ftmpush_core.so): ftm_auth for a login decided in
 * the PAM process; loaded by pam_ftmpush.so only when ftmpushd does not decide it (docs/pam.md). */
#include "config.h"

#include "ftm_audit.h"
#include "ftm_auth.h"
#include "pam_core.h"

/* kept on a PAM handle, whose calls come one at a time: one store connection is enough */
static ftm_auth_t *core_open(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len)
{
	ftm_auth_t *auth = ftm_auth_new_single(cfg, log, err, err_len);

	if (auth != NULL)
		ftm_auth_set_frontend(auth, FTM_AUDIT_FE_PAM);
	return auth;
}

extern const ftm_pam_core_t ftm_pam_core;
const ftm_pam_core_t ftm_pam_core = {
	.version = PACKAGE_VERSION,
	.config_size = sizeof(ftm_config_t),
	.outcome_size = sizeof(ftm_outcome_t),
	.open = core_open,
	.close = ftm_auth_free,
	.split = ftm_auth_split,
	.after_password = ftm_auth_after_password,
	.prompt_answer = ftm_auth_prompt_answer,
	.push_prompt_asks_push = ftm_auth_push_prompt_asks_push,
};

/* push_auth: the push engine plugged into ftm_auth (ftm_push_ops_t); kept apart so the engine links alone. */
#include "config.h"

#include <stdio.h>

#include "ftm_enrol.h"
#include "ftm_push.h"

static void ops_push(void *ctx, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
		     ftm_outcome_t *out)
{
	ftm_push_second_factor(ctx, login, tok, now, out);
}

static bool ops_challenge_answer(void *ctx, const ftm_login_t *login, const char *state, const char *answer,
				 time_t now, ftm_outcome_t *out)
{
	return ftm_push_challenge_answer(ctx, login, state, answer, now, out);
}

static void ops_stop(void *ctx)
{
	ftm_push_free(ctx);
}

int ftm_push_auth_attach(ftm_auth_t *auth, const ftm_log_t *log, ftm_push_t **engine, char *err, size_t err_len)
{
	static const ftm_push_ops_t ops = {
		.push = ops_push,
		.challenge_answer = ops_challenge_answer,
		.stop = ops_stop,
	};
	const ftm_config_t *cfg = ftm_auth_config(auth);
	ftm_push_t *p;

	if (!cfg->push.status) {
		snprintf(err, err_len, "push is disabled (push.status)");
		return -1;
	}
	p = ftm_push_new(cfg, log, 0, err, err_len);
	if (p == NULL)
		return -1;
	/* pending pushes live in the store: a callback to any node of it counts */
	ftm_push_set_store(p, ftm_auth_store(auth));
	/* the same listener serves the enrolment page of activation links, over the same store */
	ftm_push_set_enrol(p, ftm_enrol_new(ftm_auth_store(auth), cfg, log));
	ftm_auth_set_push_ops(auth, &ops, p);
	if (engine)
		*engine = p;
	return 0;
}

int ftm_auth_push_start(ftm_auth_t *auth, char *err, size_t err_len)
{
	return ftm_push_auth_attach(auth, ftm_auth_log(auth), NULL, err, err_len);
}

/* push_client: ftm_push_ops_t through ftmpushd (a PAM process); number matching keeps the connection. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ftm_push_client.h"
#include "ftm_rendezvous.h"
#include "ftm_states.h"
#include "ftm_util.h"

typedef struct {
	char		socket[FTM_PATH_MAX];
	char		store[FTM_PATH_MAX];	/* token_db: its owner may be the daemon's user */
	unsigned	timeout;
	const ftm_log_t	*log;
	ftm_states_t	*states;	/* number challenges: State -> pending_t */
} client_t;

/* A number challenge: the open connection to the daemon, whose transaction stays pending until the
 * answer, and the number the daemon reported. */
typedef struct {
	int	fd;
	char	number[FTM_NUMBER_MAX];
	char	serial[FTM_SERIAL_MAX];
} pending_t;

static void pending_drop(void *payload)
{
	pending_t *p = payload;

	if (p->fd >= 0)
		close(p->fd);	/* the daemon sees the hang-up and cancels its wait */
	p->fd = -1;
}

/* The daemon's final reply as the login's outcome. */
static void reply_outcome(const ftm_rdv_reply_t *r, const char *what, ftm_outcome_t *out)
{
	char reason[FTM_MSG_MAX];

	snprintf(reason, sizeof(reason), "%s %s (ftmpushd)%s%.200s", what, ftm_push_verdict_name(r->verdict),
		 r->reason[0] ? ": " : "", r->reason);
	ftm_auth_push_outcome(out, r->verdict, r->serial, r->message, reason);
}

static void client_push(void *ctx, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			ftm_outcome_t *out)
{
	client_t *c = ctx;
	ftm_rdv_request_t req = {
		.user = login->user, .serial = tok->serial, .client = login->client, .nas = login->nas,
		.host = login->host, .timeout = c->timeout, .store = c->store,
	};
	unsigned ttl = c->timeout + FTM_RDV_GRACE;
	char why[FTM_MSG_MAX] = "";
	ftm_rdv_reply_t r;
	pending_t p;
	bool evicted = false;

	memset(out, 0, sizeof(*out));
	ftm_log(c->log, FTM_LOG_DEBUG, "push for '%s' via ftmpushd %s", ftm_or(login->user, "?"), c->socket);
	p.fd = ftm_rdv_push_start(c->socket, &req, -1, c->log, &r);
	if (p.fd < 0) {
		reply_outcome(&r, "push", out);	/* a final verdict, or no number matching */
		return;
	}
	ftm_copy(p.number, sizeof(p.number), r.number);
	ftm_copy(p.serial, sizeof(p.serial), r.serial);
	ftm_memzero(&r, sizeof(r));
	if (ftm_states_issue(c->states, login->user, login->client, now, ttl, &p, sizeof(p), out->state, &evicted,
			     why, sizeof(why)) != 0) {
		pending_drop(&p);
		ftm_outcome_set(out, FTM_RES_ERROR, p.serial, FTM_MSG_ERROR, why);
		ftm_memzero(&p, sizeof(p));
		return;
	}
	if (evicted)
		ftm_log(c->log, FTM_LOG_WARN, "number challenges full: the oldest pending one was dropped");
	out->result = FTM_RES_CHALLENGE;
	ftm_copy(out->serial, sizeof(out->serial), p.serial);
	ftm_copy(out->message, sizeof(out->message), FTM_MSG_ENTER_NUMBER);
	snprintf(out->reason, sizeof(out->reason), "number matching push sent (ftmpushd), answer valid %us", ttl);
	ftm_memzero(&p, sizeof(p));
}

static bool client_answer(void *ctx, const ftm_login_t *login, const char *state, const char *answer, time_t now,
			  ftm_outcome_t *out)
{
	client_t *c = ctx;
	ftm_rdv_reply_t r;
	pending_t p;

	memset(&p, 0, sizeof(p));
	p.fd = -1;
	switch (ftm_states_take(c->states, login->user, login->client, state, now, &p, sizeof(p))) {
	case FTM_STATE_UNKNOWN:
		return false;
	case FTM_STATE_EXPIRED:
		pending_drop(&p);
		ftm_outcome_set(out, FTM_RES_DENIED, p.serial, FTM_MSG_DENIED, "number typed after the push timeout");
		break;
	case FTM_STATE_MISMATCH:
		pending_drop(&p);
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_BAD,
				"challenge state issued to another user or client (consumed)");
		break;
	case FTM_STATE_OK:
		/* The daemon's engine decides the number; ftm_rdv_answer checks it here too, and closes. */
		memset(&r, 0, sizeof(r));
		ftm_copy(r.serial, sizeof(r.serial), p.serial);
		ftm_rdv_answer(p.fd, p.number, answer, c->log, &r);
		reply_outcome(&r, r.verdict == FTM_PUSH_APPROVED ? "number matched, push" : "number answer", out);
		if (out->serial[0] == '\0')
			ftm_copy(out->serial, sizeof(out->serial), p.serial);
		out->wrong_answer = r.wrong_number;
		ftm_memzero(&r, sizeof(r));
		break;
	}
	ftm_memzero(&p, sizeof(p));
	return true;
}

static void client_stop(void *ctx)
{
	client_t *c = ctx;

	ftm_states_free(c->states);	/* closes the connections still open */
	free(c);
}

int ftm_push_client_attach(ftm_auth_t *auth, char *err, size_t err_len)
{
	static const ftm_push_ops_t ops = {
		.push = client_push,
		.challenge_answer = client_answer,
		.stop = client_stop,
	};
	const ftm_config_t *cfg = ftm_auth_config(auth);
	client_t *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->states = ftm_states_new(pending_drop)) == NULL) {
		free(c);
		ftm_set_err(err, err_len, "out of memory");
		return -1;
	}
	ftm_copy(c->socket, sizeof(c->socket), cfg->push.socket);
	ftm_copy(c->store, sizeof(c->store), cfg->token_db);
	c->timeout = cfg->push.timeout;
	c->log = ftm_auth_log(auth);
	ftm_auth_set_push_ops(auth, &ops, c);
	return 0;
}

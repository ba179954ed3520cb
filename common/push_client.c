/* push_client: ftm_push_ops_t through ftmpushd (a PAM process); number matching keeps the connection. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "ftm_push_client.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"

/* A number challenge: the open connection to the daemon, whose transaction stays pending until the
 * answer, and the number the daemon reported. Its State is the store's (bound, single use, expiring,
 * capped like every State); this is only what a State cannot hold, found by the handle the State names. */
typedef struct pending {
	struct pending	*next;
	char		handle[33];
	time_t		expires;
	int		fd;
	char		number[FTM_NUMBER_MAX];
	char		serial[FTM_SERIAL_MAX];
} pending_t;

typedef struct {
	char		socket[FTM_PATH_MAX];
	char		store[FTM_PATH_MAX];	/* token_db: its owner may be the daemon's user */
	unsigned	timeout;
	const ftm_log_t	*log;
	ftm_store_t	*st;		/* the number challenges' States */
	pthread_mutex_t	lock;		/* guards pending (a PAM module in a threaded server) */
	pending_t	*pending;
} client_t;

static void pending_drop(pending_t *p)
{
	if (p->fd >= 0)
		close(p->fd);	/* the daemon sees the hang-up and cancels its wait */
	ftm_memzero(p, sizeof(*p));
	free(p);
}

/* Under the lock: close the connections of number challenges nobody answered in time. */
static void pending_sweep(client_t *c, time_t now)
{
	for (pending_t **pp = &c->pending; *pp != NULL;) {
		pending_t *p = *pp;

		if (p->expires > now) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		pending_drop(p);
	}
}

/* The connection of the number challenge handle (removed from the list, the caller's now), or NULL. */
static pending_t *pending_take(client_t *c, const char *handle)
{
	pending_t *found = NULL;

	pthread_mutex_lock(&c->lock);
	for (pending_t **pp = &c->pending; *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->handle, handle) == 0) {
			found = *pp;
			*pp = found->next;
			break;
		}
	pthread_mutex_unlock(&c->lock);
	return found;
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
	char why[FTM_MSG_MAX] = "", err[FTM_ERR_MAX] = "", serial[FTM_SERIAL_MAX];
	unsigned char raw[16];
	ftm_rdv_reply_t r;
	pending_t *p;

	memset(out, 0, sizeof(*out));
	ftm_log(c->log, FTM_LOG_DEBUG, "push for '%s' via ftmpushd %s", ftm_or(login->user, "?"), c->socket);
	p = calloc(1, sizeof(*p));
	if (p == NULL || RAND_bytes(raw, sizeof(raw)) != 1) {
		free(p);
		ftm_outcome_set(out, FTM_RES_ERROR, tok->serial, FTM_MSG_ERROR, "no memory or randomness for a push");
		return;
	}
	ftm_hex_encode(raw, sizeof(raw), p->handle);
	p->fd = ftm_rdv_push_start(c->socket, &req, -1, c->log, &r);
	if (p->fd < 0) {
		free(p);
		reply_outcome(&r, "push", out);	/* a final verdict, or no number matching */
		return;
	}
	ftm_copy(p->number, sizeof(p->number), r.number);
	ftm_copy(p->serial, sizeof(p->serial), r.serial);
	ftm_copy(serial, sizeof(serial), r.serial);
	ftm_memzero(&r, sizeof(r));
	p->expires = now + (time_t)ttl;
	if (ftm_store_number_issue(c->st, login->user, login->client, p->handle, now, ttl, out->state, err,
				   sizeof(err)) != 0) {
		pending_drop(p);
		snprintf(why, sizeof(why), "no number challenge: %.200s", err);
		ftm_outcome_set(out, FTM_RES_ERROR, serial, FTM_MSG_ERROR, why);
		return;
	}
	pthread_mutex_lock(&c->lock);
	pending_sweep(c, now);
	p->next = c->pending;
	c->pending = p;
	pthread_mutex_unlock(&c->lock);
	out->result = FTM_RES_CHALLENGE;
	ftm_copy(out->serial, sizeof(out->serial), serial);
	ftm_copy(out->message, sizeof(out->message), FTM_MSG_ENTER_NUMBER);
	snprintf(out->reason, sizeof(out->reason), "number matching push sent (ftmpushd), answer valid %us", ttl);
}

static bool client_answer(void *ctx, const ftm_login_t *login, const char *state, const char *answer, time_t now,
			  ftm_outcome_t *out)
{
	client_t *c = ctx;
	ftm_state_check_t check = FTM_STATE_UNKNOWN;
	char handle[33];
	ftm_rdv_reply_t r;
	pending_t *p;
	int rc = ftm_auth_number_take(c->st, login, state, now, &check, handle, out);

	if (rc <= 0)
		return rc < 0;	/* a store failure is this answer's (fail closed); no number State: not ours */
	p = pending_take(c, handle);
	if (p == NULL) {	/* the State outlived its connection here (swept), or is another process's */
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_OLD, "number challenge without its push");
		return true;
	}
	switch (check) {
	case FTM_STATE_UNKNOWN:
	case FTM_STATE_EXPIRED:
		ftm_outcome_set(out, FTM_RES_DENIED, p->serial, FTM_MSG_DENIED, "number typed after the push timeout");
		break;
	case FTM_STATE_MISMATCH:
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_BAD,
				"challenge state issued to another user or client (consumed)");
		break;
	case FTM_STATE_OK:
		/* The daemon's engine decides the number; ftm_rdv_answer checks it here too, and closes. */
		memset(&r, 0, sizeof(r));
		ftm_copy(r.serial, sizeof(r.serial), p->serial);
		ftm_rdv_answer(p->fd, p->number, answer, c->log, &r);
		p->fd = -1;
		reply_outcome(&r, r.verdict == FTM_PUSH_APPROVED ? "number matched, push" : "number answer", out);
		if (out->serial[0] == '\0')
			ftm_copy(out->serial, sizeof(out->serial), p->serial);
		out->wrong_answer = r.wrong_number;
		ftm_memzero(&r, sizeof(r));
		break;
	}
	pending_drop(p);
	return true;
}

static void client_stop(void *ctx)
{
	client_t *c = ctx;

	pthread_mutex_lock(&c->lock);
	while (c->pending != NULL) {	/* closes the connections still open */
		pending_t *p = c->pending;

		c->pending = p->next;
		pending_drop(p);
	}
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
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

	if (c == NULL) {
		ftm_set_err(err, err_len, "out of memory");
		return -1;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->st = ftm_auth_store(auth);
	ftm_copy(c->socket, sizeof(c->socket), cfg->push.socket);
	ftm_copy(c->store, sizeof(c->store), cfg->token_db);
	c->timeout = cfg->push.timeout;
	c->log = ftm_auth_log(auth);
	ftm_auth_set_push_ops(auth, &ops, c);
	return 0;
}

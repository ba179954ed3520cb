/* push_daemon: ftmpushd's request handling: one PAM login per socket connection, decided by the core
 * (token choice) and the engine (the push, the number check); the socket code only carries it. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ftm_audit.h"
#include "ftm_auth.h"
#include "ftm_metrics.h"
#include "ftm_peer.h"
#include "ftm_push.h"
#include "ftm_push_daemon.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"

#define ANSWER_SLICE_MS	200	/* number matching: how often the phone's tap is looked at */
#define ALIVE_SLICE_MS	500	/* how often a login that gave up (ssh disconnect) is noticed */

struct ftm_push_daemon {
	ftm_auth_t		*auth;
	ftm_auth_t		*pam_auth;	/* PAM logins' splits and verdicts (audited as frontend pam) */
	ftm_push_t		*push;
	const ftm_log_t		*log;
	ftm_rdv_server_t	*srv;
	ftm_peer_policy_t	policy;		/* who may push for whom (ftm_peer_may_push_for) */
};

static void reply_set(ftm_rdv_reply_t *out, ftm_push_verdict_t v, const char *message, const char *reason)
{
	out->verdict = v;
	ftm_copy(out->message, sizeof(out->message), message);
	ftm_copy(out->reason, sizeof(out->reason), reason);
}

/* Number matching: the login asks its user for the number while the phone may still answer. Whichever
 * comes first decides: a tap (the engine's callback), or the typed number that the login sends on this
 * connection, which the engine checks itself (ftm_push_challenge_answer with the transaction's State).
 * FTM_PUSH_PENDING: the login went away. */
static ftm_push_verdict_t wait_number(ftm_push_daemon_t *d, ftm_rdv_conn_t *conn, const ftm_login_t *login,
				      ftm_push_tx_t *tx)
{
	ftm_push_verdict_t v;
	char typed[FTM_NUMBER_MAX];
	ftm_outcome_t o;
	int rc;

	while ((v = ftm_push_wait(d->push, tx, 1)) == FTM_PUSH_PENDING) {
		rc = ftm_rdv_conn_wait_answer(conn, ANSWER_SLICE_MS, typed, sizeof(typed));
		if (rc < 0)
			return FTM_PUSH_PENDING;
		if (rc == 0)
			continue;
		ftm_push_challenge_answer(d->push, login, ftm_push_tx_state(tx), typed, time(NULL), &o);
		ftm_memzero(typed, sizeof(typed));
		/* The engine decided the transaction (or it was decided already): its verdict is the reply. */
		v = ftm_push_wait(d->push, tx, 1);
		return v != FTM_PUSH_PENDING ? v : o.result == FTM_RES_OK ? FTM_PUSH_APPROVED : FTM_PUSH_DENIED;
	}
	return v;
}

/* The reply for a final verdict of the engine. */
static void verdict_reply(ftm_push_verdict_t v, const char *reason, ftm_rdv_reply_t *out)
{
	switch (v) {
	case FTM_PUSH_APPROVED:
		reply_set(out, v, "", reason);
		break;
	case FTM_PUSH_DENIED:
	case FTM_PUSH_TIMEOUT:
		reply_set(out, v, FTM_MSG_DENIED, reason);
		break;
	case FTM_PUSH_PENDING:
		reply_set(out, FTM_PUSH_ERROR, FTM_MSG_PUSH_CANCELLED, "the login went away");
		break;
	case FTM_PUSH_FAILED:
	case FTM_PUSH_ERROR:
	default:
		reply_set(out, FTM_PUSH_FAILED, FTM_MSG_PUSH_DOWN, ftm_or(reason, "push could not be sent"));
		break;
	}
}

static void handle_login(void *ctx, ftm_rdv_conn_t *conn, const ftm_rdv_request_t *req, ftm_rdv_reply_t *out)
{
	ftm_push_daemon_t *d = ctx;
	ftm_login_t login = { req->user, ftm_or(req->client, ""), ftm_or(req->nas, ""), ftm_or(req->host, "") };
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX] = "", why[FTM_MSG_MAX];
	time_t now = time(NULL);
	ftm_push_tx_t *tx;
	ftm_push_verdict_t v;
	ftm_outcome_t outcome;
	ftm_token_t tok;
	bool joined;
	int found;

	if (!ftm_peer_may_push_for(&d->policy, ftm_rdv_conn_peer(conn), req->user, why, sizeof(why))) {
		reply_set(out, FTM_PUSH_ERROR, FTM_MSG_PUSHD_NOT_ALLOWED, why);
		goto done;
	}
	found = ftm_auth_push_token(d->auth, req->user, req->serial, now, &tok, err, sizeof(err));
	if (found < 0) {
		snprintf(why, sizeof(why), "token store unavailable: %.200s", err);
		reply_set(out, FTM_PUSH_ERROR, FTM_MSG_PUSH_DOWN, why);
		goto done;
	}
	if (found == 0) {
		reply_set(out, FTM_PUSH_FAILED, FTM_MSG_PUSH_DOWN, "no active token with a push target for this user");
		goto done;
	}
	ftm_copy(out->serial, sizeof(out->serial), tok.serial);
	tx = ftm_push_start(d->push, &login, &tok, now, &joined, reason, sizeof(reason));
	ftm_memzero(&tok, sizeof(tok));
	if (tx == NULL) {
		reply_set(out, FTM_PUSH_ERROR, FTM_MSG_PUSH_DOWN, reason);
		goto done;
	}
	v = ftm_push_wait(d->push, tx, 1);
	if (v != FTM_PUSH_FAILED) {
		ftm_copy(out->number, sizeof(out->number), ftm_push_tx_number(tx));
		ftm_rdv_conn_sent(conn, out->serial, ftm_push_tx_number(tx));
	}
	if (ftm_push_tx_number(tx)[0] != '\0' && v == FTM_PUSH_PENDING) {
		v = wait_number(d, conn, &login, tx);
	} else {
		while ((v = ftm_push_wait(d->push, tx, ALIVE_SLICE_MS)) == FTM_PUSH_PENDING && ftm_rdv_conn_alive(conn))
			;
	}
	ftm_push_tx_reason(d->push, tx, reason, sizeof(reason));
	ftm_push_release(d->push, tx);
	verdict_reply(v, reason, out);
done:
	ftm_log(d->log, out->verdict == FTM_PUSH_APPROVED ? FTM_LOG_INFO : FTM_LOG_WARN,
		"socket push for '%s' from %s: %s (serial %s): %s", req->user, ftm_or(login.client, "-"),
		ftm_push_verdict_name(out->verdict), ftm_or(out->serial, "-"), ftm_or(out->reason, "-"));
	/* the PAM login's outcome as its process will map it (ftm_auth_push_outcome): counted here, where
	 * a long-lived process sees it */
	ftm_auth_push_outcome(&outcome, out->verdict, out->serial, NULL, NULL);
	ftm_metrics_login(outcome.result);
}

/* A PAM login's split or code verdict, asked by pam_ftmpush (docs/pam.md): the core decides exactly as
 * in the PAM process, with the store open and OpenSSL started here; the peer rules are the push's. */
static int handle_pam_login(void *ctx, ftm_rdv_conn_t *conn, ftm_rdv_op_t op, const ftm_login_t *login,
			     const char *store, const char *input, ftm_split_t *sp, ftm_outcome_t *out)
{
	ftm_push_daemon_t *d = ctx;
	const char *ours = ftm_auth_config(d->pam_auth)->token_db;
	char why[FTM_MSG_MAX];

	/* A module configured with another store (config=FILE) must not get this store's verdicts. */
	if (strcmp(store, ours) != 0) {
		snprintf(why, sizeof(why), "the login's token store is not this daemon's (%.200s)", ours);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, why);
		ftm_log(d->log, FTM_LOG_INFO, "socket login for '%s': %s: refused, the login decides in its own process",
			login->user, why);
		return -1;
	}

	if (!ftm_peer_may_decide_for(&d->policy, ftm_rdv_conn_peer(conn), login->user, why, sizeof(why))) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, why);
		ftm_log(d->log, FTM_LOG_WARN, "socket login for '%s': %s (refused: the login decides in its own process)",
			login->user, why);
		return -1;
	}
	if (op == FTM_RDV_OP_SPLIT) {
		if (ftm_auth_split(d->pam_auth, login, input, time(NULL), sp) != 0)
			ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_STORE_DOWN,
					"split failed (input too long or store unavailable)");
		return 0;
	}
	if (input[0] == '\0') {	/* the module asks only for a code's verdict; a push is its own request */
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "verify without a code");
		return 0;
	}
	/* with a code, ftm_auth_after_password is its verdict, counted in the metrics; on the split's
	 * connection with the split's proof, so the verdict does not unseal and compute again what the
	 * peek proved (it re-checks the proof in its transaction) */
	ftm_auth_after_password_proved(d->pam_auth, login, input, ftm_rdv_conn_proof(conn), time(NULL), out);
	return 0;
}

/* The socket's directory (/run/ftmpush) may be gone after a reboot: make it, like systemd would. */
static void make_socket_dir(const char *socket_path, const ftm_log_t *log)
{
	char dir[FTM_PATH_MAX];
	char *slash;

	ftm_copy(dir, sizeof(dir), socket_path);
	slash = strrchr(dir, '/');
	if (slash == NULL || slash == dir)
		return;
	*slash = '\0';
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		ftm_log(log, FTM_LOG_WARN, "ftmpushd: mkdir %s: %s", dir, strerror(errno));
}

ftm_push_daemon_t *ftm_push_daemon_start(const ftm_config_t *cfg, const ftm_log_t *log, gid_t group,
					 const gid_t *trusted, unsigned ntrusted, unsigned max_conns, char *err,
					 size_t err_len)
{
	ftm_push_daemon_t *d = calloc(1, sizeof(*d));
	char why[FTM_ERR_MAX] = "";

	if (d == NULL) {
		ftm_set_err(err, err_len, "out of memory");
		return NULL;
	}
	d->log = log;
	d->policy.daemon_uid = geteuid();
	d->policy.socket_group = group;
	if (ntrusted > FTM_PEER_TRUSTED_MAX) {
		ftm_set_err(err, err_len, "at most %d trusted groups", FTM_PEER_TRUSTED_MAX);
		goto fail;
	}
	for (unsigned i = 0; i < ntrusted; i++)
		d->policy.trusted[i] = trusted[i];
	d->policy.ntrusted = ntrusted;
	d->auth = ftm_auth_new(cfg, log, why, sizeof(why));
	if (d->auth == NULL) {
		ftm_set_err(err, err_len, "%s", why);
		goto fail;
	}
	ftm_auth_set_frontend(d->auth, FTM_AUDIT_FE_FTMPUSHD);
	d->pam_auth = ftm_auth_new(cfg, log, why, sizeof(why));
	if (d->pam_auth == NULL) {
		ftm_set_err(err, err_len, "%s", why);
		goto fail;
	}
	ftm_auth_set_frontend(d->pam_auth, FTM_AUDIT_FE_PAM);
	/* the split's proof travels with its connection to the verify (ftm_rdv_conn_proof): no slot */
	ftm_auth_set_proof_carried(d->pam_auth, true);
	/* PAM logins come one at a time here: the split's peek runs on the store's idle writer, whose page
	 * cache the verdicts leave valid (a reader's is dropped after each commit) */
	ftm_store_peek_on_idle_writer(ftm_auth_store(d->pam_auth));
	if (ftm_push_auth_attach(d->auth, log, &d->push, why, sizeof(why)) != 0) {
		ftm_set_err(err, err_len, "push engine: %s", why);
		goto fail;
	}
	make_socket_dir(cfg->push.socket, log);
	d->srv = ftm_rdv_server_start(cfg->push.socket, group, max_conns, handle_login, handle_pam_login, d, log, why, sizeof(why));
	if (d->srv == NULL) {
		ftm_set_err(err, err_len, "socket: %s", why);
		goto fail;
	}
	ftm_log(log, FTM_LOG_INFO, "ftmpushd: ready (socket %s, callbacks at %s)", cfg->push.socket,
		ftm_push_base_url(d->push));
	return d;
fail:
	ftm_push_daemon_stop(d);
	return NULL;
}

void ftm_push_daemon_stop(ftm_push_daemon_t *d)
{
	if (d == NULL)
		return;
	/* The engine first: the callback listener closes and every pending push fails at once, so each
	 * waiting PAM login gets "Push unavailable" (its code prompt, where it has one) before the socket
	 * goes, and the server stop below finds its handlers returning instead of waiting for phones. */
	ftm_push_shutdown(d->push);
	ftm_rdv_server_stop(d->srv);
	ftm_auth_free(d->auth);	/* stops the push engine */
	ftm_auth_free(d->pam_auth);
	free(d);
}

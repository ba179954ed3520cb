/* auth: the MFA decisions every front end shares: split, code verdict, push or challenge, and states. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "ftm_audit.h"
#include "ftm_auth.h"
#include "ftm_metrics.h"
#include "ftm_push_client.h"
#include "ftm_trace.h"
#include "ftm_states.h"
#include "ftm_util.h"

/* What a split's peek proved, kept for the verdict on the same user and code that follows in the same
 * request (RADIUS authorize, then authenticate), so that verdict need not unseal seeds and compute the
 * HMACs again (ftm_code_proof_t). A slot is found by a keyed digest of user and code: no code is kept. */
#define PROOF_SLOTS	256
#define PROOF_TTL	30	/* seconds between the split and its verdict */

typedef struct proof_slot {
	uint8_t			key[32];
	time_t			at;
	ftm_code_proof_t	proof;
} proof_slot_t;

struct ftm_auth {
	ftm_config_t	cfg;
	ftm_log_t	log;
	ftm_store_t	*store;

	pthread_mutex_t	proof_lock;
	uint8_t		proof_key[32];
	proof_slot_t	proofs[PROOF_SLOTS];
	bool		proof_carried;	/* the front end carries each split's proof (no slots used) */

	pthread_mutex_t	lock;		/* guards the push implementation */
	ftm_push_ops_t	ops;
	void		*ops_ctx;
	bool		has_ops;

	char		frontend[FTM_AUDIT_WORD];	/* this front end and node in the audit trail */
	char		node[FTM_AUDIT_FIELD];
	int64_t		pruned_at;	/* the last audit retention pass (atomic) */
	ftm_trace_t	*trace;		/* debug on demand: the store's switches, cached */
};

#define AUDIT_PRUNE_EVERY 3600	/* seconds between two retention passes of a long-running front end */

#define WHO(login) ftm_or((login)->user, "?"), ftm_or((login)->client, "-")

static ftm_log_level_t level_of(const ftm_auth_t *auth, ftm_result_t r)
{
	switch (r) {
	case FTM_RES_OK:	/* log_accepts = no: in a trace, -X and debug only (the audit row stays) */
		return auth->cfg.log_accepts ? FTM_LOG_INFO : FTM_LOG_DEBUG;
	case FTM_RES_CHALLENGE:
		return FTM_LOG_INFO;
	case FTM_RES_ERROR:
	case FTM_RES_PUSH_FAILED:
		return FTM_LOG_ERR;
	default:
		return FTM_LOG_WARN;
	}
}

/* The audit row of a decision about login: who, from where, through which front end and node. */
static void audit_begin(const ftm_auth_t *auth, ftm_audit_row_t *a, const char *event, const ftm_login_t *login)
{
	memset(a, 0, sizeof(*a));
	ftm_copy(a->event, sizeof(a->event), event);
	ftm_copy(a->user, sizeof(a->user), login->user);
	ftm_copy(a->client, sizeof(a->client), login->client);
	ftm_copy(a->nas, sizeof(a->nas), login->nas);
	ftm_copy(a->frontend, sizeof(a->frontend), auth->frontend);
	ftm_copy(a->node, sizeof(a->node), auth->node);
}

/* The log's "what" of a decision as the trail's event. */
static const char *event_of(const char *what)
{
	static const struct { const char *what, *event; } map[] = {
		{ "token code", FTM_AUDIT_EV_CODE }, { "push", FTM_AUDIT_EV_PUSH },
		{ "second factor", FTM_AUDIT_EV_LOGIN }, { "challenge", FTM_AUDIT_EV_CHALLENGE },
		{ "challenge answer", FTM_AUDIT_EV_CHALLENGE }, { "number answer", FTM_AUDIT_EV_NUMBER },
		{ "recovery code", FTM_AUDIT_EV_RECOVERY },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(map[i].what, what) == 0)
			return map[i].event;
	return what;
}

/* The result of a decision that had no verdict transaction to carry its row (a verdict's own row names
 * what the store decided, store.c). */
static const char *audit_result(const char *event, const ftm_outcome_t *out)
{
	bool push = strcmp(event, FTM_AUDIT_EV_PUSH) == 0, recovery = strcmp(event, FTM_AUDIT_EV_RECOVERY) == 0;

	switch (out->result) {
	case FTM_RES_OK:		return push ? FTM_AUDIT_APPROVED : recovery ? FTM_AUDIT_USED : FTM_AUDIT_ACCEPTED;
	case FTM_RES_FAIL:		return recovery ? FTM_AUDIT_WRONG : FTM_AUDIT_REFUSED;
	case FTM_RES_REPLAY:		return FTM_AUDIT_REPLAY;
	case FTM_RES_LOCKED:		return FTM_AUDIT_LOCKED;
	case FTM_RES_EXPIRED:		return FTM_AUDIT_EXPIRED;
	case FTM_RES_NO_TOKEN:		return FTM_AUDIT_NO_TOKEN;
	case FTM_RES_CHALLENGE:		return push ? FTM_AUDIT_SENT : FTM_AUDIT_ISSUED;
	case FTM_RES_DENIED:		return out->push_verdict == FTM_PUSH_TIMEOUT ? FTM_AUDIT_TIMEOUT : FTM_AUDIT_DENIED;
	case FTM_RES_PUSH_FAILED:	return FTM_AUDIT_FAILED;
	case FTM_RES_ERROR:		break;
	}
	return FTM_AUDIT_ERROR;
}

/* A long-running front end drops the rows past audit_retention at start and then hourly, off the
 * verdict's path (after a decision is logged: an hour's rows at most); a PAM process lives for one login
 * and leaves it to the others and to `ftmpushctl audit prune`. */
static void audit_retention_pass(ftm_auth_t *auth, time_t now)
{
	int64_t last = __atomic_load_n(&auth->pruned_at, __ATOMIC_RELAXED);
	char err[FTM_ERR_MAX] = "";
	unsigned long removed = 0;

	if (auth->cfg.audit_retention == 0 || strcmp(auth->frontend, FTM_AUDIT_FE_PAM) == 0 ||
	    (int64_t)now - last < AUDIT_PRUNE_EVERY ||
	    !__atomic_compare_exchange_n(&auth->pruned_at, &last, (int64_t)now, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		return;
	if (ftm_audit_prune(auth->store, auth->cfg.audit_retention, now, &removed, err, sizeof(err)) != 0)
		ftm_log(&auth->log, FTM_LOG_ERR, "audit: retention pass failed: %s", err);
	else if (removed > 0)
		ftm_log(&auth->log, FTM_LOG_INFO, "audit: %lu rows older than %u days removed", removed,
			auth->cfg.audit_retention);
}

/* One line per decision: what, for whom, from where, which token, why. Never a code or a seed. The one
 * hook of every login outcome: the log line, and the audit row unless its verdict wrote it already. A
 * row that cannot be written here is logged and the decision stands: it was a refusal, a challenge or
 * a push outcome with nothing to commit (a verdict's own row fails the verdict closed instead). When the
 * store itself failed the decision, no row is queued behind that failure: under a foreign lock it would
 * hold the refused login another busy timeout for a write that fails the same way; the log line (and
 * the store-error metric) is the record then. */
static void log_outcome(ftm_auth_t *auth, const char *what, const ftm_login_t *login, ftm_outcome_t *out)
{
	ftm_log(&auth->log, level_of(auth, out->result), "%s for '%s' from %s: %s (serial %s): %s", what, WHO(login),
		ftm_result_name(out->result), ftm_or(out->serial, "-"), ftm_or(out->reason, "-"));
	out->logged = true;
	out->logged_result = out->result;
	if (!out->audited && !out->store_down) {
		ftm_audit_row_t a;
		char err[FTM_ERR_MAX] = "";

		audit_begin(auth, &a, event_of(what), login);
		ftm_copy(a.result, sizeof(a.result), audit_result(a.event, out));
		ftm_copy(a.serial, sizeof(a.serial), out->serial);
		ftm_copy(a.reason, sizeof(a.reason), out->reason);
		if (ftm_store_audit_append(auth->store, &a, err, sizeof(err)) != 0)
			ftm_log(&auth->log, FTM_LOG_ERR, "audit: the row of %s for '%s' from %s could not be written: %s",
				what, WHO(login), err);
	}
	audit_retention_pass(auth, time(NULL));
}

/* Debug on demand: the calling thread's trace raised for the duration of one entry point when a
 * store switch covers the user (ftm_trace.h); restored at every return. */
static bool trace_begin(ftm_auth_t *auth, const ftm_login_t *login, time_t now)
{
	bool on = auth != NULL && login != NULL && login->user != NULL &&
		  ftm_trace_wanted(auth->trace, auth->store, login->user, now);

	bool was = ftm_log_trace_raise(false);

	ftm_log_trace_raise(was || on);
	return was;
}

static void trace_end(bool *was)
{
	ftm_log_trace_raise(*was);
}

#define TRACE_SCOPE(auth, login, now) \
	bool trace_was __attribute__((cleanup(trace_end))) = trace_begin((auth), (login), (now))

/* ---- life cycle ---- */

static void policy_report(void *ctx, bool error, const char *message)
{
	ftm_auth_t *auth = ctx;

	if (error)
		ftm_log(&auth->log, FTM_LOG_ERR, "configuration refused: %s", message);
	else
		ftm_log(&auth->log, FTM_LOG_WARN, "configuration: %s", message);
}

/* The verdict policy is the store's: a configuration that still sets one of its options differently is
 * refused here, at start, on every front end (equal: a warning, so old configurations keep working). */
static int check_policy(ftm_auth_t *auth, char *err, size_t err_len)
{
	char why[FTM_ERR_MAX] = "";
	ftm_policy_t pol;

	if (ftm_store_policy(auth->store, &pol, why, sizeof(why)) != 0) {
		ftm_log(&auth->log, FTM_LOG_ERR, "token store %s: %s", auth->cfg.token_db, why);
		ftm_set_err(err, err_len, "token store %.200s: %.280s", auth->cfg.token_db, why);
		return -1;
	}
	if (ftm_policy_check_config(&auth->cfg, &pol, policy_report, auth, why, sizeof(why)) != 0) {
		ftm_set_err(err, err_len, "%.480s", why);
		return -1;
	}
	return 0;
}

static ftm_auth_t *auth_new(const ftm_config_t *cfg, const ftm_log_t *log, bool single, char *err, size_t err_len)
{
	char why[FTM_ERR_MAX] = "";
	ftm_auth_t *auth;

	if (cfg == NULL || cfg->token_db[0] == '\0') {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "no token_db configured");
		return NULL;
	}
	auth = calloc(1, sizeof(*auth));
	if (auth == NULL) {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "out of memory");
		return NULL;
	}
	auth->cfg = *cfg;
	if (log != NULL)
		auth->log = *log;
	if (pthread_mutex_init(&auth->lock, NULL) != 0) {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "cannot create a mutex");
		ftm_memzero(&auth->cfg, sizeof(auth->cfg));
		free(auth);
		return NULL;
	}
	if (RAND_bytes(auth->proof_key, sizeof(auth->proof_key)) != 1 ||
	    pthread_mutex_init(&auth->proof_lock, NULL) != 0) {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "cannot set up the proof cache");
		pthread_mutex_destroy(&auth->lock);
		ftm_memzero(&auth->cfg, sizeof(auth->cfg));
		free(auth);
		return NULL;
	}
	auth->store = (single ? ftm_store_open_single : ftm_store_open)(cfg->token_db,
			cfg->key_file[0] != '\0' ? cfg->key_file : NULL, &auth->log, why, sizeof(why));
	if (auth->store == NULL) {
		ftm_log(&auth->log, FTM_LOG_ERR, "cannot open the token store %s: %s", cfg->token_db, why);
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "token store %.200s: %.280s", cfg->token_db, why);
		pthread_mutex_destroy(&auth->lock);
		pthread_mutex_destroy(&auth->proof_lock);
		ftm_memzero(auth, sizeof(*auth));
		free(auth);
		return NULL;
	}
	ftm_audit_node(cfg, auth->node, sizeof(auth->node));
	ftm_copy(auth->frontend, sizeof(auth->frontend), "-");
	auth->trace = ftm_trace_new();
	if (auth->trace == NULL) {
		ftm_set_err(err, err_len, "out of memory");
		ftm_auth_free(auth);
		return NULL;
	}
	if (check_policy(auth, err, err_len) != 0) {
		ftm_auth_free(auth);
		return NULL;
	}
	/* Until an engine is started in this process, a push goes through ftmpushd. */
	if (cfg->push.status && ftm_push_client_attach(auth, why, sizeof(why)) != 0) {
		ftm_set_err(err, err_len, "ftmpushd client: %.400s", why);
		ftm_auth_free(auth);
		return NULL;
	}
	return auth;
}

void ftm_auth_process_init(void)
{
	ftm_store_process_init();
}

ftm_auth_t *ftm_auth_new(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len)
{
	return auth_new(cfg, log, false, err, err_len);
}

ftm_auth_t *ftm_auth_new_single(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len)
{
	return auth_new(cfg, log, true, err, err_len);
}

void ftm_auth_free(ftm_auth_t *auth)
{
	if (auth == NULL)
		return;
	/* The engine's waiters may still call back into auth while it stops: stop it first. */
	ftm_auth_set_push_ops(auth, NULL, NULL);
	ftm_store_close(auth->store);
	ftm_trace_free(auth->trace);
	pthread_mutex_destroy(&auth->lock);
	pthread_mutex_destroy(&auth->proof_lock);
	ftm_memzero(auth, sizeof(*auth));	/* ntfy_token, the proof key */
	free(auth);
}

/* HMAC-SHA256(proof_key, user NUL code): the slot's name, from which neither can be recovered. */
static int proof_slot_key(const ftm_auth_t *auth, const char *user, const char *code, uint8_t key[32])
{
	unsigned char msg[FTM_USER_MAX + FTM_CODE_MAX + 2];
	size_t ulen = strlen(user), clen = strlen(code);
	int rc;

	if (ulen >= FTM_USER_MAX || clen > FTM_CODE_MAX)
		return -1;
	memcpy(msg, user, ulen + 1);
	memcpy(msg + ulen + 1, code, clen);
	rc = ftm_hmac_sha256(auth->proof_key, sizeof(auth->proof_key), msg, ulen + 1 + clen, key);
	ftm_memzero(msg, sizeof(msg));
	return rc;
}

static void proof_keep(ftm_auth_t *auth, const char *user, const char *code, time_t now,
		       const ftm_code_proof_t *proof)
{
	uint8_t key[32];
	proof_slot_t *slot;

	if (proof->serial[0] == '\0' || proof_slot_key(auth, user, code, key) != 0)
		return;
	slot = &auth->proofs[key[0] % PROOF_SLOTS];
	pthread_mutex_lock(&auth->proof_lock);
	memcpy(slot->key, key, sizeof(key));
	slot->at = now;
	slot->proof = *proof;
	pthread_mutex_unlock(&auth->proof_lock);
	ftm_memzero(key, sizeof(key));
}

/* The proof kept for this user and code, taken out (used once); false when there is none. */
static bool proof_take(ftm_auth_t *auth, const char *user, const char *code, time_t now, ftm_code_proof_t *out)
{
	uint8_t key[32];
	proof_slot_t *slot;
	bool found = false;

	memset(out, 0, sizeof(*out));
	if (proof_slot_key(auth, user, code, key) != 0)
		return false;
	slot = &auth->proofs[key[0] % PROOF_SLOTS];
	pthread_mutex_lock(&auth->proof_lock);
	if (slot->proof.serial[0] != '\0' && ftm_ct_equal(slot->key, key, sizeof(key))) {
		found = now >= slot->at && now - slot->at <= PROOF_TTL;
		if (found)
			*out = slot->proof;
		memset(slot, 0, sizeof(*slot));
	}
	pthread_mutex_unlock(&auth->proof_lock);
	ftm_memzero(key, sizeof(key));
	return found;
}

void ftm_auth_set_proof_carried(ftm_auth_t *auth, bool carried)
{
	if (auth != NULL)
		auth->proof_carried = carried;
}

const ftm_config_t *ftm_auth_config(const ftm_auth_t *auth)
{
	return auth != NULL ? &auth->cfg : NULL;
}

void ftm_auth_set_frontend(ftm_auth_t *auth, const char *frontend)
{
	if (auth == NULL)
		return;
	ftm_copy(auth->frontend, sizeof(auth->frontend), frontend);
	audit_retention_pass(auth, time(NULL));	/* at start, so no login waits for a big first pass */
}

ftm_store_t *ftm_auth_store(ftm_auth_t *auth)
{
	return auth != NULL ? auth->store : NULL;
}

void ftm_auth_set_push_ops(ftm_auth_t *auth, const ftm_push_ops_t *ops, void *ctx)
{
	ftm_push_ops_t old;
	void *old_ctx;
	bool had;

	if (auth == NULL)
		return;
	pthread_mutex_lock(&auth->lock);
	old = auth->ops;
	old_ctx = auth->ops_ctx;
	had = auth->has_ops;
	if (ops != NULL) {
		auth->ops = *ops;
		auth->ops_ctx = ctx;
		auth->has_ops = true;
	} else {
		memset(&auth->ops, 0, sizeof(auth->ops));
		auth->ops_ctx = NULL;
		auth->has_ops = false;
	}
	pthread_mutex_unlock(&auth->lock);
	if (had && old.stop != NULL)
		old.stop(old_ctx);
}

static bool get_ops(ftm_auth_t *auth, ftm_push_ops_t *ops, void **ctx)
{
	bool has;

	pthread_mutex_lock(&auth->lock);
	has = auth->has_ops;
	*ops = auth->ops;
	*ctx = auth->ops_ctx;
	pthread_mutex_unlock(&auth->lock);
	return has;
}

/* ---- what the user holds ---- */

/* A token a push may go to: usable (active, or pending inside its activation window) with a target. */
static bool push_usable(const ftm_token_t *tok, ftm_token_state_t state)
{
	return tok->push[0] != '\0' && (state == FTM_TOKEN_STATE_ACTIVE || state == FTM_TOKEN_STATE_PENDING);
}

typedef struct {
	ftm_auth_t	*auth;
	time_t		now;
	ftm_policy_t	policy;		/* the store's, one snapshot for the whole decision */
	int64_t		unlock_at;	/* the earliest end of a lock by failures among the locked (0: none) */
	const char	*want_serial;	/* push token choice: only this one ("" or NULL: any) */
	unsigned	n, n_locked, n_expired;
	unsigned	digit_mask;	/* bit d set: a token of the user has d digits */
	bool		has_push;	/* a usable token with a push target */
	ftm_token_t	push_tok;	/* that token (with its seed: the gateway channel needs it) */
} holdings_t;

static int holdings_cb(void *c, const ftm_token_t *tok)
{
	holdings_t *h = c;
	ftm_token_state_t state = ftm_token_state(tok, h->now, &h->policy);

	h->n++;
	if (tok->digits >= 6 && tok->digits <= FTM_CODE_MAX)
		h->digit_mask |= 1u << tok->digits;
	if (state == FTM_TOKEN_STATE_LOCKED) {
		int64_t at = ftm_token_unlock_at(tok, &h->policy);

		h->n_locked++;
		if (at > 0 && (h->unlock_at == 0 || at < h->unlock_at))
			h->unlock_at = at;
	} else if (state == FTM_TOKEN_STATE_EXPIRED) {
		h->n_expired++;
	}
	if (!h->has_push && push_usable(tok, state) &&
	    (h->want_serial == NULL || h->want_serial[0] == '\0' || strcmp(h->want_serial, tok->serial) == 0)) {
		h->has_push = true;
		h->push_tok = *tok;
	}
	return 0;
}

/* seeds: the push token is wanted with its seed (a push is sent); without, no seed is unsealed (the
 * split only counts, and names the push token by its serial). */
static int holdings_begin(ftm_auth_t *auth, const char *want_serial, time_t now, holdings_t *h,
			  char *err, size_t err_len)
{
	memset(h, 0, sizeof(*h));
	h->auth = auth;
	h->now = now;
	h->want_serial = want_serial;
	return ftm_store_policy(auth->store, &h->policy, err, err_len);
}

static int holdings(ftm_auth_t *auth, const char *user, const char *want_serial, time_t now, bool seeds,
		    holdings_t *h, char *err, size_t err_len)
{
	if (holdings_begin(auth, want_serial, now, h, err, err_len) != 0)
		return -1;
	if ((seeds ? ftm_store_token_list : ftm_store_token_list_info)(auth->store, user, holdings_cb, h, err,
								     err_len) != 0) {
		ftm_memzero(&h->push_tok, sizeof(h->push_tok));
		return -1;
	}
	return 0;
}

static void holdings_clear(holdings_t *h)
{
	ftm_memzero(&h->push_tok, sizeof(h->push_tok));
}

int ftm_auth_push_token(ftm_auth_t *auth, const char *user, const char *serial, time_t now, ftm_token_t *tok,
			char *err, size_t err_len)
{
	holdings_t h;

	memset(tok, 0, sizeof(*tok));
	if (holdings(auth, user, serial, now, true, &h, err, err_len) != 0)
		return -1;
	if (!h.has_push)
		return 0;
	*tok = h.push_tok;
	holdings_clear(&h);
	return 1;
}

/* The store's policy as verdict parameters: one snapshot per verdict, the same on every node. 0, or
 * -1 with err when it cannot be read (the caller fails closed). */
static int verify_params(ftm_auth_t *auth, bool consume, ftm_verify_params_t *p, char *err, size_t err_len)
{
	ftm_policy_t pol;

	memset(p, 0, sizeof(*p));
	if (ftm_store_policy(auth->store, &pol, err, err_len) != 0)
		return -1;
	p->window = pol.window;
	p->lockout_threshold = pol.lockout_threshold;
	p->lockout_duration = pol.lockout_duration;
	p->activation_expire = pol.activation_expire;
	p->consume = consume;
	return 0;
}

/* ---- step 1: split ---- */

/* Would `code` verify for user right now? Peeks, changes nothing. -1 on a store error. h (NULL: not
 * wanted): the user's tokens counted from the rows the peek decided on. proof: what a code that
 * verifies proved (kept in a slot instead unless the front end carries it). */
static int peek_ok(ftm_auth_t *auth, const char *user, const char *code, time_t now, holdings_t *h,
		   ftm_code_proof_t *proof)
{
	ftm_verify_params_t p;
	ftm_verdict_t v;
	int rc;

	memset(proof, 0, sizeof(*proof));
	if (verify_params(auth, false, &p, NULL, 0) != 0)
		return -1;
	if (h != NULL) {
		p.tokens_cb = holdings_cb;
		p.tokens_ctx = h;
	}
	if (ftm_store_verify_code(auth->store, user, code, now, &p, &v) != 0 || v.code == FTM_VERDICT_ERROR)
		rc = -1;
	else
		rc = v.code == FTM_VERDICT_OK ? 1 : 0;
	if (rc == 1 && auth->proof_carried)
		*proof = v.proof;
	else if (rc == 1)
		proof_keep(auth, user, code, now, &v.proof);
	ftm_memzero(&v, sizeof(v));
	return rc;
}

/* Would the recovery code verify for user right now? Peeks, changes nothing. -1 on a store error. */
static int peek_recovery_ok(ftm_auth_t *auth, const char *user, const char *code, time_t now)
{
	ftm_verify_params_t p;
	ftm_verdict_t v;
	int rc;

	if (verify_params(auth, false, &p, NULL, 0) != 0)
		return -1;
	if (ftm_store_recovery_verify(auth->store, user, code, now, &p, &v) != 0 || v.code == FTM_VERDICT_ERROR)
		rc = -1;
	else
		rc = v.code == FTM_VERDICT_OK ? 1 : 0;
	ftm_memzero(&v, sizeof(v));
	return rc;
}

int ftm_auth_split(ftm_auth_t *auth, const ftm_login_t *login, const char *typed, time_t now,
		   ftm_split_t *out)
{
	TRACE_SCOPE(auth, login, now);
	char err[FTM_ERR_MAX] = "";
	ftm_passcode_t cand, first;
	ftm_code_proof_t first_proof, proof;
	bool have_cand = false, verified = false;
	int first_ok = 0;
	holdings_t h;

	if (out == NULL)
		return -1;
	ftm_memzero(out, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL || typed == NULL)
		return -1;
	if (strnlen(typed, FTM_INPUT_MAX + 1) > FTM_INPUT_MAX) {
		ftm_log(&auth->log, FTM_LOG_WARN, "split for '%s' from %s: input longer than %d bytes refused",
			WHO(login), FTM_INPUT_MAX);
		ftm_memzero(out, sizeof(*out));
		return -1;
	}
	/* The default reading: the whole input is the password. */
	ftm_passcode_split(typed, 0, &out->primary);
	/* The commonest reading, a 6-digit code, is peeked first and the user's tokens are counted from
	 * the same read (one store trip); the loop below then skips it. Without six trailing digits, or
	 * when no token of the user has 6 digits, it is as if it had not been tried. */
	memset(&cand, 0, sizeof(cand));
	memset(&first_proof, 0, sizeof(first_proof));
	ftm_passcode_split(typed, 6, &first);
	if (first.has_code) {
		first_ok = holdings_begin(auth, NULL, now, &h, err, sizeof(err)) != 0 ? -1
			   : peek_ok(auth, login->user, first.code, now, &h, &first_proof);
		if (first_ok < 0)
			ftm_passcode_clear(&first);
	} else if (holdings(auth, login->user, NULL, now, false, &h, err, sizeof(err)) != 0) {
		first_ok = -1;
	}
	if (first_ok < 0) {
		ftm_log(&auth->log, FTM_LOG_ERR, "split for '%s' from %s: token store unavailable%s%s",
			WHO(login), err[0] ? ": " : "", err);
		ftm_memzero(out, sizeof(*out));
		return -1;
	}
	out->has_token = h.n > 0;
	out->push_available = auth->cfg.push.status && h.has_push;
	if (out->push_available)
		ftm_copy(out->push_serial, sizeof(out->push_serial), h.push_tok.serial);
	holdings_clear(&h);
	if (!out->has_token) {
		ftm_passcode_clear(&first);
		out->pass_without_token = auth->cfg.no_token == FTM_NO_TOKEN_PASS;
		if (out->pass_without_token)
			ftm_log(&auth->log, FTM_LOG_INFO, "split for '%s' from %s: no token, no_token = pass: "
				"password only", WHO(login));
		else
			ftm_log(&auth->log, FTM_LOG_DEBUG, "split for '%s' from %s: no token", WHO(login));
		return 0;
	}

	/* One reading per code length the user's tokens use; a code that verifies wins. */
	for (unsigned digits = 6; digits <= FTM_CODE_MAX && !verified; digits++) {
		ftm_passcode_t p;
		int ok;

		if (!(h.digit_mask & (1u << digits)))
			continue;
		if (digits == 6 && first.has_code) {
			p = first;	/* peeked above */
			ok = first_ok;
			proof = first_proof;
		} else {
			ftm_passcode_split(typed, digits, &p);
			if (!p.has_code) {
				ftm_passcode_clear(&p);
				continue;
			}
			ok = peek_ok(auth, login->user, p.code, now, NULL, &proof);
		}
		if (ok < 0) {
			ftm_passcode_clear(&p);
			ftm_passcode_clear(&cand);
			ftm_passcode_clear(&first);
			ftm_log(&auth->log, FTM_LOG_ERR, "split for '%s' from %s: token store unavailable",
				WHO(login));
			ftm_memzero(out, sizeof(*out));
			return -1;
		}
		if (ok == 1 || !have_cand) {
			cand = p;
			have_cand = true;
			verified = ok == 1;
			if (verified)
				out->proof = proof;
		}
		ftm_passcode_clear(&p);
		ftm_memzero(&proof, sizeof(proof));
	}
	ftm_passcode_clear(&first);
	ftm_memzero(&first_proof, sizeof(first_proof));
	/* No token code's shape: maybe a recovery code's (the two never overlap, so a token code is not
	 * slowed by it). A recovery code that would not verify is kept like a wrong code. */
	if (!have_cand) {
		ftm_passcode_t p;
		int ok;

		ftm_passcode_split_recovery(typed, &p);
		if (p.has_code) {
			ok = peek_recovery_ok(auth, login->user, p.code, now);
			if (ok < 0) {
				ftm_passcode_clear(&p);
				ftm_log(&auth->log, FTM_LOG_ERR, "split for '%s' from %s: token store unavailable",
					WHO(login));
				ftm_memzero(out, sizeof(*out));
				return -1;
			}
			cand = p;
			have_cand = true;
			verified = ok == 1;
		}
		ftm_passcode_clear(&p);
	}
	if (have_cand) {
		out->primary = cand;
		if (!verified) {
			/* Maybe the digits are the password's own: the front end may retry with it all. */
			out->has_alt = true;
			snprintf(out->alt_password, sizeof(out->alt_password), "%s", typed);
		}
	}
	ftm_passcode_clear(&cand);
	ftm_log(&auth->log, FTM_LOG_DEBUG, "split for '%s' from %s: token yes, code %s, push %s", WHO(login),
		!have_cand ? "none" : verified ? "would verify" : "does not verify (password+digits kept as alternative)",
		out->push_available ? "available" : "not available");
	return 0;
}

/* ---- step 2: the code ---- */

/* The store's verdict on a code as the front ends' result; the store wrote the user's text. */
static void verdict_to_outcome(const ftm_verdict_t *v, ftm_outcome_t *out)
{
	static const struct { ftm_result_t result; const char *message; } map[] = {
		[FTM_VERDICT_OK] = { FTM_RES_OK, "" },
		[FTM_VERDICT_BAD_CODE] = { FTM_RES_FAIL, FTM_MSG_BAD_CODE },
		[FTM_VERDICT_REPLAY] = { FTM_RES_REPLAY, NULL },
		[FTM_VERDICT_LOCKED] = { FTM_RES_LOCKED, NULL },
		[FTM_VERDICT_EXPIRED] = { FTM_RES_EXPIRED, FTM_MSG_EXPIRED },
		[FTM_VERDICT_NO_TOKEN] = { FTM_RES_NO_TOKEN, FTM_MSG_NO_TOKEN },
		[FTM_VERDICT_ERROR] = { FTM_RES_ERROR, FTM_MSG_STORE_DOWN },
	};
	unsigned c = (unsigned)v->code < sizeof(map) / sizeof(map[0]) ? (unsigned)v->code : FTM_VERDICT_ERROR;

	ftm_outcome_set(out, map[c].result, v->serial, map[c].message, v->reason);
	if (v->code == FTM_VERDICT_REPLAY) {
		out->wait_seconds = v->wait_seconds;
		ftm_msg_replay(out->message, sizeof(out->message), v->wait_seconds);
	}
	if (v->code == FTM_VERDICT_LOCKED)	/* the store's text: how long a lock by failures lasts */
		ftm_copy(out->message, sizeof(out->message), ftm_or(v->message, FTM_MSG_LOCKED));
}

/* Did the verdict commit its audit row? Not when the store refused before deciding (an empty user
 * name) or the transaction failed: the outcome's own row is written then (log_outcome). */
static bool audited(const ftm_audit_row_t *audit, const ftm_verdict_t *v)
{
	return audit->result[0] != '\0' && v->code != FTM_VERDICT_ERROR;
}

/* event: the audit trail's name of where the code was typed (appended, at a challenge). */
/* A recovery code where a token code goes: the same verdict rules, its own words for the user. */
static void check_recovery_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
				ftm_outcome_t *out)
{
	char why[FTM_MSG_MAX] = "", reason[FTM_MSG_MAX];
	ftm_verify_params_t p;
	ftm_verdict_t v;

	if (verify_params(auth, true, &p, why, sizeof(why)) != 0) {
		snprintf(reason, sizeof(reason), "token store unavailable: %.200s", why);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_STORE_DOWN, reason);
		return;
	}
	ftm_store_recovery_verify(auth->store, login->user, code, now, &p, &v);	/* errors are in v */
	verdict_to_outcome(&v, out);
	if (v.code == FTM_VERDICT_OK) {
		ftm_msg_recovery_accepted(out->message, sizeof(out->message), v.recovery_left);
		if (v.recovery_left == 0)
			ftm_log(&auth->log, FTM_LOG_WARN, "'%s' used the last recovery code: issue new ones "
				"(ftmpushctl token recovery)", ftm_or(login->user, "?"));
	} else if (v.code == FTM_VERDICT_BAD_CODE) {
		ftm_copy(out->message, sizeof(out->message), FTM_MSG_RECOVERY_BAD);
	} else if (v.code == FTM_VERDICT_REPLAY) {
		out->wait_seconds = 0;
		ftm_copy(out->message, sizeof(out->message), FTM_MSG_RECOVERY_USED);
	}
	if (v.now_locked)
		ftm_log(&auth->log, FTM_LOG_WARN, "token %s of '%s' locked after %u consecutive failures",
			ftm_or(v.serial, "-"), ftm_or(login->user, "?"), v.failures);
	ftm_memzero(&v, sizeof(v));
}

/* carried: the split's proof the front end kept (NULL: look for one in the slots, unless the front end
 * carries them). */
static void check_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
		       const char *event, const ftm_code_proof_t *carried, ftm_outcome_t *out)
{
	char why[FTM_MSG_MAX] = "", reason[FTM_MSG_MAX];
	ftm_verify_params_t p;
	ftm_code_proof_t proof;
	ftm_audit_row_t audit;
	ftm_verdict_t v;
	double started = ftm_metrics_now();

	if (ftm_recovery_is_code(code)) {
		check_recovery_code(auth, login, code, now, out);
		return;
	}
	if (verify_params(auth, true, &p, why, sizeof(why)) != 0) {
		snprintf(reason, sizeof(reason), "token store unavailable: %.200s", why);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_STORE_DOWN, reason);
		return;
	}
	memset(&proof, 0, sizeof(proof));
	if (carried != NULL && carried->serial[0] != '\0')
		proof = *carried;
	if (proof.serial[0] != '\0' || (!auth->proof_carried && proof_take(auth, login->user, code, now, &proof)))
		p.proof = &proof;
	audit_begin(auth, &audit, event, login);
	p.audit = &audit;	/* written with the verdict */
	ftm_store_verify_code(auth->store, login->user, code, now, &p, &v);	/* errors are in v */
	ftm_metrics_verdict_seconds(ftm_metrics_now() - started);
	ftm_memzero(&proof, sizeof(proof));
	verdict_to_outcome(&v, out);
	out->audited = audited(&audit, &v);
	if (v.now_locked)
		ftm_log(&auth->log, FTM_LOG_WARN, "token %s of '%s' locked after %u consecutive failures",
			ftm_or(v.serial, "-"), ftm_or(login->user, "?"), v.failures);
	ftm_memzero(&v, sizeof(v));
}

static void verify_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code,
			const ftm_code_proof_t *proof, time_t now, ftm_outcome_t *out)
{
	TRACE_SCOPE(auth, login, now);
	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL || code == NULL) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "no auth context, user or code");
		return;
	}
	check_code(auth, login, code, now, FTM_AUDIT_EV_CODE, proof, out);
	log_outcome(auth, ftm_recovery_is_code(code) ? "recovery code" : "token code", login, out);
}

void ftm_auth_verify_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
			  ftm_outcome_t *out)
{
	verify_code(auth, login, code, NULL, now, out);
}

/* ---- push verdicts and the lockout ---- */

/* A push outcome in the token's failure count (docs/protocol.md section 5), one store transaction:
 *  - approved (tap, or the right number): like an accepted code, the user's failures reset; refused
 *    after all when the token was locked (or taken away) while the push was pending;
 *  - a wrong number typed while the push was live (out->wrong_answer): like a wrong code, one more
 *    consecutive failure, FTM_MSG_LOCKED at lockout_threshold;
 *  - denied by the user on the phone, timed out, not sent: nothing counted (no guess was made). */
static void push_account(ftm_auth_t *auth, const ftm_login_t *login, time_t now, const char *event,
			 ftm_outcome_t *out)
{
	char reason[FTM_MSG_MAX], serial[FTM_SERIAL_MAX], why[FTM_MSG_MAX] = "";
	ftm_verify_params_t p;
	ftm_audit_row_t audit;
	ftm_verdict_t v;

	snprintf(serial, sizeof(serial), "%s", out->serial);
	if ((out->result == FTM_RES_OK || out->wrong_answer) && verify_params(auth, true, &p, why, sizeof(why)) != 0) {
		/* an approval is never taken without the store's word, a wrong number never left uncounted */
		snprintf(reason, sizeof(reason), "%.100s; the token store's policy could not be read: %.100s",
			 out->reason, why);
		ftm_outcome_set(out, FTM_RES_ERROR, serial, FTM_MSG_STORE_DOWN, reason);
		return;
	}
	audit_begin(auth, &audit, event, login);
	p.audit = &audit;	/* the approval (or the counted wrong number) is written with its verdict */
	if (out->result == FTM_RES_OK) {
		if (ftm_store_record_success(auth->store, login->user, serial, now, &p, &v) == 0 &&
		    v.code == FTM_VERDICT_OK) {
			out->audited = audited(&audit, &v);
			return;
		}
		snprintf(reason, sizeof(reason), "push approved, refused after all: %.200s", v.reason);
		if (v.code == FTM_VERDICT_LOCKED)
			ftm_outcome_set(out, FTM_RES_LOCKED, serial, ftm_or(v.message, FTM_MSG_LOCKED), reason);
		else if (v.code == FTM_VERDICT_ERROR)
			ftm_outcome_set(out, FTM_RES_ERROR, serial, FTM_MSG_STORE_DOWN, reason);
		else
			ftm_outcome_set(out, FTM_RES_FAIL, serial, FTM_MSG_CHALLENGE_BAD, reason);
		out->audited = audited(&audit, &v);
		return;
	}
	if (!out->wrong_answer)
		return;
	if (ftm_store_record_failure(auth->store, login->user, serial, now, &p, &v) != 0 ||
	    v.code == FTM_VERDICT_ERROR) {
		snprintf(reason, sizeof(reason), "%.100s; the failure could not be counted: %.100s", out->reason,
			 v.reason);
		ftm_outcome_set(out, FTM_RES_ERROR, serial, FTM_MSG_STORE_DOWN, reason);
		return;
	}
	if (v.now_locked)
		ftm_log(&auth->log, FTM_LOG_WARN, "token %s of '%s' locked after %u consecutive failures",
			ftm_or(v.serial, "-"), ftm_or(login->user, "?"), v.failures);
	snprintf(reason, sizeof(reason), "%.120s: %.120s", out->reason, v.reason);
	if (v.code == FTM_VERDICT_LOCKED)
		ftm_outcome_set(out, FTM_RES_LOCKED, serial, ftm_or(v.message, FTM_MSG_LOCKED), reason);
	else
		snprintf(out->reason, sizeof(out->reason), "%s", reason);
	out->audited = audited(&audit, &v);
}

/* ---- step 2 without a code: push, or challenge ---- */

static void push_outcome(ftm_outcome_t *out, ftm_push_verdict_t v, const char *serial, const char *message,
			 const char *reason);

/* The verdict of a push in the user's words, one mapping for the engine and the ftmpushd client. */
void ftm_auth_push_outcome(ftm_outcome_t *out, ftm_push_verdict_t v, const char *serial, const char *message,
			   const char *reason)
{
	push_outcome(out, v, serial, message, reason);
	out->push_verdict = v;
}

int ftm_auth_number_take(ftm_store_t *st, const ftm_login_t *login, const char *state, time_t now,
			 ftm_state_check_t *check, char tx[33], ftm_outcome_t *out)
{
	char err[FTM_ERR_MAX] = "", why[FTM_MSG_MAX];

	*check = FTM_STATE_UNKNOWN;
	if (ftm_store_number_take(st, login->user, login->client, state, now, check, tx, err, sizeof(err)) != 0) {
		snprintf(why, sizeof(why), "token store unavailable: %.200s", err);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, why);
		return -1;
	}
	return *check == FTM_STATE_UNKNOWN ? 0 : 1;
}

static void push_outcome(ftm_outcome_t *out, ftm_push_verdict_t v, const char *serial, const char *message,
			 const char *reason)
{
	switch (v) {
	case FTM_PUSH_APPROVED:
		ftm_outcome_set(out, FTM_RES_OK, serial, "", reason);
		return;
	case FTM_PUSH_DENIED:
	case FTM_PUSH_TIMEOUT:
		ftm_outcome_set(out, FTM_RES_DENIED, serial, ftm_or(message, FTM_MSG_DENIED), reason);
		return;
	case FTM_PUSH_FAILED:
		ftm_outcome_set(out, FTM_RES_PUSH_FAILED, serial, ftm_or(message, FTM_MSG_PUSH_NOT_SENT), reason);
		return;
	case FTM_PUSH_PENDING:
	case FTM_PUSH_ERROR:
	default:
		ftm_outcome_set(out, FTM_RES_PUSH_FAILED, serial, ftm_or(message, FTM_MSG_PUSH_DOWN), reason);
		return;
	}
}

/* A push that was answered or timed out went out when the login asked for it (now): its "sent" row
 * comes before the row of its outcome. A login that joined a pending push sent nothing (the engine
 * says "(joined)"); a number-matching push is "sent" by its challenge outcome. */
static void audit_push_sent(ftm_auth_t *auth, const ftm_login_t *login, time_t now, const ftm_outcome_t *out)
{
	ftm_audit_row_t a;
	char err[FTM_ERR_MAX] = "";
	bool sent = out->push_verdict == FTM_PUSH_APPROVED || out->push_verdict == FTM_PUSH_DENIED ||
		    out->push_verdict == FTM_PUSH_TIMEOUT;

	if (!sent || out->result == FTM_RES_CHALLENGE || strstr(out->reason, "(joined)") != NULL)
		return;
	audit_begin(auth, &a, FTM_AUDIT_EV_PUSH, login);
	a.at = (int64_t)now;
	ftm_copy(a.result, sizeof(a.result), FTM_AUDIT_SENT);
	ftm_copy(a.serial, sizeof(a.serial), out->serial);
	snprintf(a.reason, sizeof(a.reason), "push sent to token %.64s, answered or expired %llds later", out->serial,
		 (long long)(time(NULL) - now));
	if (ftm_store_audit_append(auth->store, &a, err, sizeof(err)) != 0)
		ftm_log(&auth->log, FTM_LOG_ERR, "audit: the push row for '%s' from %s could not be written: %s",
			WHO(login), err);
}

/* The push half of the second factor: through whichever implementation is plugged in, then the
 * lockout accounting, then (push not sent) the code challenge when the admin allows it. */
static void push_second_factor(ftm_auth_t *auth, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			       ftm_outcome_t *out)
{
	ftm_push_ops_t ops;
	void *ops_ctx = NULL;

	ftm_log(&auth->log, FTM_LOG_DEBUG, "push for '%s' from %s to token %s", WHO(login), tok->serial);
	if (get_ops(auth, &ops, &ops_ctx) && ops.push != NULL)
		ops.push(ops_ctx, login, tok, now, out);
	else
		ftm_outcome_set(out, FTM_RES_PUSH_FAILED, tok->serial, FTM_MSG_PUSH_DOWN, "no push implementation");
	if (out->serial[0] == '\0')
		ftm_copy(out->serial, sizeof(out->serial), tok->serial);
	if (out->result == FTM_RES_DENIED && out->message[0] == '\0')
		ftm_copy(out->message, sizeof(out->message), FTM_MSG_DENIED);
	audit_push_sent(auth, login, now, out);
	push_account(auth, login, now, FTM_AUDIT_EV_PUSH, out);
	log_outcome(auth, "push", login, out);
	if (out->result != FTM_RES_PUSH_FAILED || !auth->cfg.challenge)
		return;		/* PUSH_FAILED without challenge: no fallback configured */
	ftm_log(&auth->log, FTM_LOG_INFO, "push for '%s' from %s failed: falling back to a code challenge",
		WHO(login));
	ftm_auth_challenge_code(auth, login, now, out);
	/* Say why the code is asked for. */
	if (out->result == FTM_RES_CHALLENGE)
		ftm_copy(out->message, sizeof(out->message), FTM_MSG_PUSH_DOWN_CODE);
}

void ftm_auth_second_factor(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out)
{
	TRACE_SCOPE(auth, login, now);
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX];
	holdings_t h;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "no auth context or user");
		return;
	}
	if (holdings(auth, login->user, NULL, now, true, &h, err, sizeof(err)) != 0) {
		snprintf(reason, sizeof(reason), "token store unavailable: %.200s", err);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_STORE_DOWN, reason);
		log_outcome(auth, "second factor", login, out);
		return;
	}
	if (h.n == 0) {
		ftm_outcome_set(out, FTM_RES_NO_TOKEN, NULL, FTM_MSG_NO_TOKEN, "user holds no token");
		log_outcome(auth, "second factor", login, out);
		return;
	}
	if (h.n_locked + h.n_expired == h.n) {
		if (h.n_locked > 0) {
			char msg[FTM_MSG_MAX];

			ftm_msg_locked(msg, sizeof(msg), h.unlock_at > (int64_t)now ? (unsigned)(h.unlock_at - (int64_t)now) : 0);
			ftm_outcome_set(out, FTM_RES_LOCKED, NULL, msg, "every token of the user is locked or expired");
		}
		else
			ftm_outcome_set(out, FTM_RES_EXPIRED, NULL, FTM_MSG_EXPIRED,
					"every token of the user expired unused");
		log_outcome(auth, "second factor", login, out);
		return;
	}
	if (auth->cfg.push.status && h.has_push) {
		push_second_factor(auth, login, &h.push_tok, now, out);
		holdings_clear(&h);
		return;
	}
	holdings_clear(&h);
	if (auth->cfg.challenge) {
		ftm_auth_challenge_code(auth, login, now, out);
		return;
	}
	ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CODE_REQUIRED,
			auth->cfg.push.status ? "no code given, no push target for the user, challenge disabled"
					      : "no code given, push disabled, challenge disabled");
	log_outcome(auth, "second factor", login, out);
}

void ftm_auth_after_password(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
			     ftm_outcome_t *out)
{
	ftm_auth_after_password_proved(auth, login, code, NULL, now, out);
}

void ftm_auth_after_password_proved(ftm_auth_t *auth, const ftm_login_t *login, const char *code,
				    const ftm_code_proof_t *proof, time_t now, ftm_outcome_t *out)
{
	if (code != NULL && code[0] != '\0')
		verify_code(auth, login, code, proof, now, out);
	else
		ftm_auth_second_factor(auth, login, now, out);
	if (out != NULL)
		ftm_metrics_login(out->result);
}

/* ---- code challenges ---- */

void ftm_auth_challenge_code(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out)
{
	TRACE_SCOPE(auth, login, now);
	char reason[FTM_MSG_MAX] = "";
	ftm_policy_t pol;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "no auth context or user");
		return;
	}
	/* in the store: the answer may come to another node or front end of the same store */
	if (ftm_store_policy(auth->store, &pol, reason, sizeof(reason)) != 0 ||
	    ftm_store_challenge_issue(auth->store, login->user, login->client, now, pol.challenge_timeout,
				      out->state, reason, sizeof(reason)) != 0) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, reason);
		log_outcome(auth, "challenge", login, out);
		return;
	}
	out->result = FTM_RES_CHALLENGE;
	ftm_copy(out->message, sizeof(out->message), FTM_MSG_ENTER_CODE);
	snprintf(out->reason, sizeof(out->reason), "code challenge issued, valid %us", pol.challenge_timeout);
	log_outcome(auth, "challenge", login, out);
}

static void challenge_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *state,
			     const char *answer, time_t now, ftm_outcome_t *out)
{
	TRACE_SCOPE(auth, login, now);
	ftm_state_check_t check = FTM_STATE_UNKNOWN;
	char reason[FTM_MSG_MAX] = "";
	ftm_push_ops_t ops;
	void *ops_ctx = NULL;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL || state == NULL || answer == NULL) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "no auth context, user, state or answer");
		return;
	}
	if (ftm_store_challenge_take(auth->store, login->user, login->client, state, now, &check,
				     reason, sizeof(reason)) != 0) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, reason);
		log_outcome(auth, "challenge answer", login, out);
		return;
	}
	switch (check) {
	case FTM_STATE_OK:
		/* Enter alone (or blanks) is no guess at the code: the State is spent, nothing counted. */
		if (answer[strspn(answer, " \t")] == '\0')
			ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CODE_REQUIRED,
					"empty answer to the code challenge: no code given, no failure counted");
		else
			check_code(auth, login, answer, now, FTM_AUDIT_EV_CHALLENGE, NULL, out);
		log_outcome(auth, "challenge answer", login, out);
		return;
	case FTM_STATE_EXPIRED:
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_OLD, "challenge state expired");
		log_outcome(auth, "challenge answer", login, out);
		return;
	case FTM_STATE_MISMATCH:
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_BAD,
				"challenge state issued to another user or client (consumed)");
		log_outcome(auth, "challenge answer", login, out);
		return;
	case FTM_STATE_UNKNOWN:
		break;
	}
	/* Not a code challenge: the number challenge of the push implementation, or nobody's. */
	if (get_ops(auth, &ops, &ops_ctx) && ops.challenge_answer != NULL &&
	    ops.challenge_answer(ops_ctx, login, state, answer, now, out)) {
		push_account(auth, login, now, FTM_AUDIT_EV_NUMBER, out);
		log_outcome(auth, "number answer", login, out);
		return;
	}
	ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_UNKNOWN, "unknown challenge state");
	log_outcome(auth, "challenge answer", login, out);
}

void ftm_auth_challenge_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *state,
			       const char *answer, time_t now, ftm_outcome_t *out)
{
	challenge_answer(auth, login, state, answer, now, out);
	if (out != NULL)
		ftm_metrics_login(out->result);
}

/* ---- clients that answer every prompt with the password ---- */

/* Is answer the proven password? Constant time whatever the two hold: SHA-256 of each, the digests
 * compared with CRYPTO_memcmp. */
static bool is_proven_password(const char *proven_password, const char *answer)
{
	unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
	unsigned alen = 0, blen = 0;
	bool eq = false;

	if (proven_password == NULL || proven_password[0] == '\0' || answer == NULL)
		return false;
	if (EVP_Digest(proven_password, strlen(proven_password), a, &alen, EVP_sha256(), NULL) == 1 &&
	    EVP_Digest(answer, strlen(answer), b, &blen, EVP_sha256(), NULL) == 1 && alen == blen)
		eq = CRYPTO_memcmp(a, b, alen) == 0;
	ftm_memzero(a, sizeof(a));
	ftm_memzero(b, sizeof(b));
	return eq;
}

bool ftm_auth_push_prompt_asks_push(const char *proven_password, const char *answer)
{
	return ftm_passcode_asks_push(answer) || is_proven_password(proven_password, answer);
}

void ftm_auth_prompt_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *proven_password,
			    const char *state, const char *answer, time_t now, ftm_outcome_t *out)
{
	TRACE_SCOPE(auth, login, now);
	ftm_push_ops_t ops;
	void *ops_ctx = NULL;
	char serial[FTM_SERIAL_MAX] = "";
	char reason[FTM_MSG_MAX];
	ftm_state_check_t check = FTM_STATE_UNKNOWN;

	if (out == NULL)
		return;
	if (auth == NULL || login == NULL || login->user == NULL || state == NULL ||
	    !is_proven_password(proven_password, answer)) {
		ftm_auth_challenge_answer(auth, login, state, answer, now, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	/* The State is single use whatever the answer (a code challenge's lives in the store, shared by
	 * every node). Not a code challenge: a number challenge, whose push the implementation refuses for
	 * an answer that is no number; that refusal is not counted either. */
	if (ftm_store_challenge_take(auth->store, login->user, login->client, state, now, &check,
				     reason, sizeof(reason)) != 0) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, reason);
		log_outcome(auth, "challenge answer", login, out);
		return;
	}
	if (check == FTM_STATE_UNKNOWN &&
	    get_ops(auth, &ops, &ops_ctx) && ops.challenge_answer != NULL &&
	    ops.challenge_answer(ops_ctx, login, state, "", now, out))
		ftm_copy(serial, sizeof(serial), out->serial);
	ftm_outcome_set(out, FTM_RES_FAIL, serial, FTM_MSG_CODE_REQUIRED,
			"the answer is the password just proved (a client that answers every prompt with it): "
			"no code given, no failure counted");
	log_outcome(auth, "challenge answer", login, out);
	ftm_metrics_login(out->result);
}

/* ---- push hook: the engine logs through the auth's own sink ---- */
const ftm_log_t *ftm_auth_log(const ftm_auth_t *auth)
{
	return auth != NULL ? &auth->log : NULL;
}

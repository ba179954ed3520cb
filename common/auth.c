/* auth: the MFA decisions every front end shares: split, code verdict, push or challenge, and states. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ftm_auth.h"
#include "ftm_rendezvous.h"

#define CHALLENGE_MAX		4096	/* pending challenges kept at once; the oldest goes first */
#define STATE_BYTES		16	/* 128 bits from the CSPRNG */
#define STATE_HEX		(2 * STATE_BYTES)

typedef struct {
	char	state[STATE_HEX + 1];
	char	user[FTM_USER_MAX];
	uint8_t	client_hash[32];	/* SHA-256 of the whole client identity: any length binds in full */
	time_t	expires;
	/* number matching through ftmpushd (a PAM process): the open connection to the daemon, whose
	 * transaction stays pending until the answer, and the number the daemon reported */
	bool	rdv;
	int	rdv_fd;
	char	number[FTM_RDV_NUMBER_MAX];
	char	serial[FTM_SERIAL_MAX];
} challenge_t;

static void challenge_drop_rdv(challenge_t *c)
{
	if (c->rdv && c->rdv_fd >= 0)
		close(c->rdv_fd);	/* the daemon sees the hang-up and cancels its wait */
	c->rdv = false;
	c->rdv_fd = -1;
}

struct ftm_auth {
	ftm_config_t	cfg;
	ftm_log_t	log;
	ftm_store_t	*store;

	pthread_mutex_t	lock;		/* guards everything below */
	challenge_t	*challenges;
	size_t		n_challenges, cap_challenges;
	ftm_push_ops_t	ops;
	void		*ops_ctx;
	bool		has_ops;
};

static const char *str_or(const char *s, const char *dflt)
{
	return s != NULL && *s != '\0' ? s : dflt;
}

#define WHO(login) str_or((login)->user, "?"), str_or((login)->client, "-")

static void set_out(ftm_outcome_t *out, ftm_result_t r, const char *serial, const char *message,
		    const char *reason)
{
	out->result = r;
	snprintf(out->serial, sizeof(out->serial), "%s", serial != NULL ? serial : "");
	snprintf(out->message, sizeof(out->message), "%s", message != NULL ? message : "");
	snprintf(out->reason, sizeof(out->reason), "%s", reason != NULL ? reason : "");
}

static ftm_log_level_t level_of(ftm_result_t r)
{
	switch (r) {
	case FTM_RES_OK:
	case FTM_RES_CHALLENGE:
		return FTM_LOG_INFO;
	case FTM_RES_ERROR:
	case FTM_RES_PUSH_FAILED:
		return FTM_LOG_ERR;
	default:
		return FTM_LOG_WARN;
	}
}

/* One line per decision: what, for whom, from where, which token, why. Never a code or a seed. */
static void log_outcome(ftm_auth_t *auth, const char *what, const ftm_login_t *login, const ftm_outcome_t *out)
{
	ftm_log(&auth->log, level_of(out->result), "%s for '%s' from %s: %s (serial %s): %s", what, WHO(login),
		ftm_result_name(out->result), str_or(out->serial, "-"), str_or(out->reason, "-"));
}

const char *ftm_result_name(ftm_result_t r)
{
	switch (r) {
	case FTM_RES_OK:		return "ok";
	case FTM_RES_FAIL:		return "fail";
	case FTM_RES_REPLAY:		return "replay";
	case FTM_RES_LOCKED:		return "locked";
	case FTM_RES_EXPIRED:		return "expired";
	case FTM_RES_NO_TOKEN:		return "no_token";
	case FTM_RES_CHALLENGE:		return "challenge";
	case FTM_RES_DENIED:		return "denied";
	case FTM_RES_PUSH_FAILED:	return "push_failed";
	case FTM_RES_ERROR:		return "error";
	}
	return "unknown";
}

/* ---- life cycle ---- */

ftm_auth_t *ftm_auth_new(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len)
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
	auth->store = ftm_store_open(cfg->token_db, cfg->key_file[0] != '\0' ? cfg->key_file : NULL,
				     &auth->log, why, sizeof(why));
	if (auth->store == NULL) {
		ftm_log(&auth->log, FTM_LOG_ERR, "cannot open the token store %s: %s", cfg->token_db, why);
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "token store %.200s: %.280s", cfg->token_db, why);
		pthread_mutex_destroy(&auth->lock);
		ftm_memzero(&auth->cfg, sizeof(auth->cfg));
		free(auth);
		return NULL;
	}
	return auth;
}

void ftm_auth_free(ftm_auth_t *auth)
{
	if (auth == NULL)
		return;
	/* The engine's waiters may still call back into auth while it stops: stop it first. */
	if (auth->has_ops && auth->ops.stop != NULL)
		auth->ops.stop(auth->ops_ctx);
	auth->has_ops = false;
	ftm_store_close(auth->store);
	for (size_t i = 0; i < auth->n_challenges; i++)
		challenge_drop_rdv(&auth->challenges[i]);
	if (auth->challenges != NULL) {
		ftm_memzero(auth->challenges, auth->cap_challenges * sizeof(challenge_t));
		free(auth->challenges);
	}
	pthread_mutex_destroy(&auth->lock);
	ftm_memzero(&auth->cfg, sizeof(auth->cfg));	/* ntfy_token */
	free(auth);
}

const ftm_config_t *ftm_auth_config(const ftm_auth_t *auth)
{
	return auth != NULL ? &auth->cfg : NULL;
}

ftm_store_t *ftm_auth_store(ftm_auth_t *auth)
{
	return auth != NULL ? auth->store : NULL;
}

void ftm_auth_set_push_ops(ftm_auth_t *auth, const ftm_push_ops_t *ops, void *ctx)
{
	if (auth == NULL)
		return;
	pthread_mutex_lock(&auth->lock);
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

typedef struct {
	ftm_auth_t	*auth;
	time_t		now;
	unsigned	n, n_locked, n_expired;
	unsigned	digit_mask;	/* bit d set: a token of the user has d digits */
	bool		has_push;	/* a usable token with a push target */
	ftm_token_t	push_tok;	/* that token (with its seed: the gateway channel needs it) */
} holdings_t;

static int holdings_cb(void *c, const ftm_token_t *tok)
{
	holdings_t *h = c;
	const char *state = ftm_token_state_name(tok, h->now, h->auth->cfg.activation_expire);

	h->n++;
	if (tok->digits >= 6 && tok->digits <= FTM_CODE_MAX)
		h->digit_mask |= 1u << tok->digits;
	if (strcmp(state, "locked") == 0) {
		h->n_locked++;
	} else if (strcmp(state, "expired") == 0) {
		h->n_expired++;
	} else if (tok->push[0] != '\0' && !h->has_push) {
		h->has_push = true;
		h->push_tok = *tok;
	}
	return 0;
}

static int holdings(ftm_auth_t *auth, const char *user, time_t now, holdings_t *h, char *err, size_t err_len)
{
	memset(h, 0, sizeof(*h));
	h->auth = auth;
	h->now = now;
	if (ftm_store_token_list(auth->store, user, holdings_cb, h, err, err_len) != 0) {
		ftm_memzero(&h->push_tok, sizeof(h->push_tok));
		return -1;
	}
	return 0;
}

static void holdings_clear(holdings_t *h)
{
	ftm_memzero(&h->push_tok, sizeof(h->push_tok));
}

static ftm_verify_params_t verify_params(const ftm_auth_t *auth, bool consume)
{
	ftm_verify_params_t p = {
		.window = auth->cfg.window,
		.lockout_threshold = auth->cfg.lockout_threshold,
		.activation_expire = auth->cfg.activation_expire,
		.consume = consume,
	};
	return p;
}

/* ---- step 1: split ---- */

/* Would `code` verify for user right now? Peeks, changes nothing. -1 on a store error. */
static int peek_ok(ftm_auth_t *auth, const char *user, const char *code, time_t now)
{
	ftm_verify_params_t p = verify_params(auth, false);
	ftm_verdict_t v;
	int rc;

	if (ftm_store_verify_code(auth->store, user, code, now, &p, &v) != 0 || v.code == FTM_VERDICT_ERROR)
		rc = -1;
	else
		rc = v.code == FTM_VERDICT_OK ? 1 : 0;
	ftm_memzero(&v, sizeof(v));
	return rc;
}

int ftm_auth_split(ftm_auth_t *auth, const ftm_login_t *login, const char *typed, time_t now,
		   ftm_split_t *out)
{
	char err[FTM_ERR_MAX] = "";
	ftm_passcode_t cand;
	bool have_cand = false, verified = false;
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
	if (holdings(auth, login->user, now, &h, err, sizeof(err)) != 0) {
		ftm_log(&auth->log, FTM_LOG_ERR, "split for '%s' from %s: token store unavailable: %s",
			WHO(login), err);
		ftm_memzero(out, sizeof(*out));
		return -1;
	}
	out->has_token = h.n > 0;
	out->push_available = auth->cfg.push.status && h.has_push;
	holdings_clear(&h);
	if (!out->has_token) {
		ftm_log(&auth->log, FTM_LOG_DEBUG, "split for '%s' from %s: no token", WHO(login));
		return 0;
	}

	/* One reading per code length the user's tokens use; a code that verifies wins. */
	memset(&cand, 0, sizeof(cand));
	for (unsigned digits = 6; digits <= FTM_CODE_MAX && !verified; digits++) {
		ftm_passcode_t p;
		int ok;

		if (!(h.digit_mask & (1u << digits)))
			continue;
		ftm_passcode_split(typed, digits, &p);
		if (!p.has_code) {
			ftm_passcode_clear(&p);
			continue;
		}
		ok = peek_ok(auth, login->user, p.code, now);
		if (ok < 0) {
			ftm_passcode_clear(&p);
			ftm_passcode_clear(&cand);
			ftm_log(&auth->log, FTM_LOG_ERR, "split for '%s' from %s: token store unavailable",
				WHO(login));
			ftm_memzero(out, sizeof(*out));
			return -1;
		}
		if (ok == 1 || !have_cand) {
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

static void verdict_to_outcome(const ftm_verdict_t *v, ftm_outcome_t *out)
{
	char msg[FTM_MSG_MAX];

	memset(out, 0, sizeof(*out));
	snprintf(out->serial, sizeof(out->serial), "%s", v->serial);
	snprintf(out->reason, sizeof(out->reason), "%s", v->reason);
	switch (v->code) {
	case FTM_VERDICT_OK:
		out->result = FTM_RES_OK;
		break;
	case FTM_VERDICT_BAD_CODE:
		out->result = FTM_RES_FAIL;
		snprintf(out->message, sizeof(out->message), "Invalid token code");
		break;
	case FTM_VERDICT_REPLAY:
		out->result = FTM_RES_REPLAY;
		out->wait_seconds = v->wait_seconds;
		snprintf(msg, sizeof(msg), "Please wait %u seconds to login again", v->wait_seconds);
		snprintf(out->message, sizeof(out->message), "%s", msg);
		break;
	case FTM_VERDICT_LOCKED:
		out->result = FTM_RES_LOCKED;
		snprintf(out->message, sizeof(out->message), "Token locked");
		break;
	case FTM_VERDICT_EXPIRED:
		out->result = FTM_RES_EXPIRED;
		snprintf(out->message, sizeof(out->message), "Token expired: ask your administrator to re-issue it");
		break;
	case FTM_VERDICT_NO_TOKEN:
		out->result = FTM_RES_NO_TOKEN;
		snprintf(out->message, sizeof(out->message), "No token");
		break;
	case FTM_VERDICT_ERROR:
	default:
		out->result = FTM_RES_ERROR;
		snprintf(out->message, sizeof(out->message), "Token store unavailable");
		break;
	}
}

static void check_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
		       ftm_outcome_t *out)
{
	ftm_verify_params_t p = verify_params(auth, true);
	ftm_verdict_t v;

	ftm_store_verify_code(auth->store, login->user, code, now, &p, &v);	/* errors are in v */
	verdict_to_outcome(&v, out);
	if (v.now_locked)
		ftm_log(&auth->log, FTM_LOG_WARN, "token %s of '%s' locked after %u consecutive failures",
			str_or(v.serial, "-"), str_or(login->user, "?"), v.failures);
	ftm_memzero(&v, sizeof(v));
}

void ftm_auth_verify_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
			  ftm_outcome_t *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL || code == NULL) {
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "no auth context, user or code");
		return;
	}
	check_code(auth, login, code, now, out);
	log_outcome(auth, "token code", login, out);
}

/* ---- push verdicts and the lockout ---- */

/* A push outcome in the token's failure count (docs/protocol.md section 5), one store transaction:
 *  - approved (tap, or the right number): like an accepted code, the user's failures reset; refused
 *    after all when the token was locked (or taken away) while the push was pending;
 *  - a wrong number typed while the push was live (out->wrong_answer): like a wrong code, one more
 *    consecutive failure, "Token locked" at lockout_threshold;
 *  - denied by the user on the phone, timed out, not sent: nothing counted (no guess was made). */
static void push_account(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out)
{
	ftm_verify_params_t p = verify_params(auth, true);
	char reason[FTM_MSG_MAX], serial[FTM_SERIAL_MAX];
	ftm_verdict_t v;

	snprintf(serial, sizeof(serial), "%s", out->serial);
	if (out->result == FTM_RES_OK) {
		if (ftm_store_record_success(auth->store, login->user, serial, now, &p, &v) == 0 &&
		    v.code == FTM_VERDICT_OK)
			return;
		snprintf(reason, sizeof(reason), "push approved, refused after all: %.200s", v.reason);
		if (v.code == FTM_VERDICT_LOCKED)
			set_out(out, FTM_RES_LOCKED, serial, "Token locked", reason);
		else if (v.code == FTM_VERDICT_ERROR)
			set_out(out, FTM_RES_ERROR, serial, "Token store unavailable", reason);
		else
			set_out(out, FTM_RES_FAIL, serial, "Invalid challenge: log in again", reason);
		return;
	}
	if (!out->wrong_answer)
		return;
	if (ftm_store_record_failure(auth->store, login->user, serial, now, &p, &v) != 0 ||
	    v.code == FTM_VERDICT_ERROR) {
		snprintf(reason, sizeof(reason), "%.100s; the failure could not be counted: %.100s", out->reason,
			 v.reason);
		set_out(out, FTM_RES_ERROR, serial, "Token store unavailable", reason);
		return;
	}
	if (v.now_locked)
		ftm_log(&auth->log, FTM_LOG_WARN, "token %s of '%s' locked after %u consecutive failures",
			str_or(v.serial, "-"), str_or(login->user, "?"), v.failures);
	snprintf(reason, sizeof(reason), "%.120s: %.120s", out->reason, v.reason);
	if (v.code == FTM_VERDICT_LOCKED)
		set_out(out, FTM_RES_LOCKED, serial, "Token locked", reason);
	else
		snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* ---- step 2 without a code: push, or challenge ---- */

static void rdv_second_factor(ftm_auth_t *auth, const ftm_login_t *login, const char *serial, time_t now,
			      ftm_outcome_t *out);

void ftm_auth_second_factor(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out)
{
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX];
	ftm_push_ops_t ops;
	void *ops_ctx = NULL;
	holdings_t h;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL) {
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "no auth context or user");
		return;
	}
	if (holdings(auth, login->user, now, &h, err, sizeof(err)) != 0) {
		snprintf(reason, sizeof(reason), "token store unavailable: %.200s", err);
		set_out(out, FTM_RES_ERROR, NULL, "Token store unavailable", reason);
		log_outcome(auth, "second factor", login, out);
		return;
	}
	if (h.n == 0) {
		set_out(out, FTM_RES_NO_TOKEN, NULL, "No token", "user holds no token");
		log_outcome(auth, "second factor", login, out);
		return;
	}
	if (h.n_locked + h.n_expired == h.n) {
		if (h.n_locked > 0)
			set_out(out, FTM_RES_LOCKED, NULL, "Token locked", "every token of the user is locked or expired");
		else
			set_out(out, FTM_RES_EXPIRED, NULL, "Token expired: ask your administrator to re-issue it",
				"every token of the user expired unused");
		log_outcome(auth, "second factor", login, out);
		return;
	}

	if (auth->cfg.push.status && h.has_push) {
		if (get_ops(auth, &ops, &ops_ctx) && ops.second_factor != NULL) {
			ftm_log(&auth->log, FTM_LOG_INFO, "push for '%s' from %s to token %s", WHO(login),
				h.push_tok.serial);
			ops.second_factor(ops_ctx, login, &h.push_tok, now, out);
		} else {
			ftm_log(&auth->log, FTM_LOG_INFO, "push for '%s' from %s to token %s via ftmpushd %s",
				WHO(login), h.push_tok.serial, auth->cfg.push.socket);
			rdv_second_factor(auth, login, h.push_tok.serial, now, out);
		}
		if (out->serial[0] == '\0')
			snprintf(out->serial, sizeof(out->serial), "%s", h.push_tok.serial);
		holdings_clear(&h);
		push_account(auth, login, now, out);
		if (out->result != FTM_RES_PUSH_FAILED) {
			if (out->result == FTM_RES_DENIED && out->message[0] == '\0')
				snprintf(out->message, sizeof(out->message), "Token denied or timeout");
			log_outcome(auth, "push", login, out);
			return;
		}
		log_outcome(auth, "push", login, out);
		if (!auth->cfg.challenge)
			return;		/* PUSH_FAILED: the push could not be sent, no fallback configured */
		ftm_log(&auth->log, FTM_LOG_INFO, "push for '%s' from %s failed: falling back to a code challenge",
			WHO(login));
		ftm_auth_challenge_code(auth, login, now, out);
		/* Say why the code is asked for; the text keeps "Enter the token code" for front ends. */
		if (out->result == FTM_RES_CHALLENGE)
			snprintf(out->message, sizeof(out->message), "Push unavailable. Enter the token code");
		return;
	}
	holdings_clear(&h);

	if (auth->cfg.challenge) {
		ftm_auth_challenge_code(auth, login, now, out);
		return;
	}
	set_out(out, FTM_RES_FAIL, NULL, "Token code required: enter your password followed by the token code",
		auth->cfg.push.status ? "no code given, no push target for the user, challenge disabled"
				      : "no code given, push disabled, challenge disabled");
	log_outcome(auth, "second factor", login, out);
}

/* ---- challenges ---- */

/* Drops expired entries. Called with the lock held. */
static void purge_expired(ftm_auth_t *auth, time_t now)
{
	size_t j = 0;

	for (size_t i = 0; i < auth->n_challenges; i++) {
		if (auth->challenges[i].expires > now) {
			if (i != j)
				auth->challenges[j] = auth->challenges[i];
			j++;
		} else {
			challenge_drop_rdv(&auth->challenges[i]);
		}
	}
	if (j < auth->n_challenges)
		ftm_memzero(&auth->challenges[j], (auth->n_challenges - j) * sizeof(challenge_t));
	auth->n_challenges = j;
}

/* Removes entry i; its connection (if any) is the caller's: closed unless keep_rdv. */
static void remove_at(ftm_auth_t *auth, size_t i, bool keep_rdv)
{
	if (!keep_rdv)
		challenge_drop_rdv(&auth->challenges[i]);
	auth->challenges[i] = auth->challenges[auth->n_challenges - 1];
	ftm_memzero(&auth->challenges[auth->n_challenges - 1], sizeof(challenge_t));
	auth->n_challenges--;
}

/* The client identity a State is bound to, hashed whole: a Calling-Station-Id of any length binds in
 * full, so two values that share a long prefix never share a State. 0, or -1 without a digest. */
static int client_hash(const ftm_login_t *login, uint8_t out[32])
{
	const char *client = str_or(login->client, "");
	unsigned int len = 0;

	return EVP_Digest(client, strlen(client), out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/* Issue a State bound to user and client, single use, expiring after ttl seconds; rdv_fd >= 0 (owned
 * from here on, closed on any failure) makes it a number matching challenge answered through ftmpushd.
 * Fills out->state and returns true, or fills out with the error and returns false. */
static bool issue_challenge(ftm_auth_t *auth, const ftm_login_t *login, time_t now, unsigned ttl, int rdv_fd,
			    const char *number, const char *serial, ftm_outcome_t *out)
{
	unsigned char raw[STATE_BYTES];
	challenge_t c;
	bool evicted = false;

	memset(&c, 0, sizeof(c));
	c.rdv = rdv_fd >= 0;
	c.rdv_fd = rdv_fd;
	if (strlen(login->user) >= sizeof(c.user) || client_hash(login, c.client_hash) != 0) {
		challenge_drop_rdv(&c);
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "user name too long for a challenge");
		log_outcome(auth, "challenge", login, out);
		return false;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		challenge_drop_rdv(&c);
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "no randomness for a challenge state");
		log_outcome(auth, "challenge", login, out);
		return false;
	}
	ftm_hex_encode(raw, sizeof(raw), c.state);
	ftm_memzero(raw, sizeof(raw));
	snprintf(c.user, sizeof(c.user), "%s", login->user);
	c.expires = now + (time_t)ttl;
	snprintf(c.number, sizeof(c.number), "%s", number != NULL ? number : "");
	snprintf(c.serial, sizeof(c.serial), "%s", serial != NULL ? serial : "");

	pthread_mutex_lock(&auth->lock);
	purge_expired(auth, now);
	if (auth->n_challenges == CHALLENGE_MAX) {
		/* Full of live challenges: the one closest to expiry makes room. */
		size_t oldest = 0;

		for (size_t i = 1; i < auth->n_challenges; i++)
			if (auth->challenges[i].expires < auth->challenges[oldest].expires)
				oldest = i;
		remove_at(auth, oldest, false);
		evicted = true;
	}
	if (auth->n_challenges == auth->cap_challenges) {
		size_t cap = auth->cap_challenges ? auth->cap_challenges * 2 : 16;
		challenge_t *grown;

		if (cap > CHALLENGE_MAX)
			cap = CHALLENGE_MAX;
		grown = calloc(cap, sizeof(*grown));
		if (grown == NULL) {
			pthread_mutex_unlock(&auth->lock);
			challenge_drop_rdv(&c);
			set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "out of memory for a challenge");
			log_outcome(auth, "challenge", login, out);
			return false;
		}
		if (auth->challenges != NULL) {
			memcpy(grown, auth->challenges, auth->n_challenges * sizeof(*grown));
			ftm_memzero(auth->challenges, auth->cap_challenges * sizeof(*grown));
			free(auth->challenges);
		}
		auth->challenges = grown;
		auth->cap_challenges = cap;
	}
	auth->challenges[auth->n_challenges++] = c;
	pthread_mutex_unlock(&auth->lock);

	if (evicted)
		ftm_log(&auth->log, FTM_LOG_WARN, "%d challenges pending: the oldest was dropped", CHALLENGE_MAX);
	snprintf(out->state, sizeof(out->state), "%s", c.state);
	ftm_memzero(&c, sizeof(c));
	return true;
}

void ftm_auth_challenge_code(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out)
{
	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL) {
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "no auth context or user");
		return;
	}
	if (!issue_challenge(auth, login, now, auth->cfg.challenge_timeout, -1, NULL, NULL, out))
		return;
	out->result = FTM_RES_CHALLENGE;
	snprintf(out->message, sizeof(out->message), "Enter the token code");
	snprintf(out->reason, sizeof(out->reason), "code challenge issued, valid %us", auth->cfg.challenge_timeout);
	log_outcome(auth, "challenge", login, out);
}

/* ---- push through ftmpushd (a PAM process): number matching keeps the connection ---- */

/* The push through the daemon's socket. With number matching the daemon reports the number and keeps
 * its transaction pending: the open connection goes into the challenge table under a new State (bound
 * to user and client, single use, expiring with the push), and the login asks for the number. */
static void rdv_second_factor(ftm_auth_t *auth, const ftm_login_t *login, const char *serial, time_t now,
			      ftm_outcome_t *out)
{
	char number[FTM_RDV_NUMBER_MAX] = "";
	ftm_outcome_t ch;
	unsigned ttl = (auth->cfg.push.timeout ? auth->cfg.push.timeout : 60) + FTM_RDV_GRACE;
	int fd;

	fd = ftm_rdv_second_factor_start(&auth->cfg, login, serial, -1, &auth->log, out, number);
	if (fd < 0)
		return;		/* a final verdict, or no number matching */
	memset(&ch, 0, sizeof(ch));
	if (!issue_challenge(auth, login, now, ttl, fd, number, out->serial, &ch)) {	/* closes fd */
		ftm_memzero(number, sizeof(number));
		snprintf(ch.serial, sizeof(ch.serial), "%s", out->serial);
		*out = ch;
		return;
	}
	ftm_memzero(number, sizeof(number));
	snprintf(out->state, sizeof(out->state), "%s", ch.state);
	snprintf(out->reason, sizeof(out->reason), "number matching push sent (ftmpushd), answer valid %us", ttl);
}

static bool is_state(const char *s)
{
	size_t i;

	for (i = 0; i < STATE_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

typedef enum { ST_UNKNOWN, ST_OK, ST_EXPIRED, ST_MISMATCH } state_check_t;

/* Finds and consumes a state (single use, whatever the answer). */
static state_check_t take_state(ftm_auth_t *auth, const ftm_login_t *login, const char *state, time_t now,
				challenge_t *taken)
{
	state_check_t r = ST_UNKNOWN;
	size_t found = 0;
	bool hit = false;
	uint8_t h[32];

	if (!is_state(state))
		return ST_UNKNOWN;
	pthread_mutex_lock(&auth->lock);
	/* Every entry is compared in full: a State is a bearer secret. */
	for (size_t i = 0; i < auth->n_challenges; i++) {
		bool eq = ftm_ct_equal(auth->challenges[i].state, state, STATE_HEX);

		found = (eq && !hit) ? i : found;
		hit |= eq;
	}
	if (hit) {
		const challenge_t *c = &auth->challenges[found];

		if (c->expires <= now)
			r = ST_EXPIRED;
		else if (strcmp(c->user, login->user) != 0 || client_hash(login, h) != 0 ||
			 CRYPTO_memcmp(c->client_hash, h, sizeof(h)) != 0)
			r = ST_MISMATCH;
		else
			r = ST_OK;
		*taken = *c;	/* with its connection, if any: the caller's now */
		remove_at(auth, found, true);
	}
	pthread_mutex_unlock(&auth->lock);
	return r;
}

void ftm_auth_challenge_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *state,
			       const char *answer, time_t now, ftm_outcome_t *out)
{
	ftm_push_ops_t ops;
	void *ops_ctx = NULL;
	challenge_t c;

	if (out == NULL)
		return;
	memset(out, 0, sizeof(*out));
	if (auth == NULL || login == NULL || login->user == NULL || state == NULL || answer == NULL) {
		set_out(out, FTM_RES_ERROR, NULL, "Authentication error", "no auth context, user, state or answer");
		return;
	}
	memset(&c, 0, sizeof(c));
	c.rdv_fd = -1;
	switch (take_state(auth, login, state, now, &c)) {
	case ST_OK:
		if (c.rdv) {
			/* Number matching through ftmpushd: the core compares, the daemon's engine decides. */
			ftm_rdv_number_answer(c.rdv_fd, c.number, answer, c.serial, &auth->log, out);
			c.rdv = false;	/* closed by ftm_rdv_number_answer */
			if (out->serial[0] == '\0')
				snprintf(out->serial, sizeof(out->serial), "%s", c.serial);
			ftm_memzero(&c, sizeof(c));
			push_account(auth, login, now, out);
			log_outcome(auth, "number answer", login, out);
			return;
		}
		ftm_memzero(&c, sizeof(c));
		check_code(auth, login, answer, now, out);
		log_outcome(auth, "challenge answer", login, out);
		return;
	case ST_EXPIRED:
		if (c.rdv) {
			challenge_drop_rdv(&c);
			set_out(out, FTM_RES_DENIED, c.serial, "Token denied or timeout",
				"number typed after the push timeout");
			ftm_memzero(&c, sizeof(c));
			log_outcome(auth, "number answer", login, out);
			return;
		}
		set_out(out, FTM_RES_FAIL, NULL, "Challenge expired: log in again", "challenge state expired");
		log_outcome(auth, "challenge answer", login, out);
		return;
	case ST_MISMATCH:
		challenge_drop_rdv(&c);
		ftm_memzero(&c, sizeof(c));
		set_out(out, FTM_RES_FAIL, NULL, "Invalid challenge: log in again",
			"challenge state issued to another user or client (consumed)");
		log_outcome(auth, "challenge answer", login, out);
		return;
	case ST_UNKNOWN:
		break;
	}
	if (get_ops(auth, &ops, &ops_ctx) && ops.challenge_answer != NULL &&
	    ops.challenge_answer(ops_ctx, login, state, answer, now, out)) {
		push_account(auth, login, now, out);
		log_outcome(auth, "push challenge answer", login, out);
		return;
	}
	memset(out, 0, sizeof(*out));
	set_out(out, FTM_RES_FAIL, NULL, "Invalid or expired challenge: log in again", "unknown challenge state");
	log_outcome(auth, "challenge answer", login, out);
}

/* ---- push hook: the engine logs through the auth's own sink ---- */
const ftm_log_t *ftm_auth_log(const ftm_auth_t *auth)
{
	return auth != NULL ? &auth->log : NULL;
}

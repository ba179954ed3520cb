/* test_auth: the shared MFA decisions (split, code verdict, push or challenge, states) on a real store.
 * Codes are RFC 4226 appendix D values: with a 30 s period, HOTP(k) is the TOTP code of step k. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ftm_audit.h"
#include "ftm_auth.h"
#include "ftm_metrics.h"

#define SEED_HEX	"3132333435363738393031323334353637383930"	/* "12345678901234567890" */
static const char *const hotp[10] = {
	"755224", "287082", "359152", "969429", "338314",
	"254676", "287922", "162583", "399871", "520489",
};
/* RFC 6238 appendix B, SHA1, 8 digits, 30 s: at 1111111109 (step 37037036) */
#define T8		1111111109
#define CODE8		"07081804"

#define AT(step)	((time_t)(step) * 30 + 3)	/* a moment inside step `step` */

typedef struct {
	char		dir[64];
	ftm_config_t	cfg;
	ftm_auth_t	*auth;
	pthread_mutex_t	log_lock;
	char		logbuf[65536];
	size_t		loglen;
	ftm_log_t	log;
} fixture_t;

static void sink(void *ctx, ftm_log_level_t level, const char *line)
{
	fixture_t *f = ctx;
	size_t n = strlen(line);

	(void)level;
	pthread_mutex_lock(&f->log_lock);
	if (f->loglen + n + 2 < sizeof(f->logbuf)) {
		memcpy(f->logbuf + f->loglen, line, n);
		f->loglen += n;
		f->logbuf[f->loglen++] = '\n';
		f->logbuf[f->loglen] = '\0';
	}
	pthread_mutex_unlock(&f->log_lock);
}

static void open_auth(fixture_t *f)
{
	char err[FTM_ERR_MAX] = "";

	if (f->auth != NULL)
		ftm_auth_free(f->auth);
	f->auth = ftm_auth_new(&f->cfg, &f->log, err, sizeof(err));
	if (f->auth == NULL)
		fprintf(stderr, "ftm_auth_new: %s\n", err);
	assert_non_null(f->auth);
}

/* The verdict policy is the store's: set it there, as `ftmpushctl policy set` does. */
static void set_policy(fixture_t *f, const char *name, const char *value)
{
	char err[FTM_ERR_MAX] = "";

	if (ftm_store_policy_set(ftm_auth_store(f->auth), name, value, NULL, 0, err, sizeof(err)) != 0)
		fprintf(stderr, "policy set: %s\n", err);
	assert_string_equal(err, "");
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/ftm-auth-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	pthread_mutex_init(&f->log_lock, NULL);
	f->log.sink = sink;
	f->log.sink_ctx = f;
	f->log.max_level = FTM_LOG_DEBUG2;
	ftm_config_defaults(&f->cfg);
	snprintf(f->cfg.token_db, sizeof(f->cfg.token_db), "%s/tokens.db", f->dir);
	snprintf(f->cfg.push.socket, sizeof(f->cfg.push.socket), "%s/absent.sock", f->dir);
	open_auth(f);
	set_policy(f, "activation_expire", "0");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	char cmd[128];
	int rc;

	ftm_auth_free(f->auth);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	rc = system(cmd);
	pthread_mutex_destroy(&f->log_lock);
	free(f);
	return rc == 0 ? 0 : -1;
}

static void add_token(fixture_t *f, const char *user, const char *serial, unsigned digits, const char *push)
{
	char err[FTM_ERR_MAX] = "";
	ftm_token_t t;

	assert_int_equal(ftm_token_init(&t, user, serial, SEED_HEX, err, sizeof(err)), 0);
	t.digits = digits;
	t.period = 30;
	t.created = 0;
	snprintf(t.push, sizeof(t.push), "%s", push != NULL ? push : "");
	if (ftm_store_token_add(ftm_auth_store(f->auth), &t, err, sizeof(err)) != 0)
		fprintf(stderr, "token add: %s\n", err);
	ftm_memzero(&t, sizeof(t));
}

static ftm_token_t get_token(fixture_t *f, const char *serial)
{
	char err[FTM_ERR_MAX] = "";
	ftm_token_t t;

	assert_int_equal(ftm_store_token_get(ftm_auth_store(f->auth), serial, &t, err, sizeof(err)), 0);
	ftm_memzero(t.seed, sizeof(t.seed));
	return t;
}

static const ftm_login_t alice = { "alice", "192.0.2.10", "vpn", "gw1" };

/* ---- split ---- */

static void split_user_without_token_keeps_the_whole_input(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	assert_int_equal(ftm_auth_split(f->auth, &alice, "secret755224", AT(0), &sp), 0);
	assert_false(sp.has_token);
	assert_false(sp.primary.has_code);
	assert_false(sp.has_alt);
	assert_string_equal(sp.primary.password, "secret755224");
}

static void split_code_that_verifies_is_taken_and_not_consumed(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd287082", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "p@ssw0rd");
	assert_string_equal(sp.primary.code, "287082");
	assert_false(sp.has_alt);
	assert_false(sp.push_available);
	/* the peek consumed nothing: the code still logs in once */
	ftm_auth_verify_code(f->auth, &alice, sp.primary.code, AT(1), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(out.serial, "FTKMOB0000000001");
}

static void split_digits_that_do_not_verify_offer_the_whole_input(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;
	ftm_token_t t;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "winter2024123456", AT(1), &sp), 0);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "winter2024");
	assert_string_equal(sp.primary.code, "123456");
	assert_true(sp.has_alt);
	assert_string_equal(sp.alt_password, "winter2024123456");
	/* nothing counted before the password is proven */
	t = get_token(f, "FTKMOB0000000001");
	assert_int_equal(t.failures, 0);
	assert_int_equal(t.last_step, -1);
}

static void split_without_trailing_code_is_password_only(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "correct horse", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_false(sp.primary.has_code);
	assert_false(sp.has_alt);
	assert_string_equal(sp.primary.password, "correct horse");
	assert_int_equal(ftm_auth_split(f->auth, &alice, "", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_string_equal(sp.primary.password, "");
}

static void split_refuses_overlong_input(void **state)
{
	fixture_t *f = *state;
	char big[FTM_INPUT_MAX + 10];
	ftm_split_t sp;

	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, big, AT(1), &sp), -1);
	assert_false(sp.has_token);
	assert_string_equal(sp.primary.password, "");
}

static void split_reads_eight_digit_codes(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000008", 8, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw" CODE8, T8, &sp), 0);
	assert_true(sp.primary.has_code);
	assert_false(sp.has_alt);
	assert_string_equal(sp.primary.password, "pw");
	assert_string_equal(sp.primary.code, CODE8);
}

/* A user with a 6-digit and an 8-digit token: each length is tried, the one that verifies wins. */
static void split_tries_each_code_length_the_user_holds(void **state)
{
	fixture_t *f = *state;
	char err[FTM_ERR_MAX] = "";
	ftm_split_t sp;
	ftm_token_t t;

	assert_int_equal(ftm_token_init(&t, "alice", "FTKMOB0000000006", NULL, err, sizeof(err)), 0);
	t.period = 30;
	assert_int_equal(ftm_store_token_add(ftm_auth_store(f->auth), &t, err, sizeof(err)), 0);
	ftm_memzero(&t, sizeof(t));
	add_token(f, "alice", "FTKMOB0000000008", 8, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw" CODE8, T8, &sp), 0);
	assert_true(sp.primary.has_code);
	assert_false(sp.has_alt);
	assert_string_equal(sp.primary.password, "pw");
	assert_string_equal(sp.primary.code, CODE8);
	/* nothing verifies: the 6-digit reading is primary, the whole input the alternative */
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw12345678", T8, &sp), 0);
	assert_true(sp.has_alt);
	assert_string_equal(sp.primary.password, "pw12");
	assert_string_equal(sp.alt_password, "pw12345678");
}

static void split_push_available_needs_status_and_target(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	add_token(f, "bob", "FTKMOB0000000002", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw", AT(1), &sp), 0);
	assert_false(sp.push_available);		/* push.status disabled */
	f->cfg.push.status = true;
	open_auth(f);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw", AT(1), &sp), 0);
	assert_true(sp.push_available);
	{
		const ftm_login_t bob = { "bob", "192.0.2.11", "vpn", "gw1" };

		assert_int_equal(ftm_auth_split(f->auth, &bob, "pw", AT(1), &sp), 0);
		assert_true(sp.has_token);
		assert_false(sp.push_available);
	}
	/* a locked token does not push */
	assert_int_equal(ftm_store_token_set_status(ftm_auth_store(f->auth), "FTKMOB0000000001",
						    FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "pw", AT(1), &sp), 0);
	assert_false(sp.push_available);
}

/* ---- the code verdict ---- */

static void verify_valid_code_then_replay(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_verify_code(f->auth, &alice, hotp[2], 2 * 30 + 10, &out);
	assert_int_equal(out.result, FTM_RES_OK);
	ftm_auth_verify_code(f->auth, &alice, hotp[2], 2 * 30 + 18, &out);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	assert_int_equal(out.wait_seconds, 12);
	assert_string_equal(out.message, "Please wait 12 seconds to login again");
	assert_string_equal(out.serial, "FTKMOB0000000001");
	/* an older step is a replay too */
	ftm_auth_verify_code(f->auth, &alice, hotp[1], 2 * 30 + 18, &out);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	/* the next step's code is fine */
	ftm_auth_verify_code(f->auth, &alice, hotp[3], AT(3), &out);
	assert_int_equal(out.result, FTM_RES_OK);
}

static void verify_wrong_code_counts_and_locks_at_the_threshold(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;
	ftm_token_t t;

	set_policy(f, "lockout_threshold", "3");
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_verify_code(f->auth, &alice, "000000", AT(5), &out);
	assert_int_equal(out.result, FTM_RES_FAIL);
	assert_string_equal(out.message, "Invalid token code");
	ftm_auth_verify_code(f->auth, &alice, "000001", AT(5), &out);
	assert_int_equal(out.result, FTM_RES_FAIL);
	t = get_token(f, "FTKMOB0000000001");
	assert_int_equal(t.failures, 2);
	ftm_auth_verify_code(f->auth, &alice, "000002", AT(5), &out);
	assert_int_equal(out.result, FTM_RES_LOCKED);
	assert_string_equal(out.message, "Token locked");
	/* locked: even the right code is refused */
	ftm_auth_verify_code(f->auth, &alice, hotp[5], AT(5), &out);
	assert_int_equal(out.result, FTM_RES_LOCKED);
	/* unlock: active again */
	assert_int_equal(ftm_store_token_set_status(ftm_auth_store(f->auth), "FTKMOB0000000001",
						    FTM_TOKEN_ACTIVE, NULL, 0), 0);
	ftm_auth_verify_code(f->auth, &alice, hotp[5], AT(5), &out);
	assert_int_equal(out.result, FTM_RES_OK);
}

static void verify_success_resets_failures(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_verify_code(f->auth, &alice, "000000", AT(4), &out);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 1);
	ftm_auth_verify_code(f->auth, &alice, hotp[4], AT(4), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 0);
	assert_int_equal(get_token(f, "FTKMOB0000000001").last_step, 4);
}

static void verify_expired_never_used_token(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	set_policy(f, "activation_expire", "1");	/* minute; created at 0 */
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_verify_code(f->auth, &alice, hotp[2], AT(2), &out);
	assert_int_equal(out.result, FTM_RES_EXPIRED);
	assert_non_null(strstr(out.message, "expired"));
}

static void verify_user_without_token(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	ftm_auth_verify_code(f->auth, &alice, "123456", AT(1), &out);
	assert_int_equal(out.result, FTM_RES_NO_TOKEN);
}

/* ---- push and challenge ---- */

typedef struct {
	int		calls, stops, answers;
	ftm_result_t	result;
	char		serial[FTM_SERIAL_MAX];
	char		push[FTM_PUSH_MAX];
	size_t		seed_len;
} fake_push_t;

static void fake_second_factor(void *ctx, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			       ftm_outcome_t *out)
{
	fake_push_t *p = ctx;

	(void)login;
	(void)now;
	p->calls++;
	snprintf(p->serial, sizeof(p->serial), "%s", tok->serial);
	snprintf(p->push, sizeof(p->push), "%s", tok->push);
	p->seed_len = tok->seed_len;
	memset(out, 0, sizeof(*out));
	out->result = p->result;
	if (p->result == FTM_RES_CHALLENGE) {
		snprintf(out->state, sizeof(out->state), "engine-state-1");
		snprintf(out->message, sizeof(out->message), "Enter the number shown on your phone");
	}
}

static bool fake_challenge_answer(void *ctx, const ftm_login_t *login, const char *state, const char *answer,
				  time_t now, ftm_outcome_t *out)
{
	fake_push_t *p = ctx;

	(void)login;
	(void)now;
	if (strcmp(state, "engine-state-1") != 0)
		return false;
	p->answers++;
	out->result = strcmp(answer, "42") == 0 ? FTM_RES_OK : FTM_RES_DENIED;
	return true;
}

static void fake_stop(void *ctx)
{
	((fake_push_t *)ctx)->stops++;
}

static const ftm_push_ops_t fake_ops = { fake_second_factor, fake_challenge_answer, fake_stop };

static void second_factor_without_push_issues_a_code_challenge(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_string_equal(out.message, "Enter the token code");
	assert_int_equal(strlen(out.state), 32);
	assert_int_equal(strspn(out.state, "0123456789abcdef"), 32);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[6], AT(6), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
	assert_string_equal(ans.serial, "FTKMOB0000000001");
}

static void second_factor_without_push_or_challenge_fails(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	f->cfg.challenge = false;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_FAIL);
	assert_string_not_equal(out.message, "");
	assert_string_equal(out.state, "");
}

static void second_factor_no_token_and_locked(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_NO_TOKEN);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_store_token_set_status(ftm_auth_store(f->auth), "FTKMOB0000000001",
						    FTM_TOKEN_LOCKED, NULL, 0), 0);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_LOCKED);
	assert_string_equal(out.message, "Token locked");
}

static void second_factor_pushes_through_the_engine(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_OK };
	ftm_outcome_t out;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(p.calls, 1);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(p.serial, "FTKMOB0000000001");
	assert_string_equal(p.push, "ntfy:https://ntfy.example/alice");
	assert_int_equal(p.seed_len, 20);
	assert_string_equal(out.serial, "FTKMOB0000000001");

	p.result = FTM_RES_DENIED;
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_DENIED);
	assert_string_equal(out.message, "Token denied or timeout");

	ftm_auth_free(f->auth);
	f->auth = NULL;
	assert_int_equal(p.stops, 1);
	open_auth(f);
}

/* ---- the audit trail and debug on demand ---- */

struct rows {
	size_t		n;
	ftm_audit_row_t	row[16];
};

static int collect(void *ctx, const ftm_audit_row_t *row)
{
	struct rows *r = ctx;

	if (r->n < 16)
		r->row[r->n] = *row;
	r->n++;
	return 0;
}

/* log_accepts = no: an accepted login leaves no line in the normal log (its audit row stays); a
 * rejection is logged all the same. */
static void log_accepts_no_keeps_accepts_out_of_the_normal_log(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;
	struct rows r = { 0 };

	f->cfg.log_accepts = false;
	f->cfg.audit_retention = 0;	/* rows of 1970 (the test's clock) stay */
	f->log.max_level = FTM_LOG_INFO;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	f->loglen = 0;
	f->logbuf[0] = '\0';
	ftm_auth_verify_code(f->auth, &alice, hotp[2], 2 * 30 + 10, &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_null(strstr(f->logbuf, "'alice'"));
	ftm_auth_verify_code(f->auth, &alice, hotp[2], 2 * 30 + 18, &out);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	assert_non_null(strstr(f->logbuf, "'alice'"));
	assert_non_null(strstr(f->logbuf, "replay"));
	assert_int_equal(ftm_store_audit_list(ftm_auth_store(f->auth), NULL, collect, &r, NULL, 0), 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.row[0].result, FTM_AUDIT_ACCEPTED);
}

/* Every outcome, a verdict's or not, is one row naming the front end and the node. */
static void each_outcome_leaves_one_audit_row_with_front_end_and_node(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_OK };
	const ftm_login_t bob = { "bob", "192.0.2.20", "vpn", "gw1" };
	const ftm_login_t carol = { "carol", "192.0.2.30", "vpn", "gw1" };
	ftm_outcome_t out, ans;
	struct rows r = { 0 };
	static const char *const want[][2] = {
		{ FTM_AUDIT_EV_LOGIN, FTM_AUDIT_NO_TOKEN }, { FTM_AUDIT_EV_CODE, FTM_AUDIT_WRONG },
		{ FTM_AUDIT_EV_PUSH, FTM_AUDIT_APPROVED }, { FTM_AUDIT_EV_PUSH, FTM_AUDIT_DENIED },
		{ FTM_AUDIT_EV_CHALLENGE, FTM_AUDIT_ISSUED }, { FTM_AUDIT_EV_CHALLENGE, FTM_AUDIT_ACCEPTED },
	};

	f->cfg.push.status = true;
	snprintf(f->cfg.node_name, sizeof(f->cfg.node_name), "node-x");
	open_auth(f);
	ftm_auth_set_frontend(f->auth, FTM_AUDIT_FE_RADIUS);
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	add_token(f, "bob", "FTKMOB0000000002", 6, NULL);
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &carol, AT(6), &out);
	ftm_auth_verify_code(f->auth, &alice, "000000", AT(6), &out);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	p.result = FTM_RES_DENIED;
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	ftm_auth_second_factor(f->auth, &bob, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(f->auth, &bob, out.state, hotp[6], AT(6), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
	assert_int_equal(ftm_store_audit_list(ftm_auth_store(f->auth), NULL, collect, &r, NULL, 0), 0);
	assert_int_equal(r.n, 6);
	for (size_t i = 0; i < r.n; i++) {
		assert_string_equal(r.row[i].event, want[i][0]);
		assert_string_equal(r.row[i].result, want[i][1]);
		assert_string_equal(r.row[i].frontend, FTM_AUDIT_FE_RADIUS);
		assert_string_equal(r.row[i].node, "node-x");
		assert_string_equal(r.row[i].nas, "vpn");
	}
	assert_string_equal(r.row[0].user, "carol");
	assert_string_equal(r.row[2].serial, "FTKMOB0000000001");
	assert_string_equal(r.row[5].client, "192.0.2.20");
	ftm_auth_free(f->auth);
	f->auth = NULL;
	open_auth(f);
}

/* Debug on demand: with the log at info, a switch for alice lets her login's debug lines through
 * (prefixed), and not bob's. */
static void a_debug_switch_raises_the_trace_of_its_user_only(void **state)
{
	fixture_t *f = *state;
	const ftm_login_t bob = { "bob", "192.0.2.20", "vpn", "gw1" };
	ftm_outcome_t out;
	time_t now = time(NULL);

	f->log.max_level = FTM_LOG_INFO;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	add_token(f, "bob", "FTKMOB0000000002", 6, NULL);
	ftm_auth_verify_code(f->auth, &alice, "000000", now, &out);
	assert_null(strstr(f->logbuf, "debug: "));
	assert_int_equal(ftm_store_debug_set(ftm_auth_store(f->auth), "alice", now + 60, now, NULL, 0), 0);
	open_auth(f);	/* a fresh copy of the switches (a running one rereads within FTM_TRACE_REFRESH) */
	ftm_auth_verify_code(f->auth, &bob, "000000", now, &out);
	assert_null(strstr(f->logbuf, "debug: "));
	ftm_auth_verify_code(f->auth, &alice, "000000", now, &out);
	assert_non_null(strstr(f->logbuf, "debug: verdict for 'alice'"));
	assert_null(strstr(f->logbuf, "debug: verdict for 'bob'"));
	assert_false(ftm_log_trace_raise(false));	/* restored when the entry point returned */
}

static void push_failure_falls_back_to_a_challenge(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_PUSH_FAILED };
	ftm_outcome_t out, ans;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "gateway:reg-1");
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &alice, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_string_equal(out.message, "Push unavailable. Enter the token code");
	assert_int_equal(strlen(out.state), 32);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[7], AT(7), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);

	f->cfg.challenge = false;
	open_auth(f);
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &alice, AT(8), &out);
	assert_int_equal(out.result, FTM_RES_PUSH_FAILED);
	assert_string_equal(out.state, "");
}

/* The outcome says whether the core logged it and as what (rlm_ftmpush then leaves its own line to
 * debug): a verdict, a challenge that replaced a failed push (logged as the challenge), and not an outcome
 * returned before any decision. */
static void an_outcome_says_whether_the_core_logged_it(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_PUSH_FAILED };
	ftm_outcome_t out;
	ftm_login_t nobody = { 0 };

	add_token(f, "alice", "FTKMOB0000000001", 6, "gateway:reg-1");
	ftm_auth_verify_code(f->auth, &alice, hotp[2], AT(2), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_true(out.logged);
	assert_int_equal(out.logged_result, FTM_RES_OK);
	assert_non_null(strstr(f->logbuf, "token code for 'alice'"));
	ftm_auth_verify_code(f->auth, &alice, hotp[2], AT(2), &out);
	assert_true(out.logged);
	assert_int_equal(out.logged_result, FTM_RES_REPLAY);

	f->cfg.push.status = true;
	open_auth(f);
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &alice, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_true(out.logged);
	assert_int_equal(out.logged_result, FTM_RES_CHALLENGE);

	ftm_auth_second_factor(f->auth, &nobody, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_ERROR);
	assert_false(out.logged);
}

/* A PAM process: no engine, so the push goes to ftmpushd's socket; here nobody listens. */
static void unreachable_daemon_falls_back_to_a_challenge(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	ftm_auth_second_factor(f->auth, &alice, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_non_null(strstr(f->logbuf, "falling back to a code challenge"));
}

static void number_matching_state_goes_to_the_engine(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_CHALLENGE };
	ftm_outcome_t out, ans;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_second_factor(f->auth, &alice, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_string_equal(out.state, "engine-state-1");
	ftm_auth_challenge_answer(f->auth, &alice, out.state, "42", AT(7), &ans);
	assert_int_equal(p.answers, 1);
	assert_int_equal(ans.result, FTM_RES_OK);
	/* a State neither side issued */
	ftm_auth_challenge_answer(f->auth, &alice, "0123456789abcdef0123456789abcdef", "42", AT(7), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(p.answers, 1);
}

static void an_answer_equal_to_the_proven_password_is_not_a_guess(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, "s3cret-pw", AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_string_equal(ans.message, "Token code required: enter your password followed by the token code");
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 0);
	assert_int_equal(get_token(f, "FTKMOB0000000001").status, FTM_TOKEN_ACTIVE);
	/* the State was consumed all the same */
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(get_token(f, "FTKMOB0000000001").last_step, -1);
	assert_null(strstr(f->logbuf, "s3cret-pw"));
}

static void a_wrong_code_at_the_prompt_still_counts(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	/* close to the password is not the password */
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, "s3cret-pw ", AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 1);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_prompt_answer(f->auth, &alice, NULL, out.state, "s3cret-pw", AT(2), &ans);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 2);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
}

static void the_push_prompt_takes_enter_push_or_the_proven_password(void **state)
{
	(void)state;
	assert_true(ftm_auth_push_prompt_asks_push(NULL, ""));
	assert_true(ftm_auth_push_prompt_asks_push(NULL, " \t"));
	assert_true(ftm_auth_push_prompt_asks_push(NULL, "push"));
	assert_true(ftm_auth_push_prompt_asks_push(NULL, " PuSh "));
	assert_true(ftm_auth_push_prompt_asks_push("s3cret-pw", "s3cret-pw"));
	assert_false(ftm_auth_push_prompt_asks_push(NULL, "s3cret-pw"));
	assert_false(ftm_auth_push_prompt_asks_push("s3cret-pw", "s3cret-p"));
	assert_false(ftm_auth_push_prompt_asks_push(NULL, "123456"));
	assert_false(ftm_auth_push_prompt_asks_push(NULL, "pushy"));
	assert_false(ftm_auth_push_prompt_asks_push(NULL, "p ush"));
}

static void challenge_state_is_single_use(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, "000000", AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_string_equal(ans.message, "Invalid token code");
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 1);
	/* the state is gone: the right code no longer helps */
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(get_token(f, "FTKMOB0000000001").last_step, -1);
}

static void an_empty_answer_to_a_code_challenge_is_no_guess(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	f->cfg.lockout_threshold = 3;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	for (int i = 0; i < 5; i++) {	/* more than lockout_threshold */
		ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
		assert_int_equal(out.result, FTM_RES_CHALLENGE);
		ftm_auth_challenge_answer(f->auth, &alice, out.state, i % 2 ? " \t" : "", AT(2), &ans);
		assert_int_equal(ans.result, FTM_RES_FAIL);
		assert_string_equal(ans.message, FTM_MSG_CODE_REQUIRED);
		/* the State is spent all the same */
		ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[2], AT(2), &ans);
		assert_int_equal(ans.result, FTM_RES_FAIL);
	}
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 0);
	assert_int_equal(get_token(f, "FTKMOB0000000001").status, FTM_TOKEN_ACTIVE);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
}

static void challenge_state_is_bound_to_user_and_client(void **state)
{
	fixture_t *f = *state;
	const ftm_login_t mallory = { "mallory", "192.0.2.10", "vpn", "gw1" };
	const ftm_login_t elsewhere = { "alice", "198.51.100.7", "vpn", "gw1" };
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	add_token(f, "mallory", "FTKMOB0000000002", 6, NULL);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_challenge_answer(f->auth, &mallory, out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(get_token(f, "FTKMOB0000000002").last_step, -1);

	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_challenge_answer(f->auth, &elsewhere, out.state, hotp[2], AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_int_equal(get_token(f, "FTKMOB0000000001").last_step, -1);
}

static void challenge_state_expires(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out, ans;

	set_policy(f, "challenge_timeout", "60");
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[4], AT(2) + 60, &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	assert_non_null(strstr(ans.message, "expired"));
	/* just inside the lifetime it works */
	ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[4], AT(2) + 59, &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
}

static void challenge_states_are_unique(void **state)
{
	fixture_t *f = *state;
	static char seen[64][64];

	for (int i = 0; i < 64; i++) {
		ftm_outcome_t out;

		ftm_auth_challenge_code(f->auth, &alice, AT(2), &out);
		snprintf(seen[i], sizeof(seen[i]), "%s", out.state);
		for (int j = 0; j < i; j++)
			assert_string_not_equal(seen[i], seen[j]);
	}
}

static void malformed_state_is_rejected(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t ans;

	ftm_auth_challenge_answer(f->auth, &alice, "", "123456", AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
	ftm_auth_challenge_answer(f->auth, &alice, "zz", "123456", AT(2), &ans);
	assert_int_equal(ans.result, FTM_RES_FAIL);
}

struct worker {
	fixture_t	*f;
	int		ok;
	int		n;
};

static void *challenge_worker(void *arg)
{
	struct worker *w = arg;
	char user[32];

	for (int i = 0; i < w->n; i++) {
		ftm_outcome_t out, ans;
		ftm_login_t login = { user, "192.0.2.99", "vpn", "gw1" };

		snprintf(user, sizeof(user), "nobody%d", i % 3);
		ftm_auth_challenge_code(w->f->auth, &login, AT(2), &out);
		if (out.result != FTM_RES_CHALLENGE)
			continue;
		ftm_auth_challenge_answer(w->f->auth, &login, out.state, "123456", AT(2), &ans);
		/* users without a token: the state is valid, the verdict is "no token" */
		if (ans.result == FTM_RES_NO_TOKEN)
			w->ok++;
	}
	return NULL;
}

static void challenges_are_thread_safe(void **state)
{
	fixture_t *f = *state;
	pthread_t th[8];
	struct worker w[8];
	int total = 0;

	for (int i = 0; i < 8; i++) {
		w[i] = (struct worker){ f, 0, 40 };
		assert_int_equal(pthread_create(&th[i], NULL, challenge_worker, &w[i]), 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		total += w[i].ok;
	}
	assert_int_equal(total, 8 * 40);
}

static void logs_never_hold_codes_or_passwords(void **state)
{
	fixture_t *f = *state;
	ftm_outcome_t out;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	ftm_auth_split(f->auth, &alice, "Tr0ub4dor&3" "969429", AT(3), &sp);
	ftm_auth_verify_code(f->auth, &alice, sp.primary.code, AT(3), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	ftm_auth_verify_code(f->auth, &alice, "338315", AT(4), &out);
	ftm_auth_split(f->auth, &alice, "hunter2" "111111", AT(4), &sp);
	assert_non_null(strstr(f->logbuf, "alice"));
	assert_non_null(strstr(f->logbuf, "192.0.2.10"));
	assert_non_null(strstr(f->logbuf, "FTKMOB0000000001"));
	assert_null(strstr(f->logbuf, "969429"));
	assert_null(strstr(f->logbuf, "338315"));
	assert_null(strstr(f->logbuf, "111111"));
	assert_null(strstr(f->logbuf, "Tr0ub4dor"));
	assert_null(strstr(f->logbuf, "hunter2"));
	assert_null(strstr(f->logbuf, "3132333435"));
}

static void unopenable_store_fails_closed(void **state)
{
	fixture_t *f = *state;
	ftm_config_t cfg = f->cfg;
	char err[FTM_ERR_MAX] = "";

	snprintf(cfg.token_db, sizeof(cfg.token_db), "%s/no/such/dir/tokens.db", f->dir);
	assert_null(ftm_auth_new(&cfg, &f->log, err, sizeof(err)));
	assert_string_not_equal(err, "");
	cfg.token_db[0] = '\0';
	assert_null(ftm_auth_new(&cfg, &f->log, err, sizeof(err)));
}

static void result_names(void **state)
{
	(void)state;
	assert_string_equal(ftm_result_name(FTM_RES_OK), "ok");
	assert_string_equal(ftm_result_name(FTM_RES_REPLAY), "replay");
	assert_string_equal(ftm_result_name(FTM_RES_PUSH_FAILED), "push_failed");
	assert_string_equal(ftm_result_name(FTM_RES_ERROR), "error");
}

/* ---- the decisions the front ends no longer make ---- */

static void push_token_is_the_first_usable_one_with_a_target(void **state)
{
	fixture_t *f = *state;
	char err[FTM_ERR_MAX] = "";
	ftm_token_t t;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);				/* no target */
	add_token(f, "alice", "FTKMOB0000000002", 6, "ntfy:https://ntfy.example/a2");	/* locked below */
	add_token(f, "alice", "FTKMOB0000000003", 6, "ntfy:https://ntfy.example/a3");
	assert_int_equal(ftm_store_token_set_status(ftm_auth_store(f->auth), "FTKMOB0000000002", FTM_TOKEN_LOCKED,
						    err, sizeof(err)), 0);
	assert_int_equal(ftm_auth_push_token(f->auth, "alice", NULL, AT(1), &t, err, sizeof(err)), 1);
	assert_string_equal(t.serial, "FTKMOB0000000003");
	assert_int_equal(t.seed_len, 20);
	ftm_memzero(&t, sizeof(t));
	/* a named token only, and never a locked one */
	assert_int_equal(ftm_auth_push_token(f->auth, "alice", "FTKMOB0000000002", AT(1), &t, err, sizeof(err)), 0);
	assert_int_equal(ftm_auth_push_token(f->auth, "bob", NULL, AT(1), &t, err, sizeof(err)), 0);
}

static void push_token_skips_a_token_past_its_activation_window(void **state)
{
	fixture_t *f = *state;
	char err[FTM_ERR_MAX] = "";
	ftm_token_t t;

	set_policy(f, "activation_expire", "1");	/* minutes; the tokens are created at time 0 */
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/a1");
	assert_int_equal(ftm_auth_push_token(f->auth, "alice", NULL, 30, &t, err, sizeof(err)), 1);
	ftm_memzero(&t, sizeof(t));
	assert_int_equal(ftm_auth_push_token(f->auth, "alice", NULL, 61, &t, err, sizeof(err)), 0);
}

/* The token a push would go to; with a typed 6-digit code the split counts the user's tokens from its
 * peek's own read, and reports the same (token, push target, whether the code verifies) for a right
 * and a wrong code; a locked push token pushes no more. */
static void split_names_the_token_the_push_goes_to(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	add_token(f, "alice", "FTKMOB0000000002", 6, "ntfy:https://ntfy.example/a2");
	assert_int_equal(ftm_auth_split(f->auth, &alice, "secret", AT(1), &sp), 0);
	assert_true(sp.push_available);
	assert_string_equal(sp.push_serial, "FTKMOB0000000002");
	assert_false(sp.pass_without_token);

	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd287082", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_true(sp.primary.has_code);
	assert_false(sp.has_alt);
	assert_true(sp.push_available);
	assert_string_equal(sp.push_serial, "FTKMOB0000000002");
	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd000000", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_true(sp.has_alt);
	assert_true(sp.push_available);
	assert_int_equal(ftm_store_token_set_status(ftm_auth_store(f->auth), "FTKMOB0000000002",
						    FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd000000", AT(1), &sp), 0);
	assert_true(sp.has_token);
	assert_false(sp.push_available);
}

/* A front end that carries the split's proof (RADIUS): the split hands it out instead of keeping it,
 * the verdict given it re-checks it rather than the code's HMACs; one for another code is ignored, and
 * without it the verdict decides from the seeds. Without carrying, the core keeps it itself. */
static void a_carried_proof_goes_from_the_split_to_the_verdict(void **state)
{
	fixture_t *f = *state;
	char typed[64];
	ftm_outcome_t out;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd287082", AT(1), &sp), 0);
	assert_string_equal(sp.proof.serial, "");		/* kept by the core */
	ftm_auth_after_password(f->auth, &alice, sp.primary.code, AT(1), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_non_null(strstr(out.reason, "as the split's peek proved"));

	ftm_auth_set_proof_carried(f->auth, true);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "p@ssw0rd287082", AT(2), &sp), 0);
	assert_true(sp.primary.has_code);	/* the step's code was used above: a replay, no proof */
	assert_string_equal(sp.proof.serial, "");
	snprintf(typed, sizeof(typed), "p@ssw0rd%s", hotp[3]);
	assert_int_equal(ftm_auth_split(f->auth, &alice, typed, AT(3), &sp), 0);
	assert_string_equal(sp.proof.serial, "FTKMOB0000000001");
	ftm_auth_after_password_proved(f->auth, &alice, "000000", &sp.proof, AT(3), &out);
	assert_int_equal(out.result, FTM_RES_FAIL);	/* a proof of another code proves nothing */
	ftm_auth_after_password_proved(f->auth, &alice, sp.primary.code, &sp.proof, AT(3), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_non_null(strstr(out.reason, "as the split's peek proved"));
	snprintf(typed, sizeof(typed), "p@ssw0rd%s", hotp[4]);
	assert_int_equal(ftm_auth_split(f->auth, &alice, typed, AT(4), &sp), 0);
	ftm_auth_after_password_proved(f->auth, &alice, sp.primary.code, NULL, AT(4), &out);
	assert_int_equal(out.result, FTM_RES_OK);	/* no proof given, none kept: decided from the seed */
	assert_null(strstr(out.reason, "peek proved"));
}

static void split_says_when_the_password_alone_logs_in(void **state)
{
	fixture_t *f = *state;
	ftm_split_t sp;

	assert_int_equal(ftm_auth_split(f->auth, &alice, "secret", AT(1), &sp), 0);
	assert_false(sp.pass_without_token);		/* no_token = reject */
	f->cfg.no_token = FTM_NO_TOKEN_PASS;
	open_auth(f);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "secret", AT(1), &sp), 0);
	assert_true(sp.pass_without_token);
	assert_non_null(strstr(f->logbuf, "no token, no_token = pass"));
	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "secret", AT(1), &sp), 0);
	assert_false(sp.pass_without_token);
}

static void after_password_with_a_code_verifies_it_without_a_push(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_OK };
	ftm_outcome_t out;

	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "ntfy:https://ntfy.example/alice");
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	ftm_auth_after_password(f->auth, &alice, hotp[3], AT(3), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_int_equal(p.calls, 0);
	ftm_auth_after_password(f->auth, &alice, "", AT(4), &out);	/* password only: the push */
	assert_int_equal(out.result, FTM_RES_OK);
	assert_int_equal(p.calls, 1);
}

static void replacing_the_push_implementation_stops_the_old_one(void **state)
{
	fixture_t *f = *state;
	fake_push_t a = { .result = FTM_RES_OK }, b = { .result = FTM_RES_OK };

	ftm_auth_set_push_ops(f->auth, &fake_ops, &a);
	ftm_auth_set_push_ops(f->auth, &fake_ops, &b);
	assert_int_equal(a.stops, 1);
	assert_int_equal(b.stops, 0);
	ftm_auth_free(f->auth);
	f->auth = NULL;
	assert_int_equal(b.stops, 1);
	open_auth(f);
}

/* ---- what the metrics count: each request once, with the result its front end gets ---- */

static unsigned long long counted(const char *series)
{
	char *text = ftm_metrics_render(NULL);
	const char *at;
	unsigned long long n = 0;

	assert_non_null(text);
	at = strstr(text, series);
	assert_non_null(at);
	n = strtoull(at + strlen(series) + 1, NULL, 10);
	free(text);
	return n;
}

#define LOGINS(r) counted("ftmpush_logins_total{frontend=\"core\",result=\"" r "\"}")

static void each_request_is_counted_once_with_its_final_result(void **state)
{
	fixture_t *f = *state;
	fake_push_t p = { .result = FTM_RES_PUSH_FAILED };
	ftm_outcome_t out, ans;

	ftm_metrics_reset();
	ftm_metrics_set_frontend(NULL);
	f->cfg.push.status = true;
	open_auth(f);
	add_token(f, "alice", "FTKMOB0000000001", 6, "gateway:reg-1");
	ftm_auth_set_push_ops(f->auth, &fake_ops, &p);
	/* the push fails and falls back to a code challenge: one request, a challenge (not push_failed) */
	ftm_auth_after_password(f->auth, &alice, NULL, AT(7), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_int_equal(LOGINS("challenge"), 1);
	assert_int_equal(LOGINS("push_failed"), 0);
	/* its answer is the next request */
	ftm_auth_challenge_answer(f->auth, &alice, out.state, hotp[7], AT(7), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
	assert_int_equal(LOGINS("ok"), 1);
	/* a PAM prompt answered with the proven password: one failure, however it is reached */
	ftm_auth_challenge_code(f->auth, &alice, AT(8), &out);
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, "s3cret-pw", AT(8), &ans);
	assert_int_equal(LOGINS("fail"), 1);
	/* a prompt answered with a code goes through the challenge answer: still counted once */
	ftm_auth_challenge_code(f->auth, &alice, AT(8), &out);
	ftm_auth_prompt_answer(f->auth, &alice, "s3cret-pw", out.state, hotp[8], AT(8), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
	assert_int_equal(LOGINS("ok"), 2);
	/* password + code, then the same code again */
	ftm_auth_after_password(f->auth, &alice, hotp[9], AT(9), &out);
	ftm_auth_after_password(f->auth, &alice, hotp[9], AT(9), &out);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	assert_int_equal(LOGINS("ok"), 3);
	assert_int_equal(LOGINS("replay"), 1);
	/* four code verdicts took time: the challenge answer, the prompt's code and the two codes */
	assert_int_equal(counted("ftmpush_verdict_duration_seconds_count"), 4);
}

/* ---- recovery codes, where a token code goes ---- */

static void issue_codes(fixture_t *f, unsigned n, char codes[][FTM_RECOVERY_LEN + 1])
{
	char err[FTM_ERR_MAX] = "";

	assert_int_equal(ftm_store_recovery_issue(ftm_auth_store(f->auth), "alice", n, AT(1), codes, err,
						  sizeof(err)), 0);
}

static void split_takes_a_recovery_code_that_verifies_and_consumes_nothing(void **state)
{
	fixture_t *f = *state;
	char codes[2][FTM_RECOVERY_LEN + 1], typed[64];
	ftm_outcome_t out;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	issue_codes(f, 2, codes);
	snprintf(typed, sizeof(typed), "winter2024%s", codes[1]);
	assert_int_equal(ftm_auth_split(f->auth, &alice, typed, AT(1), &sp), 0);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "winter2024");
	assert_string_equal(sp.primary.code, codes[1]);
	assert_false(sp.has_alt);
	ftm_auth_after_password(f->auth, &alice, sp.primary.code, AT(1), &out);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(out.message, "Recovery code accepted: 1 left");
	assert_non_null(strstr(f->logbuf, "recovery code for 'alice' from 192.0.2.10: ok"));
	assert_null(strstr(f->logbuf, codes[1]));	/* never in the log */
	ftm_auth_after_password(f->auth, &alice, sp.primary.code, AT(1), &out);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	assert_string_equal(out.message, FTM_MSG_RECOVERY_USED);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 0);
}

/* "my-hello-world" ends in a recovery code's shape: unless it is one of the user's codes, the whole
 * input stays the password's alternative, as with trailing digits. */
static void split_a_password_shaped_like_a_recovery_code_keeps_the_whole_input(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1];
	ftm_outcome_t out;
	ftm_split_t sp;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	issue_codes(f, 1, codes);
	assert_int_equal(ftm_auth_split(f->auth, &alice, "my-hello-world", AT(1), &sp), 0);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "my-");
	assert_true(sp.has_alt);
	assert_string_equal(sp.alt_password, "my-hello-world");
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 0);
	/* once the password part is proven, a wrong recovery code counts like a wrong code */
	ftm_auth_after_password(f->auth, &alice, sp.primary.code, AT(1), &out);
	assert_int_equal(out.result, FTM_RES_FAIL);
	assert_string_equal(out.message, FTM_MSG_RECOVERY_BAD);
	assert_int_equal(get_token(f, "FTKMOB0000000001").failures, 1);
}

static void a_recovery_code_answers_a_code_challenge(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1];
	ftm_outcome_t out, ans;

	add_token(f, "alice", "FTKMOB0000000001", 6, NULL);
	issue_codes(f, 1, codes);
	ftm_auth_second_factor(f->auth, &alice, AT(6), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(f->auth, &alice, out.state, codes[0], AT(6), &ans);
	assert_int_equal(ans.result, FTM_RES_OK);
	assert_string_equal(ans.message, "Recovery code accepted: 0 left. Ask your administrator for new codes");
	assert_non_null(strstr(f->logbuf, "used the last recovery code"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(split_user_without_token_keeps_the_whole_input),
		T(split_code_that_verifies_is_taken_and_not_consumed),
		T(split_digits_that_do_not_verify_offer_the_whole_input),
		T(a_carried_proof_goes_from_the_split_to_the_verdict),
		T(split_takes_a_recovery_code_that_verifies_and_consumes_nothing),
		T(split_a_password_shaped_like_a_recovery_code_keeps_the_whole_input),
		T(a_recovery_code_answers_a_code_challenge),
		T(split_without_trailing_code_is_password_only),
		T(split_refuses_overlong_input),
		T(log_accepts_no_keeps_accepts_out_of_the_normal_log),
		T(split_reads_eight_digit_codes),
		T(split_tries_each_code_length_the_user_holds),
		T(split_push_available_needs_status_and_target),
		T(verify_valid_code_then_replay),
		T(an_outcome_says_whether_the_core_logged_it),
		T(verify_wrong_code_counts_and_locks_at_the_threshold),
		T(verify_success_resets_failures),
		T(verify_expired_never_used_token),
		T(verify_user_without_token),
		T(second_factor_without_push_issues_a_code_challenge),
		T(second_factor_without_push_or_challenge_fails),
		T(second_factor_no_token_and_locked),
		T(second_factor_pushes_through_the_engine),
		T(push_failure_falls_back_to_a_challenge),
		T(each_outcome_leaves_one_audit_row_with_front_end_and_node),
		T(a_debug_switch_raises_the_trace_of_its_user_only),
		T(unreachable_daemon_falls_back_to_a_challenge),
		T(number_matching_state_goes_to_the_engine),
		T(an_answer_equal_to_the_proven_password_is_not_a_guess),
		T(a_wrong_code_at_the_prompt_still_counts),
		cmocka_unit_test(the_push_prompt_takes_enter_push_or_the_proven_password),
		T(challenge_state_is_single_use),
		T(an_empty_answer_to_a_code_challenge_is_no_guess),
		T(challenge_state_is_bound_to_user_and_client),
		T(challenge_state_expires),
		T(challenge_states_are_unique),
		T(malformed_state_is_rejected),
		T(challenges_are_thread_safe),
		T(logs_never_hold_codes_or_passwords),
		T(unopenable_store_fails_closed),
		T(push_token_is_the_first_usable_one_with_a_target),
		T(push_token_skips_a_token_past_its_activation_window),
		T(split_names_the_token_the_push_goes_to),
		T(split_says_when_the_password_alone_logs_in),
		T(after_password_with_a_code_verifies_it_without_a_push),
		T(replacing_the_push_implementation_stops_the_old_one),
		T(each_request_is_counted_once_with_its_final_result),
		cmocka_unit_test(result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* store_activation_spec: activation links in the token store (issue, open, confirm, revoke), one
 * specification for both backends (test_activation.c on SQLite, test_store_pg.c on PostgreSQL). The
 * including file includes store_fixture.h (the RFC 6238 token and codes) and gives each case a store
 * set up by act_spec_setup: alice's token S1 created a minute before T1, a link for it in `code`. The
 * two-handle cases get a second handle on the same store (a second process on one file, or a second
 * node on one database) and issue their own link. */
#ifndef STORE_ACTIVATION_SPEC_H
#define STORE_ACTIVATION_SPEC_H

#include <pthread.h>

#define ACT_EXPIRE	60		/* minutes of activation window in these cases */

static ftm_verify_params_t act_params(void)
{
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .activation_expire = ACT_EXPIRE, .consume = true };
	return p;
}

/* alice's RFC token S1 (created a minute before T1) and a link for it in code: 0, or -1 with the reason
 * on stderr */
static int act_spec_setup(ftm_store_t *st, char code[FTM_ACTIVATION_CODE_LEN + 1])
{
	ftm_token_t t;
	char err[256];

	if (fixture_rfc_token(&t, "alice", "S1") != 0)
		return -1;
	if (ftm_store_token_add(st, &t, err, sizeof(err)) != 0 ||
	    ftm_store_activation_issue(st, "S1", "alice@example.org", T1 - 50, ACT_EXPIRE, code,
				       FTM_ACTIVATION_CODE_LEN + 1, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static ftm_activation_code_t act_open(ftm_store_t *st, const char *code, time_t now, ftm_token_t *tok)
{
	ftm_activation_t a;
	ftm_token_t scratch;

	assert_int_equal(ftm_store_activation_open(st, code, now, ACT_EXPIRE, &a, tok ? tok : &scratch), 0);
	ftm_memzero(&scratch, sizeof(scratch));
	return a.code;
}

static ftm_activation_t act_confirm(ftm_store_t *st, const char *code, const char *otp, time_t now)
{
	ftm_verify_params_t p = act_params();
	ftm_activation_t a;

	assert_int_equal(ftm_store_activation_confirm(st, code, otp, now, &p, &a), 0);
	return a;
}

static ftm_token_t act_get(ftm_store_t *st, const char *serial)
{
	ftm_token_t t;

	assert_int_equal(ftm_store_token_get(st, serial, &t, NULL, 0), 0);
	return t;
}

/* ---- issue ---- */

static void spec_act_a_new_link_replaces_the_old_one(ftm_store_t *st, const char *code)
{
	char code2[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_activation_t a;

	assert_int_equal(ftm_store_activation_issue(st, "S1", "", T1 - 40, ACT_EXPIRE, code2, sizeof(code2), NULL,
						    NULL, 0), 0);
	assert_string_not_equal(code2, code);
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(act_open(st, code2, T1, NULL), FTM_ACT_OK);
	assert_int_equal(ftm_store_activation_get(st, "S1", &a, NULL, 0), 0);
	assert_string_equal(a.email, "");
}

static void spec_act_the_link_expires_with_the_tokens_activation_window(ftm_store_t *st, const char *code)
{
	ftm_activation_t a;
	char err[256];

	assert_int_equal(ftm_store_activation_get(st, "S1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.expires, T1 - 60 + ACT_EXPIRE * 60);
	assert_string_equal(a.email, "alice@example.org");
	assert_int_equal(act_open(st, code, a.expires - 1, NULL), FTM_ACT_OK);
	assert_int_equal(act_open(st, code, a.expires, NULL), FTM_ACT_EXPIRED);
	assert_int_equal(act_confirm(st, code, C1, a.expires + 30).code, FTM_ACT_EXPIRED);
}

static void spec_act_no_link_for_a_used_unassigned_or_unknown_token(ftm_store_t *st, const char *code)
{
	ftm_verify_params_t p = act_params();
	ftm_verdict_t v;
	char fresh[FTM_ACTIVATION_CODE_LEN + 1], err[256];

	assert_int_equal(ftm_store_activation_issue(st, "NOPE", "", T1, ACT_EXPIRE, fresh, sizeof(fresh), NULL,
						    err, sizeof(err)), 1);
	assert_int_equal(ftm_store_token_set_user(st, "S1", "", NULL, 0), 0);	/* a hard token in stock */
	assert_int_equal(ftm_store_activation_issue(st, "S1", "", T1, ACT_EXPIRE, fresh, sizeof(fresh), NULL,
						    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "token assign"));
	assert_int_equal(ftm_store_token_set_user(st, "S1", "alice", NULL, 0), 0);
	assert_int_equal(ftm_store_verify_code(st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(ftm_store_activation_issue(st, "S1", "", T1, ACT_EXPIRE, fresh, sizeof(fresh), NULL,
						    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reissue"));
}

/* ---- open ---- */

static void spec_act_opening_a_valid_link_gives_the_seed_and_changes_nothing(ftm_store_t *st, const char *code)
{
	ftm_token_t tok;

	assert_int_equal(act_open(st, code, T1, &tok), FTM_ACT_OK);
	assert_string_equal(tok.serial, "S1");
	assert_string_equal(tok.user, "alice");
	assert_int_equal(tok.seed_len, 20);
	assert_memory_equal(tok.seed, "12345678901234567890", 20);
	ftm_memzero(&tok, sizeof(tok));
	assert_int_equal(act_open(st, code, T1, &tok), FTM_ACT_OK);
	ftm_memzero(&tok, sizeof(tok));
	assert_int_equal(act_get(st, "S1").last_step, -1);
}

static void spec_act_unknown_and_malformed_links_are_unknown_and_show_no_seed(ftm_store_t *st, const char *code)
{
	char other[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_token_t tok;

	memcpy(other, code, sizeof(other));
	other[0] = other[0] == 'A' ? 'B' : 'A';
	assert_int_equal(act_open(st, other, T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(tok.seed_len, 0);
	assert_int_equal(act_open(st, "", T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(act_open(st, "../../etc/passwd", T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(act_confirm(st, other, C1, T1).code, FTM_ACT_UNKNOWN);
	assert_int_equal(act_get(st, "S1").last_step, -1);
}

/* ---- confirm ---- */

static void spec_act_a_right_code_activates_the_token_like_a_login(ftm_store_t *st, const char *code)
{
	ftm_verify_params_t p = act_params();
	ftm_activation_t a = act_confirm(st, code, C1, T1);
	ftm_verdict_t v;
	ftm_token_t tok;

	assert_int_equal(a.code, FTM_ACT_OK);
	assert_string_equal(a.serial, "S1");
	assert_int_equal(act_get(st, "S1").last_step, 37037036);
	/* the step is consumed: the same code at a login is a replay, the next one is accepted */
	assert_int_equal(ftm_store_verify_code(st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(ftm_store_verify_code(st, "alice", C2, T2, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	/* from now on the link shows nothing */
	assert_int_equal(act_open(st, code, T2, &tok), FTM_ACT_USED);
	assert_int_equal(tok.seed_len, 0);
	assert_int_equal(act_confirm(st, code, C2, T2).code, FTM_ACT_USED);
}

static void spec_act_a_wrong_code_counts_on_the_link_only(ftm_store_t *st, const char *code)
{
	ftm_activation_t a;

	for (unsigned i = 1; i < FTM_ACTIVATION_TRIES; i++) {
		a = act_confirm(st, code, BAD, T1);
		assert_int_equal(a.code, FTM_ACT_BAD_CODE);
		assert_int_equal(a.tries_left, FTM_ACTIVATION_TRIES - i);
	}
	assert_int_equal(act_get(st, "S1").failures, 0);
	assert_int_equal(act_get(st, "S1").status, FTM_TOKEN_ACTIVE);
	a = act_confirm(st, code, BAD, T1);
	assert_int_equal(a.code, FTM_ACT_EXHAUSTED);
	/* dead: even the right code does not activate through it, and the page shows nothing */
	assert_int_equal(act_confirm(st, code, C1, T1).code, FTM_ACT_EXHAUSTED);
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_EXHAUSTED);
	assert_int_equal(act_get(st, "S1").last_step, -1);
	assert_int_equal(act_get(st, "S1").failures, 0);
}

static void spec_act_malformed_codes_are_wrong_codes(ftm_store_t *st, const char *code)
{

	assert_int_equal(act_confirm(st, code, "", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(act_confirm(st, code, "0708180", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(act_confirm(st, code, "070818040", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(act_get(st, "S1").last_step, -1);
}

static void spec_act_a_token_used_at_a_login_first_uses_the_link_up(ftm_store_t *st, const char *code)
{
	ftm_verify_params_t p = act_params();
	ftm_verdict_t v;

	assert_int_equal(ftm_store_verify_code(st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_USED);
	assert_int_equal(act_confirm(st, code, C2, T2).code, FTM_ACT_USED);
}

static void spec_act_a_locked_token_is_not_activated(ftm_store_t *st, const char *code)
{

	assert_int_equal(ftm_store_token_set_status(st, "S1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_LOCKED);
	assert_int_equal(act_confirm(st, code, C1, T1).code, FTM_ACT_LOCKED);
	assert_int_equal(act_get(st, "S1").last_step, -1);
}

static void spec_act_a_lock_by_failures_past_lockout_duration_no_longer_blocks_the_link(ftm_store_t *st, const char *code)
{
	ftm_verify_params_t p = act_params();
	ftm_activation_t a;
	ftm_verdict_t v;

	p.lockout_threshold = 1;
	p.lockout_duration = 1;	/* minute */
	assert_int_equal(ftm_store_verify_code(st, "alice", BAD, T1 - 120, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_int_equal(act_confirm(st, code, C1, T1).code, FTM_ACT_LOCKED);	/* lockout_duration 0 here */
	assert_int_equal(ftm_store_activation_confirm(st, code, C1, T1, &p, &a), 0);
	assert_int_equal(a.code, FTM_ACT_OK);
	assert_int_equal(act_get(st, "S1").status, FTM_TOKEN_ACTIVE);
	assert_int_equal(act_get(st, "S1").failures, 0);
}

/* ---- revoke ---- */

static void spec_act_reissue_revokes_the_old_links(ftm_store_t *st, const char *code)
{
	ftm_token_t t = act_get(st, "S1");

	assert_int_equal(ftm_store_token_reissue(st, &t, NULL, 0), 0);
	ftm_memzero(&t, sizeof(t));
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(act_confirm(st, code, C1, T1).code, FTM_ACT_UNKNOWN);
	assert_int_equal(ftm_store_activation_get(st, "S1", &(ftm_activation_t){ 0 }, NULL, 0), 1);
}

static void spec_act_delete_revokes_the_links(ftm_store_t *st, const char *code)
{

	assert_int_equal(ftm_store_token_delete(st, "S1", NULL, 0), 0);
	assert_int_equal(act_open(st, code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(act_confirm(st, code, C1, T1).code, FTM_ACT_UNKNOWN);
}

/* ---- two handles on one store (store_fixture.h's FIXTURE_TWO_HANDLES) ---- */

/* A new link for S1 (the setup's dies), issued through st. */
static void act_issue(ftm_store_t *st, char code[FTM_ACTIVATION_CODE_LEN + 1])
{
	char err[256];

	assert_int_equal(ftm_store_activation_issue(st, "S1", "alice@example.org", T1 - 50, ACT_EXPIRE, code,
						    FTM_ACTIVATION_CODE_LEN + 1, NULL, err, sizeof(err)), 0);
}

/* A link made through one handle (ftmpushctl on one node) is opened and redeemed through another (the
 * activation page of another node), and the first handle sees it used. */
static void spec_a_link_made_on_one_node_is_redeemed_on_another(ftm_store_t *a, ftm_store_t *b)
{
	ftm_verify_params_t p = act_params();
	char code[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_activation_t got;
	ftm_verdict_t v;
	ftm_token_t tok;

	act_issue(a, code);
	assert_int_equal(act_open(b, code, T1, &tok), FTM_ACT_OK);
	assert_memory_equal(tok.seed, "12345678901234567890", 20);
	ftm_memzero(&tok, sizeof(tok));
	assert_int_equal(act_confirm(b, code, C1, T1).code, FTM_ACT_OK);
	assert_int_equal(act_get(a, "S1").last_step, 37037036);
	assert_int_equal(act_open(a, code, T1, NULL), FTM_ACT_USED);
	assert_int_equal(act_confirm(a, code, C2, T2).code, FTM_ACT_USED);
	assert_int_equal(ftm_store_activation_get(a, "S1", &got, NULL, 0), 0);
	assert_int_equal(got.code, FTM_ACT_USED);
	assert_int_equal(ftm_store_verify_code(a, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
}

struct act_racer {
	ftm_store_t		*st;
	const char		*code, *otp;
	pthread_barrier_t	*go;
	ftm_activation_code_t	got;
};

static void *act_race(void *arg)
{
	struct act_racer *r = arg;
	ftm_verify_params_t p = act_params();
	ftm_activation_t a;

	pthread_barrier_wait(r->go);
	r->got = ftm_store_activation_confirm(r->st, r->code, r->otp, T1, &p, &a) == 0 ? a.code : FTM_ACT_ERROR;
	return NULL;
}

/* Both handles confirm codes on one link at once, twice per handle; returns the outcomes in got[4]. */
static void act_race_four(ftm_store_t *a, ftm_store_t *b, const char *code, const char *otp,
			  ftm_activation_code_t got[4])
{
	pthread_barrier_t go;
	pthread_t th[4];
	struct act_racer r[4];

	pthread_barrier_init(&go, NULL, 4);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct act_racer){ .st = i % 2 ? b : a, .code = code, .otp = otp, .go = &go };
		assert_int_equal(pthread_create(&th[i], NULL, act_race, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		got[i] = r[i].got;
	}
	pthread_barrier_destroy(&go);
}

/* The right code raced on two handles: one winner every round, the others read the link used (a new
 * round: the token re-issued with its seed, which kills the old link, and a new link). */
static void spec_one_link_redeemed_at_once_on_two_nodes_has_one_winner(ftm_store_t *a, ftm_store_t *b)
{
	char code[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_activation_code_t got[4];

	for (int round = 0; round < 10; round++) {
		int ok = 0, used = 0;

		if (round > 0) {
			ftm_token_t t = act_get(a, "S1");

			assert_int_equal(ftm_store_token_reissue(a, &t, NULL, 0), 0);
			ftm_memzero(&t, sizeof(t));
		}
		act_issue(round % 2 ? a : b, code);
		act_race_four(a, b, code, C1, got);
		for (int i = 0; i < 4; i++) {
			ok += got[i] == FTM_ACT_OK;
			used += got[i] == FTM_ACT_USED;
		}
		assert_int_equal(ok, 1);
		assert_int_equal(used, 3);
		assert_int_equal(act_get(b, "S1").last_step, 37037036);
	}
}

/* Wrong codes typed at once on two handles all count on the link: none is lost. */
static void spec_wrong_codes_at_once_on_two_nodes_all_count(ftm_store_t *a, ftm_store_t *b)
{
	char code[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_activation_code_t got[4];
	ftm_activation_t link;

	act_issue(a, code);
	act_race_four(a, b, code, BAD, got);
	for (int i = 0; i < 4; i++)
		assert_int_equal(got[i], FTM_ACT_BAD_CODE);
	assert_int_equal(ftm_store_activation_get(b, "S1", &link, NULL, 0), 0);
	assert_int_equal(link.tries_left, FTM_ACTIVATION_TRIES - 4);
	assert_int_equal(act_confirm(a, code, BAD, T1).code, FTM_ACT_EXHAUSTED);
	assert_int_equal(act_confirm(b, code, C1, T1).code, FTM_ACT_EXHAUSTED);
}

/* A cmocka case `name` running spec_act_NAME(f->st, f->code) on a fixture_t with the store in st and
 * act_spec_setup's link in code. */
#define ACT_ONE(name)										\
static void name(void **state)									\
{												\
	fixture_t *f = *state;									\
												\
	spec_act_##name(f->st, f->code);							\
}

/* The cases, for the including file to wrap (X: one store, ACT_ONE; X2: two handles on it,
 * FIXTURE_TWO_HANDLES). */
#define ACT_SPEC_CASES(X) \
	X(a_new_link_replaces_the_old_one) \
	X(the_link_expires_with_the_tokens_activation_window) \
	X(no_link_for_a_used_unassigned_or_unknown_token) \
	X(opening_a_valid_link_gives_the_seed_and_changes_nothing) \
	X(unknown_and_malformed_links_are_unknown_and_show_no_seed) \
	X(a_right_code_activates_the_token_like_a_login) \
	X(a_wrong_code_counts_on_the_link_only) \
	X(malformed_codes_are_wrong_codes) \
	X(a_token_used_at_a_login_first_uses_the_link_up) \
	X(a_locked_token_is_not_activated) \
	X(a_lock_by_failures_past_lockout_duration_no_longer_blocks_the_link) \
	X(reissue_revokes_the_old_links) \
	X(delete_revokes_the_links)
#define ACT_SPEC_CASES2(X2) \
	X2(a_link_made_on_one_node_is_redeemed_on_another) \
	X2(one_link_redeemed_at_once_on_two_nodes_has_one_winner) \
	X2(wrong_codes_at_once_on_two_nodes_all_count)

#endif

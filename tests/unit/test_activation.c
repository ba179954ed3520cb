/* test_activation: activation links in the token store (issue, open, confirm, revoke), as a specification.
 * Codes are RFC 6238 appendix B values (SHA1 seed "12345678901234567890", 30 s, 8 digits). */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ftm_store.h"

#define SEED_HEX	"3132333435363738393031323334353637383930"
#define T1		1111111109LL	/* step 37037036 */
#define C1		"07081804"
#define T2		1111111111LL	/* step 37037037 */
#define C2		"14050471"
#define BAD		"00000000"
#define EXPIRE		60		/* minutes of activation window in these tests */

typedef struct fixture {
	char		dir[64];
	char		db[128];
	ftm_store_t	*st;
	char		code[FTM_ACTIVATION_CODE_LEN + 1];
} fixture_t;

static ftm_verify_params_t params(void)
{
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .activation_expire = EXPIRE, .consume = true };
	return p;
}

/* A store with alice's RFC token S1 (created a minute before T1) and a link for it in f->code. */
static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	ftm_token_t t;
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/ftm-test-act.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/tokens.db", f->dir);
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	if (f->st == NULL || ftm_token_init(&t, "alice", "S1", SEED_HEX, err, sizeof(err)) != 0)
		return -1;
	t.digits = 8;
	t.period = 30;
	t.created = T1 - 60;
	if (ftm_store_token_add(f->st, &t, err, sizeof(err)) != 0 ||
	    ftm_store_activation_issue(f->st, "S1", "alice@example.org", T1 - 50, EXPIRE, f->code, sizeof(f->code),
				       NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;
	DIR *d;
	struct dirent *e;
	char path[512];

	ftm_store_close(f->st);
	d = opendir(f->dir);
	while (d && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	free(f);
	return 0;
}

static ftm_activation_code_t open_link(fixture_t *f, const char *code, time_t now, ftm_token_t *tok)
{
	ftm_activation_t a;
	ftm_token_t scratch;

	assert_int_equal(ftm_store_activation_open(f->st, code, now, EXPIRE, &a, tok ? tok : &scratch), 0);
	ftm_memzero(&scratch, sizeof(scratch));
	return a.code;
}

static ftm_activation_t confirm(fixture_t *f, const char *code, const char *otp, time_t now)
{
	ftm_verify_params_t p = params();
	ftm_activation_t a;

	assert_int_equal(ftm_store_activation_confirm(f->st, code, otp, now, &p, &a), 0);
	return a;
}

static ftm_token_t get(fixture_t *f, const char *serial)
{
	ftm_token_t t;

	assert_int_equal(ftm_store_token_get(f->st, serial, &t, NULL, 0), 0);
	return t;
}

static bool file_contains(const char *path, const void *needle, size_t n)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t len;
	bool found = false;

	assert_non_null(fp);
	buf = malloc(1 << 22);
	len = fread(buf, 1, 1 << 22, fp);
	fclose(fp);
	for (size_t i = 0; i + n <= len && !found; i++)
		found = memcmp(buf + i, needle, n) == 0;
	free(buf);
	return found;
}

/* ---- issue ---- */

static void a_code_is_192_random_bits_in_base64url_stored_only_as_a_hash(void **state)
{
	fixture_t *f = *state;
	char path[256];

	assert_int_equal(strlen(f->code), FTM_ACTIVATION_CODE_LEN);
	assert_int_equal(strspn(f->code, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 FTM_ACTIVATION_CODE_LEN);
	assert_false(file_contains(f->db, f->code, strlen(f->code)));
	snprintf(path, sizeof(path), "%s-wal", f->db);
	if (access(path, F_OK) == 0)
		assert_false(file_contains(path, f->code, strlen(f->code)));
}

static void a_new_link_replaces_the_old_one(void **state)
{
	fixture_t *f = *state;
	char code2[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_activation_t a;

	assert_int_equal(ftm_store_activation_issue(f->st, "S1", "", T1 - 40, EXPIRE, code2, sizeof(code2), NULL,
						    NULL, 0), 0);
	assert_string_not_equal(code2, f->code);
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(open_link(f, code2, T1, NULL), FTM_ACT_OK);
	assert_int_equal(ftm_store_activation_get(f->st, "S1", &a, NULL, 0), 0);
	assert_string_equal(a.email, "");
}

static void the_link_expires_with_the_tokens_activation_window(void **state)
{
	fixture_t *f = *state;
	ftm_activation_t a;
	char err[256];

	assert_int_equal(ftm_store_activation_get(f->st, "S1", &a, err, sizeof(err)), 0);
	assert_int_equal(a.expires, T1 - 60 + EXPIRE * 60);
	assert_string_equal(a.email, "alice@example.org");
	assert_int_equal(open_link(f, f->code, a.expires - 1, NULL), FTM_ACT_OK);
	assert_int_equal(open_link(f, f->code, a.expires, NULL), FTM_ACT_EXPIRED);
	assert_int_equal(confirm(f, f->code, C1, a.expires + 30).code, FTM_ACT_EXPIRED);
}

static void no_link_for_a_used_unassigned_or_unknown_token(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params();
	ftm_verdict_t v;
	char code[FTM_ACTIVATION_CODE_LEN + 1], err[256];

	assert_int_equal(ftm_store_activation_issue(f->st, "NOPE", "", T1, EXPIRE, code, sizeof(code), NULL,
						    err, sizeof(err)), 1);
	assert_int_equal(ftm_store_token_set_user(f->st, "S1", "", NULL, 0), 0);	/* a hard token in stock */
	assert_int_equal(ftm_store_activation_issue(f->st, "S1", "", T1, EXPIRE, code, sizeof(code), NULL,
						    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "token assign"));
	assert_int_equal(ftm_store_token_set_user(f->st, "S1", "alice", NULL, 0), 0);
	assert_int_equal(ftm_store_verify_code(f->st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(ftm_store_activation_issue(f->st, "S1", "", T1, EXPIRE, code, sizeof(code), NULL,
						    err, sizeof(err)), -1);
	assert_non_null(strstr(err, "reissue"));
}

/* ---- open ---- */

static void opening_a_valid_link_gives_the_seed_and_changes_nothing(void **state)
{
	fixture_t *f = *state;
	ftm_token_t tok;

	assert_int_equal(open_link(f, f->code, T1, &tok), FTM_ACT_OK);
	assert_string_equal(tok.serial, "S1");
	assert_string_equal(tok.user, "alice");
	assert_int_equal(tok.seed_len, 20);
	assert_memory_equal(tok.seed, "12345678901234567890", 20);
	ftm_memzero(&tok, sizeof(tok));
	assert_int_equal(open_link(f, f->code, T1, &tok), FTM_ACT_OK);
	ftm_memzero(&tok, sizeof(tok));
	assert_int_equal(get(f, "S1").last_step, -1);
}

static void unknown_and_malformed_links_are_unknown_and_show_no_seed(void **state)
{
	fixture_t *f = *state;
	char other[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_token_t tok;

	memcpy(other, f->code, sizeof(other));
	other[0] = other[0] == 'A' ? 'B' : 'A';
	assert_int_equal(open_link(f, other, T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(tok.seed_len, 0);
	assert_int_equal(open_link(f, "", T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(open_link(f, "../../etc/passwd", T1, &tok), FTM_ACT_UNKNOWN);
	assert_int_equal(confirm(f, other, C1, T1).code, FTM_ACT_UNKNOWN);
	assert_int_equal(get(f, "S1").last_step, -1);
}

/* ---- confirm ---- */

static void a_right_code_activates_the_token_like_a_login(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params();
	ftm_activation_t a = confirm(f, f->code, C1, T1);
	ftm_verdict_t v;
	ftm_token_t tok;

	assert_int_equal(a.code, FTM_ACT_OK);
	assert_string_equal(a.serial, "S1");
	assert_int_equal(get(f, "S1").last_step, 37037036);
	/* the step is consumed: the same code at a login is a replay, the next one is accepted */
	assert_int_equal(ftm_store_verify_code(f->st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(ftm_store_verify_code(f->st, "alice", C2, T2, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	/* from now on the link shows nothing */
	assert_int_equal(open_link(f, f->code, T2, &tok), FTM_ACT_USED);
	assert_int_equal(tok.seed_len, 0);
	assert_int_equal(confirm(f, f->code, C2, T2).code, FTM_ACT_USED);
}

static void a_wrong_code_counts_on_the_link_only(void **state)
{
	fixture_t *f = *state;
	ftm_activation_t a;

	for (unsigned i = 1; i < FTM_ACTIVATION_TRIES; i++) {
		a = confirm(f, f->code, BAD, T1);
		assert_int_equal(a.code, FTM_ACT_BAD_CODE);
		assert_int_equal(a.tries_left, FTM_ACTIVATION_TRIES - i);
	}
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	a = confirm(f, f->code, BAD, T1);
	assert_int_equal(a.code, FTM_ACT_EXHAUSTED);
	/* dead: even the right code does not activate through it, and the page shows nothing */
	assert_int_equal(confirm(f, f->code, C1, T1).code, FTM_ACT_EXHAUSTED);
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_EXHAUSTED);
	assert_int_equal(get(f, "S1").last_step, -1);
	assert_int_equal(get(f, "S1").failures, 0);
}

static void malformed_codes_are_wrong_codes(void **state)
{
	fixture_t *f = *state;

	assert_int_equal(confirm(f, f->code, "", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(confirm(f, f->code, "0708180", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(confirm(f, f->code, "070818040", T1).code, FTM_ACT_BAD_CODE);
	assert_int_equal(get(f, "S1").last_step, -1);
}

static void a_token_used_at_a_login_first_uses_the_link_up(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params();
	ftm_verdict_t v;

	assert_int_equal(ftm_store_verify_code(f->st, "alice", C1, T1, &p, &v), 0);
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_USED);
	assert_int_equal(confirm(f, f->code, C2, T2).code, FTM_ACT_USED);
}

static void a_locked_token_is_not_activated(void **state)
{
	fixture_t *f = *state;

	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_LOCKED);
	assert_int_equal(confirm(f, f->code, C1, T1).code, FTM_ACT_LOCKED);
	assert_int_equal(get(f, "S1").last_step, -1);
}

static void a_lock_by_failures_past_lockout_duration_no_longer_blocks_the_link(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params();
	ftm_activation_t a;
	ftm_verdict_t v;

	p.lockout_threshold = 1;
	p.lockout_duration = 1;	/* minute */
	assert_int_equal(ftm_store_verify_code(f->st, "alice", BAD, T1 - 120, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_int_equal(confirm(f, f->code, C1, T1).code, FTM_ACT_LOCKED);	/* lockout_duration 0 here */
	assert_int_equal(ftm_store_activation_confirm(f->st, f->code, C1, T1, &p, &a), 0);
	assert_int_equal(a.code, FTM_ACT_OK);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	assert_int_equal(get(f, "S1").failures, 0);
}

/* ---- revoke ---- */

static void reissue_revokes_the_old_links(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t = get(f, "S1");

	assert_int_equal(ftm_store_token_reissue(f->st, &t, NULL, 0), 0);
	ftm_memzero(&t, sizeof(t));
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(confirm(f, f->code, C1, T1).code, FTM_ACT_UNKNOWN);
	assert_int_equal(ftm_store_activation_get(f->st, "S1", &(ftm_activation_t){ 0 }, NULL, 0), 1);
}

static void delete_revokes_the_links(void **state)
{
	fixture_t *f = *state;

	assert_int_equal(ftm_store_token_delete(f->st, "S1", NULL, 0), 0);
	assert_int_equal(open_link(f, f->code, T1, NULL), FTM_ACT_UNKNOWN);
	assert_int_equal(confirm(f, f->code, C1, T1).code, FTM_ACT_UNKNOWN);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(a_code_is_192_random_bits_in_base64url_stored_only_as_a_hash),
		T(a_new_link_replaces_the_old_one),
		T(the_link_expires_with_the_tokens_activation_window),
		T(no_link_for_a_used_unassigned_or_unknown_token),
		T(opening_a_valid_link_gives_the_seed_and_changes_nothing),
		T(unknown_and_malformed_links_are_unknown_and_show_no_seed),
		T(a_right_code_activates_the_token_like_a_login),
		T(a_wrong_code_counts_on_the_link_only),
		T(malformed_codes_are_wrong_codes),
		T(a_token_used_at_a_login_first_uses_the_link_up),
		T(a_locked_token_is_not_activated),
		T(a_lock_by_failures_past_lockout_duration_no_longer_blocks_the_link),
		T(reissue_revokes_the_old_links),
		T(delete_revokes_the_links),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

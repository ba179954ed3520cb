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
#include "store_fixture.h"

typedef struct fixture {
	char		dir[64];
	char		db[128];
	ftm_store_t	*st;
	char		code[FTM_ACTIVATION_CODE_LEN + 1];
} fixture_t;

#include "store_activation_spec.h"

/* A store with alice's RFC token S1 (created a minute before T1) and a link for it in f->code. */
static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	char err[256];

	if (fixture_dir(f->dir, "act") != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/tokens.db", f->dir);
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	if (f->st == NULL || act_spec_setup(f->st, f->code) != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;

	ftm_store_close(f->st);
	fixture_dir_remove(f->dir);
	free(f);
	return 0;
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

/* ---- the store's own cases (store_activation_spec.h), on one file and on two handles on it ---- */

static ftm_store_t *fixture_other(fixture_t *f, char *err, size_t err_len)
{
	return ftm_store_open(f->db, NULL, NULL, err, err_len);
}

ACT_SPEC_CASES(ACT_ONE)
ACT_SPEC_CASES2(FIXTURE_TWO_HANDLES)

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown),

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(a_code_is_192_random_bits_in_base64url_stored_only_as_a_hash)
		ACT_SPEC_CASES(T)
		ACT_SPEC_CASES2(T)
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

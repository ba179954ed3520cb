/* test_passcode: splitting typed input into password + trailing token code. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ftm_passcode.h"

static void password_then_six_digits_splits(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("p@ssw0rd345678", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "p@ssw0rd");
	assert_string_equal(p.code, "345678");
}

static void eight_digit_token_takes_eight(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("secret12345678", 8, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "secret");
	assert_string_equal(p.code, "12345678");
	/* only 6 trailing digits: no 8-digit code */
	assert_int_equal(ftm_passcode_split("secret123456", 8, &p), 0);
	assert_false(p.has_code);
	assert_string_equal(p.password, "secret123456");
}

static void no_digits_is_password_only(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("correct horse", 6, &p), 0);
	assert_false(p.has_code);
	assert_string_equal(p.password, "correct horse");
	assert_string_equal(p.code, "");
}

static void too_few_trailing_digits_is_password_only(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("hunter12345", 6, &p), 0);
	assert_false(p.has_code);
	assert_string_equal(p.password, "hunter12345");
}

/* "winter2024" + "123456": the code is the last 6 digits, the password keeps its own digits. */
static void password_ending_in_digits_keeps_them(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("winter2024123456", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "winter2024");
	assert_string_equal(p.code, "123456");
	/* and a password that is all digits, no code appended, still splits: the verdict decides */
	assert_int_equal(ftm_passcode_split("password1234567", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "password1");
	assert_string_equal(p.code, "234567");
}

static void code_only_gives_empty_password(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("345678", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "");
	assert_string_equal(p.code, "345678");
}

static void empty_input_is_an_empty_password(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("", 6, &p), 0);
	assert_false(p.has_code);
	assert_string_equal(p.password, "");
}

static void overlong_input_is_refused(void **state)
{
	char big[FTM_INPUT_MAX + 2];
	ftm_passcode_t p;

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ftm_passcode_split(big, 6, &p), -1);
	/* exactly the limit is fine */
	big[FTM_INPUT_MAX] = '\0';
	memcpy(big + FTM_INPUT_MAX - 6, "123456", 6);
	assert_int_equal(ftm_passcode_split(big, 6, &p), 0);
	assert_true(p.has_code);
	assert_int_equal(strlen(p.password), FTM_INPUT_MAX - 6);
	assert_int_equal(ftm_passcode_split(NULL, 6, &p), -1);
}

/* Only ASCII digits make a code; UTF-8 passwords pass through byte for byte. */
static void non_ascii_is_kept_and_never_a_digit(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split("p\xc3\xa4ss\xe2\x82\xac" "123456", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "p\xc3\xa4ss\xe2\x82\xac");
	assert_string_equal(p.code, "123456");
	/* Arabic-Indic digits (U+0661..) are not token digits */
	assert_int_equal(ftm_passcode_split("pw\xd9\xa1\xd9\xa2\xd9\xa3\xd9\xa4\xd9\xa5\xd9\xa6", 6, &p), 0);
	assert_false(p.has_code);
	/* a high byte right before the digits */
	assert_int_equal(ftm_passcode_split("\xff" "654321", 6, &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "\xff");
}

static void is_code_checks_length_and_digits(void **state)
{
	(void)state;
	assert_true(ftm_passcode_is_code("123456", 6));
	assert_false(ftm_passcode_is_code("12345", 6));
	assert_false(ftm_passcode_is_code("1234567", 6));
	assert_false(ftm_passcode_is_code("12345a", 6));
	assert_false(ftm_passcode_is_code(" 12345", 6));
	assert_true(ftm_passcode_is_code("12345678", 8));
	assert_false(ftm_passcode_is_code(NULL, 6));
}

static void clear_zeroes_everything(void **state)
{
	ftm_passcode_t p;
	const unsigned char *b = (const unsigned char *)&p;

	(void)state;
	assert_int_equal(ftm_passcode_split("pw123456", 6, &p), 0);
	ftm_passcode_clear(&p);
	for (size_t i = 0; i < sizeof(p); i++)
		assert_int_equal(b[i], 0);
}

/* ---- recovery codes (ftm_recovery.h): xxxxx-xxxxx in Crockford's base32 ---- */

static void password_then_recovery_code_splits(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_int_equal(ftm_passcode_split_recovery("p@ssw0rd7k3qd-x9m2a", &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "p@ssw0rd");
	assert_string_equal(p.code, "7k3qd-x9m2a");
	/* the code alone (at the code prompt) */
	assert_int_equal(ftm_passcode_split_recovery("7K3QD-X9M2A", &p), 0);
	assert_true(p.has_code);
	assert_string_equal(p.password, "");
}

/* A token code ends in digits; a recovery code has its hyphen sixth from the end: one input is never
 * both, so the recovery reading neither slows nor confuses a token code. */
static void token_code_and_recovery_code_readings_never_overlap(void **state)
{
	static const char *const token_inputs[] = { "p@ssw0rd345678", "abcde-12345678", "x-y-z-123456", "7k3qd-x9m2a123456" };
	static const char *const recovery_inputs[] = { "pw7k3qd-x9m2a", "123457k3qd-00000", "7k3qd-x9m2a" };
	ftm_passcode_t p;

	(void)state;
	for (size_t i = 0; i < sizeof(token_inputs) / sizeof(token_inputs[0]); i++) {
		assert_int_equal(ftm_passcode_split(token_inputs[i], 6, &p), 0);
		assert_true(p.has_code);
		assert_int_equal(ftm_passcode_split_recovery(token_inputs[i], &p), 0);
		assert_false(p.has_code);
		assert_string_equal(p.password, token_inputs[i]);
	}
	for (size_t i = 0; i < sizeof(recovery_inputs) / sizeof(recovery_inputs[0]); i++) {
		assert_int_equal(ftm_passcode_split_recovery(recovery_inputs[i], &p), 0);
		assert_true(p.has_code);
		assert_int_equal(ftm_passcode_split(recovery_inputs[i], 6, &p), 0);
		assert_false(p.has_code);
		assert_int_equal(ftm_passcode_split(recovery_inputs[i], 8, &p), 0);
		assert_false(p.has_code);
	}
}

static void recovery_shape_needs_the_hyphen_and_the_alphabet(void **state)
{
	ftm_passcode_t p;

	(void)state;
	assert_true(ftm_recovery_is_code("7k3qd-x9m2a"));
	assert_true(ftm_recovery_is_code("IL0Od-x9m2a"));	/* i, l read as 1; o as 0 */
	assert_false(ftm_recovery_is_code("7k3qdx9m2a"));	/* no hyphen */
	assert_false(ftm_recovery_is_code("7k3q-dx9m2a"));	/* hyphen elsewhere */
	assert_false(ftm_recovery_is_code("7k3qd-x9m2u"));	/* u is not in the alphabet */
	assert_false(ftm_recovery_is_code("7k3qd-x9m2"));
	assert_false(ftm_recovery_is_code("7k3qd-x9m2ab"));
	assert_false(ftm_recovery_is_code("7k3q\xc3\xa9-x9m2a"));
	assert_false(ftm_recovery_is_code(NULL));
	assert_int_equal(ftm_passcode_split_recovery("short", &p), 0);
	assert_false(p.has_code);
	assert_string_equal(p.password, "short");
}

static void generated_recovery_codes_have_the_shape_and_differ(void **state)
{
	char a[FTM_RECOVERY_LEN + 1], b[FTM_RECOVERY_LEN + 1], n[FTM_RECOVERY_LEN + 1];

	(void)state;
	assert_int_equal(ftm_recovery_generate(a), 0);
	assert_int_equal(ftm_recovery_generate(b), 0);
	assert_true(ftm_recovery_is_code(a));
	assert_string_not_equal(a, b);
	assert_int_equal(ftm_recovery_normalise(a, n), 0);
	assert_string_equal(a, n);	/* printed in the canonical form */
}

static void recovery_hash_depends_on_salt_user_and_code_not_on_case(void **state)
{
	uint8_t key[32] = { 1 }, salt[FTM_RECOVERY_SALT_LEN] = { 2 }, salt2[FTM_RECOVERY_SALT_LEN] = { 3 };
	uint8_t h1[32], h2[32];

	(void)state;
	assert_int_equal(ftm_recovery_hash(key, salt, "alice", "7k3qd-x9m2a", h1), 0);
	assert_int_equal(ftm_recovery_hash(key, salt, "alice", "7K3QD-X9M2A", h2), 0);
	assert_memory_equal(h1, h2, 32);
	assert_int_equal(ftm_recovery_hash(key, salt2, "alice", "7k3qd-x9m2a", h2), 0);
	assert_memory_not_equal(h1, h2, 32);
	assert_int_equal(ftm_recovery_hash(key, salt, "bob", "7k3qd-x9m2a", h2), 0);
	assert_memory_not_equal(h1, h2, 32);
	assert_int_equal(ftm_recovery_hash(key, salt, "alice", "7k3qd-x9m2b", h2), 0);
	assert_memory_not_equal(h1, h2, 32);
	assert_int_equal(ftm_recovery_hash(key, salt, "alice", "not a code!", h2), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(password_then_six_digits_splits),
		cmocka_unit_test(eight_digit_token_takes_eight),
		cmocka_unit_test(no_digits_is_password_only),
		cmocka_unit_test(too_few_trailing_digits_is_password_only),
		cmocka_unit_test(password_ending_in_digits_keeps_them),
		cmocka_unit_test(code_only_gives_empty_password),
		cmocka_unit_test(empty_input_is_an_empty_password),
		cmocka_unit_test(overlong_input_is_refused),
		cmocka_unit_test(non_ascii_is_kept_and_never_a_digit),
		cmocka_unit_test(is_code_checks_length_and_digits),
		cmocka_unit_test(clear_zeroes_everything),
		cmocka_unit_test(password_then_recovery_code_splits),
		cmocka_unit_test(token_code_and_recovery_code_readings_never_overlap),
		cmocka_unit_test(recovery_shape_needs_the_hyphen_and_the_alphabet),
		cmocka_unit_test(generated_recovery_codes_have_the_shape_and_differ),
		cmocka_unit_test(recovery_hash_depends_on_salt_user_and_code_not_on_case),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* test_otp: HOTP/TOTP against every vector of RFC 4226 appendix D and RFC 6238 appendix B. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ftm_otp.h"

/* RFC 6238 appendix B: each algorithm has its own seed, the ASCII digits repeated to the hash size. */
#define SEED_SHA1	"12345678901234567890"
#define SEED_SHA256	"12345678901234567890123456789012"
#define SEED_SHA512	"1234567890123456789012345678901234567890123456789012345678901234"
#define KEY(s)		(const uint8_t *)(s), strlen(s)

static void rfc4226_appendix_d_hotp_values(void **state)
{
	static const char *const expect[10] = {
		"755224", "287082", "359152", "969429", "338314",
		"254676", "287922", "162583", "399871", "520489",
	};
	char code[FTM_CODE_MAX + 1];

	(void)state;
	for (uint64_t c = 0; c < 10; c++) {
		assert_int_equal(ftm_hotp(KEY(SEED_SHA1), FTM_ALG_SHA1, c, 6, code), 0);
		assert_string_equal(code, expect[c]);
	}
}

static const struct {
	time_t t;
	ftm_alg_t alg;
	const char *seed;
	const char *code;
} rfc6238[] = {
	{ 59LL, FTM_ALG_SHA1, SEED_SHA1, "94287082" },
	{ 59LL, FTM_ALG_SHA256, SEED_SHA256, "46119246" },
	{ 59LL, FTM_ALG_SHA512, SEED_SHA512, "90693936" },
	{ 1111111109LL, FTM_ALG_SHA1, SEED_SHA1, "07081804" },
	{ 1111111109LL, FTM_ALG_SHA256, SEED_SHA256, "68084774" },
	{ 1111111109LL, FTM_ALG_SHA512, SEED_SHA512, "25091201" },
	{ 1111111111LL, FTM_ALG_SHA1, SEED_SHA1, "14050471" },
	{ 1111111111LL, FTM_ALG_SHA256, SEED_SHA256, "67062674" },
	{ 1111111111LL, FTM_ALG_SHA512, SEED_SHA512, "99943326" },
	{ 1234567890LL, FTM_ALG_SHA1, SEED_SHA1, "89005924" },
	{ 1234567890LL, FTM_ALG_SHA256, SEED_SHA256, "91819424" },
	{ 1234567890LL, FTM_ALG_SHA512, SEED_SHA512, "93441116" },
	{ 2000000000LL, FTM_ALG_SHA1, SEED_SHA1, "69279037" },
	{ 2000000000LL, FTM_ALG_SHA256, SEED_SHA256, "90698825" },
	{ 2000000000LL, FTM_ALG_SHA512, SEED_SHA512, "38618901" },
	{ 20000000000LL, FTM_ALG_SHA1, SEED_SHA1, "65353130" },
	{ 20000000000LL, FTM_ALG_SHA256, SEED_SHA256, "77737706" },
	{ 20000000000LL, FTM_ALG_SHA512, SEED_SHA512, "47863826" },
};

static void rfc6238_appendix_b_totp_values(void **state)
{
	char code[FTM_CODE_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(rfc6238) / sizeof(rfc6238[0]); i++) {
		assert_int_equal(ftm_hotp(KEY(rfc6238[i].seed), rfc6238[i].alg,
					  ftm_totp_step(rfc6238[i].t, 30), 8, code), 0);
		assert_string_equal(code, rfc6238[i].code);
	}
}

static void rfc6238_vectors_match_in_window_zero(void **state)
{
	uint64_t step = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rfc6238) / sizeof(rfc6238[0]); i++) {
		assert_true(ftm_totp_match(KEY(rfc6238[i].seed), rfc6238[i].alg, 8, 30, 0, rfc6238[i].t,
					   rfc6238[i].code, &step));
		assert_int_equal(step, (uint64_t)rfc6238[i].t / 30);
	}
}

static void rfc6238_vector_with_the_wrong_algorithm_does_not_match(void **state)
{
	(void)state;
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA256, 8, 30, 1, 59, "94287082", NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA256), FTM_ALG_SHA1, 8, 30, 1, 59, "46119246", NULL));
}

/* RFC 4226's HOTP(k) is the 6-digit TOTP of the same seed at step k (30 s). */
static void drift_inside_the_window_matches_and_reports_the_step(void **state)
{
	uint64_t step = 99;

	(void)state;
	/* "359152" is step 2; now in step 3 and in step 1 */
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 3 * 30 + 5, "359152", &step));
	assert_int_equal(step, 2);
	step = 99;
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 1 * 30 + 29, "359152", &step));
	assert_int_equal(step, 2);
}

static void drift_outside_the_window_does_not_match(void **state)
{
	uint64_t step = 99;

	(void)state;
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 4 * 30, "359152", &step));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 0, 3 * 30, "359152", &step));
	assert_int_equal(step, 99);
	/* a wider window reaches it */
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 2, 4 * 30, "359152", &step));
	assert_int_equal(step, 2);
}

static void window_at_the_epoch_does_not_underflow(void **state)
{
	uint64_t step = 99;

	(void)state;
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 3, 0, "755224", &step));
	assert_int_equal(step, 0);
}

static void period_60_is_fortitoken_mobile(void **state)
{
	uint64_t step = 0;

	(void)state;
	/* step 5 of a 60 s token: 300..359 */
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 60, 0, 300, "254676", &step));
	assert_true(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 60, 0, 359, "254676", &step));
	assert_int_equal(step, 5);
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 60, 0, 360, "254676", NULL));
}

static void malformed_codes_never_match(void **state)
{
	(void)state;
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 0, "75522", NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 0, "7552244", NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 0, "75522a", NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 0, "", NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 30, 1, 0, NULL, NULL));
	assert_false(ftm_totp_match(KEY(SEED_SHA1), FTM_ALG_SHA1, 6, 0, 1, 0, "755224", NULL));
	assert_false(ftm_totp_match((const uint8_t *)"", 0, FTM_ALG_SHA1, 6, 30, 1, 0, "755224", NULL));
}

static void hotp_refuses_bad_arguments(void **state)
{
	char code[FTM_CODE_MAX + 1] = "x";

	(void)state;
	assert_int_equal(ftm_hotp(KEY(SEED_SHA1), FTM_ALG_SHA1, 0, 5, code), -1);
	assert_string_equal(code, "");
	assert_int_equal(ftm_hotp(KEY(SEED_SHA1), FTM_ALG_SHA1, 0, 9, code), -1);
	assert_int_equal(ftm_hotp(NULL, 0, FTM_ALG_SHA1, 0, 6, code), -1);
	assert_int_equal(ftm_hotp(KEY(SEED_SHA1), (ftm_alg_t)7, 0, 6, code), -1);
	assert_int_equal(ftm_hotp(KEY(SEED_SHA1), FTM_ALG_SHA1, 0, 7, code), 0);
	assert_int_equal(strlen(code), 7);
}

static void step_and_seconds_left(void **state)
{
	(void)state;
	assert_int_equal(ftm_totp_step(59, 30), 1);
	assert_int_equal(ftm_totp_step(60, 30), 2);
	assert_int_equal(ftm_totp_step(20000000000LL, 30), 666666666);
	assert_int_equal(ftm_totp_seconds_left(60, 30), 30);
	assert_int_equal(ftm_totp_seconds_left(59, 30), 1);
	assert_int_equal(ftm_totp_seconds_left(125, 60), 55);
}

static void algorithm_names(void **state)
{
	ftm_alg_t a = FTM_ALG_SHA1;

	(void)state;
	assert_int_equal(ftm_alg_parse("SHA256", &a), 0);
	assert_int_equal(a, FTM_ALG_SHA256);
	assert_int_equal(ftm_alg_parse("sha512", &a), 0);
	assert_int_equal(a, FTM_ALG_SHA512);
	assert_int_equal(ftm_alg_parse("md5", &a), -1);
	assert_int_equal(ftm_alg_parse("", &a), -1);
	assert_string_equal(ftm_alg_name(FTM_ALG_SHA1), "sha1");
	assert_string_equal(ftm_alg_otpauth_name(FTM_ALG_SHA512), "SHA512");
}

static void ct_equal_compares_all_bytes(void **state)
{
	(void)state;
	assert_true(ftm_ct_equal("123456", "123456", 6));
	assert_false(ftm_ct_equal("123456", "123457", 6));
	assert_false(ftm_ct_equal("023456", "123456", 6));
	assert_true(ftm_ct_equal("a", "b", 0));
}

static void hex_round_trip_and_refusals(void **state)
{
	uint8_t buf[4];
	size_t n = 0;
	char hex[9];

	(void)state;
	assert_int_equal(ftm_hex_decode("00ffA5", buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(buf[1], 0xff);
	assert_int_equal(buf[2], 0xa5);
	ftm_hex_encode(buf, n, hex);
	assert_string_equal(hex, "00ffa5");
	assert_int_equal(ftm_hex_decode("abc", buf, sizeof(buf), &n), -1);
	assert_int_equal(ftm_hex_decode("zz", buf, sizeof(buf), &n), -1);
	assert_int_equal(ftm_hex_decode("0011223344", buf, sizeof(buf), &n), -1);
	assert_int_equal(ftm_hex_decode("", buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 0);
}

/* RFC 4648 section 10, without padding */
static void base32_rfc4648_vectors(void **state)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "MY", "MZXQ", "MZXW6", "MZXW6YQ", "MZXW6YTB", "MZXW6YTBOI" };
	char buf[40];

	(void)state;
	for (size_t i = 0; i < 7; i++) {
		ftm_base32_encode((const uint8_t *)in[i], strlen(in[i]), buf);
		assert_string_equal(buf, out[i]);
	}
	ftm_base32_encode((const uint8_t *)SEED_SHA1, 20, buf);
	assert_string_equal(buf, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
}

/* RFC 4231 test cases 1 and 2: the one-shot HMAC-SHA256 and the one keyed once and reused agree. */
static void hmac_sha256_rfc4231_one_shot_and_keyed_once(void **state)
{
	static const uint8_t want1[32] = {
		0xb0, 0x34, 0x4c, 0x61, 0xd8, 0xdb, 0x38, 0x53, 0x5c, 0xa8, 0xaf, 0xce, 0xaf, 0x0b, 0xf1, 0x2b,
		0x88, 0x1d, 0xc2, 0x00, 0xc9, 0x83, 0x3d, 0xa7, 0x26, 0xe9, 0x37, 0x6c, 0x2e, 0x32, 0xcf, 0xf7,
	};
	static const uint8_t want2[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
		0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	uint8_t key1[20], out[32];
	ftm_hmac_key_t *k1, *k2;

	(void)state;
	memset(key1, 0x0b, sizeof(key1));
	assert_int_equal(ftm_hmac_sha256(key1, sizeof(key1), "Hi There", 8, out), 0);
	assert_memory_equal(out, want1, 32);
	k1 = ftm_hmac_sha256_key(key1, sizeof(key1));
	k2 = ftm_hmac_sha256_key((const uint8_t *)"Jefe", 4);
	assert_non_null(k1);
	assert_non_null(k2);
	for (int i = 0; i < 3; i++) {	/* the kept contexts are restarted, never used up */
		memset(out, 0, sizeof(out));
		assert_int_equal(ftm_hmac_sha256_with(k1, "Hi There", 8, out), 0);
		assert_memory_equal(out, want1, 32);
		assert_int_equal(ftm_hmac_sha256_with(k2, "what do ya want for nothing?", 28, out), 0);
		assert_memory_equal(out, want2, 32);
	}
	assert_null(ftm_hmac_sha256_key(NULL, 0));
	assert_int_equal(ftm_hmac_sha256_with(NULL, "x", 1, out), -1);
	ftm_hmac_key_free(k1);
	ftm_hmac_key_free(k2);
}

/* One keyed handle used by many threads at once (the store's proof key in a FreeRADIUS server): each
 * MAC takes a kept context, restarts it and gives it back; every MAC must still be RFC 4231 case 2's,
 * whether its context was new, kept, or given back by another thread. */
struct hmac_threads {
	ftm_hmac_key_t	*key;
	int		bad;
};

static void *hmac_thread(void *arg)
{
	static const uint8_t want[32] = {
		0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24, 0x26, 0x08, 0x95, 0x75, 0xc7,
		0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27, 0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43,
	};
	struct hmac_threads *h = arg;
	int bad = 0;

	for (int i = 0; i < 2000; i++) {
		uint8_t out[32] = { 0 };

		if (ftm_hmac_sha256_with(h->key, "what do ya want for nothing?", 28, out) != 0 ||
		    memcmp(out, want, 32) != 0)
			bad++;
	}
	__atomic_add_fetch(&h->bad, bad, __ATOMIC_RELAXED);
	return NULL;
}

static void hmac_sha256_keyed_shared_by_threads(void **state)
{
	struct hmac_threads h = { .key = ftm_hmac_sha256_key((const uint8_t *)"Jefe", 4) };
	pthread_t th[8];

	(void)state;
	assert_non_null(h.key);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(pthread_create(&th[i], NULL, hmac_thread, &h), 0);
	for (size_t i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(h.bad, 0);
	ftm_hmac_key_free(h.key);
}

static void memzero_clears(void **state)
{
	char buf[8] = "secret";

	(void)state;
	ftm_memzero(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
	ftm_memzero(NULL, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rfc4226_appendix_d_hotp_values),
		cmocka_unit_test(rfc6238_appendix_b_totp_values),
		cmocka_unit_test(rfc6238_vectors_match_in_window_zero),
		cmocka_unit_test(rfc6238_vector_with_the_wrong_algorithm_does_not_match),
		cmocka_unit_test(drift_inside_the_window_matches_and_reports_the_step),
		cmocka_unit_test(drift_outside_the_window_does_not_match),
		cmocka_unit_test(window_at_the_epoch_does_not_underflow),
		cmocka_unit_test(period_60_is_fortitoken_mobile),
		cmocka_unit_test(malformed_codes_never_match),
		cmocka_unit_test(hotp_refuses_bad_arguments),
		cmocka_unit_test(step_and_seconds_left),
		cmocka_unit_test(algorithm_names),
		cmocka_unit_test(ct_equal_compares_all_bytes),
		cmocka_unit_test(hex_round_trip_and_refusals),
		cmocka_unit_test(base32_rfc4648_vectors),
		cmocka_unit_test(hmac_sha256_rfc4231_one_shot_and_keyed_once),
		cmocka_unit_test(hmac_sha256_keyed_shared_by_threads),
		cmocka_unit_test(memzero_clears),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* ftm_otp: HOTP (RFC 4226) and TOTP (RFC 6238) with SHA1/SHA256/SHA512, constant-time compare. */
#ifndef FTM_OTP_H
#define FTM_OTP_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <time.h>

#define FTM_SEED_MAX	128	/* bytes */
#define FTM_CODE_MAX	8	/* digits */

typedef enum {
	FTM_ALG_SHA1 = 0,
	FTM_ALG_SHA256,
	FTM_ALG_SHA512
} ftm_alg_t;

/* "sha1" | "sha256" | "sha512" (case-insensitive) -> 0, else -1 */
int ftm_alg_parse(const char *name, ftm_alg_t *out);
const char *ftm_alg_name(ftm_alg_t alg);		/* "sha1" ... */
const char *ftm_alg_otpauth_name(ftm_alg_t alg);	/* "SHA1" ... */

/* HOTP value for counter as a NUL-terminated string of `digits` (6..8) digits. 0 ok, -1 error. */
int ftm_hotp(const uint8_t *key, size_t key_len, ftm_alg_t alg, uint64_t counter,
	     unsigned digits, char out[FTM_CODE_MAX + 1]);

/* Time step of `now` for `period` seconds (period > 0). */
uint64_t ftm_totp_step(time_t now, unsigned period);
/* Seconds left in the current step. */
unsigned ftm_totp_seconds_left(time_t now, unsigned period);

/* TOTP check over steps [step-window, step+window]. Compares every candidate in constant time
 * (no early exit). On match returns true and sets *matched_step. code must be exactly `digits` digits. */
bool ftm_totp_match(const uint8_t *key, size_t key_len, ftm_alg_t alg, unsigned digits,
		    unsigned period, unsigned window, time_t now, const char *code,
		    uint64_t *matched_step);

/* HMAC-SHA256 of msg (the implementation fetched once per process, like the OTP HMACs). 0 ok, -1 error. */
int ftm_hmac_sha256(const uint8_t *key, size_t key_len, const void *msg, size_t msg_len, uint8_t out[32]);

/* The same under a key used for many MACs (a handle's own key), from any thread: keyed once, its copies
 * kept and restarted for each MAC, so the key's pads are not hashed again and no context is allocated
 * every time. NULL on error; free cleanses the key and its copies. */
typedef struct ftm_hmac_key ftm_hmac_key_t;
ftm_hmac_key_t *ftm_hmac_sha256_key(const uint8_t *key, size_t key_len);
int ftm_hmac_sha256_with(ftm_hmac_key_t *key, const void *msg, size_t msg_len, uint8_t out[32]);
void ftm_hmac_key_free(ftm_hmac_key_t *key);

/* Constant-time equality of n bytes. */
bool ftm_ct_equal(const void *a, const void *b, size_t n);

/* Hex <-> bytes. decode: 0 ok, -1 on odd length, non-hex, or more than out_max bytes. */
int ftm_hex_decode(const char *hex, uint8_t *out, size_t out_max, size_t *out_len);
void ftm_hex_encode(const uint8_t *in, size_t len, char *out /* 2*len+1 */);
/* RFC 4648 base32 without padding (for otpauth:// URIs). out needs (len*8+4)/5+1 bytes. */
void ftm_base32_encode(const uint8_t *in, size_t len, char *out);

/* Zero memory in a way the compiler keeps. */
void ftm_memzero(void *p, size_t n);

#endif

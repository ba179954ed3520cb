/* recovery: single-use recovery codes: generated from the CSPRNG, read as typed, hashed for the store. */
#include "config.h"

#include <string.h>

#include <openssl/rand.h>

#include "ftm_otp.h"
#include "ftm_recovery.h"

#define HASH_LABEL	"ftmpush recovery code v1"

/* Crockford's base32: no i, l, o, u, so what is printed cannot be misread as another character. */
static const char alphabet[32] = "0123456789abcdefghjkmnpqrstvwxyz";

/* The canonical character for one typed character, or 0 when it is none of the alphabet's. */
static char canonical(char c)
{
	if (c >= 'A' && c <= 'Z')
		c = (char)(c - 'A' + 'a');
	if (c == 'i' || c == 'l')
		return '1';
	if (c == 'o')
		return '0';
	return memchr(alphabet, c, sizeof(alphabet)) != NULL && c != '\0' ? c : 0;
}

int ftm_recovery_generate(char out[FTM_RECOVERY_LEN + 1])
{
	unsigned char r[FTM_RECOVERY_LEN - 1];
	size_t k = 0;

	if (RAND_bytes(r, sizeof(r)) != 1) {
		ftm_memzero(out, FTM_RECOVERY_LEN + 1);
		return -1;
	}
	for (size_t i = 0; i < FTM_RECOVERY_LEN; i++)
		out[i] = i == FTM_RECOVERY_GROUP ? '-' : alphabet[r[k++] & 31];	/* 256 = 8 x 32: unbiased */
	out[FTM_RECOVERY_LEN] = '\0';
	ftm_memzero(r, sizeof(r));
	return 0;
}

int ftm_recovery_normalise(const char *s, char out[FTM_RECOVERY_LEN + 1])
{
	if (s == NULL || strnlen(s, FTM_RECOVERY_LEN + 1) != FTM_RECOVERY_LEN)
		return -1;
	for (size_t i = 0; i < FTM_RECOVERY_LEN; i++) {
		char c = i == FTM_RECOVERY_GROUP ? (s[i] == '-' ? '-' : 0) : canonical(s[i]);

		if (c == 0) {
			ftm_memzero(out, FTM_RECOVERY_LEN + 1);
			return -1;
		}
		out[i] = c;
	}
	out[FTM_RECOVERY_LEN] = '\0';
	return 0;
}

bool ftm_recovery_is_code(const char *s)
{
	char c[FTM_RECOVERY_LEN + 1];
	bool ok = ftm_recovery_normalise(s, c) == 0;

	ftm_memzero(c, sizeof(c));
	return ok;
}

int ftm_recovery_hash(const uint8_t key[32], const uint8_t salt[FTM_RECOVERY_SALT_LEN], const char *user,
		      const char *typed, uint8_t out[FTM_RECOVERY_HASH_LEN])
{
	/* label NUL salt user NUL code: no field can run into the next */
	unsigned char msg[sizeof(HASH_LABEL) + FTM_RECOVERY_SALT_LEN + 256 + 1 + FTM_RECOVERY_LEN];
	char code[FTM_RECOVERY_LEN + 1];
	size_t ulen, pos = 0;
	int rc;

	if (key == NULL || salt == NULL || user == NULL || out == NULL ||
	    (ulen = strnlen(user, 256)) >= 256 || ftm_recovery_normalise(typed, code) != 0)
		return -1;
	memcpy(msg, HASH_LABEL, sizeof(HASH_LABEL));
	pos += sizeof(HASH_LABEL);
	memcpy(msg + pos, salt, FTM_RECOVERY_SALT_LEN);
	pos += FTM_RECOVERY_SALT_LEN;
	memcpy(msg + pos, user, ulen + 1);
	pos += ulen + 1;
	memcpy(msg + pos, code, FTM_RECOVERY_LEN);
	pos += FTM_RECOVERY_LEN;
	rc = ftm_hmac_sha256(key, 32, msg, pos, out);
	ftm_memzero(msg, sizeof(msg));
	ftm_memzero(code, sizeof(code));
	return rc;
}

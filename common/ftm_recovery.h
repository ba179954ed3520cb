/* ftm_recovery: single-use recovery codes: their printed form, the typed forms accepted, their hash at rest. */
#ifndef FTM_RECOVERY_H
#define FTM_RECOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A recovery code as printed: two groups of 5 characters of Crockford's base32 alphabet (digits and
 * lower-case letters without i, l, o and u) joined by a hyphen, "7k3qd-x9m2a": 50 bits from the CSPRNG.
 * The hyphen is part of the code, so that appended to a password it never reads as a token code (those
 * end in 6 or 8 digits; the sixth character from the end of a recovery code is the hyphen). */
#define FTM_RECOVERY_LEN	11
#define FTM_RECOVERY_GROUP	5
#define FTM_RECOVERY_SALT_LEN	16
#define FTM_RECOVERY_HASH_LEN	32
#define FTM_RECOVERY_COUNT	10	/* codes per set unless the admin asks for another number */
#define FTM_RECOVERY_COUNT_MAX	50

/* A new code from the CSPRNG into out. 0, or -1 when the CSPRNG fails (out zeroed). */
int ftm_recovery_generate(char out[FTM_RECOVERY_LEN + 1]);

/* Does s have a recovery code's shape (exactly FTM_RECOVERY_LEN characters, the hyphen in the middle)?
 * Upper case is accepted, and so are i, l (read as 1) and o (read as 0), as Crockford's alphabet reads
 * them: what a user copies from paper by hand. */
bool ftm_recovery_is_code(const char *s);

/* The canonical form of a typed code (lower case, i l -> 1, o -> 0) into out: 0, or -1 when s does not
 * have a recovery code's shape. */
int ftm_recovery_normalise(const char *s, char out[FTM_RECOVERY_LEN + 1]);

/* What the store keeps of a code: HMAC-SHA-256 under key (derived from the store's seed key, so a copy
 * of the database alone cannot be searched for codes) of salt (per code, FTM_RECOVERY_SALT_LEN bytes
 * from the CSPRNG), the user, and the canonical code. 0, or -1 (also when typed has no code's shape). */
int ftm_recovery_hash(const uint8_t key[32], const uint8_t salt[FTM_RECOVERY_SALT_LEN], const char *user,
		      const char *typed, uint8_t out[FTM_RECOVERY_HASH_LEN]);

#endif

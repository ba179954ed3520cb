/* seedcrypt: token seeds at rest, sealed with AES-256-GCM under a 32-byte key file (internal to libftmpush). */
#ifndef FTM_SEEDCRYPT_H
#define FTM_SEEDCRYPT_H

#include <stddef.h>
#include <stdint.h>
#include "ftm_otp.h"

#define FTM_SEEDKEY_LEN		32
#define FTM_SEAL_VERSION	1
#define FTM_SEAL_NONCE_LEN	12
#define FTM_SEAL_TAG_LEN	16
/* version byte || 12-byte nonce || ciphertext || 16-byte tag */
#define FTM_SEAL_OVERHEAD	(1 + FTM_SEAL_NONCE_LEN + FTM_SEAL_TAG_LEN)
#define FTM_SEALED_MAX		(FTM_SEED_MAX + FTM_SEAL_OVERHEAD)

/* Read the key file, or create it (0600, 32 bytes from RAND_bytes) when it does not exist. Refuses a
 * key file that is not a regular file, is accessible by group or others, or is not exactly 32 bytes.
 * 0 ok, -1 with a one-line reason in err. */
int ftm_seedkey_load(const char *path, uint8_t key[FTM_SEEDKEY_LEN], char *err, size_t err_len);

/* Seal `len` bytes with a fresh random nonce; `aad` (the token serial) is authenticated, not stored.
 * out needs len + FTM_SEAL_OVERHEAD bytes. 0 ok, -1 error. */
int ftm_seal(const uint8_t key[FTM_SEEDKEY_LEN], const char *aad, const uint8_t *in, size_t len,
	     uint8_t *out, size_t out_max, size_t *out_len, char *err, size_t err_len);

/* Open a sealed blob; fails (-1) when the key, the aad or any byte differs. */
int ftm_unseal(const uint8_t key[FTM_SEEDKEY_LEN], const char *aad, const uint8_t *in, size_t in_len,
	       uint8_t *out, size_t out_max, size_t *out_len, char *err, size_t err_len);

#endif

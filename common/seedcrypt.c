/* seedcrypt: the key file and AES-256-GCM sealing of token seeds (OpenSSL EVP; nothing hand-written). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "seedcrypt.h"
#include "ftm_util.h"

#define SETERR(...) ftm_set_err(err, err_len, __VA_ARGS__)	/* every function here has err, err_len */

/* AES-256-GCM, fetched once per process rather than looked up again on every seal and unseal. */
static EVP_CIPHER *aes_gcm;
static pthread_once_t aes_gcm_once = PTHREAD_ONCE_INIT;

static void aes_gcm_fetch(void)
{
	aes_gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
}

/* The nonce is GCM's default IV length, so cipher, key and nonce are set in one init: setting the length
 * first took a second init and a control call per seal and unseal (~1.5k instructions a login). */
_Static_assert(FTM_SEAL_NONCE_LEN == 12, "AES-GCM's default IV length");

static const EVP_CIPHER *cipher(void)
{
	pthread_once(&aes_gcm_once, aes_gcm_fetch);
	return aes_gcm;
}

/* Read exactly FTM_SEEDKEY_LEN bytes from an existing key file after checking what it is. */
static int key_read(int fd, const char *path, uint8_t key[FTM_SEEDKEY_LEN], char *err, size_t err_len)
{
	struct stat sb;
	size_t got = 0;

	if (fstat(fd, &sb) != 0) {
		SETERR("key file %s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		SETERR("key file %s is not a regular file", path);
		return -1;
	}
	if ((sb.st_mode & 077) != 0) {
		SETERR("key file %s is accessible by group or others (mode %04o): chmod 600 it",
		       path, (unsigned)(sb.st_mode & 07777));
		return -1;
	}
	if (sb.st_size != FTM_SEEDKEY_LEN) {
		SETERR("key file %s has %lld bytes, expected %d", path, (long long)sb.st_size, FTM_SEEDKEY_LEN);
		return -1;
	}
	while (got < FTM_SEEDKEY_LEN) {
		ssize_t r = read(fd, key + got, FTM_SEEDKEY_LEN - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			SETERR("key file %s: short read", path);
			ftm_memzero(key, FTM_SEEDKEY_LEN);
			return -1;
		}
		got += (size_t)r;
	}
	return 0;
}

/* Create the key file atomically: a private temporary file (O_CREAT|O_EXCL, 0600) filled from
 * RAND_bytes, then link()ed into place, so a concurrent opener never sees a half-written key.
 * Returns 0 created, 1 someone else created it first, -1 error. */
static int key_create(const char *path, char *err, size_t err_len)
{
	uint8_t key[FTM_SEEDKEY_LEN];
	char tmp[4096];
	int fd, rc = -1;
	size_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp)) {
		SETERR("key file path too long");
		return -1;
	}
	fd = mkstemp(tmp);	/* O_CREAT|O_EXCL, mode 0600 */
	if (fd < 0) {
		SETERR("cannot create key file %s: %s", path, strerror(errno));
		return -1;
	}
	errno = 0;
	if (fchmod(fd, 0600) != 0 || RAND_bytes(key, sizeof(key)) != 1) {
		SETERR("cannot create key file %s: %s", path, errno ? strerror(errno) : "RAND_bytes failed");
		goto out;
	}
	while (off < sizeof(key)) {
		ssize_t w = write(fd, key + off, sizeof(key) - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			SETERR("cannot write key file %s: %s", path, strerror(errno));
			goto out;
		}
		off += (size_t)w;
	}
	if (fsync(fd) != 0) {
		SETERR("cannot write key file %s: %s", path, strerror(errno));
		goto out;
	}
	if (link(tmp, path) == 0)
		rc = 0;
	else if (errno == EEXIST)
		rc = 1;
	else
		SETERR("cannot create key file %s: %s", path, strerror(errno));
out:
	ftm_memzero(key, sizeof(key));
	close(fd);
	unlink(tmp);
	return rc;
}

int ftm_seedkey_load(const char *path, uint8_t key[FTM_SEEDKEY_LEN], char *err, size_t err_len)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			int rc = key_read(fd, path, key, err, err_len);
			close(fd);
			return rc;
		}
		if (errno != ENOENT) {
			SETERR("cannot open key file %s: %s", path, strerror(errno));
			return -1;
		}
		if (key_create(path, err, err_len) < 0)
			return -1;
		/* created by us or by a concurrent opener: read it back like any key file */
	}
	SETERR("cannot open key file %s", path);
	return -1;
}

int ftm_seal(const uint8_t key[FTM_SEEDKEY_LEN], const char *aad, const uint8_t *in, size_t len,
	     uint8_t *out, size_t out_max, size_t *out_len, char *err, size_t err_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *nonce = out + 1, *ct = out + 1 + FTM_SEAL_NONCE_LEN;
	int n = 0, fin = 0, rc = -1;

	if (len == 0 || len > FTM_SEED_MAX || out_max < len + FTM_SEAL_OVERHEAD) {
		SETERR("seed length out of range");
		return -1;
	}
	out[0] = FTM_SEAL_VERSION;
	if (RAND_bytes(nonce, FTM_SEAL_NONCE_LEN) != 1)
		goto out;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || cipher() == NULL ||
	    EVP_EncryptInit_ex(ctx, cipher(), NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, ct, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, FTM_SEAL_TAG_LEN, ct + len) != 1)
		goto out;
	*out_len = len + FTM_SEAL_OVERHEAD;
	rc = 0;
out:
	if (rc != 0)
		SETERR("seed encryption failed");
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

int ftm_unseal(const uint8_t key[FTM_SEEDKEY_LEN], const char *aad, const uint8_t *in, size_t in_len,
	       uint8_t *out, size_t out_max, size_t *out_len, char *err, size_t err_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	const uint8_t *nonce = in + 1, *ct = in + 1 + FTM_SEAL_NONCE_LEN;
	size_t len;
	int n = 0, fin = 0, rc = -1;

	if (in_len <= FTM_SEAL_OVERHEAD || in[0] != FTM_SEAL_VERSION) {
		SETERR("sealed seed has an unknown format");
		return -1;
	}
	len = in_len - FTM_SEAL_OVERHEAD;
	if (len > out_max) {
		SETERR("sealed seed too long");
		return -1;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || cipher() == NULL ||
	    EVP_DecryptInit_ex(ctx, cipher(), NULL, key, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, ct, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, FTM_SEAL_TAG_LEN, (void *)(ct + len)) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out + n, &fin) != 1) {
		ftm_memzero(out, len);
		SETERR("seed does not decrypt (wrong key file, or the database was altered)");
		goto out;
	}
	*out_len = len;
	rc = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

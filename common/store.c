/* store: tokens, their sealed seeds and the atomic code verdict, over a pluggable backend (store_backend.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ftm_audit.h"
#include "ftm_config.h"
#include "ftm_metrics.h"
#include "ftm_protect.h"
#include "ftm_store.h"
#include "seedcrypt.h"
#include "store_backend.h"
#include "ftm_message.h"
#include "ftm_util.h"

#define SETERR(...) ftm_set_err(err, err_len, __VA_ARGS__)	/* every function here has err, err_len */

#define SEED_MIN	10	/* 80 bits: the shortest secret common authenticator apps issue */
#define PERIOD_MAX	3600
#define KEY_CHECK_NAME	"key_check"
#define KEY_CHECK_AAD	"ftmpush key check"

static const ftm_store_backend_t *const backends[] = {
	&ftm_store_backend_sqlite,
#ifdef HAVE_LIBPQ
	&ftm_store_backend_pg,
#endif
	NULL
};

struct ftm_store {
	const ftm_store_backend_t	*ops;
	void				*be;
	uint8_t				key[FTM_SEEDKEY_LEN];
	uint8_t				proof_key[32];	/* random per handle: ftm_code_proof_t.mac */
	ftm_hmac_key_t			*proof_mac_key;	/* proof_key, keyed once */
	ftm_log_t			log;
	pthread_mutex_t			policy_mu;	/* guards the policy cache below */
	ftm_policy_t			policy;		/* the store's, as last read */
	bool				policy_read;
	struct timespec			policy_at;	/* CLOCK_MONOTONIC of that read */
	char				key_file[4096];	/* the seed key's file, as opened */
};

static int policy_refresh(ftm_store_t *st, char *err, size_t err_len);

const ftm_store_backend_t *ftm_store_backend_of(ftm_store_t *st, void **be)
{
	*be = st != NULL ? st->be : NULL;
	return st != NULL ? st->ops : NULL;
}

/* ---- open / close ---- */

/* "scheme:location" with a known scheme, else the whole uri is an SQLite path. */
static const ftm_store_backend_t *pick_backend(const char *uri, const char **location)
{
	const char *colon = strchr(uri, ':');

	if (colon != NULL) {
		for (size_t i = 0; backends[i] != NULL; i++) {
			size_t n = strlen(backends[i]->scheme);
			if ((size_t)(colon - uri) == n && strncmp(uri, backends[i]->scheme, n) == 0) {
				*location = colon + 1;
				return backends[i];
			}
		}
	}
	*location = uri;
	return &ftm_store_backend_sqlite;
}

/* The key check: a blob sealed under the key when the store was first opened. A key file that was
 * replaced or belongs to another store is refused here, not at the first login. */
static int key_check(ftm_store_t *st, const char *key_file, char *err, size_t err_len)
{
	uint8_t zero[32] = { 0 }, blob[FTM_SEALED_MAX], clear[FTM_SEED_MAX];
	size_t blen = 0, clen = 0;
	int rc;

	rc = st->ops->meta_get(st->be, KEY_CHECK_NAME, blob, sizeof(blob), &blen, err, err_len);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		if (ftm_seal(st->key, KEY_CHECK_AAD, zero, sizeof(zero), blob, sizeof(blob), &blen, err, err_len) != 0 ||
		    st->ops->meta_put(st->be, KEY_CHECK_NAME, blob, blen, err, err_len) != 0 ||
		    st->ops->meta_get(st->be, KEY_CHECK_NAME, blob, sizeof(blob), &blen, err, err_len) != 0)
			return -1;
	}
	if (ftm_unseal(st->key, KEY_CHECK_AAD, blob, blen, clear, sizeof(clear), &clen, NULL, 0) != 0 ||
	    clen != sizeof(zero)) {
		SETERR("key file %s does not match the token store (replaced, or from another store)", key_file);
		return -1;
	}
	return 0;
}

/* The key file is gone (ENOENT) while the database file is already an SQLite database (a store
 * created with the lost key). A missing or empty file is a new store: its key may be created; a file
 * that is not SQLite at all is left for the backend to refuse with its own reason. */
static bool missing_key_for_existing_db(const char *db_path, const char *key_file)
{
	static const char magic[16] = "SQLite format 3";	/* with its NUL: 16 bytes */
	char head[16];
	struct stat sb;
	ssize_t n;
	int fd;

	if (lstat(key_file, &sb) == 0 || errno != ENOENT)
		return false;
	fd = open(db_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	n = read(fd, head, sizeof(head));
	close(fd);
	return n == (ssize_t)sizeof(head) && memcmp(head, magic, sizeof(head)) == 0;
}

/* A shared store (every backend but SQLite) is opened by many nodes with one key: the key file is
 * named explicitly, and one that is missing while the store already holds a key check is never
 * created anew (a fresh random key would only be refused by the check, and left behind). */
static int shared_store_key(ftm_store_t *st, const char *key_file, char *err, size_t err_len)
{
	uint8_t blob[FTM_SEALED_MAX];
	size_t blen = 0;
	struct stat sb;
	int rc;

	if (key_file == NULL || key_file[0] == '\0') {
		SETERR("set key_file: a shared token store needs the same seed key file on every node "
		       "(docs/ha.md)");
		return -1;
	}
	if (lstat(key_file, &sb) == 0 || errno != ENOENT)
		return 0;
	rc = st->ops->meta_get(st->be, KEY_CHECK_NAME, blob, sizeof(blob), &blen, err, err_len);
	if (rc < 0)
		return -1;
	if (rc == 0) {
		SETERR("key file %s is missing but the token store already has a seed key: copy the key "
		       "file from a node that uses this store (docs/ha.md)", key_file);
		return -1;
	}
	return 0;
}

static ftm_store_t *store_open(const char *uri, const char *key_file, const ftm_log_t *log, bool single,
			       char *err, size_t err_len)
{
	ftm_store_t *st;
	const char *location;
	char keypath[4096];

	if (uri == NULL || uri[0] == '\0') {
		SETERR("no token store configured (token_db)");
		return NULL;
	}
#ifndef HAVE_LIBPQ
	if (strncmp(uri, "postgresql:", 11) == 0) {
		SETERR("this ftmpush was built without the PostgreSQL store (configure found no libpq: "
		       "install libpq-dev and rebuild)");
		return NULL;
	}
#endif
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		SETERR("out of memory");
		return NULL;
	}
	pthread_mutex_init(&st->policy_mu, NULL);
	if (log != NULL)
		st->log = *log;
	st->ops = pick_backend(uri, &location);
	if (st->ops != &ftm_store_backend_sqlite) {
		st->be = st->ops->open(location, &st->log, err, err_len);
		if (st->be == NULL || shared_store_key(st, key_file, err, err_len) != 0)
			goto fail;
	} else if (ftm_store_sqlite_local_fs(location, err, err_len) != 0) {
		goto fail;
	} else if (key_file == NULL || key_file[0] == '\0') {
		if (snprintf(keypath, sizeof(keypath), "%s.key", location) >= (int)sizeof(keypath)) {
			SETERR("token store path too long");
			goto fail;
		}
		key_file = keypath;
	}
	if (st->ops == &ftm_store_backend_sqlite && missing_key_for_existing_db(location, key_file)) {
		/* A new random key could never open the seeds already sealed in it; creating one would
		 * only leave a wrong key file behind for the admin to trip over. */
		SETERR("key file %s is missing but the token store exists: restore the key file "
		       "(the seeds cannot be decrypted without it)", key_file);
		goto fail;
	}
	ftm_protect_lock(st->key, sizeof(st->key));	/* never swapped, never in a core */
	if (ftm_seedkey_load(key_file, st->key, err, err_len) != 0)
		goto fail;
	snprintf(st->key_file, sizeof(st->key_file), "%s", key_file);
	if (RAND_bytes(st->proof_key, sizeof(st->proof_key)) != 1) {
		SETERR("CSPRNG failure");
		goto fail;
	}
	if ((st->proof_mac_key = ftm_hmac_sha256_key(st->proof_key, sizeof(st->proof_key))) == NULL) {
		SETERR("cannot set up the proof key (OpenSSL HMAC)");
		goto fail;
	}
	if (st->be == NULL)
		st->be = st->ops->open(location, &st->log, err, err_len);
	if (st->be == NULL)
		goto fail;
	if (single && st->ops->single != NULL)
		st->ops->single(st->be);	/* before the key check and the policy read: their reads too */
	if (key_check(st, key_file, err, err_len) != 0)
		goto fail;
	/* seeds a new store's policy from the built-in defaults; a damaged value fails the verdicts (and
	 * is reported there), not the open: `ftmpushctl policy set` must still be able to mend it */
	if (policy_refresh(st, err, err_len) != 0 && !st->policy_read && err != NULL && err[0] != '\0')
		ftm_log(&st->log, FTM_LOG_ERR, "token store %s: %s", uri, err);
	if (err != NULL && err_len > 0)
		err[0] = '\0';
	return st;
fail:
	if (err != NULL)
		ftm_log(&st->log, FTM_LOG_ERR, "token store %s: %s", uri, err);
	ftm_store_close(st);
	return NULL;
}

ftm_store_t *ftm_store_open(const char *uri, const char *key_file, const ftm_log_t *log,
			    char *err, size_t err_len)
{
	return store_open(uri, key_file, log, false, err, err_len);
}

ftm_store_t *ftm_store_open_single(const char *uri, const char *key_file, const ftm_log_t *log,
				   char *err, size_t err_len)
{
	return store_open(uri, key_file, log, true, err, err_len);
}

void ftm_store_peek_on_idle_writer(ftm_store_t *st)
{
	if (st != NULL && st->ops->peek_on_idle_writer != NULL)
		st->ops->peek_on_idle_writer(st->be);
}

void ftm_store_process_init(void)
{
	ftm_store_sqlite_process_init();
}

void ftm_store_close(ftm_store_t *st)
{
	if (st == NULL)
		return;
	if (st->be != NULL)
		st->ops->close(st->be);
	ftm_memzero(st->key, sizeof(st->key));
	ftm_memzero(st->proof_key, sizeof(st->proof_key));
	ftm_hmac_key_free(st->proof_mac_key);
	ftm_protect_unlock(st->key, sizeof(st->key));
	pthread_mutex_destroy(&st->policy_mu);
	free(st);
}

/* ---- tokens ---- */

static bool valid_serial(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++) {
		char c = s[n];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return n > 0 && n < FTM_SERIAL_MAX;
}

static bool printable(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f)
			return false;
	return n < max;
}

static int validate(const ftm_token_t *t, char *err, size_t err_len)
{
	const char *colon;

	if (!valid_serial(t->serial)) {
		SETERR("bad serial \"%.*s\": 1-%d characters of A-Z a-z 0-9 . _ -",
		       FTM_SERIAL_MAX, t->serial, FTM_SERIAL_MAX - 1);
		return -1;
	}
	if (!printable(t->user, FTM_USER_MAX)) {	/* "" = unassigned */
		SETERR("token %s: bad user name (too long or control characters)", t->serial);
		return -1;
	}
	if (t->seed_len < SEED_MIN || t->seed_len > FTM_SEED_MAX) {
		SETERR("token %s: seed must be %d to %d bytes", t->serial, SEED_MIN, FTM_SEED_MAX);
		return -1;
	}
	if ((unsigned)t->alg > FTM_ALG_SHA512) {
		SETERR("token %s: unknown algorithm", t->serial);
		return -1;
	}
	if (t->digits < 6 || t->digits > 8) {
		SETERR("token %s: digits must be 6 or 8", t->serial);
		return -1;
	}
	if (t->period == 0 || t->period > PERIOD_MAX) {
		SETERR("token %s: period must be 1 to %d seconds", t->serial, PERIOD_MAX);
		return -1;
	}
	if (!printable(t->push, FTM_PUSH_MAX)) {
		SETERR("token %s: bad push target", t->serial);
		return -1;
	}
	colon = strchr(t->push, ':');
	if (t->push[0] != '\0' && (colon == NULL || colon == t->push || colon[1] == '\0')) {
		SETERR("token %s: push target must be CHANNEL:TARGET", t->serial);
		return -1;
	}
	return 0;
}

static int seal_row(ftm_store_t *st, const ftm_token_t *t, ftm_store_row_t *row, char *err, size_t err_len)
{
	memset(row, 0, sizeof(*row));
	row->tok = *t;
	ftm_memzero(row->tok.seed, sizeof(row->tok.seed));
	row->tok.seed_len = 0;
	return ftm_seal(st->key, t->serial, t->seed, t->seed_len, row->sealed, sizeof(row->sealed),
			&row->sealed_len, err, err_len);
}

/* The seed in clear into tok (the caller zeroes it when done). */
static int unseal_row(ftm_store_t *st, const ftm_store_row_t *row, ftm_token_t *tok, char *err, size_t err_len)
{
	*tok = row->tok;
	if (ftm_unseal(st->key, row->tok.serial, row->sealed, row->sealed_len, tok->seed, sizeof(tok->seed),
		       &tok->seed_len, err, err_len) != 0) {
		ftm_log(&st->log, FTM_LOG_ERR, "token %s: seed does not decrypt (wrong key file or altered store)",
			row->tok.serial);
		SETERR("token %s: seed does not decrypt (wrong key file, or the store was altered)", row->tok.serial);
		ftm_memzero(tok, sizeof(*tok));
		return -1;
	}
	return 0;
}

static int serial_order(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A serial that appears twice among toks, or NULL. Sorted once and neighbours compared: n log n, where
 * comparing each token with every earlier one was quadratic (minutes for a 100k-token import). */
static const char *serial_twice(const ftm_token_t *toks, size_t n, bool *no_memory)
{
	const char **serials = malloc(n * sizeof(*serials));
	const char *twice = NULL;

	if (serials == NULL) {
		*no_memory = true;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		serials[i] = toks[i].serial;
	qsort(serials, n, sizeof(*serials), serial_order);
	for (size_t i = 1; i < n && twice == NULL; i++)
		if (strcmp(serials[i - 1], serials[i]) == 0)
			twice = serials[i];
	free(serials);
	return twice;
}

int ftm_store_token_add(ftm_store_t *st, const ftm_token_t *tok, char *err, size_t err_len)
{
	return ftm_store_token_import(st, tok, 1, err, err_len);
}

struct import_ctx {
	ftm_store_t		*st;
	const ftm_token_t	*toks;
};

/* The backend's next chunk of an import: sealed now, so only a chunk of sealed rows is ever held (a
 * sealed copy of every token doubled an import's memory). */
static int import_fill(void *ctx, size_t first, ftm_store_row_t *rows, size_t k, char *err, size_t err_len)
{
	const struct import_ctx *ic = ctx;

	for (size_t i = 0; i < k; i++)
		if (seal_row(ic->st, &ic->toks[first + i], &rows[i], err, err_len) != 0)
			return -1;
	return 0;
}

int ftm_store_token_import(ftm_store_t *st, const ftm_token_t *toks, size_t n, char *err, size_t err_len)
{
	struct import_ctx ic = { st, toks };
	const char *twice;
	bool no_memory = false;
	int rc;

	if (st == NULL || (toks == NULL && n > 0)) {
		SETERR("no token store");
		return -1;
	}
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (validate(&toks[i], err, err_len) != 0)
			return -1;
	if ((twice = serial_twice(toks, n, &no_memory)) != NULL || no_memory) {
		if (no_memory)
			SETERR("out of memory");
		else
			SETERR("token %s appears twice", twice);
		return -1;
	}
	rc = st->ops->insert(st->be, n, import_fill, &ic, err, err_len);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "token store: %zu token(s) added", n);
	return rc;
}

int ftm_store_tokens_present(ftm_store_t *st, const char *const *serials, size_t n, bool *in_store,
			     char *err, size_t err_len)
{
	ftm_store_row_t *row;
	int rc = 0;

	if (st == NULL || ((serials == NULL || in_store == NULL) && n > 0)) {
		SETERR("no token store");
		return -1;
	}
	if (n == 0)
		return 0;
	memset(in_store, 0, n * sizeof(*in_store));
	if (st->ops->present != NULL)
		return st->ops->present(st->be, serials, n, in_store, err, err_len);
	row = calloc(1, sizeof(*row));
	if (row == NULL) {
		SETERR("out of memory");
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		int got = st->ops->get(st->be, serials[i], row, err, err_len);

		if (got < 0)
			rc = -1;
		in_store[i] = got == 0;
	}
	free(row);
	return rc;
}

int ftm_store_token_get(ftm_store_t *st, const char *serial, ftm_token_t *out, char *err, size_t err_len)
{
	ftm_store_row_t *row;
	int rc;

	if (st == NULL || serial == NULL || out == NULL) {
		SETERR("no token store");
		return -1;
	}
	row = calloc(1, sizeof(*row));
	if (row == NULL) {
		SETERR("out of memory");
		return -1;
	}
	rc = st->ops->get(st->be, serial, row, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc == 0 && unseal_row(st, row, out, err, err_len) != 0)
		rc = -1;
	free(row);
	return rc;
}

int ftm_store_token_reissue(ftm_store_t *st, const ftm_token_t *tok, char *err, size_t err_len)
{
	ftm_store_row_t *row;
	ftm_token_t t;
	int rc = -1;

	if (st == NULL || tok == NULL) {
		SETERR("no token store");
		return -1;
	}
	t = *tok;
	t.created = time(NULL);
	snprintf(t.user, sizeof(t.user), "%s", "-");	/* the user does not change; validate the rest */
	t.push[0] = '\0';
	row = calloc(1, sizeof(*row));
	if (row == NULL) {
		SETERR("out of memory");
		goto out;
	}
	if (validate(&t, err, err_len) != 0 || seal_row(st, &t, row, err, err_len) != 0)
		goto out;
	/* A re-issued token starts over: active, never used, no failures. */
	row->tok.status = FTM_TOKEN_ACTIVE;
	row->tok.last_step = -1;
	row->tok.failures = 0;
	row->tok.lock_reason = FTM_LOCK_NONE;
	row->tok.locked_at = 0;
	rc = st->ops->reissue(st->be, row, err, err_len);
	if (rc == 1)
		SETERR("no token %s", tok->serial);
	/* the old links already point at a seal that is gone; forget them too */
	if (rc == 0 && st->ops->act_revoke != NULL && st->ops->act_revoke(st->be, tok->serial, NULL, 0) != 0)
		ftm_log(&st->log, FTM_LOG_WARN, "token %s: its old activation links could not be removed "
			"(they no longer open)", tok->serial);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "token %s re-issued", tok->serial);
out:
	ftm_memzero(&t, sizeof(t));
	free(row);
	return rc;
}

int ftm_store_token_set_status(ftm_store_t *st, const char *serial, ftm_token_status_t status,
			       char *err, size_t err_len)
{
	int rc;

	if (st == NULL || serial == NULL) {
		SETERR("no token store");
		return -1;
	}
	/* unlock also clears the failure count, so the next wrong code does not lock again at once; an
	 * admin's lock is kept whatever lockout_duration says */
	rc = st->ops->set_status(st->be, serial, status, status == FTM_TOKEN_ACTIVE ? FTM_LOCK_NONE : FTM_LOCK_ADMIN,
				 status == FTM_TOKEN_ACTIVE ? 0 : (int64_t)time(NULL), status == FTM_TOKEN_ACTIVE,
				 err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "token %s %s", serial, status == FTM_TOKEN_ACTIVE ? "unlocked" : "locked");
	return rc;
}

int ftm_store_token_set_push(ftm_store_t *st, const char *serial, const char *push, char *err, size_t err_len)
{
	const char *colon;
	int rc;

	if (st == NULL || serial == NULL || push == NULL) {
		SETERR("no token store");
		return -1;
	}
	colon = strchr(push, ':');
	if (!printable(push, FTM_PUSH_MAX) ||
	    (push[0] != '\0' && (colon == NULL || colon == push || colon[1] == '\0'))) {
		SETERR("push target must be CHANNEL:TARGET");
		return -1;
	}
	rc = st->ops->set_push(st->be, serial, push, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	return rc;
}

static void recovery_forget_if_tokenless(ftm_store_t *st, const char *serial, const char *user);
static void token_user(ftm_store_t *st, const char *serial, char user[FTM_USER_MAX]);

int ftm_store_token_set_user(ftm_store_t *st, const char *serial, const char *user, char *err, size_t err_len)
{
	char before[FTM_USER_MAX] = "";
	int rc;

	if (st == NULL || serial == NULL || user == NULL) {
		SETERR("no token store");
		return -1;
	}
	if (!printable(user, FTM_USER_MAX)) {
		SETERR("bad user name (too long or control characters)");
		return -1;
	}
	token_user(st, serial, before);
	rc = st->ops->set_user(st->be, serial, user, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "token %s assigned to '%s'", serial, user);
	if (rc == 0 && strcmp(before, user) != 0)
		recovery_forget_if_tokenless(st, serial, before);
	return rc;
}

int ftm_store_token_delete(ftm_store_t *st, const char *serial, char *err, size_t err_len)
{
	char user[FTM_USER_MAX] = "";
	int rc;

	if (st == NULL || serial == NULL) {
		SETERR("no token store");
		return -1;
	}
	token_user(st, serial, user);
	rc = st->ops->remove(st->be, serial, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc == 0 && st->ops->act_revoke != NULL && st->ops->act_revoke(st->be, serial, NULL, 0) != 0)
		ftm_log(&st->log, FTM_LOG_WARN, "token %s: its activation links could not be removed "
			"(they no longer open)", serial);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "token %s deleted", serial);
	if (rc == 0)
		recovery_forget_if_tokenless(st, serial, user);
	return rc;
}

struct list_ctx {
	ftm_store_t	*st;
	ftm_token_cb	cb;
	void		*ctx;
	char		*err;
	size_t		err_len;
	int		failed;
	ftm_token_t	tok;
};

static int list_one(void *c, const ftm_store_row_t *row)
{
	struct list_ctx *lc = c;
	int stop;

	if (unseal_row(lc->st, row, &lc->tok, lc->err, lc->err_len) != 0) {
		lc->failed = 1;
		return 1;
	}
	stop = lc->cb(lc->ctx, &lc->tok);
	ftm_memzero(&lc->tok, sizeof(lc->tok));
	return stop;
}

int ftm_store_token_list(ftm_store_t *st, const char *user, ftm_token_cb cb, void *ctx,
			 char *err, size_t err_len)
{
	struct list_ctx *lc;
	int rc;

	if (st == NULL || cb == NULL) {
		SETERR("no token store");
		return -1;
	}
	lc = calloc(1, sizeof(*lc));
	if (lc == NULL) {
		SETERR("out of memory");
		return -1;
	}
	lc->st = st;
	lc->cb = cb;
	lc->ctx = ctx;
	lc->err = err;
	lc->err_len = err_len;
	rc = st->ops->list(st->be, user, list_one, lc, err, err_len);
	if (lc->failed)
		rc = -1;
	free(lc);
	if (rc != 0)
		ftm_metrics_store_error(FTM_METRICS_STORE_LIST);
	return rc;
}

static int list_info_one(void *c, const ftm_store_row_t *row)
{
	const struct list_ctx *lc = c;

	return lc->cb(lc->ctx, &row->tok);	/* row->tok holds no seed: the backend keeps it sealed */
}

int ftm_store_token_list_info(ftm_store_t *st, const char *user, ftm_token_cb cb, void *ctx,
			      char *err, size_t err_len)
{
	struct list_ctx lc = { .st = st, .cb = cb, .ctx = ctx, .err = err, .err_len = err_len };
	int rc;

	if (st == NULL || cb == NULL) {
		SETERR("no token store");
		return -1;
	}
	rc = st->ops->list(st->be, user, list_info_one, &lc, err, err_len);
	if (rc != 0)
		ftm_metrics_store_error(FTM_METRICS_STORE_LIST);
	return rc;
}

/* ---- the verdict ---- */

static bool never_used(const ftm_token_t *t)
{
	return t->last_step < 0;
}

static bool activation_expired(const ftm_token_t *t, time_t now, unsigned activation_expire)
{
	return never_used(t) && activation_expire > 0 &&
	       (int64_t)now >= t->created + (int64_t)activation_expire * 60;
}

/* When a lock by failures ends: locked_at + lockout_duration minutes; 0 when it never ends by itself. */
static int64_t unlock_at(const ftm_token_t *t, unsigned lockout_duration)
{
	if (t->status == FTM_TOKEN_ACTIVE || t->lock_reason != FTM_LOCK_FAILURES || lockout_duration == 0)
		return 0;
	return t->locked_at + (int64_t)lockout_duration * 60;
}

static bool lock_ended(const ftm_token_t *t, time_t now, unsigned lockout_duration)
{
	int64_t at = unlock_at(t, lockout_duration);

	return at > 0 && (int64_t)now >= at;
}

int64_t ftm_token_unlock_at(const ftm_token_t *tok, const ftm_policy_t *policy)
{
	return tok != NULL && policy != NULL ? unlock_at(tok, policy->lockout_duration) : 0;
}

const char *ftm_lock_reason_name(ftm_lock_reason_t reason)
{
	switch (reason) {
	case FTM_LOCK_FAILURES:	return "failures";
	case FTM_LOCK_ADMIN:	return "admin";
	case FTM_LOCK_NONE:	break;
	}
	return "";
}

ftm_token_state_t ftm_token_state(const ftm_token_t *tok, time_t now, const ftm_policy_t *policy)
{
	if (tok->status != FTM_TOKEN_ACTIVE && (policy == NULL || !lock_ended(tok, now, policy->lockout_duration)))
		return FTM_TOKEN_STATE_LOCKED;
	if (!never_used(tok))
		return FTM_TOKEN_STATE_ACTIVE;
	return policy != NULL && activation_expired(tok, now, policy->activation_expire)
		? FTM_TOKEN_STATE_EXPIRED : FTM_TOKEN_STATE_PENDING;
}

const char *ftm_token_state_name(const ftm_token_t *tok, time_t now, const ftm_policy_t *policy)
{
	if (tok == NULL)
		return "unknown";
	switch (ftm_token_state(tok, now, policy)) {
	case FTM_TOKEN_STATE_ACTIVE:	return "active";
	case FTM_TOKEN_STATE_PENDING:	return "pending";
	case FTM_TOKEN_STATE_EXPIRED:	return "expired";
	case FTM_TOKEN_STATE_LOCKED:	return "locked";
	}
	return "unknown";
}

struct verdict_ctx {
	ftm_store_t			*st;
	const char			*user;
	const char			*code;
	time_t				now;
	const ftm_verify_params_t	*p;
	ftm_verdict_t			*out;
	size_t				unlocked;	/* locks that ended with lockout_duration */
	char				err[FTM_MSG_MAX];
};

static void set_verdict(ftm_verdict_t *v, ftm_verdict_code_t code, const ftm_token_t *t, const char *message)
{
	v->code = code;
	if (t != NULL)
		ftm_copy(v->serial, sizeof(v->serial), t->serial);
	ftm_copy(v->message, sizeof(v->message), message);
}

enum { T_USABLE, T_LOCKED, T_EXPIRED };

/* One more consecutive failure on a usable token, locking it at the threshold; the verdict keeps the
 * highest count. True when this failure locked it. Wrong codes and wrong typed numbers both count here. */
static bool add_failure(ftm_store_row_t *row, const ftm_verify_params_t *p, time_t now, ftm_verdict_t *v)
{
	row->tok.failures++;
	row->dirty = true;
	if (row->tok.failures > v->failures)
		v->failures = row->tok.failures;
	if (p->lockout_threshold > 0 && row->tok.failures >= p->lockout_threshold) {
		row->tok.status = FTM_TOKEN_LOCKED;
		row->tok.lock_reason = FTM_LOCK_FAILURES;	/* ends after lockout_duration, if any */
		row->tok.locked_at = (int64_t)now;
		v->now_locked = true;
		return true;
	}
	return false;
}

/* A locked verdict on token t: the user reads how long the lock lasts when it ends by itself. */
static void set_locked(ftm_verdict_t *v, const ftm_token_t *t, time_t now, const ftm_verify_params_t *p)
{
	int64_t at = unlock_at(t, p->lockout_duration);
	char msg[FTM_MSG_MAX];

	ftm_msg_locked(msg, sizeof(msg), at > (int64_t)now ? (unsigned)(at - (int64_t)now) : 0);
	set_verdict(v, FTM_VERDICT_LOCKED, t, msg);
	v->failures = t->failures;
}

/* Failures are the user's: a proven code or an approved push clears the count on each usable token. */
static void reset_failures(ftm_store_row_t *row)
{
	if (row->tok.failures != 0) {
		row->tok.failures = 0;
		row->dirty = true;
	}
}

/* What one classification pass over the user's tokens found; state[i] is T_USABLE, T_LOCKED or T_EXPIRED. */
typedef struct {
	size_t	n_locked;
	size_t	n_unlocked;		/* locks by failures that ended with lockout_duration */
	ssize_t	first_usable, first_locked;
} census_t;

/* The one classification pass both verdicts (a code, a recorded push answer) start from. A lock by
 * failures past its lockout_duration ends here: the token is active again with its failures reset,
 * written back with the verdict. */
static void classify(ftm_store_row_t *rows, size_t n, time_t now, const ftm_verify_params_t *p, int *state,
		     census_t *c)
{
	c->n_locked = 0;
	c->n_unlocked = 0;
	c->first_usable = c->first_locked = -1;
	for (size_t i = 0; i < n; i++) {
		if (lock_ended(&rows[i].tok, now, p->lockout_duration)) {
			rows[i].tok.status = FTM_TOKEN_ACTIVE;
			rows[i].tok.lock_reason = FTM_LOCK_NONE;
			rows[i].tok.locked_at = 0;
			rows[i].tok.failures = 0;
			rows[i].dirty = true;
			c->n_unlocked++;
		}
		if (rows[i].tok.status != FTM_TOKEN_ACTIVE) {
			state[i] = T_LOCKED;
			c->n_locked++;
			if (c->first_locked < 0)
				c->first_locked = (ssize_t)i;
		} else if (activation_expired(&rows[i].tok, now, p->activation_expire)) {
			state[i] = T_EXPIRED;
		} else {
			state[i] = T_USABLE;
			if (c->first_usable < 0)
				c->first_usable = (ssize_t)i;
		}
	}
}

/* A wrong answer (code or number): one more consecutive failure on every usable token. Returns how many
 * stay usable; *locked_now: a token this locked (prefer, when it is one of them), -1 if none. */
static size_t count_failure(ftm_store_row_t *rows, size_t n, const int *state, const ftm_verify_params_t *p,
			    time_t now, ssize_t prefer, ftm_verdict_t *v, ssize_t *locked_now)
{
	size_t still_usable = 0;

	*locked_now = -1;
	for (size_t i = 0; i < n; i++) {
		if (state[i] != T_USABLE)
			continue;
		if (!add_failure(&rows[i], p, now, v))
			still_usable++;
		else if (*locked_now < 0 || (ssize_t)i == prefer)
			*locked_now = (ssize_t)i;
	}
	return still_usable;
}

/* No usable token at all: locked when one is, else expired. */
static void none_usable(const ftm_store_row_t *rows, const census_t *c, time_t now, const ftm_verify_params_t *p,
			const char *expired_reason, ftm_verdict_t *v)
{
	if (c->first_locked >= 0) {
		set_locked(v, &rows[c->first_locked].tok, now, p);
		snprintf(v->reason, sizeof(v->reason), "every token of the user is locked or expired");
	} else {
		set_verdict(v, FTM_VERDICT_EXPIRED, &rows[0].tok, FTM_MSG_EXPIRED);
		snprintf(v->reason, sizeof(v->reason), "%s", expired_reason);
	}
}

/* Failures are the user's: after a proven factor they start again from zero on every usable token. */
static void reset_usable(ftm_store_row_t *rows, size_t n, const int *state)
{
	for (size_t i = 0; i < n; i++)
		if (state[i] == T_USABLE)
			reset_failures(&rows[i]);
}

/* A caller without parameters gets the store's policy (ftm_store_policy); NULL when it cannot be read
 * (the verdict then fails closed), with the reason in err. */
static const ftm_verify_params_t *params_or_policy(ftm_store_t *st, const ftm_verify_params_t *params,
						   ftm_verify_params_t *buf, char *err, size_t err_len)
{
	ftm_policy_t pol;

	if (params != NULL)
		return params;
	if (ftm_store_policy(st, &pol, err, err_len) != 0)
		return NULL;
	memset(buf, 0, sizeof(*buf));
	buf->window = pol.window;
	buf->lockout_threshold = pol.lockout_threshold;
	buf->activation_expire = pol.activation_expire;
	buf->lockout_duration = pol.lockout_duration;
	buf->consume = true;
	return buf;
}

_Static_assert(FTM_PROOF_SEAL_LEN == FTM_SEAL_NONCE_LEN, "a proof names a sealing by its nonce");

/* msg[*pos...] = s and its NUL; false when it does not fit in max. */
static bool put_field(char *msg, size_t max, size_t *pos, const void *s, size_t len)
{
	if (len > max - *pos)
		return false;
	memcpy(msg + *pos, s, len);
	*pos += len;
	return true;
}

/* The proof's MAC: user, code, serial (each with its NUL), step, created (8 bytes each) and seal under
 * the handle's proof key. A proof lives only as long as the handle's key: the layout is not stored.
 * The fields after the MAC (step_only, rowid, last_step, period) are not in it: they only say what the peek
 * read, and consume_proven's compare checks each of them against the row before anything is written. */
static int proof_mac(const ftm_store_t *st, const char *user, const char *code, const ftm_code_proof_t *pr,
		     uint8_t mac[32])
{
	char msg[FTM_USER_MAX + FTM_CODE_MAX + FTM_SERIAL_MAX + 2 * FTM_PROOF_SEAL_LEN + 64];
	uint64_t step = pr->step, created = (uint64_t)pr->created;
	size_t pos = 0;
	int rc = -1;

	if (put_field(msg, sizeof(msg), &pos, user, strlen(user) + 1) &&
	    put_field(msg, sizeof(msg), &pos, code, strlen(code) + 1) &&
	    put_field(msg, sizeof(msg), &pos, pr->serial, strnlen(pr->serial, sizeof(pr->serial) - 1)) &&
	    put_field(msg, sizeof(msg), &pos, "", 1) &&
	    put_field(msg, sizeof(msg), &pos, &step, sizeof(step)) &&
	    put_field(msg, sizeof(msg), &pos, &created, sizeof(created)) &&
	    put_field(msg, sizeof(msg), &pos, pr->seal, FTM_PROOF_SEAL_LEN))
		rc = ftm_hmac_sha256_with(st->proof_mac_key, msg, pos, mac);
	ftm_memzero(msg, sizeof(msg));
	return rc;
}

/* A proof this handle made for this user and code (and not altered since). */
static bool proof_genuine(const struct verdict_ctx *vc, const ftm_code_proof_t *pr)
{
	uint8_t mac[32];
	bool genuine = proof_mac(vc->st, vc->user, vc->code, pr, mac) == 0 && ftm_ct_equal(mac, pr->mac, sizeof(mac));

	ftm_memzero(mac, sizeof(mac));
	return genuine;
}

/* The proven step still inside the drift window at now, and newer than the last accepted one. */
static bool step_still_good(uint64_t step, int64_t last_step, unsigned period, time_t now,
			    const ftm_verify_params_t *p)
{
	uint64_t cur = ftm_totp_step(now, period);

	return step + p->window >= cur && step <= cur + p->window && (last_step < 0 || (int64_t)step > last_step);
}

/* The row an earlier peek of this code proved, when that still holds: the same token, sealed the same
 * way (not re-issued), usable, the step still inside the drift window and newer than the last accepted
 * one. -1 otherwise: the caller tries every token as if there were no proof. */
static ssize_t proven_row(const struct verdict_ctx *vc, const ftm_store_row_t *rows, size_t n, const int *state,
			  uint64_t *step)
{
	const ftm_code_proof_t *pr = vc->p->proof;

	if (pr == NULL || pr->serial[0] == '\0' || !proof_genuine(vc, pr))
		return -1;	/* none, or made for another code or user, or by another handle */
	for (size_t i = 0; i < n; i++) {
		const ftm_store_row_t *r = &rows[i];

		if (strcmp(r->tok.serial, pr->serial) != 0)
			continue;
		if (state[i] != T_USABLE || r->tok.created != pr->created || r->sealed_len <= FTM_PROOF_SEAL_LEN ||
		    !ftm_ct_equal(r->sealed + 1, pr->seal, FTM_PROOF_SEAL_LEN) ||
		    !step_still_good(pr->step, r->tok.last_step, r->tok.period, vc->now, vc->p))
			return -1;
		*step = pr->step;
		return (ssize_t)i;
	}
	return -1;
}

/* The reason of an accepted code, "code accepted by token SERIAL (step N[, as the split's peek
 * proved])", cut like snprintf's. Put together here: it is the reason of every login's two decisions
 * (the peek and the verdict), and snprintf's parsing of the format cost ~1.4k instructions each. */
static void reason_accepted(char *out, size_t max, const char *serial, uint64_t step, bool proven)
{
	char num[24];
	size_t i = sizeof(num) - 1, pos = 0;
	const char *parts[5];

	num[i] = '\0';
	do {
		num[--i] = (char)('0' + step % 10);
		step /= 10;
	} while (step > 0);
	parts[0] = "code accepted by token ";
	parts[1] = serial;
	parts[2] = " (step ";
	parts[3] = num + i;
	parts[4] = proven ? ", as the split's peek proved)" : ")";
	if (max == 0)
		return;
	for (size_t k = 0; k < 5; k++) {
		size_t len = strlen(parts[k]);

		if (len > max - 1 - pos)
			len = max - 1 - pos;
		memcpy(out + pos, parts[k], len);
		pos += len;
	}
	out[pos] = '\0';
}

/* Runs inside the backend's transaction: nothing here may leave the seed or the code behind. The
 * states of a user's first DECIDE_FEW tokens and the token tried live on the stack (most users hold one
 * token): two callocs and two frees a decision less. */
#define DECIDE_FEW	8

static int decide(void *c, ftm_store_row_t *rows, size_t n)
{
	struct verdict_ctx *vc = c;
	ftm_verdict_t *v = vc->out;
	const ftm_verify_params_t *p = vc->p;
	ssize_t ok = -1, replay = -1, locked_hit = -1, expired_hit = -1;
	uint64_t ok_step = 0, replay_step = 0;
	bool proven;
	census_t census;
	int state_few[DECIDE_FEW], *state;
	ftm_token_t tok, *t = &tok;	/* the token tried, its seed in clear: zeroed after each try */

	memset(v, 0, sizeof(*v));	/* a backend may decide again on rows it re-read: each call starts over */
	if (n == 0) {
		set_verdict(v, FTM_VERDICT_NO_TOKEN, NULL, FTM_MSG_NO_TOKEN);
		snprintf(v->reason, sizeof(v->reason), "user holds no token");
		return 0;
	}
	state = n <= DECIDE_FEW ? memset(state_few, 0, sizeof(state_few)) : calloc(n, sizeof(*state));
	if (state == NULL) {
		snprintf(vc->err, sizeof(vc->err), "out of memory");
		return -1;
	}
	for (size_t i = 0; p->tokens_cb != NULL && i < n; i++)
		p->tokens_cb(p->tokens_ctx, &rows[i].tok);	/* row->tok holds no seed */
	classify(rows, n, vc->now, p, state, &census);
	vc->unlocked = census.n_unlocked;
	ok = proven_row(vc, rows, n, state, &ok_step);
	proven = ok >= 0;
	/* Every token is tried, whatever its state, so the answer does not depend on the order. */
	for (size_t i = 0; ok < 0 && i < n; i++) {
		uint64_t step = 0;
		bool hit;

		if (unseal_row(vc->st, &rows[i], t, vc->err, sizeof(vc->err)) != 0) {
			if (state != state_few)
				free(state);
			return -1;
		}
		hit = ftm_totp_match(t->seed, t->seed_len, t->alg, t->digits, t->period, p->window,
				     vc->now, vc->code, &step);
		ftm_memzero(t, sizeof(*t));
		if (!hit)
			continue;
		if (state[i] == T_LOCKED) {
			if (locked_hit < 0)
				locked_hit = (ssize_t)i;
		} else if (state[i] == T_EXPIRED) {
			if (expired_hit < 0)
				expired_hit = (ssize_t)i;
		} else if (rows[i].tok.last_step >= 0 && (int64_t)step <= rows[i].tok.last_step) {
			if (replay < 0) {
				replay = (ssize_t)i;
				replay_step = step;
			}
		} else if (ok < 0) {
			ok = (ssize_t)i;
			ok_step = step;
		}
	}

	if (ok >= 0) {
		ftm_store_row_t *r = &rows[ok];
		/* a peek's: every token of the user as the verdict leaves it but for this one's step (active,
		 * so no lock to end; no failures, so none to reset): a verdict on this proof may then compare
		 * the rows instead of reading them again (consume_proven) */
		bool step_only = !p->consume && r->rowid != 0;
		int64_t prev_step = r->tok.last_step;

		for (size_t i = 0; step_only && i < n; i++)
			step_only = !rows[i].dirty && rows[i].tok.status == FTM_TOKEN_ACTIVE && rows[i].tok.failures == 0;

		r->tok.last_step = (int64_t)ok_step;
		r->dirty = true;
		reset_usable(rows, n, state);
		set_verdict(v, FTM_VERDICT_OK, &r->tok, "");
		v->failures = 0;
		reason_accepted(v->reason, sizeof(v->reason), r->tok.serial, ok_step, proven);
		if (!p->consume) {	/* a peek's proof, for the verdict that follows; a spent code needs none */
			ftm_copy(v->proof.serial, sizeof(v->proof.serial), r->tok.serial);
			v->proof.step = ok_step;
			v->proof.created = r->tok.created;
			memcpy(v->proof.seal, r->sealed + 1, sizeof(v->proof.seal));
			v->proof.step_only = step_only;
			v->proof.rowid = step_only ? r->rowid : 0;
			v->proof.last_step = step_only ? prev_step : 0;
			v->proof.period = r->tok.period;
			if (proof_mac(vc->st, vc->user, vc->code, &v->proof, v->proof.mac) != 0)
				memset(&v->proof, 0, sizeof(v->proof));	/* no proof: the verdict tries every token */
		}
	} else if (replay >= 0) {
		ftm_store_row_t *r = &rows[replay];
		char msg[FTM_MSG_MAX];

		v->wait_seconds = ftm_totp_seconds_left(vc->now, r->tok.period);
		ftm_msg_replay(msg, sizeof(msg), v->wait_seconds);
		set_verdict(v, FTM_VERDICT_REPLAY, &r->tok, msg);
		v->failures = r->tok.failures;
		snprintf(v->reason, sizeof(v->reason), "token %s: code of step %llu already used (last accepted %lld)",
			 r->tok.serial, (unsigned long long)replay_step, (long long)r->tok.last_step);
	} else if (locked_hit >= 0) {
		set_locked(v, &rows[locked_hit].tok, vc->now, p);
		snprintf(v->reason, sizeof(v->reason), "token %s is locked", rows[locked_hit].tok.serial);
	} else if (expired_hit >= 0) {
		set_verdict(v, FTM_VERDICT_EXPIRED, &rows[expired_hit].tok, FTM_MSG_EXPIRED);
		snprintf(v->reason, sizeof(v->reason), "token %s was never used within its activation window",
			 rows[expired_hit].tok.serial);
	} else if (census.first_usable >= 0) {
		ssize_t locked_now;

		if (count_failure(rows, n, state, p, vc->now, -1, v, &locked_now) == 0) {
			unsigned failures = v->failures;

			set_locked(v, &rows[locked_now].tok, vc->now, p);
			v->failures = failures;
			snprintf(v->reason, sizeof(v->reason), "wrong code: token %s locked after %u consecutive failures",
				 rows[locked_now].tok.serial, v->failures);
		} else {
			set_verdict(v, FTM_VERDICT_BAD_CODE, &rows[census.first_usable].tok, FTM_MSG_BAD_CODE);
			snprintf(v->reason, sizeof(v->reason), "wrong code (%u consecutive failure%s)%s",
				 v->failures, v->failures == 1 ? "" : "s",
				 locked_now >= 0 ? ": a token of the user reached the lockout threshold" : "");
		}
	} else {
		none_usable(rows, &census, vc->now, p, "every token of the user expired unused", v);
	}
	if (state != state_few)
		free(state);
	return 0;
}

/* The verdict's audit row: what the caller said (who, where, which event) and what was decided. A
 * proven factor that is not a code (an approved push, the right number) reads "approved", a recovery
 * code "used"; the rest carry the verdict's name. */
static void audit_verdict(ftm_audit_row_t *a, const ftm_verdict_t *v, time_t now, bool recorded)
{
	static const char *const names[] = {
		[FTM_VERDICT_OK] = FTM_AUDIT_ACCEPTED, [FTM_VERDICT_BAD_CODE] = FTM_AUDIT_WRONG,
		[FTM_VERDICT_REPLAY] = FTM_AUDIT_REPLAY, [FTM_VERDICT_LOCKED] = FTM_AUDIT_LOCKED,
		[FTM_VERDICT_EXPIRED] = FTM_AUDIT_EXPIRED, [FTM_VERDICT_NO_TOKEN] = FTM_AUDIT_NO_TOKEN,
		[FTM_VERDICT_ERROR] = FTM_AUDIT_ERROR,
	};
	const char *result = (unsigned)v->code < sizeof(names) / sizeof(names[0]) ? names[v->code] : FTM_AUDIT_ERROR;

	if (v->code == FTM_VERDICT_OK && recorded)
		result = FTM_AUDIT_APPROVED;
	else if (v->code == FTM_VERDICT_OK && strcmp(a->event, FTM_AUDIT_EV_RECOVERY) == 0)
		result = FTM_AUDIT_USED;
	a->at = (int64_t)now;
	ftm_copy(a->result, sizeof(a->result), result);
	ftm_copy(a->serial, sizeof(a->serial), v->serial);
	ftm_copy(a->reason, sizeof(a->reason), v->reason);
}

/* A verdict decided before or instead of the store's (no user, the store failed): no token, nothing
 * counted, only this code, message and reason. */
static void set_verdict_only(ftm_verdict_t *out, ftm_verdict_code_t code, const char *message, const char *reason)
{
	memset(out, 0, sizeof(*out));
	set_verdict(out, code, NULL, message);
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

static int decide_audited(void *c, ftm_store_row_t *rows, size_t n)
{
	struct verdict_ctx *vc = c;
	int rc = decide(c, rows, n);

	if (rc == 0)
		audit_verdict(vc->p->audit, vc->out, vc->now, false);
	return rc;
}

/* A consuming verdict on a peek's read whose only write is the proven token's step
 * (ftm_code_proof_t.step_only), where the backend can compare the rows instead of reading them again:
 * the same OK that decide() would reach on the rows read again (the step recorded, no failure to
 * reset, no lock to end on any token of the user), written only if they are still as the peek read
 * them. 1: decided (and durable); 0: not decided here (no such proof, it no longer holds at now, or
 * the user's tokens changed since the peek: the caller decides on the rows read again); -1: the store
 * failed (vc->err). */
static int consume_proven(struct verdict_ctx *vc)
{
	const ftm_verify_params_t *p = vc->p;
	const ftm_code_proof_t *pr = p->proof;
	ftm_verdict_t *v = vc->out;
	ftm_token_t t = { .status = FTM_TOKEN_ACTIVE };
	ftm_audit_row_t before;
	bool applied = false;
	int rc;

	if (vc->st->ops->consume_proven == NULL || pr == NULL || !pr->step_only || pr->serial[0] == '\0' ||
	    pr->period == 0 || !proof_genuine(vc, pr))
		return 0;
	t.created = pr->created;
	t.last_step = pr->last_step;
	if (!step_still_good(pr->step, pr->last_step, pr->period, vc->now, p) ||
	    activation_expired(&t, vc->now, p->activation_expire))
		return 0;	/* decide() on the rows read again says why */
	memset(v, 0, sizeof(*v));
	v->code = FTM_VERDICT_OK;
	ftm_copy(v->serial, sizeof(v->serial), pr->serial);
	reason_accepted(v->reason, sizeof(v->reason), pr->serial, pr->step, true);
	if (p->audit != NULL) {
		before = *p->audit;	/* given back as it came unless this verdict is the one decided */
		audit_verdict(p->audit, v, vc->now, false);
	}
	rc = vc->st->ops->consume_proven(vc->st->be, vc->user, pr, p->audit, &applied, vc->err, sizeof(vc->err));
	if (rc == 0 && applied)
		return 1;
	memset(v, 0, sizeof(*v));
	if (p->audit != NULL)
		*p->audit = before;
	if (rc != 0)
		return -1;
	ftm_log(&vc->st->log, FTM_LOG_DEBUG, "verdict for '%s': the tokens changed since the split's peek "
		"proved token %s: decided on the rows read again", vc->user, pr->serial);
	return 0;
}

int ftm_store_verify_code(ftm_store_t *st, const char *user, const char *code, time_t now,
			  const ftm_verify_params_t *params, ftm_verdict_t *out)
{
	struct verdict_ctx vc;
	ftm_verify_params_t dflt;
	int rc = -1;

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	memset(&vc, 0, sizeof(vc));
	if (st != NULL && user != NULL && code != NULL && user[0] == '\0') {
		/* unassigned tokens have user "": an empty login name must never reach them */
		set_verdict_only(out, FTM_VERDICT_NO_TOKEN, FTM_MSG_NO_TOKEN, "empty user name");
		return 0;
	}
	if (st == NULL || user == NULL || code == NULL) {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, "no token store, user or code");
		return -1;
	}
	if (params != NULL && params->consume && params->tokens_cb != NULL) {
		/* a consuming verdict may be decided again on rows read again (a batch run again after a
		 * rollback, a CAS conflict): tokens_cb would count each token twice */
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, "tokens_cb given to a consuming verdict");
		return -1;
	}
	vc.st = st;
	vc.user = user;
	vc.code = code;
	vc.now = now;
	vc.p = params_or_policy(st, params, &dflt, vc.err, sizeof(vc.err));
	vc.out = out;
	/* a consuming verdict on a peek's proof compares before it reads (consume_proven: 1 decided) */
	if (vc.p != NULL)
		rc = vc.p->consume ? consume_proven(&vc) : 0;
	if (rc == 0)
		rc = vc.p->consume && vc.p->audit != NULL
		     ? st->ops->verdict_audited(st->be, user, true, decide_audited, &vc, vc.p->audit, vc.err, sizeof(vc.err))
		     : st->ops->verdict(st->be, user, vc.p->consume, decide, &vc, vc.err, sizeof(vc.err));
	else if (rc == 1)
		rc = 0;
	if (rc != 0) {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, vc.err[0] ? vc.err : "token store error");
		ftm_log(&st->log, FTM_LOG_ERR, "verdict for '%s': %s", user, out->reason);
		ftm_metrics_store_error(FTM_METRICS_STORE_VERDICT);
		return -1;
	}
	if (vc.unlocked > 0 && vc.p->consume)
		ftm_log(&st->log, FTM_LOG_INFO, "'%s': a lock by failures ended after lockout_duration (%u min): "
			"token active again, failures reset", user, vc.p->lockout_duration);
	ftm_log(&st->log, FTM_LOG_DEBUG, "verdict for '%s'%s: %s", user, vc.p->consume ? "" : " (peek)", out->reason);
	return 0;
}

/* ---- failures and successes of a push (number matching) ---- */

struct record_ctx {
	const char			*serial;	/* the token the answer was for ("" / NULL: any) */
	bool				failure;
	time_t				now;
	const ftm_verify_params_t	*p;
	ftm_verdict_t			*out;
};

/* Runs inside the backend's transaction, like decide(): no seed is unsealed here. */
static int decide_record(void *c, ftm_store_row_t *rows, size_t n)
{
	struct record_ctx *rc = c;
	ftm_verdict_t *v = rc->out;
	const ftm_verify_params_t *p = rc->p;
	bool named = rc->serial != NULL && rc->serial[0] != '\0';
	ssize_t hit = -1, locked_now = -1;
	census_t census;
	int *state;

	memset(v, 0, sizeof(*v));	/* as decide() */
	if (n == 0) {
		set_verdict(v, FTM_VERDICT_NO_TOKEN, NULL, FTM_MSG_NO_TOKEN);
		snprintf(v->reason, sizeof(v->reason), "user holds no token");
		return 0;
	}
	state = calloc(n, sizeof(*state));
	if (state == NULL)
		return -1;
	classify(rows, n, rc->now, p, state, &census);
	for (size_t i = 0; named && hit < 0 && i < n; i++)
		if (strcmp(rows[i].tok.serial, rc->serial) == 0)
			hit = (ssize_t)i;
	if (named && hit < 0) {
		/* the token the push went to is gone or another user's now: never an accept */
		set_verdict(v, FTM_VERDICT_NO_TOKEN, NULL, FTM_MSG_NO_TOKEN);
		snprintf(v->reason, sizeof(v->reason), "token %s is not the user's (deleted or reassigned)", rc->serial);
		if (!rc->failure)
			goto out;
	}
	if (!rc->failure) {
		ftm_store_row_t *r = &rows[hit >= 0 ? hit : census.first_usable >= 0 ? census.first_usable : 0];

		if (r->tok.status != FTM_TOKEN_ACTIVE) {
			set_locked(v, &r->tok, rc->now, p);
			snprintf(v->reason, sizeof(v->reason), "token %s was locked while its push was pending",
				 r->tok.serial);
			goto out;
		}
		/* like a proven code */
		reset_usable(rows, n, state);
		/* A token only ever used by push is used all the same: mark it, or its activation window would
		 * expire it as "never used". The mark is a step older than any code valid now (now - window - 1),
		 * so it refuses no code the user could still type. */
		if (r->tok.last_step < 0 && r->tok.period > 0) {
			uint64_t cur = ftm_totp_step((time_t)rc->now, r->tok.period);
			uint64_t back = (uint64_t)p->window + 1;

			r->tok.last_step = cur > back ? (int64_t)(cur - back) : 0;
			r->dirty = true;
		}
		set_verdict(v, FTM_VERDICT_OK, &r->tok, "");
		v->failures = 0;
		snprintf(v->reason, sizeof(v->reason), "success recorded on token %s (failures reset)", r->tok.serial);
		goto out;
	}

	if (hit >= 0 && state[hit] == T_LOCKED) {
		set_locked(v, &rows[hit].tok, rc->now, p);
		snprintf(v->reason, sizeof(v->reason), "token %s is locked", rows[hit].tok.serial);
		goto out;
	}
	if (census.first_usable < 0) {
		none_usable(rows, &census, rc->now, p, "every token of the user is locked or expired", v);
		goto out;
	}
	/* exactly like a wrong code */
	if (count_failure(rows, n, state, p, rc->now, hit, v, &locked_now) == 0 ||
	    (hit >= 0 && rows[hit].tok.status != FTM_TOKEN_ACTIVE)) {
		ssize_t i = hit >= 0 && rows[hit].tok.status != FTM_TOKEN_ACTIVE ? hit : locked_now;
		unsigned failures = v->failures;

		set_locked(v, &rows[i].tok, rc->now, p);
		v->failures = failures;
		snprintf(v->reason, sizeof(v->reason), "wrong answer: token %s locked after %u consecutive failures",
			 rows[i].tok.serial, v->failures);
	} else {
		set_verdict(v, FTM_VERDICT_BAD_CODE, &rows[hit >= 0 ? hit : census.first_usable].tok,
			    FTM_MSG_BAD_ANSWER);
		snprintf(v->reason, sizeof(v->reason), "wrong answer (%u consecutive failure%s)%s",
			 v->failures, v->failures == 1 ? "" : "s",
			 locked_now >= 0 ? ": a token of the user reached the lockout threshold" : "");
	}
out:
	free(state);
	return 0;
}

static int decide_record_audited(void *c, ftm_store_row_t *rows, size_t n)
{
	struct record_ctx *rc = c;
	int r = decide_record(c, rows, n);

	if (r == 0)
		audit_verdict(rc->p->audit, rc->out, rc->now, !rc->failure);
	return r;
}

static int record(ftm_store_t *st, const char *user, const char *serial, bool failure, time_t now,
		  const ftm_verify_params_t *params, ftm_verdict_t *out)
{
	const char *what = failure ? "failure" : "success";
	struct record_ctx rc;
	ftm_verify_params_t dflt;
	char err[FTM_MSG_MAX] = "";

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (st == NULL || user == NULL || user[0] == '\0') {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, "no token store or user");
		return -1;
	}
	memset(&rc, 0, sizeof(rc));
	rc.serial = serial;
	rc.failure = failure;
	rc.now = now;
	rc.p = params_or_policy(st, params, &dflt, err, sizeof(err));
	rc.out = out;
	/* always a write transaction: the count must not be lost to a concurrent verdict */
	if (rc.p == NULL ||
	    (rc.p->audit != NULL
	     ? st->ops->verdict_audited(st->be, user, true, decide_record_audited, &rc, rc.p->audit, err, sizeof(err))
	     : st->ops->verdict(st->be, user, true, decide_record, &rc, err, sizeof(err))) != 0) {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, err[0] ? err : "token store error");
		ftm_log(&st->log, FTM_LOG_ERR, "recording a %s for '%s': %s", what, user, out->reason);
		ftm_metrics_store_error(FTM_METRICS_STORE_VERDICT);
		return -1;
	}
	ftm_log(&st->log, FTM_LOG_DEBUG, "%s for '%s': %s", what, user, out->reason);
	return 0;
}

int ftm_store_record_failure(ftm_store_t *st, const char *user, const char *serial, time_t now,
			     const ftm_verify_params_t *params, ftm_verdict_t *out)
{
	return record(st, user, serial, true, now, params, out);
}

int ftm_store_record_success(ftm_store_t *st, const char *user, const char *serial, time_t now,
			     const ftm_verify_params_t *params, ftm_verdict_t *out)
{
	return record(st, user, serial, false, now, params, out);
}

/* ---- new tokens and their URI ---- */

int ftm_token_init(ftm_token_t *tok, const char *user, const char *serial, const char *seed_hex,
		   char *err, size_t err_len)
{
	if (tok == NULL || user == NULL) {
		SETERR("no user");
		return -1;
	}
	memset(tok, 0, sizeof(*tok));
	tok->alg = FTM_ALG_SHA1;
	tok->digits = 6;
	tok->period = 60;
	tok->status = FTM_TOKEN_ACTIVE;
	tok->last_step = -1;
	tok->created = time(NULL);
	if (!printable(user, FTM_USER_MAX)) {	/* "" = unassigned */
		SETERR("bad user name (too long or control characters)");
		return -1;
	}
	snprintf(tok->user, sizeof(tok->user), "%s", user);
	if (serial != NULL) {
		if (!valid_serial(serial)) {
			SETERR("bad serial: 1-%d characters of A-Z a-z 0-9 . _ -", FTM_SERIAL_MAX - 1);
			return -1;
		}
		snprintf(tok->serial, sizeof(tok->serial), "%s", serial);
	} else {
		uint8_t r[5];
		if (RAND_bytes(r, sizeof(r)) != 1) {
			SETERR("CSPRNG failure");
			return -1;
		}
		snprintf(tok->serial, sizeof(tok->serial), "FTKMOB%02X%02X%02X%02X%02X", r[0], r[1], r[2], r[3], r[4]);
	}
	if (seed_hex != NULL) {
		if (ftm_hex_decode(seed_hex, tok->seed, sizeof(tok->seed), &tok->seed_len) != 0 ||
		    tok->seed_len < SEED_MIN) {
			ftm_memzero(tok->seed, sizeof(tok->seed));
			tok->seed_len = 0;
			SETERR("bad seed: %d to %d bytes as hex", SEED_MIN, FTM_SEED_MAX);
			return -1;
		}
	} else {
		tok->seed_len = 20;
		if (RAND_bytes(tok->seed, (int)tok->seed_len) != 1) {
			ftm_memzero(tok->seed, sizeof(tok->seed));
			SETERR("CSPRNG failure");
			return -1;
		}
	}
	return 0;
}

/* RFC 3986 percent-encoding of everything but unreserved characters. */
static int url_encode(const char *in, char *out, size_t out_len, size_t *pos)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;
		bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			     c == '-' || c == '.' || c == '_' || c == '~';
		if (*pos + (plain ? 1 : 3) >= out_len)
			return -1;
		if (plain) {
			out[(*pos)++] = (char)c;
		} else {
			out[(*pos)++] = '%';
			out[(*pos)++] = hex[c >> 4];
			out[(*pos)++] = hex[c & 15];
		}
	}
	out[*pos] = '\0';
	return 0;
}

static int append(char *out, size_t out_len, size_t *pos, const char *s)
{
	size_t n = strlen(s);

	if (*pos + n >= out_len)
		return -1;
	memcpy(out + *pos, s, n + 1);
	*pos += n;
	return 0;
}

int ftm_token_otpauth_uri(const ftm_token_t *tok, const char *issuer, char *out, size_t out_len)
{
	char b32[(FTM_SEED_MAX * 8 + 4) / 5 + 1], tail[128];
	size_t pos = 0;
	int rc = -1;

	if (tok == NULL || out == NULL || out_len == 0 || tok->seed_len == 0 || tok->seed_len > FTM_SEED_MAX)
		return -1;
	out[0] = '\0';
	if (issuer == NULL || issuer[0] == '\0')
		issuer = "ftmpush";
	ftm_base32_encode(tok->seed, tok->seed_len, b32);
	snprintf(tail, sizeof(tail), "&algorithm=%s&digits=%u&period=%u",
		 ftm_alg_otpauth_name(tok->alg), tok->digits, tok->period);
	if (append(out, out_len, &pos, "otpauth://totp/") == 0 &&
	    url_encode(issuer, out, out_len, &pos) == 0 &&
	    append(out, out_len, &pos, ":") == 0 &&
	    url_encode(tok->user, out, out_len, &pos) == 0 &&
	    append(out, out_len, &pos, "?secret=") == 0 &&
	    append(out, out_len, &pos, b32) == 0 &&
	    append(out, out_len, &pos, "&issuer=") == 0 &&
	    url_encode(issuer, out, out_len, &pos) == 0 &&
	    append(out, out_len, &pos, tail) == 0)
		rc = 0;
	ftm_memzero(b32, sizeof(b32));
	if (rc != 0)
		ftm_memzero(out, out_len);
	return rc;
}

/* ---- activation links ---- */

const char *ftm_activation_code_name(ftm_activation_code_t c)
{
	switch (c) {
	case FTM_ACT_OK:	return "ok";
	case FTM_ACT_BAD_CODE:	return "wrong code";
	case FTM_ACT_UNKNOWN:	return "unknown link";
	case FTM_ACT_EXPIRED:	return "expired link";
	case FTM_ACT_USED:	return "used link";
	case FTM_ACT_EXHAUSTED:	return "too many wrong codes";
	case FTM_ACT_LOCKED:	return "token locked";
	case FTM_ACT_ERROR:	return "store error";
	}
	return "?";
}

/* A backend without activation links (ops left NULL) refuses them: never a crash, never a link. */
static bool has_links(const ftm_store_t *st)
{
	return st->ops->act_put != NULL && st->ops->act_verdict != NULL && st->ops->act_get_serial != NULL &&
	       st->ops->act_revoke != NULL;
}

static int sha256(const void *in, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	return EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : -1;
}

/* Any input (bounded) is hashed, so a malformed code costs what a well-formed unknown one does. */
static int code_hash(const char *code, uint8_t out[32])
{
	return sha256(code, strnlen(code, 8 * FTM_ACTIVATION_CODE_LEN), out);
}

static int64_t window_end(const ftm_token_t *t, unsigned activation_expire)
{
	return activation_expire > 0 ? t->created + (int64_t)activation_expire * 60 : 0;
}

int ftm_store_activation_issue(ftm_store_t *st, const char *serial, const char *email, time_t now,
			       unsigned activation_expire, char *code, size_t code_len,
			       int64_t *expires, char *err, size_t err_len)
{
	ftm_store_row_t *row = NULL;
	ftm_activation_row_t a;
	uint8_t raw[24];
	char b64[40];
	int rc = -1;

	if (st == NULL || serial == NULL || code == NULL || code_len < FTM_ACTIVATION_CODE_LEN + 1) {
		SETERR("no token store");
		return -1;
	}
	if (!has_links(st)) {
		SETERR("this token store (%s) does not keep activation links", st->ops->scheme);
		return -1;
	}
	if (email == NULL)
		email = "";
	if (!printable(email, FTM_EMAIL_MAX)) {
		SETERR("bad e-mail address (too long or control characters)");
		return -1;
	}
	memset(&a, 0, sizeof(a));
	row = calloc(1, sizeof(*row));
	if (row == NULL) {
		SETERR("out of memory");
		return -1;
	}
	rc = st->ops->get(st->be, serial, row, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc != 0)
		goto out;
	rc = -1;
	if (row->tok.user[0] == '\0') {
		SETERR("token %s is not assigned to a user: token assign %s USER first", serial, serial);
		goto out;
	}
	/* a link hands out the seed: only while the token was never used and its window is open */
	if (!never_used(&row->tok)) {
		SETERR("token %s is already in use: token reissue %s gives a new seed and a new link", serial, serial);
		goto out;
	}
	if (activation_expired(&row->tok, now, activation_expire)) {
		SETERR("token %s: its activation window has passed: token reissue %s starts a new one", serial, serial);
		goto out;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		SETERR("CSPRNG failure");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, raw, sizeof(raw));
	for (size_t i = 0; i < FTM_ACTIVATION_CODE_LEN; i++)
		b64[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	b64[FTM_ACTIVATION_CODE_LEN] = '\0';
	snprintf(a.serial, sizeof(a.serial), "%s", serial);
	snprintf(a.email, sizeof(a.email), "%s", email);
	a.created = (int64_t)now;
	a.expires = window_end(&row->tok, activation_expire);
	if (sha256(b64, FTM_ACTIVATION_CODE_LEN, a.code_hash) != 0 || sha256(row->sealed, row->sealed_len, a.seal_hash) != 0) {
		SETERR("cannot hash the activation code");
		goto out;
	}
	rc = st->ops->act_put(st->be, &a, err, err_len);
	if (rc == 1)
		SETERR("no token %s", serial);
	if (rc == 0) {
		memcpy(code, b64, FTM_ACTIVATION_CODE_LEN + 1);
		if (expires != NULL)
			*expires = a.expires;
		ftm_log(&st->log, FTM_LOG_INFO, "token %s: activation link issued%s", serial,
			email[0] ? " for e-mail" : "");
	}
out:
	ftm_memzero(raw, sizeof(raw));
	ftm_memzero(b64, sizeof(b64));
	free(row);
	return rc;
}

struct act_ctx {
	ftm_store_t			*st;
	const char			*otp;		/* NULL: open the page, change nothing */
	time_t				now;
	unsigned			activation_expire;
	const ftm_verify_params_t	*p;
	ftm_activation_t		*out;
	ftm_token_t			*tok;		/* open: the token with its seed */
	char				err[FTM_MSG_MAX];
};

static void act_set(ftm_activation_t *out, ftm_activation_code_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void act_set(ftm_activation_t *out, ftm_activation_code_t code, const char *fmt, ...)
{
	va_list ap;

	out->code = code;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
}

/* Runs inside the backend's transaction; the seed is unsealed only for a link that is still good. */
static int decide_activation(void *c, ftm_activation_row_t *a, ftm_store_row_t *row)
{
	struct act_ctx *ac = c;
	ftm_activation_t *out = ac->out;
	uint8_t seal[32];
	ftm_token_t *t;
	uint64_t step = 0;
	bool hit;

	if (a == NULL) {
		act_set(out, FTM_ACT_UNKNOWN, "no such activation link");
		return 0;
	}
	snprintf(out->serial, sizeof(out->serial), "%s", a->serial);
	snprintf(out->email, sizeof(out->email), "%s", a->email);
	out->expires = a->expires;
	out->tries_left = a->failures < FTM_ACTIVATION_TRIES ? FTM_ACTIVATION_TRIES - a->failures : 0;
	if (row == NULL || sha256(row->sealed, row->sealed_len, seal) != 0 ||
	    !ftm_ct_equal(seal, a->seal_hash, sizeof(seal))) {
		act_set(out, FTM_ACT_UNKNOWN, "token %s: link revoked (token deleted or re-issued)", a->serial);
		return 0;
	}
	if (a->used || !never_used(&row->tok)) {
		act_set(out, FTM_ACT_USED, "token %s: link already used (token active)", a->serial);
		return 0;
	}
	if ((a->expires > 0 && (int64_t)ac->now >= a->expires) ||
	    activation_expired(&row->tok, ac->now, ac->activation_expire)) {
		act_set(out, FTM_ACT_EXPIRED, "token %s: link expired", a->serial);
		return 0;
	}
	if (a->failures >= FTM_ACTIVATION_TRIES) {
		act_set(out, FTM_ACT_EXHAUSTED, "token %s: link refused after too many wrong codes", a->serial);
		return 0;
	}
	if (row->tok.status != FTM_TOKEN_ACTIVE) {
		if (!lock_ended(&row->tok, ac->now, ac->p->lockout_duration)) {
			act_set(out, FTM_ACT_LOCKED, "token %s is locked", a->serial);
			return 0;
		}
		/* a lock by failures past lockout_duration has ended, as at a login */
		row->tok.status = FTM_TOKEN_ACTIVE;
		row->tok.lock_reason = FTM_LOCK_NONE;
		row->tok.locked_at = 0;
		row->tok.failures = 0;
		row->dirty = true;
	}
	t = ac->otp == NULL ? ac->tok : calloc(1, sizeof(*t));
	if (t == NULL || unseal_row(ac->st, row, t, ac->err, sizeof(ac->err)) != 0) {
		if (ac->otp != NULL)
			free(t);
		if (t == NULL)
			snprintf(ac->err, sizeof(ac->err), "out of memory");
		return -1;
	}
	if (ac->otp == NULL) {
		act_set(out, FTM_ACT_OK, "token %s: enrolment page shown", a->serial);
		return 0;
	}
	/* the login's rule: inside the drift window, newer than the last accepted step (none yet) */
	hit = strlen(ac->otp) == t->digits &&
	      ftm_totp_match(t->seed, t->seed_len, t->alg, t->digits, t->period, ac->p->window, ac->now,
			     ac->otp, &step);
	ftm_memzero(t, sizeof(*t));
	free(t);
	if (hit) {
		row->tok.last_step = (int64_t)step;
		reset_failures(row);
		row->dirty = true;
		a->used = true;
		a->dirty = true;
		act_set(out, FTM_ACT_OK, "token %s activated", a->serial);
		return 0;
	}
	a->failures++;
	a->dirty = true;
	out->tries_left = a->failures < FTM_ACTIVATION_TRIES ? FTM_ACTIVATION_TRIES - a->failures : 0;
	if (out->tries_left == 0)
		act_set(out, FTM_ACT_EXHAUSTED, "token %s: wrong code, link refused from now on", a->serial);
	else
		act_set(out, FTM_ACT_BAD_CODE, "token %s: wrong code on the activation page", a->serial);
	return 0;
}

static int activation(ftm_store_t *st, const char *code, const char *otp, time_t now, unsigned activation_expire,
		      const ftm_verify_params_t *params, ftm_activation_t *out, ftm_token_t *tok)
{
	ftm_verify_params_t policy;
	struct act_ctx ac;
	uint8_t hash[32];

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (tok != NULL)
		memset(tok, 0, sizeof(*tok));
	memset(&ac, 0, sizeof(ac));
	if (st == NULL || code == NULL || !has_links(st) || code_hash(code, hash) != 0) {
		out->code = FTM_ACT_ERROR;
		snprintf(out->reason, sizeof(out->reason), "no token store or code");
		return -1;
	}
	ac.st = st;
	ac.otp = otp;
	ac.now = now;
	ac.p = params_or_policy(st, params, &policy, ac.err, sizeof(ac.err));	/* the store's, like a login */
	if (ac.p == NULL) {
		out->code = FTM_ACT_ERROR;
		snprintf(out->reason, sizeof(out->reason), "%s", ac.err);
		ftm_log(&st->log, FTM_LOG_ERR, "activation link: %s", out->reason);
		return -1;
	}
	ac.activation_expire = params != NULL || otp != NULL ? ac.p->activation_expire : activation_expire;
	ac.out = out;
	ac.tok = tok;
	if (st->ops->act_verdict(st->be, hash, otp != NULL, decide_activation, &ac, ac.err, sizeof(ac.err)) != 0) {
		memset(out, 0, sizeof(*out));
		if (tok != NULL)
			ftm_memzero(tok, sizeof(*tok));
		out->code = FTM_ACT_ERROR;
		snprintf(out->reason, sizeof(out->reason), "%s", ac.err[0] ? ac.err : "token store error");
		ftm_log(&st->log, FTM_LOG_ERR, "activation link: %s", out->reason);
		return -1;
	}
	if (out->code != FTM_ACT_OK && tok != NULL)
		ftm_memzero(tok, sizeof(*tok));
	ftm_log(&st->log, FTM_LOG_DEBUG, "activation link: %s", out->reason);
	return 0;
}

int ftm_store_activation_open(ftm_store_t *st, const char *code, time_t now, unsigned activation_expire,
			      ftm_activation_t *out, ftm_token_t *tok)
{
	if (tok == NULL)
		return -1;
	return activation(st, code, NULL, now, activation_expire, NULL, out, tok);
}

int ftm_store_activation_confirm(ftm_store_t *st, const char *code, const char *otp, time_t now,
				 const ftm_verify_params_t *params, ftm_activation_t *out)
{
	if (otp == NULL)
		otp = "";
	return activation(st, code, otp, now, 0, params, out, NULL);	/* the window: params', else the store's */
}

int ftm_store_activation_get(ftm_store_t *st, const char *serial, ftm_activation_t *out, char *err, size_t err_len)
{
	ftm_activation_row_t a;
	int rc;

	if (st == NULL || serial == NULL || out == NULL) {
		SETERR("no token store");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (!has_links(st))
		return 1;
	rc = st->ops->act_get_serial(st->be, serial, &a, err, err_len);
	if (rc != 0)
		return rc;
	snprintf(out->serial, sizeof(out->serial), "%s", a.serial);
	snprintf(out->email, sizeof(out->email), "%s", a.email);
	out->expires = a.expires;
	out->code = a.used ? FTM_ACT_USED : FTM_ACT_OK;
	out->tries_left = a.failures < FTM_ACTIVATION_TRIES ? FTM_ACTIVATION_TRIES - a.failures : 0;
	return 0;
}

/* ---- code-challenge States ---- */

/* The row's key: the State is a bearer secret, so what the database holds is its SHA-256. */
int ftm_store_state_id(const char *value, char id[65])
{
	unsigned char md[32];
	unsigned int n = 0;

	if (EVP_Digest(value, strlen(value), md, &n, EVP_sha256(), NULL) != 1 || n != sizeof(md))
		return -1;
	ftm_hex_encode(md, sizeof(md), id);
	return 0;
}

ftm_state_check_t ftm_store_state_check(const char *user, const char *client_id, const char *who,
					const char *from, int64_t now, int64_t expires)
{
	if (strcmp(who, user) != 0 || strcmp(from, client_id) != 0)
		return FTM_STATE_MISMATCH;
	return now >= expires ? FTM_STATE_EXPIRED : FTM_STATE_OK;
}

int ftm_store_challenge_issue(ftm_store_t *st, const char *user, const char *client, time_t now, unsigned ttl,
			      char state[FTM_STATE_HEX + 1], char *err, size_t err_len)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[FTM_STATE_HEX / 2];
	char id[65], client_id[65];
	int rc;

	if (st == NULL || user == NULL || state == NULL) {
		SETERR("no token store or user");
		return -1;
	}
	state[0] = '\0';
	if (RAND_bytes(r, sizeof(r)) != 1) {
		SETERR("CSPRNG failure");
		return -1;
	}
	for (size_t i = 0; i < sizeof(r); i++) {
		state[2 * i] = hex[r[i] >> 4];
		state[2 * i + 1] = hex[r[i] & 15];
	}
	state[FTM_STATE_HEX] = '\0';
	ftm_memzero(r, sizeof(r));
	if (ftm_store_state_id(state, id) != 0) {
		SETERR("SHA-256 failure");
		ftm_memzero(state, FTM_STATE_HEX + 1);
		return -1;
	}
	/* the client by its hash too: the whole binding, however long the NAS made it */
	if (ftm_store_state_id(client != NULL ? client : "", client_id) != 0) {
		SETERR("SHA-256 failure");
		ftm_memzero(state, FTM_STATE_HEX + 1);
		return -1;
	}
	rc = st->ops->state_put(st->be, id, user, client_id, (int64_t)now + ttl, (int64_t)now, err, err_len);
	if (rc != 0) {
		ftm_memzero(state, FTM_STATE_HEX + 1);
		ftm_metrics_store_error(FTM_METRICS_STORE_CHALLENGE);
	}
	return rc;
}

int ftm_store_challenge_take(ftm_store_t *st, const char *user, const char *client, const char *state,
			     time_t now, ftm_state_check_t *check, char *err, size_t err_len)
{
	char id[65], who[FTM_USER_MAX], from[256], client_id[65];
	int64_t expires = 0;
	int rc;

	if (check != NULL)
		*check = FTM_STATE_UNKNOWN;
	if (st == NULL || user == NULL || state == NULL || check == NULL) {
		SETERR("no token store, user or state");
		return -1;
	}
	if (strlen(state) != FTM_STATE_HEX)
		return 0;	/* not one of ours: no need to ask the database */
	if (ftm_store_state_id(state, id) != 0 || ftm_store_state_id(client != NULL ? client : "", client_id) != 0) {
		SETERR("SHA-256 failure");
		return -1;
	}
	rc = st->ops->state_take(st->be, id, who, sizeof(who), from, sizeof(from), &expires, err, err_len);
	if (rc < 0) {
		ftm_metrics_store_error(FTM_METRICS_STORE_CHALLENGE);
		return -1;
	}
	if (rc == 1)
		return 0;
	*check = ftm_store_state_check(user, client_id, who, from, (int64_t)now, expires);
	return 0;
}

/* ---- the verdict policy ---- */

static int64_t elapsed_ms(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

struct settings_read {
	ftm_policy_t	pol;
	unsigned	seen;		/* ftm_policy_bit()s found in the store */
	char		bad[FTM_MSG_MAX];
};

static int setting_one(void *c, const char *name, const char *value)
{
	struct settings_read *sr = c;
	char why[FTM_MSG_MAX];

	if (ftm_policy_bit(name) == 0)
		return 0;	/* a setting of a newer binary: not ours to judge */
	if (ftm_policy_parse(&sr->pol, name, value, why, sizeof(why)) != 0) {
		if (sr->bad[0] == '\0')
			snprintf(sr->bad, sizeof(sr->bad), "the store's policy is damaged: %.120s: mend it with "
				 "`ftmpushctl policy set %.40s N`", why, name);
		return 0;
	}
	sr->seen |= ftm_policy_bit(name);
	return 0;
}

/* Read every setting; seed the ones missing with the built-in defaults (a new store, or a policy this
 * binary adds), then read again, so that nodes starting together all keep the first writer's values. */
static int policy_read(ftm_store_t *st, ftm_policy_t *out, char *err, size_t err_len)
{
	const char *names[8], *values[8];
	char texts[8][24];
	struct settings_read sr;
	ftm_policy_t dflt;
	size_t n = 0;

	if (st->ops->settings_get == NULL) {
		SETERR("this token store (%s) keeps no policy", st->ops->scheme);
		return -1;
	}
	for (int pass = 0; pass < 2; pass++) {
		memset(&sr, 0, sizeof(sr));
		ftm_policy_defaults(&sr.pol);
		if (st->ops->settings_get(st->be, setting_one, &sr, err, err_len) != 0)
			return -1;
		if (sr.bad[0] != '\0') {
			SETERR("%s", sr.bad);
			return -1;
		}
		n = 0;
		ftm_policy_defaults(&dflt);
		for (size_t i = 0; ftm_policy_names[i] != NULL && n < 8; i++) {
			if (sr.seen & ftm_policy_bit(ftm_policy_names[i]))
				continue;
			ftm_policy_format(&dflt, ftm_policy_names[i], texts[n], sizeof(texts[n]));
			names[n] = ftm_policy_names[i];
			values[n] = texts[n];
			n++;
		}
		if (n == 0 || pass == 1)
			break;
		if (st->ops->settings_seed(st->be, names, values, n, (int64_t)time(NULL), err, err_len) != 0)
			return -1;
		ftm_log(&st->log, FTM_LOG_INFO, "token store: %zu policy setting(s) seeded with the built-in defaults", n);
	}
	*out = sr.pol;
	return 0;
}

static int policy_refresh(ftm_store_t *st, char *err, size_t err_len)
{
	ftm_policy_t pol;

	if (policy_read(st, &pol, err, err_len) != 0)
		return -1;
	pthread_mutex_lock(&st->policy_mu);
	st->policy = pol;
	st->policy_read = true;
	clock_gettime(CLOCK_MONOTONIC, &st->policy_at);
	pthread_mutex_unlock(&st->policy_mu);
	return 0;
}

int ftm_store_policy(ftm_store_t *st, ftm_policy_t *out, char *err, size_t err_len)
{
	char why[FTM_MSG_MAX] = "";
	bool fresh, have;

	if (st == NULL || out == NULL) {
		SETERR("no token store");
		return -1;
	}
	pthread_mutex_lock(&st->policy_mu);
	have = st->policy_read;
	fresh = have && elapsed_ms(&st->policy_at) < FTM_POLICY_REFRESH_SECONDS * 1000;
	if (fresh)
		*out = st->policy;
	pthread_mutex_unlock(&st->policy_mu);
	if (fresh)
		return 0;
	/* Two threads may both re-read at the turn of the interval: harmless, they read the same rows. */
	if (policy_refresh(st, why, sizeof(why)) != 0) {
		if (!have) {
			SETERR("%s", why);
			return -1;
		}
		ftm_log(&st->log, FTM_LOG_WARN, "token store: policy not re-read (%s): keeping the last one read", why);
	}
	pthread_mutex_lock(&st->policy_mu);
	*out = st->policy;
	pthread_mutex_unlock(&st->policy_mu);
	return 0;
}

int ftm_store_policy_set(ftm_store_t *st, const char *name, const char *value, char *old, size_t old_len,
			 char *err, size_t err_len)
{
	ftm_policy_t pol, cur;
	char text[24], before[24] = "";

	if (old != NULL && old_len > 0)
		old[0] = '\0';
	if (st == NULL || name == NULL || value == NULL) {
		SETERR("no token store, policy name or value");
		return -1;
	}
	/* the value is checked against a copy of the defaults: a damaged store value does not block its mending */
	ftm_policy_defaults(&pol);
	if (ftm_policy_parse(&pol, name, value, err, err_len) != 0)
		return -1;
	ftm_policy_format(&pol, name, text, sizeof(text));	/* canonical: "007" is stored as 7 */
	if (policy_read(st, &cur, NULL, 0) == 0)
		ftm_policy_format(&cur, name, before, sizeof(before));
	if (st->ops->setting_put(st->be, name, text, (int64_t)time(NULL), err, err_len) != 0)
		return -1;
	(void)policy_refresh(st, NULL, 0);
	if (old != NULL && old_len > 0)
		snprintf(old, old_len, "%s", before);
	ftm_log(&st->log, FTM_LOG_INFO, "token store: policy %s set to %s (was %s)", name, text,
		before[0] ? before : "unreadable");
	return 0;
}

/* ---- recovery codes ---- */

#define RECOVERY_KEY_LABEL	"ftmpush recovery code key"

static bool has_recovery(const ftm_store_t *st)
{
	return st->ops->recovery_replace != NULL && st->ops->recovery_verdict != NULL;
}

/* The key the codes' hashes are made under, derived from the seed key: a copy of the database alone
 * (a backup, a replica) gives nothing to test guesses against. 50 bits per code would already defeat a
 * search at login speed; the key stops an offline one, so no slow KDF is needed on the login path. */
static int recovery_key(const ftm_store_t *st, uint8_t key[32])
{
	return ftm_hmac_sha256(st->key, sizeof(st->key), RECOVERY_KEY_LABEL, sizeof(RECOVERY_KEY_LABEL) - 1, key);
}

static int any_row(void *c, const ftm_store_row_t *row)
{
	(void)row;
	*(bool *)c = true;
	return 1;
}

int ftm_store_recovery_issue(ftm_store_t *st, const char *user, unsigned count, time_t now,
			     char codes[][FTM_RECOVERY_LEN + 1], char *err, size_t err_len)
{
	ftm_recovery_row_t *rows = NULL;
	uint8_t key[32];
	bool holds_token = false;
	int rc = -1;

	if (st == NULL || user == NULL || codes == NULL) {
		SETERR("no token store or user");
		return -1;
	}
	if (user[0] == '\0' || !printable(user, FTM_USER_MAX)) {
		SETERR("bad user name (empty, too long or control characters)");
		return -1;
	}
	if (count < 1 || count > FTM_RECOVERY_COUNT_MAX) {
		SETERR("recovery codes: 1 to %d in a set", FTM_RECOVERY_COUNT_MAX);
		return -1;
	}
	if (!has_recovery(st)) {
		SETERR("this token store (%s) does not keep recovery codes", st->ops->scheme);
		return -1;
	}
	if (st->ops->list(st->be, user, any_row, &holds_token, err, err_len) != 0)
		return -1;
	if (!holds_token) {
		SETERR("'%s' holds no token: recovery codes stand in for a token's code (token add first)", user);
		return -1;
	}
	rows = calloc(count, sizeof(*rows));
	if (rows == NULL) {
		SETERR("out of memory");
		return -1;
	}
	if (recovery_key(st, key) != 0) {
		SETERR("cannot derive the recovery code key");
		goto out;
	}
	for (unsigned i = 0; i < count; i++) {
		if (ftm_recovery_generate(codes[i]) != 0 || RAND_bytes(rows[i].salt, sizeof(rows[i].salt)) != 1) {
			SETERR("CSPRNG failure");
			goto out;
		}
		if (ftm_recovery_hash(key, rows[i].salt, user, codes[i], rows[i].hash) != 0) {
			SETERR("cannot hash a recovery code");
			goto out;
		}
		rows[i].created = (int64_t)now;
	}
	rc = st->ops->recovery_replace(st->be, user, rows, count, err, err_len);
	if (rc == 0)
		ftm_log(&st->log, FTM_LOG_INFO, "recovery codes for '%s': %u issued, the earlier ones revoked", user,
			count);
out:
	ftm_memzero(key, sizeof(key));
	ftm_memzero(rows, count * sizeof(*rows));
	free(rows);
	if (rc != 0)
		ftm_memzero(codes, count * sizeof(codes[0]));
	return rc;
}

/* The user a token belongs to ("" when none, unknown, or the store failed). */
static void token_user(ftm_store_t *st, const char *serial, char user[FTM_USER_MAX])
{
	ftm_store_row_t *row = calloc(1, sizeof(*row));

	user[0] = '\0';
	if (row != NULL && st->ops->get(st->be, serial, row, NULL, 0) == 0)
		snprintf(user, FTM_USER_MAX, "%s", row->tok.user);
	free(row);
}

/* Codes are the user's, but only while the user holds a token: once the last one is deleted or moved
 * away, the codes go too, so a token added later (perhaps for another person of that name) does not
 * inherit them. */
static void recovery_forget_if_tokenless(ftm_store_t *st, const char *serial, const char *user)
{
	bool holds_token = false;

	if (user[0] == '\0' || !has_recovery(st) ||
	    st->ops->list(st->be, user, any_row, &holds_token, NULL, 0) != 0 || holds_token)
		return;
	if (st->ops->recovery_replace(st->be, user, NULL, 0, NULL, 0) != 0)
		ftm_log(&st->log, FTM_LOG_WARN, "token %s: the recovery codes of '%s' (who holds no token now) could "
			"not be removed: they open nothing until a token is added", serial, user);
}

struct recovery_ctx {
	const char			*user;
	const char			*code;		/* NULL: only count the codes */
	time_t				now;
	const ftm_verify_params_t	*p;
	ftm_verdict_t			*out;
	uint8_t				key[32];
	unsigned			left, total;
};

/* Runs inside the backend's transaction, like decide(): the code and the key stay in memory only. */
static int decide_recovery(void *c, ftm_store_row_t *rows, size_t n, ftm_recovery_row_t *codes, size_t m)
{
	struct recovery_ctx *rc = c;
	ftm_verdict_t *v = rc->out;
	ssize_t hit = -1, locked_now;
	census_t census;
	int *state;

	rc->total = (unsigned)m;
	rc->left = 0;
	for (size_t i = 0; i < m; i++)
		if (codes[i].used == 0)
			rc->left++;
	if (rc->code == NULL)
		return 0;
	v->recovery_left = rc->left;
	if (n == 0) {
		set_verdict(v, FTM_VERDICT_NO_TOKEN, NULL, FTM_MSG_NO_TOKEN);
		snprintf(v->reason, sizeof(v->reason), "user holds no token");
		return 0;
	}
	state = calloc(n, sizeof(*state));
	if (state == NULL)
		return -1;
	classify(rows, n, rc->now, rc->p, state, &census);
	if (census.first_usable < 0) {
		/* a recovery code stands in for a code, not for an unlock */
		none_usable(rows, &census, rc->now, rc->p, "every token of the user expired unused", v);
		free(state);
		return 0;
	}
	/* every code is hashed and compared, so the time taken tells neither which one matched nor whether */
	for (size_t i = 0; i < m; i++) {
		uint8_t h[FTM_RECOVERY_HASH_LEN];
		bool eq;

		if (ftm_recovery_hash(rc->key, codes[i].salt, rc->user, rc->code, h) != 0) {
			free(state);
			return -1;
		}
		eq = ftm_ct_equal(h, codes[i].hash, sizeof(h));
		if (eq && hit < 0)
			hit = (ssize_t)i;
	}
	if (hit >= 0 && codes[hit].used == 0) {
		codes[hit].used = (int64_t)rc->now;
		codes[hit].dirty = true;
		reset_usable(rows, n, state);
		set_verdict(v, FTM_VERDICT_OK, &rows[census.first_usable].tok, "");
		v->failures = 0;
		v->recovery_left = rc->left - 1;
		snprintf(v->reason, sizeof(v->reason), "recovery code accepted (%u left)", v->recovery_left);
	} else if (hit >= 0) {
		set_verdict(v, FTM_VERDICT_REPLAY, &rows[census.first_usable].tok, FTM_MSG_RECOVERY_USED);
		v->failures = rows[census.first_usable].tok.failures;
		snprintf(v->reason, sizeof(v->reason), "recovery code already used (at %lld)", (long long)codes[hit].used);
	} else if (count_failure(rows, n, state, rc->p, rc->now, -1, v, &locked_now) == 0) {
		set_locked(v, &rows[locked_now].tok, rc->now, rc->p);
		snprintf(v->reason, sizeof(v->reason), "wrong recovery code: token %s locked after %u consecutive failures",
			 rows[locked_now].tok.serial, v->failures);
	} else {
		set_verdict(v, FTM_VERDICT_BAD_CODE, &rows[census.first_usable].tok, FTM_MSG_RECOVERY_BAD);
		snprintf(v->reason, sizeof(v->reason), "wrong recovery code (%u consecutive failure%s)%s", v->failures,
			 v->failures == 1 ? "" : "s",
			 locked_now >= 0 ? ": a token of the user reached the lockout threshold" : "");
	}
	free(state);
	return 0;
}

int ftm_store_recovery_verify(ftm_store_t *st, const char *user, const char *code, time_t now,
			      const ftm_verify_params_t *params, ftm_verdict_t *out)
{
	struct recovery_ctx rc;
	ftm_verify_params_t dflt;
	char err[FTM_MSG_MAX] = "";
	int r;

	if (out == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (st != NULL && user != NULL && code != NULL && user[0] == '\0') {
		set_verdict_only(out, FTM_VERDICT_NO_TOKEN, FTM_MSG_NO_TOKEN, "empty user name");
		return 0;
	}
	if (st == NULL || user == NULL || code == NULL || !has_recovery(st) || !ftm_recovery_is_code(code)) {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, "no token store, user or recovery code");
		return -1;
	}
	memset(&rc, 0, sizeof(rc));
	rc.user = user;
	rc.code = code;
	rc.now = now;
	rc.p = params_or_policy(st, params, &dflt, err, sizeof(err));
	rc.out = out;
	if (rc.p == NULL || recovery_key(st, rc.key) != 0)
		r = -1;
	else
		r = st->ops->recovery_verdict(st->be, user, rc.p->consume, decide_recovery, &rc, err, sizeof(err));
	ftm_memzero(rc.key, sizeof(rc.key));
	if (r != 0) {
		set_verdict_only(out, FTM_VERDICT_ERROR, FTM_MSG_STORE_DOWN, err[0] ? err : "token store error");
		ftm_log(&st->log, FTM_LOG_ERR, "recovery code verdict for '%s': %s", user, out->reason);
		ftm_metrics_store_error(FTM_METRICS_STORE_VERDICT);
		return -1;
	}
	ftm_log(&st->log, FTM_LOG_DEBUG, "recovery code verdict for '%s'%s: %s", user,
		rc.p->consume ? "" : " (peek)", out->reason);
	return 0;
}

int ftm_store_recovery_count(ftm_store_t *st, const char *user, unsigned *left, unsigned *total,
			     char *err, size_t err_len)
{
	struct recovery_ctx rc;
	ftm_verdict_t v;

	if (left != NULL)
		*left = 0;
	if (total != NULL)
		*total = 0;
	if (st == NULL || user == NULL) {
		SETERR("no token store or user");
		return -1;
	}
	if (!has_recovery(st))
		return 0;
	memset(&rc, 0, sizeof(rc));
	memset(&v, 0, sizeof(v));
	rc.user = user;
	rc.out = &v;
	if (st->ops->recovery_verdict(st->be, user, false, decide_recovery, &rc, err, err_len) != 0)
		return -1;
	if (left != NULL)
		*left = rc.left;
	if (total != NULL)
		*total = rc.total;
	return 0;
}

/* ---- the audit trail and debug on demand ---- */

int ftm_store_audit_append(ftm_store_t *st, const ftm_audit_row_t *row, char *err, size_t err_len)
{
	ftm_audit_row_t a;

	if (st == NULL || row == NULL || row->event[0] == '\0' || row->result[0] == '\0') {
		SETERR("audit: no store, event or result");
		return -1;
	}
	a = *row;
	if (a.at == 0)
		a.at = (int64_t)time(NULL);
	return st->ops->audit_append(st->be, &a, err, err_len);
}

int ftm_store_audit_list(ftm_store_t *st, const ftm_audit_filter_t *f, ftm_audit_cb cb, void *ctx,
			 char *err, size_t err_len)
{
	ftm_audit_filter_t all = { 0 };

	if (st == NULL || cb == NULL) {
		SETERR("audit: no store");
		return -1;
	}
	return st->ops->audit_list(st->be, f != NULL ? f : &all, cb, ctx, err, err_len);
}

int ftm_store_audit_prune(ftm_store_t *st, int64_t before, unsigned long *removed, char *err, size_t err_len)
{
	if (removed != NULL)
		*removed = 0;
	if (st == NULL) {
		SETERR("audit: no store");
		return -1;
	}
	return st->ops->audit_prune(st->be, before, removed, err, err_len);
}

const char *ftm_store_key_file(const ftm_store_t *st)
{
	return st != NULL ? st->key_file : "";
}

int ftm_store_backup(ftm_store_t *st, const char *dest, unsigned long *tokens, char *err, size_t err_len)
{
	if (tokens != NULL)
		*tokens = 0;
	if (st == NULL || dest == NULL || dest[0] == '\0') {
		SETERR("backup: no store or no destination");
		return -1;
	}
	if (st->ops->backup == NULL) {
		SETERR("backup: a %s store is backed up with its database's own tools (PostgreSQL: pg_dump, with the key file kept apart), not by ftmpushctl",
		       st->ops->scheme);
		return -1;
	}
	return st->ops->backup(st->be, dest, tokens, err, err_len);
}

int ftm_store_debug_set(ftm_store_t *st, const char *user, int64_t expires, time_t now, char *err, size_t err_len)
{
	if (st == NULL || user == NULL || !printable(user, FTM_USER_MAX) || expires <= (int64_t)now) {
		SETERR("debug switch: no store, a bad user name, or an expiry in the past");
		return -1;
	}
	return st->ops->debug_put(st->be, user, expires, (int64_t)now, err, err_len);
}

int ftm_store_debug_clear(ftm_store_t *st, const char *user, char *err, size_t err_len)
{
	if (st == NULL) {
		SETERR("debug switch: no store");
		return -1;
	}
	return st->ops->debug_clear(st->be, user, err, err_len);
}

int ftm_store_debug_list(ftm_store_t *st, time_t now, ftm_debug_cb cb, void *ctx, char *err, size_t err_len)
{
	if (st == NULL || cb == NULL) {
		SETERR("debug switch: no store");
		return -1;
	}
	return st->ops->debug_list(st->be, (int64_t)now, cb, ctx, err, err_len);
}

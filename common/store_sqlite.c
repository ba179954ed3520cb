/* store_sqlite: the embedded token store backend. WAL, a busy timeout, one transaction per verdict. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_backend.h"

#define SCHEMA_VERSION	1
#define BUSY_TIMEOUT_MS	5000

#define SETERR(...) do { if (err != NULL && err_len > 0) snprintf(err, err_len, __VA_ARGS__); } while (0)

/* One connection per store handle. SQLite transactions belong to a connection, so the threads of a
 * process sharing a handle take turns through `mu`; processes take turns through SQLite's own locks
 * (BEGIN IMMEDIATE + busy timeout). */
typedef struct sq {
	sqlite3		*db;
	pthread_mutex_t	mu;
	const ftm_log_t	*log;
} sq_t;

static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tokens ("
	" serial    TEXT PRIMARY KEY,"
	" user      TEXT NOT NULL,"
	" seed      BLOB NOT NULL,"		/* AES-256-GCM sealed, never clear */
	" alg       TEXT NOT NULL CHECK (alg IN ('sha1','sha256','sha512')),"
	" digits    INTEGER NOT NULL CHECK (digits BETWEEN 6 AND 8),"
	" period    INTEGER NOT NULL CHECK (period > 0),"
	" status    TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active','lock')),"
	" last_step INTEGER NOT NULL DEFAULT -1,"
	" failures  INTEGER NOT NULL DEFAULT 0,"
	" push      TEXT NOT NULL DEFAULT '',"
	" created   INTEGER NOT NULL);"
	"CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user, serial);";

#define TOKEN_COLS "serial, user, seed, alg, digits, period, status, last_step, failures, push, created"

static int db_err(sq_t *s, const char *what, char *err, size_t err_len)
{
	SETERR("token store: %s: %s", what, sqlite3_errmsg(s->db));
	return -1;
}

static int exec(sq_t *s, const char *sql, char *err, size_t err_len)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(s, sql, err, err_len);
	return 0;
}

static void rollback(sq_t *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static void copy_text(char *dst, size_t max, const unsigned char *src)
{
	snprintf(dst, max, "%s", src ? (const char *)src : "");
}

static int row_from_stmt(sqlite3_stmt *st, ftm_store_row_t *row)
{
	const void *blob = sqlite3_column_blob(st, 2);
	int blen = sqlite3_column_bytes(st, 2);
	const unsigned char *status;

	memset(row, 0, sizeof(*row));
	copy_text(row->tok.serial, sizeof(row->tok.serial), sqlite3_column_text(st, 0));
	copy_text(row->tok.user, sizeof(row->tok.user), sqlite3_column_text(st, 1));
	if (blob == NULL || blen <= 0 || (size_t)blen > sizeof(row->sealed))
		return -1;
	memcpy(row->sealed, blob, (size_t)blen);
	row->sealed_len = (size_t)blen;
	if (ftm_alg_parse((const char *)sqlite3_column_text(st, 3), &row->tok.alg) != 0)
		return -1;
	row->tok.digits = (unsigned)sqlite3_column_int(st, 4);
	row->tok.period = (unsigned)sqlite3_column_int(st, 5);
	status = sqlite3_column_text(st, 6);	/* NULL in a damaged file: must not crash the server */
	row->tok.status = status != NULL && strcmp((const char *)status, "active") == 0
		? FTM_TOKEN_ACTIVE : FTM_TOKEN_LOCKED;	/* anything unexpected reads as locked */
	row->tok.last_step = sqlite3_column_int64(st, 7);
	row->tok.failures = (unsigned)sqlite3_column_int(st, 8);
	copy_text(row->tok.push, sizeof(row->tok.push), sqlite3_column_text(st, 9));
	row->tok.created = sqlite3_column_int64(st, 10);
	return 0;
}

static const char *status_text(ftm_token_status_t status)
{
	return status == FTM_TOKEN_ACTIVE ? "active" : "lock";
}

/* ---- open / close ---- */

static int ensure_wal(sq_t *s, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	/* journal_mode is persistent in the file: only the first opener switches it */
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, "journal mode", err, err_len);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
		rc = 0;
	sqlite3_finalize(st);
	if (rc == 0)
		return 0;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
		return db_err(s, "journal mode", err, err_len);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
		rc = 0;
	else
		db_err(s, "cannot switch to WAL", err, err_len);
	sqlite3_finalize(st);
	return rc;
}

static int schema_version(sq_t *s)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "SELECT max(version) FROM schema_version", -1, &st, NULL) != SQLITE_OK)
		return -1;	/* no table yet */
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int ensure_schema(sq_t *s, char *err, size_t err_len)
{
	int v = schema_version(s);

	if (v == SCHEMA_VERSION)
		return 0;
	if (v < 0) {
		/* first open: create under a write lock so concurrent first openers agree */
		if (exec(s, "BEGIN IMMEDIATE", err, err_len) != 0)
			return -1;
		if (exec(s, schema_sql, err, err_len) != 0) {
			rollback(s);
			return -1;
		}
		v = schema_version(s);
		if (v < 0) {
			char ins[96];
			snprintf(ins, sizeof(ins), "INSERT INTO schema_version (version) VALUES (%d)", SCHEMA_VERSION);
			if (exec(s, ins, err, err_len) != 0) {
				rollback(s);
				return -1;
			}
			v = SCHEMA_VERSION;
		}
		if (exec(s, "COMMIT", err, err_len) != 0) {
			rollback(s);
			return -1;
		}
	}
	if (v != SCHEMA_VERSION) {
		SETERR("token store: schema version %d, this ftmpush knows version %d", v, SCHEMA_VERSION);
		return -1;
	}
	return 0;
}

static void sq_close(void *be)
{
	sq_t *s = be;

	if (s == NULL)
		return;
	sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

static void *sq_open(const char *path, const ftm_log_t *log, char *err, size_t err_len)
{
	sq_t *s;
	struct stat sb;
	int fd, flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX;

	if (path == NULL || path[0] == '\0') {
		SETERR("token store: no database path");
		return NULL;
	}
	/* Create the file ourselves so it is 0600 whatever the umask; SQLite gives -wal/-shm the mode
	 * of the database file. */
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		SETERR("token store %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		SETERR("token store %s: not a regular file", path);
		close(fd);
		return NULL;
	}
	/* Whoever can write the store can unlock tokens, reset replay state and move a token to another
	 * user (the seal binds the serial, not the user): every local user must not be able to. */
	if (sb.st_mode & S_IWOTH) {
		SETERR("token store %s is world-writable (mode %04o): refused; chmod o-w it",
		       path, (unsigned)(sb.st_mode & 07777));
		close(fd);
		return NULL;
	}
	close(fd);

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		SETERR("token store: out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->mu, NULL);
	s->log = log;
#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	if (sqlite3_open_v2(path, &s->db, flags, NULL) != SQLITE_OK) {
		SETERR("token store %s: %s", path, s->db ? sqlite3_errmsg(s->db) : "cannot open");
		sq_close(s);
		return NULL;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, BUSY_TIMEOUT_MS);
	/* synchronous=FULL: a committed verdict (a consumed step, a failure count) survives a crash */
	if (ensure_wal(s, err, err_len) != 0 ||
	    exec(s, "PRAGMA synchronous=FULL", err, err_len) != 0 ||
	    ensure_schema(s, err, err_len) != 0) {
		sq_close(s);
		return NULL;
	}
	return s;
}

/* ---- meta ---- */

static int sq_meta_get(void *be, const char *name, uint8_t *buf, size_t max, size_t *len, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE name = ?", -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "meta", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 1;
	} else if (r == SQLITE_ROW) {
		int n = sqlite3_column_bytes(st, 0);
		if (n < 0 || (size_t)n > max) {
			SETERR("token store: meta %s too large", name);
		} else {
			if (n > 0)
				memcpy(buf, sqlite3_column_blob(st, 0), (size_t)n);
			*len = (size_t)n;
			rc = 0;
		}
	} else {
		db_err(s, "meta", err, err_len);
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* INSERT OR IGNORE: the first writer wins; callers read back what was kept. */
static int sq_meta_put(void *be, const char *name, const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)", -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "meta", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, buf, (int)len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		db_err(s, "meta", err, err_len);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* ---- tokens ---- */

static int sq_insert(void *be, const ftm_store_row_t *rows, size_t n, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (exec(s, "BEGIN IMMEDIATE", err, err_len) != 0)
		goto out;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO tokens (" TOKEN_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "insert", err, err_len);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const ftm_token_t *t = &rows[i].tok;
		int r;

		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, t->serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, t->user, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, rows[i].sealed, (int)rows[i].sealed_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, ftm_alg_name(t->alg), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, (int)t->digits);
		sqlite3_bind_int(st, 6, (int)t->period);
		sqlite3_bind_text(st, 7, status_text(t->status), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, t->last_step);
		sqlite3_bind_int(st, 9, (int)t->failures);
		sqlite3_bind_text(st, 10, t->push, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 11, t->created);
		r = sqlite3_step(st);
		if (r == SQLITE_CONSTRAINT_PRIMARYKEY || r == SQLITE_CONSTRAINT_UNIQUE) {
			SETERR("token %s already exists", t->serial);
			goto out;
		}
		if (r != SQLITE_DONE) {
			db_err(s, "insert", err, err_len);
			goto out;
		}
	}
	if (exec(s, "COMMIT", err, err_len) == 0)
		rc = 0;
out:
	sqlite3_finalize(st);
	if (rc != 0)
		rollback(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int sq_get(void *be, const char *serial, ftm_store_row_t *out, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT " TOKEN_COLS " FROM tokens WHERE serial = ?", -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "get", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = 1;
	else if (r != SQLITE_ROW)
		db_err(s, "get", err, err_len);
	else if (row_from_stmt(st, out) != 0)
		SETERR("token %s: damaged record", serial);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* One UPDATE of one token; 1 when no such serial. */
static int update_one(sq_t *s, const char *sql, const char *serial, int (*bind)(sqlite3_stmt *, const void *),
		      const void *arg, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "update", err, err_len);
		goto out;
	}
	if (bind(st, arg) != SQLITE_OK) {
		db_err(s, "update", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, sqlite3_bind_parameter_count(st), serial, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_err(s, "update", err, err_len);
		goto out;
	}
	rc = sqlite3_changes(s->db) == 0 ? 1 : 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int bind_reissue(sqlite3_stmt *st, const void *arg)
{
	const ftm_store_row_t *row = arg;

	sqlite3_bind_blob(st, 1, row->sealed, (int)row->sealed_len, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ftm_alg_name(row->tok.alg), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)row->tok.digits);
	sqlite3_bind_int(st, 4, (int)row->tok.period);
	sqlite3_bind_int64(st, 5, row->tok.created);
	sqlite3_bind_text(st, 6, status_text(row->tok.status), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, row->tok.last_step);
	return sqlite3_bind_int(st, 8, (int)row->tok.failures);
}

static int sq_reissue(void *be, const ftm_store_row_t *row, char *err, size_t err_len)
{
	return update_one(be, "UPDATE tokens SET seed = ?, alg = ?, digits = ?, period = ?, created = ?,"
			  " status = ?, last_step = ?, failures = ? WHERE serial = ?",
			  row->tok.serial, bind_reissue, row, err, err_len);
}

static int bind_status(sqlite3_stmt *st, const void *arg)
{
	return sqlite3_bind_text(st, 1, status_text(*(const ftm_token_status_t *)arg), -1, SQLITE_STATIC);
}

static int sq_set_status(void *be, const char *serial, ftm_token_status_t status, bool clear_failures,
			 char *err, size_t err_len)
{
	return update_one(be, clear_failures ? "UPDATE tokens SET status = ?, failures = 0 WHERE serial = ?"
					     : "UPDATE tokens SET status = ? WHERE serial = ?",
			  serial, bind_status, &status, err, err_len);
}

static int bind_text(sqlite3_stmt *st, const void *arg)
{
	return sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
}

static int sq_set_push(void *be, const char *serial, const char *push, char *err, size_t err_len)
{
	return update_one(be, "UPDATE tokens SET push = ? WHERE serial = ?", serial, bind_text, push, err, err_len);
}

static int sq_set_user(void *be, const char *serial, const char *user, char *err, size_t err_len)
{
	return update_one(be, "UPDATE tokens SET user = ? WHERE serial = ?", serial, bind_text, user, err, err_len);
}

static int bind_none(sqlite3_stmt *st, const void *arg)
{
	return SQLITE_OK;
}

static int sq_remove(void *be, const char *serial, char *err, size_t err_len)
{
	return update_one(be, "DELETE FROM tokens WHERE serial = ?", serial, bind_none, NULL, err, err_len);
}

/* Step st to its end, appending every row to *rows (grown as needed; *cap is its size, for the caller
 * to zero and free, also on failure). what names the operation in errors; user, when set, the user. */
static int fetch_rows(sq_t *s, sqlite3_stmt *st, const char *what, const char *user,
		      ftm_store_row_t **rows, size_t *n, size_t *cap, char *err, size_t err_len)
{
	int r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == *cap) {
			size_t ncap = *cap ? *cap * 2 : 8;
			ftm_store_row_t *nr = realloc(*rows, ncap * sizeof(**rows));

			if (nr == NULL) {
				SETERR("token store: out of memory");
				return -1;
			}
			*rows = nr;
			*cap = ncap;
		}
		if (row_from_stmt(st, &(*rows)[*n]) != 0) {
			if (user != NULL)
				SETERR("token store: damaged record for user %s", user);
			else
				SETERR("token store: damaged record");
			return -1;
		}
		(*n)++;
	}
	if (r != SQLITE_DONE) {
		db_err(s, what, err, err_len);
		return -1;
	}
	return 0;
}

/* Rows are collected under the lock and handed to cb after it, so cb may call back into the store. */
static int sq_list(void *be, const char *user, ftm_row_cb cb, void *ctx, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	ftm_store_row_t *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, user
			       ? "SELECT " TOKEN_COLS " FROM tokens WHERE user = ? ORDER BY user, serial"
			       : "SELECT " TOKEN_COLS " FROM tokens ORDER BY user, serial", -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "list", err, err_len);
		goto unlock;
	}
	if (user)
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (fetch_rows(s, st, "list", NULL, &rows, &n, &cap, err, err_len) != 0)
		goto unlock;
	rc = 0;
unlock:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (cb(ctx, &rows[i]) != 0)
			break;
	free(rows);
	return rc;
}

static int sq_verdict(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
		      char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	ftm_store_row_t *rows = NULL;
	size_t n = 0, cap = 0;
	int rc = -1;

	pthread_mutex_lock(&s->mu);
	/* IMMEDIATE takes the write lock before reading, so two verdicts on one token serialize and the
	 * second sees the step the first consumed. A peek only needs a consistent snapshot. */
	if (exec(s, write ? "BEGIN IMMEDIATE" : "BEGIN", err, err_len) != 0)
		goto out;
	if (sqlite3_prepare_v2(s->db, "SELECT " TOKEN_COLS " FROM tokens WHERE user = ? ORDER BY serial",
			       -1, &st, NULL) != SQLITE_OK) {
		db_err(s, "verdict", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	if (fetch_rows(s, st, "verdict", user, &rows, &n, &cap, err, err_len) != 0)
		goto out;
	sqlite3_finalize(st);
	st = NULL;

	if (decide(ctx, rows, n) != 0)
		goto out;

	if (write) {
		if (sqlite3_prepare_v2(s->db, "UPDATE tokens SET status = ?, last_step = ?, failures = ? WHERE serial = ?",
				       -1, &st, NULL) != SQLITE_OK) {
			db_err(s, "verdict", err, err_len);
			goto out;
		}
		for (size_t i = 0; i < n; i++) {
			if (!rows[i].dirty)
				continue;
			sqlite3_reset(st);
			sqlite3_bind_text(st, 1, status_text(rows[i].tok.status), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, rows[i].tok.last_step);
			sqlite3_bind_int(st, 3, (int)rows[i].tok.failures);
			sqlite3_bind_text(st, 4, rows[i].tok.serial, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE) {
				db_err(s, "verdict", err, err_len);
				goto out;
			}
		}
	}
	if (exec(s, write ? "COMMIT" : "ROLLBACK", err, err_len) != 0)
		goto out;
	rc = 0;
out:
	sqlite3_finalize(st);
	if (rc != 0)
		rollback(s);
	pthread_mutex_unlock(&s->mu);
	if (rows) {
		ftm_memzero(rows, cap * sizeof(*rows));
		free(rows);
	}
	return rc;
}

const ftm_store_backend_t ftm_store_backend_sqlite = {
	.scheme		= "sqlite",
	.open		= sq_open,
	.close		= sq_close,
	.meta_get	= sq_meta_get,
	.meta_put	= sq_meta_put,
	.insert		= sq_insert,
	.get		= sq_get,
	.reissue	= sq_reissue,
	.set_status	= sq_set_status,
	.set_push	= sq_set_push,
	.set_user	= sq_set_user,
	.remove		= sq_remove,
	.list		= sq_list,
	.verdict	= sq_verdict,
};

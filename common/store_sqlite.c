/* store_sqlite: the embedded token store backend. WAL, durable group commits, readers on their own connections. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <linux/magic.h>
/* not in every linux/magic.h */
#ifndef CIFS_SUPER_MAGIC
#define CIFS_SUPER_MAGIC	0xFF534D42
#endif
#ifndef SMB2_SUPER_MAGIC
#define SMB2_SUPER_MAGIC	0xFE534D42
#endif
#include <sqlite3.h>

#include "ftm_batch.h"
#include "ftm_util.h"
#include "store_backend.h"

/* The newest schema this binary knows; migrations[v] brings a file from version v to v + 1. */
#define SCHEMA_VERSION	2
#define BUSY_TIMEOUT_MS	5000
/* SQLite's own wal_autocheckpoint default, kept by our WAL hook (which replaces SQLite's) */
#define WAL_AUTOCHECKPOINT	1000
/* A process that closes the store with at least this many frames in the WAL checkpoints and truncates
 * it: see sq_close. */
#define WAL_CLOSE_TRUNCATE	64

/* sqlite3_open_v2's refusal of a symlink, where this SQLite has it */
#ifdef SQLITE_OPEN_NOFOLLOW
#define OPEN_NOFOLLOW	SQLITE_OPEN_NOFOLLOW
#else
#define OPEN_NOFOLLOW	0
#endif

#define SETERR(...) do { if (err != NULL && err_len > 0) snprintf(err, err_len, __VA_ARGS__); } while (0)

/* Every statement the backend runs, compiled once per connection (SQLITE_PREPARE_PERSISTENT) and kept. */
enum sql_id {
	SQL_BEGIN, SQL_BEGIN_IMMEDIATE, SQL_COMMIT, SQL_ROLLBACK, SQL_SAVEPOINT, SQL_RELEASE, SQL_ROLLBACK_TO,
	SQL_META_GET, SQL_META_PUT, SQL_INSERT, SQL_GET, SQL_BY_USER, SQL_LIST_USER, SQL_LIST_ALL,
	SQL_VERDICT_UPDATE, SQL_VERDICT_UPDATE_ROW, SQL_CONSUME_PROVEN, SQL_REISSUE, SQL_SET_STATUS, SQL_SET_STATUS_CLEAR_FAILURES, SQL_SET_PUSH, SQL_SET_USER, SQL_DELETE,
	SQL_STATE_PURGE, SQL_STATE_PUT, SQL_STATE_TAKE, SQL_STATE_CAP_USER, SQL_STATE_CAP_CLIENT,
	SQL_SETTINGS_GET, SQL_SETTING_PUT, SQL_SETTING_SEED,
	SQL_AUDIT_INSERT,
	SQL_COUNT
};

#define TOKEN_COLS "serial, user, seed, alg, digits, period, status, last_step, failures, push, created," \
		   " lock_reason, locked_at"

static const char *const sql_text[SQL_COUNT] = {
	[SQL_BEGIN]		= "BEGIN",
	[SQL_BEGIN_IMMEDIATE]	= "BEGIN IMMEDIATE",
	[SQL_COMMIT]		= "COMMIT",
	[SQL_ROLLBACK]		= "ROLLBACK",
	[SQL_SAVEPOINT]		= "SAVEPOINT job",
	[SQL_RELEASE]		= "RELEASE job",
	[SQL_ROLLBACK_TO]	= "ROLLBACK TO job",
	[SQL_META_GET]		= "SELECT value FROM meta WHERE name = ?",
	[SQL_META_PUT]		= "INSERT OR IGNORE INTO meta (name, value) VALUES (?, ?)",
	[SQL_INSERT]		= "INSERT INTO tokens (" TOKEN_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[SQL_GET]		= "SELECT " TOKEN_COLS " FROM tokens WHERE serial = ?",
	/* the rowid last (column 13, after row_from_stmt's): a verdict writes its rows back by it */
	[SQL_BY_USER]		= "SELECT " TOKEN_COLS ", rowid FROM tokens WHERE user = ? ORDER BY serial",
	[SQL_LIST_USER]		= "SELECT " TOKEN_COLS " FROM tokens WHERE user = ? ORDER BY user, serial",
	[SQL_LIST_ALL]		= "SELECT " TOKEN_COLS " FROM tokens ORDER BY user, serial",
	[SQL_VERDICT_UPDATE]	= "UPDATE tokens SET status = ?, last_step = ?, failures = ?, lock_reason = ?,"
				  " locked_at = ? WHERE serial = ?",
	/* A login verdict's write-back, of a row it read in the same write transaction: by the rowid that
	 * read returned (SEARCH ... USING INTEGER PRIMARY KEY), not by serial (a descent of the serial's index
	 * first); the serial is compared all the same, on the row found. */
	[SQL_VERDICT_UPDATE_ROW] = "UPDATE tokens SET status = ?, last_step = ?, failures = ?, lock_reason = ?,"
				  " locked_at = ? WHERE rowid = ? AND serial = ?",
	/* consume_proven: the step of the row the peek read, only if it is still exactly that row (the
	 * seal is the sealed seed's nonce, after its version byte) and the user's other tokens are all
	 * still active without failures, so that a verdict would write nothing else. A row that
	 * row_from_stmt refuses as damaged (its sealed seed empty or longer than ?11; alg and status are
	 * the schema's CHECKs) is not matched either, so the verdict read in full fails closed on it. */
	[SQL_CONSUME_PROVEN]	= "UPDATE tokens SET last_step = ?1 WHERE rowid = ?2 AND serial = ?3 AND user = ?4"
				  " AND status = ?5 AND failures = 0 AND last_step = ?6 AND created = ?7 AND period = ?10"
				  " AND substr(seed, 2, ?8) = ?9 AND length(CAST(seed AS BLOB)) BETWEEN 1 AND ?11"
				  " AND NOT EXISTS (SELECT 1 FROM tokens WHERE user = ?4 AND rowid <> ?2"
				  " AND (status IS NOT ?5 OR failures IS NOT 0"
				  " OR length(CAST(seed AS BLOB)) NOT BETWEEN 1 AND ?11))",
	[SQL_REISSUE]		= "UPDATE tokens SET seed = ?, alg = ?, digits = ?, period = ?, created = ?,"
				  " status = ?, last_step = ?, failures = ?, lock_reason = '', locked_at = 0 WHERE serial = ?",
	[SQL_SET_STATUS]		= "UPDATE tokens SET status = ?, lock_reason = ?, locked_at = ? WHERE serial = ?",
	[SQL_SET_STATUS_CLEAR_FAILURES] = "UPDATE tokens SET status = ?, lock_reason = ?, locked_at = ?, failures = 0"
					  " WHERE serial = ?",
	[SQL_SET_PUSH]		= "UPDATE tokens SET push = ? WHERE serial = ?",
	[SQL_SET_USER]		= "UPDATE tokens SET user = ? WHERE serial = ?",
	[SQL_DELETE]		= "DELETE FROM tokens WHERE serial = ?",
	[SQL_STATE_PURGE]	= "DELETE FROM states WHERE expires < ?",
	[SQL_STATE_PUT]		= "INSERT INTO states (id, user, client, expires) VALUES (?, ?, ?, ?)",
	[SQL_STATE_TAKE]	= "DELETE FROM states WHERE id = ? RETURNING user, client, expires",
	/* the caps (FTM_STATES_PER_USER / _PER_CLIENT): the new State ?2 and the newest others stay */
	[SQL_STATE_CAP_USER]	= "DELETE FROM states WHERE user = ?1 AND id <> ?2 AND id NOT IN"
				  " (SELECT id FROM states WHERE user = ?1 AND id <> ?2 ORDER BY expires DESC, rowid DESC LIMIT ?3)",
	[SQL_STATE_CAP_CLIENT]	= "DELETE FROM states WHERE client = ?1 AND id <> ?2 AND id NOT IN"
				  " (SELECT id FROM states WHERE client = ?1 AND id <> ?2 ORDER BY expires DESC, rowid DESC LIMIT ?3)",
	[SQL_SETTINGS_GET]	= "SELECT name, value FROM settings",
	[SQL_SETTING_PUT]	= "INSERT OR REPLACE INTO settings (name, value, changed) VALUES (?, ?, ?)",
	[SQL_SETTING_SEED]	= "INSERT OR IGNORE INTO settings (name, value, changed) VALUES (?, ?, ?)",
	[SQL_AUDIT_INSERT]	= "INSERT INTO audit (at, event, result, user, serial, client, nas, frontend, node, reason)"
				  " VALUES (?,?,?,?,?,?,?,?,?,?)",
};

/* One SQLite connection and its compiled statements; used by one thread at a time. */
typedef struct sq_conn {
	sqlite3		*db;
	sqlite3_stmt	*stmt[SQL_COUNT];
	struct sq_conn	*next;		/* the idle readers */
	int		wal_frames;	/* frames in the WAL after this connection's last commit */
} sq_conn_t;

/* A write waiting for the next group commit (ftm_batch.h: the job's arg): run() applies it inside the
 * batch's transaction. */
typedef struct sq_job {
	int		(*run)(sq_conn_t *c, void *arg, char *err, size_t err_len);
	void		*arg;
	/* run may run again from the start after a rollback (run_batch_unguarded): it fails only before
	 * any write, or after writes that sqlite3_total_changes counts (INSERT/UPDATE/DELETE rows, their
	 * triggers'), and keeps no output of a first run (a consuming verdict: no tokens_cb) */
	bool		redo;
} sq_job_t;

/* Writes of all the threads of a process go through one writer connection as group commits
 * (ftm_batch.h): the leader applies each job of its batch in one BEGIN IMMEDIATE transaction, each
 * under its own savepoint unless every job of the batch may run again (run_batch_unguarded), and
 * commits once (one WAL fsync, synchronous=FULL). `readers_mu` guards the reader pool. Reads run
 * on reader connections of their own (WAL: a reader never waits for the writer). Processes take turns
 * through SQLite's own locks (BEGIN IMMEDIATE + busy timeout). */
typedef struct sq {
	char		*path;
	sq_conn_t	*writer;
	ftm_batcher_t	batcher;
	pthread_mutex_t	readers_mu;
	sq_conn_t	*idle_readers;
	bool		single;		/* one thread, one call at a time: reads run on the writer (sq_single) */
	bool		peek_writer;	/* a peek runs on the writer while no write is in flight (sq_peek_on_idle_writer) */
	const ftm_log_t	*log;
} sq_t;

/* Column changes and the tables of the schema proper go here, each as one more step (a table a feature
 * adds on its own may instead be created IF NOT EXISTS at open, like states_sql). A file is brought up
 * step by step under one write lock at open; a file newer than this binary is refused. */
static const char *const migrations[SCHEMA_VERSION] = {
	/* 1: the tokens */
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
	"CREATE INDEX IF NOT EXISTS tokens_by_user ON tokens (user, serial);",
	/* 2: why and when a token was locked (a lock by failures ends after lockout_duration; '' reads as an
	 * admin's lock, so tokens locked before keep today's "until unlocked"), and the verdict policy, one
	 * for every process on the file */
	"ALTER TABLE tokens ADD COLUMN lock_reason TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE tokens ADD COLUMN locked_at INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE IF NOT EXISTS settings ("
	" name    TEXT PRIMARY KEY,"
	" value   TEXT NOT NULL,"
	" changed INTEGER NOT NULL DEFAULT 0);",
};

/* Code-challenge States (by the SHA-256 of the State), for every process on this file. Created by
 * every opener, so a store made before they lived here gains the table without a version change:
 * older binaries never read it. */
static const char *const states_sql =
	"CREATE TABLE IF NOT EXISTS states ("
	" id      TEXT PRIMARY KEY,"
	" user    TEXT NOT NULL,"
	" client  TEXT NOT NULL,"
	" expires INTEGER NOT NULL)";

/* Recovery codes, by salt, created at open like the States (older binaries never read the table). */
static const char *const recovery_schema_sql =
	"CREATE TABLE IF NOT EXISTS recovery_codes ("
	" salt    BLOB PRIMARY KEY,"		/* random per code */
	" user    TEXT NOT NULL,"
	" hash    BLOB NOT NULL,"		/* ftm_recovery_hash: the code itself is never stored */
	" created INTEGER NOT NULL,"
	" used    INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS recovery_codes_by_user ON recovery_codes (user);";

/* The audit trail and the debug switches, created like states_sql by every opener. One index besides the
 * rowid: by time, for the retention pass (DELETE ... WHERE at < ?). `ftmpushctl audit` reads newest first
 * by rowid (SCAN audit, with or without --user: the planner takes no index for `?1 IS NULL OR user = ?1`),
 * so an index by user served no query, and cost a batch's commit a leaf page for each user far from the
 * others: over a quarter of the WAL frames even in bench/radius.sh, whose users come in order. A file
 * an earlier version made loses it at open (open_ddl, dropped_sql). */
static const char *const audit_sql =
	"CREATE TABLE IF NOT EXISTS audit ("
	" id       INTEGER PRIMARY KEY,"
	" at       INTEGER NOT NULL,"
	" event    TEXT NOT NULL,"
	" result   TEXT NOT NULL,"
	" user     TEXT NOT NULL,"
	" serial   TEXT NOT NULL,"
	" client   TEXT NOT NULL,"
	" nas      TEXT NOT NULL,"
	" frontend TEXT NOT NULL,"
	" node     TEXT NOT NULL,"
	" reason   TEXT NOT NULL);"
	"CREATE INDEX IF NOT EXISTS audit_by_at ON audit (at);"
	"CREATE TABLE IF NOT EXISTS debug_switch (user TEXT PRIMARY KEY, expires INTEGER NOT NULL)";

static int db_err(sq_conn_t *c, const char *what, char *err, size_t err_len)
{
	SETERR("token store: %s: %s", what, sqlite3_errmsg(c->db));
	return -1;
}

/* Open-time SQL only (pragmas, the schema); everything a login runs is in sql_text. */
static int exec(sq_conn_t *c, const char *sql, char *err, size_t err_len)
{
	if (sqlite3_exec(c->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_err(c, sql, err, err_len);
	return 0;
}

static int run_sql(sq_conn_t *c, enum sql_id id, char *err, size_t err_len);

/* By the compiled statement (a read job's snapshot ends with one: sqlite3_exec compiled it each time);
 * by sqlite3_exec only if it could not be compiled. */
static void rollback(sq_conn_t *c)
{
	if (!sqlite3_get_autocommit(c->db) && run_sql(c, SQL_ROLLBACK, NULL, 0) != 0 &&
	    !sqlite3_get_autocommit(c->db))
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
}

/* The connection's compiled statement `id`, compiled on first use. NULL with the reason in err. */
static sqlite3_stmt *stmt(sq_conn_t *c, enum sql_id id, char *err, size_t err_len)
{
	if (c->stmt[id] == NULL &&
	    sqlite3_prepare_v3(c->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id], NULL) != SQLITE_OK) {
		db_err(c, sql_text[id], err, err_len);
		sqlite3_finalize(c->stmt[id]);
		c->stmt[id] = NULL;
	}
	return c->stmt[id];
}

/* Reset, so the statement holds no read snapshot or lock, and unbind, so it keeps no pointer into the
 * caller's memory (the bindings are SQLITE_STATIC). */
static void stmt_done(sqlite3_stmt *st)
{
	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
}

/* A statement without result rows: transaction control. */
static int run_sql(sq_conn_t *c, enum sql_id id, char *err, size_t err_len)
{
	sqlite3_stmt *st = stmt(c, id, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, sql_text[id], err, err_len);
	stmt_done(st);
	return rc;
}

static void copy_text(char *dst, size_t max, const unsigned char *src)
{
	ftm_copy(dst, max, (const char *)src);
}

/* Only a lock the store knows came from failures ends by itself: anything else on a locked token
 * (an admin's lock, one from before the reason was kept, a damaged value) stays locked. */
static ftm_lock_reason_t lock_reason_parse(const unsigned char *text, ftm_token_status_t status)
{
	if (status == FTM_TOKEN_ACTIVE)
		return FTM_LOCK_NONE;
	return text != NULL && strcmp((const char *)text, "failures") == 0 ? FTM_LOCK_FAILURES : FTM_LOCK_ADMIN;
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
	row->tok.lock_reason = lock_reason_parse(sqlite3_column_text(st, 11), row->tok.status);
	row->tok.locked_at = sqlite3_column_int64(st, 12);
	return 0;
}

static const char *status_text(ftm_token_status_t status)
{
	return status == FTM_TOKEN_ACTIVE ? "active" : "lock";
}

/* ---- connections ---- */

static void conn_close(sq_conn_t *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < SQL_COUNT; i++)
		sqlite3_finalize(c->stmt[i]);
	sqlite3_close_v2(c->db);
	free(c);
}

/* After each commit on c: what wal_autocheckpoint does (a checkpoint, PASSIVE, once the WAL reaches
 * WAL_AUTOCHECKPOINT frames; a hook of our own replaces SQLite's), and the count kept for sq_close. */
static int wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	sq_conn_t *c = arg;

	c->wal_frames = frames;
	if (frames >= WAL_AUTOCHECKPOINT)
		sqlite3_wal_checkpoint(db, name);
	return SQLITE_OK;
}

/* Each connection is used by one thread at a time (the batch leader, or the thread that took a reader
 * from the pool), so SQLite's per-connection mutex is not needed. */
static sq_conn_t *conn_open(const char *path, bool reader, char *err, size_t err_len)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | OPEN_NOFOLLOW;
	sq_conn_t *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		SETERR("token store: out of memory");
		return NULL;
	}
	if (sqlite3_open_v2(path, &c->db, flags, NULL) != SQLITE_OK) {
		SETERR("token store %s: %s", path, c->db ? sqlite3_errmsg(c->db) : "cannot open");
		conn_close(c);
		return NULL;
	}
	sqlite3_extended_result_codes(c->db, 1);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	sqlite3_wal_hook(c->db, wal_hook, c);
#ifdef SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE
	/* A commit is durable once its WAL frames are synced (synchronous=FULL); checkpointing and deleting
	 * the WAL when the last connection closes cost a short-lived process (a PAM login) four more syncs
	 * and a new WAL file per login. The WAL is still checkpointed as it grows (wal_autocheckpoint). */
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
#endif
	/* synchronous=FULL: a committed verdict (a consumed step, a failure count) survives a crash; set on
	 * readers too, since a reader may run a checkpoint. */
	if (exec(c, "PRAGMA synchronous=FULL", err, err_len) != 0 ||
	    (reader && exec(c, "PRAGMA query_only=1", err, err_len) != 0)) {
		conn_close(c);
		return NULL;
	}
	return c;
}

static sq_conn_t *reader_take(sq_t *s, char *err, size_t err_len)
{
	sq_conn_t *c;

	if (s->single)
		return s->writer;
	pthread_mutex_lock(&s->readers_mu);
	c = s->idle_readers;
	if (c != NULL)
		s->idle_readers = c->next;
	pthread_mutex_unlock(&s->readers_mu);
	return c != NULL ? c : conn_open(s->path, true, err, err_len);
}

static void reader_give_back(sq_t *s, sq_conn_t *c)
{
	if (c == s->writer)
		return;
	pthread_mutex_lock(&s->readers_mu);
	c->next = s->idle_readers;
	s->idle_readers = c;
	pthread_mutex_unlock(&s->readers_mu);
}

/* ---- group commit ---- */

/* Behind a foreign lock a queued job waits the busy timeout once, counted from when it was queued: the
 * batch's wait for the write lock is what is left of its oldest job's (the first in the queue), so the
 * jobs that queued while the batch before waited do not wait it all again in turn. */
static int begin_batch_within(sq_conn_t *c, int64_t left, char *err, size_t err_len)
{
	int rc;

	sqlite3_busy_timeout(c->db, left > 0 ? (int)left : 0);
	rc = run_sql(c, SQL_BEGIN_IMMEDIATE, err, err_len);
	sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
	return rc;
}

/* Every job of the batch (from `batch` on) without an outcome yet: rc 0, no reason. */
static void jobs_reset(ftm_batch_job_t *batch)
{
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next) {
		j->rc = 0;
		if (j->err != NULL && j->err_len > 0)
			j->err[0] = '\0';
	}
}

static int begin_batch(sq_conn_t *c, const ftm_batch_job_t *batch, char *err, size_t err_len)
{
	return begin_batch_within(c, BUSY_TIMEOUT_MS - (ftm_mono_ms() - batch->queued_ms), err, err_len);
}

/* A batch of jobs that may all run again (sq_job_t.redo: the login verdicts of a busy server) first runs
 * without a savepoint per job: SAVEPOINT and RELEASE are two statements a job, as many as its own
 * write-back, and under a savepoint SQLite copies each page the job changes first into its statement
 * journal, for ROLLBACK TO (bench_login -t 16 under callgrind: 120k instructions a login, 112k
 * without). A job that fails before it has changed a row (sqlite3_total_changes: every row its
 * INSERT or UPDATE statements changed; a statement that fails changes none, SQLite undoes it alone)
 * needs no undo, and the others go on. A job that fails after it changed a row cannot be undone alone:
 * then the whole transaction is rolled back, nothing of it committed, and 1 is returned for the caller
 * to run the batch again under savepoints, where each job decides again on the rows as they are then
 * (no output of the first run survives: each job's run starts over). 0: committed, each job's rc set;
 * -1: the transaction failed (err), nothing committed; 2: not such a batch, nothing done. */
static int run_batch_unguarded(sq_conn_t *c, ftm_batch_job_t *batch, char *err, size_t err_len)
{
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next)
		if (!((const sq_job_t *)j->arg)->redo)
			return 2;
	jobs_reset(batch);
	if (begin_batch(c, batch, err, err_len) != 0)
		return -1;
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next) {
		const sq_job_t *w = j->arg;
		int changes = sqlite3_total_changes(c->db);

		j->rc = w->run(c, w->arg, j->err, j->err_len);
		if (sqlite3_get_autocommit(c->db)) {
			snprintf(err, err_len, "%s", j->err != NULL && j->err[0] ? j->err : "token store: transaction aborted");
			return -1;
		}
		if (j->rc < 0 && sqlite3_total_changes(c->db) != changes) {
			rollback(c);
			return 1;
		}
	}
	return run_sql(c, SQL_COMMIT, err, err_len) == 0 ? 0 : -1;
}

/* One transaction for the whole batch; each job under a savepoint, so a job that fails (a duplicate
 * serial, a seed that does not decrypt) is undone alone. An error that ends the transaction fails the
 * whole batch: nothing in it committed. A batch of one job (every write of a PAM login, of an idle
 * server) needs no savepoint: the job failing rolls the transaction back, which undoes exactly what
 * ROLLBACK TO would have, and nothing is committed. */
static void run_batch(void *owner, ftm_batch_job_t *batch)
{
	sq_t *s = owner;
	sq_conn_t *c = s->writer;
	char err[FTM_MSG_MAX] = "";
	int rerun;

	if (batch->next == NULL) {
		const sq_job_t *w = batch->arg;

		jobs_reset(batch);
		if (begin_batch(c, batch, err, sizeof(err)) != 0)
			goto abort;
		batch->rc = w->run(c, w->arg, batch->err, batch->err_len);
		if (sqlite3_get_autocommit(c->db)) {
			snprintf(err, sizeof(err), "%s", batch->err != NULL && batch->err[0] ? batch->err
						 : "token store: transaction aborted");
			goto abort;
		}
		if (batch->rc < 0) {		/* the job's own failure, with its own reason */
			rollback(c);
			return;
		}
		if (run_sql(c, SQL_COMMIT, err, sizeof(err)) == 0)
			return;
		goto abort;
	}

	switch ((rerun = run_batch_unguarded(c, batch, err, sizeof(err)))) {
	case 0:
		return;
	case -1:
		goto abort;
	default:
		break;	/* a job failed after it wrote (1): the batch again, each job under its savepoint */
	}
	jobs_reset(batch);
	/* A re-run gave the write lock up with its rollback, and another process may have taken it: it
	 * waits the whole busy timeout again, as a batch of its own, not what its first run left over
	 * (one failing verdict must not fail the others because the first run waited long) */
	if ((rerun == 1 ? begin_batch_within(c, BUSY_TIMEOUT_MS, err, sizeof(err))
			: begin_batch(c, batch, err, sizeof(err))) != 0)
		goto abort;
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next) {
		const sq_job_t *w = j->arg;

		if (run_sql(c, SQL_SAVEPOINT, err, sizeof(err)) != 0)
			goto abort;
		j->rc = w->run(c, w->arg, j->err, j->err_len);
		if (sqlite3_get_autocommit(c->db)) {
			snprintf(err, sizeof(err), "%s", j->err != NULL && j->err[0] ? j->err : "token store: transaction aborted");
			goto abort;
		}
		if (j->rc < 0 && run_sql(c, SQL_ROLLBACK_TO, err, sizeof(err)) != 0)
			goto abort;
		if (run_sql(c, SQL_RELEASE, err, sizeof(err)) != 0)
			goto abort;
	}
	if (run_sql(c, SQL_COMMIT, err, sizeof(err)) == 0)
		return;
abort:
	rollback(c);
	ftm_batch_fail(batch, err);
}

/* Queue a job and return once the batch holding it has committed (or failed). redo: the job may be run
 * again from the start after a rollback (sq_job_t.redo): one that only reads and writes the database
 * inside the batch's transaction and decides from what it reads (a login verdict: ftm_decide_fn starts
 * over on each call), so a second run after a rollback decides as the first would have on the same rows
 * and overwrites every output of the first. */
static int queue_job(sq_t *s, int (*run)(sq_conn_t *, void *, char *, size_t), void *arg, bool redo,
		     char *err, size_t err_len)
{
	sq_job_t job = { run, arg, redo };

	return ftm_batch_run(&s->batcher, &job, err, err_len);
}

static int write_job(sq_t *s, int (*run)(sq_conn_t *, void *, char *, size_t), void *arg,
		     char *err, size_t err_len)
{
	return queue_job(s, run, arg, false, err, err_len);
}

/* ---- open / close ---- */

static int ensure_wal(sq_conn_t *c, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	/* journal_mode is persistent in the file: only the first opener switches it */
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "journal mode", err, err_len);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
		rc = 0;
	sqlite3_finalize(st);
	if (rc == 0)
		return 0;
	if (sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "journal mode", err, err_len);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0)
		rc = 0;
	else
		db_err(c, "cannot switch to WAL", err, err_len);
	sqlite3_finalize(st);
	return rc;
}

static int schema_version(sq_conn_t *c)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sqlite3_prepare_v2(c->db, "SELECT max(version) FROM schema_version", -1, &st, NULL) != SQLITE_OK)
		return -1;	/* no table yet */
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int too_new(int v, char *err, size_t err_len)
{
	SETERR("token store: the file has schema version %d, newer than this ftmpush (version %d): upgrade "
	       "ftmpush on this host before it uses the file", v, SCHEMA_VERSION);
	return -1;
}

/* Create or migrate under one write lock (BEGIN IMMEDIATE), the version read again inside it, so
 * processes opening the file together agree; every step and its version row commit together. */
static int ensure_schema(sq_conn_t *c, const ftm_log_t *log, char *err, size_t err_len)
{
	char ins[96];
	int v = schema_version(c), from;

	if (v == SCHEMA_VERSION)
		return 0;
	if (v > SCHEMA_VERSION)
		return too_new(v, err, err_len);
	if (exec(c, "BEGIN IMMEDIATE", err, err_len) != 0)
		return -1;
	v = schema_version(c);
	if (v < 0)
		v = 0;		/* a new file: step 1 creates everything, schema_version too */
	if (v > SCHEMA_VERSION) {
		rollback(c);
		return too_new(v, err, err_len);
	}
	for (from = v; v < SCHEMA_VERSION; v++) {
		snprintf(ins, sizeof(ins), "INSERT INTO schema_version (version) VALUES (%d)", v + 1);
		if (exec(c, migrations[v], err, err_len) != 0 || exec(c, ins, err, err_len) != 0) {
			rollback(c);
			return -1;
		}
	}
	if (exec(c, "COMMIT", err, err_len) != 0) {
		rollback(c);
		return -1;
	}
	if (from > 0 && from != SCHEMA_VERSION)
		ftm_log(log, FTM_LOG_INFO, "token store: schema migrated from version %d to %d", from, SCHEMA_VERSION);
	return 0;
}

static void sq_close(void *be)
{
	sq_t *s = be;

	if (s == NULL)
		return;
	while (s->idle_readers != NULL) {
		sq_conn_t *next = s->idle_readers->next;

		conn_close(s->idle_readers);
		s->idle_readers = next;
	}
	/* The first process to open the file after the last one closed it rebuilds the WAL index by reading
	 * and checksumming every frame in the WAL (SQLite truncates the -shm then): a PAM login, a process
	 * of its own, paid ~4,600 instructions and one pread per frame, up to WAL_AUTOCHECKPOINT frames
	 * (~4.6M instructions, as much as the rest of the store's work). So a process that wrote enough
	 * checkpoints and truncates the WAL as it closes; the next opener reads at most WAL_CLOSE_TRUNCATE
	 * frames. Only then, since a checkpoint costs syncs: about one login in 16 pays it. A committed
	 * verdict was durable already (synchronous=FULL); the checkpoint copies it to the file, synced
	 * before the WAL is truncated. It never waits: when another process is reading or writing it gives
	 * up (SQLITE_BUSY) and leaves the WAL as it is. */
	if (s->writer != NULL && s->writer->wal_frames >= WAL_CLOSE_TRUNCATE) {
		sqlite3_busy_timeout(s->writer->db, 0);
		sqlite3_wal_checkpoint_v2(s->writer->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	}
	conn_close(s->writer);
	pthread_mutex_destroy(&s->readers_mu);
	ftm_batcher_destroy(&s->batcher);
	free(s->path);
	free(s);
}

static int open_ddl(sq_conn_t *c, char *err, size_t err_len);

/* SQLite counts every allocation it makes under one process-wide mutex (SQLITE_CONFIG_MEMSTATUS, on by
 * default; Debian's library has no lookaside, so a login makes dozens of them): the threads of a
 * FreeRADIUS server queued on that mutex about once a login. The counts serve only sqlite3_memory_used()
 * and the soft heap limit, which nothing here sets. Possible only before SQLite initialises (if another
 * part of the process opened a database first, the call fails and SQLite stays as it was), and not
 * thread-safe: only from ftm_store_process_init, at a program's single-threaded start. */
void ftm_store_sqlite_process_init(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* The file systems on which SQLite's WAL must not be used: network and cluster file systems. The WAL
 * index is shared memory (the -shm file mapped by every process) guarded by POSIX locks, so it works only
 * when every process runs on one host, on a local file system (https://www.sqlite.org/wal.html). A
 * second host opening the same file keeps an index of its own: both would append to the WAL, and
 * verdicts would be lost (a consumed step accepted again). NULL: not one of them. */
static const char *network_fs(unsigned long type)
{
	static const struct { unsigned long type; const char *name; } fs[] = {
		{ NFS_SUPER_MAGIC, "nfs" }, { SMB_SUPER_MAGIC, "smb" }, { CIFS_SUPER_MAGIC, "cifs" },
		{ SMB2_SUPER_MAGIC, "smb2" }, { V9FS_MAGIC, "9p" }, { CEPH_SUPER_MAGIC, "ceph" },
		{ AFS_SUPER_MAGIC, "afs" }, { AFS_FS_MAGIC, "afs" }, { CODA_SUPER_MAGIC, "coda" },
		{ NCP_SUPER_MAGIC, "ncp" }, { OCFS2_SUPER_MAGIC, "ocfs2" },
		{ 0x01161970UL, "gfs2" }, { 0x0bd00bd0UL, "lustre" }, { 0x47504653UL, "gpfs" },
	};

	for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++)
		if ((type & 0xffffffffUL) == fs[i].type)
			return fs[i].name;
	return NULL;
}

/* The directory part of path into dir ("." for a bare name, "/" for one in the root); -1 when too long. */
static int dir_of(const char *path, char *dir, size_t dir_len)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		return snprintf(dir, dir_len, ".") < (int)dir_len ? 0 : -1;
	if ((size_t)(slash - path) >= dir_len)
		return -1;
	snprintf(dir, dir_len, "%.*s", slash == path ? 1 : (int)(slash - path), path);
	return 0;
}

/* Refuses a store whose directory is on such a file system, before the file is created there. */
int ftm_store_sqlite_local_fs(const char *path, char *err, size_t err_len)
{
	char dir[4096];
	struct statfs fs;
	const char *name;

	if (dir_of(path, dir, sizeof(dir)) != 0) {
		SETERR("token store %s: path too long", path);
		return -1;
	}
	if (statfs(dir, &fs) != 0) {
		SETERR("token store %s: %s: %s", path, dir, strerror(errno));
		return -1;
	}
	if ((name = network_fs((unsigned long)fs.f_type)) != NULL) {
		SETERR("token store %s is on a network file system (%s): refused; SQLite's WAL works only on a local file system, "
		       "with every process on one host: keep the store on a local disk, or share one state between servers "
		       "through PostgreSQL (token_db = postgresql://...)", path, name);
		return -1;
	}
	return 0;
}

static void *sq_open(const char *path, const ftm_log_t *log, char *err, size_t err_len)
{
	sq_t *s;
	struct stat sb;
	int fd;

	if (path == NULL || path[0] == '\0') {
		SETERR("token store: no database path");
		return NULL;
	}
	/* (its directory's file system was checked by store.c, before the key file: ftm_store_sqlite_local_fs) */
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
	if (s == NULL || (s->path = strdup(path)) == NULL) {
		free(s);
		SETERR("token store: out of memory");
		return NULL;
	}
	ftm_batcher_init(&s->batcher, run_batch, s);
	pthread_mutex_init(&s->readers_mu, NULL);
	s->log = log;
	s->writer = conn_open(path, false, err, err_len);
	if (s->writer == NULL || ensure_wal(s->writer, err, err_len) != 0 ||
	    ensure_schema(s->writer, log, err, err_len) != 0 || open_ddl(s->writer, err, err_len) != 0) {
		sq_close(s);
		return NULL;
	}
	return s;
}

/* A handle that one thread uses, one call at a time (a PAM login's): its reads run on the writer, since a
 * reader of its own would only add an open and a schema parse. Nothing reads while a write is in flight
 * then, and no read holds the connection across a write: a list's callback must not write (as with a
 * reader), and if one did, its BEGIN IMMEDIATE inside the read would fail the write, not corrupt it. */
static void sq_single(void *be)
{
	((sq_t *)be)->single = true;
}

/* ftm_store_peek_on_idle_writer: the code peek (sq_verdict_audited without write) may run on the
 * writer connection. It holds the batch's turn (ftm_batch_try_hold) for its one SELECT, so no batch
 * leader uses the connection meanwhile; it never waits for one (busy: a reader, as before). A read on
 * the writer is a read like a reader's: its own snapshot, the WAL's read locks; the connection is
 * never in a write transaction outside a batch. */
static void sq_peek_on_idle_writer(void *be)
{
	((sq_t *)be)->peek_writer = true;
}

/* A job that writes goes to the group commit; a peek runs on a reader inside one read transaction, so
 * its SELECTs see one snapshot. */
static int snapshot_or_write_job(sq_t *s, bool write, int (*run)(sq_conn_t *, void *, char *, size_t), void *arg,
				 char *err, size_t err_len)
{
	sq_conn_t *c;
	int rc;

	if (write)
		return write_job(s, run, arg, err, err_len);
	if ((c = reader_take(s, err, err_len)) == NULL)
		return -1;
	rc = run_sql(c, SQL_BEGIN, err, err_len);
	if (rc == 0)
		rc = run(c, arg, err, err_len);
	rollback(c);
	reader_give_back(s, c);
	return rc;
}

/* ---- meta ---- */

static int sq_meta_get(void *be, const char *name, uint8_t *buf, size_t max, size_t *len, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if ((st = stmt(c, SQL_META_GET, err, err_len)) == NULL)
		goto out;
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
		db_err(c, "meta", err, err_len);
	}
	stmt_done(st);
out:
	reader_give_back(s, c);
	return rc;
}

struct meta_arg {
	const char	*name;
	const uint8_t	*buf;
	size_t		len;
};

static int job_meta_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct meta_arg *m = arg;
	sqlite3_stmt *st = stmt(c, SQL_META_PUT, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, m->name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, m->buf, (int)m->len, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "meta", err, err_len);
	stmt_done(st);
	return rc;
}

/* INSERT OR IGNORE: the first writer wins; callers read back what was kept. */
static int sq_meta_put(void *be, const char *name, const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	struct meta_arg m = { .name = name, .buf = buf, .len = len };

	return write_job(be, job_meta_put, &m, err, err_len);
}

/* ---- tokens ---- */

struct insert_arg {
	size_t			n;
	ftm_rows_fill_fn	fill;
	void			*ctx;
	ftm_store_row_t		*rows;		/* FTM_STORE_INSERT_CHUNK: the chunk being inserted */
};

static int job_insert(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct insert_arg *ia = arg;
	sqlite3_stmt *st = stmt(c, SQL_INSERT, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	for (size_t i = 0; rc == 0 && i < ia->n; i++) {
		const ftm_store_row_t *row = &ia->rows[i % FTM_STORE_INSERT_CHUNK];
		const ftm_token_t *t = &row->tok;
		int r;

		if (i % FTM_STORE_INSERT_CHUNK == 0) {
			size_t k = ia->n - i < FTM_STORE_INSERT_CHUNK ? ia->n - i : FTM_STORE_INSERT_CHUNK;

			if (ia->fill(ia->ctx, i, ia->rows, k, err, err_len) != 0) {
				rc = -1;
				break;
			}
		}

		sqlite3_bind_text(st, 1, t->serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, t->user, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, row->sealed, (int)row->sealed_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, ftm_alg_name(t->alg), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 5, (int)t->digits);
		sqlite3_bind_int(st, 6, (int)t->period);
		sqlite3_bind_text(st, 7, status_text(t->status), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, t->last_step);
		sqlite3_bind_int(st, 9, (int)t->failures);
		sqlite3_bind_text(st, 10, t->push, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 11, t->created);
		sqlite3_bind_text(st, 12, ftm_lock_reason_name(t->lock_reason), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 13, t->locked_at);
		r = sqlite3_step(st);
		if (r == SQLITE_CONSTRAINT_PRIMARYKEY || r == SQLITE_CONSTRAINT_UNIQUE) {
			SETERR("token %s already exists", t->serial);
			rc = -1;
		} else if (r != SQLITE_DONE) {
			rc = db_err(c, "insert", err, err_len);
		}
		sqlite3_reset(st);
	}
	stmt_done(st);
	return rc;
}

static int sq_insert(void *be, size_t n, ftm_rows_fill_fn fill, void *ctx, char *err, size_t err_len)
{
	struct insert_arg ia = { .n = n, .fill = fill, .ctx = ctx };
	int rc;

	ia.rows = calloc(n < FTM_STORE_INSERT_CHUNK ? n : FTM_STORE_INSERT_CHUNK, sizeof(*ia.rows));
	if (ia.rows == NULL) {
		SETERR("out of memory");
		return -1;
	}
	rc = write_job(be, job_insert, &ia, err, err_len);
	free(ia.rows);
	return rc;
}

static int sq_get(void *be, const char *serial, ftm_store_row_t *out, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if ((st = stmt(c, SQL_GET, err, err_len)) == NULL)
		goto out;
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = 1;
	else if (r != SQLITE_ROW)
		db_err(c, "get", err, err_len);
	else if (row_from_stmt(st, out) != 0)
		SETERR("token %s: damaged record", serial);
	else
		rc = 0;
	stmt_done(st);
out:
	reader_give_back(s, c);
	return rc;
}

/* One UPDATE or DELETE of one token, by serial (the statement's last parameter). */
struct update_arg {
	enum sql_id		id;
	const char		*serial;
	const char		*text;	/* SQL_SET_STATUS*, SQL_SET_PUSH, SQL_SET_USER */
	const ftm_store_row_t	*row;	/* SQL_REISSUE */
	const char		*reason;	/* SQL_SET_STATUS*: the lock reason and time */
	int64_t			locked_at;
};

/* 1 when no such serial. */
static int job_update(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct update_arg *u = arg;
	sqlite3_stmt *st = stmt(c, u->id, err, err_len);
	int rc;

	if (st == NULL)
		return -1;
	if (u->row != NULL) {
		sqlite3_bind_blob(st, 1, u->row->sealed, (int)u->row->sealed_len, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ftm_alg_name(u->row->tok.alg), -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, (int)u->row->tok.digits);
		sqlite3_bind_int(st, 4, (int)u->row->tok.period);
		sqlite3_bind_int64(st, 5, u->row->tok.created);
		sqlite3_bind_text(st, 6, status_text(u->row->tok.status), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, u->row->tok.last_step);
		sqlite3_bind_int(st, 8, (int)u->row->tok.failures);
	} else if (u->text != NULL) {
		sqlite3_bind_text(st, 1, u->text, -1, SQLITE_STATIC);
	}
	if (u->reason != NULL) {
		sqlite3_bind_text(st, 2, u->reason, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, u->locked_at);
	}
	sqlite3_bind_text(st, sqlite3_bind_parameter_count(st), u->serial, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "update", err, err_len);
	else
		rc = sqlite3_changes(c->db) == 0 ? 1 : 0;
	stmt_done(st);
	return rc;
}

static int update_one(void *be, enum sql_id id, const char *serial, const char *text, const ftm_store_row_t *row,
		      char *err, size_t err_len)
{
	struct update_arg u = { .id = id, .serial = serial, .text = text, .row = row };

	return write_job(be, job_update, &u, err, err_len);
}

static int sq_reissue(void *be, const ftm_store_row_t *row, char *err, size_t err_len)
{
	return update_one(be, SQL_REISSUE, row->tok.serial, NULL, row, err, err_len);
}

static int sq_set_status(void *be, const char *serial, ftm_token_status_t status, ftm_lock_reason_t reason,
			 int64_t locked_at, bool clear_failures, char *err, size_t err_len)
{
	struct update_arg u = { .id = clear_failures ? SQL_SET_STATUS_CLEAR_FAILURES : SQL_SET_STATUS,
				.serial = serial, .text = status_text(status),
				.reason = ftm_lock_reason_name(reason), .locked_at = locked_at };

	return write_job(be, job_update, &u, err, err_len);
}

static int sq_set_push(void *be, const char *serial, const char *push, char *err, size_t err_len)
{
	return update_one(be, SQL_SET_PUSH, serial, push, NULL, err, err_len);
}

static int sq_set_user(void *be, const char *serial, const char *user, char *err, size_t err_len)
{
	return update_one(be, SQL_SET_USER, serial, user, NULL, err, err_len);
}

static int sq_remove(void *be, const char *serial, char *err, size_t err_len)
{
	return update_one(be, SQL_DELETE, serial, NULL, NULL, err, err_len);
}

/* Every token of `user` into *rows (grown as needed; *cap is its size, for the caller to zero and
 * free, also on failure), each with its rowid. *rows may start as the caller's array of *cap (few: on
 * its stack, never freed): the first growth copies it into an allocated one. */
static int load_user_rows(sq_conn_t *c, const char *user, ftm_store_row_t **rows, size_t *n, size_t *cap,
			  ftm_store_row_t *few, char *err, size_t err_len)
{
	sqlite3_stmt *st = stmt(c, SQL_BY_USER, err, err_len);
	int r, rc = -1;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == *cap) {
			bool from_few = *rows == few;
			size_t ncap = *cap ? *cap * 2 : 1;	/* most users hold one token */
			ftm_store_row_t *nr = from_few ? malloc(ncap * sizeof(**rows))
						       : realloc(*rows, ncap * sizeof(**rows));

			if (nr == NULL) {
				SETERR("token store: out of memory");
				goto out;
			}
			if (from_few) {
				memcpy(nr, few, *n * sizeof(**rows));
				ftm_memzero(few, *cap * sizeof(**rows));
			}
			*rows = nr;
			*cap = ncap;
		}
		if (row_from_stmt(st, &(*rows)[*n]) != 0) {
			SETERR("token store: damaged record for user %s", user);
			goto out;
		}
		(*rows)[*n].rowid = sqlite3_column_int64(st, 13);
		(*n)++;
	}
	if (r != SQLITE_DONE)
		db_err(c, "verdict", err, err_len);
	else
		rc = 0;
out:
	stmt_done(st);
	return rc;
}

/* Rows are handed to cb one at a time as they are read, from a reader connection of this call's own,
 * so memory does not grow with the store and cb may call back into the store. */
static int sq_list(void *be, const char *user, ftm_row_cb cb, void *ctx, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st;
	ftm_store_row_t *row = NULL;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if ((st = stmt(c, user ? SQL_LIST_USER : SQL_LIST_ALL, err, err_len)) == NULL)
		goto out;
	if ((row = malloc(sizeof(*row))) == NULL) {
		SETERR("token store: out of memory");
		goto out;
	}
	if (user)
		sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (row_from_stmt(st, row) != 0) {
			SETERR("token store: damaged record");
			goto out;
		}
		if (cb(ctx, row) != 0)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		db_err(c, "list", err, err_len);
	else
		rc = 0;
out:
	stmt_done(st);
	if (row != NULL) {
		ftm_memzero(row, sizeof(*row));
		free(row);
	}
	reader_give_back(s, c);
	return rc;
}

struct verdict_arg {
	const char	*user;
	bool		write;
	ftm_decide_fn	decide;
	void		*ctx;
	const ftm_audit_row_t *audit;	/* appended after the write-back when its event is set */
};

static int audit_insert(sq_conn_t *c, const ftm_audit_row_t *a, char *err, size_t err_len);

#define VERDICT_FEW	2	/* rows a verdict reads into its stack before it allocates */

/* Load, decide, write back. A writing verdict runs as a job of a group commit; a peek runs alone on
 * a reader, whose one SELECT is a consistent snapshot. */
static int job_verdict(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct verdict_arg *va = arg;
	ftm_store_row_t few[VERDICT_FEW], *rows = few;	/* most users hold one token: no malloc */
	size_t n = 0, cap = VERDICT_FEW;
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (load_user_rows(c, va->user, &rows, &n, &cap, few, err, err_len) != 0 ||
	    va->decide(va->ctx, rows, n) != 0)
		goto out;
	if (va->write) {
		if ((st = stmt(c, SQL_VERDICT_UPDATE_ROW, err, err_len)) == NULL)
			goto out;
		for (size_t i = 0; i < n; i++) {
			if (!rows[i].dirty)
				continue;
			sqlite3_bind_text(st, 1, status_text(rows[i].tok.status), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, rows[i].tok.last_step);
			sqlite3_bind_int(st, 3, (int)rows[i].tok.failures);
			sqlite3_bind_text(st, 4, ftm_lock_reason_name(rows[i].tok.lock_reason), -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 5, rows[i].tok.locked_at);
			sqlite3_bind_int64(st, 6, rows[i].rowid);
			sqlite3_bind_text(st, 7, rows[i].tok.serial, -1, SQLITE_STATIC);
			if (sqlite3_step(st) != SQLITE_DONE) {
				db_err(c, "verdict", err, err_len);
				goto out;
			}
			/* read under this transaction's write lock: the row is there, unchanged; if it were
			 * not, the verdict fails rather than returning one it did not write */
			if (sqlite3_changes(c->db) != 1) {
				SETERR("token store: verdict: token %s changed under the write lock", rows[i].tok.serial);
				goto out;
			}
			sqlite3_reset(st);
		}
		if (va->audit != NULL && va->audit->event[0] != '\0' && audit_insert(c, va->audit, err, err_len) != 0)
			goto out;
	}
	rc = 0;
out:
	stmt_done(st);
	/* the rows read, and after a failure the one a read may have half filled; the rest were never written */
	ftm_memzero(rows, (rc != 0 && n < cap ? n + 1 : n) * sizeof(*rows));
	if (rows != few)
		free(rows);
	return rc;
}

static int sq_verdict_audited(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
			      const ftm_audit_row_t *audit, char *err, size_t err_len)
{
	sq_t *s = be;
	struct verdict_arg va = { .user = user, .write = write, .decide = decide, .ctx = ctx, .audit = audit };
	sq_conn_t *c;
	int rc;

	/* The batch's BEGIN IMMEDIATE takes the write lock before the rows are read, so two verdicts on one
	 * token serialize and the second sees the step the first consumed. */
	if (write)
		return queue_job(s, job_verdict, &va, true, err, err_len);
	/* the writer, if it is idle: the batch's turn taken without waiting, so no batch uses it meanwhile */
	if (s->peek_writer && !s->single && ftm_batch_try_hold(&s->batcher)) {
		rc = job_verdict(s->writer, &va, err, err_len);
		ftm_batch_release(&s->batcher);
		return rc;
	}
	if ((c = reader_take(s, err, err_len)) == NULL)
		return -1;
	rc = job_verdict(c, &va, err, err_len);
	reader_give_back(s, c);
	return rc;
}

static int sq_verdict(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
		      char *err, size_t err_len)
{
	return sq_verdict_audited(be, user, write, decide, ctx, NULL, err, err_len);
}

struct consume_arg {
	const char		*user;
	const ftm_code_proof_t	*pr;
	const ftm_audit_row_t	*audit;
	bool			applied;	/* set by each run */
};

/* A job of the group commit, like a verdict's, that compares where a verdict reads: one UPDATE by rowid
 * whose WHERE is the peek's read (store_backend.h consume_proven), then the audit row if it changed. */
static int job_consume_proven(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct consume_arg *ca = arg;
	const ftm_code_proof_t *pr = ca->pr;
	sqlite3_stmt *st = stmt(c, SQL_CONSUME_PROVEN, err, err_len);
	int changed;

	ca->applied = false;
	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, (sqlite3_int64)pr->step);
	sqlite3_bind_int64(st, 2, pr->rowid);
	sqlite3_bind_text(st, 3, pr->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ca->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, status_text(FTM_TOKEN_ACTIVE), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, pr->last_step);
	sqlite3_bind_int64(st, 7, pr->created);
	sqlite3_bind_int(st, 8, FTM_PROOF_SEAL_LEN);
	sqlite3_bind_blob(st, 9, pr->seal, FTM_PROOF_SEAL_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 10, pr->period);
	sqlite3_bind_int(st, 11, FTM_SEALED_MAX);
	if (sqlite3_step(st) != SQLITE_DONE) {
		db_err(c, "verdict", err, err_len);
		stmt_done(st);
		return -1;
	}
	changed = sqlite3_changes(c->db);
	stmt_done(st);
	if (changed != 1)
		return 0;	/* not the rows the peek read (or one damaged): nothing written */
	if (ca->audit != NULL && ca->audit->event[0] != '\0' && audit_insert(c, ca->audit, err, err_len) != 0)
		return -1;
	ca->applied = true;
	return 0;
}

static int sq_consume_proven(void *be, const char *user, const ftm_code_proof_t *pr, const ftm_audit_row_t *audit,
			     bool *applied, char *err, size_t err_len)
{
	struct consume_arg ca = { .user = user, .pr = pr, .audit = audit };
	int rc = queue_job(be, job_consume_proven, &ca, true, err, err_len);

	*applied = rc == 0 && ca.applied;
	return rc;
}

/* ---- activation links ----
 * Their own table, created at open (a store made before links existed gains it then); a link is found
 * by the hash of its code and is bound to the seal of the seed it was issued for. Rare operations: their
 * statements are compiled per call, not cached with the login's. */

static const char *const act_schema_sql =
	"CREATE TABLE IF NOT EXISTS activations ("
	" code_hash BLOB PRIMARY KEY,"		/* SHA-256 of the code: the code itself is never stored */
	" serial    TEXT NOT NULL,"
	" email     TEXT NOT NULL DEFAULT '',"
	" seal_hash BLOB NOT NULL,"
	" created   INTEGER NOT NULL,"
	" expires   INTEGER NOT NULL,"
	" failures  INTEGER NOT NULL DEFAULT 0,"
	" used      INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS activations_by_serial ON activations (serial, created);";

#define ACT_COLS "code_hash, serial, email, seal_hash, created, expires, failures, used"

static int act_from_stmt(sqlite3_stmt *st, ftm_activation_row_t *a)
{
	memset(a, 0, sizeof(*a));
	if (sqlite3_column_bytes(st, 0) != 32 || sqlite3_column_bytes(st, 3) != 32)
		return -1;
	memcpy(a->code_hash, sqlite3_column_blob(st, 0), 32);
	copy_text(a->serial, sizeof(a->serial), sqlite3_column_text(st, 1));
	copy_text(a->email, sizeof(a->email), sqlite3_column_text(st, 2));
	memcpy(a->seal_hash, sqlite3_column_blob(st, 3), 32);
	a->created = sqlite3_column_int64(st, 4);
	a->expires = sqlite3_column_int64(st, 5);
	a->failures = (unsigned)sqlite3_column_int(st, 6);
	a->used = sqlite3_column_int(st, 7) != 0;
	return 0;
}

/* One statement with a text first parameter, stepped to its end: 0, or -1. */
static int act_exec_serial(sq_conn_t *c, const char *sql, const char *serial, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(c, "activation", err, err_len);
		return -1;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		rc = 0;
	else
		db_err(c, "activation", err, err_len);
	sqlite3_finalize(st);
	return rc;
}

static int job_act_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const ftm_activation_row_t *a = arg;
	sqlite3_stmt *st = NULL;
	int r;

	if (sqlite3_prepare_v2(c->db, "SELECT 1 FROM tokens WHERE serial = ?", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "activation", err, err_len);
	sqlite3_bind_text(st, 1, a->serial, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r == SQLITE_DONE)
		return 1;
	if (r != SQLITE_ROW)
		return db_err(c, "activation", err, err_len);
	if (act_exec_serial(c, "DELETE FROM activations WHERE serial = ?", a->serial, err, err_len) != 0)
		return -1;
	if (sqlite3_prepare_v2(c->db, "INSERT INTO activations (" ACT_COLS ") VALUES (?,?,?,?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "activation", err, err_len);
	sqlite3_bind_blob(st, 1, a->code_hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->email, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 4, a->seal_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, a->created);
	sqlite3_bind_int64(st, 6, a->expires);
	sqlite3_bind_int(st, 7, (int)a->failures);
	sqlite3_bind_int(st, 8, a->used ? 1 : 0);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	return r == SQLITE_DONE ? 0 : db_err(c, "activation", err, err_len);
}

static int sq_act_put(void *be, const ftm_activation_row_t *a, char *err, size_t err_len)
{
	return write_job(be, job_act_put, (void *)a, err, err_len);
}

struct act_verdict_arg {
	const uint8_t		*code_hash;
	bool			write;
	ftm_act_decide_fn	decide;
	void			*ctx;
};

/* The link and its token's row, decide, write back: inside a group commit's transaction when writing,
 * in a read transaction of its own on a reader otherwise (two SELECTs, one snapshot). */
static int job_act_verdict(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct act_verdict_arg *va = arg;
	sqlite3_stmt *st = NULL;
	ftm_activation_row_t act;
	ftm_store_row_t *row = calloc(1, sizeof(*row));
	bool have_act = false, have_row = false;
	int rc = -1, r;

	memset(&act, 0, sizeof(act));
	if (row == NULL) {
		SETERR("token store: out of memory");
		return -1;
	}
	if (sqlite3_prepare_v2(c->db, "SELECT " ACT_COLS " FROM activations WHERE code_hash = ?", -1, &st,
			       NULL) != SQLITE_OK) {
		db_err(c, "activation", err, err_len);
		goto out;
	}
	sqlite3_bind_blob(st, 1, va->code_hash, 32, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if (act_from_stmt(st, &act) != 0) {
			SETERR("token store: damaged activation record");
			goto out;
		}
		have_act = true;
	} else if (r != SQLITE_DONE) {
		db_err(c, "activation", err, err_len);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* the token is looked up whether or not the link exists: an unknown link costs what a known one does */
	if ((st = stmt(c, SQL_GET, err, err_len)) == NULL)
		goto out;
	sqlite3_bind_text(st, 1, act.serial, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		if (row_from_stmt(st, row) != 0) {
			SETERR("token %s: damaged record", act.serial);
			goto out;
		}
		have_row = true;
	} else if (r != SQLITE_DONE) {
		db_err(c, "activation", err, err_len);
		goto out;
	}
	stmt_done(st);
	st = NULL;

	if (va->decide(va->ctx, have_act ? &act : NULL, have_act && have_row ? row : NULL) != 0)
		goto out;

	if (va->write && have_act && act.dirty) {
		if (sqlite3_prepare_v2(c->db, "UPDATE activations SET failures = ?, used = ? WHERE code_hash = ?",
				       -1, &st, NULL) != SQLITE_OK) {
			db_err(c, "activation", err, err_len);
			goto out;
		}
		sqlite3_bind_int(st, 1, (int)act.failures);
		sqlite3_bind_int(st, 2, act.used ? 1 : 0);
		sqlite3_bind_blob(st, 3, act.code_hash, 32, SQLITE_STATIC);
		r = sqlite3_step(st);
		sqlite3_finalize(st);
		st = NULL;
		if (r != SQLITE_DONE) {
			db_err(c, "activation", err, err_len);
			goto out;
		}
	}
	if (va->write && have_act && have_row && row->dirty) {
		/* the login verdict's own write-back statement: the same columns change the same way */
		if ((st = stmt(c, SQL_VERDICT_UPDATE, err, err_len)) == NULL)
			goto out;
		sqlite3_bind_text(st, 1, status_text(row->tok.status), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, row->tok.last_step);
		sqlite3_bind_int(st, 3, (int)row->tok.failures);
		sqlite3_bind_text(st, 4, ftm_lock_reason_name(row->tok.lock_reason), -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, row->tok.locked_at);
		sqlite3_bind_text(st, 6, row->tok.serial, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			db_err(c, "activation", err, err_len);
			goto out;
		}
		stmt_done(st);
		st = NULL;
	}
	rc = 0;
out:
	if (st != NULL && st != c->stmt[SQL_GET] && st != c->stmt[SQL_VERDICT_UPDATE])
		sqlite3_finalize(st);
	else
		stmt_done(st);
	ftm_memzero(row, sizeof(*row));
	free(row);
	return rc;
}

static int sq_act_verdict(void *be, const uint8_t code_hash[32], bool write, ftm_act_decide_fn decide,
			  void *ctx, char *err, size_t err_len)
{
	struct act_verdict_arg va = { .code_hash = code_hash, .write = write, .decide = decide, .ctx = ctx };

	return snapshot_or_write_job(be, write, job_act_verdict, &va, err, err_len);
}

static int sq_act_get_serial(void *be, const char *serial, ftm_activation_row_t *out, char *err, size_t err_len)
{
	sq_t *s = be;
	sqlite3_stmt *st = NULL;
	sq_conn_t *c;
	int rc = -1, r;

	if ((c = reader_take(s, err, err_len)) == NULL)
		return -1;
	if (sqlite3_prepare_v2(c->db, "SELECT " ACT_COLS " FROM activations WHERE serial = ?"
			       " ORDER BY created DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK) {
		db_err(c, "activation", err, err_len);
		goto out;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_DONE)
		rc = 1;
	else if (r != SQLITE_ROW)
		db_err(c, "activation", err, err_len);
	else if (act_from_stmt(st, out) != 0)
		SETERR("token store: damaged activation record");
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	reader_give_back(s, c);
	return rc;
}

static int job_act_revoke(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	return act_exec_serial(c, "DELETE FROM activations WHERE serial = ?", arg, err, err_len);
}

static int sq_act_revoke(void *be, const char *serial, char *err, size_t err_len)
{
	return write_job(be, job_act_revoke, (void *)serial, err, err_len);
}

/* ---- code-challenge States ---- */

struct state_arg {
	const char	*id, *user, *client;
	int64_t		expires, now;
	char		*user_out, *client_out;
	size_t		user_len, client_len;
	bool		found;
};

/* Keep the newest `cap` States of one user (or client), the one just issued among them. */
static int state_cap(sq_conn_t *c, int which, const char *who, const char *id, unsigned cap,
		     char *err, size_t err_len)
{
	sqlite3_stmt *st = stmt(c, which, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, who, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)cap - 1);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "state", err, err_len);
	stmt_done(st);
	return rc;
}

static int job_state_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct state_arg *a = arg;
	sqlite3_stmt *st = stmt(c, SQL_STATE_PURGE, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a->now);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "state", err, err_len);
	stmt_done(st);
	if (rc != 0 || (st = stmt(c, SQL_STATE_PUT, err, err_len)) == NULL)
		return -1;
	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, a->client, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, a->expires);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "state", err, err_len);
	stmt_done(st);
	if (rc == 0)
		rc = state_cap(c, SQL_STATE_CAP_USER, a->user, a->id, FTM_STATES_PER_USER, err, err_len);
	if (rc == 0)
		rc = state_cap(c, SQL_STATE_CAP_CLIENT, a->client, a->id, FTM_STATES_PER_CLIENT, err, err_len);
	return rc;
}

static int sq_state_put(void *be, const char *id, const char *user, const char *client, int64_t expires,
			int64_t now, char *err, size_t err_len)
{
	struct state_arg a = { .id = id, .user = user, .client = client, .expires = expires, .now = now };

	return write_job(be, job_state_put, &a, err, err_len);
}

/* A write: the DELETE that finds the row is the one answer that gets it, in any process. */
static int job_state_take(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct state_arg *a = arg;
	sqlite3_stmt *st = stmt(c, SQL_STATE_TAKE, err, err_len);
	int rc = 0, r;

	if (st == NULL)
		return -1;
	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		copy_text(a->user_out, a->user_len, sqlite3_column_text(st, 0));
		copy_text(a->client_out, a->client_len, sqlite3_column_text(st, 1));
		a->expires = sqlite3_column_int64(st, 2);
		a->found = true;
		r = sqlite3_step(st);
	}
	if (r != SQLITE_DONE)
		rc = db_err(c, "state", err, err_len);
	stmt_done(st);
	return rc;
}

static int sq_state_take(void *be, const char *id, char *user, size_t user_len, char *client, size_t client_len,
			 int64_t *expires, char *err, size_t err_len)
{
	struct state_arg a = { .id = id, .user_out = user, .user_len = user_len,
			       .client_out = client, .client_len = client_len };
	int rc = write_job(be, job_state_take, &a, err, err_len);

	if (rc != 0)
		return -1;
	*expires = a.expires;
	return a.found ? 0 : 1;
}

/* ---- the verdict policy ---- */

static int sq_settings_get(void *be, int (*cb)(void *ctx, const char *name, const char *value), void *ctx,
			   char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if ((st = stmt(c, SQL_SETTINGS_GET, err, err_len)) == NULL)
		goto out;
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *name = sqlite3_column_text(st, 0), *value = sqlite3_column_text(st, 1);

		if (name != NULL && cb(ctx, (const char *)name, value != NULL ? (const char *)value : "") != 0)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		db_err(c, "settings", err, err_len);
	else
		rc = 0;
	stmt_done(st);
out:
	reader_give_back(s, c);
	return rc;
}

struct settings_arg {
	enum sql_id		id;
	const char *const	*names, *const *values;
	size_t			n;
	int64_t			changed;
};

static int job_settings(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct settings_arg *a = arg;
	sqlite3_stmt *st = stmt(c, a->id, err, err_len);
	int rc = 0;

	if (st == NULL)
		return -1;
	for (size_t i = 0; rc == 0 && i < a->n; i++) {
		sqlite3_bind_text(st, 1, a->names[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, a->values[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, a->changed);
		if (sqlite3_step(st) != SQLITE_DONE)
			rc = db_err(c, "settings", err, err_len);
		sqlite3_reset(st);
	}
	stmt_done(st);
	return rc;
}

static int sq_setting_put(void *be, const char *name, const char *value, int64_t changed, char *err, size_t err_len)
{
	struct settings_arg a = { .id = SQL_SETTING_PUT, .names = &name, .values = &value, .n = 1, .changed = changed };

	return write_job(be, job_settings, &a, err, err_len);
}

static int sq_settings_seed(void *be, const char *const *names, const char *const *values, size_t n,
			    int64_t changed, char *err, size_t err_len)
{
	struct settings_arg a = { .id = SQL_SETTING_SEED, .names = names, .values = values, .n = n, .changed = changed };

	return write_job(be, job_settings, &a, err, err_len);
}

/* ---- recovery codes (the table: recovery_schema_sql): rare, statements compiled per call ---- */

struct recovery_arg {
	const char			*user;
	const ftm_recovery_row_t	*codes;		/* replace */
	size_t				n;
	bool				write;		/* verdict */
	ftm_recovery_decide_fn		decide;
	void				*ctx;
	sq_conn_t			*c;
	char				*err;
	size_t				err_len;
};

static int job_recovery_replace(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	const struct recovery_arg *ra = arg;
	sqlite3_stmt *st = NULL;
	int r;

	if (sqlite3_prepare_v2(c->db, "DELETE FROM recovery_codes WHERE user = ?", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "recovery codes", err, err_len);
	sqlite3_bind_text(st, 1, ra->user, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return db_err(c, "recovery codes", err, err_len);
	if (sqlite3_prepare_v2(c->db, "INSERT INTO recovery_codes (salt, user, hash, created, used) VALUES (?,?,?,?,?)",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "recovery codes", err, err_len);
	for (size_t i = 0; i < ra->n; i++) {
		sqlite3_bind_blob(st, 1, ra->codes[i].salt, FTM_RECOVERY_SALT_LEN, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, ra->user, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 3, ra->codes[i].hash, FTM_RECOVERY_HASH_LEN, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, ra->codes[i].created);
		sqlite3_bind_int64(st, 5, ra->codes[i].used);
		r = sqlite3_step(st);
		sqlite3_reset(st);
		if (r != SQLITE_DONE) {
			db_err(c, "recovery codes", err, err_len);
			sqlite3_finalize(st);
			return -1;
		}
	}
	sqlite3_finalize(st);
	return 0;
}

static int sq_recovery_replace(void *be, const char *user, const ftm_recovery_row_t *codes, size_t n,
			       char *err, size_t err_len)
{
	struct recovery_arg ra = { .user = user, .codes = codes, .n = n };

	return write_job(be, job_recovery_replace, &ra, err, err_len);
}

/* The verdict's decide step: read the user's codes on the verdict's own connection (in its transaction
 * when writing), decide, write back the codes used. job_verdict then writes the token rows. */
static int recovery_decide(void *arg, ftm_store_row_t *rows, size_t n)
{
	struct recovery_arg *ra = arg;
	char *err = ra->err;
	size_t err_len = ra->err_len;
	ftm_recovery_row_t *codes = NULL;
	sqlite3_stmt *st = NULL;
	size_t m = 0, cap = 0;
	int rc = -1, r;

	if (sqlite3_prepare_v2(ra->c->db, "SELECT salt, hash, created, used FROM recovery_codes WHERE user = ?"
			       " ORDER BY created, salt", -1, &st, NULL) != SQLITE_OK)
		return db_err(ra->c, "recovery codes", err, err_len);
	sqlite3_bind_text(st, 1, ra->user, -1, SQLITE_STATIC);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (m == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			ftm_recovery_row_t *nc = realloc(codes, ncap * sizeof(*codes));

			if (nc == NULL) {
				SETERR("token store: out of memory");
				goto out;
			}
			codes = nc;
			cap = ncap;
		}
		memset(&codes[m], 0, sizeof(codes[m]));
		if (sqlite3_column_bytes(st, 0) != FTM_RECOVERY_SALT_LEN ||
		    sqlite3_column_bytes(st, 1) != FTM_RECOVERY_HASH_LEN) {
			SETERR("token store: damaged recovery code of user %s", ra->user);
			goto out;
		}
		memcpy(codes[m].salt, sqlite3_column_blob(st, 0), FTM_RECOVERY_SALT_LEN);
		memcpy(codes[m].hash, sqlite3_column_blob(st, 1), FTM_RECOVERY_HASH_LEN);
		codes[m].created = sqlite3_column_int64(st, 2);
		codes[m].used = sqlite3_column_int64(st, 3);
		m++;
	}
	if (r != SQLITE_DONE) {
		db_err(ra->c, "recovery codes", err, err_len);
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (ra->decide(ra->ctx, rows, n, codes, m) != 0)
		goto out;
	if (ra->write) {
		if (sqlite3_prepare_v2(ra->c->db, "UPDATE recovery_codes SET used = ? WHERE salt = ?", -1, &st,
				       NULL) != SQLITE_OK) {
			db_err(ra->c, "recovery codes", err, err_len);
			goto out;
		}
		for (size_t i = 0; i < m; i++) {
			if (!codes[i].dirty)
				continue;
			sqlite3_bind_int64(st, 1, codes[i].used);
			sqlite3_bind_blob(st, 2, codes[i].salt, FTM_RECOVERY_SALT_LEN, SQLITE_STATIC);
			r = sqlite3_step(st);
			sqlite3_reset(st);
			if (r != SQLITE_DONE) {
				db_err(ra->c, "recovery codes", err, err_len);
				goto out;
			}
		}
	}
	rc = 0;
out:
	sqlite3_finalize(st);
	if (codes != NULL) {
		ftm_memzero(codes, cap * sizeof(*codes));
		free(codes);
	}
	return rc;
}

static int job_recovery_verdict(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct recovery_arg *ra = arg;
	struct verdict_arg va = { .user = ra->user, .write = ra->write, .decide = recovery_decide, .ctx = ra };

	ra->c = c;
	ra->err = err;
	ra->err_len = err_len;
	return job_verdict(c, &va, err, err_len);
}

static int sq_recovery_verdict(void *be, const char *user, bool write, ftm_recovery_decide_fn decide, void *ctx,
			       char *err, size_t err_len)
{
	struct recovery_arg ra = { .user = user, .write = write, .decide = decide, .ctx = ctx };

	return snapshot_or_write_job(be, write, job_recovery_verdict, &ra, err, err_len);
}

/* ---- the audit trail ---- */

static int audit_insert(sq_conn_t *c, const ftm_audit_row_t *a, char *err, size_t err_len)
{
	sqlite3_stmt *st = stmt(c, SQL_AUDIT_INSERT, err, err_len);
	const char *text[] = { a->event, a->result, a->user, a->serial, a->client, a->nas, a->frontend,
			       a->node, a->reason };
	int rc = 0;

	if (st == NULL)
		return -1;
	sqlite3_bind_int64(st, 1, a->at);
	for (int i = 0; i < (int)(sizeof(text) / sizeof(text[0])); i++)
		sqlite3_bind_text(st, i + 2, text[i], -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "audit", err, err_len);
	stmt_done(st);
	return rc;
}

static int job_audit_append(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	return audit_insert(c, arg, err, err_len);
}

/* A group-commit job like any write: rows of concurrent logins share one commit. */
static int sq_audit_append(void *be, const ftm_audit_row_t *row, char *err, size_t err_len)
{
	return write_job(be, job_audit_append, (void *)row, err, err_len);
}

#define AUDIT_COLS "id, at, event, result, user, serial, client, nas, frontend, node, reason"

static void audit_from_stmt(sqlite3_stmt *st, ftm_audit_row_t *a)
{
	memset(a, 0, sizeof(*a));
	a->id = sqlite3_column_int64(st, 0);
	a->at = sqlite3_column_int64(st, 1);
	copy_text(a->event, sizeof(a->event), sqlite3_column_text(st, 2));
	copy_text(a->result, sizeof(a->result), sqlite3_column_text(st, 3));
	copy_text(a->user, sizeof(a->user), sqlite3_column_text(st, 4));
	copy_text(a->serial, sizeof(a->serial), sqlite3_column_text(st, 5));
	copy_text(a->client, sizeof(a->client), sqlite3_column_text(st, 6));
	copy_text(a->nas, sizeof(a->nas), sqlite3_column_text(st, 7));
	copy_text(a->frontend, sizeof(a->frontend), sqlite3_column_text(st, 8));
	copy_text(a->node, sizeof(a->node), sqlite3_column_text(st, 9));
	copy_text(a->reason, sizeof(a->reason), sqlite3_column_text(st, 10));
}

/* An admin's query, compiled per call: one statement on a reader (one snapshot), each row handed on as
 * it is stepped to. Without a limit the trail is read in rowid order; the newest `limit` rows are
 * picked in an inner query and handed over oldest first (a sort of those). cb runs with the reader
 * held (it must not write to the store). */
#define AUDIT_WHERE "(?1 IS NULL OR user = ?1) AND (?2 IS NULL OR result = ?2) AND at >= ?3"

static int sq_audit_list(void *be, const ftm_audit_filter_t *f, ftm_audit_cb cb, void *ctx, char *err, size_t err_len)
{
	const char *sql = f->limit == 0
		? "SELECT " AUDIT_COLS " FROM audit WHERE " AUDIT_WHERE " ORDER BY id"
		: "SELECT " AUDIT_COLS " FROM (SELECT " AUDIT_COLS " FROM audit WHERE " AUDIT_WHERE
		  " ORDER BY id DESC LIMIT ?4) ORDER BY id";
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st = NULL;
	ftm_audit_row_t row;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK) {
		db_err(c, "audit", err, err_len);
		goto out;
	}
	if (f->user != NULL)
		sqlite3_bind_text(st, 1, f->user, -1, SQLITE_STATIC);
	if (f->result != NULL)
		sqlite3_bind_text(st, 2, f->result, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, f->since);
	if (f->limit > 0)
		sqlite3_bind_int64(st, 4, (sqlite3_int64)f->limit);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		audit_from_stmt(st, &row);
		if (cb(ctx, &row) != 0)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		db_err(c, "audit", err, err_len);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	reader_give_back(s, c);
	return rc;
}

struct prune_arg {
	int64_t		before;
	unsigned long	removed;
};

static int job_audit_prune(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct prune_arg *a = arg;
	sqlite3_stmt *st = NULL;
	int rc = 0;

	if (sqlite3_prepare_v2(c->db, "DELETE FROM audit WHERE at < ?", -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "audit prune", err, err_len);
	sqlite3_bind_int64(st, 1, a->before);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "audit prune", err, err_len);
	else
		a->removed = (unsigned long)sqlite3_changes(c->db);
	sqlite3_finalize(st);
	return rc;
}

static int sq_audit_prune(void *be, int64_t before, unsigned long *removed, char *err, size_t err_len)
{
	struct prune_arg a = { .before = before };
	int rc = write_job(be, job_audit_prune, &a, err, err_len);

	if (rc == 0 && removed != NULL)
		*removed = a.removed;
	return rc;
}

/* ---- backup ---- */

/* The directory holding path, synced: a new file's name in it survives a crash. */
static int sync_dir_of(const char *path, char *err, size_t err_len)
{
	char dir[4096];
	int fd, rc;

	if (dir_of(path, dir, sizeof(dir)) != 0) {
		SETERR("backup %s: path too long", path);
		return -1;
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		SETERR("backup %s: %s: %s", path, dir, strerror(errno));
		return -1;
	}
	rc = fsync(fd);
	if (rc != 0)
		SETERR("backup %s: %s: fsync: %s", path, dir, strerror(errno));
	close(fd);
	return rc == 0 ? 0 : -1;
}

/* The first row's first column of sql on db as text into out; -1 (err) when there is none. */
static int query_text(sqlite3 *db, const char *sql, const char *dest, char *out, size_t out_len, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_text(st, 0) != NULL) {
		snprintf(out, out_len, "%s", (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else
		SETERR("backup %s: %s: %s", dest, sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return rc;
}

/* The side files SQLite may keep beside a database file. */
static const char *const side_files[] = { "-journal", "-wal", "-shm" };

/* path and its side files removed (a copy that is not kept). */
static void unlink_db(const char *path)
{
	char p[4200];

	unlink(path);
	for (size_t i = 0; i < sizeof(side_files) / sizeof(side_files[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, side_files[i]);
		unlink(p);
	}
}

/* The copy at tmp opened as *db (never through a symlink), with `flags` (read-only or read-write). */
static int open_copy(const char *tmp, const char *dest, int flags, sqlite3 **db, char *err, size_t err_len)
{
	if (sqlite3_open_v2(tmp, db, flags | SQLITE_OPEN_NOMUTEX | OPEN_NOFOLLOW, NULL) == SQLITE_OK)
		return 0;
	SETERR("backup %s: %s", dest, *db ? sqlite3_errmsg(*db) : "cannot open the copy");
	return -1;
}

/* The copy at tmp, opened afresh and read only (what is on disk, not a cache): PRAGMA integrity_check
 * ok, and its tokens counted into *tokens. */
static int check_copy(const char *tmp, const char *dest, unsigned long *tokens, char *err, size_t err_len)
{
	sqlite3 *db = NULL;
	char text[256];
	int rc = -1;

	if (open_copy(tmp, dest, SQLITE_OPEN_READONLY, &db, err, err_len) != 0)
		goto out;
	if (query_text(db, "PRAGMA integrity_check", dest, text, sizeof(text), err, err_len) != 0)
		goto out;
	if (strcmp(text, "ok") != 0) {
		SETERR("backup %s: the copy fails its integrity check (%s): not kept", dest, text);
		goto out;
	}
	if (query_text(db, "SELECT count(*) FROM tokens", dest, text, sizeof(text), err, err_len) != 0)
		goto out;
	*tokens = strtoul(text, NULL, 10);
	rc = 0;
out:
	sqlite3_close(db);
	return rc;
}

/* SQLite's online backup (sqlite3_backup_*) from a reader connection: every page copied in one step,
 * so under one read transaction, one snapshot; the servers' writes go on meanwhile (WAL). The copy is
 * made in a new file of its own beside dest (DEST.partial-XXXXXX, 0600), written with synchronous=FULL
 * (its commits synced), turned into a plain rollback-journal file, checked through a fresh read-only
 * connection, and only then linked to dest (link(2): atomic, and it fails when dest exists) and the
 * directory synced. So dest is a whole, checked copy or nothing, also after a crash; never a file
 * that was there. A busy source (a checkpoint resetting the WAL) is tried again within the busy
 * timeout. */
static int sq_backup(void *be, const char *dest, unsigned long *tokens, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *src = NULL;
	sqlite3 *db = NULL;
	sqlite3_backup *b;
	char tmp[4200], side[4200], text[64];
	struct stat sb;
	unsigned long n = 0;
	int fd, r, rc = -1;

	if (lstat(dest, &sb) == 0) {
		SETERR("backup %s: %s", dest, strerror(EEXIST));
		return -1;
	}
	/* a -wal or -shm left by an earlier file of that name would be read into the copy as its own */
	for (size_t i = 0; i < sizeof(side_files) / sizeof(side_files[0]); i++) {
		snprintf(side, sizeof(side), "%s%s", dest, side_files[i]);
		if (lstat(side, &sb) == 0) {
			SETERR("backup %s: %s is there (left by an earlier database of that name): refused", dest, side);
			return -1;
		}
	}
	if (snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", dest) >= (int)sizeof(tmp)) {
		SETERR("backup %s: path too long", dest);
		return -1;
	}
	if ((fd = mkstemp(tmp)) < 0) {	/* 0600, O_EXCL: a file of our own */
		SETERR("backup %s: %s", dest, strerror(errno));
		return -1;
	}
	close(fd);
	if ((src = reader_take(s, err, err_len)) == NULL)
		goto out;
	if (open_copy(tmp, dest, SQLITE_OPEN_READWRITE, &db, err, err_len) != 0)
		goto out;
	if (sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK) {
		SETERR("backup %s: %s", dest, sqlite3_errmsg(db));
		goto out;
	}
	if ((b = sqlite3_backup_init(db, "main", src->db, "main")) == NULL) {
		SETERR("backup %s: %s", dest, sqlite3_errmsg(db));
		goto out;
	}
	for (int64_t until = ftm_mono_ms() + BUSY_TIMEOUT_MS;;) {
		r = sqlite3_backup_step(b, -1);
		if ((r != SQLITE_BUSY && r != SQLITE_LOCKED) || ftm_mono_ms() >= until)
			break;
		sqlite3_sleep(50);
	}
	sqlite3_backup_finish(b);
	reader_give_back(s, src);
	src = NULL;
	if (r != SQLITE_DONE) {
		SETERR("backup %s: %s", dest, sqlite3_errstr(r));
		goto out;
	}
	/* a plain rollback-journal file (the copy took the store's WAL header): read or checked, it makes no
	 * -wal or -shm beside it; a store restored from it is put back in WAL mode by its open */
	if (query_text(db, "PRAGMA journal_mode=DELETE", dest, text, sizeof(text), err, err_len) != 0)
		goto out;
	if (strcmp(text, "delete") != 0) {
		SETERR("backup %s: the copy stays in journal mode %s: not kept", dest, text);
		goto out;
	}
	if (sqlite3_close(db) != SQLITE_OK) {
		SETERR("backup %s: %s", dest, sqlite3_errmsg(db));
		goto out;
	}
	db = NULL;
	if (check_copy(tmp, dest, &n, err, err_len) != 0)
		goto out;
	/* a file system without hard links (vfat, some shares): a rename that never replaces */
	if (link(tmp, dest) == 0)
		unlink(tmp);
	else if ((errno != EPERM && errno != EOPNOTSUPP && errno != ENOSYS) ||
		 renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
		SETERR("backup %s: %s", dest, strerror(errno));
		goto out;
	}
	if (sync_dir_of(dest, err, err_len) != 0) {
		unlink(dest);	/* ours: linked just now */
		goto out;
	}
	if (tokens != NULL)
		*tokens = n;
	rc = 0;
out:
	if (db != NULL)
		sqlite3_close(db);
	if (src != NULL)
		reader_give_back(s, src);
	if (rc != 0)
		unlink_db(tmp);
	return rc;
}

/* ---- debug on demand ---- */

struct debug_arg {
	const char	*user;
	int64_t		expires, now;
	bool		found;
};

/* Run sql with the arg's user (?1), expires (?2) and now (?3) bound where the text names them. */
static int debug_exec(sq_conn_t *c, const char *sql, struct debug_arg *a, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int rc = 0, i;

	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "debug switch", err, err_len);
	if ((i = sqlite3_bind_parameter_index(st, "?1")) > 0)
		sqlite3_bind_text(st, i, a->user, -1, SQLITE_STATIC);
	if ((i = sqlite3_bind_parameter_index(st, "?2")) > 0)
		sqlite3_bind_int64(st, i, a->expires);
	if ((i = sqlite3_bind_parameter_index(st, "?3")) > 0)
		sqlite3_bind_int64(st, i, a->now);
	if (sqlite3_step(st) != SQLITE_DONE)
		rc = db_err(c, "debug switch", err, err_len);
	else if (sqlite3_changes(c->db) > 0)
		a->found = true;
	sqlite3_finalize(st);
	return rc;
}

static int job_debug_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct debug_arg *a = arg;

	if (debug_exec(c, "DELETE FROM debug_switch WHERE expires <= ?3", a, err, err_len) != 0)
		return -1;
	return debug_exec(c, "INSERT OR REPLACE INTO debug_switch (user, expires) VALUES (?1, ?2)", a, err, err_len);
}

static int sq_debug_put(void *be, const char *user, int64_t expires, int64_t now, char *err, size_t err_len)
{
	struct debug_arg a = { .user = user, .expires = expires, .now = now };

	return write_job(be, job_debug_put, &a, err, err_len);
}

static int job_debug_clear(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct debug_arg *a = arg;

	return debug_exec(c, a->user != NULL ? "DELETE FROM debug_switch WHERE user = ?1" : "DELETE FROM debug_switch",
			  a, err, err_len);
}

static int sq_debug_clear(void *be, const char *user, char *err, size_t err_len)
{
	struct debug_arg a = { .user = user };

	if (write_job(be, job_debug_clear, &a, err, err_len) != 0)
		return -1;
	return a.found ? 0 : 1;
}

/* Read every few seconds by each process (cached): one small SELECT on a reader. */
static int sq_debug_list(void *be, int64_t now, ftm_debug_cb cb, void *ctx, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	sqlite3_stmt *st = NULL;
	int rc = -1, r;

	if (c == NULL)
		return -1;
	if (sqlite3_prepare_v2(c->db, "SELECT user, expires FROM debug_switch WHERE expires > ? ORDER BY user",
			       -1, &st, NULL) != SQLITE_OK) {
		db_err(c, "debug switch", err, err_len);
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *u = sqlite3_column_text(st, 0);

		if (cb(ctx, u != NULL ? (const char *)u : "", sqlite3_column_int64(st, 1)) != 0)
			break;
	}
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		db_err(c, "debug switch", err, err_len);
	else
		rc = 0;
out:
	sqlite3_finalize(st);
	reader_give_back(s, c);
	return rc;
}

/* ---- pending pushes and number-matching States ----
 * Their own tables, created at open like the activation links. One host: the processes on this file
 * learn a verdict by re-reading the row (there are no notifications). Statements are compiled per call. */

static const char *const push_schema_sql =
	"CREATE TABLE IF NOT EXISTS pushes ("
	" id          TEXT PRIMARY KEY,"
	" user        TEXT NOT NULL,"
	" serial      TEXT NOT NULL,"
	" client      TEXT NOT NULL,"		/* hex SHA-256 of the whole client identity */
	" cap0        TEXT NOT NULL,"		/* hex SHA-256 of each capability: never the capability */
	" cap1        TEXT NOT NULL,"
	" cap2        TEXT NOT NULL,"
	" approve_cap INTEGER NOT NULL,"
	" number      TEXT NOT NULL,"
	" gateway     INTEGER NOT NULL,"
	" expires     INTEGER NOT NULL,"
	" verdict     TEXT NOT NULL,"
	" reason      TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS pushes_by_user ON pushes (user, verdict);"
	"CREATE INDEX IF NOT EXISTS pushes_by_cap0 ON pushes (cap0);"
	"CREATE INDEX IF NOT EXISTS pushes_by_cap1 ON pushes (cap1);"
	"CREATE INDEX IF NOT EXISTS pushes_by_cap2 ON pushes (cap2);"
	"CREATE TABLE IF NOT EXISTS number_states ("
	" id      TEXT PRIMARY KEY,"		/* hex SHA-256 of the State */
	" tx      TEXT NOT NULL,"
	" user    TEXT NOT NULL,"
	" client  TEXT NOT NULL,"
	" expires INTEGER NOT NULL)";

#define PUSH_COLS "id, user, serial, client, cap0, cap1, cap2, approve_cap, number, gateway, expires, verdict, reason"

/* Indexes earlier versions created and this one drops at open (see audit_sql). */
static const char *const dropped_sql[] = { "audit_by_user" };

/* The tables and indexes every opener creates IF NOT EXISTS (states_sql, audit_sql, recovery_schema_sql,
 * act_schema_sql, push_schema_sql). Compiling those 14 statements was ~0.26M instructions of every open,
 * a PAM login's too, although only a new file or one an older binary made lacks any of them: they run
 * only when an object they name is not in sqlite_master (the names are read from the statements; one
 * pass over sqlite_master's rows). */
static int open_ddl(sq_conn_t *c, char *err, size_t err_len)
{
	static const char if_not_exists[] = "IF NOT EXISTS ";
	const char *const ddl[] = { states_sql, audit_sql, recovery_schema_sql, act_schema_sql, push_schema_sql };
	const size_t n_ddl = sizeof(ddl) / sizeof(ddl[0]);
	struct { const char *name; size_t len; bool found; } want[32];
	size_t n_want = 0, n_found = 0;
	bool more = false;	/* more names than want holds: run the statements */
	bool drop[sizeof(dropped_sql) / sizeof(dropped_sql[0])] = { false };
	sqlite3_stmt *st = NULL;

	for (size_t i = 0; i < n_ddl; i++)
		for (const char *p = strstr(ddl[i], if_not_exists); p != NULL; p = strstr(p, if_not_exists)) {
			p += sizeof(if_not_exists) - 1;
			if (n_want == sizeof(want) / sizeof(want[0])) {
				more = true;
				break;
			}
			want[n_want].name = p;
			want[n_want].len = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
			want[n_want++].found = false;
		}
	if (sqlite3_prepare_v2(c->db, "SELECT name FROM sqlite_master", -1, &st, NULL) == SQLITE_OK)
		while (sqlite3_step(st) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			size_t len = (size_t)sqlite3_column_bytes(st, 0);

			for (size_t k = 0; name != NULL && k < n_want; k++)
				if (!want[k].found && want[k].len == len && memcmp(want[k].name, name, len) == 0) {
					want[k].found = true;
					n_found++;
				}
			for (size_t k = 0; name != NULL && k < sizeof(drop) / sizeof(drop[0]); k++)
				if (strcmp(name, dropped_sql[k]) == 0)
					drop[k] = true;
		}
	sqlite3_finalize(st);
	for (size_t i = 0; (more || n_found < n_want) && i < n_ddl; i++)
		if (exec(c, ddl[i], err, err_len) != 0)
			return -1;
	/* dropped_sql, found in the same pass. Best effort: an opener that may not write (or finds the file busy) leaves the index, which only
	 * costs the commits it did before; the next opener that can write drops it. */
	for (size_t k = 0; k < sizeof(drop) / sizeof(drop[0]); k++) {
		char sql[96];

		if (!drop[k])
			continue;
		snprintf(sql, sizeof(sql), "DROP INDEX IF EXISTS %s", dropped_sql[k]);
		sqlite3_exec(c->db, sql, NULL, NULL, NULL);
	}
	return 0;
}

static const char *verdict_text(ftm_push_verdict_t v)
{
	return ftm_push_verdict_name(v);
}

static ftm_push_verdict_t verdict_of(const unsigned char *text)
{
	ftm_push_verdict_t v = FTM_PUSH_FAILED;	/* anything unexpected reads as a failure */

	if (text != NULL && strcmp((const char *)text, "pending") == 0)
		return FTM_PUSH_PENDING;
	if (text == NULL || ftm_push_verdict_parse((const char *)text, &v) != 0)
		return FTM_PUSH_FAILED;
	return v;
}

static void push_from_stmt(sqlite3_stmt *st, ftm_push_row_t *r)
{
	memset(r, 0, sizeof(*r));
	copy_text(r->id, sizeof(r->id), sqlite3_column_text(st, 0));
	copy_text(r->user, sizeof(r->user), sqlite3_column_text(st, 1));
	copy_text(r->serial, sizeof(r->serial), sqlite3_column_text(st, 2));
	copy_text(r->client_hash, sizeof(r->client_hash), sqlite3_column_text(st, 3));
	for (int i = 0; i < FTM_PUSH_ROW_CAPS; i++)
		copy_text(r->caps[i], sizeof(r->caps[i]), sqlite3_column_text(st, 4 + i));
	r->approve_cap = (unsigned)sqlite3_column_int(st, 7);
	copy_text(r->number, sizeof(r->number), sqlite3_column_text(st, 8));
	r->gateway = sqlite3_column_int(st, 9) != 0;
	r->expires = sqlite3_column_int64(st, 10);
	r->verdict = verdict_of(sqlite3_column_text(st, 11));
	copy_text(r->reason, sizeof(r->reason), sqlite3_column_text(st, 12));
}

/* One statement, text or integer parameters bound in order ("t" / "i" in kinds), stepped to its end.
 * With `row`, the first result row (if any) goes there and *found says so. 0, or -1. */
static int push_sql(sq_conn_t *c, const char *sql, const char *kinds, const void *const *params,
		    ftm_push_row_t *row, bool *found, char *err, size_t err_len)
{
	sqlite3_stmt *st = NULL;
	int r, rc = 0;

	if (found != NULL)
		*found = false;
	if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "push", err, err_len);
	for (int i = 0; kinds[i] != '\0'; i++) {
		if (kinds[i] == 't')
			sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
		else
			sqlite3_bind_int64(st, i + 1, *(const int64_t *)params[i]);
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (row != NULL && found != NULL && !*found) {
			push_from_stmt(st, row);
			*found = true;
		}
	}
	if (r != SQLITE_DONE)
		rc = db_err(c, "push", err, err_len);
	sqlite3_finalize(st);
	return rc;
}

struct push_arg {
	const ftm_push_row_t	*row;
	int64_t			now;
	ftm_push_row_t		*out;
	ftm_push_key_t		by;
	const char		*key;
	ftm_push_decide_fn	decide;
	void			*ctx;
	bool			found;
};

/* Inside the group commit's BEGIN IMMEDIATE: the check for a pending push and the insert are one
 * step for every process on the file. */
static int job_push_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct push_arg *a = arg;
	const ftm_push_row_t *r = a->row;
	int64_t purge = a->now - FTM_PUSH_RETAIN_ROW, approve = r->approve_cap, gateway = r->gateway,
		expires = r->expires;
	const void *pp[] = { &purge };
	const void *pq[] = { r->user, &a->now };
	const void *pi[] = { r->id, r->user, r->serial, r->client_hash, r->caps[0], r->caps[1], r->caps[2],
			     &approve, r->number, &gateway, &expires, "pending", "" };

	if (push_sql(c, "DELETE FROM pushes WHERE expires < ?", "i", pp, NULL, NULL, err, err_len) != 0 ||
	    push_sql(c, "SELECT " PUSH_COLS " FROM pushes WHERE user = ? AND verdict = 'pending' AND expires > ?"
		     " ORDER BY expires LIMIT 1", "ti", pq, a->out, &a->found, err, err_len) != 0)
		return -1;
	if (a->found)
		return 0;
	return push_sql(c, "INSERT INTO pushes (" PUSH_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
			"tttttttitiitt", pi, NULL, NULL, err, err_len);
}

static int sq_push_put(void *be, const ftm_push_row_t *row, int64_t now, ftm_push_row_t *pending,
		       char *err, size_t err_len)
{
	struct push_arg a = { .row = row, .now = now, .out = pending };

	if (write_job(be, job_push_put, &a, err, err_len) != 0)
		return -1;
	return a.found ? 1 : 0;
}

static int sq_push_get(void *be, const char *id, ftm_push_row_t *out, char *err, size_t err_len)
{
	sq_t *s = be;
	sq_conn_t *c = reader_take(s, err, err_len);
	const void *p[] = { id };
	bool found = false;
	int rc;

	if (c == NULL)
		return -1;
	rc = push_sql(c, "SELECT " PUSH_COLS " FROM pushes WHERE id = ?", "t", p, out, &found, err, err_len);
	reader_give_back(s, c);
	return rc != 0 ? -1 : found ? 0 : 1;
}

static int job_push_decide(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct push_arg *a = arg;
	const void *pk[] = { a->key };
	const void *pu[] = { NULL, NULL, NULL };
	ftm_push_row_t row;

	if (push_sql(c, a->by == FTM_PUSH_BY_ID ? "SELECT " PUSH_COLS " FROM pushes WHERE id = ?1"
		     : "SELECT " PUSH_COLS " FROM pushes WHERE cap0 = ?1 OR cap1 = ?1 OR cap2 = ?1",
		     "t", pk, &row, &a->found, err, err_len) != 0)
		return -1;
	if (!a->found)
		return 0;
	if (a->decide(a->ctx, &row) != 0)
		return -1;
	if (!row.dirty)
		return 0;
	pu[0] = verdict_text(row.verdict);
	pu[1] = row.reason;
	pu[2] = row.id;
	return push_sql(c, "UPDATE pushes SET verdict = ?, reason = ? WHERE id = ?", "ttt", pu, NULL, NULL,
			err, err_len);
}

static int sq_push_decide(void *be, ftm_push_key_t by, const char *key, ftm_push_decide_fn decide, void *ctx,
			  char *err, size_t err_len)
{
	struct push_arg a = { .by = by, .key = key, .decide = decide, .ctx = ctx };

	if (write_job(be, job_push_decide, &a, err, err_len) != 0)
		return -1;
	return a.found ? 0 : 1;
}

struct number_arg {
	const char	*id, *tx, *user, *client;
	int64_t		expires, now;
	char		*tx_out, *user_out, *client_out;
	size_t		user_len, client_len;
	bool		found;
};

static int job_number_put(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct number_arg *a = arg;
	int64_t keep_user = FTM_STATES_PER_USER - 1, keep_client = FTM_STATES_PER_CLIENT - 1;
	const void *pp[] = { &a->now };
	const void *pi[] = { a->id, a->tx, a->user, a->client, &a->expires };
	const void *pu[] = { a->user, a->id, &keep_user };
	const void *pc[] = { a->client, a->id, &keep_client };

	/* the caps of the code-challenge States: a user's or a client's own oldest makes room */
	return push_sql(c, "DELETE FROM number_states WHERE expires < ?", "i", pp, NULL, NULL, err, err_len) != 0 ||
	       push_sql(c, "INSERT INTO number_states (id, tx, user, client, expires) VALUES (?,?,?,?,?)", "tttti",
			pi, NULL, NULL, err, err_len) != 0 ||
	       push_sql(c, "DELETE FROM number_states WHERE user = ?1 AND id <> ?2 AND id NOT IN (SELECT id FROM"
			" number_states WHERE user = ?1 AND id <> ?2 ORDER BY expires DESC, rowid DESC LIMIT ?3)",
			"tti", pu, NULL, NULL, err, err_len) != 0 ||
	       push_sql(c, "DELETE FROM number_states WHERE client = ?1 AND id <> ?2 AND id NOT IN (SELECT id FROM"
			" number_states WHERE client = ?1 AND id <> ?2 ORDER BY expires DESC, rowid DESC LIMIT ?3)",
			"tti", pc, NULL, NULL, err, err_len) != 0 ? -1 : 0;
}

static int sq_number_put(void *be, const char *id, const char *tx, const char *user, const char *client,
			 int64_t expires, int64_t now, char *err, size_t err_len)
{
	struct number_arg a = { .id = id, .tx = tx, .user = user, .client = client, .expires = expires, .now = now };

	return write_job(be, job_number_put, &a, err, err_len);
}

/* The DELETE that finds the row is the one answer that gets it, in any process. */
static int job_number_take(sq_conn_t *c, void *arg, char *err, size_t err_len)
{
	struct number_arg *a = arg;
	sqlite3_stmt *st = NULL;
	int r, rc = 0;

	if (sqlite3_prepare_v2(c->db, "DELETE FROM number_states WHERE id = ? RETURNING tx, user, client, expires",
			       -1, &st, NULL) != SQLITE_OK)
		return db_err(c, "number state", err, err_len);
	sqlite3_bind_text(st, 1, a->id, -1, SQLITE_STATIC);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		copy_text(a->tx_out, 33, sqlite3_column_text(st, 0));
		copy_text(a->user_out, a->user_len, sqlite3_column_text(st, 1));
		copy_text(a->client_out, a->client_len, sqlite3_column_text(st, 2));
		a->expires = sqlite3_column_int64(st, 3);
		a->found = true;
		r = sqlite3_step(st);
	}
	if (r != SQLITE_DONE)
		rc = db_err(c, "number state", err, err_len);
	sqlite3_finalize(st);
	return rc;
}

static int sq_number_take(void *be, const char *id, char tx[33], char *user, size_t user_len, char *client,
			  size_t client_len, int64_t *expires, char *err, size_t err_len)
{
	struct number_arg a = { .id = id, .tx_out = tx, .user_out = user, .user_len = user_len,
				.client_out = client, .client_len = client_len };

	if (write_job(be, job_number_take, &a, err, err_len) != 0)
		return -1;
	*expires = a.expires;
	return a.found ? 0 : 1;
}

const ftm_store_backend_t ftm_store_backend_sqlite = {
	.scheme		= "sqlite",
	.open		= sq_open,
	.close		= sq_close,
	.single		= sq_single,
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
	.peek_on_idle_writer = sq_peek_on_idle_writer,
	.act_put	= sq_act_put,
	.act_verdict	= sq_act_verdict,
	.act_get_serial	= sq_act_get_serial,
	.act_revoke	= sq_act_revoke,
	.state_put	= sq_state_put,
	.state_take	= sq_state_take,
	.settings_get	= sq_settings_get,
	.setting_put	= sq_setting_put,
	.settings_seed	= sq_settings_seed,
	.recovery_replace = sq_recovery_replace,
	.recovery_verdict = sq_recovery_verdict,
	.verdict_audited = sq_verdict_audited,
	.consume_proven = sq_consume_proven,
	.audit_append	= sq_audit_append,
	.audit_list	= sq_audit_list,
	.audit_prune	= sq_audit_prune,
	.backup		= sq_backup,
	.debug_put	= sq_debug_put,
	.debug_clear	= sq_debug_clear,
	.debug_list	= sq_debug_list,
	.push_put	= sq_push_put,
	.push_get	= sq_push_get,
	.push_decide	= sq_push_decide,
	.number_put	= sq_number_put,
	.number_take	= sq_number_take,
};

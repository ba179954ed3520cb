/* store_pg: the PostgreSQL token store backend (libpq), for many servers on one database. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftm_batch.h"
#include "ftm_util.h"
#include "pq_lazy.h"
#include "store_backend.h"

#define SETERR(...) do { if (err != NULL && err_len > 0) snprintf(err, err_len, __VA_ARGS__); } while (0)

/* The newest schema this binary knows; migrations[v] brings a database from version v to v + 1. */
#define SCHEMA_VERSION	9
/* Connections per process: FreeRADIUS threads beyond this wait for one (POOL_WAIT_MS at most). */
#define POOL_SIZE	8
#define POOL_WAIT_MS	10000
/* An insert of this many tokens or more (an import) analyzes the table (insert_on). */
#define ANALYZE_AFTER_ROWS	1000
/* Rows per statement of an import (as store.c seals them), and serials per statement of its check
 * (pg_present) */
#define INSERT_CHUNK	FTM_STORE_INSERT_CHUNK
#define PRESENT_CHUNK	5000
/* After a failed connect, no new attempt for BACKOFF_MIN_MS, doubling to BACKOFF_MAX_MS: logins
 * fail at once while the database is down instead of each waiting for a connect timeout. */
#define BACKOFF_MIN_MS	100
#define BACKOFF_MAX_MS	3200
/* A verdict never waits long on another node's row lock or a stuck server: it fails closed. */
#define SESSION_SQL	"SET lock_timeout = '10s'; SET statement_timeout = '15s';" \
			" SET idle_in_transaction_session_timeout = '15s'; SET synchronous_commit = on;" \
			" SET plan_cache_mode = force_generic_plan"
/* Marks a failure on the first round trip of a reused connection: nothing was done, try once more. */
#define PG_STALE	(-2)

#define TOKEN_COLS "serial, username, seed, alg, digits, period, status, last_step, failures, push, created," \
		   " lock_reason, locked_at"
/* A listing of every token: rows per round trip (FETCH from its cursor), and how long it may wait on
 * its reader between two (a pager: `ftmpushctl token list | less`). Its snapshot, held that long, keeps
 * VACUUM from the rows that died since, and a migration waits behind it; past that the database ends
 * the listing, which then fails. */
#define LIST_CHUNK	1000
#define LIST_CHUNK_S	"1000"	/* LIST_CHUNK in the FETCH statement's text */
_Static_assert(LIST_CHUNK == 1000 && sizeof(LIST_CHUNK_S) == 5, "LIST_CHUNK_S spells LIST_CHUNK");
#define LIST_IDLE	"5min"

/* Q_VERDICT_CAS's parts around its UPDATE */
#define CAS_HEAD "WITH cur AS (SELECT serial, xmin::text AS ver FROM ftm_tokens WHERE username = $1" \
		 " ORDER BY serial FOR UPDATE)," \
		 " ok AS (SELECT coalesce(array_agg(serial ORDER BY serial), '{}') = $2::text[] AND" \
		 " coalesce(array_agg(ver ORDER BY serial), '{}') = $3::text[] AS same FROM cur)," \
		 " upd AS ("
#define CAS_TAIL " RETURNING 1)," \
		 " aud AS (INSERT INTO ftm_audit (at, event, result, username, serial, client, nas, frontend," \
		 " node, reason) SELECT $10::bigint, $11, $12, $13, $14, $15, $16, $17, $18, $19" \
		 " WHERE $20::boolean AND (SELECT same FROM ok) RETURNING 1)" \
		 " SELECT (SELECT same FROM ok), (SELECT count(*) FROM upd), (SELECT count(*) FROM aud)"

/* Text compares bytewise (COLLATE "C") so lists order like the SQLite store. */
static const char *const migrations[SCHEMA_VERSION] = {
	"CREATE TABLE ftm_meta (name text COLLATE \"C\" PRIMARY KEY, value bytea NOT NULL);"
	"CREATE TABLE ftm_tokens ("
	" serial    text COLLATE \"C\" PRIMARY KEY,"
	" username  text COLLATE \"C\" NOT NULL,"
	" seed      bytea NOT NULL,"			/* AES-256-GCM sealed, never clear */
	" alg       text NOT NULL CHECK (alg IN ('sha1','sha256','sha512')),"
	" digits    integer NOT NULL CHECK (digits BETWEEN 6 AND 8),"
	" period    integer NOT NULL CHECK (period > 0),"
	" status    text NOT NULL DEFAULT 'active' CHECK (status IN ('active','lock')),"
	" last_step bigint NOT NULL DEFAULT -1,"
	" failures  integer NOT NULL DEFAULT 0,"
	" push      text NOT NULL DEFAULT '',"
	" created   bigint NOT NULL);"
	"CREATE INDEX ftm_tokens_by_user ON ftm_tokens (username, serial);",
	/* 2: code-challenge States, by the SHA-256 of the State: a challenge from one node answered on another */
	"CREATE TABLE ftm_states ("
	" id       text COLLATE \"C\" PRIMARY KEY,"
	" username text COLLATE \"C\" NOT NULL,"
	" client   text NOT NULL,"
	" expires  bigint NOT NULL);"
	"CREATE INDEX ftm_states_by_expiry ON ftm_states (expires);",
	/* 3: why and when a token was locked (a lock by failures ends after lockout_duration; '' reads as an
	 * admin's lock), and the verdict policy, one for every node */
	"ALTER TABLE ftm_tokens ADD COLUMN lock_reason text NOT NULL DEFAULT '',"
	" ADD COLUMN locked_at bigint NOT NULL DEFAULT 0;"
	"CREATE TABLE IF NOT EXISTS ftm_settings ("
	" name    text COLLATE \"C\" PRIMARY KEY,"
	" value   text NOT NULL,"
	" changed bigint NOT NULL DEFAULT 0);",
	/* 4: recovery codes, by their random salt: only the salted hash (ftm_recovery_hash) of each code */
	"CREATE TABLE IF NOT EXISTS ftm_recovery_codes ("
	" salt     bytea PRIMARY KEY,"
	" username text COLLATE \"C\" NOT NULL,"
	" hash     bytea NOT NULL,"
	" created  bigint NOT NULL,"
	" used     bigint NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS ftm_recovery_codes_by_user ON ftm_recovery_codes (username);",
	/* 5: the audit trail and the debug-on-demand switches, shared by every node */
	"CREATE TABLE IF NOT EXISTS ftm_audit ("
	" id       bigserial PRIMARY KEY,"
	" at       bigint NOT NULL,"
	" event    text NOT NULL,"
	" result   text NOT NULL,"
	" username text COLLATE \"C\" NOT NULL,"
	" serial   text NOT NULL,"
	" client   text NOT NULL,"
	" nas      text NOT NULL,"
	" frontend text NOT NULL,"
	" node     text NOT NULL,"
	" reason   text NOT NULL);"
	"CREATE INDEX IF NOT EXISTS ftm_audit_by_at ON ftm_audit (at);"
	"CREATE INDEX IF NOT EXISTS ftm_audit_by_user ON ftm_audit (username, id);"
	"CREATE TABLE IF NOT EXISTS ftm_debug (username text COLLATE \"C\" PRIMARY KEY, expires bigint NOT NULL);",
	/* 6: pending pushes (capability hashes, never capabilities) and their number-matching States: a
	 * push sent by one node is answered through any node's listener */
	"CREATE TABLE IF NOT EXISTS ftm_pushes ("
	" id          text COLLATE \"C\" PRIMARY KEY,"
	" username    text COLLATE \"C\" NOT NULL,"
	" serial      text NOT NULL,"
	" client      text NOT NULL,"
	" cap0        text NOT NULL,"
	" cap1        text NOT NULL,"
	" cap2        text NOT NULL,"
	" approve_cap integer NOT NULL,"
	" number      text NOT NULL,"
	" gateway     boolean NOT NULL,"
	" expires     bigint NOT NULL,"
	" verdict     text NOT NULL,"
	" reason      text NOT NULL DEFAULT '');"
	"CREATE INDEX IF NOT EXISTS ftm_pushes_by_user ON ftm_pushes (username, verdict);"
	"CREATE INDEX IF NOT EXISTS ftm_pushes_by_cap0 ON ftm_pushes (cap0);"
	"CREATE INDEX IF NOT EXISTS ftm_pushes_by_cap1 ON ftm_pushes (cap1);"
	"CREATE INDEX IF NOT EXISTS ftm_pushes_by_cap2 ON ftm_pushes (cap2);"
	"CREATE INDEX IF NOT EXISTS ftm_pushes_by_expiry ON ftm_pushes (expires);"
	"CREATE TABLE IF NOT EXISTS ftm_number_states ("
	" id       text COLLATE \"C\" PRIMARY KEY,"
	" tx       text NOT NULL,"
	" username text COLLATE \"C\" NOT NULL,"
	" client   text NOT NULL,"
	" expires  bigint NOT NULL);"
	"CREATE INDEX IF NOT EXISTS ftm_number_states_by_expiry ON ftm_number_states (expires);",
	/* 7: activation links, by the SHA-256 of their code (never the code), bound to the seal they were
	 * issued for: a link made on one node is redeemed on any node */
	"CREATE TABLE IF NOT EXISTS ftm_activations ("
	" code_hash bytea PRIMARY KEY CHECK (length(code_hash) = 32),"
	" serial    text COLLATE \"C\" NOT NULL,"
	" email     text NOT NULL DEFAULT '',"
	" seal_hash bytea NOT NULL CHECK (length(seal_hash) = 32),"
	" created   bigint NOT NULL,"
	" expires   bigint NOT NULL,"
	" failures  integer NOT NULL DEFAULT 0,"
	" used      boolean NOT NULL DEFAULT false);"
	"CREATE INDEX IF NOT EXISTS ftm_activations_by_serial ON ftm_activations (serial, created);",
	/* 8: less written per verdict. ftm_audit_by_user served no query (ftmpushctl audit's
	 * `$1 IS NULL OR username = $1`, planned generic like every statement of the sessions, scans by id
	 * with or without --user; store_sqlite dropped its audit_by_user for the same reason) and cost every
	 * audited verdict an insert into a btree leaf of its own user. ftm_tokens leaves half of each page
	 * free (fillfactor) so a verdict's UPDATE, which changes no indexed column, stays on the row's page
	 * as a heap-only tuple even when a batch updates every row of a page: no new entry in ftm_tokens_pkey
	 * or ftm_tokens_by_user (in bench/radius.sh 70 kept 76% of them there, 50 all). It applies to pages
	 * written from now on (VACUUM FULL ftm_tokens rewrites the older ones). */
	"DROP INDEX IF EXISTS ftm_audit_by_user;"
	"ALTER TABLE ftm_tokens SET (fillfactor = 50);",
	/* 9: the audit trail's index by time a BRIN index. Its one reader is the retention pass
	 * (`DELETE ... WHERE at <`: the oldest rows, a range), and rows come in the order of their time,
	 * so a summary per 128 pages finds them; a btree cost every audited verdict a descent and a leaf
	 * insert (a WAL record) of its own, a BRIN index nothing until VACUUM summarizes a new range. */
	"DROP INDEX IF EXISTS ftm_audit_by_at;"
	"CREATE INDEX ftm_audit_by_at ON ftm_audit USING brin (at);",
};

/* Prepared on a connection at first use ("ftm" + the index): a short PAM process prepares only what
 * its login runs. */
enum {
	Q_META_GET, Q_META_PUT, Q_INSERT, Q_PRESENT, Q_GET, Q_REISSUE, Q_STATUS, Q_STATUS_CLEAR, Q_PUSH, Q_USER, Q_DELETE,
	Q_LIST_USER, Q_VERDICT_LOCK, Q_VERDICT_PEEK, Q_VERDICT_WRITE,
	Q_STATE_PURGE, Q_STATE_PUT, Q_STATE_TAKE, Q_STATE_CAP_USER, Q_STATE_CAP_CLIENT,
	Q_SETTINGS_GET, Q_SETTING_PUT, Q_SETTING_SEED, Q_AUDIT_INSERT, Q_VERDICT_CAS, Q_VERDICT_CAS1,
	Q_VERDICT_BATCH, Q_LIST_USERS, Q_COUNT
};
_Static_assert(Q_COUNT <= 64, "pg_link_t.prepared has one bit per query");
static const struct { const char *sql; int nparams; } queries[Q_COUNT] = {
	[Q_META_GET]	 = { "SELECT value FROM ftm_meta WHERE name = $1", 1 },
	[Q_META_PUT]	 = { "INSERT INTO ftm_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", 2 },
	/* A chunk of an import (insert_on): one array per column, element k of each is row k; the sealed
	 * seeds in hex. */
	[Q_INSERT]	 = { "INSERT INTO ftm_tokens (" TOKEN_COLS ") SELECT r.serial, r.username, decode(r.seed, 'hex'),"
			     " r.alg, r.digits, r.period, r.status, r.last_step, r.failures, r.push, r.created,"
			     " r.lock_reason, r.locked_at FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
			     " $5::integer[], $6::integer[], $7::text[], $8::bigint[], $9::integer[], $10::text[],"
			     " $11::bigint[], $12::text[], $13::bigint[]) AS r(" TOKEN_COLS ")", 13 },
	/* Which of the serials $1 are tokens: their positions in $1, from 1, in order */
	[Q_PRESENT]	 = { "SELECT u.i FROM unnest($1::text[]) WITH ORDINALITY AS u(serial, i)"
			     " WHERE EXISTS (SELECT 1 FROM ftm_tokens t WHERE t.serial = u.serial) ORDER BY u.i", 1 },
	[Q_GET]		 = { "SELECT " TOKEN_COLS " FROM ftm_tokens WHERE serial = $1", 1 },
	[Q_REISSUE]	 = { "UPDATE ftm_tokens SET seed = $1, alg = $2, digits = $3, period = $4, created = $5,"
			     " status = $6, last_step = $7, failures = $8, lock_reason = '', locked_at = 0 WHERE serial = $9", 9 },
	[Q_STATUS]	 = { "UPDATE ftm_tokens SET status = $1, lock_reason = $2, locked_at = $3 WHERE serial = $4", 4 },
	[Q_STATUS_CLEAR] = { "UPDATE ftm_tokens SET status = $1, lock_reason = $2, locked_at = $3, failures = 0"
			     " WHERE serial = $4", 4 },
	[Q_PUSH]	 = { "UPDATE ftm_tokens SET push = $1 WHERE serial = $2", 2 },
	[Q_USER]	 = { "UPDATE ftm_tokens SET username = $1 WHERE serial = $2", 2 },
	[Q_DELETE]	 = { "DELETE FROM ftm_tokens WHERE serial = $1", 1 },
	/* with each row's version (xmin): a verdict decided on these rows writes only if none changed */
	[Q_LIST_USER]	 = { "SELECT " TOKEN_COLS ", xmin::text FROM ftm_tokens WHERE username = $1 ORDER BY serial", 1 },
	/* the user's rows locked in one order on every node: two verdicts of one user serialize */
	/* Q_LIST_USER of several users at once (read_batch): $1 their names */
	[Q_LIST_USERS]	 = { "SELECT " TOKEN_COLS ", xmin::text FROM ftm_tokens WHERE username = ANY($1::text[])"
			     " ORDER BY username, serial", 1 },
	[Q_VERDICT_LOCK] = { "SELECT " TOKEN_COLS " FROM ftm_tokens WHERE username = $1 ORDER BY serial FOR UPDATE", 1 },
	[Q_VERDICT_PEEK] = { "SELECT " TOKEN_COLS " FROM ftm_tokens WHERE username = $1 ORDER BY serial", 1 },
	[Q_VERDICT_WRITE] = { "UPDATE ftm_tokens SET status = $1, last_step = $2, failures = $3, lock_reason = $4,"
			      " locked_at = $5 WHERE serial = $6", 6 },
	[Q_STATE_PURGE]	 = { "DELETE FROM ftm_states WHERE expires < $1", 1 },
	[Q_STATE_PUT]	 = { "INSERT INTO ftm_states (id, username, client, expires) VALUES ($1, $2, $3, $4)", 4 },
	/* single use on every node: the DELETE that finds the row is the one answer that gets it */
	[Q_STATE_TAKE]	 = { "DELETE FROM ftm_states WHERE id = $1 RETURNING username, client, expires", 1 },
	/* the caps (FTM_STATES_PER_USER / _PER_CLIENT): the new State $2 and the newest others stay */
	[Q_STATE_CAP_USER] = { "DELETE FROM ftm_states WHERE username = $1 AND id <> $2 AND id NOT IN"
			       " (SELECT id FROM ftm_states WHERE username = $1 AND id <> $2 ORDER BY expires DESC LIMIT $3::bigint)", 3 },
	[Q_STATE_CAP_CLIENT] = { "DELETE FROM ftm_states WHERE client = $1 AND id <> $2 AND id NOT IN"
				 " (SELECT id FROM ftm_states WHERE client = $1 AND id <> $2 ORDER BY expires DESC LIMIT $3::bigint)", 3 },
	[Q_SETTINGS_GET] = { "SELECT name, value FROM ftm_settings", 0 },
	[Q_SETTING_PUT]	 = { "INSERT INTO ftm_settings (name, value, changed) VALUES ($1, $2, $3)"
			     " ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, changed = EXCLUDED.changed", 3 },
	[Q_SETTING_SEED] = { "INSERT INTO ftm_settings (name, value, changed) VALUES ($1, $2, $3)"
			     " ON CONFLICT (name) DO NOTHING", 3 },
	/* A verdict decided on rows a list read (the login's, a moment before) in one statement: the user's
	 * rows locked in the verdicts' order, and only when they are still exactly those rows ($2 serials,
	 * $3 versions) the dirty ones written ($4-$9: arrays, or one row's values) and the audit row
	 * inserted ($10-$19, when $20): one autocommit statement, so one synchronous commit. Columns: same,
	 * rows updated, audit rows. */
	[Q_VERDICT_CAS] = { CAS_HEAD "UPDATE ftm_tokens t SET status = w.status, last_step = w.last_step,"
			    " failures = w.failures, lock_reason = w.lock_reason, locked_at = w.locked_at"
			    " FROM unnest($4::text[], $5::text[], $6::bigint[], $7::integer[], $8::text[], $9::bigint[])"
			    " AS w(serial, status, last_step, failures, lock_reason, locked_at)"
			    " WHERE t.serial = w.serial AND t.username = $1 AND (SELECT same FROM ok)" CAS_TAIL, 20 },
	/* the same for one dirty row (a verdict's usual case): no arrays to join */
	[Q_VERDICT_CAS1] = { CAS_HEAD "UPDATE ftm_tokens SET status = $5, last_step = $6::bigint, failures = $7::integer,"
			     " lock_reason = $8, locked_at = $9::bigint WHERE serial = $4 AND username = $1"
			     " AND (SELECT same FROM ok)" CAS_TAIL, 20 },
	/* Concurrent Q_VERDICT_CAS verdicts of this process (of different users) as one statement, so one
	 * synchronous commit (verdict_batch), its parameters arrays (batch_entry): $1-$4 the verdicts (i,
	 * user, its dirty rows' first and last element in $8-$13), $5-$7 the rows each was decided on (i,
	 * serial, version), $8-$13 the dirty rows (Q_VERDICT_WRITE's values), $14-$24 the audit rows (i,
	 * then the row). A verdict's dirty rows are a slice that depends on its row of ok, so the UPDATE
	 * finds them per verdict by the user's index whatever the table's statistics (joined to all the dirty
	 * rows at once, a small table's generic plan was a sequential scan of it). Every user's rows locked in
	 * serial order (a batch and a verdict of any node lock in the one order: no deadlock between them),
	 * each verdict's rows compared and written on their own. The comparison (e, g, ok) and the count of
	 * rows updated (n) are joins by verdict and by user, not a subquery per verdict over every locked or
	 * updated row (n squared in the batch's size); arrays, not a jsonb document, because parsing the
	 * jsonb was a tenth of the database's CPU per verdict. Columns: i, same, rows updated; then the
	 * audit rows of all. */
	[Q_VERDICT_BATCH] = { "WITH b AS (SELECT * FROM unnest($1::integer[], $2::text[], $3::integer[], $4::integer[])"
			      " AS b(i, u, wf, wt)),"
			      " e AS (SELECT i, array_agg(s ORDER BY k) AS s, array_agg(v ORDER BY k) AS v"
			      " FROM unnest($5::integer[], $6::text[], $7::text[]) WITH ORDINALITY AS e(i, s, v, k) GROUP BY i),"
			      " cur AS (SELECT serial, username, xmin::text AS ver FROM ftm_tokens"
			      " WHERE username = ANY($2::text[]) ORDER BY serial FOR UPDATE),"
			      " g AS (SELECT username, array_agg(serial ORDER BY serial) AS s,"
			      " array_agg(ver ORDER BY serial) AS v FROM cur GROUP BY username),"
			      " ok AS (SELECT b.i, b.u, b.wf, b.wt, coalesce(g.s, '{}') = coalesce(e.s, '{}')"
			      " AND coalesce(g.v, '{}') = coalesce(e.v, '{}') AS same"
			      " FROM b LEFT JOIN e ON e.i = b.i LEFT JOIN g ON g.username = b.u),"
			      " w AS (SELECT ok.i, ok.u, x.* FROM ok, unnest(($8::text[])[ok.wf:ok.wt], ($9::text[])[ok.wf:ok.wt],"
			      " ($10::bigint[])[ok.wf:ok.wt], ($11::integer[])[ok.wf:ok.wt], ($12::text[])[ok.wf:ok.wt],"
			      " ($13::bigint[])[ok.wf:ok.wt]) AS x(serial, status, last_step, failures, lock_reason, locked_at)"
			      " WHERE ok.same),"
			      " upd AS (UPDATE ftm_tokens t SET status = w.status, last_step = w.last_step,"
			      " failures = w.failures, lock_reason = w.lock_reason, locked_at = w.locked_at FROM w"
			      " WHERE t.serial = w.serial AND t.username = w.u RETURNING w.i),"
			      " aud AS (INSERT INTO ftm_audit (at, event, result, username, serial, client, nas, frontend,"
			      " node, reason) SELECT x.at, x.event, x.result, x.username, x.serial, x.client, x.nas,"
			      " x.frontend, x.node, x.reason FROM unnest($14::integer[], $15::bigint[], $16::text[],"
			      " $17::text[], $18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[],"
			      " $24::text[]) AS x(i, at, event, result, username, serial, client, nas, frontend, node, reason)"
			      " JOIN ok ON ok.i = x.i AND ok.same RETURNING 1),"
			      " n AS (SELECT i, count(*) AS c FROM upd GROUP BY i)"
			      " SELECT ok.i, ok.same, coalesce(n.c, 0), (SELECT count(*) FROM aud)"
			      " FROM ok LEFT JOIN n ON n.i = ok.i ORDER BY ok.i", 24 },
	[Q_AUDIT_INSERT] = { "INSERT INTO ftm_audit (at, event, result, username, serial, client, nas, frontend, node,"
			     " reason) VALUES ($1::bigint,$2,$3,$4,$5,$6,$7,$8,$9,$10)", 10 },
};

typedef struct pg_link {
	PGconn	*conn;
	pid_t	pid;		/* the process that connected: a forked child must not use the socket */
	bool	busy;
	bool	reused;		/* used before: a failure may be a connection the server closed meanwhile */
	uint64_t prepared;	/* bit q: queries[q] is prepared on conn */
} pg_link_t;

typedef struct pg {
	char		*uri;
	uint64_t	gen;		/* this open among the process's (listed_t names its store by it) */
	pthread_mutex_t	mu;
	pthread_cond_t	freed;
	pg_link_t	links[POOL_SIZE];
	unsigned	backoff_ms;	/* 0: connected, or never failed */
	int64_t		retry_at_ms;	/* monotonic: no connect attempt before this */
	bool		down;		/* the last connect failed (logged once per outage) */
	char		last_error[256];
	const ftm_log_t	*log;
	ftm_batcher_t	cas_batch;	/* write verdicts on kept rows, group-committed (verdict_batch) */
	ftm_batcher_t	read_batch;	/* a login's read of its user's rows, batched (read_batch) */
	/* pending pushes: the LISTEN connection's thread (push_watch) */
	pthread_t	watch_thread;
	bool		watching;
	int		watch_pipe[2];	/* a byte on [1] stops the thread */
	ftm_push_watch_fn watch_cb;
	void		*watch_ctx;
} pg_t;

static uint64_t pg_opens;	/* stores opened by this process (pg_t.gen) */

/* libpq's message without its trailing newline, on one line. */
static void one_line(char *dst, size_t max, const char *msg)
{
	size_t n;

	snprintf(dst, max, "%s", msg != NULL && msg[0] != '\0' ? msg : "unknown error");
	for (char *p = dst; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	n = strlen(dst);
	while (n > 0 && dst[n - 1] == ' ')
		dst[--n] = '\0';
}

static int conn_err(PGconn *c, const char *what, char *err, size_t err_len)
{
	char msg[256];

	one_line(msg, sizeof(msg), PQerrorMessage(c));
	SETERR("token store (PostgreSQL): %s: %s", what, msg);
	return -1;
}

/* The result has the wanted status, else an error in err (and -1). Clears res either way when bad. */
static int res_ok(PGconn *c, PGresult *res, ExecStatusType want, const char *what, char *err, size_t err_len)
{
	char msg[256];

	if (res != NULL && PQresultStatus(res) == want)
		return 0;
	one_line(msg, sizeof(msg), res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c));
	SETERR("token store (PostgreSQL): %s: %s", what, msg);
	PQclear(res);
	return -1;
}

static bool res_is(PGresult *res, const char *sqlstate)
{
	const char *s = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	return s != NULL && strcmp(s, sqlstate) == 0;
}

static int exec_cmd(PGconn *c, const char *sql, const char *what, char *err, size_t err_len)
{
	PGresult *res = PQexec(c, sql);

	if (res_ok(c, res, PGRES_COMMAND_OK, what, err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

static void rollback(PGconn *c)
{
	if (PQtransactionStatus(c) != PQTRANS_IDLE && PQstatus(c) == CONNECTION_OK)
		PQclear(PQexec(c, "ROLLBACK"));
}

/* ---- schema ---- */

static int schema_version(PGconn *c, int *version, char *err, size_t err_len)
{
	PGresult *res = PQexec(c, "SELECT to_regclass('ftm_schema') IS NOT NULL");

	if (res_ok(c, res, PGRES_TUPLES_OK, "schema", err, err_len) != 0)
		return -1;
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		PQclear(res);
		*version = 0;
		return 0;
	}
	PQclear(res);
	res = PQexec(c, "SELECT coalesce(max(version), 0) FROM ftm_schema");
	if (res_ok(c, res, PGRES_TUPLES_OK, "schema", err, err_len) != 0)
		return -1;
	*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return 0;
}

/* Create or migrate under one transaction-scoped advisory lock, so nodes starting together agree. */
static int ensure_schema(pg_t *pg, PGconn *c, char *err, size_t err_len)
{
	PGresult *res;
	char sql[128];
	int v = 0, from;

	if (exec_cmd(c, "BEGIN", "schema", err, err_len) != 0)
		return -1;
	res = PQexec(c, "SELECT pg_advisory_xact_lock(hashtext('ftmpush schema'))");
	if (res_ok(c, res, PGRES_TUPLES_OK, "schema lock", err, err_len) != 0)
		goto fail;
	PQclear(res);
	if (schema_version(c, &v, err, err_len) != 0)
		goto fail;
	if (v > SCHEMA_VERSION) {
		SETERR("token store (PostgreSQL): the database has schema version %d, newer than this ftmpush "
		       "(version %d): upgrade ftmpush on this node before it uses the database", v, SCHEMA_VERSION);
		goto fail;
	}
	from = v;
	if (v == 0 && exec_cmd(c, "CREATE TABLE ftm_schema (version integer NOT NULL)", "schema", err, err_len) != 0)
		goto fail;
	for (; v < SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "INSERT INTO ftm_schema (version) VALUES (%d)", v + 1);
		if (exec_cmd(c, migrations[v], "schema migration", err, err_len) != 0 ||
		    exec_cmd(c, sql, "schema migration", err, err_len) != 0)
			goto fail;
	}
	if (exec_cmd(c, "COMMIT", "schema", err, err_len) != 0)
		goto fail;
	if (from == 0)
		ftm_log(pg->log, FTM_LOG_INFO, "token store (PostgreSQL): schema created (version %d)", SCHEMA_VERSION);
	else if (from != SCHEMA_VERSION)
		ftm_log(pg->log, FTM_LOG_INFO, "token store (PostgreSQL): schema migrated from version %d to %d",
			from, SCHEMA_VERSION);
	return 0;
fail:
	rollback(c);
	return -1;
}

/* ---- connections ---- */

static PGconn *connect_db(const char *uri, char *err, size_t err_len)
{
	/* connect_timeout first: a value in the URI (expanded from dbname) overrides it */
	const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
	const char *const values[] = { "5", "ftmpush", uri, NULL };
	PGconn *c = PQconnectdbParams(keys, values, 1);
	PGresult *res;

	if (c == NULL) {
		SETERR("token store (PostgreSQL): out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		conn_err(c, "connect", err, err_len);
		PQfinish(c);
		return NULL;
	}
	res = PQexec(c, SESSION_SQL);
	if (res_ok(c, res, PGRES_COMMAND_OK, "session settings", err, err_len) != 0) {
		PQfinish(c);
		return NULL;
	}
	PQclear(res);
	return c;
}

/* A connection made before fork() belongs to the parent: close our copy of the socket so that
 * PQfinish cannot send the parent's session a Terminate message, then free it. */
static void link_drop(pg_link_t *l)
{
	if (l->conn == NULL)
		return;
	if (l->pid != getpid() && PQsocket(l->conn) >= 0)
		close(PQsocket(l->conn));
	PQfinish(l->conn);
	l->conn = NULL;
	l->reused = false;
	l->prepared = 0;
}

static void note_down(pg_t *pg, const char *why)
{
	bool first;

	pthread_mutex_lock(&pg->mu);
	pg->backoff_ms = pg->backoff_ms == 0 ? BACKOFF_MIN_MS
			 : pg->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : pg->backoff_ms * 2;
	pg->retry_at_ms = ftm_mono_ms() + pg->backoff_ms;
	snprintf(pg->last_error, sizeof(pg->last_error), "%s", why);
	first = !pg->down;
	pg->down = true;
	pthread_mutex_unlock(&pg->mu);
	if (first)
		ftm_log(pg->log, FTM_LOG_ERR, "%s; logins fail closed until the database answers again "
			"(reconnecting with backoff up to %d ms)", why, BACKOFF_MAX_MS);
}

static void note_up(pg_t *pg)
{
	bool was_down;

	pthread_mutex_lock(&pg->mu);
	was_down = pg->down;
	pg->down = false;
	pg->backoff_ms = 0;
	pg->retry_at_ms = 0;
	pthread_mutex_unlock(&pg->mu);
	if (was_down)
		ftm_log(pg->log, FTM_LOG_INFO, "token store (PostgreSQL): connected again");
}

static int link_connect(pg_t *pg, pg_link_t *l, char *err, size_t err_len)
{
	int64_t wait;

	pthread_mutex_lock(&pg->mu);
	wait = pg->retry_at_ms - ftm_mono_ms();
	if (pg->down && wait > 0) {
		SETERR("%s (next attempt in %" PRId64 " ms)", pg->last_error, wait);
		pthread_mutex_unlock(&pg->mu);
		return -1;
	}
	pthread_mutex_unlock(&pg->mu);
	l->conn = connect_db(pg->uri, err, err_len);
	l->prepared = 0;
	if (l->conn == NULL) {
		note_down(pg, err != NULL ? err : "token store (PostgreSQL): cannot connect");
		return -1;
	}
	l->pid = getpid();
	l->reused = false;
	note_up(pg);
	return 0;
}

/* An idle pooled connection the server has closed (a restart, a terminated session) has something to
 * read: seen here, it is replaced before a statement is sent on it (one poll, no round trip). */
static bool link_closed(pg_link_t *l)
{
	struct pollfd pfd = { .fd = PQsocket(l->conn), .events = POLLIN };

	if (pfd.fd < 0)
		return true;
	if (poll(&pfd, 1, 0) <= 0)
		return false;
	return PQconsumeInput(l->conn) != 1 || PQstatus(l->conn) != CONNECTION_OK;
}

static pg_link_t *link_get(pg_t *pg, char *err, size_t err_len)
{
	struct timespec deadline;
	pg_link_t *l = NULL;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += POOL_WAIT_MS / 1000;
	pthread_mutex_lock(&pg->mu);
	for (;;) {
		pg_link_t *idle = NULL;

		for (size_t i = 0; i < POOL_SIZE && l == NULL; i++) {
			if (pg->links[i].busy)
				continue;
			if (pg->links[i].conn != NULL)
				l = &pg->links[i];	/* an open connection first */
			else if (idle == NULL)
				idle = &pg->links[i];
		}
		if (l == NULL)
			l = idle;
		if (l != NULL)
			break;
		if (pthread_cond_timedwait(&pg->freed, &pg->mu, &deadline) == ETIMEDOUT) {
			pthread_mutex_unlock(&pg->mu);
			SETERR("token store (PostgreSQL): all %d connections of this process busy for %d s",
			       POOL_SIZE, POOL_WAIT_MS / 1000);
			return NULL;
		}
	}
	l->busy = true;
	pthread_mutex_unlock(&pg->mu);

	if (l->conn != NULL && (l->pid != getpid() || PQstatus(l->conn) != CONNECTION_OK || link_closed(l)))
		link_drop(l);
	if (l->conn == NULL && link_connect(pg, l, err, err_len) != 0) {
		pthread_mutex_lock(&pg->mu);
		l->busy = false;
		pthread_cond_signal(&pg->freed);
		pthread_mutex_unlock(&pg->mu);
		return NULL;
	}
	return l;
}

static void link_put(pg_t *pg, pg_link_t *l)
{
	if (PQstatus(l->conn) != CONNECTION_OK) {
		link_drop(l);
	} else {
		rollback(l->conn);	/* never hand on a connection inside a transaction */
		l->reused = true;
	}
	pthread_mutex_lock(&pg->mu);
	l->busy = false;
	pthread_cond_signal(&pg->freed);
	pthread_mutex_unlock(&pg->mu);
}

/* The first round trip failed because the server had closed this (reused) connection: PG_STALE. */
static int first_failed(pg_link_t *l, int rc)
{
	return rc != 0 && l->reused && PQstatus(l->conn) != CONNECTION_OK ? PG_STALE : rc;
}

typedef int (*pg_work_fn)(pg_t *pg, pg_link_t *l, void *ctx, char *err, size_t err_len);

/* Run work on a pooled connection. A connection the server closed while it sat in the pool (a
 * database restart, a failover) shows on the first round trip; the work is then run once more on a
 * new connection, since nothing of it reached the database. */
static void listed_drop(void);

static int with_link(pg_t *pg, pg_work_fn work, void *ctx, char *err, size_t err_len)
{
	listed_drop();
	for (int attempt = 0; ; attempt++) {
		pg_link_t *l = link_get(pg, err, err_len);
		int rc;

		if (l == NULL)
			return -1;
		rc = work(pg, l, ctx, err, err_len);
		link_put(pg, l);
		if (rc != PG_STALE)
			return rc;
		if (attempt > 0)
			return -1;
		/* the others in the pool were closed by the same restart: do not try them one by one */
		pthread_mutex_lock(&pg->mu);
		for (size_t i = 0; i < POOL_SIZE; i++)
			if (!pg->links[i].busy)
				link_drop(&pg->links[i]);
		pthread_mutex_unlock(&pg->mu);
		ftm_log(pg->log, FTM_LOG_WARN, "token store (PostgreSQL): a pooled connection was closed by "
			"the server; retrying on a new one");
	}
}

/* ---- rows ---- */

static int parse_i64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

static int row_from_res(PGresult *res, int r, ftm_store_row_t *row)
{
	int64_t digits, period, last_step, failures, created, locked_at;
	unsigned char *blob;
	size_t blen = 0;

	memset(row, 0, sizeof(*row));
	snprintf(row->tok.serial, sizeof(row->tok.serial), "%s", PQgetvalue(res, r, 0));
	snprintf(row->tok.user, sizeof(row->tok.user), "%s", PQgetvalue(res, r, 1));
	blob = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, 2), &blen);
	if (blob == NULL)
		return -1;
	if (blen == 0 || blen > sizeof(row->sealed)) {
		PQfreemem(blob);
		return -1;
	}
	memcpy(row->sealed, blob, blen);
	row->sealed_len = blen;
	PQfreemem(blob);
	if (ftm_alg_parse(PQgetvalue(res, r, 3), &row->tok.alg) != 0 ||
	    parse_i64(PQgetvalue(res, r, 4), &digits) != 0 || parse_i64(PQgetvalue(res, r, 5), &period) != 0 ||
	    parse_i64(PQgetvalue(res, r, 7), &last_step) != 0 || parse_i64(PQgetvalue(res, r, 8), &failures) != 0 ||
	    parse_i64(PQgetvalue(res, r, 10), &created) != 0 || parse_i64(PQgetvalue(res, r, 12), &locked_at) != 0 ||
	    digits < 0 || digits > 10 || period <= 0 || period > 86400 || failures < 0 || failures > 1000000)
		return -1;
	row->tok.digits = (unsigned)digits;
	row->tok.period = (unsigned)period;
	/* anything unexpected reads as locked */
	row->tok.status = strcmp(PQgetvalue(res, r, 6), "active") == 0 ? FTM_TOKEN_ACTIVE : FTM_TOKEN_LOCKED;
	row->tok.last_step = last_step;
	row->tok.failures = (unsigned)failures;
	snprintf(row->tok.push, sizeof(row->tok.push), "%s", PQgetvalue(res, r, 9));
	row->tok.created = created;
	/* only a lock the store knows came from failures ends by itself: anything else stays locked */
	row->tok.lock_reason = row->tok.status == FTM_TOKEN_ACTIVE ? FTM_LOCK_NONE
			       : strcmp(PQgetvalue(res, r, 11), "failures") == 0 ? FTM_LOCK_FAILURES : FTM_LOCK_ADMIN;
	row->tok.locked_at = locked_at;
	return 0;
}

static const char *status_text(ftm_token_status_t status)
{
	return status == FTM_TOKEN_ACTIVE ? "active" : "lock";
}

/* Execute queries[q] on l, preparing it first if this connection has not yet. A failed PREPARE
 * comes back as the result, so callers report it like a failed execution. */
static PGresult *run(pg_link_t *l, int q, int n, const char *const *values, const int *lengths, const int *formats)
{
	char name[16];

	snprintf(name, sizeof(name), "ftm%d", q);
	if (!(l->prepared & ((uint64_t)1 << q))) {
		PGresult *res = PQprepare(l->conn, name, queries[q].sql, queries[q].nparams, NULL);

		if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK)
			return res;
		PQclear(res);
		l->prepared |= (uint64_t)1 << q;
	}
	return PQexecPrepared(l->conn, name, n, values, lengths, formats, 0);
}

/* ---- pipelines: several statements in one round trip ----
 * The statements queued between pipe_begin and pipe_sync go out together and their results come back
 * together (libpq pipeline mode). A statement that fails makes the server skip the rest up to the sync;
 * in an explicit transaction the transaction is then aborted, so nothing after a failure can commit. */

#define PIPE_MAX	24	/* statements (with their PREPAREs) per sync */

typedef struct pipe {
	pg_link_t	*l;
	int		n;			/* entries queued */
	int		prep[PIPE_MAX];		/* q of a PREPARE entry; -1 a statement */
	ExecStatusType	want[PIPE_MAX];		/* what a statement must return */
	PGresult	*res[PIPE_MAX];		/* a statement's result after pipe_sync (NULL for a PREPARE) */
	uint64_t	preparing;		/* bit q: queries[q]'s PREPARE is queued */
	bool		failed;			/* a send failed: pipe_sync reports it */
} pipe_t;

static int pipe_begin(pipe_t *p, pg_link_t *l, char *err, size_t err_len)
{
	memset(p, 0, sizeof(*p));
	p->l = l;
	if (PQenterPipelineMode(l->conn) != 1)
		return conn_err(l->conn, "pipeline", err, err_len);
	return 0;
}

static bool pipe_room(const pipe_t *p, int entries)
{
	return p->n + entries <= PIPE_MAX;
}

/* Queue queries[q], its PREPARE first when this connection has not prepared it yet; returns the
 * entry its result will be in. */
static int pipe_query(pipe_t *p, int q, const char *const *values, const int *lengths, const int *formats,
		      ExecStatusType want)
{
	char name[16];

	snprintf(name, sizeof(name), "ftm%d", q);
	if (!pipe_room(p, 2)) {
		p->failed = true;
		return 0;
	}
	if (!((p->l->prepared | p->preparing) & ((uint64_t)1 << q))) {
		p->preparing |= (uint64_t)1 << q;
		if (PQsendPrepare(p->l->conn, name, queries[q].sql, queries[q].nparams, NULL) != 1)
			p->failed = true;
		p->prep[p->n++] = q;
	}
	if (PQsendQueryPrepared(p->l->conn, name, queries[q].nparams, values, lengths, formats, 0) != 1)
		p->failed = true;
	p->prep[p->n] = -1;
	p->want[p->n] = want;
	return p->n++;
}

/* Queue a statement without parameters (BEGIN, COMMIT). */
static int pipe_cmd(pipe_t *p, const char *sql)
{
	if (!pipe_room(p, 1)) {
		p->failed = true;
		return 0;
	}
	if (PQsendQueryParams(p->l->conn, sql, 0, NULL, NULL, NULL, NULL, 0) != 1)
		p->failed = true;
	p->prep[p->n] = -1;
	p->want[p->n] = PGRES_COMMAND_OK;
	return p->n++;
}

static void pipe_clear(pipe_t *p)
{
	for (int i = 0; i < p->n; i++)
		PQclear(p->res[i]);
	memset(p->res, 0, sizeof(p->res));
	p->n = 0;
	p->preparing = 0;
}

/* Send the sync, read every result, leave pipeline mode. 0 when every statement returned what it
 * should; -1 with the first failure's reason otherwise (a lost connection included). The results stay
 * in p->res for the caller (pipe_end frees them). */
static int pipe_sync(pipe_t *p, const char *what, char *err, size_t err_len)
{
	PGconn *c = p->l->conn;
	bool synced = false;
	int rc = 0, got = 0, nulls = 0;

	if (p->failed || PQpipelineSync(c) != 1) {
		conn_err(c, what, err, err_len);
		rc = -1;
	}
	/* results in order, each followed by a NULL, then the sync's own; a lost connection gives NULLs */
	while (!synced && rc == 0) {
		PGresult *r = PQgetResult(c);

		if (r == NULL) {
			if (PQstatus(c) != CONNECTION_OK || ++nulls > 1) {
				conn_err(c, what, err, err_len);
				rc = -1;
			}
			continue;
		}
		nulls = 0;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			synced = true;
		} else if (got < p->n) {
			p->res[got++] = r;
		} else {
			PQclear(r);
		}
	}
	for (int i = 0; rc == 0 && i < p->n; i++) {
		if (p->prep[i] >= 0) {
			if (PQresultStatus(p->res[i]) == PGRES_COMMAND_OK)
				p->l->prepared |= (uint64_t)1 << p->prep[i];
			else
				rc = res_ok(c, p->res[i], PGRES_COMMAND_OK, what, err, err_len);
		} else if (p->res[i] == NULL || PQresultStatus(p->res[i]) != p->want[i]) {
			rc = res_ok(c, p->res[i], p->want[i], what, err, err_len);
		}
		if (rc != 0)
			p->res[i] = NULL;	/* res_ok cleared it */
	}
	if (PQexitPipelineMode(c) != 1) {
		if (rc == 0)
			conn_err(c, what, err, err_len);
		rc = -1;
		pipe_clear(p);
		link_drop(p->l);	/* results still pending: the connection cannot be used again */
	}
	return rc;
}

/* ---- open / close ---- */

static void pg_push_unwatch(void *be);
static void verdict_batch(void *owner, ftm_batch_job_t *batch);
static void read_batch(void *owner, ftm_batch_job_t *batch);

static void pg_close(void *be)
{
	pg_t *pg = be;

	if (pg == NULL)
		return;
	pg_push_unwatch(pg);
	for (size_t i = 0; i < POOL_SIZE; i++)
		link_drop(&pg->links[i]);
	pthread_cond_destroy(&pg->freed);
	pthread_mutex_destroy(&pg->mu);
	ftm_batcher_destroy(&pg->cas_batch);
	ftm_batcher_destroy(&pg->read_batch);
	free(pg->uri);
	free(pg);
}

/* A password inside token_db would be printed wherever the store is named (logs, errors, `radiusd
 * -X`) and read by whoever reads the config: it must come from a password file or a certificate. */
static int check_uri(const char *uri, char *err, size_t err_len)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(uri, &perr);
	int rc = 0;

	if (opts == NULL) {
		char msg[256];

		one_line(msg, sizeof(msg), perr);
		SETERR("token store: bad PostgreSQL URI: %s", msg);
		PQfreemem(perr);
		return -1;
	}
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0') {
			SETERR("token store: token_db holds a password; it would reach logs and every reader of "
			       "the configuration: remove it and use passfile=FILE (a libpq password file, mode "
			       "0600) or a client certificate (sslcert=, sslkey=), see docs/ha.md");
			rc = -1;
		}
	}
	PQconninfoFree(opts);
	return rc;
}

static void *pg_open(const char *location, const ftm_log_t *log, char *err, size_t err_len)
{
	pthread_condattr_t ca;
	pg_t *pg;
	PGconn *c;
	size_t n;

	if (location == NULL || strncmp(location, "//", 2) != 0) {
		SETERR("token store: a PostgreSQL store is a libpq URI: postgresql://[user@]host[:port]/dbname[?param=value...]");
		return NULL;
	}
	if (ftm_pq_load(err, err_len) != 0)
		return NULL;
	pg = calloc(1, sizeof(*pg));
	n = strlen("postgresql:") + strlen(location) + 1;
	if (pg == NULL || (pg->uri = malloc(n)) == NULL) {
		free(pg);
		SETERR("token store: out of memory");
		return NULL;
	}
	snprintf(pg->uri, n, "postgresql:%s", location);
	pg->log = log;
	pg->gen = __atomic_add_fetch(&pg_opens, 1, __ATOMIC_RELAXED);
	pthread_mutex_init(&pg->mu, NULL);
	ftm_batcher_init(&pg->cas_batch, verdict_batch, pg);
	ftm_batcher_init(&pg->read_batch, read_batch, pg);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pg->freed, &ca);
	pthread_condattr_destroy(&ca);
	if (check_uri(pg->uri, err, err_len) != 0) {
		pg_close(pg);
		return NULL;
	}
	/* The schema is checked (created, migrated, or refused as too new) before anything else. */
	c = connect_db(pg->uri, err, err_len);
	if (c == NULL) {
		pg_close(pg);
		return NULL;
	}
	if (ensure_schema(pg, c, err, err_len) != 0) {
		PQfinish(c);
		pg_close(pg);
		return NULL;
	}
	pg->links[0].conn = c;
	pg->links[0].pid = getpid();
	pg->links[0].reused = true;
	return pg;
}

/* ---- meta ---- */

struct meta_ctx {
	const char	*name;
	uint8_t		*buf;
	const uint8_t	*in;
	size_t		max, *len;
};

static int meta_get_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct meta_ctx *m = c;
	const char *values[1] = { m->name };
	PGresult *res = run(l, Q_META_GET, 1, values, NULL, NULL);
	unsigned char *blob;
	size_t blen = 0;

	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "meta", err, err_len) != 0)
		return first_failed(l, -1);
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 1;
	}
	blob = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 0), &blen);
	PQclear(res);
	if (blob == NULL || blen > m->max) {
		PQfreemem(blob);
		SETERR("token store: meta %s too large", m->name);
		return -1;
	}
	memcpy(m->buf, blob, blen);
	*m->len = blen;
	PQfreemem(blob);
	return 0;
}

static int pg_meta_get(void *be, const char *name, uint8_t *buf, size_t max, size_t *len, char *err, size_t err_len)
{
	struct meta_ctx m = { .name = name, .buf = buf, .max = max, .len = len };

	return with_link(be, meta_get_on, &m, err, err_len);
}

static int meta_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct meta_ctx *m = c;
	const char *values[2] = { m->name, (const char *)m->in };
	const int lengths[2] = { 0, (int)m->max };
	const int formats[2] = { 0, 1 };
	PGresult *res = run(l, Q_META_PUT, 2, values, lengths, formats);

	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "meta", err, err_len) != 0)
		return first_failed(l, -1);
	PQclear(res);
	return 0;
}

/* ON CONFLICT DO NOTHING: the first writer wins (two nodes creating the key check at once); callers
 * read back what was kept. */
static int pg_meta_put(void *be, const char *name, const uint8_t *buf, size_t len, char *err, size_t err_len)
{
	struct meta_ctx m = { .name = name, .in = buf, .max = len };

	return with_link(be, meta_put_on, &m, err, err_len);
}

/* A PostgreSQL array literal being written: {"a","b"}, every element quoted, " and \ escaped. */
typedef struct lit {
	char	*s;
	size_t	len, cap;
	bool	oom;
} lit_t;

static void lit_put(lit_t *l, char ch)
{
	if (l->oom)
		return;
	if (l->len + 2 > l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char *s = realloc(l->s, cap);

		if (s == NULL) {
			l->oom = true;
			return;
		}
		l->s = s;
		l->cap = cap;
	}
	l->s[l->len++] = ch;
	l->s[l->len] = '\0';
}

static void lit_add(lit_t *l, const char *e)
{
	lit_put(l, l->len == 0 ? '{' : ',');
	lit_put(l, '"');
	for (; *e != '\0'; e++) {
		if (*e == '"' || *e == '\\')
			lit_put(l, '\\');
		lit_put(l, *e);
	}
	lit_put(l, '"');
}

static const char *lit_end(lit_t *l)
{
	if (l->len == 0)
		lit_put(l, '{');
	lit_put(l, '}');
	return l->oom ? NULL : l->s;
}

/* ---- tokens ---- */

struct rows_in {
	size_t			n;
	ftm_rows_fill_fn	fill;
	void			*ctx;
	ftm_store_row_t		*rows;		/* INSERT_CHUNK: the chunk being inserted */
};

/* The positions in the array literal `serials` (from 0) of the serials that are tokens, in order,
 * into found[] (found_n of them): Q_PRESENT. */
static int present_on(pg_link_t *l, const char *serials, size_t n, bool *found, char *err, size_t err_len)
{
	const char *values[1] = { serials };
	PGresult *res = run(l, Q_PRESENT, 1, values, NULL, NULL);

	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "read", err, err_len) != 0)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		long i = strtol(PQgetvalue(res, r, 0), NULL, 10);

		if (i >= 1 && (size_t)i <= n)
			found[i - 1] = true;
	}
	PQclear(res);
	return 0;
}

/* One chunk of rows as Q_INSERT's 13 arrays (lits[] reset and refilled). */
static const char *const *insert_arrays(lit_t lits[13], const ftm_store_row_t *rows, size_t n,
					const char *values[13])
{
	char seed[2 * FTM_SEALED_MAX + 1], num[6][24];

	for (int k = 0; k < 13; k++)
		lits[k].len = 0;
	for (size_t i = 0; i < n; i++) {
		const ftm_token_t *t = &rows[i].tok;

		ftm_hex_encode(rows[i].sealed, rows[i].sealed_len < FTM_SEALED_MAX ? rows[i].sealed_len : FTM_SEALED_MAX, seed);
		snprintf(num[0], sizeof(num[0]), "%u", t->digits);
		snprintf(num[1], sizeof(num[1]), "%u", t->period);
		snprintf(num[2], sizeof(num[2]), "%" PRId64, t->last_step);
		snprintf(num[3], sizeof(num[3]), "%u", t->failures);
		snprintf(num[4], sizeof(num[4]), "%" PRId64, t->created);
		snprintf(num[5], sizeof(num[5]), "%" PRId64, t->locked_at);
		lit_add(&lits[0], t->serial);
		lit_add(&lits[1], t->user);
		lit_add(&lits[2], seed);
		lit_add(&lits[3], ftm_alg_name(t->alg));
		lit_add(&lits[4], num[0]);
		lit_add(&lits[5], num[1]);
		lit_add(&lits[6], status_text(t->status));
		lit_add(&lits[7], num[2]);
		lit_add(&lits[8], num[3]);
		lit_add(&lits[9], t->push);
		lit_add(&lits[10], num[4]);
		lit_add(&lits[11], ftm_lock_reason_name(t->lock_reason));
		lit_add(&lits[12], num[5]);
	}
	for (int k = 0; k < 13; k++)
		if ((values[k] = lit_end(&lits[k])) == NULL)
			return NULL;
	return values;
}

/* An import: one transaction, a statement per INSERT_CHUNK rows (a round trip per token took most
 * of the time), one chunk's rows and arrays in memory at a time. A serial already there (another
 * importer's, committed meanwhile: ftmpushctl checks before) aborts the transaction; the chunk's
 * serials are then looked up to name the first one that exists, as a statement per row did. */
static int insert_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct rows_in *in = c;
	lit_t lits[13];
	int rc = -1;

	memset(lits, 0, sizeof(lits));
	if (exec_cmd(l->conn, "BEGIN", "insert", err, err_len) != 0)
		return first_failed(l, -1);
	for (size_t i0 = 0; i0 < in->n; i0 += INSERT_CHUNK) {
		size_t k = in->n - i0 < INSERT_CHUNK ? in->n - i0 : INSERT_CHUNK;
		const char *values[13];
		PGresult *res;

		if (in->fill(in->ctx, i0, in->rows, k, err, err_len) != 0)
			goto out;
		if (insert_arrays(lits, in->rows, k, values) == NULL) {
			SETERR("token store: out of memory");
			goto out;
		}
		res = run(l, Q_INSERT, 13, values, NULL, NULL);
		if (res_is(res, "23505")) {	/* unique_violation */
			bool *found = calloc(k, sizeof(*found));
			char msg[256];

			one_line(msg, sizeof(msg), PQresultErrorMessage(res));
			PQclear(res);
			rollback(l->conn);
			if (found == NULL) {
				SETERR("token store: out of memory");
				goto out;
			}
			if (present_on(l, values[0], k, found, err, err_len) == 0) {
				size_t j = 0;

				while (j < k && !found[j])
					j++;
				if (j < k)
					SETERR("token %s already exists", in->rows[j].tok.serial);
				else
					SETERR("token store (PostgreSQL): insert: %s", msg);
			} else {
				/* the look-up failed: the refusal is still a serial in the store */
				SETERR("token store (PostgreSQL): insert: %s", msg);
			}
			free(found);
			goto out;
		}
		if (res_ok(l->conn, res, PGRES_COMMAND_OK, "insert", err, err_len) != 0)
			goto out;
		if (strtoull(PQcmdTuples(res), NULL, 10) != k) {
			PQclear(res);
			SETERR("token store (PostgreSQL): insert: not every row of the chunk went in");
			goto out;
		}
		PQclear(res);
	}
	if (exec_cmd(l->conn, "COMMIT", "insert", err, err_len) != 0)
		goto out;
	rc = 0;
	/* A bulk load (an import) leaves the planner without statistics until autovacuum gets to the
	 * table, and a login's statements planned meanwhile (generic plans, cached per session) guess
	 * 1 in 200 rows per user and join the whole table: ANALYZE now, as PostgreSQL advises after a
	 * bulk load. The tokens are committed: a failed ANALYZE is only a warning. */
	if (in->n >= ANALYZE_AFTER_ROWS) {
		PGresult *res = PQexec(l->conn, "ANALYZE ftm_tokens");

		if (PQresultStatus(res) != PGRES_COMMAND_OK)
			ftm_log(pg->log, FTM_LOG_WARN, "token store (PostgreSQL): ANALYZE after inserting %zu tokens: %s",
				in->n, PQresultErrorMessage(res));
		PQclear(res);
	}
out:
	for (int k = 0; k < 13; k++)
		free(lits[k].s);
	return rc;
}

static int pg_insert(void *be, size_t n, ftm_rows_fill_fn fill, void *ctx, char *err, size_t err_len)
{
	struct rows_in in = { n, fill, ctx, NULL };
	int rc;

	in.rows = calloc(n < INSERT_CHUNK ? n : INSERT_CHUNK, sizeof(*in.rows));
	if (in.rows == NULL) {
		SETERR("token store: out of memory");
		return -1;
	}
	rc = with_link(be, insert_on, &in, err, err_len);
	free(in.rows);
	return rc;
}

struct present_ctx {
	const char *const	*serials;
	size_t			n;
	bool			*found;
};

/* PRESENT_CHUNK serials per statement. A read changes nothing: a failure on a stale connection is
 * repeated. */
static int present_chunks_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct present_ctx *p = c;
	lit_t lit = { 0 };
	int rc = 0;

	(void)pg;
	for (size_t i0 = 0; i0 < p->n && rc == 0; i0 += PRESENT_CHUNK) {
		size_t k = p->n - i0 < PRESENT_CHUNK ? p->n - i0 : PRESENT_CHUNK;
		const char *arr;

		lit.len = 0;
		for (size_t i = 0; i < k; i++)
			lit_add(&lit, p->serials[i0 + i]);
		if ((arr = lit_end(&lit)) == NULL) {
			SETERR("token store: out of memory");
			rc = -1;
		} else if (present_on(l, arr, k, p->found + i0, err, err_len) != 0) {
			rc = i0 == 0 ? first_failed(l, -1) : -1;
		}
	}
	free(lit.s);
	return rc;
}

static int pg_present(void *be, const char *const *serials, size_t n, bool *found, char *err, size_t err_len)
{
	struct present_ctx p = { serials, n, found };

	return with_link(be, present_chunks_on, &p, err, err_len);
}

struct rows_out {
	int		q;
	const char	*arg;
	ftm_store_row_t	*rows;		/* grown; zeroed and freed by the caller */
	char		(*ver)[16];	/* each row's version, when the query read it (Q_LIST_USER) */
	size_t		n, cap;
};

/* The rows of res (only: of that user alone, a batched read's share; NULL: all of them). */
static int rows_from_user(PGresult *res, const char *only, struct rows_out *o, char *err, size_t err_len)
{
	int nt = PQntuples(res), mine = 0;

	for (int r = 0; r < nt; r++)
		mine += only == NULL || strcmp(PQgetvalue(res, r, 1), only) == 0;
	if (mine > 0) {
		o->rows = calloc((size_t)mine, sizeof(*o->rows));
		if (o->rows == NULL) {
			SETERR("token store: out of memory");
			return -1;
		}
		o->cap = (size_t)mine;
		if (PQnfields(res) > 13 && (o->ver = calloc((size_t)mine, sizeof(*o->ver))) == NULL) {
			SETERR("token store: out of memory");
			return -1;
		}
	}
	for (int r = 0; r < nt; r++) {
		if (only != NULL && strcmp(PQgetvalue(res, r, 1), only) != 0)
			continue;
		if (row_from_res(res, r, &o->rows[o->n]) != 0) {
			SETERR("token store: damaged record %s", PQgetvalue(res, r, 0));
			return -1;
		}
		if (o->ver != NULL)
			snprintf(o->ver[o->n], sizeof(o->ver[o->n]), "%s", PQgetvalue(res, r, 13));
		o->n++;
	}
	return 0;
}

static int rows_from(PGresult *res, struct rows_out *o, char *err, size_t err_len)
{
	return rows_from_user(res, NULL, o, err, err_len);
}

static void rows_free(struct rows_out *o)
{
	if (o->rows != NULL) {
		ftm_memzero(o->rows, o->cap * sizeof(*o->rows));
		free(o->rows);
	}
	free(o->ver);
	o->ver = NULL;
	o->rows = NULL;
	o->n = o->cap = 0;
}

static int select_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct rows_out *o = c;
	const char *values[1] = { o->arg };
	PGresult *res = run(l, o->q, o->arg != NULL ? 1 : 0, values, NULL, NULL);
	int rc;

	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "read", err, err_len) != 0)
		return first_failed(l, -1);
	rc = rows_from(res, o, err, err_len);
	PQclear(res);
	if (rc != 0)
		rows_free(o);
	return rc;
}

/* Q_LIST_USERS for the batch's users (each job a struct rows_out of Q_LIST_USER): one read, each job
 * given its user's rows. A read changes nothing: a failure on a stale connection is repeated. */
static int reads_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	ftm_batch_job_t *batch = c;
	lit_t users = { 0 };
	const char *values[1];
	PGresult *res;
	int rc = 0;

	(void)pg;
	for (ftm_batch_job_t *b = batch; b != NULL; b = b->next)
		lit_add(&users, ((struct rows_out *)b->arg)->arg);
	if ((values[0] = lit_end(&users)) == NULL) {
		free(users.s);
		SETERR("token store: out of memory");
		return -1;
	}
	res = run(l, Q_LIST_USERS, 1, values, NULL, NULL);
	free(users.s);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "read", err, err_len) != 0)
		return first_failed(l, -1);
	for (ftm_batch_job_t *b = batch; b != NULL; b = b->next) {
		struct rows_out *o = b->arg;

		b->rc = rows_from_user(res, o->arg, o, b->err, b->err_len);
		if (b->rc != 0)
			rows_free(o);
	}
	PQclear(res);
	return rc;
}

/* The leader's flush of pg->read_batch: a batch of one is its own Q_LIST_USER. A batched read that
 * failed is read again user by user, so that one user's read (a name the server refuses) fails alone. */
static void read_batch(void *owner, ftm_batch_job_t *batch)
{
	pg_t *pg = owner;
	char err[FTM_MSG_MAX] = "";

	if (batch->next != NULL && with_link(pg, reads_on, batch, err, sizeof(err)) == 0)
		return;
	for (ftm_batch_job_t *b = batch; b != NULL; b = b->next)
		b->rc = with_link(pg, select_on, b->arg, b->err, b->err_len);
}

/* A login's read of user's rows with their versions (Q_LIST_USER into o), batched with the reads of
 * the process's other threads that wait at the same time. */
static int read_user(pg_t *pg, const char *user, struct rows_out *o, char *err, size_t err_len)
{
	*o = (struct rows_out){ .q = Q_LIST_USER, .arg = user };
	listed_drop();
	return ftm_batch_run(&pg->read_batch, o, err, err_len);
}

static int pg_get(void *be, const char *serial, ftm_store_row_t *out, char *err, size_t err_len)
{
	struct rows_out o = { .q = Q_GET, .arg = serial };
	int rc = with_link(be, select_on, &o, err, err_len);

	if (rc == 0 && o.n == 0)
		rc = 1;
	else if (rc == 0)
		*out = o.rows[0];
	rows_free(&o);
	return rc;
}

struct update_ctx {
	int		q;
	int		n;
	const char	*values[9];
	int		lengths[9], formats[9];
};

/* One UPDATE or DELETE of one token; 1 when no such serial. */
static int update_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct update_ctx *u = c;
	PGresult *res = run(l, u->q, u->n, u->values, u->lengths, u->formats);
	int rc;

	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "update", err, err_len) != 0)
		return first_failed(l, -1);
	rc = strcmp(PQcmdTuples(res), "0") == 0 ? 1 : 0;
	PQclear(res);
	return rc;
}

/* What a re-issue resets is store.c's rule: the row carries every value to write. */
static int pg_reissue(void *be, const ftm_store_row_t *row, char *err, size_t err_len)
{
	char digits[16], period[16], created[24], last[24], failures[16];
	struct update_ctx u = { .q = Q_REISSUE, .n = 9,
		.values = { (const char *)row->sealed, ftm_alg_name(row->tok.alg), digits, period, created,
			    status_text(row->tok.status), last, failures, row->tok.serial },
		.lengths = { (int)row->sealed_len }, .formats = { 1 } };

	snprintf(digits, sizeof(digits), "%u", row->tok.digits);
	snprintf(period, sizeof(period), "%u", row->tok.period);
	snprintf(created, sizeof(created), "%" PRId64, row->tok.created);
	snprintf(last, sizeof(last), "%" PRId64, row->tok.last_step);
	snprintf(failures, sizeof(failures), "%u", row->tok.failures);
	return with_link(be, update_on, &u, err, err_len);
}

static int pg_set_status(void *be, const char *serial, ftm_token_status_t status, ftm_lock_reason_t reason,
			 int64_t locked_at, bool clear_failures, char *err, size_t err_len)
{
	char at[24];
	struct update_ctx u = { .q = clear_failures ? Q_STATUS_CLEAR : Q_STATUS, .n = 4,
				.values = { status_text(status), ftm_lock_reason_name(reason), at, serial } };

	snprintf(at, sizeof(at), "%" PRId64, locked_at);
	return with_link(be, update_on, &u, err, err_len);
}

static int pg_set_push(void *be, const char *serial, const char *push, char *err, size_t err_len)
{
	struct update_ctx u = { .q = Q_PUSH, .n = 2, .values = { push, serial } };

	return with_link(be, update_on, &u, err, err_len);
}

static int pg_set_user(void *be, const char *serial, const char *user, char *err, size_t err_len)
{
	struct update_ctx u = { .q = Q_USER, .n = 2, .values = { user, serial } };

	return with_link(be, update_on, &u, err, err_len);
}

static int pg_remove(void *be, const char *serial, char *err, size_t err_len)
{
	struct update_ctx u = { .q = Q_DELETE, .n = 1, .values = { serial } };

	return with_link(be, update_on, &u, err, err_len);
}

/* ---- a login's read, answering its verdict ----
 * A login reads the user's rows once (its split: a list, or a peek with no list before it) and then
 * decides on them (the verdict). The rows such a read got, with their versions (xmin), are kept for this
 * thread, and the next peek or write verdict of the same store and user takes them instead of reading
 * again, within LISTED_MS; any other call of the thread into this backend drops them. A peek decides
 * nothing; a write verdict on kept rows is one statement that writes only if they are still the user's
 * rows, unchanged (Q_VERDICT_CAS), else it is decided again on the rows locked (verdict_on). */

#define LISTED_MS	250

typedef struct listed {
	uint64_t	gen;		/* pg->gen of the store that read them; 0: none kept */
	char		user[FTM_USER_MAX];
	struct rows_out	o;
	int64_t		at_ms;
	unsigned long	calls;		/* with_link calls of this thread: a list's callback calling in shows */
} listed_t;

static pthread_key_t listed_key;
static pthread_once_t listed_once = PTHREAD_ONCE_INIT;
static bool listed_ok;

static void listed_free(void *p)
{
	listed_t *k = p;

	rows_free(&k->o);
	ftm_memzero(k, sizeof(*k));
	free(k);
}

static void listed_init(void)
{
	listed_ok = pthread_key_create(&listed_key, listed_free) == 0;
}

/* This thread's, created when `make`; NULL when none (or no memory: nothing is kept then). */
static listed_t *listed_get(bool make)
{
	listed_t *k;

	pthread_once(&listed_once, listed_init);
	if (!listed_ok)
		return NULL;
	k = pthread_getspecific(listed_key);
	if (k == NULL && make && (k = calloc(1, sizeof(*k))) != NULL && pthread_setspecific(listed_key, k) != 0) {
		free(k);
		k = NULL;
	}
	return k;
}

static void listed_drop(void)
{
	listed_t *k = listed_get(false);

	if (k == NULL)
		return;
	k->calls++;
	if (k->gen != 0) {
		rows_free(&k->o);
		k->gen = 0;
	}
}

/* Keep rows o (read with their versions) of user as this thread's, for the verdict that follows. */
static void listed_keep(const pg_t *pg, listed_t *k, const char *user, struct rows_out *o)
{
	for (size_t i = 0; i < o->n; i++)
		o->rows[i].dirty = false;
	k->gen = pg->gen;
	snprintf(k->user, sizeof(k->user), "%s", user);
	k->o = *o;
	k->at_ms = ftm_mono_ms();
	memset(o, 0, sizeof(*o));
}

/* A listing streamed from a cursor of a read-only transaction: one snapshot (the cursor's, taken at its
 * DECLARE), LIST_CHUNK rows per round trip, each row handed to row() as it arrives: memory does not grow
 * with the listing. row() returns 0 for the next row, 1 to stop, -1 on an error (said in err). It runs
 * with this pooled connection held (a callback that calls back into the store takes another). Until the
 * first FETCH has answered nothing was handed on and nothing written: a stale connection is PG_STALE
 * (with_link runs it again). An error once rows were handed on fails the listing all the same (-1): the
 * caller must not take what it was given for the whole. link_put's rollback closes the cursor. */
typedef int (*cursor_row_fn)(void *c, PGresult *res, int r, char *err, size_t err_len);

static int cursor_stream(pg_link_t *l, const char *select, int nparams, const char *const *values, const char *what,
			 cursor_row_fn row, void *c, char *err, size_t err_len)
{
	char declare[1024];
	PGresult *res;

	if ((size_t)snprintf(declare, sizeof(declare), "DECLARE ftm_list NO SCROLL CURSOR FOR %s", select) >= sizeof(declare)) {
		SETERR("token store (PostgreSQL): %s: statement too long", what);
		return -1;
	}
	res = PQexec(l->conn, "BEGIN READ ONLY; SET LOCAL idle_in_transaction_session_timeout = '" LIST_IDLE "'");
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, what, err, err_len) != 0)
		return first_failed(l, -1);
	PQclear(res);
	res = PQexecParams(l->conn, declare, nparams, NULL, values, NULL, NULL, 0);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, what, err, err_len) != 0)
		return first_failed(l, -1);
	PQclear(res);
	res = PQexec(l->conn, "FETCH " LIST_CHUNK_S " FROM ftm_list");
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, what, err, err_len) != 0)
		return first_failed(l, -1);
	for (;;) {
		int nt = PQntuples(res);

		for (int r = 0; r < nt; r++) {
			int rc = row(c, res, r, err, err_len);

			if (rc != 0) {
				PQclear(res);
				return rc < 0 ? -1 : 0;
			}
		}
		PQclear(res);
		if (nt < LIST_CHUNK)
			return 0;
		res = PQexec(l->conn, "FETCH " LIST_CHUNK_S " FROM ftm_list");
		if (res_ok(l->conn, res, PGRES_TUPLES_OK, what, err, err_len) != 0)
			return -1;	/* rows were handed on: never retried */
	}
}

struct stream_ctx {
	ftm_row_cb	cb;
	void		*ctx;
	ftm_store_row_t	*row;		/* the row being handed on (zeroed after each) */
};

static int token_row(void *c, PGresult *res, int r, char *err, size_t err_len)
{
	struct stream_ctx *s = c;
	int stop;

	if (row_from_res(res, r, s->row) != 0) {
		SETERR("token store: damaged record %s", PQgetvalue(res, r, 0));
		return -1;
	}
	stop = s->cb(s->ctx, s->row);
	ftm_memzero(s->row, sizeof(*s->row));
	return stop != 0;
}

/* Every token, ordered by user then serial, streamed (cursor_stream). */
static int stream_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	(void)pg;
	return cursor_stream(l, "SELECT " TOKEN_COLS " FROM ftm_tokens ORDER BY username, serial", 0, NULL, "list",
			     token_row, c, err, err_len);
}

/* A user's rows are read first and handed to cb with no connection held, so cb may call back into the
 * store; every token (user NULL) is streamed (stream_on). */
static int pg_list(void *be, const char *user, ftm_row_cb cb, void *ctx, char *err, size_t err_len)
{
	pg_t *pg = be;
	struct rows_out o = { .q = Q_LIST_USER };
	int rc;
	listed_t *k;
	unsigned long calls;

	if (user == NULL) {
		struct stream_ctx s = { .cb = cb, .ctx = ctx, .row = malloc(sizeof(*s.row)) };

		if (s.row == NULL) {
			SETERR("token store: out of memory");
			return -1;
		}
		rc = with_link(pg, stream_on, &s, err, err_len);
		ftm_memzero(s.row, sizeof(*s.row));
		free(s.row);
		return rc;
	}
	rc = read_user(pg, user, &o, err, err_len);
	k = rc == 0 && strlen(user) < sizeof(k->user) ? listed_get(true) : NULL;
	calls = k != NULL ? k->calls : 0;

	for (size_t i = 0; rc == 0 && i < o.n; i++)
		if (cb(ctx, &o.rows[i]) != 0)
			break;
	if (k != NULL && k->calls == calls)	/* nothing called into the store meanwhile */
		listed_keep(pg, k, user, &o);
	else
		rows_free(&o);
	return rc;
}

/* The rows the last list of this thread read for user on this store, when still fresh: copied to *o
 * (a peek: they stay for the verdict that follows) or moved there. */
static bool listed_take(const pg_t *pg, const char *user, bool keep, struct rows_out *o)
{
	listed_t *k = listed_get(false);

	if (k == NULL || k->gen == 0)
		return false;
	if (k->gen != pg->gen || strcmp(k->user, user) != 0 || ftm_mono_ms() - k->at_ms > LISTED_MS) {
		listed_drop();
		return false;
	}
	if (!keep) {
		*o = k->o;
		memset(&k->o, 0, sizeof(k->o));
		k->gen = 0;
		return true;
	}
	memset(o, 0, sizeof(*o));
	if (k->o.n == 0)
		return true;
	o->rows = calloc(k->o.n, sizeof(*o->rows));
	o->ver = calloc(k->o.n, sizeof(*o->ver));
	if (o->rows == NULL || o->ver == NULL) {
		free(o->rows);
		free(o->ver);
		memset(o, 0, sizeof(*o));
		return false;
	}
	memcpy(o->rows, k->o.rows, k->o.n * sizeof(*o->rows));
	memcpy(o->ver, k->o.ver, k->o.n * sizeof(*o->ver));
	o->n = o->cap = k->o.n;
	return true;
}

struct verdict_ctx {
	const char	*user;
	bool		write;
	ftm_decide_fn	decide;
	void		*ctx;
	const ftm_audit_row_t *audit;	/* inserted before the COMMIT when its event is set */
};

static void audit_params(const ftm_audit_row_t *a, char at[24], const char *values[10]);
static int audit_insert(pg_link_t *l, const ftm_audit_row_t *a, char *err, size_t err_len);

/* Q_VERDICT_WRITE's parameters for token t: status, last_step, failures, the lock, serial (the buffers
 * hold the numbers). */
static void verdict_params(const ftm_token_t *t, char last[24], char failures[16], char locked_at[24],
			   const char *uv[6])
{
	snprintf(last, 24, "%" PRId64, t->last_step);
	snprintf(failures, 16, "%u", t->failures);
	snprintf(locked_at, 24, "%" PRId64, t->locked_at);
	uv[0] = status_text(t->status);
	uv[1] = last;
	uv[2] = failures;
	uv[3] = ftm_lock_reason_name(t->lock_reason);
	uv[4] = locked_at;
	uv[5] = t->serial;
}

/* A verdict's write-back of one token: status, last_step, failures and the lock (the activation page's
 * too: the same columns change the same way). */
static int verdict_write(pg_link_t *l, const ftm_token_t *t, char *err, size_t err_len)
{
	char last[24], failures[16], locked_at[24];
	const char *uv[6];
	PGresult *res;

	verdict_params(t, last, failures, locked_at, uv);
	res = run(l, Q_VERDICT_WRITE, 6, uv, NULL, NULL);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "verdict", err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

/* A peek: the user's rows in one read, no transaction, nothing written. */
static int peek_on(pg_link_t *l, struct verdict_ctx *vc, char *err, size_t err_len)
{
	struct rows_out o = { 0 };
	const char *values[1] = { vc->user };
	PGresult *res = run(l, Q_VERDICT_PEEK, 1, values, NULL, NULL);
	int rc;

	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "verdict", err, err_len) != 0)
		return first_failed(l, -1);	/* a peek changes nothing: safe to repeat */
	rc = rows_from(res, &o, err, err_len);
	PQclear(res);
	if (rc == 0)
		rc = vc->decide(vc->ctx, o.rows, o.n) != 0 ? -1 : 0;
	rows_free(&o);
	return rc;
}

/* A write verdict in two round trips (pipelines): BEGIN with the user's rows under FOR UPDATE; decide;
 * the dirty rows, the audit row and COMMIT. A second verdict for the user on any node waits at the
 * SELECT and then reads what this one committed. Whatever fails after the first trip (a statement, the
 * connection, a COMMIT whose answer never comes) is a failed verdict: the server rolls back a
 * transaction whose COMMIT it did not get, and one whose answer was lost is not reported as done. */
static int verdict_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct verdict_ctx *vc = c;
	struct rows_out o = { 0 };
	const char *values[1] = { vc->user };
	pipe_t p;
	int rc = -1, sel, done;

	(void)pg;
	if (!vc->write)
		return peek_on(l, vc, err, err_len);
	if (pipe_begin(&p, l, err, err_len) != 0)
		return -1;
	pipe_cmd(&p, "BEGIN");
	sel = pipe_query(&p, Q_VERDICT_LOCK, values, NULL, NULL, PGRES_TUPLES_OK);
	if (pipe_sync(&p, "verdict", err, err_len) != 0) {
		pipe_clear(&p);
		return first_failed(l, -1);	/* nothing of it can commit: safe to repeat */
	}
	rc = rows_from(p.res[sel], &o, err, err_len);
	pipe_clear(&p);
	if (rc != 0 || vc->decide(vc->ctx, o.rows, o.n) != 0) {
		rc = -1;
		goto out;
	}
	rc = -1;
	if (pipe_begin(&p, l, err, err_len) != 0)
		goto out;
	for (size_t i = 0; i < o.n; i++) {
		char last[24], failures[16], locked_at[24];
		const char *uv[6];

		if (!o.rows[i].dirty)
			continue;
		/* room for this row, the audit row and COMMIT; else what is queued goes first (one more trip) */
		if (!pipe_room(&p, 2 + 2 + 1)) {
			if (pipe_sync(&p, "verdict", err, err_len) != 0)
				goto out_pipe;
			pipe_clear(&p);
			if (pipe_begin(&p, l, err, err_len) != 0)
				goto out;
		}
		verdict_params(&o.rows[i].tok, last, failures, locked_at, uv);
		pipe_query(&p, Q_VERDICT_WRITE, uv, NULL, NULL, PGRES_COMMAND_OK);
	}
	if (vc->audit != NULL && vc->audit->event[0] != '\0') {
		char at[24];
		const char *av[10];

		audit_params(vc->audit, at, av);
		pipe_query(&p, Q_AUDIT_INSERT, av, NULL, NULL, PGRES_COMMAND_OK);
	}
	done = pipe_cmd(&p, "COMMIT");
	if (pipe_sync(&p, "verdict commit", err, err_len) != 0)
		goto out_pipe;
	/* a transaction that failed on the server reports its COMMIT as ROLLBACK */
	if (strcmp(PQcmdStatus(p.res[done]), "COMMIT") != 0) {
		SETERR("token store (PostgreSQL): verdict rolled back by the server");
		goto out_pipe;
	}
	rc = 0;
out_pipe:
	pipe_clear(&p);
out:
	rows_free(&o);
	return rc;
}

struct cas_ctx {
	const char		*user;
	const struct rows_out	*o;		/* the rows a list read, decided on */
	const ftm_audit_row_t	*audit;
	bool			again;		/* not written: decide again on the rows locked */
	bool			sent;		/* verdict_batch: in its batch's statement */
};

/* Q_VERDICT_CAS with the rows decide marked dirty. A statement the server refused (its rows changed,
 * a lock timeout, a trigger) wrote nothing: `again`. A connection lost on the way is a failed verdict:
 * the statement may have committed or not, so it is neither retried nor decided again. */
static int cas_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct cas_ctx *cc = c;
	const struct rows_out *o = cc->o;
	bool audited = cc->audit != NULL && cc->audit->event[0] != '\0';
	const char *values[20] = { cc->user };
	lit_t lits[8];
	size_t dirty = 0;
	char at[24] = "0", last[24], failures[16], locked_at[24];
	PGresult *res;
	int rc = -1;

	(void)pg;
	memset(lits, 0, sizeof(lits));
	for (size_t i = 0; i < o->n; i++) {
		const ftm_token_t *t = &o->rows[i].tok;
		char num[24];

		lit_add(&lits[0], t->serial);
		lit_add(&lits[1], o->ver[i]);
		if (!o->rows[i].dirty)
			continue;
		dirty++;
		lit_add(&lits[2], t->serial);
		lit_add(&lits[3], status_text(t->status));
		snprintf(num, sizeof(num), "%" PRId64, t->last_step);
		lit_add(&lits[4], num);
		snprintf(num, sizeof(num), "%u", t->failures);
		lit_add(&lits[5], num);
		lit_add(&lits[6], ftm_lock_reason_name(t->lock_reason));
		snprintf(num, sizeof(num), "%" PRId64, t->locked_at);
		lit_add(&lits[7], num);
	}
	for (int i = 0; i < 8; i++)
		if ((values[1 + i] = lit_end(&lits[i])) == NULL) {
			SETERR("token store: out of memory");
			goto out;
		}
	for (size_t i = 0; dirty == 1 && i < o->n; i++) {
		const ftm_token_t *t = &o->rows[i].tok;

		if (!o->rows[i].dirty)
			continue;
		snprintf(last, sizeof(last), "%" PRId64, t->last_step);
		snprintf(failures, sizeof(failures), "%u", t->failures);
		snprintf(locked_at, sizeof(locked_at), "%" PRId64, t->locked_at);
		values[3] = t->serial;
		values[4] = status_text(t->status);
		values[5] = last;
		values[6] = failures;
		values[7] = ftm_lock_reason_name(t->lock_reason);
		values[8] = locked_at;
	}
	if (audited) {
		audit_params(cc->audit, at, &values[9]);
	} else {
		values[9] = at;
		for (int i = 10; i < 19; i++)
			values[i] = "";
	}
	values[19] = audited ? "t" : "f";
	res = run(l, dirty == 1 ? Q_VERDICT_CAS1 : Q_VERDICT_CAS, 20, values, NULL, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		if (PQstatus(l->conn) != CONNECTION_OK) {
			res_ok(l->conn, res, PGRES_TUPLES_OK, "verdict", err, err_len);
			goto out;
		}
		PQclear(res);
		cc->again = true;
		rc = 0;
		goto out;
	}
	if (strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		cc->again = true;
		rc = 0;
	} else if (strtoull(PQgetvalue(res, 0, 1), NULL, 10) == dirty &&
		   strcmp(PQgetvalue(res, 0, 2), audited ? "1" : "0") == 0) {
		rc = 0;
	} else {
		SETERR("token store (PostgreSQL): verdict wrote %s of %zu rows", PQgetvalue(res, 0, 1), dirty);
	}
	PQclear(res);
out:
	for (int i = 0; i < 8; i++)
		free(lits[i].s);
	return rc;
}

/* ---- group commit: concurrent CAS verdicts of this process as one statement ----
 * verdict_run queues its Q_VERDICT_CAS verdict (struct cas_ctx) on pg->cas_batch; the leader sends the
 * batch as one Q_VERDICT_BATCH statement (autocommit: one synchronous commit) on one pooled connection
 * and wakes each verdict's thread (ftm_batch.h). A batch of one is its own Q_VERDICT_CAS/CAS1. */

/* Q_VERDICT_BATCH's arrays: the verdicts (i, user), the rows each was decided on (i, serial, version,
 * in the order of its list), the dirty rows (i and Q_VERDICT_WRITE's values) and the audit rows (i and
 * the row). */
enum { BA_I, BA_U, BA_W_FROM, BA_W_TO, BR_I, BR_S, BR_V, BW_S, BW_STATUS, BW_LAST, BW_FAILURES, BW_REASON,
       BW_LOCKED, BA_AUDIT_I, BA_AUDIT, BATCH_ARRAYS = BA_AUDIT + 10 };
_Static_assert(BATCH_ARRAYS == 24, "Q_VERDICT_BATCH has 24 parameters");

/* One verdict of a batch into its arrays; its dirty rows counted in *dirty, and in *written (the dirty
 * rows of the batch so far: this verdict's are elements written + 1 .. of the dirty rows' arrays). */
static void batch_entry(lit_t a[BATCH_ARRAYS], int i, const struct cas_ctx *cc, size_t *dirty, size_t *written)
{
	const struct rows_out *o = cc->o;
	char num[24], pos[24];

	snprintf(num, sizeof(num), "%d", i);
	lit_add(&a[BA_I], num);
	lit_add(&a[BA_U], cc->user);
	*dirty = 0;
	for (size_t r = 0; r < o->n; r++) {
		const ftm_token_t *t = &o->rows[r].tok;
		char last[24], failures[16], locked_at[24];
		const char *uv[6];

		lit_add(&a[BR_I], num);
		lit_add(&a[BR_S], t->serial);
		lit_add(&a[BR_V], o->ver[r]);
		if (!o->rows[r].dirty)
			continue;
		(*dirty)++;
		verdict_params(t, last, failures, locked_at, uv);
		lit_add(&a[BW_S], uv[5]);
		for (int k = 0; k < 5; k++)
			lit_add(&a[BW_STATUS + k], uv[k]);
	}
	snprintf(pos, sizeof(pos), "%zu", *written + 1);
	lit_add(&a[BA_W_FROM], pos);
	*written += *dirty;
	snprintf(pos, sizeof(pos), "%zu", *written);
	lit_add(&a[BA_W_TO], pos);
	if (cc->audit != NULL && cc->audit->event[0] != '\0') {
		char at[24];
		const char *av[10];

		audit_params(cc->audit, at, av);
		lit_add(&a[BA_AUDIT_I], num);
		for (int k = 0; k < 10; k++)
			lit_add(&a[BA_AUDIT + k], av[k]);
	}
}

struct batch_ctx {
	ftm_batch_job_t	*jobs;		/* the batch; the jobs sent have `sent` set in their cas_ctx */
	int		n;		/* sent */
};

/* Q_VERDICT_BATCH with the batch's verdicts. The statement is one autocommit: it answered, it
 * committed. The server refused it with the connection up: nothing of it was written, every verdict
 * is decided again on its rows locked (`again`). The connection lost on the way: the commit's outcome
 * is unknown, every verdict of it fails (-1 here: the flush fails them all). */
static int batch_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct batch_ctx *bc = c;
	lit_t a[BATCH_ARRAYS];
	size_t *dirty = calloc((size_t)bc->n, sizeof(*dirty));
	const char *values[BATCH_ARRAYS];
	PGresult *res;
	int rc = -1, i = 0, audited = 0;
	size_t written = 0;

	(void)pg;
	memset(a, 0, sizeof(a));
	for (ftm_batch_job_t *b = bc->jobs; b != NULL && dirty != NULL; b = b->next) {
		struct cas_ctx *cc = b->arg;

		if (!cc->sent)
			continue;
		batch_entry(a, i, cc, &dirty[i], &written);
		audited += cc->audit != NULL && cc->audit->event[0] != '\0';
		i++;
	}
	for (int k = 0; k < BATCH_ARRAYS && dirty != NULL; k++)
		if ((values[k] = lit_end(&a[k])) == NULL) {
			free(dirty);
			dirty = NULL;
		}
	if (dirty == NULL) {
		SETERR("token store: out of memory");
		goto out;
	}
	res = run(l, Q_VERDICT_BATCH, BATCH_ARRAYS, values, NULL, NULL);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		if (PQstatus(l->conn) != CONNECTION_OK) {
			res_ok(l->conn, res, PGRES_TUPLES_OK, "verdict batch", err, err_len);
			goto out;
		}
		PQclear(res);
		for (ftm_batch_job_t *b = bc->jobs; b != NULL; b = b->next)
			((struct cas_ctx *)b->arg)->again = true;
		rc = 0;
		goto out;
	}
	if (PQntuples(res) != bc->n) {	/* answered, so committed: not decided again */
		SETERR("token store (PostgreSQL): verdict batch answered %d of %d verdicts", PQntuples(res), bc->n);
		PQclear(res);
		goto out;
	}
	i = 0;
	for (ftm_batch_job_t *b = bc->jobs; b != NULL; b = b->next) {
		struct cas_ctx *cc = b->arg;

		b->rc = 0;
		if (!cc->sent)
			continue;
		if (strcmp(PQgetvalue(res, i, 1), "t") != 0) {
			cc->again = true;
			audited -= cc->audit != NULL && cc->audit->event[0] != '\0';
		} else if (strtoull(PQgetvalue(res, i, 2), NULL, 10) != dirty[i]) {
			b->rc = -1;
			if (b->err != NULL && b->err_len > 0)
				snprintf(b->err, b->err_len, "token store (PostgreSQL): verdict wrote %s of %zu rows",
					 PQgetvalue(res, i, 2), dirty[i]);
		}
		i++;
	}
	/* the audit rows of the verdicts written, all of them, or every verdict of the batch fails */
	if (strtol(PQgetvalue(res, 0, 3), NULL, 10) != audited) {
		SETERR("token store (PostgreSQL): verdict batch wrote %s of %d audit rows", PQgetvalue(res, 0, 3), audited);
		for (ftm_batch_job_t *b = bc->jobs; b != NULL; b = b->next)
			((struct cas_ctx *)b->arg)->again = false;
		PQclear(res);
		goto out;
	}
	PQclear(res);
	rc = 0;
out:
	free(dirty);
	for (int k = 0; k < BATCH_ARRAYS; k++)
		free(a[k].s);
	return rc;
}

/* The leader's flush of pg->cas_batch. Two verdicts of one user in one batch would both find the rows
 * unchanged: the second is not sent but decided again on the rows locked, after this batch committed. */
static void verdict_batch(void *owner, ftm_batch_job_t *batch)
{
	pg_t *pg = owner;
	struct batch_ctx bc = { batch, 0 };
	char err[FTM_MSG_MAX] = "";

	for (ftm_batch_job_t *b = batch; b != NULL; b = b->next) {
		struct cas_ctx *cc = b->arg;

		b->rc = 0;
		cc->sent = true;
		for (ftm_batch_job_t *e = batch; e != b && cc->sent; e = e->next)
			if (((struct cas_ctx *)e->arg)->sent && strcmp(((struct cas_ctx *)e->arg)->user, cc->user) == 0)
				cc->sent = false;
		cc->again = !cc->sent;
		bc.n += cc->sent;
	}
	if (bc.n == 1) {
		for (ftm_batch_job_t *b = batch; b != NULL; b = b->next)
			if (((struct cas_ctx *)b->arg)->sent)
				b->rc = with_link(pg, cas_on, b->arg, b->err, b->err_len);
		return;
	}
	if (with_link(pg, batch_on, &bc, err, sizeof(err)) == 0)
		return;
	for (ftm_batch_job_t *b = batch; b != NULL; b = b->next) {
		struct cas_ctx *cc = b->arg;

		if (!cc->sent)
			continue;	/* not sent: still decided again on its rows locked */
		cc->again = false;
		b->rc = -1;
		if (b->err != NULL && b->err_len > 0)
			snprintf(b->err, b->err_len, "%s", err);
	}
}

/* A peek or a write verdict. After a list of the user in this thread (a login's split), both decide on
 * the rows it read: the peek reads nothing, the write is one statement (Q_VERDICT_CAS) that writes
 * only if those rows are still the user's rows, unchanged; if they changed, the verdict is decided
 * again on the rows locked (verdict_on). Without a list before, both read the rows first. */
static int verdict_run(pg_t *pg, const char *user, bool write, ftm_decide_fn decide, void *ctx,
		       const ftm_audit_row_t *audit, char *err, size_t err_len)
{
	struct verdict_ctx vc = { user, write, decide, ctx, audit };
	struct rows_out o = { 0 };
	struct cas_ctx cc;
	int rc;

	/* A peek decides on the rows of the list just before it; with none (a login's split that counts
	 * the user's tokens from its peek) it reads them with their versions and keeps them like a list,
	 * so that the write verdict of the same login decides in one statement too. */
	if (!write) {
		if (!listed_take(pg, user, true, &o)) {
			struct rows_out r;
			listed_t *k = strlen(user) < sizeof(k->user) ? listed_get(true) : NULL;

			if (read_user(pg, user, &r, err, err_len) != 0)
				return -1;
			if (k == NULL) {
				o = r;
			} else {
				listed_keep(pg, k, user, &r);
				if (!listed_take(pg, user, true, &o))	/* no memory for a copy */
					return with_link(pg, verdict_on, &vc, err, err_len);
			}
		}
		rc = decide(ctx, o.rows, o.n) != 0 ? -1 : 0;
		rows_free(&o);
		return rc;
	}
	/* A write verdict without a list before it (ftmpushctl verify, a verdict in another thread than
	 * its split) reads the rows with their versions first, batched with the other threads' reads, and
	 * goes the same group-committed way: one statement per batch instead of a transaction per verdict
	 * on a connection of its own. Rows changed in between (another node, another thread) are decided
	 * again under FOR UPDATE, as after a list. */
	if (!listed_take(pg, user, false, &o) && read_user(pg, user, &o, err, err_len) != 0)
		return -1;
	cc = (struct cas_ctx){ user, &o, audit, false, false };
	if (decide(ctx, o.rows, o.n) != 0) {
		rows_free(&o);
		return -1;
	}
	listed_drop();
	rc = o.n == 0 || o.ver != NULL ? ftm_batch_run(&pg->cas_batch, &cc, err, err_len) : 0;
	cc.again = cc.again || (o.n > 0 && o.ver == NULL);
	rows_free(&o);
	if (rc != 0 || !cc.again)
		return rc;
	return with_link(pg, verdict_on, &vc, err, err_len);
}

static int pg_verdict(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
		      char *err, size_t err_len)
{
	return verdict_run(be, user, write, decide, ctx, NULL, err, err_len);
}

static int pg_verdict_audited(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
			      const ftm_audit_row_t *audit, char *err, size_t err_len)
{
	return verdict_run(be, user, write, decide, ctx, audit, err, err_len);
}

/* ---- code-challenge States ---- */

struct state_ctx {
	const char	*id, *user, *client;
	int64_t		expires, now;
	char		*user_out, *client_out;
	size_t		user_len, client_len;
};

/* Keep the newest `cap` States of one user (or client), the one just issued among them. */
static int state_cap(pg_link_t *l, int which, const char *who, const char *id, unsigned cap,
		     char *err, size_t err_len)
{
	char keep[16];
	const char *values[3] = { who, id, keep };
	PGresult *res;

	snprintf(keep, sizeof(keep), "%u", cap - 1);
	res = run(l, which, 3, values, NULL, NULL);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "state", err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

static int state_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct state_ctx *sc = c;
	char now[24], expires[24];
	const char *purge[1] = { now };
	const char *values[4] = { sc->id, sc->user, sc->client, expires };
	PGresult *res;

	snprintf(now, sizeof(now), "%" PRId64, sc->now);
	snprintf(expires, sizeof(expires), "%" PRId64, sc->expires);
	res = run(l, Q_STATE_PURGE, 1, purge, NULL, NULL);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "state", err, err_len) != 0)
		return first_failed(l, -1);
	PQclear(res);
	res = run(l, Q_STATE_PUT, 4, values, NULL, NULL);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "state", err, err_len) != 0)
		return -1;
	PQclear(res);
	if (state_cap(l, Q_STATE_CAP_USER, sc->user, sc->id, FTM_STATES_PER_USER, err, err_len) != 0 ||
	    state_cap(l, Q_STATE_CAP_CLIENT, sc->client, sc->id, FTM_STATES_PER_CLIENT, err, err_len) != 0)
		return -1;
	return 0;
}

static int pg_state_put(void *be, const char *id, const char *user, const char *client, int64_t expires,
			int64_t now, char *err, size_t err_len)
{
	struct state_ctx sc = { .id = id, .user = user, .client = client, .expires = expires, .now = now };

	return with_link(be, state_put_on, &sc, err, err_len);
}

static int state_take_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct state_ctx *sc = c;
	const char *values[1] = { sc->id };
	PGresult *res = run(l, Q_STATE_TAKE, 1, values, NULL, NULL);
	int rc = 1;

	/* not retried on a stale connection: the DELETE may have run, and a State is single use */
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "state", err, err_len) != 0)
		return -1;
	if (PQntuples(res) == 1) {
		snprintf(sc->user_out, sc->user_len, "%s", PQgetvalue(res, 0, 0));
		snprintf(sc->client_out, sc->client_len, "%s", PQgetvalue(res, 0, 1));
		rc = parse_i64(PQgetvalue(res, 0, 2), &sc->expires) == 0 ? 0 : -1;
		if (rc != 0)
			SETERR("token store: damaged challenge state");
	}
	PQclear(res);
	return rc;
}

static int pg_state_take(void *be, const char *id, char *user, size_t user_len, char *client, size_t client_len,
			 int64_t *expires, char *err, size_t err_len)
{
	struct state_ctx sc = { .id = id, .user_out = user, .user_len = user_len,
				.client_out = client, .client_len = client_len };
	int rc = with_link(be, state_take_on, &sc, err, err_len);

	*expires = sc.expires;
	return rc;
}

/* ---- the verdict policy ---- */

struct settings_ctx {
	int			(*cb)(void *ctx, const char *name, const char *value);
	void			*ctx;
	const char *const	*names, *const *values;
	size_t			n;
	int64_t			changed;
	int			q;
};

static int settings_get_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct settings_ctx *sc = c;
	PGresult *res = run(l, Q_SETTINGS_GET, 0, NULL, NULL, NULL);

	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "settings", err, err_len) != 0)
		return first_failed(l, -1);
	for (int r = 0; r < PQntuples(res); r++)
		if (sc->cb(sc->ctx, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1)) != 0)
			break;
	PQclear(res);
	return 0;
}

static int pg_settings_get(void *be, int (*cb)(void *ctx, const char *name, const char *value), void *ctx,
			   char *err, size_t err_len)
{
	struct settings_ctx sc = { .cb = cb, .ctx = ctx };

	return with_link(be, settings_get_on, &sc, err, err_len);
}

/* One transaction: the seed of a new store's defaults is all or nothing. */
static int settings_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct settings_ctx *sc = c;
	char changed[24];

	snprintf(changed, sizeof(changed), "%" PRId64, sc->changed);
	if (exec_cmd(l->conn, "BEGIN", "settings", err, err_len) != 0)
		return first_failed(l, -1);
	for (size_t i = 0; i < sc->n; i++) {
		const char *values[3] = { sc->names[i], sc->values[i], changed };
		PGresult *res = run(l, sc->q, 3, values, NULL, NULL);

		if (res_ok(l->conn, res, PGRES_COMMAND_OK, "settings", err, err_len) != 0)
			return -1;
		PQclear(res);
	}
	return exec_cmd(l->conn, "COMMIT", "settings", err, err_len);
}

static int pg_setting_put(void *be, const char *name, const char *value, int64_t changed, char *err, size_t err_len)
{
	struct settings_ctx sc = { .names = &name, .values = &value, .n = 1, .changed = changed, .q = Q_SETTING_PUT };

	return with_link(be, settings_put_on, &sc, err, err_len);
}

static int pg_settings_seed(void *be, const char *const *names, const char *const *values, size_t n,
			    int64_t changed, char *err, size_t err_len)
{
	struct settings_ctx sc = { .names = names, .values = values, .n = n, .changed = changed, .q = Q_SETTING_SEED };

	return with_link(be, settings_put_on, &sc, err, err_len);
}

/* ---- recovery codes: rare, so run unprepared (PQexecParams) ---- */

struct recovery_ctx {
	const char			*user;
	const ftm_recovery_row_t	*codes;		/* replace */
	size_t				n;
	bool				write;		/* verdict */
	ftm_recovery_decide_fn		decide;
	void				*ctx;
	pg_link_t			*l;
	char				*err;
	size_t				err_len;
};

static int recovery_replace_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct recovery_ctx *rc = c;
	const char *del[1] = { rc->user };
	PGresult *res;

	(void)pg;
	if (exec_cmd(l->conn, "BEGIN", "recovery codes", err, err_len) != 0)
		return first_failed(l, -1);
	res = PQexecParams(l->conn, "DELETE FROM ftm_recovery_codes WHERE username = $1", 1, NULL, del, NULL, NULL, 0);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "recovery codes", err, err_len) != 0)
		return -1;
	PQclear(res);
	for (size_t i = 0; i < rc->n; i++) {
		char created[24], used[24];
		const char *values[5] = { (const char *)rc->codes[i].salt, rc->user, (const char *)rc->codes[i].hash,
					  created, used };
		const int lengths[5] = { FTM_RECOVERY_SALT_LEN, 0, FTM_RECOVERY_HASH_LEN, 0, 0 };
		const int formats[5] = { 1, 0, 1, 0, 0 };

		snprintf(created, sizeof(created), "%" PRId64, rc->codes[i].created);
		snprintf(used, sizeof(used), "%" PRId64, rc->codes[i].used);
		res = PQexecParams(l->conn, "INSERT INTO ftm_recovery_codes (salt, username, hash, created, used)"
				   " VALUES ($1, $2, $3, $4, $5)", 5, NULL, values, lengths, formats, 0);
		if (res_ok(l->conn, res, PGRES_COMMAND_OK, "recovery codes", err, err_len) != 0)
			return -1;
		PQclear(res);
	}
	return exec_cmd(l->conn, "COMMIT", "recovery codes", err, err_len);
}

static int pg_recovery_replace(void *be, const char *user, const ftm_recovery_row_t *codes, size_t n,
			       char *err, size_t err_len)
{
	struct recovery_ctx rc = { .user = user, .codes = codes, .n = n };

	return with_link(be, recovery_replace_on, &rc, err, err_len);
}

/* A bytea column of exactly len bytes into out: 0, or -1. */
static int bytea_exact(PGresult *res, int r, int col, uint8_t *out, size_t len)
{
	size_t blen = 0;
	unsigned char *blob = PQunescapeBytea((const unsigned char *)PQgetvalue(res, r, col), &blen);
	int rc = blob != NULL && blen == len ? 0 : -1;

	if (rc == 0)
		memcpy(out, blob, len);
	PQfreemem(blob);
	return rc;
}

/* The verdict's decide step, run by verdict_on after it has the user's token rows (under FOR UPDATE when
 * writing): the user's codes read in the same transaction, decide, the used codes written back. */
static int recovery_decide(void *c, ftm_store_row_t *rows, size_t n)
{
	struct recovery_ctx *rc = c;
	char *err = rc->err;
	size_t err_len = rc->err_len;
	const char *values[1] = { rc->user };
	ftm_recovery_row_t *codes = NULL;
	PGresult *res;
	int m, ret = -1;

	res = PQexecParams(rc->l->conn, "SELECT salt, hash, created, used FROM ftm_recovery_codes WHERE username = $1"
			   " ORDER BY created, salt", 1, NULL, values, NULL, NULL, 0);
	if (res_ok(rc->l->conn, res, PGRES_TUPLES_OK, "recovery codes", err, err_len) != 0)
		return -1;
	m = PQntuples(res);
	if (m > 0 && (codes = calloc((size_t)m, sizeof(*codes))) == NULL) {
		SETERR("token store: out of memory");
		goto out;
	}
	for (int r = 0; r < m; r++) {
		if (bytea_exact(res, r, 0, codes[r].salt, FTM_RECOVERY_SALT_LEN) != 0 ||
		    bytea_exact(res, r, 1, codes[r].hash, FTM_RECOVERY_HASH_LEN) != 0 ||
		    parse_i64(PQgetvalue(res, r, 2), &codes[r].created) != 0 ||
		    parse_i64(PQgetvalue(res, r, 3), &codes[r].used) != 0) {
			SETERR("token store: damaged recovery code of user %s", rc->user);
			goto out;
		}
	}
	PQclear(res);
	res = NULL;
	if (rc->decide(rc->ctx, rows, n, codes, (size_t)m) != 0)
		goto out;
	for (int r = 0; rc->write && r < m; r++) {
		char used[24];
		const char *uv[2] = { used, (const char *)codes[r].salt };
		const int lengths[2] = { 0, FTM_RECOVERY_SALT_LEN };
		const int formats[2] = { 0, 1 };

		if (!codes[r].dirty)
			continue;
		snprintf(used, sizeof(used), "%" PRId64, codes[r].used);
		res = PQexecParams(rc->l->conn, "UPDATE ftm_recovery_codes SET used = $1 WHERE salt = $2", 2, NULL, uv,
				   lengths, formats, 0);
		if (res_ok(rc->l->conn, res, PGRES_COMMAND_OK, "recovery codes", err, err_len) != 0) {
			res = NULL;
			goto out;
		}
		PQclear(res);
		res = NULL;
	}
	ret = 0;
out:
	PQclear(res);
	if (codes != NULL) {
		ftm_memzero(codes, (size_t)m * sizeof(*codes));
		free(codes);
	}
	return ret;
}

static int recovery_verdict_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct recovery_ctx *rc = c;
	struct verdict_ctx vc = { rc->user, rc->write, recovery_decide, rc, NULL };

	rc->l = l;
	rc->err = err;
	rc->err_len = err_len;
	return verdict_on(pg, l, &vc, err, err_len);
}

static int pg_recovery_verdict(void *be, const char *user, bool write, ftm_recovery_decide_fn decide, void *ctx,
			       char *err, size_t err_len)
{
	struct recovery_ctx rc = { .user = user, .write = write, .decide = decide, .ctx = ctx };

	return with_link(be, recovery_verdict_on, &rc, err, err_len);
}

/* ---- the audit trail and debug on demand ---- */

/* The audit row as Q_AUDIT_INSERT's parameters (at: the buffer its time is written in). */
static void audit_params(const ftm_audit_row_t *a, char at[24], const char *values[10])
{
	snprintf(at, 24, "%" PRId64, a->at);
	values[0] = at;
	values[1] = a->event;
	values[2] = a->result;
	values[3] = a->user;
	values[4] = a->serial;
	values[5] = a->client;
	values[6] = a->nas;
	values[7] = a->frontend;
	values[8] = a->node;
	values[9] = a->reason;
}

static int audit_insert(pg_link_t *l, const ftm_audit_row_t *a, char *err, size_t err_len)
{
	char at[24];
	const char *values[10];
	PGresult *res;

	audit_params(a, at, values);
	res = run(l, Q_AUDIT_INSERT, 10, values, NULL, NULL);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "audit", err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

static int audit_append_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	(void)pg;
	/* not retried on a stale connection: the row may have been written */
	return audit_insert(l, c, err, err_len);
}

static int pg_audit_append(void *be, const ftm_audit_row_t *row, char *err, size_t err_len)
{
	return with_link(be, audit_append_on, (void *)row, err, err_len);
}

/* The audit listing: the rows matching the filter in trail order; with a limit, the newest `limit` of
 * them, picked in an inner query. */
#define AUDIT_COLS "id, at, event, result, username, serial, client, nas, frontend, node, reason"
#define AUDIT_WHERE "($1::text IS NULL OR username = $1) AND ($2::text IS NULL OR result = $2) AND at >= $3::bigint"

struct audit_list_ctx {
	const ftm_audit_filter_t	*f;
	ftm_audit_cb			cb;
	void				*ctx;
	ftm_audit_row_t			row;	/* the row being handed on */
};

static int audit_row(void *c, PGresult *res, int r, char *err, size_t err_len)
{
	struct audit_list_ctx *ac = c;
	ftm_audit_row_t *row = &ac->row;
	char *const fields[] = { row->event, row->result, row->user, row->serial, row->client, row->nas,
				 row->frontend, row->node, row->reason };
	const size_t sizes[] = { sizeof(row->event), sizeof(row->result), sizeof(row->user), sizeof(row->serial),
				 sizeof(row->client), sizeof(row->nas), sizeof(row->frontend), sizeof(row->node),
				 sizeof(row->reason) };

	memset(row, 0, sizeof(*row));
	if (parse_i64(PQgetvalue(res, r, 0), &row->id) != 0 || parse_i64(PQgetvalue(res, r, 1), &row->at) != 0) {
		SETERR("token store: damaged audit row");
		return -1;
	}
	for (int i = 0; i < 9; i++)
		snprintf(fields[i], sizes[i], "%s", PQgetvalue(res, r, i + 2));
	return ac->cb(ac->ctx, row) != 0;
}

static int audit_list_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct audit_list_ctx *ac = c;
	char since[24], limit[24];
	const char *values[4] = { ac->f->user, ac->f->result, since, limit };

	(void)pg;
	snprintf(since, sizeof(since), "%" PRId64, ac->f->since);
	snprintf(limit, sizeof(limit), "%u", ac->f->limit);
	if (ac->f->limit == 0)
		return cursor_stream(l, "SELECT " AUDIT_COLS " FROM ftm_audit WHERE " AUDIT_WHERE " ORDER BY id", 3, values,
				     "audit", audit_row, ac, err, err_len);
	return cursor_stream(l, "SELECT " AUDIT_COLS " FROM (SELECT * FROM ftm_audit WHERE " AUDIT_WHERE
			     " ORDER BY id DESC LIMIT $4::bigint) AS t ORDER BY id", 4, values,
			     "audit", audit_row, ac, err, err_len);
}

/* Streamed (cursor_stream): one snapshot, handed on as it is read; cb runs with a connection held. */
static int pg_audit_list(void *be, const ftm_audit_filter_t *f, ftm_audit_cb cb, void *ctx, char *err, size_t err_len)
{
	struct audit_list_ctx ac = { .f = f, .cb = cb, .ctx = ctx };

	return with_link(be, audit_list_on, &ac, err, err_len);
}

struct pg_cmd_ctx {
	const char	*sql;
	int		n;
	const char	*values[3];
	unsigned long	changed;
};

/* One statement without result rows; changed: the rows it touched. */
static int cmd_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct pg_cmd_ctx *cc = c;
	PGresult *res = PQexecParams(l->conn, cc->sql, cc->n, NULL, cc->values, NULL, NULL, 0);

	(void)pg;
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "audit or debug switch", err, err_len) != 0)
		return first_failed(l, -1);
	cc->changed = strtoul(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

static int pg_audit_prune(void *be, int64_t before, unsigned long *removed, char *err, size_t err_len)
{
	char b[24];
	struct pg_cmd_ctx cc = { .sql = "DELETE FROM ftm_audit WHERE at < $1::bigint", .n = 1, .values = { b } };
	int rc;

	snprintf(b, sizeof(b), "%" PRId64, before);
	rc = with_link(be, cmd_on, &cc, err, err_len);
	if (rc == 0 && removed != NULL)
		*removed = cc.changed;
	return rc;
}

static int pg_debug_put(void *be, const char *user, int64_t expires, int64_t now, char *err, size_t err_len)
{
	char e[24], n[24];
	struct pg_cmd_ctx purge = { .sql = "DELETE FROM ftm_debug WHERE expires <= $1::bigint", .n = 1, .values = { n } };
	struct pg_cmd_ctx put = { .sql = "INSERT INTO ftm_debug (username, expires) VALUES ($1, $2::bigint)"
					 " ON CONFLICT (username) DO UPDATE SET expires = EXCLUDED.expires",
				  .n = 2, .values = { user, e } };

	snprintf(e, sizeof(e), "%" PRId64, expires);
	snprintf(n, sizeof(n), "%" PRId64, now);
	if (with_link(be, cmd_on, &purge, err, err_len) != 0)
		return -1;
	return with_link(be, cmd_on, &put, err, err_len);
}

static int pg_debug_clear(void *be, const char *user, char *err, size_t err_len)
{
	struct pg_cmd_ctx cc = { .sql = user != NULL ? "DELETE FROM ftm_debug WHERE username = $1" : "DELETE FROM ftm_debug",
				 .n = user != NULL ? 1 : 0, .values = { user } };

	if (with_link(be, cmd_on, &cc, err, err_len) != 0)
		return -1;
	return cc.changed > 0 ? 0 : 1;
}

struct debug_list_ctx {
	int64_t		now;
	PGresult	*res;
};

static int debug_list_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct debug_list_ctx *dc = c;
	char n[24];
	const char *values[1] = { n };
	PGresult *res;

	(void)pg;
	snprintf(n, sizeof(n), "%" PRId64, dc->now);
	res = PQexecParams(l->conn, "SELECT username, expires FROM ftm_debug WHERE expires > $1::bigint ORDER BY username",
			   1, NULL, values, NULL, NULL, 0);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "debug switch", err, err_len) != 0)
		return first_failed(l, -1);
	dc->res = res;
	return 0;
}

static int pg_debug_list(void *be, int64_t now, ftm_debug_cb cb, void *ctx, char *err, size_t err_len)
{
	struct debug_list_ctx dc = { .now = now };
	int rc = with_link(be, debug_list_on, &dc, err, err_len);

	for (int r = 0; rc == 0 && r < PQntuples(dc.res); r++) {
		int64_t expires;

		if (parse_i64(PQgetvalue(dc.res, r, 1), &expires) != 0) {
			SETERR("token store: damaged debug switch");
			rc = -1;
			break;
		}
		if (cb(ctx, PQgetvalue(dc.res, r, 0), expires) != 0)
			break;
	}
	PQclear(dc.res);
	return rc;
}

/* ---- pending pushes and number-matching States ----
 * Not prepared (a push is rare next to a code verdict): PQexecParams, text in and out. */

#define PUSH_COLS "id, username, serial, client, cap0, cap1, cap2, approve_cap, number, gateway, expires, verdict, reason"
#define PUSH_CHANNEL "ftm_push"

static PGresult *pexec(pg_link_t *l, const char *sql, int n, const char *const *values)
{
	return PQexecParams(l->conn, sql, n, NULL, values, NULL, NULL, 0);
}

static int pexec_cmd(pg_link_t *l, const char *sql, int n, const char *const *values, ExecStatusType want,
		     char *err, size_t err_len)
{
	PGresult *res = pexec(l, sql, n, values);

	if (res_ok(l->conn, res, want, "push", err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

static ftm_push_verdict_t verdict_of(const char *text)
{
	ftm_push_verdict_t v = FTM_PUSH_FAILED;	/* anything unexpected reads as a failure */

	if (strcmp(text, "pending") == 0)
		return FTM_PUSH_PENDING;
	if (ftm_push_verdict_parse(text, &v) != 0)
		return FTM_PUSH_FAILED;
	return v;
}

static int push_from_res(PGresult *res, int r, ftm_push_row_t *row)
{
	int64_t approve, expires;

	memset(row, 0, sizeof(*row));
	snprintf(row->id, sizeof(row->id), "%s", PQgetvalue(res, r, 0));
	snprintf(row->user, sizeof(row->user), "%s", PQgetvalue(res, r, 1));
	snprintf(row->serial, sizeof(row->serial), "%s", PQgetvalue(res, r, 2));
	snprintf(row->client_hash, sizeof(row->client_hash), "%s", PQgetvalue(res, r, 3));
	for (int i = 0; i < FTM_PUSH_ROW_CAPS; i++)
		snprintf(row->caps[i], sizeof(row->caps[i]), "%s", PQgetvalue(res, r, 4 + i));
	if (parse_i64(PQgetvalue(res, r, 7), &approve) != 0 || parse_i64(PQgetvalue(res, r, 10), &expires) != 0 ||
	    approve < 0 || approve >= FTM_PUSH_ROW_CAPS)
		return -1;
	row->approve_cap = (unsigned)approve;
	snprintf(row->number, sizeof(row->number), "%s", PQgetvalue(res, r, 8));
	row->gateway = strcmp(PQgetvalue(res, r, 9), "t") == 0;
	row->expires = expires;
	row->verdict = verdict_of(PQgetvalue(res, r, 11));
	snprintf(row->reason, sizeof(row->reason), "%s", PQgetvalue(res, r, 12));
	return 0;
}

/* COMMIT, and make sure the server did not turn it into a ROLLBACK. */
static int commit(pg_link_t *l, const char *what, char *err, size_t err_len)
{
	PGresult *res = PQexec(l->conn, "COMMIT");

	if (res_ok(l->conn, res, PGRES_COMMAND_OK, what, err, err_len) != 0)
		return -1;
	if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		SETERR("token store (PostgreSQL): %s rolled back by the server", what);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

struct push_ctx {
	const ftm_push_row_t	*row;
	int64_t			now;
	ftm_push_row_t		*out;
	ftm_push_key_t		by;
	const char		*key;
	ftm_push_decide_fn	decide;
	void			*ctx;
	bool			found;
};

/* The user's pushes serialize on one advisory lock (taken in the transaction, released at its end):
 * two nodes asked at once for one user give one pending push, the other joins or is refused. */
static int push_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct push_ctx *pc = c;
	const ftm_push_row_t *r = pc->row;
	char now[24], purge[24], approve[8], expires[24];
	const char *lock[1] = { r->user };
	const char *pv[1] = { purge };
	const char *pq[2] = { r->user, now };
	const char *pi[13] = { r->id, r->user, r->serial, r->client_hash, r->caps[0], r->caps[1], r->caps[2],
			       approve, r->number, r->gateway ? "t" : "f", expires, "pending", "" };
	PGresult *res;
	int rc = -1;

	(void)pg;
	snprintf(now, sizeof(now), "%" PRId64, pc->now);
	snprintf(purge, sizeof(purge), "%" PRId64, pc->now - FTM_PUSH_RETAIN_ROW);
	snprintf(approve, sizeof(approve), "%u", r->approve_cap);
	snprintf(expires, sizeof(expires), "%" PRId64, r->expires);
	if (exec_cmd(l->conn, "BEGIN", "push", err, err_len) != 0)
		return first_failed(l, -1);
	if (pexec_cmd(l, "SELECT pg_advisory_xact_lock(hashtext('ftmpush push ' || $1))", 1, lock,
		      PGRES_TUPLES_OK, err, err_len) != 0 ||
	    pexec_cmd(l, "DELETE FROM ftm_pushes WHERE expires < $1::bigint", 1, pv, PGRES_COMMAND_OK,
		      err, err_len) != 0)
		goto out;
	res = pexec(l, "SELECT " PUSH_COLS " FROM ftm_pushes WHERE username = $1 AND verdict = 'pending'"
		    " AND expires > $2::bigint ORDER BY expires LIMIT 1", 2, pq);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "push", err, err_len) != 0)
		goto out;
	if (PQntuples(res) == 1) {
		pc->found = true;
		if (push_from_res(res, 0, pc->out) != 0) {
			SETERR("token store: damaged pending push");
			PQclear(res);
			goto out;
		}
	}
	PQclear(res);
	if (!pc->found && pexec_cmd(l, "INSERT INTO ftm_pushes (" PUSH_COLS ") VALUES ($1,$2,$3,$4,$5,$6,$7,"
				    "$8::integer,$9,$10::boolean,$11::bigint,$12,$13)", 13, pi, PGRES_COMMAND_OK,
				    err, err_len) != 0)
		goto out;
	rc = commit(l, "push", err, err_len);
out:
	rollback(l->conn);
	return rc;
}

static int pg_push_put(void *be, const ftm_push_row_t *row, int64_t now, ftm_push_row_t *pending,
		       char *err, size_t err_len)
{
	struct push_ctx pc = { .row = row, .now = now, .out = pending };

	if (with_link(be, push_put_on, &pc, err, err_len) != 0)
		return -1;
	return pc.found ? 1 : 0;
}

static int push_get_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct push_ctx *pc = c;
	const char *values[1] = { pc->key };
	PGresult *res = pexec(l, "SELECT " PUSH_COLS " FROM ftm_pushes WHERE id = $1", 1, values);
	int rc = 0;

	(void)pg;
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "push", err, err_len) != 0)
		return first_failed(l, -1);
	if (PQntuples(res) == 1) {
		pc->found = true;
		if (push_from_res(res, 0, pc->out) != 0) {
			SETERR("token store: damaged pending push");
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

static int pg_push_get(void *be, const char *id, ftm_push_row_t *out, char *err, size_t err_len)
{
	struct push_ctx pc = { .key = id, .out = out };

	if (with_link(be, push_get_on, &pc, err, err_len) != 0)
		return -1;
	return pc.found ? 0 : 1;
}

/* The row locked (FOR UPDATE: one callback at a time, on every node), decided, written, and announced:
 * NOTIFY is delivered at COMMIT, so a listener that hears it reads the verdict. */
static int push_decide_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct push_ctx *pc = c;
	const char *key[1] = { pc->key };
	ftm_push_row_t row;
	PGresult *res;
	int rc = -1;

	(void)pg;
	if (exec_cmd(l->conn, "BEGIN", "push", err, err_len) != 0)
		return first_failed(l, -1);
	res = pexec(l, pc->by == FTM_PUSH_BY_ID ? "SELECT " PUSH_COLS " FROM ftm_pushes WHERE id = $1 FOR UPDATE"
		    : "SELECT " PUSH_COLS " FROM ftm_pushes WHERE cap0 = $1 OR cap1 = $1 OR cap2 = $1 FOR UPDATE",
		    1, key);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "push", err, err_len) != 0)
		goto out;
	if (PQntuples(res) != 1) {
		PQclear(res);
		rc = 0;
		goto out;
	}
	if (push_from_res(res, 0, &row) != 0) {
		SETERR("token store: damaged pending push");
		PQclear(res);
		goto out;
	}
	PQclear(res);
	pc->found = true;
	if (pc->decide(pc->ctx, &row) != 0)
		goto out;
	if (row.dirty) {
		const char *uv[3] = { ftm_push_verdict_name(row.verdict), row.reason, row.id };
		const char *nv[1] = { row.id };

		if (pexec_cmd(l, "UPDATE ftm_pushes SET verdict = $1, reason = $2 WHERE id = $3", 3, uv,
			      PGRES_COMMAND_OK, err, err_len) != 0 ||
		    pexec_cmd(l, "SELECT pg_notify('" PUSH_CHANNEL "', $1)", 1, nv, PGRES_TUPLES_OK, err, err_len) != 0)
			goto out;
	}
	rc = commit(l, "push", err, err_len);
out:
	rollback(l->conn);
	return rc;
}

static int pg_push_decide(void *be, ftm_push_key_t by, const char *key, ftm_push_decide_fn decide, void *ctx,
			  char *err, size_t err_len)
{
	struct push_ctx pc = { .by = by, .key = key, .decide = decide, .ctx = ctx };

	if (with_link(be, push_decide_on, &pc, err, err_len) != 0)
		return -1;
	return pc.found ? 0 : 1;
}

/* The LISTEN connection: its own, outside the pool, on its own thread. Lost (a restart, a failover),
 * it reconnects with the pool's backoff and then says "re-read everything" (cb with NULL): what was
 * decided meanwhile was never heard. */
static void *watch_main(void *arg)
{
	pg_t *pg = arg;
	PGconn *c = NULL;
	unsigned backoff = BACKOFF_MIN_MS;
	bool lost_logged = false;

	for (;;) {
		struct pollfd fds[2] = { { .fd = pg->watch_pipe[0], .events = POLLIN }, { .fd = -1, .events = POLLIN } };
		char err[256] = "";
		PGnotify *n;

		if (c == NULL) {
			c = connect_db(pg->uri, err, sizeof(err));
			if (c != NULL && exec_cmd(c, "LISTEN " PUSH_CHANNEL, "listen", err, sizeof(err)) != 0) {
				PQfinish(c);
				c = NULL;
			}
			if (c == NULL) {
				if (!lost_logged)
					ftm_log(pg->log, FTM_LOG_WARN, "pending pushes: no LISTEN connection (%s); "
						"re-reading rows until it is back", err);
				lost_logged = true;
				if (poll(fds, 1, (int)backoff) > 0)
					break;
				backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			if (lost_logged)
				ftm_log(pg->log, FTM_LOG_INFO, "pending pushes: LISTEN connection back");
			lost_logged = false;
			backoff = BACKOFF_MIN_MS;
			pg->watch_cb(pg->watch_ctx, NULL);
		}
		fds[1].fd = PQsocket(c);
		if (poll(fds, 2, 1000) < 0 && errno != EINTR)
			break;
		if (fds[0].revents != 0)
			break;
		if (fds[1].revents != 0 && PQconsumeInput(c) == 0) {
			PQfinish(c);
			c = NULL;
			pg->watch_cb(pg->watch_ctx, NULL);
			continue;
		}
		while ((n = PQnotifies(c)) != NULL) {
			pg->watch_cb(pg->watch_ctx, n->extra);
			PQfreemem(n);
		}
	}
	if (c != NULL)
		PQfinish(c);
	return NULL;
}

static int pg_push_watch(void *be, ftm_push_watch_fn cb, void *ctx, char *err, size_t err_len)
{
	pg_t *pg = be;

	if (pg->watching) {
		SETERR("pending pushes: already watched");
		return -1;
	}
	if (pipe2(pg->watch_pipe, O_CLOEXEC) != 0) {
		SETERR("pending pushes: pipe: %s", strerror(errno));
		return -1;
	}
	pg->watch_cb = cb;
	pg->watch_ctx = ctx;
	if (pthread_create(&pg->watch_thread, NULL, watch_main, pg) != 0) {
		close(pg->watch_pipe[0]);
		close(pg->watch_pipe[1]);
		SETERR("pending pushes: no thread for LISTEN");
		return -1;
	}
	pg->watching = true;
	return 0;
}

static void pg_push_unwatch(void *be)
{
	pg_t *pg = be;

	if (pg == NULL || !pg->watching)
		return;
	if (write(pg->watch_pipe[1], "x", 1) != 1)
		ftm_log(pg->log, FTM_LOG_WARN, "pending pushes: cannot stop the LISTEN thread cleanly");
	pthread_join(pg->watch_thread, NULL);
	close(pg->watch_pipe[0]);
	close(pg->watch_pipe[1]);
	pg->watching = false;
}

struct number_ctx {
	const char	*id, *tx, *user, *client;
	int64_t		expires, now;
	char		*tx_out, *user_out, *client_out;
	size_t		user_len, client_len;
	bool		found;
};

static int number_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct number_ctx *nc = c;
	char now[24], expires[24], keep_user[16], keep_client[16];
	const char *pv[1] = { now };
	const char *iv[5] = { nc->id, nc->tx, nc->user, nc->client, expires };
	const char *uv[3] = { nc->user, nc->id, keep_user };
	const char *cv[3] = { nc->client, nc->id, keep_client };

	(void)pg;
	snprintf(now, sizeof(now), "%" PRId64, nc->now);
	snprintf(expires, sizeof(expires), "%" PRId64, nc->expires);
	snprintf(keep_user, sizeof(keep_user), "%d", FTM_STATES_PER_USER - 1);
	snprintf(keep_client, sizeof(keep_client), "%d", FTM_STATES_PER_CLIENT - 1);
	if (pexec_cmd(l, "DELETE FROM ftm_number_states WHERE expires < $1::bigint", 1, pv, PGRES_COMMAND_OK,
		      err, err_len) != 0)
		return first_failed(l, -1);
	/* the caps of the code-challenge States: a user's or a client's own oldest makes room */
	if (pexec_cmd(l, "INSERT INTO ftm_number_states (id, tx, username, client, expires) VALUES"
		      " ($1, $2, $3, $4, $5::bigint)", 5, iv, PGRES_COMMAND_OK, err, err_len) != 0 ||
	    pexec_cmd(l, "DELETE FROM ftm_number_states WHERE username = $1 AND id <> $2 AND id NOT IN (SELECT id"
		      " FROM ftm_number_states WHERE username = $1 AND id <> $2 ORDER BY expires DESC LIMIT $3::bigint)",
		      3, uv, PGRES_COMMAND_OK, err, err_len) != 0 ||
	    pexec_cmd(l, "DELETE FROM ftm_number_states WHERE client = $1 AND id <> $2 AND id NOT IN (SELECT id"
		      " FROM ftm_number_states WHERE client = $1 AND id <> $2 ORDER BY expires DESC LIMIT $3::bigint)",
		      3, cv, PGRES_COMMAND_OK, err, err_len) != 0)
		return -1;
	return 0;
}

static int pg_number_put(void *be, const char *id, const char *tx, const char *user, const char *client,
			 int64_t expires, int64_t now, char *err, size_t err_len)
{
	struct number_ctx nc = { .id = id, .tx = tx, .user = user, .client = client, .expires = expires, .now = now };

	return with_link(be, number_put_on, &nc, err, err_len);
}

static int number_take_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct number_ctx *nc = c;
	const char *values[1] = { nc->id };
	PGresult *res = pexec(l, "DELETE FROM ftm_number_states WHERE id = $1 RETURNING tx, username, client, expires",
			      1, values);
	int rc = 0;

	(void)pg;
	/* not retried on a stale connection: the DELETE may have run, and a State is single use */
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "number state", err, err_len) != 0)
		return -1;
	if (PQntuples(res) == 1) {
		snprintf(nc->tx_out, 33, "%s", PQgetvalue(res, 0, 0));
		snprintf(nc->user_out, nc->user_len, "%s", PQgetvalue(res, 0, 1));
		snprintf(nc->client_out, nc->client_len, "%s", PQgetvalue(res, 0, 2));
		nc->found = true;
		if (parse_i64(PQgetvalue(res, 0, 3), &nc->expires) != 0) {
			SETERR("token store: damaged number state");
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

static int pg_number_take(void *be, const char *id, char tx[33], char *user, size_t user_len, char *client,
			  size_t client_len, int64_t *expires, char *err, size_t err_len)
{
	struct number_ctx nc = { .id = id, .tx_out = tx, .user_out = user, .user_len = user_len,
				 .client_out = client, .client_len = client_len };

	if (with_link(be, number_take_on, &nc, err, err_len) != 0)
		return -1;
	*expires = nc.expires;
	return nc.found ? 0 : 1;
}

/* ---- activation links ----
 * Rare (an admin issues, a user opens a page): their statements are parsed per call, not among the
 * prepared login queries. A redemption is one transaction over the link's row and its token's row, both
 * under FOR UPDATE: two nodes confirming one link at once serialize, and the second reads it used. */

#define ACT_COLS "code_hash, serial, email, seal_hash, created, expires, failures, used"

static int act_from_res(PGresult *res, int r, ftm_activation_row_t *a)
{
	int64_t failures;

	memset(a, 0, sizeof(*a));
	if (bytea_exact(res, r, 0, a->code_hash, 32) != 0 || bytea_exact(res, r, 3, a->seal_hash, 32) != 0 ||
	    parse_i64(PQgetvalue(res, r, 4), &a->created) != 0 || parse_i64(PQgetvalue(res, r, 5), &a->expires) != 0 ||
	    parse_i64(PQgetvalue(res, r, 6), &failures) != 0 || failures < 0 || failures > 1000000)
		return -1;
	snprintf(a->serial, sizeof(a->serial), "%s", PQgetvalue(res, r, 1));
	snprintf(a->email, sizeof(a->email), "%s", PQgetvalue(res, r, 2));
	a->failures = (unsigned)failures;
	a->used = strcmp(PQgetvalue(res, r, 7), "f") != 0;	/* anything unexpected reads as used */
	return 0;
}

/* One statement with one parameter: a serial (text), or a 32-byte hash (binary) when hash is set. */
static PGresult *act_exec(pg_link_t *l, const char *sql, const char *value, bool hash)
{
	const char *values[1] = { value };
	const int lengths[1] = { 32 }, formats[1] = { 1 };

	return PQexecParams(l->conn, sql, 1, NULL, values, hash ? lengths : NULL, hash ? formats : NULL, 0);
}

/* act_exec of a serial for a command: 0, or -1 with err. */
static int act_cmd(pg_link_t *l, const char *sql, const char *serial, char *err, size_t err_len)
{
	PGresult *res = act_exec(l, sql, serial, false);

	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "activation", err, err_len) != 0)
		return -1;
	PQclear(res);
	return 0;
}

/* The token's old links are deleted (locked) first, then the token's row is locked while the new one
 * goes in: the order a redemption locks them in (link, then token), so the two never deadlock, and a
 * token deleted at the same time either keeps no link or was never seen. */
static int act_put_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	const ftm_activation_row_t *a = c;
	char created[24], expires[24], failures[16];
	const char *iv[8] = { (const char *)a->code_hash, a->serial, a->email, (const char *)a->seal_hash,
			      created, expires, failures, a->used ? "t" : "f" };
	const int lengths[8] = { 32, 0, 0, 32 }, formats[8] = { 1, 0, 0, 1 };
	PGresult *res;
	int found;

	(void)pg;
	if (exec_cmd(l->conn, "BEGIN", "activation", err, err_len) != 0)
		return first_failed(l, -1);
	if (act_cmd(l, "DELETE FROM ftm_activations WHERE serial = $1", a->serial, err, err_len) != 0)
		return -1;
	res = act_exec(l, "SELECT 1 FROM ftm_tokens WHERE serial = $1 FOR UPDATE", a->serial, false);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "activation", err, err_len) != 0)
		return -1;
	found = PQntuples(res);
	PQclear(res);
	if (found == 0)
		return 1;	/* no such token: link_put rolls the DELETE back */
	snprintf(created, sizeof(created), "%" PRId64, a->created);
	snprintf(expires, sizeof(expires), "%" PRId64, a->expires);
	snprintf(failures, sizeof(failures), "%u", a->failures);
	res = PQexecParams(l->conn, "INSERT INTO ftm_activations (" ACT_COLS ") VALUES ($1, $2, $3, $4,"
			   " $5::bigint, $6::bigint, $7::integer, $8::boolean)", 8, NULL, iv, lengths, formats, 0);
	if (res_ok(l->conn, res, PGRES_COMMAND_OK, "activation", err, err_len) != 0)
		return -1;
	PQclear(res);
	return commit(l, "activation", err, err_len);
}

static int pg_act_put(void *be, const ftm_activation_row_t *a, char *err, size_t err_len)
{
	return with_link(be, act_put_on, (void *)a, err, err_len);
}

struct act_verdict_ctx {
	const uint8_t		*code_hash;
	bool			write;
	ftm_act_decide_fn	decide;
	void			*ctx;
};

/* BEGIN, the link FOR UPDATE, its token FOR UPDATE, decide, the dirty link and token written back,
 * COMMIT; without `write` the two reads and decide only (opening the page changes nothing). */
static int act_verdict_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct act_verdict_ctx *vc = c;
	ftm_activation_row_t act;
	struct rows_out o = { 0 };
	char failures[16];
	const char *uv[3] = { failures, NULL, (const char *)vc->code_hash };
	const int lengths[3] = { 0, 0, 32 }, formats[3] = { 0, 0, 1 };
	bool have_act = false;
	PGresult *res;
	int rc = -1;

	(void)pg;
	memset(&act, 0, sizeof(act));
	if (vc->write && exec_cmd(l->conn, "BEGIN", "activation", err, err_len) != 0)
		return first_failed(l, -1);
	res = act_exec(l, vc->write ? "SELECT " ACT_COLS " FROM ftm_activations WHERE code_hash = $1 FOR UPDATE"
				    : "SELECT " ACT_COLS " FROM ftm_activations WHERE code_hash = $1",
		       (const char *)vc->code_hash, true);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "activation", err, err_len) != 0)
		return vc->write ? -1 : first_failed(l, -1);	/* a read changes nothing: safe to repeat */
	if (PQntuples(res) == 1) {
		if (act_from_res(res, 0, &act) != 0) {
			PQclear(res);
			SETERR("token store: damaged activation record");
			goto out;
		}
		have_act = true;
	}
	PQclear(res);
	/* the token is looked up whether or not the link exists: an unknown link costs what a known one does */
	res = act_exec(l, vc->write ? "SELECT " TOKEN_COLS " FROM ftm_tokens WHERE serial = $1 FOR UPDATE"
				    : "SELECT " TOKEN_COLS " FROM ftm_tokens WHERE serial = $1", act.serial, false);
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "activation", err, err_len) != 0)
		goto out;
	if (rows_from(res, &o, err, err_len) != 0) {
		PQclear(res);
		goto out;
	}
	PQclear(res);
	if (vc->decide(vc->ctx, have_act ? &act : NULL, have_act && o.n == 1 ? &o.rows[0] : NULL) != 0)
		goto out;
	if (!vc->write) {
		rc = 0;
		goto out;
	}
	if (have_act && act.dirty) {
		snprintf(failures, sizeof(failures), "%u", act.failures);
		uv[1] = act.used ? "t" : "f";
		res = PQexecParams(l->conn, "UPDATE ftm_activations SET failures = $1::integer, used = $2::boolean"
				   " WHERE code_hash = $3", 3, NULL, uv, lengths, formats, 0);
		if (res_ok(l->conn, res, PGRES_COMMAND_OK, "activation", err, err_len) != 0)
			goto out;
		PQclear(res);
	}
	if (have_act && o.n == 1 && o.rows[0].dirty && verdict_write(l, &o.rows[0].tok, err, err_len) != 0)
		goto out;
	rc = commit(l, "activation", err, err_len);
out:
	rows_free(&o);	/* a transaction left open is rolled back by link_put */
	return rc;
}

static int pg_act_verdict(void *be, const uint8_t code_hash[32], bool write, ftm_act_decide_fn decide,
			  void *ctx, char *err, size_t err_len)
{
	struct act_verdict_ctx vc = { .code_hash = code_hash, .write = write, .decide = decide, .ctx = ctx };

	return with_link(be, act_verdict_on, &vc, err, err_len);
}

struct act_serial_ctx {
	const char		*serial;
	ftm_activation_row_t	*out;
	bool			found;
};

static int act_get_serial_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	struct act_serial_ctx *sc = c;
	PGresult *res = act_exec(l, "SELECT " ACT_COLS " FROM ftm_activations WHERE serial = $1"
				 " ORDER BY created DESC LIMIT 1", sc->serial, false);
	int rc = 0;

	(void)pg;
	if (res_ok(l->conn, res, PGRES_TUPLES_OK, "activation", err, err_len) != 0)
		return first_failed(l, -1);
	if (PQntuples(res) == 1) {
		sc->found = true;
		if (act_from_res(res, 0, sc->out) != 0) {
			SETERR("token store: damaged activation record");
			rc = -1;
		}
	}
	PQclear(res);
	return rc;
}

static int pg_act_get_serial(void *be, const char *serial, ftm_activation_row_t *out, char *err, size_t err_len)
{
	struct act_serial_ctx sc = { .serial = serial, .out = out };

	if (with_link(be, act_get_serial_on, &sc, err, err_len) != 0)
		return -1;
	return sc.found ? 0 : 1;
}

static int act_revoke_on(pg_t *pg, pg_link_t *l, void *c, char *err, size_t err_len)
{
	(void)pg;
	return first_failed(l, act_cmd(l, "DELETE FROM ftm_activations WHERE serial = $1", c, err, err_len));
}

static int pg_act_revoke(void *be, const char *serial, char *err, size_t err_len)
{
	return with_link(be, act_revoke_on, (void *)serial, err, err_len);
}

const ftm_store_backend_t ftm_store_backend_pg = {
	.scheme		= "postgresql",
	.open		= pg_open,
	.close		= pg_close,
	.meta_get	= pg_meta_get,
	.meta_put	= pg_meta_put,
	.insert		= pg_insert,
	.get		= pg_get,
	.present	= pg_present,
	.reissue	= pg_reissue,
	.set_status	= pg_set_status,
	.set_push	= pg_set_push,
	.set_user	= pg_set_user,
	.remove		= pg_remove,
	.list		= pg_list,
	.verdict	= pg_verdict,
	.act_put	= pg_act_put,
	.act_verdict	= pg_act_verdict,
	.act_get_serial	= pg_act_get_serial,
	.act_revoke	= pg_act_revoke,
	.state_put	= pg_state_put,
	.state_take	= pg_state_take,
	.settings_get	= pg_settings_get,
	.setting_put	= pg_setting_put,
	.settings_seed	= pg_settings_seed,
	.recovery_replace = pg_recovery_replace,
	.recovery_verdict = pg_recovery_verdict,
	.verdict_audited = pg_verdict_audited,
	.audit_append	= pg_audit_append,
	.audit_list	= pg_audit_list,
	.audit_prune	= pg_audit_prune,
	.debug_put	= pg_debug_put,
	.debug_clear	= pg_debug_clear,
	.debug_list	= pg_debug_list,
	.push_put	= pg_push_put,
	.push_get	= pg_push_get,
	.push_decide	= pg_push_decide,
	.push_watch	= pg_push_watch,
	.push_unwatch	= pg_push_unwatch,
	.number_put	= pg_number_put,
	.number_take	= pg_number_take,
};

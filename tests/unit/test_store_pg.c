/* test_store_pg: the PostgreSQL token store, as a specification, on the private server that
 * test_store_pg.sh starts (FTM_TEST_PG_HOST: its socket directory; each test gets a new database).
 * Codes are RFC 6238 appendix B values (SHA1 seed "12345678901234567890", 30 s, 8 digits). */
#include "config.h"

#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <libpq-fe.h>

#include "ftm_audit.h"
#include "ftm_store.h"
#include "store_fixture.h"
#include "store_push_spec.h"

typedef struct fixture {
	char		db[32];
	char		uri[512];
	char		dir[64];
	char		key[128];
	ftm_store_t	*st;
	char		code[FTM_ACTIVATION_CODE_LEN + 1];	/* act_setup: alice's link */
} fixture_t;

static const char *pg_host;
static int db_serial;

static PGconn *admin(const char *db)
{
	char uri[512];
	PGconn *c;

	snprintf(uri, sizeof(uri), "postgresql:///%s?host=%s&user=ftm", db, pg_host);
	c = PQconnectdb(uri);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("connect %s: %s", uri, PQerrorMessage(c));
	return c;
}

/* One SQL statement on the test's database from a separate session (another node, or an admin). */
static void sql(fixture_t *f, const char *q)
{
	PGconn *c = admin(f->db);
	PGresult *r = PQexec(c, q);

	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
		fail_msg("%s: %s", q, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
}

static long sql_long(fixture_t *f, const char *q)
{
	PGconn *c = admin(f->db);
	PGresult *r = PQexec(c, q);
	long v;

	if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
		fail_msg("%s: %s", q, PQresultErrorMessage(r));
	v = atol(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

static ftm_verify_params_t params(unsigned threshold)
{
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = threshold, .activation_expire = 0,
				  .consume = true };
	return p;
}

/* FTM_TEST_LOG=1: the store's log lines on stderr */
static ftm_store_t *open_node(fixture_t *f, const char *key, char *err, size_t err_len)
{
	static const ftm_log_t to_stderr = { ftm_log_sink_stderr, NULL, FTM_LOG_DEBUG };

	return ftm_store_open(f->uri, key, getenv("FTM_TEST_LOG") ? &to_stderr : NULL, err, err_len);
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	PGconn *c;
	PGresult *r;
	char q[96], err[512];

	snprintf(f->db, sizeof(f->db), "ftm_unit_%d_%d", (int)getpid(), ++db_serial);
	snprintf(f->uri, sizeof(f->uri), "postgresql:///%s?host=%s&user=ftm", f->db, pg_host);
	if (fixture_dir(f->dir, "pg") != 0)
		return -1;
	snprintf(f->key, sizeof(f->key), "%s/seed.key", f->dir);
	c = admin("postgres");
	snprintf(q, sizeof(q), "CREATE DATABASE %s", f->db);
	r = PQexec(c, q);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		fprintf(stderr, "%s: %s", q, PQresultErrorMessage(r));
		return -1;
	}
	PQclear(r);
	PQfinish(c);
	f->st = open_node(f, f->key, err, sizeof(err));
	if (f->st == NULL) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;

	ftm_store_close(f->st);
	fixture_dir_remove(f->dir);
	free(f);
	return 0;
}

static void add(ftm_store_t *st, const char *user, const char *serial)
{
	ftm_token_t t;
	char err[256];

	assert_int_equal(fixture_rfc_token(&t, user, serial), 0);
	assert_int_equal(ftm_store_token_add(st, &t, err, sizeof(err)), 0);
}

static ftm_token_t get(ftm_store_t *st, const char *serial)
{
	ftm_token_t t;
	char err[256];

	assert_int_equal(ftm_store_token_get(st, serial, &t, err, sizeof(err)), 0);
	return t;
}

static ftm_verdict_t verify(ftm_store_t *st, const char *user, const char *code, time_t now, unsigned threshold)
{
	ftm_verify_params_t p = params(threshold);
	ftm_verdict_t v;

	ftm_store_verify_code(st, user, code, now, &p, &v);
	return v;
}

/* ---- schema ---- */

/* Every migration recorded once, whatever the newest version is (3: lock reasons and the verdict
 * policy; 4: recovery codes; 5: the audit trail). */
static void open_creates_the_schema_at_the_newest_version(void **state)
{
	fixture_t *f = *state;
	long newest = sql_long(f, "SELECT max(version) FROM ftm_schema");

	assert_true(newest >= 5);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_schema"), newest);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_states"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_recovery_codes"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_pushes"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_number_states"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_activations"), 0);
	/* the verdict policy, seeded with the built-in defaults */
	assert_int_equal(sql_long(f, "SELECT value::bigint FROM ftm_settings WHERE name = 'lockout_threshold'"), 5);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens"), 0);
	/* a second node opening the same database changes nothing */
	{
		char err[256];
		ftm_store_t *b = open_node(f, f->key, err, sizeof(err));

		assert_non_null(b);
		ftm_store_close(b);
	}
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_schema"), newest);
}

/* A database left at version 1 by an older ftmpush (tokens, no shared States) is migrated when a
 * newer node opens it, its tokens kept. */
static void a_version_1_database_is_migrated_with_its_tokens(void **state)
{
	fixture_t *f = *state;
	char err[512], st_hex[FTM_STATE_HEX + 1];
	ftm_store_t *b;
	ftm_state_check_t check;

	long newest = sql_long(f, "SELECT max(version) FROM ftm_schema");

	add(f->st, "alice", "S1");
	ftm_store_close(f->st);
	f->st = NULL;
	sql(f, "DROP TABLE ftm_states");
	sql(f, "DROP TABLE ftm_pushes");
	sql(f, "DROP TABLE ftm_number_states");
	sql(f, "DROP TABLE ftm_audit");
	sql(f, "DROP TABLE ftm_debug");
	sql(f, "DROP TABLE ftm_settings");
	sql(f, "ALTER TABLE ftm_tokens DROP COLUMN lock_reason, DROP COLUMN locked_at");
	sql(f, "DROP TABLE ftm_recovery_codes");
	sql(f, "DROP TABLE ftm_activations");
	sql(f, "DELETE FROM ftm_schema WHERE version >= 2");
	b = open_node(f, f->key, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(sql_long(f, "SELECT max(version) FROM ftm_schema"), newest);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_recovery_codes"), 0);
	assert_string_equal(get(b, "S1").user, "alice");
	assert_int_equal(ftm_store_challenge_issue(b, "alice", "10.0.0.1", T1, 60, st_hex, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(b, "alice", "10.0.0.1", st_hex, T1, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	f->st = b;
}

/* A database at version 6 (pushes, no activation links) gains them when a newer node opens it: a link
 * is issued and redeemed on its tokens. */
static void a_version_6_database_gains_activation_links(void **state)
{
	fixture_t *f = *state;
	char err[512], code[FTM_ACTIVATION_CODE_LEN + 1];
	ftm_verify_params_t p = params(5);
	ftm_activation_t a;
	ftm_store_t *b;

	add(f->st, "alice", "S1");
	ftm_store_close(f->st);
	f->st = NULL;
	sql(f, "DROP TABLE ftm_activations");
	sql(f, "DELETE FROM ftm_schema WHERE version >= 7");
	b = open_node(f, f->key, err, sizeof(err));
	assert_non_null(b);
	f->st = b;
	assert_true(sql_long(f, "SELECT max(version) FROM ftm_schema") >= 7);
	assert_int_equal(ftm_store_activation_issue(b, "S1", "", T1 - 50, 60, code, sizeof(code), NULL, err,
						    sizeof(err)), 0);
	assert_int_equal(ftm_store_activation_confirm(b, code, C1, T1, &p, &a), 0);
	assert_int_equal(a.code, FTM_ACT_OK);
	assert_int_equal(get(b, "S1").last_step, 37037036);
}

static void a_database_newer_than_the_binary_is_refused(void **state)
{
	fixture_t *f = *state;
	char err[512] = "";

	sql(f, "INSERT INTO ftm_schema (version) VALUES (99)");
	assert_null(open_node(f, f->key, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 99, newer than this ftmpush"));
	assert_non_null(strstr(err, "upgrade ftmpush"));
}

/* ftm_store_backup is SQLite's online backup; a PostgreSQL store is refused, pointing at pg_dump, and
 * nothing is created at the destination. */
static void a_postgresql_store_is_not_backed_up_by_ftmpush(void **state)
{
	fixture_t *f = *state;
	char dest[200], err[512] = "";
	unsigned long n = 7;
	struct stat sb;

	snprintf(dest, sizeof(dest), "%s/backup.db", f->dir);
	assert_int_equal(ftm_store_backup(f->st, dest, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "pg_dump"));
	assert_int_equal(n, 0);
	assert_int_not_equal(stat(dest, &sb), 0);
}

/* ---- tokens ---- */

/* An import (1000 tokens or more) leaves the table analyzed: a login's statements planned before
 * autovacuum gets there would otherwise join the whole table (bench/README.md, the lead's round). */
static void an_import_leaves_the_table_analyzed(void **state)
{
	fixture_t *f = *state;
	size_t n = 1000;
	ftm_token_t *toks = calloc(n, sizeof(*toks));
	char err[256], user[32], serial[32];

	assert_non_null(toks);
	add(f->st, "alice", "A1");	/* one token is no bulk load */
	assert_int_equal(sql_long(f, "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'ftm_tokens'"
				     " AND last_analyze IS NOT NULL"), 0);
	for (size_t i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "u%zu", i);
		snprintf(serial, sizeof(serial), "S%zu", i);
		assert_int_equal(ftm_token_init(&toks[i], user, serial, SEED_HEX, err, sizeof(err)), 0);
	}
	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), 0);
	ftm_memzero(toks, n * sizeof(*toks));
	free(toks);
	/* ANALYZE's own record (the statistics collector is asynchronous: pg_class is not) */
	assert_true(sql_long(f, "SELECT reltuples::bigint FROM pg_class WHERE relname = 'ftm_tokens'") >= 1000);
}

/* n tokens S<first>..S<first+n-1> of users u<i>, for an import. */
static ftm_token_t *numbered_tokens(size_t first, size_t n)
{
	ftm_token_t *toks = calloc(n, sizeof(*toks));
	char err[256], user[32], serial[32];

	assert_non_null(toks);
	for (size_t i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "u%zu", first + i);
		snprintf(serial, sizeof(serial), "S%zu", first + i);
		assert_int_equal(ftm_token_init(&toks[i], user, serial, SEED_HEX, err, sizeof(err)), 0);
	}
	return toks;
}

/* An import goes in a statement per chunk of rows, in one transaction: a serial already in the store
 * in a later chunk leaves none of the earlier chunks' rows behind, and is named as before (the first
 * one in the import's order). */
static void an_import_of_many_chunks_is_all_or_nothing_and_names_the_serial_that_exists(void **state)
{
	fixture_t *f = *state;
	size_t n = 3000;
	ftm_token_t *toks = numbered_tokens(0, n);
	char err[256] = "";

	add(f->st, "x", "S2500");
	add(f->st, "y", "S1700");
	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), -1);
	assert_string_equal(err, "token S1700 already exists");
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens"), 2);
	/* the handle is still good, and the same import without those two goes in whole */
	assert_int_equal(ftm_store_token_delete(f->st, "S2500", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_delete(f->st, "S1700", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens"), (long)n);
	assert_string_equal(get(f->st, "S2999").user, "u2999");
	assert_int_equal(get(f->st, "S1234").seed_len, 20);
	assert_memory_equal(get(f->st, "S1234").seed, "12345678901234567890", 20);
	/* sealed in the table, never in clear */
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens WHERE position('12345678901234567890'::bytea in seed) > 0"), 0);
	ftm_memzero(toks, n * sizeof(*toks));
	free(toks);
}

/* What an import's rows carry goes through the arrays of its statement as it was: quotes, backslashes,
 * commas and braces in a user or a push target, an empty user, every column. */
static void an_import_keeps_every_column_as_given(void **state)
{
	fixture_t *f = *state;
	ftm_token_t toks[3], t;
	char err[256];

	assert_int_equal(ftm_token_init(&toks[0], "a\"b\\c,{d} e", "Q-1", SEED_HEX, err, sizeof(err)), 0);
	snprintf(toks[0].push, sizeof(toks[0].push), "%s", "ntfy:https://ntfy.example/\"t\\,{}");
	toks[0].alg = FTM_ALG_SHA256;
	toks[0].digits = 6;
	toks[0].period = 60;
	assert_int_equal(ftm_token_init(&toks[1], "", "Q.2", SEED_HEX, err, sizeof(err)), 0);
	assert_int_equal(ftm_token_init(&toks[2], "NULL", "Q_3", SEED_HEX, err, sizeof(err)), 0);
	toks[2].status = FTM_TOKEN_LOCKED;
	toks[2].lock_reason = FTM_LOCK_FAILURES;
	toks[2].locked_at = 1234567890123;
	toks[2].last_step = 9876543210;
	toks[2].failures = 4;
	assert_int_equal(ftm_store_token_import(f->st, toks, 3, err, sizeof(err)), 0);
	t = get(f->st, "Q-1");
	assert_string_equal(t.user, "a\"b\\c,{d} e");
	assert_string_equal(t.push, "ntfy:https://ntfy.example/\"t\\,{}");
	assert_int_equal(t.alg, FTM_ALG_SHA256);
	assert_int_equal(t.digits, 6);
	assert_int_equal(t.period, 60);
	assert_int_equal(t.status, FTM_TOKEN_ACTIVE);
	assert_int_equal(t.last_step, -1);
	assert_int_equal(t.failures, 0);
	assert_int_equal(t.created, toks[0].created);
	assert_memory_equal(t.seed, "12345678901234567890", 20);
	assert_string_equal(get(f->st, "Q.2").user, "");
	t = get(f->st, "Q_3");
	assert_string_equal(t.user, "NULL");
	assert_int_equal(t.status, FTM_TOKEN_LOCKED);
	assert_int_equal(t.lock_reason, FTM_LOCK_FAILURES);
	assert_int_equal(t.locked_at, 1234567890123);
	assert_int_equal(t.last_step, 9876543210);
	assert_int_equal(t.failures, 4);
	ftm_memzero(toks, sizeof(toks));
	ftm_memzero(&t, sizeof(t));
}

/* An import's check asks about every serial at once (statements of many serials each): exactly the
 * ones in the store are marked, at the chunks' edges too. */
static void tokens_present_marks_exactly_the_serials_in_the_store(void **state)
{
	fixture_t *f = *state;
	size_t n = 12001;
	const char **serials = calloc(n, sizeof(*serials));
	char (*names)[16] = calloc(n, sizeof(*names));
	bool *in = calloc(n, sizeof(*in));
	static const size_t there[] = { 0, 4999, 5000, 9999, 10000, 12000 };
	char err[256];

	assert_non_null(serials);
	assert_non_null(names);
	assert_non_null(in);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "P%zu", i);
		serials[i] = names[i];
	}
	for (size_t k = 0; k < sizeof(there) / sizeof(there[0]); k++)
		add(f->st, "alice", names[there[k]]);
	add(f->st, "bob", "P-not-asked");
	assert_int_equal(ftm_store_tokens_present(f->st, serials, n, in, err, sizeof(err)), 0);
	for (size_t i = 0, k = 0; i < n; i++) {
		bool want = k < sizeof(there) / sizeof(there[0]) && there[k] == i;

		if (want)
			k++;
		if (in[i] != want)
			fail_msg("serial %s: in_store %d, want %d", serials[i], in[i], want);
	}
	assert_int_equal(ftm_store_tokens_present(f->st, serials, 0, in, err, sizeof(err)), 0);
	free(in);
	free(names);
	free(serials);
}

static void tokens_are_added_read_changed_listed_and_deleted(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t, dup[2];
	char err[256];

	add(f->st, "alice", "A1");
	add(f->st, "bob", "B1");
	t = get(f->st, "A1");
	assert_string_equal(t.user, "alice");
	assert_int_equal(t.seed_len, 20);
	assert_memory_equal(t.seed, "12345678901234567890", 20);
	assert_int_equal(t.digits, 8);
	assert_int_equal(t.period, 30);
	assert_int_equal(t.last_step, -1);
	/* the seed is stored sealed, never in clear */
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens WHERE position('12345678901234567890'::bytea in seed) > 0"), 0);
	assert_int_equal(ftm_store_token_get(f->st, "NOPE", &t, err, sizeof(err)), 1);
	assert_int_equal(ftm_store_token_add(f->st, &t, err, sizeof(err)), -1);	/* A1 again */
	assert_non_null(strstr(err, "already exists"));
	/* an import is all or nothing */
	assert_int_equal(ftm_token_init(&dup[0], "carol", "C1", SEED_HEX, err, sizeof(err)), 0);
	assert_int_equal(ftm_token_init(&dup[1], "carol", "B1", SEED_HEX, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_import(f->st, dup, 2, err, sizeof(err)), -1);
	assert_int_equal(ftm_store_token_get(f->st, "C1", &t, err, sizeof(err)), 1);

	assert_int_equal(ftm_store_token_set_status(f->st, "A1", FTM_TOKEN_LOCKED, err, sizeof(err)), 0);
	assert_int_equal(get(f->st, "A1").status, FTM_TOKEN_LOCKED);
	assert_int_equal(ftm_store_token_set_push(f->st, "A1", "ntfy:https://ntfy.example/t", err, sizeof(err)), 0);
	assert_string_equal(get(f->st, "A1").push, "ntfy:https://ntfy.example/t");
	assert_int_equal(ftm_store_token_set_user(f->st, "B1", "", err, sizeof(err)), 0);
	assert_string_equal(get(f->st, "B1").user, "");
	assert_int_equal(ftm_store_token_set_status(f->st, "NOPE", FTM_TOKEN_ACTIVE, err, sizeof(err)), 1);
	assert_int_equal(ftm_store_token_delete(f->st, "B1", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_delete(f->st, "B1", err, sizeof(err)), 1);
	t = get(f->st, "A1");
	t.seed[0] ^= 1;
	assert_int_equal(ftm_store_token_reissue(f->st, &t, err, sizeof(err)), 0);
	t = get(f->st, "A1");
	assert_int_equal(t.status, FTM_TOKEN_ACTIVE);
	assert_int_equal(t.seed[0], '1' ^ 1);
}

static int count_cb(void *ctx, const ftm_token_t *t)
{
	char *seen = ctx;

	strcat(seen, t->serial);
	strcat(seen, ",");
	return 0;
}

static void lists_order_by_user_then_serial_bytewise(void **state)
{
	fixture_t *f = *state;
	char seen[256] = "", err[256];

	add(f->st, "bob", "b2");
	add(f->st, "alice", "Z9");
	add(f->st, "alice", "A1");
	add(f->st, "Bob", "x1");	/* "B" sorts before "a" bytewise, as in the SQLite store */
	assert_int_equal(ftm_store_token_list(f->st, NULL, count_cb, seen, err, sizeof(err)), 0);
	assert_string_equal(seen, "x1,A1,Z9,b2,");
	seen[0] = '\0';
	assert_int_equal(ftm_store_token_list(f->st, "alice", count_cb, seen, err, sizeof(err)), 0);
	assert_string_equal(seen, "A1,Z9,");
}

/* A listing of every token hands the rows on as it reads them, a chunk per round trip, all from one
 * snapshot: what changes meanwhile (here from the callback itself, which may call back into the store)
 * is not in it, and the order is the store's across chunks. */
struct listing {
	fixture_t	*f;
	size_t		n;
	size_t		kill_at;	/* terminate the listing's session as row kill_at is handed on (0: never) */
	char		last_user[FTM_USER_MAX], last_serial[FTM_SERIAL_MAX];
	bool		ordered, saw_last, saw_new;
};

static int listing_cb(void *ctx, const ftm_token_t *t)
{
	struct listing *l = ctx;
	char err[256];

	if (l->n > 0 && (strcmp(l->last_user, t->user) > 0 ||
			 (strcmp(l->last_user, t->user) == 0 && strcmp(l->last_serial, t->serial) >= 0)))
		l->ordered = false;
	snprintf(l->last_user, sizeof(l->last_user), "%s", t->user);
	snprintf(l->last_serial, sizeof(l->last_serial), "%s", t->serial);
	l->saw_last |= strcmp(t->serial, "S2499") == 0;
	l->saw_new |= strcmp(t->serial, "NEW1") == 0;
	if (l->n == 0 && l->kill_at == 0) {
		assert_int_equal(ftm_store_token_delete(l->f->st, "S2499", err, sizeof(err)), 0);
		add(l->f->st, "zzz", "NEW1");
	}
	if (++l->n == l->kill_at)
		sql(l->f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
			  " AND state = 'idle in transaction' AND pid <> pg_backend_pid()");
	return 0;
}

static void a_listing_of_every_token_is_one_snapshot_streamed_in_order(void **state)
{
	fixture_t *f = *state;
	size_t n = 2500;	/* three round trips of the listing's cursor */
	ftm_token_t *toks = numbered_tokens(0, n);
	struct listing l = { .f = f, .ordered = true };
	char err[256] = "";

	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_list(f->st, NULL, listing_cb, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, n);
	assert_true(l.ordered);
	assert_true(l.saw_last);	/* deleted after the listing began */
	assert_false(l.saw_new);	/* added after it began */
	l = (struct listing){ .f = f, .ordered = true, .kill_at = (size_t)-1 };
	assert_int_equal(ftm_store_token_list(f->st, NULL, listing_cb, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, n);	/* now: S2499 gone, NEW1 in */
	assert_false(l.saw_last);
	assert_true(l.saw_new);
	ftm_memzero(toks, n * sizeof(*toks));
	free(toks);
}

/* The listing's session ended between two of its round trips: the listing fails (-1, why in err)
 * after the rows it handed on, never a short listing that looks whole; the handle lists again. */
static void a_listing_whose_session_dies_midway_fails(void **state)
{
	fixture_t *f = *state;
	size_t n = 2500;
	ftm_token_t *toks = numbered_tokens(0, n);
	struct listing l = { .f = f, .ordered = true, .kill_at = 1500 };
	char err[256] = "";

	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_list(f->st, NULL, listing_cb, &l, err, sizeof(err)), -1);
	assert_int_equal(l.n, 2000);	/* the chunk that was read already, then the next round trip failed */
	assert_non_null(strstr(err, "list"));
	l = (struct listing){ .f = f, .ordered = true, .kill_at = (size_t)-1 };
	assert_int_equal(ftm_store_token_list(f->st, NULL, listing_cb, &l, err, sizeof(err)), 0);
	assert_int_equal(l.n, n);
	assert_true(l.ordered);
	ftm_memzero(toks, n * sizeof(*toks));
	free(toks);
}

/* ---- the verdict on many nodes ---- */

static void a_code_accepted_on_one_node_is_a_replay_on_another(void **state)
{
	fixture_t *f = *state;
	char err[256];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	ftm_verdict_t v;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	v = verify(f->st, "alice", C1, T1, 5);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	v = verify(b, "alice", C1, T1, 5);
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(v.wait_seconds, 30 - T1 % 30);
	assert_string_equal(v.message, "Please wait 1 seconds to login again");
	assert_int_equal(get(b, "S1").last_step, T1 / 30);
	/* the next step's code is still good, on either node */
	assert_int_equal(verify(b, "alice", C2, T2, 5).code, FTM_VERDICT_OK);
	assert_int_equal(verify(f->st, "alice", C2, T2, 5).code, FTM_VERDICT_REPLAY);
	ftm_store_close(b);
}

static void wrong_codes_on_two_nodes_add_up_to_the_lockout(void **state)
{
	fixture_t *f = *state;
	char err[256];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	ftm_verdict_t v;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	assert_int_equal(verify(f->st, "alice", BAD, T1, 3).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(verify(b, "alice", BAD, T1, 3).code, FTM_VERDICT_BAD_CODE);
	v = verify(f->st, "alice", BAD, T1, 3);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
	assert_int_equal(v.failures, 3);
	/* locked for every node: the right code is refused on the other one too */
	assert_int_equal(verify(b, "alice", C1, T1, 3).code, FTM_VERDICT_LOCKED);
	assert_int_equal(get(b, "S1").status, FTM_TOKEN_LOCKED);
	ftm_store_close(b);
}

#define THREADS	8
#define ROUNDS	10

struct hammer {
	ftm_store_t		*st;
	pthread_barrier_t	*go;		/* all start at once (NULL: no wait) */
	bool			listed;		/* each verdict after its list, as a RADIUS login */
	int			ok, replay, other;
};

static ftm_verdict_code_t listed_verify(ftm_store_t *st, const char *user, const char *code, time_t now);

static void *hammer(void *arg)
{
	struct hammer *h = arg;

	if (h->go != NULL)
		pthread_barrier_wait(h->go);
	for (int i = 0; i < ROUNDS; i++) {
		ftm_verdict_code_t v = h->listed ? listed_verify(h->st, "alice", C1, T1) : verify(h->st, "alice", C1, T1, 0).code;

		if (v == FTM_VERDICT_OK)
			h->ok++;
		else if (v == FTM_VERDICT_REPLAY)
			h->replay++;
		else
			h->other++;
	}
	return NULL;
}

/* 2 * THREADS threads, half on each of two nodes, race alice's C1 ROUNDS times each (`listed`: each
 * verdict after its list, as a RADIUS login, so they are group-committed): exactly one Accept. */
static void race_two_nodes(fixture_t *f, bool listed)
{
	char err[256];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	pthread_t tid[2 * THREADS];
	struct hammer h[2 * THREADS];
	pthread_barrier_t go;
	int ok = 0, replay = 0;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	pthread_barrier_init(&go, NULL, 2 * THREADS);
	for (int i = 0; i < 2 * THREADS; i++) {
		h[i] = (struct hammer){ .st = i % 2 ? b : f->st, .go = &go, .listed = listed };
		assert_int_equal(pthread_create(&tid[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < 2 * THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(h[i].other, 0);
		ok += h[i].ok;
		replay += h[i].replay;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(replay, 2 * THREADS * ROUNDS - 1);
	assert_int_equal(get(f->st, "S1").last_step, T1 / 30);
	pthread_barrier_destroy(&go);
	ftm_store_close(b);
}

/* More threads than a node's pool holds connections, on two nodes at once. */
static void threads_on_two_nodes_accept_a_code_exactly_once(void **state)
{
	race_two_nodes(*state, false);
}

struct waiter {
	ftm_store_t	*st;
	ftm_verdict_t	v;
	volatile int	done;
};

static void *verify_later(void *arg)
{
	struct waiter *w = arg;

	w->v = verify(w->st, "alice", C1, T1, 5);
	w->done = 1;
	return NULL;
}

/* Another session holds alice's row while `verdict` runs in a thread (w.done is `blocked` once it waits
 * on the lock), uses the step and commits: the verdict decides on what was committed, a replay. */
static void verdict_behind_a_held_row(fixture_t *f, void *(*verdict)(void *), int blocked)
{
	PGconn *other = admin(f->db);
	struct waiter w = { .st = f->st };
	pthread_t tid;
	char q[128];

	add(f->st, "alice", "S1");
	PQclear(PQexec(other, "BEGIN"));
	PQclear(PQexec(other, "SELECT 1 FROM ftm_tokens WHERE username = 'alice' FOR UPDATE"));
	assert_int_equal(pthread_create(&tid, NULL, verdict, &w), 0);
	usleep(300 * 1000);
	assert_int_equal(w.done, blocked);	/* blocked on the row lock */
	snprintf(q, sizeof(q), "UPDATE ftm_tokens SET last_step = %lld WHERE serial = 'S1'", T1 / 30);
	PQclear(PQexec(other, q));
	PQclear(PQexec(other, "COMMIT"));
	pthread_join(tid, NULL);
	assert_int_equal(w.v.code, FTM_VERDICT_REPLAY);
	PQfinish(other);
}

/* SELECT ... FOR UPDATE: a verdict waits for another session holding the user's row, then decides on
 * what that session committed (here: the step already used). */
static void a_verdict_waits_for_the_users_rows_and_reads_the_committed_state(void **state)
{
	verdict_behind_a_held_row(*state, verify_later, 0);
}

/* ---- a verdict decided on the rows its login's list read (store_pg.c: Q_VERDICT_CAS) ---- */

static int count_row(void *ctx, const ftm_token_t *tok)
{
	(void)tok;
	(*(int *)ctx)++;
	return 0;
}

/* The login's list, in this thread: the verdict that follows decides on what it read. */
static void list_user(ftm_store_t *st, const char *user, int expect)
{
	char err[256];
	int n = 0;

	assert_int_equal(ftm_store_token_list(st, user, count_row, &n, err, sizeof(err)), 0);
	assert_int_equal(n, expect);
}

static void *list_then_verify(void *arg)
{
	struct waiter *w = arg;

	list_user(w->st, "alice", 1);
	w->done = 1;			/* listed: the verdict next */
	w->v = verify(w->st, "alice", C1, T1, 5);
	w->done = 2;
	return NULL;
}

struct elsewhere {
	ftm_store_t	*st;
	const char	*user, *serial;
};

static void *add_elsewhere(void *arg)
{
	struct elsewhere *e = arg;

	add(e->st, e->user, e->serial);
	return NULL;
}

/* Listed, then the rows changed by another node before this node's verdict (another session, another
 * thread: this thread's list stays): the verdict sees the rows changed and decides again on them
 * locked. The code used elsewhere is a replay (never a second Accept), a lock is a lock, a token added
 * is read. */
static void a_verdict_after_a_list_sees_what_another_node_wrote_meanwhile(void **state)
{
	fixture_t *f = *state;
	PGconn *other = admin(f->db);
	char err[512], q[128];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	struct elsewhere e = { b, "bob", "S2" };
	pthread_t tid;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	list_user(f->st, "alice", 1);
	snprintf(q, sizeof(q), "UPDATE ftm_tokens SET last_step = %lld WHERE serial = 'S1'", T1 / 30);
	PQclear(PQexec(other, q));
	assert_int_equal(verify(f->st, "alice", C1, T1, 5).code, FTM_VERDICT_REPLAY);
	/* listed, then locked by an admin elsewhere: locked, and nothing counted */
	list_user(f->st, "alice", 1);
	PQclear(PQexec(other, "UPDATE ftm_tokens SET status = 'lock' WHERE serial = 'S1'"));
	assert_int_equal(verify(f->st, "alice", BAD, T1, 5).code, FTM_VERDICT_LOCKED);
	assert_int_equal(get(f->st, "S1").failures, 0);
	/* listed with no token, then one added elsewhere: the verdict reads it */
	list_user(f->st, "bob", 0);
	assert_int_equal(pthread_create(&tid, NULL, add_elsewhere, &e), 0);
	pthread_join(tid, NULL);
	assert_int_equal(verify(f->st, "bob", C1, T1, 5).code, FTM_VERDICT_OK);
	assert_int_equal(get(f->st, "S2").last_step, T1 / 30);
	/* listed and nothing changed: decided on the list's rows, written once */
	list_user(f->st, "bob", 1);
	assert_int_equal(verify(f->st, "bob", C2, T2, 5).code, FTM_VERDICT_OK);
	assert_int_equal(get(f->st, "S2").last_step, T2 / 30);
	list_user(f->st, "bob", 1);
	assert_int_equal(verify(f->st, "bob", C2, T2, 5).code, FTM_VERDICT_REPLAY);
	ftm_store_close(b);
	PQfinish(other);
}

/* Listed, then the verdict waits on the rows another session holds; that session uses the code and
 * commits: the waiting verdict finds the rows changed and answers replay. */
static void a_listed_verdict_waiting_on_the_rows_answers_from_what_was_committed(void **state)
{
	verdict_behind_a_held_row(*state, list_then_verify, 1);
}

/* A verdict writes every dirty row or none: a write that fails on the second token rolls back the
 * failure already counted on the first. */
static void a_verdict_that_fails_half_way_leaves_nothing_behind(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f->st, "alice", "S1");
	add(f->st, "alice", "S2");
	sql(f, "CREATE FUNCTION ftm_test_fail() RETURNS trigger LANGUAGE plpgsql AS "
	       "$$ BEGIN RAISE EXCEPTION 'disk on fire'; END $$");
	sql(f, "CREATE TRIGGER ftm_test_fail BEFORE UPDATE ON ftm_tokens FOR EACH ROW "
	       "WHEN (NEW.serial = 'S2') EXECUTE FUNCTION ftm_test_fail()");
	v = verify(f->st, "alice", BAD, T1, 5);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_string_equal(v.message, "Token store unavailable");
	assert_non_null(strstr(v.reason, "disk on fire"));
	assert_int_equal(get(f->st, "S1").failures, 0);
	assert_int_equal(get(f->st, "S2").failures, 0);
	sql(f, "DROP TRIGGER ftm_test_fail ON ftm_tokens");
	assert_int_equal(verify(f->st, "alice", BAD, T1, 5).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f->st, "S1").failures, 1);
	assert_int_equal(get(f->st, "S2").failures, 1);
}

/* The session of a verdict killed between its UPDATE and its COMMIT (the second pipelined round trip
 * held by a trigger): the verdict fails, nothing is written, it is not retried, and the code is good
 * afterwards. */
static void a_verdict_whose_session_dies_before_its_commit_fails_and_writes_nothing(void **state)
{
	fixture_t *f = *state;
	struct waiter w = { .st = f->st };
	pthread_t tid;
	long sleeping = 0;

	add(f->st, "alice", "S1");
	sql(f, "CREATE FUNCTION ftm_test_hold() RETURNS trigger LANGUAGE plpgsql AS "
	       "$$ BEGIN PERFORM pg_sleep(10); RETURN NEW; END $$");
	sql(f, "CREATE TRIGGER ftm_test_hold BEFORE UPDATE ON ftm_tokens FOR EACH ROW EXECUTE FUNCTION ftm_test_hold()");
	assert_int_equal(pthread_create(&tid, NULL, verify_later, &w), 0);
	for (int i = 0; i < 100 && sleeping == 0; i++) {
		usleep(50 * 1000);
		sleeping = sql_long(f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
	}
	assert_int_equal(sleeping, 1);
	sql(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
	pthread_join(tid, NULL);
	assert_int_equal(w.v.code, FTM_VERDICT_ERROR);
	sql(f, "DROP TRIGGER ftm_test_hold ON ftm_tokens");
	assert_int_equal(get(f->st, "S1").last_step, -1);
	assert_int_equal(verify(f->st, "alice", C1, T1, 5).code, FTM_VERDICT_OK);
}

/* ---- the group commit of listed verdicts (store_pg.c: verdict_batch) ---- */

#define BATCH_USERS	12

struct batcher_thread {
	ftm_store_t		*st;
	char			user[16];
	pthread_barrier_t	*go;
	const char		*code;
	time_t			now;
	ftm_verdict_code_t	v[3];
};

/* A login's list, then its audited verdict, as rlm_ftmpush does: the verdict is a listed one (CAS). */
static ftm_verdict_code_t listed_verify(ftm_store_t *st, const char *user, const char *code, time_t now)
{
	ftm_audit_row_t a;
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .consume = true, .audit = &a };
	ftm_verdict_t v;

	memset(&a, 0, sizeof(a));
	snprintf(a.event, sizeof(a.event), "%s", FTM_AUDIT_EV_CODE);
	snprintf(a.user, sizeof(a.user), "%s", user);
	snprintf(a.frontend, sizeof(a.frontend), FTM_AUDIT_FE_RADIUS);
	list_user(st, user, 1);
	ftm_store_verify_code(st, user, code, now, &p, &v);
	return v.code;
}

/* Each thread: its user's good code, the same code again, a wrong code, all at once with the others. */
static void *batch_logins(void *arg)
{
	struct batcher_thread *t = arg;

	pthread_barrier_wait(t->go);
	t->v[0] = listed_verify(t->st, t->user, C1, T1);
	t->v[1] = listed_verify(t->st, t->user, C1, T1);
	t->v[2] = listed_verify(t->st, t->user, BAD, T1);
	return NULL;
}

/* Many threads of one handle deciding different users at once (their verdicts group-committed):
 * every verdict right, every write durable, one audit row each. */
static void threads_of_one_handle_deciding_different_users_are_all_durable_and_right(void **state)
{
	fixture_t *f = *state;
	pthread_t tid[BATCH_USERS];
	struct batcher_thread t[BATCH_USERS];
	pthread_barrier_t go;
	char q[160];

	pthread_barrier_init(&go, NULL, BATCH_USERS);
	for (int i = 0; i < BATCH_USERS; i++) {
		char serial[16];

		t[i] = (struct batcher_thread){ .st = f->st, .go = &go };
		snprintf(t[i].user, sizeof(t[i].user), "user%02d", i);
		snprintf(serial, sizeof(serial), "B%02d", i);
		add(f->st, t[i].user, serial);
	}
	for (int i = 0; i < BATCH_USERS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, batch_logins, &t[i]), 0);
	for (int i = 0; i < BATCH_USERS; i++) {
		char serial[16];
		ftm_token_t tok;

		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].v[0], FTM_VERDICT_OK);
		assert_int_equal(t[i].v[1], FTM_VERDICT_REPLAY);
		assert_int_equal(t[i].v[2], FTM_VERDICT_BAD_CODE);
		snprintf(serial, sizeof(serial), "B%02d", i);
		tok = get(f->st, serial);
		assert_int_equal(tok.last_step, T1 / 30);
		assert_int_equal(tok.failures, 1);
		snprintf(q, sizeof(q), "SELECT count(*) FROM ftm_audit WHERE username = '%s'", t[i].user);
		assert_int_equal(sql_long(f, q), 3);
	}
	pthread_barrier_destroy(&go);
}

/* The same user's code raced by threads of two handles, each after its list (so two verdicts of one
 * user may meet in one batch, and batches of two handles meet on the rows): exactly one Accept. */
static void one_users_code_raced_by_threads_of_two_handles_is_accepted_once(void **state)
{
	fixture_t *f = *state;

	race_two_nodes(f, true);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit WHERE result = '" FTM_AUDIT_ACCEPTED "'"), 1);
}

static void *batch_one(void *arg)
{
	struct batcher_thread *t = arg;

	t->v[0] = listed_verify(t->st, t->user, C1, T1);
	return NULL;
}

/* BATCH_USERS users user00.. with a token B00.. each, a thread's state for each, and a trigger on their
 * rows' UPDATEs running `body` (plpgsql). */
static void batch_users(fixture_t *f, struct batcher_thread *t, const char *body)
{
	char q[512];

	for (int i = 0; i < BATCH_USERS; i++) {
		char serial[16];

		t[i] = (struct batcher_thread){ .st = f->st };
		snprintf(t[i].user, sizeof(t[i].user), "user%02d", i);
		snprintf(serial, sizeof(serial), "B%02d", i);
		add(f->st, t[i].user, serial);
	}
	snprintf(q, sizeof(q), "CREATE FUNCTION ftm_test_hold() RETURNS trigger LANGUAGE plpgsql AS $$ %s $$", body);
	sql(f, q);
	sql(f, "CREATE TRIGGER ftm_test_hold BEFORE UPDATE ON ftm_tokens FOR EACH ROW EXECUTE FUNCTION ftm_test_hold()");
}

/* Wait until one session sleeps in the trigger and the statement it runs matches `like`; kill it. */
static void kill_the_sleeper(fixture_t *f, const char *like)
{
	char q[256];
	long n = 0;

	snprintf(q, sizeof(q), "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND query LIKE '%s'", like);
	for (int i = 0; i < 200 && n == 0; i++) {
		usleep(50 * 1000);
		n = sql_long(f, q);
	}
	assert_int_equal(n, 1);
	sql(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE wait_event = 'PgSleep'");
}

/* A batch of several users' verdicts whose session is killed while its statement runs (held by a
 * trigger): every verdict of it fails, none is accepted, nothing is written (no step used, no audit
 * row), and each code is good afterwards. The batch forms behind a first verdict held the same way. */
static void a_batch_whose_connection_is_killed_fails_every_verdict_and_writes_nothing(void **state)
{
	fixture_t *f = *state;
	pthread_t tid[BATCH_USERS];
	struct batcher_thread t[BATCH_USERS];

	batch_users(f, t, "BEGIN PERFORM pg_sleep(10); RETURN NEW; END");
	/* the first verdict leads a batch of its own and is held: the others queue behind it */
	assert_int_equal(pthread_create(&tid[0], NULL, batch_one, &t[0]), 0);
	kill_the_sleeper(f, "WITH cur AS%");
	pthread_join(tid[0], NULL);
	assert_int_equal(t[0].v[0], FTM_VERDICT_ERROR);
	/* one held again; the rest queue behind it and go as one batch, killed too */
	assert_int_equal(pthread_create(&tid[0], NULL, batch_one, &t[0]), 0);
	for (int i = 0; i < 100 && sql_long(f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == 0; i++)
		usleep(50 * 1000);
	for (int i = 1; i < BATCH_USERS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, batch_one, &t[i]), 0);
	usleep(500 * 1000);	/* listed and queued */
	kill_the_sleeper(f, "WITH cur AS%");
	pthread_join(tid[0], NULL);
	assert_int_equal(t[0].v[0], FTM_VERDICT_ERROR);
	kill_the_sleeper(f, "WITH b AS (SELECT * FROM unnest%");
	for (int i = 1; i < BATCH_USERS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(t[i].v[0], FTM_VERDICT_ERROR);
	}
	sql(f, "DROP TRIGGER ftm_test_hold ON ftm_tokens");
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_tokens WHERE last_step <> -1 OR failures <> 0"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit"), 0);
	for (int i = 0; i < BATCH_USERS; i++)
		assert_int_equal(listed_verify(f->st, t[i].user, C1, T1), FTM_VERDICT_OK);
}

/* A batch the server refuses (a trigger fails on one user's row) wrote nothing: each of its verdicts is
 * decided again on its own rows locked, so only the user whose row cannot be written fails; the others
 * are accepted and written once. The batch forms behind a first verdict held by the trigger a moment. */
static void a_refused_batch_is_decided_again_verdict_by_verdict(void **state)
{
	fixture_t *f = *state;
	pthread_t tid[BATCH_USERS];
	struct batcher_thread t[BATCH_USERS];

	batch_users(f, t, "BEGIN IF NEW.serial = 'B00' THEN PERFORM pg_sleep(1); END IF;"
		       " IF NEW.serial = 'B01' THEN RAISE EXCEPTION 'disk on fire'; END IF; RETURN NEW; END");
	assert_int_equal(pthread_create(&tid[0], NULL, batch_one, &t[0]), 0);
	for (int i = 0; i < 100 && sql_long(f, "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'") == 0; i++)
		usleep(20 * 1000);
	for (int i = 1; i < BATCH_USERS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, batch_one, &t[i]), 0);
	for (int i = 0; i < BATCH_USERS; i++) {
		char serial[16];

		pthread_join(tid[i], NULL);
		snprintf(serial, sizeof(serial), "B%02d", i);
		assert_int_equal(t[i].v[0], i == 1 ? FTM_VERDICT_ERROR : FTM_VERDICT_OK);
		assert_int_equal(get(f->st, serial).last_step, i == 1 ? -1 : T1 / 30);
	}
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit WHERE username = 'user01'"), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit"), BATCH_USERS - 1);
}

/* The server closes every connection (a restart, a failover): the next verdict reconnects by itself. */
static void connections_closed_by_the_server_are_replaced_without_reopening(void **state)
{
	fixture_t *f = *state;

	add(f->st, "alice", "S1");
	assert_int_equal(verify(f->st, "alice", BAD, T1, 5).code, FTM_VERDICT_BAD_CODE);
	sql(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
	       "WHERE application_name = 'ftmpush' AND pid <> pg_backend_pid()");
	assert_int_equal(verify(f->st, "alice", C1, T1, 5).code, FTM_VERDICT_OK);
	assert_int_equal(get(f->st, "S1").failures, 0);
}

/* ---- code-challenge States ---- */

static void a_challenge_issued_on_one_node_is_answered_once_on_another(void **state)
{
	fixture_t *f = *state;
	char err[512], a[FTM_STATE_HEX + 1], b2[FTM_STATE_HEX + 1], c[FTM_STATE_HEX + 1];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	ftm_state_check_t check;

	assert_non_null(b);
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, a, err, sizeof(err)), 0);
	assert_int_equal(strlen(a), FTM_STATE_HEX);
	/* only the State's hash is stored */
	{
		char q[160];

		snprintf(q, sizeof(q), "SELECT count(*) FROM ftm_states WHERE id LIKE '%%%s%%' OR client LIKE '%%%s%%'", a, a);
		assert_int_equal(sql_long(f, q), 0);
		assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_states"), 1);
	}
	assert_int_equal(ftm_store_challenge_take(b, "alice", "10.0.0.1", a, T1 + 10, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	assert_int_equal(ftm_store_challenge_take(f->st, "alice", "10.0.0.1", a, T1 + 10, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);	/* single use across nodes */
	/* another user or client: refused, and consumed */
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, b2, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(b, "bob", "10.0.0.1", b2, T1, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_MISMATCH);
	assert_int_equal(ftm_store_challenge_take(b, "alice", "10.0.0.1", b2, T1, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);
	/* expired */
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, c, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(b, "alice", "10.0.0.1", c, T1 + 60, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_EXPIRED);
	ftm_store_close(b);
}

/* A flood of challenges by one user (with a valid password) or from one client flushes only the flooder's
 * own oldest States (FTM_STATES_PER_USER, FTM_STATES_PER_CLIENT): another user's State still answers. */
static void a_challenge_flood_flushes_only_the_flooders_own_states(void **state)
{
	fixture_t *f = *state;
	char err[512], victim[FTM_STATE_HEX + 1], first[FTM_STATE_HEX + 1], last[FTM_STATE_HEX + 1];
	char user[16];
	ftm_state_check_t check;
	time_t t = T1;

	assert_int_equal(ftm_store_challenge_issue(f->st, "bob", "10.0.0.9", t, 600, victim, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_issue(f->st, "mallory", "10.0.0.66", ++t, 600, first, err, sizeof(err)), 0);
	for (int i = 0; i < 4 * FTM_STATES_PER_USER; i++)
		assert_int_equal(ftm_store_challenge_issue(f->st, "mallory", "10.0.0.66", ++t, 600, last, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(f->st, "mallory", "10.0.0.66", first, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);	/* the flooder's own oldest made room */
	assert_int_equal(ftm_store_challenge_take(f->st, "mallory", "10.0.0.66", last, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);		/* the newest stays */
	assert_int_equal(ftm_store_challenge_take(f->st, "bob", "10.0.0.9", victim, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);		/* the victim's is untouched */

	/* one client identity (many users behind one NAT address): its own oldest go beyond the client cap */
	assert_int_equal(ftm_store_challenge_issue(f->st, "bob", "10.0.0.9", ++t, 600, victim, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_issue(f->st, "u0", "10.0.0.77", ++t, 600, first, err, sizeof(err)), 0);
	for (int i = 1; i <= FTM_STATES_PER_CLIENT + 8; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		assert_int_equal(ftm_store_challenge_issue(f->st, user, "10.0.0.77", ++t, 600, last, err, sizeof(err)), 0);
	}
	assert_int_equal(ftm_store_challenge_take(f->st, "u0", "10.0.0.77", first, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);
	assert_int_equal(ftm_store_challenge_take(f->st, user, "10.0.0.77", last, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	assert_int_equal(ftm_store_challenge_take(f->st, "bob", "10.0.0.9", victim, t, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
}

/* ---- keys ---- */

static void a_node_with_another_key_is_refused(void **state)
{
	fixture_t *f = *state;
	char other[160], err[512] = "";

	uint8_t key[32];
	FILE *fp;

	snprintf(other, sizeof(other), "%s/other.key", f->dir);
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	umask(077);
	fp = fopen(other, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(key, 1, sizeof(key), fp), sizeof(key));
	fclose(fp);
	assert_null(open_node(f, other, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match the token store"));
}

static void a_node_without_the_key_file_is_refused_and_creates_none(void **state)
{
	fixture_t *f = *state;
	char missing[160], err[512] = "";
	struct stat sb;

	snprintf(missing, sizeof(missing), "%s/missing.key", f->dir);
	assert_null(open_node(f, missing, err, sizeof(err)));
	assert_non_null(strstr(err, "is missing but the token store already has a seed key"));
	assert_int_equal(stat(missing, &sb), -1);
}

static void a_shared_store_needs_an_explicit_key_file(void **state)
{
	fixture_t *f = *state;
	char err[512] = "";

	assert_null(open_node(f, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "set key_file"));
}

static void a_password_in_the_uri_is_refused(void **state)
{
	fixture_t *f = *state;
	char uri[600], err[512] = "";

	snprintf(uri, sizeof(uri), "postgresql://ftm:hunter2@/%s?host=%s", f->db, pg_host);
	assert_null(ftm_store_open(uri, f->key, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "holds a password"));
	assert_null(strstr(err, "hunter2"));
	snprintf(uri, sizeof(uri), "%s&password=hunter2", f->uri);
	assert_null(ftm_store_open(uri, f->key, NULL, err, sizeof(err)));
	assert_null(strstr(err, "hunter2"));
}

/* ---- the database down ---- */

static void an_unreachable_database_is_refused_at_open(void **state)
{
	fixture_t *f = *state;
	char err[512] = "";

	assert_null(ftm_store_open("postgresql:///ftm?host=/nonexistent-ftm-dir&user=ftm", f->key, NULL,
				   err, sizeof(err)));
	assert_non_null(strstr(err, "PostgreSQL"));
	assert_non_null(strstr(err, "connect"));
}

static int run_cmd(const char *env)
{
	const char *cmd = getenv(env);

	if (cmd == NULL)
		fail_msg("%s not set (run through test_store_pg.sh)", env);
	return system(cmd);
}

/* Stopped: every verdict fails closed at once (no wait per login), nothing is changed. Started
 * again: verdicts work on the same handle, within the reconnect backoff. Runs last: it restarts
 * the server. */
static void while_the_database_is_down_verdicts_fail_closed_and_recover_by_themselves(void **state)
{
	fixture_t *f = *state;
	struct timespec a, b;
	ftm_verdict_t v;
	int tries = 0;

	add(f->st, "alice", "S1");
	assert_int_equal(run_cmd("FTM_TEST_PG_STOP"), 0);
	for (int i = 0; i < 5; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		v = verify(f->st, "alice", C1, T1, 5);
		clock_gettime(CLOCK_MONOTONIC, &b);
		assert_int_equal(v.code, FTM_VERDICT_ERROR);
		assert_string_equal(v.message, "Token store unavailable");
		assert_non_null(strstr(v.reason, "PostgreSQL"));
		assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 2000);
	}
	assert_int_equal(run_cmd("FTM_TEST_PG_START"), 0);
	do {
		v = verify(f->st, "alice", C1, T1, 5);
		if (v.code == FTM_VERDICT_ERROR)
			usleep(100 * 1000);
	} while (v.code == FTM_VERDICT_ERROR && ++tries < 100);
	assert_int_equal(v.code, FTM_VERDICT_OK);	/* the code was not consumed while down */
	assert_int_equal(verify(f->st, "alice", C1, T1, 5).code, FTM_VERDICT_REPLAY);
}

/* A verdict recorded through one node is heard on another's LISTEN connection at once: the payload is
 * the transaction id only, the row holds the verdict. */
struct heard {
	pthread_mutex_t	mu;
	int		ids, rereads;
	char		last[40];
};

static void on_heard(void *ctx, const char *id)
{
	struct heard *h = ctx;

	pthread_mutex_lock(&h->mu);
	if (id == NULL) {
		h->rereads++;
	} else {
		h->ids++;
		snprintf(h->last, sizeof(h->last), "%s", id);
	}
	pthread_mutex_unlock(&h->mu);
}

static int heard_ids(struct heard *h)
{
	int n;

	pthread_mutex_lock(&h->mu);
	n = h->ids;
	pthread_mutex_unlock(&h->mu);
	return n;
}

static void a_verdict_on_one_node_is_heard_on_the_other(void **state)
{
	fixture_t *f = *state;
	struct heard h = { .mu = PTHREAD_MUTEX_INITIALIZER };
	struct spec_answer ans = { 0 };
	ftm_push_row_t r, pending;
	char err[256];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));

	assert_non_null(b);
	assert_int_equal(ftm_store_push_watch(b, on_heard, &h, err, sizeof(err)), 0);
	for (int i = 0; i < 100 && h.rereads == 0; i++)	/* connected: the watcher says "re-read" once */
		usleep(20 * 1000);
	spec_row(&r, ID_A, "alice", CLIENT1, PUSH_NOW + 60);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW, &pending, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_push_decide(f->st, FTM_PUSH_BY_ID, ID_A, spec_decide, &ans, err, sizeof(err)), 0);
	for (int i = 0; i < 250 && heard_ids(&h) == 0; i++)	/* at most 5 s */
		usleep(20 * 1000);
	assert_int_equal(heard_ids(&h), 1);
	assert_string_equal(h.last, ID_A);
	/* a replay records nothing, and tells nobody */
	assert_int_equal(ftm_store_push_decide(f->st, FTM_PUSH_BY_ID, ID_A, spec_decide, &ans, err, sizeof(err)), 0);
	usleep(300 * 1000);
	assert_int_equal(heard_ids(&h), 1);
	ftm_store_push_unwatch(b);
	ftm_store_close(b);
}

/* Two nodes asked for a push of one user at the same moment store one; the other gets it back. */
struct put_race {
	ftm_store_t	*st;
	const char	*id;
	int		rc;
	char		got[33];
};

static void *put_one(void *arg)
{
	struct put_race *p = arg;
	ftm_push_row_t r, pending;
	char err[256];

	spec_row(&r, p->id, "alice", CLIENT1, PUSH_NOW + 60);
	p->rc = ftm_store_push_put(p->st, &r, PUSH_NOW, &pending, err, sizeof(err));
	snprintf(p->got, sizeof(p->got), "%s", p->rc == 1 ? pending.id : p->id);
	return NULL;
}

static void two_nodes_pushing_one_user_at_once_store_one_push(void **state)
{
	fixture_t *f = *state;
	char err[256];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));

	assert_non_null(b);
	for (int round = 0; round < 20; round++) {
		char ida[33], idb[33];
		struct put_race x = { f->st, ida, -1, "" }, y = { b, idb, -1, "" };
		pthread_t tx, ty;

		snprintf(ida, sizeof(ida), "a%031d", round);
		snprintf(idb, sizeof(idb), "b%031d", round);
		sql(f, "DELETE FROM ftm_pushes");
		assert_int_equal(pthread_create(&tx, NULL, put_one, &x), 0);
		assert_int_equal(pthread_create(&ty, NULL, put_one, &y), 0);
		pthread_join(tx, NULL);
		pthread_join(ty, NULL);
		assert_int_equal(x.rc + y.rc, 1);	/* one stored (0), one told of it (1) */
		assert_string_equal(x.got, y.got);
		assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_pushes"), 1);
	}
	ftm_store_close(b);
}


/* ---- pending pushes and number-matching States (store_push_spec.h): on two handles ---- */

static ftm_store_t *fixture_other(fixture_t *f, char *err, size_t err_len)
{
	return open_node(f, f->key, err, err_len);
}

FIXTURE_TWO_HANDLES(a_users_second_push_gets_the_pending_one)
FIXTURE_TWO_HANDLES(an_expired_push_is_no_longer_pending_and_old_rows_go)
FIXTURE_TWO_HANDLES(a_capability_decides_its_row_once_on_any_handle)
FIXTURE_TWO_HANDLES(a_number_state_is_taken_once_on_any_handle)
FIXTURE_TWO_HANDLES(a_number_state_flood_flushes_only_the_flooders_own)

/* ---- activation links (store_activation_spec.h): a link made on one node redeemed on another ---- */

#include "store_activation_spec.h"

/* setup, and alice's token S1 with a link in f->code */
static int act_setup(void **state)
{
	fixture_t *f;

	if (setup(state) != 0)
		return -1;
	f = *state;
	return act_spec_setup(f->st, f->code);
}

/* Only the SHA-256 of the code is in the database: no column of the link holds the code. */
static void a_link_is_stored_only_as_the_hash_of_its_code(void **state)
{
	fixture_t *f = *state;
	char q[256];

	assert_int_equal(strlen(f->code), FTM_ACTIVATION_CODE_LEN);
	snprintf(q, sizeof(q), "SELECT count(*) FROM ftm_activations WHERE code_hash = sha256(convert_to('%s', 'UTF8'))",
		 f->code);
	assert_int_equal(sql_long(f, q), 1);
	snprintf(q, sizeof(q), "SELECT count(*) FROM ftm_activations a WHERE strpos(a::text, '%s') > 0"
		 " OR strpos(encode(a.code_hash, 'escape'), '%s') > 0", f->code, f->code);
	assert_int_equal(sql_long(f, q), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_activations"), 1);
}

ACT_SPEC_CASES(ACT_ONE)
ACT_SPEC_CASES2(FIXTURE_TWO_HANDLES)

/* ---- the audit trail and debug on demand (the cases are shared with test_store.c) ---- */

#include "store_audit_cases.h"

/* The fixture's database taken back to an older schema by `downgrade` (SQL statements, NULL-ended)
 * while no handle is open, then opened by a node of this binary: it migrates to the newest version
 * again. The node's handle, also f->st. */
static ftm_store_t *reopened_after(fixture_t *f, const char *const *downgrade)
{
	char err[512];
	ftm_store_t *b;
	long newest = sql_long(f, "SELECT max(version) FROM ftm_schema");

	ftm_store_close(f->st);
	f->st = NULL;
	for (; *downgrade != NULL; downgrade++)
		sql(f, *downgrade);
	b = open_node(f, f->key, err, sizeof(err));
	assert_non_null(b);
	f->st = b;
	assert_int_equal(sql_long(f, "SELECT max(version) FROM ftm_schema"), newest);
	return b;
}

/* A database at version 7 (the audit trail indexed by user, ftm_tokens packed full) loses the index
 * and gains the fillfactor when a newer node opens it; verdicts and the audit trail by user work as
 * before. */
static void a_version_7_database_loses_the_audit_index_by_user(void **state)
{
	fixture_t *f = *state;
	static const char *const to_7[] = {
		"CREATE INDEX ftm_audit_by_user ON ftm_audit (username, id)",
		"ALTER TABLE ftm_tokens RESET (fillfactor)",
		"DELETE FROM ftm_schema WHERE version >= 8", NULL
	};
	ftm_store_t *b = reopened_after(f, to_7);

	assert_int_equal(sql_long(f, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ftm_audit_by_user'"), 0);
	/* ftm_audit_by_at stays: the retention pass deletes by time */
	assert_int_equal(sql_long(f, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ftm_audit_by_at'"), 1);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM pg_class WHERE relname = 'ftm_tokens'"
				     " AND 'fillfactor=50' = ANY(reloptions)"), 1);
	add(b, "alice", "S1");
	assert_int_equal(verify(b, "alice", C1, T1, 5).code, FTM_VERDICT_OK);
	assert_int_equal(verify(b, "alice", C1, T1, 5).code, FTM_VERDICT_REPLAY);
	audit_case_rows_are_selected_by_user_result_time_and_count(b);
}

/* A database at version 8 (the audit trail's index by time a btree) gets a BRIN index by time when a
 * newer node opens it; verdicts leave their audit rows and the retention pass drops only older rows. */
static void a_version_8_database_gets_a_brin_audit_index_by_time(void **state)
{
	fixture_t *f = *state;
	static const char *const to_8[] = {
		"DROP INDEX ftm_audit_by_at",
		"CREATE INDEX ftm_audit_by_at ON ftm_audit (at)",
		"DELETE FROM ftm_schema WHERE version >= 9", NULL
	};
	ftm_store_t *b = reopened_after(f, to_8);

	assert_true(sql_long(f, "SELECT max(version) FROM ftm_schema") >= 9);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM pg_indexes WHERE indexname = 'ftm_audit_by_at'"
				     " AND indexdef LIKE '%USING brin (at)%'"), 1);
	audit_case_prune_drops_only_older_rows(b);
	add(b, "alice", "S1");
	assert_int_equal(listed_verify(b, "alice", C1, T1), FTM_VERDICT_OK);
	assert_int_equal(listed_verify(b, "alice", C1, T1), FTM_VERDICT_REPLAY);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_audit WHERE username = 'alice'"), 2);
}

static void each_verdict_leaves_one_audit_row(void **state)
{
	fixture_t *f = *state;

	add(f->st, "alice", "S1");
	audit_case_each_verdict_leaves_one_row(f->st);
}

static void refuse_audit_rows(void *ctx)
{
	sql(ctx, "DROP TABLE ftm_audit");
}

static void an_unwritable_audit_row_fails_the_verdict_closed(void **state)
{
	fixture_t *f = *state;

	add(f->st, "alice", "S1");
	audit_case_an_unwritable_row_fails_the_verdict_closed(f->st, refuse_audit_rows, f);
}

static void audit_rows_are_selected_by_user_result_time_and_count(void **state)
{
	audit_case_rows_are_selected_by_user_result_time_and_count(((fixture_t *)*state)->st);
}

static void audit_prune_drops_only_older_rows(void **state)
{
	audit_case_prune_drops_only_older_rows(((fixture_t *)*state)->st);
}

static void debug_switches_expire_and_clear(void **state)
{
	debug_case_switches_expire_and_clear(((fixture_t *)*state)->st);
}

/* A row written on one node is read on the other: one trail for the cluster. */
static void an_audit_row_of_one_node_is_listed_on_another(void **state)
{
	fixture_t *f = *state;
	char err[512];
	ftm_store_t *b;
	ftm_audit_row_t a = audit_at("alice", FTM_AUDIT_ACCEPTED, 1000);

	assert_int_equal(ftm_store_audit_append(f->st, &a, err, sizeof(err)), 0);
	b = open_node(f, f->key, err, sizeof(err));
	assert_non_null(b);
	assert_int_equal(audit_rows(b, "alice", NULL, 0, 0).n, 1);
	assert_int_equal(ftm_store_debug_set(b, "alice", 2000, 1000, err, sizeof(err)), 0);
	assert_int_equal(debug_switches(f->st, 1000).n, 1);
	ftm_store_close(b);
}

/* An audit listing hands the rows on as it reads them, a chunk per round trip, all from one snapshot:
 * a row appended meanwhile (here from the callback, which may call back into the store) is not in it;
 * the order is the trail's across chunks, with or without a filter and a limit. */
struct audit_listing {
	fixture_t	*f;
	size_t		n;
	size_t		kill_at;	/* terminate the listing's session as row kill_at is handed on (0: never) */
	int64_t		first_id, last_id;
	bool		ordered, append, saw_new;
};

static int audit_listing_cb(void *ctx, const ftm_audit_row_t *row)
{
	struct audit_listing *l = ctx;
	char err[256];

	if (l->n == 0)
		l->first_id = row->id;
	else if (row->id <= l->last_id)
		l->ordered = false;
	l->last_id = row->id;
	l->saw_new |= strcmp(row->user, "late") == 0;
	if (l->n == 0 && l->append) {
		ftm_audit_row_t a = audit_at("late", FTM_AUDIT_ACCEPTED, 99999);

		assert_int_equal(ftm_store_audit_append(l->f->st, &a, err, sizeof(err)), 0);
	}
	if (++l->n == l->kill_at)
		sql(l->f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database()"
			  " AND state = 'idle in transaction' AND pid <> pg_backend_pid()");
	return 0;
}

static struct audit_listing audit_listing(fixture_t *f, const ftm_audit_filter_t *flt, bool append, int rc_want)
{
	struct audit_listing l = { .f = f, .ordered = true, .append = append, .kill_at = rc_want != 0 ? 1500 : 0 };
	char err[256] = "";

	assert_int_equal(ftm_store_audit_list(f->st, flt, audit_listing_cb, &l, err, sizeof(err)), rc_want);
	if (rc_want != 0)
		assert_non_null(strstr(err, "audit"));
	assert_true(l.ordered);
	return l;
}

/* 2500 rows, id 1..2500 at 1001..3500, users u0..u9 in turn, every fifth result wrong */
static void audit_trail_of_2500(fixture_t *f)
{
	sql(f, "INSERT INTO ftm_audit (at, event, result, username, serial, client, nas, frontend, node, reason)"
	       " SELECT 1000 + g, 'code', CASE WHEN g % 5 = 0 THEN 'wrong' ELSE 'accepted' END, 'u' || (g % 10), 'S1',"
	       " '192.0.2.7', 'vpn-gw', 'radius', 'node-a', '' FROM generate_series(1, 2500) g");
}

static void an_audit_listing_is_one_snapshot_streamed_in_order(void **state)
{
	fixture_t *f = *state;
	ftm_audit_filter_t all = { 0 }, newest = { .limit = 1200 }, u3 = { .user = "u3", .since = 2001 },
			   wrong = { .result = FTM_AUDIT_WRONG, .limit = 300 };
	struct audit_listing l;

	audit_trail_of_2500(f);
	l = audit_listing(f, &all, true, 0);
	assert_int_equal(l.n, 2500);	/* three round trips of the cursor */
	assert_false(l.saw_new);	/* appended after the listing began */
	l = audit_listing(f, &all, false, 0);
	assert_int_equal(l.n, 2501);
	assert_true(l.saw_new);
	l = audit_listing(f, &newest, false, 0);	/* the newest 1200, oldest first */
	assert_int_equal(l.n, 1200);
	assert_int_equal(l.last_id - l.first_id, 1199);
	assert_true(l.saw_new);
	l = audit_listing(f, &u3, false, 0);	/* at >= 2001: g 1001..2500 of u3 */
	assert_int_equal(l.n, 150);
	l = audit_listing(f, &wrong, false, 0);	/* 500 wrong rows, the newest 300 */
	assert_int_equal(l.n, 300);
	assert_int_equal(l.last_id, 2500);
	assert_int_equal(l.first_id, 1005);
}

/* The listing's session ended between two of its round trips: the listing fails (-1, why in err) after
 * the rows it handed on, never a short trail that looks whole; the handle lists again. */
static void an_audit_listing_whose_session_dies_midway_fails(void **state)
{
	fixture_t *f = *state;
	ftm_audit_filter_t all = { 0 };
	struct audit_listing l;

	audit_trail_of_2500(f);
	l = audit_listing(f, &all, false, -1);
	assert_int_equal(l.n, 2000);	/* the chunk read already, then the next round trip failed */
	l = audit_listing(f, &all, false, 0);
	assert_int_equal(l.n, 2500);
}

/* ---- recovery codes on many nodes ---- */

static ftm_verdict_t recover(ftm_store_t *st, const char *code, unsigned threshold)
{
	ftm_verify_params_t p = params(threshold);
	ftm_verdict_t v;

	ftm_store_recovery_verify(st, "alice", code, T1, &p, &v);
	return v;
}

static void a_recovery_code_used_on_one_node_is_refused_on_another(void **state)
{
	fixture_t *f = *state;
	char err[256], codes[2][FTM_RECOVERY_LEN + 1];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	unsigned left, total;
	ftm_verdict_t v;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", 2, T1, codes, err, sizeof(err)), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_recovery_codes WHERE username = 'alice'"), 2);
	/* only salted hashes at rest */
	{
		char q[160];

		snprintf(q, sizeof(q), "SELECT count(*) FROM ftm_recovery_codes WHERE position('%s'::bytea in hash) > 0"
			 " OR position('%s'::bytea in salt) > 0", codes[0], codes[0]);
		assert_int_equal(sql_long(f, q), 0);
	}
	assert_int_equal(verify(f->st, "alice", BAD, T1, 5).failures, 1);
	v = recover(b, codes[0], 5);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(v.recovery_left, 1);
	assert_int_equal(get(f->st, "S1").failures, 0);
	assert_int_equal(recover(f->st, codes[0], 5).code, FTM_VERDICT_REPLAY);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", &left, &total, err, sizeof(err)), 0);
	assert_int_equal(left, 1);
	assert_int_equal(total, 2);
	ftm_store_close(b);
}

static void wrong_recovery_codes_on_two_nodes_add_up_to_the_lockout(void **state)
{
	fixture_t *f = *state;
	char err[256], codes[1][FTM_RECOVERY_LEN + 1];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	ftm_verdict_t v;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", 1, T1, codes, err, sizeof(err)), 0);
	assert_int_equal(recover(f->st, "zzzzz-zzzzz", 2).code, FTM_VERDICT_BAD_CODE);
	v = recover(b, "zzzzz-zzzzy", 2);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
	/* locked: the right code is refused and not used up */
	v = recover(f->st, codes[0], 2);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_int_equal(v.recovery_left, 1);
	ftm_store_close(b);
}

static void regenerated_recovery_codes_revoke_the_old_set_on_every_node(void **state)
{
	fixture_t *f = *state;
	char err[256], old[1][FTM_RECOVERY_LEN + 1], fresh[1][FTM_RECOVERY_LEN + 1];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));

	assert_non_null(b);
	add(f->st, "alice", "S1");
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", 1, T1, old, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_recovery_issue(b, "alice", 1, T1, fresh, err, sizeof(err)), 0);
	assert_int_equal(recover(f->st, old[0], 5).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(recover(f->st, fresh[0], 5).code, FTM_VERDICT_OK);
	/* the user's last token deleted: the codes go with it */
	assert_int_equal(ftm_store_token_delete(b, "S1", err, sizeof(err)), 0);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_recovery_codes"), 0);
	ftm_store_close(b);
}

struct recovery_race {
	ftm_store_t	*st;
	const char	*code;
	int		ok, used, other;
};

static void *recovery_racer(void *arg)
{
	struct recovery_race *r = arg;

	for (int i = 0; i < ROUNDS; i++) {
		ftm_verdict_t v = recover(r->st, r->code, 0);

		if (v.code == FTM_VERDICT_OK)
			r->ok++;
		else if (v.code == FTM_VERDICT_REPLAY)
			r->used++;
		else
			r->other++;
	}
	return NULL;
}

static void a_recovery_code_raced_on_two_nodes_has_one_winner(void **state)
{
	fixture_t *f = *state;
	char err[256], codes[1][FTM_RECOVERY_LEN + 1];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	pthread_t tid[THREADS];
	struct recovery_race r[THREADS];
	int ok = 0, used = 0;

	assert_non_null(b);
	add(f->st, "alice", "S1");
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", 1, T1, codes, err, sizeof(err)), 0);
	for (int i = 0; i < THREADS; i++) {
		r[i] = (struct recovery_race){ .st = i % 2 ? b : f->st, .code = codes[0] };
		assert_int_equal(pthread_create(&tid[i], NULL, recovery_racer, &r[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(r[i].other, 0);
		ok += r[i].ok;
		used += r[i].used;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(used, THREADS * ROUNDS - 1);
	ftm_store_close(b);
}

/* ---- the verdict policy and the timed unlock, on every node ---- */

static ftm_policy_t policy_of(ftm_store_t *st)
{
	ftm_policy_t pol;
	char err[256] = "";

	assert_int_equal(ftm_store_policy(st, &pol, err, sizeof(err)), 0);
	return pol;
}

static void a_policy_set_on_one_node_is_every_nodes(void **state)
{
	fixture_t *f = *state;
	char err[256] = "", old[32];
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err)), *c;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	int i;

	assert_non_null(b);
	assert_int_equal(policy_of(b).lockout_duration, 0);
	assert_int_equal(policy_of(b).window, 1);
	assert_int_equal(ftm_store_policy_set(f->st, "lockout_duration", "15", old, sizeof(old), err, sizeof(err)), 0);
	assert_string_equal(old, "0");
	assert_int_equal(ftm_store_policy_set(f->st, "window", "11", NULL, 0, err, sizeof(err)), -1);	/* 0-10 */
	c = open_node(f, f->key, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(policy_of(c).lockout_duration, 15);
	for (i = 0; i < 10 * (FTM_POLICY_REFRESH_SECONDS + 1) && policy_of(b).lockout_duration != 15; i++)
		nanosleep(&tick, NULL);
	assert_int_equal(policy_of(b).lockout_duration, 15);
	assert_int_equal(policy_of(b).window, 1);
	assert_int_equal(sql_long(f, "SELECT count(*) FROM ftm_settings"), 5);
	ftm_store_close(c);
	ftm_store_close(b);
}

static void a_lock_by_failures_on_one_node_ends_on_another_and_an_admin_lock_stays(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";
	ftm_store_t *b = open_node(f, f->key, err, sizeof(err));
	ftm_verify_params_t p = params(2);
	ftm_verdict_t v;
	ftm_token_t t;

	assert_non_null(b);
	p.lockout_duration = 10;
	add(f->st, "alice", "S1");
	add(f->st, "bob", "S2");
	ftm_store_verify_code(f->st, "alice", BAD, T1, &p, &v);
	ftm_store_verify_code(b, "alice", BAD, T1, &p, &v);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_string_equal(v.message, "Token locked: try again in 10 minutes");
	t = get(f->st, "S1");
	assert_int_equal(t.lock_reason, FTM_LOCK_FAILURES);
	assert_int_equal(t.locked_at, T1);
	ftm_store_verify_code(f->st, "alice", C1, T1 + 599, &p, &v);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	ftm_store_verify_code(f->st, "alice", BAD, T1 + 600, &p, &v);	/* ended: counts from zero */
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(v.failures, 1);
	assert_int_equal(get(b, "S1").status, FTM_TOKEN_ACTIVE);
	/* an admin's lock: no duration ends it */
	assert_int_equal(ftm_store_token_set_status(b, "S2", FTM_TOKEN_LOCKED, err, sizeof(err)), 0);
	assert_int_equal(get(f->st, "S2").lock_reason, FTM_LOCK_ADMIN);
	ftm_store_verify_code(f->st, "bob", BAD, time(NULL) + 86400, &p, &v);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_string_equal(v.message, "Token locked");
	ftm_store_close(b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TA(fn) cmocka_unit_test_setup_teardown(fn, act_setup, teardown),
	const struct CMUnitTest tests[] = {
		T(a_users_second_push_gets_the_pending_one),
		T(a_verdict_on_one_node_is_heard_on_the_other),
		T(two_nodes_pushing_one_user_at_once_store_one_push),
		T(an_expired_push_is_no_longer_pending_and_old_rows_go),
		T(a_capability_decides_its_row_once_on_any_handle),
		T(a_number_state_is_taken_once_on_any_handle),
		T(a_number_state_flood_flushes_only_the_flooders_own),
		T(open_creates_the_schema_at_the_newest_version),
		T(a_version_1_database_is_migrated_with_its_tokens),
		T(a_challenge_issued_on_one_node_is_answered_once_on_another),
		T(a_challenge_flood_flushes_only_the_flooders_own_states),
		T(a_version_6_database_gains_activation_links),
		T(a_version_7_database_loses_the_audit_index_by_user),
		T(a_version_8_database_gets_a_brin_audit_index_by_time),
		T(a_database_newer_than_the_binary_is_refused),
		T(a_postgresql_store_is_not_backed_up_by_ftmpush),
		T(a_policy_set_on_one_node_is_every_nodes),
		T(a_lock_by_failures_on_one_node_ends_on_another_and_an_admin_lock_stays),
		T(tokens_are_added_read_changed_listed_and_deleted),
		T(an_import_leaves_the_table_analyzed),
		T(an_import_of_many_chunks_is_all_or_nothing_and_names_the_serial_that_exists),
		T(an_import_keeps_every_column_as_given),
		T(tokens_present_marks_exactly_the_serials_in_the_store),
		T(lists_order_by_user_then_serial_bytewise),
		T(a_listing_of_every_token_is_one_snapshot_streamed_in_order),
		T(a_listing_whose_session_dies_midway_fails),
		T(a_code_accepted_on_one_node_is_a_replay_on_another),
		T(wrong_codes_on_two_nodes_add_up_to_the_lockout),
		T(threads_on_two_nodes_accept_a_code_exactly_once),
		T(a_recovery_code_used_on_one_node_is_refused_on_another),
		T(wrong_recovery_codes_on_two_nodes_add_up_to_the_lockout),
		T(regenerated_recovery_codes_revoke_the_old_set_on_every_node),
		T(a_recovery_code_raced_on_two_nodes_has_one_winner),
		T(a_verdict_waits_for_the_users_rows_and_reads_the_committed_state),
		T(a_verdict_after_a_list_sees_what_another_node_wrote_meanwhile),
		T(a_listed_verdict_waiting_on_the_rows_answers_from_what_was_committed),
		T(a_verdict_that_fails_half_way_leaves_nothing_behind),
		T(a_verdict_whose_session_dies_before_its_commit_fails_and_writes_nothing),
		T(connections_closed_by_the_server_are_replaced_without_reopening),
		T(threads_of_one_handle_deciding_different_users_are_all_durable_and_right),
		T(one_users_code_raced_by_threads_of_two_handles_is_accepted_once),
		T(a_batch_whose_connection_is_killed_fails_every_verdict_and_writes_nothing),
		T(a_refused_batch_is_decided_again_verdict_by_verdict),
		T(a_node_with_another_key_is_refused),
		T(a_node_without_the_key_file_is_refused_and_creates_none),
		T(a_shared_store_needs_an_explicit_key_file),
		T(a_password_in_the_uri_is_refused),
		T(an_unreachable_database_is_refused_at_open),
		T(while_the_database_is_down_verdicts_fail_closed_and_recover_by_themselves),
		T(each_verdict_leaves_one_audit_row),
		T(an_unwritable_audit_row_fails_the_verdict_closed),
		T(audit_rows_are_selected_by_user_result_time_and_count),
		T(audit_prune_drops_only_older_rows),
		T(debug_switches_expire_and_clear),
		T(an_audit_row_of_one_node_is_listed_on_another),
		T(an_audit_listing_is_one_snapshot_streamed_in_order),
		T(an_audit_listing_whose_session_dies_midway_fails),
		TA(a_link_is_stored_only_as_the_hash_of_its_code)
		ACT_SPEC_CASES(TA)
		ACT_SPEC_CASES2(TA)
	};

	pg_host = getenv("FTM_TEST_PG_HOST");
	if (pg_host == NULL || pg_host[0] == '\0') {
		fprintf(stderr, "FTM_TEST_PG_HOST not set: run through tests/unit/test_store_pg.sh\n");
		return 77;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}

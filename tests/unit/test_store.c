/* test_store: the token store and its verdict, as a specification. Codes are RFC 6238 appendix B
 * values (SHA1 seed "12345678901234567890", 30 s, 8 digits), never computed by ftmpush. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "ftm_message.h"
#include "ftm_store.h"
#include "store_fixture.h"
#include "store_push_spec.h"
#include "ftm_trace.h"

/* RFC 6238 appendix B, SHA1: a step far from T1 and T2 (store_fixture.h) */
#define T3		1234567890LL
#define C3		"89005924"

typedef struct fixture {
	char		dir[64];
	char		db[128];
	char		key[160];
	ftm_store_t	*st;
} fixture_t;

static ftm_verify_params_t params(unsigned threshold, unsigned activation, bool consume)
{
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = threshold,
				  .activation_expire = activation, .consume = consume };
	return p;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	char err[256];

	if (fixture_dir(f->dir, "store") != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/tokens.db", f->dir);
	snprintf(f->key, sizeof(f->key), "%s/tokens.db.key", f->dir);
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
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

/* An RFC token for `user`: sha1, 8 digits, 30 s, created just before T1. */
static ftm_token_t rfc_token(const char *user, const char *serial)
{
	ftm_token_t t;

	assert_int_equal(fixture_rfc_token(&t, user, serial), 0);
	return t;
}

static void add(fixture_t *f, const char *user, const char *serial)
{
	ftm_token_t t = rfc_token(user, serial);
	char err[256];

	assert_int_equal(ftm_store_token_add(f->st, &t, err, sizeof(err)), 0);
}

static ftm_token_t get(fixture_t *f, const char *serial)
{
	ftm_token_t t;
	char err[256];

	assert_int_equal(ftm_store_token_get(f->st, serial, &t, err, sizeof(err)), 0);
	return t;
}

static ftm_verdict_t verify(fixture_t *f, const char *user, const char *code, time_t now, ftm_verify_params_t p)
{
	ftm_verdict_t v;

	assert_int_equal(ftm_store_verify_code(f->st, user, code, now, &p, &v), 0);
	return v;
}

/* Through a connection of the test's own, behind the store's back: run sql (a statement or several). */
static void sql_run(fixture_t *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* ---- tokens ---- */

static void add_then_get_returns_the_same_token(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t = rfc_token("alice", "S1"), g;

	snprintf(t.push, sizeof(t.push), "ntfy:alice-topic");
	t.alg = FTM_ALG_SHA256;
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), 0);
	g = get(f, "S1");
	assert_string_equal(g.user, "alice");
	assert_int_equal(g.seed_len, 20);
	assert_memory_equal(g.seed, SEED_ASCII, 20);
	assert_int_equal(g.alg, FTM_ALG_SHA256);
	assert_int_equal(g.digits, 8);
	assert_int_equal(g.period, 30);
	assert_int_equal(g.status, FTM_TOKEN_ACTIVE);
	assert_int_equal(g.last_step, -1);
	assert_int_equal(g.failures, 0);
	assert_string_equal(g.push, "ntfy:alice-topic");
	assert_int_equal(g.created, T1 - 60);
}

static void adding_an_existing_serial_is_refused(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t = rfc_token("bob", "S1");
	char err[256] = "";

	add(f, "alice", "S1");
	assert_int_equal(ftm_store_token_add(f->st, &t, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "S1"));
	assert_string_equal(get(f, "S1").user, "alice");
}

static void get_of_an_unknown_serial_is_not_found(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t;

	assert_int_equal(ftm_store_token_get(f->st, "NOPE", &t, NULL, 0), 1);
}

static void invalid_tokens_are_refused(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t = rfc_token("alice", "S1");

	t.digits = 5;
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), -1);
	t = rfc_token("alice", "S1");
	t.period = 0;
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), -1);
	t = rfc_token("alice", "S1");
	snprintf(t.serial, sizeof(t.serial), "bad serial");
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), -1);
	t = rfc_token("alice", "S1");
	snprintf(t.push, sizeof(t.push), "no-colon");
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), -1);
	t = rfc_token("alice", "S1");
	t.seed_len = 4;
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), -1);
}

struct collected {
	char	serials[8][FTM_SERIAL_MAX];
	size_t	n;
};

static int collect(void *ctx, const ftm_token_t *t)
{
	struct collected *c = ctx;

	if (c->n < 8)
		snprintf(c->serials[c->n++], FTM_SERIAL_MAX, "%s", t->serial);
	return 0;
}

static void list_orders_by_user_then_serial_and_filters_by_user(void **state)
{
	fixture_t *f = *state;
	struct collected all = { .n = 0 }, bob = { .n = 0 };

	add(f, "bob", "B2");
	add(f, "alice", "A1");
	add(f, "bob", "B1");
	assert_int_equal(ftm_store_token_list(f->st, NULL, collect, &all, NULL, 0), 0);
	assert_int_equal(all.n, 3);
	assert_string_equal(all.serials[0], "A1");
	assert_string_equal(all.serials[1], "B1");
	assert_string_equal(all.serials[2], "B2");
	assert_int_equal(ftm_store_token_list(f->st, "bob", collect, &bob, NULL, 0), 0);
	assert_int_equal(bob.n, 2);
	assert_string_equal(bob.serials[0], "B1");
}

static int collect_seedless(void *ctx, const ftm_token_t *t)
{
	if (t->seed_len != 0)
		return 1;	/* a seed handed out: the list stops short and the test sees it */
	return collect(ctx, t);
}

static void list_info_lists_the_same_tokens_without_unsealing_a_seed(void **state)
{
	fixture_t *f = *state;
	struct collected info = { .n = 0 }, full = { .n = 0 };

	add(f, "bob", "B1");
	add(f, "alice", "A1");
	assert_int_equal(ftm_store_token_list_info(f->st, NULL, collect_seedless, &info, NULL, 0), 0);
	assert_int_equal(info.n, 2);
	assert_string_equal(info.serials[0], "A1");
	assert_string_equal(info.serials[1], "B1");

	/* alice's sealed seed destroyed: the full list (which unseals) fails, the info list still lists */
	sql_run(f, "UPDATE tokens SET seed = zeroblob(length(seed)) WHERE serial = 'A1'");
	assert_int_equal(ftm_store_token_list(f->st, NULL, collect, &full, NULL, 0), -1);
	memset(&info, 0, sizeof(info));
	assert_int_equal(ftm_store_token_list_info(f->st, "alice", collect_seedless, &info, NULL, 0), 0);
	assert_int_equal(info.n, 1);
	assert_string_equal(info.serials[0], "A1");
}

static void lock_then_unlock_resets_failures(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	verify(f, "alice", BAD, T1, params(5, 0, true));
	assert_int_equal(get(f, "S1").failures, 1);
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_ACTIVE, NULL, 0), 0);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(ftm_store_token_set_status(f->st, "NOPE", FTM_TOKEN_LOCKED, NULL, 0), 1);
}

static void delete_removes_the_token(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t;

	add(f, "alice", "S1");
	assert_int_equal(ftm_store_token_delete(f->st, "S1", NULL, 0), 0);
	assert_int_equal(ftm_store_token_get(f->st, "S1", &t, NULL, 0), 1);
	assert_int_equal(ftm_store_token_delete(f->st, "S1", NULL, 0), 1);
}

static void set_push_and_assign_change_only_that(void **state)
{
	fixture_t *f = *state;

	add(f, "", "HT1");	/* an unassigned hard token */
	assert_int_equal(verify(f, "", C1, T1, params(5, 0, true)).code, FTM_VERDICT_NO_TOKEN);
	assert_int_equal(ftm_store_token_set_user(f->st, "HT1", "carol", NULL, 0), 0);
	assert_int_equal(ftm_store_token_set_push(f->st, "HT1", "gateway:reg-1", NULL, 0), 0);
	assert_int_equal(ftm_store_token_set_push(f->st, "HT1", "nocolon", NULL, 0), -1);
	assert_string_equal(get(f, "HT1").user, "carol");
	assert_string_equal(get(f, "HT1").push, "gateway:reg-1");
	assert_int_equal(verify(f, "carol", C1, T1, params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void reissue_replaces_the_seed_and_resets_state(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t;

	add(f, "alice", "S1");
	assert_int_equal(verify(f, "alice", C1, T1, params(5, 0, true)).code, FTM_VERDICT_OK);
	assert_int_equal(ftm_token_init(&t, "alice", "S1", NULL, NULL, 0), 0);
	assert_int_equal(ftm_store_token_reissue(f->st, &t, NULL, 0), 0);
	assert_int_equal(get(f, "S1").last_step, -1);
	assert_memory_equal(get(f, "S1").seed, t.seed, 20);
	assert_string_equal(get(f, "S1").user, "alice");
	assert_int_equal(ftm_store_token_reissue(f->st, &(ftm_token_t){ .serial = "NOPE", .seed_len = 20,
			 .digits = 6, .period = 30 }, NULL, 0), 1);
}

static void import_is_all_or_nothing(void **state)
{
	fixture_t *f = *state;
	ftm_token_t batch[3] = { rfc_token("u1", "I1"), rfc_token("u2", "I2"), rfc_token("u3", "EXISTING") };
	struct collected c = { .n = 0 };
	char err[256] = "";

	add(f, "someone", "EXISTING");
	assert_int_equal(ftm_store_token_import(f->st, batch, 3, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "EXISTING"));
	batch[2] = rfc_token("u3", "I1");	/* duplicate inside the batch */
	assert_int_equal(ftm_store_token_import(f->st, batch, 3, NULL, 0), -1);
	batch[2] = rfc_token("u3", "I3");
	batch[2].digits = 9;			/* invalid row */
	assert_int_equal(ftm_store_token_import(f->st, batch, 3, NULL, 0), -1);
	assert_int_equal(ftm_store_token_list(f->st, NULL, collect, &c, NULL, 0), 0);
	assert_int_equal(c.n, 1);
	batch[2] = rfc_token("u3", "I3");
	assert_int_equal(ftm_store_token_import(f->st, batch, 3, NULL, 0), 0);
	c.n = 0;
	assert_int_equal(ftm_store_token_list(f->st, NULL, collect, &c, NULL, 0), 0);
	assert_int_equal(c.n, 4);
}

/* An import is sealed and inserted a chunk at a time (FTM_STORE_INSERT_CHUNK) in one transaction: a
 * serial already there in a later chunk leaves nothing of the earlier ones, and is named; rows at the
 * chunks' edges come back as they went in. */
static int count_listed(void *ctx, const ftm_token_t *t)
{
	(void)t;
	(*(size_t *)ctx)++;
	return 0;
}

static void an_import_of_many_chunks_is_all_or_nothing(void **state)
{
	fixture_t *f = *state;
	size_t n = 2500;
	ftm_token_t *toks = calloc(n, sizeof(*toks));
	size_t listed = 0;
	char err[256] = "", user[32], serial[32];

	assert_non_null(toks);
	for (size_t i = 0; i < n; i++) {
		snprintf(user, sizeof(user), "u%zu", i);
		snprintf(serial, sizeof(serial), "C%zu", i);
		toks[i] = rfc_token(user, serial);
	}
	add(f, "someone", "C2200");
	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), -1);
	assert_string_equal(err, "token C2200 already exists");
	assert_int_equal(ftm_store_token_list_info(f->st, NULL, count_listed, &listed, NULL, 0), 0);
	assert_int_equal(listed, 1);
	assert_int_equal(ftm_store_token_delete(f->st, "C2200", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_import(f->st, toks, n, err, sizeof(err)), 0);
	listed = 0;
	assert_int_equal(ftm_store_token_list_info(f->st, NULL, count_listed, &listed, NULL, 0), 0);
	assert_int_equal(listed, n);
	assert_string_equal(get(f, "C999").user, "u999");
	assert_string_equal(get(f, "C1000").user, "u1000");
	assert_string_equal(get(f, "C2499").user, "u2499");
	assert_memory_equal(get(f, "C1000").seed, toks[1000].seed, 20);
	ftm_memzero(toks, n * sizeof(*toks));
	free(toks);
}

/* An import's check: which serials are in the store, all asked at once. */
static void tokens_present_marks_exactly_the_serials_in_the_store(void **state)
{
	fixture_t *f = *state;
	const char *serials[] = { "P1", "P2", "P3", "P4" };
	bool in[4] = { true, true, true, true };
	char err[256] = "";

	add(f, "alice", "P2");
	add(f, "bob", "P4");
	add(f, "carol", "P5");
	assert_int_equal(ftm_store_tokens_present(f->st, serials, 4, in, err, sizeof(err)), 0);
	assert_false(in[0]);
	assert_true(in[1]);
	assert_false(in[2]);
	assert_true(in[3]);
	assert_int_equal(ftm_store_tokens_present(f->st, serials, 0, in, err, sizeof(err)), 0);
}

/* ---- at rest ---- */

static bool file_contains(const char *path, const void *needle, size_t n)
{
	FILE *fp = fopen(path, "rb");
	static char buf[1 << 20];
	size_t len;
	bool found = false;

	if (fp == NULL)
		return false;
	len = fread(buf, 1, sizeof(buf), fp);
	fclose(fp);
	for (size_t i = 0; i + n <= len && !found; i++)
		found = memcmp(buf + i, needle, n) == 0;
	return found;
}

static void seeds_are_not_in_clear_in_the_database(void **state)
{
	fixture_t *f = *state;
	char wal[200];

	add(f, "alice", "S1");
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_true(file_contains(f->db, "alice", 5) || file_contains(wal, "alice", 5));	/* we read the right files */
	assert_false(file_contains(f->db, SEED_ASCII, 20));
	assert_false(file_contains(wal, SEED_ASCII, 20));
	assert_false(file_contains(f->db, SEED_HEX, 40));
	assert_false(file_contains(wal, SEED_HEX, 40));
}

static void database_and_key_file_are_created_0600(void **state)
{
	fixture_t *f = *state;
	struct stat sb;

	assert_int_equal(stat(f->key, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_size, 32);
	assert_int_equal(stat(f->db, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
}

static void key_file_readable_by_others_is_refused(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";

	assert_int_equal(chmod(f->key, 0640), 0);
	assert_null(ftm_store_open(f->db, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "group or others"));
	assert_int_equal(chmod(f->key, 0600), 0);
}

static void key_file_of_the_wrong_size_is_refused(void **state)
{
	fixture_t *f = *state;
	char other[200], err[256] = "";
	int fd;

	snprintf(other, sizeof(other), "%s/short.key", f->dir);
	fd = open(other, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "0123456789", 10), 10);
	close(fd);
	assert_null(ftm_store_open(f->db, other, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "expected 32"));
}

static void another_key_file_is_refused_at_open(void **state)
{
	fixture_t *f = *state;
	char other[200], err[256] = "";

	char other_db[200];
	ftm_store_t *st;

	add(f, "alice", "S1");
	/* a valid key of another store */
	snprintf(other_db, sizeof(other_db), "%s/other.db", f->dir);
	snprintf(other, sizeof(other), "%s/other.key", f->dir);
	st = ftm_store_open(other_db, other, NULL, err, sizeof(err));
	assert_non_null(st);
	ftm_store_close(st);
	assert_null(ftm_store_open(f->db, other, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "does not match"));
}

static void a_world_writable_store_is_refused(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";

	add(f, "alice", "S1");
	assert_int_equal(chmod(f->db, 0606), 0);
	assert_null(ftm_store_open(f->db, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "world-writable"));
	assert_int_equal(chmod(f->db, 0600), 0);
}

/* statfs as the store sees it (the test links with --wrap=statfs): with fake_fs_type set, the file system
 * of every path reports that type; the real call still runs, so a missing directory still fails. */
static unsigned long fake_fs_type;
int __real_statfs(const char *path, struct statfs *buf);
int __wrap_statfs(const char *path, struct statfs *buf);
int __wrap_statfs(const char *path, struct statfs *buf)
{
	int rc = __real_statfs(path, buf);

	if (rc == 0 && fake_fs_type != 0)
		buf->f_type = (__typeof__(buf->f_type))fake_fs_type;
	return rc;
}

/* SQLite's WAL on a network or cluster file system: a second host keeps a WAL index of its own and
 * verdicts are lost. The open is refused before the file is created, and says what to do instead. */
static void a_store_on_a_network_file_system_is_refused(void **state)
{
	static const struct { unsigned long type; const char *name; } cases[] = {
		{ 0x6969, "(nfs)" }, { 0xFF534D42UL, "(cifs)" }, { 0xFE534D42UL, "(smb2)" }, { 0x01161970UL, "(gfs2)" },
	};
	fixture_t *f = *state;
	char db[200], key[210], err[512];
	struct stat sb;
	ftm_store_t *st;

	snprintf(db, sizeof(db), "%s/on-nfs.db", f->dir);
	snprintf(key, sizeof(key), "%s.key", db);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		fake_fs_type = cases[i].type;
		st = ftm_store_open(db, NULL, NULL, err, sizeof(err));
		fake_fs_type = 0;
		assert_null(st);
		assert_non_null(strstr(err, "network file system"));
		assert_non_null(strstr(err, cases[i].name));
		assert_non_null(strstr(err, "PostgreSQL"));
		assert_int_not_equal(stat(db, &sb), 0);	/* nothing created there: no store, no key file */
		assert_int_not_equal(stat(key, &sb), 0);
	}
	/* the store already made on a local disk (the fixture's) opens once the directory reports ext4 */
	fake_fs_type = 0xEF53;
	st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	fake_fs_type = 0;
	assert_non_null(st);
	ftm_store_close(st);
}

static void a_missing_key_file_of_an_existing_store_is_not_recreated(void **state)
{
	fixture_t *f = *state;
	char missing[200], err[256] = "";
	struct stat sb;

	add(f, "alice", "S1");
	snprintf(missing, sizeof(missing), "%s/missing.key", f->dir);
	assert_null(ftm_store_open(f->db, missing, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "is missing"));
	assert_int_not_equal(stat(missing, &sb), 0);	/* no stray key left behind */
}

static void a_sealed_seed_moved_to_another_serial_does_not_open(void **state)
{
	fixture_t *f = *state;
	char cmd[512];
	ftm_token_t t;
	ftm_verdict_t v;
	ftm_verify_params_t p = params(5, 0, true);

	add(f, "alice", "S1");
	add(f, "bob", "S2");
	/* copy S1's sealed seed onto S2 with the sqlite3 shell; skip when it is not installed */
	snprintf(cmd, sizeof(cmd), "sqlite3 %s \"UPDATE tokens SET seed = (SELECT seed FROM tokens WHERE serial='S1')"
		 " WHERE serial='S2'\" 2>/dev/null", f->db);
	if (system(cmd) != 0)
		skip();
	assert_int_equal(ftm_store_token_get(f->st, "S2", &t, NULL, 0), -1);
	assert_int_equal(ftm_store_verify_code(f->st, "bob", C1, T1, &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);	/* fail closed */
}

/* ---- the verdict policy and the timed unlock ---- */

static ftm_policy_t policy_of(ftm_store_t *st)
{
	ftm_policy_t pol;
	char err[256] = "";

	assert_int_equal(ftm_store_policy(st, &pol, err, sizeof(err)), 0);
	return pol;
}

static void the_policy_is_seeded_with_the_built_in_defaults(void **state)
{
	fixture_t *f = *state;
	ftm_policy_t pol = policy_of(f->st);

	assert_int_equal(pol.window, 1);
	assert_int_equal(pol.lockout_threshold, 5);
	assert_int_equal(pol.lockout_duration, 0);	/* locked until an admin unlocks, as before */
	assert_int_equal(pol.activation_expire, 4320);
	assert_int_equal(pol.challenge_timeout, 300);
}

static void a_policy_change_reaches_every_handle_of_the_store(void **state)
{
	fixture_t *f = *state;
	char err[256] = "", old[32];
	ftm_store_t *b = ftm_store_open(f->db, NULL, NULL, err, sizeof(err)), *c;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	int i;

	assert_non_null(b);
	assert_int_equal(policy_of(b).lockout_threshold, 5);	/* b's cache holds the old value */
	assert_int_equal(ftm_store_policy_set(f->st, "lockout_threshold", "3", old, sizeof(old), err, sizeof(err)), 0);
	assert_string_equal(old, "5");
	assert_int_equal(policy_of(f->st).lockout_threshold, 3);	/* at once on the handle that set it */
	c = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));	/* a new process (PAM): at once too */
	assert_non_null(c);
	assert_int_equal(policy_of(c).lockout_threshold, 3);
	/* a long-lived one within FTM_POLICY_REFRESH_SECONDS */
	for (i = 0; i < 10 * (FTM_POLICY_REFRESH_SECONDS + 1) && policy_of(b).lockout_threshold != 3; i++)
		nanosleep(&tick, NULL);
	assert_int_equal(policy_of(b).lockout_threshold, 3);
	ftm_store_close(c);
	ftm_store_close(b);
}

static void a_policy_value_is_validated_and_a_refused_one_changes_nothing(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";

	assert_int_equal(ftm_store_policy_set(f->st, "window", "11", NULL, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "window: '11' is not a number in 0-10"));
	assert_int_equal(ftm_store_policy_set(f->st, "window", "-1", NULL, 0, err, sizeof(err)), -1);
	assert_int_equal(ftm_store_policy_set(f->st, "window", "two", NULL, 0, err, sizeof(err)), -1);
	assert_int_equal(ftm_store_policy_set(f->st, "challenge_timeout", "0", NULL, 0, err, sizeof(err)), -1);
	assert_int_equal(ftm_store_policy_set(f->st, "windows", "2", NULL, 0, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown policy 'windows'"));
	assert_int_equal(policy_of(f->st).window, 1);
	assert_int_equal(ftm_store_policy_set(f->st, "window", "2", NULL, 0, err, sizeof(err)), 0);
	assert_int_equal(policy_of(f->st).window, 2);
}

static void a_verdict_without_parameters_uses_the_store_policy(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	assert_int_equal(ftm_store_policy_set(f->st, "lockout_threshold", "1", NULL, 0, NULL, 0), 0);
	assert_int_equal(ftm_store_policy_set(f->st, "activation_expire", "0", NULL, 0, NULL, 0), 0);
	assert_int_equal(ftm_store_verify_code(f->st, "alice", BAD, T1, NULL, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
}

static void a_lock_by_failures_ends_after_lockout_duration_with_the_failures_reset(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(2, 0, true);
	time_t locked = T3 - 20 * 60;
	ftm_policy_t pol = { .lockout_duration = 10 };
	ftm_verdict_t v;
	ftm_token_t t;

	p.lockout_duration = 10;	/* minutes */
	add(f, "alice", "S1");
	assert_int_equal(verify(f, "alice", BAD, locked, p).code, FTM_VERDICT_BAD_CODE);
	v = verify(f, "alice", BAD, locked, p);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_string_equal(v.message, "Token locked: try again in 10 minutes");
	t = get(f, "S1");
	assert_int_equal(t.status, FTM_TOKEN_LOCKED);
	assert_int_equal(t.lock_reason, FTM_LOCK_FAILURES);
	assert_int_equal(t.locked_at, locked);
	assert_int_equal(ftm_token_unlock_at(&t, &pol), locked + 600);
	assert_string_equal(ftm_token_state_name(&t, locked + 599, &pol), "locked");
	assert_string_equal(ftm_token_state_name(&t, locked + 600, &pol), "pending");
	/* before the end: refused, told how long, nothing counted */
	v = verify(f, "alice", BAD, locked + 5 * 60 + 1, p);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_string_equal(v.message, "Token locked: try again in 5 minutes");
	v = verify(f, "alice", BAD, locked + 9 * 60 + 30, p);
	assert_string_equal(v.message, "Token locked: try again in 1 minute");
	assert_int_equal(get(f, "S1").failures, 2);
	/* after it: active again, the failures start from zero */
	v = verify(f, "alice", C3, T3, p);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	t = get(f, "S1");
	assert_int_equal(t.status, FTM_TOKEN_ACTIVE);
	assert_int_equal(t.failures, 0);
	assert_int_equal(t.lock_reason, FTM_LOCK_NONE);
}

static void a_wrong_code_after_the_lock_ended_counts_from_zero(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(2, 0, true);
	ftm_verdict_t v;

	p.lockout_duration = 1;
	add(f, "alice", "S1");
	verify(f, "alice", BAD, T1, p);
	assert_int_equal(verify(f, "alice", BAD, T1, p).code, FTM_VERDICT_LOCKED);
	v = verify(f, "alice", BAD, T1 + 60, p);
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(v.failures, 1);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	/* a peek sees the lock ended too, and writes nothing */
	verify(f, "alice", BAD, T1 + 60, p);	/* locked again at T1 + 60 */
	p.consume = false;
	assert_int_equal(verify(f, "alice", BAD, T1 + 120, p).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
}

static void an_admin_lock_survives_lockout_duration(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(5, 0, true);
	ftm_policy_t pol = { .lockout_duration = 1 };
	time_t later = time(NULL) + 365 * 86400;
	ftm_verdict_t v;
	ftm_token_t t;

	p.lockout_duration = 1;
	add(f, "alice", "S1");
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	t = get(f, "S1");
	assert_int_equal(t.lock_reason, FTM_LOCK_ADMIN);
	assert_true(t.locked_at > 0);
	assert_int_equal(ftm_token_unlock_at(&t, &pol), 0);
	assert_string_equal(ftm_token_state_name(&t, later, &pol), "locked");
	v = verify(f, "alice", BAD, later, p);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_string_equal(v.message, "Token locked");	/* no end to announce */
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
	/* unlock clears the reason */
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_ACTIVE, NULL, 0), 0);
	assert_int_equal(get(f, "S1").lock_reason, FTM_LOCK_NONE);
}

/* The sqlite3 shell, for what a test does to the file behind the store's back; skip without it. */
static void sql_shell(fixture_t *f, const char *sql)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "sqlite3 %s \"%s\" 2>/dev/null", f->db, sql);
	if (system(cmd) != 0)
		skip();
}

static void a_version_1_file_is_migrated_with_its_tokens_and_old_locks_stay(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";
	ftm_verify_params_t p = params(5, 0, true);
	ftm_token_t t;

	add(f, "alice", "S1");
	add(f, "bob", "S2");
	ftm_store_close(f->st);
	f->st = NULL;
	/* the file as version 1 left it: no lock columns, no settings; bob's token locked back then */
	sql_shell(f, "ALTER TABLE tokens DROP COLUMN lock_reason; ALTER TABLE tokens DROP COLUMN locked_at;"
		  " DROP TABLE settings; DELETE FROM schema_version WHERE version >= 2;"
		  " UPDATE tokens SET status = 'lock', failures = 5 WHERE serial = 'S2'");
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	assert_string_equal(get(f, "S1").user, "alice");
	assert_int_equal(verify(f, "alice", C1, T1, p).code, FTM_VERDICT_OK);
	assert_int_equal(policy_of(f->st).lockout_threshold, 5);	/* seeded */
	/* a lock from before the reason was kept is an admin's: no lockout_duration ends it */
	t = get(f, "S2");
	assert_int_equal(t.lock_reason, FTM_LOCK_ADMIN);
	p.lockout_duration = 1;
	assert_int_equal(verify(f, "bob", BAD, T3, p).code, FTM_VERDICT_LOCKED);
}

/* The tables every opener creates IF NOT EXISTS are not compiled when they are all there, but a file
 * that lacks one (a table, an index: made by an older binary) gets it at open. */
static void a_file_without_an_open_time_table_gets_it_at_open(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = 0;

	ftm_store_close(f->st);
	f->st = NULL;
	sql_shell(f, "DROP TABLE IF EXISTS number_states; DROP INDEX IF EXISTS recovery_codes_by_user");
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
					    " ('number_states', 'recovery_codes_by_user')", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(n, 2);
}

/* An earlier version's audit index by user (no query used it; every verdict's commit paid a page of it)
 * is dropped at open; the audit trail still answers by user (audit_rows_are_selected_by_user...). */
static void the_audit_index_by_user_of_an_earlier_file_is_dropped_at_open(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";
	sqlite3 *db;
	sqlite3_stmt *st;
	int n = -1;

	ftm_store_close(f->st);
	f->st = NULL;
	sql_shell(f, "CREATE INDEX IF NOT EXISTS audit_by_user ON audit (user, id)");
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE name IN"
					    " ('audit_by_user', 'audit_by_at')", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(n, 1);		/* audit_by_at stays: the retention pass deletes by time */
}

static void a_file_newer_than_the_binary_is_refused(void **state)
{
	fixture_t *f = *state;
	char err[256] = "";

	ftm_store_close(f->st);
	f->st = NULL;
	sql_shell(f, "INSERT INTO schema_version (version) VALUES (99)");
	assert_null(ftm_store_open(f->db, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "schema version 99, newer than this ftmpush"));
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));	/* teardown closes it (NULL is fine) */
}

/* ---- the verdict ---- */

static void a_valid_code_is_accepted_and_its_step_recorded(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	v = verify(f, "alice", C1, T1, params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "S1");
	assert_string_equal(v.proof.serial, "");	/* only a peek makes a proof: this code is spent */
	assert_int_equal(get(f, "S1").last_step, T1 / 30);
	assert_string_equal(ftm_token_state_name(&(ftm_token_t){ .last_step = T1 / 30 }, T1, &(ftm_policy_t){ .activation_expire = 1 }), "active");
}

static void a_replayed_code_is_refused_with_the_wait(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	assert_int_equal(verify(f, "alice", C1, T1, params(5, 0, true)).code, FTM_VERDICT_OK);
	v = verify(f, "alice", C1, T1, params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(v.wait_seconds, 1);		/* 1111111109 is 29 s into its 30 s step */
	assert_string_equal(v.message, "Please wait 1 seconds to login again");
	assert_int_equal(get(f, "S1").failures, 0);	/* a replay is not a failure */
	/* the code of the used step is still refused in the next step (inside the window) */
	v = verify(f, "alice", C1, T2, params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(v.wait_seconds, 29);
	/* a newer step is fine */
	assert_int_equal(verify(f, "alice", C2, T2, params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void a_wrong_code_counts_a_failure(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	v = verify(f, "alice", BAD, T1, params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(v.failures, 1);
	assert_false(v.now_locked);
	assert_null(strstr(v.reason, BAD));		/* the code never reaches the log */
	assert_int_equal(get(f, "S1").failures, 1);
	assert_int_equal(verify(f, "alice", C3, T1, params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);	/* out of window */
	assert_int_equal(get(f, "S1").failures, 2);
}

static void the_threshold_failure_locks_the_token(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	assert_int_equal(verify(f, "alice", BAD, T1, params(3, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(verify(f, "alice", BAD, T1, params(3, 0, true)).code, FTM_VERDICT_BAD_CODE);
	v = verify(f, "alice", BAD, T1, params(3, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
	assert_int_equal(v.failures, 3);
	assert_string_equal(v.message, "Token locked");
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
	/* locked: even the valid code is refused, and nothing more is counted */
	v = verify(f, "alice", C1, T1, params(3, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_int_equal(get(f, "S1").failures, 3);
	assert_int_equal(get(f, "S1").last_step, -1);
	assert_string_equal(ftm_token_state_name(&(ftm_token_t){ .status = FTM_TOKEN_LOCKED }, T1, 0), "locked");
	/* unlock: usable again */
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_ACTIVE, NULL, 0), 0);
	assert_int_equal(verify(f, "alice", C1, T1, params(3, 0, true)).code, FTM_VERDICT_OK);
}

static void zero_threshold_never_locks(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	for (int i = 0; i < 10; i++)
		assert_int_equal(verify(f, "alice", BAD, T1, params(0, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	assert_int_equal(get(f, "S1").failures, 10);
}

static void success_resets_the_failure_count(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	verify(f, "alice", BAD, T1, params(3, 0, true));
	verify(f, "alice", BAD, T1, params(3, 0, true));
	assert_int_equal(get(f, "S1").failures, 2);
	assert_int_equal(verify(f, "alice", C1, T1, params(3, 0, true)).code, FTM_VERDICT_OK);
	assert_int_equal(get(f, "S1").failures, 0);
	/* two more failures do not lock: the count started again */
	verify(f, "alice", BAD, T2, params(3, 0, true));
	assert_int_equal(verify(f, "alice", BAD, T2, params(3, 0, true)).code, FTM_VERDICT_BAD_CODE);
}

static void a_never_used_token_expires_after_its_activation_window(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t = rfc_token("alice", "S1"), u = rfc_token("bob", "S2");
	ftm_verdict_t v;

	t.created = T1 - 10 * 60;	/* added 10 minutes before */
	u.created = T1 - 10 * 60;
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), 0);
	assert_int_equal(ftm_store_token_add(f->st, &u, NULL, 0), 0);
	assert_string_equal(ftm_token_state_name(&t, T1, &(ftm_policy_t){ .activation_expire = 11 }), "pending");
	assert_string_equal(ftm_token_state_name(&t, T1, &(ftm_policy_t){ .activation_expire = 10 }), "expired");
	assert_string_equal(ftm_token_state_name(&t, T1, &(ftm_policy_t){ .activation_expire = 0 }), "pending");	/* 0 = never */
	v = verify(f, "alice", C1, T1, params(5, 10, true));
	assert_int_equal(v.code, FTM_VERDICT_EXPIRED);
	assert_int_equal(get(f, "S1").last_step, -1);
	assert_int_equal(get(f, "S1").failures, 0);
	/* inside the window it is accepted, and once used it never expires */
	assert_int_equal(verify(f, "bob", C1, T1, params(5, 11, true)).code, FTM_VERDICT_OK);
	assert_int_equal(verify(f, "bob", C2, T2, params(5, 10, true)).code, FTM_VERDICT_OK);
	/* re-issue restarts the window */
	assert_int_equal(ftm_token_init(&t, "alice", "S1", SEED_HEX, NULL, 0), 0);
	t.digits = 8;
	t.period = 30;
	assert_int_equal(ftm_store_token_reissue(f->st, &t, NULL, 0), 0);
	assert_string_equal(ftm_token_state_name(&(ftm_token_t){ .last_step = -1, .created = get(f, "S1").created },
						 time(NULL), &(ftm_policy_t){ .activation_expire = 10 }), "pending");
}

static void a_user_without_a_token_gets_no_token(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	v = verify(f, "mallory", C1, T1, params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_NO_TOKEN);
	assert_string_equal(v.serial, "");
}

static void every_token_of_a_user_is_tried(void **state)
{
	fixture_t *f = *state;
	ftm_token_t other;
	ftm_verdict_t v;

	/* A1: another seed; A2: the RFC seed */
	assert_int_equal(ftm_token_init(&other, "alice", "A1", NULL, NULL, 0), 0);
	other.digits = 8;
	other.period = 30;
	other.created = T1 - 60;
	assert_int_equal(ftm_store_token_add(f->st, &other, NULL, 0), 0);
	add(f, "alice", "A2");
	v = verify(f, "alice", C1, T1, params(3, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "A2");
	assert_int_equal(get(f, "A1").last_step, -1);
	/* a wrong code counts on every active token of the user */
	verify(f, "alice", BAD, T2, params(3, 0, true));
	assert_int_equal(get(f, "A1").failures, 1);
	assert_int_equal(get(f, "A2").failures, 1);
	/* a locked token does not stop the other one */
	assert_int_equal(ftm_store_token_set_status(f->st, "A1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	v = verify(f, "alice", C2, T2, params(3, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "A2");
	assert_int_equal(get(f, "A2").failures, 0);
	/* lockout: when the last usable token reaches the threshold the verdict is LOCKED */
	verify(f, "alice", BAD, T2, params(3, 0, true));
	verify(f, "alice", BAD, T2, params(3, 0, true));
	v = verify(f, "alice", BAD, T2, params(3, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
}

static void peek_changes_nothing(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	v = verify(f, "alice", C1, T1, params(1, 0, false));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(get(f, "S1").last_step, -1);
	v = verify(f, "alice", BAD, T1, params(1, 0, false));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);	/* what would happen ... */
	assert_int_equal(get(f, "S1").failures, 0);	/* ... but nothing did */
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
	/* and the code can still be used for real */
	assert_int_equal(verify(f, "alice", C1, T1, params(1, 0, true)).code, FTM_VERDICT_OK);
}

/* A peek counts the user's tokens from the rows it decides on (the split's one read): each once, none
 * with its seed, whatever the verdict; a user without tokens gets no call. */
struct counted {
	struct collected	c;
	size_t			seeds;
};

static int count_token(void *ctx, const ftm_token_t *t)
{
	struct counted *k = ctx;

	if (t->seed_len != 0)
		k->seeds++;
	return collect(&k->c, t);
}

static void a_peek_hands_each_token_it_decides_on_to_tokens_cb(void **state)
{
	fixture_t *f = *state;
	struct counted k;
	ftm_verify_params_t p = params(5, 0, false);
	ftm_verdict_t v;

	add(f, "alice", "S2");
	add(f, "alice", "S1");
	add(f, "bob", "B1");
	p.tokens_cb = count_token;
	p.tokens_ctx = &k;
	memset(&k, 0, sizeof(k));
	v = verify(f, "alice", C1, T1, p);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(k.c.n, 2);
	assert_string_equal(k.c.serials[0], "S1");
	assert_string_equal(k.c.serials[1], "S2");
	assert_int_equal(k.seeds, 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(verify(f, "alice", BAD, T1, p).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(k.c.n, 2);
	assert_int_equal(k.seeds, 0);
	memset(&k, 0, sizeof(k));
	assert_int_equal(verify(f, "carol", C1, T1, p).code, FTM_VERDICT_NO_TOKEN);
	assert_int_equal(k.c.n, 0);
}

/* ---- a peek's proof, carried to the verdict on the same code ---- */

static ftm_verdict_t verify_proved(fixture_t *f, const char *user, const char *code, time_t now,
				   const ftm_code_proof_t *proof)
{
	ftm_verify_params_t p = params(5, 0, true);

	p.proof = proof;
	return verify(f, user, code, now, p);
}

static ftm_code_proof_t peek_proof(fixture_t *f, const char *user, const char *code, time_t now)
{
	ftm_verdict_t v = verify(f, user, code, now, params(5, 0, false));

	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_not_equal(v.proof.serial, "");
	return v.proof;
}

static void a_peek_proof_carries_to_the_verdict_on_the_same_code(void **state)
{
	fixture_t *f = *state;
	ftm_code_proof_t proof;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	proof = peek_proof(f, "alice", C1, T1);
	assert_string_equal(proof.serial, "S1");
	v = verify_proved(f, "alice", C1, T1, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_non_null(strstr(v.reason, "as the split's peek proved"));
	assert_int_equal(get(f, "S1").last_step, T1 / 30);
}

static void a_proof_holds_only_for_its_user_and_code(void **state)
{
	fixture_t *f = *state;
	ftm_code_proof_t proof;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	add(f, "bob", "S2");	/* the same RFC seed: C1 is bob's code too */
	proof = peek_proof(f, "alice", C1, T1);
	v = verify_proved(f, "alice", BAD, T1, &proof);
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").failures, 1);
	snprintf(proof.serial, sizeof(proof.serial), "S2");	/* a forged proof for bob's token */
	v = verify_proved(f, "bob", C1, T1, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);	/* bob's code is good, but tried in full */
	assert_null(strstr(v.reason, "proved"));
}

static void a_proof_does_not_outlive_a_replay_a_lock_or_a_reissue(void **state)
{
	fixture_t *f = *state;
	ftm_code_proof_t proof;
	ftm_token_t t = rfc_token("alice", "S1");
	ftm_verdict_t v;

	add(f, "alice", "S1");
	proof = peek_proof(f, "alice", C1, T1);
	assert_int_equal(verify(f, "alice", C1, T1, params(5, 0, true)).code, FTM_VERDICT_OK);
	assert_int_equal(verify_proved(f, "alice", C1, T1, &proof).code, FTM_VERDICT_REPLAY);

	proof = peek_proof(f, "alice", C2, T2);
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_int_equal(verify_proved(f, "alice", C2, T2, &proof).code, FTM_VERDICT_LOCKED);

	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_ACTIVE, NULL, 0), 0);
	proof = peek_proof(f, "alice", C2, T2);
	assert_int_equal(ftm_store_token_reissue(f->st, &t, NULL, 0), 0);	/* same seed, sealed anew */
	v = verify_proved(f, "alice", C2, T2, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_null(strstr(v.reason, "proved"));
}

/* Through a connection of the test's own: the one integer the first row of sql holds. */
static long long sql_int(fixture_t *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* A verdict's full write-back sets failures (and status and the lock) with the step; the compare sets
 * the step alone. A trigger on the file tells them apart. */
#define FULL_WRITES_SQL	"CREATE TABLE full_writes (serial TEXT);" \
			"CREATE TRIGGER full_write AFTER UPDATE OF failures ON tokens" \
			" BEGIN INSERT INTO full_writes VALUES (new.serial); END;"
#define FULL_WRITES(s)	"SELECT count(*) FROM full_writes WHERE serial = '" s "'"

/* A proof whose verdict writes the step alone: every token of the user active and without failures at
 * the peek (a failure to reset, or a lock that may end, makes the verdict write more). */
static void a_proof_is_step_only_when_every_token_of_the_user_is_active_without_failures(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	assert_int_equal(verify(f, "alice", BAD, T1, params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_false(peek_proof(f, "alice", C1, T1).step_only);	/* its failure is reset by the verdict */
	add(f, "bob", "S2");
	add(f, "bob", "S3");
	assert_true(peek_proof(f, "bob", C1, T1).step_only);	/* two tokens, both clean */
	assert_int_equal(ftm_store_token_set_status(f->st, "S3", FTM_TOKEN_LOCKED, NULL, 0), 0);
	assert_false(peek_proof(f, "bob", C1, T1).step_only);	/* one of them locked */
	add(f, "carol", "S4");
	assert_true(peek_proof(f, "carol", C1, T1).step_only);
}

/* What changes between the peek and the verdict makes the verdict decide on the rows read again, as
 * it would without the proof: a failure counted meanwhile is reset, another token locked stays locked,
 * a token given to another user or deleted is no longer the user's. A token added clean changes
 * nothing the verdict writes: the compare still holds. */
static void a_step_only_proof_is_decided_in_full_when_the_user_changed_after_the_peek(void **state)
{
	fixture_t *f = *state;
	ftm_code_proof_t proof;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	sql_run(f, FULL_WRITES_SQL);
	proof = peek_proof(f, "alice", C1, T1);
	assert_true(proof.step_only);
	assert_int_equal(verify(f, "alice", BAD, T1, params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").failures, 1);
	assert_int_equal(sql_int(f, FULL_WRITES("S1")), 1);
	v = verify_proved(f, "alice", C1, T1, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(sql_int(f, FULL_WRITES("S1")), 2);	/* the compare missed: decided in full */
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(get(f, "S1").last_step, T1 / 30);

	proof = peek_proof(f, "alice", C2, T2);
	assert_true(proof.step_only);
	add(f, "alice", "S0");	/* ordered first */
	assert_int_equal(verify(f, "alice", BAD, T2, params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S0").failures, 1);
	v = verify_proved(f, "alice", C2, T2, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "S1");
	assert_int_equal(get(f, "S0").failures, 0);	/* the user's failures start again on every token */
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(get(f, "S1").last_step, T2 / 30);

	add(f, "bob", "S2");
	proof = peek_proof(f, "bob", C3, T3);
	assert_true(proof.step_only);
	assert_int_equal(ftm_store_token_set_user(f->st, "S2", "carol", NULL, 0), 0);
	assert_int_equal(verify_proved(f, "bob", C3, T3, &proof).code, FTM_VERDICT_NO_TOKEN);
	assert_int_equal(get(f, "S2").last_step, -1);

	add(f, "dave", "S5");
	proof = peek_proof(f, "dave", C3, T3);
	assert_true(proof.step_only);
	assert_int_equal(ftm_store_token_delete(f->st, "S5", NULL, 0), 0);
	assert_int_equal(verify_proved(f, "dave", C3, T3, &proof).code, FTM_VERDICT_NO_TOKEN);

	add(f, "erin", "E1");
	proof = peek_proof(f, "erin", C3, T3);
	assert_true(proof.step_only);
	add(f, "erin", "E2");
	v = verify_proved(f, "erin", C3, T3, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "E1");
	assert_int_equal(sql_int(f, FULL_WRITES("E1")), 0);	/* compared: the new token is clean */
	assert_int_equal(get(f, "E1").last_step, T3 / 30);
	assert_int_equal(get(f, "E2").last_step, -1);

	add(f, "frank", "F1");
	add(f, "frank", "F2");
	proof = peek_proof(f, "frank", C3, T3);
	assert_true(proof.step_only);
	assert_int_equal(ftm_store_token_set_status(f->st, "F2", FTM_TOKEN_LOCKED, NULL, 0), 0);
	v = verify_proved(f, "frank", C3, T3, &proof);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "F1");
	assert_int_equal(sql_int(f, FULL_WRITES("F1")), 1);	/* another token changed: decided in full */
	assert_int_equal(get(f, "F1").last_step, T3 / 30);
	assert_int_equal(get(f, "F2").status, FTM_TOKEN_LOCKED);
}

/* A token of the user damaged after the peek (its sealed seed emptied behind the store's back): the
 * compare does not match, and the verdict read in full fails closed, as it would without the proof. */
static void a_step_only_proof_fails_closed_on_a_token_damaged_after_the_peek(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(5, 0, true);
	ftm_code_proof_t proof;
	ftm_verdict_t v;

	add(f, "gina", "G1");
	add(f, "gina", "G2");
	proof = peek_proof(f, "gina", C1, T1);
	assert_true(proof.step_only);
	sql_run(f, "UPDATE tokens SET seed = X'' WHERE serial = 'G2'");
	p.proof = &proof;
	assert_int_equal(ftm_store_verify_code(f->st, "gina", C1, T1, &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_int_equal(get(f, "G1").last_step, -1);	/* nothing written */
}

/* ---- many threads at once ---- */

#define THREADS	8
#define ROUNDS	25

struct hammer {
	fixture_t	*f;
	bool		own_handle;
	bool		peek_first;	/* each round peeks before its verdict */
	bool		carry;		/* and gives the verdict the peek's proof */
	int		ok, replay, other;
};

static void *hammer(void *arg)
{
	struct hammer *h = arg;
	ftm_store_t *st = h->f->st;
	ftm_verify_params_t p = params(0, 0, true);

	if (h->own_handle)
		st = ftm_store_open(h->f->db, NULL, NULL, NULL, 0);
	if (st == NULL) {
		h->other = -1;
		return NULL;
	}
	for (int i = 0; i < ROUNDS; i++) {
		ftm_code_proof_t proof;
		ftm_verdict_t v;

		if (h->peek_first) {
			ftm_verify_params_t peek = params(0, 0, false);

			/* OK before the verdict that spends it, replay after: never an error */
			if (ftm_store_verify_code(st, "alice", C1, T1, &peek, &v) != 0 ||
			    (v.code != FTM_VERDICT_OK && v.code != FTM_VERDICT_REPLAY))
				h->other++;
			proof = v.proof;
			p.proof = h->carry && v.code == FTM_VERDICT_OK ? &proof : NULL;
		}
		ftm_store_verify_code(st, "alice", C1, T1, &p, &v);
		if (v.code == FTM_VERDICT_OK)
			h->ok++;
		else if (v.code == FTM_VERDICT_REPLAY)
			h->replay++;
		else
			h->other++;
	}
	if (h->own_handle)
		ftm_store_close(st);
	return NULL;
}

static void hammer_run(fixture_t *f, bool own_handle, bool peek_first, bool carry)
{
	pthread_t tid[THREADS];
	struct hammer h[THREADS];
	int ok = 0, replay = 0;

	add(f, "alice", "S1");
	for (int i = 0; i < THREADS; i++) {
		h[i] = (struct hammer){ .f = f, .own_handle = own_handle, .peek_first = peek_first, .carry = carry };
		assert_int_equal(pthread_create(&tid[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(h[i].other, 0);
		ok += h[i].ok;
		replay += h[i].replay;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(replay, THREADS * ROUNDS - 1);
	assert_int_equal(get(f, "S1").last_step, T1 / 30);
	assert_int_equal(get(f, "S1").failures, 0);
}

static void threads_sharing_a_handle_accept_a_code_once(void **state)
{
	hammer_run(*state, false, false, false);
}

static void threads_with_their_own_handles_accept_a_code_once(void **state)
{
	hammer_run(*state, true, false, false);
}

/* Every thread's peek proves the code before any verdict spends it: the verdicts on those proofs race
 * at the compare (on one handle's group commits, and across handles' connections), one wins */
static void threads_carrying_their_peeks_proof_accept_a_code_once(void **state)
{
	hammer_run(*state, false, true, true);
}

static void threads_with_their_own_handles_carrying_their_peeks_proof_accept_a_code_once(void **state)
{
	hammer_run(*state, true, true, true);
}

/* ftm_store_peek_on_idle_writer: peeks take the writer between the group commits of the other threads
 * (or a reader while one is in flight); the code is still accepted once, and no peek fails */
static void threads_peeking_on_the_idle_writer_between_verdicts_accept_a_code_once(void **state)
{
	fixture_t *f = *state;

	ftm_store_peek_on_idle_writer(f->st);
	hammer_run(f, false, true, false);
}

/* A peek on the idle writer reads what the verdicts wrote, on this handle and on another (another
 * connection's commit makes SQLite drop the writer's cache as any reader's), and writes nothing. */
static void a_peek_on_the_idle_writer_sees_every_commit_and_changes_nothing(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t spend = params(5, 0, true);
	ftm_code_proof_t proof;
	ftm_store_t *other;
	ftm_verdict_t v;

	ftm_store_peek_on_idle_writer(f->st);
	add(f, "alice", "S1");
	add(f, "bob", "S2");
	assert_int_equal(verify(f, "alice", BAD, T1, params(5, 0, false)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").failures, 0);
	proof = peek_proof(f, "alice", C1, T1);
	assert_int_equal(verify_proved(f, "alice", C1, T1, &proof).code, FTM_VERDICT_OK);
	assert_int_equal(verify(f, "alice", C1, T1, params(5, 0, false)).code, FTM_VERDICT_REPLAY);
	/* bob's code spent through another handle: this handle's next peek, on its writer, sees it */
	assert_int_equal(verify(f, "bob", C1, T1, params(5, 0, false)).code, FTM_VERDICT_OK);
	assert_non_null(other = ftm_store_open(f->db, NULL, NULL, NULL, 0));
	assert_int_equal(ftm_store_verify_code(other, "bob", C1, T1, &spend, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	ftm_store_close(other);
	assert_int_equal(verify(f, "bob", C1, T1, params(5, 0, false)).code, FTM_VERDICT_REPLAY);
}

/* ---- code-challenge States: kept in the store, so another process on the file can take them ---- */

static void a_challenge_issued_by_one_process_is_answered_once_by_another(void **state)
{
	fixture_t *f = *state;
	char err[256], a[FTM_STATE_HEX + 1], b[FTM_STATE_HEX + 1];
	ftm_store_t *other = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	ftm_state_check_t check;

	assert_non_null(other);
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, a, err, sizeof(err)), 0);
	assert_int_equal(strlen(a), FTM_STATE_HEX);
	assert_int_equal(ftm_store_challenge_take(other, "alice", "10.0.0.1", a, T1 + 59, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	assert_int_equal(ftm_store_challenge_take(f->st, "alice", "10.0.0.1", a, T1 + 59, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);	/* single use */
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, b, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(other, "alice", "10.0.0.2", b, T1, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_MISMATCH);	/* another client: refused and consumed */
	assert_int_equal(ftm_store_challenge_take(f->st, "alice", "10.0.0.1", b, T1, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);
	assert_int_equal(ftm_store_challenge_issue(f->st, "alice", "10.0.0.1", T1, 60, b, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_challenge_take(other, "alice", "10.0.0.1", b, T1 + 60, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_EXPIRED);
	ftm_store_close(other);
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

/* Concurrent writes of one process share group commits: each thread's verdicts on its own user all
 * commit, in order, while a failing write of another thread (a duplicate serial) is undone alone. */
struct own_user {
	fixture_t	*f;
	char		user[16];
	ftm_verdict_code_t first, second, again;
};

static void *verify_own_user(void *arg)
{
	struct own_user *u = arg;
	ftm_verify_params_t p = params(0, 0, true);
	ftm_verdict_t v;

	ftm_store_verify_code(u->f->st, u->user, C1, T1, &p, &v);
	u->first = v.code;
	ftm_store_verify_code(u->f->st, u->user, C2, T2, &p, &v);
	u->second = v.code;
	ftm_store_verify_code(u->f->st, u->user, C1, T1, &p, &v);
	u->again = v.code;
	return NULL;
}

static void *add_duplicates(void *arg)
{
	fixture_t *f = arg;
	ftm_token_t t = rfc_token("mallory", "S0");
	char err[256];
	intptr_t refused = 0;

	for (int i = 0; i < ROUNDS; i++)
		refused += ftm_store_token_add(f->st, &t, err, sizeof(err)) == -1;
	return (void *)refused;
}

static void concurrent_writers_commit_together_and_fail_alone(void **state)
{
	fixture_t *f = *state;
	pthread_t tid[THREADS], dup;
	struct own_user u[THREADS];
	void *refused = NULL;

	add(f, "mallory", "S0");
	for (int i = 0; i < THREADS; i++) {
		char serial[16];

		u[i] = (struct own_user){ .f = f };
		snprintf(u[i].user, sizeof(u[i].user), "user%d", i);
		snprintf(serial, sizeof(serial), "S%d", i + 1);
		add(f, u[i].user, serial);
	}
	assert_int_equal(pthread_create(&dup, NULL, add_duplicates, f), 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, verify_own_user, &u[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		char serial[16];

		pthread_join(tid[i], NULL);
		assert_int_equal(u[i].first, FTM_VERDICT_OK);
		assert_int_equal(u[i].second, FTM_VERDICT_OK);
		assert_int_equal(u[i].again, FTM_VERDICT_REPLAY);
		snprintf(serial, sizeof(serial), "S%d", i + 1);
		assert_int_equal(get(f, serial).last_step, T2 / 30);
	}
	pthread_join(dup, &refused);
	assert_int_equal((intptr_t)refused, ROUNDS);
	assert_string_equal(get(f, "S0").user, "mallory");
}

/* ---- new tokens ---- */

static void token_init_defaults_to_fortitoken_mobile(void **state)
{
	ftm_token_t a, b;

	(void)state;
	assert_int_equal(ftm_token_init(&a, "alice", NULL, NULL, NULL, 0), 0);
	assert_int_equal(ftm_token_init(&b, "alice", NULL, NULL, NULL, 0), 0);
	assert_int_equal(strlen(a.serial), 16);
	assert_memory_equal(a.serial, "FTKMOB", 6);
	assert_int_equal(strspn(a.serial + 6, "0123456789ABCDEF"), 10);
	assert_string_not_equal(a.serial, b.serial);
	assert_int_equal(a.seed_len, 20);
	assert_memory_not_equal(a.seed, b.seed, 20);
	assert_int_equal(a.alg, FTM_ALG_SHA1);
	assert_int_equal(a.digits, 6);
	assert_int_equal(a.period, 60);
	assert_int_equal(a.last_step, -1);
	assert_int_equal(ftm_token_init(&a, "alice", NULL, "abc", NULL, 0), -1);	/* odd hex */
	assert_int_equal(ftm_token_init(&a, "alice", NULL, "00ff", NULL, 0), -1);	/* too short */
	assert_int_equal(ftm_token_init(&a, "alice", "has space", NULL, NULL, 0), -1);
}

static void otpauth_uri_encodes_label_and_parameters(void **state)
{
	ftm_token_t t;
	char uri[512];

	(void)state;
	assert_int_equal(ftm_token_init(&t, "alice smith@example.com", "S1", SEED_HEX, NULL, 0), 0);
	assert_int_equal(ftm_token_otpauth_uri(&t, NULL, uri, sizeof(uri)), 0);
	assert_string_equal(uri, "otpauth://totp/ftmpush:alice%20smith%40example.com"
			    "?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=ftmpush&algorithm=SHA1&digits=6&period=60");
	t.alg = FTM_ALG_SHA512;
	t.digits = 8;
	t.period = 30;
	assert_int_equal(ftm_token_otpauth_uri(&t, "ACME VPN", uri, sizeof(uri)), 0);
	assert_non_null(strstr(uri, "totp/ACME%20VPN:alice"));
	assert_non_null(strstr(uri, "&issuer=ACME%20VPN&algorithm=SHA512&digits=8&period=30"));
	assert_int_equal(ftm_token_otpauth_uri(&t, NULL, uri, 40), -1);	/* does not fit */
}

/* ---- failures and successes that are not codes (a wrong number, an approved push) ---- */

static ftm_verdict_t fail_once(fixture_t *f, const char *user, const char *serial, ftm_verify_params_t p)
{
	ftm_verdict_t v;

	assert_int_equal(ftm_store_record_failure(f->st, user, serial, T1, &p, &v), 0);
	return v;
}

static void a_recorded_failure_counts_like_a_wrong_code(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(3, 0, true);
	ftm_verdict_t v;

	add(f, "alice", "S1");
	v = fail_once(f, "alice", "S1", p);
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_string_equal(v.serial, "S1");
	assert_int_equal(v.failures, 1);
	assert_false(v.now_locked);
	/* a wrong code after it is the second consecutive failure: one count for both */
	v = verify(f, "alice", BAD, T1, p);
	assert_int_equal(v.failures, 2);
	v = fail_once(f, "alice", "S1", p);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
	assert_int_equal(v.failures, 3);
	assert_string_equal(v.message, "Token locked");
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
	/* locked: nothing more counted, still locked, and the right code is refused */
	v = fail_once(f, "alice", "S1", p);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_false(v.now_locked);
	assert_int_equal(get(f, "S1").failures, 3);
	assert_int_equal(verify(f, "alice", C1, T1, p).code, FTM_VERDICT_LOCKED);
}

static void a_recorded_success_resets_failures_and_refuses_a_locked_token(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(3, 0, true);
	ftm_verdict_t v;
	char err[256];

	add(f, "alice", "S1");
	add(f, "alice", "S2");
	fail_once(f, "alice", "S1", p);
	fail_once(f, "alice", "S1", p);
	assert_int_equal(get(f, "S1").failures, 2);
	assert_int_equal(get(f, "S2").failures, 2);	/* the user's failures, on each usable token */
	assert_int_equal(ftm_store_record_success(f->st, "alice", "S1", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(get(f, "S2").failures, 0);
	/* not a code, but a use: marked one step older than any code valid now (window 1) */
	assert_int_equal(get(f, "S1").last_step, T1 / 30 - 2);
	assert_string_equal(ftm_token_state_name(&(ftm_token_t){ .last_step = get(f, "S1").last_step }, T1 + 30 * 86400,
						 &(ftm_policy_t){ .activation_expire = 1 }),
			    "active");
	assert_int_equal(get(f, "S2").last_step, -1);	/* the token the push did not go to: untouched */
	/* so the code of the current step still works right after a push */
	assert_int_equal(verify(f, "alice", C1, T1, p).code, FTM_VERDICT_OK);
	/* locked while the push was pending: refused */
	assert_int_equal(ftm_store_token_set_status(f->st, "S1", FTM_TOKEN_LOCKED, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_record_success(f->st, "alice", "S1", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	/* a token that is not the user's (or gone) never yields OK */
	assert_int_equal(ftm_store_record_success(f->st, "alice", "NOPE", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_NO_TOKEN);
	add(f, "bob", "B1");
	assert_int_equal(ftm_store_record_success(f->st, "alice", "B1", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_NO_TOKEN);
	assert_int_equal(ftm_store_record_success(f->st, "carol", "S1", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_NO_TOKEN);
}

static void recorded_failures_fail_closed_on_bad_input(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(0, 0, true);
	ftm_verdict_t v;

	assert_int_equal(ftm_store_record_failure(NULL, "alice", "S1", T1, &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_int_equal(ftm_store_record_failure(f->st, "", "S1", T1, &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_int_equal(ftm_store_record_success(f->st, NULL, "S1", T1, &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_int_equal(ftm_store_record_failure(f->st, "alice", "S1", T1, &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_NO_TOKEN);
	/* threshold 0: counted, never locked */
	add(f, "alice", "S1");
	for (int i = 0; i < 10; i++)
		v = fail_once(f, "alice", "S1", p);
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").failures, 10);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_ACTIVE);
}

/* ---- the audit trail and debug on demand (the cases are shared with test_store_pg.c) ---- */

#include "store_audit_cases.h"

/* Every token of the user active, no failures: the peek's proof says so (step_only), and the verdict
 * on it compares instead of reading again (store_sqlite's consume_proven: the step written alone); it
 * leaves the row exactly as a verdict deciding in full leaves bob's, and the audit row once. */
static void a_step_only_proof_is_written_as_a_full_verdict_writes_it(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(5, 0, true);
	ftm_audit_row_t audit = audit_login(FTM_AUDIT_EV_CODE);
	ftm_code_proof_t proof;
	ftm_token_t a, b;
	ftm_verdict_t v;

	add(f, "alice", "S1");
	add(f, "bob", "S2");	/* the same RFC seed */
	sql_run(f, FULL_WRITES_SQL);
	proof = peek_proof(f, "alice", C1, T1);
	assert_true(proof.step_only);
	assert_int_equal(proof.last_step, -1);	/* never used */
	p.proof = &proof;
	p.audit = &audit;
	v = verify(f, "alice", C1, T1, p);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_string_equal(v.serial, "S1");
	assert_int_equal(v.failures, 0);
	assert_non_null(strstr(v.reason, "as the split's peek proved"));
	assert_string_equal(audit.result, FTM_AUDIT_ACCEPTED);
	assert_string_equal(audit.serial, "S1");
	assert_int_equal(sql_int(f, FULL_WRITES("S1")), 0);	/* compared and written, not read again */
	assert_int_equal(verify(f, "bob", C1, T1, params(5, 0, true)).code, FTM_VERDICT_OK);
	assert_int_equal(sql_int(f, FULL_WRITES("S2")), 1);	/* no proof: decided and written in full */
	a = get(f, "S1");
	b = get(f, "S2");
	assert_int_equal(a.last_step, T1 / 30);
	assert_int_equal(a.last_step, b.last_step);
	assert_int_equal(a.failures, b.failures);
	assert_int_equal(a.status, b.status);
	assert_int_equal(a.lock_reason, b.lock_reason);
	assert_int_equal(a.locked_at, b.locked_at);
	assert_int_equal(audit_rows(f->st, "alice", NULL, 0, 0).n, 1);
	/* the same proof again: the row is no longer as the peek read it (its step); decided in full, one
	 * audit row more, the replay's */
	audit = audit_login(FTM_AUDIT_EV_CODE);
	assert_int_equal(verify(f, "alice", C1, T1, p).code, FTM_VERDICT_REPLAY);
	assert_int_equal(audit_rows(f->st, "alice", NULL, 0, 0).n, 2);
	assert_int_equal(audit_rows(f->st, "alice", FTM_AUDIT_ACCEPTED, 0, 0).n, 1);
	assert_int_equal(audit_rows(f->st, "alice", FTM_AUDIT_REPLAY, 0, 0).n, 1);

	/* a user holding two clean tokens: compared too, the other token untouched */
	add(f, "dave", "D1");
	add(f, "dave", "D2");
	proof = peek_proof(f, "dave", C1, T1);
	assert_true(proof.step_only);
	assert_int_equal(verify_proved(f, "dave", C1, T1, &proof).code, FTM_VERDICT_OK);
	assert_int_equal(sql_int(f, FULL_WRITES("D1")) + sql_int(f, FULL_WRITES("D2")), 0);
	assert_int_equal(get(f, "D1").last_step, T1 / 30);
	assert_int_equal(get(f, "D2").last_step, -1);
}


static void each_verdict_leaves_one_audit_row(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	audit_case_each_verdict_leaves_one_row(f->st);
}

/* Another process's trigger makes the file refuse audit rows. */
static void refuse_audit_rows(void *ctx)
{
	sql_run(ctx, "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END");
}

static void an_unwritable_audit_row_fails_the_verdict_closed(void **state)
{
	fixture_t *f = *state;

	add(f, "alice", "S1");
	audit_case_an_unwritable_row_fails_the_verdict_closed(f->st, refuse_audit_rows, f);
}

/* In a group commit of verdicts, one that fails is undone alone, whether it failed before writing (a
 * seed that does not decrypt) or after its token's write-back (its audit row refused by another
 * process's trigger): the token keeps its failure count and no row is left, while every other verdict
 * of the batch commits once (a wrong code: one failure and one audit row each time). */
struct audited_user {
	fixture_t	*f;
	char		user[16];
	int		wrong, errors;
};

static void *wrong_codes_audited(void *arg)
{
	struct audited_user *u = arg;
	ftm_audit_row_t a = audit_login(FTM_AUDIT_EV_CODE);
	ftm_verify_params_t p = params(0, 0, true);
	ftm_verdict_t v;

	snprintf(a.user, sizeof(a.user), "%s", u->user);
	p.audit = &a;
	for (int i = 0; i < ROUNDS * 4; i++) {
		if (ftm_store_verify_code(u->f->st, u->user, BAD, T1, &p, &v) != 0)
			u->errors++;
		else if (v.code == FTM_VERDICT_BAD_CODE)
			u->wrong++;
	}
	return NULL;
}

static void a_batched_verdict_that_fails_is_undone_alone_and_the_others_commit_once(void **state)
{
	fixture_t *f = *state;
	pthread_t tid[THREADS];
	struct audited_user u[THREADS];

	for (int i = 0; i < THREADS; i++) {
		char serial[16];

		u[i] = (struct audited_user){ .f = f };
		snprintf(u[i].user, sizeof(u[i].user), i == 0 ? "victim" : i == 1 ? "broken" : "user%d", i);
		snprintf(serial, sizeof(serial), "S%d", i);
		add(f, u[i].user, serial);
	}
	sql_run(f, "CREATE TRIGGER no_victim_audit BEFORE INSERT ON audit"
		" WHEN NEW.user = 'victim' BEGIN SELECT RAISE(ABORT, 'audit refused'); END;"
		"UPDATE tokens SET seed = (SELECT seed FROM tokens WHERE serial = 'S2') WHERE serial = 'S1'");
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&tid[i], NULL, wrong_codes_audited, &u[i]), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(tid[i], NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(u[i].errors, ROUNDS * 4);
		assert_int_equal(audit_rows(f->st, u[i].user, NULL, 0, 0).n, 0);
	}
	assert_int_equal(get(f, "S0").failures, 0);
	for (int i = 2; i < THREADS; i++) {
		char serial[16];

		snprintf(serial, sizeof(serial), "S%d", i);
		assert_int_equal(u[i].errors, 0);
		assert_int_equal(u[i].wrong, ROUNDS * 4);
		assert_int_equal(get(f, serial).failures, ROUNDS * 4);
		assert_int_equal(audit_rows(f->st, u[i].user, NULL, 0, 0).n, ROUNDS * 4);
	}
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

/* A process sees a switch set by another at its next read, for that user (or everyone) only. */
static void the_trace_follows_the_store_switches(void **state)
{
	fixture_t *f = *state;
	time_t now = time(NULL);
	ftm_trace_t *t = ftm_trace_new();
	char err[256];

	assert_non_null(t);
	assert_false(ftm_trace_wanted(t, f->st, "alice", now));
	ftm_trace_free(t);
	assert_int_equal(ftm_store_debug_set(f->st, "alice", now + 60, now, err, sizeof(err)), 0);
	t = ftm_trace_new();
	assert_true(ftm_trace_wanted(t, f->st, "alice", now));
	assert_false(ftm_trace_wanted(t, f->st, "bob", now));
	assert_false(ftm_trace_wanted(t, f->st, "alice", now + 61));	/* past its expiry: off, whatever the copy */
	ftm_trace_free(t);
	assert_int_equal(ftm_store_debug_set(f->st, "", now + 60, now, err, sizeof(err)), 0);
	t = ftm_trace_new();
	assert_true(ftm_trace_wanted(t, f->st, "bob", now));
	ftm_trace_free(t);
}

/* ---- recovery codes: the user's, single use, in place of a token code ---- */

static void issue_recovery(fixture_t *f, const char *user, unsigned n, char codes[][FTM_RECOVERY_LEN + 1])
{
	char err[256] = "";

	assert_int_equal(ftm_store_recovery_issue(f->st, user, n, T1, codes, err, sizeof(err)), 0);
}

static ftm_verdict_t recover(fixture_t *f, const char *user, const char *code, ftm_verify_params_t p)
{
	ftm_verdict_t v;

	ftm_store_recovery_verify(f->st, user, code, T1, &p, &v);
	return v;
}

static void recovery_codes_are_printable_once_and_kept_only_as_salted_hashes(void **state)
{
	fixture_t *f = *state;
	char codes[3][FTM_RECOVERY_LEN + 1], wal[200];
	unsigned left, total;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 3, codes);
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_true(file_contains(f->db, "alice", 5) || file_contains(wal, "alice", 5));	/* we read the right files */
	for (int i = 0; i < 3; i++) {
		assert_true(ftm_recovery_is_code(codes[i]));
		assert_int_equal(codes[i][FTM_RECOVERY_GROUP], '-');
		assert_false(file_contains(f->db, codes[i], FTM_RECOVERY_LEN));
		assert_false(file_contains(wal, codes[i], FTM_RECOVERY_LEN));
	}
	assert_string_not_equal(codes[0], codes[1]);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", &left, &total, NULL, 0), 0);
	assert_int_equal(left, 3);
	assert_int_equal(total, 3);
}

static void a_user_without_a_token_gets_no_recovery_codes(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1], err[256] = "";

	assert_int_equal(ftm_store_recovery_issue(f->st, "nobody", 1, T1, codes, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "holds no token"));
	add(f, "alice", "S1");
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", 0, T1, codes, err, sizeof(err)), -1);
	assert_int_equal(ftm_store_recovery_issue(f->st, "alice", FTM_RECOVERY_COUNT_MAX + 1, T1, codes, err,
						  sizeof(err)), -1);
}

static void a_recovery_code_is_accepted_once_then_refused_as_used(void **state)
{
	fixture_t *f = *state;
	char codes[3][FTM_RECOVERY_LEN + 1];
	ftm_verdict_t v;
	unsigned left;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 3, codes);
	v = verify(f, "alice", BAD, T1, params(5, 0, true));
	assert_int_equal(v.failures, 1);
	v = recover(f, "alice", codes[1], params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_int_equal(v.recovery_left, 2);
	assert_string_equal(v.serial, "S1");
	assert_int_equal(get(f, "S1").failures, 0);		/* like a proven code */
	assert_int_equal(get(f, "S1").last_step, -1);		/* no time step was used */
	v = recover(f, "alice", codes[1], params(5, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_string_equal(v.message, FTM_MSG_RECOVERY_USED);
	assert_int_equal(get(f, "S1").failures, 0);		/* a used code is no guess */
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", &left, NULL, NULL, 0), 0);
	assert_int_equal(left, 2);
}

static void a_recovery_code_is_read_as_typed_from_paper(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1], typed[FTM_RECOVERY_LEN + 1];

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 1, codes);
	for (int i = 0; i < FTM_RECOVERY_LEN; i++)
		typed[i] = codes[0][i] == '1' ? 'l' : codes[0][i] == '0' ? 'O' :
			   codes[0][i] >= 'a' && codes[0][i] <= 'z' ? (char)(codes[0][i] - 'a' + 'A') : codes[0][i];
	typed[FTM_RECOVERY_LEN] = '\0';
	assert_int_equal(recover(f, "alice", typed, params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void a_wrong_recovery_code_counts_toward_the_lockout(void **state)
{
	fixture_t *f = *state;
	char codes[2][FTM_RECOVERY_LEN + 1];
	ftm_verdict_t v;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 2, codes);
	v = recover(f, "alice", "zzzzz-zzzzz", params(2, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_string_equal(v.message, FTM_MSG_RECOVERY_BAD);
	assert_int_equal(get(f, "S1").failures, 1);
	v = recover(f, "alice", "zzzzz-zzzzy", params(2, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_true(v.now_locked);
	assert_int_equal(get(f, "S1").status, FTM_TOKEN_LOCKED);
	/* a right code does not unlock: nothing consumed */
	v = recover(f, "alice", codes[0], params(2, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_LOCKED);
	assert_int_equal(v.recovery_left, 2);
}

static void a_recovery_peek_changes_nothing(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1];
	unsigned left;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 1, codes);
	assert_int_equal(recover(f, "alice", codes[0], params(5, 0, false)).code, FTM_VERDICT_OK);
	assert_int_equal(recover(f, "alice", "zzzzz-zzzzz", params(5, 0, false)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S1").failures, 0);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", &left, NULL, NULL, 0), 0);
	assert_int_equal(left, 1);
	assert_int_equal(recover(f, "alice", codes[0], params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void recovery_codes_are_the_users_own(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1];

	add(f, "alice", "S1");
	add(f, "bob", "S2");
	issue_recovery(f, "alice", 1, codes);
	assert_int_equal(recover(f, "bob", codes[0], params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(get(f, "S2").failures, 1);
	assert_int_equal(recover(f, "alice", codes[0], params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void regenerating_recovery_codes_revokes_the_old_set(void **state)
{
	fixture_t *f = *state;
	char old[2][FTM_RECOVERY_LEN + 1], fresh[2][FTM_RECOVERY_LEN + 1];
	unsigned left, total;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 2, old);
	assert_int_equal(recover(f, "alice", old[0], params(5, 0, true)).code, FTM_VERDICT_OK);
	issue_recovery(f, "alice", 2, fresh);
	assert_int_equal(recover(f, "alice", old[1], params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", &left, &total, NULL, 0), 0);
	assert_int_equal(left, 2);
	assert_int_equal(total, 2);
	assert_int_equal(recover(f, "alice", fresh[1], params(5, 0, true)).code, FTM_VERDICT_OK);
}

static void recovery_codes_go_with_the_users_last_token(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1], err[256];
	unsigned total;

	add(f, "alice", "S1");
	add(f, "alice", "S2");
	issue_recovery(f, "alice", 1, codes);
	assert_int_equal(ftm_store_token_delete(f->st, "S1", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", NULL, &total, NULL, 0), 0);
	assert_int_equal(total, 1);		/* alice still holds S2 */
	assert_int_equal(ftm_store_token_set_user(f->st, "S2", "bob", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_recovery_count(f->st, "alice", NULL, &total, NULL, 0), 0);
	assert_int_equal(total, 0);		/* her last token moved away: the codes went */
	add(f, "alice", "S3");			/* a new token for the same name inherits nothing */
	assert_int_equal(recover(f, "alice", codes[0], params(5, 0, true)).code, FTM_VERDICT_BAD_CODE);
}

struct recovery_race {
	fixture_t	*f;
	const char	*code;
	int		ok, used, other;
};

static void *recovery_racer(void *arg)
{
	struct recovery_race *r = arg;
	ftm_verify_params_t p = params(0, 0, true);
	ftm_store_t *st = ftm_store_open(r->f->db, NULL, NULL, NULL, 0);	/* a process of its own */

	if (st == NULL) {
		r->other = -1;
		return NULL;
	}
	for (int i = 0; i < 5; i++) {
		ftm_verdict_t v;

		ftm_store_recovery_verify(st, "alice", r->code, T1, &p, &v);
		if (v.code == FTM_VERDICT_OK)
			r->ok++;
		else if (v.code == FTM_VERDICT_REPLAY)
			r->used++;
		else
			r->other++;
	}
	ftm_store_close(st);
	return NULL;
}

static void a_raced_recovery_code_has_one_winner(void **state)
{
	fixture_t *f = *state;
	char codes[1][FTM_RECOVERY_LEN + 1];
	pthread_t tid[4];
	struct recovery_race r[4];
	int ok = 0, used = 0;

	add(f, "alice", "S1");
	issue_recovery(f, "alice", 1, codes);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct recovery_race){ .f = f, .code = codes[0] };
		assert_int_equal(pthread_create(&tid[i], NULL, recovery_racer, &r[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(r[i].other, 0);
		ok += r[i].ok;
		used += r[i].used;
	}
	assert_int_equal(ok, 1);
	assert_int_equal(used, 19);
}

/* The -wal file's size: -1 when there is none. */
static off_t wal_size(const fixture_t *f)
{
	char path[160];
	struct stat sb;

	snprintf(path, sizeof(path), "%s-wal", f->db);
	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* A process that wrote 64 frames or more to the WAL checkpoints and truncates it as it closes, so the
 * next process to open the file (a PAM login) does not read it all back; one that wrote less leaves
 * it as it is (a checkpoint costs syncs). Every commit is kept either way. */
static void a_closing_store_truncates_a_long_wal(void **state)
{
	fixture_t *f = *state;
	char serial[16], err[256];
	ftm_token_t t;

	ftm_store_close(f->st);
	f->st = NULL;
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	add(f, "alice", "S0");
	ftm_store_close(f->st);
	f->st = NULL;
	assert_true(wal_size(f) > 0);		/* a few frames: left */
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	for (int i = 1; i <= 80; i++) {		/* a commit, and a frame at least, each */
		snprintf(serial, sizeof(serial), "S%d", i);
		add(f, "alice", serial);
	}
	assert_true(wal_size(f) > 0);
	ftm_store_close(f->st);
	f->st = NULL;
	assert_int_equal(wal_size(f), 0);	/* checkpointed and truncated */
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	assert_int_equal(ftm_store_token_get(f->st, "S0", &t, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_token_get(f->st, "S80", &t, err, sizeof(err)), 0);
	assert_string_equal(t.user, "alice");
}

/* How many of this process's descriptors are open on the store's file itself (not -wal, -shm). */
static int db_fds(const fixture_t *f)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char link[300], target[256];
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL) {
		ssize_t len;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", e->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len > 0) {
			target[len] = '\0';
			n += strcmp(target, f->db) == 0;
		}
	}
	closedir(d);
	return n;
}

/* A handle opened for one thread (ftm_store_open_single: a PAM login's) reads on its writer: after a
 * read, a verdict, a replay and a list it still holds one connection, where a shared handle holds a
 * reader too; and it decides the same. */
static void a_single_thread_handle_reads_on_its_writer(void **state)
{
	fixture_t *f = *state;
	char err[256];
	ftm_verify_params_t p = params(5, 0, true);
	ftm_verdict_t v;
	ftm_token_t t;
	ftm_store_t *shared;

	add(f, "alice", "S1");
	ftm_store_close(f->st);
	f->st = ftm_store_open_single(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(f->st);
	t = get(f, "S1");
	assert_string_equal(t.user, "alice");
	assert_int_equal(verify(f, "alice", C1, T1, p).code, FTM_VERDICT_OK);
	v = verify(f, "alice", C1, T1, p);
	assert_int_equal(v.code, FTM_VERDICT_REPLAY);
	assert_int_equal(get(f, "S1").last_step, T1 / 30);
	assert_int_equal(db_fds(f), 1);
	shared = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	assert_non_null(shared);
	assert_int_equal(ftm_store_token_get(shared, "S1", &t, err, sizeof(err)), 0);
	assert_int_equal(db_fds(f), 3);		/* its writer and its reader */
	ftm_store_close(shared);
}

/* A user with more tokens than a verdict reads onto its stack (2) or classifies there (8): the rows
 * grow into allocated arrays and every token is still decided on and written back. */
static void a_user_with_nine_tokens_is_decided_on_every_token(void **state)
{
	fixture_t *f = *state;
	ftm_verdict_t v;
	char serial[16];
	int used = 0;

	for (int i = 0; i < 9; i++) {
		snprintf(serial, sizeof(serial), "N%d", i);
		add(f, "nina", serial);
	}
	v = verify(f, "nina", BAD, T1, params(0, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(v.failures, 1);
	for (int i = 0; i < 9; i++) {
		snprintf(serial, sizeof(serial), "N%d", i);
		assert_int_equal(get(f, serial).failures, 1);
	}
	assert_int_equal(verify(f, "nina", C1, T1, params(0, 0, false)).code, FTM_VERDICT_OK);
	v = verify(f, "nina", C1, T1, params(0, 0, true));
	assert_int_equal(v.code, FTM_VERDICT_OK);
	for (int i = 0; i < 9; i++) {
		ftm_token_t t;

		snprintf(serial, sizeof(serial), "N%d", i);
		t = get(f, serial);
		assert_int_equal(t.failures, 0);
		used += t.last_step >= 0;	/* the seeds are the same: one token took the step */
	}
	assert_int_equal(used, 1);
}

/* The reason of an accepted code, word for word (the verdict's log line and audit row carry it): the
 * peek's, and the verdict's that the peek's proof spared a TOTP computation. */
static void an_accepted_codes_reason_names_the_token_and_the_step(void **state)
{
	fixture_t *f = *state;
	ftm_verify_params_t p = params(0, 0, false);
	ftm_verdict_t peek, v;
	char want[FTM_MSG_MAX];

	add(f, "alice", "S1");
	peek = verify(f, "alice", C1, T1, p);
	assert_int_equal(peek.code, FTM_VERDICT_OK);
	snprintf(want, sizeof(want), "code accepted by token %s (step %llu%s)", "S1", 37037036ULL, "");
	assert_string_equal(peek.reason, want);
	p = params(0, 0, true);
	p.proof = &peek.proof;
	v = verify(f, "alice", C1, T1, p);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	snprintf(want, sizeof(want), "code accepted by token %s (step %llu%s)", "S1", 37037036ULL,
		 ", as the split's peek proved");
	assert_string_equal(v.reason, want);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

/* ---- pending pushes and number-matching States (store_push_spec.h): on two handles ---- */

static ftm_store_t *fixture_other(fixture_t *f, char *err, size_t err_len)
{
	return ftm_store_open(f->db, NULL, NULL, err, err_len);
}

FIXTURE_TWO_HANDLES(a_users_second_push_gets_the_pending_one)
FIXTURE_TWO_HANDLES(an_expired_push_is_no_longer_pending_and_old_rows_go)
FIXTURE_TWO_HANDLES(a_capability_decides_its_row_once_on_any_handle)
FIXTURE_TWO_HANDLES(a_number_state_is_taken_once_on_any_handle)
FIXTURE_TWO_HANDLES(a_number_state_flood_flushes_only_the_flooders_own)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(a_closing_store_truncates_a_long_wal),
		T(a_single_thread_handle_reads_on_its_writer),
		T(a_file_without_an_open_time_table_gets_it_at_open),
		T(a_users_second_push_gets_the_pending_one),
		T(an_expired_push_is_no_longer_pending_and_old_rows_go),
		T(a_capability_decides_its_row_once_on_any_handle),
		T(a_number_state_is_taken_once_on_any_handle),
		T(a_number_state_flood_flushes_only_the_flooders_own),
		T(add_then_get_returns_the_same_token),
		T(a_user_with_nine_tokens_is_decided_on_every_token),
		T(an_accepted_codes_reason_names_the_token_and_the_step),
		T(adding_an_existing_serial_is_refused),
		T(get_of_an_unknown_serial_is_not_found),
		T(invalid_tokens_are_refused),
		T(list_orders_by_user_then_serial_and_filters_by_user),
		T(list_info_lists_the_same_tokens_without_unsealing_a_seed),
		T(lock_then_unlock_resets_failures),
		T(delete_removes_the_token),
		T(set_push_and_assign_change_only_that),
		T(reissue_replaces_the_seed_and_resets_state),
		T(import_is_all_or_nothing),
		T(an_import_of_many_chunks_is_all_or_nothing),
		T(tokens_present_marks_exactly_the_serials_in_the_store),
		T(seeds_are_not_in_clear_in_the_database),
		T(database_and_key_file_are_created_0600),
		T(key_file_readable_by_others_is_refused),
		T(key_file_of_the_wrong_size_is_refused),
		T(another_key_file_is_refused_at_open),
		T(a_missing_key_file_of_an_existing_store_is_not_recreated),
		T(a_world_writable_store_is_refused),
		T(a_store_on_a_network_file_system_is_refused),
		T(a_sealed_seed_moved_to_another_serial_does_not_open),
		T(a_valid_code_is_accepted_and_its_step_recorded),
		T(a_replayed_code_is_refused_with_the_wait),
		T(a_wrong_code_counts_a_failure),
		T(the_threshold_failure_locks_the_token),
		T(zero_threshold_never_locks),
		T(success_resets_the_failure_count),
		T(a_never_used_token_expires_after_its_activation_window),
		T(a_user_without_a_token_gets_no_token),
		T(every_token_of_a_user_is_tried),
		T(peek_changes_nothing),
		T(a_peek_hands_each_token_it_decides_on_to_tokens_cb),
		T(a_recorded_failure_counts_like_a_wrong_code),
		T(a_recorded_success_resets_failures_and_refuses_a_locked_token),
		T(recorded_failures_fail_closed_on_bad_input),
		T(a_peek_proof_carries_to_the_verdict_on_the_same_code),
		T(a_proof_holds_only_for_its_user_and_code),
		T(a_proof_does_not_outlive_a_replay_a_lock_or_a_reissue),
		T(a_step_only_proof_is_written_as_a_full_verdict_writes_it),
		T(a_proof_is_step_only_when_every_token_of_the_user_is_active_without_failures),
		T(a_step_only_proof_is_decided_in_full_when_the_user_changed_after_the_peek),
		T(a_step_only_proof_fails_closed_on_a_token_damaged_after_the_peek),
		T(threads_carrying_their_peeks_proof_accept_a_code_once),
		T(threads_with_their_own_handles_carrying_their_peeks_proof_accept_a_code_once),
		T(threads_sharing_a_handle_accept_a_code_once),
		T(concurrent_writers_commit_together_and_fail_alone),
		T(threads_with_their_own_handles_accept_a_code_once),
		T(threads_peeking_on_the_idle_writer_between_verdicts_accept_a_code_once),
		T(a_peek_on_the_idle_writer_sees_every_commit_and_changes_nothing),
		T(a_challenge_issued_by_one_process_is_answered_once_by_another),
		T(a_challenge_flood_flushes_only_the_flooders_own_states),
		T(each_verdict_leaves_one_audit_row),
		T(an_unwritable_audit_row_fails_the_verdict_closed),
		T(a_batched_verdict_that_fails_is_undone_alone_and_the_others_commit_once),
		T(audit_rows_are_selected_by_user_result_time_and_count),
		T(audit_prune_drops_only_older_rows),
		T(debug_switches_expire_and_clear),
		T(the_trace_follows_the_store_switches),
		T(the_policy_is_seeded_with_the_built_in_defaults),
		T(a_policy_change_reaches_every_handle_of_the_store),
		T(a_policy_value_is_validated_and_a_refused_one_changes_nothing),
		T(a_verdict_without_parameters_uses_the_store_policy),
		T(a_lock_by_failures_ends_after_lockout_duration_with_the_failures_reset),
		T(a_wrong_code_after_the_lock_ended_counts_from_zero),
		T(an_admin_lock_survives_lockout_duration),
		T(a_version_1_file_is_migrated_with_its_tokens_and_old_locks_stay),
		T(the_audit_index_by_user_of_an_earlier_file_is_dropped_at_open),
		T(a_file_newer_than_the_binary_is_refused),
		T(recovery_codes_are_printable_once_and_kept_only_as_salted_hashes),
		T(a_user_without_a_token_gets_no_recovery_codes),
		T(a_recovery_code_is_accepted_once_then_refused_as_used),
		T(a_recovery_code_is_read_as_typed_from_paper),
		T(a_wrong_recovery_code_counts_toward_the_lockout),
		T(a_recovery_peek_changes_nothing),
		T(recovery_codes_are_the_users_own),
		T(regenerating_recovery_codes_revokes_the_old_set),
		T(a_raced_recovery_code_has_one_winner),
		T(recovery_codes_go_with_the_users_last_token),
		cmocka_unit_test(token_init_defaults_to_fortitoken_mobile),
		cmocka_unit_test(otpauth_uri_encodes_label_and_parameters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

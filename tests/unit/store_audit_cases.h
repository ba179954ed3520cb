/* store_audit_cases: the audit trail and debug switches as a specification, one body for both backends
 * (test_store.c on SQLite, test_store_pg.c on PostgreSQL). The including file defines T1, C1, BAD and
 * gives each case a store holding the RFC 6238 token "S1" of alice (add it before calling). */
#include "ftm_audit.h"

struct audit_rows {
	size_t		n;
	ftm_audit_row_t	row[16];
};

static int audit_collect(void *ctx, const ftm_audit_row_t *row)
{
	struct audit_rows *r = ctx;

	if (r->n < sizeof(r->row) / sizeof(r->row[0]))
		r->row[r->n] = *row;
	r->n++;
	return 0;
}

static struct audit_rows audit_rows(ftm_store_t *st, const char *user, const char *result, int64_t since, unsigned limit)
{
	ftm_audit_filter_t f = { .user = user, .result = result, .since = since, .limit = limit };
	struct audit_rows r = { 0 };
	char err[256];

	assert_int_equal(ftm_store_audit_list(st, &f, audit_collect, &r, err, sizeof(err)), 0);
	return r;
}

/* Who and where, as a front end fills it before the verdict. */
static ftm_audit_row_t audit_login(const char *event)
{
	ftm_audit_row_t a;

	memset(&a, 0, sizeof(a));
	snprintf(a.event, sizeof(a.event), "%s", event);
	snprintf(a.user, sizeof(a.user), "alice");
	snprintf(a.client, sizeof(a.client), "192.0.2.7");
	snprintf(a.nas, sizeof(a.nas), "vpn-gw");
	snprintf(a.frontend, sizeof(a.frontend), FTM_AUDIT_FE_RADIUS);
	snprintf(a.node, sizeof(a.node), "node-a");
	return a;
}

static ftm_verdict_t audited_verify(ftm_store_t *st, const char *code, time_t now, bool consume)
{
	ftm_audit_row_t a = audit_login(FTM_AUDIT_EV_CODE);
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .consume = consume, .audit = &a };
	ftm_verdict_t v;

	assert_int_equal(ftm_store_verify_code(st, "alice", code, now, &p, &v), 0);
	return v;
}

/* Each consuming verdict leaves one row naming what was decided, who, from where and why, and never
 * the code; a peek leaves none. */
static void audit_case_each_verdict_leaves_one_row(ftm_store_t *st)
{
	ftm_audit_row_t a = audit_login(FTM_AUDIT_EV_PUSH);
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .consume = true, .audit = &a };
	struct audit_rows r;
	ftm_verdict_t v;

	assert_int_equal(audited_verify(st, C1, T1, false).code, FTM_VERDICT_OK);	/* a peek */
	assert_int_equal(audit_rows(st, NULL, NULL, 0, 0).n, 0);
	assert_int_equal(audited_verify(st, BAD, T1, true).code, FTM_VERDICT_BAD_CODE);
	assert_int_equal(audited_verify(st, C1, T1, true).code, FTM_VERDICT_OK);
	assert_int_equal(audited_verify(st, C1, T1, true).code, FTM_VERDICT_REPLAY);
	assert_int_equal(ftm_store_record_success(st, "alice", "S1", T1, &p, &v), 0);
	snprintf(a.event, sizeof(a.event), FTM_AUDIT_EV_NUMBER);
	assert_int_equal(ftm_store_record_failure(st, "alice", "S1", T1, &p, &v), 0);
	r = audit_rows(st, NULL, NULL, 0, 0);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.row[0].result, FTM_AUDIT_WRONG);
	assert_string_equal(r.row[1].result, FTM_AUDIT_ACCEPTED);
	assert_string_equal(r.row[2].result, FTM_AUDIT_REPLAY);
	assert_string_equal(r.row[3].event, FTM_AUDIT_EV_PUSH);
	assert_string_equal(r.row[3].result, FTM_AUDIT_APPROVED);
	assert_string_equal(r.row[4].event, FTM_AUDIT_EV_NUMBER);
	assert_string_equal(r.row[4].result, FTM_AUDIT_WRONG);
	for (size_t i = 0; i < r.n; i++) {
		assert_true(i == 0 || r.row[i].id > r.row[i - 1].id);
		assert_int_equal(r.row[i].at, T1);
		assert_string_equal(r.row[i].user, "alice");
		assert_string_equal(r.row[i].serial, "S1");
		assert_string_equal(r.row[i].client, "192.0.2.7");
		assert_string_equal(r.row[i].nas, "vpn-gw");
		assert_string_equal(r.row[i].frontend, FTM_AUDIT_FE_RADIUS);
		assert_string_equal(r.row[i].node, "node-a");
		assert_true(r.row[i].reason[0] != '\0');
		assert_null(strstr(r.row[i].reason, C1));
		assert_null(strstr(r.row[i].reason, BAD));
	}
}

static int audited_verify_rc(ftm_store_t *st, const char *code, time_t now)
{
	ftm_audit_row_t a = audit_login(FTM_AUDIT_EV_CODE);
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .consume = true, .audit = &a };
	ftm_verdict_t v;
	int rc = ftm_store_verify_code(st, "alice", code, now, &p, &v);

	assert_int_equal(v.code, rc == 0 ? v.code : FTM_VERDICT_ERROR);
	return rc;
}

/* A verdict whose row cannot be written is not committed either: the login fails closed and the code
 * stays unused (sabotage makes the store refuse audit rows). */
static void audit_case_an_unwritable_row_fails_the_verdict_closed(ftm_store_t *st, void (*sabotage)(void *), void *ctx)
{
	ftm_verify_params_t plain = { .window = 1, .lockout_threshold = 5, .consume = true };
	ftm_verdict_t v;
	ftm_token_t t;

	sabotage(ctx);
	assert_int_equal(audited_verify_rc(st, C1, T1), -1);
	assert_int_equal(ftm_store_token_get(st, "S1", &t, NULL, 0), 0);
	assert_int_equal(t.last_step, -1);
	assert_int_equal(ftm_store_verify_code(st, "alice", C1, T1, &plain, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
}

static ftm_audit_row_t audit_at(const char *user, const char *result, int64_t at)
{
	ftm_audit_row_t a = audit_login(FTM_AUDIT_EV_CODE);

	snprintf(a.user, sizeof(a.user), "%s", user);
	snprintf(a.result, sizeof(a.result), "%s", result);
	snprintf(a.reason, sizeof(a.reason), "test row");
	a.at = at;
	return a;
}

/* --user, --result, --since and --limit select rows; the newest `limit`, still oldest first. */
static void audit_case_rows_are_selected_by_user_result_time_and_count(ftm_store_t *st)
{
	static const struct { const char *user, *result; int64_t at; } rows[] = {
		{ "alice", FTM_AUDIT_ACCEPTED, 1000 }, { "bob", FTM_AUDIT_WRONG, 2000 },
		{ "alice", FTM_AUDIT_WRONG, 3000 }, { "alice", FTM_AUDIT_LOCKED, 4000 },
	};
	struct audit_rows r;
	char err[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ftm_audit_row_t a = audit_at(rows[i].user, rows[i].result, rows[i].at);

		assert_int_equal(ftm_store_audit_append(st, &a, err, sizeof(err)), 0);
	}
	assert_int_equal(audit_rows(st, NULL, NULL, 0, 0).n, 4);
	r = audit_rows(st, "alice", NULL, 0, 0);
	assert_int_equal(r.n, 3);
	assert_int_equal(r.row[0].at, 1000);
	r = audit_rows(st, NULL, FTM_AUDIT_WRONG, 0, 0);
	assert_int_equal(r.n, 2);
	assert_string_equal(r.row[0].user, "bob");
	r = audit_rows(st, "alice", FTM_AUDIT_WRONG, 0, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.row[0].at, 3000);
	assert_int_equal(audit_rows(st, NULL, NULL, 2500, 0).n, 2);
	r = audit_rows(st, NULL, NULL, 0, 2);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.row[0].at, 3000);
	assert_int_equal(r.row[1].at, 4000);
	assert_int_equal(audit_rows(st, "carol", NULL, 0, 0).n, 0);
}

/* Retention: the rows older than the cut go, the others stay. */
static void audit_case_prune_drops_only_older_rows(ftm_store_t *st)
{
	unsigned long removed = 99;
	char err[256];

	for (int64_t at = 1000; at <= 5000; at += 1000) {
		ftm_audit_row_t a = audit_at("alice", FTM_AUDIT_ACCEPTED, at);

		assert_int_equal(ftm_store_audit_append(st, &a, err, sizeof(err)), 0);
	}
	assert_int_equal(ftm_store_audit_prune(st, 3000, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 2);
	assert_int_equal(audit_rows(st, NULL, NULL, 0, 0).n, 3);
	assert_int_equal(audit_rows(st, NULL, NULL, 0, 0).row[0].at, 3000);
	/* audit_retention days back from now: 90 days keep what is 89 days old */
	assert_int_equal(ftm_audit_prune(st, 90, 5000 + 89 * 86400, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 0);
	assert_int_equal(ftm_audit_prune(st, 90, 5000 + 91 * 86400, &removed, err, sizeof(err)), 0);
	assert_int_equal(removed, 3);
	assert_int_equal(ftm_audit_prune(st, 0, 1LL << 40, &removed, err, sizeof(err)), 0);	/* 0: keep */
}

struct debug_seen {
	unsigned	n;
	char		users[4][32];
	int64_t		expires[4];
};

static int debug_collect(void *ctx, const char *user, int64_t expires)
{
	struct debug_seen *d = ctx;

	if (d->n < 4) {
		snprintf(d->users[d->n], sizeof(d->users[0]), "%s", user);
		d->expires[d->n] = expires;
	}
	d->n++;
	return 0;
}

static struct debug_seen debug_switches(ftm_store_t *st, time_t now)
{
	struct debug_seen d = { 0 };
	char err[256];

	assert_int_equal(ftm_store_debug_list(st, now, debug_collect, &d, err, sizeof(err)), 0);
	return d;
}

/* One switch per user ("" everyone), replaced by a later enable, off at its expiry or when cleared. */
static void debug_case_switches_expire_and_clear(ftm_store_t *st)
{
	struct debug_seen d;
	char err[256];

	assert_int_equal(debug_switches(st, 1000).n, 0);
	assert_int_equal(ftm_store_debug_set(st, "alice", 1060, 1000, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_debug_set(st, "", 1030, 1000, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_debug_set(st, "alice", 1120, 1000, err, sizeof(err)), 0);	/* replaces */
	d = debug_switches(st, 1000);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.users[0], "");
	assert_string_equal(d.users[1], "alice");
	assert_int_equal(d.expires[1], 1120);
	d = debug_switches(st, 1030);	/* the everyone switch ends at its expiry */
	assert_int_equal(d.n, 1);
	assert_string_equal(d.users[0], "alice");
	assert_int_equal(debug_switches(st, 1120).n, 0);
	assert_int_equal(ftm_store_debug_set(st, "bob", 999, 1000, err, sizeof(err)), -1);	/* already over */
	assert_int_equal(ftm_store_debug_clear(st, "alice", err, sizeof(err)), 0);
	assert_int_equal(ftm_store_debug_clear(st, "alice", err, sizeof(err)), 1);
	d = debug_switches(st, 1000);	/* the everyone switch is its own */
	assert_int_equal(d.n, 1);
	assert_string_equal(d.users[0], "");
	assert_int_equal(ftm_store_debug_set(st, "bob", 1060, 1000, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_debug_set(st, "carol", 1060, 1000, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_debug_clear(st, NULL, err, sizeof(err)), 0);	/* every switch */
	assert_int_equal(debug_switches(st, 1000).n, 0);
}

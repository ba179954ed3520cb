/* store_push_spec: pending pushes and number-matching States in the store, one specification for both
 * backends (test_store.c on SQLite, test_store_pg.c on PostgreSQL); a and b are two handles on one
 * store: two processes on one file, or two nodes on one database. */
#ifndef STORE_PUSH_SPEC_H
#define STORE_PUSH_SPEC_H

#define PUSH_NOW	2000000000LL

static void spec_row(ftm_push_row_t *r, const char *id, const char *user, const char *client_hash, int64_t expires)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", id);
	snprintf(r->user, sizeof(r->user), "%s", user);
	snprintf(r->serial, sizeof(r->serial), "FTKMOB%s", user);
	snprintf(r->client_hash, sizeof(r->client_hash), "%s", client_hash);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 64; j++)
			r->caps[i][j] = "0123456789abcdef"[(id[0] + i * 7 + j) % 16];
	r->caps[1][0] = r->caps[0][0] == 'f' ? 'e' : 'f';	/* distinct from cap 0 */
	r->approve_cap = 0;
	r->expires = expires;
	r->verdict = FTM_PUSH_PENDING;
}

#define ID_A	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B	"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C	"cccccccccccccccccccccccccccccccc"
#define CLIENT1	"1111111111111111111111111111111111111111111111111111111111111111"
#define CLIENT2	"2222222222222222222222222222222222222222222222222222222222222222"

/* A test decision: approve with the capability named, record nothing when the row is decided. */
struct spec_answer {
	const char		*cap;		/* the capability hash used (NULL: approve by id) */
	int			calls;
	ftm_push_verdict_t	seen;		/* the row's verdict before */
	ftm_push_verdict_t	set;
};

static int spec_decide(void *ctx, ftm_push_row_t *row)
{
	struct spec_answer *a = ctx;

	a->calls++;
	a->seen = row->verdict;
	if (row->verdict != FTM_PUSH_PENDING)
		return 0;	/* single use: a replay changes nothing */
	row->verdict = a->cap == NULL || strcmp(a->cap, row->caps[row->approve_cap]) == 0 ? FTM_PUSH_APPROVED
											  : FTM_PUSH_DENIED;
	snprintf(row->reason, sizeof(row->reason), "decided by the spec");
	row->dirty = true;
	a->set = row->verdict;
	return 0;
}

/* At most one pending push per user on the whole store: a second asks gets the first one back. */
static void spec_a_users_second_push_gets_the_pending_one(ftm_store_t *a, ftm_store_t *b)
{
	ftm_push_row_t r, pending;
	struct spec_answer ans = { 0 };
	char err[256];

	spec_row(&r, ID_A, "alice", CLIENT1, PUSH_NOW + 60);
	assert_int_equal(ftm_store_push_put(a, &r, PUSH_NOW, &pending, err, sizeof(err)), 0);
	spec_row(&r, ID_B, "alice", CLIENT2, PUSH_NOW + 60);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW + 1, &pending, err, sizeof(err)), 1);
	assert_string_equal(pending.id, ID_A);
	assert_string_equal(pending.client_hash, CLIENT1);
	assert_string_equal(pending.serial, "FTKMOBalice");
	assert_int_equal(pending.verdict, FTM_PUSH_PENDING);
	/* another user is not held up */
	spec_row(&r, ID_C, "bob", CLIENT1, PUSH_NOW + 60);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW, &pending, err, sizeof(err)), 0);
	/* once decided, the user may push again */
	assert_int_equal(ftm_store_push_decide(b, FTM_PUSH_BY_ID, ID_A, spec_decide, &ans, err, sizeof(err)), 0);
	spec_row(&r, ID_B, "alice", CLIENT2, PUSH_NOW + 70);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW + 2, &pending, err, sizeof(err)), 0);
}

/* An expired pending push holds nobody up, and old rows are purged when a new one is stored. */
static void spec_an_expired_push_is_no_longer_pending_and_old_rows_go(ftm_store_t *a, ftm_store_t *b)
{
	ftm_push_row_t r, pending;
	char err[256];

	spec_row(&r, ID_A, "alice", CLIENT1, PUSH_NOW + 60);
	assert_int_equal(ftm_store_push_put(a, &r, PUSH_NOW, &pending, err, sizeof(err)), 0);
	spec_row(&r, ID_B, "alice", CLIENT1, PUSH_NOW + 120);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW + 60, &pending, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_push_get(a, ID_A, &r, err, sizeof(err)), 0);	/* kept for replays */
	spec_row(&r, ID_C, "carol", CLIENT1, PUSH_NOW + 1000);
	assert_int_equal(ftm_store_push_put(b, &r, PUSH_NOW + 60 + FTM_PUSH_RETAIN_ROW + 1, &pending, err,
					    sizeof(err)), 0);
	assert_int_equal(ftm_store_push_get(a, ID_A, &r, err, sizeof(err)), 1);
	assert_int_equal(ftm_store_push_get(a, "not-an-id", &r, err, sizeof(err)), 1);
}

/* A callback on the other handle finds the row by a capability's hash and decides it once; a replay or
 * an unknown capability changes nothing. */
static void spec_a_capability_decides_its_row_once_on_any_handle(ftm_store_t *a, ftm_store_t *b)
{
	ftm_push_row_t r, pending, got;
	struct spec_answer deny = { 0 }, again = { 0 }, unknown = { 0 };
	char err[256], cap1[65], nobody[65];

	spec_row(&r, ID_A, "alice", CLIENT1, PUSH_NOW + 60);
	snprintf(cap1, sizeof(cap1), "%s", r.caps[1]);
	assert_int_equal(ftm_store_push_put(a, &r, PUSH_NOW, &pending, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_push_get(b, ID_A, &got, err, sizeof(err)), 0);
	assert_string_equal(got.caps[0], r.caps[0]);
	assert_string_equal(got.caps[2], "");
	assert_int_equal(got.verdict, FTM_PUSH_PENDING);

	memset(nobody, 'e', 64);
	nobody[64] = '\0';
	unknown.cap = nobody;
	assert_int_equal(ftm_store_push_decide(b, FTM_PUSH_BY_CAP, nobody, spec_decide, &unknown, err, sizeof(err)), 1);
	assert_int_equal(unknown.calls, 0);

	deny.cap = cap1;
	assert_int_equal(ftm_store_push_decide(b, FTM_PUSH_BY_CAP, cap1, spec_decide, &deny, err, sizeof(err)), 0);
	assert_int_equal(deny.set, FTM_PUSH_DENIED);
	assert_int_equal(ftm_store_push_get(a, ID_A, &got, err, sizeof(err)), 0);
	assert_int_equal(got.verdict, FTM_PUSH_DENIED);
	assert_string_equal(got.reason, "decided by the spec");

	again.cap = r.caps[0];
	assert_int_equal(ftm_store_push_decide(a, FTM_PUSH_BY_CAP, r.caps[0], spec_decide, &again, err, sizeof(err)), 0);
	assert_int_equal(again.seen, FTM_PUSH_DENIED);
	assert_int_equal(ftm_store_push_get(b, ID_A, &got, err, sizeof(err)), 0);
	assert_int_equal(got.verdict, FTM_PUSH_DENIED);	/* the replay with the approve capability changed nothing */
}

/* A number-matching State: issued on one handle, taken once on the other, bound to user and client. */
static void spec_a_number_state_is_taken_once_on_any_handle(ftm_store_t *a, ftm_store_t *b)
{
	char err[256], s1[FTM_STATE_HEX + 1], s2[FTM_STATE_HEX + 1], tx[33];
	ftm_state_check_t check;

	assert_int_equal(ftm_store_number_issue(a, "alice", "10.0.0.1", ID_A, PUSH_NOW, 70, s1, err, sizeof(err)), 0);
	assert_int_equal(strlen(s1), FTM_STATE_HEX);
	assert_int_equal(ftm_store_number_take(b, "alice", "10.0.0.1", s1, PUSH_NOW + 69, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	assert_string_equal(tx, ID_A);
	assert_int_equal(ftm_store_number_take(a, "alice", "10.0.0.1", s1, PUSH_NOW + 69, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);	/* single use */

	assert_int_equal(ftm_store_number_issue(a, "alice", "10.0.0.1", ID_A, PUSH_NOW, 70, s2, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_number_take(b, "alice", "10.0.0.2", s2, PUSH_NOW, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_MISMATCH);	/* another client: refused and consumed */
	assert_int_equal(ftm_store_number_take(a, "alice", "10.0.0.1", s2, PUSH_NOW, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);

	assert_int_equal(ftm_store_number_issue(a, "alice", "10.0.0.1", ID_A, PUSH_NOW, 70, s2, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_number_take(b, "alice", "10.0.0.1", s2, PUSH_NOW + 70, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_EXPIRED);

	/* the whole client binds: two identities sharing their first 200 bytes are two clients */
	{
		char long_a[260], long_b[260];

		memset(long_a, 'x', 250);
		long_a[250] = '\0';
		memcpy(long_b, long_a, sizeof(long_b));
		long_b[249] = 'y';
		assert_int_equal(ftm_store_number_issue(a, "alice", long_a, ID_A, PUSH_NOW, 70, s2, err, sizeof(err)), 0);
		assert_int_equal(ftm_store_number_take(b, "alice", long_b, s2, PUSH_NOW, &check, tx, err, sizeof(err)), 0);
		assert_int_equal(check, FTM_STATE_MISMATCH);
		assert_int_equal(ftm_store_number_issue(a, "alice", long_a, ID_A, PUSH_NOW, 70, s2, err, sizeof(err)), 0);
		assert_int_equal(ftm_store_number_take(b, "alice", long_a, s2, PUSH_NOW, &check, tx, err, sizeof(err)), 0);
		assert_int_equal(check, FTM_STATE_OK);
	}

	/* a code-challenge State is no number State, and the other way round */
	assert_int_equal(ftm_store_challenge_issue(a, "alice", "10.0.0.1", PUSH_NOW, 60, s1, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_number_take(b, "alice", "10.0.0.1", s1, PUSH_NOW, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);
	assert_int_equal(ftm_store_challenge_take(b, "alice", "10.0.0.1", s1, PUSH_NOW, &check, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
}

/* The flood caps of the code-challenge States hold for number States too. */
static void spec_a_number_state_flood_flushes_only_the_flooders_own(ftm_store_t *a, ftm_store_t *b)
{
	char err[256], victim[FTM_STATE_HEX + 1], first[FTM_STATE_HEX + 1], last[FTM_STATE_HEX + 1], tx[33];
	ftm_state_check_t check;
	int64_t t = PUSH_NOW;

	assert_int_equal(ftm_store_number_issue(a, "bob", "10.0.0.9", ID_B, t, 600, victim, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_number_issue(a, "mallory", "10.0.0.66", ID_A, ++t, 600, first, err, sizeof(err)), 0);
	for (int i = 0; i < 2 * FTM_STATES_PER_USER; i++)
		assert_int_equal(ftm_store_number_issue(a, "mallory", "10.0.0.66", ID_A, ++t, 600, last, err,
							sizeof(err)), 0);
	assert_int_equal(ftm_store_number_take(b, "mallory", "10.0.0.66", first, t, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_UNKNOWN);
	assert_int_equal(ftm_store_number_take(b, "mallory", "10.0.0.66", last, t, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
	assert_int_equal(ftm_store_number_take(b, "bob", "10.0.0.9", victim, t, &check, tx, err, sizeof(err)), 0);
	assert_int_equal(check, FTM_STATE_OK);
}

#endif

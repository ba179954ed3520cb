/* test_states: challenge States (common/states.c): bound to a user and client, single use, expiring. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ftm_states.h"

static int drops;

static void count_drop(void *payload)
{
	(void)payload;
	drops++;
}

static ftm_states_t *table(void)
{
	ftm_states_t *s = ftm_states_new(count_drop);

	assert_non_null(s);
	drops = 0;
	return s;
}

static void issue(ftm_states_t *s, const char *user, const char *client, time_t now, unsigned ttl, int payload,
		  char state[FTM_STATE_HEX + 1])
{
	char why[128] = "";
	bool evicted;

	assert_int_equal(ftm_states_issue(s, user, client, now, ttl, &payload, sizeof(payload), state, &evicted,
					  why, sizeof(why)), 0);
	assert_false(evicted);
	assert_int_equal(strlen(state), FTM_STATE_HEX);
}

static void a_state_is_taken_once_with_its_payload(void **st)
{
	ftm_states_t *s = table();
	char state[FTM_STATE_HEX + 1];
	int payload = 0;

	(void)st;
	issue(s, "alice", "192.0.2.1", 100, 60, 42, state);
	assert_int_equal(ftm_states_take(s, "alice", "192.0.2.1", state, 101, &payload, sizeof(payload)), FTM_STATE_OK);
	assert_int_equal(payload, 42);
	assert_int_equal(ftm_states_take(s, "alice", "192.0.2.1", state, 101, &payload, sizeof(payload)),
			 FTM_STATE_UNKNOWN);
	ftm_states_free(s);
	assert_int_equal(drops, 0);	/* taken: the caller's, never dropped */
}

static void a_state_of_another_user_or_client_is_consumed_as_a_mismatch(void **st)
{
	ftm_states_t *s = table();
	char state[FTM_STATE_HEX + 1];

	(void)st;
	issue(s, "alice", "192.0.2.1", 100, 60, 1, state);
	assert_int_equal(ftm_states_take(s, "alice", "192.0.2.2", state, 101, NULL, 0), FTM_STATE_MISMATCH);
	assert_int_equal(ftm_states_take(s, "alice", "192.0.2.1", state, 101, NULL, 0), FTM_STATE_UNKNOWN);
	issue(s, "alice", "192.0.2.1", 100, 60, 1, state);
	assert_int_equal(ftm_states_take(s, "bob", "192.0.2.1", state, 101, NULL, 0), FTM_STATE_MISMATCH);
	ftm_states_free(s);
}

static void a_state_past_its_expiry_is_expired_and_dropped_by_the_next_issue(void **st)
{
	ftm_states_t *s = table();
	char a[FTM_STATE_HEX + 1], b[FTM_STATE_HEX + 1];

	(void)st;
	issue(s, "alice", "c", 100, 60, 1, a);
	assert_int_equal(ftm_states_take(s, "alice", "c", a, 160, NULL, 0), FTM_STATE_EXPIRED);
	issue(s, "alice", "c", 100, 60, 1, a);
	issue(s, "alice", "c", 200, 60, 2, b);	/* a is past its expiry at 200 */
	assert_int_equal(drops, 1);
	assert_int_equal(ftm_states_take(s, "alice", "c", a, 201, NULL, 0), FTM_STATE_UNKNOWN);
	ftm_states_free(s);
	assert_int_equal(drops, 2);	/* b, never taken */
}

static void malformed_states_are_unknown(void **st)
{
	ftm_states_t *s = table();
	char state[FTM_STATE_HEX + 1];

	(void)st;
	issue(s, "alice", "c", 100, 60, 1, state);
	assert_int_equal(ftm_states_take(s, "alice", "c", "", 101, NULL, 0), FTM_STATE_UNKNOWN);
	assert_int_equal(ftm_states_take(s, "alice", "c", "0123456789ABCDEF0123456789ABCDEF", 101, NULL, 0),
			 FTM_STATE_UNKNOWN);
	state[FTM_STATE_HEX - 1] = '\0';	/* a prefix */
	assert_int_equal(ftm_states_take(s, "alice", "c", state, 101, NULL, 0), FTM_STATE_UNKNOWN);
	ftm_states_free(s);
}

/* Issue without asserting on eviction (the floods below evict their own). */
static void issue_any(ftm_states_t *s, const char *user, const char *client, time_t now, char state[FTM_STATE_HEX + 1])
{
	char why[128] = "";
	bool evicted;
	int payload = 7;

	assert_int_equal(ftm_states_issue(s, user, client, now, 300, &payload, sizeof(payload), state, &evicted,
					  why, sizeof(why)), 0);
}

static void one_user_flooding_challenges_evicts_only_its_own(void **st)
{
	ftm_states_t *s = table();
	char victim[FTM_STATE_HEX + 1], mine[FTM_STATE_HEX + 1];

	(void)st;
	issue(s, "victim", "198.51.100.9", 100, 300, 1, victim);
	for (int i = 0; i < 5000; i++)		/* more than the whole table */
		issue_any(s, "mallory", "203.0.113.1", 100 + i / 100, mine);
	assert_int_equal(ftm_states_take(s, "victim", "198.51.100.9", victim, 160, NULL, 0), FTM_STATE_OK);
	assert_int_equal(ftm_states_take(s, "mallory", "203.0.113.1", mine, 160, NULL, 0), FTM_STATE_OK);
	assert_int_equal(drops, 5000 - 16);	/* mallory keeps 16: the newest */
	ftm_states_free(s);
}

static void one_client_flooding_with_many_users_evicts_only_its_own(void **st)
{
	ftm_states_t *s = table();
	char victim[FTM_STATE_HEX + 1], st2[FTM_STATE_HEX + 1], user[32];

	(void)st;
	issue(s, "victim", "198.51.100.9", 100, 300, 1, victim);
	for (int i = 0; i < 5000; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		issue_any(s, user, "203.0.113.1", 100, st2);
	}
	assert_int_equal(ftm_states_take(s, "victim", "198.51.100.9", victim, 160, NULL, 0), FTM_STATE_OK);
	ftm_states_free(s);
}

static void a_long_client_binds_in_full(void **st)
{
	ftm_states_t *s = table();
	char state[FTM_STATE_HEX + 1], a[122], b[122], long_client[251];

	(void)st;
	memset(a, 'A', 120);
	memcpy(b, a, 120);
	a[120] = '1';
	b[120] = '2';
	a[121] = b[121] = '\0';
	issue(s, "alice", a, 100, 60, 1, state);
	assert_int_equal(ftm_states_take(s, "alice", b, state, 101, NULL, 0), FTM_STATE_MISMATCH);
	memset(long_client, 'B', 250);
	long_client[250] = '\0';
	issue(s, "alice", long_client, 100, 60, 1, state);	/* no length limit on the client */
	assert_int_equal(ftm_states_take(s, "alice", long_client, state, 101, NULL, 0), FTM_STATE_OK);
	ftm_states_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_state_is_taken_once_with_its_payload),
		cmocka_unit_test(a_state_of_another_user_or_client_is_consumed_as_a_mismatch),
		cmocka_unit_test(a_state_past_its_expiry_is_expired_and_dropped_by_the_next_issue),
		cmocka_unit_test(malformed_states_are_unknown),
		cmocka_unit_test(one_user_flooding_challenges_evicts_only_its_own),
		cmocka_unit_test(one_client_flooding_with_many_users_evicts_only_its_own),
		cmocka_unit_test(a_long_client_binds_in_full),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

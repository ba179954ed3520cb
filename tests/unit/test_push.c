/* test_push: the push engine (transactions, rendezvous, answers, number matching) and the envelope test vector. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "ftm_push.h"
#include "push_channel.h"

/* ---- the test vector of docs/protocol.md section 6 ---- */

static const char VEC_PLAIN[] =
	"{\"v\":1,\"tx\":\"00112233445566778899aabbccddeeff\",\"sn\":\"FTKMOB0000000001\",\"user\":\"alice\","
	"\"client\":\"203.0.113.5\",\"nas\":\"vpn-gw\",\"host\":\"radius1\",\"time\":1700000000,"
	"\"expires\":1700000060,\"callback\":\"https://127.0.0.1:4433/ftm/v1/gw\",\"number\":\"\",\"numbers\":[],"
	"\"message\":\"Approve login for user alice from 203.0.113.5 to vpn-gw (radius1)\"}";
static const char VEC_ENVELOPE[] =
	"{\"sender\":\"127.0.0.1\",\"registration_id\":\"fcm-test-registration-0001\",\"app\":\"FTM\","
	"\"platform\":\"android\",\"message\":\"{\\\"ciphertext\\\":\\\"3/XVbxlni+2nsW2/6zSLN6sxHHMp7Ft/TUyH1gTOlLhCzR0Jir5W0"
	"fWPvSiPA+XirO/RPFq+P7TT+2YE4sj9CoWnpoyVNQ/pzHi/V6q7dz71uhOivEXmI/edQl6fMahKnhnoMOwqqRxAtgweRdEG7p2kTahilnRz8uhM9"
	"bMxc5fcHNR26IaO75Nv74ZHEME//yHJYqTHKW/fzV+lQXNXi3GIrt9ehG1VFIKDJyS5wkDhXZitdZ5tc3c6g2T3OZPXvmhYB/mv9WcQnJ7dik1hM"
	"86ZRnf8eaA8h+SG61x0Yc8KEQ0xwOjPJkO46lFUpwNw9YqA1N40SeDmst0EE1Q0/RAB2oCjxLnzigkQVw0GTfbwBl0gZ3KvsabpnwezKrPJzGvC5"
	"Dbkv6ciVy4Sy2RotZw8ps7NZptI+NCAs282XKSUYQBzefe87rQS24cR32NN\\\",\\\"sn\\\":\\\"FTKMOB0000000001\\\",\\\"hmac\\\":"
	"\\\"EWaMstPcyaBrp6OvLKI6xroCUqn2ck1u9nwawTeMes8=\\\",\\\"iv\\\":\\\"AAECAwQFBgcICQoLDA0ODw==\\\"}\"}";

static const uint8_t VEC_SEED[] = "12345678901234567890";

static void hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void test_vector_keys(void **state)
{
	uint8_t e[32], m[32], c[32];
	char h[65];

	(void)state;
	assert_int_equal(ftm_push_derive_keys(VEC_SEED, 20, e, m, c), 0);
	hex(e, 32, h);
	assert_string_equal(h, "9931630d597ea1e4ecb264ea8e55ab61fc8ba3afd91e7afa8eb174dc5198d9cd");
	hex(m, 32, h);
	assert_string_equal(h, "8d81bab9d6bba4988cc58c1eedf3fc542ccbf3e41af9ae2f9801f21a17f56a5c");
	hex(c, 32, h);
	assert_string_equal(h, "8e6089c36d66097616a6b19f7b9f88e48fe7bc32fd825c88cb9dd6e8f47d72a2");
	assert_int_equal(ftm_push_callback_proof(c, "00112233445566778899aabbccddeeff", "approve", "", h), 0);
	assert_string_equal(h, "56533585b62a484eeb382d943cc7c8b194d347edfeb23660c23186b090246ede");
	assert_int_equal(ftm_push_callback_proof(c, "00112233445566778899aabbccddeeff", "deny", "", h), 0);
	assert_string_equal(h, "15dd7e6afc1008b15021f078133a95eca827025e0f4f85b07fc8200bd9cc735a");
}

static void test_vector_envelope(void **state)
{
	uint8_t iv[16];
	char *msg, *env;

	(void)state;
	for (int i = 0; i < 16; i++)
		iv[i] = (uint8_t)i;
	msg = ftm_push_seal(VEC_SEED, 20, "FTKMOB0000000001", iv, VEC_PLAIN, strlen(VEC_PLAIN));
	assert_non_null(msg);
	env = ftm_push_envelope("127.0.0.1", "fcm-test-registration-0001", "android", msg);
	assert_non_null(env);
	assert_string_equal(env, VEC_ENVELOPE);
	free(msg);
	free(env);
}

static void test_plaintext_matches_vector_shape(void **state)
{
	ftm_push_msg_t m = {
		.tx = "00112233445566778899aabbccddeeff", .user = "alice", .client = "203.0.113.5",
		.nas = "vpn-gw", .host = "radius1", .serial = "FTKMOB0000000001", .time = 1700000000,
		.expires = 1700000060, .text = "Approve login for user alice from 203.0.113.5 to vpn-gw (radius1)",
		.number = "", .gw_callback = "https://127.0.0.1:4433/ftm/v1/gw",
	};
	char *p = ftm_push_plaintext(&m);

	(void)state;
	assert_non_null(p);
	assert_string_equal(p, VEC_PLAIN);
	free(p);
}

/* ---- the engine, with a channel that records instead of sending ---- */

typedef struct sent {
	pthread_mutex_t	lock;
	int		count;
	int		fail;		/* next sends fail */
	char		caps[3][FTM_PUSH_CAP_LEN + 1];
	char		labels[3][8];
	char		number[3];
	char		text[700];
	char		tx[FTM_PUSH_ID_LEN + 1];
	char		ntfy[4096];
} sent_t;

static sent_t S;

static int fake_send(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *m,
		     char *reason, size_t reason_len)
{
	sent_t *s = ctx;
	char *body = ftm_push_ntfy_body(m, "topic-x");

	(void)cfg;
	(void)tok;
	pthread_mutex_lock(&s->lock);
	s->count++;
	for (unsigned i = 0; i < m->ncaps; i++) {
		snprintf(s->caps[i], sizeof(s->caps[i]), "%s", m->caps[i]);
		snprintf(s->labels[i], sizeof(s->labels[i]), "%s", m->labels[i]);
	}
	snprintf(s->number, sizeof(s->number), "%s", m->number);
	snprintf(s->text, sizeof(s->text), "%s", m->text);
	snprintf(s->tx, sizeof(s->tx), "%s", m->tx);
	snprintf(s->ntfy, sizeof(s->ntfy), "%s", body ? body : "");
	free(body);
	if (s->fail) {
		pthread_mutex_unlock(&s->lock);
		snprintf(reason, reason_len, "simulated channel failure");
		return -1;
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static ftm_config_t CFG;

static ftm_push_t *engine(unsigned timeout, bool numbers)
{
	char err[256] = "";
	ftm_push_t *p;

	memset(&CFG, 0, sizeof(CFG));
	CFG.push.status = true;
	snprintf(CFG.push.server, sizeof(CFG.push.server), "127.0.0.1");
	CFG.push.server_port = 4433;
	CFG.push.timeout = timeout;
	CFG.push.number_matching = numbers;
	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.lock, NULL);
	p = ftm_push_new(&CFG, NULL, FTM_PUSH_NO_LISTENER, err, sizeof(err));
	assert_non_null(p);
	ftm_push_set_sender(p, fake_send, &S);
	return p;
}

static ftm_token_t token(const char *user, const char *push)
{
	ftm_token_t t;

	memset(&t, 0, sizeof(t));
	snprintf(t.serial, sizeof(t.serial), "FTKMOB%s", user);
	snprintf(t.user, sizeof(t.user), "%s", user);
	memcpy(t.seed, VEC_SEED, 20);
	t.seed_len = 20;
	t.digits = 6;
	t.period = 60;
	snprintf(t.push, sizeof(t.push), "%s", push);
	return t;
}

static const ftm_login_t ALICE = { "alice", "203.0.113.5", "vpn-gw", "radius1" };

typedef struct waiter {
	ftm_push_t		*p;
	ftm_login_t		login;
	ftm_token_t		tok;
	ftm_outcome_t		out;
} waiter_t;

static void *wait_thread(void *arg)
{
	waiter_t *w = arg;

	ftm_push_second_factor(w->p, &w->login, &w->tok, time(NULL), &w->out);
	return NULL;
}

static void wait_sent(int n)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&S.lock);
		int c = S.count;
		pthread_mutex_unlock(&S.lock);
		if (c >= n)
			return;
		usleep(10000);
	}
	fail_msg("push not sent");
}

static void test_approve_then_replay_changes_nothing(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_t th;
	char reply[256];

	(void)state;
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	assert_string_equal(S.labels[0], "Approve");
	assert_string_equal(S.labels[1], "Deny");
	assert_non_null(strstr(S.text, "user alice from 203.0.113.5 to vpn-gw (radius1)"));
	assert_int_equal(strlen(S.caps[0]), FTM_PUSH_CAP_LEN);
	assert_int_equal(strspn(S.caps[0], "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
			 FTM_PUSH_CAP_LEN);
	assert_string_not_equal(S.caps[0], S.caps[1]);
	assert_int_equal(ftm_push_answer_capability(p, S.caps[0], time(NULL), reply, sizeof(reply)), 200);
	assert_non_null(strstr(reply, "approved"));
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_OK);
	assert_string_equal(w.out.serial, "FTKMOBalice");
	/* replay of Approve, then Deny: the transaction is decided */
	assert_int_equal(ftm_push_answer_capability(p, S.caps[0], time(NULL), reply, sizeof(reply)), 409);
	assert_int_equal(ftm_push_answer_capability(p, S.caps[1], time(NULL), reply, sizeof(reply)), 409);
	ftm_push_free(p);
}

static void test_deny(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_t th;
	char reply[256];

	(void)state;
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	assert_int_equal(ftm_push_answer_capability(p, S.caps[1], time(NULL), reply, sizeof(reply)), 200);
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_DENIED);
	assert_string_equal(w.out.message, "Token denied or timeout");
	ftm_push_free(p);
}

static void test_forged_capability_changes_nothing(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_t th;
	char reply[256], forged[FTM_PUSH_CAP_LEN + 1];

	(void)state;
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	snprintf(forged, sizeof(forged), "%s", S.caps[1]);
	forged[FTM_PUSH_CAP_LEN - 1] = forged[FTM_PUSH_CAP_LEN - 1] == 'A' ? 'B' : 'A';
	assert_int_equal(ftm_push_answer_capability(p, forged, time(NULL), reply, sizeof(reply)), 404);
	assert_int_equal(ftm_push_answer_capability(p, "short", time(NULL), reply, sizeof(reply)), 404);
	assert_int_equal(ftm_push_answer_capability(p, S.caps[0], time(NULL), reply, sizeof(reply)), 200);
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_OK);
	ftm_push_free(p);
}

static void test_timeout(void **state)
{
	ftm_push_t *p = engine(1, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	char reply[256];

	(void)state;
	wait_thread(&w);
	assert_int_equal(w.out.result, FTM_RES_DENIED);
	assert_non_null(strstr(w.out.reason, "timeout"));
	assert_int_equal(ftm_push_answer_capability(p, S.caps[0], time(NULL), reply, sizeof(reply)), 410);
	ftm_push_free(p);
}

static void test_send_failure_is_a_verdict(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };

	(void)state;
	S.fail = 1;
	wait_thread(&w);
	assert_int_equal(w.out.result, FTM_RES_PUSH_FAILED);
	assert_non_null(strstr(w.out.reason, "simulated channel failure"));
	ftm_push_free(p);
}

static void test_one_pending_push_per_user(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w1 = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	waiter_t w2 = w1;
	waiter_t w3 = { p, { "alice", "198.51.100.9", "vpn-gw", "radius1" }, w1.tok, { 0 } };
	pthread_t t1, t2, t3;
	char reply[256], cap1[FTM_PUSH_CAP_LEN + 1];

	(void)state;
	pthread_create(&t1, NULL, wait_thread, &w1);
	wait_sent(1);
	snprintf(cap1, sizeof(cap1), "%s", S.caps[0]);
	pthread_create(&t2, NULL, wait_thread, &w2);
	usleep(100000);
	assert_int_equal(S.count, 1);	/* same user and client: joined, no second push */
	pthread_create(&t3, NULL, wait_thread, &w3);
	pthread_join(t3, NULL);		/* another client while one is pending: refused, no push */
	assert_int_equal(w3.out.result, FTM_RES_PUSH_FAILED);
	assert_non_null(strstr(w3.out.reason, "waiting for the phone"));
	assert_int_equal(S.count, 1);
	assert_int_equal(ftm_push_answer_capability(p, cap1, time(NULL), reply, sizeof(reply)), 200);
	pthread_join(t1, NULL);
	pthread_join(t2, NULL);
	assert_int_equal(w1.out.result, FTM_RES_OK);
	assert_int_equal(w2.out.result, FTM_RES_OK);
	/* decided: the other client may push now */
	pthread_create(&t3, NULL, wait_thread, &w3);
	wait_sent(2);
	assert_int_equal(ftm_push_answer_capability(p, S.caps[1], time(NULL), reply, sizeof(reply)), 200);
	pthread_join(t3, NULL);
	assert_int_equal(w3.out.result, FTM_RES_DENIED);
	ftm_push_free(p);
}

static void gw_body(char *out, size_t len, const char *tx, const char *verdict, const char *number, bool forge)
{
	uint8_t k_cb[32];
	char proof[65];

	assert_int_equal(ftm_push_derive_keys(VEC_SEED, 20, NULL, NULL, k_cb), 0);
	assert_int_equal(ftm_push_callback_proof(k_cb, tx, verdict, number, proof), 0);
	if (forge)
		proof[63] = proof[63] == '0' ? '1' : '0';
	snprintf(out, len, "{\"tx\":\"%s\",\"verdict\":\"%s\",\"number\":\"%s\",\"proof\":\"%s\"}", tx, verdict,
		 number, proof);
}

static void test_gateway_answer_needs_the_proof(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "gateway:android/reg-1"), { 0 } };
	pthread_t th;
	char body[512], reply[256];

	(void)state;
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	gw_body(body, sizeof(body), S.tx, "deny", "", true);
	assert_int_equal(ftm_push_answer_gateway(p, body, strlen(body), time(NULL), reply, sizeof(reply)), 403);
	assert_int_equal(ftm_push_answer_gateway(p, "{not json", 9, time(NULL), reply, sizeof(reply)), 400);
	assert_int_equal(ftm_push_answer_gateway(p, "{\"tx\":1}", 8, time(NULL), reply, sizeof(reply)), 400);
	gw_body(body, sizeof(body), "00112233445566778899aabbccddeeff", "approve", "", false);
	assert_int_equal(ftm_push_answer_gateway(p, body, strlen(body), time(NULL), reply, sizeof(reply)), 404);
	gw_body(body, sizeof(body), S.tx, "approve", "", false);
	assert_int_equal(ftm_push_answer_gateway(p, body, strlen(body), time(NULL), reply, sizeof(reply)), 200);
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_OK);
	assert_int_equal(ftm_push_answer_gateway(p, body, strlen(body), time(NULL), reply, sizeof(reply)), 409);
	ftm_push_free(p);
}

static void test_number_matching_challenge(void **state)
{
	ftm_push_t *p = engine(10, true);
	ftm_token_t tok = token("alice", "ntfy:https://ntfy.test/t");
	ftm_outcome_t out, out2;
	char number[3], wrong[3] = "00";
	ftm_login_t other = { "alice", "198.51.100.9", "vpn-gw", "radius1" };

	(void)state;
	ftm_push_second_factor(p, &ALICE, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_string_equal(out.message, "Enter the number shown on your phone");
	assert_int_equal(strlen(out.state), FTM_PUSH_ID_LEN);
	assert_int_equal(strlen(S.number), 2);
	snprintf(number, sizeof(number), "%s", S.number);
	assert_non_null(strstr(S.text, "number "));
	assert_non_null(strstr(S.text, number));
	/* the three buttons are numbers, one of them the right one */
	assert_true(strcmp(S.labels[0], number) == 0 || strcmp(S.labels[1], number) == 0 ||
		    strcmp(S.labels[2], number) == 0);
	/* a retransmission gets the same challenge, no second push */
	ftm_push_second_factor(p, &ALICE, &tok, time(NULL), &out2);
	assert_string_equal(out2.state, out.state);
	assert_int_equal(S.count, 1);
	/* a State the engine did not issue is not its business */
	assert_false(ftm_push_challenge_answer(p, &ALICE, "0123456789abcdef0123456789abcdef", number, time(NULL), &out2));
	/* another client cannot use it */
	assert_true(ftm_push_challenge_answer(p, &other, out.state, number, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_FAIL);
	(void)wrong;
	assert_true(ftm_push_challenge_answer(p, &ALICE, out.state, number, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_OK);
	/* single use */
	assert_true(ftm_push_challenge_answer(p, &ALICE, out.state, number, time(NULL), &out2));
	assert_int_not_equal(out2.result, FTM_RES_OK);
	ftm_push_free(p);
}

static void test_number_matching_wrong_number_denies(void **state)
{
	ftm_push_t *p = engine(10, true);
	ftm_token_t tok = token("alice", "ntfy:https://ntfy.test/t");
	ftm_outcome_t out, out2;
	char wrong[8];

	(void)state;
	ftm_push_second_factor(p, &ALICE, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	snprintf(wrong, sizeof(wrong), "%02d", (atoi(S.number) - 10 + 1) % 90 + 10);
	assert_true(ftm_push_challenge_answer(p, &ALICE, out.state, wrong, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_DENIED);
	ftm_push_free(p);
}

static void test_number_matching_decoy_tap_denies(void **state)
{
	ftm_push_t *p = engine(10, true);
	ftm_token_t tok = token("alice", "ntfy:https://ntfy.test/t");
	ftm_outcome_t out, out2;
	char reply[256], number[3];
	int decoy = -1;

	(void)state;
	ftm_push_second_factor(p, &ALICE, &tok, time(NULL), &out);
	snprintf(number, sizeof(number), "%s", S.number);
	for (int i = 0; i < 3; i++)
		if (strcmp(S.labels[i], number) != 0)
			decoy = i;
	assert_int_equal(ftm_push_answer_capability(p, S.caps[decoy], time(NULL), reply, sizeof(reply)), 200);
	assert_non_null(strstr(reply, "denied"));
	assert_true(ftm_push_challenge_answer(p, &ALICE, out.state, number, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_DENIED);
	ftm_push_free(p);
}

static void test_ntfy_body(void **state)
{
	ftm_push_t *p = engine(10, false);
	waiter_t w = { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_t th;
	struct json_object *o, *acts, *a, *v;
	char reply[256];

	(void)state;
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	o = json_tokener_parse(S.ntfy);
	assert_non_null(o);
	assert_true(json_object_object_get_ex(o, "topic", &v));
	assert_string_equal(json_object_get_string(v), "topic-x");
	assert_true(json_object_object_get_ex(o, "actions", &acts));
	assert_int_equal(json_object_array_length(acts), 2);
	a = json_object_array_get_idx(acts, 0);
	assert_true(json_object_object_get_ex(a, "url", &v));
	assert_non_null(strstr(json_object_get_string(v), "https://127.0.0.1:4433/ftm/v1/cb/"));
	assert_non_null(strstr(json_object_get_string(v), S.caps[0]));
	assert_true(json_object_object_get_ex(a, "clear", &v));
	assert_true(json_object_get_boolean(v));
	json_object_put(o);
	ftm_push_answer_capability(p, S.caps[1], time(NULL), reply, sizeof(reply));
	pthread_join(th, NULL);
	ftm_push_free(p);
}

/* Many logins pending at once, answered in reverse order: each gets its own verdict. */
#define MANY 40
static void test_many_concurrent_waiters(void **state)
{
	ftm_push_t *p = engine(20, false);
	static waiter_t w[MANY];
	static char users[MANY][16], caps[MANY][2][FTM_PUSH_CAP_LEN + 1];
	pthread_t th[MANY];
	char reply[256];

	(void)state;
	for (int i = 0; i < MANY; i++) {
		snprintf(users[i], sizeof(users[i]), "user%02d", i);
		w[i].p = p;
		w[i].login = (ftm_login_t){ users[i], "192.0.2.1", "nas", "h" };
		w[i].tok = token(users[i], "ntfy:https://ntfy.test/t");
		pthread_create(&th[i], NULL, wait_thread, &w[i]);
		wait_sent(i + 1);
		snprintf(caps[i][0], sizeof(caps[i][0]), "%s", S.caps[0]);
		snprintf(caps[i][1], sizeof(caps[i][1]), "%s", S.caps[1]);
	}
	for (int i = MANY - 1; i >= 0; i--)
		assert_int_equal(ftm_push_answer_capability(p, caps[i][i % 2], time(NULL), reply, sizeof(reply)), 200);
	for (int i = 0; i < MANY; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].out.result, i % 2 ? FTM_RES_DENIED : FTM_RES_OK);
	}
	ftm_push_free(p);
}

static void test_shutdown_fails_every_pending_push_at_once(void **state)
{
	ftm_push_t *p = engine(60, false);
	waiter_t w[2] = { { p, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } },
			  { p, { "bob", "198.51.100.8", "vpn-gw", "radius1" }, token("bob", "ntfy:https://ntfy.test/t"),
			    { 0 } } };
	char reply[256], cap[FTM_PUSH_CAP_LEN + 1], reason[FTM_MSG_MAX];
	pthread_t th[2];
	time_t t0 = time(NULL);
	bool joined;

	(void)state;
	pthread_create(&th[0], NULL, wait_thread, &w[0]);
	wait_sent(1);
	snprintf(cap, sizeof(cap), "%s", S.caps[0]);
	pthread_create(&th[1], NULL, wait_thread, &w[1]);
	wait_sent(2);
	ftm_push_shutdown(p);
	for (int i = 0; i < 2; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].out.result, FTM_RES_PUSH_FAILED);
		assert_string_equal(w[i].out.message, FTM_MSG_PUSH_DOWN);
		assert_non_null(strstr(w[i].out.reason, "stopped"));
	}
	assert_true(time(NULL) - t0 < 10);	/* not the push timeout (60 s) */
	assert_true(ftm_push_drain(p, 1000));
	/* An approval that raced the shutdown is not taken; no new push starts. */
	assert_int_equal(ftm_push_answer_capability(p, cap, time(NULL), reply, sizeof(reply)), 503);
	assert_null(ftm_push_start(p, &ALICE, &w[0].tok, time(NULL), &joined, reason, sizeof(reason)));
	assert_int_equal(S.count, 2);
	ftm_push_shutdown(p);	/* idempotent */
	ftm_push_free(p);
}

/* ---- the number check, shared by the engine and the ftmpushd client ---- */

static void test_number_matches_only_the_exact_number(void **state)
{
	(void)state;
	assert_true(ftm_number_matches("42", "42"));
	assert_false(ftm_number_matches("42", "24"));
	assert_false(ftm_number_matches("42", "420"));
	assert_false(ftm_number_matches("42", "4"));
	assert_false(ftm_number_matches("42", ""));
	assert_false(ftm_number_matches("42", NULL));
	assert_false(ftm_number_matches("", ""));	/* no number shown: nothing matches */
}

static void test_a_wrong_number_is_a_guess_only_while_the_push_is_live(void **state)
{
	(void)state;
	assert_true(ftm_number_is_guess(false, true));
	assert_false(ftm_number_is_guess(false, false));	/* denied on the phone first, or timed out */
	assert_false(ftm_number_is_guess(true, true));
}

static void test_verdict_names_are_the_wire_names(void **state)
{
	ftm_push_verdict_t v;

	(void)state;
	for (v = FTM_PUSH_APPROVED; v <= FTM_PUSH_ERROR; v++) {
		ftm_push_verdict_t back;

		assert_int_equal(ftm_push_verdict_parse(ftm_push_verdict_name(v), &back), 0);
		assert_int_equal(back, v);
	}
	assert_int_equal(ftm_push_verdict_parse("pending", &v), -1);	/* never a final verdict */
	assert_int_equal(ftm_push_verdict_parse("ok", &v), -1);
}

/* ---- two nodes: two engines on one store (an SQLite file; PostgreSQL behaves the same through
 * the same backend operations, tests/integration/pg_push.test) ---- */

typedef struct nodes {
	char		dir[64];
	char		db[128];
	ftm_store_t	*sa, *sb;
	ftm_push_t	*a, *b;
} nodes_t;

static void nodes_up(nodes_t *n, bool numbers)
{
	char err[256] = "";

	memset(n, 0, sizeof(*n));
	snprintf(n->dir, sizeof(n->dir), "/tmp/ftm-test-push.XXXXXX");
	assert_non_null(mkdtemp(n->dir));
	snprintf(n->db, sizeof(n->db), "%s/tokens.db", n->dir);
	n->sa = ftm_store_open(n->db, NULL, NULL, err, sizeof(err));
	assert_non_null(n->sa);
	n->sb = ftm_store_open(n->db, NULL, NULL, err, sizeof(err));
	assert_non_null(n->sb);
	n->a = engine(10, numbers);	/* resets S */
	n->b = ftm_push_new(&CFG, NULL, FTM_PUSH_NO_LISTENER, err, sizeof(err));
	assert_non_null(n->b);
	ftm_push_set_sender(n->b, fake_send, &S);
	ftm_push_set_store(n->a, n->sa);
	ftm_push_set_store(n->b, n->sb);
}

static void nodes_down(nodes_t *n)
{
	char path[256];

	ftm_push_free(n->a);
	ftm_push_free(n->b);
	ftm_store_close(n->sa);
	ftm_store_close(n->sb);
	for (const char *const *f = (const char *const[]){ "tokens.db", "tokens.db-wal", "tokens.db-shm",
							     "tokens.db.key", NULL }; *f; f++) {
		snprintf(path, sizeof(path), "%s/%s", n->dir, *f);
		unlink(path);
	}
	rmdir(n->dir);
}

static void test_nodes_a_callback_on_the_other_node_decides_once(void **state)
{
	nodes_t n;
	waiter_t w;
	pthread_t th;
	char reply[256];

	(void)state;
	nodes_up(&n, false);
	w = (waiter_t){ n.a, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	assert_int_equal(ftm_push_answer_capability(n.b, S.caps[0], time(NULL), reply, sizeof(reply)), 200);
	assert_non_null(strstr(reply, "approved"));
	pthread_join(th, NULL);		/* node A re-reads the row: within a second */
	assert_int_equal(w.out.result, FTM_RES_OK);
	/* a replay on either node, or the other capability, changes nothing */
	assert_int_equal(ftm_push_answer_capability(n.b, S.caps[0], time(NULL), reply, sizeof(reply)), 409);
	assert_int_equal(ftm_push_answer_capability(n.a, S.caps[1], time(NULL), reply, sizeof(reply)), 409);
	nodes_down(&n);
}

static void test_nodes_a_forged_callback_on_the_other_node_changes_nothing(void **state)
{
	nodes_t n;
	waiter_t w;
	pthread_t th;
	char reply[256], forged[FTM_PUSH_CAP_LEN + 1];

	(void)state;
	nodes_up(&n, false);
	w = (waiter_t){ n.a, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	snprintf(forged, sizeof(forged), "%s", S.caps[0]);
	forged[5] = forged[5] == 'A' ? 'B' : 'A';
	assert_int_equal(ftm_push_answer_capability(n.b, forged, time(NULL), reply, sizeof(reply)), 404);
	assert_int_equal(ftm_push_answer_capability(n.b, S.caps[1], time(NULL), reply, sizeof(reply)), 200);
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_DENIED);
	nodes_down(&n);
}

static void test_nodes_the_same_login_on_the_other_node_joins_the_push(void **state)
{
	nodes_t n;
	waiter_t wa, wb;
	pthread_t ta, tb;
	char reply[256];
	const ftm_login_t alice_elsewhere = { "alice", "198.51.100.1", "vpn-gw", "radius2" };
	ftm_token_t tok = token("alice", "ntfy:https://ntfy.test/t");
	ftm_outcome_t out;

	(void)state;
	nodes_up(&n, false);
	wa = (waiter_t){ n.a, ALICE, tok, { 0 } };
	wb = (waiter_t){ n.b, ALICE, tok, { 0 } };
	pthread_create(&ta, NULL, wait_thread, &wa);
	wait_sent(1);
	pthread_create(&tb, NULL, wait_thread, &wb);
	/* a login of the user from another client, on node B, is refused while A's push is pending */
	ftm_push_second_factor(n.b, &alice_elsewhere, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_PUSH_FAILED);
	usleep(200 * 1000);
	assert_int_equal(S.count, 1);	/* B joined: no second push */
	assert_int_equal(ftm_push_answer_capability(n.a, S.caps[0], time(NULL), reply, sizeof(reply)), 200);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	assert_int_equal(wa.out.result, FTM_RES_OK);
	assert_int_equal(wb.out.result, FTM_RES_OK);
	assert_int_equal(S.count, 1);
	nodes_down(&n);
}

static void test_nodes_a_number_challenge_is_answered_on_the_other_node_once(void **state)
{
	nodes_t n;
	ftm_token_t tok = token("alice", "ntfy:https://ntfy.test/t");
	const ftm_login_t other = { "alice", "198.51.100.1", "vpn-gw", "radius2" };
	ftm_outcome_t out, out2;
	char number[3], wrong[8];

	(void)state;
	nodes_up(&n, true);
	ftm_push_second_factor(n.a, &ALICE, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	snprintf(number, sizeof(number), "%s", S.number);
	snprintf(wrong, sizeof(wrong), "%02d", (atoi(number) - 10 + 1) % 90 + 10);
	/* bound to the client: another client's answer is refused and spends the State */
	assert_true(ftm_push_challenge_answer(n.b, &other, out.state, number, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_FAIL);
	assert_false(ftm_push_challenge_answer(n.a, &ALICE, out.state, number, time(NULL), &out2));
	/* a new login joins on node B and answers there */
	ftm_push_second_factor(n.b, &ALICE, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_int_equal(S.count, 1);
	assert_true(ftm_push_challenge_answer(n.b, &ALICE, out.state, number, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_OK);
	assert_false(ftm_push_challenge_answer(n.a, &ALICE, out.state, number, time(NULL), &out2));	/* single use */
	/* the next push: a wrong number typed on B denies it and counts as a guess */
	ftm_push_second_factor(n.a, &ALICE, &tok, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_CHALLENGE);
	assert_int_equal(S.count, 2);
	snprintf(number, sizeof(number), "%s", S.number);
	snprintf(wrong, sizeof(wrong), "%02d", (atoi(number) - 10 + 1) % 90 + 10);
	assert_true(ftm_push_challenge_answer(n.b, &ALICE, out.state, wrong, time(NULL), &out2));
	assert_int_equal(out2.result, FTM_RES_DENIED);
	assert_true(out2.wrong_answer);
	nodes_down(&n);
}


static void test_nodes_a_shutdown_fails_the_rows_of_its_pushes(void **state)
{
	nodes_t n;
	waiter_t w;
	pthread_t th;
	ftm_push_row_t row;
	char err[256], id[FTM_PUSH_ID_LEN + 1];

	(void)state;
	nodes_up(&n, false);
	w = (waiter_t){ n.a, ALICE, token("alice", "ntfy:https://ntfy.test/t"), { 0 } };
	pthread_create(&th, NULL, wait_thread, &w);
	wait_sent(1);
	snprintf(id, sizeof(id), "%s", S.tx);
	ftm_push_shutdown(n.a);
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_PUSH_FAILED);
	/* another node (or this one restarted) sees it failed: a new login gets a push of its own */
	assert_int_equal(ftm_store_push_get(n.sb, id, &row, err, sizeof(err)), 0);
	assert_int_equal(row.verdict, FTM_PUSH_FAILED);
	nodes_down(&n);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_number_matches_only_the_exact_number),
		cmocka_unit_test(test_a_wrong_number_is_a_guess_only_while_the_push_is_live),
		cmocka_unit_test(test_verdict_names_are_the_wire_names),
		cmocka_unit_test(test_vector_keys),
		cmocka_unit_test(test_vector_envelope),
		cmocka_unit_test(test_plaintext_matches_vector_shape),
		cmocka_unit_test(test_approve_then_replay_changes_nothing),
		cmocka_unit_test(test_deny),
		cmocka_unit_test(test_forged_capability_changes_nothing),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_send_failure_is_a_verdict),
		cmocka_unit_test(test_one_pending_push_per_user),
		cmocka_unit_test(test_gateway_answer_needs_the_proof),
		cmocka_unit_test(test_number_matching_challenge),
		cmocka_unit_test(test_number_matching_wrong_number_denies),
		cmocka_unit_test(test_number_matching_decoy_tap_denies),
		cmocka_unit_test(test_ntfy_body),
		cmocka_unit_test(test_many_concurrent_waiters),
		cmocka_unit_test(test_nodes_a_callback_on_the_other_node_decides_once),
		cmocka_unit_test(test_nodes_a_forged_callback_on_the_other_node_changes_nothing),
		cmocka_unit_test(test_nodes_the_same_login_on_the_other_node_joins_the_push),
		cmocka_unit_test(test_nodes_a_number_challenge_is_answered_on_the_other_node_once),
		cmocka_unit_test(test_nodes_a_shutdown_fails_the_rows_of_its_pushes),
		cmocka_unit_test(test_shutdown_fails_every_pending_push_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

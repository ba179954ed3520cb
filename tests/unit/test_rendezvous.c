/* test_rendezvous: the ftmpushd socket protocol, client against server, without a push engine. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>
#include <stdatomic.h>
#include <time.h>

#include "ftm_auth.h"
#include "ftm_otp.h"
#include "ftm_passcode.h"
#include "ftm_util.h"

#include "ftm_rendezvous.h"

static char dir[64];
static char sock[96];
static atomic_int nm_hangups;	/* number matching logins whose client went away unanswered */

/* The handler's behaviour is chosen by the user name of the request. */
static void handler(void *ctx, ftm_rdv_conn_t *conn, const ftm_rdv_request_t *req, ftm_rdv_reply_t *out)
{
	(void)ctx;
	snprintf(out->serial, sizeof(out->serial), "%s", req->serial ? req->serial : "FTKMOBTEST01");
	if (strcmp(req->user, "approve") == 0) {
		out->verdict = FTM_RDV_APPROVED;
	} else if (strcmp(req->user, "number") == 0) {
		ftm_rdv_conn_sent(conn, out->serial, "42");
		out->verdict = FTM_RDV_DENIED;
		snprintf(out->message, sizeof(out->message), "Token denied or timeout");
	} else if (strcmp(req->user, "nm") == 0 || strcmp(req->user, "nm-yes") == 0) {
		/* Number matching: wait for the typed number (nm: only "42" approves; nm-yes: a daemon
		 * that approves anything, which the client must not believe for a wrong number). */
		char typed[FTM_RDV_NUMBER_MAX] = "";
		int rc = 0;

		ftm_rdv_conn_sent(conn, out->serial, "42");
		for (int i = 0; i < 100 && rc == 0; i++)
			rc = ftm_rdv_conn_wait_answer(conn, 50, typed, sizeof(typed));
		if (rc < 0)
			atomic_fetch_add(&nm_hangups, 1);
		out->verdict = rc == 1 && (strcmp(typed, "42") == 0 || req->user[2] == '-') ? FTM_RDV_APPROVED
			     : rc == 1 ? FTM_RDV_DENIED : FTM_RDV_TIMEOUT;
	} else if (strcmp(req->user, "nm-tap") == 0 || strcmp(req->user, "nm-deny") == 0) {
		/* Number matching where the phone decides before the login answers. */
		ftm_rdv_conn_sent(conn, out->serial, "42");
		out->verdict = req->user[3] == 't' ? FTM_RDV_APPROVED : FTM_RDV_DENIED;
	} else if (strcmp(req->user, "hang") == 0) {
		/* Waits like a pending push until the client goes away. */
		for (int i = 0; i < 500 && ftm_rdv_conn_alive(conn); i++)
			usleep(10000);
		out->verdict = ftm_rdv_conn_alive(conn) ? FTM_RDV_TIMEOUT : FTM_RDV_DENIED;
	} else {
		out->verdict = FTM_RDV_FAILED;
		snprintf(out->reason, sizeof(out->reason), "no push target");
	}
}

/* The login ops: a fixed reading and verdict by user name, so the client's rebuilding is what is tested. */
/* What the login handler saw last: the connection of a split and of a verify, the verify's proof. */
static ftm_rdv_conn_t *volatile split_conn, *volatile verify_conn;
static char verify_proof[FTM_SERIAL_MAX];

static int login_handler(void *ctx, ftm_rdv_conn_t *conn, ftm_rdv_op_t op, const ftm_login_t *login,
			  const char *store, const char *input, ftm_split_t *sp, ftm_outcome_t *out)
{
	(void)ctx;
	(void)conn;
	if (strcmp(store, "/other/tokens.db") == 0) {	/* a daemon of another store refuses */
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "another store");
		return -1;
	}
	if (strcmp(login->user, "die") == 0)
		_exit(0);	/* never reached: see test_login_daemon_gone_mid_request_fails_closed */
	if (op == FTM_RDV_OP_SPLIT) {
		split_conn = conn;
		snprintf(sp->proof.serial, sizeof(sp->proof.serial), "PROOF-%s", login->user);
		sp->has_token = true;
		sp->push_available = strcmp(login->user, "push") == 0;
		snprintf(sp->push_serial, sizeof(sp->push_serial), "%s", sp->push_available ? "FTKMOBTEST01" : "");
		/* the reading the core would make: the last 6 bytes are the code */
		ftm_passcode_split(input, 6, &sp->primary);
		sp->has_alt = strcmp(login->user, "alt") == 0 && sp->primary.has_code;
		return 0;
	}
	verify_conn = conn;
	snprintf(verify_proof, sizeof(verify_proof), "%s", ftm_rdv_conn_proof(conn)->serial);
	if (strcmp(login->user, "other") == 0) {
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "not allowed");
		return -1;
	}
	if (strcmp(input, "123456") == 0) {
		ftm_outcome_set(out, FTM_RES_OK, "FTKMOBTEST01", "", "code ok");
	} else if (strcmp(input, "654321") == 0) {
		ftm_outcome_set(out, FTM_RES_REPLAY, "FTKMOBTEST01", NULL, "replay");
		out->wait_seconds = 17;
		ftm_msg_replay(out->message, sizeof(out->message), 17);
	} else {
		ftm_outcome_set(out, FTM_RES_LOCKED, "FTKMOBTEST01", FTM_MSG_LOCKED, "locked");
	}
	return 0;
}

static int setup(void **state)
{
	char err[256] = "";
	ftm_rdv_server_t *srv;

	snprintf(dir, sizeof(dir), "/tmp/ftm-rdv-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/ftmpushd.sock", dir);
	srv = ftm_rdv_server_start(sock, (gid_t)-1, 4, handler, login_handler, NULL, NULL, err, sizeof(err));
	if (srv == NULL)
		fprintf(stderr, "server: %s\n", err);
	assert_non_null(srv);
	*state = srv;
	return 0;
}

static int teardown(void **state)
{
	ftm_rdv_server_stop(*state);
	rmdir(dir);
	return 0;
}

static void push(const char *user, ftm_rdv_sent_fn sent, void *sent_ctx, int abort_fd, ftm_rdv_reply_t *out)
{
	ftm_rdv_request_t req = { .user = user, .client = "192.0.2.7", .nas = "sshd", .host = "h", .timeout = 5 };

	ftm_rdv_push(sock, &req, sent, sent_ctx, abort_fd, NULL, out);
}

static void test_approved_push_is_reported_approved(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	push("approve", NULL, NULL, -1, &r);
	assert_int_equal(r.verdict, FTM_RDV_APPROVED);
	assert_string_equal(r.serial, "FTKMOBTEST01");
}

static void record_sent(void *ctx, const char *serial, const char *number)
{
	(void)serial;
	snprintf(ctx, FTM_RDV_NUMBER_MAX, "%s", number);
}

static void test_sent_event_carries_the_number_before_the_verdict(void **state)
{
	ftm_rdv_reply_t r;
	char number[FTM_RDV_NUMBER_MAX] = "";

	(void)state;
	push("number", record_sent, number, -1, &r);
	assert_string_equal(number, "42");
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	assert_string_equal(r.message, "Token denied or timeout");
}

static void test_send_failure_is_failed_with_reason(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	push("nobody", NULL, NULL, -1, &r);
	assert_int_equal(r.verdict, FTM_RDV_FAILED);
	assert_string_equal(r.reason, "no push target");
}

static void test_daemon_down_is_a_clear_error(void **state)
{
	ftm_rdv_request_t req = { .user = "approve", .timeout = 5 };
	ftm_rdv_reply_t r;
	char missing[128];

	(void)state;
	snprintf(missing, sizeof(missing), "%s/none.sock", dir);
	ftm_rdv_push(missing, &req, NULL, NULL, -1, NULL, &r);
	assert_int_equal(r.verdict, FTM_RDV_ERROR);
	assert_non_null(strstr(r.message, "push daemon not running"));
	assert_non_null(strstr(r.reason, "not reachable"));
}

static void test_abort_fd_cancels_and_the_server_sees_the_hangup(void **state)
{
	ftm_rdv_reply_t r;
	int p[2];

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	push("hang", NULL, NULL, p[0], &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	assert_string_equal(r.message, "Push cancelled");
	close(p[0]);
	close(p[1]);
}

static void test_socket_mode_is_0600_without_group(void **state)
{
	struct stat st;

	(void)state;
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_second_server_on_a_live_socket_is_refused(void **state)
{
	char err[256] = "";

	(void)state;
	assert_null(ftm_rdv_server_start(sock, (gid_t)-1, 4, handler, NULL, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "already listening"));
}

static void test_garbage_request_gets_an_error_verdict(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char body[] = "{\"v\":1,\"op\":\"steal\"}";
	uint32_t len = htonl(sizeof(body) - 1), rlen;
	char buf[1024];
	int fd;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, &len, 4), 4);
	assert_int_equal(write(fd, body, sizeof(body) - 1), (ssize_t)sizeof(body) - 1);
	assert_int_equal(read(fd, &rlen, 4), 4);
	rlen = ntohl(rlen);
	assert_true(rlen < sizeof(buf));
	assert_int_equal(recv(fd, buf, rlen, MSG_WAITALL), (ssize_t)rlen);
	buf[rlen] = '\0';
	assert_non_null(strstr(buf, "\"verdict\":\"error\""));
	assert_non_null(strstr(buf, "unknown op"));
	close(fd);
}

/* One raw request body; the daemon's reply (NUL-terminated) into buf, or "" when it only closed. */
static void raw_request(const char *body, size_t body_len, char *buf, size_t buf_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint32_t len = htonl((uint32_t)body_len), rlen;
	int fd;

	buf[0] = '\0';
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, &len, 4), 4);
	assert_int_equal(write(fd, body, body_len), (ssize_t)body_len);
	if (recv(fd, &rlen, 4, MSG_WAITALL) == 4) {
		rlen = ntohl(rlen);
		assert_true(rlen < buf_len);
		assert_int_equal(recv(fd, buf, rlen, MSG_WAITALL), (ssize_t)rlen);
		buf[rlen] = '\0';
	}
	close(fd);
}

static void test_lenient_json_is_a_protocol_error(void **state)
{
	static const char *const bad[] = {
		"{\"v\":1,\"op\":\"push\",\"user\":\"alice\",\"timeout\":5} trailing",
		"{\"v\":1,\"op\":\"push\",\"user\":\"alice\",\"timeout\":5}{}",
		"{\"v\":\"1\",\"op\":\"push\",\"user\":\"alice\",\"timeout\":5}",
		"{\"v\":1.9,\"op\":\"push\",\"user\":\"alice\",\"timeout\":5}",
		"{\"v\":true,\"op\":\"push\",\"user\":\"alice\",\"timeout\":5}",
		"{\"v\":1,\"op\":\"push\",\"user\":\"alice\",\"timeout\":\"60\"}",
		"{\"v\":1,\"op\":\"push\",\"user\":\"alice\",\"timeout\":60.5}",
		"{\"v\":1,\"op\":\"push\",\"user\":\"alice\",\"client\":5,\"timeout\":5}",
		"{'v':1,'op':'push','user':'alice'}",
	};
	char buf[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_request(bad[i], strlen(bad[i]), buf, sizeof(buf));
		/* either an error verdict or a plain close: never a push */
		if (buf[0] != '\0' && strstr(buf, "\"verdict\":\"error\"") == NULL)
			fail_msg("accepted: %s -> %s", bad[i], buf);
	}
	/* a NUL inside the message is trailing data too */
	raw_request("{\"v\":1,\"op\":\"push\",\"user\":\"alice\"}\0x", 36, buf, sizeof(buf));
	assert_true(buf[0] == '\0' || strstr(buf, "\"verdict\":\"error\"") != NULL);
}

static void test_oversized_length_is_dropped(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint32_t len = htonl(FTM_RDV_MSG_MAX + 1);
	char c;
	int fd;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(write(fd, &len, 4), 4);
	assert_int_equal(read(fd, &c, 1), 0);	/* closed without reading 16 KiB+ */
	close(fd);
}

/* ---- number matching: the connection stays open for the typed number ---- */

static void number_login(const char *user, const char *typed, ftm_rdv_reply_t *r)
{
	ftm_rdv_request_t req = { .user = user, .client = "192.0.2.7", .nas = "sshd", .host = "h", .timeout = 5 };
	int fd;

	fd = ftm_rdv_push_start(sock, &req, -1, NULL, r);
	assert_true(fd >= 0);
	assert_string_equal(r->number, "42");
	if (strncmp(user, "nm-", 3) == 0 && user[3] != 'y')
		usleep(100000);	/* the phone's verdict is on its way before the user types */
	ftm_rdv_answer(fd, r->number, typed, NULL, r);
	assert_int_equal(fcntl(fd, F_GETFD), -1);	/* closed */
}

static void test_number_right_answer_is_approved_by_the_daemon(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	number_login("nm", "42", &r);
	assert_int_equal(r.verdict, FTM_RDV_APPROVED);
	assert_string_equal(r.serial, "FTKMOBTEST01");
}

static void test_number_wrong_answer_is_denied(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	number_login("nm", "17", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	number_login("nm", "", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	number_login("nm", "420", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
}

static void test_number_wrong_answer_is_denied_even_if_the_daemon_approves(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	number_login("nm-yes", "17", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	assert_string_equal(r.message, "Token denied or timeout");
	number_login("nm-yes", "42", &r);
	assert_int_equal(r.verdict, FTM_RDV_APPROVED);
}

static void test_number_phone_decides_first(void **state)
{
	ftm_rdv_reply_t r;

	(void)state;
	number_login("nm-tap", "42", &r);
	assert_int_equal(r.verdict, FTM_RDV_APPROVED);
	number_login("nm-tap", "17", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
	number_login("nm-deny", "42", &r);
	assert_int_equal(r.verdict, FTM_RDV_DENIED);
}

static void test_number_start_without_number_is_the_final_reply(void **state)
{
	ftm_rdv_request_t req = { .user = "approve", .timeout = 5 };
	ftm_rdv_reply_t r;

	(void)state;
	assert_int_equal(ftm_rdv_push_start(sock, &req, -1, NULL, &r), -1);
	assert_int_equal(r.verdict, FTM_RDV_APPROVED);
	req.user = "nobody";
	assert_int_equal(ftm_rdv_push_start(sock, &req, -1, NULL, &r), -1);
	assert_int_equal(r.verdict, FTM_RDV_FAILED);
}

/* ftm_auth in a PAM process (no engine): the connection lives in the challenge table under a State. */
static void wait_hangups(int want)
{
	for (int i = 0; i < 300 && atomic_load(&nm_hangups) < want; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&nm_hangups), want);
}

static void test_auth_number_matching_through_the_socket(void **state)
{
	ftm_login_t login = { "nm", "192.0.2.7", "sshd", "h" }, other = { "nm", "192.0.2.8", "sshd", "h" };
	char err[FTM_ERR_MAX] = "", cmd[160];
	ftm_config_t cfg;
	ftm_token_t t;
	ftm_outcome_t o, a;
	ftm_auth_t *auth;
	time_t now = time(NULL);
	int h0 = atomic_load(&nm_hangups);

	(void)state;
	ftm_config_defaults(&cfg);
	snprintf(cfg.token_db, sizeof(cfg.token_db), "%s/tokens.db", dir);
	snprintf(cfg.push.socket, sizeof(cfg.push.socket), "%s", sock);
	cfg.push.status = true;
	cfg.push.timeout = 5;
	auth = ftm_auth_new(&cfg, NULL, err, sizeof(err));
	assert_non_null(auth);
	/* the policy is the store's: a token created at time 0 never expires */
	assert_int_equal(ftm_store_policy_set(ftm_auth_store(auth), "activation_expire", "0", NULL, 0,
					      err, sizeof(err)), 0);
	assert_int_equal(ftm_token_init(&t, "nm", "FTKMOBTEST01", "3132333435363738393031323334353637383930",
					err, sizeof(err)), 0);
	t.created = 0;
	snprintf(t.push, sizeof(t.push), "ntfy:https://127.0.0.1:9/ftm-nm");
	assert_int_equal(ftm_store_token_add(ftm_auth_store(auth), &t, err, sizeof(err)), 0);
	ftm_memzero(&t, sizeof(t));

	/* the right number */
	ftm_auth_second_factor(auth, &login, now, &o);
	assert_int_equal(o.result, FTM_RES_CHALLENGE);
	assert_string_equal(o.message, "Enter the number shown on your phone");
	assert_int_equal(strlen(o.state), 32);
	ftm_auth_challenge_answer(auth, &login, o.state, "42", now + 1, &a);
	assert_int_equal(a.result, FTM_RES_OK);
	assert_string_equal(a.serial, "FTKMOBTEST01");
	ftm_auth_challenge_answer(auth, &login, o.state, "42", now + 1, &a);	/* single use */
	assert_int_equal(a.result, FTM_RES_FAIL);

	/* a wrong number */
	ftm_auth_second_factor(auth, &login, now, &o);
	assert_int_equal(o.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(auth, &login, o.state, "17", now + 1, &a);
	assert_int_equal(a.result, FTM_RES_DENIED);
	assert_string_equal(a.message, "Token denied or timeout");

	/* another client cannot use the State; it is consumed and the daemon sees the hang-up */
	ftm_auth_second_factor(auth, &login, now, &o);
	assert_int_equal(o.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(auth, &other, o.state, "42", now + 1, &a);
	assert_int_equal(a.result, FTM_RES_FAIL);
	ftm_auth_challenge_answer(auth, &login, o.state, "42", now + 1, &a);
	assert_int_equal(a.result, FTM_RES_FAIL);
	wait_hangups(h0 + 1);

	/* too late: denied, connection closed */
	ftm_auth_second_factor(auth, &login, now, &o);
	assert_int_equal(o.result, FTM_RES_CHALLENGE);
	ftm_auth_challenge_answer(auth, &login, o.state, "42", now + 5 + FTM_RDV_GRACE, &a);
	assert_int_equal(a.result, FTM_RES_DENIED);
	wait_hangups(h0 + 2);

	/* unanswered at ftm_auth_free: closed */
	ftm_auth_second_factor(auth, &login, now, &o);
	assert_int_equal(o.result, FTM_RES_CHALLENGE);
	ftm_auth_free(auth);
	wait_hangups(h0 + 3);
	snprintf(cmd, sizeof(cmd), "rm -f '%s'/tokens.db*", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_login_split_is_rebuilt_from_the_daemons_reading(void **state)
{
	ftm_login_t login = { "alt", "192.0.2.7", "sshd", "h" };
	char err[256] = "";
	ftm_split_t sp;

	(void)state;
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "s3cret123456", &sp, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_true(sp.has_token);
	assert_false(sp.push_available);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "s3cret");
	assert_string_equal(sp.primary.code, "123456");
	assert_true(sp.has_alt);
	assert_string_equal(sp.alt_password, "s3cret123456");

	login.user = "push";
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw", &sp, NULL, err, sizeof(err)), FTM_RDV_LOGIN_ANSWERED);
	assert_true(sp.push_available);
	assert_string_equal(sp.push_serial, "FTKMOBTEST01");
	assert_false(sp.primary.has_code);
	assert_string_equal(sp.primary.password, "pw");
	assert_false(sp.has_alt);
}

static void test_login_verify_carries_the_outcome(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	char err[256] = "", want[FTM_MSG_MAX];
	ftm_outcome_t out;

	(void)state;
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(out.serial, "FTKMOBTEST01");
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "654321", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_REPLAY);
	assert_int_equal(out.wait_seconds, 17);
	ftm_msg_replay(want, sizeof(want), 17);
	assert_string_equal(out.message, want);
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "000000", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_LOCKED);
	assert_string_equal(out.message, FTM_MSG_LOCKED);
	/* a peer refused before anything was decided: the login decides in its own process */
	login.user = "other";
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_REFUSED);
	assert_int_not_equal(out.result, FTM_RES_OK);
	/* a daemon that serves another store than the module's: refused, decided in process */
	login.user = "alice";
	assert_int_equal(ftm_rdv_login_verify(sock, "/other/tokens.db", &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_REFUSED);
}

static void test_login_without_daemon_is_no_daemon(void **state)
{
	ftm_login_t login = { "alice", "", "sshd", "h" };
	char err[256] = "", path[96];
	ftm_outcome_t out;
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/absent.sock", dir);
	assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_NO_DAEMON);
	/* a socket file nobody listens on (a daemon that died): ECONNREFUSED, the same */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_NO_DAEMON);
	close(fd);
	unlink(path);
}

/* A daemon that accepts, reads the request and closes without answering (killed mid-request). */
static void *close_after_request(void *arg)
{
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	char buf[256];

	if (fd >= 0) {
		usleep(50000);
		(void)!read(fd, buf, sizeof(buf));
		close(fd);
	}
	return NULL;
}

static void test_login_daemon_gone_mid_request_fails_closed(void **state)
{
	ftm_login_t login = { "alice", "", "sshd", "h" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256] = "";
	ftm_outcome_t out;
	pthread_t th;
	int lfd;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dying.sock", dir);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(pthread_create(&th, NULL, close_after_request, &lfd), 0);
	assert_int_equal(ftm_rdv_login_verify(sa.sun_path, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_FAILED);
	assert_non_null(strstr(err, "no verify answer"));
	assert_int_not_equal(out.result, FTM_RES_OK);
	pthread_join(th, NULL);
	close(lfd);
	unlink(sa.sun_path);
}

/* A fake ftmpushd for the kept connection: answers one split with a 6-digit code; then, by mode,
 * answers the verify on the same connection (KEEP), closes it (CLOSE: the next connection, if any,
 * gets the verify), or closes it and stops listening (GONE). accepts: connections it accepted. */
enum { FAKE_KEEP, FAKE_CLOSE, FAKE_GONE };
typedef struct {
	int	lfd;
	int	mode;
	int	accepts;
	char	path[108];
} fake_daemon_t;

static int fake_read(int fd, char *buf, size_t len)
{
	uint32_t hdr;
	size_t n;

	if (recv(fd, &hdr, 4, MSG_WAITALL) != 4)
		return -1;
	n = ntohl(hdr);
	if (n >= len || recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n)
		return -1;
	buf[n] = '\0';
	return 0;
}

static void fake_write(int fd, const char *json)
{
	uint32_t hdr = htonl((uint32_t)strlen(json));

	(void)!write(fd, &hdr, 4);
	(void)!write(fd, json, strlen(json));
}

static void *fake_daemon(void *arg)
{
	fake_daemon_t *f = arg;
	char buf[1024];
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	f->accepts++;
	if (fake_read(fd, buf, sizeof(buf)) == 0 && strstr(buf, "\"op\":\"split\"") != NULL)
		fake_write(fd, "{\"v\":1,\"has_token\":true,\"code_len\":6}");
	if (f->mode != FAKE_KEEP) {
		close(fd);
		if (f->mode == FAKE_GONE) {
			close(f->lfd);
			unlink(f->path);
			return NULL;
		}
		fd = accept(f->lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		f->accepts++;
	}
	if (fake_read(fd, buf, sizeof(buf)) == 0 && strstr(buf, "\"op\":\"verify\"") != NULL &&
	    strstr(buf, "\"code\":\"123456\"") != NULL)
		fake_write(fd, "{\"v\":1,\"result\":\"ok\",\"serial\":\"FTKFAKE1\"}");
	close(fd);
	return NULL;
}

static ftm_rdv_login_rc_t kept_login(int mode, int *accepts, ftm_outcome_t *out, char *err, size_t err_len)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	fake_daemon_t f = { .mode = mode };
	ftm_rdv_login_rc_t rc;
	ftm_split_t sp;
	pthread_t th;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	snprintf(f.path, sizeof(f.path), "%s/fake.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f.path);
	unlink(f.path);
	f.lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(f.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f.lfd, 4), 0);
	assert_int_equal(pthread_create(&th, NULL, fake_daemon, &f), 0);
	assert_int_equal(ftm_rdv_login_split(f.path, NULL, &login, "pw123456", &sp, &keep, err, err_len),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_true(sp.primary.has_code);
	assert_string_equal(sp.primary.code, "123456");
	assert_true(keep.fd >= 0);	/* a code: the connection is kept for the verify */
	if (mode != FAKE_KEEP)
		usleep(100000);	/* the daemon closed it (and, GONE, stopped listening) before the verify */
	rc = ftm_rdv_login_verify(f.path, NULL, &login, "123456", out, &keep, err, err_len);
	assert_int_equal(keep.fd, -1);	/* taken and closed */
	if (mode == FAKE_GONE)
		pthread_join(th, NULL);
	else {
		pthread_join(th, NULL);
		close(f.lfd);
		unlink(f.path);
	}
	*accepts = f.accepts;
	ftm_memzero(&sp, sizeof(sp));
	return rc;
}

static void test_login_split_connection_carries_the_verify(void **state)
{
	char err[256] = "";
	ftm_outcome_t out;
	int accepts = 0;

	(void)state;
	assert_int_equal(kept_login(FAKE_KEEP, &accepts, &out, err, sizeof(err)), FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(out.serial, "FTKFAKE1");
	assert_int_equal(accepts, 1);	/* one connection for the login */
}

static void test_login_kept_connection_closed_is_replaced(void **state)
{
	char err[256] = "";
	ftm_outcome_t out;
	int accepts = 0;

	(void)state;
	assert_int_equal(kept_login(FAKE_CLOSE, &accepts, &out, err, sizeof(err)), FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_int_equal(accepts, 2);	/* found closed before the verify was sent: a new one */
}

static void test_login_daemon_gone_after_split_fails_closed(void **state)
{
	char err[256] = "";
	ftm_outcome_t out;
	int accepts = 0;

	(void)state;
	/* nobody listens any more: not NO_DAEMON (which would decide in process), but FAILED */
	assert_int_equal(kept_login(FAKE_GONE, &accepts, &out, err, sizeof(err)), FTM_RDV_LOGIN_FAILED);
	assert_non_null(strstr(err, "went away between the split and the verify"));
	assert_int_not_equal(out.result, FTM_RES_OK);
	assert_int_equal(accepts, 1);
}

/* A verify after the daemon's split without the split's connection (not kept, or the parent's in a
 * child forked after the split): a connection of its own to the daemon, and nobody listening is
 * FAILED, as for the process that kept it; a code the daemon did not split may still be NO_DAEMON. */
static void test_login_daemon_split_without_its_connection_fails_closed_with_no_daemon(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	char err[256] = "", path[96];
	ftm_outcome_t out;
	ftm_rdv_kept_t keep = { .fd = -1, .split = true };

	(void)state;
	snprintf(path, sizeof(path), "%s/gone.sock", dir);
	assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_FAILED);
	assert_non_null(strstr(err, "went away between the split and the verify"));
	assert_int_not_equal(out.result, FTM_RES_OK);
	assert_false(keep.split);	/* none after */
	assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_NO_DAEMON);
	/* with the daemon there, it decides on the new connection (without the split's proof) */
	keep = (ftm_rdv_kept_t){ .fd = -1, .split = true };
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(verify_proof, "");
}

static void test_login_split_without_code_keeps_nothing(void **state)
{
	ftm_login_t login = { "push", "192.0.2.7", "sshd", "h" };
	char err[256] = "";
	ftm_split_t sp;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	(void)state;
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw", &sp, &keep, err, sizeof(err)), FTM_RDV_LOGIN_ANSWERED);
	assert_false(sp.primary.has_code);
	assert_int_equal(keep.fd, -1);	/* no verify follows a password alone */
}

static void test_server_answers_split_and_verify_on_one_connection(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	char err[256] = "";
	ftm_outcome_t out;
	ftm_split_t sp;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	(void)state;
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_true(keep.fd >= 0);
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_ptr_equal(split_conn, verify_conn);	/* the same connection served both */
	assert_string_equal(verify_proof, "PROOF-alice");	/* and carried the split's proof */
	/* a verify on a connection of its own has no proof */
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, NULL, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_string_equal(verify_proof, "");
	ftm_memzero(&sp, sizeof(sp));
}

static void test_server_stop_does_not_wait_for_a_kept_connection(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	char err[256] = "", path[96];
	ftm_rdv_server_t *srv;
	ftm_outcome_t out;
	ftm_split_t sp;
	int64_t t0;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	(void)state;
	snprintf(path, sizeof(path), "%s/stop.sock", dir);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 4, handler, login_handler, NULL, NULL, err, sizeof(err));
	assert_non_null(srv);
	assert_int_equal(ftm_rdv_login_split(path, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_true(keep.fd >= 0);	/* the daemon's thread waits for the verify on it */
	t0 = ftm_mono_ms();
	ftm_rdv_server_stop(srv);
	assert_true(ftm_mono_ms() - t0 < 2000);	/* not the 10 s a verify may take to come */
	/* the daemon that split the login is gone: fail closed */
	assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_FAILED);
	assert_int_not_equal(out.result, FTM_RES_OK);
	ftm_memzero(&sp, sizeof(sp));
}

static void test_held_pushes_do_not_keep_a_login_waiting(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256] = "";
	ftm_outcome_t out;
	ftm_split_t sp;
	int held[3];
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;
	int64_t t0;

	(void)state;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	/* three pushes held by the daemon (each keeps its thread until its client goes away) */
	for (int i = 0; i < 3; i++) {
		held[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(connect(held[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		fake_write(held[i], "{\"v\":1,\"op\":\"push\",\"user\":\"hang\",\"timeout\":5}");
	}
	usleep(100000);
	/* the fourth connection of four (max_conns) is a login: answered at once, split and verify */
	t0 = ftm_mono_ms();
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_true(ftm_mono_ms() - t0 < 1000);
	for (int i = 0; i < 3; i++)
		close(held[i]);
	ftm_memzero(&sp, sizeof(sp));
	usleep(200000);	/* the held pushes see their clients gone and end */
}

/* Finding: split connections that only wait for their verify (trailing digits, then a failed first
 * factor, say) filled max_conns and every login got "ftmpushd busy". Now a new connection at the limit
 * closes the one that waited longest; its login's verify goes on a new connection (without the proof). */
static void test_waiting_connections_never_make_the_daemon_refuse(void **state)
{
	static const char *const users[4] = { "k1", "k2", "k3", "k4" };
	char err[256] = "", path[96];
	ftm_rdv_server_t *srv;
	ftm_outcome_t out;
	ftm_split_t sp;
	ftm_rdv_kept_t keep[4] = { FTM_RDV_KEPT_NONE, FTM_RDV_KEPT_NONE, FTM_RDV_KEPT_NONE, FTM_RDV_KEPT_NONE };

	(void)state;
	snprintf(path, sizeof(path), "%s/evict.sock", dir);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 3, handler, login_handler, NULL, NULL, err, sizeof(err));
	assert_non_null(srv);
	for (int i = 0; i < 3; i++) {
		ftm_login_t login = { users[i], "192.0.2.7", "sshd", "h" };

		assert_int_equal(ftm_rdv_login_split(path, NULL, &login, "pw123456", &sp, &keep[i], err, sizeof(err)),
				 FTM_RDV_LOGIN_ANSWERED);
		assert_true(keep[i].fd >= 0);
		/* the wait list's order is the order in which the daemon's threads put their connection
		 * on it, after each answer: room for this one's thread before the next split (a thread
		 * preempted after its send put k3 ahead of k2 once, on a loaded CI machine) */
		usleep(30000);
	}
	usleep(50000);	/* all three wait for their verify: the daemon is at its limit (3) */
	{
		ftm_login_t login = { users[3], "192.0.2.7", "sshd", "h" };

		/* served, not refused: k1's connection, the oldest waiting, made room */
		assert_int_equal(ftm_rdv_login_split(path, NULL, &login, "pw123456", &sp, &keep[3], err, sizeof(err)),
				 FTM_RDV_LOGIN_ANSWERED);
		assert_true(keep[3].fd >= 0);
	}
	/* k1's verify: its connection was closed; decided on a new one (which in turn takes k2's slot) */
	for (int i = 0; i < 4; i++) {
		ftm_login_t login = { users[i], "192.0.2.7", "sshd", "h" };
		char proof[FTM_SERIAL_MAX];

		verify_proof[0] = 'x';
		assert_int_equal(ftm_rdv_login_verify(path, NULL, &login, "123456", &out, &keep[i], err, sizeof(err)),
				 FTM_RDV_LOGIN_ANSWERED);
		assert_int_equal(out.result, FTM_RES_OK);
		assert_int_equal(keep[i].fd, -1);
		snprintf(proof, sizeof(proof), "PROOF-%s", users[i]);
		/* k1, k2: evicted, a new connection without the proof; k3, k4: on their own, with it */
		assert_string_equal(verify_proof, i < 2 ? "" : proof);
		usleep(50000);	/* the daemon is done with that verify's connection (its slot is free) */
	}
	ftm_memzero(&sp, sizeof(sp));
	ftm_rdv_server_stop(srv);
}

/* The lines of the normal log (warning and above), for the eviction notice. */
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[8][512];
static int n_captured;

static void capture_sink(void *ctx, ftm_log_level_t level, const char *line)
{
	(void)ctx;
	if (level > FTM_LOG_WARN || strstr(line, "split connection") == NULL)
		return;
	pthread_mutex_lock(&captured_lock);
	if (n_captured < 8)
		snprintf(captured[n_captured], sizeof(captured[0]), "%s", line);
	n_captured++;
	pthread_mutex_unlock(&captured_lock);
}

static int captured_count(void)
{
	int n;

	pthread_mutex_lock(&captured_lock);
	n = n_captured;
	pthread_mutex_unlock(&captured_lock);
	return n;
}

/* One split more than max_conns (1): its split connection evicts the waiting one. */
static void split_evicting(const char *path, const char *user, ftm_rdv_kept_t *keep)
{
	ftm_login_t login = { user, "192.0.2.7", "sshd", "h" };
	char err[256] = "";
	ftm_split_t sp;

	assert_int_equal(ftm_rdv_login_split(path, NULL, &login, "pw123456", &sp, keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	ftm_memzero(&sp, sizeof(sp));
	usleep(30000);	/* it waits for its verify now: the next one evicts it */
}

/* Finding: evictions at max_conns were logged only at debug, so an admin never learnt -m was reached.
 * Now the normal log says so (warning) at the first one, then at most once per interval with the count
 * since the last line; what is left untold when the daemon stops is told then. */
static void test_evictions_are_told_at_most_once_per_interval_with_their_count(void **state)
{
	ftm_log_t log = { capture_sink, NULL, FTM_LOG_INFO };
	ftm_rdv_kept_t keep[6];
	char err[256] = "", path[96];
	ftm_rdv_server_t *srv;

	(void)state;
	n_captured = 0;
	snprintf(path, sizeof(path), "%s/notice.sock", dir);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 1, handler, login_handler, NULL, &log, err, sizeof(err));
	assert_non_null(srv);
	ftm_rdv_server_set_evict_notice_ms(srv, 4000);	/* n1..n3 well inside it on a loaded machine */
	for (int i = 0; i < 6; i++)
		keep[i] = FTM_RDV_KEPT_NONE;
	split_evicting(path, "n0", &keep[0]);		/* the one waiting: no eviction yet */
	assert_int_equal(captured_count(), 0);
	split_evicting(path, "n1", &keep[1]);		/* evicts n0: told at once */
	assert_int_equal(captured_count(), 1);
	assert_non_null(strstr(captured[0], "at -m 1 connections: 1 split connection waiting for its verify closed"));
	assert_null(strstr(captured[0], "in the last"));
	split_evicting(path, "n2", &keep[2]);		/* within the interval: counted, not told */
	split_evicting(path, "n3", &keep[3]);
	assert_int_equal(captured_count(), 1);
	usleep(4100000);
	split_evicting(path, "n4", &keep[4]);		/* past it: told, with the two before it */
	assert_int_equal(captured_count(), 2);
	assert_non_null(strstr(captured[1], ": 3 split connections waiting for their verify closed to serve new ones in the last"));
	split_evicting(path, "n5", &keep[5]);		/* untold ... */
	assert_int_equal(captured_count(), 2);
	for (int i = 0; i < 6; i++)
		if (keep[i].fd >= 0)
			close(keep[i].fd);
	usleep(50000);
	ftm_rdv_server_stop(srv);			/* ... until the stop */
	assert_int_equal(captured_count(), 3);
	assert_non_null(strstr(captured[2], ": 1 split connection waiting for its verify closed"));
}

/* With every slot held by something else than a waiting split (pending pushes), a new connection is
 * still refused at once, in words that say connections. */
static void test_full_of_pushes_is_refused_as_busy(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256] = "", path[96], buf[1024];
	ftm_rdv_server_t *srv;
	ftm_split_t sp;
	int held[2], fd;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	(void)state;
	snprintf(path, sizeof(path), "%s/busy.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 2, handler, login_handler, NULL, NULL, err, sizeof(err));
	assert_non_null(srv);
	for (int i = 0; i < 2; i++) {
		held[i] = socket(AF_UNIX, SOCK_STREAM, 0);
		assert_int_equal(connect(held[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
		fake_write(held[i], "{\"v\":1,\"op\":\"push\",\"user\":\"hang\",\"timeout\":5}");
	}
	usleep(100000);
	/* the refusal, read before anything is sent */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fake_read(fd, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "\"verdict\":\"error\""));
	assert_non_null(strstr(buf, "too many connections"));
	close(fd);
	/* a login fails closed (the refusal, or its request refused at the send: the daemon closed first) */
	assert_int_equal(ftm_rdv_login_split(path, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_FAILED);
	assert_int_equal(keep.fd, -1);
	for (int i = 0; i < 2; i++)
		close(held[i]);
	ftm_memzero(&sp, sizeof(sp));
	ftm_rdv_server_stop(srv);
}

/* Finding: the client sent the verify on a kept connection just as the daemon's wait for it ended: a
 * reset, a failed login. Now a kept connection older than the reuse limit (FTM_RDV_LOGIN_REUSE_MS, 2 s
 * under the daemon's FTM_RDV_LOGIN_IDLE_MS; shortened here) is not used: a new connection is. */
static void test_old_kept_connection_is_not_reused(void **state)
{
	ftm_login_t login = { "alice", "192.0.2.7", "sshd", "h" };
	char err[256] = "";
	ftm_outcome_t out;
	ftm_split_t sp;
	ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

	(void)state;
	ftm_rdv_login_set_reuse_ms(150);
	/* young: reused (the proof came along) */
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(verify_proof, "PROOF-alice");
	/* past the limit, though the daemon still waits on it (10 s): a new connection, no proof */
	assert_int_equal(ftm_rdv_login_split(sock, NULL, &login, "pw123456", &sp, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_true(keep.fd >= 0);
	usleep(250000);
	assert_int_equal(ftm_rdv_login_verify(sock, NULL, &login, "123456", &out, &keep, err, sizeof(err)),
			 FTM_RDV_LOGIN_ANSWERED);
	assert_int_equal(out.result, FTM_RES_OK);
	assert_string_equal(verify_proof, "");
	assert_int_equal(keep.fd, -1);
	ftm_rdv_login_set_reuse_ms(0);
	ftm_memzero(&sp, sizeof(sp));
}

/* The daemon's side of the same race: a verify sent on a kept connection as the daemon's wait ends
 * is either answered on it or refused at the send (EPIPE: the client then knows nothing was decided
 * and uses a new connection), never reset after it went. A raw client sends it around the (short)
 * deadline, many times. Statistical: before the daemon shut the socket's reading side before looking
 * for a last verify, about 4 in 1000 were lost this way (10 of 2500 in one run); with it none can be. */
static void test_verify_at_the_idle_deadline_is_answered_or_refused_at_send(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256] = "", path[96], buf[1024];
	ftm_rdv_server_t *srv;
	int answered = 0, refused_at_send = 0, reset = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/idle.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 4, handler, login_handler, NULL, NULL, err, sizeof(err));
	assert_non_null(srv);
	ftm_rdv_server_set_login_idle_ms(srv, 5);
	for (int i = 0; i < 1000; i++) {
		static const char verify[] = "{\"v\":1,\"op\":\"verify\",\"user\":\"alice\",\"code\":\"123456\"}";
		uint32_t hdr = htonl((uint32_t)strlen(verify));
		struct iovec iov[2] = { { &hdr, 4 }, { (void *)verify, strlen(verify) } };
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
		struct timespec ts = { 0, 4850000 + (i % 50) * 6000 };	/* 4.85 .. 5.144 ms */
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);

		assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
		fake_write(fd, "{\"v\":1,\"op\":\"split\",\"user\":\"alice\",\"typed\":\"pw123456\"}");
		assert_int_equal(fake_read(fd, buf, sizeof(buf)), 0);
		nanosleep(&ts, NULL);
		if (sendmsg(fd, &mh, MSG_NOSIGNAL) < 0) {
			refused_at_send++;
		} else {
			ssize_t n;

			errno = 0;
			n = recv(fd, &hdr, 4, MSG_WAITALL);
			if (n == 4)
				answered++;
			else
				reset++;	/* closed (reset or an end) after the verify went: a failed login */
		}
		close(fd);
	}
	ftm_rdv_server_stop(srv);
	print_message("verify around the deadline: %d answered, %d refused at the send, %d lost\n", answered,
		      refused_at_send, reset);
	assert_int_equal(reset, 0);
}

/* Clients that connect at the same moment: every idle thread waits on the listening socket, a
 * connection wakes one of them and several may accept at once; each connection is served (none is
 * lost to a thread that was woken for a connection another one took), threads are started while all
 * are busy, and stop ends them all. */
#define BURST_CLIENTS	8
#define BURST_PUSHES	50

static const char *burst_path;
static atomic_int burst_approved;

static void *burst_client(void *arg)
{
	ftm_rdv_request_t req = { .user = "approve", .client = "192.0.2.7", .nas = "sshd", .host = "h", .timeout = 5 };

	(void)arg;
	for (int i = 0; i < BURST_PUSHES; i++) {
		ftm_rdv_reply_t out;

		ftm_rdv_push(burst_path, &req, NULL, NULL, -1, NULL, &out);
		if (out.verdict == FTM_RDV_APPROVED)
			atomic_fetch_add(&burst_approved, 1);
	}
	return NULL;
}

static void test_connections_at_once_are_each_served(void **state)
{
	pthread_t th[BURST_CLIENTS];
	char err[256] = "", path[96];
	ftm_rdv_server_t *srv;
	int64_t t0;

	(void)state;
	snprintf(path, sizeof(path), "%s/burst.sock", dir);
	burst_path = path;
	atomic_store(&burst_approved, 0);
	srv = ftm_rdv_server_start(path, (gid_t)-1, 64, handler, login_handler, NULL, NULL, err, sizeof(err));
	assert_non_null(srv);
	for (int i = 0; i < BURST_CLIENTS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, burst_client, NULL), 0);
	for (int i = 0; i < BURST_CLIENTS; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&burst_approved), BURST_CLIENTS * BURST_PUSHES);
	t0 = ftm_mono_ms();
	ftm_rdv_server_stop(srv);
	assert_true(ftm_mono_ms() - t0 < 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_approved_push_is_reported_approved),
		cmocka_unit_test(test_sent_event_carries_the_number_before_the_verdict),
		cmocka_unit_test(test_send_failure_is_failed_with_reason),
		cmocka_unit_test(test_daemon_down_is_a_clear_error),
		cmocka_unit_test(test_abort_fd_cancels_and_the_server_sees_the_hangup),
		cmocka_unit_test(test_socket_mode_is_0600_without_group),
		cmocka_unit_test(test_second_server_on_a_live_socket_is_refused),
		cmocka_unit_test(test_garbage_request_gets_an_error_verdict),
		cmocka_unit_test(test_lenient_json_is_a_protocol_error),
		cmocka_unit_test(test_oversized_length_is_dropped),
		cmocka_unit_test(test_number_right_answer_is_approved_by_the_daemon),
		cmocka_unit_test(test_number_wrong_answer_is_denied),
		cmocka_unit_test(test_number_wrong_answer_is_denied_even_if_the_daemon_approves),
		cmocka_unit_test(test_number_phone_decides_first),
		cmocka_unit_test(test_number_start_without_number_is_the_final_reply),
		cmocka_unit_test(test_auth_number_matching_through_the_socket),
		cmocka_unit_test(test_login_split_is_rebuilt_from_the_daemons_reading),
		cmocka_unit_test(test_login_verify_carries_the_outcome),
		cmocka_unit_test(test_login_without_daemon_is_no_daemon),
		cmocka_unit_test(test_login_daemon_gone_mid_request_fails_closed),
		cmocka_unit_test(test_login_split_connection_carries_the_verify),
		cmocka_unit_test(test_login_kept_connection_closed_is_replaced),
		cmocka_unit_test(test_login_daemon_gone_after_split_fails_closed),
		cmocka_unit_test(test_login_daemon_split_without_its_connection_fails_closed_with_no_daemon),
		cmocka_unit_test(test_login_split_without_code_keeps_nothing),
		cmocka_unit_test(test_server_answers_split_and_verify_on_one_connection),
		cmocka_unit_test(test_server_stop_does_not_wait_for_a_kept_connection),
		cmocka_unit_test(test_held_pushes_do_not_keep_a_login_waiting),
		cmocka_unit_test(test_waiting_connections_never_make_the_daemon_refuse),
		cmocka_unit_test(test_evictions_are_told_at_most_once_per_interval_with_their_count),
		cmocka_unit_test(test_full_of_pushes_is_refused_as_busy),
		cmocka_unit_test(test_old_kept_connection_is_not_reused),
		cmocka_unit_test(test_verify_at_the_idle_deadline_is_answered_or_refused_at_send),
		cmocka_unit_test(test_connections_at_once_are_each_served),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

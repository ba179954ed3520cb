/* test_metrics: the counters, their Prometheus text (0.0.4), metrics_listen's rules and the listener. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <sqlite3.h>

#include "ftm_metrics.h"
#include "free_port.h"
#include "ftm_push.h"
#include "ftm_store.h"
#include "push_channel.h"

static int reset(void **state)
{
	(void)state;
	ftm_metrics_reset();
	ftm_metrics_set_frontend("radius");
	return 0;
}

/* The value of the sample line that starts with `series` followed by a blank (-1: no such line). */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; l != NULL && *l != '\0'; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

static double scrape(const char *series)
{
	char *text = ftm_metrics_render(NULL);
	double v;

	assert_non_null(text);
	v = sample(text, series);
	free(text);
	return v;
}

/* ---- the exposition ---- */

static void test_every_family_has_help_and_type_before_its_samples(void **state)
{
	static const char *const families[][2] = {
		{ "ftmpush_build_info", "gauge" },
		{ "ftmpush_logins_total", "counter" },
		{ "ftmpush_pushes_total", "counter" },
		{ "ftmpush_pushes_pending", "gauge" },
		{ "ftmpush_push_round_trip_seconds", "histogram" },
		{ "ftmpush_verdict_duration_seconds", "histogram" },
		{ "ftmpush_store_errors_total", "counter" },
		{ "ftmpush_listener_tls_failures_total", "counter" },
	};
	char *text = ftm_metrics_render(NULL), line[200];

	(void)state;
	assert_non_null(text);
	assert_int_equal(text[strlen(text) - 1], '\n');
	for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
		const char *help, *type, *first;

		snprintf(line, sizeof(line), "# HELP %s ", families[i][0]);
		help = strstr(text, line);
		snprintf(line, sizeof(line), "# TYPE %s %s\n", families[i][0], families[i][1]);
		type = strstr(text, line);
		snprintf(line, sizeof(line), "\n%s", families[i][0]);
		first = strstr(type != NULL ? type + 1 : text, line);
		assert_non_null(help);
		assert_non_null(type);
		assert_non_null(first);
		assert_true(help < type && type < first);
	}
	free(text);
}

static void test_a_login_is_counted_under_its_front_end_and_result(void **state)
{
	(void)state;
	assert_true(scrape("ftmpush_logins_total{frontend=\"radius\",result=\"ok\"}") == 0);
	ftm_metrics_login(FTM_RES_OK);
	ftm_metrics_login(FTM_RES_OK);
	ftm_metrics_login(FTM_RES_DENIED);
	assert_true(scrape("ftmpush_logins_total{frontend=\"radius\",result=\"ok\"}") == 2);
	assert_true(scrape("ftmpush_logins_total{frontend=\"radius\",result=\"denied\"}") == 1);
	/* every result of the outcome vocabulary is there from the start, at 0 */
	assert_true(scrape("ftmpush_logins_total{frontend=\"radius\",result=\"locked\"}") == 0);
	assert_true(scrape("ftmpush_logins_total{frontend=\"radius\",result=\"error\"}") == 0);
	ftm_metrics_login((ftm_result_t)99);	/* not a result: ignored */
}

static void test_label_values_are_escaped(void **state)
{
	(void)state;
	ftm_metrics_set_frontend("a\\b\"c\nd");
	ftm_metrics_login(FTM_RES_FAIL);
	assert_true(scrape("ftmpush_logins_total{frontend=\"a\\\\b\\\"c\\nd\",result=\"fail\"}") == 1);
}

static void test_histogram_buckets_are_cumulative_and_count_is_the_inf_bucket(void **state)
{
	(void)state;
	ftm_metrics_verdict_seconds(0.0002);	/* le 0.0005 */
	ftm_metrics_verdict_seconds(0.003);	/* le 0.005 */
	ftm_metrics_verdict_seconds(0.003);
	ftm_metrics_verdict_seconds(60);	/* above every bound */
	ftm_metrics_verdict_seconds(-1);	/* a clock step back: counted as 0 */
	assert_true(scrape("ftmpush_verdict_duration_seconds_bucket{le=\"0.0005\"}") == 2);
	assert_true(scrape("ftmpush_verdict_duration_seconds_bucket{le=\"0.0025\"}") == 2);
	assert_true(scrape("ftmpush_verdict_duration_seconds_bucket{le=\"0.005\"}") == 4);
	assert_true(scrape("ftmpush_verdict_duration_seconds_bucket{le=\"5\"}") == 4);
	assert_true(scrape("ftmpush_verdict_duration_seconds_bucket{le=\"+Inf\"}") == 5);
	assert_true(scrape("ftmpush_verdict_duration_seconds_count") == 5);
	assert_true(scrape("ftmpush_verdict_duration_seconds_sum") > 60.0062 - 1e-6);
	assert_true(scrape("ftmpush_verdict_duration_seconds_sum") < 60.0062 + 1e-6);
}

static void test_a_decided_push_leaves_pending_and_counts_its_channel_and_outcome(void **state)
{
	(void)state;
	ftm_metrics_push_started();
	ftm_metrics_push_started();
	assert_true(scrape("ftmpush_pushes_pending") == 2);
	ftm_metrics_push_decided(FTM_METRICS_GATEWAY, FTM_PUSH_APPROVED, 2.5);
	ftm_metrics_push_decided(FTM_METRICS_NTFY, FTM_PUSH_TIMEOUT, -1);
	assert_true(scrape("ftmpush_pushes_pending") == 0);
	assert_true(scrape("ftmpush_pushes_total{channel=\"gateway\",outcome=\"approved\"}") == 1);
	assert_true(scrape("ftmpush_pushes_total{channel=\"ntfy\",outcome=\"timeout\"}") == 1);
	assert_true(scrape("ftmpush_pushes_total{channel=\"ntfy\",outcome=\"approved\"}") == 0);
	/* only the answer is a round trip: the timeout is not observed */
	assert_true(scrape("ftmpush_push_round_trip_seconds_count{channel=\"gateway\"}") == 1);
	assert_true(scrape("ftmpush_push_round_trip_seconds_bucket{channel=\"gateway\",le=\"2\"}") == 0);
	assert_true(scrape("ftmpush_push_round_trip_seconds_bucket{channel=\"gateway\",le=\"3\"}") == 1);
	assert_true(scrape("ftmpush_push_round_trip_seconds_count{channel=\"ntfy\"}") == 0);
}

static void test_store_errors_and_tls_failures_are_counted(void **state)
{
	(void)state;
	ftm_metrics_store_error(FTM_METRICS_STORE_VERDICT);
	ftm_metrics_store_error(FTM_METRICS_STORE_CHALLENGE);
	ftm_metrics_store_error(FTM_METRICS_STORE_CHALLENGE);
	ftm_metrics_tls_failure();
	assert_true(scrape("ftmpush_store_errors_total{op=\"verdict\"}") == 1);
	assert_true(scrape("ftmpush_store_errors_total{op=\"list\"}") == 0);
	assert_true(scrape("ftmpush_store_errors_total{op=\"challenge\"}") == 2);
	assert_true(scrape("ftmpush_listener_tls_failures_total") == 1);
}

/* A recovery code verdict the store cannot decide (its table gone under it) is a store error of the
 * verdict, like a code verdict's; one it decides is not. */
static void test_a_recovery_verdict_the_store_fails_is_a_store_error(void **state)
{
	static const char *const suffixes[] = { "", "-wal", "-shm", ".key" };
	char dir[] = "/tmp/ftm-test-metrics.XXXXXX", db[64], path[96], err[256];
	char codes[2][FTM_RECOVERY_LEN + 1];
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .consume = true };
	ftm_verdict_t v;
	ftm_token_t t;
	ftm_store_t *st;
	sqlite3 *raw;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof(db), "%s/tokens.db", dir);
	st = ftm_store_open(db, NULL, NULL, err, sizeof(err));
	assert_non_null(st);
	assert_int_equal(ftm_token_init(&t, "alice", "S1", "3132333435363738393031323334353637383930", err,
					sizeof(err)), 0);
	assert_int_equal(ftm_store_token_add(st, &t, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_recovery_issue(st, "alice", 2, time(NULL), codes, err, sizeof(err)), 0);
	assert_int_equal(ftm_store_recovery_verify(st, "alice", codes[0], time(NULL), &p, &v), 0);
	assert_int_equal(v.code, FTM_VERDICT_OK);
	assert_true(scrape("ftmpush_store_errors_total{op=\"verdict\"}") == 0);
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "DROP TABLE recovery_codes", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_int_equal(ftm_store_recovery_verify(st, "alice", codes[1], time(NULL), &p, &v), -1);
	assert_int_equal(v.code, FTM_VERDICT_ERROR);
	assert_true(scrape("ftmpush_store_errors_total{op=\"verdict\"}") == 1);
	ftm_memzero(codes, sizeof(codes));
	ftm_store_close(st);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", db, suffixes[i]);
		unlink(path);
	}
	assert_int_equal(rmdir(dir), 0);
}

/* ---- the engine counts what becomes of its pushes ---- */

static char sent_caps[2][FTM_PUSH_CAP_LEN + 1];

static int record_send(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *m,
		       char *reason, size_t reason_len)
{
	(void)ctx;
	(void)cfg;
	(void)tok;
	(void)reason;
	(void)reason_len;
	for (unsigned i = 0; i < 2 && i < m->ncaps; i++)
		snprintf(sent_caps[i], sizeof(sent_caps[i]), "%s", m->caps[i]);
	return 0;
}

static void test_the_engine_counts_a_push_answered_on_the_phone(void **state)
{
	static const ftm_login_t login = { "alice", "203.0.113.5", "vpn-gw", "radius1" };
	ftm_config_t cfg;
	ftm_token_t tok;
	ftm_push_t *p;
	ftm_push_tx_t *tx;
	char err[256] = "", reply[256];
	bool joined;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.push.status = true;
	snprintf(cfg.push.server, sizeof(cfg.push.server), "127.0.0.1");
	cfg.push.server_port = 4433;
	cfg.push.timeout = 30;
	p = ftm_push_new(&cfg, NULL, FTM_PUSH_NO_LISTENER, err, sizeof(err));
	assert_non_null(p);
	ftm_push_set_sender(p, record_send, NULL);
	memset(&tok, 0, sizeof(tok));
	snprintf(tok.serial, sizeof(tok.serial), "FTKMOB0000000001");
	snprintf(tok.user, sizeof(tok.user), "alice");
	snprintf(tok.push, sizeof(tok.push), "ntfy:https://127.0.0.1:1/topic");
	tx = ftm_push_start(p, &login, &tok, time(NULL), &joined, err, sizeof(err));
	assert_non_null(tx);
	assert_true(scrape("ftmpush_pushes_pending") == 1);
	assert_int_equal(ftm_push_answer_capability(p, sent_caps[1], time(NULL), reply, sizeof(reply)), 200);
	assert_int_equal(ftm_push_wait(p, tx, 0), FTM_PUSH_DENIED);
	ftm_push_release(p, tx);
	assert_true(scrape("ftmpush_pushes_pending") == 0);
	assert_true(scrape("ftmpush_pushes_total{channel=\"ntfy\",outcome=\"denied\"}") == 1);
	assert_true(scrape("ftmpush_push_round_trip_seconds_count{channel=\"ntfy\"}") == 1);
	assert_true(scrape("ftmpush_push_round_trip_seconds_bucket{channel=\"ntfy\",le=\"0.5\"}") == 1);
	ftm_push_free(p);
}

/* ---- metrics_listen ---- */

static void test_metrics_listen_takes_a_loopback_address_and_port(void **state)
{
	char addr[64], err[512];
	unsigned port = 0;

	(void)state;
	assert_int_equal(ftm_metrics_parse_listen("127.0.0.1:9464", false, addr, sizeof(addr), &port, err,
						  sizeof(err)), 0);
	assert_string_equal(addr, "127.0.0.1");
	assert_int_equal(port, 9464);
	assert_int_equal(ftm_metrics_parse_listen("127.0.0.53:1", false, addr, sizeof(addr), &port, err,
						  sizeof(err)), 0);
	assert_int_equal(ftm_metrics_parse_listen("[::1]:65535", false, addr, sizeof(addr), &port, err,
						  sizeof(err)), 0);
	assert_string_equal(addr, "::1");
	assert_int_equal(port, 65535);
}

static void test_metrics_listen_refuses_a_non_loopback_address_unless_allowed(void **state)
{
	static const char *const remote[] = { "0.0.0.0:9464", "192.0.2.7:9464", "[::]:9464", "[2001:db8::1]:9464",
					      "[::ffff:192.0.2.7]:9464" };
	char addr[64], err[512];
	unsigned port;

	(void)state;
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		err[0] = '\0';
		assert_int_equal(ftm_metrics_parse_listen(remote[i], false, addr, sizeof(addr), &port, err,
							  sizeof(err)), -1);
		assert_non_null(strstr(err, "not a loopback address"));
		assert_non_null(strstr(err, "metrics_allow_remote = yes"));
		assert_int_equal(ftm_metrics_parse_listen(remote[i], true, addr, sizeof(addr), &port, err,
							  sizeof(err)), 0);
	}
}

static void test_metrics_listen_refuses_what_is_not_address_colon_port(void **state)
{
	static const char *const bad[] = { "", "9464", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
					   "127.0.0.1:94x", "localhost:9464", "::1:9464", "[::1]9464", "[::1:9464",
					   ":9464", "127.0.0.1:+80", "127.0.0.1:99999999999999999999" };
	char addr[64], err[512];
	unsigned port;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(ftm_metrics_parse_listen(bad[i], true, addr, sizeof(addr), &port, err, sizeof(err)),
				 -1);
		assert_true(strncmp(err, "metrics_listen: ", 16) == 0);
	}
}

static void test_config_validation_refuses_a_remote_metrics_listen(void **state)
{
	ftm_config_t cfg;
	char err[512] = "";

	(void)state;
	ftm_config_defaults(&cfg);
	assert_string_equal(cfg.metrics_listen, "");	/* off unless set */
	assert_int_equal(ftm_config_set(&cfg, "metrics_listen", "0.0.0.0:9464", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_validate(&cfg, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "not a loopback address"));
	assert_int_equal(ftm_config_set(&cfg, "metrics_allow_remote", "yes", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_validate(&cfg, NULL, NULL, err, sizeof(err)), 0);
}

/* ---- the listener ---- */

typedef struct {
	char	body[16384];
	size_t	len;
	char	type[128];
} reply_t;

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	reply_t *r = ctx;
	size_t n = size * nmemb;

	if (r->len + n < sizeof(r->body)) {
		memcpy(r->body + r->len, ptr, n);
		r->len += n;
		r->body[r->len] = '\0';
	}
	return n;
}

static long http(const char *method, unsigned port, const char *path, reply_t *r)
{
	CURL *c = curl_easy_init();
	char url[128];
	char *type = NULL;
	long status = 0;

	memset(r, 0, sizeof(*r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	if (curl_easy_perform(c) == CURLE_OK) {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type) == CURLE_OK && type != NULL)
			snprintf(r->type, sizeof(r->type), "%s", type);
	}
	curl_easy_cleanup(c);
	return status;
}

static void test_the_listener_serves_get_metrics_and_nothing_else(void **state)
{
	ftm_config_t cfg;
	ftm_metrics_listener_t *l = NULL;
	unsigned port = free_port();
	char err[512] = "";
	reply_t r;

	(void)state;
	ftm_config_defaults(&cfg);
	snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "127.0.0.1:%u", port);
	assert_int_equal(ftm_metrics_listener_start(&cfg, "pam", NULL, &l, err, sizeof(err)), 0);
	assert_non_null(l);
	ftm_metrics_login(FTM_RES_OK);
	assert_int_equal(http("GET", port, "/metrics", &r), 200);
	assert_string_equal(r.type, "text/plain; version=0.0.4; charset=utf-8");
	assert_true(sample(r.body, "ftmpush_logins_total{frontend=\"pam\",result=\"ok\"}") == 1);
	assert_int_equal(http("GET", port, "/", &r), 404);
	assert_int_equal(http("GET", port, "/metrics/", &r), 404);
	assert_int_equal(http("GET", port, "/ftm/v1/health", &r), 404);
	assert_int_equal(http("POST", port, "/metrics", &r), 405);
	assert_int_equal(http("DELETE", port, "/metrics", &r), 405);
	assert_null(strstr(r.body, "ftmpush_"));
	ftm_metrics_listener_stop(l);
	assert_int_equal(http("GET", port, "/metrics", &r), 0);	/* stopped: nothing listens */
}

static void test_the_listener_binds_the_ipv6_loopback(void **state)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	ftm_metrics_listener_t *l = NULL;
	ftm_config_t cfg;
	char err[512] = "", url[64];
	long status = 0;
	reply_t r;
	CURL *c;

	(void)state;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (fd >= 0)
			close(fd);
		skip();		/* no IPv6 on this host */
	}
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	ftm_config_defaults(&cfg);
	snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "[::1]:%u", ntohs(sa.sin6_port));
	assert_int_equal(ftm_metrics_listener_start(&cfg, "radius", NULL, &l, err, sizeof(err)), 0);
	snprintf(url, sizeof(url), "http://[::1]:%u/metrics", ntohs(sa.sin6_port));
	memset(&r, 0, sizeof(r));
	c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	assert_int_equal(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	assert_int_equal(status, 200);
	assert_non_null(strstr(r.body, "# TYPE ftmpush_logins_total counter\n"));
	ftm_metrics_listener_stop(l);
}

static void test_one_listener_per_process_shared_by_the_same_address(void **state)
{
	ftm_config_t a, b;
	ftm_metrics_listener_t *la = NULL, *lb = NULL, *lc = NULL;
	unsigned port = free_port();
	char err[512] = "";
	reply_t r;

	(void)state;
	ftm_config_defaults(&a);
	snprintf(a.metrics_listen, sizeof(a.metrics_listen), "127.0.0.1:%u", port);
	ftm_config_defaults(&b);
	snprintf(b.metrics_listen, sizeof(b.metrics_listen), "127.0.0.1:%u", port + 1 > 65535 ? port - 1 : port + 1);
	assert_int_equal(ftm_metrics_listener_start(&a, "radius", NULL, &la, err, sizeof(err)), 0);
	assert_int_equal(ftm_metrics_listener_start(&a, "radius", NULL, &lb, err, sizeof(err)), 0);
	assert_ptr_equal(la, lb);
	assert_int_equal(ftm_metrics_listener_start(&b, "radius", NULL, &lc, err, sizeof(err)), -1);
	assert_null(lc);
	assert_non_null(strstr(err, "serves its metrics on"));
	ftm_metrics_listener_stop(la);
	assert_int_equal(http("GET", port, "/metrics", &r), 200);	/* the other user still has it */
	ftm_metrics_listener_stop(lb);
	assert_int_equal(http("GET", port, "/metrics", &r), 0);
}

static void test_the_listener_refuses_a_remote_bind_and_is_off_unless_set(void **state)
{
	ftm_config_t cfg;
	ftm_metrics_listener_t *l = (ftm_metrics_listener_t *)&cfg;
	char err[512] = "";

	(void)state;
	ftm_config_defaults(&cfg);
	assert_int_equal(ftm_metrics_listener_start(&cfg, "radius", NULL, &l, err, sizeof(err)), 0);
	assert_null(l);
	ftm_metrics_listener_stop(l);
	snprintf(cfg.metrics_listen, sizeof(cfg.metrics_listen), "0.0.0.0:%u", free_port());
	assert_int_equal(ftm_metrics_listener_start(&cfg, "radius", NULL, &l, err, sizeof(err)), -1);
	assert_null(l);
	assert_non_null(strstr(err, "not a loopback address"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_every_family_has_help_and_type_before_its_samples, reset),
		cmocka_unit_test_setup(test_a_login_is_counted_under_its_front_end_and_result, reset),
		cmocka_unit_test_setup(test_label_values_are_escaped, reset),
		cmocka_unit_test_setup(test_histogram_buckets_are_cumulative_and_count_is_the_inf_bucket, reset),
		cmocka_unit_test_setup(test_a_decided_push_leaves_pending_and_counts_its_channel_and_outcome, reset),
		cmocka_unit_test_setup(test_store_errors_and_tls_failures_are_counted, reset),
		cmocka_unit_test_setup(test_a_recovery_verdict_the_store_fails_is_a_store_error, reset),
		cmocka_unit_test_setup(test_the_engine_counts_a_push_answered_on_the_phone, reset),
		cmocka_unit_test(test_metrics_listen_takes_a_loopback_address_and_port),
		cmocka_unit_test(test_metrics_listen_refuses_a_non_loopback_address_unless_allowed),
		cmocka_unit_test(test_metrics_listen_refuses_what_is_not_address_colon_port),
		cmocka_unit_test(test_config_validation_refuses_a_remote_metrics_listen),
		cmocka_unit_test_setup(test_the_listener_serves_get_metrics_and_nothing_else, reset),
		cmocka_unit_test_setup(test_the_listener_binds_the_ipv6_loopback, reset),
		cmocka_unit_test_setup(test_one_listener_per_process_shared_by_the_same_address, reset),
		cmocka_unit_test(test_the_listener_refuses_a_remote_bind_and_is_off_unless_set),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

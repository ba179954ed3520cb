/* test_push_listener: the HTTPS callback listener and the libcurl channel, end to end on loopback. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ftm_push.h"
#include "free_port.h"
#include "push_channel.h"

static char dir[64], cert_path[128], key_path[128];
static unsigned port;

/* A throw-away self-signed P-256 certificate for 127.0.0.1 (it is its own CA for curl). */
static void make_cert(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n;
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	FILE *f;

	assert_non_null(k);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "IP:127.0.0.1");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* ---- a channel that records the capabilities ---- */
static char caps[3][FTM_PUSH_CAP_LEN + 1], txid[FTM_PUSH_ID_LEN + 1];
static int sends;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int record_send(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *m,
		       char *reason, size_t reason_len)
{
	(void)ctx;
	(void)cfg;
	(void)tok;
	(void)reason;
	(void)reason_len;
	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < m->ncaps; i++)
		snprintf(caps[i], sizeof(caps[i]), "%s", m->caps[i]);
	snprintf(txid, sizeof(txid), "%s", m->tx);
	sends++;
	pthread_mutex_unlock(&lock);
	return 0;
}

static ftm_config_t cfg;

static ftm_push_t *engine_gw(const char *gateway_url)
{
	char err[256] = "";
	ftm_push_t *p;

	memset(&cfg, 0, sizeof(cfg));
	cfg.push.status = true;
	snprintf(cfg.push.server, sizeof(cfg.push.server), "127.0.0.1");
	cfg.push.server_port = port;
	cfg.push.timeout = 10;
	snprintf(cfg.push.server_cert, sizeof(cfg.push.server_cert), "%s", cert_path);
	snprintf(cfg.push.server_key, sizeof(cfg.push.server_key), "%s", key_path);
	snprintf(cfg.push.ca_file, sizeof(cfg.push.ca_file), "%s", cert_path);
	snprintf(cfg.push.gateway_url, sizeof(cfg.push.gateway_url), "%s", gateway_url);
	p = ftm_push_new(&cfg, NULL, 0, err, sizeof(err));
	if (p == NULL)
		fprintf(stderr, "engine: %s\n", err);
	assert_non_null(p);
	return p;
}

static ftm_push_t *engine(void)
{
	return engine_gw("");
}

static size_t collect(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	char *buf = ctx;
	size_t have = strlen(buf), n = size * nmemb;

	if (have + n < 1024) {
		memcpy(buf + have, ptr, n);
		buf[have + n] = '\0';
	}
	return size * nmemb;
}

/* One request to the listener; returns the HTTP status (0: no reply). */
static long http(const char *method, const char *path, const char *body, size_t body_len, char *reply)
{
	CURL *c = curl_easy_init();
	char url[256];
	long status = 0;

	reply[0] = '\0';
	snprintf(url, sizeof(url), "https://127.0.0.1:%u%s", port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, cert_path);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, reply);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)body_len);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	return status;
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ftm-listener-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
	snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
	make_cert();
	port = free_port();
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(cert_path);
	unlink(key_path);
	rmdir(dir);
	return 0;
}

static void test_only_documented_paths_and_methods(void **state)
{
	ftm_push_t *p = engine();
	char reply[1024], big[5000];

	(void)state;
	assert_int_equal(http("GET", "/ftm/v1/health", NULL, 0, reply), 200);
	assert_non_null(strstr(reply, "\"status\":\"ok\""));
	assert_int_equal(http("GET", "/", NULL, 0, reply), 404);
	assert_int_equal(http("POST", "/ftm/v1/cbx", "", 0, reply), 404);
	assert_int_equal(http("GET", "/ftm/v1/gw", NULL, 0, reply), 405);
	assert_int_equal(http("DELETE", "/ftm/v1/cb/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, 0, reply), 405);
	assert_int_equal(http("POST", "/ftm/v1/cb/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", 0, reply), 404);
	assert_int_equal(http("POST", "/ftm/v1/gw", "nope", 4, reply), 400);
	memset(big, 'a', sizeof(big));
	assert_int_equal(http("POST", "/ftm/v1/gw", big, sizeof(big), reply), 413);
	ftm_push_free(p);
}

typedef struct w {
	ftm_push_t	*p;
	ftm_outcome_t	out;
} w_t;

static void *login(void *arg)
{
	w_t *w = arg;
	ftm_login_t l = { "alice", "192.0.2.1", "nas", "host" };
	ftm_token_t t;

	memset(&t, 0, sizeof(t));
	snprintf(t.serial, sizeof(t.serial), "FTKMOBUNIT");
	snprintf(t.push, sizeof(t.push), "gateway:android/reg");
	memcpy(t.seed, "12345678901234567890", 20);
	t.seed_len = 20;
	ftm_push_second_factor(w->p, &l, &t, time(NULL), &w->out);
	return NULL;
}

static void wait_sends(int n)
{
	for (int i = 0; i < 500; i++) {
		pthread_mutex_lock(&lock);
		int s = sends;
		pthread_mutex_unlock(&lock);
		if (s >= n)
			return;
		usleep(10000);
	}
	fail_msg("no push");
}

static void test_callbacks_over_https_decide_once(void **state)
{
	ftm_push_t *p = engine();
	w_t w = { p, { 0 } };
	pthread_t th;
	char path[128], reply[1024], body[512], proof[65];
	uint8_t k_cb[32];

	(void)state;
	sends = 0;
	ftm_push_set_sender(p, record_send, NULL);
	pthread_create(&th, NULL, login, &w);
	wait_sends(1);
	/* a wrong proof over HTTPS: 403, still pending */
	assert_int_equal(ftm_push_derive_keys((const uint8_t *)"12345678901234567890", 20, NULL, NULL, k_cb), 0);
	assert_int_equal(ftm_push_callback_proof(k_cb, txid, "deny", "", proof), 0);
	proof[0] = proof[0] == '0' ? '1' : '0';
	snprintf(body, sizeof(body), "{\"tx\":\"%s\",\"verdict\":\"deny\",\"number\":\"\",\"proof\":\"%s\"}", txid, proof);
	assert_int_equal(http("POST", "/ftm/v1/gw", body, strlen(body), reply), 403);
	/* the Approve capability (ntfy form) decides */
	snprintf(path, sizeof(path), "/ftm/v1/cb/%s", caps[0]);
	assert_int_equal(http("POST", path, "", 0, reply), 200);
	assert_non_null(strstr(reply, "approved"));
	pthread_join(th, NULL);
	assert_int_equal(w.out.result, FTM_RES_OK);
	assert_int_equal(http("POST", path, "", 0, reply), 409);
	snprintf(path, sizeof(path), "/ftm/v1/cb/%s", caps[1]);
	assert_int_equal(http("POST", path, "", 0, reply), 409);
	ftm_push_free(p);
}

/* The real channel: an ntfy publish that the server refuses (our own listener answers 404 on /)
 * and a gateway that cannot be reached are both the verdict "failed", quickly. */
static void test_channel_failures_are_verdicts(void **state)
{
	ftm_push_t *p = engine();
	ftm_login_t l = { "bob", "192.0.2.2", "nas", "host" };
	ftm_token_t t;
	ftm_outcome_t out;
	time_t start = time(NULL);

	(void)state;
	memset(&t, 0, sizeof(t));
	snprintf(t.serial, sizeof(t.serial), "FTKMOBUNIT2");
	memcpy(t.seed, "12345678901234567890", 20);
	t.seed_len = 20;
	snprintf(t.push, sizeof(t.push), "ntfy:https://127.0.0.1:%u/topic-bob", port);
	ftm_push_second_factor(p, &l, &t, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_PUSH_FAILED);
	assert_non_null(strstr(out.reason, "HTTP status 404"));

	ftm_push_free(p);
	p = engine_gw("https://127.0.0.1:1/push");
	snprintf(t.push, sizeof(t.push), "gateway:reg-bob");
	ftm_push_second_factor(p, &l, &t, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_PUSH_FAILED);
	snprintf(t.push, sizeof(t.push), "carrier-pigeon:bob");
	ftm_push_second_factor(p, &l, &t, time(NULL), &out);
	assert_int_equal(out.result, FTM_RES_PUSH_FAILED);
	assert_non_null(strstr(out.reason, "unknown push channel"));
	assert_true(time(NULL) - start < 10);
	ftm_push_free(p);
}

/* A TCP connection to the listener from source address src (127.x.y.z), optionally sending bytes. */
static int connect_from(const char *src, const char *send_first)
{
	struct sockaddr_in from = { .sin_family = AF_INET }, to = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	inet_pton(AF_INET, src, &from.sin_addr);
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	to.sin_port = htons((uint16_t)port);
	assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof(from)), 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	if (send_first)
		assert_true(send(fd, send_first, strlen(send_first), 0) > 0);
	return fd;
}

/* Milliseconds until the server closes fd (EOF or reset), at most max_ms; -1 if still open then. */
static long closed_within(int fd, long max_ms)
{
	struct timespec a, b;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char buf[256];

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &b);
		long el = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;

		if (el >= max_ms || poll(&pfd, 1, (int)(max_ms - el)) <= 0)
			return -1;
		if (recv(fd, buf, sizeof(buf), 0) <= 0) {
			clock_gettime(CLOCK_MONOTONIC, &b);
			return (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
		}
	}
}

static void test_one_address_holds_at_most_its_share(void **state)
{
	ftm_push_t *p = engine();
	int fds[FTM_PUSH_CONN_PER_IP], extra;
	char reply[1024];

	(void)state;
	/* each sends the start of a ClientHello, so the silent check leaves them open */
	for (int i = 0; i < FTM_PUSH_CONN_PER_IP; i++)
		fds[i] = connect_from("127.0.3.1", "\x16\x03\x01");
	extra = connect_from("127.0.3.1", "\x16\x03\x01");
	assert_in_range(closed_within(extra, 1000), 0, 1000);	/* one more from that address: closed at once */
	for (int i = 0; i < FTM_PUSH_CONN_PER_IP; i++)
		assert_int_equal(closed_within(fds[i], 0), -1);
	/* another address is served meanwhile */
	assert_int_equal(http("GET", "/ftm/v1/health", NULL, 0, reply), 200);
	close(extra);
	for (int i = 0; i < FTM_PUSH_CONN_PER_IP; i++)
		close(fds[i]);
	ftm_push_free(p);
}

static void test_a_connection_that_sends_nothing_is_closed_early(void **state)
{
	ftm_push_t *p = engine();
	int silent = connect_from("127.0.3.2", NULL), talking = connect_from("127.0.3.3", "\x16\x03\x01");
	long ms = closed_within(silent, 4500);

	(void)state;
	/* after FTM_PUSH_CONN_SILENT (2 s), well before the idle timeout (5 s) */
	assert_in_range(ms, FTM_PUSH_CONN_SILENT * 1000 - 300, FTM_PUSH_CONN_TIMEOUT * 1000 - 500);
	assert_int_equal(closed_within(talking, 0), -1);	/* it sent a byte: still open */
	close(silent);
	close(talking);
	ftm_push_free(p);
}

/* At the total the oldest connection makes room: with an open-file limit of 200 the listener holds
 * 100 connections; a child process fills them (it owns the client ends, so neither side runs out of
 * descriptors), then a health request from another address is served and the child's first
 * connection is the one that was closed. */
static void test_a_full_listener_evicts_its_oldest_connection(void **state)
{
	struct rlimit old, low;
	ftm_push_t *p;
	int go[2], verdict[2];
	pid_t child;
	char reply[1024], first_closed = 0;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	low = old;
	low.rlim_cur = 200;
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	p = engine();					/* cap: 200 / 2 = 100 */
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
	assert_int_equal(pipe(go), 0);
	assert_int_equal(pipe(verdict), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int fds[100];
		char ip[32], c;

		for (int i = 0; i < 100; i++) {
			snprintf(ip, sizeof(ip), "127.0.4.%d", 1 + i / 10);
			fds[i] = connect_from(ip, "\x16\x03\x01");
			if (i == 0)
				usleep(50000);	/* the first is clearly the oldest */
		}
		usleep(300000);			/* the listener has accepted them all */
		c = 1;
		(void)!write(go[1], &c, 1);
		c = closed_within(fds[0], 3000) >= 0 ? 'y' : 'n';
		(void)!write(verdict[1], &c, 1);
		_exit(0);
	}
	assert_int_equal(read(go[0], &first_closed, 1), 1);
	assert_int_equal(http("GET", "/ftm/v1/health", NULL, 0, reply), 200);
	assert_int_equal(read(verdict[0], &first_closed, 1), 1);
	assert_int_equal(first_closed, 'y');
	waitpid(child, NULL, 0);
	close(go[0]);
	close(go[1]);
	close(verdict[0]);
	close(verdict[1]);
	ftm_push_free(p);
}

static void test_listener_refuses_a_missing_key(void **state)
{
	char err[256] = "";
	ftm_push_t *p;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.push.status = true;
	snprintf(cfg.push.server, sizeof(cfg.push.server), "127.0.0.1");
	cfg.push.server_port = port;
	snprintf(cfg.push.server_cert, sizeof(cfg.push.server_cert), "%s", cert_path);
	snprintf(cfg.push.server_key, sizeof(cfg.push.server_key), "%s/missing.key", dir);
	p = ftm_push_new(&cfg, NULL, 0, err, sizeof(err));
	assert_null(p);
	assert_non_null(strstr(err, "missing.key"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_only_documented_paths_and_methods),
		cmocka_unit_test(test_callbacks_over_https_decide_once),
		cmocka_unit_test(test_channel_failures_are_verdicts),
		cmocka_unit_test(test_one_address_holds_at_most_its_share),
		cmocka_unit_test(test_a_connection_that_sends_nothing_is_closed_early),
		cmocka_unit_test(test_a_full_listener_evicts_its_oldest_connection),
		cmocka_unit_test(test_listener_refuses_a_missing_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

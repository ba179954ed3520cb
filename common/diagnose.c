/* diagnose: the troubleshooting checklist (config, store, callback listener and its certificate, push
 * servers, clock, a user's tokens): OpenSSL for the certificate, libcurl for reachability. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/un.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ftm_auth.h"
#include "ftm_diagnose.h"
#include "ftm_push.h"
#include "ftm_rendezvous.h"
#include "ftm_store.h"
#include "ftm_util.h"

#define DIAG_CONNECT_S	5	/* seconds to connect to the listener or a push server */
#define DIAG_TOTAL_S	10	/* seconds for one whole request */
#define DIAG_SERVERS_MAX 8	/* distinct ntfy servers checked */
#define DIAG_TEXT	600

typedef struct diag {
	ftm_diag_report_fn	report;
	void			*ctx;
	unsigned		failures;
} diag_t;

__attribute__((format(printf, 5, 6)))
static void mark(diag_t *d, ftm_diag_mark_t m, const char *check, const char *fix, const char *fmt, ...)
{
	char detail[DIAG_TEXT];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (m == FTM_DIAG_FAIL)
		d->failures++;
	d->report(d->ctx, m, check, detail, m == FTM_DIAG_OK ? NULL : fix);
}

/* ---- certificate ---- */

static bool cert_names(X509 *cert, const char *server)
{
	return X509_check_ip_asc(cert, server, 0) == 1 || X509_check_host(cert, server, 0, 0, NULL) == 1;
}

static void fmt_asn1_time(const ASN1_TIME *t, char *out, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int n = 0;

	snprintf(out, len, "?");
	if (b == NULL)
		return;
	if (ASN1_TIME_print(b, t) == 1)
		n = BIO_read(b, out, (int)len - 1);
	if (n > 0)
		out[n] = '\0';
	BIO_free(b);
}

/* Days from now to the certificate's notAfter (negative: expired); false when it cannot be told. */
static bool days_left(X509 *cert, time_t now, int *days)
{
	ASN1_TIME *t_now = ASN1_TIME_set(NULL, now);
	int d = 0, s = 0;
	bool ok = t_now != NULL && ASN1_TIME_diff(&d, &s, t_now, X509_get0_notAfter(cert)) == 1;

	ASN1_TIME_free(t_now);
	(void)s;
	if (ok)
		*days = d;
	return ok;
}

/* The expiry problem of cert, or false when it is valid for more than FTM_DIAG_CERT_DAYS. */
static bool expiry_problem(X509 *cert, time_t now, char *out, size_t len)
{
	char when[64];
	int days;

	fmt_asn1_time(X509_get0_notAfter(cert), when, sizeof(when));
	if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
		snprintf(out, len, "expired on %s", when);
		return true;
	}
	if (days_left(cert, now, &days) && days < FTM_DIAG_CERT_DAYS) {
		snprintf(out, len, "expires in %d day%s (%s)", days, days == 1 ? "" : "s", when);
		return true;
	}
	if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
		fmt_asn1_time(X509_get0_notBefore(cert), when, sizeof(when));
		snprintf(out, len, "not valid before %s", when);
		return true;
	}
	return false;
}

int ftm_diag_cert_problem(const char *pem, const char *server, time_t now, char *problem, size_t problem_len)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char exp[200];
	int rc = 0;

	BIO_free(b);
	if (cert == NULL) {
		snprintf(problem, problem_len, "the certificate does not parse as PEM");
		ERR_clear_error();
		return -1;
	}
	problem[0] = '\0';
	if (server && server[0] && !cert_names(cert, server)) {
		snprintf(problem, problem_len, "the certificate does not name push.server %s: phones will refuse the "
			 "callback", server);
		rc = 1;
	} else if (expiry_problem(cert, now, exp, sizeof(exp))) {
		snprintf(problem, problem_len, "the certificate %s: phones will refuse the callback once it expires",
			 exp);
		rc = 1;
	}
	X509_free(cert);
	return rc;
}

/* Connect to host:port (TCP), with send/receive deadlines; -1 with err. */
static int tcp_connect(const char *host, unsigned port, char *err, size_t err_len)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv = { DIAG_CONNECT_S, 0 };
	char port_s[8];
	int fd = -1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port_s, sizeof(port_s), "%u", port);
	rc = getaddrinfo(host, port_s, &hints, &res);
	if (rc != 0) {
		snprintf(err, err_len, "cannot resolve %s: %s", host, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, err_len, "%s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static bool is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Does the peer's chain lead to the system trust store (time not checked: expiry is its own check)? */
static bool chains_to_system(SSL *ssl, X509 *cert, char *why, size_t why_len)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *xc = X509_STORE_CTX_new();
	bool ok = false;

	snprintf(why, why_len, "out of memory");
	if (store && xc && X509_STORE_set_default_paths(store) == 1 &&
	    X509_STORE_CTX_init(xc, store, cert, SSL_get_peer_cert_chain(ssl)) == 1) {
		X509_STORE_CTX_set_flags(xc, X509_V_FLAG_NO_CHECK_TIME);
		X509_STORE_CTX_set_purpose(xc, X509_PURPOSE_SSL_SERVER);
		ok = X509_verify_cert(xc) == 1;
		if (!ok)
			snprintf(why, why_len, "%s", X509_verify_cert_error_string(X509_STORE_CTX_get_error(xc)));
	}
	X509_STORE_CTX_free(xc);
	X509_STORE_free(store);
	ERR_clear_error();
	return ok;
}

/* The certificate the listener presents, judged as a phone would judge it. */
static void check_listener_cert(diag_t *d, const char *host, const char *name, unsigned port, time_t now)
{
	const char *check = "callback certificate";
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = NULL;
	X509 *cert = NULL;
	char err[FTM_ERR_MAX] = "", why[200], exp[200];
	int fd = -1;

	if (ctx == NULL) {
		mark(d, FTM_DIAG_FAIL, check, "check the OpenSSL installation", "cannot create a TLS context");
		return;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);	/* judged below, one property at a time */
	fd = tcp_connect(host, port, err, sizeof(err));
	if (fd < 0) {
		mark(d, FTM_DIAG_FAIL, check, "start the server that owns the listener", "cannot connect to %s:%u: %s",
		     host, port, err);
		goto out;
	}
	ssl = SSL_new(ctx);
	if (ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    (name[0] && !is_ip(name) && SSL_set_tlsext_host_name(ssl, name) != 1) ||
	    SSL_connect(ssl) != 1 || (cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		unsigned long e = ERR_get_error();

		mark(d, FTM_DIAG_FAIL, check, "check push.server_cert and push.server_key (PEM, matching pair)",
		     "no TLS handshake with %s:%u: %s", host, port, e ? ERR_reason_error_string(e) : "no certificate");
		goto out;
	}
	if (name[0] == '\0')
		mark(d, FTM_DIAG_WARN, check, "set push.server to the name or address phones reach",
		     "push.server is not set: the name in the certificate is not checked");
	else if (!cert_names(cert, name))
		mark(d, FTM_DIAG_FAIL, check, "issue push.server_cert for push.server (subjectAltName), or set "
		     "push.server to a name the certificate holds",
		     "does not name push.server %s: phones will refuse the callback", name);
	else
		mark(d, FTM_DIAG_OK, check, NULL, "names %s", name);
	if (chains_to_system(ssl, cert, why, sizeof(why)))
		mark(d, FTM_DIAG_OK, check, NULL, "chains to the system trust store");
	else
		mark(d, FTM_DIAG_FAIL, check, "use a certificate from a public CA (ACME, e.g. certbot) with its chain "
		     "in push.server_cert",
		     "does not chain to the system trust store (%s): phones will refuse it", why);
	if (expiry_problem(cert, now, exp, sizeof(exp)))
		mark(d, FTM_DIAG_FAIL, check, "renew push.server_cert (phones refuse an expired certificate) and "
		     "restart the server that owns the listener", "%s", exp);
	else
		mark(d, FTM_DIAG_OK, check, NULL, "valid for more than %d days", FTM_DIAG_CERT_DAYS);
out:
	X509_free(cert);
	if (ssl) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	if (fd >= 0)
		close(fd);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

/* ---- reachability (libcurl) ---- */

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	(void)ptr;
	(void)ctx;
	return size * nmemb;
}

/* GET url; returns the HTTP status (> 0) or 0 with the reason. verify: check the peer's certificate
 * (push servers); proxy: go through push.proxy as the push channels do. */
static long http_get(const ftm_config_t *cfg, const char *url, bool verify, bool proxy, char *why, size_t why_len)
{
	CURL *c = curl_easy_init();
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode rc;

	if (c == NULL) {
		snprintf(why, why_len, "curl_easy_init failed");
		return 0;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)DIAG_CONNECT_S);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)DIAG_TOTAL_S);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ftmpush-diagnose/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	if (verify && cfg->push.ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->push.ca_file);
	curl_easy_setopt(c, CURLOPT_PROXY, proxy && cfg->push.proxy[0] ? cfg->push.proxy : "");
	rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	else
		snprintf(why, why_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	curl_easy_cleanup(c);
	return status;
}

static void check_listener(diag_t *d, const ftm_config_t *cfg, time_t now)
{
	const char *check = "callback listener";
	const char *host = cfg->push.server[0] ? cfg->push.server : "127.0.0.1";
	char url[400], why[CURL_ERROR_SIZE + 64] = "";
	long status;

	snprintf(url, sizeof(url), strchr(host, ':') ? "https://[%s]:%u/ftm/v1/health" : "https://%s:%u/ftm/v1/health",
		 host, cfg->push.server_port);
	status = http_get(cfg, url, false, false, why, sizeof(why));
	if (status != 200) {
		if (status > 0)
			snprintf(why, sizeof(why), "HTTP status %ld", status);
		mark(d, FTM_DIAG_FAIL, check, "start freeradius (rlm_ftmpush with push.status enable) or ftmpushd, and "
		     "check push.server_port, the firewall and the port forward to this host",
		     "does not answer on %s:%u from this host: %s", host, cfg->push.server_port, why);
		return;
	}
	mark(d, FTM_DIAG_OK, check, NULL, "answers on %s:%u", host, cfg->push.server_port);
	check_listener_cert(d, host, cfg->push.server, cfg->push.server_port, now);
}

typedef struct user_ctx {
	diag_t			*d;
	const ftm_config_t	*cfg;
	ftm_policy_t		policy;		/* the store's */
	time_t			now;
	bool			report;		/* report each token (the USER part) */
	unsigned		n, with_push;
	bool			gateway;
	char			servers[DIAG_SERVERS_MAX][FTM_PUSH_MAX];
	unsigned		nservers;
} user_ctx_t;

/* "https://HOST[:PORT]/" of an ntfy target, or false. */
static bool ntfy_server(const char *push, char *out, size_t len)
{
	const char *t = push + 5, *slash;

	if (strncmp(push, "ntfy:https://", 13) != 0)
		return false;
	slash = strrchr(t, '/');
	if (slash == NULL || slash < t + 8)
		return false;
	snprintf(out, len, "%.*s", (int)(slash - t + 1), t);
	return true;
}

static int token_seen(void *c, const ftm_token_t *t)
{
	user_ctx_t *u = c;
	char server[FTM_PUSH_MAX], last[64];
	ftm_token_state_t state = ftm_token_state(t, u->now, &u->policy);
	const char *state_name = ftm_token_state_name(t, u->now, &u->policy);
	char check[FTM_SERIAL_MAX + 16], fix[200];

	if (ntfy_server(t->push, server, sizeof(server))) {
		unsigned i;

		for (i = 0; i < u->nservers && strcmp(u->servers[i], server) != 0; i++)
			;
		if (i == u->nservers && u->nservers < DIAG_SERVERS_MAX)
			snprintf(u->servers[u->nservers++], FTM_PUSH_MAX, "%s", server);
	} else if (strncmp(t->push, "gateway:", 8) == 0) {
		u->gateway = true;
	}
	if (!u->report)
		return 0;
	u->n++;
	if (t->push[0])
		u->with_push++;
	if (t->last_step >= 0) {
		time_t used = (time_t)(t->last_step * (int64_t)t->period);
		struct tm tm;

		if (gmtime_r(&used, &tm) == NULL || strftime(last, sizeof(last), "%Y-%m-%d %H:%M UTC", &tm) == 0)
			snprintf(last, sizeof(last), "step %" PRId64, t->last_step);
	} else {
		snprintf(last, sizeof(last), "never");
	}
	snprintf(check, sizeof(check), "token %s", t->serial);
	switch (state) {
	case FTM_TOKEN_STATE_LOCKED:
		snprintf(fix, sizeof(fix), "ftmpushctl token unlock %s", t->serial);
		break;
	case FTM_TOKEN_STATE_EXPIRED:
		snprintf(fix, sizeof(fix), "ftmpushctl token reissue %s (the user enrols again)", t->serial);
		break;
	default:
		fix[0] = '\0';
	}
	mark(u->d, fix[0] ? FTM_DIAG_FAIL : FTM_DIAG_OK, check, fix, "%s, %u failure%s, last use %s, push %s",
	     state_name, t->failures, t->failures == 1 ? "" : "s", last, t->push[0] ? t->push : "none");
	return 0;
}

static void check_push_servers(diag_t *d, const ftm_config_t *cfg, const user_ctx_t *u)
{
	char why[CURL_ERROR_SIZE + 64], via[FTM_PATH_MAX + 16] = "";
	long status;

	if (cfg->push.proxy[0])
		snprintf(via, sizeof(via), " through %s", cfg->push.proxy);
	for (unsigned i = 0; i < u->nservers; i++) {
		why[0] = '\0';
		status = http_get(cfg, u->servers[i], true, true, why, sizeof(why));
		if (status > 0)
			mark(d, FTM_DIAG_OK, "ntfy server", NULL, "%s reachable%s (HTTP %ld)", u->servers[i], via, status);
		else
			mark(d, FTM_DIAG_FAIL, "ntfy server", "check the server, DNS, push.proxy and push.ca_file; "
			     "outbound HTTPS must be allowed", "%s unreachable%s: %s", u->servers[i], via, why);
	}
	if (cfg->push.gateway_url[0]) {
		why[0] = '\0';
		status = http_get(cfg, cfg->push.gateway_url, true, true, why, sizeof(why));
		if (status > 0)
			mark(d, FTM_DIAG_OK, "push gateway", NULL, "%s reachable%s (HTTP %ld)", cfg->push.gateway_url, via,
			     status);
		else
			mark(d, FTM_DIAG_FAIL, "push gateway", "check push.gateway_url, DNS, push.proxy and push.ca_file",
			     "%s unreachable%s: %s", cfg->push.gateway_url, via, why);
	} else if (u->gateway) {
		mark(d, FTM_DIAG_FAIL, "push gateway", "set push.gateway_url",
		     "tokens push through gateway: but push.gateway_url is not set");
	}
	if (u->nservers == 0 && !u->gateway && !cfg->push.gateway_url[0])
		mark(d, FTM_DIAG_WARN, "push servers", "ftmpushctl token push SERIAL ntfy:https://SERVER/TOPIC",
		     "no token has a push target: nothing to check");
}

static void check_clock(diag_t *d, unsigned window)
{
	struct timex tx;
	int state;

	memset(&tx, 0, sizeof(tx));
	state = ntp_adjtime(&tx);
	/* What timedatectl's "System clock synchronized" reads too: the kernel's NTP status. */
	if (state == -1)
		mark(d, FTM_DIAG_WARN, "clock", "run timedatectl, or check the NTP client", "cannot read the NTP status: %s",
		     strerror(errno));
	else if (state == TIME_ERROR || (tx.status & STA_UNSYNC))
		mark(d, FTM_DIAG_WARN, "clock", "run an NTP client (systemd-timesyncd, chrony); a clock more than "
		     "window x period off refuses every code",
		     "the kernel reports the clock is not synchronised (drift window %u step%s)", window,
		     window == 1 ? "" : "s");
	else
		mark(d, FTM_DIAG_OK, "clock", NULL, "synchronised (estimated error %ld us)", (long)tx.esterror);
}

static void policy_problem(void *c, bool error, const char *message)
{
	mark(c, error ? FTM_DIAG_FAIL : FTM_DIAG_WARN, "policy", error ? "set it in the store, not in the configuration"
	     : "remove the line from the configuration", "%s", message);
}

/* The verdict policy is the store's: it reads, and no configuration sets it otherwise. */
static void check_policy(diag_t *d, const ftm_config_t *cfg, ftm_store_t *st, ftm_policy_t *pol)
{
	char err[FTM_ERR_MAX] = "";

	if (ftm_store_policy(st, pol, err, sizeof(err)) != 0) {
		mark(d, FTM_DIAG_FAIL, "policy", "ftmpushctl policy show; ftmpushctl policy set NAME VALUE", "%s", err);
		ftm_policy_defaults(pol);
		return;
	}
	if (ftm_policy_check_config(cfg, pol, policy_problem, d, err, sizeof(err)) == 0)
		mark(d, FTM_DIAG_OK, "policy", NULL, "window %u, lockout_threshold %u, lockout_duration %u min, "
		     "activation_expire %u min, challenge_timeout %u s (the store's, for every node)", pol->window,
		     pol->lockout_threshold, pol->lockout_duration, pol->activation_expire, pol->challenge_timeout);
}

struct config_report_ctx {
	diag_t		*d;
	unsigned	n;
};

static void config_problem(void *c, unsigned line, const char *message)
{
	struct config_report_ctx *rc = c;

	(void)line;
	rc->n++;
	mark(rc->d, FTM_DIAG_FAIL, "config", "edit the configuration (ftmpushctl config check lists every problem)",
	     "%s", message);
}

unsigned ftm_diagnose(const ftm_config_t *cfg, const char *user, time_t now, ftm_diag_report_fn report,
		      void *ctx)
{
	diag_t d = { report, ctx, 0 };
	struct config_report_ctx crc = { &d, 0 };
	user_ctx_t *u = calloc(1, sizeof(*u));
	ftm_store_t *st = NULL;
	char err[FTM_ERR_MAX] = "";
	struct stat sb;

	if (u == NULL) {
		mark(&d, FTM_DIAG_FAIL, "diagnose", "free some memory", "out of memory");
		return d.failures;
	}
	ftm_config_validate(cfg, config_problem, &crc, err, sizeof(err));
	if (crc.n == 0)
		mark(&d, FTM_DIAG_OK, "config", NULL, "valid (push %s)", cfg->push.status ? "enabled" : "disabled");

	/* The store must exist: opening a missing one would create it (and a key) behind the admin's back. */
	if (stat(cfg->token_db, &sb) != 0)
		mark(&d, FTM_DIAG_FAIL, "token store", "set token_db, or create it with ftmpushctl token add USER",
		     "%s: %s", cfg->token_db, strerror(errno));
	else if ((st = ftm_store_open(cfg->token_db, cfg->key_file[0] ? cfg->key_file : NULL, NULL, err,
				      sizeof(err))) == NULL)
		mark(&d, FTM_DIAG_FAIL, "token store", "check token_db, key_file and their owner and mode", "%s", err);
	else
		mark(&d, FTM_DIAG_OK, "token store", NULL, "%s opens and its key matches", cfg->token_db);
	ftm_policy_defaults(&u->policy);
	if (st != NULL)
		check_policy(&d, cfg, st, &u->policy);

	if (cfg->push.status)
		check_listener(&d, cfg, now);
	u->d = &d;
	u->cfg = cfg;
	u->now = now;
	if (st && cfg->push.status) {
		if (ftm_store_token_list(st, NULL, token_seen, u, err, sizeof(err)) != 0)
			mark(&d, FTM_DIAG_FAIL, "token store", "check the store", "cannot list tokens: %s", err);
		check_push_servers(&d, cfg, u);
	}
	check_clock(&d, u->policy.window);

	if (user && st) {
		u->report = true;
		if (ftm_store_token_list(st, user, token_seen, u, err, sizeof(err)) != 0)
			mark(&d, FTM_DIAG_FAIL, "user", "check the store", "cannot list the tokens of %s: %s", user, err);
		else if (u->n == 0)
			mark(&d, FTM_DIAG_FAIL, "user", "ftmpushctl token add USER (or token assign SERIAL USER)",
			     "%s holds no token", user);
		else if (cfg->push.status && u->with_push == 0)
			mark(&d, FTM_DIAG_WARN, "user", "ftmpushctl token push SERIAL ntfy:https://SERVER/TOPIC",
			     "no token of %s has a push target: logins need the code", user);
	}
	ftm_store_close(st);
	free(u);
	return d.failures;
}

/* ---- the test push (diagnose --push) ---- */

/* What the test push's own listener logged that the report should name (it runs in other threads). */
typedef struct push_probe {
	pthread_mutex_t	mu;
	bool		tls_refused;
	char		tls_line[300];
	bool		sent;
	double		sent_at;
	char		number[FTM_RDV_NUMBER_MAX];
} push_probe_t;

static double mono_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void probe_sink(void *c, ftm_log_level_t level, const char *line)
{
	push_probe_t *pp = c;

	(void)level;
	if (strstr(line, "could not verify or complete TLS") == NULL)
		return;
	pthread_mutex_lock(&pp->mu);
	if (!pp->tls_refused)
		snprintf(pp->tls_line, sizeof(pp->tls_line), "%s", line);
	pp->tls_refused = true;
	pthread_mutex_unlock(&pp->mu);
}

static void probe_sent(void *c, const char *serial, const char *number)
{
	push_probe_t *pp = c;

	(void)serial;
	pp->sent = true;
	pp->sent_at = mono_seconds();
	snprintf(pp->number, sizeof(pp->number), "%s", number != NULL ? number : "");
}

/* Does ftmpushd listen on its socket? A connect only: it closes a connection that sends nothing. */
static bool pushd_answers(const char *path)
{
	struct sockaddr_un sa;
	int fd;
	bool ok;

	if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sa.sun_path))
		return false;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Where the phone calls back: https://HOST:PORT (the listener's own base URL when this process runs it). */
static void callback_url(const ftm_config_t *cfg, char *out, size_t len)
{
	const char *host = cfg->push.server[0] ? cfg->push.server : cfg->push.interface[0] ? cfg->push.interface
											 : "127.0.0.1";

	snprintf(out, len, strchr(host, ':') ? "https://[%s]:%u" : "https://%s:%u", host, cfg->push.server_port);
}

/* The push target as the report names it: the channel and the ntfy server, never the topic (a secret
 * of the user's). */
static void target_name(const char *push, char *out, size_t len)
{
	char server[FTM_PUSH_MAX];

	if (ntfy_server(push, server, sizeof(server)))
		snprintf(out, len, "ntfy server %s", server);
	else
		snprintf(out, len, "%.*s channel", (int)strcspn(push, ":"), push);
}

/* The steps after the push left: the callback, the answer and the total, one verdict for both paths. */
static void report_answer(diag_t *d, const ftm_config_t *cfg, push_probe_t *pp, ftm_push_verdict_t v,
			  const char *reason, double t0, double published, const char *url, bool own_listener)
{
	double now = mono_seconds();
	char tls[sizeof(pp->tls_line) + 8] = "";

	pthread_mutex_lock(&pp->mu);
	if (pp->tls_refused)
		snprintf(tls, sizeof(tls), "; %s", pp->tls_line);
	pthread_mutex_unlock(&pp->mu);
	switch (v) {
	case FTM_PUSH_APPROVED:
	case FTM_PUSH_DENIED:
		mark(d, FTM_DIAG_OK, "callback", NULL, "the phone's answer reached the listener (%s) %.2f s after "
		     "the publish was accepted", url, now - published);
		/* the engine's reason already says it ("approved on the phone", "a wrong number tapped") */
		if (v == FTM_PUSH_APPROVED)
			mark(d, FTM_DIAG_OK, "answer", NULL, "%s%s", strstr(reason, "approved") ? "" : "approved: ",
			     reason);
		else
			mark(d, FTM_DIAG_WARN, "answer", "approve the test push on the phone",
			     "%s%s: the path works, the phone said no", strstr(reason, "denied") ? "" : "denied: ", reason);
		mark(d, FTM_DIAG_OK, "total", NULL, "%.2f s from the request to the answer (push.timeout %u s)",
		     now - t0, cfg->push.timeout);
		return;
	case FTM_PUSH_TIMEOUT:
		mark(d, FTM_DIAG_FAIL, "callback", own_listener
		     ? "forward push.server_port to this host and use a certificate phones trust for push.server "
		       "(a public CA, docs/users.md); check that the phone got the notification and was tapped"
		     : "forward push.server_port to this host and use a certificate phones trust for push.server "
		       "(a public CA, docs/users.md); ftmpushd's log says whether a client refused its certificate",
		     "no callback within %u s: the phone could not reach %s, or nobody answered it%s", cfg->push.timeout,
		     url, tls);
		break;
	default:
		mark(d, FTM_DIAG_FAIL, "answer", "see the log of the push path (freeradius -X, ftmpushd -f)",
		     "%s: %s", ftm_push_verdict_name(v), reason);
		break;
	}
	mark(d, FTM_DIAG_FAIL, "total", "see the steps above", "%.2f s, no answer", now - t0);
}

/* Through ftmpushd, as a PAM login's push goes. */
static void push_via_pushd(diag_t *d, const ftm_config_t *cfg, const ftm_login_t *login, const ftm_token_t *tok,
			   push_probe_t *pp, const char *url)
{
	ftm_rdv_request_t req = { .user = login->user, .serial = tok->serial, .client = login->client,
				  .nas = login->nas, .host = login->host, .timeout = cfg->push.timeout,
				  .store = cfg->token_db };
	ftm_rdv_reply_t reply;
	char target[FTM_PUSH_MAX + 32];
	double t0 = mono_seconds();

	target_name(tok->push, target, sizeof(target));
	ftm_rdv_push(cfg->push.socket, &req, probe_sent, pp, -1, NULL, &reply);
	if (!pp->sent) {
		mark(d, FTM_DIAG_FAIL, "published", reply.verdict == FTM_PUSH_FAILED
		     ? "check that the ntfy server or the gateway answers from the ftmpushd host (ftmpushctl diagnose "
		       "USER checks it), push.proxy and push.ca_file"
		     : "see ftmpushd's log (ftmpushd -f)",
		     "not published via %s after %.2f s: %s (%s)", target, mono_seconds() - t0,
		     ftm_push_verdict_name(reply.verdict), reply.reason[0] ? reply.reason : reply.message);
		return;
	}
	mark(d, FTM_DIAG_OK, "published", NULL, "by ftmpushd via %s to token %s, accepted after %.2f s", target,
	     tok->serial, pp->sent_at - t0);
	if (pp->number[0])
		mark(d, FTM_DIAG_WARN, "number matching", "tap that number on the phone",
		     "the phone shows numbers: %s is the right one", pp->number);
	report_answer(d, cfg, pp, reply.verdict, reply.reason[0] ? reply.reason : reply.message, t0, pp->sent_at, url,
		      false);
}

/* Through an engine of this process on the configured listener port. */
static void push_via_engine(diag_t *d, const ftm_config_t *cfg, const ftm_login_t *login, const ftm_token_t *tok,
			    push_probe_t *pp, const char *url)
{
	const ftm_log_t probe_log = { probe_sink, pp, FTM_LOG_WARN };
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX] = "", target[FTM_PUSH_MAX + 32];
	ftm_push_t *p;
	ftm_push_tx_t *tx;
	ftm_push_verdict_t v;
	bool joined = false;
	double t0 = mono_seconds(), published;

	p = ftm_push_new(cfg, &probe_log, 0, err, sizeof(err));
	if (p == NULL) {
		mark(d, FTM_DIAG_FAIL, "listener", "when a running freeradius holds the port, stop it for the test (or "
		     "log in with radtest); on a PAM host set push.socket and start ftmpushd: the test then goes "
		     "through it; run as root when push.server_key is not readable",
		     "cannot listen on %s for the test push: %s", url, err);
		return;
	}
	target_name(tok->push, target, sizeof(target));
	tx = ftm_push_start(p, login, tok, time(NULL), &joined, reason, sizeof(reason));
	published = mono_seconds();
	if (tx == NULL) {
		mark(d, FTM_DIAG_FAIL, "published", "see the reason", "not sent: %s", reason);
		ftm_push_free(p);
		return;
	}
	v = ftm_push_wait(p, tx, 1);
	if (v == FTM_PUSH_FAILED) {
		mark(d, FTM_DIAG_FAIL, "published", "check that the ntfy server or the gateway answers from this host "
		     "(ftmpushctl diagnose USER checks it), push.proxy and push.ca_file",
		     "not published via %s after %.2f s: %s", target, published - t0,
		     ftm_push_tx_reason(p, tx, reason, sizeof(reason)));
		ftm_push_release(p, tx);
		ftm_push_free(p);
		return;
	}
	mark(d, FTM_DIAG_OK, "published", NULL, "via %s to token %s, accepted after %.2f s (callbacks to %s)", target,
	     tok->serial, published - t0, ftm_push_base_url(p));
	if (ftm_push_tx_number(tx)[0])
		mark(d, FTM_DIAG_WARN, "number matching", "tap that number on the phone",
		     "the phone shows numbers: %s is the right one", ftm_push_tx_number(tx));
	v = ftm_push_wait(p, tx, 0);
	report_answer(d, cfg, pp, v, ftm_push_tx_reason(p, tx, reason, sizeof(reason)), t0, published, url, true);
	ftm_push_release(p, tx);
	ftm_push_free(p);
}

unsigned ftm_diagnose_push(const ftm_config_t *cfg, const char *user, ftm_diag_report_fn report, void *ctx)
{
	diag_t d = { report, ctx, 0 };
	char err[FTM_ERR_MAX] = "", url[300], host[256] = "";
	ftm_login_t login = { .user = user, .client = "ftmpushctl diagnose", .nas = "diagnose --push" };
	push_probe_t pp;
	ftm_auth_t *auth;
	ftm_token_t tok;
	int rc;

	if (!cfg->push.status) {
		mark(&d, FTM_DIAG_FAIL, "test push", "set push.status = enable", "push is disabled");
		return d.failures;
	}
	if (ftm_config_validate(cfg, NULL, NULL, err, sizeof(err)) > 0) {
		mark(&d, FTM_DIAG_FAIL, "config", "ftmpushctl config check lists every problem", "%s", err);
		return d.failures;
	}
	auth = ftm_auth_new(cfg, NULL, err, sizeof(err));
	if (auth == NULL) {
		mark(&d, FTM_DIAG_FAIL, "token store", "check token_db, key_file and their owner and mode", "%s", err);
		return d.failures;
	}
	rc = ftm_auth_push_token(auth, user, NULL, time(NULL), &tok, err, sizeof(err));
	ftm_auth_free(auth);
	if (rc != 1) {
		if (rc < 0)
			mark(&d, FTM_DIAG_FAIL, "token store", "check the store", "%s", err);
		else
			mark(&d, FTM_DIAG_FAIL, "test push", "ftmpushctl token push SERIAL ntfy:https://SERVER/TOPIC "
			     "(or unlock, or reissue an expired token)",
			     "%s holds no usable token with a push target", user);
		return d.failures;
	}
	gethostname(host, sizeof(host) - 1);
	login.host = host;
	memset(&pp, 0, sizeof(pp));
	pthread_mutex_init(&pp.mu, NULL);
	callback_url(cfg, url, sizeof(url));
	if (pushd_answers(cfg->push.socket)) {
		mark(&d, FTM_DIAG_OK, "path", NULL, "through ftmpushd (%s), waiting up to %u s for the phone",
		     cfg->push.socket, cfg->push.timeout);
		push_via_pushd(&d, cfg, &login, &tok, &pp, url);
	} else {
		mark(&d, FTM_DIAG_OK, "path", NULL, "a listener of this command on %s (no ftmpushd answers%s%s), "
		     "waiting up to %u s for the phone", url, cfg->push.socket[0] ? " on " : "",
		     cfg->push.socket, cfg->push.timeout);
		push_via_engine(&d, cfg, &login, &tok, &pp, url);
	}
	pthread_mutex_destroy(&pp.mu);
	ftm_memzero(&tok, sizeof(tok));
	return d.failures;
}

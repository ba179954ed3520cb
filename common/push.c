/* push: the engine: transactions, their rendezvous (mutex + condvar per transaction), the answers, and
 * the ftm_auth plug; it owns the listener (started here, handed the answers) and the interface lookup. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ftm_enrol.h"
#include "ftm_metrics.h"
#include "ftm_rendezvous.h"
#include "ftm_push.h"
#include "ftm_util.h"
#include "push_channel.h"
#include "push_listener.h"

#define TEXT_FIELD_MAX 64

struct ftm_push_tx {
	struct ftm_push_tx	*next;
	unsigned		refs;
	char			id[FTM_PUSH_ID_LEN + 1];
	char			caps[3][FTM_PUSH_CAP_LEN + 1];
	ftm_push_verdict_t	cap_verdict[3];
	unsigned		ncaps;
	char			number[3];
	char			numbers[3][3];
	char			state[FTM_PUSH_ID_LEN + 1];	/* number matching: the challenge State */
	bool			state_used;
	char			user[FTM_USER_MAX];
	char			client[128];	/* for the message and the logs (may be cut short) */
	uint8_t			client_hash[32];	/* SHA-256 of the whole client: joins compare this */
	char			nas[128];
	char			host[128];
	char			serial[FTM_SERIAL_MAX];
	bool			gateway;
	uint8_t			k_cb[32];
	time_t			created, expires;	/* wall clock, for the message */
	struct timespec		deadline;		/* monotonic */
	time_t			decided_mono;
	ftm_push_verdict_t	verdict;
	char			reason[FTM_MSG_MAX];
	pthread_cond_t		cond;
	/* with a store: the row is the verdict; a waiter re-reads it when poked (a NOTIFY) or due */
	bool			poked;
	struct timespec		next_read;	/* monotonic */
};

struct ftm_push {
	ftm_config_t		cfg;
	const ftm_log_t		*log;
	pthread_mutex_t		lock;
	struct ftm_push_tx	*txs;
	bool			stopping;
	char			host[300];		/* callback host, bracketed when IPv6 */
	char			base_url[400];
	char			cap_url_base[420];
	char			gw_callback[420];
	ftm_push_send_fn	send;
	void			*send_ctx;
	ftm_push_listener_t	*listener;
	struct ftm_enrol	*enrol;			/* the enrolment page its listener serves */
	pthread_mutex_t		stop_lock;		/* one shutdown at a time (the listener stop joins
							 * threads that take lock: never held with it) */
	ftm_store_t		*store;			/* pending pushes shared by every node (not owned) */
	bool			watching;		/* the store tells us of verdicts (LISTEN) */
};

#define STORE_READ_MS	1000	/* a waiter re-reads its row this often: a missed NOTIFY, or SQLite */
#define NUMBER_GRACE	FTM_RDV_GRACE	/* a number State outlives its push: a late answer hears "timeout" */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static time_t mono_now(struct timespec *ts)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	if (ts)
		*ts = t;
	return t.tv_sec;
}

static bool ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int random_hex(char *out, size_t nbytes)
{
	uint8_t buf[32];

	if (nbytes > sizeof(buf) || RAND_bytes(buf, (int)nbytes) != 1)
		return -1;
	for (size_t i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", buf[i]);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

/* 24 CSPRNG bytes as 32 base64url characters (no padding needed). */
static int random_cap(char out[FTM_PUSH_CAP_LEN + 1])
{
	uint8_t buf[24];
	char b64[40];

	if (RAND_bytes(buf, sizeof(buf)) != 1)
		return -1;
	EVP_EncodeBlock((unsigned char *)b64, buf, sizeof(buf));
	OPENSSL_cleanse(buf, sizeof(buf));
	for (int i = 0; i < FTM_PUSH_CAP_LEN; i++)
		out[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : b64[i];
	out[FTM_PUSH_CAP_LEN] = '\0';
	return 0;
}

static unsigned random_below(unsigned n)
{
	uint32_t r;

	if (RAND_bytes((uint8_t *)&r, sizeof(r)) != 1)
		return 0;
	return r % n;
}

/* Three distinct two-digit numbers in random order; the first drawn is the right one. */
static int pick_numbers(struct ftm_push_tx *tx)
{
	unsigned v[3], right;

	for (int i = 0; i < 3; i++) {
		bool dup;

		do {
			v[i] = 10 + random_below(90);
			dup = false;
			for (int j = 0; j < i; j++)
				dup |= v[j] == v[i];
		} while (dup);
	}
	snprintf(tx->number, sizeof(tx->number), "%02u", v[0]);
	right = random_below(3);
	/* put the right number at position `right` */
	{
		unsigned t = v[right];

		v[right] = v[0];
		v[0] = t;
	}
	for (int i = 0; i < 3; i++) {
		snprintf(tx->numbers[i], sizeof(tx->numbers[i]), "%02u", v[i]);
		tx->cap_verdict[i] = (unsigned)i == right ? FTM_PUSH_APPROVED : FTM_PUSH_DENIED;
	}
	return 0;
}

static void tx_free(struct ftm_push_tx *tx)
{
	OPENSSL_cleanse(tx->k_cb, sizeof(tx->k_cb));
	OPENSSL_cleanse(tx->caps, sizeof(tx->caps));
	pthread_cond_destroy(&tx->cond);
	free(tx);
}

/* Seconds since tx started (its monotonic deadline is the start plus push.timeout). */
static double tx_age(const ftm_push_t *p, const struct ftm_push_tx *tx)
{
	return ftm_metrics_now() - ((double)tx->deadline.tv_sec + (double)tx->deadline.tv_nsec / 1e9 -
				    (double)p->cfg.push.timeout);
}

static void decide(ftm_push_t *p, struct ftm_push_tx *tx, ftm_push_verdict_t v, const char *why)
{
	if (tx->verdict != FTM_PUSH_PENDING)
		return;
	tx->verdict = v;
	tx->decided_mono = mono_now(NULL);
	if (why)
		ftm_copy(tx->reason, sizeof(tx->reason), why);
	pthread_cond_broadcast(&tx->cond);
	/* an approval or a denial is the user's answer: its time since the start is the round trip. Only
	 * this node's own pushes count (one with capabilities); the node that sent one counts it. */
	if (tx->ncaps > 0)
		ftm_metrics_push_decided(tx->gateway ? FTM_METRICS_GATEWAY : FTM_METRICS_NTFY, v,
				 v == FTM_PUSH_APPROVED || v == FTM_PUSH_DENIED ? tx_age(p, tx) : -1);
	ftm_log(p->log, v == FTM_PUSH_APPROVED ? FTM_LOG_INFO : FTM_LOG_WARN,
		"push %.8s for '%s' from %s: %s (serial %s): %s", tx->id, tx->user, tx->client[0] ? tx->client : "-",
		ftm_push_verdict_name(v), tx->serial, why ? why : "-");
}

/* Under the lock: time out expired transactions, forget finished unreferenced ones after RETAIN. */
static void sweep(ftm_push_t *p)
{
	struct timespec now;
	struct ftm_push_tx **pp = &p->txs;

	mono_now(&now);
	while (*pp) {
		struct ftm_push_tx *tx = *pp;

		if (tx->verdict == FTM_PUSH_PENDING && !ts_before(&now, &tx->deadline) &&
		    (p->store == NULL || tx->refs == 0))
			decide(p, tx, FTM_PUSH_TIMEOUT, "no answer before the push timeout");
		if (tx->verdict != FTM_PUSH_PENDING && tx->refs == 0 &&
		    now.tv_sec - tx->decided_mono >= FTM_PUSH_RETAIN) {
			*pp = tx->next;
			tx_free(tx);
			continue;
		}
		pp = &tx->next;
	}
}

/* The address of interface ifname (IPv4 preferred), as text; 0 or -1 with err. The callback URLs and
 * the listener's bind address both come from it. */
int ftm_push_interface_address(const char *ifname, char *out, size_t out_len, char *err, size_t err_len)
{
	struct ifaddrs *ifa, *i;
	int found = -1;

	if (getifaddrs(&ifa) != 0) {
		snprintf(err, err_len, "getifaddrs: %s", strerror(errno));
		return -1;
	}
	for (int want = AF_INET; found != 0 && want != 0; want = want == AF_INET ? AF_INET6 : 0) {
		for (i = ifa; i; i = i->ifa_next) {
			if (i->ifa_addr == NULL || strcmp(i->ifa_name, ifname) != 0 || i->ifa_addr->sa_family != want)
				continue;
			if (want == AF_INET)
				inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr, out,
					  (socklen_t)out_len);
			else
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)i->ifa_addr)->sin6_addr, out,
					  (socklen_t)out_len);
			found = 0;
			break;
		}
	}
	freeifaddrs(ifa);
	if (found != 0)
		snprintf(err, err_len, "push.interface %s has no IPv4 or IPv6 address", ifname);
	return found;
}

static int listener_capability(void *ctx, const char *cap, time_t now, char *reply, size_t reply_len)
{
	return ftm_push_answer_capability(ctx, cap, now, reply, reply_len);
}

static int listener_gateway(void *ctx, const char *body, size_t body_len, time_t now, char *reply, size_t reply_len)
{
	return ftm_push_answer_gateway(ctx, body, body_len, now, reply, reply_len);
}

ftm_push_t *ftm_push_new(const ftm_config_t *cfg, const ftm_log_t *log, unsigned flags, char *err, size_t err_len)
{
	char if_addr[256] = "";
	ftm_push_t *p;
	char addr[256];

	pthread_once(&curl_once, curl_init_once);
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	p->cfg = *cfg;
	p->log = log;
	p->send = ftm_push_channel_send;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->stop_lock, NULL);
	if (cfg->push.server[0]) {
		ftm_copy(addr, sizeof(addr), cfg->push.server);
	} else if (cfg->push.interface[0]) {
		if (ftm_push_interface_address(cfg->push.interface, if_addr, sizeof(if_addr), err, err_len) != 0)
			goto fail;
		ftm_copy(addr, sizeof(addr), if_addr);
	} else {
		ftm_copy(addr, sizeof(addr), "localhost");
	}
	if (strchr(addr, ':'))
		snprintf(p->host, sizeof(p->host), "[%s]", addr);
	else
		ftm_copy(p->host, sizeof(p->host), addr);
	snprintf(p->base_url, sizeof(p->base_url), "https://%s:%u/ftm/v1/", p->host, p->cfg.push.server_port);
	snprintf(p->cap_url_base, sizeof(p->cap_url_base), "%scb/", p->base_url);
	snprintf(p->gw_callback, sizeof(p->gw_callback), "%sgw", p->base_url);
	if (!(flags & FTM_PUSH_NO_LISTENER)) {
		ftm_push_listener_answers_t answers = { listener_capability, listener_gateway, p };

		if (cfg->push.interface[0] && if_addr[0] == '\0' &&
		    ftm_push_interface_address(cfg->push.interface, if_addr, sizeof(if_addr), err, err_len) != 0)
			goto fail;
		p->listener = ftm_push_listener_start(&answers, &p->cfg, cfg->push.interface[0] ? if_addr : NULL, log,
						      err, err_len);
		if (p->listener == NULL)
			goto fail;
	}
	ftm_log(log, FTM_LOG_INFO, "push engine ready: callbacks at %s, timeout %us%s", p->base_url,
		p->cfg.push.timeout, p->cfg.push.number_matching ? ", number matching" : "");
	return p;
fail:
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->stop_lock);
	OPENSSL_cleanse(&p->cfg, sizeof(p->cfg));
	free(p);
	return NULL;
}

void ftm_push_set_enrol(ftm_push_t *p, struct ftm_enrol *e)
{
	if (p == NULL) {
		ftm_enrol_free(e);
		return;
	}
	p->enrol = e;
	ftm_push_listener_set_enrol(p->listener, e);
}

static void store_fail_sent(ftm_push_t *p, const char *why);

/* The listener goes first: from here on a callback finds no socket (connection refused) rather than an
 * HTTP 200 for a verdict no login would deliver. Then every pending push fails at once, so each waiting
 * login gets its failure reply (or the code challenge fallback) while its front end can still send it. */
void ftm_push_shutdown(ftm_push_t *p)
{
	struct ftm_push_tx *tx;
	unsigned failed = 0;
	bool first;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->stop_lock);
	pthread_mutex_lock(&p->lock);
	first = !p->stopping;
	p->stopping = true;	/* new pushes are refused, answers still in flight get 503 */
	pthread_mutex_unlock(&p->lock);
	if (p->listener)
		ftm_push_listener_stop(p->listener);
	p->listener = NULL;
	pthread_mutex_lock(&p->lock);
	for (tx = p->txs; tx; tx = tx->next) {
		failed += tx->verdict == FTM_PUSH_PENDING;
		decide(p, tx, FTM_PUSH_FAILED, "push engine stopped (shutdown)");
		pthread_cond_broadcast(&tx->cond);
	}
	pthread_mutex_unlock(&p->lock);
	if (first && p->store != NULL)
		store_fail_sent(p, "push engine stopped (shutdown)");
	pthread_mutex_unlock(&p->stop_lock);
	if (first)
		ftm_log(p->log, FTM_LOG_INFO, "push engine: stopping: callback listener closed, %u pending push%s "
			"failed", failed, failed == 1 ? "" : "es");
}

bool ftm_push_drain(ftm_push_t *p, unsigned max_ms)
{
	struct timespec now, end;

	mono_now(&end);
	end.tv_sec += max_ms / 1000;
	end.tv_nsec += (long)(max_ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	for (;;) {
		bool busy = false;

		pthread_mutex_lock(&p->lock);
		for (struct ftm_push_tx *tx = p->txs; tx; tx = tx->next)
			busy |= tx->refs > 0;
		pthread_mutex_unlock(&p->lock);
		if (!busy)
			return true;
		mono_now(&now);
		if (!ts_before(&now, &end))
			return false;
		struct timespec d = { 0, 10 * 1000 * 1000 };
		nanosleep(&d, NULL);
	}
}

void ftm_push_free(ftm_push_t *p)
{
	struct ftm_push_tx *tx;

	if (p == NULL)
		return;
	ftm_push_shutdown(p);
	if (p->watching)
		ftm_store_push_unwatch(p->store);
	p->watching = false;
	ftm_enrol_free(p->enrol);
	p->enrol = NULL;
	/* Waiters hold references; they return FAILED at once. Wait for them to let go. */
	while (!ftm_push_drain(p, 1000))
		;
	pthread_mutex_lock(&p->lock);
	while ((tx = p->txs)) {
		p->txs = tx->next;
		tx_free(tx);
	}
	pthread_mutex_unlock(&p->lock);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->stop_lock);
	OPENSSL_cleanse(&p->cfg, sizeof(p->cfg));
	free(p);
}

void ftm_push_set_sender(ftm_push_t *p, ftm_push_send_fn fn, void *ctx)
{
	p->send = fn ? fn : ftm_push_channel_send;
	p->send_ctx = ctx;
}

const char *ftm_push_base_url(const ftm_push_t *p)
{
	return p->base_url;
}

const char *ftm_push_tx_number(const ftm_push_tx_t *tx)
{
	return tx->number;
}

/* Number matching: the challenge State of tx ("" without), for ftm_push_challenge_answer (push_daemon.c). */
const char *ftm_push_tx_state(const ftm_push_tx_t *tx)
{
	return tx->state;
}

const char *ftm_push_tx_reason(ftm_push_t *p, ftm_push_tx_t *tx, char *buf, size_t len)
{
	pthread_mutex_lock(&p->lock);
	ftm_copy(buf, len, tx->reason);
	pthread_mutex_unlock(&p->lock);
	return buf;
}

static void build_text(const struct ftm_push_tx *tx, unsigned timeout, char *out, size_t len)
{
	char from[100] = "", to[100] = "", host[100] = "";

	if (tx->client[0])
		snprintf(from, sizeof(from), " from %.*s", TEXT_FIELD_MAX, tx->client);
	if (tx->nas[0])
		snprintf(to, sizeof(to), " to %.*s", TEXT_FIELD_MAX, tx->nas);
	if (tx->host[0])
		snprintf(host, sizeof(host), " (%.*s)", TEXT_FIELD_MAX, tx->host);
	if (tx->number[0])
		snprintf(out, len, "Login request for user %.*s%s%s%s: number %s. Tap %s, or type it at the "
			 "login prompt. Expires in %u seconds.", TEXT_FIELD_MAX, tx->user, from, to, host,
			 tx->number, tx->number, timeout);
	else
		snprintf(out, len, "Approve login for user %.*s%s%s%s? Expires in %u seconds.", TEXT_FIELD_MAX,
			 tx->user, from, to, host, timeout);
}

/* The whole client identity, hashed: a long Calling-Station-Id never joins (or answers for) the push
 * of another that only shares its first bytes. 0, or -1 without a digest. */
static int client_digest(const char *client, uint8_t out[32])
{
	unsigned int len = 0;

	return EVP_Digest(client, strlen(client), out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

/* A new transaction starts pending until `expires` (wall clock), with its monotonic deadline, its first
 * re-read of the row and its condition variable; its creator holds the one reference. */
static void tx_arm(struct ftm_push_tx *tx, time_t now, time_t expires)
{
	pthread_condattr_t ca;

	tx->created = now;
	tx->expires = expires;
	mono_now(&tx->deadline);
	tx->next_read = tx->deadline;
	tx->next_read.tv_sec += STORE_READ_MS / 1000;
	tx->deadline.tv_sec += expires > now ? expires - now : 0;
	tx->verdict = FTM_PUSH_PENDING;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tx->cond, &ca);
	pthread_condattr_destroy(&ca);
	tx->refs = 1;
}

static struct ftm_push_tx *tx_new(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok, time_t now)
{
	struct ftm_push_tx *tx = calloc(1, sizeof(*tx));

	if (tx == NULL)
		return NULL;
	if (random_hex(tx->id, FTM_PUSH_ID_LEN / 2) != 0)
		goto fail;
	ftm_copy(tx->user, sizeof(tx->user), login->user);
	ftm_copy(tx->client, sizeof(tx->client), login->client);
	if (client_digest(login->client ? login->client : "", tx->client_hash) != 0)
		goto fail;
	ftm_copy(tx->nas, sizeof(tx->nas), login->nas);
	ftm_copy(tx->host, sizeof(tx->host), login->host);
	ftm_copy(tx->serial, sizeof(tx->serial), tok->serial);
	tx->gateway = strncmp(tok->push, "gateway:", 8) == 0;
	if (tx->gateway && ftm_push_derive_keys(tok->seed, tok->seed_len, NULL, NULL, tx->k_cb) != 0)
		goto fail;
	if (p->cfg.push.number_matching) {
		pick_numbers(tx);
		tx->ncaps = 3;
		if (random_hex(tx->state, FTM_PUSH_ID_LEN / 2) != 0)
			goto fail;
	} else {
		tx->ncaps = 2;
		tx->cap_verdict[0] = FTM_PUSH_APPROVED;
		tx->cap_verdict[1] = FTM_PUSH_DENIED;
	}
	for (unsigned i = 0; i < tx->ncaps; i++)
		if (random_cap(tx->caps[i]) != 0)
			goto fail;
	tx_arm(tx, now, now + (time_t)p->cfg.push.timeout);
	return tx;
fail:
	OPENSSL_cleanse(tx, sizeof(*tx));
	free(tx);
	return NULL;
}

/* ---- pending pushes in the store: the row is the source of truth on every node ----
 * The node that sent a push keeps its capabilities (to send them) and its waiters; any node's listener
 * decides the row (the capability's hash, the envelope's id); the waiting node learns the verdict in
 * process (decided here), by a NOTIFY (PostgreSQL), or by re-reading the row each STORE_READ_MS and once
 * more at the deadline, which also records the timeout. */

static void cap_digest(const char *cap, char out[65])
{
	uint8_t h[32];
	unsigned int len = 0;

	out[0] = '\0';
	if (EVP_Digest(cap, strlen(cap), h, &len, EVP_sha256(), NULL) == 1 && len == 32)
		ftm_hex_encode(h, sizeof(h), out);
}

static void row_of_tx(const struct ftm_push_tx *tx, ftm_push_row_t *row)
{
	memset(row, 0, sizeof(*row));
	ftm_copy(row->id, sizeof(row->id), tx->id);
	ftm_copy(row->user, sizeof(row->user), tx->user);
	ftm_copy(row->serial, sizeof(row->serial), tx->serial);
	ftm_hex_encode(tx->client_hash, sizeof(tx->client_hash), row->client_hash);
	for (unsigned i = 0; i < tx->ncaps && i < FTM_PUSH_ROW_CAPS; i++) {
		cap_digest(tx->caps[i], row->caps[i]);
		if (tx->cap_verdict[i] == FTM_PUSH_APPROVED)
			row->approve_cap = i;
	}
	ftm_copy(row->number, sizeof(row->number), tx->number);
	row->gateway = tx->gateway;
	row->expires = tx->expires;
	row->verdict = FTM_PUSH_PENDING;
}

typedef enum { ROW_CAP, ROW_GATEWAY, ROW_NUMBER, ROW_TIMEOUT, ROW_FAIL } row_answer_kind_t;

/* What one answer does to a row, decided inside the row's transaction. */
struct row_answer {
	row_answer_kind_t	kind;
	const char		*cap_hash;	/* ROW_CAP */
	bool			approve;	/* ROW_GATEWAY: "approve" (else "deny") */
	const char		*number;	/* ROW_GATEWAY: the number chosen; ROW_NUMBER: the number typed */
	const char		*why;		/* ROW_FAIL */
	time_t			now;
	/* out */
	int			status;		/* the listener's HTTP status */
	bool			was_pending, matched;
	ftm_push_verdict_t	verdict;
	char			id[FTM_PUSH_ID_LEN + 1], user[FTM_USER_MAX], serial[FTM_SERIAL_MAX];
	char			reason[128];
};

static void row_set(ftm_push_row_t *row, ftm_push_verdict_t v, const char *why)
{
	row->verdict = v;
	ftm_copy(row->reason, sizeof(row->reason), why);
	row->dirty = true;
}

static int row_decide(void *ctx, ftm_push_row_t *row)
{
	struct row_answer *a = ctx;

	ftm_copy(a->id, sizeof(a->id), row->id);
	ftm_copy(a->user, sizeof(a->user), row->user);
	ftm_copy(a->serial, sizeof(a->serial), row->serial);
	/* a send that failed (it may have hung past the expiry) is a failure: the front end may fall back */
	if (a->kind == ROW_FAIL && row->verdict == FTM_PUSH_PENDING)
		row_set(row, FTM_PUSH_FAILED, a->why);
	if (row->verdict == FTM_PUSH_PENDING && (int64_t)a->now >= row->expires)
		row_set(row, FTM_PUSH_TIMEOUT, "no answer before the push timeout");
	a->was_pending = row->verdict == FTM_PUSH_PENDING;
	a->status = !a->was_pending ? (row->verdict == FTM_PUSH_TIMEOUT ? 410 : 409) : 200;
	switch (a->kind) {
	case ROW_CAP:
		if (a->was_pending) {
			bool approve = false, hit = false;

			/* every capability of the row compared in full: which one was used is the verdict */
			for (unsigned i = 0; i < FTM_PUSH_ROW_CAPS; i++) {
				bool eq = row->caps[i][0] != '\0' && CRYPTO_memcmp(row->caps[i], a->cap_hash, 64) == 0;

				hit |= eq;
				approve |= eq && i == row->approve_cap;
			}
			if (!hit) {
				a->status = 404;
				break;
			}
			row_set(row, approve ? FTM_PUSH_APPROVED : FTM_PUSH_DENIED,
				row->number[0] ? (approve ? "the right number tapped" : "a wrong number tapped")
					       : (approve ? "approved on the phone" : "denied on the phone"));
		}
		break;
	case ROW_GATEWAY:
		if (!a->was_pending)
			break;
		if (!a->approve)
			row_set(row, FTM_PUSH_DENIED, "denied on the phone");
		else if (row->number[0] && !ftm_number_matches(row->number, a->number))
			row_set(row, FTM_PUSH_DENIED, "a wrong number chosen on the phone");
		else
			row_set(row, FTM_PUSH_APPROVED, row->number[0] ? "the right number chosen on the phone"
								       : "approved on the phone");
		break;
	case ROW_NUMBER:
		a->matched = ftm_number_matches(row->number, a->number);
		if (a->was_pending)
			row_set(row, a->matched ? FTM_PUSH_APPROVED : FTM_PUSH_DENIED,
				a->matched ? "the right number typed at the login prompt"
					   : "a wrong number typed at the login prompt");
		break;
	case ROW_TIMEOUT:
		if (a->was_pending)
			row_set(row, FTM_PUSH_TIMEOUT, "no answer before the push timeout");
		break;
	case ROW_FAIL:
		break;
	}
	a->verdict = row->verdict;
	ftm_copy(a->reason, sizeof(a->reason), row->reason);
	return 0;
}

/* The verdict the store holds for id, given to this process's transaction of that id (if any). */
static void learn(ftm_push_t *p, const char *id, ftm_push_verdict_t v, const char *why)
{
	if (v == FTM_PUSH_PENDING)
		return;
	pthread_mutex_lock(&p->lock);
	for (struct ftm_push_tx *tx = p->txs; tx; tx = tx->next)
		if (strcmp(tx->id, id) == 0)
			decide(p, tx, v, why);
	pthread_mutex_unlock(&p->lock);
}

/* Record a final verdict of this node's own (a failed send, the deadline) in the row; the row's
 * verdict, which may be another node's that came first, is tx's. */
static void store_settle(ftm_push_t *p, struct ftm_push_tx *tx, row_answer_kind_t kind, const char *why)
{
	struct row_answer a = { .kind = kind, .why = why, .now = time(NULL) };
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX];
	int rc = ftm_store_push_decide(p->store, FTM_PUSH_BY_ID, tx->id, row_decide, &a, err, sizeof(err));

	if (rc == 0 && a.verdict != FTM_PUSH_PENDING) {
		learn(p, tx->id, a.verdict, a.reason);
		return;
	}
	snprintf(reason, sizeof(reason), "%s (token store: %.160s)", why, rc < 0 ? err : "the push row is gone");
	learn(p, tx->id, kind == ROW_TIMEOUT ? FTM_PUSH_TIMEOUT : FTM_PUSH_FAILED, reason);
}

/* The pushes this node sent fail in their rows too: nobody here delivers their verdict any more, and a
 * login after a restart must get a push of its own, not join one whose sender is gone. */
static void store_fail_sent(ftm_push_t *p, const char *why)
{
	char (*ids)[FTM_PUSH_ID_LEN + 1] = NULL, err[FTM_ERR_MAX];
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&p->lock);
	for (struct ftm_push_tx *tx = p->txs; tx; tx = tx->next)
		cap += tx->ncaps > 0;	/* sent from here (a joined push has no capabilities) */
	if (cap > 0 && (ids = calloc(cap, sizeof(*ids))) != NULL)
		for (struct ftm_push_tx *tx = p->txs; tx && n < cap; tx = tx->next)
			if (tx->ncaps > 0)
				ftm_copy(ids[n++], sizeof(ids[0]), tx->id);
	pthread_mutex_unlock(&p->lock);
	if (cap > 0 && ids == NULL)
		ftm_log(p->log, FTM_LOG_WARN, "push engine: out of memory: its pending pushes stay pending in the "
			"token store until they expire");
	for (size_t i = 0; i < n; i++) {
		struct row_answer a = { .kind = ROW_FAIL, .why = why, .now = time(NULL) };

		err[0] = '\0';
		if (ftm_store_push_decide(p->store, FTM_PUSH_BY_ID, ids[i], row_decide, &a, err, sizeof(err)) < 0)
			ftm_log(p->log, FTM_LOG_WARN, "push %.8s: its failure not recorded in the token store: %s",
				ids[i], err);
	}
	free(ids);
}

/* Re-read tx's row (no lock held). A store that cannot answer fails the push at once: no callback can
 * be recorded meanwhile, so it could only end as a timeout. */
static void store_refresh(ftm_push_t *p, struct ftm_push_tx *tx)
{
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX];
	ftm_push_row_t row;
	int rc = ftm_store_push_get(p->store, tx->id, &row, err, sizeof(err));

	if (rc == 0) {
		learn(p, tx->id, row.verdict, row.reason);
		return;
	}
	snprintf(reason, sizeof(reason), "token store unavailable while the push was pending: %.180s",
		 rc < 0 ? err : "the push row is gone");
	learn(p, tx->id, FTM_PUSH_FAILED, reason);
}

/* The store's watcher: a node decided push id (NULL: maybe missed some, look at every row). */
static void store_heard(void *ctx, const char *id)
{
	ftm_push_t *p = ctx;

	pthread_mutex_lock(&p->lock);
	for (struct ftm_push_tx *tx = p->txs; tx; tx = tx->next) {
		if (tx->verdict != FTM_PUSH_PENDING || (id != NULL && strcmp(tx->id, id) != 0))
			continue;
		tx->poked = true;
		pthread_cond_broadcast(&tx->cond);
	}
	pthread_mutex_unlock(&p->lock);
}

void ftm_push_set_store(ftm_push_t *p, ftm_store_t *st)
{
	char err[FTM_ERR_MAX] = "";
	int rc;

	if (p == NULL || st == NULL || p->store != NULL)
		return;
	p->store = st;
	rc = ftm_store_push_watch(st, store_heard, p, err, sizeof(err));
	p->watching = rc == 0;
	if (rc < 0)
		ftm_log(p->log, FTM_LOG_WARN, "pending pushes: no notifications (%s): verdicts from other nodes "
			"are read from the store every %d ms", err, STORE_READ_MS);
}

/* This node's transaction for a push another node of the store sent: no capabilities, the row's facts. */
static struct ftm_push_tx *tx_joined(ftm_push_t *p, const ftm_login_t *login, const ftm_push_row_t *row,
				     time_t now)
{
	struct ftm_push_tx *tx = calloc(1, sizeof(*tx));

	if (tx == NULL)
		return NULL;
	ftm_copy(tx->id, sizeof(tx->id), row->id);
	ftm_copy(tx->user, sizeof(tx->user), login->user);
	ftm_copy(tx->client, sizeof(tx->client), login->client);
	ftm_copy(tx->nas, sizeof(tx->nas), login->nas);
	ftm_copy(tx->host, sizeof(tx->host), login->host);
	ftm_copy(tx->serial, sizeof(tx->serial), row->serial);
	ftm_copy(tx->number, sizeof(tx->number), row->number);
	if (client_digest(login->client ? login->client : "", tx->client_hash) != 0) {
		free(tx);
		return NULL;
	}
	tx->gateway = row->gateway;
	tx_arm(tx, now, (time_t)row->expires);
	return tx;
}

/* A row still pending for a push this node already ended (it failed while the store was down, so its
 * failure could not be written): nobody waits on it any more, and a new login must not join it. Records
 * the failure now; true when it did, so the caller's push may take the row's place. */
static bool settle_stale(ftm_push_t *p, const ftm_push_row_t *pending, char *err, size_t err_len)
{
	char why[FTM_MSG_MAX] = "";
	bool stale = false;

	pthread_mutex_lock(&p->lock);
	for (struct ftm_push_tx *t = p->txs; t; t = t->next)
		if (strcmp(t->id, pending->id) == 0 && t->verdict != FTM_PUSH_PENDING) {
			stale = true;
			ftm_copy(why, sizeof(why), t->reason);
			break;
		}
	pthread_mutex_unlock(&p->lock);
	if (!stale)
		return false;
	struct row_answer a = { .kind = ROW_FAIL, .why = why, .now = time(NULL) };

	if (ftm_store_push_decide(p->store, FTM_PUSH_BY_ID, pending->id, row_decide, &a, err, err_len) < 0)
		return false;	/* the put's answer stands: the caller joins nothing new */
	ftm_log(p->log, FTM_LOG_INFO, "push %.8s: ended here while the token store was down; its failure is "
		"recorded now", pending->id);
	return true;
}

/* ftm_push_start with a store: the store says whether the user has a pending push (on any node). NULL
 * with reason: refused, or the store failed (fail closed: no push without its row). */
static struct ftm_push_tx *store_start(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok,
				       time_t now, bool *joined, char *reason, size_t reason_len)
{
	const char *client = login->client ? login->client : "";
	char err[FTM_ERR_MAX] = "", mine[65];
	struct ftm_push_tx *tx, *t;
	ftm_push_row_t row, pending;
	int rc;

	tx = tx_new(p, login, tok, now);
	if (tx == NULL) {
		snprintf(reason, reason_len, "could not create a push transaction");
		return NULL;
	}
	row_of_tx(tx, &row);
	rc = ftm_store_push_put(p->store, &row, now, &pending, err, sizeof(err));
	if (rc == 1 && settle_stale(p, &pending, err, sizeof(err)))	/* then the row is ours to put */
		rc = ftm_store_push_put(p->store, &row, now, &pending, err, sizeof(err));
	if (rc < 0) {
		tx_free(tx);
		snprintf(reason, reason_len, "token store unavailable: %.200s", err);
		return NULL;
	}
	if (rc == 1) {
		tx_free(tx);
		ftm_copy(mine, sizeof(mine), row.client_hash);
		if (CRYPTO_memcmp(mine, pending.client_hash, 64) != 0) {
			ftm_log(p->log, FTM_LOG_WARN, "push for '%s' from %s refused: push %.8s from another client "
				"is pending", login->user, client[0] ? client : "-", pending.id);
			snprintf(reason, reason_len, "another login of this user is waiting for the phone");
			return NULL;
		}
		*joined = true;
		pthread_mutex_lock(&p->lock);
		for (t = p->txs; t; t = t->next)
			if (strcmp(t->id, pending.id) == 0)
				break;
		if (t != NULL) {
			t->refs++;
			pthread_mutex_unlock(&p->lock);
			ftm_log(p->log, FTM_LOG_INFO, "push %.8s for '%s' from %s: joined the pending push", t->id,
				t->user, client[0] ? client : "-");
			return t;
		}
		pthread_mutex_unlock(&p->lock);
		t = tx_joined(p, login, &pending, now);
		if (t == NULL) {
			snprintf(reason, reason_len, "could not create a push transaction");
			return NULL;
		}
		if (t->number[0] && ftm_store_number_issue(p->store, t->user, client, t->id, now,
							   (unsigned)(t->expires - now) + NUMBER_GRACE, t->state,
							   err, sizeof(err)) != 0) {
			tx_free(t);
			snprintf(reason, reason_len, "token store unavailable: %.200s", err);
			return NULL;
		}
		pthread_mutex_lock(&p->lock);
		t->next = p->txs;
		p->txs = t;
		pthread_mutex_unlock(&p->lock);
		ftm_log(p->log, FTM_LOG_INFO, "push %.8s for '%s' from %s: joined the push pending on another node",
			t->id, t->user, client[0] ? client : "-");
		return t;
	}
	tx->state[0] = '\0';
	if (tx->number[0] && ftm_store_number_issue(p->store, tx->user, client, tx->id, now,
						    p->cfg.push.timeout + NUMBER_GRACE, tx->state, err, sizeof(err)) != 0) {
		char why[FTM_MSG_MAX];

		snprintf(why, sizeof(why), "no number challenge: %.200s", err);
		store_settle(p, tx, ROW_FAIL, why);
		tx_free(tx);
		snprintf(reason, reason_len, "%s", why);
		return NULL;
	}
	pthread_mutex_lock(&p->lock);
	tx->next = p->txs;
	p->txs = tx;
	ftm_metrics_push_started();
	pthread_mutex_unlock(&p->lock);
	return tx;
}

ftm_push_tx_t *ftm_push_start(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			      bool *joined, char *reason, size_t reason_len)
{
	struct ftm_push_tx *tx;
	ftm_push_msg_t m;
	char text[700], why[FTM_MSG_MAX] = "";
	const char *client = login->client ? login->client : "";
	uint8_t h[32];
	bool have_hash = client_digest(client, h) == 0;	/* without one nothing joins */
	int rc;

	*joined = false;
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		snprintf(reason, reason_len, "push engine stopped");
		return NULL;
	}
	sweep(p);
	if (p->store != NULL) {
		pthread_mutex_unlock(&p->lock);
		tx = store_start(p, login, tok, now, joined, reason, reason_len);
		if (tx == NULL || *joined)
			return tx;
		goto send;
	}
	for (tx = p->txs; tx; tx = tx->next) {
		if (tx->verdict != FTM_PUSH_PENDING || strcmp(tx->user, login->user) != 0)
			continue;
		if (have_hash && CRYPTO_memcmp(tx->client_hash, h, sizeof(h)) == 0) {
			tx->refs++;
			*joined = true;
			pthread_mutex_unlock(&p->lock);
			ftm_log(p->log, FTM_LOG_INFO, "push %.8s for '%s' from %s: joined the pending push",
				tx->id, tx->user, client[0] ? client : "-");
			return tx;
		}
		/* At most one pending push per user: a login from elsewhere must not ride on (or bury)
		 * the pending one. Its push fails; the front end may ask for the code instead. */
		ftm_log(p->log, FTM_LOG_WARN, "push for '%s' from %s refused: push %.8s from %s is pending",
			login->user, client[0] ? client : "-", tx->id, tx->client[0] ? tx->client : "-");
		pthread_mutex_unlock(&p->lock);
		snprintf(reason, reason_len, "another login of this user (from %.64s) is waiting for the phone",
			 tx->client[0] ? tx->client : "-");
		return NULL;
	}
	tx = tx_new(p, login, tok, now);
	if (tx == NULL) {
		pthread_mutex_unlock(&p->lock);
		snprintf(reason, reason_len, "could not create a push transaction");
		return NULL;
	}
	tx->next = p->txs;
	p->txs = tx;
	ftm_metrics_push_started();
	pthread_mutex_unlock(&p->lock);
send:
	/* Everything the channel needs is immutable from here on: no lock while sending. */
	build_text(tx, p->cfg.push.timeout, text, sizeof(text));
	memset(&m, 0, sizeof(m));
	m.tx = tx->id;
	m.user = tx->user;
	m.client = tx->client;
	m.nas = tx->nas;
	m.host = tx->host;
	m.serial = tx->serial;
	m.time = tx->created;
	m.expires = tx->expires;
	m.text = text;
	m.number = tx->number;
	m.ncaps = tx->ncaps;
	for (unsigned i = 0; i < tx->ncaps; i++) {
		m.caps[i] = tx->caps[i];
		m.numbers[i] = tx->numbers[i];
		m.labels[i] = tx->number[0] ? tx->numbers[i] : i == 0 ? "Approve" : "Deny";
	}
	m.cap_url_base = p->cap_url_base;
	m.gw_callback = p->gw_callback;
	m.sender = p->host;
	ftm_log(p->log, FTM_LOG_DEBUG, "push %.8s for '%s' (%s) from %s: sending via %.*s", tx->id, tx->user,
		tx->serial, client[0] ? client : "-", (int)strcspn(tok->push, ":"), tok->push);
	rc = p->send(p->send_ctx, &p->cfg, tok, &m, why, sizeof(why));
	if (rc != 0 && p->store != NULL)
		store_settle(p, tx, ROW_FAIL, why[0] ? why : "send failed");
	if (rc != 0) {
		pthread_mutex_lock(&p->lock);
		decide(p, tx, FTM_PUSH_FAILED, why[0] ? why : "send failed");
		pthread_mutex_unlock(&p->lock);
	}
	return tx;
}

ftm_push_verdict_t ftm_push_wait(ftm_push_t *p, ftm_push_tx_t *tx, unsigned max_ms)
{
	struct timespec now, limit;
	ftm_push_verdict_t v;

	mono_now(&now);
	limit = tx->deadline;
	if (max_ms) {
		struct timespec l = now;

		l.tv_sec += max_ms / 1000;
		l.tv_nsec += (long)(max_ms % 1000) * 1000000L;
		if (l.tv_nsec >= 1000000000L) {
			l.tv_sec++;
			l.tv_nsec -= 1000000000L;
		}
		if (ts_before(&l, &limit))
			limit = l;
	}
	pthread_mutex_lock(&p->lock);
	while (tx->verdict == FTM_PUSH_PENDING && !p->stopping) {
		struct timespec wake = limit;

		mono_now(&now);
		if (p->store != NULL && !ts_before(&now, &tx->deadline)) {
			/* one last look at the row, which records the timeout unless a node decided first */
			pthread_mutex_unlock(&p->lock);
			store_settle(p, tx, ROW_TIMEOUT, "no answer before the push timeout");
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (p->store != NULL && (tx->poked || !ts_before(&now, &tx->next_read))) {
			tx->poked = false;
			tx->next_read = now;
			tx->next_read.tv_sec += STORE_READ_MS / 1000;
			pthread_mutex_unlock(&p->lock);
			store_refresh(p, tx);
			pthread_mutex_lock(&p->lock);
			continue;
		}
		if (!ts_before(&now, &tx->deadline)) {
			decide(p, tx, FTM_PUSH_TIMEOUT, "no answer before the push timeout");
			break;
		}
		if (!ts_before(&now, &limit))
			break;
		if (p->store != NULL && ts_before(&tx->next_read, &wake))
			wake = tx->next_read;
		int rc = pthread_cond_timedwait(&tx->cond, &p->lock, &wake);
		if (rc != 0 && rc != ETIMEDOUT && rc != EINTR)
			break;
	}
	v = tx->verdict;
	if (v == FTM_PUSH_PENDING && p->stopping)
		v = FTM_PUSH_FAILED;
	pthread_mutex_unlock(&p->lock);
	return v;
}

void ftm_push_release(ftm_push_t *p, ftm_push_tx_t *tx)
{
	if (tx == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	if (tx->refs > 0)
		tx->refs--;
	pthread_mutex_unlock(&p->lock);
}

static int reply_json(char *reply, size_t len, int status, const char *key, const char *val, const char *status_val)
{
	if (status_val)
		snprintf(reply, len, "{\"%s\":\"%s\",\"status\":\"%s\"}", key, val, status_val);
	else
		snprintf(reply, len, "{\"%s\":\"%s\"}", key, val);
	return status;
}

/* Under the lock: the status for an answer to tx that is not pending (or just expired). */
static int refuse_decided(ftm_push_t *p, struct ftm_push_tx *tx, char *reply, size_t len)
{
	struct timespec now;

	mono_now(&now);
	if (tx->verdict == FTM_PUSH_PENDING && !ts_before(&now, &tx->deadline))
		decide(p, tx, FTM_PUSH_TIMEOUT, "no answer before the push timeout");
	if (tx->verdict == FTM_PUSH_PENDING)
		return 0;
	if (tx->verdict == FTM_PUSH_TIMEOUT)
		return reply_json(reply, len, 410, "error", "expired", "timeout");
	return reply_json(reply, len, 409, "error", "already decided", ftm_push_verdict_name(tx->verdict));
}

/* ---- the answers, decided against the row (any node's listener, any node's login prompt) ---- */

static int store_unavailable(ftm_push_t *p, const char *what, const char *err, char *reply, size_t reply_len)
{
	ftm_log(p->log, FTM_LOG_ERR, "push %s refused: token store unavailable: %s", what, err);
	return reply_json(reply, reply_len, 503, "error", "token store unavailable", NULL);
}

/* The row's answer, logged once on the node that recorded it, and given to this process's waiters. */
static int store_answered(ftm_push_t *p, const struct row_answer *a, char *reply, size_t reply_len)
{
	if (a->status == 404) {
		ftm_log(p->log, FTM_LOG_WARN, "push callback with an unknown capability: refused");
		return reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
	}
	if (a->status == 410 || a->status == 409) {
		ftm_log(p->log, FTM_LOG_WARN, "push %.8s for '%s': late or repeated answer refused (%d)", a->id,
			a->user, a->status);
		if (a->status == 410)
			return reply_json(reply, reply_len, 410, "error", "expired", "timeout");
		return reply_json(reply, reply_len, 409, "error", "already decided", ftm_push_verdict_name(a->verdict));
	}
	ftm_log(p->log, FTM_LOG_INFO, "push %.8s for '%s': %s recorded in the token store (serial %s): %s", a->id,
		a->user, ftm_push_verdict_name(a->verdict), a->serial, a->reason);
	learn(p, a->id, a->verdict, a->reason);
	return reply_json(reply, reply_len, 200, "status", ftm_push_verdict_name(a->verdict), NULL);
}

static int store_answer_capability(ftm_push_t *p, const char *cap, time_t now, char *reply, size_t reply_len)
{
	struct row_answer a = { .kind = ROW_CAP, .now = now };
	char h[65], err[FTM_ERR_MAX] = "";
	int rc;

	cap_digest(cap, h);
	a.cap_hash = h;
	rc = ftm_store_push_decide(p->store, FTM_PUSH_BY_CAP, h, row_decide, &a, err, sizeof(err));
	if (rc < 0)
		return store_unavailable(p, "callback", err, reply, reply_len);
	if (rc == 1)
		a.status = 404;
	return store_answered(p, &a, reply, reply_len);
}

/* The key that proves an envelope answer: this node's transaction has it; another node's push is
 * proven with the token's seed, which every node of the store can unseal. 0, 1 no such token, -1. */
static int gateway_key(ftm_push_t *p, const ftm_push_row_t *row, uint8_t k_cb[32], char *err, size_t err_len)
{
	ftm_token_t tok;
	int rc = 1;

	pthread_mutex_lock(&p->lock);
	for (struct ftm_push_tx *tx = p->txs; tx; tx = tx->next)
		if (tx->gateway && strcmp(tx->id, row->id) == 0 && tx->ncaps > 0) {
			memcpy(k_cb, tx->k_cb, 32);
			rc = 0;
		}
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		return 0;
	rc = ftm_store_token_get(p->store, row->serial, &tok, err, err_len);
	if (rc == 0 && ftm_push_derive_keys(tok.seed, tok.seed_len, NULL, NULL, k_cb) != 0) {
		ftm_set_err(err, err_len, "no callback key");
		rc = -1;
	}
	ftm_memzero(&tok, sizeof(tok));
	return rc;
}

static int store_answer_gateway(ftm_push_t *p, const char *id, const char *verdict, const char *number,
				const char *proof, time_t now, char *reply, size_t reply_len)
{
	struct row_answer a = { .kind = ROW_GATEWAY, .number = number, .now = now };
	char err[FTM_ERR_MAX] = "", want[65];
	ftm_push_row_t row;
	uint8_t k_cb[32];
	int rc;

	rc = ftm_store_push_get(p->store, id, &row, err, sizeof(err));
	if (rc < 0)
		return store_unavailable(p, "gateway answer", err, reply, reply_len);
	if (rc == 1 || !row.gateway) {
		ftm_log(p->log, FTM_LOG_WARN, "push gateway answer for an unknown transaction: refused");
		return reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
	}
	rc = gateway_key(p, &row, k_cb, err, sizeof(err));
	if (rc < 0)
		return store_unavailable(p, "gateway answer", err, reply, reply_len);
	if (rc == 1 || strlen(proof) != 64 || strlen(verdict) > 16 || strlen(number) > 8 ||
	    ftm_push_callback_proof(k_cb, row.id, verdict, number, want) != 0 || CRYPTO_memcmp(want, proof, 64) != 0) {
		OPENSSL_cleanse(k_cb, sizeof(k_cb));
		ftm_log(p->log, FTM_LOG_WARN, "push %.8s for '%s': answer with a wrong proof refused", row.id, row.user);
		return reply_json(reply, reply_len, 403, "error", "bad proof", NULL);
	}
	OPENSSL_cleanse(k_cb, sizeof(k_cb));
	if (strcmp(verdict, "approve") != 0 && strcmp(verdict, "deny") != 0)
		return reply_json(reply, reply_len, 400, "error", "bad verdict", NULL);
	a.approve = strcmp(verdict, "approve") == 0;
	rc = ftm_store_push_decide(p->store, FTM_PUSH_BY_ID, row.id, row_decide, &a, err, sizeof(err));
	if (rc < 0)
		return store_unavailable(p, "gateway answer", err, reply, reply_len);
	if (rc == 1)
		return reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
	return store_answered(p, &a, reply, reply_len);
}

/* The number typed at a login prompt, on any node: the State (single use, bound to the user and the
 * client) names the push; the row decides. */
static bool store_challenge_answer(ftm_push_t *p, const ftm_login_t *login, const char *state, const char *answer,
				   time_t now, ftm_outcome_t *out)
{
	struct row_answer a = { .kind = ROW_NUMBER, .number = answer, .now = now };
	ftm_state_check_t check = FTM_STATE_UNKNOWN;
	char err[FTM_ERR_MAX] = "", tx_id[33], why[FTM_MSG_MAX];
	int rc;

	rc = ftm_auth_number_take(p->store, login, state, now, &check, tx_id, out);
	if (rc <= 0)
		return rc < 0;	/* a store failure is this answer's (fail closed); no number State: not ours */
	if (check == FTM_STATE_MISMATCH) {
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_BAD, "number challenge of another login");
		return true;
	}
	if (check == FTM_STATE_EXPIRED)
		a.kind = ROW_TIMEOUT;
	rc = ftm_store_push_decide(p->store, FTM_PUSH_BY_ID, tx_id, row_decide, &a, err, sizeof(err));
	if (rc < 0) {
		snprintf(why, sizeof(why), "token store unavailable: %.200s", err);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, why);
		return true;
	}
	if (rc == 1) {
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_OLD, "the number challenge's push is gone");
		return true;
	}
	learn(p, a.id, a.verdict, a.reason);
	if (a.verdict == FTM_PUSH_TIMEOUT || (a.verdict == FTM_PUSH_DENIED && !a.was_pending)) {
		ftm_auth_push_outcome(out, a.verdict, a.serial, NULL,
				      a.verdict == FTM_PUSH_DENIED ? "push denied before the number was typed"
								   : "number typed after the push timeout");
	} else if (a.verdict == FTM_PUSH_FAILED) {
		ftm_auth_push_outcome(out, a.verdict, a.serial, NULL, a.reason);
	} else if (a.matched) {
		ftm_auth_push_outcome(out, FTM_PUSH_APPROVED, a.serial, NULL, "number matched");
	} else {
		ftm_auth_push_outcome(out, FTM_PUSH_DENIED, a.serial, NULL, "wrong number typed");
		/* The push was live: the core counts the guess on the token (lockout). */
		out->wrong_answer = ftm_number_is_guess(false, true);
	}
	return true;
}

/* An answer that raced the shutdown (its connection was open before the listener closed): nobody
 * would deliver its verdict, so it is not taken. */
static int refuse_stopping(ftm_push_t *p, char *reply, size_t len)
{
	ftm_log(p->log, FTM_LOG_WARN, "push callback during shutdown: refused (503)");
	return reply_json(reply, len, 503, "error", "shutting down", NULL);
}

int ftm_push_answer_capability(ftm_push_t *p, const char *cap, time_t now, char *reply, size_t reply_len)
{
	struct ftm_push_tx *tx, *found = NULL;
	unsigned idx = 0;
	int st;

	if (strlen(cap) != FTM_PUSH_CAP_LEN)
		return reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		pthread_mutex_unlock(&p->lock);
		return refuse_stopping(p, reply, reply_len);
	}
	if (p->store != NULL) {
		pthread_mutex_unlock(&p->lock);
		return store_answer_capability(p, cap, now, reply, reply_len);
	}
	for (tx = p->txs; tx; tx = tx->next)
		for (unsigned i = 0; i < tx->ncaps; i++)
			if (CRYPTO_memcmp(tx->caps[i], cap, FTM_PUSH_CAP_LEN) == 0) {
				found = tx;
				idx = i;
			}
	if (found == NULL) {
		pthread_mutex_unlock(&p->lock);
		ftm_log(p->log, FTM_LOG_WARN, "push callback with an unknown capability: refused");
		return reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
	}
	st = refuse_decided(p, found, reply, reply_len);
	if (st != 0) {
		ftm_log(p->log, FTM_LOG_WARN, "push %.8s for '%s': late or repeated answer refused (%d)", found->id,
			found->user, st);
		pthread_mutex_unlock(&p->lock);
		return st;
	}
	decide(p, found, found->cap_verdict[idx],
	       found->number[0] ? (found->cap_verdict[idx] == FTM_PUSH_APPROVED ? "the right number tapped"
						: "a wrong number tapped")
				: (found->cap_verdict[idx] == FTM_PUSH_APPROVED ? "approved on the phone" : "denied on the phone"));
	st = reply_json(reply, reply_len, 200, "status", ftm_push_verdict_name(found->verdict), NULL);
	pthread_mutex_unlock(&p->lock);
	return st;
}

int ftm_push_answer_gateway(ftm_push_t *p, const char *body, size_t body_len, time_t now, char *reply,
			    size_t reply_len)
{
	struct json_tokener *tok = json_tokener_new();
	struct json_object *o = NULL;
	struct ftm_push_tx *tx, *found = NULL;
	const char *id, *verdict, *number, *proof;
	char want[65];
	int st;

	if (tok == NULL)
		return reply_json(reply, reply_len, 500, "error", "out of memory", NULL);
	if (body_len > 0)
		o = json_tokener_parse_ex(tok, body, (int)body_len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)body_len || !json_object_is_type(o, json_type_object)) {
		json_tokener_free(tok);
		json_object_put(o);
		return reply_json(reply, reply_len, 400, "error", "body is not a JSON object", NULL);
	}
	json_tokener_free(tok);
	id = ftm_json_string(o, "tx");
	verdict = ftm_json_string(o, "verdict");
	number = ftm_json_string(o, "number");
	proof = ftm_json_string(o, "proof");
	if (!id || !verdict || !number || !proof) {
		json_object_put(o);
		return reply_json(reply, reply_len, 400, "error", "tx, verdict, number and proof are required strings",
				  NULL);
	}
	pthread_mutex_lock(&p->lock);
	if (p->stopping) {
		st = refuse_stopping(p, reply, reply_len);
		goto out;
	}
	if (p->store != NULL) {
		pthread_mutex_unlock(&p->lock);
		st = store_answer_gateway(p, id, verdict, number, proof, now, reply, reply_len);
		json_object_put(o);
		return st;
	}
	if (strlen(id) == FTM_PUSH_ID_LEN)
		for (tx = p->txs; tx; tx = tx->next)
			if (tx->gateway && CRYPTO_memcmp(tx->id, id, FTM_PUSH_ID_LEN) == 0)
				found = tx;
	if (found == NULL) {
		st = reply_json(reply, reply_len, 404, "error", "unknown transaction", NULL);
		ftm_log(p->log, FTM_LOG_WARN, "push gateway answer for an unknown transaction: refused");
		goto out;
	}
	st = refuse_decided(p, found, reply, reply_len);
	if (st != 0) {
		ftm_log(p->log, FTM_LOG_WARN, "push %.8s for '%s': late or repeated answer refused (%d)", found->id,
			found->user, st);
		goto out;
	}
	if (strlen(proof) != 64 || strlen(verdict) > 16 || strlen(number) > 8 ||
	    ftm_push_callback_proof(found->k_cb, found->id, verdict, number, want) != 0 ||
	    CRYPTO_memcmp(want, proof, 64) != 0) {
		st = reply_json(reply, reply_len, 403, "error", "bad proof", NULL);
		ftm_log(p->log, FTM_LOG_WARN, "push %.8s for '%s': answer with a wrong proof refused", found->id,
			found->user);
		goto out;
	}
	if (strcmp(verdict, "approve") == 0) {
		if (found->number[0] && !ftm_number_matches(found->number, number))
			decide(p, found, FTM_PUSH_DENIED, "a wrong number chosen on the phone");
		else
			decide(p, found, FTM_PUSH_APPROVED, found->number[0] ? "the right number chosen on the phone"
									      : "approved on the phone");
	} else if (strcmp(verdict, "deny") == 0) {
		decide(p, found, FTM_PUSH_DENIED, "denied on the phone");
	} else {
		st = reply_json(reply, reply_len, 400, "error", "bad verdict", NULL);
		goto out;
	}
	st = reply_json(reply, reply_len, 200, "status", ftm_push_verdict_name(found->verdict), NULL);
out:
	pthread_mutex_unlock(&p->lock);
	json_object_put(o);
	return st;
}

/* ---- the ftm_auth plug ---- */

static bool engine_stopping(ftm_push_t *p)
{
	bool stopping;

	pthread_mutex_lock(&p->lock);
	stopping = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return stopping;
}

void ftm_push_second_factor(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			    ftm_outcome_t *out)
{
	char reason[FTM_MSG_MAX] = "", why[FTM_MSG_MAX];
	bool joined;
	ftm_push_tx_t *tx;
	ftm_push_verdict_t v;

	memset(out, 0, sizeof(*out));
	tx = ftm_push_start(p, login, tok, now, &joined, reason, sizeof(reason));
	if (tx == NULL) {
		snprintf(why, sizeof(why), "push not sent: %s", reason);
		ftm_outcome_set(out, FTM_RES_PUSH_FAILED, tok->serial, FTM_MSG_PUSH_DOWN, why);
		return;
	}
	if (tx->number[0]) {
		v = ftm_push_wait(p, tx, 1);	/* no wait: the send already happened */
		if (v == FTM_PUSH_PENDING || v == FTM_PUSH_APPROVED) {
			ftm_outcome_set(out, FTM_RES_CHALLENGE, tx->serial, FTM_MSG_ENTER_NUMBER,
					joined ? "number matching push pending (joined)" : "number matching push sent");
			ftm_copy(out->state, sizeof(out->state), tx->state);
		} else {
			snprintf(why, sizeof(why), "push %s: %s", ftm_push_verdict_name(v),
				 ftm_push_tx_reason(p, tx, reason, sizeof(reason)));
			ftm_auth_push_outcome(out, v, tx->serial, NULL, why);
		}
		ftm_push_release(p, tx);
		return;
	}
	v = ftm_push_wait(p, tx, 0);
	ftm_push_tx_reason(p, tx, reason, sizeof(reason));
	snprintf(why, sizeof(why), "push %s%s%s%s", ftm_push_verdict_name(v), joined ? " (joined)" : "",
		 reason[0] ? ": " : "", reason);
	/* Ended by a shutdown: the push service is what is unavailable, not this one push. */
	ftm_auth_push_outcome(out, v, tx->serial,
			      v == FTM_PUSH_FAILED && engine_stopping(p) ? FTM_MSG_PUSH_DOWN : NULL, why);
	ftm_push_release(p, tx);
}

bool ftm_push_challenge_answer(ftm_push_t *p, const ftm_login_t *login, const char *state, const char *answer,
			       time_t now, ftm_outcome_t *out)
{
	struct ftm_push_tx *tx, *found = NULL;
	const char *client = login->client ? login->client : "";
	uint8_t h[32];

	(void)now;
	memset(out, 0, sizeof(*out));
	if (state == NULL || strlen(state) != FTM_PUSH_ID_LEN)
		return false;
	if (p->store != NULL)
		return store_challenge_answer(p, login, state, answer, now, out);
	pthread_mutex_lock(&p->lock);
	for (tx = p->txs; tx; tx = tx->next)
		if (tx->state[0] && CRYPTO_memcmp(tx->state, state, FTM_PUSH_ID_LEN) == 0)
			found = tx;
	if (found == NULL) {
		pthread_mutex_unlock(&p->lock);
		return false;
	}
	tx = found;
	if (strcmp(tx->user, login->user) != 0 || client_digest(client, h) != 0 ||
	    CRYPTO_memcmp(tx->client_hash, h, sizeof(h)) != 0) {
		ftm_outcome_set(out, FTM_RES_FAIL, tx->serial, FTM_MSG_CHALLENGE_BAD, "number challenge of another login");
	} else if (tx->state_used) {
		ftm_outcome_set(out, FTM_RES_FAIL, tx->serial, FTM_MSG_CHALLENGE_BAD, "number challenge already answered");
	} else {
		struct timespec n;

		tx->state_used = true;
		mono_now(&n);
		if (tx->verdict == FTM_PUSH_PENDING && !ts_before(&n, &tx->deadline))
			decide(p, tx, FTM_PUSH_TIMEOUT, "no number before the push timeout");
		if (tx->verdict == FTM_PUSH_DENIED || tx->verdict == FTM_PUSH_TIMEOUT) {
			ftm_auth_push_outcome(out, tx->verdict, tx->serial, NULL,
					      tx->verdict == FTM_PUSH_DENIED ? "push denied before the number was typed"
									     : "number typed after the push timeout");
		} else if (tx->verdict == FTM_PUSH_FAILED) {
			ftm_auth_push_outcome(out, tx->verdict, tx->serial, NULL, tx->reason);
		} else if (ftm_number_matches(tx->number, answer)) {
			decide(p, tx, FTM_PUSH_APPROVED, "the right number typed at the login prompt");
			ftm_auth_push_outcome(out, FTM_PUSH_APPROVED, tx->serial, NULL, "number matched");
		} else {
			decide(p, tx, FTM_PUSH_DENIED, "a wrong number typed at the login prompt");
			ftm_auth_push_outcome(out, FTM_PUSH_DENIED, tx->serial, NULL, "wrong number typed");
			/* The push was live: the core counts the guess on the token (lockout). */
			out->wrong_answer = ftm_number_is_guess(false, true);
		}
	}
	pthread_mutex_unlock(&p->lock);
	return true;
}

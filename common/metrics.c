/* metrics: the process's counters, gauge and histograms as C11 atomics, and their Prometheus text. */
#include "config.h"

#include <arpa/inet.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ftm_metrics.h"
#include "ftm_util.h"

#define N_RESULTS	(FTM_RES_ERROR + 1)
#define N_CHANNELS	2
#define N_OUTCOMES	4		/* approved, denied, timeout, failed: what a push ends as */
#define N_STORE_OPS	3
#define BUCKETS_MAX	16

/* Bucket counts are kept per bucket (not cumulative), so an observation is one add; the rendering
 * sums them, which makes _count equal the +Inf bucket in every scrape. */
typedef struct {
	const double	*le;
	size_t		n;
	atomic_ullong	bucket[BUCKETS_MAX + 1];	/* [n]: above the last bound */
	atomic_ullong	sum_ns;
} histogram_t;

/* Answers come in seconds (a person taps); a code verdict in milliseconds (one store transaction). */
static const double round_trip_le[] = { 0.5, 1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300 };
static const double verdict_le[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 };

static const char *const channel_names[N_CHANNELS] = { "ntfy", "gateway" };
static const char *const outcome_names[N_OUTCOMES] = { "approved", "denied", "timeout", "failed" };
static const char *const store_op_names[N_STORE_OPS] = { "verdict", "list", "challenge" };

static struct {
	atomic_ullong	logins[N_RESULTS];
	atomic_ullong	pushes[N_CHANNELS][N_OUTCOMES];
	atomic_llong	pending;
	histogram_t	round_trip[N_CHANNELS];
	histogram_t	verdict;
	atomic_ullong	store_errors[N_STORE_OPS];
	atomic_ullong	tls_failures;
} m = {
	.round_trip = {
		{ .le = round_trip_le, .n = sizeof(round_trip_le) / sizeof(round_trip_le[0]) },
		{ .le = round_trip_le, .n = sizeof(round_trip_le) / sizeof(round_trip_le[0]) },
	},
	.verdict = { .le = verdict_le, .n = sizeof(verdict_le) / sizeof(verdict_le[0]) },
};

static _Atomic(const char *) frontend = "core";

/* ---- counting ---- */

static void observe(histogram_t *h, double seconds)
{
	size_t i = 0;

	if (!(seconds >= 0))	/* also NaN */
		seconds = 0;
	while (i < h->n && seconds > h->le[i])
		i++;
	atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, (unsigned long long)(seconds * 1e9), memory_order_relaxed);
}

void ftm_metrics_login(ftm_result_t result)
{
	if ((unsigned)result < N_RESULTS)
		atomic_fetch_add_explicit(&m.logins[result], 1, memory_order_relaxed);
}

void ftm_metrics_push_started(void)
{
	atomic_fetch_add_explicit(&m.pending, 1, memory_order_relaxed);
}

void ftm_metrics_push_decided(ftm_metrics_channel_t ch, ftm_push_verdict_t v, double answer_seconds)
{
	unsigned c = (unsigned)ch < N_CHANNELS ? (unsigned)ch : FTM_METRICS_NTFY;
	unsigned o;

	switch (v) {
	case FTM_PUSH_APPROVED:	o = 0; break;
	case FTM_PUSH_DENIED:	o = 1; break;
	case FTM_PUSH_TIMEOUT:	o = 2; break;
	default:		o = 3; break;
	}
	atomic_fetch_sub_explicit(&m.pending, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&m.pushes[c][o], 1, memory_order_relaxed);
	if (answer_seconds >= 0)
		observe(&m.round_trip[c], answer_seconds);
}

void ftm_metrics_verdict_seconds(double seconds)
{
	observe(&m.verdict, seconds);
}

void ftm_metrics_store_error(ftm_metrics_store_op_t op)
{
	if ((unsigned)op < N_STORE_OPS)
		atomic_fetch_add_explicit(&m.store_errors[op], 1, memory_order_relaxed);
}

void ftm_metrics_tls_failure(void)
{
	atomic_fetch_add_explicit(&m.tls_failures, 1, memory_order_relaxed);
}

double ftm_metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ftm_metrics_set_frontend(const char *name)
{
	atomic_store(&frontend, name != NULL && name[0] != '\0' ? name : "core");
}

void ftm_metrics_reset(void)
{
	for (size_t i = 0; i < N_RESULTS; i++)
		atomic_store(&m.logins[i], 0);
	for (size_t c = 0; c < N_CHANNELS; c++) {
		for (size_t o = 0; o < N_OUTCOMES; o++)
			atomic_store(&m.pushes[c][o], 0);
		for (size_t b = 0; b <= BUCKETS_MAX; b++)
			atomic_store(&m.round_trip[c].bucket[b], 0);
		atomic_store(&m.round_trip[c].sum_ns, 0);
	}
	for (size_t b = 0; b <= BUCKETS_MAX; b++)
		atomic_store(&m.verdict.bucket[b], 0);
	atomic_store(&m.verdict.sum_ns, 0);
	for (size_t i = 0; i < N_STORE_OPS; i++)
		atomic_store(&m.store_errors[i], 0);
	atomic_store(&m.pending, 0);
	atomic_store(&m.tls_failures, 0);
}

/* ---- the text exposition (format 0.0.4) ---- */

/* A label value: backslash, double quote and line feed escaped, as the format requires. */
static void put_label(FILE *f, const char *name, const char *value)
{
	fprintf(f, "%s=\"", name);
	for (const char *p = value; *p != '\0'; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '"')
			fputs("\\\"", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_histogram(FILE *f, const char *name, const char *label, const char *value, histogram_t *h)
{
	unsigned long long cum = 0;

	for (size_t i = 0; i <= h->n; i++) {
		cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
		fprintf(f, "%s_bucket{", name);
		if (label != NULL) {
			put_label(f, label, value);
			fputc(',', f);
		}
		if (i < h->n)
			fprintf(f, "le=\"%g\"} %llu\n", h->le[i], cum);
		else
			fprintf(f, "le=\"+Inf\"} %llu\n", cum);
	}
	fprintf(f, "%s_sum", name);
	if (label != NULL) {
		fputc('{', f);
		put_label(f, label, value);
		fputc('}', f);
	}
	fprintf(f, " %.9f\n%s_count", (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9, name);
	if (label != NULL) {
		fputc('{', f);
		put_label(f, label, value);
		fputc('}', f);
	}
	fprintf(f, " %llu\n", cum);
}

char *ftm_metrics_render(size_t *len)
{
	const char *fe = atomic_load(&frontend);
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		return NULL;
	family(f, "ftmpush_build_info", "gauge", "The ftmpush build serving these metrics (always 1).");
	fputs("ftmpush_build_info{", f);
	put_label(f, "version", PACKAGE_VERSION);
	fputc(',', f);
#ifdef HAVE_LIBPQ
	put_label(f, "postgresql", "yes");
#else
	put_label(f, "postgresql", "no");
#endif
	fputs("} 1\n", f);

	family(f, "ftmpush_logins_total", "counter",
	       "Login requests the core decided, by front end and result (the second factor's outcome).");
	for (unsigned r = 0; r < N_RESULTS; r++) {
		fputs("ftmpush_logins_total{", f);
		put_label(f, "frontend", fe);
		fputc(',', f);
		put_label(f, "result", ftm_result_name((ftm_result_t)r));
		fprintf(f, "} %llu\n", atomic_load_explicit(&m.logins[r], memory_order_relaxed));
	}

	family(f, "ftmpush_pushes_total", "counter", "Push transactions decided, by channel and outcome.");
	for (unsigned c = 0; c < N_CHANNELS; c++)
		for (unsigned o = 0; o < N_OUTCOMES; o++) {
			fputs("ftmpush_pushes_total{", f);
			put_label(f, "channel", channel_names[c]);
			fputc(',', f);
			put_label(f, "outcome", outcome_names[o]);
			fprintf(f, "} %llu\n", atomic_load_explicit(&m.pushes[c][o], memory_order_relaxed));
		}

	family(f, "ftmpush_pushes_pending", "gauge", "Push transactions waiting for the phone's answer now.");
	fprintf(f, "ftmpush_pushes_pending %lld\n", atomic_load_explicit(&m.pending, memory_order_relaxed));

	family(f, "ftmpush_push_round_trip_seconds", "histogram",
	       "Seconds from a push's start (sent) to the user's answer (a tap, or the number typed), by channel.");
	for (unsigned c = 0; c < N_CHANNELS; c++)
		put_histogram(f, "ftmpush_push_round_trip_seconds", "channel", channel_names[c], &m.round_trip[c]);

	family(f, "ftmpush_verdict_duration_seconds", "histogram",
	       "Seconds a code verdict took (the store transaction that checks and uses a code).");
	put_histogram(f, "ftmpush_verdict_duration_seconds", NULL, NULL, &m.verdict);

	family(f, "ftmpush_store_errors_total", "counter",
	       "Token store operations of the login path that failed (the login failed closed), by operation.");
	for (unsigned i = 0; i < N_STORE_OPS; i++) {
		fputs("ftmpush_store_errors_total{", f);
		put_label(f, "op", store_op_names[i]);
		fprintf(f, "} %llu\n", atomic_load_explicit(&m.store_errors[i], memory_order_relaxed));
	}

	family(f, "ftmpush_listener_tls_failures_total", "counter",
	       "Clients that refused or broke the TLS handshake with the push callback listener.");
	fprintf(f, "ftmpush_listener_tls_failures_total %llu\n",
		atomic_load_explicit(&m.tls_failures, memory_order_relaxed));

	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	if (len != NULL)
		*len = size;
	return buf;
}

/* ---- metrics_listen ---- */

int ftm_metrics_parse_listen(const char *value, bool allow_remote, char *addr, size_t addr_len, unsigned *port,
			     char *err, size_t err_len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *p;
	struct in_addr a4;
	struct in6_addr a6;
	unsigned long n = 0;
	size_t hlen;
	bool v6, loopback;

	if (value == NULL || value[0] == '\0') {
		ftm_set_err(err, err_len, "metrics_listen: empty");
		return -1;
	}
	if (value[0] == '[') {
		const char *close = strchr(value, ']');

		if (close == NULL || close[1] != ':') {
			ftm_set_err(err, err_len, "metrics_listen: '%.64s' is not [IPv6]:PORT", value);
			return -1;
		}
		hlen = (size_t)(close - value - 1);
		p = value + 1;
		colon = close + 1;
		v6 = true;
	} else {
		colon = strrchr(value, ':');
		if (colon == NULL || strchr(value, ':') != colon) {
			ftm_set_err(err, err_len, "metrics_listen: '%.64s' is not ADDRESS:PORT (an IPv6 address in "
				    "brackets: [::1]:9464)", value);
			return -1;
		}
		hlen = (size_t)(colon - value);
		p = value;
		v6 = false;
	}
	if (hlen == 0 || hlen >= sizeof(host)) {
		ftm_set_err(err, err_len, "metrics_listen: '%.64s' has no address (127.0.0.1:9464)", value);
		return -1;
	}
	memcpy(host, p, hlen);
	host[hlen] = '\0';
	for (p = colon + 1; *p >= '0' && *p <= '9' && n <= 65535; p++)
		n = n * 10 + (unsigned long)(*p - '0');
	if (p == colon + 1 || *p != '\0' || n < 1 || n > 65535) {
		ftm_set_err(err, err_len, "metrics_listen: the port of '%.64s' is not 1-65535", value);
		return -1;
	}
	if (v6 ? inet_pton(AF_INET6, host, &a6) != 1 : inet_pton(AF_INET, host, &a4) != 1) {
		ftm_set_err(err, err_len, "metrics_listen: '%.64s' is not a literal IP%s address", host, v6 ? "v6" : "v4");
		return -1;
	}
	loopback = v6 ? IN6_IS_ADDR_LOOPBACK(&a6) : (ntohl(a4.s_addr) >> 24) == 127;
	if (!loopback && !allow_remote) {
		ftm_set_err(err, err_len, "metrics_listen: %s is not a loopback address: the metrics have no "
			    "authentication and no TLS; keep them on 127.0.0.1 (a local Prometheus or an agent that "
			    "forwards them) or set metrics_allow_remote = yes", host);
		return -1;
	}
	ftm_copy(addr, addr_len, host);
	*port = (unsigned)n;
	return 0;
}

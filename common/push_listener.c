/* push_listener: the HTTPS callback listener (libmicrohttpd), strict paths and limits (docs/protocol.md §4). */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/tcp.h>		/* struct tcp_info with tcpi_bytes_received (glibc's lacks it) */
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "ftm_diagnose.h"
#include "ftm_enrol.h"
#include "ftm_metrics.h"
#include "ftm_protect.h"
#include "ftm_push.h"
#include "ftm_util.h"
#include "push_listener.h"

#define PEM_MAX (256 * 1024)
#define CB_PREFIX "/ftm/v1/cb/"
#define GW_PATH "/ftm/v1/gw"
#define HEALTH_PATH "/ftm/v1/health"

#define CONN_SLACK	64	/* connections libmicrohttpd may hold beyond the cap while evicted ones close */
#define CONN_FLOOR	64	/* the cap never goes below this, whatever the open-file limit */
#define WATCH_MS	200	/* how often the watchdog looks at the open connections */
#define REPORT_S	10	/* at most one log line per this many seconds about closed connections */

/* One open connection, in accept order: the watchdog closes it at its deadline, the accept policy
 * counts it against its address and evicts the oldest when the listener is full. */
typedef struct conn {
	struct conn	*prev, *next;
	int		fd;
	uint8_t		addr[16];	/* IPv4 (mapped) or the IPv6 /64: what the per-address limit counts */
	int64_t		accepted_ms;
	bool		silent_checked;
	bool		closing;	/* shut down by us; libmicrohttpd closes it on its next turn */
	bool		requested;	/* got as far as a request (so its TLS handshake completed) */
} conn_t;

typedef struct conn_stats {
	unsigned	deadline, silent, per_addr, evicted;
} conn_stats_t;

struct ftm_push_listener {
	ftm_push_listener_answers_t answers;
	const ftm_log_t		*log;
	struct MHD_Daemon	*mhd;
	char			*cert;
	char			*key;
	size_t			key_len;
	ftm_enrol_t		*enrol;		/* the enrolment page, when its owner set one (atomic) */
	unsigned		cap;		/* connections at once (FTM_PUSH_CONN_MAX or less) */
	pthread_mutex_t		mu;		/* guards everything below */
	pthread_cond_t		wake;
	conn_t			*head, *tail;	/* oldest first */
	unsigned		open;		/* connections not yet shut down by us */
	conn_stats_t		stats;		/* since the last report */
	time_t			reported;
	bool			stopping;
	bool			watching;	/* the watchdog thread runs */
	pthread_t		watchdog;
	atomic_uint		tls_errors;	/* TLS errors libmicrohttpd logged, not yet tied to a connection */
	time_t			tls_reported;	/* the last line about a refused handshake (under mu) */
	unsigned		tls_unreported;	/* refused handshakes since that line (under mu) */
};

typedef struct request {
	size_t	len;
	bool	too_big;
	char	body[FTM_PUSH_BODY_MAX + 1];
} request_t;

static char *read_pem(const char *path, size_t *len_out, char *err, size_t err_len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (f == NULL) {
		snprintf(err, err_len, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	buf = malloc(PEM_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, PEM_MAX, f);
	if (ferror(f) || n == 0 || n == PEM_MAX) {
		fclose(f);
		OPENSSL_cleanse(buf, PEM_MAX);
		free(buf);
		snprintf(err, err_len, "cannot read %s (empty, unreadable or over %d bytes)", path, PEM_MAX);
		return NULL;
	}
	fclose(f);
	buf[n] = '\0';
	if (len_out)
		*len_out = n;
	return buf;
}

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *json, const char *allow)
{
	struct MHD_Response *r;
	char body[600];
	enum MHD_Result rc;

	snprintf(body, sizeof(body), "%s\n", json);
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	/* One request per connection: the deadline then bounds a connection's whole life. */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* The page may hold a seed: MHD frees it through this, and it is zeroed first. */
static void free_page(void *body)
{
	OPENSSL_cleanse(body, strlen(body));
	free(body);
}

static enum MHD_Result respond_page(struct MHD_Connection *c, ftm_enrol_reply_t *reply, bool head)
{
	struct MHD_Response *r;
	enum MHD_Result rc;

	if (reply->body == NULL)
		return MHD_NO;
	if (head) {
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
		ftm_enrol_reply_free(reply);
	} else {
		r = MHD_create_response_from_buffer_with_free_callback(reply->body_len, reply->body, free_page);
		if (r != NULL)
			reply->body = NULL;	/* MHD owns it now */
		else
			ftm_enrol_reply_free(reply);
	}
	if (r == NULL)
		return MHD_NO;
	for (size_t i = 0; ftm_enrol_headers[i] != NULL; i += 2)
		MHD_add_response_header(r, ftm_enrol_headers[i], ftm_enrol_headers[i + 1]);
	MHD_add_response_header(r, "Content-Security-Policy", ftm_enrol_csp());
	if (reply->allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, reply->allow);
	rc = MHD_queue_response(c, reply->status, r);
	MHD_destroy_response(r);
	return rc;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	snprintf(out, len, "?");
	if (ci == NULL || ci->client_addr == NULL)
		return;
	if (ci->client_addr->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ci->client_addr)->sin_addr, out,
			  (socklen_t)len);
	else if (ci->client_addr->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ci->client_addr)->sin6_addr, out,
			  (socklen_t)len);
}

/* The enrolment page: GET (and HEAD) answered at once, the confirm form's body read up to its limit. */
static enum MHD_Result handle_enrol(ftm_push_listener_t *l, ftm_enrol_t *enrol, struct MHD_Connection *c,
				    const char *code, const char *method, const char *upload_data,
				    size_t *upload_data_size, void **req_cls)
{
	request_t *rq = *req_cls;
	ftm_enrol_reply_t reply;
	char ip[INET6_ADDRSTRLEN + 1];
	bool post = strcmp(method, "POST") == 0;

	(void)l;
	if (rq == NULL && post) {
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);

		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		*req_cls = rq;
		/* an announced oversized body is refused without reading it */
		if (cl && strtoull(cl, NULL, 10) > FTM_ENROL_BODY_MAX)
			rq->too_big = true;
		else
			return MHD_YES;
	}
	if (post && *upload_data_size > 0) {
		if (rq->len + *upload_data_size > FTM_ENROL_BODY_MAX)
			rq->too_big = true;
		else if (!rq->too_big) {
			memcpy(rq->body + rq->len, upload_data, *upload_data_size);
			rq->len += *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	client_ip(c, ip, sizeof(ip));
	if (post)
		rq->body[rq->len] = '\0';
	ftm_enrol_handle(enrol, method, code,
			 MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
			 post ? rq->body : NULL, post ? (rq->too_big ? FTM_ENROL_BODY_MAX + 1 : rq->len) : 0,
			 ip, time(NULL), &reply);
	return respond_page(c, &reply, strcmp(method, "HEAD") == 0);
}

/* The per-address key: an IPv4 address as ::ffff:a.b.c.d, an IPv6 address cut to its /64 (one
 * host usually owns a whole /64, so counting single IPv6 addresses would limit nothing). */
static bool addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const uint8_t *a = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(a, mapped, 12) == 0)		/* IPv4 on the dual-stack socket */
			memcpy(key, a, 16);
		else
			memcpy(key, a, 8);
		return true;
	}
	return false;
}

/* Caller holds l->mu. shutdown() (not close: libmicrohttpd owns the descriptor) makes the socket
 * readable at EOF, so libmicrohttpd closes the connection on its next turn and tells closed(). */
static void conn_shut(ftm_push_listener_t *l, conn_t *c)
{
	if (c->closing)
		return;
	c->closing = true;
	l->open--;
	shutdown(c->fd, SHUT_RDWR);
}

/* libmicrohttpd's accept policy, called for each new connection before it is served (in the
 * listener's one polling thread, like connection_notify: the count cannot change in between). */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *sa, socklen_t sa_len)
{
	ftm_push_listener_t *l = cls;
	uint8_t key[16];
	unsigned same = 0;
	enum MHD_Result rc = MHD_YES;

	(void)sa_len;
	if (!addr_key(sa, key))
		return MHD_NO;
	pthread_mutex_lock(&l->mu);
	for (conn_t *c = l->head; c; c = c->next)
		if (!c->closing && memcmp(c->addr, key, 16) == 0)
			same++;
	if (same >= FTM_PUSH_CONN_PER_IP) {
		l->stats.per_addr++;
		rc = MHD_NO;
	} else if (l->open >= l->cap) {
		/* Full: the oldest connection goes. It is the closest to its deadline, and a phone's
		 * callback takes well under a second, so a flood evicts itself, not the phones. */
		for (conn_t *c = l->head; c; c = c->next)
			if (!c->closing) {
				conn_shut(l, c);
				l->stats.evicted++;
				break;
			}
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

/* A connection that closes before any request, after libmicrohttpd logged a TLS error, is a client that
 * refused or broke the handshake: a phone that does not trust the certificate, most of the time. One
 * line per REPORT_S with the latest address, so a flood of broken handshakes cannot flood the log. */
static void report_tls_failure(ftm_push_listener_t *l, struct MHD_Connection *mc)
{
	unsigned pending = atomic_load(&l->tls_errors), more;
	char ip[INET6_ADDRSTRLEN + 1];
	time_t now = time(NULL);

	while (pending > 0 && !atomic_compare_exchange_weak(&l->tls_errors, &pending, pending - 1))
		;
	if (pending == 0)
		return;
	ftm_metrics_tls_failure();
	pthread_mutex_lock(&l->mu);
	if (l->tls_reported != 0 && now - l->tls_reported < REPORT_S) {
		l->tls_unreported++;
		pthread_mutex_unlock(&l->mu);
		return;
	}
	more = l->tls_unreported;
	l->tls_unreported = 0;
	l->tls_reported = now;
	pthread_mutex_unlock(&l->mu);
	client_ip(mc, ip, sizeof(ip));
	if (more > 0)
		ftm_log(l->log, FTM_LOG_WARN, "push listener: a client could not verify or complete TLS with the "
			"callback certificate (from %s; %u more since the last such line)", ip, more);
	else
		ftm_log(l->log, FTM_LOG_WARN, "push listener: a client could not verify or complete TLS with the "
			"callback certificate (from %s)", ip);
}

static void connection_notify(void *cls, struct MHD_Connection *mc, void **socket_context,
			      enum MHD_ConnectionNotificationCode toe)
{
	ftm_push_listener_t *l = cls;
	conn_t *c = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *fd = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
		const union MHD_ConnectionInfo *ad = MHD_get_connection_info(mc,
									 MHD_CONNECTION_INFO_CLIENT_ADDRESS);

		if (fd == NULL)
			return;
		c = calloc(1, sizeof(*c));
		if (c == NULL) {	/* cannot watch it: do not serve it */
			shutdown(fd->connect_fd, SHUT_RDWR);
			return;
		}
		c->fd = fd->connect_fd;
		addr_key(ad ? ad->client_addr : NULL, c->addr);
		c->accepted_ms = ftm_mono_ms();
		pthread_mutex_lock(&l->mu);
		c->prev = l->tail;
		if (l->tail)
			l->tail->next = c;
		else
			l->head = c;
		l->tail = c;
		l->open++;
		pthread_mutex_unlock(&l->mu);
		*socket_context = c;
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_CLOSED || c == NULL)
		return;
	/* Called before libmicrohttpd closes the descriptor: after this the watchdog cannot touch it. */
	pthread_mutex_lock(&l->mu);
	if (!c->closing)
		l->open--;
	if (c->prev)
		c->prev->next = c->next;
	else
		l->head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		l->tail = c->prev;
	pthread_mutex_unlock(&l->mu);
	if (!c->requested && !c->closing)
		report_tls_failure(l, mc);
	free(c);
	*socket_context = NULL;
}

/* Nothing received yet on an open TCP connection (not even a TLS ClientHello). */
static bool conn_silent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return false;	/* cannot tell: the deadline still applies */
	return ti.tcpi_bytes_received == 0;
}

/* Caller holds l->mu. One line about what the limits closed, at most every REPORT_S seconds. */
static void conn_report(ftm_push_listener_t *l)
{
	conn_stats_t s = l->stats;
	time_t now = time(NULL);

	if (now - l->reported < REPORT_S || (s.deadline | s.silent | s.per_addr | s.evicted) == 0)
		return;
	l->reported = now;
	memset(&l->stats, 0, sizeof(l->stats));
	ftm_log(l->log, FTM_LOG_WARN, "push listener: closed %u connections at the %d s deadline, %u silent for "
		"%d s, refused %u over %d per address, evicted %u at the limit of %u (%u open)", s.deadline,
		FTM_PUSH_CONN_DEADLINE, s.silent, FTM_PUSH_CONN_SILENT, s.per_addr, FTM_PUSH_CONN_PER_IP, s.evicted,
		l->cap, l->open);
}

/* The absolute deadline: libmicrohttpd's own timeout restarts with every byte, so a client that
 * trickles its handshake or headers would hold a connection for ever without this. */
static void *watch(void *arg)
{
	ftm_push_listener_t *l = arg;

	pthread_mutex_lock(&l->mu);
	while (!l->stopping) {
		struct timespec until;
		int64_t now = ftm_mono_ms();

		for (conn_t *c = l->head; c; c = c->next) {
			int64_t age = now - c->accepted_ms;

			if (age < FTM_PUSH_CONN_SILENT * 1000)
				break;		/* in accept order: the rest are younger */
			if (c->closing)
				continue;
			if (age >= FTM_PUSH_CONN_DEADLINE * 1000) {
				conn_shut(l, c);
				l->stats.deadline++;
			} else if (!c->silent_checked) {
				c->silent_checked = true;
				if (conn_silent(c->fd)) {
					conn_shut(l, c);
					l->stats.silent++;
				}
			}
		}
		conn_report(l);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += WATCH_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&l->wake, &l->mu, &until);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

/* The cap: FTM_PUSH_CONN_MAX, or half the open-file limit when that is lower (the host process,
 * FreeRADIUS or ftmpushd, needs descriptors of its own while the listener is full). */
static unsigned conn_cap(const ftm_log_t *log)
{
	struct rlimit rl;
	unsigned cap = FTM_PUSH_CONN_MAX;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < cap) {
		cap = rl.rlim_cur / 2 < CONN_FLOOR ? CONN_FLOOR : (unsigned)(rl.rlim_cur / 2);
		ftm_log(log, FTM_LOG_WARN, "push listener: the open-file limit (%llu) allows %u callback "
			"connections at once, not %d: raise it (systemd: LimitNOFILE=%d)",
			(unsigned long long)rl.rlim_cur, cap, FTM_PUSH_CONN_MAX, 2 * FTM_PUSH_CONN_MAX + 1024);
	}
	return cap;
}

/* A request arrived on this connection, so its TLS handshake completed (see report_tls_failure). */
static void mark_requested(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	if (sc && sc->socket_context)
		((conn_t *)sc->socket_context)->requested = true;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ftm_push_listener_t *l = cls;
	request_t *rq = *req_cls;
	char reply[512], ip[INET6_ADDRSTRLEN + 1];
	bool is_cb = strncmp(url, CB_PREFIX, strlen(CB_PREFIX)) == 0;
	bool is_gw = strcmp(url, GW_PATH) == 0;
	bool is_health = strcmp(url, HEALTH_PATH) == 0;
	ftm_enrol_t *enrol = __atomic_load_n(&l->enrol, __ATOMIC_ACQUIRE);
	bool is_enrol = enrol != NULL && strncmp(url, FTM_ENROL_PREFIX, strlen(FTM_ENROL_PREFIX)) == 0;
	int st;

	(void)version;
	if (rq == NULL)
		mark_requested(c);
	if (is_enrol)
		return handle_enrol(l, enrol, c, url + strlen(FTM_ENROL_PREFIX), method, upload_data,
				    upload_data_size, req_cls);
	if (rq == NULL) {
		/* First call: headers only. Refuse what is not documented before reading any body. */
		if (!is_cb && !is_gw && !is_health)
			return respond(c, MHD_HTTP_NOT_FOUND, "{\"error\":\"not found\"}", NULL);
		if (is_health && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"method not allowed\"}", "GET");
		if (!is_health && strcmp(method, "POST") != 0)
			return respond(c, MHD_HTTP_METHOD_NOT_ALLOWED, "{\"error\":\"method not allowed\"}", "POST");
		if (is_health)
			return respond(c, MHD_HTTP_OK, "{\"status\":\"ok\"}", NULL);
		const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > FTM_PUSH_BODY_MAX)
			return respond(c, 413, "{\"error\":\"body too large\"}", NULL);
		rq = calloc(1, sizeof(*rq));
		if (rq == NULL)
			return MHD_NO;
		*req_cls = rq;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (rq->len + *upload_data_size > FTM_PUSH_BODY_MAX) {
			rq->too_big = true;
		} else {
			memcpy(rq->body + rq->len, upload_data, *upload_data_size);
			rq->len += *upload_data_size;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (rq->too_big)
		return respond(c, 413, "{\"error\":\"body too large\"}", NULL);
	rq->body[rq->len] = '\0';
	client_ip(c, ip, sizeof(ip));
	if (is_cb)
		st = l->answers.capability(l->answers.ctx, url + strlen(CB_PREFIX), time(NULL), reply, sizeof(reply));
	else
		st = l->answers.gateway(l->answers.ctx, rq->body, rq->len, time(NULL), reply, sizeof(reply));
	ftm_log(l->log, st == 200 ? FTM_LOG_INFO : FTM_LOG_WARN, "push callback from %s: %s %s -> %d", ip, method,
		is_cb ? CB_PREFIX "..." : url, st);
	return respond(c, (unsigned)st, reply, NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	if (*req_cls) {
		OPENSSL_cleanse(*req_cls, sizeof(request_t));
		free(*req_cls);
		*req_cls = NULL;
	}
}

__attribute__((format(printf, 2, 0)))
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	ftm_push_listener_t *l = cls;
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	/* MHD's TLS messages name the library's view ("handshake message out of context"), not the cause;
	 * the connection's close below says what it means for the admin. */
	if (strcasestr(line, "TLS") || strcasestr(line, "handshake"))
		atomic_fetch_add(&l->tls_errors, 1);
	ftm_log(l->log, FTM_LOG_DEBUG, "push listener: %s", line);
}

static struct MHD_Daemon *start(ftm_push_listener_t *l, unsigned flags, unsigned port, const struct sockaddr *sa)
{
	/* libmicrohttpd's own limit sits above the cap: accept_policy evicts before it is reached. */
	unsigned mhd_limit = l->cap + CONN_SLACK;

	if (sa)
		return MHD_start_daemon(flags, (uint16_t)port, accept_policy, l, handle, l,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
					MHD_OPTION_SOCK_ADDR, sa,
					MHD_OPTION_HTTPS_MEM_CERT, l->cert, MHD_OPTION_HTTPS_MEM_KEY, l->key,
					MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FTM_PUSH_CONN_TIMEOUT,
					MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
					MHD_OPTION_NOTIFY_CONNECTION, connection_notify, l,
					MHD_OPTION_NOTIFY_COMPLETED, completed, l, MHD_OPTION_END);
	return MHD_start_daemon(flags, (uint16_t)port, accept_policy, l, handle, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
				MHD_OPTION_HTTPS_MEM_CERT, l->cert, MHD_OPTION_HTTPS_MEM_KEY, l->key,
				MHD_OPTION_CONNECTION_LIMIT, mhd_limit,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FTM_PUSH_CONN_TIMEOUT,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
				MHD_OPTION_NOTIFY_CONNECTION, connection_notify, l,
				MHD_OPTION_NOTIFY_COMPLETED, completed, l, MHD_OPTION_END);
}

/* Start-up: say now what phones would otherwise only show as a refused callback. */
static void warn_certificate(const char *pem, const ftm_config_t *cfg, const ftm_log_t *log)
{
	char problem[400];

	if (ftm_diag_cert_problem(pem, cfg->push.server, time(NULL), problem, sizeof(problem)) != 0)
		ftm_log(log, FTM_LOG_WARN, "push listener: %s: %s", cfg->push.server_cert, problem);
}

/* ---- who holds the callback port (FreeRADIUS's listener and ftmpushd both default to 4433) ---- */

/* The inode of a listening TCP socket on port, from /proc/net/tcp or tcp6; 0 if none is seen. */
static unsigned long listening_inode(const char *table, unsigned port)
{
	char line[512];
	unsigned long inode = 0;
	FILE *f = fopen(table, "re");

	if (f == NULL)
		return 0;
	while (inode == 0 && fgets(line, sizeof(line), f) != NULL) {
		unsigned lport, st;
		unsigned long ino;

		/* "sl local_address:port rem_address:port st tx:rx tr:tm retrnsmt uid timeout inode" */
		if (sscanf(line, " %*s %*[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*s %*s %lu", &lport, &st, &ino) == 3 &&
		    lport == port && st == 0x0A /* TCP_LISTEN */)
			inode = ino;
	}
	fclose(f);
	return inode;
}

/* "freeradius (pid 123)" for the process holding socket inode, or "" when /proc does not tell us. */
static void socket_owner(unsigned long inode, char *who, size_t who_len)
{
	char want[64], path[640], link[64];
	DIR *procs = opendir("/proc");
	struct dirent *p;

	who[0] = '\0';
	if (procs == NULL)
		return;
	snprintf(want, sizeof(want), "socket:[%lu]", inode);
	while (who[0] == '\0' && (p = readdir(procs)) != NULL) {
		DIR *fds;
		struct dirent *fd;

		if (p->d_name[0] < '1' || p->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/fd", p->d_name);
		if ((fds = opendir(path)) == NULL)
			continue;
		while ((fd = readdir(fds)) != NULL) {
			ssize_t n;

			snprintf(path, sizeof(path), "/proc/%s/fd/%s", p->d_name, fd->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strcmp(link, want) == 0) {
				char comm[64] = "?";
				FILE *c;

				snprintf(path, sizeof(path), "/proc/%s/comm", p->d_name);
				if ((c = fopen(path, "re")) != NULL) {
					if (fgets(comm, sizeof(comm), c) != NULL)
						comm[strcspn(comm, "\n")] = '\0';
					fclose(c);
				}
				snprintf(who, who_len, "%.63s (pid %.20s)", comm, p->d_name);
				break;
			}
		}
		closedir(fds);
	}
	closedir(procs);
}

/* Non-zero when something already listens on TCP port; *who names it when /proc shows it. */
static bool port_taken(unsigned port, char *who, size_t who_len)
{
	unsigned long inode = listening_inode("/proc/net/tcp6", port);

	if (inode == 0)
		inode = listening_inode("/proc/net/tcp", port);
	who[0] = '\0';
	if (inode == 0)
		return false;
	socket_owner(inode, who, who_len);
	return true;
}

ftm_push_listener_t *ftm_push_listener_start(const ftm_push_listener_answers_t *answers, const ftm_config_t *cfg,
					     const char *bind_addr, const ftm_log_t *log, char *err, size_t err_len)
{
	ftm_push_listener_t *l = calloc(1, sizeof(*l));
	/* epoll: select() could not watch more than FD_SETSIZE (1024) connections. One polling thread
	 * runs accept_policy and connection_notify, so they see a consistent count. */
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG |
			 MHD_USE_ITC;	/* MHD_quiesce_daemon: the port closes first at stop */
	unsigned port = cfg->push.server_port;
	char where[300], who[128];

	if (l == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	l->answers = *answers;
	l->log = log;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->wake, NULL);
	l->cap = conn_cap(log);
	if (!cfg->push.server_cert[0] || !cfg->push.server_key[0]) {
		snprintf(err, err_len, "push needs server_cert and server_key for the HTTPS callback listener");
		goto fail;
	}
	l->cert = read_pem(cfg->push.server_cert, NULL, err, err_len);
	if (l->cert == NULL)
		goto fail;
	l->key = read_pem(cfg->push.server_key, &l->key_len, err, err_len);
	if (l->key == NULL)
		goto fail;
	ftm_protect_lock(l->key, l->key_len + 1);	/* the TLS private key: never swapped, never in a core */
	warn_certificate(l->cert, cfg, log);
	if (bind_addr != NULL && bind_addr[0] != '\0') {
		const char *addr = bind_addr;
		struct sockaddr_in sin;
		struct sockaddr_in6 sin6;

		memset(&sin, 0, sizeof(sin));
		memset(&sin6, 0, sizeof(sin6));
		if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
			sin.sin_family = AF_INET;
			sin.sin_port = htons((uint16_t)port);
			l->mhd = start(l, flags, port, (const struct sockaddr *)&sin);
		} else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
			sin6.sin6_family = AF_INET6;
			sin6.sin6_port = htons((uint16_t)port);
			l->mhd = start(l, flags | MHD_USE_IPv6, port, (const struct sockaddr *)&sin6);
		}
		snprintf(where, sizeof(where), "%s (%s) port %u", addr, cfg->push.interface, port);
	} else {
		l->mhd = start(l, flags | MHD_USE_DUAL_STACK, port, NULL);
		if (l->mhd == NULL && !port_taken(port, who, sizeof(who))) {	/* no IPv6 here: IPv4 only */
			ftm_log(log, FTM_LOG_WARN, "push listener: IPv6 unavailable, listening on IPv4 only");
			l->mhd = start(l, flags, port, NULL);
		}
		snprintf(where, sizeof(where), "all addresses port %u", port);
	}
	if (l->mhd == NULL && port_taken(port, who, sizeof(who))) {
		/* The usual cause: FreeRADIUS's rlm_ftmpush and ftmpushd on one host, both on 4433. */
		snprintf(err, err_len, "push listener: TCP port %u (push.server_port) is already in use by %s: "
			 "give one of them another push.server_port (ftmpushd and FreeRADIUS's ftmpush module "
			 "both default to 4433)", port, who[0] ? who : "another process (ss -ltnp shows which)");
		goto fail;
	}
	if (l->mhd == NULL) {
		snprintf(err, err_len, "push listener: cannot listen with TLS on %s (port in use, or bad "
			 "server_cert/server_key)", where);
		goto fail;
	}
	if (pthread_create(&l->watchdog, NULL, watch, l) != 0) {
		snprintf(err, err_len, "push listener: cannot start its watchdog thread");
		goto fail;
	}
	l->watching = true;
	ftm_log(log, FTM_LOG_INFO, "push listener: HTTPS on %s (at most %u connections, %d per address, "
		"%d s each)", where, l->cap, FTM_PUSH_CONN_PER_IP, FTM_PUSH_CONN_DEADLINE);
	return l;
fail:
	ftm_push_listener_stop(l);
	return NULL;
}

void ftm_push_listener_set_enrol(ftm_push_listener_t *l, ftm_enrol_t *enrol)
{
	if (l != NULL)
		__atomic_store_n(&l->enrol, enrol, __ATOMIC_RELEASE);
}

void ftm_push_listener_stop(ftm_push_listener_t *l)
{
	MHD_socket port = MHD_INVALID_SOCKET;

	if (l == NULL)
		return;
	/* The port first: a callback from now on is refused at connect (never answered by a server on
	 * its way out), and a restarted server can bind it at once. The socket itself stays open until
	 * libmicrohttpd's thread is gone (its rule for a quiesced socket). */
	if (l->mhd) {
		port = MHD_quiesce_daemon(l->mhd);
		if (port != MHD_INVALID_SOCKET)
			shutdown(port, SHUT_RDWR);
	}
	if (l->watching) {
		pthread_mutex_lock(&l->mu);
		l->stopping = true;
		pthread_cond_signal(&l->wake);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->watchdog, NULL);
	}
	if (l->mhd)
		MHD_stop_daemon(l->mhd);	/* closes every connection (connection_notify frees them) */
	if (port != MHD_INVALID_SOCKET)
		close(port);
	pthread_cond_destroy(&l->wake);
	pthread_mutex_destroy(&l->mu);
	if (l->key) {
		OPENSSL_cleanse(l->key, l->key_len);
		ftm_protect_unlock(l->key, l->key_len + 1);
		free(l->key);
	}
	free(l->cert);
	free(l);
}

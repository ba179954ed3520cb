/* push_listener: the HTTPS callback listener (libmicrohttpd), strict paths and limits (docs/protocol.md §4). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "ftm_diagnose.h"
#include "ftm_push.h"
#include "push_listener.h"

#define PEM_MAX (256 * 1024)
#define CB_PREFIX "/ftm/v1/cb/"
#define GW_PATH "/ftm/v1/gw"
#define HEALTH_PATH "/ftm/v1/health"

struct ftm_push_listener {
	ftm_push_listener_answers_t answers;
	const ftm_log_t		*log;
	struct MHD_Daemon	*mhd;
	char			*cert;
	char			*key;
	size_t			key_len;
	atomic_uint		tls_errors;	/* TLS errors logged by MHD, not yet tied to a connection */
};

/* Per connection: did it get as far as a request? One that closes without, after MHD logged a TLS
 * error, is a client that refused or broke the handshake (a phone that does not trust the certificate). */
struct connection_seen {
	bool	requested;
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
	if (allow)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	rc = MHD_queue_response(c, status, r);
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

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ftm_push_listener_t *l = cls;
	request_t *rq = *req_cls;
	char reply[512], ip[INET6_ADDRSTRLEN + 1];
	bool is_cb = strncmp(url, CB_PREFIX, strlen(CB_PREFIX)) == 0;
	bool is_gw = strcmp(url, GW_PATH) == 0;
	bool is_health = strcmp(url, HEALTH_PATH) == 0;
	int st;

	(void)version;
	if (rq == NULL) {
		const union MHD_ConnectionInfo *sc = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		if (sc && sc->socket_context)
			((struct connection_seen *)sc->socket_context)->requested = true;
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

static void connection_notified(void *cls, struct MHD_Connection *c, void **socket_context,
				enum MHD_ConnectionNotificationCode code)
{
	ftm_push_listener_t *l = cls;
	struct connection_seen *seen = *socket_context;
	unsigned pending;
	char ip[INET6_ADDRSTRLEN + 1];

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		*socket_context = calloc(1, sizeof(struct connection_seen));
		return;
	}
	if (seen && !seen->requested) {
		pending = atomic_load(&l->tls_errors);
		while (pending > 0 && !atomic_compare_exchange_weak(&l->tls_errors, &pending, pending - 1))
			;
		if (pending > 0) {
			client_ip(c, ip, sizeof(ip));
			ftm_log(l->log, FTM_LOG_WARN, "push listener: a client could not verify or complete TLS with "
				"the callback certificate (from %s)", ip);
		}
	}
	free(seen);
	*socket_context = NULL;
}

static struct MHD_Daemon *start(ftm_push_listener_t *l, unsigned flags, unsigned port, const struct sockaddr *sa)
{
	if (sa)
		return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, l,
					MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
					MHD_OPTION_SOCK_ADDR, sa,
					MHD_OPTION_HTTPS_MEM_CERT, l->cert, MHD_OPTION_HTTPS_MEM_KEY, l->key,
					MHD_OPTION_CONNECTION_LIMIT, (unsigned)FTM_PUSH_CONN_MAX,
					MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)FTM_PUSH_CONN_PER_IP,
					MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FTM_PUSH_CONN_TIMEOUT,
					MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
					MHD_OPTION_NOTIFY_COMPLETED, completed, l,
					MHD_OPTION_NOTIFY_CONNECTION, connection_notified, l, MHD_OPTION_END);
	return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, l,
				MHD_OPTION_EXTERNAL_LOGGER, mhd_log, l,
				MHD_OPTION_HTTPS_MEM_CERT, l->cert, MHD_OPTION_HTTPS_MEM_KEY, l->key,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)FTM_PUSH_CONN_MAX,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)FTM_PUSH_CONN_PER_IP,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)FTM_PUSH_CONN_TIMEOUT,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
				MHD_OPTION_NOTIFY_COMPLETED, completed, l,
				MHD_OPTION_NOTIFY_CONNECTION, connection_notified, l, MHD_OPTION_END);
}

ftm_push_listener_t *ftm_push_listener_start(const ftm_push_listener_answers_t *answers, const ftm_config_t *cfg,
					     const char *bind_addr, const ftm_log_t *log, char *err, size_t err_len)
{
	ftm_push_listener_t *l = calloc(1, sizeof(*l));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS | MHD_USE_ERROR_LOG;
	unsigned port = cfg->push.server_port;
	char where[300];

	if (l == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	l->answers = *answers;
	l->log = log;
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
	{
		char problem[400];

		if (ftm_diag_cert_problem(l->cert, cfg->push.server, time(NULL), problem, sizeof(problem)) != 0)
			ftm_log(log, FTM_LOG_WARN, "push listener: %s: %s", cfg->push.server_cert, problem);
	}
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
		if (l->mhd == NULL) {	/* no IPv6 on this host: IPv4 only */
			ftm_log(log, FTM_LOG_WARN, "push listener: IPv6 unavailable, listening on IPv4 only");
			l->mhd = start(l, flags, port, NULL);
		}
		snprintf(where, sizeof(where), "all addresses port %u", port);
	}
	if (l->mhd == NULL) {
		snprintf(err, err_len, "push listener: cannot listen with TLS on %s (port in use, or bad "
			 "server_cert/server_key)", where);
		goto fail;
	}
	ftm_log(log, FTM_LOG_INFO, "push listener: HTTPS on %s", where);
	return l;
fail:
	ftm_push_listener_stop(l);
	return NULL;
}

void ftm_push_listener_stop(ftm_push_listener_t *l)
{
	if (l == NULL)
		return;
	if (l->mhd)
		MHD_stop_daemon(l->mhd);
	if (l->key) {
		OPENSSL_cleanse(l->key, l->key_len);
		free(l->key);
	}
	free(l->cert);
	free(l);
}

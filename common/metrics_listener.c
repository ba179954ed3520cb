/* metrics_listener: the plain-HTTP listener (libmicrohttpd) that serves GET /metrics and nothing else. */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <microhttpd.h>

#include "ftm_metrics.h"
#include "ftm_util.h"

#define METRICS_PATH		"/metrics"
#define METRICS_CONN_MAX	16	/* scrapers at once: one Prometheus, an agent, an admin's curl */
#define METRICS_CONN_TIMEOUT	10	/* idle seconds before a connection is closed */
#define METRICS_CONTENT_TYPE	"text/plain; version=0.0.4; charset=utf-8"

struct ftm_metrics_listener {
	struct MHD_Daemon	*mhd;
	char			where[INET6_ADDRSTRLEN + 16];	/* "ADDR:PORT" as configured, normalised */
	unsigned		users;
};

/* One per process, like the counters it serves: FreeRADIUS may instantiate the module more than once. */
static pthread_mutex_t one_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ftm_metrics_listener *one;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text, const char *allow)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result rc;

	if (r == NULL)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	if (allow != NULL)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	rc = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return rc;
}

/* Answered from the headers alone: a body is never read, whatever the request announces. */
static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
			      const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct MHD_Response *r;
	enum MHD_Result rc;
	char *text;
	size_t len = 0;

	(void)cls;
	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(url, METRICS_PATH) != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, "not found: only GET /metrics is served here\n", NULL);
	if (strcmp(method, "GET") != 0)
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed: GET /metrics\n", "GET");
	text = ftm_metrics_render(&len);
	if (text == NULL)
		return reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n", NULL);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (r == NULL) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, METRICS_CONTENT_TYPE);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	rc = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return rc;
}

static struct MHD_Daemon *start(const char *addr, unsigned port)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	const struct sockaddr *sa;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;

	memset(&sin, 0, sizeof(sin));
	memset(&sin6, 0, sizeof(sin6));
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)port);
		sa = (const struct sockaddr *)&sin;
	} else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons((uint16_t)port);
		sa = (const struct sockaddr *)&sin6;
		flags |= MHD_USE_IPv6;
	} else {
		return NULL;
	}
	return MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, handle, NULL,
				MHD_OPTION_SOCK_ADDR, sa,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)METRICS_CONN_MAX,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)METRICS_CONN_MAX / 2,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)METRICS_CONN_TIMEOUT,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(16 * 1024),
				MHD_OPTION_END);
}

int ftm_metrics_listener_start(const ftm_config_t *cfg, const char *frontend, const ftm_log_t *log,
			       ftm_metrics_listener_t **out, char *err, size_t err_len)
{
	char addr[INET6_ADDRSTRLEN + 1], where[sizeof(one->where)];
	unsigned port = 0;
	int rc = -1;

	*out = NULL;
	if (cfg->metrics_listen[0] == '\0')
		return 0;
	if (ftm_metrics_parse_listen(cfg->metrics_listen, cfg->metrics_allow_remote, addr, sizeof(addr), &port,
				     err, err_len) != 0)
		return -1;
	snprintf(where, sizeof(where), strchr(addr, ':') ? "[%s]:%u" : "%s:%u", addr, port);
	pthread_mutex_lock(&one_lock);
	if (one != NULL) {
		if (strcmp(one->where, where) == 0) {
			one->users++;
			*out = one;
			rc = 0;
		} else {
			ftm_set_err(err, err_len, "metrics_listen %s: this process serves its metrics on %s already "
				    "(one listener per process: give every ftmpush module the same metrics_listen)",
				    where, one->where);
		}
		goto out;
	}
	one = calloc(1, sizeof(*one));
	if (one == NULL) {
		ftm_set_err(err, err_len, "out of memory");
		goto out;
	}
	one->mhd = start(addr, port);
	if (one->mhd == NULL) {
		ftm_set_err(err, err_len, "metrics_listen %s: cannot listen there (address not on this host, or "
			    "the port is in use: ss -ltnp shows by whom)", where);
		free(one);
		one = NULL;
		goto out;
	}
	ftm_copy(one->where, sizeof(one->where), where);
	one->users = 1;
	ftm_metrics_set_frontend(frontend);
	*out = one;
	rc = 0;
	ftm_log(log, FTM_LOG_INFO, "metrics: Prometheus text on http://%s%s (logins counted as front end %s)",
		where, METRICS_PATH, frontend);
out:
	pthread_mutex_unlock(&one_lock);
	return rc;
}

void ftm_metrics_listener_stop(ftm_metrics_listener_t *l)
{
	struct MHD_Daemon *stop = NULL;

	if (l == NULL)
		return;
	pthread_mutex_lock(&one_lock);
	if (l == one && --one->users == 0) {
		stop = one->mhd;
		free(one);
		one = NULL;
	}
	pthread_mutex_unlock(&one_lock);
	if (stop != NULL)
		MHD_stop_daemon(stop);
}

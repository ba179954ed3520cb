/* fuzz_mhd_stub: libmicrohttpd replaced at its API, so a harness drives push_listener.c's handlers
 * in-process: MHD_start_daemon keeps the callbacks, fuzz_mhd_request plays one request through them. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <microhttpd.h>

#include "fuzz_push.h"

struct MHD_Daemon {
	MHD_AccessHandlerCallback	dh;
	void				*dh_cls;
	MHD_RequestCompletedCallback	completed;
	void				*completed_cls;
	MHD_NotifyConnectionCallback	notify;
	void				*notify_cls;
	MHD_AcceptPolicyCallback	apc;
	void				*apc_cls;
};

struct MHD_Connection {
	const char		*content_length;	/* NULL: no such header */
	struct sockaddr_in	peer;
	union MHD_ConnectionInfo info;
	unsigned		status;			/* queued reply, 0: none */
	char			reply[1024];
};

struct MHD_Response {
	char	*body;
	size_t	len;
};

static struct MHD_Daemon the_daemon;
static int daemon_running;

struct MHD_Daemon *MHD_start_daemon(unsigned int flags, uint16_t port, MHD_AcceptPolicyCallback apc, void *apc_cls,
				    MHD_AccessHandlerCallback dh, void *dh_cls, ...)
{
	va_list ap;
	int opt;

	(void)flags;
	(void)port;
	if (daemon_running)
		return NULL;	/* "port in use" */
	memset(&the_daemon, 0, sizeof(the_daemon));
	the_daemon.dh = dh;
	the_daemon.dh_cls = dh_cls;
	the_daemon.apc = apc;
	the_daemon.apc_cls = apc_cls;
	va_start(ap, dh_cls);
	while ((opt = va_arg(ap, int)) != MHD_OPTION_END) {
		switch (opt) {
		case MHD_OPTION_EXTERNAL_LOGGER:
			(void)va_arg(ap, void *);
			(void)va_arg(ap, void *);
			break;
		case MHD_OPTION_NOTIFY_COMPLETED:
			the_daemon.completed = va_arg(ap, MHD_RequestCompletedCallback);
			the_daemon.completed_cls = va_arg(ap, void *);
			break;
		case MHD_OPTION_NOTIFY_CONNECTION:
			the_daemon.notify = va_arg(ap, MHD_NotifyConnectionCallback);
			the_daemon.notify_cls = va_arg(ap, void *);
			break;
		case MHD_OPTION_SOCK_ADDR:
		case MHD_OPTION_HTTPS_MEM_CERT:
		case MHD_OPTION_HTTPS_MEM_KEY:
			(void)va_arg(ap, void *);
			break;
		case MHD_OPTION_CONNECTION_LIMIT:
		case MHD_OPTION_PER_IP_CONNECTION_LIMIT:
		case MHD_OPTION_CONNECTION_TIMEOUT:
			(void)va_arg(ap, unsigned int);
			break;
		case MHD_OPTION_CONNECTION_MEMORY_LIMIT:
			(void)va_arg(ap, size_t);
			break;
		default:
			/* a new option: teach the stub its arguments, or the rest would be misread */
			fprintf(stderr, "fuzz_mhd_stub: MHD option %d unknown to the stub\n", opt);
			abort();
		}
	}
	va_end(ap);
	daemon_running = 1;
	return &the_daemon;
}

/* No real listening socket here: nothing to hand back. */
MHD_socket MHD_quiesce_daemon(struct MHD_Daemon *d)
{
	(void)d;
	return MHD_INVALID_SOCKET;
}

void MHD_stop_daemon(struct MHD_Daemon *d)
{
	(void)d;
	daemon_running = 0;
}

const char *MHD_lookup_connection_value(struct MHD_Connection *c, enum MHD_ValueKind kind, const char *key)
{
	if (kind == MHD_HEADER_KIND && strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		return c->content_length;
	return NULL;
}

const union MHD_ConnectionInfo *MHD_get_connection_info(struct MHD_Connection *c,
							enum MHD_ConnectionInfoType type, ...)
{
	if (type == MHD_CONNECTION_INFO_CLIENT_ADDRESS) {
		c->info.client_addr = (struct sockaddr *)&c->peer;
		return &c->info;
	}
	if (type == MHD_CONNECTION_INFO_CONNECTION_FD) {
		c->info.connect_fd = -1;
		return &c->info;
	}
	return NULL;
}

struct MHD_Response *MHD_create_response_from_buffer(size_t size, void *buffer, enum MHD_ResponseMemoryMode mode)
{
	struct MHD_Response *r = calloc(1, sizeof(*r));

	(void)mode;	/* always copied here */
	if (r == NULL)
		return NULL;
	r->body = malloc(size + 1);
	if (r->body == NULL) {
		free(r);
		return NULL;
	}
	memcpy(r->body, buffer, size);
	r->body[size] = '\0';
	r->len = size;
	return r;
}

/* The enrolment page hands its body over with a free callback (it zeroes the page): copied here, and
 * the callback run at once, as libmicrohttpd does when it is done with the response. */
struct MHD_Response *MHD_create_response_from_buffer_with_free_callback(size_t size, void *buffer,
									MHD_ContentReaderFreeCallback crfc)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(size, buffer, MHD_RESPMEM_MUST_COPY);

	if (r != NULL && crfc != NULL)
		crfc(buffer);
	return r;
}

enum MHD_Result MHD_add_response_header(struct MHD_Response *r, const char *header, const char *content)
{
	(void)r;
	if (header == NULL || content == NULL || strchr(content, '\n') || strchr(content, '\r'))
		abort();	/* a header the listener builds is always one clean line */
	return MHD_YES;
}

enum MHD_Result MHD_queue_response(struct MHD_Connection *c, unsigned int status, struct MHD_Response *r)
{
	if (c->status != 0)
		abort();	/* libmicrohttpd refuses a second response: the listener must never try */
	c->status = status;
	snprintf(c->reply, sizeof(c->reply), "%s", r->body);
	return MHD_YES;
}

void MHD_destroy_response(struct MHD_Response *r)
{
	if (r) {
		free(r->body);
		free(r);
	}
}

/* One request through the listener's callbacks, the way libmicrohttpd calls them: headers first,
 * then the body in chunks (cut at chunk[] sizes), then the final call, then completion. */
unsigned fuzz_mhd_request(const char *method, const char *url, const char *content_length, const char *body,
			  size_t body_len, const uint8_t *chunks, size_t nchunks, char *reply, size_t reply_len)
{
	struct MHD_Connection c;
	void *req_cls = NULL, *sock_cls = NULL;
	size_t off = 0, zero = 0, ci = 0;
	enum MHD_Result rc;

	memset(&c, 0, sizeof(c));
	c.content_length = content_length;
	c.peer.sin_family = AF_INET;
	c.peer.sin_addr.s_addr = htonl(0xC0000201);	/* 192.0.2.1 */
	if (!daemon_running)
		abort();
	if (the_daemon.apc && the_daemon.apc(the_daemon.apc_cls, (struct sockaddr *)&c.peer, sizeof(c.peer)) == MHD_NO)
		goto out;
	if (the_daemon.notify)
		the_daemon.notify(the_daemon.notify_cls, &c, &sock_cls, MHD_CONNECTION_NOTIFY_STARTED);
	rc = the_daemon.dh(the_daemon.dh_cls, &c, url, method, "HTTP/1.1", NULL, &zero, &req_cls);
	while (rc == MHD_YES && c.status == 0 && off < body_len) {
		size_t n = nchunks ? (size_t)chunks[ci++ % nchunks] + 1 : body_len - off, left;

		if (n > body_len - off)
			n = body_len - off;
		left = n;
		rc = the_daemon.dh(the_daemon.dh_cls, &c, url, method, "HTTP/1.1", body + off, &left, &req_cls);
		if (left != 0 && rc == MHD_YES && c.status == 0)
			abort();	/* the handler must consume what it is given */
		off += n;
	}
	if (rc == MHD_YES && c.status == 0)
		rc = the_daemon.dh(the_daemon.dh_cls, &c, url, method, "HTTP/1.1", NULL, &zero, &req_cls);
	if (rc == MHD_YES && c.status == 0)
		abort();	/* the final call must answer */
	if (the_daemon.completed)
		the_daemon.completed(the_daemon.completed_cls, &c, &req_cls, MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (the_daemon.notify)
		the_daemon.notify(the_daemon.notify_cls, &c, &sock_cls, MHD_CONNECTION_NOTIFY_CLOSED);
out:
	snprintf(reply, reply_len, "%s", c.reply);
	return c.status;
}

/* rendezvous_socket: length-prefixed JSON over a Unix socket between PAM processes and ftmpushd. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ftm_config.h"
#include "ftm_message.h"
#include "ftm_otp.h"
#include "ftm_peer.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"
#include "rdv_frame.h"

#define REQUEST_READ_TIMEOUT_MS	5000
#define TIMEOUT_MAX		3600
/* Idle worker threads kept for the next connections (each waits on the listening socket); more connections at once
 * get a thread of their own, which ends with its connection when this many are idle already. */
#define IDLE_WORKERS_MAX	16

/* ---- client ---- */

static void reply_error(ftm_rdv_reply_t *out, const char *message, const char *reason_fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(ftm_rdv_reply_t *out, const char *message, const char *reason_fmt, ...)
{
	va_list ap;

	out->verdict = FTM_RDV_ERROR;
	ftm_copy(out->message, sizeof(out->message), message);
	va_start(ap, reason_fmt);
	vsnprintf(out->reason, sizeof(out->reason), reason_fmt, ap);
	va_end(ap);
}

/* Connect to the daemon and send the push request: the connected fd, or -1 with out filled. */
static int rdv_open(const char *path, const ftm_rdv_request_t *req, unsigned timeout, const ftm_log_t *log,
		    ftm_rdv_reply_t *out)
{
	struct ucred cr;
	json_object *msg;
	int fd;

	fd = ftm_rdv_connect(path);
	if (fd < 0) {
		reply_error(out, FTM_MSG_PUSHD_DOWN,
			    "ftmpushd not reachable at %s: %s", path, strerror(errno));
		ftm_log(log, FTM_LOG_ERR, "push for '%s': %s", req->user ? req->user : "", out->reason);
		return -1;
	}
	if (!ftm_rdv_server_trusted(fd, req->store, &cr)) {
		close(fd);
		reply_error(out, FTM_MSG_PUSHD_UNTRUSTED,
			    "the process at %s (pid %ld uid %lu) is not ftmpushd (not root, not uid %lu, not the token store's owner): refused",
			    path, (long)cr.pid, (unsigned long)cr.uid, (unsigned long)geteuid());
		ftm_log(log, FTM_LOG_ERR, "push for '%s': %s", req->user ? req->user : "", out->reason);
		return -1;
	}

	msg = json_object_new_object();
	json_object_object_add(msg, "v", json_object_new_int(1));
	json_object_object_add(msg, "op", json_object_new_string("push"));
	ftm_rdv_jadd_str(msg, "user", req->user);
	ftm_rdv_jadd_str(msg, "serial", req->serial);
	ftm_rdv_jadd_str(msg, "client", req->client);
	ftm_rdv_jadd_str(msg, "nas", req->nas);
	ftm_rdv_jadd_str(msg, "host", req->host);
	json_object_object_add(msg, "timeout", json_object_new_int((int)timeout));
	if (ftm_rdv_send_json(fd, msg) != 0) {
		json_object_put(msg);
		reply_error(out, FTM_MSG_PUSHD_ERROR, "sending to ftmpushd at %s: %s",
			    path, strerror(errno));
		ftm_log(log, FTM_LOG_ERR, "push for '%s': %s", req->user ? req->user : "", out->reason);
		close(fd);
		return -1;
	}
	json_object_put(msg);
	return fd;
}

/* Read replies until the verdict (returns 1, out filled; errors too are a verdict), or, with
 * stop_at_number, until a "sent" event that carries a number (returns 0, out->number set). */
static int rdv_read(int fd, const char *path, int64_t deadline, int abort_fd, bool stop_at_number,
		    ftm_rdv_sent_fn sent, void *sent_ctx, ftm_rdv_reply_t *out)
{
	for (;;) {
		json_object *msg;
		const char *s;

		msg = ftm_rdv_recv_json(fd, deadline, abort_fd);
		if (msg == NULL) {
			if (errno == ECANCELED) {
				out->verdict = FTM_RDV_DENIED;
				ftm_copy(out->message, sizeof(out->message), FTM_MSG_PUSH_CANCELLED);
				ftm_copy(out->reason, sizeof(out->reason), "push cancelled by the login");
			} else if (errno == ETIMEDOUT) {
				out->verdict = FTM_RDV_TIMEOUT;
				ftm_copy(out->message, sizeof(out->message), FTM_MSG_DENIED);
				ftm_copy(out->reason, sizeof(out->reason), "no verdict from ftmpushd in time");
			} else {
				reply_error(out, FTM_MSG_PUSHD_ERROR,
					    "reading from ftmpushd at %s: %s", path, strerror(errno));
			}
			return 1;
		}
		if ((s = ftm_json_string(msg, "event")) != NULL) {
			bool stop = false;

			if (strcmp(s, "sent") == 0) {
				if (ftm_json_string(msg, "serial"))
					ftm_copy(out->serial, sizeof(out->serial), ftm_json_string(msg, "serial"));
				ftm_copy(out->number, sizeof(out->number), ftm_json_string(msg, "number"));
				if (sent != NULL)
					sent(sent_ctx, out->serial, out->number);
				stop = stop_at_number && out->number[0] != '\0';
			}
			json_object_put(msg);
			if (stop)
				return 0;
			continue;
		}
		s = ftm_json_string(msg, "verdict");
		if (s == NULL || ftm_push_verdict_parse(s, &out->verdict) != 0) {
			reply_error(out, FTM_MSG_PUSHD_ERROR, "ftmpushd sent no valid verdict");
		} else {
			if (ftm_json_string(msg, "serial"))
				ftm_copy(out->serial, sizeof(out->serial), ftm_json_string(msg, "serial"));
			ftm_copy(out->message, sizeof(out->message), ftm_json_string(msg, "message"));
			ftm_copy(out->reason, sizeof(out->reason), ftm_json_string(msg, "reason"));
		}
		json_object_put(msg);
		return 1;
	}
}

static const char *rdv_path(const char *socket_path)
{
	return socket_path != NULL && *socket_path ? socket_path : FTM_DEFAULT_SOCKET;
}

static unsigned rdv_timeout(const ftm_rdv_request_t *req)
{
	return req->timeout > 0 && req->timeout <= TIMEOUT_MAX ? req->timeout : FTM_DEFAULT_PUSH_TIMEOUT;
}

static void log_verdict(const ftm_log_t *log, const char *user, const ftm_rdv_reply_t *out)
{
	ftm_log(log, out->verdict == FTM_RDV_ERROR ? FTM_LOG_ERR : FTM_LOG_DEBUG,
		"push for '%s' via ftmpushd: %s (%s)", user ? user : "", ftm_rdv_verdict_name(out->verdict),
		out->reason);
}

void ftm_rdv_push(const char *socket_path, const ftm_rdv_request_t *req, ftm_rdv_sent_fn sent,
		  void *sent_ctx, int abort_fd, const ftm_log_t *log, ftm_rdv_reply_t *out)
{
	const char *path = rdv_path(socket_path);
	unsigned timeout = rdv_timeout(req);
	int64_t deadline = ftm_mono_ms() + (int64_t)(timeout + FTM_RDV_GRACE) * 1000;
	int fd;

	memset(out, 0, sizeof(*out));
	ftm_copy(out->serial, sizeof(out->serial), req->serial);
	fd = rdv_open(path, req, timeout, log, out);
	if (fd < 0)
		return;
	rdv_read(fd, path, deadline, abort_fd, false, sent, sent_ctx, out);
	close(fd);
	log_verdict(log, req->user, out);
}

int ftm_rdv_push_start(const char *socket_path, const ftm_rdv_request_t *req, int abort_fd,
		       const ftm_log_t *log, ftm_rdv_reply_t *out)
{
	const char *path = rdv_path(socket_path);
	unsigned timeout = rdv_timeout(req);
	int64_t deadline = ftm_mono_ms() + (int64_t)(timeout + FTM_RDV_GRACE) * 1000;
	int fd;

	memset(out, 0, sizeof(*out));
	ftm_copy(out->serial, sizeof(out->serial), req->serial);
	fd = rdv_open(path, req, timeout, log, out);
	if (fd < 0)
		return -1;
	if (rdv_read(fd, path, deadline, abort_fd, true, NULL, NULL, out) == 0) {
		ftm_log(log, FTM_LOG_DEBUG, "push for '%s' via ftmpushd: sent with number matching, pending",
			req->user ? req->user : "");
		return fd;
	}
	close(fd);
	log_verdict(log, req->user, out);
	return -1;
}

/* Is a message (a verdict the daemon sent because the phone decided) already waiting on fd? */
static bool verdict_waiting(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

void ftm_rdv_answer(int fd, const char *number, const char *answer, const ftm_log_t *log, ftm_rdv_reply_t *out)
{
	int64_t deadline = ftm_mono_ms() + (int64_t)FTM_RDV_GRACE * 1000;
	size_t alen = answer != NULL ? strnlen(answer, FTM_RDV_NUMBER_MAX) : 0;
	bool match, early;
	char serial[FTM_SERIAL_MAX], want[FTM_RDV_NUMBER_MAX];

	/* number and out may overlap (out->number): copy before out is cleared */
	ftm_copy(want, sizeof(want), number);
	ftm_copy(serial, sizeof(serial), out->serial);
	memset(out, 0, sizeof(*out));
	ftm_copy(out->serial, sizeof(out->serial), serial);
	if (fd < 0) {
		reply_error(out, FTM_MSG_PUSH_DOWN, "no pending push connection");
		return;
	}
	/* The typed number against the one the daemon reported. */
	match = ftm_number_matches(want, answer);
	ftm_memzero(want, sizeof(want));
	early = verdict_waiting(fd);
	if (!early) {
		/* The daemon decides the transaction through the engine's own number check; a wrong
		 * number denies it there too, so a later tap on the phone changes nothing. */
		json_object *msg = json_object_new_object();

		json_object_object_add(msg, "v", json_object_new_int(1));
		json_object_object_add(msg, "op", json_object_new_string("answer"));
		json_object_object_add(msg, "number",
				       json_object_new_string(alen > 0 && alen < FTM_RDV_NUMBER_MAX ? answer : ""));
		if (ftm_rdv_send_json(fd, msg) != 0)
			ftm_log(log, FTM_LOG_DEBUG, "number answer to ftmpushd: %s (reading its verdict)",
				strerror(errno));
		json_object_put(msg);
	}
	rdv_read(fd, "ftmpushd", deadline, -1, false, NULL, NULL, out);
	close(fd);
	/* The push was live for the guess unless the phone had denied first or it had timed out (the
	 * daemon's engine did not compare the number either). */
	out->wrong_number = ftm_number_is_guess(match, out->verdict != FTM_RDV_TIMEOUT &&
						      !(early && out->verdict == FTM_RDV_DENIED));
	if (out->verdict == FTM_RDV_APPROVED && !match) {
		/* Approved on the phone, but the number typed here is not the one it showed. */
		out->verdict = FTM_RDV_DENIED;
		ftm_copy(out->message, sizeof(out->message), FTM_MSG_DENIED);
		ftm_copy(out->reason, sizeof(out->reason), early ? "approved on the phone, but a wrong number typed"
								 : "wrong number typed");
	} else if (out->verdict != FTM_RDV_APPROVED && match && out->reason[0] == '\0') {
		ftm_copy(out->reason, sizeof(out->reason), "right number typed, but ftmpushd did not approve");
	}
	ftm_log(log, out->verdict == FTM_RDV_ERROR ? FTM_LOG_ERR : FTM_LOG_DEBUG,
		"number answer via ftmpushd: %s (%s)%s", ftm_rdv_verdict_name(out->verdict), out->reason,
		early ? " [the phone decided first]" : "");
}

/* ---- server ---- */

struct ftm_rdv_server {
	int			fd;
	char			path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	gid_t			group;
	unsigned		max_conns;
	ftm_rdv_handler_fn	handler;
	ftm_rdv_login_fn	login_handler;
	void			*handler_ctx;
	const ftm_log_t		*log;
	atomic_bool		stopping;
	pthread_mutex_t		lock;
	pthread_cond_t		idle;		/* active, threads or idle_threads went down (stop waits on it) */
	unsigned		active;		/* connections being served: at most max_conns */
	/* split connections waiting for their login's verify (under lock), oldest first: at max_conns
	 * the oldest is closed to serve a new connection (evict_waiting) */
	ftm_rdv_conn_t		*wait_head, *wait_tail;
	atomic_uint		login_idle_ms;	/* FTM_RDV_LOGIN_IDLE_MS; shorter in tests */
	/* closes by evict_waiting (under lock), for the admin: told at once, then at most one notice per
	 * evict_notice_ms with the count since the last one (evict_notice) */
	unsigned long		evicted_untold;	/* closes not in a notice yet */
	int64_t			evict_told_ms;	/* when the last notice went (ftm_mono_ms) */
	bool			evict_told;	/* a notice went */
	atomic_uint		evict_notice_ms;	/* FTM_RDV_EVICT_NOTICE_MS; shorter in tests */
	int			wake[2];	/* self-pipe: stop wakes the idle threads and idle connections */
	/* the worker threads (under lock): every idle one waits for the next connection on the listening
	 * socket itself (an epoll set of its own, the socket in it EPOLLEXCLUSIVE: a connection wakes one
	 * of them), accepts it and serves it; the one that takes the last idle place starts a new thread
	 * first; a worker that served its connection waits again */
	unsigned		idle_threads;	/* waiting for a connection (or about to) */
	unsigned		threads;	/* worker threads alive */
	unsigned long		accepted;	/* connections accepted so far: each one's number in the log */
};

struct ftm_rdv_conn {
	ftm_rdv_server_t	*srv;
	int			fd;
	pid_t			pid;
	uid_t			uid;
	ftm_peer_t		peer;
	pthread_mutex_t		write_lock;
	ftm_code_proof_t	proof;		/* the split's proof of its code, for its verify on this connection */
	unsigned long		id;		/* its number, for the debug log */
	/* under srv->lock: */
	ftm_rdv_conn_t		*wait_prev, *wait_next;
	bool			waiting;	/* on the server's wait list (login_next) */
	bool			evicted;	/* closed to serve a new connection, which took its slot */
};

const ftm_peer_t *ftm_rdv_conn_peer(const ftm_rdv_conn_t *conn)
{
	return &conn->peer;
}

const ftm_code_proof_t *ftm_rdv_conn_proof(const ftm_rdv_conn_t *conn)
{
	return &conn->proof;
}

static int conn_send(ftm_rdv_conn_t *conn, json_object *obj)
{
	int rc;

	pthread_mutex_lock(&conn->write_lock);
	rc = ftm_rdv_send_json(conn->fd, obj);
	pthread_mutex_unlock(&conn->write_lock);
	return rc;
}

bool ftm_rdv_conn_alive(ftm_rdv_conn_t *conn)
{
	struct pollfd p = { .fd = conn->fd, .events = POLLIN | POLLRDHUP };

	if (atomic_load(&conn->srv->stopping))
		return false;
	if (poll(&p, 1, 0) <= 0)
		return true;
	/* The client sends nothing after its request: readable means it hung up. */
	return !(p.revents & (POLLIN | POLLRDHUP | POLLHUP | POLLERR));
}

bool ftm_rdv_conn_sent(ftm_rdv_conn_t *conn, const char *serial, const char *number)
{
	json_object *ev = json_object_new_object();
	int rc;

	json_object_object_add(ev, "v", json_object_new_int(1));
	json_object_object_add(ev, "event", json_object_new_string("sent"));
	ftm_rdv_jadd_str(ev, "serial", serial);
	ftm_rdv_jadd_str(ev, "number", number);
	rc = conn_send(conn, ev);
	json_object_put(ev);
	return rc == 0;
}

int ftm_rdv_conn_wait_answer(ftm_rdv_conn_t *conn, unsigned max_ms, char *number, size_t number_len)
{
	struct pollfd p = { .fd = conn->fd, .events = POLLIN | POLLRDHUP };
	json_object *msg;
	const char *op, *n;
	int rc;

	if (atomic_load(&conn->srv->stopping))
		return -1;
	rc = poll(&p, 1, (int)(max_ms > 60000 ? 60000 : max_ms));
	if (rc < 0)
		return errno == EINTR ? 0 : -1;
	if (rc == 0)
		return 0;
	if (!(p.revents & POLLIN))
		return -1;	/* hung up */
	msg = ftm_rdv_recv_json(conn->fd, ftm_mono_ms() + REQUEST_READ_TIMEOUT_MS, -1);
	if (msg == NULL)
		return -1;	/* hung up, or not a message: the client is gone for us */
	op = ftm_json_string(msg, "op");
	n = ftm_json_string(msg, "number");
	if (!ftm_rdv_version_ok(msg) || op == NULL ||
	    strcmp(op, "answer") != 0 || n == NULL || strlen(n) >= FTM_RDV_NUMBER_MAX || strlen(n) >= number_len) {
		ftm_log(conn->srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: bad message instead of an answer",
			(long)conn->pid, (unsigned long)conn->uid);
		json_object_put(msg);
		return -1;
	}
	snprintf(number, number_len, "%s", n);
	json_object_put(msg);
	return 1;
}

static void send_reply(ftm_rdv_conn_t *conn, const ftm_rdv_reply_t *r)
{
	json_object *obj = json_object_new_object();

	json_object_object_add(obj, "v", json_object_new_int(1));
	json_object_object_add(obj, "verdict", json_object_new_string(ftm_rdv_verdict_name(r->verdict)));
	ftm_rdv_jadd_str(obj, "serial", r->serial);
	ftm_rdv_jadd_str(obj, "number", r->number);
	ftm_rdv_jadd_str(obj, "message", r->message);
	ftm_rdv_jadd_str(obj, "reason", r->reason);
	conn_send(conn, obj);
	json_object_put(obj);
}

static int parse_request(json_object *msg, ftm_rdv_request_t *req, char *why, size_t why_len)
{
	static const char *const strings[] = { "op", "user", "serial", "client", "nas", "host", NULL };
	const char *op = ftm_json_string(msg, "op");
	int64_t t;
	int has_timeout;

	memset(req, 0, sizeof(*req));
	if (!ftm_rdv_version_ok(msg)) {
		snprintf(why, why_len, "unsupported protocol version (\"v\" must be the integer 1)");
		return -1;
	}
	if (!ftm_rdv_strings_ok(msg, strings)) {
		snprintf(why, why_len, "a member that must be a string is not");
		return -1;
	}
	if (op == NULL || strcmp(op, "push") != 0) {
		snprintf(why, why_len, "unknown op");
		return -1;
	}
	req->user = ftm_rdv_user(msg);
	if (req->user == NULL) {
		snprintf(why, why_len, "missing or bad user");
		return -1;
	}
	req->serial = ftm_json_string(msg, "serial");
	if (req->serial != NULL && strlen(req->serial) >= FTM_SERIAL_MAX) {
		snprintf(why, why_len, "bad serial");
		return -1;
	}
	req->client = ftm_json_string(msg, "client");
	req->nas = ftm_json_string(msg, "nas");
	req->host = ftm_json_string(msg, "host");
	req->timeout = FTM_DEFAULT_PUSH_TIMEOUT;
	has_timeout = ftm_rdv_jint(msg, "timeout", &t);
	if (has_timeout < 0 || (has_timeout == 1 && (t <= 0 || t > TIMEOUT_MAX))) {
		snprintf(why, why_len, "bad timeout (an integer of seconds, 1..%d)", TIMEOUT_MAX);
		return -1;
	}
	if (has_timeout == 1)
		req->timeout = (unsigned)t;
	return 0;
}

static void release_slot(ftm_rdv_server_t *srv)
{
	pthread_mutex_lock(&srv->lock);
	srv->active--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);
}

static void conn_done(ftm_rdv_conn_t *conn)
{
	ftm_rdv_server_t *srv = conn->srv;
	bool evicted = conn->evicted;	/* set (under lock) before login_next read it (under lock) */

	close(conn->fd);
	pthread_mutex_destroy(&conn->write_lock);
	ftm_memzero(&conn->proof, sizeof(conn->proof));
	free(conn);
	if (!evicted)
		release_slot(srv);	/* an evicted connection's slot went to the one that evicted it */
}

/* The wait list of split connections (srv->lock held). */
static void waiting_add(ftm_rdv_server_t *srv, ftm_rdv_conn_t *conn)
{
	conn->wait_next = NULL;
	conn->wait_prev = srv->wait_tail;
	if (srv->wait_tail != NULL)
		srv->wait_tail->wait_next = conn;
	else
		srv->wait_head = conn;
	srv->wait_tail = conn;
	conn->waiting = true;
}

static void waiting_remove(ftm_rdv_server_t *srv, ftm_rdv_conn_t *conn)
{
	if (!conn->waiting)
		return;
	if (conn->wait_prev != NULL)
		conn->wait_prev->wait_next = conn->wait_next;
	else
		srv->wait_head = conn->wait_next;
	if (conn->wait_next != NULL)
		conn->wait_next->wait_prev = conn->wait_prev;
	else
		srv->wait_tail = conn->wait_prev;
	conn->wait_prev = conn->wait_next = NULL;
	conn->waiting = false;
}

/* Has the client sent anything on fd that was not read yet (its verify, or its end)? An error counts
 * as yes: the caller then reads, and finds out. */
static bool input_queued(int fd)
{
	int n = 0;

	return ioctl(fd, FIONREAD, &n) != 0 || n > 0;
}

/* Closing a split's connection without a race with its verify: shutdown(SHUT_RD) first. From then on
 * the client's send fails (EPIPE: the kernel refuses it under the same lock that queues a message), so
 * the client knows the daemon never had the request and sends it on a new connection (login_call);
 * what it sent before is still queued and still read. So the connection either carries the verify
 * (input_queued after the shutdown: it is read and answered) or the client learns before anything
 * was decided that it must use a new one; never a close over an unread verify, which would reset the
 * client after its request went (a failed login: once sent, a request is never retried). True when
 * something came before the shutdown: the caller reads it. */
static bool stop_reads(int fd)
{
	shutdown(fd, SHUT_RD);
	return input_queued(fd);
}

/* At max_conns (srv->lock held): the split connection that has waited longest for its verify is
 * closed, and its slot passes to the new connection. Its client finds it closed before it sends the
 * verify (conn_dead), or its send fails, and it sends the verify on a new connection, decided without
 * the split's proof. One whose verify is in already is served as usual (and not counted). True when a
 * slot was freed. So connections that only wait (a split with trailing digits whose first factor then
 * failed, say) never make the daemon refuse a login or a push. */
static bool evict_waiting(ftm_rdv_server_t *srv)
{
	ftm_rdv_conn_t *c;

	while ((c = srv->wait_head) != NULL) {
		waiting_remove(srv, c);
		if (stop_reads(c->fd))
			continue;	/* its verify came first: its thread reads and answers it */
		shutdown(c->fd, SHUT_WR);	/* its client sees the end before it sends */
		c->evicted = true;		/* its thread wakes (the socket reads as ended) and closes it */
		return true;
	}
	return false;
}

/* One more close by evict_waiting (srv->lock held). True when the admin is to be told now: the first
 * close, then the first one FTM_RDV_EVICT_NOTICE_MS or more after the last notice; *n is then the
 * closes since that notice (this one included), *ago_ms how long ago it went (-1: none before). */
static bool evict_counted(ftm_rdv_server_t *srv, unsigned long *n, int64_t *ago_ms)
{
	int64_t now = ftm_mono_ms();

	srv->evicted_untold++;
	if (srv->evict_told && now - srv->evict_told_ms < (int64_t)atomic_load(&srv->evict_notice_ms))
		return false;
	*n = srv->evicted_untold;
	*ago_ms = srv->evict_told ? now - srv->evict_told_ms : -1;
	srv->evicted_untold = 0;
	srv->evict_told_ms = now;
	srv->evict_told = true;
	return true;
}

/* The notice that -m is reached: n connections waiting for their verify closed to serve new ones
 * (each of those logins still decided: its verify on a new connection, without the split's proof). */
static void evict_notice(const ftm_rdv_server_t *srv, unsigned long n, int64_t ago_ms)
{
	char since[48] = "";

	if (ago_ms >= 0)
		snprintf(since, sizeof(since), " in the last %lld s", (long long)((ago_ms + 500) / 1000));
	ftm_log(srv->log, FTM_LOG_WARN, "socket: at -m %u connections: %lu split connection%s waiting for %s "
		"verify closed to serve new ones%s (the verify then goes on a new connection; raise -m if this "
		"recurs; at most one such line every %u s)", srv->max_conns, n, n == 1 ? "" : "s",
		n == 1 ? "its" : "their", since, (atomic_load(&srv->evict_notice_ms) + 999) / 1000);
}

static bool is_login_op(json_object *msg)
{
	const char *op = ftm_json_string(msg, "op");

	return op != NULL && (strcmp(op, "split") == 0 || strcmp(op, "verify") == 0);
}

/* A login op: parsed, decided by the handler (the core in ftmpushd), answered on the connection.
 * *op: what was asked (FTM_RDV_OP_VERIFY when the request was refused). True when the split was
 * answered as a split (the login's verify may follow on this connection). */
static bool login_op(ftm_rdv_conn_t *conn, json_object *msg, ftm_rdv_op_t *asked)
{
	ftm_rdv_server_t *srv = conn->srv;
	ftm_rdv_op_t op = FTM_RDV_OP_VERIFY;
	ftm_login_t login;
	const char *input = "", *store = "";
	char why[128] = "";
	ftm_split_t sp;
	ftm_outcome_t out;
	json_object *answer;
	bool refused = false;

	memset(&sp, 0, sizeof(sp));
	memset(&out, 0, sizeof(out));
	if (!ftm_rdv_version_ok(msg) || ftm_rdv_login_parse(msg, &op, &login, &store, &input, why, sizeof(why)) != 0) {
		ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: login request refused: %s",
			(long)conn->pid, (unsigned long)conn->uid, why[0] ? why : "unsupported protocol version");
		ftm_outcome_set(&out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, ftm_or(why, "bad version"));
		op = FTM_RDV_OP_VERIFY;	/* the refusal is a result */
	} else {
		ftm_log(srv->log, FTM_LOG_DEBUG, "%s request for '%s' from '%s' (pid %ld uid %lu, connection %lu)",
			op == FTM_RDV_OP_SPLIT ? "split" : "verify", login.user, login.client, (long)conn->pid,
			(unsigned long)conn->uid, conn->id);
		out.result = FTM_RES_OK;
		refused = srv->login_handler(srv->handler_ctx, conn, op, &login, store, input, &sp, &out) != 0;
	}
	*asked = op;
	/* the split's proof stays with the connection for its verify (the store binds it to the user and
	 * the code, so it proves nothing for another); a verify spends it */
	if (op == FTM_RDV_OP_SPLIT && !refused && out.result != FTM_RES_ERROR)
		conn->proof = sp.proof;
	else
		ftm_memzero(&conn->proof, sizeof(conn->proof));
	answer = ftm_rdv_login_answer(msg, refused ? FTM_RDV_OP_VERIFY : op, input, &sp, &out);
	if (refused)
		json_object_object_add(answer, "refused", json_object_new_string("peer"));
	ftm_memzero(&sp, sizeof(sp));
	conn_send(conn, answer);
	json_object_put(answer);
	return op == FTM_RDV_OP_SPLIT && !refused && out.result != FTM_RES_ERROR;
}

/* Waits for the client's next message (or its end) on a split's connection: true when readable; false
 * at the deadline, when the server stops, or on a poll error. */
static bool wait_verify(ftm_rdv_conn_t *conn, int64_t deadline)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = conn->fd, .events = POLLIN }, { .fd = conn->srv->wake[0], .events = POLLIN } };
		int64_t left = deadline - ftm_mono_ms();
		int n;

		if (left <= 0)
			return false;
		n = poll(p, 2, left > 60000 ? 60000 : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (p[0].revents)
			return true;
		if (p[1].revents)
			return false;
	}
}

/* After a split answered on this connection: the same login's verify, if it comes within the idle
 * time (FTM_RDV_LOGIN_IDLE_MS; the first factor runs in between), the last request of the connection.
 * A hang-up (the login needs no verify: a password alone, a failed first factor, pam_end) closes it
 * quietly. While it waits it is on the wait list, where a new connection over max_conns may take its
 * slot (evict_waiting). */
static void login_next(ftm_rdv_conn_t *conn)
{
	ftm_rdv_server_t *srv = conn->srv;
	int64_t since = ftm_mono_ms();
	bool readable, evicted;
	ftm_rdv_op_t op;
	json_object *msg;

	pthread_mutex_lock(&srv->lock);
	waiting_add(srv, conn);
	pthread_mutex_unlock(&srv->lock);
	readable = wait_verify(conn, since + atomic_load(&srv->login_idle_ms));
	pthread_mutex_lock(&srv->lock);
	waiting_remove(srv, conn);	/* unless evict_waiting took it off */
	evicted = conn->evicted;
	pthread_mutex_unlock(&srv->lock);
	if (evicted) {
		ftm_log(srv->log, FTM_LOG_DEBUG, "socket client pid %ld uid %lu: connection %lu closed after the split, %ld ms without its verify, to serve a new connection (at -m %u)",
			(long)conn->pid, (unsigned long)conn->uid, conn->id, (long)(ftm_mono_ms() - since), srv->max_conns);
		return;
	}
	if (!readable) {
		/* the deadline, or the server stops: a verify sent as the wait ended is read, after it
		 * nothing more gets in (see evict_waiting) */
		if (!stop_reads(conn->fd)) {
			ftm_log(srv->log, FTM_LOG_DEBUG, "socket client pid %ld uid %lu: connection %lu closed after the split (%s)",
				(long)conn->pid, (unsigned long)conn->uid, conn->id,
				atomic_load(&srv->stopping) ? "stopping" : "no verify in time");
			return;
		}
	}
	msg = ftm_rdv_recv_json(conn->fd, ftm_mono_ms() + REQUEST_READ_TIMEOUT_MS, -1);
	if (msg == NULL) {
		if (errno == ECONNRESET)
			ftm_log(srv->log, FTM_LOG_DEBUG, "socket client pid %ld uid %lu: connection %lu closed after the split (the client closed it)",
				(long)conn->pid, (unsigned long)conn->uid, conn->id);
		else
			ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: no valid request after the split: %s",
				(long)conn->pid, (unsigned long)conn->uid, strerror(errno));
		return;
	}
	if (srv->login_handler != NULL && is_login_op(msg) && strcmp(ftm_json_string(msg, "op"), "verify") == 0) {
		login_op(conn, msg, &op);
	} else {
		ftm_outcome_t out;
		json_object *answer;

		ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: after a split only its verify may come: request refused",
			(long)conn->pid, (unsigned long)conn->uid);
		memset(&out, 0, sizeof(out));
		ftm_outcome_set(&out, FTM_RES_ERROR, NULL, FTM_MSG_ERROR, "after a split only its verify may come");
		answer = ftm_rdv_login_answer(msg, FTM_RDV_OP_VERIFY, "", NULL, &out);
		conn_send(conn, answer);
		json_object_put(answer);
	}
	json_object_put(msg);
}

/* One connection: one push request, or one login op (a split may be followed by its verify). */
static void serve_conn(ftm_rdv_conn_t *conn)
{
	ftm_rdv_server_t *srv = conn->srv;
	ftm_rdv_request_t req;
	ftm_rdv_reply_t reply;
	ftm_rdv_op_t op;
	char why[128] = "";
	json_object *msg;

	memset(&reply, 0, sizeof(reply));
	msg = ftm_rdv_recv_json(conn->fd, ftm_mono_ms() + REQUEST_READ_TIMEOUT_MS, -1);
	if (msg == NULL) {
		ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: no valid request: %s",
			(long)conn->pid, (unsigned long)conn->uid, strerror(errno));
		return;
	}
	if (srv->login_handler != NULL && is_login_op(msg)) {
		bool more = login_op(conn, msg, &op);

		json_object_put(msg);
		if (more)
			login_next(conn);
		return;
	}
	if (parse_request(msg, &req, why, sizeof(why)) != 0) {
		ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu: request refused: %s",
			(long)conn->pid, (unsigned long)conn->uid, why);
		reply.verdict = FTM_RDV_ERROR;
		ftm_copy(reply.message, sizeof(reply.message), FTM_MSG_PUSHD_BAD_REQUEST);
		ftm_copy(reply.reason, sizeof(reply.reason), why);
		send_reply(conn, &reply);
		goto out;
	}
	ftm_log(srv->log, FTM_LOG_DEBUG, "push request for '%s' from '%s' (pid %ld uid %lu), timeout %us",
		req.user, req.client ? req.client : "", (long)conn->pid, (unsigned long)conn->uid,
		req.timeout);
	reply.verdict = FTM_RDV_ERROR;
	srv->handler(srv->handler_ctx, conn, &req, &reply);
	send_reply(conn, &reply);
out:
	json_object_put(msg);
}

static void refuse(ftm_rdv_server_t *srv, int fd, const char *reason)
{
	ftm_rdv_reply_t r;
	ftm_rdv_conn_t tmp = { .srv = srv, .fd = fd };

	memset(&r, 0, sizeof(r));
	r.verdict = FTM_RDV_ERROR;
	ftm_copy(r.message, sizeof(r.message), FTM_MSG_PUSH_DOWN);
	ftm_copy(r.reason, sizeof(r.reason), reason);
	pthread_mutex_init(&tmp.write_lock, NULL);
	send_reply(&tmp, &r);
	pthread_mutex_destroy(&tmp.write_lock);
	close(fd);
}

static void *worker_thread(void *arg);

/* A worker thread's own wait for connections: an epoll set with the listening socket, EPOLLEXCLUSIVE
 * (a new connection wakes one idle thread, not every one), and the self-pipe (stop wakes them all). */
static int worker_epoll(ftm_rdv_server_t *srv)
{
	struct epoll_event ls = { .events = EPOLLIN | EPOLLEXCLUSIVE }, wk = { .events = EPOLLIN };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		return -1;
	ls.data.fd = srv->fd;
	wk.data.fd = srv->wake[0];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, srv->fd, &ls) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, srv->wake[0], &wk) != 0) {
		close(ep);
		return -1;
	}
	return ep;
}

struct worker_arg {
	ftm_rdv_server_t	*srv;
	int			ep;
};

/* A new worker thread, idle (waiting for a connection) from the start. Called with srv->lock held. */
static int spawn_worker(ftm_rdv_server_t *srv)
{
	struct worker_arg *a = malloc(sizeof(*a));
	pthread_attr_t attr;
	pthread_t th;
	int rc;

	if (a == NULL)
		return -1;
	a->srv = srv;
	a->ep = worker_epoll(srv);
	if (a->ep < 0) {
		free(a);
		return -1;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&th, &attr, worker_thread, a);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		close(a->ep);
		free(a);
		return -1;
	}
	srv->threads++;
	srv->idle_threads++;
	return 0;
}

/* An idle thread's wait for the next connection it may serve: the connection (its slot taken), or NULL
 * when the server stops. Peers not admitted and connections over max_conns are answered here and the
 * wait goes on. Several idle threads may accept at once (the listening socket is non-blocking: one
 * woken with nothing left to accept waits again). */
static ftm_rdv_conn_t *await_conn(ftm_rdv_server_t *srv, int ep)
{
	while (!atomic_load(&srv->stopping)) {
		ftm_peer_policy_t pol = { .daemon_uid = geteuid(), .socket_group = srv->group };
		struct epoll_event ev[2];
		ftm_peer_t peer;
		ftm_rdv_conn_t *conn;
		unsigned long id, told_n = 0;
		int64_t told_ago = -1;
		bool tell;
		int fd, n;

		n = epoll_wait(ep, ev, 2, -1);
		if (n < 0) {
			if (errno != EINTR) {
				ftm_log(srv->log, FTM_LOG_ERR, "socket epoll_wait: %s", strerror(errno));
				poll(NULL, 0, 100);	/* and again: an idle thread never leaves while the server runs */
			}
			continue;
		}
		for (int i = 0; i < n; i++)
			if (ev[i].data.fd == srv->wake[0])
				return NULL;
		fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* EAGAIN: another idle thread took it. Out of descriptors or memory, the connection
			 * stays queued and epoll reports it again at once: wait a little, not spin */
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
				ftm_log(srv->log, FTM_LOG_ERR, "socket accept: %s", strerror(errno));
				poll(NULL, 0, 100);
			}
			continue;
		}
		if (ftm_peer_read_admitted(fd, &pol, &peer) != 0) {
			ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld uid %lu gid %lu refused: not root, not us, not in the socket group",
				(long)peer.pid, (unsigned long)peer.uid, (unsigned long)peer.gid);
			close(fd);
			continue;
		}
		pthread_mutex_lock(&srv->lock);
		if (srv->active >= srv->max_conns && !evict_waiting(srv)) {
			pthread_mutex_unlock(&srv->lock);
			ftm_log(srv->log, FTM_LOG_WARN, "socket client pid %ld refused: %u connections served at once (-m), none of them only waiting for a verify",
				(long)peer.pid, srv->max_conns);
			refuse(srv, fd, "ftmpushd busy: too many connections at once (pending pushes, logins)");
			continue;
		}
		tell = false;
		if (srv->active < srv->max_conns)
			srv->active++;
		else	/* the evicted connection's slot is this one's */
			tell = evict_counted(srv, &told_n, &told_ago);
		id = ++srv->accepted;
		pthread_mutex_unlock(&srv->lock);
		if (tell)
			evict_notice(srv, told_n, told_ago);

		conn = calloc(1, sizeof(*conn));
		if (conn == NULL) {
			close(fd);
			release_slot(srv);
			continue;
		}
		conn->srv = srv;
		conn->fd = fd;
		conn->pid = peer.pid;
		conn->uid = peer.uid;
		conn->peer = peer;
		conn->id = id;
		pthread_mutex_init(&conn->write_lock, NULL);
		return conn;
	}
	return NULL;
}

/* A worker thread: while idle it waits for the next connection on the listening socket itself, accepts
 * it and serves it; the thread that takes the last idle place starts a new one first, so one is always
 * waiting (a held push never keeps the next login waiting), then it waits again while fewer than
 * IDLE_WORKERS_MAX are idle, else it ends. No connection waits in a queue, a login's request is read
 * by the thread that accepted it, and no other thread is woken for it (the lead of a leader/followers
 * pool, handed on at every accept, woke a follower and ran it on the login's path). */
static void *worker_thread(void *arg)
{
	struct worker_arg *a = arg;
	ftm_rdv_server_t *srv = a->srv;
	int ep = a->ep;
	ftm_rdv_conn_t *conn;

	free(a);
	for (;;) {
		conn = await_conn(srv, ep);

		pthread_mutex_lock(&srv->lock);
		srv->idle_threads--;
		pthread_cond_broadcast(&srv->idle);	/* stop waits for the idle ones to go */
		if (conn == NULL)
			break;	/* stopping */
		if (srv->idle_threads == 0 && !atomic_load(&srv->stopping) && spawn_worker(srv) != 0) {
			/* nobody else waits for connections: this one is served, then this thread waits again */
			ftm_log(srv->log, FTM_LOG_ERR, "socket: cannot start a thread for the next connection");
		}
		pthread_mutex_unlock(&srv->lock);

		serve_conn(conn);
		conn_done(conn);

		pthread_mutex_lock(&srv->lock);
		if (atomic_load(&srv->stopping) || srv->idle_threads >= IDLE_WORKERS_MAX)
			break;
		srv->idle_threads++;
		pthread_mutex_unlock(&srv->lock);
	}
	srv->threads--;
	pthread_cond_broadcast(&srv->idle);
	pthread_mutex_unlock(&srv->lock);	/* srv is not touched after this */
	close(ep);
	return NULL;
}

/* A socket file that nobody answers on is stale and may be replaced; a live one is refused. */
static int remove_stale(const char *path, char *err, size_t err_len)
{
	struct stat st;
	int fd;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, err_len, "%s exists and is not a socket", path);
		return -1;
	}
	fd = ftm_rdv_connect(path);
	if (fd >= 0) {
		close(fd);
		snprintf(err, err_len, "%s: another ftmpushd is already listening", path);
		return -1;
	}
	if (unlink(path) != 0) {
		snprintf(err, err_len, "cannot remove stale socket %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

ftm_rdv_server_t *ftm_rdv_server_start(const char *socket_path, gid_t group, unsigned max_conns,
				       ftm_rdv_handler_fn handler, ftm_rdv_login_fn login_handler, void *handler_ctx,
				       const ftm_log_t *log, char *err, size_t err_len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ftm_rdv_server_t *srv;
	mode_t old;
	int rc, fl;

	if (socket_path == NULL || *socket_path == '\0' || strlen(socket_path) >= sizeof(sa.sun_path)) {
		snprintf(err, err_len, "bad socket path");
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	srv->fd = -1;
	srv->wake[0] = srv->wake[1] = -1;
	memcpy(srv->path, socket_path, strlen(socket_path) + 1);
	memcpy(sa.sun_path, socket_path, strlen(socket_path) + 1);
	srv->group = group;
	srv->max_conns = max_conns ? max_conns : 64;
	atomic_init(&srv->login_idle_ms, FTM_RDV_LOGIN_IDLE_MS);
	atomic_init(&srv->evict_notice_ms, FTM_RDV_EVICT_NOTICE_MS);
	srv->handler = handler;
	srv->login_handler = login_handler;
	srv->handler_ctx = handler_ctx;
	srv->log = log;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_cond_init(&srv->idle, NULL);

	if (remove_stale(socket_path, err, err_len) != 0) {
		if (*err == '\0')
			snprintf(err, err_len, "%s: %s", socket_path, strerror(errno));
		goto fail;
	}
	if (pipe2(srv->wake, O_CLOEXEC) != 0) {
		snprintf(err, err_len, "pipe: %s", strerror(errno));
		goto fail;
	}
	srv->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->fd < 0) {
		snprintf(err, err_len, "socket: %s", strerror(errno));
		goto fail;
	}
	/* Never a moment with a wider mode than 0660. */
	old = umask(0117);
	if (bind(srv->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		umask(old);
		snprintf(err, err_len, "bind %s: %s", socket_path, strerror(errno));
		goto fail;
	}
	umask(old);
	if (group != (gid_t)-1 && chown(socket_path, (uid_t)-1, group) != 0) {
		snprintf(err, err_len, "chgrp %s: %s", socket_path, strerror(errno));
		unlink(socket_path);
		goto fail;
	}
	/* non-blocking: an idle thread woken for a connection another one accepted first waits again */
	if (chmod(socket_path, group != (gid_t)-1 ? 0660 : 0600) != 0 || listen(srv->fd, 64) != 0 ||
	    (fl = fcntl(srv->fd, F_GETFL)) < 0 || fcntl(srv->fd, F_SETFL, fl | O_NONBLOCK) != 0) {
		snprintf(err, err_len, "listen %s: %s", socket_path, strerror(errno));
		unlink(socket_path);
		goto fail;
	}
	pthread_mutex_lock(&srv->lock);
	rc = spawn_worker(srv);	/* the first idle thread */
	pthread_mutex_unlock(&srv->lock);
	if (rc != 0) {
		snprintf(err, err_len, "cannot start the socket thread");
		unlink(socket_path);
		goto fail;
	}
	ftm_log(log, FTM_LOG_INFO, "listening on %s (mode %s)", socket_path,
		group != (gid_t)-1 ? "0660" : "0600");
	return srv;
fail:
	if (srv->fd >= 0)
		close(srv->fd);
	if (srv->wake[0] >= 0) {
		close(srv->wake[0]);
		close(srv->wake[1]);
	}
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->idle);
	free(srv);
	return NULL;
}

void ftm_rdv_server_set_evict_notice_ms(ftm_rdv_server_t *srv, unsigned ms)
{
	atomic_store(&srv->evict_notice_ms, ms ? ms : FTM_RDV_EVICT_NOTICE_MS);
}

void ftm_rdv_server_set_login_idle_ms(ftm_rdv_server_t *srv, unsigned ms)
{
	atomic_store(&srv->login_idle_ms, ms ? ms : FTM_RDV_LOGIN_IDLE_MS);
}

void ftm_rdv_server_stop(ftm_rdv_server_t *srv)
{
	if (srv == NULL)
		return;
	atomic_store(&srv->stopping, true);
	if (write(srv->wake[1], "x", 1) < 0)
		ftm_log(srv->log, FTM_LOG_WARN, "socket stop: %s", strerror(errno));
	/* The idle threads see the self-pipe (in every one's epoll set) and end; a thread that serves a
	 * connection sees stopping after it and ends too. */
	pthread_mutex_lock(&srv->lock);
	while (srv->idle_threads > 0)
		pthread_cond_wait(&srv->idle, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	close(srv->fd);
	unlink(srv->path);
	/* Handlers see ftm_rdv_conn_alive() == false and return; a connection waiting for a login's
	 * verify sees the self-pipe readable and closes. Then their threads end. */
	pthread_mutex_lock(&srv->lock);
	while (srv->active > 0 || srv->threads > 0)
		pthread_cond_wait(&srv->idle, &srv->lock);
	pthread_mutex_unlock(&srv->lock);
	if (srv->evicted_untold > 0)	/* closes since the last notice are told too */
		evict_notice(srv, srv->evicted_untold, ftm_mono_ms() - srv->evict_told_ms);
	close(srv->wake[0]);
	close(srv->wake[1]);
	pthread_mutex_destroy(&srv->lock);
	pthread_cond_destroy(&srv->idle);
	free(srv);
}

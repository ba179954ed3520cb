/* rdv_frame: the socket protocol's framing and checks (length-prefixed strict JSON, SO_PEERCRED of the
 * daemon), shared by the push client and server (rendezvous_socket.c) and the login client
 * (rendezvous_login.c, in the PAM module's thin part). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ftm_otp.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"
#include "rdv_frame.h"

/* The header and the body in one sendmsg where the socket takes them at once (it does, for a message
 * of at most FTM_RDV_MSG_MAX): the peer wakes once for the whole message, not once per part. */
static int write_msg(int fd, const void *hdr, size_t hdr_len, const void *body, size_t body_len)
{
	struct iovec iov[2] = { { (void *)hdr, hdr_len }, { (void *)body, body_len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

	while (mh.msg_iovlen > 0) {
		ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		size_t done;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done = (size_t)n;
		while (mh.msg_iovlen > 0 && done >= mh.msg_iov[0].iov_len) {
			done -= mh.msg_iov[0].iov_len;
			mh.msg_iov++;
			mh.msg_iovlen--;
		}
		if (mh.msg_iovlen > 0) {
			mh.msg_iov[0].iov_base = (char *)mh.msg_iov[0].iov_base + done;
			mh.msg_iov[0].iov_len -= done;
		}
	}
	return 0;
}

/* Wait until fd is readable before deadline (ms, monotonic) or abort_fd fires.
 * 0 readable, -1 error/timeout (errno ETIMEDOUT) or aborted (ECANCELED). */
static int wait_readable(int fd, int64_t deadline, int abort_fd)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = abort_fd, .events = POLLIN } };
		int64_t left = deadline - ftm_mono_ms();
		int n;

		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		n = poll(p, abort_fd >= 0 ? 2 : 1, left > 60000 ? 60000 : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (abort_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			errno = ECANCELED;
			return -1;
		}
		if (p[0].revents)
			return 0;
	}
}

/* Without an abort_fd, what has arrived already is read without a poll first (a message comes in one
 * piece: its body is there with its header); with one, the abort is looked at before every read. */
static int read_all(int fd, void *buf, size_t len, int64_t deadline, int abort_fd)
{
	char *p = buf;
	bool wait = abort_fd >= 0;

	while (len > 0) {
		ssize_t n;

		if (wait && wait_readable(fd, deadline, abort_fd) != 0)
			return -1;
		n = recv(fd, p, len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				wait = true;
				continue;
			}
			return -1;
		}
		if (n == 0) {
			errno = ECONNRESET;
			return -1;
		}
		p += n;
		len -= (size_t)n;
		wait = abort_fd >= 0;
	}
	return 0;
}

int ftm_rdv_send_json(int fd, json_object *obj)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PLAIN, &len);
	uint32_t hdr;
	int rc;

	if (s == NULL || len > FTM_RDV_MSG_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	hdr = htonl((uint32_t)len);
	rc = write_msg(fd, &hdr, sizeof(hdr), s, len);
	/* A login request carries what was typed: its serialisation is not left in freed memory. */
	ftm_memzero((char *)s, len);
	return rc;
}

/* Exactly one JSON object filling the whole message, strict JSON (nothing after it but JSON
 * whitespace, no NUL, no comments, no single quotes): anything else is a protocol error. */
static json_object *parse_strict(const char *buf, size_t len)
{
	json_tokener *tok = json_tokener_new_ex(16);
	json_object *obj;

	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	obj = json_tokener_parse_ex(tok, buf, (int)len);
	if (obj != NULL && (json_tokener_get_error(tok) != json_tokener_success ||
			    json_tokener_get_parse_end(tok) != len || !json_object_is_type(obj, json_type_object))) {
		json_object_put(obj);
		obj = NULL;
	}
	json_tokener_free(tok);
	return obj;
}

/* Read one message; returns a parsed JSON object (caller puts it) or NULL with errno set. */
json_object *ftm_rdv_recv_json(int fd, int64_t deadline, int abort_fd)
{
	uint32_t hdr;
	size_t len;
	char *buf;
	json_object *obj;

	if (read_all(fd, &hdr, sizeof(hdr), deadline, abort_fd) != 0)
		return NULL;
	len = ntohl(hdr);
	if (len == 0 || len > FTM_RDV_MSG_MAX) {
		errno = EMSGSIZE;
		return NULL;
	}
	buf = malloc(len + 1);
	if (buf == NULL)
		return NULL;
	if (read_all(fd, buf, len, deadline, abort_fd) != 0) {
		ftm_memzero(buf, len);
		free(buf);
		return NULL;
	}
	buf[len] = '\0';
	obj = parse_strict(buf, len);
	ftm_memzero(buf, len);
	free(buf);
	if (obj == NULL) {
		errno = EPROTO;
		return NULL;
	}
	return obj;
}

/* key is an integer (not "1", 1.9 or true, which json-c would coerce): 1 with *out, 0 absent, -1 not. */
int ftm_rdv_jint(json_object *obj, const char *key, int64_t *out)
{
	json_object *v;

	if (!json_object_object_get_ex(obj, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -1;
	errno = 0;
	*out = json_object_get_int64(v);
	return errno == 0 ? 1 : -1;
}

/* The protocol version, exactly the integer 1. */
bool ftm_rdv_version_ok(json_object *obj)
{
	int64_t v;

	return ftm_rdv_jint(obj, "v", &v) == 1 && v == 1;
}

/* Every member in keys[] that is present is a string (a member of another type is an error). */
bool ftm_rdv_strings_ok(json_object *obj, const char *const *keys)
{
	for (; *keys; keys++) {
		json_object *v;

		if (json_object_object_get_ex(obj, *keys, &v) && !json_object_is_type(v, json_type_string))
			return false;
	}
	return true;
}

void ftm_rdv_jadd_str(json_object *obj, const char *key, const char *val)
{
	if (val != NULL && *val != '\0')
		json_object_object_add(obj, key, json_object_new_string(val));
}

const char *ftm_rdv_user(json_object *msg)
{
	const char *u = ftm_json_string(msg, "user");

	return u != NULL && *u != '\0' && strlen(u) < FTM_USER_MAX ? u : NULL;
}

int ftm_rdv_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Who answers on the socket (fail closed): the verdict read from the socket logs people in, so the process behind it must be the daemon: root
 * (ftmpushd.service) or the login process's own user. A squatter at the socket path (a writable
 * socket directory, or a daemon that is down) must not approve logins. */
/* The daemon's own user (ftmpushd.service runs as ftmpush, or freerad where FreeRADIUS owns the store):
 * the owner of the token store. It can approve any login by writing the store already, so trusting its
 * verdict on the socket gives it nothing more; a squatter of another user does not own the store. */
static bool store_owner(const char *store, uid_t *owner)
{
	struct stat st;

	if (store == NULL || *store == '\0')
		return false;
	if (strncmp(store, "sqlite:", 7) == 0)
		store += 7;
	if (*store != '/' || stat(store, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	*owner = st.st_uid;
	return true;
}

bool ftm_rdv_server_trusted(int fd, const char *store, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);
	uid_t owner;

	memset(cr, 0, sizeof(*cr));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) != 0 || len != sizeof(*cr))
		return false;
	if (cr->uid == 0 || cr->uid == geteuid())
		return true;
	return store_owner(store, &owner) && cr->uid == owner;
}


/* fuzz_socket: both ends of ftmpushd's Unix-socket protocol (ftm_rendezvous.h) with one side fuzzed.
 *
 * First byte, bit 0 clear: the daemon's end. The rest is written, as is, to a real
 * ftm_rdv_server_start server; its handler (this harness) reports the push sent with the number
 * @N@ stands for and approves only when the client's answer message carries that number. Checks
 * that an approval needs an input holding the number, and that a request reaching the handler has a
 * user and bounded, terminated fields.
 *
 * Bit 0 set: the PAM process's end. A fake daemon (a thread here) reads the client's request and
 * writes the input's bytes as its replies: the part before "@A@" at once, the part after it once the
 * client has sent its answer. The client (ftm_rdv_push_start, then ftm_rdv_answer with the typed
 * number "99") must report approved only when the daemon's sent event carried exactly "99" and the
 * daemon approved; every verdict is one of the five, and every string is terminated. */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ftm_rendezvous.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SECRET_NUMBER	"7391"	/* the daemon end's number to match */
#define TYPED_NUMBER	"99"	/* the client end's typed answer */

static char dir[64], server_path[108], fake_path[108];
static ftm_rdv_server_t *server;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool approved_by_handler;

static void setup_dir(void)
{
	if (dir[0])
		return;
	snprintf(dir, sizeof(dir), "/tmp/ftm-fuzz-sock-XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(server_path, sizeof(server_path), "%s/d.sock", dir);
	snprintf(fake_path, sizeof(fake_path), "%s/fake.sock", dir);
}

static void check_field(const char *s, size_t max)
{
	if (s && strnlen(s, max + 1) > max)
		abort();
}

/* The daemon's handler: what ftmpushd would do, with a known number. */
static void handler(void *ctx, ftm_rdv_conn_t *conn, const ftm_rdv_request_t *req, ftm_rdv_reply_t *out)
{
	char number[FTM_RDV_NUMBER_MAX + 8] = "";

	(void)ctx;
	if (req->user == NULL || req->user[0] == '\0')
		abort();	/* a push for nobody reached the handler */
	check_field(req->user, FTM_RDV_MSG_MAX);
	check_field(req->serial, FTM_RDV_MSG_MAX);
	check_field(req->client, FTM_RDV_MSG_MAX);
	memset(out, 0, sizeof(*out));
	out->verdict = FTM_RDV_DENIED;
	if (ftm_rdv_conn_sent(conn, "FTKMOBFUZZ", SECRET_NUMBER) &&
	    ftm_rdv_conn_wait_answer(conn, 20, number, sizeof(number)) == 1 && strcmp(number, SECRET_NUMBER) == 0) {
		out->verdict = FTM_RDV_APPROVED;
		pthread_mutex_lock(&lock);
		approved_by_handler = true;
		pthread_mutex_unlock(&lock);
	}
	snprintf(out->serial, sizeof(out->serial), "FTKMOBFUZZ");
}

static bool read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 200) <= 0)
			return false;
		n = read(fd, (char *)buf + got, len - got);
		if (n <= 0)
			return false;
		got += (size_t)n;
	}
	return true;
}

static void daemon_end(const uint8_t *data, size_t size)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[4096];
	int fd;
	bool approved;

	if (server == NULL) {
		char err[256];

		server = ftm_rdv_server_start(server_path, (gid_t)-1, 8, handler, NULL, NULL, NULL, err, sizeof(err));
		if (server == NULL) {
			fprintf(stderr, "fuzz_socket: %s\n", err);
			abort();
		}
	}
	pthread_mutex_lock(&lock);
	approved_by_handler = false;
	pthread_mutex_unlock(&lock);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", server_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
		abort();
	if (size && send(fd, data, size, MSG_NOSIGNAL) < 0 && errno != EPIPE && errno != ECONNRESET)
		abort();
	shutdown(fd, SHUT_WR);
	for (int i = 0; i < 50; i++) {		/* until the daemon closes: at most ~1 s */
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 20) > 0 && read(fd, buf, sizeof(buf)) <= 0)
			break;
	}
	close(fd);
	pthread_mutex_lock(&lock);
	approved = approved_by_handler;
	pthread_mutex_unlock(&lock);
	/* the number can only come from the input (as digits, or spelled with \u escapes) */
	if (approved && memmem(data, size, SECRET_NUMBER, 4) == NULL && memmem(data, size, "\\u", 2) == NULL)
		abort();
}

/* ---- the client end: a fake daemon ---- */

typedef struct fake {
	int		listen_fd;
	const uint8_t	*first, *second;
	size_t		first_len, second_len;
} fake_t;

static void *fake_daemon(void *arg)
{
	fake_t *f = arg;
	uint8_t hdr[4], body[FTM_RDV_MSG_MAX];
	uint32_t len;
	int fd;
	struct pollfd p = { .fd = f->listen_fd, .events = POLLIN };

	if (poll(&p, 1, 2000) <= 0 || (fd = accept(f->listen_fd, NULL, NULL)) < 0)
		return NULL;
	if (read_full(fd, hdr, 4)) {
		len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
		if (len <= sizeof(body) && read_full(fd, body, len)) {
			(void)!send(fd, f->first, f->first_len, MSG_NOSIGNAL);
			if (f->second && read_full(fd, hdr, 4))	/* the answer's header, then the rest */
				(void)!send(fd, f->second, f->second_len, MSG_NOSIGNAL);
		}
	}
	close(fd);
	return NULL;
}

static void check_reply(const ftm_rdv_reply_t *r)
{
	if ((unsigned)r->verdict > FTM_RDV_ERROR || memchr(r->serial, 0, sizeof(r->serial)) == NULL ||
	    memchr(r->number, 0, sizeof(r->number)) == NULL || memchr(r->message, 0, sizeof(r->message)) == NULL ||
	    memchr(r->reason, 0, sizeof(r->reason)) == NULL)
		abort();
}

static void client_end(const uint8_t *data, size_t size)
{
	static int listen_fd = -1;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	ftm_rdv_request_t req = { .user = "alice", .serial = "", .client = "192.0.2.1", .nas = "vpn", .host = "host",
				  .timeout = 5, .store = NULL };
	ftm_rdv_reply_t out;
	fake_t f = { 0 };
	const uint8_t *mark = memmem(data, size, "@A@", 3);
	pthread_t th;
	char number[FTM_RDV_NUMBER_MAX];
	int fd;

	if (listen_fd < 0) {
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", fake_path);
		unlink(fake_path);
		listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(listen_fd, 4) != 0)
			abort();
	}
	f.listen_fd = listen_fd;
	f.first = data;
	f.first_len = mark ? (size_t)(mark - data) : size;
	if (mark) {
		f.second = mark + 3;
		f.second_len = size - f.first_len - 3;
	}
	if (pthread_create(&th, NULL, fake_daemon, &f) != 0)
		abort();
	memset(&out, 0, sizeof(out));
	fd = ftm_rdv_push_start(fake_path, &req, -1, NULL, &out);
	check_reply(&out);
	if (fd >= 0) {
		snprintf(number, sizeof(number), "%s", out.number);
		memset(&out, 0, sizeof(out));
		ftm_rdv_answer(fd, number, TYPED_NUMBER, NULL, &out);
		check_reply(&out);
		if (out.verdict == FTM_RDV_APPROVED && strcmp(number, TYPED_NUMBER) != 0)
			abort();	/* approved although the typed number is not the one on the phone */
	}
	pthread_join(th, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > FTM_RDV_MSG_MAX)
		return 0;
	setup_dir();
	if (data[0] & 1)
		client_end(data + 1, size - 1);
	else
		daemon_end(data + 1, size - 1);
	return 0;
}

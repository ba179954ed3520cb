/* radload: a RADIUS load driver that keeps P Access-Requests in flight with poll() (no busy loop). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

/* radclient walks its whole request list on every pass and burns a core doing it, so it caps a PAP
 * floor below what the server can do; this driver waits in poll() for answers or the next deadline. */

#define IDS_PER_SOCKET	200	/* of the 256 RADIUS ids, with room to spare */
#define PKT_MAX		4096
#define PW_MAX		128	/* RFC 2865 5.2 */

enum { RAD_ACCESS_REQUEST = 1, RAD_ACCESS_ACCEPT = 2, RAD_ACCESS_REJECT = 3, RAD_ACCESS_CHALLENGE = 11,
       RAD_STATUS_SERVER = 12 };
enum { ATTR_USER_NAME = 1, ATTR_USER_PASSWORD = 2, ATTR_NAS_IP = 4, ATTR_REPLY_MESSAGE = 18,
       ATTR_MESSAGE_AUTHENTICATOR = 80 };

typedef struct request {
	char	*user;
	char	*password;
	double	sent, rtt;
	int	answer;		/* 0: none yet / lost */
} request_t;

typedef struct slot {
	int	req;		/* index into the requests, -1 when free */
	uint8_t	auth[16];	/* the request authenticator, to check the answer's */
} slot_t;

typedef struct sock {
	int	fd;
	slot_t	slot[256];
	int	free_ids;
	int	next_id;
} sock_t;

static const char *secret = "testing123";
static size_t secret_len;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* For the results file: answers lined up with events measured by other processes (a phone's approval). */
static double wall_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "radload: %s\n", what);
	exit(2);
}

static void md5(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[16])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	unsigned n = 16;

	if (c == NULL || EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(c, a, alen) != 1 ||
	    EVP_DigestUpdate(c, b, blen) != 1 || EVP_DigestFinal_ex(c, out, &n) != 1)
		die("MD5 failed");
	EVP_MD_CTX_free(c);
}

static size_t put_attr(uint8_t *pkt, size_t pos, uint8_t type, const void *val, size_t len)
{
	if (len > 253 || pos + 2 + len > PKT_MAX)
		die("attribute too long");
	pkt[pos] = type;
	pkt[pos + 1] = (uint8_t)(2 + len);
	memcpy(pkt + pos + 2, val, len);
	return pos + 2 + len;
}

/* RFC 2865 5.2: the password padded to 16 bytes, each block XORed with MD5(secret + previous). */
static size_t put_password(uint8_t *pkt, size_t pos, const char *pw, const uint8_t auth[16])
{
	uint8_t buf[PW_MAX], b[16];
	size_t len = strlen(pw), padded;
	const uint8_t *prev = auth;

	if (len > PW_MAX)
		die("password longer than 128 bytes");
	padded = len == 0 ? 16 : (len + 15) / 16 * 16;
	memset(buf, 0, sizeof(buf));
	memcpy(buf, pw, len);
	for (size_t i = 0; i < padded; i += 16) {
		md5((const uint8_t *)secret, secret_len, prev, 16, b);
		for (size_t j = 0; j < 16; j++)
			buf[i + j] ^= b[j];
		prev = buf + i;
	}
	return put_attr(pkt, pos, ATTR_USER_PASSWORD, buf, padded);
}

/* Message-Authenticator last (RFC 3579 3.2): HMAC-MD5 of the packet with the field zeroed. */
static size_t finish_packet(uint8_t *pkt, size_t pos)
{
	uint8_t zero[16] = { 0 }, mac[16];
	unsigned mac_len = sizeof(mac);
	size_t ma = pos + 2;

	pos = put_attr(pkt, pos, ATTR_MESSAGE_AUTHENTICATOR, zero, sizeof(zero));
	pkt[2] = (uint8_t)(pos >> 8);
	pkt[3] = (uint8_t)(pos & 0xff);
	if (HMAC(EVP_md5(), secret, (int)secret_len, pkt, pos, mac, &mac_len) == NULL)
		die("HMAC-MD5 failed");
	memcpy(pkt + ma, mac, 16);
	return pos;
}

static size_t build(uint8_t *pkt, int code, uint8_t id, const uint8_t auth[16], const request_t *r)
{
	static const uint8_t nas_ip[4] = { 127, 0, 0, 1 };
	size_t pos = 20;

	pkt[0] = (uint8_t)code;
	pkt[1] = id;
	memcpy(pkt + 4, auth, 16);
	if (r != NULL) {
		pos = put_attr(pkt, pos, ATTR_USER_NAME, r->user, strlen(r->user));
		pos = put_password(pkt, pos, r->password, auth);
	}
	pos = put_attr(pkt, pos, ATTR_NAS_IP, nas_ip, sizeof(nas_ip));
	return finish_packet(pkt, pos);
}

/* The answer's authenticator: MD5(code id length request-authenticator attributes secret). */
static bool answer_authentic(uint8_t *pkt, size_t len, const uint8_t req_auth[16])
{
	uint8_t got[16], want[16], *copy;

	if (len < 20 || ((size_t)pkt[2] << 8 | pkt[3]) != len)
		return false;
	memcpy(got, pkt + 4, 16);
	copy = malloc(len);
	if (copy == NULL)
		die("out of memory");
	memcpy(copy, pkt, len);
	memcpy(copy + 4, req_auth, 16);
	md5(copy, len, (const uint8_t *)secret, secret_len, want);
	free(copy);
	return memcmp(got, want, 16) == 0;
}

static int open_socket(const struct sockaddr_in *server)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rcvbuf = 4 << 20;

	if (fd < 0 || connect(fd, (const struct sockaddr *)server, sizeof(*server)) != 0)
		die("cannot open a UDP socket to the server");
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	return fd;
}

/* Readiness: Status-Server every 100 ms until an answer or `wait` seconds. */
static int wait_ready(const struct sockaddr_in *server, double wait)
{
	int fd = open_socket(server);
	double end = now_s() + wait;
	uint8_t pkt[PKT_MAX], auth[16];

	for (uint8_t id = 0; now_s() < end; id++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		size_t len;

		if (RAND_bytes(auth, sizeof(auth)) != 1)
			die("RAND_bytes failed");
		len = build(pkt, RAD_STATUS_SERVER, id, auth, NULL);
		(void)send(fd, pkt, len, 0);	/* ECONNREFUSED until the server listens: try again */
		if (poll(&p, 1, 100) == 1) {
			ssize_t n = recv(fd, pkt, sizeof(pkt), 0);

			if (n >= 20 && pkt[1] == id && answer_authentic(pkt, (size_t)n, auth)) {
				close(fd);
				return 0;
			}
			if (n < 0)
				usleep(100000);
		}
	}
	close(fd);
	fprintf(stderr, "radload: no answer to Status-Server in %.0f s\n", wait);
	return 1;
}

static request_t *read_requests(const char *path, size_t *n)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	request_t *reqs = NULL;
	size_t cap = 0, linecap = 0;
	char *line = NULL;
	ssize_t len;

	if (f == NULL)
		die("cannot open the request file");
	*n = 0;
	while ((len = getline(&line, &linecap, f)) != -1) {
		char *tab = strchr(line, '\t');

		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (tab == NULL)
			continue;
		*tab = '\0';
		if (*n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((reqs = realloc(reqs, cap * sizeof(*reqs))) == NULL)
				die("out of memory");
		}
		reqs[*n] = (request_t){ .user = strdup(line), .password = strdup(tab + 1) };
		if (reqs[*n].user == NULL || reqs[*n].password == NULL)
			die("out of memory");
		(*n)++;
	}
	free(line);
	if (f != stdin)
		fclose(f);
	return reqs;
}

static const char *answer_name(int code)
{
	switch (code) {
	case RAD_ACCESS_ACCEPT:		return "Access-Accept";
	case RAD_ACCESS_REJECT:		return "Access-Reject";
	case RAD_ACCESS_CHALLENGE:	return "Access-Challenge";
	}
	return "none";
}

/* The answer's first Reply-Message, or "" (for the results file: tests read the user's message). */
static void reply_message(const uint8_t *pkt, size_t len, char *out, size_t max)
{
	out[0] = '\0';
	for (size_t pos = 20; pos + 2 <= len && pkt[pos + 1] >= 2 && pos + pkt[pos + 1] <= len; pos += pkt[pos + 1]) {
		if (pkt[pos] == ATTR_REPLY_MESSAGE) {
			size_t n = pkt[pos + 1] - 2u < max - 1 ? pkt[pos + 1] - 2u : max - 1;

			memcpy(out, pkt + pos + 2, n);
			out[n] = '\0';
			for (size_t i = 0; i < n; i++)
				if (out[i] == '\t' || out[i] == '\n')
					out[i] = ' ';
			return;
		}
	}
}

static int by_rtt(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: radload [-s HOST:PORT] [-S SECRET] [-p IN_FLIGHT] [-t TIMEOUT] [-o RESULTS] [-w READY] [REQUESTS]\n"
		"  REQUESTS: lines USER<TAB>PASSWORD, each sent once as an Access-Request; - for stdin\n"
		"  -w READY: first wait up to READY seconds for an answer to Status-Server (alone: only that)\n"
		"  -o RESULTS: one line USER<TAB>ANSWER<TAB>REPLY-MESSAGE<TAB>UNIX-TIME per request as answers come\n"
		"  prints one line: requests, answers by code, lost, elapsed, requests/s, p50/p99 latency\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in server = { .sin_family = AF_INET, .sin_port = htons(1812) };
	const char *results_path = NULL;
	unsigned inflight_max = 64;
	double timeout = 10, ready = 0, start, elapsed;
	size_t n = 0, next = 0, done = 0, inflight = 0, nsock, counts[4] = { 0 };
	request_t *reqs;
	sock_t *socks;
	struct pollfd *pfd;
	FILE *results = NULL;
	double *rtts;
	size_t nrtt = 0;
	int opt;

	server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	while ((opt = getopt(argc, argv, "s:S:p:t:o:w:")) != -1) {
		switch (opt) {
		case 's': {
			char host[64];
			const char *colon = strrchr(optarg, ':');

			if (colon == NULL || (size_t)(colon - optarg) >= sizeof(host))
				usage();
			memcpy(host, optarg, (size_t)(colon - optarg));
			host[colon - optarg] = '\0';
			if (inet_pton(AF_INET, host, &server.sin_addr) != 1)
				usage();
			server.sin_port = htons((uint16_t)atoi(colon + 1));
			break;
		}
		case 'S': secret = optarg; break;
		case 'p': inflight_max = (unsigned)atoi(optarg); break;
		case 't': timeout = atof(optarg); break;
		case 'o': results_path = optarg; break;
		case 'w': ready = atof(optarg); break;
		default: usage();
		}
	}
	secret_len = strlen(secret);
	if (inflight_max == 0 || inflight_max > 100000 || timeout <= 0)
		usage();
	if (ready > 0 && wait_ready(&server, ready) != 0)
		return 1;
	if (optind == argc)
		return ready > 0 ? 0 : (usage(), 2);
	reqs = read_requests(argv[optind], &n);
	if (results_path != NULL) {
		if ((results = fopen(results_path, "w")) == NULL)
			die("cannot write the results file");
		setvbuf(results, NULL, _IOLBF, 0);	/* what was answered survives a killed driver or server */
	}
	nsock = (inflight_max + IDS_PER_SOCKET - 1) / IDS_PER_SOCKET;
	socks = calloc(nsock, sizeof(*socks));
	pfd = calloc(nsock, sizeof(*pfd));
	rtts = calloc(n ? n : 1, sizeof(*rtts));
	if (socks == NULL || pfd == NULL || rtts == NULL)
		die("out of memory");
	for (size_t s = 0; s < nsock; s++) {
		socks[s].fd = open_socket(&server);
		socks[s].free_ids = IDS_PER_SOCKET;
		for (int i = 0; i < 256; i++)
			socks[s].slot[i].req = -1;
		pfd[s] = (struct pollfd){ .fd = socks[s].fd, .events = POLLIN };
	}

	start = now_s();
	while (done < n) {
		double t = now_s(), first_deadline = t + timeout;
		int wait_ms;

		/* top up to P in flight, the requests dealt round robin over the sockets */
		while (inflight < inflight_max && next < n) {
			sock_t *sk = &socks[next % nsock];
			uint8_t pkt[PKT_MAX];
			size_t len;
			int id = sk->next_id;

			if (sk->free_ids == 0)
				break;
			while (sk->slot[id].req >= 0)
				id = (id + 1) % 256;
			sk->next_id = (id + 1) % 256;
			if (RAND_bytes(sk->slot[id].auth, 16) != 1)
				die("RAND_bytes failed");
			len = build(pkt, RAD_ACCESS_REQUEST, (uint8_t)id, sk->slot[id].auth, &reqs[next]);
			reqs[next].sent = now_s();
			if (send(sk->fd, pkt, len, 0) < 0 && errno != ECONNREFUSED)
				die("send failed");
			sk->slot[id].req = (int)next;
			sk->free_ids--;
			inflight++;
			next++;
		}
		for (size_t s = 0; s < nsock; s++)
			for (int i = 0; i < 256; i++)
				if (socks[s].slot[i].req >= 0 && reqs[socks[s].slot[i].req].sent + timeout < first_deadline)
					first_deadline = reqs[socks[s].slot[i].req].sent + timeout;
		wait_ms = (int)((first_deadline - now_s()) * 1000) + 1;
		if (poll(pfd, (nfds_t)nsock, wait_ms < 0 ? 0 : wait_ms) < 0 && errno != EINTR)
			die("poll failed");
		for (size_t s = 0; s < nsock; s++) {
			uint8_t pkt[PKT_MAX];
			ssize_t got;

			if (!(pfd[s].revents & (POLLIN | POLLERR)))
				continue;
			while ((got = recv(socks[s].fd, pkt, sizeof(pkt), MSG_DONTWAIT)) >= 0 || errno == ECONNREFUSED) {
				slot_t *sl;
				request_t *r;

				if (got < 20)
					continue;
				sl = &socks[s].slot[pkt[1]];
				if (sl->req < 0 || !answer_authentic(pkt, (size_t)got, sl->auth))
					continue;	/* late or forged: not ours */
				r = &reqs[sl->req];
				r->answer = pkt[0];
				r->rtt = now_s() - r->sent;
				rtts[nrtt++] = r->rtt;
				counts[pkt[0] == RAD_ACCESS_ACCEPT ? 0 : pkt[0] == RAD_ACCESS_REJECT ? 1 :
				       pkt[0] == RAD_ACCESS_CHALLENGE ? 2 : 3]++;
				if (results != NULL) {
					char msg[256];

					reply_message(pkt, (size_t)got, msg, sizeof(msg));
					fprintf(results, "%s\t%s\t%s\t%.6f\n", r->user, answer_name(r->answer), msg, wall_s());
				}
				sl->req = -1;
				socks[s].free_ids++;
				inflight--;
				done++;
			}
		}
		t = now_s();
		for (size_t s = 0; s < nsock; s++) {
			for (int i = 0; i < 256; i++) {
				slot_t *sl = &socks[s].slot[i];

				if (sl->req >= 0 && reqs[sl->req].sent + timeout <= t) {
					if (results != NULL)
						fprintf(results, "%s\tnone\t\t%.6f\n", reqs[sl->req].user, wall_s());
					sl->req = -1;
					socks[s].free_ids++;
					inflight--;
					done++;
				}
			}
		}
	}
	elapsed = now_s() - start;
	qsort(rtts, nrtt, sizeof(*rtts), by_rtt);
	printf("radload: %zu requests, %zu accept, %zu reject, %zu challenge, %zu lost in %.3f s = %.0f req/s,"
	       " p50 %.2f ms, p99 %.2f ms\n", n, counts[0], counts[1], counts[2], n - nrtt, elapsed,
	       elapsed > 0 ? (double)nrtt / elapsed : 0.0,
	       nrtt ? rtts[nrtt / 2] * 1000 : 0.0, nrtt ? rtts[(nrtt * 99) / 100 < nrtt ? (nrtt * 99) / 100 : nrtt - 1] * 1000 : 0.0);
	if (results != NULL)
		fclose(results);
	for (size_t s = 0; s < nsock; s++)
		close(socks[s].fd);
	for (size_t i = 0; i < n; i++) {
		free(reqs[i].user);
		free(reqs[i].password);
	}
	free(reqs);
	free(socks);
	free(pfd);
	free(rtts);
	return nrtt == n ? 0 : 1;
}

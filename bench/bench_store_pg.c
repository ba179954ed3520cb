/* bench_store_pg: accepted code verdicts per second, PostgreSQL store against SQLite in the same run. */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ftm_otp.h"
#include "ftm_store.h"

static double seconds = 2.0;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_store_pg: %s: %s\n", what, err);
	exit(1);
}

typedef struct worker {
	ftm_store_t	*st;
	char		user[48];
	long		done, refused;
} worker_t;

/* Each round is an accepted verdict of a new time step: every transaction reads, decides and writes.
 * Every worker is its own user, as many users logging in at once are. */
static void *run(void *arg)
{
	worker_t *w = arg;
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .activation_expire = 0, .consume = true };
	char err[256], code[FTM_CODE_MAX + 1], serial[FTM_SERIAL_MAX];
	time_t base = time(NULL);
	ftm_token_t t;
	double end;

	snprintf(serial, sizeof(serial), "B%s", w->user);
	if (ftm_store_token_get(w->st, serial, &t, err, sizeof(err)) != 0)
		die("token get", err);
	end = now_s() + seconds;
	for (long i = 0; now_s() < end; i++) {
		time_t when = base + (time_t)i * 60;
		ftm_verdict_t v;

		if (ftm_hotp(t.seed, t.seed_len, t.alg, ftm_totp_step(when, t.period), t.digits, code) != 0)
			die("hotp", "failed");
		ftm_store_verify_code(w->st, w->user, code, when, &p, &v);
		if (v.code == FTM_VERDICT_OK) {
			w->done++;
		} else {
			if (w->refused++ == 0)
				fprintf(stderr, "bench_store_pg: %s refused: %s\n", w->user, v.reason);
		}
	}
	ftm_memzero(&t, sizeof(t));
	return NULL;
}

static void add_user(ftm_store_t *st, const char *user)
{
	char serial[FTM_SERIAL_MAX], err[256];
	ftm_token_t t;

	snprintf(serial, sizeof(serial), "B%s", user);
	if (ftm_token_init(&t, user, serial, NULL, err, sizeof(err)) != 0 ||
	    ftm_store_token_add(st, &t, err, sizeof(err)) != 0)
		die("token add", err);
	ftm_memzero(&t, sizeof(t));
}

/* threads workers spread over the given store handles (nodes); verdicts per second. */
static double bench(ftm_store_t **nodes, int n_nodes, int threads, const char *tag)
{
	pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
	worker_t *w = calloc((size_t)threads, sizeof(*w));
	long done = 0, refused = 0;
	double t0, elapsed;

	if (tid == NULL || w == NULL)
		die("bench", "out of memory");
	for (int i = 0; i < threads; i++) {
		w[i].st = nodes[i % n_nodes];
		snprintf(w[i].user, sizeof(w[i].user), "%s-%d-%d-%d", tag, threads, n_nodes, i);
		add_user(w[i].st, w[i].user);
	}
	t0 = now_s();
	for (int i = 0; i < threads; i++)
		if (pthread_create(&tid[i], NULL, run, &w[i]) != 0)
			die("pthread_create", "failed");
	for (int i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		done += w[i].done;
		refused += w[i].refused;
	}
	elapsed = now_s() - t0;
	if (refused > 0)	/* the first one's reason went to stderr */
		fprintf(stderr, "bench_store_pg: %s, %d thread(s), %d node(s): %ld verdict(s) refused!\n",
			tag, threads, n_nodes, refused);
	free(tid);
	free(w);
	return (double)done / elapsed;
}

static ftm_store_t *open_store(const char *uri, const char *key)
{
	char err[512];
	ftm_store_t *st = ftm_store_open(uri, key, NULL, err, sizeof(err));

	if (st == NULL)
		die("open", err);
	return st;
}

int main(int argc, char **argv)
{
	static const int thread_counts[] = { 1, 8, 32 };
	const char *pg = NULL, *sqlite = NULL, *key = NULL;
	ftm_store_t *sq, *pg1[2];
	int c;

	while ((c = getopt(argc, argv, "p:q:k:s:h")) != -1) {
		switch (c) {
		case 'p': pg = optarg; break;
		case 'q': sqlite = optarg; break;
		case 'k': key = optarg; break;
		case 's': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: bench_store_pg -p POSTGRESQL_URI -k KEY_FILE -q SQLITE_PATH [-s SECONDS]\n"
				"(bench/bench_store_pg.sh starts a private PostgreSQL and runs it)\n");
			return 2;
		}
	}
	if (pg == NULL || sqlite == NULL || key == NULL || seconds <= 0) {
		fprintf(stderr, "usage: bench_store_pg -p POSTGRESQL_URI -k KEY_FILE -q SQLITE_PATH [-s SECONDS]\n");
		return 2;
	}
	sq = open_store(sqlite, NULL);
	pg1[0] = open_store(pg, key);
	pg1[1] = open_store(pg, key);	/* a second node: its own connection pool */

	printf("accepted code verdicts per second, %.1f s a run, every thread its own user\n", seconds);
	printf("%-8s %12s %12s %12s %16s %10s\n", "threads", "SQLite", "PostgreSQL", "PG/SQLite", "PG, two nodes", "2 / 1 node");
	for (size_t i = 0; i < sizeof(thread_counts) / sizeof(thread_counts[0]); i++) {
		int n = thread_counts[i];
		double s = bench(&sq, 1, n, "sq");
		double p1 = bench(pg1, 1, n, "pg");
		double p2 = n > 1 ? bench(pg1, 2, n, "pg") : 0;

		if (n > 1)
			printf("%-8d %12.0f %12.0f %12.2f %16.0f %10.2f\n", n, s, p1, p1 / s, p2, p2 / p1);
		else
			printf("%-8d %12.0f %12.0f %12.2f %16s %10s\n", n, s, p1, p1 / s, "-", "-");
	}
	ftm_store_close(sq);
	ftm_store_close(pg1[0]);
	ftm_store_close(pg1[1]);
	return 0;
}

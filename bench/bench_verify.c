/* bench_verify: verdicts per second of the token store, one thread, many threads, many processes. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ftm_audit.h"
#include "ftm_otp.h"
#include "ftm_store.h"

static const char *db_path;
static double seconds = 2.0;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_verify: %s: %s\n", what, err);
	exit(1);
}

typedef struct worker {
	ftm_store_t	*st;		/* NULL: open its own handle */
	char		user[32];
	bool		peek;		/* consume=false: the read-only path */
	bool		audit;		/* each verdict writes its audit row, as a front end's does */
	long		done;
	long		refused;
} worker_t;

/* Each round is a real accepted verdict: a new time step and its code, so every transaction writes.
 * (A benchmark may compute codes itself; the tests take theirs from oathtool.) */
static void *run(void *arg)
{
	worker_t *w = arg;
	ftm_store_t *st = w->st;
	ftm_token_t t;
	ftm_verify_params_t p = { .window = 1, .lockout_threshold = 5, .activation_expire = 0, .consume = !w->peek };
	ftm_audit_row_t a = { .event = FTM_AUDIT_EV_CODE, .client = "192.0.2.7", .nas = "bench", .frontend = "radius",
			      .node = "bench-node" };
	char err[256], code[FTM_CODE_MAX + 1], serial[FTM_SERIAL_MAX];
	time_t base = time(NULL);
	double end;

	if (st == NULL && (st = ftm_store_open(db_path, NULL, NULL, err, sizeof(err))) == NULL)
		die("open", err);
	snprintf(serial, sizeof(serial), "B%s", w->user);
	snprintf(a.user, sizeof(a.user), "%s", w->user);
	if (w->audit)
		p.audit = &a;
	if (ftm_store_token_get(st, serial, &t, err, sizeof(err)) != 0)
		die("token get", err);
	end = now_s() + seconds;
	for (long i = 0; now_s() < end; i++) {
		ftm_verdict_t v;
		time_t when = w->peek ? base : base + (time_t)i * 60;

		if (ftm_hotp(t.seed, t.seed_len, t.alg, ftm_totp_step(when, t.period), t.digits, code) != 0)
			die("hotp", "failed");
		ftm_store_verify_code(st, w->user, code, when, &p, &v);
		if (v.code == FTM_VERDICT_OK)
			w->done++;
		else
			w->refused++;
	}
	ftm_memzero(&t, sizeof(t));
	ftm_memzero(code, sizeof(code));
	if (w->st == NULL)
		ftm_store_close(st);
	return NULL;
}

static void setup_users(ftm_store_t *st, const char *prefix, int n)
{
	for (int i = 0; i < n; i++) {
		ftm_token_t t;
		char user[32], serial[FTM_SERIAL_MAX], err[256];

		snprintf(user, sizeof(user), "%s%d", prefix, i);
		snprintf(serial, sizeof(serial), "B%s", user);
		if (ftm_token_init(&t, user, serial, NULL, err, sizeof(err)) != 0 ||
		    ftm_store_token_add(st, &t, err, sizeof(err)) != 0)
			die("token add", err);
		ftm_memzero(&t, sizeof(t));
	}
}

static double report(const char *what, long done, long refused, double elapsed)
{
	printf("%-44s %8ld verdicts in %.2f s = %9.0f verifies/s%s\n", what, done, elapsed, (double)done / elapsed,
	       refused ? " (refusals seen!)" : "");
	return (double)done / elapsed;
}

static double bench_threads_audited(ftm_store_t *st, const char *prefix, int n, bool shared, bool peek, bool audit,
				    const char *what);

static double bench_threads(ftm_store_t *st, const char *prefix, int n, bool shared, bool peek, const char *what)
{
	return bench_threads_audited(st, prefix, n, shared, peek, false, what);
}

static double bench_threads_audited(ftm_store_t *st, const char *prefix, int n, bool shared, bool peek, bool audit,
				    const char *what)
{
	double rate;
	pthread_t *tid = calloc((size_t)n, sizeof(*tid));
	worker_t *w = calloc((size_t)n, sizeof(*w));
	long done = 0, refused = 0;
	double t0;

	setup_users(st, prefix, n);
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		w[i].st = shared ? st : NULL;
		w[i].peek = peek;
		w[i].audit = audit;
		snprintf(w[i].user, sizeof(w[i].user), "%s%d", prefix, i);
		pthread_create(&tid[i], NULL, run, &w[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(tid[i], NULL);
		done += w[i].done;
		refused += w[i].refused;
	}
	rate = report(what, done, refused, now_s() - t0);
	free(tid);
	free(w);
	return rate;
}

static void bench_procs(ftm_store_t *st, const char *prefix, int n, const char *what)
{
	int fds[2];
	long done = 0, refused = 0;
	double t0;

	setup_users(st, prefix, n);
	if (pipe(fds) != 0)
		die("pipe", strerror(errno));
	t0 = now_s();
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			worker_t w = { .st = NULL };
			long r[2];

			close(fds[0]);
			snprintf(w.user, sizeof(w.user), "%s%d", prefix, i);
			run(&w);	/* its own handle: a fork must not reuse the parent's connection */
			r[0] = w.done;
			r[1] = w.refused;
			if (write(fds[1], r, sizeof(r)) != (ssize_t)sizeof(r))
				_exit(1);
			_exit(0);
		}
		if (pid < 0)
			die("fork", strerror(errno));
	}
	close(fds[1]);
	for (int i = 0; i < n; i++) {
		long r[2];
		if (read(fds[0], r, sizeof(r)) == (ssize_t)sizeof(r)) {
			done += r[0];
			refused += r[1];
		}
	}
	while (wait(NULL) > 0)
		;
	close(fds[0]);
	report(what, done, refused, now_s() - t0);
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/ftm-bench.XXXXXX", path[256], err[256], what[64];
	const char *base = NULL;
	int workers = 4, c;
	ftm_store_t *st;

	while ((c = getopt(argc, argv, "d:n:s:h")) != -1) {
		switch (c) {
		case 'd': base = optarg; break;
		case 'n': workers = atoi(optarg); break;
		case 's': seconds = atof(optarg); break;
		default:
			fprintf(stderr, "usage: bench_verify [-d DIR] [-n WORKERS] [-s SECONDS]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (workers < 1 || workers > 256 || seconds <= 0)
		die("usage", "-n 1..256, -s > 0");
	if (base == NULL) {
		if (mkdtemp(dir) == NULL)
			die("mkdtemp", strerror(errno));
		base = dir;
	}
	snprintf(path, sizeof(path), "%s/bench.db", base);
	db_path = path;
	st = ftm_store_open(path, NULL, NULL, err, sizeof(err));
	if (st == NULL)
		die("open", err);
	printf("ftmpush store benchmark: SQLite WAL, synchronous=FULL, %s, %.1f s per run\n", path, seconds);
	printf("(each verdict is one BEGIN IMMEDIATE transaction that accepts a fresh code and writes its step)\n");
	bench_threads(st, "one", 1, true, false, "1 process, 1 thread");
	snprintf(what, sizeof(what), "1 process, %d threads, one shared handle", workers);
	bench_threads(st, "shr", workers, true, false, what);
	snprintf(what, sizeof(what), "1 process, %d threads, a handle each", workers);
	bench_threads(st, "own", workers, false, false, what);
	snprintf(what, sizeof(what), "%d processes", workers);
	bench_procs(st, "prc", workers, what);
	bench_threads(st, "pek", 1, true, true, "1 thread, peek (consume=false, read only)");
	/* The audit row a front end's verdict writes in the same transaction: interleaved rounds, ratio
	 * with / without, on fresh users each round. */
	for (int r = 1; r <= 3; r++) {
		char p1[16], p2[16], p3[16], p4[16];
		double plain1, audited1, plainn, auditedn;

		snprintf(p1, sizeof(p1), "ap%d-", r);
		snprintf(p2, sizeof(p2), "aa%d-", r);
		snprintf(p3, sizeof(p3), "np%d-", r);
		snprintf(p4, sizeof(p4), "na%d-", r);
		plain1 = bench_threads(st, p1, 1, true, false, "round: 1 thread, no audit row");
		audited1 = bench_threads_audited(st, p2, 1, true, false, true, "round: 1 thread, audit row in the verdict");
		snprintf(what, sizeof(what), "round: %d threads shared, no audit row", workers);
		plainn = bench_threads(st, p3, workers, true, false, what);
		snprintf(what, sizeof(what), "round: %d threads shared, audit rows", workers);
		auditedn = bench_threads_audited(st, p4, workers, true, false, true, what);
		printf("round %d: audit row / none: 1 thread %.3f, %d threads %.3f\n", r, audited1 / plain1, workers,
		       auditedn / plainn);
	}
	ftm_store_close(st);
	if (base == dir) {
		char cmd[300];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_verify: could not remove %s\n", dir);
	}
	return 0;
}

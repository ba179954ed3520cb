/* bench_login: the core's share of a password+code login (ftm_auth_split, then the verdict), with no
 * front end around it: N users once each, T threads, the CPU time (user + system) per login. Under
 * `valgrind --tool=callgrind --toggle-collect=run_logins` its instruction count per login is a figure
 * the load of a shared machine does not move (bench/README.md, third round). */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_otp.h"
#include "ftm_store.h"

static ftm_auth_t *auth;
static int users = 2000, threads = 1;
static bool carry = true;	/* the proof travels with the login (RADIUS); -k: the core keeps it (PAM) */
static time_t now0;
static char (*typed)[64];

static void die(const char *what, const char *err)
{
	fprintf(stderr, "bench_login: %s: %s\n", what, err);
	exit(1);
}

static void quiet(void *ctx, ftm_log_level_t level, const char *line)
{
	(void)ctx;
	(void)level;
	(void)line;
}

static double cpu_seconds(void)
{
	struct rusage r;

	getrusage(RUSAGE_SELF, &r);
	return (double)(r.ru_utime.tv_sec + r.ru_stime.tv_sec) + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

/* Thread `arg` logs in every threads-th user: split, then the verdict on the code the split found. */
static void *run_logins(void *arg)
{
	long ok = 0;

	for (int i = (int)(long)arg; i < users; i += threads) {
		char user[32];
		ftm_login_t login = { .user = user, .client = "192.0.2.1", .nas = "bench" };
		ftm_outcome_t out;
		ftm_split_t sp;

		snprintf(user, sizeof(user), "u%d", i);
		if (ftm_auth_split(auth, &login, typed[i], now0, &sp) != 0)
			continue;
		ftm_auth_after_password_proved(auth, &login, sp.primary.code, carry ? &sp.proof : NULL, now0, &out);
		ftm_memzero(&sp, sizeof(sp));
		ok += out.result == FTM_RES_OK;
	}
	return (void *)ok;
}

int main(int argc, char **argv)
{
	ftm_log_t log = { .sink = quiet, .max_level = FTM_LOG_INFO };
	const char *dir = NULL;
	pthread_t th[64];
	ftm_token_t *toks;
	ftm_config_t cfg;
	struct timespec a, b;
	char err[FTM_ERR_MAX];
	double c0, c1, wall;
	long ok = 0;
	int c;

	ftm_auth_process_init();	/* as FreeRADIUS and ftmpushd do at their start */

	while ((c = getopt(argc, argv, "d:n:t:kh")) != -1) {
		switch (c) {
		case 'd': dir = optarg; break;
		case 'n': users = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case 'k': carry = false; break;
		default:
			fprintf(stderr, "usage: bench_login -d EMPTY_DIR [-n USERS] [-t THREADS (1-64)] [-k]\n");
			return c == 'h' ? 0 : 2;
		}
	}
	if (dir == NULL || users < 1 || threads < 1 || threads > 64)
		die("usage", "bench_login -d EMPTY_DIR [-n USERS] [-t THREADS (1-64)] [-k]");
	ftm_config_defaults(&cfg);
	snprintf(cfg.token_db, sizeof(cfg.token_db), "%s/tokens.db", dir);
	snprintf(cfg.push.socket, sizeof(cfg.push.socket), "%s/absent.sock", dir);
	if ((auth = ftm_auth_new(&cfg, &log, err, sizeof(err))) == NULL)
		die("auth", err);
	ftm_auth_set_proof_carried(auth, carry);
	if (ftm_store_policy_set(ftm_auth_store(auth), "activation_expire", "0", NULL, 0, err, sizeof(err)) != 0)
		die("policy", err);
	toks = calloc((size_t)users, sizeof(*toks));
	typed = calloc((size_t)users, sizeof(*typed));
	if (toks == NULL || typed == NULL)
		die("memory", "out of memory");
	for (int i = 0; i < users; i++) {
		char user[32], serial[FTM_SERIAL_MAX];

		snprintf(user, sizeof(user), "u%d", i);
		snprintf(serial, sizeof(serial), "BL%06d", i);
		if (ftm_token_init(&toks[i], user, serial, NULL, err, sizeof(err)) != 0)
			die("token", err);
	}
	if (ftm_store_token_import(ftm_auth_store(auth), toks, (size_t)users, err, sizeof(err)) != 0)
		die("import", err);
	/* Codes are computed here (a benchmark needs thousands; the tests take theirs from oathtool). */
	now0 = time(NULL);
	for (int i = 0; i < users; i++) {
		char code[FTM_CODE_MAX + 1];

		if (ftm_hotp(toks[i].seed, toks[i].seed_len, toks[i].alg, ftm_totp_step(now0, toks[i].period),
			     toks[i].digits, code) != 0)
			die("hotp", "failed");
		snprintf(typed[i], sizeof(typed[i]), "pw-u%d%s", i, code);
	}
	ftm_memzero(toks, (size_t)users * sizeof(*toks));
	free(toks);

	c0 = cpu_seconds();
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < threads; i++)
		pthread_create(&th[i], NULL, run_logins, (void *)i);
	for (int i = 0; i < threads; i++) {
		void *r;

		pthread_join(th[i], &r);
		ok += (long)r;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	c1 = cpu_seconds();
	wall = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("bench_login: %d logins, %ld accepted, %d thread%s, proof %s: %.0f logins/s, CPU %.1f us/login\n",
	       users, ok, threads, threads == 1 ? "" : "s", carry ? "carried" : "kept by the core", users / wall,
	       (c1 - c0) * 1e6 / users);
	ftm_memzero(typed, (size_t)users * sizeof(*typed));
	free(typed);
	ftm_auth_free(auth);
	return ok == users ? 0 : 1;
}

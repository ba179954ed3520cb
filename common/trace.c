/* trace: debug on demand: a cached copy of the store's debug switches, asked once per login. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ftm_trace.h"
#include "ftm_util.h"

typedef struct {
	char	user[FTM_USER_MAX];	/* "": everyone */
	int64_t	expires;
} trace_switch_t;

struct ftm_trace {
	pthread_mutex_t	mu;
	struct timespec	fetched;	/* monotonic time of the last read; 0: never */
	bool		reading;	/* a thread is reading the store */
	size_t		n;
	trace_switch_t	sw[FTM_TRACE_SWITCHES];
};

ftm_trace_t *ftm_trace_new(void)
{
	ftm_trace_t *t = calloc(1, sizeof(*t));

	if (t != NULL && pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		return NULL;
	}
	return t;
}

void ftm_trace_free(ftm_trace_t *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t);
}

struct copy {
	size_t		n;
	trace_switch_t	sw[FTM_TRACE_SWITCHES];
};

static int copy_one(void *ctx, const char *user, int64_t expires)
{
	struct copy *c = ctx;

	if (c->n == FTM_TRACE_SWITCHES)
		return 1;
	ftm_copy(c->sw[c->n].user, sizeof(c->sw[c->n].user), user);
	c->sw[c->n].expires = expires;
	c->n++;
	return 0;
}

static bool stale(const ftm_trace_t *t, const struct timespec *now)
{
	return (t->fetched.tv_sec == 0 && t->fetched.tv_nsec == 0) || now->tv_sec - t->fetched.tv_sec >= FTM_TRACE_REFRESH;
}

bool ftm_trace_wanted(ftm_trace_t *t, ftm_store_t *st, const char *user, time_t now)
{
	struct timespec mono;
	bool on = false, read = false;

	if (t == NULL || st == NULL || user == NULL)
		return false;
	clock_gettime(CLOCK_MONOTONIC, &mono);
	pthread_mutex_lock(&t->mu);
	if (stale(t, &mono) && !t->reading) {
		t->reading = true;
		read = true;
	}
	pthread_mutex_unlock(&t->mu);
	if (read) {
		struct copy *c = calloc(1, sizeof(*c));
		bool ok = c != NULL && ftm_store_debug_list(st, now, copy_one, c, NULL, 0) == 0;

		pthread_mutex_lock(&t->mu);
		if (ok) {
			t->n = c->n;
			memcpy(t->sw, c->sw, c->n * sizeof(c->sw[0]));
		}
		t->fetched = mono;	/* a failed read is not retried before the next refresh either */
		t->reading = false;
		pthread_mutex_unlock(&t->mu);
		free(c);
	}
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->n && !on; i++)
		on = t->sw[i].expires > (int64_t)now && (t->sw[i].user[0] == '\0' || strcmp(t->sw[i].user, user) == 0);
	pthread_mutex_unlock(&t->mu);
	return on;
}

/* test_batch: the group commit's queue (common/batch.c): a job returns only once the flush that held it
 * is over, with the rc that flush gave it; flushes never overlap; writers that queue behind a flush are
 * its successor's batch, led by one of them. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ftm_batch.h"

#define THREADS	16
#define JOBS	400

struct job_arg {
	int		flushed;	/* times a flush held this job */
};

struct owner {
	int		in_flush;	/* atomic: a flush is running */
	int		overlaps;	/* atomic: a flush began while another ran */
	int		flushes;	/* atomic: flushes that ended (rc of their jobs: their number) */
	int		jobs;		/* jobs flushed, every batch */
	int		largest;	/* jobs in the largest batch */
	/* hold_until_queued: the first flush waits until this many more jobs are queued */
	ftm_batcher_t	*b;
	int		hold_until_queued;
	int		sizes[8];	/* jobs in each of the first flushes */
	const char	*fail;		/* non-NULL: every batch fails with it */
};

static int queued(ftm_batcher_t *b)
{
	int n = 0;

	pthread_mutex_lock(&b->mu);
	for (ftm_batch_job_t *j = b->queue; j != NULL; j = j->next)
		n++;
	pthread_mutex_unlock(&b->mu);
	return n;
}

static void flush(void *owner, ftm_batch_job_t *batch)
{
	struct owner *o = owner;
	int n = 0, no;

	if (__atomic_exchange_n(&o->in_flush, 1, __ATOMIC_ACQ_REL))
		__atomic_add_fetch(&o->overlaps, 1, __ATOMIC_ACQ_REL);
	no = __atomic_load_n(&o->flushes, __ATOMIC_ACQUIRE) + 1;
	if (no == 1 && o->hold_until_queued > 0) {
		while (queued(o->b) < o->hold_until_queued)
			usleep(1000);
	}
	usleep(50);	/* a commit takes a while: writers queue meanwhile */
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next) {
		((struct job_arg *)j->arg)->flushed++;
		j->rc = no;
		n++;
	}
	if (o->fail != NULL)
		ftm_batch_fail(batch, o->fail);
	o->jobs += n;
	if (n > o->largest)
		o->largest = n;
	if (no <= (int)(sizeof(o->sizes) / sizeof(o->sizes[0])))
		o->sizes[no - 1] = n;
	__atomic_store_n(&o->in_flush, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&o->flushes, no, __ATOMIC_RELEASE);
}

struct writer {
	ftm_batcher_t	*b;
	struct owner	*o;
	int		jobs;
	int		bad;		/* returned before its flush was over, or held by no flush / two */
};

static void *write_jobs(void *arg)
{
	struct writer *w = arg;

	for (int i = 0; i < w->jobs; i++) {
		struct job_arg a = { 0 };
		char err[64] = "";
		int rc = ftm_batch_run(w->b, &a, err, sizeof(err));

		if (a.flushed != 1 || rc < 1 || __atomic_load_n(&w->o->flushes, __ATOMIC_ACQUIRE) < rc)
			w->bad++;
	}
	return NULL;
}

static void every_job_returns_once_the_flush_that_held_it_is_over(void **state)
{
	ftm_batcher_t b;
	struct owner o = { .b = &b };
	struct writer w[THREADS];
	pthread_t tid[THREADS];

	(void)state;
	assert_int_equal(ftm_batcher_init(&b, flush, &o), 0);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ .b = &b, .o = &o, .jobs = JOBS };
		assert_int_equal(pthread_create(&tid[i], NULL, write_jobs, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	assert_int_equal(o.overlaps, 0);
	assert_int_equal(o.jobs, THREADS * JOBS);
	assert_true(o.flushes < THREADS * JOBS);	/* some batches held more than one job */
	assert_true(o.largest > 1);
	ftm_batcher_destroy(&b);
}

/* The first flush is held until the other writers have all queued: they are the second batch, whole, and
 * one of them leads it. */
static void writers_queued_behind_a_flush_are_the_next_batch(void **state)
{
	ftm_batcher_t b;
	struct owner o = { .b = &b, .hold_until_queued = THREADS - 1 };
	struct writer first = { .b = &b, .o = &o, .jobs = 1 }, w[THREADS - 1];
	pthread_t lead, tid[THREADS - 1];

	(void)state;
	assert_int_equal(ftm_batcher_init(&b, flush, &o), 0);
	assert_int_equal(pthread_create(&lead, NULL, write_jobs, &first), 0);
	while (__atomic_load_n(&o.in_flush, __ATOMIC_ACQUIRE) == 0)
		usleep(1000);
	for (int i = 0; i < THREADS - 1; i++) {
		w[i] = (struct writer){ .b = &b, .o = &o, .jobs = 1 };
		assert_int_equal(pthread_create(&tid[i], NULL, write_jobs, &w[i]), 0);
	}
	pthread_join(lead, NULL);
	for (int i = 0; i < THREADS - 1; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	assert_int_equal(first.bad, 0);
	assert_int_equal(o.flushes, 2);
	assert_int_equal(o.sizes[0], 1);
	assert_int_equal(o.sizes[1], THREADS - 1);
	ftm_batcher_destroy(&b);
}

struct failing {
	ftm_batcher_t	*b;
	int		rc;
	char		err[64];
};

static void *write_failing(void *arg)
{
	struct failing *f = arg;
	struct job_arg a = { 0 };

	f->rc = ftm_batch_run(f->b, &a, f->err, sizeof(f->err));
	return NULL;
}

static void a_batch_that_fails_fails_every_job_with_its_reason(void **state)
{
	ftm_batcher_t b;
	struct owner o = { .b = &b, .fail = "token store: disk I/O error" };
	struct failing f[THREADS];
	pthread_t tid[THREADS];

	(void)state;
	assert_int_equal(ftm_batcher_init(&b, flush, &o), 0);
	for (int i = 0; i < THREADS; i++) {
		f[i] = (struct failing){ .b = &b, .rc = 0 };
		assert_int_equal(pthread_create(&tid[i], NULL, write_failing, &f[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(f[i].rc, -1);
		assert_string_equal(f[i].err, "token store: disk I/O error");
	}
	ftm_batcher_destroy(&b);
}

/* ftm_batch_try_hold: taken at once when no flush is in flight, refused at once while one is (it never
 * waits); writers that queue during a hold wait for its release and are then one batch, led by one of
 * them, and no flush runs while the hold is kept. */
static void a_hold_is_refused_during_a_flush_and_its_release_hands_the_queued_writers_their_batch(void **state)
{
	ftm_batcher_t b;
	struct owner o = { .b = &b };
	struct writer first = { .b = &b, .o = &o, .jobs = 1 }, w[THREADS];
	pthread_t lead, tid[THREADS];

	(void)state;
	assert_int_equal(ftm_batcher_init(&b, flush, &o), 0);
	assert_true(ftm_batch_try_hold(&b));
	assert_false(ftm_batch_try_hold(&b));	/* one hold at a time */
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct writer){ .b = &b, .o = &o, .jobs = 1 };
		assert_int_equal(pthread_create(&tid[i], NULL, write_jobs, &w[i]), 0);
	}
	while (queued(&b) < THREADS)
		usleep(1000);
	assert_int_equal(__atomic_load_n(&o.flushes, __ATOMIC_ACQUIRE), 0);	/* nothing ran under the hold */
	ftm_batch_release(&b);
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	assert_int_equal(o.flushes, 1);
	assert_int_equal(o.sizes[0], THREADS);
	/* the turn is free again: held and released with nobody queued */
	assert_true(ftm_batch_try_hold(&b));
	ftm_batch_release(&b);
	/* refused while a flush runs (the first one here waits for one more writer to queue) */
	o = (struct owner){ .b = &b, .hold_until_queued = 1 };
	assert_int_equal(pthread_create(&lead, NULL, write_jobs, &first), 0);
	while (__atomic_load_n(&o.in_flush, __ATOMIC_ACQUIRE) == 0)
		usleep(1000);
	assert_false(ftm_batch_try_hold(&b));
	w[0] = (struct writer){ .b = &b, .o = &o, .jobs = 1 };
	assert_int_equal(pthread_create(&tid[0], NULL, write_jobs, &w[0]), 0);
	pthread_join(lead, NULL);
	pthread_join(tid[0], NULL);
	assert_int_equal(first.bad, 0);
	assert_int_equal(w[0].bad, 0);
	assert_int_equal(o.flushes, 2);
	assert_true(ftm_batch_try_hold(&b));
	ftm_batch_release(&b);
	ftm_batcher_destroy(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_job_returns_once_the_flush_that_held_it_is_over),
		cmocka_unit_test(writers_queued_behind_a_flush_are_the_next_batch),
		cmocka_unit_test(a_batch_that_fails_fails_every_job_with_its_reason),
		cmocka_unit_test(a_hold_is_refused_during_a_flush_and_its_release_hands_the_queued_writers_their_batch),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

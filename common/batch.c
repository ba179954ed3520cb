/* batch: the group commit's queue, leader and wake-ups (ftm_batch.h), for every store backend. */
#include "config.h"

#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "ftm_batch.h"
#include "ftm_util.h"

#define LOAD(p)		__atomic_load_n((p), __ATOMIC_ACQUIRE)
#define STORE(p, v)	__atomic_store_n((p), (v), __ATOMIC_RELEASE)

/* Sleep while *word still holds seen: returns at once if it changed since, and may return early. */
static void word_wait(uint32_t *word, uint32_t seen)
{
	(void)syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
}

/* Wake n sleepers of word (INT_MAX: all). What they are to find is stored before the bump, so a job
 * that read the word before it and sleeps after it returns at once: no wake-up is lost. */
static void word_wake(uint32_t *word, int n)
{
	__atomic_fetch_add(word, 1, __ATOMIC_ACQ_REL);
	(void)syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int ftm_batcher_init(ftm_batcher_t *b, ftm_batch_flush_fn flush, void *owner)
{
	b->flushing = false;
	b->taken = 0;
	b->offer = 0;
	b->word[0] = b->word[1] = 0;
	b->queue = NULL;
	b->queue_tail = &b->queue;
	b->flush = flush;
	b->owner = owner;
	return pthread_mutex_init(&b->mu, NULL) == 0 ? 0 : -1;
}

void ftm_batcher_destroy(ftm_batcher_t *b)
{
	pthread_mutex_destroy(&b->mu);
}

void ftm_batch_fail(ftm_batch_job_t *batch, const char *why)
{
	for (ftm_batch_job_t *j = batch; j != NULL; j = j->next) {
		if (j->rc >= 0 || j->err == NULL || j->err_len == 0 || j->err[0] == '\0') {
			if (j->err != NULL && j->err_len > 0)
				snprintf(j->err, j->err_len, "%s", why);
		}
		j->rc = -1;
	}
}

bool ftm_batch_try_hold(ftm_batcher_t *b)
{
	bool held = false;

	pthread_mutex_lock(&b->mu);
	if (!b->flushing) {
		b->flushing = true;
		held = true;
	}
	pthread_mutex_unlock(&b->mu);
	return held;
}

/* As a leader's end of its flush: the writers that queued during the hold (batch `taken + 1`, none was
 * taken meanwhile) are offered the lead, one of them takes it; with none, the turn is free again. */
void ftm_batch_release(ftm_batcher_t *b)
{
	uint64_t no;
	bool next;

	pthread_mutex_lock(&b->mu);
	no = b->taken + 1;
	next = b->queue != NULL;
	if (next)
		STORE(&b->offer, no);
	else
		b->flushing = false;
	pthread_mutex_unlock(&b->mu);
	if (next)
		word_wake(&b->word[no & 1], 1);
}

/* Until the job's batch was flushed (true), or its lead was offered and this job took it (false). Every
 * job queued is in batch `taken + 1`, and no job of the batch after queues before that one is taken:
 * word[n & 1] serves only batch n's jobs while they wait. */
static bool wait_done_or_lead(ftm_batcher_t *b, ftm_batch_job_t *job)
{
	uint32_t *word = &b->word[job->batch_no & 1];

	for (;;) {
		uint32_t seen = LOAD(word);
		uint64_t want = job->batch_no;

		if (LOAD(&job->done))
			return true;
		if (LOAD(&b->offer) == want &&
		    __atomic_compare_exchange_n(&b->offer, &want, 0, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			return false;
		word_wait(word, seen);
	}
}

int ftm_batch_run(ftm_batcher_t *b, void *arg, char *err, size_t err_len)
{
	ftm_batch_job_t job = { .arg = arg, .rc = -1, .err = err, .err_len = err_len, .queued_ms = ftm_mono_ms() };
	ftm_batch_job_t *batch;
	uint64_t no;
	bool lead = false, others = false, next;

	pthread_mutex_lock(&b->mu);
	job.batch_no = b->taken + 1;
	*b->queue_tail = &job;
	b->queue_tail = &job.next;
	if (!b->flushing) {
		b->flushing = true;
		lead = true;
	}
	pthread_mutex_unlock(&b->mu);
	if (!lead && wait_done_or_lead(b, &job))
		return job.rc;

	/* this job leads: the batch it takes holds every job queued so far, this one too */
	pthread_mutex_lock(&b->mu);
	batch = b->queue;
	b->queue = NULL;
	b->queue_tail = &b->queue;
	no = ++b->taken;
	pthread_mutex_unlock(&b->mu);
	b->flush(b->owner, batch);
	for (ftm_batch_job_t *j = batch; j != NULL; ) {
		ftm_batch_job_t *n = j->next;	/* read first: once done, a job may be gone */

		if (j != &job) {
			STORE(&j->done, 1);
			others = true;
		}
		j = n;
	}
	if (others)		/* a batch of this job alone (a PAM login's, an idle server's): nobody sleeps */
		word_wake(&b->word[no & 1], INT_MAX);
	/* the writers that queued meanwhile: one of them flushes them all, starting now */
	pthread_mutex_lock(&b->mu);
	next = b->queue != NULL;
	if (next)
		STORE(&b->offer, no + 1);
	else
		b->flushing = false;
	pthread_mutex_unlock(&b->mu);
	if (next)
		word_wake(&b->word[(no + 1) & 1], 1);
	return job.rc;
}

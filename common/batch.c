/* batch: the group commit's queue, leader and wake-ups (ftm_batch.h), for every store backend. */
#include "config.h"

#include <stdio.h>

#include "ftm_batch.h"
#include "ftm_util.h"

int ftm_batcher_init(ftm_batcher_t *b, ftm_batch_flush_fn flush, void *owner)
{
	b->flushing = false;
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

void ftm_batch_release(ftm_batcher_t *b)
{
	ftm_batch_job_t *next_lead;

	pthread_mutex_lock(&b->mu);
	next_lead = b->queue;
	if (next_lead == NULL)
		b->flushing = false;
	pthread_mutex_unlock(&b->mu);
	if (next_lead != NULL) {
		next_lead->lead = true;	/* its owner reads it only after the post */
		sem_post(&next_lead->wake);
	}
}

int ftm_batch_run(ftm_batcher_t *b, void *arg, char *err, size_t err_len)
{
	ftm_batch_job_t job = { .arg = arg, .rc = -1, .err = err, .err_len = err_len, .queued_ms = ftm_mono_ms() };
	ftm_batch_job_t *batch, *next_lead;

	sem_init(&job.wake, 0, 0);
	pthread_mutex_lock(&b->mu);
	*b->queue_tail = &job;
	b->queue_tail = &job.next;
	if (!b->flushing) {
		b->flushing = true;
		job.lead = true;
	}
	pthread_mutex_unlock(&b->mu);
	if (!job.lead) {
		/* the leader sets done or lead, then posts: sem_post/sem_wait order the two */
		while (sem_wait(&job.wake) != 0)
			;	/* EINTR */
	}
	if (job.lead) {		/* the batch taken holds this job: it was queued first */
		pthread_mutex_lock(&b->mu);
		batch = b->queue;
		b->queue = NULL;
		b->queue_tail = &b->queue;
		pthread_mutex_unlock(&b->mu);
		b->flush(b->owner, batch);
		/* the writers that queued meanwhile: the first of them flushes them all, starting now */
		pthread_mutex_lock(&b->mu);
		next_lead = b->queue;
		if (next_lead == NULL)
			b->flushing = false;
		pthread_mutex_unlock(&b->mu);
		if (next_lead != NULL) {
			next_lead->lead = true;	/* its owner reads it only after the post */
			sem_post(&next_lead->wake);
		}
		while (batch != NULL) {
			ftm_batch_job_t *next = batch->next;	/* read first: once posted, a job may be gone */

			if (batch != &job) {
				batch->done = true;
				sem_post(&batch->wake);
			}
			batch = next;
		}
	}
	sem_destroy(&job.wake);
	return job.rc;
}

/* ftm_batch: group commit for a store backend (internal to libftmpush). Concurrent writers of one process
 * queue a job each; the first to find no batch in flight becomes the leader, takes every job waiting,
 * hands them to the backend's flush (one transaction, one commit, whatever the backend makes of it),
 * then wakes their threads; writers that arrive meanwhile wait for the next batch, whose leader is one
 * of them. A job returns only after the flush that held it.
 * The jobs of a batch sleep on one futex word (two words: the batch in flight and the next alternate)
 * and the leader wakes them all with one system call once its flush is over; a woken job reads its own
 * `done` and takes no lock. With a semaphore per job the leader made a system call per job and was
 * preempted by the writers it had just woken before it had woken the rest, several times a batch; with
 * a condition variable every woken writer queued again on the mutex behind the others (under load, a
 * third of the server's CPU went to those futex round trips). The next batch's lead is offered on its
 * own word: one of its jobs is woken and takes it. */
#ifndef FTM_BATCH_H
#define FTM_BATCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ftm_batch_job {
	void		*arg;		/* the backend's own */
	int		rc;		/* set by flush; -1 too when the batch did not commit */
	int		done;		/* atomic: its batch was flushed (rc and err are set) */
	uint64_t	batch_no;	/* the batch that holds it (ftm_batcher_t.taken + 1 when queued) */
	int64_t		queued_ms;	/* monotonic: when it was queued */
	char		*err;
	size_t		err_len;
	struct ftm_batch_job *next;
} ftm_batch_job_t;

/* Runs on the leader's thread with the batch (in queue order, at least one job): sets every job's rc
 * (and err). */
typedef void (*ftm_batch_flush_fn)(void *owner, ftm_batch_job_t *batch);

typedef struct ftm_batcher {
	pthread_mutex_t	mu;		/* guards the queue, flushing and taken; never held over a flush */
	bool		flushing;	/* a batch is being flushed, or its leader is being chosen */
	uint64_t	taken;		/* batches taken from the queue so far */
	uint64_t	offer;		/* atomic: the batch whose leader is wanted (0: none) */
	uint32_t	word[2];	/* atomic: bumped when batch n's jobs must look (word[n & 1]) */
	ftm_batch_job_t	*queue, **queue_tail;
	ftm_batch_flush_fn flush;
	void		*owner;
} ftm_batcher_t;

int ftm_batcher_init(ftm_batcher_t *b, ftm_batch_flush_fn flush, void *owner);
void ftm_batcher_destroy(ftm_batcher_t *b);

/* Queue a job carrying arg and return its rc once the batch holding it was flushed. */
int ftm_batch_run(ftm_batcher_t *b, void *arg, char *err, size_t err_len);

/* The flush's turn for the caller, if no batch is in flight or queued: true, and the caller (which may
 * then use what the flush uses, its connection, for a read) ends it with ftm_batch_release; false at
 * once otherwise. Never waits. A writer that queues meanwhile waits for the release, which hands it the
 * next batch. */
bool ftm_batch_try_hold(ftm_batcher_t *b);
void ftm_batch_release(ftm_batcher_t *b);

/* Every job of the batch fails with why (a job that failed on its own keeps its reason). */
void ftm_batch_fail(ftm_batch_job_t *batch, const char *why);

#endif

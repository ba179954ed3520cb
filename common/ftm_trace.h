/* ftm_trace: debug on demand: the store's switches, cached, raising the decision trace of a login. */
#ifndef FTM_TRACE_H
#define FTM_TRACE_H

#include <stdbool.h>
#include <time.h>
#include "ftm_store.h"

#define FTM_TRACE_REFRESH	2	/* seconds a process trusts its copy of the switches */
#define FTM_TRACE_SWITCHES	32	/* switches a process keeps (more are read as off) */
#define FTM_TRACE_DEFAULT_MINUTES 30	/* ftmpushctl debug enable without --minutes */

typedef struct ftm_trace ftm_trace_t;

ftm_trace_t *ftm_trace_new(void);
void ftm_trace_free(ftm_trace_t *t);

/* Is a switch for user (or for everyone) on at `now`? Reads the store at most every FTM_TRACE_REFRESH
 * seconds (one thread reads, the others use the copy meanwhile); a failed read keeps the copy. */
bool ftm_trace_wanted(ftm_trace_t *t, ftm_store_t *st, const char *user, time_t now);

#endif

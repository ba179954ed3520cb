/* ftm_protect: keeping secrets out of core dumps and swap (prctl, mlock, madvise). */
#ifndef FTM_PROTECT_H
#define FTM_PROTECT_H

#include <stdbool.h>
#include <stddef.h>

/* Make the whole process non-dumpable (PR_SET_DUMPABLE 0: no core file, no ptrace by the same
 * user, /proc/PID owned by root) and set RLIMIT_CORE to 0. For daemons and tools that hold the
 * seed key, the ntfy token or the TLS key; never for a host process that is not ours (PAM).
 * 0, or -1 with a one-line reason in err (the caller logs it and goes on: fail-safe either way). */
int ftm_protect_nodump(char *err, size_t err_len);
/* Whether the process may dump core (prctl PR_GET_DUMPABLE). */
bool ftm_protect_dumpable(void);

/* Lock the pages holding [p, p+len) in memory and leave them out of core dumps (best effort:
 * RLIMIT_MEMLOCK may refuse; false then, and nothing else changes). Use on long-lived secrets. */
bool ftm_protect_lock(void *p, size_t len);
/* Undo ftm_protect_lock's memory lock (call after zeroing the secret). */
void ftm_protect_unlock(void *p, size_t len);

#endif

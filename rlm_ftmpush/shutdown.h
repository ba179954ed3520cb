/* shutdown: SIGTERM of the FreeRADIUS process ends the pending pushes while the server can still
 * send their replies (rlm_ftmpush glue; what a shutdown does to a push is the core's ftm_push_shutdown). */
#ifndef RLM_FTMPUSH_SHUTDOWN_H
#define RLM_FTMPUSH_SHUTDOWN_H

#include "ftm_push.h"

/* An instance's push engine, from instantiate to detach. 0, or -1 when the watcher thread could not
 * start (a SIGTERM then waits for the pending pushes, as without this file). */
int rlm_shutdown_register(ftm_push_t *engine);
void rlm_shutdown_unregister(ftm_push_t *engine);
/* From each request: takes SIGTERM over once FreeRADIUS has installed its own handler (it does so
 * after instantiating the modules, before the first request). Cheap after the first call. */
void rlm_shutdown_hook(void);
/* Around the module calls that may wait for a phone: the shutdown waits for them to return. */
void rlm_shutdown_enter(void);
void rlm_shutdown_leave(void);

#endif

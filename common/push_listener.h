/* push_listener: the HTTPS callback listener (libmicrohttpd); internal to the engine, which starts it and
 * hands it the answers to call, so the listener knows nothing of transactions. */
#ifndef FTM_PUSH_LISTENER_H
#define FTM_PUSH_LISTENER_H

#include <stddef.h>
#include <time.h>
#include "ftm_config.h"
#include "ftm_log.h"

/* What the listener calls for a callback; each returns the HTTP status and writes the JSON reply. */
typedef struct ftm_push_listener_answers {
	int	(*capability)(void *ctx, const char *cap, time_t now, char *reply, size_t reply_len);
	int	(*gateway)(void *ctx, const char *body, size_t body_len, time_t now, char *reply, size_t reply_len);
	void	*ctx;
} ftm_push_listener_answers_t;

typedef struct ftm_push_listener ftm_push_listener_t;

/* Listen with TLS on cfg->push.server_port, on bind_addr (the address of cfg->push.interface, resolved
 * by the owner) or, bind_addr NULL, on every address. answers is copied. NULL with err. */
ftm_push_listener_t *ftm_push_listener_start(const ftm_push_listener_answers_t *answers, const ftm_config_t *cfg,
					     const char *bind_addr, const ftm_log_t *log, char *err, size_t err_len);
void ftm_push_listener_stop(ftm_push_listener_t *l);
/* Serve the enrolment page (FTM_ENROL_PREFIX) through e from now on (NULL: not any more); the owner
 * keeps e alive until the listener stops. */
struct ftm_enrol;
void ftm_push_listener_set_enrol(ftm_push_listener_t *l, struct ftm_enrol *e);

#endif

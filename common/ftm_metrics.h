/* ftm_metrics: the process's counters, gauge and histograms (lock-free C11 atomics), their Prometheus
 * text exposition (format 0.0.4), and the loopback HTTP listener that serves it (docs/metrics.md). */
#ifndef FTM_METRICS_H
#define FTM_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_push_verdict.h"

/* The push channels a push goes out on (the token's push target). */
typedef enum { FTM_METRICS_NTFY = 0, FTM_METRICS_GATEWAY } ftm_metrics_channel_t;

/* The store operations of the login path whose failures are counted. */
typedef enum {
	FTM_METRICS_STORE_VERDICT = 0,	/* a code or recovery code verdict, or a push's success/failure record */
	FTM_METRICS_STORE_LIST,		/* reading a user's tokens */
	FTM_METRICS_STORE_CHALLENGE	/* issuing or taking a challenge State */
} ftm_metrics_store_op_t;

/* ---- counting: each a few atomic adds, safe from any thread, never failing ---- */

/* A login request the core decided, by its result (the front end's one outcome). */
void ftm_metrics_login(ftm_result_t result);
/* A push transaction was created and is pending (the gauge goes up). */
void ftm_metrics_push_started(void);
/* A push transaction left pending with verdict v; answer_seconds >= 0: the time from its start to the
 * user's answer (tap or typed number), observed into the round-trip histogram; < 0: no answer. */
void ftm_metrics_push_decided(ftm_metrics_channel_t ch, ftm_push_verdict_t v, double answer_seconds);
/* The duration of one consuming code verdict (the store transaction that checks and uses a code). */
void ftm_metrics_verdict_seconds(double seconds);
void ftm_metrics_store_error(ftm_metrics_store_op_t op);
/* The callback listener saw a client refuse or break its TLS handshake. */
void ftm_metrics_tls_failure(void);
/* Seconds of CLOCK_MONOTONIC, for the durations above. */
double ftm_metrics_now(void);

/* ---- the exposition ---- */

/* The front end this process counts logins for: "radius" (FreeRADIUS) or "pam" (ftmpushd: the PAM
 * logins that reach it). Set once by whoever starts the listener; the frontend label of every login. */
void ftm_metrics_set_frontend(const char *frontend);
/* The whole exposition, NUL-terminated, in a malloc'd buffer (*len without the NUL); NULL when out of
 * memory. */
char *ftm_metrics_render(size_t *len);
/* Every counter, gauge and histogram back to zero (unit tests). */
void ftm_metrics_reset(void);

/* metrics_listen's value, "HOST:PORT" or "[IPv6]:PORT" with a literal address: 0 with the address and
 * port, or -1 with a one-line reason. A non-loopback address is refused unless allow_remote
 * (metrics_allow_remote = yes): the exposition has no authentication and no TLS. */
int ftm_metrics_parse_listen(const char *value, bool allow_remote, char *addr, size_t addr_len, unsigned *port,
			     char *err, size_t err_len);

/* ---- the listener (libmicrohttpd, plain HTTP, GET /metrics only; in libftmpush) ---- */

typedef struct ftm_metrics_listener ftm_metrics_listener_t;

/* Serve the exposition on cfg->metrics_listen for frontend ("radius", "pam"): 0 with *out, or with
 * *out NULL when metrics_listen is unset; -1 with err. One listener per process (the counters are the
 * process's): a second start for the same address shares it, another address is refused. */
int ftm_metrics_listener_start(const ftm_config_t *cfg, const char *frontend, const ftm_log_t *log,
			       ftm_metrics_listener_t **out, char *err, size_t err_len);
/* Let go of a start's listener (NULL: nothing); the last one stops it. */
void ftm_metrics_listener_stop(ftm_metrics_listener_t *l);

#endif

/* ftm_diagnose: the troubleshooting checklist of `ftmpushctl diagnose` and the listener's start-up
 * certificate check, each check a mark, what was found and, when it is not fine, the fix. */
#ifndef FTM_DIAGNOSE_H
#define FTM_DIAGNOSE_H

#include <stddef.h>
#include <time.h>
#include "ftm_config.h"

#define FTM_DIAG_CERT_DAYS	30	/* a callback certificate expiring sooner is a problem */

typedef enum {
	FTM_DIAG_OK = 0,	/* ✔ */
	FTM_DIAG_WARN,		/* ! worth knowing, does not stop logins by itself */
	FTM_DIAG_FAIL		/* ✘ logins fail, or phones refuse the callback, until fixed */
} ftm_diag_mark_t;

/* One line of the checklist. check: what was checked ("callback certificate"); detail: what was found;
 * fix: what to do (NULL for FTM_DIAG_OK). */
typedef void (*ftm_diag_report_fn)(void *ctx, ftm_diag_mark_t mark, const char *check, const char *detail,
				   const char *fix);

/* Run every check against cfg (already loaded; validated here) at `now`: config, the token store and
 * its key, the callback listener on push.server:push.server_port and its certificate (name, chain to
 * the system trust store, expiry), the ntfy servers of the tokens and the push gateway (through
 * push.proxy), the clock, and for user (NULL: none) each token. Returns the number of FTM_DIAG_FAIL. */
unsigned ftm_diagnose(const ftm_config_t *cfg, const char *user, time_t now, ftm_diag_report_fn report,
		      void *ctx);

/* `diagnose --push USER`: a test push to USER's push token (the one a login would use) through the
 * configured path, a line per step with its time: published (the ntfy server's or gateway's answer),
 * callback (the phone's answer reached the listener on push.server:push.server_port), the answer
 * (approved or denied on the phone), the total. The path: ftmpushd when push.socket is set and it
 * answers there (a PAM host); else a push engine of this process on the configured listener port,
 * which must then be free (stop the freeradius or ftmpushd holding it for the test), so the phone
 * calls back exactly where a login's push would. Waits up to push.timeout. No login is made: nothing
 * is counted on the token. Returns the number of FTM_DIAG_FAIL. */
unsigned ftm_diagnose_push(const ftm_config_t *cfg, const char *user, ftm_diag_report_fn report, void *ctx);

/* The start-up check of the listener's own certificate (PEM text): does it name `server` (skipped when
 * server is empty) and is it valid for more than FTM_DIAG_CERT_DAYS at now? 0 fine, 1 with the problem
 * in problem, -1 when the PEM does not parse. */
int ftm_diag_cert_problem(const char *pem, const char *server, time_t now, char *problem, size_t problem_len);

#endif

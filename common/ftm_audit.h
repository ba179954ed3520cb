/* ftm_audit: the audit trail's vocabulary and the calls that fill, write, read and prune it. */
#ifndef FTM_AUDIT_H
#define FTM_AUDIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "ftm_config.h"
#include "ftm_store.h"

/* Events: what was decided on. */
#define FTM_AUDIT_EV_CODE	"code"		/* a code appended to the password */
#define FTM_AUDIT_EV_LOGIN	"login"		/* the second factor refused before any code or push (no token, all locked) */
#define FTM_AUDIT_EV_CHALLENGE	"challenge"	/* a code challenge issued, or the code typed at it */
#define FTM_AUDIT_EV_PUSH	"push"		/* a push: sent (number matching), approved, denied, timeout, failed */
#define FTM_AUDIT_EV_NUMBER	"number"	/* the number typed for a number-matching push */
#define FTM_AUDIT_EV_ENROL	"enrol"		/* a code typed on the enrolment page of an activation link */
#define FTM_AUDIT_EV_RECOVERY	"recovery"	/* a recovery code: "used" when accepted, else as a code */
#define FTM_AUDIT_EV_ADMIN	"admin"		/* an ftmpushctl command that changed the store */

/* Results (ftmpushctl audit --result R). */
#define FTM_AUDIT_ACCEPTED	"accepted"	/* a code (or the right number) proved the second factor */
#define FTM_AUDIT_WRONG		"wrong"		/* a wrong code or number: counted toward the lockout */
#define FTM_AUDIT_REPLAY	"replay"
#define FTM_AUDIT_LOCKED	"locked"
#define FTM_AUDIT_EXPIRED	"expired"	/* the token's activation window passed */
#define FTM_AUDIT_NO_TOKEN	"no_token"
#define FTM_AUDIT_REFUSED	"refused"	/* refused without a verdict on a code (a stale State, no code given) */
#define FTM_AUDIT_ISSUED	"issued"	/* a code challenge */
#define FTM_AUDIT_SENT		"sent"		/* a push published (number matching: the user now types the number) */
#define FTM_AUDIT_APPROVED	"approved"
#define FTM_AUDIT_DENIED	"denied"
#define FTM_AUDIT_TIMEOUT	"timeout"
#define FTM_AUDIT_FAILED	"failed"	/* a push not sent */
#define FTM_AUDIT_ACTIVATED	"activated"	/* enrolment: the token's first code, on the page */
#define FTM_AUDIT_USED		"used"		/* a recovery code accepted */
#define FTM_AUDIT_OK		"ok"		/* an admin command done */
#define FTM_AUDIT_ERROR		"error"		/* a store or internal failure: the login failed closed */

/* Front ends. */
#define FTM_AUDIT_FE_RADIUS	"radius"
#define FTM_AUDIT_FE_PAM	"pam"
#define FTM_AUDIT_FE_FTMPUSHD	"ftmpushd"
#define FTM_AUDIT_FE_CTL	"ctl"
#define FTM_AUDIT_FE_WEB	"web"		/* the enrolment page (served by freeradius or ftmpushd) */

/* This node's name in the trail: cfg->node_name, else the host name. */
void ftm_audit_node(const ftm_config_t *cfg, char *out, size_t len);

/* A row of ftmpushctl: event, front end ctl, client: the Unix user who ran it (and the one sudo
 * names), nas: the command, this node. */
void ftm_audit_ctl_row(const ftm_config_t *cfg, ftm_audit_row_t *a, const char *event, const char *command);

/* An admin command in the trail (event admin, front end ctl, client: the Unix user who ran it, and the
 * one sudo names). user "" / serial "": none; user NULL: the token's own user. Errors go to log. */
void ftm_audit_admin(ftm_store_t *st, const ftm_config_t *cfg, const ftm_log_t *log, const char *command,
		     const char *serial, const char *user, const char *result, const char *reason);

/* Delete the rows older than retention_days before now (0: keep every row). 0 or -1 with err. */
int ftm_audit_prune(ftm_store_t *st, unsigned retention_days, time_t now, unsigned long *removed,
		    char *err, size_t err_len);

/* --since: "90s", "30m", "1h", "7d", a unix time, or "YYYY-MM-DD[ HH:MM[:SS]]" (UTC). 0 or -1. */
int ftm_audit_parse_since(const char *s, time_t now, int64_t *out);
/* Whether s is one of the result names above (a typo in --result would list nothing). */
bool ftm_audit_known_result(const char *s);

/* One row as a line for an admin (control characters shown as '?'), and as a JSON object text
 * (json-c). */
void ftm_audit_print(FILE *f, const ftm_audit_row_t *row);
void ftm_audit_print_json(FILE *f, const ftm_audit_row_t *row);

#endif

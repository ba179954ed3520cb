/* ftm_enrol: enrolment by activation link: the link, the e-mail, the page, and the page's requests. */
#ifndef FTM_ENROL_H
#define FTM_ENROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_store.h"

#define FTM_ENROL_PREFIX	"/ftm/v1/enroll/"	/* + the activation code */
#define FTM_ENROL_BODY_MAX	1024			/* the confirm form: "code=123456" */
#define FTM_ENROL_RATE_BURST	30			/* requests one address may make at once ... */
#define FTM_ENROL_RATE_REFILL	2			/* ... and then one per this many seconds */
#define FTM_ENROL_TOPIC_BYTES	16			/* CSPRNG bytes of a generated ntfy topic (128 bits) */

/* A push target as the admin typed it, completed: "ntfy:https://SERVER/" (a server, no topic) gets a
 * topic of its own, "ftm-" + 26 base32 characters from the CSPRNG; anything else is copied. 0 or -1. */
int ftm_enrol_push_target(const char *push, char *out, size_t out_len, char *err, size_t err_len);

/* https://SERVER:PORT/ftm/v1/enroll/CODE from push.server (or push.interface's address) and
 * push.server_port. -1 with err when the listener has no address to put into a link. */
int ftm_enrol_link(const ftm_config_t *cfg, const char *code, char *out, size_t out_len, char *err, size_t err_len);

/* The activation e-mail (headers and body, CRLF): names the issuer, the user, the serial and the
 * expiry (0 = none), carries the link, never the seed. malloc'd; NULL on error. */
char *ftm_enrol_mail(const ftm_config_t *cfg, const char *to, const char *user, const char *serial,
		     const char *link, int64_t expires, time_t now);

/* Can links be mailed with this config (smtp.server, smtp.from and a link address)? 0, or -1 with
 * what to set in err: checked before a token is created for an e-mail address. */
int ftm_enrol_mail_ready(const ftm_config_t *cfg, char *err, size_t err_len);

/* A new activation link for the token `serial` (its earlier links die), e-mailed when `mail` to
 * `email` (NULL or "": the address its latest link went to), else copied into link (for the admin to
 * hand out). *sent_to gets the address used. -1 with err (the server and its reply when the send
 * failed: the token stays pending and the next call sends a new link), 1 when there is no such token. */
int ftm_enrol_send_link(ftm_store_t *st, const ftm_config_t *cfg, const char *serial, bool mail, const char *email,
			time_t now, char *link, size_t link_len, char *sent_to, size_t sent_to_len,
			int64_t *expires, char *err, size_t err_len);

/* ---- the page ---- */

typedef struct ftm_enrol ftm_enrol_t;

/* The page's state for a store and a config (both must outlive it); thread-safe. NULL on error. */
ftm_enrol_t *ftm_enrol_new(ftm_store_t *store, const ftm_config_t *cfg, const ftm_log_t *log);
void ftm_enrol_free(ftm_enrol_t *e);

typedef struct ftm_enrol_reply {
	unsigned	status;		/* HTTP status */
	char		*body;		/* text/html, malloc'd; may hold the seed: ftm_enrol_reply_free zeroes it */
	size_t		body_len;
	const char	*allow;		/* 405: the Allow header */
} ftm_enrol_reply_t;

/* Headers every reply of the page carries (name, value pairs, NULL-terminated): no caching, a strict
 * Content-Security-Policy, no referrer, no framing. */
extern const char *const ftm_enrol_headers[];
/* ... and the Content-Security-Policy: nothing but the page's own style block (allowed by its hash). */
const char *ftm_enrol_csp(void);

/* One request for FTM_ENROL_PREFIX + code: GET shows the page (the seed while the link is good), POST
 * with the form "code=DIGITS" confirms. ip: the client address (rate limits, the log). Logs one line
 * with the serial and the outcome, never the link, the code or the seed. */
void ftm_enrol_handle(ftm_enrol_t *e, const char *method, const char *code, const char *content_type,
		      const char *body, size_t body_len, const char *ip, time_t now, ftm_enrol_reply_t *reply);
void ftm_enrol_reply_free(ftm_enrol_reply_t *reply);

/* The form field "code" of an application/x-www-form-urlencoded body: 6-8 digits into otp. 0, or -1
 * for anything else (missing, repeated, not digits, stray bytes). */
int ftm_enrol_parse_form(const char *body, size_t len, char otp[FTM_CODE_MAX + 1]);

#endif

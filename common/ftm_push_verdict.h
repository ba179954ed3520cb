/* ftm_push_verdict: what became of a push, shared by the engine, the ftmpushd wire and its client. */
#ifndef FTM_PUSH_VERDICT_H
#define FTM_PUSH_VERDICT_H

#include <stdbool.h>

typedef enum {
	FTM_PUSH_PENDING = 0,	/* no answer yet */
	FTM_PUSH_APPROVED,	/* the phone approved (or the right number) */
	FTM_PUSH_DENIED,	/* the phone denied (or a wrong number) */
	FTM_PUSH_TIMEOUT,	/* no answer within the push timeout */
	FTM_PUSH_FAILED,	/* could not be sent (no target, channel down ...) */
	FTM_PUSH_ERROR		/* ftmpushd unreachable, refused, or a protocol error */
} ftm_push_verdict_t;

/* "pending", "approved", "denied", "timeout", "failed", "error": also the names on ftmpushd's wire. */
const char *ftm_push_verdict_name(ftm_push_verdict_t v);
/* The verdict named s; -1 when s names none (or "pending", never final). */
int ftm_push_verdict_parse(const char *s, ftm_push_verdict_t *out);

/* ---- number matching: the one check, whoever holds the number ---- */
#define FTM_NUMBER_MAX	8	/* a typed or shown number, with its NUL */

/* The typed number against the one the phone shows, in constant time (the lengths are public). */
bool ftm_number_matches(const char *shown, const char *typed);
/* Whether a typed number counts toward the lockout like a wrong code: only a wrong number typed while
 * the push was live (not after the phone denied it, not after it timed out: nothing was guessed at). */
bool ftm_number_is_guess(bool matched, bool push_was_live);

#endif

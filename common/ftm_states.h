/* ftm_states: challenge States (bearer secrets bound to a user and client, single use, expiring) and
 * what each one stands for; the core's code challenges and the ftmpushd client's number challenges. */
#ifndef FTM_STATES_H
#define FTM_STATES_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define FTM_STATE_HEX		32	/* hex characters of a State (16 CSPRNG bytes) */
#define FTM_STATE_PAYLOAD_MAX	256	/* bytes an entry may carry */
/* No user or client can flush another's States (a challenge flood with a valid password): beyond these,
 * the flooder's own oldest State makes room. The same caps hold in the store's shared States. */
#define FTM_STATES_PER_USER	16	/* a user's own States at once */
#define FTM_STATES_PER_CLIENT	64	/* States of one client identity (one address behind a NAT: many users) */

typedef struct ftm_states ftm_states_t;

/* Called when an entry goes without being taken (expired, evicted, freed): release its payload. */
typedef void (*ftm_states_drop_fn)(void *payload);

ftm_states_t *ftm_states_new(ftm_states_drop_fn drop);
/* Drops every entry left (drop called on each) and frees. */
void ftm_states_free(ftm_states_t *s);

/* Issue a State for user and client at now, valid for ttl seconds, carrying payload (copied; payload_len at most
 * FTM_STATE_PAYLOAD_MAX). state gets FTM_STATE_HEX characters and a NUL. On failure (-1, with why)
 * the payload was not kept: the caller still owns what it refers to. *evicted: a live entry (the one
 * closest to expiry) was dropped to make room. */
int ftm_states_issue(ftm_states_t *s, const char *user, const char *client, time_t now, unsigned ttl,
		     const void *payload, size_t payload_len, char state[FTM_STATE_HEX + 1], bool *evicted,
		     char *why, size_t why_len);

typedef enum {
	FTM_STATE_UNKNOWN = 0,	/* not one of ours */
	FTM_STATE_OK,		/* ours, live, the same user and client */
	FTM_STATE_EXPIRED,	/* ours, past its expiry */
	FTM_STATE_MISMATCH	/* ours, issued to another user or client */
} ftm_state_check_t;

/* Find state (compared in constant time with every entry) and take it: single use, whatever the check
 * says. Unless FTM_STATE_UNKNOWN, its payload is copied to payload (payload_len bytes) and is the
 * caller's now: drop is not called for it. */
ftm_state_check_t ftm_states_take(ftm_states_t *s, const char *user, const char *client, const char *state,
				  time_t now, void *payload, size_t payload_len);

#endif

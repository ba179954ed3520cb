/* ftm_states: what every challenge State is: a bearer secret bound to a user and client, single use,
 * expiring, kept in the store (code challenges: ftm_store_challenge_*, number challenges:
 * ftm_store_number_*), so that any node or front end of the store can take it. */
#ifndef FTM_STATES_H
#define FTM_STATES_H

#define FTM_STATE_HEX		32	/* hex characters of a State (16 CSPRNG bytes) */
/* No user or client can flush another's States (a challenge flood with a valid password): beyond these,
 * the flooder's own oldest State makes room. Each kind of State in the store keeps them. */
#define FTM_STATES_PER_USER	16	/* a user's own States at once */
#define FTM_STATES_PER_CLIENT	64	/* States of one client identity (one address behind a NAT: many users) */

typedef enum {
	FTM_STATE_UNKNOWN = 0,	/* not one of ours */
	FTM_STATE_OK,		/* ours, live, the same user and client */
	FTM_STATE_EXPIRED,	/* ours, past its expiry */
	FTM_STATE_MISMATCH	/* ours, issued to another user or client */
} ftm_state_check_t;

#endif

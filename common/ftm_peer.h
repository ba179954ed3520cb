/* ftm_peer: whom ftmpushd's socket trusts with what: a peer process's credentials and the one decision
 * on what it may ask (docs/pam.md, "ftmpushd's socket"). */
#ifndef FTM_PEER_H
#define FTM_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define FTM_PEER_GROUPS_MAX	256	/* supplementary groups read of a peer; with more, only its
					 * primary group counts */
#define FTM_PEER_TRUSTED_MAX	16	/* groups an admin may trust (ftmpushd -G) */

/* A peer of the socket, as the kernel reports it at connect (SO_PEERCRED, SO_PEERGROUPS). */
typedef struct ftm_peer {
	pid_t		pid;
	uid_t		uid;
	gid_t		gid;
	gid_t		groups[FTM_PEER_GROUPS_MAX];
	unsigned	ngroups;
	char		name[64];	/* the user name of uid ("" when it has none) */
} ftm_peer_t;

/* What the daemon allows: the socket's group (ftmpushd -g; (gid_t)-1: none) admits peers onto the
 * socket; the trusted groups (ftmpushd -G) let a peer push for any user. */
typedef struct ftm_peer_policy {
	uid_t		daemon_uid;
	gid_t		socket_group;
	gid_t		trusted[FTM_PEER_TRUSTED_MAX];
	unsigned	ntrusted;
} ftm_peer_policy_t;

/* The credentials of the peer connected on fd. 0, or -1 (nothing known: refuse it). */
int ftm_peer_read(int fd, ftm_peer_t *peer);
/* Is gid the peer's primary or one of its supplementary groups? */
bool ftm_peer_in_group(const ftm_peer_t *peer, gid_t gid);
/* May the peer use the socket at all: root, the daemon's own user, or a member of the socket group. */
bool ftm_peer_admitted(const ftm_peer_policy_t *pol, const ftm_peer_t *peer);
/* ftm_peer_read, then ftm_peer_admitted: 0 when admitted (peer filled), -1 (peer holds what was read:
 * refuse it). The user name is looked up (getpwuid_r) only for a peer whose rights depend on it: not
 * for root or the daemon's own user, which every rule lets through first (name stays ""). */
int ftm_peer_read_admitted(int fd, const ftm_peer_policy_t *pol, ftm_peer_t *peer);
/* May the peer push (and so join a pending push) for user? Root and the daemon's own user for anyone;
 * any other peer only for the user it runs as (its uid's name is user), unless it is in a trusted
 * group. false with why (for the log: peer, user asked, what would allow it). */
bool ftm_peer_may_push_for(const ftm_peer_policy_t *pol, const ftm_peer_t *peer, const char *user, char *why,
			   size_t why_len);
/* May the peer ask the daemon for a code's verdict (split or verify) for user? Root and the daemon's
 * own user only: trusted groups and the user's own processes are not (an uncounted peek would let them
 * test codes without a lockout). false with why, as above. */
bool ftm_peer_may_decide_for(const ftm_peer_policy_t *pol, const ftm_peer_t *peer, const char *user, char *why,
			     size_t why_len);

#endif

/* peer: ftmpushd's socket trusts a peer only with what it must: a PAM process of an unprivileged user
 * (a screen locker, a user's own su) may push for that user alone; a push for anyone else without the
 * password would let it flood another user's phone and, while pending, block that user's own login. */
#include "config.h"

#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ftm_peer.h"
#include "ftm_util.h"

/* The kernel's credentials of the peer on fd (no name yet). */
static int read_creds(int fd, ftm_peer_t *peer)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	memset(peer, 0, sizeof(*peer));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || len != sizeof(cr))
		return -1;
	peer->pid = cr.pid;
	peer->uid = cr.uid;
	peer->gid = cr.gid;
#ifdef SO_PEERGROUPS
	/* More groups than we read (ERANGE): none of them counts, which can only take rights away. */
	len = sizeof(peer->groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, peer->groups, &len) == 0)
		peer->ngroups = len / sizeof(gid_t);
#endif
	return 0;
}

static void read_name(ftm_peer_t *peer)
{
	struct passwd pw, *found = NULL;
	char buf[4096];

	if (getpwuid_r(peer->uid, &pw, buf, sizeof(buf), &found) == 0 && found != NULL)
		ftm_copy(peer->name, sizeof(peer->name), pw.pw_name);
}

int ftm_peer_read(int fd, ftm_peer_t *peer)
{
	if (read_creds(fd, peer) != 0)
		return -1;
	read_name(peer);
	return 0;
}

bool ftm_peer_in_group(const ftm_peer_t *peer, gid_t gid)
{
	if (gid == (gid_t)-1)
		return false;
	if (peer->gid == gid)
		return true;
	for (unsigned i = 0; i < peer->ngroups && i < FTM_PEER_GROUPS_MAX; i++)
		if (peer->groups[i] == gid)
			return true;
	return false;
}

/* Root and the daemon's own user hold every secret the daemon has already. */
static bool privileged(const ftm_peer_policy_t *pol, const ftm_peer_t *peer)
{
	return peer->uid == 0 || peer->uid == pol->daemon_uid;
}

bool ftm_peer_admitted(const ftm_peer_policy_t *pol, const ftm_peer_t *peer)
{
	return privileged(pol, peer) || ftm_peer_in_group(peer, pol->socket_group);
}

int ftm_peer_read_admitted(int fd, const ftm_peer_policy_t *pol, ftm_peer_t *peer)
{
	if (read_creds(fd, peer) != 0 || !ftm_peer_admitted(pol, peer))
		return -1;
	/* Only an unprivileged peer's rights depend on its name (ftm_peer_may_push_for); root and the
	 * daemon's user are let through before any rule looks at it. */
	if (!privileged(pol, peer))
		read_name(peer);
	return 0;
}

bool ftm_peer_may_push_for(const ftm_peer_policy_t *pol, const ftm_peer_t *peer, const char *user, char *why,
			   size_t why_len)
{
	if (privileged(pol, peer))
		return true;
	for (unsigned i = 0; i < pol->ntrusted && i < FTM_PEER_TRUSTED_MAX; i++)
		if (ftm_peer_in_group(peer, pol->trusted[i]))
			return true;
	if (user != NULL && peer->name[0] != '\0' && strcmp(peer->name, user) == 0)
		return true;
	snprintf(why, why_len, "a process of uid %lu (%s) gid %lu asked a push for '%.64s': a peer that is not root "
		 "may push only for its own user, unless ftmpushd -G trusts one of its groups",
		 (unsigned long)peer->uid, peer->name[0] ? peer->name : "no user name", (unsigned long)peer->gid,
		 user ? user : "");
	return false;
}

/* A code's verdict asked of the daemon (a PAM login's split and verify): root and the daemon's own user
 * only. The split's peek counts nothing, so for anyone else it would be an oracle that tests a user's
 * codes without a lockout; such a peer decides in its own process, where the store is not readable to it. */
bool ftm_peer_may_decide_for(const ftm_peer_policy_t *pol, const ftm_peer_t *peer, const char *user, char *why,
			     size_t why_len)
{
	if (privileged(pol, peer))
		return true;
	snprintf(why, why_len, "a process of uid %lu (%s) gid %lu asked a code verdict for '%.64s': only root and "
		 "the daemon's user may", (unsigned long)peer->uid, peer->name[0] ? peer->name : "no user name",
		 (unsigned long)peer->gid, user ? user : "");
	return false;
}

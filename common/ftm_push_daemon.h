/* ftm_push_daemon: ftmpushd's whole job behind its main(): the core, the push engine and the Unix socket
 * that serves PAM logins (docs/pam.md). */
#ifndef FTM_PUSH_DAEMON_H
#define FTM_PUSH_DAEMON_H

#include <stddef.h>
#include <sys/types.h>
#include "ftm_config.h"
#include "ftm_log.h"

typedef struct ftm_push_daemon ftm_push_daemon_t;

/* Open the token store, start the push engine (listener + channels) and listen on cfg->push.socket
 * (its directory created if missing), allowing group ((gid_t)-1: none) and at most max_conns pending
 * requests. A peer that is neither root nor the daemon's user may push only for its own user, unless
 * it is in one of the ntrusted groups of trusted (ftm_peer_may_push_for). log must outlive the daemon.
 * NULL with a one-line reason in err. */
ftm_push_daemon_t *ftm_push_daemon_start(const ftm_config_t *cfg, const ftm_log_t *log, gid_t group,
					 const gid_t *trusted, unsigned ntrusted, unsigned max_conns, char *err,
					 size_t err_len);
/* Stop: the push engine first (callback listener closed, pending pushes failed: their logins get
 * "Push unavailable" at once), then the socket (waits for the requests in flight), close the store. */
void ftm_push_daemon_stop(ftm_push_daemon_t *d);

#endif

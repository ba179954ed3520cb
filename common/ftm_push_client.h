/* ftm_push_client: the push interface through ftmpushd's Unix socket, for a PAM process (no listener). */
#ifndef FTM_PUSH_CLIENT_H
#define FTM_PUSH_CLIENT_H

#include <stddef.h>
#include "ftm_auth.h"

/* Plug the client into auth (ftm_auth_set_push_ops): pushes go to the daemon at push.socket, and the
 * States of number challenges (each holding the open connection whose transaction the daemon keeps
 * pending) are the client's. 0, or -1 with err. */
int ftm_push_client_attach(ftm_auth_t *auth, char *err, size_t err_len);

#endif

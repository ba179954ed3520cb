/* ftm_push: the in-process push engine: transactions, their rendezvous and the answers (docs/protocol.md).
 * Its parts have their own internal headers: push_channel.h (channels, envelope, test seams) and
 * push_listener.h (the HTTPS callback listener the engine starts). */
#ifndef FTM_PUSH_H
#define FTM_PUSH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_push_verdict.h"
#include "ftm_store.h"

#define FTM_PUSH_ID_LEN		32	/* hex characters of a transaction id (16 CSPRNG bytes) */
#define FTM_PUSH_CAP_LEN	32	/* base64url characters of a capability (24 CSPRNG bytes) */
#define FTM_PUSH_BODY_MAX	4096	/* callback request body limit */
#define FTM_PUSH_RETAIN		300	/* seconds a finished transaction is remembered (409 on replay) */
#define FTM_PUSH_CONN_MAX	2048	/* listener: connections at once (at most half the open-file limit);
					 * at the limit the oldest connection is closed to make room */
#define FTM_PUSH_CONN_PER_IP	16	/* listener: connections from one IPv4 address or IPv6 /64 */
#define FTM_PUSH_CONN_TIMEOUT	5	/* listener: idle seconds before a connection is closed */
#define FTM_PUSH_CONN_SILENT	2	/* listener: seconds a connection may stay open without sending a byte */
#define FTM_PUSH_CONN_DEADLINE	10	/* listener: seconds from accept to the end of the connection, TLS
					 * handshake and request included (one request per connection) */
#define FTM_PUSH_SEND_CONNECT	5	/* channels: connect timeout, seconds */
#define FTM_PUSH_SEND_TOTAL	10	/* channels: whole request, seconds */
#define FTM_PUSH_SEND_PARALLEL	16	/* channels: sends in flight per process; the others queue, and the
					 * connections of these are kept and reused */
#define FTM_PUSH_SEND_QUEUE	60	/* channels: seconds a send may wait for one of them */

typedef struct ftm_push ftm_push_t;
typedef struct ftm_push_tx ftm_push_tx_t;

enum { FTM_PUSH_NO_LISTENER = 1 };	/* ftm_push_new flags: engine only (unit tests) */

/* Create the engine; unless FTM_PUSH_NO_LISTENER, start the HTTPS callback listener. cfg is copied;
 * log must outlive the engine. NULL with a one-line reason in err. */
ftm_push_t *ftm_push_new(const ftm_config_t *cfg, const ftm_log_t *log, unsigned flags, char *err, size_t err_len);
/* Stop the listener, wake and fail every waiter, free. */
void ftm_push_free(ftm_push_t *p);
/* Shutdown (SIGTERM, module detach): close the callback listener first (a late callback finds no
 * socket, one already connected gets 503, never a 200), then fail every pending push at once (its
 * login gets FTM_MSG_PUSH_DOWN, or the code challenge where the front end can take it), and refuse new
 * ones. Returns without waiting for the waiters; idempotent; ftm_push_free does it too. */
void ftm_push_shutdown(ftm_push_t *p);
/* Wait at most max_ms until no login waits on a transaction any more; true when none does. */
bool ftm_push_drain(ftm_push_t *p, unsigned max_ms);
/* Serve the enrolment page on the engine's listener; the engine owns e from now on (freed after the
 * listener stops). */
struct ftm_enrol;
void ftm_push_set_enrol(ftm_push_t *p, struct ftm_enrol *e);
/* The address of interface ifname (IPv4 preferred), as text: what callback URLs and activation links
 * name when push.interface is set. 0 or -1 with err. */
int ftm_push_interface_address(const char *ifname, char *out, size_t out_len, char *err, size_t err_len);
/* Keep pending pushes in st (not owned; it outlives the engine): every answer is decided against the
 * row, so a callback reaching any node of the store counts, and a login on another node joins the push;
 * verdicts of other nodes are heard (PostgreSQL LISTEN) or read back from the row. Without a store the
 * engine keeps its transactions to itself (unit tests). */
void ftm_push_set_store(ftm_push_t *p, ftm_store_t *st);
/* "https://HOST:PORT/ftm/v1/" */
const char *ftm_push_base_url(const ftm_push_t *p);

/* Start a push to tok for login, or join the one pending for the same user and client (*joined).
 * Returns a referenced transaction (release it), or NULL with a reason: a push of the same user from
 * another client is pending (at most one per user), or an internal error. The send happens in the
 * calling thread; a failed send is the verdict FTM_PUSH_FAILED. */
ftm_push_tx_t *ftm_push_start(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			      bool *joined, char *reason, size_t reason_len);
/* Block until tx is decided, its expiry, or max_ms (0: until decided or expired). Returns the verdict,
 * FTM_PUSH_PENDING only when max_ms ran out first. Many threads may wait on one transaction. */
ftm_push_verdict_t ftm_push_wait(ftm_push_t *p, ftm_push_tx_t *tx, unsigned max_ms);
void ftm_push_release(ftm_push_t *p, ftm_push_tx_t *tx);
/* Facts of a transaction (stable while referenced). */
const char *ftm_push_tx_number(const ftm_push_tx_t *tx);	/* "" without number matching */
/* Number matching: the State to give ftm_push_challenge_answer with the typed number ("" without).
 * ftmpushd's request handling (push_daemon.c) uses it to let the engine decide a PAM login's answer;
 * never sent to a client. */
const char *ftm_push_tx_state(const ftm_push_tx_t *tx);
const char *ftm_push_tx_reason(ftm_push_t *p, ftm_push_tx_t *tx, char *buf, size_t len);

/* The answers (the listener calls these). Each returns the HTTP status of docs/protocol.md section 4
 * and writes the reply's JSON body into reply. A refused answer changes nothing. */
int ftm_push_answer_capability(ftm_push_t *p, const char *cap, time_t now, char *reply, size_t reply_len);
int ftm_push_answer_gateway(ftm_push_t *p, const char *body, size_t body_len, time_t now, char *reply,
			    size_t reply_len);

/* The ftm_auth plug (ftm_auth_push_start uses it); number matching: State and answer. */
void ftm_push_second_factor(ftm_push_t *p, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
			    ftm_outcome_t *out);
bool ftm_push_challenge_answer(ftm_push_t *p, const ftm_login_t *login, const char *state, const char *answer,
			       time_t now, ftm_outcome_t *out);

/* Start the engine (with its listener) for auth and plug it in with ftm_auth_set_push_ops; log must
 * outlive auth; *engine (if not NULL) gets the engine, owned and freed by auth (ops.stop).
 * ftm_auth_push_start(auth, ...) is this with the auth's own log. 0 or -1 with err. */
int ftm_push_auth_attach(ftm_auth_t *auth, const ftm_log_t *log, ftm_push_t **engine, char *err, size_t err_len);

#endif

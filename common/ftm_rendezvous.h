/* ftm_rendezvous: the Unix-socket protocol between short-lived PAM processes and ftmpushd.
 *
 * Wire format (docs/pam.md): each message is a 4-byte big-endian length followed by that many bytes
 * of one JSON object (json-c), at most FTM_RDV_MSG_MAX. The client sends one request
 *   {"v":1,"op":"push","user":..,"serial":..,"client":..,"nas":..,"host":..,"timeout":N}
 * and reads replies until a final one: zero or more events {"v":1,"event":"sent","serial":..,"number":..}
 * then {"v":1,"verdict":"approved|denied|timeout|failed|error","serial":..,"message":..,"reason":..}.
 * Number matching (the sent event has a number): the connection stays open while the login asks the
 * user for the number; the client may then send one more message {"v":1,"op":"answer","number":"NN"}
 * (what was typed), which the daemon decides through the push engine's own number check (right ->
 * approved, wrong -> denied); a tap on the phone before it decides too, and the verdict comes at once.
 * Closing the connection cancels the request. The server checks SO_PEERCRED on every connection and
 * parses strictly: nothing after the object, "v" and "timeout" integers, the other members strings.
 * The login ops (a PAM login decided by ftmpushd, whose core has OpenSSL started and the store open):
 *   {"v":1,"op":"split","user":..,"client":..,"nas":..,"host":..,"store":..,"typed":..}
 *     -> {"v":1,"has_token":b,"pass_without_token":b,"push_available":b,"push_serial":..,
 *         "code_len":N,"has_alt":b}   (ftm_auth_split: the code is the last code_len bytes of typed,
 *         the password what is before them; the alternative is the whole input; nothing secret comes back)
 *   {"v":1,"op":"verify","user":..,"client":..,"nas":..,"host":..,"store":..,"code":..}
 *     -> {"v":1,"result":"ok|fail|replay|locked|..","serial":..,"wait":N,"message":..,"reason":..}
 *         (ftm_auth_verify_code's outcome, in ftm_result_name's words)
 *   a refused request: {"v":1,"result":"error","message":..,"reason":..}; refused before anything
 *   was decided (a peer not allowed, "store" not the daemon's token_db): the same with "refused":"peer".
 *   A connection carries one push, or one login op, or a split and then that login's verify (the
 *   daemon waits up to FTM_RDV_LOGIN_IDLE_MS for the verify after the split, then closes the
 *   connection; the client reuses it only FTM_RDV_LOGIN_REUSE_MS after sending the split; a daemon at
 *   its connection limit closes the connection that has waited longest for its verify to serve a new
 *   one); the peer's credentials are read once, at accept.
 * This file is framing, client and server only: what a push means for a login is push_client.c's
 * (the PAM side) and push_daemon.c's (ftmpushd's side). */
#ifndef FTM_RENDEZVOUS_H
#define FTM_RENDEZVOUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "ftm_auth.h"
#include "ftm_log.h"
#include "ftm_push_verdict.h"
#include "ftm_store.h"

#define FTM_RDV_MSG_MAX		16384
#define FTM_RDV_NUMBER_MAX	FTM_NUMBER_MAX
#define FTM_RDV_GRACE		10	/* seconds a client waits beyond the push timeout */

/* The verdict on the wire is the push verdict (ftm_push_verdict.h); these are its names here. */
typedef ftm_push_verdict_t ftm_rdv_verdict_t;
#define FTM_RDV_APPROVED	FTM_PUSH_APPROVED	/* the phone approved */
#define FTM_RDV_DENIED		FTM_PUSH_DENIED		/* the phone denied */
#define FTM_RDV_TIMEOUT		FTM_PUSH_TIMEOUT	/* no answer within the timeout */
#define FTM_RDV_FAILED		FTM_PUSH_FAILED		/* the push could not be sent */
#define FTM_RDV_ERROR		FTM_PUSH_ERROR		/* daemon unreachable, refused, or protocol error */
#define ftm_rdv_verdict_name	ftm_push_verdict_name

typedef struct ftm_rdv_request {
	const char	*user;
	const char	*serial;	/* token to push to; NULL or "": the daemon picks the user's */
	const char	*client;	/* login context, for the push message and logs */
	const char	*nas;
	const char	*host;
	unsigned	timeout;	/* seconds the daemon waits for the phone */
	const char	*store;		/* the client's token_db: besides root, its owner may answer */
} ftm_rdv_request_t;

typedef struct ftm_rdv_reply {
	ftm_rdv_verdict_t	verdict;
	char			serial[FTM_SERIAL_MAX];
	char			number[FTM_RDV_NUMBER_MAX];	/* number matching: what the phone must pick */
	char			message[FTM_MSG_MAX];		/* for the user */
	char			reason[FTM_MSG_MAX];		/* for the log */
	bool			wrong_number;	/* ftm_rdv_answer: a wrong number was typed while the push was
						 * live (counts as a failure on the token; not when the phone
						 * denied first or the push had timed out) */
} ftm_rdv_reply_t;

/* ---- client (PAM processes) ---- */

/* Called when the daemon reports the push as sent (number is "" unless number matching). */
typedef void (*ftm_rdv_sent_fn)(void *ctx, const char *serial, const char *number);

/* Send a push request to the daemon at socket_path and block until the verdict, at most
 * req->timeout + FTM_RDV_GRACE seconds, or until abort_fd (>= 0) becomes readable. Never fails
 * silently: an unreachable daemon gives FTM_RDV_ERROR with a clear message and reason. */
void ftm_rdv_push(const char *socket_path, const ftm_rdv_request_t *req, ftm_rdv_sent_fn sent,
		  void *sent_ctx, int abort_fd, const ftm_log_t *log, ftm_rdv_reply_t *out);

/* Number matching: like ftm_rdv_push, but returns as soon as the daemon reports the push sent with a
 * number: the still open connection (the daemon's transaction stays pending; the caller owns it and
 * must ftm_rdv_answer or close it) and out->number. -1 when the verdict (or an error) came first, or
 * the push was sent without a number: out is then the final reply. */
int ftm_rdv_push_start(const char *socket_path, const ftm_rdv_request_t *req, int abort_fd,
		       const ftm_log_t *log, ftm_rdv_reply_t *out);

/* The number typed for a connection from ftm_rdv_push_start (number: what the daemon reported).
 * Compares answer with number in constant time, sends the answer to the daemon (unless a verdict is
 * already waiting: the phone decided first) and reads the verdict, at most FTM_RDV_GRACE seconds.
 * approved only when the daemon approved AND the typed number matches; denied otherwise (a tap that
 * denied, a wrong number); error when the daemon is gone. Always closes fd. out->serial is kept. */
void ftm_rdv_answer(int fd, const char *number, const char *answer, const ftm_log_t *log, ftm_rdv_reply_t *out);

/* ---- login client (the PAM module's thin part: rendezvous_login.c) ---- */

#define FTM_RDV_LOGIN_TIMEOUT	30	/* seconds a login waits for the daemon's split or verdict */
/* How long ftmpushd waits on a split's connection for that login's verify (the first factor runs in
 * between), then closes it. */
#define FTM_RDV_LOGIN_IDLE_MS	10000
/* How long after sending the split the client still sends the verify on its connection; later, on a
 * new one (decided without the split's proof). The 2 s are the margin for the verify to be in before
 * the daemon's wait ends (counted from the send, which is before the daemon's wait begins). */
#define FTM_RDV_LOGIN_REUSE_MS	(FTM_RDV_LOGIN_IDLE_MS - 2000)

/* A login as ftmpushd's request: which op, who (login), and what was typed (split) or the code (verify). */
typedef enum { FTM_RDV_OP_SPLIT = 1, FTM_RDV_OP_VERIFY } ftm_rdv_op_t;

/* What a login call came to. */
typedef enum {
	FTM_RDV_LOGIN_ANSWERED = 0,	/* the daemon decided: its answer is filled in */
	FTM_RDV_LOGIN_NO_DAEMON,	/* nobody listens (ENOENT, ECONNREFUSED), nothing was sent: decide in process */
	FTM_RDV_LOGIN_REFUSED,		/* the daemon refused before deciding anything: this peer may not ask for
					 * this user (ftm_peer_may_push_for), or the daemon serves another token
					 * store than the module's token_db; decide in process, with the process's
					 * own access to the store */
	FTM_RDV_LOGIN_FAILED		/* connected, then an error: fail closed (err says why); never retried */
} ftm_rdv_login_rc_t;

/* A login's connection kept from its split for its verify: fd -1 when none; sent_ms, ftm_mono_ms() as
 * the split went (the daemon's wait for the verify began after that); split: the daemon split this
 * login's code, so its verify is the daemon's or nobody's, with or without the connection (fd -1: not
 * kept, or not this process's: a forked child's, which opens its own). */
typedef struct {
	int	fd;
	int64_t	sent_ms;
	bool	split;
} ftm_rdv_kept_t;
#define FTM_RDV_KEPT_NONE	((ftm_rdv_kept_t){ .fd = -1 })

/* The split asked of the daemon at socket_path (store: the client's token_db, whose owner may answer).
 * out is what ftm_auth_split would have filled, rebuilt from typed and the daemon's reading.
 * keep (NULL: the connection is closed after the answer): a login's connection, none or one kept from
 * an earlier split (closed first); an answered split with a code leaves its connection there for the
 * verify, which the daemon takes on it (one connection per login), and keep->split set; otherwise
 * *keep is none. */
ftm_rdv_login_rc_t ftm_rdv_login_split(const char *socket_path, const char *store, const ftm_login_t *login,
				       const char *typed, ftm_split_t *out, ftm_rdv_kept_t *keep, char *err,
				       size_t err_len);
/* The code's verdict asked of the daemon: out is ftm_auth_verify_code's outcome. keep: the split's
 * (keep->split; keep->fd >= 0 its connection, -1 none: a new one; none after) or NULL / none: a code
 * the daemon did not split. The split's connection found closed before the request went (the daemon's
 * idle timeout, a restart, room made at its connection limit), or whose split went
 * FTM_RDV_LOGIN_REUSE_MS ago or more, is replaced by a new one. After the daemon's split (keep->split,
 * with or without its connection) no daemon listening any more is FTM_RDV_LOGIN_FAILED, never
 * NO_DAEMON: the daemon that split the login decides its verdict, or the login fails closed. Once the
 * request went, any error is FAILED, as for every login call. */
ftm_rdv_login_rc_t ftm_rdv_login_verify(const char *socket_path, const char *store, const ftm_login_t *login,
					const char *code, ftm_outcome_t *out, ftm_rdv_kept_t *keep, char *err,
					size_t err_len);
/* Closes a kept connection (keep->fd >= 0) and leaves none, keep->split cleared; NULL: nothing. */
void ftm_rdv_login_close(ftm_rdv_kept_t *keep);
/* The kept connection's reuse limit, FTM_RDV_LOGIN_REUSE_MS (0: back to it), process-wide: for tests. */
void ftm_rdv_login_set_reuse_ms(unsigned ms);

/* ---- server (ftmpushd) ---- */

typedef struct ftm_rdv_conn ftm_rdv_conn_t;
typedef struct ftm_rdv_server ftm_rdv_server_t;

/* Runs in the connection's worker thread (reused across connections; a connection that finds no idle
 * worker gets a new thread), may block up to req->timeout; fills out. */
typedef void (*ftm_rdv_handler_fn)(void *ctx, ftm_rdv_conn_t *conn, const ftm_rdv_request_t *req,
				   ftm_rdv_reply_t *out);

/* Runs in the connection's thread for a login op: fills split (FTM_RDV_OP_SPLIT; its proof is kept on
 * the connection for the verify that may follow on it: ftm_rdv_conn_proof) or out (verify) and
 * returns 0, or -1 (why in out->reason) when it refuses the peer before deciding anything.
 * input: what was typed, or the code (the caller zeroes it). */
typedef int (*ftm_rdv_login_fn)(void *ctx, ftm_rdv_conn_t *conn, ftm_rdv_op_t op, const ftm_login_t *login,
				 const char *store, const char *input, ftm_split_t *split, ftm_outcome_t *out);

/* For handlers: report the push as sent (an event to the client); false when the client is gone. */
bool ftm_rdv_conn_sent(ftm_rdv_conn_t *conn, const char *serial, const char *number);
/* For handlers of a number matching push: wait at most max_ms for the client's answer message.
 * 1: number holds what was typed; 0: nothing yet; -1: the client hung up or sent something else. */
int ftm_rdv_conn_wait_answer(ftm_rdv_conn_t *conn, unsigned max_ms, char *number, size_t number_len);
/* For handlers: false once the client hung up (the handler should cancel its push). Not for a
 * number matching push, whose client may send an answer: use ftm_rdv_conn_wait_answer. */
bool ftm_rdv_conn_alive(ftm_rdv_conn_t *conn);
/* For handlers: the peer's credentials, read at connect (what it may ask: ftm_peer_may_push_for). */
struct ftm_peer;
const struct ftm_peer *ftm_rdv_conn_peer(const ftm_rdv_conn_t *conn);
/* For the login handler's verify: the proof of the split answered on this connection (split->proof as
 * the handler filled it; serial "" when none), which ftm_auth_after_password_proved takes. */
const ftm_code_proof_t *ftm_rdv_conn_proof(const ftm_rdv_conn_t *conn);

/* Listen on socket_path (a stale socket is replaced, a live one refused), mode 0660, owned by
 * group when group != (gid_t)-1. login_handler answers the login ops (NULL: refused as an unknown op).
 * Peers allowed: uid 0, the daemon's uid, and members (primary or supplementary group) of group
 * (ftm_peer_admitted). At most max_conns connections at once (0: 64): pending pushes, requests being
 * served, and split connections waiting for their login's verify. A new connection over the limit
 * closes the one that has waited longest for its verify (its client sends the verify on a new
 * connection); with none waiting it is answered "error" at once. */
ftm_rdv_server_t *ftm_rdv_server_start(const char *socket_path, gid_t group, unsigned max_conns,
				       ftm_rdv_handler_fn handler, ftm_rdv_login_fn login_handler, void *handler_ctx,
				       const ftm_log_t *log, char *err, size_t err_len);
/* How long a split's connection waits for its verify, FTM_RDV_LOGIN_IDLE_MS (0: back to it): for tests. */
void ftm_rdv_server_set_login_idle_ms(ftm_rdv_server_t *srv, unsigned ms);
/* Closing a waiting split's connection at max_conns is logged at warning level (the admin learns
 * -m is reached): the first close at once, then at most one line per FTM_RDV_EVICT_NOTICE_MS with
 * the count since the last line (and at stop, the closes not told yet). The interval (0: back to
 * it): for tests. */
#define FTM_RDV_EVICT_NOTICE_MS	60000
void ftm_rdv_server_set_evict_notice_ms(ftm_rdv_server_t *srv, unsigned ms);
/* Stops accepting, waits for running handlers to finish, removes the socket. */
void ftm_rdv_server_stop(ftm_rdv_server_t *srv);

#endif

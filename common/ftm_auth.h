/* ftm_auth: the entry points every front end calls; every MFA decision is made here, none in a wrapper. */
#ifndef FTM_AUTH_H
#define FTM_AUTH_H

#include <stdbool.h>
#include <time.h>
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_message.h"
#include "ftm_passcode.h"
#include "ftm_push_verdict.h"
#include "ftm_store.h"

typedef struct ftm_auth ftm_auth_t;	/* one per FreeRADIUS instance / PAM call / ftmpushd; thread-safe */

/* Who is logging in, from where, to what: for logs, push messages and binding challenges. */
typedef struct ftm_login {
	const char	*user;
	const char	*client;	/* client address: RADIUS Calling-Station-Id / NAS-IP, PAM rhost */
	const char	*nas;		/* NAS-Identifier / PAM service */
	const char	*host;		/* host name of this server or the NAS */
} ftm_login_t;

/* The one result type the front ends see; each maps it to its protocol in one finish(). */
typedef enum {
	FTM_RES_OK = 0,		/* second factor accepted */
	FTM_RES_FAIL,		/* wrong code */
	FTM_RES_REPLAY,		/* ftm_msg_replay: wait for the next time step */
	FTM_RES_LOCKED,		/* FTM_MSG_LOCKED */
	FTM_RES_EXPIRED,	/* activation window passed */
	FTM_RES_NO_TOKEN,	/* user has no token: front end applies cfg.no_token (reject | pass) */
	FTM_RES_CHALLENGE,	/* ask the user (code, or the number shown on the phone); see challenge */
	FTM_RES_DENIED,		/* push denied or timed out: FTM_MSG_DENIED */
	FTM_RES_PUSH_FAILED,	/* push could not be sent / no rendezvous: front end may fall back */
	FTM_RES_ERROR		/* store or config failure: fail closed */
} ftm_result_t;

typedef struct ftm_outcome {
	ftm_result_t	result;
	char		serial[FTM_SERIAL_MAX];
	unsigned	wait_seconds;
	char		message[FTM_MSG_MAX];	/* for the user (Reply-Message, PAM_ERROR_MSG) */
	char		reason[FTM_MSG_MAX];	/* for the log; never a seed, code or password */
	char		state[64];		/* FTM_RES_CHALLENGE: opaque State to echo back (hex) */
	bool		wrong_answer;		/* number matching: a wrong number was typed while the push
						 * was live; the core counts it as a failure (lockout) */
	bool		audited;		/* the decision's audit row was written with its verdict */
	bool		store_down;		/* the token store failed this decision (FTM_MSG_STORE_DOWN) */
	bool		logged;			/* the core wrote the decision's log line, for logged_result */
	ftm_result_t	logged_result;		/* (a front end that adds only its protocol code to it may
						 * leave its own line to debug: rlm_ftmpush's finish()) */
	ftm_push_verdict_t push_verdict;	/* a push outcome: what became of the push (denied vs timeout) */
} ftm_outcome_t;

/* Fill out (all of it) with a result, the token, what the user reads and what the log says. */
void ftm_outcome_set(ftm_outcome_t *out, ftm_result_t r, const char *serial, const char *message,
		     const char *reason);

/* The core's process-wide settings (ftm_store_process_init): once, at a program's single-threaded start,
 * before ftm_auth_new; never from a PAM module. */
void ftm_auth_process_init(void);
ftm_auth_t *ftm_auth_new(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len);
/* ftm_auth_new for a core only one thread uses, one call at a time (a PAM module's, kept on its PAM
 * handle): its store is opened with ftm_store_open_single. */
ftm_auth_t *ftm_auth_new_single(const ftm_config_t *cfg, const ftm_log_t *log, char *err, size_t err_len);
void ftm_auth_free(ftm_auth_t *auth);
const ftm_config_t *ftm_auth_config(const ftm_auth_t *auth);
/* The front end's name in the audit trail (ftm_audit.h FTM_AUDIT_FE_*); set once, after ftm_auth_new. */
void ftm_auth_set_frontend(ftm_auth_t *auth, const char *frontend);
ftm_store_t *ftm_auth_store(ftm_auth_t *auth);

/* Step 1, before the first factor. Decides which password the first factor checks:
 *  - user without a token, or no trailing code: primary = whole input, has_code false;
 *  - trailing code that would verify (peek, nothing consumed): primary = password part + code;
 *  - trailing digits that do not verify: primary = password part + code (so a wrong code is counted
 *    once the password is proven), alt = the whole input (a password that ends in digits): a front
 *    end that can, retries the first factor with alt when primary's password fails, and then treats
 *    the login as "password only". */
typedef struct ftm_split {
	bool		has_token;
	bool		pass_without_token;	/* no token and no_token = pass: the password alone logs in */
	bool		push_available;	/* push enabled and a token of the user has a push target */
	char		push_serial[FTM_SERIAL_MAX];	/* the token a push would go to (for prompts) */
	ftm_passcode_t	primary;
	bool		has_alt;
	char		alt_password[FTM_INPUT_MAX + 1];
	/* primary's code verified: what its peek proved (ftm_code_proof_t; serial "" otherwise), for a
	 * front end that carries it to ftm_auth_after_password_proved itself */
	ftm_code_proof_t proof;
} ftm_split_t;

int ftm_auth_split(ftm_auth_t *auth, const ftm_login_t *login, const char *typed, time_t now,
		   ftm_split_t *out);

/* Step 2, only after the first factor succeeded: "what happens after the password was proven".
 * code (the one the split found, NULL or "" for none): its verdict (consumed on success). Without a
 * code: a push when available (number matching: FTM_RES_CHALLENGE for the number), else, or when the
 * push could not be sent, a code challenge when cfg.challenge, else FTM_RES_FAIL. May block up to
 * push.timeout while a push is pending. */
void ftm_auth_after_password(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
			     ftm_outcome_t *out);

/* The same, with the split's proof of code (ftm_split_t.proof; NULL or serial "": none). A front end
 * that keeps the split's result for the request (RADIUS: authorize to authenticate) says so once with
 * ftm_auth_set_proof_carried: the core then keeps no copy of a proof for the verdict to find, which
 * costs two keyed digests per login. The verdict re-checks a proof inside its transaction, and one
 * made for another user, code or store handle is ignored. */
void ftm_auth_after_password_proved(ftm_auth_t *auth, const ftm_login_t *login, const char *code,
				    const ftm_code_proof_t *proof, time_t now, ftm_outcome_t *out);
void ftm_auth_set_proof_carried(ftm_auth_t *auth, bool carried);

/* The two halves of ftm_auth_after_password. */
void ftm_auth_verify_code(ftm_auth_t *auth, const ftm_login_t *login, const char *code, time_t now,
			  ftm_outcome_t *out);
void ftm_auth_second_factor(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out);

/* Issue a code challenge: out->result = FTM_RES_CHALLENGE, out->state = new State bound to
 * user and client, single use, expiring after cfg.challenge_timeout; message FTM_MSG_ENTER_CODE. */
void ftm_auth_challenge_code(ftm_auth_t *auth, const ftm_login_t *login, time_t now, ftm_outcome_t *out);

/* Some PAM clients answer every prompt with the password (strongSwan's xauth-pam, RADIUS-to-PAM
 * bridges). proven_password: the password the first factor has just proved (PAM_AUTHTOK after a
 * requisite first factor), or NULL; compared with an answer in constant time.
 * The answer at the push prompt (push_wait=prompt): true when it asks for the push (Enter, blanks, the
 * word "push" in any case, or the proven password), false when it is to be checked as a code. */
bool ftm_auth_push_prompt_asks_push(const char *proven_password, const char *answer);

/* The answer a user typed to a challenge prompt (code or number): ftm_auth_challenge_answer, except
 * that an answer equal to the proven password is no guess: the State is consumed (a number push
 * refused), the login fails with FTM_MSG_CODE_REQUIRED and no failure is counted. */
void ftm_auth_prompt_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *proven_password,
			    const char *state, const char *answer, time_t now, ftm_outcome_t *out);

/* The reply to a challenge: checks State (known, unexpired, same user and client; consumed), then the
 * answer (a token code, or the number for number matching). An empty (or blank) answer to a code
 * challenge fails with FTM_MSG_CODE_REQUIRED and counts no failure toward the lockout. */
void ftm_auth_challenge_answer(ftm_auth_t *auth, const ftm_login_t *login, const char *state,
			       const char *answer, time_t now, ftm_outcome_t *out);

/* ---- push: one interface, two implementations ----
 * The in-process engine (common/push*.c: the HTTPS callback listener and the channels; a RADIUS
 * instance, ftmpushd) and the ftmpushd client (common/push_client.c: a PAM process). Their pending
 * pushes and the States of their number challenges are the store's, so any node of it answers them.
 * ftm_auth_new plugs in the client when push.status is enabled; ftm_auth_push_start replaces it with
 * the engine. */
typedef struct ftm_push_ops {
	/* Push to tok (usable, has a push target) for login; may block up to push.timeout. Sets
	 * FTM_RES_OK (approved), FTM_RES_DENIED (denied or timed out), FTM_RES_PUSH_FAILED (not sent),
	 * FTM_RES_CHALLENGE with out->state (number matching: ask the user for the number), FTM_RES_ERROR. */
	void (*push)(void *ctx, const ftm_login_t *login, const ftm_token_t *tok, time_t now,
		     ftm_outcome_t *out);
	/* The answer to a challenge State the core did not issue (number matching). Returns false when
	 * the State is not the implementation's either (the core then rejects it as unknown). */
	bool (*challenge_answer)(void *ctx, const ftm_login_t *login, const char *state, const char *answer,
				 time_t now, ftm_outcome_t *out);
	/* Called once when replaced or by ftm_auth_free: stop, cancel waiters, free ctx. */
	void (*stop)(void *ctx);
} ftm_push_ops_t;

/* Plug in a push implementation (NULL: none); the one plugged in before is stopped. */
void ftm_auth_set_push_ops(ftm_auth_t *auth, const ftm_push_ops_t *ops, void *ctx);

/* Start the in-process push engine for this auth (listener on push.server_port + channels) and plug it
 * in. RADIUS instances call it at instantiate and ftmpushd at start when push.status is enabled; PAM
 * processes never do. 0 ok, -1 with a one-line reason in err. Implemented by the engine (push_auth.c). */
int ftm_auth_push_start(ftm_auth_t *auth, char *err, size_t err_len);

/* The token a push for user goes to: the first usable one (active or pending, ordered by serial) with
 * a push target; serial non-empty: that one only. 1 with *tok filled (zero its seed when done), 0 when
 * none, -1 on a store error (err). The one token choice, for ftm_auth and ftmpushd alike. */
int ftm_auth_push_token(ftm_auth_t *auth, const char *user, const char *serial, time_t now, ftm_token_t *tok,
			char *err, size_t err_len);

/* What a final push verdict means for the login, in one place: approved -> FTM_RES_OK, denied or
 * timeout -> FTM_RES_DENIED, failed or error -> FTM_RES_PUSH_FAILED. message: what the user reads
 * instead of the verdict's own text (NULL: the verdict's). */
void ftm_auth_push_outcome(ftm_outcome_t *out, ftm_push_verdict_t v, const char *serial, const char *message,
			   const char *reason);

/* The number-matching State a typed number answers, taken from the store for either push path (the
 * engine's, ftmpushd's client): 1 with *check and tx (33 bytes, the push it names) set; 0 when the
 * State is no number challenge (try the next kind); -1 when the store failed, with out set to the
 * error outcome (fail closed). */
int ftm_auth_number_take(ftm_store_t *st, const ftm_login_t *login, const char *state, time_t now,
			 ftm_state_check_t *check, char tx[33], ftm_outcome_t *out);

/* The log given to ftm_auth_new (the push engine logs through it). */
const ftm_log_t *ftm_auth_log(const ftm_auth_t *auth);

const char *ftm_result_name(ftm_result_t r);
/* The name back to the result: 0, or -1 for a name that is none (common/result.c). */
int ftm_result_parse(const char *s, ftm_result_t *out);

#endif

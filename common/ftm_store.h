/* ftm_store: tokens and their state behind a small backend interface (SQLite is the embedded default). */
#ifndef FTM_STORE_H
#define FTM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "ftm_otp.h"
#include "ftm_log.h"
#include "ftm_push_verdict.h"
#include "ftm_policy.h"
#include "ftm_recovery.h"
#include "ftm_states.h"

#define FTM_SERIAL_MAX	64
#define FTM_USER_MAX	256
#define FTM_PUSH_MAX	512
#define FTM_MSG_MAX	256

typedef enum { FTM_TOKEN_ACTIVE = 0, FTM_TOKEN_LOCKED } ftm_token_status_t;

/* Why a token is locked: a lock by failures ends after the policy's lockout_duration, an admin's lock
 * (and one from before the store kept the reason) only by `token unlock`. */
typedef enum { FTM_LOCK_NONE = 0, FTM_LOCK_FAILURES, FTM_LOCK_ADMIN } ftm_lock_reason_t;

typedef struct ftm_token {
	char			serial[FTM_SERIAL_MAX];
	char			user[FTM_USER_MAX];
	uint8_t			seed[FTM_SEED_MAX];	/* clear only in memory; zero it when done */
	size_t			seed_len;
	ftm_alg_t		alg;
	unsigned		digits;			/* 6 or 8 */
	unsigned		period;			/* seconds */
	ftm_token_status_t	status;
	int64_t			last_step;		/* last accepted time step, -1 = never used */
	unsigned		failures;		/* consecutive failures */
	char			push[FTM_PUSH_MAX];	/* "channel:address" or "" */
	int64_t			created;		/* unix time of add / re-issue */
	ftm_lock_reason_t	lock_reason;		/* status lock: why (FTM_LOCK_NONE when active) */
	int64_t			locked_at;		/* status lock: unix time it was locked (0: unknown) */
} ftm_token_t;

typedef struct ftm_store ftm_store_t;

/* Open a store. uri: "sqlite:PATH" or a plain PATH (SQLite), or "postgresql://..." (a libpq URI, no
 * password in it: many nodes on one database). key_file: seed encryption key, created 0600 with 32
 * CSPRNG bytes on first use (NULL: PATH + ".key"; required for PostgreSQL, the same file on every node).
 * The SQLite file is created 0600 if missing; a PostgreSQL schema is created or migrated, and refused
 * when newer than this binary. Returns NULL with a one-line reason in err. Safe for many threads and
 * processes at once. */
ftm_store_t *ftm_store_open(const char *uri, const char *key_file, const ftm_log_t *log,
			    char *err, size_t err_len);
/* ftm_store_open for a handle only one thread uses, one call at a time (a PAM login keeps its handle on
 * the PAM handle): an SQLite store then reads on its writer connection and opens no reader, whose own
 * open and schema parse were ~0.7M instructions of a login and buy nothing without concurrent calls. */
ftm_store_t *ftm_store_open_single(const char *uri, const char *key_file, const ftm_log_t *log,
				   char *err, size_t err_len);
void ftm_store_close(ftm_store_t *st);
/* From now on a code peek (the split's) runs on the writer connection while no write is in flight or
 * queued, and on a reader otherwise: it never waits for a write, and a write that comes during it waits
 * for the peek (tens of microseconds). For a handle whose writer is mostly idle (ftmpushd's PAM logins,
 * one at a time): SQLite drops a reader's whole page cache when another connection committed since its
 * last read, so a peek on a reader after each verdict read its pages again (five preads a login); the
 * writer's cache holds what it wrote. Not for a server whose writes are many and concurrent (a peek
 * would then delay a group commit). A no-op for a backend without it. */
void ftm_store_peek_on_idle_writer(ftm_store_t *st);
/* Process-wide settings of the store's libraries that only a program's own single-threaded start may
 * make (SQLite's sqlite3_config is not thread-safe and applies to every user of SQLite in the process):
 * called by ftmpushd and ftmpushctl first thing, and by rlm_ftmpush while FreeRADIUS instantiates its
 * modules (before its threads start); never from the PAM module, whose host may run threads. Best
 * effort: where SQLite was initialised already, nothing changes. */
void ftm_store_process_init(void);

/* All return 0 on success, 1 for "not found" where noted, -1 on error with a reason in err. */
int ftm_store_token_add(ftm_store_t *st, const ftm_token_t *tok, char *err, size_t err_len); /* -1 if serial exists */
int ftm_store_token_get(ftm_store_t *st, const char *serial, ftm_token_t *out, char *err, size_t err_len); /* 1 */
/* Replace seed/alg/digits/period, reset state (last_step -1, failures 0, active), created = now. */
int ftm_store_token_reissue(ftm_store_t *st, const ftm_token_t *tok, char *err, size_t err_len); /* 1 */
/* lock: status lock. unlock: status active and failures 0. */
int ftm_store_token_set_status(ftm_store_t *st, const char *serial, ftm_token_status_t status,
			       char *err, size_t err_len); /* 1 */
int ftm_store_token_set_push(ftm_store_t *st, const char *serial, const char *push, char *err, size_t err_len); /* 1 */
/* Assign a token to a user ("" leaves it unassigned: hard tokens imported from a seed file without a
 * user column). A token without a user never accepts a code. */
int ftm_store_token_set_user(ftm_store_t *st, const char *serial, const char *user, char *err, size_t err_len); /* 1 */
int ftm_store_token_delete(ftm_store_t *st, const char *serial, char *err, size_t err_len); /* 1 */
/* Add n tokens in one transaction: all or nothing. A serial already in the store: -1, "token S
 * already exists" (the first such in toks' order). */
int ftm_store_token_import(ftm_store_t *st, const ftm_token_t *toks, size_t n, char *err, size_t err_len);
/* Which of serials[0..n) are in the store: in_store[i] set for each (an import's check before it adds,
 * a few round trips for any n). Nothing is unsealed. */
int ftm_store_tokens_present(ftm_store_t *st, const char *const *serials, size_t n, bool *in_store,
			     char *err, size_t err_len);

/* Iterate tokens (user NULL: all), ordered by user then serial. Callback returns non-zero to stop.
 * All of them are one snapshot, handed on as the store reads them (memory does not grow with the
 * store); an error after some were handed on is -1 all the same: the callback did not see them all.
 * On PostgreSQL the listing holds one pooled connection while the callback runs (the cursor's): a
 * callback that calls into the store takes another, so listings that do so at once are bounded by the
 * pool (8 per handle). The same holds for ftm_store_audit_list. */
typedef int (*ftm_token_cb)(void *ctx, const ftm_token_t *tok);
int ftm_store_token_list(ftm_store_t *st, const char *user, ftm_token_cb cb, void *ctx,
			 char *err, size_t err_len);
/* The same without the seeds (tok->seed zero, seed_len 0): nothing is unsealed, so a listing or a
 * login's look at what the user holds costs no decryption. */
int ftm_store_token_list_info(ftm_store_t *st, const char *user, ftm_token_cb cb, void *ctx,
			      char *err, size_t err_len);

/* ---- the verdict ---- */

#define FTM_PROOF_SEAL_LEN	12

/* What an accepted code proved: which token, which step, and which sealing of its seed (a re-issue or
 * a re-seal changes it). A peek that accepts a code returns one; the verdict on the same user and code
 * that follows may be given it, and then re-checks inside its transaction only what can have changed
 * (status, activation, replay step, the seal) instead of unsealing seeds and computing HMACs again.
 * When the peek read every token of the user active and without failures, the verdict's only write is
 * this token's step (`step_only`): it does not read the user's rows again at all where the backend can
 * compare instead, and writes the step only if the row is still exactly as the peek read it and the
 * user's other tokens are still active without failures (ftm_store_backend_t.consume_proven); it
 * decides on the rows read again when they are not.
 * A proof holds only for the user and code it was made for, and only on the store handle that made it. */
typedef struct ftm_code_proof {
	char		serial[FTM_SERIAL_MAX];	/* "" = nothing proved */
	uint64_t	step;
	int64_t		created;
	uint8_t		seal[FTM_PROOF_SEAL_LEN];
	uint8_t		mac[32];	/* binds the above to the user and the code, under a key of this store handle */
	/* the peek's read of the token: step_only, then (step_only only, else 0) its row in the backend and
	 * its last accepted step before this code; its period; not in the MAC: the verdict compares each with
	 * the row it writes */
	bool		step_only;
	int64_t		rowid;
	int64_t		last_step;
	unsigned	period;
} ftm_code_proof_t;

typedef struct ftm_verify_params {
	unsigned	window;			/* drift window in steps */
	unsigned	lockout_threshold;	/* 0 = never lock */
	unsigned	activation_expire;	/* minutes; 0 = never */
	bool		consume;		/* false: peek only, change nothing (split decisions) */
	/* the caller's own earlier peek of this same user and code (NULL: none); a proof that no longer
	 * holds is ignored and every token tried as without one */
	const ftm_code_proof_t *proof;
	/* a peek's count of the user's tokens (NULL: none): called once with each token the verdict
	 * decides on, without its seed, before deciding, so the caller sees the same snapshot without a
	 * second read (the split's holdings). Peeks only (consume false): a consuming verdict may be
	 * decided again on rows read again, and is refused with tokens_cb set */
	ftm_token_cb	tokens_cb;
	void		*tokens_ctx;
	/* the audit row of this verdict (NULL: none): the caller fills who, where and what (event), the
	 * store fills at, result, serial and reason and writes it in the verdict's own transaction, so a
	 * decision is never committed without its record (and a record that cannot be written fails the
	 * verdict closed). Only consuming verdicts write one. */
	struct ftm_audit_row	*audit;
	unsigned	lockout_duration;	/* minutes a lock by failures lasts; 0 = until an admin unlocks */
} ftm_verify_params_t;

typedef enum {
	FTM_VERDICT_OK = 0,	/* code accepted, step recorded, failures reset */
	FTM_VERDICT_BAD_CODE,	/* no token of the user accepts it; failures counted */
	FTM_VERDICT_REPLAY,	/* code of a step not newer than the last accepted one */
	FTM_VERDICT_LOCKED,	/* token locked (before, or by this failure) */
	FTM_VERDICT_EXPIRED,	/* never used and past its activation window */
	FTM_VERDICT_NO_TOKEN,	/* user holds no token */
	FTM_VERDICT_ERROR	/* store failure: fail closed */
} ftm_verdict_code_t;

typedef struct ftm_verdict {
	ftm_verdict_code_t	code;
	char			serial[FTM_SERIAL_MAX];	/* the token decided on ("" if none) */
	unsigned		wait_seconds;		/* REPLAY: seconds left in the current step */
	unsigned		failures;		/* failures after this verdict */
	bool			now_locked;		/* this failure reached the threshold */
	char			message[FTM_MSG_MAX];	/* for the user (ftm_message.h) */
	char			reason[FTM_MSG_MAX];	/* for the log: never the code */
	ftm_code_proof_t	proof;			/* OK of a peek: what the code proved (see ftm_code_proof_t) */
	unsigned		recovery_left;		/* a recovery code's verdict: the user's unused codes */
} ftm_verdict_t;

/* One atomic transaction (BEGIN IMMEDIATE on SQLite): try `code` against every token of `user`,
 * refuse replays, count failures on every active token of the user when none accepts, lock at the
 * threshold, reset failures and record the step on success. */
int ftm_store_verify_code(ftm_store_t *st, const char *user, const char *code, time_t now,
			  const ftm_verify_params_t *params, ftm_verdict_t *out);

/* A wrong answer that is not a code (a wrong number typed at the number matching prompt): one atomic
 * transaction that counts it exactly like a wrong code: one more consecutive failure on every usable
 * (active, not expired) token of `user`, locking each that reaches params->lockout_threshold.
 * serial: the token the answer was for (NULL or "": any); already locked: FTM_VERDICT_LOCKED and
 * nothing counted. Verdicts: BAD_CODE (FTM_MSG_BAD_ANSWER, failures counted), LOCKED (FTM_MSG_LOCKED,
 * now_locked when this failure locked it), EXPIRED, NO_TOKEN, ERROR (-1). params->consume is ignored:
 * this always writes. */
int ftm_store_record_failure(ftm_store_t *st, const char *user, const char *serial, time_t now,
			     const ftm_verify_params_t *params, ftm_verdict_t *out);
/* A proven second factor that is not a code (an approved push, the right number): in one transaction,
 * FTM_VERDICT_OK and the failures of every usable token of `user` reset to 0, like an accepted code;
 * FTM_VERDICT_LOCKED when the token `serial` was locked meanwhile, FTM_VERDICT_NO_TOKEN when it is no
 * longer the user's (the caller must then refuse the login). last_step is not touched. */
int ftm_store_record_success(ftm_store_t *st, const char *user, const char *serial, time_t now,
			     const ftm_verify_params_t *params, ftm_verdict_t *out);

/* A token's state at `now`, what every decision on it reads (never the display name). */
typedef enum {
	FTM_TOKEN_STATE_ACTIVE = 0,	/* used before: accepts codes and pushes */
	FTM_TOKEN_STATE_PENDING,	/* never used, inside its activation window: accepts them too */
	FTM_TOKEN_STATE_EXPIRED,	/* never used, past its activation window */
	FTM_TOKEN_STATE_LOCKED		/* status lock */
} ftm_token_state_t;

/* policy: the store's (ftm_store_policy): a lock by failures older than its lockout_duration reads as
 * ended (the next verdict writes that down), a never-used token expires after activation_expire. */
ftm_token_state_t ftm_token_state(const ftm_token_t *tok, time_t now, const ftm_policy_t *policy);
/* Its human form: "active", "pending", "expired", "locked" (admin listings). */
const char *ftm_token_state_name(const ftm_token_t *tok, time_t now, const ftm_policy_t *policy);
/* A lock by failures that ends by itself: the unix time it ends, else 0 (not locked, locked by an admin,
 * or lockout_duration 0). */
int64_t ftm_token_unlock_at(const ftm_token_t *tok, const ftm_policy_t *policy);
/* "failures", "admin" or "" (the lock reason as `token show` prints it and the backends keep it). */
const char *ftm_lock_reason_name(ftm_lock_reason_t reason);

/* ---- the verdict policy, one for every node and front end of the store ---- */

/* The store's policy (ftm_policy.h), re-read when older than FTM_POLICY_REFRESH_SECONDS; one call is
 * one consistent snapshot for a verdict. When a re-read fails the last policy read is kept (the
 * verdict then fails on the store itself). 0, or -1 with err (never read yet, or a damaged value). */
int ftm_store_policy(ftm_store_t *st, ftm_policy_t *out, char *err, size_t err_len);
/* Change one policy value for every node: validated (ftm_policy_parse), written, logged with the old
 * and new value; the one function every change goes through. old (may be NULL): the value before. */
int ftm_store_policy_set(ftm_store_t *st, const char *name, const char *value, char *old, size_t old_len,
			 char *err, size_t err_len);

/* Fill a new token: CSPRNG 20-byte seed when seed_hex is NULL, serial FTKMOB + 10 hex chars when
 * serial is NULL. Defaults: sha1, 6 digits, 60 s (FortiToken Mobile). 0 or -1 with err. */
int ftm_token_init(ftm_token_t *tok, const char *user, const char *serial, const char *seed_hex,
		   char *err, size_t err_len);

/* otpauth://totp/ISSUER:USER?secret=...&issuer=ISSUER&algorithm=...&digits=...&period=... */
int ftm_token_otpauth_uri(const ftm_token_t *tok, const char *issuer, char *out, size_t out_len);

/* ---- activation links (enrolment by e-mail or a printed link) ---- */

#define FTM_EMAIL_MAX		256
#define FTM_ACTIVATION_CODE_LEN	32	/* base64url characters of an activation code (24 CSPRNG bytes) */
#define FTM_ACTIVATION_TRIES	5	/* wrong codes a link takes; then it is dead (a new link is needed) */

typedef enum {
	FTM_ACT_OK = 0,		/* open: the link is valid (seed in tok); confirm: the token is activated */
	FTM_ACT_BAD_CODE,	/* confirm: the typed code is wrong; counted on the link */
	FTM_ACT_UNKNOWN,	/* no such link: never issued, or revoked (token deleted or re-issued) */
	FTM_ACT_EXPIRED,	/* the link's (the token's) activation window has passed */
	FTM_ACT_USED,		/* already confirmed, or the token was used meanwhile */
	FTM_ACT_EXHAUSTED,	/* FTM_ACTIVATION_TRIES wrong codes */
	FTM_ACT_LOCKED,		/* the token is locked */
	FTM_ACT_ERROR		/* store failure: fail closed */
} ftm_activation_code_t;

typedef struct ftm_activation {
	ftm_activation_code_t	code;
	char			serial[FTM_SERIAL_MAX];	/* "" when unknown */
	char			email[FTM_EMAIL_MAX];
	int64_t			expires;		/* 0 = never */
	unsigned		tries_left;		/* wrong codes the link still takes */
	char			reason[FTM_MSG_MAX];	/* for the log: never the code or the seed */
} ftm_activation_t;

const char *ftm_activation_code_name(ftm_activation_code_t c);

/* A new single-use link for the token `serial`, replacing its earlier links: 24 CSPRNG bytes as
 * FTM_ACTIVATION_CODE_LEN base64url characters into code (FTM_ACTIVATION_CODE_LEN + 1 bytes), stored
 * only as a SHA-256 hash. It expires with the token's activation window (created + activation_expire
 * minutes; 0 = never). Refused (-1) when the token was already used or its window has passed; 1 when
 * there is no such token. email: where the link goes ("" when printed). */
int ftm_store_activation_issue(ftm_store_t *st, const char *serial, const char *email, time_t now,
			       unsigned activation_expire, char *code, size_t code_len,
			       int64_t *expires, char *err, size_t err_len);
/* The link behind `code` for the page: out->code FTM_ACT_OK with the token (seed in clear: zero it)
 * in tok, or why not. Changes nothing. Every answer costs the same store work (unknown vs expired). */
int ftm_store_activation_open(ftm_store_t *st, const char *code, time_t now, unsigned activation_expire,
			      ftm_activation_t *out, ftm_token_t *tok);
/* The user typed `otp` on the page of `code`: in one transaction, a code of the token inside the drift
 * window and newer than its last step activates it like a login (the step is consumed, the token's
 * failures reset) and uses the link up; a wrong one counts on the link only. */
int ftm_store_activation_confirm(ftm_store_t *st, const char *code, const char *otp, time_t now,
				 const ftm_verify_params_t *params, ftm_activation_t *out);
/* The newest link of a token (its address and expiry; never a code): 0, 1 none, -1. */
int ftm_store_activation_get(ftm_store_t *st, const char *serial, ftm_activation_t *out, char *err, size_t err_len);

/* ---- code-challenge States, shared by every front end and node of the store ---- */

/* Issue a State (FTM_STATE_HEX hex characters from the CSPRNG) for user and client, valid ttl seconds
 * from now; the store keeps only its SHA-256, the user, the client's SHA-256 and the expiry. 0, or -1
 * with err. */
int ftm_store_challenge_issue(ftm_store_t *st, const char *user, const char *client, time_t now, unsigned ttl,
			      char state[FTM_STATE_HEX + 1], char *err, size_t err_len);
/* Take a State, on any node: single use whatever the answer (an expired or mismatched one is consumed
 * too). *check: FTM_STATE_OK, _EXPIRED, _MISMATCH (another user or client) or _UNKNOWN. 0, or -1 with
 * err when the store failed (fail closed: the caller refuses). */
int ftm_store_challenge_take(ftm_store_t *st, const char *user, const char *client, const char *state,
			     time_t now, ftm_state_check_t *check, char *err, size_t err_len);

/* ---- recovery codes: the user's, each single use, accepted in place of a token code ---- */

/* A new set of `count` (1 to FTM_RECOVERY_COUNT_MAX) codes for user into codes (for the caller to show
 * once, then zero), replacing every earlier code of the user in one transaction. The store keeps per
 * code a random salt and ftm_recovery_hash under a key derived from the seed key: never the code.
 * Refused (-1) when the user holds no token. */
int ftm_store_recovery_issue(ftm_store_t *st, const char *user, unsigned count, time_t now,
			     char codes[][FTM_RECOVERY_LEN + 1], char *err, size_t err_len);
/* A typed recovery code, in one transaction like ftm_store_verify_code (params->consume false: a peek
 * that changes nothing). OK: the code is used up and the user's failures reset (last_step untouched);
 * REPLAY: the code was used before, nothing counted; BAD_CODE: no code of the user, one failure counted
 * on every usable token like a wrong token code (LOCKED at the threshold); LOCKED or EXPIRED: no usable
 * token, nothing consumed or counted; NO_TOKEN; ERROR (-1). out->recovery_left: unused codes after it. */
int ftm_store_recovery_verify(ftm_store_t *st, const char *user, const char *code, time_t now,
			      const ftm_verify_params_t *params, ftm_verdict_t *out);
/* The user's codes: *left unused of *total issued (0 and 0: none). 0, or -1 with err. */
int ftm_store_recovery_count(ftm_store_t *st, const char *user, unsigned *left, unsigned *total,
			     char *err, size_t err_len);
/* ---- the audit trail: one row per decision, shared by every front end and node of the store ---- */

#define FTM_AUDIT_WORD	24	/* an event, result or front-end name */
#define FTM_AUDIT_FIELD	128	/* client, NAS/service, node */

/* Never a seed, code, password, State or capability: names, addresses and the log's reason only. */
typedef struct ftm_audit_row {
	int64_t	id;				/* assigned by the store: the order of the trail */
	int64_t	at;				/* unix time of the decision */
	char	event[FTM_AUDIT_WORD];		/* code, challenge, push, number, enrol, recovery, admin */
	char	result[FTM_AUDIT_WORD];		/* ftm_audit.h's FTM_AUDIT_* result names */
	char	user[FTM_USER_MAX];
	char	serial[FTM_SERIAL_MAX];
	char	client[FTM_AUDIT_FIELD];	/* Calling-Station-Id / NAS-IP, PAM rhost; ctl: the admin */
	char	nas[FTM_AUDIT_FIELD];		/* NAS-Identifier or RADIUS client, PAM service; ctl: command */
	char	frontend[FTM_AUDIT_WORD];	/* radius, pam, ftmpushd, ctl, web */
	char	node[FTM_AUDIT_FIELD];		/* node_name, else the host name */
	char	reason[FTM_MSG_MAX];
} ftm_audit_row_t;

typedef struct ftm_audit_filter {
	const char	*user;		/* NULL: every user */
	const char	*result;	/* NULL: every result */
	int64_t		since;		/* rows at or after this unix time (0: all) */
	unsigned	limit;		/* the newest `limit` rows (0: all), still in trail order */
} ftm_audit_filter_t;

typedef int (*ftm_audit_cb)(void *ctx, const ftm_audit_row_t *row);

/* Append one row in its own short transaction (a decision that has no verdict transaction: a push
 * denied or timed out, a challenge issued, an admin command). at 0: now. 0 or -1 with err. */
int ftm_store_audit_append(ftm_store_t *st, const ftm_audit_row_t *row, char *err, size_t err_len);
/* The rows matching f, oldest first; cb non-zero stops. As ftm_store_token_list: one snapshot, handed
 * on as the store reads them; an error after some were handed on is -1 all the same. */
int ftm_store_audit_list(ftm_store_t *st, const ftm_audit_filter_t *f, ftm_audit_cb cb, void *ctx,
			 char *err, size_t err_len);
/* Delete the rows older than `before` (unix time); *removed (may be NULL) how many. */
int ftm_store_audit_prune(ftm_store_t *st, int64_t before, unsigned long *removed, char *err, size_t err_len);

/* ---- backup ---- */

/* A consistent copy of an SQLite store, taken while servers use it, into dest: a new file (one that
 * exists is refused, a store or an older backup alike), 0600, a plain rollback-journal SQLite file,
 * synced with its directory. It is made beside dest and checked (PRAGMA integrity_check, on a fresh
 * read-only connection) before it takes dest's name: dest is a whole checked copy or nothing, also
 * after a crash (which leaves at most a DEST.partial-XXXXXX). The seeds in it are
 * sealed: the key file is not in it and must be kept apart. *tokens (may be NULL): the tokens copied. A
 * PostgreSQL store is refused: its own tools (pg_dump) back it up. 0, or -1 with err. */
int ftm_store_backup(ftm_store_t *st, const char *dest, unsigned long *tokens, char *err, size_t err_len);
/* The file the store's seed key was read from (what a backup of the store needs besides). */
const char *ftm_store_key_file(const ftm_store_t *st);

/* ---- debug on demand: the decision trace raised for a user ("" everyone) until a time ---- */

/* On for user ("": everyone) until `expires` (unix time), replacing that user's earlier switch. */
int ftm_store_debug_set(ftm_store_t *st, const char *user, int64_t expires, time_t now, char *err, size_t err_len);
/* Off for user ("": the everyone switch; NULL: every switch). 1 when there was none. */
int ftm_store_debug_clear(ftm_store_t *st, const char *user, char *err, size_t err_len);
/* The switches still on at `now`, in user order; cb non-zero stops. */
typedef int (*ftm_debug_cb)(void *ctx, const char *user, int64_t expires);
int ftm_store_debug_list(ftm_store_t *st, time_t now, ftm_debug_cb cb, void *ctx, char *err, size_t err_len);

/* ---- pending pushes and their number-matching States, shared by every node of the store ----
 * The row is the source of truth for a push: the node that sent it waits on it, any node's callback
 * listener decides it. It holds hashes of the capabilities, never the capabilities. */

#define FTM_PUSH_ROW_CAPS	3
#define FTM_PUSH_RETAIN_ROW	300	/* seconds a finished or expired row stays (a replay is told 409/410) */

typedef struct ftm_push_row {
	char			id[33];			/* the transaction id (hex; public: it is in the envelope) */
	char			user[FTM_USER_MAX];
	char			serial[FTM_SERIAL_MAX];
	char			client_hash[65];	/* hex SHA-256 of the whole client identity */
	char			caps[FTM_PUSH_ROW_CAPS][65];	/* hex SHA-256 of each capability, "" unused */
	unsigned		approve_cap;		/* the capability that approves; the others deny */
	char			number[FTM_NUMBER_MAX];	/* "" without number matching */
	bool			gateway;		/* answered through the gateway envelope (by id + proof) */
	int64_t			expires;		/* unix time: pending after it reads as timeout */
	ftm_push_verdict_t	verdict;
	char			reason[128];
	bool			dirty;			/* decide: write verdict and reason back */
} ftm_push_row_t;

/* How ftm_store_push_decide finds its row: by transaction id, or by the hash of one capability. */
typedef enum { FTM_PUSH_BY_ID = 0, FTM_PUSH_BY_CAP } ftm_push_key_t;

/* Runs inside the row's transaction (locked against every other node); row NULL: no such push. Marks
 * the row dirty to record its verdict; returns 0 to commit, -1 to roll back. */
typedef int (*ftm_push_decide_fn)(void *ctx, ftm_push_row_t *row);
/* A node recorded a verdict (id), or NULL: notifications may have been missed, re-read every row. */
typedef void (*ftm_push_watch_fn)(void *ctx, const char *id);

/* Store row as pending, unless the user has a pending push already (verdict pending, unexpired): then
 * 1 with it in *pending and nothing stored; one transaction, so two nodes at once give one push. Rows
 * finished more than FTM_PUSH_RETAIN_ROW seconds ago are purged. 0, 1, or -1 with err. */
int ftm_store_push_put(ftm_store_t *st, const ftm_push_row_t *row, time_t now, ftm_push_row_t *pending,
		       char *err, size_t err_len);
/* The row of transaction id: 0, 1 none, -1. */
int ftm_store_push_get(ftm_store_t *st, const char *id, ftm_push_row_t *out, char *err, size_t err_len);
/* One transaction over the row found by key (a transaction id, or a capability's hex SHA-256): decide,
 * write back a dirty verdict, and tell the other nodes (PostgreSQL NOTIFY, the payload the id only).
 * 0, 1 no such row (decide is not called), -1. */
int ftm_store_push_decide(ftm_store_t *st, ftm_push_key_t by, const char *key, ftm_push_decide_fn decide,
			  void *ctx, char *err, size_t err_len);
/* Be told when another node decides a push (PostgreSQL LISTEN on a dedicated connection; cb runs on its
 * thread). 0 watching, 1 the backend cannot (SQLite: re-read the row), -1. unwatch: stop, join. */
int ftm_store_push_watch(ftm_store_t *st, ftm_push_watch_fn cb, void *ctx, char *err, size_t err_len);
void ftm_store_push_unwatch(ftm_store_t *st);

/* Issue a number-matching State for the push tx, bound to user and client, valid ttl seconds (the
 * store keeps its SHA-256 and the client's, with the code-challenge States' caps per user and client).
 * 0, or -1 with err. */
int ftm_store_number_issue(ftm_store_t *st, const char *user, const char *client, const char *tx, time_t now,
			   unsigned ttl, char state[FTM_STATE_HEX + 1], char *err, size_t err_len);
/* Take a number-matching State on any node (single use whatever the answer): *check as for code
 * challenges, tx (33 bytes) the push it answers. 0, or -1 with err. */
int ftm_store_number_take(ftm_store_t *st, const char *user, const char *client, const char *state, time_t now,
			  ftm_state_check_t *check, char tx[33], char *err, size_t err_len);

#endif

/* store_backend: what a token store backend implements; store.c is the only caller (internal to libftmpush).
 * A backend never sees a clear seed: it keeps the sealed blob store.c hands it. Adding a backend is a new
 * file with one ftm_store_backend_t and one line in store.c's table; callers of ftm_store.h do not change. */
#ifndef FTM_STORE_BACKEND_H
#define FTM_STORE_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include "ftm_store.h"
#include "seedcrypt.h"

/* A token as a backend keeps it. */
typedef struct ftm_store_row {
	ftm_token_t	tok;			/* tok.seed all zero, tok.seed_len 0 */
	uint8_t		sealed[FTM_SEALED_MAX];	/* the seed, sealed by seedcrypt */
	size_t		sealed_len;
	bool		dirty;			/* verdict: status/last_step/failures/lock changed, write back */
	int64_t		rowid;			/* verdict: the backend's own key of the row (0: none) */
} ftm_store_row_t;

typedef int (*ftm_row_cb)(void *ctx, const ftm_store_row_t *row);

/* An insert's rows, made while the backend inserts them, FTM_STORE_INSERT_CHUNK at a time (the seeds
 * sealed then), so an import of any size holds one chunk of rows: rows[0..k) filled with rows
 * first..first+k-1 of the insert; 0, or -1 with a reason in err (the insert then rolls back). */
#define FTM_STORE_INSERT_CHUNK	1000
typedef int (*ftm_rows_fill_fn)(void *ctx, size_t first, ftm_store_row_t *rows, size_t k, char *err,
				size_t err_len);

/* Runs inside the verdict transaction with every token of the user (ordered by serial). Marks the rows
 * to write back dirty; returns 0 to commit them, -1 to roll back. A backend may call it more than once
 * for one verdict (first on rows read before the lock, then on the locked rows when those changed):
 * each call starts over from the rows it is given, and only the last call's outcome counts. */
typedef int (*ftm_decide_fn)(void *ctx, ftm_store_row_t *rows, size_t n);

/* An activation link as a backend keeps it: never the code, only its hash. */
typedef struct ftm_activation_row {
	uint8_t		code_hash[32];		/* SHA-256 of the code in the link */
	char		serial[FTM_SERIAL_MAX];
	char		email[FTM_EMAIL_MAX];	/* where the link was sent ("" printed for the admin) */
	uint8_t		seal_hash[32];		/* SHA-256 of the token's sealed seed when issued: a re-issue
						 * (a new seal) leaves the old link pointing at nothing */
	int64_t		created;
	int64_t		expires;		/* unix time; 0 = never */
	unsigned	failures;		/* wrong codes typed on this link */
	bool		used;
	bool		dirty;			/* act_verdict: failures/used changed, write back */
} ftm_activation_row_t;

/* Runs inside act_verdict's transaction with the link (NULL: no such code) and its token's row (NULL: no
 * such token). Marks what to write back dirty; returns 0 to commit, -1 to roll back. */
typedef int (*ftm_act_decide_fn)(void *ctx, ftm_activation_row_t *act, ftm_store_row_t *tok);

/* A recovery code as a backend keeps it: never the code, only its salted hash (ftm_recovery_hash). */
typedef struct ftm_recovery_row {
	uint8_t		salt[FTM_RECOVERY_SALT_LEN];	/* random per code: also its key in the table */
	uint8_t		hash[FTM_RECOVERY_HASH_LEN];
	int64_t		created;
	int64_t		used;				/* unix time it was used; 0 = unused */
	bool		dirty;				/* recovery_verdict: used changed, write back */
} ftm_recovery_row_t;

/* Runs inside recovery_verdict's transaction with the user's tokens (as ftm_decide_fn) and recovery
 * codes; marks what to write back dirty; returns 0 to commit, -1 to roll back. */
typedef int (*ftm_recovery_decide_fn)(void *ctx, ftm_store_row_t *rows, size_t n, ftm_recovery_row_t *codes,
				      size_t m);

typedef struct ftm_store_backend {
	const char *scheme;	/* "sqlite": selects the backend from a "scheme:location" store uri */
	/* All return 0 ok, 1 not found where noted, -1 error with a one-line reason in err. */
	void *(*open)(const char *location, const ftm_log_t *log, char *err, size_t err_len);
	void (*close)(void *be);
	/* optional: the handle is used by one thread, one call at a time, from now on (ftm_store_open_single) */
	void (*single)(void *be);
	/* optional: from now on a peek may run on the connection writes use, when no write is in flight
	 * (ftm_store_peek_on_idle_writer) */
	void (*peek_on_idle_writer)(void *be);
	/* small named blobs kept with the tokens (the key check); get: 1 when absent */
	int (*meta_get)(void *be, const char *name, uint8_t *buf, size_t max, size_t *len, char *err, size_t err_len);
	int (*meta_put)(void *be, const char *name, const uint8_t *buf, size_t len, char *err, size_t err_len);
	/* n rows from fill in one transaction, all or nothing; -1 when a serial exists ("token S already
	 * exists", the first one in the rows' order) */
	int (*insert)(void *be, size_t n, ftm_rows_fill_fn fill, void *ctx, char *err, size_t err_len);
	int (*get)(void *be, const char *serial, ftm_store_row_t *out, char *err, size_t err_len);	/* 1 */
	/* optional: found[i] set when serials[i] is a token, in few round trips (store.c asks get per
	 * serial without it) */
	int (*present)(void *be, const char *const *serials, size_t n, bool *found, char *err, size_t err_len);
	/* write the row's sealed seed, alg, digits, period, created, status, last_step and failures (what a
	 * re-issue resets is store.c's rule, not the backend's) */
	int (*reissue)(void *be, const ftm_store_row_t *row, char *err, size_t err_len);		/* 1 */
	/* set status with its lock reason and time, and the failure count to 0 when clear_failures
	 * (store.c decides when) */
	int (*set_status)(void *be, const char *serial, ftm_token_status_t status, ftm_lock_reason_t reason,
			  int64_t locked_at, bool clear_failures, char *err, size_t err_len);		/* 1 */
	int (*set_push)(void *be, const char *serial, const char *push, char *err, size_t err_len);	/* 1 */
	int (*set_user)(void *be, const char *serial, const char *user, char *err, size_t err_len);	/* 1 */
	int (*remove)(void *be, const char *serial, char *err, size_t err_len);				/* 1 */
	/* user NULL: all tokens; ordered by user then serial; cb non-zero stops */
	int (*list)(void *be, const char *user, ftm_row_cb cb, void *ctx, char *err, size_t err_len);
	/* One exclusive transaction when `write` (a read-only snapshot otherwise): load the user's rows,
	 * call decide, write back the dirty rows, commit. */
	int (*verdict)(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
		       char *err, size_t err_len);
	/* ---- activation links ---- */
	/* Replace every link of a->serial with a, in one transaction; 1 when the token does not exist. */
	int (*act_put)(void *be, const ftm_activation_row_t *a, char *err, size_t err_len);
	/* One transaction (exclusive when `write`): the link of code_hash and its token's row, decide,
	 * write back a dirty link (failures, used) and a dirty token row (status, last_step, failures). */
	int (*act_verdict)(void *be, const uint8_t code_hash[32], bool write, ftm_act_decide_fn decide,
			   void *ctx, char *err, size_t err_len);
	/* The newest link of a token (to re-send it to the same address); 1 when it has none. */
	int (*act_get_serial)(void *be, const char *serial, ftm_activation_row_t *out, char *err, size_t err_len);
	/* Forget every link of a token (deleted, re-issued). */
	int (*act_revoke)(void *be, const char *serial, char *err, size_t err_len);

	/* Code-challenge States, by id (the hex SHA-256 of the State, never the State itself). put also
	 * purges the entries expired before `now`; take deletes the entry and returns it (1: none). */
	int (*state_put)(void *be, const char *id, const char *user, const char *client, int64_t expires,
			 int64_t now, char *err, size_t err_len);
	int (*state_take)(void *be, const char *id, char *user, size_t user_len, char *client, size_t client_len,
			  int64_t *expires, char *err, size_t err_len);					/* 1 */

	/* ---- the verdict policy (settings by name, values as text; store.c parses them) ---- */
	/* Every setting, in no particular order; cb non-zero stops. */
	int (*settings_get)(void *be, int (*cb)(void *ctx, const char *name, const char *value), void *ctx,
			    char *err, size_t err_len);
	/* put: insert or replace; seed: insert only the names not there yet (a new store's defaults, a
	 * policy a newer binary added), in one transaction. `changed`: unix time, for the admin. */
	int (*setting_put)(void *be, const char *name, const char *value, int64_t changed, char *err, size_t err_len);
	int (*settings_seed)(void *be, const char *const *names, const char *const *values, size_t n,
			     int64_t changed, char *err, size_t err_len);
	/* ---- recovery codes ---- */
	/* Replace every code of user with codes[0..n) in one transaction (n 0: revoke them all). */
	int (*recovery_replace)(void *be, const char *user, const ftm_recovery_row_t *codes, size_t n,
				char *err, size_t err_len);
	/* verdict's transaction (exclusive when `write`, the user's token rows locked as there) with the
	 * user's codes read in it too: decide, then the dirty codes and the dirty token rows written back. */
	int (*recovery_verdict)(void *be, const char *user, bool write, ftm_recovery_decide_fn decide, void *ctx,
				char *err, size_t err_len);
	/* ---- the audit trail and debug on demand ---- */
	/* verdict, and when `write` and audit->event is set after decide, audit appended in the same
	 * transaction: both commit or neither (audit is filled by decide) */
	int (*verdict_audited)(void *be, const char *user, bool write, ftm_decide_fn decide, void *ctx,
			       const ftm_audit_row_t *audit, char *err, size_t err_len);
	/* optional (NULL: every verdict reads the user's rows in its transaction): a consuming verdict
	 * store.c decided on a peek's read (pr->step_only, ftm_code_proof_t), in one transaction: the token's
	 * last_step set to pr->step only where its row (pr->rowid) is still exactly as the peek read it (the
	 * serial, the user, active, no failures, last_step pr->last_step, created, period, the seal) and every
	 * other token of the user is active without failures, then audit appended when its event is set;
	 * *applied false and nothing written otherwise (store.c then decides on the rows read again) */
	int (*consume_proven)(void *be, const char *user, const ftm_code_proof_t *pr, const ftm_audit_row_t *audit,
			      bool *applied, char *err, size_t err_len);
	int (*audit_append)(void *be, const ftm_audit_row_t *row, char *err, size_t err_len);
	int (*audit_list)(void *be, const ftm_audit_filter_t *f, ftm_audit_cb cb, void *ctx, char *err, size_t err_len);
	int (*audit_prune)(void *be, int64_t before, unsigned long *removed, char *err, size_t err_len);
	/* optional (NULL: the database's own tools back it up): a consistent copy of the whole store, taken
	 * while it is in use, into dest, a file this call creates; *tokens the tokens in it */
	int (*backup)(void *be, const char *dest, unsigned long *tokens, char *err, size_t err_len);
	/* one switch per user ("" everyone); put also drops the switches expired before now */
	int (*debug_put)(void *be, const char *user, int64_t expires, int64_t now, char *err, size_t err_len);
	int (*debug_clear)(void *be, const char *user, char *err, size_t err_len);	/* NULL: all; 1 none */
	int (*debug_list)(void *be, int64_t now, ftm_debug_cb cb, void *ctx, char *err, size_t err_len);
	/* ---- pending pushes (ftm_store.h): the push engine across nodes ---- */
	/* purge rows expired before now - FTM_PUSH_RETAIN_ROW; 1 (nothing stored) when the user has an
	 * unexpired pending row, copied to *pending */
	int (*push_put)(void *be, const ftm_push_row_t *row, int64_t now, ftm_push_row_t *pending,
			char *err, size_t err_len);							/* 1 */
	int (*push_get)(void *be, const char *id, ftm_push_row_t *out, char *err, size_t err_len);	/* 1 */
	/* the row by id or by a capability hash (any of its columns), locked; decide; write a dirty
	 * verdict and reason; tell the watchers; commit */
	int (*push_decide)(void *be, ftm_push_key_t by, const char *key, ftm_push_decide_fn decide, void *ctx,
			   char *err, size_t err_len);							/* 1 */
	/* NULL when the backend has no notifications (the engine re-reads rows) */
	int (*push_watch)(void *be, ftm_push_watch_fn cb, void *ctx, char *err, size_t err_len);
	void (*push_unwatch)(void *be);
	/* Number-matching States, like the code-challenge ones, with the push they answer */
	int (*number_put)(void *be, const char *id, const char *tx, const char *user, const char *client,
			  int64_t expires, int64_t now, char *err, size_t err_len);
	int (*number_take)(void *be, const char *id, char tx[33], char *user, size_t user_len, char *client,
			   size_t client_len, int64_t *expires, char *err, size_t err_len);		/* 1 */
} ftm_store_backend_t;

/* For the store's own files (store_push.c): the backend and its handle. */
const ftm_store_backend_t *ftm_store_backend_of(ftm_store_t *st, void **be);

/* store.c, for the store's own files (store_push.c): the hex SHA-256 a State or a client identity is kept
 * under (never the value itself), and what a taken State is for the login answering it. */
int ftm_store_state_id(const char *value, char id[65]);
ftm_state_check_t ftm_store_state_check(const char *user, const char *client_id, const char *who,
					const char *from, int64_t now, int64_t expires);

extern const ftm_store_backend_t ftm_store_backend_sqlite;
/* ftm_store_process_init's SQLite part. */
void ftm_store_sqlite_process_init(void);
/* The SQLite store's directory is on a local file system (not NFS, SMB, a cluster file system...): 0,
 * or -1 with why; checked before anything (the key file included) is created there. */
int ftm_store_sqlite_local_fs(const char *path, char *err, size_t err_len);
#ifdef HAVE_LIBPQ
extern const ftm_store_backend_t ftm_store_backend_pg;	/* "postgresql://...": a libpq URI */
#endif

#endif

/* store_push: pending pushes and their number-matching States in the store, shared by every node. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ftm_util.h"
#include "store_backend.h"

#define SETERR(...) ftm_set_err(err, err_len, __VA_ARGS__)

/* The backend, or -1 with err when there is no store or it has no pending pushes. */
static const ftm_store_backend_t *ops_of(ftm_store_t *st, void **be, char *err, size_t err_len)
{
	const ftm_store_backend_t *ops = ftm_store_backend_of(st, be);

	if (ops == NULL || ops->push_put == NULL)
		SETERR("no token store for pending pushes");
	return ops != NULL && ops->push_put != NULL ? ops : NULL;
}

static bool is_hex(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[len] == '\0';
}

int ftm_store_push_put(ftm_store_t *st, const ftm_push_row_t *row, time_t now, ftm_push_row_t *pending,
		       char *err, size_t err_len)
{
	void *be;
	const ftm_store_backend_t *ops = ops_of(st, &be, err, err_len);

	if (ops == NULL)
		return -1;
	if (row == NULL || pending == NULL || !is_hex(row->id, 32) || row->verdict != FTM_PUSH_PENDING) {
		SETERR("bad pending push");
		return -1;
	}
	memset(pending, 0, sizeof(*pending));
	return ops->push_put(be, row, (int64_t)now, pending, err, err_len);
}

int ftm_store_push_get(ftm_store_t *st, const char *id, ftm_push_row_t *out, char *err, size_t err_len)
{
	void *be;
	const ftm_store_backend_t *ops = ops_of(st, &be, err, err_len);

	if (ops == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	if (id == NULL || !is_hex(id, 32))
		return 1;
	return ops->push_get(be, id, out, err, err_len);
}

int ftm_store_push_decide(ftm_store_t *st, ftm_push_key_t by, const char *key, ftm_push_decide_fn decide,
			  void *ctx, char *err, size_t err_len)
{
	void *be;
	const ftm_store_backend_t *ops = ops_of(st, &be, err, err_len);

	if (ops == NULL)
		return -1;
	if (key == NULL || !is_hex(key, by == FTM_PUSH_BY_ID ? 32 : 64))
		return 1;	/* not a key the store could hold: no need to ask the database */
	return ops->push_decide(be, by, key, decide, ctx, err, err_len);
}

int ftm_store_push_watch(ftm_store_t *st, ftm_push_watch_fn cb, void *ctx, char *err, size_t err_len)
{
	void *be;
	const ftm_store_backend_t *ops = ops_of(st, &be, err, err_len);

	if (ops == NULL)
		return -1;
	if (ops->push_watch == NULL)
		return 1;
	return ops->push_watch(be, cb, ctx, err, err_len);
}

void ftm_store_push_unwatch(ftm_store_t *st)
{
	void *be;
	const ftm_store_backend_t *ops = ftm_store_backend_of(st, &be);

	if (ops != NULL && ops->push_unwatch != NULL)
		ops->push_unwatch(be);
}

int ftm_store_number_issue(ftm_store_t *st, const char *user, const char *client, const char *tx, time_t now,
			   unsigned ttl, char state[FTM_STATE_HEX + 1], char *err, size_t err_len)
{
	unsigned char r[FTM_STATE_HEX / 2];
	char id[65], client_id[65];
	void *be;
	const ftm_store_backend_t *ops = ops_of(st, &be, err, err_len);
	int rc;

	if (ops == NULL)
		return -1;
	if (user == NULL || tx == NULL || !is_hex(tx, 32)) {
		SETERR("no user or push for a number challenge");
		return -1;
	}
	if (RAND_bytes(r, sizeof(r)) != 1) {
		SETERR("CSPRNG failure");
		return -1;
	}
	ftm_hex_encode(r, sizeof(r), state);
	ftm_memzero(r, sizeof(r));
	if (ftm_store_state_id(state, id) != 0 || ftm_store_state_id(client != NULL ? client : "", client_id) != 0) {
		SETERR("SHA-256 failure");
		ftm_memzero(state, FTM_STATE_HEX + 1);
		return -1;
	}
	rc = ops->number_put(be, id, tx, user, client_id, (int64_t)now + ttl, (int64_t)now, err, err_len);
	if (rc != 0)
		ftm_memzero(state, FTM_STATE_HEX + 1);
	return rc;
}

int ftm_store_number_take(ftm_store_t *st, const char *user, const char *client, const char *state, time_t now,
			  ftm_state_check_t *check, char tx[33], char *err, size_t err_len)
{
	char id[65], client_id[65], who[FTM_USER_MAX], from[80];
	int64_t expires = 0;
	void *be;
	const ftm_store_backend_t *ops;
	int rc;

	*check = FTM_STATE_UNKNOWN;
	tx[0] = '\0';
	if ((ops = ops_of(st, &be, err, err_len)) == NULL)
		return -1;
	if (user == NULL || state == NULL || !is_hex(state, FTM_STATE_HEX))
		return 0;	/* not one of ours: no need to ask the database */
	if (ftm_store_state_id(state, id) != 0 || ftm_store_state_id(client != NULL ? client : "", client_id) != 0) {
		SETERR("SHA-256 failure");
		return -1;
	}
	rc = ops->number_take(be, id, tx, who, sizeof(who), from, sizeof(from), &expires, err, err_len);
	if (rc < 0)
		return -1;
	if (rc == 1)
		return 0;
	*check = ftm_store_state_check(user, client_id, who, from, (int64_t)now, expires);
	return 0;
}

/* states: a table of challenge States; a State is a bearer secret, so it is compared in full, in
 * constant time, bound to the user and client it was issued to, and taken on first use. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ftm_otp.h"
#include "ftm_states.h"
#include "ftm_store.h"
#include "ftm_util.h"

#define STATES_MAX	4096	/* entries kept at once; the one closest to expiry makes room */
#define STATES_PER_USER		FTM_STATES_PER_USER
#define STATES_PER_CLIENT	FTM_STATES_PER_CLIENT

typedef struct {
	char		state[FTM_STATE_HEX + 1];
	char		user[FTM_USER_MAX];
	unsigned char	client_hash[32];	/* SHA-256 of the whole client identity: any length binds in full */
	time_t		expires;
	unsigned char	payload[FTM_STATE_PAYLOAD_MAX];
	size_t		payload_len;
} entry_t;

struct ftm_states {
	pthread_mutex_t		lock;	/* guards the entries */
	entry_t			*entries;
	size_t			n, cap;
	ftm_states_drop_fn	drop;
};

ftm_states_t *ftm_states_new(ftm_states_drop_fn drop)
{
	ftm_states_t *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	if (pthread_mutex_init(&s->lock, NULL) != 0) {
		free(s);
		return NULL;
	}
	s->drop = drop;
	return s;
}

static void drop_entry(ftm_states_t *s, entry_t *e)
{
	if (s->drop != NULL && e->payload_len > 0)
		s->drop(e->payload);
}

void ftm_states_free(ftm_states_t *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		drop_entry(s, &s->entries[i]);
	if (s->entries != NULL) {
		ftm_memzero(s->entries, s->cap * sizeof(entry_t));
		free(s->entries);
	}
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Under the lock: forget entry i (its payload is dropped unless keep). */
static void remove_at(ftm_states_t *s, size_t i, bool keep)
{
	if (!keep)
		drop_entry(s, &s->entries[i]);
	s->entries[i] = s->entries[s->n - 1];
	ftm_memzero(&s->entries[s->n - 1], sizeof(entry_t));
	s->n--;
}

/* Under the lock: drop the expired entries. */
static void purge_expired(ftm_states_t *s, time_t now)
{
	for (size_t i = s->n; i-- > 0;)
		if (s->entries[i].expires <= now)
			remove_at(s, i, false);
}

/* Under the lock: the oldest entry (closest to expiry) of e's user (by_user) or of e's client; false
 * when that user or client holds fewer than max. */
static bool oldest_of(const ftm_states_t *s, const entry_t *e, bool by_user, size_t max, size_t *oldest)
{
	size_t count = 0;

	for (size_t i = 0; i < s->n; i++) {
		const entry_t *x = &s->entries[i];
		bool same = by_user ? strcmp(x->user, e->user) == 0
				    : memcmp(x->client_hash, e->client_hash, sizeof(x->client_hash)) == 0;

		if (!same)
			continue;
		if (count == 0 || x->expires < s->entries[*oldest].expires)
			*oldest = i;
		count++;
	}
	return count >= max;
}

/* Under the lock: room for one more entry, e's; -1 when out of memory. One user (or one client) that
 * asks for challenges in a loop only ever pushes out its own: the table is full for everyone else
 * only once STATES_MAX / STATES_PER_USER users with a valid password do it together. */
static int make_room(ftm_states_t *s, const entry_t *e, bool *evicted)
{
	entry_t *grown;
	size_t cap, oldest = 0;

	if (oldest_of(s, e, true, STATES_PER_USER, &oldest) || oldest_of(s, e, false, STATES_PER_CLIENT, &oldest)) {
		remove_at(s, oldest, false);
		*evicted = true;
	}
	if (s->n == STATES_MAX) {
		oldest = 0;
		for (size_t i = 1; i < s->n; i++)
			if (s->entries[i].expires < s->entries[oldest].expires)
				oldest = i;
		remove_at(s, oldest, false);
		*evicted = true;
	}
	if (s->n < s->cap)
		return 0;
	cap = s->cap ? s->cap * 2 : 16;
	if (cap > STATES_MAX)
		cap = STATES_MAX;
	grown = calloc(cap, sizeof(*grown));
	if (grown == NULL)
		return -1;
	if (s->entries != NULL) {
		memcpy(grown, s->entries, s->n * sizeof(*grown));
		ftm_memzero(s->entries, s->cap * sizeof(*grown));
		free(s->entries);
	}
	s->entries = grown;
	s->cap = cap;
	return 0;
}

/* The client a State is bound to, hashed whole, so that two values sharing a long prefix (a
 * Calling-Station-Id of 121 bytes and its neighbour) never share a State. 0, or -1 without a digest. */
static int client_hash(const char *client, unsigned char out[32])
{
	unsigned int len = 0;

	return EVP_Digest(client, strlen(client), out, &len, EVP_sha256(), NULL) == 1 && len == 32 ? 0 : -1;
}

int ftm_states_issue(ftm_states_t *s, const char *user, const char *client, time_t now, unsigned ttl,
		     const void *payload, size_t payload_len, char state[FTM_STATE_HEX + 1], bool *evicted,
		     char *why, size_t why_len)
{
	unsigned char raw[FTM_STATE_HEX / 2];
	entry_t e;
	int rc;

	*evicted = false;
	client = client != NULL ? client : "";
	if (strlen(user) >= sizeof(e.user) || payload_len > sizeof(e.payload)) {
		ftm_set_err(why, why_len, "user name too long for a challenge");
		return -1;
	}
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		ftm_set_err(why, why_len, "no randomness for a challenge state");
		return -1;
	}
	memset(&e, 0, sizeof(e));
	ftm_hex_encode(raw, sizeof(raw), e.state);
	ftm_memzero(raw, sizeof(raw));
	ftm_copy(e.user, sizeof(e.user), user);
	if (client_hash(client, e.client_hash) != 0) {
		ftm_set_err(why, why_len, "no digest for a challenge's client");
		return -1;
	}
	e.expires = now + (time_t)ttl;
	if (payload_len > 0)
		memcpy(e.payload, payload, payload_len);
	e.payload_len = payload_len;

	pthread_mutex_lock(&s->lock);
	purge_expired(s, now);
	rc = make_room(s, &e, evicted);
	if (rc == 0)
		s->entries[s->n++] = e;
	pthread_mutex_unlock(&s->lock);
	if (rc != 0) {
		ftm_memzero(&e, sizeof(e));
		ftm_set_err(why, why_len, "out of memory for a challenge");
		return -1;
	}
	memcpy(state, e.state, sizeof(e.state));
	ftm_memzero(&e, sizeof(e));
	return 0;
}

static bool is_state(const char *s)
{
	size_t i;

	for (i = 0; i < FTM_STATE_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[i] == '\0';
}

ftm_state_check_t ftm_states_take(ftm_states_t *s, const char *user, const char *client, const char *state,
				  time_t now, void *payload, size_t payload_len)
{
	ftm_state_check_t r = FTM_STATE_UNKNOWN;
	size_t found = 0;
	bool hit = false, have_hash;
	unsigned char h[32];

	if (state == NULL || !is_state(state))
		return FTM_STATE_UNKNOWN;
	client = client != NULL ? client : "";
	have_hash = client_hash(client, h) == 0;
	pthread_mutex_lock(&s->lock);
	/* Every entry is compared in full: a State is a bearer secret. */
	for (size_t i = 0; i < s->n; i++) {
		bool eq = ftm_ct_equal(s->entries[i].state, state, FTM_STATE_HEX);

		found = (eq && !hit) ? i : found;
		hit |= eq;
	}
	if (hit) {
		entry_t *e = &s->entries[found];

		if (e->expires <= now)
			r = FTM_STATE_EXPIRED;
		else if (strcmp(e->user, user) != 0 || !have_hash || CRYPTO_memcmp(e->client_hash, h, sizeof(h)) != 0)
			r = FTM_STATE_MISMATCH;
		else
			r = FTM_STATE_OK;
		if (payload != NULL && payload_len > 0)
			memcpy(payload, e->payload, payload_len < e->payload_len ? payload_len : e->payload_len);
		remove_at(s, found, true);
	}
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* fuzz_push: what the push harnesses share: an engine with one pending push whose secrets are known
 * to the harness, and placeholders in the input that stand for them, so that the fuzzer reaches the
 * deciding paths and the harness can check that only an input holding a real secret decides. */
#ifndef FUZZ_PUSH_H
#define FUZZ_PUSH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftm_push.h"
#include "push_channel.h"

/* fuzz_mhd_stub.c: one request through the listener's libmicrohttpd callbacks; the HTTP status. */
unsigned fuzz_mhd_request(const char *method, const char *url, const char *content_length, const char *body,
			  size_t body_len, const uint8_t *chunks, size_t nchunks, char *reply, size_t reply_len);

/* Placeholders, and the bit each sets in fuzz_subst's *used. */
#define FUZZ_CAP0	"@C0@"	/* capability of button 0 (Approve, or the first number) */
#define FUZZ_CAP1	"@C1@"
#define FUZZ_CAP2	"@C2@"
#define FUZZ_TX		"@TX@"	/* the transaction id (not a secret: no bit) */
#define FUZZ_PROOF_A	"@PA@"	/* gateway proof of approve, no number */
#define FUZZ_PROOF_D	"@PD@"	/* gateway proof of deny */
#define FUZZ_PROOF_N	"@PN@"	/* gateway proof of approve with the right number */
#define FUZZ_NUMBER	"@N@"	/* the number to match (shown on the phone) */
#define FUZZ_STATE	"@S@"	/* number matching: the login's State */
#define FUZZ_STATE_OTHER "@SO@"	/* the State of the push before this one: another user's login */
enum { FUZZ_USED_CAP = 1, FUZZ_USED_PROOF = 2, FUZZ_USED_NUMBER = 4, FUZZ_USED_STATE = 8 };

typedef struct fuzz_push {
	ftm_push_t	*p;
	ftm_push_tx_t	*tx;
	char		caps[3][FTM_PUSH_CAP_LEN + 1];
	char		tx_id[FTM_PUSH_ID_LEN + 1];
	char		number[16], state[FTM_PUSH_ID_LEN + 1];
	char		other_state[FTM_PUSH_ID_LEN + 1];	/* the previous push's State ("" at first) */
	char		user[32];		/* the login the push is for */
	unsigned long	gen;			/* its engine's generation (fuzz_engine) */
	char		proof_a[65], proof_d[65], proof_n[65];
} fuzz_push_t;

static const uint8_t fuzz_seed[20] = "12345678901234567890";
static ftm_config_t fuzz_cfg;

static inline int fuzz_sender(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *m,
		       char *reason, size_t reason_len)
{
	fuzz_push_t *f = ctx;

	(void)cfg;
	(void)tok;
	(void)reason;
	(void)reason_len;
	for (unsigned i = 0; i < m->ncaps && i < 3; i++)
		snprintf(f->caps[i], sizeof(f->caps[i]), "%s", m->caps[i]);
	snprintf(f->tx_id, sizeof(f->tx_id), "%s", m->tx);
	snprintf(f->number, sizeof(f->number), "%s", m->number ? m->number : "");
	return 0;
}

/* Any readable file will do: the stub never parses the certificate or the key. */
static inline void fuzz_pem_files(char *cert, char *key, size_t len)
{
	static char dir[64];

	if (dir[0] == '\0') {
		FILE *f;

		snprintf(dir, sizeof(dir), "/tmp/ftm-fuzz-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(cert, len, "%s/cert.pem", dir);
		if ((f = fopen(cert, "w")) == NULL)
			abort();
		fputs("-----BEGIN CERTIFICATE-----\nstub\n-----END CERTIFICATE-----\n", f);
		fclose(f);
		snprintf(key, len, "%s/key.pem", dir);
		if ((f = fopen(key, "w")) == NULL)
			abort();
		fputs("-----BEGIN PRIVATE KEY-----\nstub\n-----END PRIVATE KEY-----\n", f);
		fclose(f);
	}
	snprintf(cert, len, "%s/cert.pem", dir);
	snprintf(key, len, "%s/key.pem", dir);
}

#define FUZZ_ENGINE_RUNS	64	/* pushes per engine before a fresh one: few transactions to scan */

/* The engine for (number_matching, listener), made afresh every FUZZ_ENGINE_RUNS pushes; *gen is its
 * generation, a number no other engine had (an address could be reused). */
static inline ftm_push_t *fuzz_engine(bool number_matching, bool listener, unsigned long *gen)
{
	static ftm_push_t *engines[2][2];
	static unsigned runs[2][2];
	static unsigned long gens[2][2], made;
	ftm_push_t **p = &engines[number_matching][listener];
	char err[256];

	if (*p && ++runs[number_matching][listener] < FUZZ_ENGINE_RUNS) {
		*gen = gens[number_matching][listener];
		return *p;
	}
	ftm_push_free(*p);
	if (listener) {		/* the stub serves one listener: the other engine's goes first */
		ftm_push_free(engines[!number_matching][1]);
		engines[!number_matching][1] = NULL;
	}
	runs[number_matching][listener] = 0;
	memset(&fuzz_cfg, 0, sizeof(fuzz_cfg));
	fuzz_cfg.push.status = true;
	fuzz_cfg.push.number_matching = number_matching;
	fuzz_cfg.push.timeout = 60;
	fuzz_cfg.push.server_port = 4433;
	snprintf(fuzz_cfg.push.server, sizeof(fuzz_cfg.push.server), "127.0.0.1");
	fuzz_pem_files(fuzz_cfg.push.server_cert, fuzz_cfg.push.server_key, sizeof(fuzz_cfg.push.server_cert));
	*p = ftm_push_new(&fuzz_cfg, NULL, listener ? 0 : FTM_PUSH_NO_LISTENER, err, sizeof(err));
	if (*p == NULL) {
		fprintf(stderr, "fuzz: engine: %s\n", err);
		abort();
	}
	*gen = gens[number_matching][listener] = ++made;
	return *p;
}

/* What named the pushes before this one (their transaction ids, capabilities and States) and the engine
 * that holds them: a released push stays pending in its engine until its timeout, and the fuzzer learns
 * such values from the comparisons it watches and copies them into later inputs. An answer to one of
 * those pushes, in the same engine, is a right answer to another push, not to this one. */
#define FUZZ_EARLIER	(2 * FUZZ_ENGINE_RUNS)
enum { FUZZ_E_TX, FUZZ_E_CAP0, FUZZ_E_STATE = FUZZ_E_CAP0 + 3, FUZZ_E_N };
static struct {
	unsigned long	gen;
	char		v[FUZZ_E_N][FTM_PUSH_ID_LEN + 1];
} fuzz_earlier[FUZZ_EARLIER];
static unsigned fuzz_earlier_next;

/* The State of the push before this one ("" before the first): the last one the ring holds. */
static inline void fuzz_previous_state(char *out, size_t len)
{
	snprintf(out, len, "%s", fuzz_earlier_next ? fuzz_earlier[(fuzz_earlier_next - 1) % FUZZ_EARLIER].v[FUZZ_E_STATE] : "");
}

/* One new pending push to a gateway token, for a user of its own (at most one push per user). */
static inline void fuzz_push_begin(fuzz_push_t *f, bool number_matching, bool listener)
{
	static unsigned serial;
	char reason[256];
	ftm_login_t login = { f->user, "192.0.2.1", "vpn", "host" };
	ftm_token_t tok;
	bool joined = false;
	uint8_t k_cb[32];

	memset(f, 0, sizeof(*f));
	snprintf(f->user, sizeof(f->user), "u%u", ++serial);
	f->p = fuzz_engine(number_matching, listener, &f->gen);
	ftm_push_set_sender(f->p, fuzz_sender, f);
	memset(&tok, 0, sizeof(tok));
	snprintf(tok.serial, sizeof(tok.serial), "FTKMOBFUZZ");
	snprintf(tok.push, sizeof(tok.push), "gateway:android/reg");
	memcpy(tok.seed, fuzz_seed, sizeof(fuzz_seed));
	tok.seed_len = sizeof(fuzz_seed);
	f->tx = ftm_push_start(f->p, &login, &tok, time(NULL), &joined, reason, sizeof(reason));
	if (f->tx == NULL || joined) {
		fprintf(stderr, "fuzz: no new push: %s\n", reason);
		abort();
	}
	snprintf(f->state, sizeof(f->state), "%s", ftm_push_tx_state(f->tx));
	fuzz_previous_state(f->other_state, sizeof(f->other_state));
	if (ftm_push_derive_keys(fuzz_seed, sizeof(fuzz_seed), NULL, NULL, k_cb) != 0 ||
	    ftm_push_callback_proof(k_cb, f->tx_id, "approve", "", f->proof_a) != 0 ||
	    ftm_push_callback_proof(k_cb, f->tx_id, "deny", "", f->proof_d) != 0 ||
	    ftm_push_callback_proof(k_cb, f->tx_id, "approve", f->number, f->proof_n) != 0)
		abort();
}

/* Decided or not (waits 1 ms when not). */
static inline ftm_push_verdict_t fuzz_push_verdict(fuzz_push_t *f)
{
	return ftm_push_wait(f->p, f->tx, 1);
}


static inline void fuzz_push_end(fuzz_push_t *f)
{
	unsigned slot = fuzz_earlier_next++ % FUZZ_EARLIER;

	fuzz_earlier[slot].gen = f->gen;
	snprintf(fuzz_earlier[slot].v[FUZZ_E_TX], sizeof(fuzz_earlier[slot].v[0]), "%s", f->tx_id);
	for (unsigned i = 0; i < 3; i++)
		snprintf(fuzz_earlier[slot].v[FUZZ_E_CAP0 + i], sizeof(fuzz_earlier[slot].v[0]), "%s", f->caps[i]);
	snprintf(fuzz_earlier[slot].v[FUZZ_E_STATE], sizeof(fuzz_earlier[slot].v[0]), "%s", f->state);
	ftm_push_release(f->p, f->tx);
}

/* Whether buf (len bytes, NULs allowed) holds the transaction id or a capability of an earlier push of
 * f's engine. */
static inline bool fuzz_names_earlier(const fuzz_push_t *f, const char *buf, size_t len)
{
	for (unsigned i = 0; i < FUZZ_EARLIER; i++) {
		if (fuzz_earlier[i].gen != f->gen)
			continue;
		for (unsigned k = FUZZ_E_TX; k < FUZZ_E_STATE; k++) {
			const char *v = fuzz_earlier[i].v[k];

			if (v[0] && memmem(buf, len, v, strlen(v)))
				return true;
		}
	}
	return false;
}

/* Whether state is exactly the State of an earlier push of f's engine. */
static inline bool fuzz_is_earlier_state(const fuzz_push_t *f, const char *state)
{
	for (unsigned i = 0; i < FUZZ_EARLIER; i++)
		if (fuzz_earlier[i].gen == f->gen && fuzz_earlier[i].v[FUZZ_E_STATE][0] &&
		    strcmp(fuzz_earlier[i].v[FUZZ_E_STATE], state) == 0)
			return true;
	return false;
}

/* in with the placeholders replaced by the secrets; malloc'd and NUL-terminated, length in *out_len
 * (a NUL inside the input stays: the callers see the same bytes a peer could send). */
static inline char *fuzz_subst(const fuzz_push_t *f, const uint8_t *in, size_t len, size_t *out_len, unsigned *used)
{
	const struct { const char *ph, *val; unsigned bit; } map[] = {
		{ FUZZ_CAP0, f->caps[0], FUZZ_USED_CAP }, { FUZZ_CAP1, f->caps[1], FUZZ_USED_CAP },
		{ FUZZ_CAP2, f->caps[2], FUZZ_USED_CAP }, { FUZZ_TX, f->tx_id, 0 },
		{ FUZZ_PROOF_A, f->proof_a, FUZZ_USED_PROOF }, { FUZZ_PROOF_D, f->proof_d, FUZZ_USED_PROOF },
		{ FUZZ_PROOF_N, f->proof_n, FUZZ_USED_PROOF }, { FUZZ_NUMBER, f->number, FUZZ_USED_NUMBER },
		{ FUZZ_STATE, f->state, FUZZ_USED_STATE }, { FUZZ_STATE_OTHER, f->other_state, 0 },
	};
	char *out = malloc(len * 16 + 1);	/* the longest value (64) over the shortest placeholder (3) */
	size_t o = 0;

	if (out == NULL)
		abort();
	*used = 0;
	for (size_t i = 0; i < len;) {
		size_t k;

		for (k = 0; k < sizeof(map) / sizeof(map[0]); k++) {
			size_t pl = strlen(map[k].ph);

			if (len - i >= pl && memcmp(in + i, map[k].ph, pl) == 0) {
				size_t vl = strlen(map[k].val);

				memcpy(out + o, map[k].val, vl);
				o += vl;
				i += pl;
				if (vl)
					*used |= map[k].bit;
				break;
			}
		}
		if (k == sizeof(map) / sizeof(map[0]))
			out[o++] = (char)in[i++];
	}
	out[o] = '\0';
	*out_len = o;
	return out;
}

#endif

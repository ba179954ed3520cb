/* push_channel: what a channel delivers, the channels (libcurl) and the envelope crypto; internal to the
 * engine (and its unit tests, which replace the sender). */
#ifndef FTM_PUSH_CHANNEL_H
#define FTM_PUSH_CHANNEL_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include "ftm_config.h"
#include "ftm_push.h"
#include "ftm_store.h"

/* What a channel is asked to deliver (filled by the engine). */
typedef struct ftm_push_msg {
	const char	*tx;		/* transaction id (hex) */
	const char	*user, *client, *nas, *host, *serial;
	time_t		time, expires;
	const char	*text;		/* the message shown on the phone */
	const char	*number;	/* "" without number matching */
	const char	*numbers[3];	/* number matching: the three numbers, in the order shown */
	const char	*caps[3];	/* ntfy: capability of each button (Approve, Deny / numbers) */
	const char	*labels[3];	/* ntfy: button labels */
	unsigned	ncaps;
	const char	*cap_url_base;	/* https://HOST:PORT/ftm/v1/cb/ */
	const char	*gw_callback;	/* https://HOST:PORT/ftm/v1/gw */
	const char	*sender;
} ftm_push_msg_t;

/* A channel send: 0 when the channel accepted it, -1 with a reason (a verdict: failed). The
 * default sends through libcurl (push_channel.c); tests replace it with ftm_push_set_sender. */
typedef int (*ftm_push_send_fn)(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok,
				const ftm_push_msg_t *msg, char *reason, size_t reason_len);

/* Test seam: replace the channel send (NULL: the real one). */
void ftm_push_set_sender(ftm_push_t *p, ftm_push_send_fn fn, void *ctx);

/* ---- channels and envelope crypto (push_channel.c) ---- */
int ftm_push_channel_send(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *msg,
			  char *reason, size_t reason_len);
/* HKDF-SHA256 keys of docs/protocol.md section 3 (k_enc, k_mac, k_cb). 0 or -1. */
int ftm_push_derive_keys(const uint8_t *seed, size_t seed_len, uint8_t k_enc[32], uint8_t k_mac[32],
			 uint8_t k_cb[32]);
/* The envelope's inner "message" string for plaintext (iv NULL: CSPRNG). malloc'd, NULL on error. */
char *ftm_push_seal(const uint8_t *seed, size_t seed_len, const char *serial, const uint8_t *iv,
		    const char *plaintext, size_t plaintext_len);
/* The whole envelope JSON. malloc'd. */
char *ftm_push_envelope(const char *sender, const char *registration_id, const char *platform,
			const char *message);
/* The plaintext JSON of a push message. malloc'd. */
char *ftm_push_plaintext(const ftm_push_msg_t *msg);
/* ntfy's JSON publish body for msg to topic. malloc'd. */
char *ftm_push_ntfy_body(const ftm_push_msg_t *msg, const char *topic);
/* hex(HMAC-SHA256(k_cb, tx "\n" verdict "\n" number)) into hex[65]. 0 or -1. */
int ftm_push_callback_proof(const uint8_t k_cb[32], const char *tx, const char *verdict, const char *number,
			    char hex[65]);

#endif

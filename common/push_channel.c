/* push_channel: the ntfy publish and the gateway envelope (docs/protocol.md sections 2-3) over libcurl. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <json-c/json.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "ftm_push.h"
#include "push_channel.h"

#define LABEL_ENC "ftmpush v1 envelope encryption"
#define LABEL_MAC "ftmpush v1 envelope mac"
#define LABEL_CB  "ftmpush v1 callback proof"

/* HKDF, fetched once per process (three derivations per push and per callback otherwise look it up
 * three times). */
static EVP_KDF *hkdf_impl;
static pthread_once_t hkdf_impl_once = PTHREAD_ONCE_INIT;

static void hkdf_impl_fetch(void)
{
	hkdf_impl = EVP_KDF_fetch(NULL, "HKDF", NULL);
}

static int hkdf(const uint8_t *seed, size_t seed_len, const char *label, uint8_t out[32])
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[4];
	int rc = -1;

	pthread_once(&hkdf_impl_once, hkdf_impl_fetch);
	if ((kdf = hkdf_impl) == NULL)
		return -1;
	kctx = EVP_KDF_CTX_new(kdf);
	if (kctx == NULL)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)seed, seed_len);
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label, strlen(label));
	params[3] = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, 32, params) == 1)
		rc = 0;
out:
	EVP_KDF_CTX_free(kctx);
	return rc;
}

int ftm_push_derive_keys(const uint8_t *seed, size_t seed_len, uint8_t k_enc[32], uint8_t k_mac[32],
			 uint8_t k_cb[32])
{
	if (seed == NULL || seed_len == 0)
		return -1;
	if ((k_enc && hkdf(seed, seed_len, LABEL_ENC, k_enc) != 0) ||
	    (k_mac && hkdf(seed, seed_len, LABEL_MAC, k_mac) != 0) ||
	    (k_cb && hkdf(seed, seed_len, LABEL_CB, k_cb) != 0))
		return -1;
	return 0;
}

int ftm_push_callback_proof(const uint8_t k_cb[32], const char *tx, const char *verdict, const char *number,
			    char hex[65])
{
	uint8_t mac[32];
	unsigned mac_len = sizeof(mac);
	char *msg;
	size_t len = strlen(tx) + strlen(verdict) + strlen(number) + 3;
	int ok;

	msg = malloc(len);
	if (msg == NULL)
		return -1;
	snprintf(msg, len, "%s\n%s\n%s", tx, verdict, number);
	ok = HMAC(EVP_sha256(), k_cb, 32, (const uint8_t *)msg, strlen(msg), mac, &mac_len) != NULL;
	free(msg);
	if (!ok)
		return -1;
	for (unsigned i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	return 0;
}

static char *b64(const uint8_t *in, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

static char *json_plain(struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	return s ? strdup(s) : NULL;
}

char *ftm_push_seal(const uint8_t *seed, size_t seed_len, const char *serial, const uint8_t *iv_in,
		    const char *plaintext, size_t plaintext_len)
{
	uint8_t k_enc[32], k_mac[32], iv[16], mac[32];
	unsigned mac_len = sizeof(mac);
	uint8_t *ct = NULL, *ivct = NULL;
	int len1 = 0, len2 = 0;
	EVP_CIPHER_CTX *c = NULL;
	char *s_ct = NULL, *s_mac = NULL, *s_iv = NULL, *res = NULL;
	struct json_object *o = NULL;

	if (ftm_push_derive_keys(seed, seed_len, k_enc, k_mac, NULL) != 0)
		goto out;
	if (iv_in)
		memcpy(iv, iv_in, sizeof(iv));
	else if (RAND_bytes(iv, sizeof(iv)) != 1)
		goto out;
	ct = malloc(plaintext_len + 16);
	ivct = malloc(plaintext_len + 32);
	c = EVP_CIPHER_CTX_new();
	if (ct == NULL || ivct == NULL || c == NULL ||
	    EVP_EncryptInit_ex(c, EVP_aes_256_cbc(), NULL, k_enc, iv) != 1 ||
	    EVP_EncryptUpdate(c, ct, &len1, (const uint8_t *)plaintext, (int)plaintext_len) != 1 ||
	    EVP_EncryptFinal_ex(c, ct + len1, &len2) != 1)
		goto out;
	len1 += len2;
	memcpy(ivct, iv, 16);
	memcpy(ivct + 16, ct, (size_t)len1);
	if (HMAC(EVP_sha256(), k_mac, 32, ivct, 16 + (size_t)len1, mac, &mac_len) == NULL)
		goto out;
	s_ct = b64(ct, (size_t)len1);
	s_mac = b64(mac, 32);
	s_iv = b64(iv, 16);
	if (!s_ct || !s_mac || !s_iv)
		goto out;
	o = json_object_new_object();
	json_object_object_add(o, "ciphertext", json_object_new_string(s_ct));
	json_object_object_add(o, "sn", json_object_new_string(serial));
	json_object_object_add(o, "hmac", json_object_new_string(s_mac));
	json_object_object_add(o, "iv", json_object_new_string(s_iv));
	res = json_plain(o);
out:
	OPENSSL_cleanse(k_enc, sizeof(k_enc));
	OPENSSL_cleanse(k_mac, sizeof(k_mac));
	EVP_CIPHER_CTX_free(c);
	free(ct);
	free(ivct);
	free(s_ct);
	free(s_mac);
	free(s_iv);
	json_object_put(o);
	return res;
}

char *ftm_push_envelope(const char *sender, const char *registration_id, const char *platform,
			const char *message)
{
	struct json_object *o = json_object_new_object();
	char *res;

	json_object_object_add(o, "sender", json_object_new_string(sender));
	json_object_object_add(o, "registration_id", json_object_new_string(registration_id));
	json_object_object_add(o, "app", json_object_new_string("FTM"));
	json_object_object_add(o, "platform", json_object_new_string(platform));
	json_object_object_add(o, "message", json_object_new_string(message));
	res = json_plain(o);
	json_object_put(o);
	return res;
}

char *ftm_push_plaintext(const ftm_push_msg_t *m)
{
	struct json_object *o = json_object_new_object(), *nums = json_object_new_array();
	char cb[FTM_PATH_MAX + 64];
	char *res;

	json_object_object_add(o, "v", json_object_new_int(1));
	json_object_object_add(o, "tx", json_object_new_string(m->tx));
	json_object_object_add(o, "sn", json_object_new_string(m->serial));
	json_object_object_add(o, "user", json_object_new_string(m->user));
	json_object_object_add(o, "client", json_object_new_string(m->client));
	json_object_object_add(o, "nas", json_object_new_string(m->nas));
	json_object_object_add(o, "host", json_object_new_string(m->host));
	json_object_object_add(o, "time", json_object_new_int64(m->time));
	json_object_object_add(o, "expires", json_object_new_int64(m->expires));
	snprintf(cb, sizeof(cb), "%s", m->gw_callback);
	json_object_object_add(o, "callback", json_object_new_string(cb));
	json_object_object_add(o, "number", json_object_new_string(m->number));
	if (m->number[0])
		for (unsigned i = 0; i < 3; i++)
			json_object_array_add(nums, json_object_new_string(m->numbers[i]));
	json_object_object_add(o, "numbers", nums);
	json_object_object_add(o, "message", json_object_new_string(m->text));
	res = json_plain(o);
	json_object_put(o);
	return res;
}

char *ftm_push_ntfy_body(const ftm_push_msg_t *m, const char *topic)
{
	struct json_object *o = json_object_new_object(), *tags = json_object_new_array(),
			   *acts = json_object_new_array();
	char url[FTM_PATH_MAX + 64];
	char *res;

	json_object_object_add(o, "topic", json_object_new_string(topic));
	json_object_object_add(o, "title", json_object_new_string("Login request"));
	json_object_object_add(o, "message", json_object_new_string(m->text));
	json_object_object_add(o, "priority", json_object_new_int(4));
	json_object_array_add(tags, json_object_new_string("lock"));
	json_object_object_add(o, "tags", tags);
	for (unsigned i = 0; i < m->ncaps; i++) {
		struct json_object *a = json_object_new_object();

		snprintf(url, sizeof(url), "%s%s", m->cap_url_base, m->caps[i]);
		json_object_object_add(a, "action", json_object_new_string("http"));
		json_object_object_add(a, "label", json_object_new_string(m->labels[i]));
		json_object_object_add(a, "url", json_object_new_string(url));
		json_object_object_add(a, "method", json_object_new_string("POST"));
		json_object_object_add(a, "clear", json_object_new_boolean(1));
		json_object_array_add(acts, a);
	}
	json_object_object_add(o, "actions", acts);
	res = json_plain(o);
	json_object_put(o);
	return res;
}

/* Connections, TLS sessions and DNS answers shared by every push of the process: a new TLS handshake
 * per push capped sending at a few hundred a second, and 2000 logins at once ran into the connect
 * timeout. libcurl reuses a connection only for the same host, port, proxy and TLS settings. */
static CURLSH *push_share;
static pthread_mutex_t push_share_lock[CURL_LOCK_DATA_LAST];
static pthread_once_t push_share_once = PTHREAD_ONCE_INIT;

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
	(void)h;
	(void)access;
	(void)ctx;
	pthread_mutex_lock(&push_share_lock[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
	(void)h;
	(void)ctx;
	pthread_mutex_unlock(&push_share_lock[data]);
}

static void share_create(void)
{
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&push_share_lock[i], NULL);
	push_share = curl_share_init();
	if (push_share == NULL)
		return;
	if (curl_share_setopt(push_share, CURLSHOPT_LOCKFUNC, share_lock) != CURLSHE_OK ||
	    curl_share_setopt(push_share, CURLSHOPT_UNLOCKFUNC, share_unlock) != CURLSHE_OK) {
		curl_share_cleanup(push_share);
		push_share = NULL;
		return;
	}
	/* each on its own: a libcurl that cannot share one still shares the others */
	curl_share_setopt(push_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
	curl_share_setopt(push_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(push_share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
}

/* At most FTM_PUSH_SEND_PARALLEL sends at once. An HTTP/1.1 connection carries one request at a time,
 * so 1000 logins pushing at once opened 1000 TLS connections to one server: most ran into the
 * connect timeout (the server's accept queue, its handshakes) and fell back to a code. A few
 * connections kept busy and reused send them all, in order, without a handshake each. */
static pthread_mutex_t send_slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t send_slot_freed;
static pthread_once_t send_slot_once = PTHREAD_ONCE_INIT;
static unsigned send_slots_busy;

static void send_slot_init(void)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&send_slot_freed, &ca);
	pthread_condattr_destroy(&ca);
}

/* 0 with a slot taken, -1 when none came free within FTM_PUSH_SEND_QUEUE seconds. */
static int send_slot_take(void)
{
	struct timespec until;
	int rc = 0;

	pthread_once(&send_slot_once, send_slot_init);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += FTM_PUSH_SEND_QUEUE;
	pthread_mutex_lock(&send_slot_mu);
	while (send_slots_busy >= FTM_PUSH_SEND_PARALLEL && rc == 0)
		rc = pthread_cond_timedwait(&send_slot_freed, &send_slot_mu, &until);
	if (send_slots_busy < FTM_PUSH_SEND_PARALLEL) {
		send_slots_busy++;
		rc = 0;
	} else {
		rc = -1;
	}
	pthread_mutex_unlock(&send_slot_mu);
	return rc;
}

static void send_slot_give_back(void)
{
	pthread_mutex_lock(&send_slot_mu);
	send_slots_busy--;
	pthread_cond_signal(&send_slot_freed);
	pthread_mutex_unlock(&send_slot_mu);
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	(void)ptr;
	(void)ctx;
	return size * nmemb;
}

/* POST body as JSON to url; 0 on a 2xx reply, else -1 with the reason. */
static int post_json(const ftm_config_t *cfg, const char *url, const char *body, const char *bearer,
		     char *reason, size_t reason_len)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	char auth[600];
	long status = 0;
	CURLcode rc;
	int res = -1;

	if (c == NULL) {
		snprintf(reason, reason_len, "curl_easy_init failed");
		return -1;
	}
	h = curl_slist_append(h, "Content-Type: application/json");
	if (bearer && bearer[0]) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", bearer);
		h = curl_slist_append(h, auth);
		OPENSSL_cleanse(auth, sizeof(auth));
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)FTM_PUSH_SEND_CONNECT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)FTM_PUSH_SEND_TOTAL);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "ftmpush/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	pthread_once(&push_share_once, share_create);
	if (push_share != NULL)
		curl_easy_setopt(c, CURLOPT_SHARE, push_share);
	if (cfg->push.ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, cfg->push.ca_file);
	if (cfg->push.proxy[0])
		curl_easy_setopt(c, CURLOPT_PROXY, cfg->push.proxy);
	else
		curl_easy_setopt(c, CURLOPT_PROXY, "");	/* no proxy from the environment unless configured */
	/* the shared cache keeps as many idle connections as this says (libcurl's default: 5) */
	curl_easy_setopt(c, CURLOPT_MAXCONNECTS, (long)FTM_PUSH_SEND_PARALLEL);
	if (send_slot_take() != 0) {
		snprintf(reason, reason_len, "%d pushes in flight for %d s: push queue full",
			 FTM_PUSH_SEND_PARALLEL, FTM_PUSH_SEND_QUEUE);
		curl_slist_free_all(h);
		curl_easy_cleanup(c);
		return -1;
	}
	rc = curl_easy_perform(c);
	send_slot_give_back();
	if (rc != CURLE_OK) {
		snprintf(reason, reason_len, "%s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
	} else {
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300)
			res = 0;
		else
			snprintf(reason, reason_len, "HTTP status %ld", status);
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return res;
}

static int send_ntfy(const ftm_config_t *cfg, const char *target, const ftm_push_msg_t *m, char *reason,
		     size_t reason_len)
{
	char base[FTM_PUSH_MAX];
	const char *slash = strrchr(target, '/');
	const char *topic;
	char *body;
	int rc;

	if (strncmp(target, "https://", 8) != 0 || slash == NULL || slash < target + 8 || slash[1] == '\0') {
		snprintf(reason, reason_len, "bad ntfy target (want ntfy:https://SERVER/TOPIC)");
		return -1;
	}
	topic = slash + 1;
	snprintf(base, sizeof(base), "%.*s", (int)(slash - target + 1), target);
	body = ftm_push_ntfy_body(m, topic);
	if (body == NULL) {
		snprintf(reason, reason_len, "out of memory");
		return -1;
	}
	rc = post_json(cfg, base, body, cfg->push.ntfy_token, reason, reason_len);
	free(body);
	if (rc != 0) {
		char tmp[FTM_MSG_MAX];

		snprintf(tmp, sizeof(tmp), "ntfy %.120s: %.120s", base, reason);
		snprintf(reason, reason_len, "%s", tmp);
	}
	return rc;
}

static int send_gateway(const ftm_config_t *cfg, const ftm_token_t *tok, const char *target,
			const ftm_push_msg_t *m, char *reason, size_t reason_len)
{
	const char *platform = "android", *regid = target, *slash = strchr(target, '/');
	char plat[16];
	char *plain = NULL, *msg = NULL, *env = NULL;
	int rc = -1;

	if (slash && (size_t)(slash - target) < sizeof(plat)) {
		snprintf(plat, sizeof(plat), "%.*s", (int)(slash - target), target);
		if (strcmp(plat, "android") == 0 || strcmp(plat, "ios") == 0) {
			platform = plat;
			regid = slash + 1;
		}
	}
	if (regid[0] == '\0') {
		snprintf(reason, reason_len, "empty gateway registration id");
		return -1;
	}
	if (cfg->push.gateway_url[0] == '\0') {
		snprintf(reason, reason_len, "push.gateway_url is not set");
		return -1;
	}
	plain = ftm_push_plaintext(m);
	if (plain)
		msg = ftm_push_seal(tok->seed, tok->seed_len, tok->serial, NULL, plain, strlen(plain));
	if (msg)
		env = ftm_push_envelope(m->sender, regid, platform, msg);
	if (env == NULL) {
		snprintf(reason, reason_len, "could not build the envelope");
		goto out;
	}
	rc = post_json(cfg, cfg->push.gateway_url, env, NULL, reason, reason_len);
	if (rc != 0) {
		char tmp[FTM_MSG_MAX];

		snprintf(tmp, sizeof(tmp), "gateway: %.200s", reason);
		snprintf(reason, reason_len, "%s", tmp);
	}
out:
	if (plain)
		OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
	free(msg);
	free(env);
	return rc;
}

int ftm_push_channel_send(void *ctx, const ftm_config_t *cfg, const ftm_token_t *tok, const ftm_push_msg_t *msg,
			  char *reason, size_t reason_len)
{
	(void)ctx;
	if (strncmp(tok->push, "ntfy:", 5) == 0)
		return send_ntfy(cfg, tok->push + 5, msg, reason, reason_len);
	if (strncmp(tok->push, "gateway:", 8) == 0)
		return send_gateway(cfg, tok, tok->push + 8, msg, reason, reason_len);
	snprintf(reason, reason_len, "unknown push channel (want ntfy: or gateway:)");
	return -1;
}

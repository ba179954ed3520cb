/* enrol: activation links, their e-mail, the enrolment page (inline SVG QR codes) and its requests. */
#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <qrencode.h>

#include "ftm_audit.h"
#include "ftm_enrol.h"
#include "ftm_mail.h"
#include "ftm_message.h"
#include "ftm_push.h"
#include "ftm_util.h"

#define SETERR(...) do { if (err != NULL && err_len > 0) snprintf(err, err_len, __VA_ARGS__); } while (0)
#define RATE_SLOTS	1024	/* addresses tracked at once; the stalest slot is reused */
#define QR_QUIET	4	/* modules of white border the QR specification asks for */
#define QR_SCALE	6	/* pixels per module: large enough for a phone camera and for zbarimg */

/* ---- push topics ---- */

int ftm_enrol_push_target(const char *push, char *out, size_t out_len, char *err, size_t err_len)
{
	uint8_t raw[FTM_ENROL_TOPIC_BYTES];
	char b32[(FTM_ENROL_TOPIC_BYTES * 8 + 4) / 5 + 1];
	const char *url, *slash;
	int n;

	if (push == NULL || out == NULL || out_len == 0) {
		SETERR("no push target");
		return -1;
	}
	url = strncmp(push, "ntfy:", 5) == 0 ? push + 5 : NULL;
	slash = url != NULL && strncmp(url, "https://", 8) == 0 ? strrchr(url + 8, '/') : NULL;
	/* "ntfy:https://host/" or "ntfy:https://host": a server without a topic */
	if (url == NULL || strncmp(url, "https://", 8) != 0 || (slash != NULL && slash[1] != '\0')) {
		if (snprintf(out, out_len, "%s", push) >= (int)out_len) {
			SETERR("push target too long");
			return -1;
		}
		return 0;
	}
	/* a topic is the only secret between the phone and a public ntfy server: make it unguessable */
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		SETERR("CSPRNG failure");
		return -1;
	}
	ftm_base32_encode(raw, sizeof(raw), b32);
	for (char *c = b32; *c != '\0'; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	n = snprintf(out, out_len, "%s%sftm-%s", push, slash == NULL ? "/" : "", b32);
	if (n < 0 || (size_t)n >= out_len) {
		SETERR("push target too long");
		return -1;
	}
	return 0;
}

/* ---- the link ---- */

int ftm_enrol_link(const ftm_config_t *cfg, const char *code, char *out, size_t out_len, char *err, size_t err_len)
{
	char host[INET6_ADDRSTRLEN + 3], addr[INET6_ADDRSTRLEN + 1];
	int n;

	if (cfg == NULL || code == NULL || out == NULL) {
		SETERR("no configuration");
		return -1;
	}
	if (!cfg->push.status) {
		SETERR("activation links are served by the HTTPS listener: set push.status = enable");
		return -1;
	}
	if (cfg->push.server[0] != '\0') {
		bool v6 = strchr(cfg->push.server, ':') != NULL && cfg->push.server[0] != '[';
		snprintf(host, sizeof(host), v6 ? "[%.*s]" : "%.*s", INET6_ADDRSTRLEN, cfg->push.server);
	} else if (cfg->push.interface[0] != '\0') {
		if (ftm_push_interface_address(cfg->push.interface, addr, sizeof(addr), err, err_len) != 0)
			return -1;
		snprintf(host, sizeof(host), strchr(addr, ':') ? "[%s]" : "%s", addr);
	} else {
		SETERR("activation links need the listener's address: set push.server (or push.interface)");
		return -1;
	}
	n = snprintf(out, out_len, "https://%s:%u" FTM_ENROL_PREFIX "%s", host,
		     cfg->push.server_port ? cfg->push.server_port : 4433, code);
	if (n < 0 || (size_t)n >= out_len) {
		SETERR("activation link too long");
		return -1;
	}
	return 0;
}

/* ---- a growing text buffer ---- */

typedef struct buf {
	char	*p;
	size_t	len, cap;
	bool	failed;
} buf_t;

/* Grows by copying, zeroing the old block: the page may hold the seed. */
static void buf_reserve(buf_t *b, size_t more)
{
	size_t ncap;
	char *np;

	if (b->failed || b->len + more + 1 <= b->cap)
		return;
	ncap = b->cap ? b->cap : 4096;
	while (ncap < b->len + more + 1)
		ncap *= 2;
	np = malloc(ncap);
	if (np == NULL) {
		b->failed = true;
		return;
	}
	if (b->p != NULL) {
		memcpy(np, b->p, b->len + 1);
		ftm_memzero(b->p, b->cap);
		free(b->p);
	} else {
		np[0] = '\0';
	}
	b->p = np;
	b->cap = ncap;
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	if (b->failed)
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_str(buf_t *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

static void buf_fmt(buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_fmt(buf_t *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = true;
		return;
	}
	buf_reserve(b, (size_t)n);
	if (b->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Text into HTML (element content and quoted attributes alike). */
static void buf_html(buf_t *b, const char *s)
{
	for (; *s != '\0'; s++) {
		switch (*s) {
		case '<':	buf_str(b, "&lt;"); break;
		case '>':	buf_str(b, "&gt;"); break;
		case '&':	buf_str(b, "&amp;"); break;
		case '"':	buf_str(b, "&quot;"); break;
		case '\'':	buf_str(b, "&#39;"); break;
		default:	buf_add(b, s, 1);
		}
	}
}

static char *buf_take(buf_t *b, size_t *len)
{
	if (b->failed) {
		if (b->p != NULL) {
			ftm_memzero(b->p, b->cap);
			free(b->p);
		}
		return NULL;
	}
	if (len != NULL)
		*len = b->len;
	return b->p;
}

static void fmt_utc(int64_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(out, len, "%Y-%m-%d %H:%M UTC", &tm) == 0)
		snprintf(out, len, "%lld", (long long)t);
}

/* ---- the e-mail ---- */

/* A header value: ASCII as it is, anything else as an RFC 2047 encoded word; never a line break. */
static void header_text(buf_t *b, const char *s)
{
	bool ascii = true;
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			ascii = false;
	if (ascii) {
		buf_str(b, s);
		return;
	}
	if (n > 512)
		n = 512;
	{
		unsigned char enc[4 * 512 / 3 + 8];

		EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
		buf_fmt(b, "=?UTF-8?B?%s?=", (const char *)enc);
	}
}

/* The body is plain text with CRLF line ends; user and issuer are the admin's, but never end a line. */
static void body_text(buf_t *b, const char *s)
{
	for (; *s != '\0'; s++)
		buf_add(b, (unsigned char)*s < 0x20 ? " " : s, 1);
}

char *ftm_enrol_mail(const ftm_config_t *cfg, const char *to, const char *user, const char *serial,
		     const char *link, int64_t expires, time_t now)
{
	const char *issuer = cfg != NULL && cfg->issuer[0] ? cfg->issuer : "ftmpush";
	char date[64], until[64], id[33];
	uint8_t r[16];
	struct tm tm;
	buf_t b = { 0 };

	if (cfg == NULL || to == NULL || user == NULL || serial == NULL || link == NULL ||
	    !ftm_config_valid_email(to) || !ftm_config_valid_email(cfg->smtp.from))
		return NULL;
	if (gmtime_r(&now, &tm) == NULL || strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm) == 0 ||
	    RAND_bytes(r, sizeof(r)) != 1)
		return NULL;
	ftm_hex_encode(r, sizeof(r), id);
	buf_fmt(&b, "Date: %s\r\nFrom: ", date);
	header_text(&b, issuer);
	buf_fmt(&b, " <%s>\r\nTo: <%s>\r\nMessage-ID: <%s.ftmpush@%s>\r\nSubject: ", cfg->smtp.from, to, id,
		strchr(cfg->smtp.from, '@') + 1);
	header_text(&b, issuer);
	buf_str(&b, ": activate your login token\r\n"
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
		"Auto-Submitted: auto-generated\r\n\r\n");
	buf_str(&b, "Hello ");
	body_text(&b, user);
	buf_str(&b, ",\r\n\r\n");
	body_text(&b, issuer);
	buf_fmt(&b, " has set up a login token for you (serial %s).\r\n\r\n"
		"To activate it, open this link and follow the steps on the page: it shows a QR code\r\n"
		"for your authenticator app and asks for the code the app then shows.\r\n\r\n%s\r\n\r\n",
		serial, link);
	if (expires > 0) {
		fmt_utc(expires, until, sizeof(until));
		buf_fmt(&b, "The link works once, and only until %s. After that, ask your\r\n"
			"administrator for a new one.\r\n\r\n", until);
	} else {
		buf_str(&b, "The link works once. Ask your administrator for a new one if it stops working.\r\n\r\n");
	}
	buf_str(&b, "Did not expect this message? Do not open the link; tell your administrator.\r\n");
	return buf_take(&b, NULL);
}

int ftm_enrol_mail_ready(const ftm_config_t *cfg, char *err, size_t err_len)
{
	char link[512];

	if (cfg == NULL || cfg->smtp.server[0] == '\0') {
		SETERR("no mail server: set smtp.server and smtp.from (see docs/configuration.md)");
		return -1;
	}
	if (!ftm_config_valid_email(cfg->smtp.from)) {
		SETERR("smtp.from is not set to a sender address");
		return -1;
	}
	return ftm_enrol_link(cfg, "x", link, sizeof(link), err, err_len);
}

int ftm_enrol_send_link(ftm_store_t *st, const ftm_config_t *cfg, const char *serial, bool mail, const char *email,
			time_t now, char *link, size_t link_len, char *sent_to, size_t sent_to_len,
			int64_t *expires, char *err, size_t err_len)
{
	char code[FTM_ACTIVATION_CODE_LEN + 1], url[512], to[FTM_EMAIL_MAX] = "";
	ftm_activation_t prev;
	ftm_token_t *tok = NULL;
	char *message = NULL;
	int64_t until = 0;
	ftm_policy_t pol;
	int rc = -1;

	if (st == NULL || cfg == NULL || serial == NULL) {
		SETERR("no token store");
		return -1;
	}
	if (mail) {
		if (email != NULL && email[0] != '\0')
			snprintf(to, sizeof(to), "%s", email);
		else if (ftm_store_activation_get(st, serial, &prev, NULL, 0) == 0 && prev.email[0] != '\0')
			snprintf(to, sizeof(to), "%s", prev.email);
		if (to[0] == '\0') {
			SETERR("token %s: no e-mail address known: give one with --email ADDR", serial);
			return -1;
		}
		if (!ftm_config_valid_email(to)) {
			SETERR("'%.200s' is not an e-mail address", to);
			return -1;
		}
		if (ftm_enrol_mail_ready(cfg, err, err_len) != 0)
			return -1;
	} else if (ftm_enrol_link(cfg, "x", url, sizeof(url), err, err_len) != 0) {
		return -1;
	}
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL) {
		SETERR("out of memory");
		return -1;
	}
	rc = ftm_store_token_get(st, serial, tok, err, err_len);
	if (rc != 0)
		goto out;
	ftm_memzero(tok->seed, sizeof(tok->seed));	/* only the user name is needed here */
	rc = -1;
	if (ftm_store_policy(st, &pol, err, err_len) != 0 ||
	    ftm_store_activation_issue(st, serial, to, now, pol.activation_expire, code, sizeof(code), &until,
				       err, err_len) != 0 ||
	    ftm_enrol_link(cfg, code, url, sizeof(url), err, err_len) != 0)
		goto out;
	if (mail) {
		message = ftm_enrol_mail(cfg, to, tok->user, serial, url, until, now);
		if (message == NULL) {
			SETERR("token %s: cannot compose the activation mail", serial);
			goto out;
		}
		if (ftm_mail_send(&cfg->smtp, to, message, err, err_len) != 0)
			goto out;
	} else if (link != NULL && snprintf(link, link_len, "%s", url) >= (int)link_len) {
		SETERR("activation link too long");
		goto out;
	}
	if (sent_to != NULL)
		snprintf(sent_to, sent_to_len, "%s", to);
	if (expires != NULL)
		*expires = until;
	rc = 0;
out:
	ftm_memzero(code, sizeof(code));
	ftm_memzero(url, sizeof(url));
	if (message != NULL) {
		ftm_memzero(message, strlen(message));
		free(message);
	}
	ftm_memzero(tok, sizeof(*tok));
	free(tok);
	return rc;
}

/* ---- QR codes as inline SVG ---- */

static void qr_svg(buf_t *b, const char *text, const char *label)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int w, size;

	if (qr == NULL) {
		b->failed = true;
		return;
	}
	w = qr->width;
	size = w + 2 * QR_QUIET;
	buf_fmt(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"qr\" viewBox=\"0 0 %d %d\" width=\"%d\" "
		"height=\"%d\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"", size, size,
		size * QR_SCALE, size * QR_SCALE);
	buf_html(b, label);
	buf_fmt(b, "\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/><path fill=\"#000\" d=\"", size, size);
	for (int y = 0; y < w; y++) {
		for (int x = 0; x < w; ) {
			int run = 0;

			while (x + run < w && (qr->data[y * w + x + run] & 1))
				run++;
			if (run > 0) {
				buf_fmt(b, "M%d %dh%dv1h-%dz", x + QR_QUIET, y + QR_QUIET, run, run);
				x += run;
			} else {
				x++;
			}
		}
	}
	buf_str(b, "\"/></svg>");
	ftm_memzero(qr->data, (size_t)w * (size_t)w);
	QRcode_free(qr);
}

/* ---- the page ---- */

/* The only style on the page; the Content-Security-Policy allows exactly this block by its hash. */
static const char page_css[] =
	"body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}"
	"main{max-width:40em;margin:0 auto;padding:1.5em;background:#fff;min-height:100vh}"
	"h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}"
	".qr{display:block;margin:1em 0;max-width:100%;height:auto}"
	".msg{padding:.8em;border-left:4px solid #c62828;background:#fdecea}"
	".ok{padding:.8em;border-left:4px solid #2e7d32;background:#e8f5e9}"
	"input{font-size:1.4em;width:8em;letter-spacing:.15em}button{font-size:1.1em;padding:.4em 1.2em}"
	"code{word-break:break-all}";

#define CSP_FMT "default-src 'none'; style-src '%s'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

static char csp_value[200];
static pthread_once_t csp_once = PTHREAD_ONCE_INIT;

static void csp_init(void)
{
	unsigned char md[32], b64[48];
	unsigned int n = 0;
	char src[64];

	EVP_Digest(page_css, strlen(page_css), md, &n, EVP_sha256(), NULL);
	EVP_EncodeBlock(b64, md, (int)n);
	snprintf(src, sizeof(src), "sha256-%s", (const char *)b64);
	snprintf(csp_value, sizeof(csp_value), CSP_FMT, src);
}

static const char *csp(void)
{
	pthread_once(&csp_once, csp_init);
	return csp_value;
}

const char *const ftm_enrol_headers[] = {
	"Content-Type", "text/html; charset=utf-8",
	"Cache-Control", "no-store, max-age=0",
	"Pragma", "no-cache",
	"Referrer-Policy", "no-referrer",
	"X-Frame-Options", "DENY",
	"X-Content-Type-Options", "nosniff",
	NULL
};

const char *ftm_enrol_csp(void)
{
	return csp();
}

static void page_head(buf_t *b, const char *issuer, const char *title)
{
	buf_str(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
		"<meta name=\"referrer\" content=\"no-referrer\"><meta name=\"robots\" content=\"noindex\"><title>");
	buf_html(b, issuer);
	buf_str(b, ": ");
	buf_html(b, title);
	buf_str(b, "</title><style>");
	buf_str(b, page_css);
	buf_str(b, "</style></head><body><main>\n<h1>");
	buf_html(b, title);
	buf_str(b, "</h1>\n");
}

static void page_tail(buf_t *b)
{
	buf_str(b, "</main></body></html>\n");
}

/* Every page and its status; the texts are in ftm_message.h with every other text a user reads. */
typedef struct page_text {
	unsigned	status;
	const char	*title;
	const char	*text;
} page_text_t;

enum page_kind {
	P_UNKNOWN, P_EXPIRED, P_USED, P_EXHAUSTED, P_LOCKED, P_ERROR, P_BAD_FORM, P_TOO_LARGE, P_RATE,
	P_METHOD, P_DONE, P_KINDS
};

static const page_text_t page_texts[P_KINDS] = {
	[P_UNKNOWN]	= { 404, FTM_MSG_ENROL_UNKNOWN_TITLE, FTM_MSG_ENROL_UNKNOWN },
	[P_EXPIRED]	= { 410, FTM_MSG_ENROL_EXPIRED_TITLE, FTM_MSG_ENROL_EXPIRED },
	[P_USED]	= { 410, FTM_MSG_ENROL_USED_TITLE, FTM_MSG_ENROL_USED },
	[P_EXHAUSTED]	= { 410, FTM_MSG_ENROL_EXHAUSTED_TITLE, FTM_MSG_ENROL_EXHAUSTED },
	[P_LOCKED]	= { 403, FTM_MSG_ENROL_LOCKED_TITLE, FTM_MSG_ENROL_LOCKED },
	[P_ERROR]	= { 503, FTM_MSG_ENROL_ERROR_TITLE, FTM_MSG_ENROL_ERROR },
	[P_BAD_FORM]	= { 400, FTM_MSG_ENROL_BAD_FORM_TITLE, FTM_MSG_ENROL_BAD_FORM },
	[P_TOO_LARGE]	= { 413, FTM_MSG_ENROL_BAD_FORM_TITLE, FTM_MSG_ENROL_BAD_FORM },
	[P_RATE]	= { 429, FTM_MSG_ENROL_RATE_TITLE, FTM_MSG_ENROL_RATE },
	[P_METHOD]	= { 405, FTM_MSG_ENROL_METHOD_TITLE, FTM_MSG_ENROL_METHOD },
	[P_DONE]	= { 200, FTM_MSG_ENROL_DONE_TITLE, FTM_MSG_ENROL_DONE },
};

static void plain_page(buf_t *b, const char *issuer, enum page_kind k)
{
	page_head(b, issuer, page_texts[k].title);
	buf_fmt(b, "<p%s>", k == P_DONE ? " class=\"ok\"" : "");
	buf_html(b, page_texts[k].text);
	buf_str(b, "</p>\n");
	page_tail(b);
}

/* Which apps honour the token's period: Google Authenticator ignores it (its own documentation). */
static void app_advice(buf_t *b, unsigned period)
{
	buf_str(b, "<h2>1. Install an authenticator app</h2>\n");
	if (period == 30) {
		buf_str(b, "<p>Any authenticator app works: FortiToken Mobile, FreeOTP, Aegis (Android), 2FAS, "
			"Google Authenticator, Microsoft Authenticator.</p>\n");
		return;
	}
	buf_fmt(b, "<p>Your codes change every %u seconds. Use an app that honours this: "
		"<b>FortiToken Mobile</b>, <b>FreeOTP</b>, <b>Aegis</b> (Android) or <b>2FAS</b>. "
		"Google Authenticator ignores the period and would show wrong codes.</p>\n", period);
}

/* "https://ntfy.example.org/ftm-abc" of an ntfy push target, or NULL. */
static const char *ntfy_url(const ftm_token_t *t)
{
	return strncmp(t->push, "ntfy:https://", 13) == 0 ? t->push + 5 : NULL;
}

static void ntfy_steps(buf_t *b, const char *url)
{
	const char *slash = strrchr(url + 8, '/');
	char server[FTM_PUSH_MAX];

	snprintf(server, sizeof(server), "%.*s", slash ? (int)(slash - url) : (int)strlen(url), url);
	buf_str(b, "<h2>3. Get login requests on your phone (push)</h2>\n"
		"<p>Install the <b>ntfy</b> app and subscribe to your own topic. Scan this code or type the address:</p>\n");
	qr_svg(b, url, "QR code of your ntfy topic");
	buf_str(b, "<p>Topic: <code>");
	buf_html(b, url);
	buf_str(b, "</code></p>\n<p><b>Android</b>: in ntfy, tap <b>+</b>, turn on <b>Use another server</b>, "
		"enter <code>");
	buf_html(b, server);
	buf_str(b, "</code> and the topic name <code>");
	buf_html(b, slash ? slash + 1 : "");
	buf_str(b, "</code>, then <b>Subscribe</b>. Allow notifications.</p>\n"
		"<p><b>iPhone</b>: in ntfy, tap <b>+</b>, enter the topic name, turn on <b>Use another server</b> "
		"with the server above, then <b>Subscribe</b>. The Approve and Deny buttons show when you open "
		"the notification in the app.</p>\n"
		"<p>Keep this topic to yourself: whoever knows it can read your login requests.</p>\n");
}

static void enrol_page(buf_t *b, const char *issuer, const ftm_token_t *t, const char *uri,
		       const ftm_activation_t *a, bool wrong)
{
	const char *ntfy = ntfy_url(t);
	char until[64];

	page_head(b, issuer, "Set up your login token");
	buf_str(b, "<p>For <b>");
	buf_html(b, t->user);
	buf_str(b, "</b>, token ");
	buf_html(b, t->serial);
	if (a->expires > 0) {
		fmt_utc(a->expires, until, sizeof(until));
		buf_fmt(b, ". This page works until %s, and only until you confirm", until);
	} else {
		buf_str(b, ". This page works only until you confirm");
	}
	buf_str(b, ": do not share it.</p>\n");
	if (wrong) {
		char msg[FTM_MSG_MAX];

		ftm_msg_enrol_wrong_code(msg, sizeof(msg), a->tries_left);
		buf_str(b, "<p class=\"msg\">");
		buf_html(b, msg);
		buf_str(b, "</p>\n");
	}
	app_advice(b, t->period);
	buf_str(b, "<h2>2. Add the token to the app</h2>\n<p>Scan this QR code with the app:</p>\n");
	qr_svg(b, uri, "QR code of your token for the authenticator app");
	buf_str(b, "<p>On this phone? <a href=\"");
	buf_html(b, uri);
	buf_str(b, "\">Tap here to add the token to your app</a>.</p>\n");
	if (ntfy != NULL)
		ntfy_steps(b, ntfy);
	buf_fmt(b, "<h2>%d. Confirm</h2>\n<p>Type the code your app shows for this token:</p>\n"
		"<form method=\"post\"><input name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" "
		"pattern=\"[0-9]{%u}\" maxlength=\"%u\" required autofocus> <button type=\"submit\">Activate</button>"
		"</form>\n", ntfy ? 4 : 3, t->digits, t->digits);
	page_tail(b);
}

/* ---- per-address rate limits ---- */

typedef struct rate_slot {
	char		ip[INET6_ADDRSTRLEN + 1];
	double		tokens;
	time_t		at;
} rate_slot_t;

struct ftm_enrol {
	ftm_store_t		*store;
	const ftm_config_t	*cfg;
	const ftm_log_t		*log;
	pthread_mutex_t		mu;
	rate_slot_t		slots[RATE_SLOTS];
};

/* A token bucket per address: FTM_ENROL_RATE_BURST at once, then one per FTM_ENROL_RATE_REFILL s. */
static bool rate_allow(ftm_enrol_t *e, const char *ip, time_t now)
{
	rate_slot_t *s = NULL, *stalest = &e->slots[0];
	bool ok;

	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < RATE_SLOTS && s == NULL; i++) {
		rate_slot_t *c = &e->slots[i];

		if (c->ip[0] != '\0' && strcmp(c->ip, ip) == 0)
			s = c;
		else if (c->at < stalest->at)
			stalest = c;
	}
	if (s == NULL) {
		s = stalest;
		snprintf(s->ip, sizeof(s->ip), "%s", ip);
		s->tokens = FTM_ENROL_RATE_BURST;
		s->at = now;
	}
	if (now > s->at) {
		s->tokens += (double)(now - s->at) / FTM_ENROL_RATE_REFILL;
		if (s->tokens > FTM_ENROL_RATE_BURST)
			s->tokens = FTM_ENROL_RATE_BURST;
	}
	if (now > s->at || s->at == 0)
		s->at = now;
	ok = s->tokens >= 1.0;
	if (ok)
		s->tokens -= 1.0;
	pthread_mutex_unlock(&e->mu);
	return ok;
}

ftm_enrol_t *ftm_enrol_new(ftm_store_t *store, const ftm_config_t *cfg, const ftm_log_t *log)
{
	ftm_enrol_t *e;

	if (store == NULL || cfg == NULL)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return NULL;
	e->store = store;
	e->cfg = cfg;
	e->log = log;
	pthread_mutex_init(&e->mu, NULL);
	csp();
	return e;
}

void ftm_enrol_free(ftm_enrol_t *e)
{
	if (e == NULL)
		return;
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* ---- one request ---- */

static void reply_set(ftm_enrol_reply_t *r, buf_t *b, unsigned status)
{
	r->body = buf_take(b, &r->body_len);
	r->status = r->body != NULL ? status : 500;
}

static enum page_kind kind_of(ftm_activation_code_t c)
{
	switch (c) {
	case FTM_ACT_UNKNOWN:	return P_UNKNOWN;
	case FTM_ACT_EXPIRED:	return P_EXPIRED;
	case FTM_ACT_USED:	return P_USED;
	case FTM_ACT_EXHAUSTED:	return P_EXHAUSTED;
	case FTM_ACT_LOCKED:	return P_LOCKED;
	default:		return P_ERROR;
	}
}

/* A code typed on the page, in the audit trail (its own short transaction: the page is no login path). */
static void audit_confirm(ftm_enrol_t *e, const ftm_activation_t *a, const char *ip, time_t now)
{
	static const char *const results[] = {
		[FTM_ACT_OK] = FTM_AUDIT_ACTIVATED, [FTM_ACT_BAD_CODE] = FTM_AUDIT_WRONG,
		[FTM_ACT_UNKNOWN] = FTM_AUDIT_REFUSED, [FTM_ACT_EXPIRED] = FTM_AUDIT_EXPIRED,
		[FTM_ACT_USED] = FTM_AUDIT_REFUSED, [FTM_ACT_EXHAUSTED] = FTM_AUDIT_REFUSED,
		[FTM_ACT_LOCKED] = FTM_AUDIT_LOCKED, [FTM_ACT_ERROR] = FTM_AUDIT_ERROR,
	};
	ftm_audit_row_t row;
	ftm_token_t t;
	char err[FTM_ERR_MAX] = "";

	memset(&row, 0, sizeof(row));
	row.at = (int64_t)now;
	ftm_copy(row.event, sizeof(row.event), FTM_AUDIT_EV_ENROL);
	ftm_copy(row.result, sizeof(row.result),
		 (unsigned)a->code < sizeof(results) / sizeof(results[0]) ? results[a->code] : FTM_AUDIT_ERROR);
	ftm_copy(row.serial, sizeof(row.serial), a->serial);
	if (a->serial[0] != '\0' && ftm_store_token_get(e->store, a->serial, &t, NULL, 0) == 0)
		ftm_copy(row.user, sizeof(row.user), t.user);
	ftm_memzero(&t, sizeof(t));
	ftm_copy(row.client, sizeof(row.client), ip);
	ftm_copy(row.nas, sizeof(row.nas), "enrolment page");
	ftm_copy(row.frontend, sizeof(row.frontend), FTM_AUDIT_FE_WEB);
	ftm_audit_node(e->cfg, row.node, sizeof(row.node));
	ftm_copy(row.reason, sizeof(row.reason), a->reason);
	if (ftm_store_audit_append(e->store, &row, err, sizeof(err)) != 0)
		ftm_log(e->log, FTM_LOG_ERR, "audit: the enrolment row of token %s could not be written: %s",
			ftm_or(a->serial, "-"), err);
}

void ftm_enrol_handle(ftm_enrol_t *e, const char *method, const char *code, const char *content_type,
		      const char *body, size_t body_len, const char *ip, time_t now, ftm_enrol_reply_t *reply)
{
	const char *issuer = e != NULL && e->cfg->issuer[0] ? e->cfg->issuer : "ftmpush";
	bool post = method != NULL && strcmp(method, "POST") == 0;
	bool get = method != NULL && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
	char otp[FTM_CODE_MAX + 1], uri[1024];
	ftm_activation_t a;
	ftm_token_t *tok = NULL;
	enum page_kind k;
	buf_t b = { 0 };

	memset(reply, 0, sizeof(*reply));
	memset(&a, 0, sizeof(a));
	if (ip == NULL)
		ip = "?";
	if (e == NULL || code == NULL) {
		plain_page(&b, issuer, P_ERROR);
		reply_set(reply, &b, 503);
		return;
	}
	if (!get && !post) {
		reply->allow = "GET, POST";
		plain_page(&b, issuer, P_METHOD);
		reply_set(reply, &b, 405);
		return;
	}
	if (!rate_allow(e, ip, now)) {
		ftm_log(e->log, FTM_LOG_WARN, "enrolment page from %s: rate limit", ip);
		plain_page(&b, issuer, P_RATE);
		reply_set(reply, &b, 429);
		return;
	}
	if (post) {
		if (body_len > FTM_ENROL_BODY_MAX) {
			k = P_TOO_LARGE;
			goto plain;
		}
		if (content_type == NULL ||
		    strncasecmp(content_type, "application/x-www-form-urlencoded", 33) != 0 ||
		    ftm_enrol_parse_form(body, body_len, otp) != 0) {
			k = P_BAD_FORM;
			goto plain;
		}
		ftm_verify_params_t p = { .consume = true };
		ftm_policy_t pol;

		if (ftm_store_policy(e->store, &pol, NULL, 0) != 0) {
			ftm_memzero(otp, sizeof(otp));
			k = P_ERROR;	/* the store's policy decides the code: without it, nothing is decided */
			goto plain;
		}
		p.window = pol.window;
		p.lockout_threshold = pol.lockout_threshold;
		p.lockout_duration = pol.lockout_duration;
		p.activation_expire = pol.activation_expire;
		ftm_store_activation_confirm(e->store, code, otp, now, &p, &a);
		ftm_memzero(otp, sizeof(otp));
		audit_confirm(e, &a, ip, now);
		ftm_log(e->log, a.code == FTM_ACT_OK ? FTM_LOG_INFO : FTM_LOG_WARN,
			"enrolment confirm from %s: token %s: %s", ip, a.serial[0] ? a.serial : "-",
			ftm_activation_code_name(a.code));
		if (a.code == FTM_ACT_OK) {
			k = P_DONE;
			goto plain;
		}
		if (a.code != FTM_ACT_BAD_CODE) {
			k = kind_of(a.code);
			goto plain;
		}
		/* a wrong code: the page again, with how many tries are left */
	}
	tok = calloc(1, sizeof(*tok));
	if (tok == NULL) {
		k = P_ERROR;
		goto plain;
	}
	{
		ftm_activation_t shown;
		ftm_policy_t pol;

		if (ftm_store_policy(e->store, &pol, NULL, 0) != 0) {
			k = P_ERROR;
			goto plain;
		}
		ftm_store_activation_open(e->store, code, now, pol.activation_expire, &shown, tok);
		if (!post)
			ftm_log(e->log, shown.code == FTM_ACT_OK ? FTM_LOG_INFO : FTM_LOG_WARN,
				"enrolment page from %s: token %s: %s", ip, shown.serial[0] ? shown.serial : "-",
				ftm_activation_code_name(shown.code));
		if (shown.code != FTM_ACT_OK) {
			k = kind_of(shown.code);
			goto plain;
		}
		if (!post)
			a = shown;
		else
			a.expires = shown.expires;
	}
	if (ftm_token_otpauth_uri(tok, issuer, uri, sizeof(uri)) != 0) {
		k = P_ERROR;
		goto plain;
	}
	enrol_page(&b, issuer, tok, uri, &a, post);
	ftm_memzero(uri, sizeof(uri));
	ftm_memzero(tok, sizeof(*tok));
	free(tok);
	reply_set(reply, &b, 200);
	return;
plain:
	if (tok != NULL) {
		ftm_memzero(tok, sizeof(*tok));
		free(tok);
	}
	plain_page(&b, issuer, k);
	reply_set(reply, &b, page_texts[k].status);
}

void ftm_enrol_reply_free(ftm_enrol_reply_t *reply)
{
	if (reply == NULL)
		return;
	if (reply->body != NULL) {
		ftm_memzero(reply->body, reply->body_len);
		free(reply->body);
	}
	reply->body = NULL;
	reply->body_len = 0;
}

/* test_enrol: activation links, their e-mail and the enrolment page, as a specification. Codes are
 * RFC 6238 appendix B values (SHA1 seed "12345678901234567890", 30 s, 8 digits). */
#include "config.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ftm_enrol.h"
#include "store_fixture.h"

#define SEED_B32	"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"	/* what an otpauth URI of SEED_HEX carries */
#define FORM		"application/x-www-form-urlencoded"

typedef struct fixture {
	char		dir[64];
	char		db[128];
	ftm_store_t	*st;
	ftm_config_t	cfg;
	ftm_enrol_t	*e;
	char		code[FTM_ACTIVATION_CODE_LEN + 1];
} fixture_t;

static int add_with_link(fixture_t *f, const char *serial, const char *push)
{
	ftm_token_t t;
	char err[256];

	if (fixture_rfc_token(&t, "alice", serial) != 0)
		return -1;
	snprintf(t.push, sizeof(t.push), "%s", push);
	if (ftm_store_token_add(f->st, &t, err, sizeof(err)) != 0 ||
	    ftm_store_activation_issue(f->st, serial, "alice@example.org", T1 - 50, f->cfg.activation_expire,
				       f->code, sizeof(f->code), NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	fixture_t *f = calloc(1, sizeof(*f));
	char err[256];

	if (fixture_dir(f->dir, "enrol") != 0)
		return -1;
	snprintf(f->db, sizeof(f->db), "%s/tokens.db", f->dir);
	f->st = ftm_store_open(f->db, NULL, NULL, err, sizeof(err));
	ftm_config_defaults(&f->cfg);
	f->cfg.activation_expire = 60;
	f->cfg.push.status = true;
	snprintf(f->cfg.push.server, sizeof(f->cfg.push.server), "vpn.example.org");
	snprintf(f->cfg.issuer, sizeof(f->cfg.issuer), "Example Corp");
	snprintf(f->cfg.smtp.from, sizeof(f->cfg.smtp.from), "mfa@example.org");
	f->e = ftm_enrol_new(f->st, &f->cfg, NULL);
	if (f->st == NULL || f->e == NULL || add_with_link(f, "S1", "") != 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture_t *f = *state;

	ftm_enrol_free(f->e);
	ftm_store_close(f->st);
	fixture_dir_remove(f->dir);
	free(f);
	return 0;
}

static unsigned request(fixture_t *f, const char *method, const char *code, const char *body, time_t now,
			char **page)
{
	ftm_enrol_reply_t r;
	unsigned status;

	ftm_enrol_handle(f->e, method, code, body ? FORM : NULL, body, body ? strlen(body) : 0, "192.0.2.7", now, &r);
	status = r.status;
	assert_non_null(r.body);
	if (page != NULL)
		*page = strdup(r.body);
	ftm_enrol_reply_free(&r);
	return status;
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
		n++;
	return n;
}

/* ---- push topics and links ---- */

static void an_ntfy_server_without_a_topic_gets_an_unguessable_one(void **state)
{
	char a[FTM_PUSH_MAX], b[FTM_PUSH_MAX];
	const char *topic;

	(void)state;
	assert_int_equal(ftm_enrol_push_target("ntfy:https://ntfy.example.org/", a, sizeof(a), NULL, 0), 0);
	assert_int_equal(ftm_enrol_push_target("ntfy:https://ntfy.example.org/", b, sizeof(b), NULL, 0), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(strncmp(a, "ntfy:https://ntfy.example.org/ftm-", 34), 0);
	topic = a + 34;
	assert_int_equal(strlen(topic), 26);	/* 128 bits in base32 */
	assert_int_equal(strspn(topic, "abcdefghijklmnopqrstuvwxyz234567"), 26);
	assert_int_equal(ftm_enrol_push_target("ntfy:https://ntfy.example.org", a, sizeof(a), NULL, 0), 0);
	assert_int_equal(strncmp(a, "ntfy:https://ntfy.example.org/ftm-", 34), 0);
}

static void a_push_target_with_a_topic_is_kept(void **state)
{
	char out[FTM_PUSH_MAX];

	(void)state;
	assert_int_equal(ftm_enrol_push_target("ntfy:https://ntfy.example.org/alice-7f3a", out, sizeof(out), NULL, 0), 0);
	assert_string_equal(out, "ntfy:https://ntfy.example.org/alice-7f3a");
	assert_int_equal(ftm_enrol_push_target("gateway:REG123", out, sizeof(out), NULL, 0), 0);
	assert_string_equal(out, "gateway:REG123");
}

static void the_link_names_the_listeners_server_and_port(void **state)
{
	fixture_t *f = *state;
	char link[256], err[256];

	f->cfg.push.server_port = 8443;
	assert_int_equal(ftm_enrol_link(&f->cfg, "CODE", link, sizeof(link), err, sizeof(err)), 0);
	assert_string_equal(link, "https://vpn.example.org:8443/ftm/v1/enroll/CODE");
	snprintf(f->cfg.push.server, sizeof(f->cfg.push.server), "2001:db8::1");
	assert_int_equal(ftm_enrol_link(&f->cfg, "CODE", link, sizeof(link), err, sizeof(err)), 0);
	assert_string_equal(link, "https://[2001:db8::1]:8443/ftm/v1/enroll/CODE");
	f->cfg.push.server[0] = '\0';
	assert_int_equal(ftm_enrol_link(&f->cfg, "CODE", link, sizeof(link), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "push.server"));
	f->cfg.push.status = false;
	assert_int_equal(ftm_enrol_link(&f->cfg, "CODE", link, sizeof(link), err, sizeof(err)), -1);
	assert_non_null(strstr(err, "push.status"));
}

/* ---- the e-mail ---- */

static void the_mail_names_issuer_user_serial_expiry_and_link_and_no_seed(void **state)
{
	fixture_t *f = *state;
	char *m = ftm_enrol_mail(&f->cfg, "alice@example.org", "alice", "S1",
				 "https://vpn.example.org:4433/ftm/v1/enroll/CODE", T1 + 3600, T1);

	assert_non_null(m);
	assert_non_null(strstr(m, "\r\nTo: <alice@example.org>\r\n"));
	assert_non_null(strstr(m, "From: Example Corp <mfa@example.org>\r\n"));
	assert_non_null(strstr(m, "Subject: Example Corp: activate your login token\r\n"));
	assert_non_null(strstr(m, "Hello alice,"));
	assert_non_null(strstr(m, "serial S1"));
	assert_non_null(strstr(m, "\r\nhttps://vpn.example.org:4433/ftm/v1/enroll/CODE\r\n"));
	assert_non_null(strstr(m, "2005-03-18 02:58 UTC"));	/* T1 + 3600 */
	assert_null(strstr(m, SEED_B32));
	assert_null(strstr(m, "secret="));
	free(m);
}

static void a_user_name_cannot_add_mail_headers(void **state)
{
	fixture_t *f = *state;
	char *m = ftm_enrol_mail(&f->cfg, "alice@example.org", "alice\r\nBcc: eve@example.org", "S1", "L", 0, T1);

	assert_non_null(m);
	assert_null(strstr(m, "\r\nBcc:"));
	free(m);
	assert_null(ftm_enrol_mail(&f->cfg, "alice@example.org>\r\nBcc: <eve@example.org", "alice", "S1", "L", 0, T1));
}

/* ---- the page ---- */

static void the_page_draws_the_qr_code_inline_and_links_the_uri(void **state)
{
	fixture_t *f = *state;
	char *page;

	assert_int_equal(request(f, "GET", f->code, NULL, T1, &page), 200);
	assert_int_equal(count(page, "<svg"), 1);
	assert_non_null(strstr(page, "href=\"otpauth://totp/Example%20Corp:alice?secret=" SEED_B32 "&amp;issuer="));
	assert_non_null(strstr(page, "<form method=\"post\">"));
	assert_non_null(strstr(page, "name=\"code\""));
	assert_non_null(strstr(page, "alice"));
	assert_non_null(strstr(page, "S1"));
	/* nothing outside the page: no script, no image, no style sheet, no external address */
	assert_null(strstr(page, "<script"));
	assert_null(strstr(page, "src="));
	assert_null(strstr(page, "<link"));
	assert_int_equal(count(page, "http"), count(page, "http://www.w3.org/2000/svg"));
	free(page);
}

static void the_page_recommends_apps_that_honour_the_period(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t;
	char *page;

	assert_int_equal(request(f, "GET", f->code, NULL, T1, &page), 200);
	assert_non_null(strstr(page, "Google Authenticator"));	/* 30 s: any app */
	free(page);
	assert_int_equal(ftm_token_init(&t, "bob", "S60", SEED_HEX, NULL, 0), 0);	/* FortiToken: 60 s */
	assert_int_equal(ftm_store_token_add(f->st, &t, NULL, 0), 0);
	assert_int_equal(ftm_store_activation_issue(f->st, "S60", "", time(NULL), 60, f->code, sizeof(f->code),
						    NULL, NULL, 0), 0);
	assert_int_equal(request(f, "GET", f->code, NULL, time(NULL), &page), 200);
	assert_non_null(strstr(page, "every 60 seconds"));
	assert_non_null(strstr(page, "FreeOTP"));
	assert_non_null(strstr(page, "Google Authenticator ignores the period"));
	free(page);
}

static void a_token_with_an_ntfy_target_shows_its_topic(void **state)
{
	fixture_t *f = *state;
	char *page;

	assert_int_equal(add_with_link(f, "S2", "ntfy:https://ntfy.example.org/ftm-abcdef"), 0);
	assert_int_equal(request(f, "GET", f->code, NULL, T1, &page), 200);
	assert_int_equal(count(page, "<svg"), 2);
	assert_non_null(strstr(page, "https://ntfy.example.org/ftm-abcdef"));
	assert_non_null(strstr(page, "Android"));
	assert_non_null(strstr(page, "iPhone"));
	free(page);
}

static void every_reply_forbids_caching_framing_referrers_and_foreign_content(void **state)
{
	const char *csp = ftm_enrol_csp();
	bool no_store = false, no_referrer = false, deny = false;

	(void)state;
	for (size_t i = 0; ftm_enrol_headers[i] != NULL; i += 2) {
		no_store |= strcmp(ftm_enrol_headers[i], "Cache-Control") == 0 &&
			    strstr(ftm_enrol_headers[i + 1], "no-store") != NULL;
		no_referrer |= strcmp(ftm_enrol_headers[i], "Referrer-Policy") == 0 &&
			       strcmp(ftm_enrol_headers[i + 1], "no-referrer") == 0;
		deny |= strcmp(ftm_enrol_headers[i], "X-Frame-Options") == 0;
	}
	assert_true(no_store && no_referrer && deny);
	assert_non_null(strstr(csp, "default-src 'none'"));
	assert_non_null(strstr(csp, "frame-ancestors 'none'"));
	assert_non_null(strstr(csp, "form-action 'self'"));
	assert_non_null(strstr(csp, "style-src 'sha256-"));
	assert_null(strstr(csp, "unsafe"));
}

static void a_right_code_activates_and_the_seed_is_gone_from_then_on(void **state)
{
	fixture_t *f = *state;
	ftm_token_t t;
	char *page;

	assert_int_equal(request(f, "POST", f->code, "code=" C1, T1, &page), 200);
	assert_non_null(strstr(page, "Your token is active"));
	assert_null(strstr(page, "secret="));
	assert_null(strstr(page, "<svg"));
	free(page);
	assert_int_equal(ftm_store_token_get(f->st, "S1", &t, NULL, 0), 0);
	assert_int_equal(t.last_step, 37037036);
	ftm_memzero(&t, sizeof(t));
	assert_int_equal(request(f, "GET", f->code, NULL, T1 + 1, &page), 410);
	assert_null(strstr(page, "secret="));
	assert_non_null(strstr(page, "already set up"));
	free(page);
}

static void a_wrong_code_shows_the_page_again_with_the_tries_left(void **state)
{
	fixture_t *f = *state;
	char *page;

	assert_int_equal(request(f, "POST", f->code, "code=" BAD, T1, &page), 200);
	assert_non_null(strstr(page, "That code is not right. 4 tries left."));
	assert_non_null(strstr(page, "<svg"));
	free(page);
	for (int i = 0; i < 3; i++)
		assert_int_equal(request(f, "POST", f->code, "code=" BAD, T1, NULL), 200);
	assert_int_equal(request(f, "POST", f->code, "code=" BAD, T1, &page), 410);
	assert_non_null(strstr(page, "Too many wrong codes"));
	assert_null(strstr(page, "secret="));
	free(page);
	assert_int_equal(request(f, "POST", f->code, "code=" C1, T1, NULL), 410);
}

static void unknown_and_expired_links_get_plain_pages(void **state)
{
	fixture_t *f = *state;
	char *page, other[FTM_ACTIVATION_CODE_LEN + 1];

	memcpy(other, f->code, sizeof(other));
	other[0] = other[0] == 'A' ? 'B' : 'A';
	assert_int_equal(request(f, "GET", other, NULL, T1, &page), 404);
	assert_non_null(strstr(page, "This link is not valid"));
	assert_null(strstr(page, "<form"));
	free(page);
	assert_int_equal(request(f, "GET", f->code, NULL, T1 + 3600, &page), 410);
	assert_non_null(strstr(page, "This link has expired"));
	assert_null(strstr(page, "secret="));
	free(page);
	assert_int_equal(request(f, "POST", f->code, "code=" C1, T1 + 3600, NULL), 410);
}

static void bad_forms_and_methods_are_refused_and_change_nothing(void **state)
{
	fixture_t *f = *state;
	ftm_enrol_reply_t r;
	char big[FTM_ENROL_BODY_MAX + 2];
	ftm_token_t t;

	assert_int_equal(request(f, "POST", f->code, "code=0708180x", T1, NULL), 400);
	assert_int_equal(request(f, "POST", f->code, "nocode=1", T1, NULL), 400);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "code=", 5);
	assert_int_equal(request(f, "POST", f->code, big, T1, NULL), 413);
	ftm_enrol_handle(f->e, "POST", f->code, "text/plain", "code=" C1, 13, "192.0.2.7", T1, &r);
	assert_int_equal(r.status, 400);
	ftm_enrol_reply_free(&r);
	ftm_enrol_handle(f->e, "PUT", f->code, NULL, NULL, 0, "192.0.2.7", T1, &r);
	assert_int_equal(r.status, 405);
	assert_string_equal(r.allow, "GET, POST");
	ftm_enrol_reply_free(&r);
	assert_int_equal(ftm_store_token_get(f->st, "S1", &t, NULL, 0), 0);
	assert_int_equal(t.last_step, -1);
	ftm_memzero(&t, sizeof(t));
	/* and the link still works: none of these counted as a wrong code */
	assert_int_equal(request(f, "POST", f->code, "code=" C1, T1, NULL), 200);
}

static void one_address_is_rate_limited(void **state)
{
	fixture_t *f = *state;
	ftm_enrol_reply_t r;

	for (int i = 0; i < FTM_ENROL_RATE_BURST; i++)
		assert_int_equal(request(f, "GET", "unknown", NULL, T1, NULL), 404);
	assert_int_equal(request(f, "GET", "unknown", NULL, T1, NULL), 429);
	/* another address is not slowed down by it */
	ftm_enrol_handle(f->e, "GET", "unknown", NULL, NULL, 0, "192.0.2.8", T1, &r);
	assert_int_equal(r.status, 404);
	ftm_enrol_reply_free(&r);
	/* and the first one gets a request again after the refill time */
	assert_int_equal(request(f, "GET", "unknown", NULL, T1 + FTM_ENROL_RATE_REFILL, NULL), 404);
	assert_int_equal(request(f, "GET", "unknown", NULL, T1 + FTM_ENROL_RATE_REFILL, NULL), 429);
}

/* ---- the form ---- */

static void the_form_takes_exactly_one_code_of_digits(void **state)
{
	char otp[FTM_CODE_MAX + 1];

	(void)state;
	assert_int_equal(ftm_enrol_parse_form("code=123456", 11, otp), 0);
	assert_string_equal(otp, "123456");
	assert_int_equal(ftm_enrol_parse_form("x=1&code=12345678", 17, otp), 0);
	assert_string_equal(otp, "12345678");
	assert_int_equal(ftm_enrol_parse_form("code=12345", 10, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("code=123456789", 14, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("code=12a456", 11, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("code=123456&code=654321", 23, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("code", 4, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("", 0, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("code=123456\0x", 13, otp), -1);
	assert_int_equal(ftm_enrol_parse_form("x=\n&code=123456", 15, otp), -1);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(an_ntfy_server_without_a_topic_gets_an_unguessable_one),
		cmocka_unit_test(a_push_target_with_a_topic_is_kept),
		T(the_link_names_the_listeners_server_and_port),
		T(the_mail_names_issuer_user_serial_expiry_and_link_and_no_seed),
		T(a_user_name_cannot_add_mail_headers),
		T(the_page_draws_the_qr_code_inline_and_links_the_uri),
		T(the_page_recommends_apps_that_honour_the_period),
		T(a_token_with_an_ntfy_target_shows_its_topic),
		cmocka_unit_test(every_reply_forbids_caching_framing_referrers_and_foreign_content),
		T(a_right_code_activates_and_the_seed_is_gone_from_then_on),
		T(a_wrong_code_shows_the_page_again_with_the_tries_left),
		T(unknown_and_expired_links_get_plain_pages),
		T(bad_forms_and_methods_are_refused_and_change_nothing),
		T(one_address_is_rate_limited),
		cmocka_unit_test(the_form_takes_exactly_one_code_of_digits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

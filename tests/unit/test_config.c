/* test_config: defaults, options by name, the key = value file with its checks, and validation. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ftm_config.h"

static char dir[64];

struct reports {
	int		n;
	unsigned	lines[16];
	char		msgs[16][FTM_ERR_MAX];
};

static void report(void *ctx, unsigned line, const char *message)
{
	struct reports *r = ctx;

	if (r->n < 16) {
		r->lines[r->n] = line;
		snprintf(r->msgs[r->n], sizeof(r->msgs[0]), "%s", message);
	}
	r->n++;
}

static const char *write_file(const char *name, mode_t mode, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	unlink(path);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

/* A self-signed P-256 certificate and its key (and a second key that does not match). */
static void make_cert(const char *cert_path, const char *key_path, const char *other_key_path)
{
	EVP_PKEY *k = EVP_EC_gen("P-256"), *other = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	assert_non_null(k);
	assert_non_null(other);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_set_pubkey(x, k);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"localhost", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(cert_path, "w");
	assert_non_null(f);
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key_path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	f = fopen(other_key_path, "w");
	assert_non_null(f);
	PEM_write_PrivateKey(f, other, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	X509_free(x);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static char cert[128], key[128], other_key[128];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ftm-config-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.pem", dir);
	make_cert(cert, key, other_key);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void defaults_are_the_documented_ones(void **state)
{
	ftm_config_t c;

	(void)state;
	ftm_config_defaults(&c);
	assert_string_equal(c.token_db, FTM_DEFAULT_TOKEN_DB);
	assert_string_equal(c.key_file, "");
	assert_int_equal(c.window, 1);
	assert_int_equal(c.lockout_threshold, 5);
	assert_int_equal(c.activation_expire, 4320);
	assert_int_equal(c.no_token, FTM_NO_TOKEN_REJECT);
	assert_true(c.challenge);
	assert_int_equal(c.challenge_timeout, 300);
	assert_int_equal(c.debug, 0);
	assert_false(c.push.status);
	assert_int_equal(c.push.server_port, 4433);
	assert_int_equal(c.push.timeout, 60);
	assert_false(c.push.number_matching);
	assert_string_equal(c.push.socket, FTM_DEFAULT_SOCKET);
	assert_true(c.log_accepts);
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, NULL, 0), 0);
}

static void push_options_take_three_spellings(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX];

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "8443", err, sizeof(err)), 0);
	assert_int_equal(c.push.server_port, 8443);
	assert_int_equal(ftm_config_set(&c, "push_timeout", "30", err, sizeof(err)), 0);
	assert_int_equal(c.push.timeout, 30);
	assert_int_equal(ftm_config_set(&c, "push.status", "enable", err, sizeof(err)), 0);
	assert_true(c.push.status);
	assert_int_equal(ftm_config_set(&c, "push_status", "disable", err, sizeof(err)), 0);
	assert_false(c.push.status);
	/* a bare push option name is only valid inside [push] */
	assert_int_equal(ftm_config_set(&c, "server_port", "1", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown option"));
}

static void booleans_accept_the_usual_words(void **state)
{
	static const char *const yes[] = { "yes", "true", "on", "enable", "YES", "1" };
	static const char *const no[] = { "no", "false", "off", "disable", "No", "0" };
	ftm_config_t c;
	char err[FTM_ERR_MAX];

	(void)state;
	ftm_config_defaults(&c);
	for (size_t i = 0; i < 6; i++) {
		assert_int_equal(ftm_config_set(&c, "challenge", no[i], err, sizeof(err)), 0);
		assert_false(c.challenge);
		assert_int_equal(ftm_config_set(&c, "challenge", yes[i], err, sizeof(err)), 0);
		assert_true(c.challenge);
	}
	assert_int_equal(ftm_config_set(&c, "challenge", "maybe", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "challenge"));
}

static void numbers_are_range_checked(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX];

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "0", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "1-65535"));
	assert_int_equal(ftm_config_set(&c, "push.server_port", "65536", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "-1", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "44x", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.server_port", "65535", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_set(&c, "push.timeout", "0", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "challenge_timeout", "0", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "lockout_threshold", "0", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_set(&c, "activation_expire", "0", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_set(&c, "window", "11", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "debug", "2", err, sizeof(err)), 0);
	assert_int_equal(c.debug, 2);
	assert_int_equal(ftm_config_set(&c, "debug", "3", err, sizeof(err)), -1);
	assert_int_equal(c.push.server_port, 65535);
}

static void no_token_is_reject_or_pass(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX];

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_set(&c, "no_token", "pass", err, sizeof(err)), 0);
	assert_int_equal(c.no_token, FTM_NO_TOKEN_PASS);
	assert_int_equal(ftm_config_set(&c, "no_token", "reject", err, sizeof(err)), 0);
	assert_int_equal(c.no_token, FTM_NO_TOKEN_REJECT);
	assert_int_equal(ftm_config_set(&c, "no_token", "ignore", err, sizeof(err)), -1);
}

static void strings_too_long_or_unsafe_are_refused(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX], big[2000];

	(void)state;
	ftm_config_defaults(&c);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(ftm_config_set(&c, "token_db", big, err, sizeof(err)), -1);
	assert_string_equal(c.token_db, FTM_DEFAULT_TOKEN_DB);
	assert_int_equal(ftm_config_set(&c, "push.server", "evil.example/x?y", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.server", "radius.example.com", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_set(&c, "push.server", "[2001:db8::1]", err, sizeof(err)), 0);
	assert_int_equal(ftm_config_set(&c, "push.interface", "eth0 up", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.interface", "averyveryverylongifname", err, sizeof(err)), -1);
	assert_int_equal(ftm_config_set(&c, "push.interface", "port1", err, sizeof(err)), 0);
}

static void option_names_are_all_settable(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX];
	size_t n = 0;

	(void)state;
	ftm_config_defaults(&c);
	for (const char *const *p = ftm_config_option_names; *p != NULL; p++, n++) {
		int rc = ftm_config_set(&c, *p, "", err, sizeof(err));

		/* "" is a fine string, a bad number/boolean: either way the name must be known */
		if (rc != 0)
			assert_null(strstr(err, "unknown option"));
	}
	assert_int_equal(n, 35);	/* with metrics_listen, metrics_allow_remote, log_accepts */
}

static void file_with_push_section_and_prefix_loads(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	struct reports r = { 0 };
	const char *path = write_file("ok.conf", 0640,
		"# ftmpush\n"
		"token_db = /tmp/x/tokens.db\n"
		"; comment\n"
		"  window=2\n"
		"no_token = pass\n"
		"push_number_matching = yes\n"
		"\n"
		"[push]\n"
		"status = enable\n"
		"server = \"radius.example.com\"\n"
		"server_port = 8443\r\n"
		"push.timeout = 45\n"
		"[ftmpush]\n"
		"lockout_threshold = 3\n");

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, report, &r, err, sizeof(err)), 0);
	assert_int_equal(r.n, 0);
	assert_string_equal(c.token_db, "/tmp/x/tokens.db");
	assert_int_equal(c.window, 2);
	assert_int_equal(c.no_token, FTM_NO_TOKEN_PASS);
	assert_true(c.push.number_matching);
	assert_true(c.push.status);
	assert_string_equal(c.push.server, "radius.example.com");
	assert_int_equal(c.push.server_port, 8443);
	assert_int_equal(c.push.timeout, 45);
	assert_int_equal(c.lockout_threshold, 3);
}

static void fortios_server_ip_is_a_deprecated_alias_of_server(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	struct reports r = { 0 };
	const char *path = write_file("serverip.conf", 0600, "[push]\nserver-ip = 192.0.2.10\n");

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_set(&c, "push.server-ip", "vpn.example.com", err, sizeof(err)), 0);
	assert_string_equal(c.push.server, "vpn.example.com");
	assert_non_null(ftm_config_deprecated("push.server-ip"));
	assert_non_null(ftm_config_deprecated("push_server-ip"));
	assert_null(ftm_config_deprecated("push.server"));
	assert_int_not_equal(ftm_config_set(&c, "push.server-ip", "bad host/", err, sizeof(err)), 0);

	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, report, &r, err, sizeof(err)), 0);
	assert_string_equal(c.push.server, "192.0.2.10");
	assert_int_equal(r.n, 1);		/* the warning, on its line, not an error */
	assert_int_equal(r.lines[0], 2);
	assert_non_null(strstr(r.msgs[0], "warning: server-ip is deprecated"));
}

static void file_errors_carry_line_numbers(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	struct reports r = { 0 };
	const char *path = write_file("bad.conf", 0600,
		"window = 1\n"
		"bogus = 1\n"
		"just words\n"
		"[push]\n"
		"server_port = 70000\n"
		"[nonsense]\n"
		"whatever = 1\n"
		"[push]\n"
		"status = maybe\n");

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, report, &r, err, sizeof(err)), 5);
	assert_int_equal(r.n, 5);
	assert_int_equal(r.lines[0], 2);
	assert_non_null(strstr(r.msgs[0], "bogus"));
	assert_int_equal(r.lines[1], 3);
	assert_int_equal(r.lines[2], 5);
	assert_non_null(strstr(r.msgs[2], "1-65535"));
	assert_int_equal(r.lines[3], 6);
	assert_non_null(strstr(r.msgs[3], "nonsense"));
	assert_int_equal(r.lines[4], 9);
	assert_string_equal(err, "line 2: unknown option 'bogus'");
	assert_int_equal(c.push.server_port, 4433);
}

static void writable_by_others_is_refused(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	const char *path = write_file("gw.conf", 0664, "window = 2\n");

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "writable"));
	assert_int_equal(c.window, 1);
	path = write_file("ww.conf", 0602, "window = 2\n");
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 1);
}

static void owned_by_another_user_is_refused(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	const char *path = write_file("owner.conf", 0600, "no_token = pass\n");

	(void)state;
	if (geteuid() != 0) {
		skip();	/* only root can give a file away */
		return;
	}
	assert_int_equal(chown(path, 65534, 65534), 0);
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "owned by uid 65534"));
	assert_int_equal(c.no_token, FTM_NO_TOKEN_REJECT);
	assert_int_equal(chown(path, 0, 0), 0);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 0);
	assert_int_equal(c.no_token, FTM_NO_TOKEN_PASS);
}

static void world_readable_secret_is_refused(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	const char *path = write_file("secret.conf", 0644, "[push]\nntfy_token = tk_secret123\n");

	(void)state;
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "world-readable"));
	assert_null(strstr(err, "tk_secret123"));
	path = write_file("secret.conf", 0640, "[push]\nntfy_token = tk_secret123\n");
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 0);
	assert_string_equal(c.push.ntfy_token, "tk_secret123");
	/* world-readable without a secret is fine */
	path = write_file("plain.conf", 0644, "window = 0\n");
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 0);
}

static void missing_file_is_an_error(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	char path[128];

	(void)state;
	snprintf(path, sizeof(path), "%s/absent.conf", dir);
	ftm_config_defaults(&c);
	assert_int_equal(ftm_config_load(&c, path, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(ftm_config_load(&c, dir, NULL, NULL, err, sizeof(err)), 1);
}

static void push_config(ftm_config_t *c)
{
	ftm_config_defaults(c);
	c->push.status = true;
	snprintf(c->push.server, sizeof(c->push.server), "127.0.0.1");
	snprintf(c->push.server_cert, sizeof(c->push.server_cert), "%s", cert);
	snprintf(c->push.server_key, sizeof(c->push.server_key), "%s", key);
}

static void valid_push_config_passes(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";

	(void)state;
	push_config(&c);
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 0);
	c.push.server[0] = '\0';
	snprintf(c.push.interface, sizeof(c.push.interface), "lo");
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 0);
}

static void server_and_interface_are_exclusive(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";

	(void)state;
	push_config(&c);
	snprintf(c.push.interface, sizeof(c.push.interface), "lo");
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "set either interface or server but not both"));
	/* also when push is disabled: the config is wrong either way */
	c.push.status = false;
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
}

static void push_enabled_needs_server_or_interface(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";

	(void)state;
	push_config(&c);
	c.push.server[0] = '\0';
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "server"));
}

static void push_enabled_needs_a_usable_cert(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	struct reports r = { 0 };

	(void)state;
	push_config(&c);
	c.push.server_cert[0] = '\0';
	assert_int_equal(ftm_config_validate(&c, report, &r, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "server_cert"));

	push_config(&c);
	snprintf(c.push.server_cert, sizeof(c.push.server_cert), "%s/none.pem", dir);
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "not readable"));

	push_config(&c);
	snprintf(c.push.server_cert, sizeof(c.push.server_cert), "%s", write_file("junk.pem", 0600, "junk\n"));
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "no PEM certificate"));

	push_config(&c);
	snprintf(c.push.server_key, sizeof(c.push.server_key), "%s", other_key);
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "does not match"));

	/* push disabled: no cert needed */
	push_config(&c);
	c.push.status = false;
	c.push.server_cert[0] = '\0';
	assert_int_equal(ftm_config_validate(&c, NULL, NULL, err, sizeof(err)), 0);
}

static void validate_reports_every_problem(void **state)
{
	ftm_config_t c;
	char err[FTM_ERR_MAX] = "";
	struct reports r = { 0 };

	(void)state;
	ftm_config_defaults(&c);
	c.token_db[0] = '\0';
	c.push.timeout = 0;
	c.challenge_timeout = 0;
	c.push.server_port = 0;
	c.push.status = true;
	snprintf(c.push.gateway_url, sizeof(c.push.gateway_url), "ftp://x");
	assert_int_equal(ftm_config_validate(&c, report, &r, err, sizeof(err)), 7);
	assert_int_equal(r.n, 7);
	assert_string_equal(err, "token_db is required");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(defaults_are_the_documented_ones),
		cmocka_unit_test(push_options_take_three_spellings),
		cmocka_unit_test(booleans_accept_the_usual_words),
		cmocka_unit_test(numbers_are_range_checked),
		cmocka_unit_test(no_token_is_reject_or_pass),
		cmocka_unit_test(strings_too_long_or_unsafe_are_refused),
		cmocka_unit_test(option_names_are_all_settable),
		cmocka_unit_test(file_with_push_section_and_prefix_loads),
		cmocka_unit_test(fortios_server_ip_is_a_deprecated_alias_of_server),
		cmocka_unit_test(file_errors_carry_line_numbers),
		cmocka_unit_test(writable_by_others_is_refused),
		cmocka_unit_test(owned_by_another_user_is_refused),
		cmocka_unit_test(world_readable_secret_is_refused),
		cmocka_unit_test(missing_file_is_an_error),
		cmocka_unit_test(valid_push_config_passes),
		cmocka_unit_test(server_and_interface_are_exclusive),
		cmocka_unit_test(push_enabled_needs_server_or_interface),
		cmocka_unit_test(push_enabled_needs_a_usable_cert),
		cmocka_unit_test(validate_reports_every_problem),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

/* config_validate: the cross-option checks (ftm_config_validate), apart from the file's parser so that
 * what only reads a config file (the PAM module's thin part) needs neither OpenSSL nor the metrics code. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config_internal.h"
#include "ftm_metrics.h"
#include "ftm_util.h"

/* ---- cross-option checks ---- */

/* A usable listener identity: the certificate and the key load and belong together. */
static int check_cert_key(const char *cert_path, const char *key_path, char *why, size_t why_len)
{
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int rc = -1;

	if (access(cert_path, R_OK) != 0) {
		snprintf(why, why_len, "push.server_cert %.200s is not readable: %s", cert_path, strerror(errno));
		return -1;
	}
	if (access(key_path, R_OK) != 0) {
		snprintf(why, why_len, "push.server_key %.200s is not readable: %s", key_path, strerror(errno));
		return -1;
	}
	b = BIO_new_file(cert_path, "r");
	if (b == NULL || (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL) {
		snprintf(why, why_len, "push.server_cert %.200s holds no PEM certificate", cert_path);
		goto out;
	}
	BIO_free(b);
	b = BIO_new_file(key_path, "r");
	if (b == NULL || (k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL)) == NULL) {
		snprintf(why, why_len, "push.server_key %.200s holds no unencrypted PEM private key", key_path);
		goto out;
	}
	if (X509_check_private_key(x, k) != 1) {
		snprintf(why, why_len, "push.server_key does not match push.server_cert");
		goto out;
	}
	rc = 0;
out:
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

static bool has_scheme(const char *url, const char *const *schemes)
{
	for (; *schemes != NULL; schemes++)
		if (strncasecmp(url, *schemes, strlen(*schemes)) == 0 && url[strlen(*schemes)] != '\0')
			return true;
	return false;
}

/* A bare address: something@domain, nothing that could end a header or an SMTP command. */
static bool valid_address(const char *a)
{
	const char *at = strchr(a, '@');

	if (at == NULL || at == a || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	for (const char *c = a; *c != '\0'; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f || strchr("<>()[],;:\\\"", *c) != NULL)
			return false;
	return true;
}

bool ftm_config_valid_email(const char *address)
{
	return address != NULL && strlen(address) < 256 && valid_address(address);
}

/* Activation mail: the server URL, a sender, TLS unless the admin turned it off, a private credentials file. */
static void check_smtp(struct load_state *ls, const ftm_smtp_config_t *m)
{
	static const char *const smtp[] = { "smtp://", "smtps://", NULL };
	struct stat sb;

	if (m->server[0] == '\0') {
		if (m->credentials[0] != '\0' || m->from[0] != '\0')
			ftm_config_load_error(ls, 0, "smtp: set smtp.server (smtp://HOST:PORT or smtps://HOST:PORT) to send mail");
		return;
	}
	if (!has_scheme(m->server, smtp) || strpbrk(m->server, " \t\r\n") != NULL)
		ftm_config_load_error(ls, 0, "smtp.server must be an smtp://HOST[:PORT] (STARTTLS) or smtps://HOST[:PORT] URL");
	else if (strchr(m->server, '@') != NULL)
		ftm_config_load_error(ls, 0, "smtp.server: no user name or password in the URL; put them in smtp.credentials");
	if (m->from[0] == '\0')
		ftm_config_load_error(ls, 0, "smtp.server is set: set smtp.from (the sender address of activation mail)");
	else if (!valid_address(m->from))
		ftm_config_load_error(ls, 0, "smtp.from '%.200s' is not an e-mail address", m->from);
	if (m->credentials[0] != '\0') {
		if (stat(m->credentials, &sb) != 0 || access(m->credentials, R_OK) != 0)
			ftm_config_load_error(ls, 0, "smtp.credentials %.200s is not readable: %s", m->credentials, strerror(errno));
		else if (!S_ISREG(sb.st_mode))
			ftm_config_load_error(ls, 0, "smtp.credentials %.200s is not a regular file", m->credentials);
		else if (sb.st_mode & (S_IRWXG | S_IRWXO))
			ftm_config_load_error(ls, 0, "smtp.credentials %.200s is accessible by group or others (mode %04o): "
				   "refused; chmod 0600 it", m->credentials, (unsigned)(sb.st_mode & 07777));
		if (!m->starttls && strncasecmp(m->server, "smtp://", 7) == 0)
			ftm_config_load_error(ls, 0, "smtp.credentials with smtp.starttls = no would send the password in clear: "
				   "refused (use STARTTLS or smtps://)");
	}
	if (m->ca_file[0] != '\0' && access(m->ca_file, R_OK) != 0)
		ftm_config_load_error(ls, 0, "smtp.ca_file %.200s is not readable: %s", m->ca_file, strerror(errno));
	if (m->timeout == 0)
		ftm_config_load_error(ls, 0, "smtp.timeout must be greater than 0");
}

int ftm_config_validate(const ftm_config_t *cfg, ftm_config_report_fn report, void *ctx,
			char *err, size_t err_len)
{
	static const char *const http[] = { "https://", "http://", NULL };
	static const char *const proxies[] = { "http://", "https://", "socks4://", "socks4a://",
					       "socks5://", "socks5h://", NULL };
	struct load_state ls = { report, ctx, err, err_len, 0 };
	const ftm_push_config_t *p;
	char why[FTM_ERR_MAX], addr[64];
	unsigned port;

	if (cfg == NULL) {
		ftm_config_load_error(&ls, 0, "no configuration");
		return ls.errors;
	}
	p = &cfg->push;
	if (cfg->token_db[0] == '\0')
		ftm_config_load_error(&ls, 0, "token_db is required");
	if (cfg->challenge_timeout == 0)
		ftm_config_load_error(&ls, 0, "challenge_timeout must be greater than 0");
	if (cfg->window > 10)
		ftm_config_load_error(&ls, 0, "window must be 0-10 steps");
	if (cfg->debug < 0 || cfg->debug > 2)
		ftm_config_load_error(&ls, 0, "debug must be 0, 1 or 2");
	if (p->server[0] != '\0' && p->interface[0] != '\0')
		ftm_config_load_error(&ls, 0, "push: set either interface or server but not both");
	if (p->server_port < 1 || p->server_port > 65535)
		ftm_config_load_error(&ls, 0, "push.server_port must be 1-65535");
	if (p->timeout == 0)
		ftm_config_load_error(&ls, 0, "push.timeout must be greater than 0");
	if (p->gateway_url[0] != '\0' && !has_scheme(p->gateway_url, http))
		ftm_config_load_error(&ls, 0, "push.gateway_url must be an https:// (or http://) URL");
	if (p->proxy[0] != '\0' && !has_scheme(p->proxy, proxies))
		ftm_config_load_error(&ls, 0, "push.proxy must be a URL such as http://proxy:3128");
	if (p->ca_file[0] != '\0' && access(p->ca_file, R_OK) != 0)
		ftm_config_load_error(&ls, 0, "push.ca_file %.200s is not readable: %s", p->ca_file, strerror(errno));
	if (p->status) {
		if (p->server[0] == '\0' && p->interface[0] == '\0')
			ftm_config_load_error(&ls, 0, "push is enabled: set server (the address phones call back) or interface");
		if (p->server_cert[0] == '\0' || p->server_key[0] == '\0')
			ftm_config_load_error(&ls, 0, "push is enabled: set server_cert and server_key (the listener's TLS certificate and key)");
		else if (check_cert_key(p->server_cert, p->server_key, why, sizeof(why)) != 0)
			ftm_config_load_error(&ls, 0, "push is enabled: %s", why);
		if (p->socket[0] != '\0' && p->socket[0] != '/')
			ftm_config_load_error(&ls, 0, "push.socket must be an absolute path");
	}
	check_smtp(&ls, &cfg->smtp);
	if (cfg->metrics_listen[0] != '\0' && ftm_metrics_parse_listen(cfg->metrics_listen, cfg->metrics_allow_remote,
								      addr, sizeof(addr), &port, why, sizeof(why)) != 0)
		ftm_config_load_error(&ls, 0, "%s", why);
	return ls.errors;
}

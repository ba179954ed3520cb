/* mail: one message through SMTP with libcurl, TLS required unless the admin turned it off. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ftm_mail.h"
#include "ftm_otp.h"

#define SETERR(...) do { if (err != NULL && err_len > 0) snprintf(err, err_len, __VA_ARGS__); } while (0)
#define CRED_MAX	1024

typedef struct upload {
	const char	*data;
	size_t		len, pos;
} upload_t;

typedef struct transcript {
	char		last[256];	/* the server's last reply line: what an admin needs to see */
} transcript_t;

static size_t read_cb(char *buf, size_t size, size_t nitems, void *ctx)
{
	upload_t *u = ctx;
	size_t n = size * nitems;

	if (n > u->len - u->pos)
		n = u->len - u->pos;
	memcpy(buf, u->data + u->pos, n);
	u->pos += n;
	return n;
}

/* Only what the server says is kept; what we send (AUTH carries the password) is never looked at. */
static int debug_cb(CURL *c, curl_infotype type, char *data, size_t size, void *ctx)
{
	transcript_t *t = ctx;
	size_t n = size;

	(void)c;
	if (type != CURLINFO_HEADER_IN || size == 0)
		return 0;
	while (n > 0 && (data[n - 1] == '\r' || data[n - 1] == '\n'))
		n--;
	if (n >= sizeof(t->last))
		n = sizeof(t->last) - 1;
	for (size_t i = 0; i < n; i++)
		t->last[i] = (unsigned char)data[i] < 0x20 || (unsigned char)data[i] == 0x7f ? ' ' : data[i];
	t->last[n] = '\0';
	return 0;
}

/* Line 1 the user name, line 2 the password; a file others can read is refused (fail closed). */
static int read_credentials(const char *path, char *user, char *pass, size_t max, char *err, size_t err_len)
{
	char buf[CRED_MAX + 1], *nl;
	struct stat sb;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0) {
		SETERR("smtp.credentials %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (sb.st_mode & (S_IRWXG | S_IRWXO))) {
		SETERR("smtp.credentials %s must be a regular file of mode 0600: refused", path);
		close(fd);
		return -1;
	}
	n = read(fd, buf, CRED_MAX);
	close(fd);
	if (n <= 0) {
		SETERR("smtp.credentials %s: empty or unreadable", path);
		return -1;
	}
	buf[n] = '\0';
	nl = strchr(buf, '\n');
	if (nl == NULL) {
		SETERR("smtp.credentials %s: expected the user name on line 1 and the password on line 2", path);
		ftm_memzero(buf, sizeof(buf));
		return -1;
	}
	*nl = '\0';
	buf[strcspn(buf, "\r")] = '\0';
	nl[1 + strcspn(nl + 1, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) >= max || strlen(nl + 1) >= max) {
		SETERR("smtp.credentials %s: empty or too long user name or password", path);
		ftm_memzero(buf, sizeof(buf));
		return -1;
	}
	snprintf(user, max, "%s", buf);
	snprintf(pass, max, "%s", nl + 1);
	ftm_memzero(buf, sizeof(buf));
	return 0;
}

int ftm_mail_send(const ftm_smtp_config_t *smtp, const char *to, const char *message, char *err, size_t err_len)
{
	char from[300], rcpt[300], user[CRED_MAX], pass[CRED_MAX], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *rcpts = NULL;
	transcript_t tr = { "" };
	upload_t up;
	CURL *c = NULL;
	CURLcode res;
	int rc = -1;

	user[0] = pass[0] = '\0';
	if (smtp == NULL || smtp->server[0] == '\0') {
		SETERR("no mail server configured (smtp.server)");
		return -1;
	}
	if (!ftm_config_valid_email(smtp->from) || !ftm_config_valid_email(to)) {
		SETERR("mail via %s: bad sender (smtp.from) or recipient address", smtp->server);
		return -1;
	}
	if (smtp->credentials[0] != '\0' &&
	    read_credentials(smtp->credentials, user, pass, sizeof(user), err, err_len) != 0)
		return -1;
	snprintf(from, sizeof(from), "<%s>", smtp->from);
	snprintf(rcpt, sizeof(rcpt), "<%s>", to);
	up.data = message;
	up.len = strlen(message);
	up.pos = 0;
	c = curl_easy_init();
	rcpts = curl_slist_append(NULL, rcpt);
	if (c == NULL || rcpts == NULL) {
		SETERR("mail via %s: out of memory", smtp->server);
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_URL, smtp->server);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USE_SSL, smtp->starttls ? (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
	if (smtp->ca_file[0] != '\0')
		curl_easy_setopt(c, CURLOPT_CAINFO, smtp->ca_file);
	if (user[0] != '\0') {
		curl_easy_setopt(c, CURLOPT_USERNAME, user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, pass);
	}
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
	curl_easy_setopt(c, CURLOPT_READDATA, &up);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)(smtp->timeout ? smtp->timeout : 30));
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb);
	curl_easy_setopt(c, CURLOPT_DEBUGDATA, &tr);
	curl_easy_setopt(c, CURLOPT_VERBOSE, 1L);
	res = curl_easy_perform(c);
	if (res != CURLE_OK) {
		SETERR("mail to %s via %s failed: %s%s%s%s", to, smtp->server,
		       cerr[0] ? cerr : curl_easy_strerror(res),
		       tr.last[0] ? " (server said: " : "", tr.last, tr.last[0] ? ")" : "");
		goto out;
	}
	rc = 0;
out:
	ftm_memzero(user, sizeof(user));
	ftm_memzero(pass, sizeof(pass));
	curl_slist_free_all(rcpts);
	if (c != NULL)
		curl_easy_cleanup(c);
	return rc;
}

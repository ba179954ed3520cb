/* audit: the trail's helpers: this node's name, admin rows, retention, and the admin's view of rows. */
#include "config.h"

#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ftm_audit.h"
#include "ftm_util.h"

void ftm_audit_node(const ftm_config_t *cfg, char *out, size_t len)
{
	char host[256] = "";

	if (cfg != NULL && cfg->node_name[0] != '\0') {
		ftm_copy(out, len, cfg->node_name);
		return;
	}
	if (gethostname(host, sizeof(host) - 1) != 0)
		host[0] = '\0';
	ftm_copy(out, len, host[0] ? host : "-");
}

/* "root", or "root (sudo by alice)": who ran the command, by the kernel's uid, and whom sudo names. */
static void admin_name(char *out, size_t len)
{
	struct passwd pw, *res = NULL;
	char buf[1024];
	const char *sudo = getenv("SUDO_USER");
	uid_t uid = getuid();

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(out, len, "%s%s%.64s%s", res->pw_name, sudo ? " (sudo by " : "", sudo ? sudo : "", sudo ? ")" : "");
	else
		snprintf(out, len, "uid %u", (unsigned)uid);
}

void ftm_audit_ctl_row(const ftm_config_t *cfg, ftm_audit_row_t *a, const char *event, const char *command)
{
	memset(a, 0, sizeof(*a));
	ftm_copy(a->event, sizeof(a->event), event);
	admin_name(a->client, sizeof(a->client));
	ftm_copy(a->nas, sizeof(a->nas), command);
	ftm_copy(a->frontend, sizeof(a->frontend), FTM_AUDIT_FE_CTL);
	ftm_audit_node(cfg, a->node, sizeof(a->node));
}

void ftm_audit_admin(ftm_store_t *st, const ftm_config_t *cfg, const ftm_log_t *log, const char *command,
		     const char *serial, const char *user, const char *result, const char *reason)
{
	ftm_audit_row_t a;
	char err[FTM_ERR_MAX] = "";

	if (st == NULL)
		return;
	ftm_audit_ctl_row(cfg, &a, FTM_AUDIT_EV_ADMIN, command);
	ftm_copy(a.result, sizeof(a.result), result);
	ftm_copy(a.serial, sizeof(a.serial), serial);
	if (user != NULL) {
		ftm_copy(a.user, sizeof(a.user), user);
	} else if (serial != NULL && serial[0] != '\0') {
		ftm_token_t t;

		if (ftm_store_token_get(st, serial, &t, NULL, 0) == 0)
			ftm_copy(a.user, sizeof(a.user), t.user);
		ftm_memzero(&t, sizeof(t));
	}
	ftm_copy(a.reason, sizeof(a.reason), reason);
	if (ftm_store_audit_append(st, &a, err, sizeof(err)) != 0)
		ftm_log(log, FTM_LOG_ERR, "audit: the row of '%s' could not be written: %s", ftm_or(command, "?"), err);
}

int ftm_audit_prune(ftm_store_t *st, unsigned retention_days, time_t now, unsigned long *removed,
		    char *err, size_t err_len)
{
	if (removed != NULL)
		*removed = 0;
	if (retention_days == 0)
		return 0;
	return ftm_store_audit_prune(st, (int64_t)now - (int64_t)retention_days * 86400, removed, err, err_len);
}

int ftm_audit_parse_since(const char *s, time_t now, int64_t *out)
{
	struct tm tm;
	char *end;
	long long v;
	const char *rest;

	if (s == NULL || s[0] == '\0' || s[0] == '-')
		return -1;
	v = strtoll(s, &end, 10);
	if (end != s && (*end == 's' || *end == 'm' || *end == 'h' || *end == 'd') && end[1] == '\0') {
		long long unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : 86400;

		if (v < 0 || v > 100LL * 365 * 86400 / unit)
			return -1;
		*out = (int64_t)now - v * unit;
		return 0;
	}
	if (end != s && *end == '\0' && end - s > 8) {	/* a unix time, not a bare small number */
		*out = v;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	rest = strptime(s, "%Y-%m-%d", &tm);
	if (rest != NULL && *rest == ' ')
		rest = strptime(rest + 1, "%H:%M", &tm);
	if (rest != NULL && *rest == ':')
		rest = strptime(rest + 1, "%S", &tm);
	if (rest == NULL || *rest != '\0')
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

bool ftm_audit_known_result(const char *s)
{
	static const char *const names[] = {
		FTM_AUDIT_ACCEPTED, FTM_AUDIT_WRONG, FTM_AUDIT_REPLAY, FTM_AUDIT_LOCKED, FTM_AUDIT_EXPIRED,
		FTM_AUDIT_NO_TOKEN, FTM_AUDIT_REFUSED, FTM_AUDIT_ISSUED, FTM_AUDIT_SENT, FTM_AUDIT_APPROVED,
		FTM_AUDIT_DENIED, FTM_AUDIT_TIMEOUT, FTM_AUDIT_FAILED, FTM_AUDIT_ACTIVATED, FTM_AUDIT_USED,
		FTM_AUDIT_OK, FTM_AUDIT_ERROR,
	};

	for (size_t i = 0; s != NULL && i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(s, names[i]) == 0)
			return true;
	return false;
}

/* A field for a terminal: no control character reaches it (a user name from a RADIUS attribute). */
static const char *safe(const char *in, char *buf, size_t len)
{
	size_t i = 0;

	for (; in[i] != '\0' && i + 1 < len; i++)
		buf[i] = (unsigned char)in[i] < 0x20 || in[i] == 0x7f ? '?' : in[i];
	buf[i] = '\0';
	return i > 0 ? buf : "-";
}

void ftm_audit_print(FILE *f, const ftm_audit_row_t *r)
{
	char when[32], b[9][FTM_USER_MAX];
	time_t t = (time_t)r->at;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL || strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(when, sizeof(when), "%lld", (long long)r->at);
	fprintf(f, "%s %s %s user=%s serial=%s client=%s nas=%s frontend=%s node=%s reason=%s\n", when,
		safe(r->event, b[0], sizeof(b[0])), safe(r->result, b[1], sizeof(b[1])), safe(r->user, b[2], sizeof(b[2])),
		safe(r->serial, b[3], sizeof(b[3])), safe(r->client, b[4], sizeof(b[4])), safe(r->nas, b[5], sizeof(b[5])),
		safe(r->frontend, b[6], sizeof(b[6])), safe(r->node, b[7], sizeof(b[7])), safe(r->reason, b[8], sizeof(b[8])));
}

void ftm_audit_print_json(FILE *f, const ftm_audit_row_t *r)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "id", json_object_new_int64(r->id));
	json_object_object_add(o, "time", json_object_new_int64(r->at));
	json_object_object_add(o, "event", json_object_new_string(r->event));
	json_object_object_add(o, "result", json_object_new_string(r->result));
	json_object_object_add(o, "user", json_object_new_string(r->user));
	json_object_object_add(o, "serial", json_object_new_string(r->serial));
	json_object_object_add(o, "client", json_object_new_string(r->client));
	json_object_object_add(o, "nas", json_object_new_string(r->nas));
	json_object_object_add(o, "frontend", json_object_new_string(r->frontend));
	json_object_object_add(o, "node", json_object_new_string(r->node));
	json_object_object_add(o, "reason", json_object_new_string(r->reason));
	fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), f);
	json_object_put(o);
}

/* config: defaults, setting options by name, the key = value file, and FortiOS-style validation. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_internal.h"
#include "ftm_config.h"
#include "ftm_policy.h"
#include "ftm_util.h"

#define LINE_MAX_BYTES	4096	/* a config line longer than this is an error, not a silent cut */

typedef enum { T_STR, T_UINT, T_BOOL, T_NO_TOKEN, T_HOST, T_IFACE } opt_type_t;

typedef struct {
	const char	*name;		/* as documented: "window", "push.server_port" */
	opt_type_t	type;
	size_t		off;		/* offset in ftm_config_t */
	size_t		size;		/* T_STR/T_HOST/T_IFACE: buffer size */
	unsigned long	min, max;	/* T_UINT */
	bool		secret;		/* never echoed in an error; makes a world-readable file an error */
} opt_t;

#define STR(n, f, sec)	{ n, T_STR, offsetof(ftm_config_t, f), sizeof(((ftm_config_t *)0)->f), 0, 0, sec }
#define UINT(n, f, lo, hi) { n, T_UINT, offsetof(ftm_config_t, f), sizeof(unsigned), lo, hi, false }
#define BOOL(n, f)	{ n, T_BOOL, offsetof(ftm_config_t, f), sizeof(bool), 0, 0, false }

static const opt_t options[] = {
	STR("token_db", token_db, false),
	STR("key_file", key_file, false),
	UINT("window", window, 0, 10),
	UINT("lockout_threshold", lockout_threshold, 0, 1000),
	UINT("activation_expire", activation_expire, 0, 5256000),	/* 10 years of minutes */
	{ "no_token", T_NO_TOKEN, offsetof(ftm_config_t, no_token), sizeof(ftm_no_token_t), 0, 0, false },
	BOOL("challenge", challenge),
	UINT("challenge_timeout", challenge_timeout, 1, 86400),
	{ "debug", T_UINT, offsetof(ftm_config_t, debug), sizeof(int), 0, 2, false },
	BOOL("push.status", push.status),
	{ "push.server", T_HOST, offsetof(ftm_config_t, push.server), sizeof(((ftm_config_t *)0)->push.server), 0, 0, false },
	{ "push.interface", T_IFACE, offsetof(ftm_config_t, push.interface), 16, 0, 0, false },
	UINT("push.server_port", push.server_port, 1, 65535),
	STR("push.server_cert", push.server_cert, false),
	STR("push.server_key", push.server_key, false),
	UINT("push.timeout", push.timeout, 1, 3600),
	STR("push.gateway_url", push.gateway_url, false),
	STR("push.proxy", push.proxy, false),
	STR("push.ca_file", push.ca_file, false),
	STR("push.ntfy_token", push.ntfy_token, true),
	BOOL("push.number_matching", push.number_matching),
	STR("push.socket", push.socket, false),
	STR("issuer", issuer, false),
	STR("smtp.server", smtp.server, false),
	STR("smtp.from", smtp.from, false),
	BOOL("smtp.starttls", smtp.starttls),
	STR("smtp.credentials", smtp.credentials, false),
	STR("smtp.ca_file", smtp.ca_file, false),
	UINT("smtp.timeout", smtp.timeout, 1, 600),
	STR("node_name", node_name, false),
	UINT("audit_retention", audit_retention, 0, 36500),
	UINT("lockout_duration", lockout_duration, 0, 525600),	/* a year of minutes */
	STR("metrics_listen", metrics_listen, false),
	BOOL("metrics_allow_remote", metrics_allow_remote),
	BOOL("log_accepts", log_accepts),
};
#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

const char *const ftm_config_option_names[] = {
	"token_db", "key_file", "window", "lockout_threshold", "activation_expire", "no_token",
	"challenge", "challenge_timeout", "debug",
	"push.status", "push.server", "push.interface", "push.server_port", "push.server_cert",
	"push.server_key", "push.timeout", "push.gateway_url", "push.proxy", "push.ca_file",
	"push.ntfy_token", "push.number_matching", "push.socket",
	"issuer", "smtp.server", "smtp.from", "smtp.starttls", "smtp.credentials", "smtp.ca_file", "smtp.timeout",
	"node_name", "audit_retention",
	"lockout_duration",
	"metrics_listen", "metrics_allow_remote", "log_accepts",
	NULL
};

void ftm_config_defaults(ftm_config_t *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->token_db, sizeof(cfg->token_db), "%s", FTM_DEFAULT_TOKEN_DB);
	cfg->key_file[0] = '\0';	/* "": token_db + ".key", resolved by the store */
	cfg->window = 1;
	cfg->lockout_threshold = 5;
	cfg->activation_expire = 4320;
	cfg->no_token = FTM_NO_TOKEN_REJECT;
	cfg->challenge = true;
	cfg->challenge_timeout = 300;
	cfg->debug = 0;
	cfg->push.status = false;
	cfg->push.server_port = FTM_DEFAULT_SERVER_PORT;
	cfg->push.timeout = FTM_DEFAULT_PUSH_TIMEOUT;
	cfg->push.number_matching = false;
	snprintf(cfg->push.socket, sizeof(cfg->push.socket), "%s", FTM_DEFAULT_SOCKET);
	snprintf(cfg->issuer, sizeof(cfg->issuer), "%s", "ftmpush");
	cfg->smtp.starttls = true;
	cfg->smtp.timeout = 30;
	cfg->audit_retention = 90;
	cfg->log_accepts = true;
}

#define seterr ftm_set_err	/* the one error-buffer helper (util.c) */

/* Old names an admin migrating from a FortiGate types (FortiOS's `config system ftm-push` called
 * the callback address server-ip before it became server): accepted, with a warning. */
static const struct {
	const char	*old_name;	/* canonical spelling, "push.X" */
	const char	*name;
	const char	*warning;
} aliases[] = {
	{ "push.server-ip", "push.server",
	  "server-ip is deprecated (FortiOS's old name): write server; accepted as server" },
};
#define N_ALIASES (sizeof(aliases) / sizeof(aliases[0]))

/* "push.X", "push_X" -> "push.X" in canon (smtp alike); top-level names as they are. */
static void canonical_name(const char *name, char *canon, size_t len)
{
	if (strncmp(name, "push_", 5) == 0 || strncmp(name, "push.", 5) == 0)
		snprintf(canon, len, "push.%s", name + 5);
	else if (strncmp(name, "smtp_", 5) == 0 || strncmp(name, "smtp.", 5) == 0)
		snprintf(canon, len, "smtp.%s", name + 5);
	else
		snprintf(canon, len, "%s", name);
}

static const char *alias_target(const char *canon)
{
	for (size_t i = 0; i < N_ALIASES; i++)
		if (strcmp(aliases[i].old_name, canon) == 0)
			return aliases[i].name;
	return NULL;
}

const char *ftm_config_deprecated(const char *name)
{
	char canon[64];

	if (name == NULL)
		return NULL;
	canonical_name(name, canon, sizeof(canon));
	for (size_t i = 0; i < N_ALIASES; i++)
		if (strcmp(aliases[i].old_name, canon) == 0)
			return aliases[i].warning;
	return NULL;
}

static const opt_t *find_option(const char *name)
{
	char canon[64];
	const char *target;

	canonical_name(name, canon, sizeof(canon));
	target = alias_target(canon);
	if (target != NULL)
		snprintf(canon, sizeof(canon), "%s", target);
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (strcmp(options[i].name, canon) == 0)
			return &options[i];
	return NULL;
}

static int parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "enable", "enabled", "1" };
	static const char *const no[] = { "no", "false", "off", "disable", "disabled", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int parse_uint(const char *v, unsigned long *out)
{
	char *end = NULL;
	unsigned long n;

	if (*v < '0' || *v > '9')	/* no sign, no blank: strtoul would take "-1" */
		return -1;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0')
		return -1;
	*out = n;
	return 0;
}

/* server goes into callback URLs: a host name, IPv4, or IPv6 (optionally in brackets), nothing else. */
static bool valid_host(const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_'))
			return false;
	}
	return true;
}

static bool valid_iface(const char *v)
{
	for (const char *p = v; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ':' || (unsigned char)*p >= 0x7f)
			return false;
	return true;
}

int ftm_config_set(ftm_config_t *cfg, const char *name, const char *value, char *err, size_t err_len)
{
	const opt_t *o;
	char *field;
	unsigned long n;
	bool b;

	if (cfg == NULL || name == NULL || value == NULL) {
		seterr(err, err_len, "missing option name or value");
		return -1;
	}
	o = find_option(name);
	if (o == NULL) {
		seterr(err, err_len, "unknown option '%.64s'", name);
		return -1;
	}
	field = (char *)cfg + o->off;
	switch (o->type) {
	case T_HOST:
		if (!valid_host(value)) {
			seterr(err, err_len, "%s: '%.64s' is not a host name or IP address", o->name, value);
			return -1;
		}
		/* fall through */
	case T_IFACE:
		if (o->type == T_IFACE && !valid_iface(value)) {
			seterr(err, err_len, "%s: '%.64s' is not an interface name", o->name, value);
			return -1;
		}
		/* fall through */
	case T_STR:
		if (strlen(value) >= o->size) {
			seterr(err, err_len, "%s: value too long (at most %zu bytes)", o->name, o->size - 1);
			return -1;
		}
		memcpy(field, value, strlen(value) + 1);
		return 0;
	case T_UINT:
		if (parse_uint(value, &n) != 0 || n < o->min || n > o->max) {
			seterr(err, err_len, "%s: '%.32s' is not a number in %lu-%lu", o->name, value, o->min, o->max);
			return -1;
		}
		if (o->size == sizeof(int) && strcmp(o->name, "debug") == 0)
			*(int *)(void *)field = (int)n;
		else
			*(unsigned *)(void *)field = (unsigned)n;
		cfg->policy_given |= ftm_policy_bit(o->name);	/* compared with the store's at start */
		return 0;
	case T_BOOL:
		if (parse_bool(value, &b) != 0) {
			seterr(err, err_len, "%s: '%.32s' is not yes/no (true/false, on/off, enable/disable)",
			       o->name, value);
			return -1;
		}
		*(bool *)(void *)field = b;
		return 0;
	case T_NO_TOKEN:
		if (strcasecmp(value, "reject") == 0) {
			cfg->no_token = FTM_NO_TOKEN_REJECT;
		} else if (strcasecmp(value, "pass") == 0 || strcasecmp(value, "accept") == 0) {
			cfg->no_token = FTM_NO_TOKEN_PASS;
		} else {
			seterr(err, err_len, "no_token: '%.32s' is not reject or pass", value);
			return -1;
		}
		return 0;
	}
	seterr(err, err_len, "%s: internal error", o->name);
	return -1;
}

/* ---- the file ---- */

void ftm_config_load_error(struct load_state *ls, unsigned line, const char *fmt, ...)
{
	char msg[FTM_ERR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ls->report != NULL)
		ls->report(ls->ctx, line, msg);
	if (ls->errors == 0) {
		if (line > 0)
			seterr(ls->err, ls->err_len, "line %u: %s", line, msg);
		else
			seterr(ls->err, ls->err_len, "%s", msg);
	}
	ls->errors++;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static void parse_line(struct load_state *ls, ftm_config_t *cfg, unsigned lineno, char *line,
		       const char **section, bool *bad_section, bool *has_secret)
{
	char *s = trim(line), *eq, *key, *val;
	char name[80], e[FTM_ERR_MAX];
	const opt_t *o;
	size_t vlen;

	if (*s == '\0' || *s == '#' || *s == ';')
		return;
	if (*s == '[') {
		char *close = strchr(s, ']');

		if (close == NULL || *trim(close + 1) != '\0') {
			ftm_config_load_error(ls, lineno, "malformed section header");
			*bad_section = true;
			return;
		}
		*close = '\0';
		s = trim(s + 1);
		*bad_section = false;
		if (strcasecmp(s, "push") == 0) {
			*section = "push";
		} else if (strcasecmp(s, "smtp") == 0) {
			*section = "smtp";
		} else if (strcasecmp(s, "ftmpush") == 0 || strcasecmp(s, "main") == 0) {
			*section = NULL;
		} else {
			ftm_config_load_error(ls, lineno, "unknown section [%.64s] (known: [ftmpush], [push], [smtp])", s);
			*bad_section = true;
		}
		return;
	}
	if (*bad_section)
		return;		/* reported once, at the header */
	eq = strchr(s, '=');
	if (eq == NULL) {
		ftm_config_load_error(ls, lineno, "expected 'name = value'");
		return;
	}
	*eq = '\0';
	key = trim(s);
	val = trim(eq + 1);
	vlen = strlen(val);
	if (vlen >= 2 && ((val[0] == '"' && val[vlen - 1] == '"') || (val[0] == '\'' && val[vlen - 1] == '\''))) {
		val[vlen - 1] = '\0';
		val++;
	}
	if (*key == '\0') {
		ftm_config_load_error(ls, lineno, "missing option name before '='");
		return;
	}
	if (*section != NULL && (strncmp(key, *section, 4) != 0 || (key[4] != '.' && key[4] != '_')))
		snprintf(name, sizeof(name), "%s.%.70s", *section, key);
	else
		snprintf(name, sizeof(name), "%.79s", key);
	o = find_option(name);
	if (o == NULL) {
		ftm_config_load_error(ls, lineno, "unknown option '%.64s'%s%s%s", key, *section ? " in [" : "",
			   *section ? *section : "", *section ? "]" : "");
		return;
	}
	if (ftm_config_set(cfg, name, val, e, sizeof(e)) != 0) {
		ftm_config_load_error(ls, lineno, "%s", e);
		return;
	}
	if (ftm_config_deprecated(name) != NULL && ls->report != NULL) {
		snprintf(e, sizeof(e), "warning: %s", ftm_config_deprecated(name));
		ls->report(ls->ctx, lineno, e);	/* a warning: not counted as an error */
	}
	if (o->secret && *val != '\0')
		*has_secret = true;
}

int ftm_config_load(ftm_config_t *cfg, const char *path, ftm_config_report_fn report, void *ctx,
		    char *err, size_t err_len)
{
	struct load_state ls = { report, ctx, err, err_len, 0 };
	const char *section = NULL;
	bool bad_section = false, has_secret = false;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	struct stat st;
	FILE *f;
	int fd;

	if (cfg == NULL || path == NULL || *path == '\0') {
		ftm_config_load_error(&ls, 0, "no configuration file given");
		return ls.errors;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ftm_config_load_error(&ls, 0, "cannot open %.200s: %s", path, strerror(errno));
		return ls.errors;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		ftm_config_load_error(&ls, 0, "%.200s is not a regular file", path);
		close(fd);
		return ls.errors;
	}
	/* Whoever can write the file decides who logs in. */
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		ftm_config_load_error(&ls, 0, "%.200s is group- or world-writable (mode %04o): refused; chmod go-w it",
			   path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return ls.errors;
	}
	/* ... and so does whoever owns it (as OpenSSH checks its own files): root or ourselves. */
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		ftm_config_load_error(&ls, 0, "%.200s is owned by uid %u, neither root nor this process's user: refused; chown it",
			   path, (unsigned)st.st_uid);
		close(fd);
		return ls.errors;
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		ftm_config_load_error(&ls, 0, "cannot read %.200s: %s", path, strerror(errno));
		close(fd);
		return ls.errors;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		lineno++;
		if ((size_t)n > LINE_MAX_BYTES) {
			ftm_config_load_error(&ls, lineno, "line longer than %d bytes", LINE_MAX_BYTES);
			continue;
		}
		if (strlen(line) != (size_t)n) {
			ftm_config_load_error(&ls, lineno, "NUL byte in line");
			continue;
		}
		parse_line(&ls, cfg, lineno, line, &section, &bad_section, &has_secret);
	}
	if (ferror(f))
		ftm_config_load_error(&ls, 0, "read error on %.200s", path);
	if (line != NULL) {
		explicit_bzero(line, cap);
		free(line);
	}
	fclose(f);
	if (has_secret && (st.st_mode & S_IROTH))
		ftm_config_load_error(&ls, 0, "%.200s holds a secret (ntfy_token) and is world-readable (mode %04o): refused; chmod o-r it",
			   path, (unsigned)(st.st_mode & 07777));
	return ls.errors;
}


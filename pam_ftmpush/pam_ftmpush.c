/* pam_ftmpush: Linux-PAM glue for ftmpush; arguments and conversation here, every decision in ftm_auth:
 * ftmpushd's (asked over its socket) when it runs, else the core object's, dlopen()ed (docs/pam.md). */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define PAM_SM_AUTH
#include <security/pam_modules.h>
#include <security/pam_ext.h>

#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_message.h"
#include "ftm_otp.h"
#include "ftm_rendezvous.h"
#include "ftm_util.h"
#include "pam_core.h"

#define SPLIT_DATA	"ftmpush.split"
#define CONN_DATA	"ftmpush.conn"

/* ftmpushd's connection of a login, kept from the split to the verify (one connection per login);
 * pam_end, a new split or the verify closes it. */
typedef struct {
	pid_t		owner;	/* the process that opened it: a forked child never sends on it */
	ftm_rdv_kept_t	kept;
} conn_data_t;

/* How the second instance waits for a push (see docs/pam.md). */
typedef enum {
	WAIT_PROMPT = 0,	/* ask first: Enter sends the push and waits, a typed code is verified */
	WAIT_BLOCK		/* push at once, PAM_TEXT_INFO, block until the verdict */
} push_wait_t;

typedef struct {
	const char	*config;
	bool		debug;
	bool		use_first_pass;	/* split: never prompt, the password comes from an earlier module */
	bool		split;
	bool		retry;
	push_wait_t	push_wait;
} args_t;

/* What the split instance hands to the second one; the code is zeroed when PAM drops it. */
typedef struct {
	char	user[FTM_USER_MAX];
	bool	has_code;
	bool	has_token;
	bool	push_available;
	char	push_serial[FTM_SERIAL_MAX];		/* the token the push goes to, for the prompt */
	char	code[FTM_PASSCODE_CODE_MAX + 1];
	bool	has_alt;				/* the whole input, for a password ending in digits */
	char	alt_password[FTM_INPUT_MAX + 1];
	/* ftmpushd split it: the code's verdict is ftmpushd's or nobody's, in this process or in a child
	 * forked after the split (which inherits this but not the split's connection) */
	bool	by_daemon;
} split_data_t;

/* The configuration and the core opened for one config file, kept on the PAM handle from the first
 * instance of a stack to the last (pam_end frees it): a login loads the configuration once, and, when
 * it is decided in process, opens the store and checks its key once (the verdict then reuses the
 * split's peek: ftm_auth's proof cache). */
typedef struct {
	pid_t		owner;		/* the process that opened the store */
	ftm_config_t	cfg;
	ftm_log_t	log;
	const ftm_pam_core_t *core;	/* the core object's entry points, once loaded */
	ftm_auth_t	*auth;		/* its ftm_auth, once opened (NULL while ftmpushd decides) */
} core_data_t;

/* Everything one pam_sm_authenticate call holds; freed in one place. */
typedef struct {
	pam_handle_t	*pamh;
	args_t		args;
	ftm_config_t	cfg;		/* a copy of the core data's */
	core_data_t	*data;		/* on the PAM handle: pam_end frees it */
	ftm_login_t	login;
	char		hostname[256];
	bool		silent;		/* PAM_SILENT: no informational messages */
	char		who[FTM_USER_MAX + 320];	/* "service=.. user=.. rhost=.." for logs, cleaned */
} ctx_t;

static void sink_syslog(void *sink_ctx, ftm_log_level_t level, const char *line)
{
	pam_syslog((pam_handle_t *)sink_ctx, ftm_log_syslog_priority(level), "%s", line);
}

static int parse_args(pam_handle_t *pamh, int argc, const char **argv, args_t *a)
{
	memset(a, 0, sizeof(*a));
	a->config = FTM_DEFAULT_CONFIG;
	a->push_wait = WAIT_PROMPT;
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i];

		if (strncmp(arg, "config=", 7) == 0 && arg[7] != '\0')
			a->config = arg + 7;
		else if (strcmp(arg, "debug") == 0)
			a->debug = true;
		/* The stacking conventions every PAM admin types; pam_get_authtok reads them itself. */
		else if (strcmp(arg, "use_first_pass") == 0)
			a->use_first_pass = true;
		else if (strcmp(arg, "try_first_pass") == 0)
			;	/* our default already: use an earlier module's password, else ask */
		else if (strcmp(arg, "split") == 0)
			a->split = true;
		else if (strcmp(arg, "retry") == 0)
			a->retry = true;
		else if (strcmp(arg, "push_wait=prompt") == 0)
			a->push_wait = WAIT_PROMPT;
		else if (strcmp(arg, "push_wait=block") == 0)
			a->push_wait = WAIT_BLOCK;
		else {
			pam_syslog(pamh, LOG_ERR, "unknown argument \"%s\": refusing (PAM_SERVICE_ERR)", arg);
			return -1;
		}
	}
	return 0;
}

static void config_report(void *c, unsigned line, const char *message)
{
	ctx_t *ctx = c;

	pam_syslog(ctx->pamh, strncmp(message, "warning:", 8) == 0 ? LOG_WARNING : LOG_ERR, "%s:%u: %s",
		   ctx->args.config, line, message);
}

static const char *item_str(pam_handle_t *pamh, int item)
{
	const void *v = NULL;

	if (pam_get_item(pamh, item, &v) != PAM_SUCCESS || v == NULL)
		return NULL;
	return v;
}

/* Log fields come from the network or the user: no control characters, no spaces, bounded. */
static void clean(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	if (src == NULL || *src == '\0')
		src = "-";
	for (; *src != '\0' && i + 1 < len; src++)
		dst[i++] = ((unsigned char)*src < 0x21 || *src == 0x7f) ? '?' : *src;
	dst[i] = '\0';
}

static void ctx_free(ctx_t *ctx)
{
	ctx->data = NULL;
	ftm_memzero(&ctx->cfg, sizeof(ctx->cfg));	/* push.ntfy_token: not left on the stack */
}

static void core_data_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	core_data_t *core = data;

	(void)pamh;
	(void)error_status;
	/* A child forked after the login ends its copy of the handle too (PAM_DATA_SILENT): it must not
	 * close, and so checkpoint through, the SQLite connections its parent still owns. */
	if (core->owner == getpid() && core->auth != NULL)
		core->core->close(core->auth);
	ftm_memzero(core, sizeof(*core));
	free(core);
}

/* The configuration for this instance's config file (and debug argument): the one an earlier instance
 * of the stack loaded, or a new one kept on the handle. Returns a PAM code. */
static int core_get(ctx_t *ctx)
{
	char name[sizeof("ftmpush.core debug=1 ") + 4096], err[FTM_ERR_MAX] = "";
	const void *d = NULL;
	core_data_t *core;
	int rc;

	if (snprintf(name, sizeof(name), "ftmpush.core debug=%d %s", ctx->args.debug ? 1 : 0, ctx->args.config)
	    >= (int)sizeof(name)) {
		pam_syslog(ctx->pamh, LOG_ERR, "config path too long: refusing (PAM_SERVICE_ERR)");
		return PAM_SERVICE_ERR;
	}
	if (pam_get_data(ctx->pamh, name, &d) == PAM_SUCCESS && d != NULL &&
	    ((const core_data_t *)d)->owner == getpid()) {
		ctx->data = (core_data_t *)d;
		ctx->cfg = ctx->data->cfg;
		return PAM_SUCCESS;
	}

	core = calloc(1, sizeof(*core));
	if (core == NULL)
		return PAM_BUF_ERR;
	core->owner = getpid();
	ftm_config_defaults(&core->cfg);
	if (ftm_config_load(&core->cfg, ctx->args.config, config_report, ctx, err, sizeof(err)) != 0) {
		pam_syslog(ctx->pamh, LOG_ERR, "config %s refused: %s", ctx->args.config, err);
		core_data_cleanup(ctx->pamh, core, 0);
		return PAM_AUTHINFO_UNAVAIL;
	}
	if (ctx->args.debug && core->cfg.debug < 1)
		core->cfg.debug = 1;

	core->log.sink = sink_syslog;
	core->log.sink_ctx = ctx->pamh;
	core->log.max_level = core->cfg.debug >= 2 ? FTM_LOG_DEBUG2 :
			      core->cfg.debug == 1 ? FTM_LOG_DEBUG : FTM_LOG_INFO;
	rc = pam_set_data(ctx->pamh, name, core, core_data_cleanup);
	if (rc != PAM_SUCCESS) {
		core_data_cleanup(ctx->pamh, core, 0);
		return rc;
	}
	ctx->data = core;
	ctx->cfg = core->cfg;
	return PAM_SUCCESS;
}

/* The core object: next to this module (its directory's ftmpush/, or the directory itself: a build
 * tree's .libs/), found by where this module was loaded from; loaded once per process, never unloaded.
 * NULL with a log line when it is missing or not of this build: the login then fails closed. */
static const ftm_pam_core_t *core_object_load(ctx_t *ctx)
{
	char dir[PATH_MAX], path[PATH_MAX + sizeof("/ftmpush/" FTM_PAM_CORE_FILE)];
	const ftm_pam_core_t *c;
	Dl_info info;
	char *slash;
	void *h = NULL;

	if (dladdr((void *)pam_sm_authenticate, &info) == 0 || info.dli_fname == NULL ||
	    snprintf(dir, sizeof(dir), "%s", info.dli_fname) >= (int)sizeof(dir) || (slash = strrchr(dir, '/')) == NULL) {
		pam_syslog(ctx->pamh, LOG_ERR, "%s: cannot tell where pam_ftmpush.so was loaded from: no core object (refusing)",
			   ctx->who);
		return NULL;
	}
	*slash = '\0';
	snprintf(path, sizeof(path), "%s/ftmpush/%s", dir, FTM_PAM_CORE_FILE);
	if (access(path, F_OK) != 0)
		snprintf(path, sizeof(path), "%s/%s", dir, FTM_PAM_CORE_FILE);
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		pam_syslog(ctx->pamh, LOG_ERR, "%s: ftmpushd is not running and the core object cannot be loaded: %s (refusing)",
			   ctx->who, dlerror());
		return NULL;
	}
	c = dlsym(h, FTM_PAM_CORE_SYMBOL);
	if (c == NULL || c->version == NULL || strcmp(c->version, PACKAGE_VERSION) != 0 ||
	    c->config_size != sizeof(ftm_config_t) || c->outcome_size != sizeof(ftm_outcome_t)) {
		pam_syslog(ctx->pamh, LOG_ERR, "%s: %s is not the core object of this pam_ftmpush.so (%s): refusing",
			   ctx->who, path, c == NULL ? "no " FTM_PAM_CORE_SYMBOL : "another build");
		dlclose(h);
		return NULL;
	}
	return c;
}

/* core_object_load() once per process, under a lock: a PAM application may run logins on threads. */
static const ftm_pam_core_t *core_object(ctx_t *ctx)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	static const ftm_pam_core_t *loaded;
	const ftm_pam_core_t *c;

	pthread_mutex_lock(&mu);
	if (loaded == NULL)
		loaded = core_object_load(ctx);
	c = loaded;
	pthread_mutex_unlock(&mu);
	return c;
}

/* The login decided in process: the core object loaded and its ftm_auth opened (once per handle). */
static int core_auth(ctx_t *ctx)
{
	char err[FTM_ERR_MAX] = "";
	core_data_t *core = ctx->data;

	if (core->auth != NULL)
		return PAM_SUCCESS;
	core->core = core_object(ctx);
	if (core->core == NULL)
		return PAM_AUTHINFO_UNAVAIL;
	core->auth = core->core->open(&core->cfg, &core->log, err, sizeof(err));
	if (core->auth == NULL) {
		pam_syslog(ctx->pamh, LOG_ERR, "%s: cannot start: %s", ctx->who, err);
		return PAM_AUTHINFO_UNAVAIL;
	}
	return PAM_SUCCESS;
}

/* The arguments, the user and the core (loaded by the first instance of the stack). Returns a PAM code. */
static int ctx_init(ctx_t *ctx, pam_handle_t *pamh, int argc, const char **argv)
{
	const char *user = NULL;
	int rc;

	memset(ctx, 0, sizeof(*ctx));
	ctx->pamh = pamh;
	if (parse_args(pamh, argc, argv, &ctx->args) != 0)
		return PAM_SERVICE_ERR;
	if (ctx->args.split && ctx->args.retry) {
		pam_syslog(pamh, LOG_ERR, "split and retry are two instances: refusing (PAM_SERVICE_ERR)");
		return PAM_SERVICE_ERR;
	}

	rc = pam_get_user(pamh, &user, NULL);
	if (rc != PAM_SUCCESS || user == NULL || *user == '\0') {
		pam_syslog(pamh, LOG_ERR, "cannot get the user name: %s", pam_strerror(pamh, rc));
		return rc == PAM_SUCCESS ? PAM_USER_UNKNOWN : rc;
	}
	if (gethostname(ctx->hostname, sizeof(ctx->hostname) - 1) != 0)
		ctx->hostname[0] = '\0';
	ctx->login.user = user;
	ctx->login.client = item_str(pamh, PAM_RHOST);
	ctx->login.nas = item_str(pamh, PAM_SERVICE);
	ctx->login.host = ctx->hostname;
	{
		char svc[64], usr[FTM_USER_MAX], rhost[128];

		clean(svc, sizeof(svc), ctx->login.nas);
		clean(usr, sizeof(usr), user);
		clean(rhost, sizeof(rhost), ctx->login.client);
		snprintf(ctx->who, sizeof(ctx->who), "service=%s user=%s rhost=%s", svc, usr, rhost);
	}

	return core_get(ctx);
}

static void split_data_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	ftm_memzero(data, sizeof(split_data_t));
	free(data);
}

static void conn_data_cleanup(pam_handle_t *pamh, void *data, int error_status)
{
	conn_data_t *c = data;

	(void)pamh;
	(void)error_status;
	/* Only the process that opened it closes it: a forked child may have closed its copy and reused the
	 * number for something of its own (as core_data_cleanup, nothing of the parent's is touched there);
	 * the socket is close-on-exec, and the child's copy goes with the child. */
	if (c->owner == getpid())
		ftm_rdv_login_close(&c->kept);
	free(c);
}

/* The kept connection of this login, taken off the handle (the caller closes it): none when there is
 * none, or when it is not this process's. */
static ftm_rdv_kept_t conn_take(ctx_t *ctx)
{
	ftm_rdv_kept_t kept = FTM_RDV_KEPT_NONE;
	const void *d = NULL;
	conn_data_t *c;

	if (pam_get_data(ctx->pamh, CONN_DATA, &d) != PAM_SUCCESS || d == NULL)
		return kept;
	c = (conn_data_t *)d;
	if (c->owner == getpid()) {
		kept = c->kept;
		c->kept = FTM_RDV_KEPT_NONE;
	}
	pam_set_data(ctx->pamh, CONN_DATA, NULL, NULL);	/* frees it (a copy that is not ours is left alone) */
	return kept;
}

/* Closes the kept connection of this login, if there is one of this process's. */
static void conn_drop(ctx_t *ctx)
{
	ftm_rdv_kept_t kept = conn_take(ctx);

	ftm_rdv_login_close(&kept);
}

/* Keeps the split's connection on the handle for the verify; on failure it is closed (the verify then
 * opens one of its own). */
static void conn_keep(ctx_t *ctx, ftm_rdv_kept_t kept)
{
	conn_data_t *c;

	if (kept.fd < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		ftm_rdv_login_close(&kept);
		return;
	}
	c->owner = getpid();
	c->kept = kept;
	if (pam_set_data(ctx->pamh, CONN_DATA, c, conn_data_cleanup) != PAM_SUCCESS)
		conn_data_cleanup(ctx->pamh, c, 0);
}

static void tell(ctx_t *ctx, int style, const char *msg)
{
	if (ctx->silent && style == PAM_TEXT_INFO)
		return;
	if (msg != NULL && *msg != '\0')
		pam_prompt(ctx->pamh, style, NULL, "%s", msg);
}

/* Ask one question; *answer is malloc'd (caller zeroes and frees). Returns a PAM code. */
static int ask(ctx_t *ctx, int style, const char *prompt, char **answer)
{
	int rc;

	*answer = NULL;
	rc = pam_prompt(ctx->pamh, style, answer, "%s", prompt);
	if (rc != PAM_SUCCESS)
		return rc;
	if (*answer == NULL)
		return PAM_CONV_ERR;
	return PAM_SUCCESS;
}

static void drop_answer(char **answer)
{
	if (*answer != NULL) {
		ftm_memzero(*answer, strlen(*answer));
		free(*answer);
		*answer = NULL;
	}
}

/* The one place an ftm_result_t becomes a PAM code, a user message and a log line. */
static int finish(ctx_t *ctx, const ftm_outcome_t *out)
{
	int rc, prio = LOG_NOTICE;
	const char *msg = out->message;

	switch (out->result) {
	case FTM_RES_OK:
		rc = PAM_SUCCESS;
		prio = LOG_INFO;
		msg = NULL;
		tell(ctx, PAM_TEXT_INFO, out->message);	/* e.g. how many recovery codes are left */
		break;
	case FTM_RES_LOCKED:
		rc = PAM_MAXTRIES;
		break;
	case FTM_RES_NO_TOKEN:
		if (ctx->cfg.no_token == FTM_NO_TOKEN_PASS) {
			rc = PAM_IGNORE;
			prio = LOG_INFO;
			msg = NULL;
		} else {
			rc = PAM_USER_UNKNOWN;
		}
		break;
	case FTM_RES_PUSH_FAILED:
	case FTM_RES_ERROR:
		rc = PAM_AUTHINFO_UNAVAIL;
		prio = LOG_ERR;
		break;
	case FTM_RES_FAIL:
	case FTM_RES_REPLAY:
	case FTM_RES_EXPIRED:
	case FTM_RES_CHALLENGE:	/* an unanswered challenge here means we could not ask it */
	default:
		rc = PAM_AUTH_ERR;
		break;
	}
	tell(ctx, PAM_ERROR_MSG, msg);
	/* The core logged the decision; this line adds the PAM code it became. */
	pam_syslog(ctx->pamh, prio, "%s serial=%s result=%s -> %s", ctx->who, ftm_or(out->serial, "-"),
		   ftm_result_name(out->result), pam_strerror(ctx->pamh, rc));
	return rc;
}

/* ---- who decides: ftmpushd when it runs, else the core object in process ---- */

/* The split of what was typed: by ftmpushd when its socket accepts the connection (*by_daemon), in
 * process when nobody listens there. 0, or a PAM code (logged): once connected, an error fails closed. */
static int split_input(ctx_t *ctx, const char *typed, ftm_split_t *sp, bool *by_daemon)
{
	char err[FTM_ERR_MAX] = "";
	int rc;

	memset(sp, 0, sizeof(*sp));
	*by_daemon = false;
	conn_drop(ctx);	/* an earlier split's connection */
	if (strnlen(typed, FTM_INPUT_MAX + 1) <= FTM_INPUT_MAX) {
		ftm_rdv_kept_t keep = FTM_RDV_KEPT_NONE;

		switch (ftm_rdv_login_split(ctx->cfg.push.socket, ctx->cfg.token_db, &ctx->login, typed, sp, &keep,
					    err, sizeof(err))) {
		case FTM_RDV_LOGIN_ANSWERED:
			if (ctx->cfg.debug)
				pam_syslog(ctx->pamh, LOG_DEBUG, "%s: split by ftmpushd%s", ctx->who,
					   keep.fd >= 0 ? " (its connection kept for the verify)" : "");
			conn_keep(ctx, keep);	/* only when a code was found: its verify follows */
			*by_daemon = true;
			return 0;
		case FTM_RDV_LOGIN_FAILED:
			pam_syslog(ctx->pamh, LOG_ERR, "%s: split by ftmpushd failed, refusing (no fallback once connected): %s",
				   ctx->who, err);
			tell(ctx, PAM_ERROR_MSG, FTM_MSG_UNAVAILABLE);
			return PAM_AUTHINFO_UNAVAIL;
		case FTM_RDV_LOGIN_NO_DAEMON:
		case FTM_RDV_LOGIN_REFUSED:
			if (ctx->cfg.debug)
				pam_syslog(ctx->pamh, LOG_DEBUG, "%s: %s: deciding in process", ctx->who, err);
			break;
		}
	}
	rc = core_auth(ctx);
	if (rc != PAM_SUCCESS)
		return rc;
	if (ctx->data->core->split(ctx->data->auth, &ctx->login, typed, time(NULL), sp) != 0) {
		ftm_memzero(sp, sizeof(*sp));
		pam_syslog(ctx->pamh, LOG_ERR, "%s: split failed (input too long or store unavailable)", ctx->who);
		return PAM_AUTHINFO_UNAVAIL;
	}
	return 0;
}

/* The verdict on the split's code by ftmpushd, on the split's connection when the daemon split this
 * login and this process kept it: true when it decided (out set; an error once connected, or the
 * daemon that split the login gone, is FTM_RES_ERROR: never asked again in process, the code may have
 * been counted), false when no daemon listens and none split the login (nothing was sent). A child
 * forked after the split has no connection of its parent's (its own then), and no daemon is
 * FTM_RES_ERROR there too: the split's data it inherits says the daemon split the login. */
static bool daemon_verify(ctx_t *ctx, const split_data_t *data, ftm_outcome_t *out)
{
	char err[FTM_ERR_MAX] = "";
	ftm_rdv_kept_t keep = conn_take(ctx);	/* the split's connection, when this process kept one */
	ftm_rdv_login_rc_t rc;

	keep.split = data->by_daemon;
	rc = ftm_rdv_login_verify(ctx->cfg.push.socket, ctx->cfg.token_db, &ctx->login, data->code, out, &keep, err,
				  sizeof(err));
	ftm_rdv_login_close(&keep);
	switch (rc) {
	case FTM_RDV_LOGIN_ANSWERED:
		return true;
	case FTM_RDV_LOGIN_FAILED:
		pam_syslog(ctx->pamh, LOG_ERR, "%s: the verdict from ftmpushd failed, refusing (never retried in process once asked): %s",
			   ctx->who, err);
		ftm_outcome_set(out, FTM_RES_ERROR, NULL, FTM_MSG_UNAVAILABLE, "ftmpushd failed mid-request");
		return true;
	case FTM_RDV_LOGIN_REFUSED:	/* refused before anything was decided or counted */
		if (ctx->cfg.debug)
			pam_syslog(ctx->pamh, LOG_DEBUG, "%s: %s: deciding in process", ctx->who, err);
		return false;
	case FTM_RDV_LOGIN_NO_DAEMON:
	default:
		return false;
	}
}

/* ---- the first instance: split what was typed ---- */

static int do_split(ctx_t *ctx)
{
	const char *typed = NULL;
	ftm_split_t sp;
	split_data_t *data;
	bool by_daemon;
	int rc;

	/* An earlier module's password (PAM_AUTHTOK) if there is one, else the prompt; with
	 * use_first_pass no prompt (PAM_AUTH_ERR). try_first_pass is the same as no argument. */
	rc = pam_get_authtok(ctx->pamh, PAM_AUTHTOK, &typed, FTM_MSG_PROMPT_PASSWORD);
	if (rc != PAM_SUCCESS || typed == NULL) {
		pam_syslog(ctx->pamh, LOG_ERR, "%s: no password%s: %s", ctx->who,
			   ctx->args.use_first_pass ? " from an earlier module (use_first_pass)" : "",
			   pam_strerror(ctx->pamh, rc));
		return rc == PAM_SUCCESS ? PAM_AUTH_ERR : rc;
	}

	rc = split_input(ctx, typed, &sp, &by_daemon);
	if (rc != 0) {
		ftm_memzero(&sp, sizeof(sp));
		return rc;
	}

	data = calloc(1, sizeof(*data));
	if (data == NULL) {
		ftm_memzero(&sp, sizeof(sp));
		return PAM_BUF_ERR;
	}
	snprintf(data->user, sizeof(data->user), "%s", ctx->login.user);
	data->by_daemon = by_daemon;
	data->has_token = sp.has_token;
	data->push_available = sp.push_available;
	memcpy(data->push_serial, sp.push_serial, sizeof(data->push_serial));
	data->has_code = sp.primary.has_code;
	if (sp.primary.has_code)
		memcpy(data->code, sp.primary.code, sizeof(data->code));
	data->has_alt = sp.has_alt;
	if (sp.has_alt)
		memcpy(data->alt_password, sp.alt_password, sizeof(data->alt_password));

	rc = pam_set_item(ctx->pamh, PAM_AUTHTOK, sp.primary.password);
	ftm_memzero(&sp, sizeof(sp));
	if (rc != PAM_SUCCESS) {
		split_data_cleanup(ctx->pamh, data, 0);
		return rc;
	}
	rc = pam_set_data(ctx->pamh, SPLIT_DATA, data, split_data_cleanup);
	if (rc != PAM_SUCCESS) {
		split_data_cleanup(ctx->pamh, data, 0);
		return rc;
	}
	if (ctx->cfg.debug)
		pam_syslog(ctx->pamh, LOG_DEBUG, "%s: split: token=%s code=%s push=%s", ctx->who,
			   data->has_token ? "yes" : "no", data->has_code ? "yes" : "no",
			   data->push_available ? "yes" : "no");
	/* Not PAM_SUCCESS: preparing the password proves nothing, so this instance must never be what
	 * makes a stack succeed (a split line stacked `sufficient`, or last, would log in anyone). */
	return PAM_IGNORE;
}

/* ---- the retry instance: reached only when the first factor refused the password part ---- */

/* The trailing digits did not verify as a code, so they may belong to the password: hand the whole
 * input to the first factor once more and treat the login as password only. */
static int do_retry(ctx_t *ctx)
{
	const void *d = NULL;
	split_data_t *data;
	int rc;

	if (pam_get_data(ctx->pamh, SPLIT_DATA, &d) != PAM_SUCCESS || d == NULL)
		return PAM_AUTH_ERR;
	data = (split_data_t *)d;
	if (!data->has_alt || strcmp(data->user, ctx->login.user) != 0)
		return PAM_AUTH_ERR;
	conn_drop(ctx);	/* password only now: no verify follows */
	rc = pam_set_item(ctx->pamh, PAM_AUTHTOK, data->alt_password);
	ftm_memzero(data->alt_password, sizeof(data->alt_password));
	ftm_memzero(data->code, sizeof(data->code));
	data->has_alt = false;
	data->has_code = false;
	if (ctx->cfg.debug)
		pam_syslog(ctx->pamh, LOG_DEBUG, "%s: retrying the first factor with the whole input", ctx->who);
	return rc == PAM_SUCCESS ? PAM_IGNORE : PAM_AUTH_ERR;	/* never a success by itself: see do_split */
}

/* ---- the second instance: the code, or a push, or a challenge ---- */

/* Answer challenges until the core gives a final verdict (number matching may chain). */
static void answer_challenges(ctx_t *ctx, ftm_outcome_t *out)
{
	for (int round = 0; round < 3 && out->result == FTM_RES_CHALLENGE; round++) {
		char state[sizeof(out->state)];
		char prompt[FTM_MSG_MAX + 4];
		char *answer = NULL;
		int rc;

		snprintf(state, sizeof(state), "%s", out->state);
		ftm_msg_prompt(prompt, sizeof(prompt), out->message);
		rc = ask(ctx, PAM_PROMPT_ECHO_ON, prompt, &answer);
		if (rc != PAM_SUCCESS) {
			ftm_outcome_set(out, FTM_RES_FAIL, NULL, NULL, "no answer to the challenge (conversation failed)");
			return;
		}
		memset(out, 0, sizeof(*out));
		ctx->data->core->prompt_answer(ctx->data->auth, &ctx->login, item_str(ctx->pamh, PAM_AUTHTOK), state, answer,
				       time(NULL), out);
		drop_answer(&answer);
	}
	if (out->result == FTM_RES_CHALLENGE)
		ftm_outcome_set(out, FTM_RES_FAIL, NULL, NULL, "too many challenge rounds");
}

/* Password only, with a push to come: in push_wait=prompt, ask first (OpenSSH shows nothing of a
 * conversation until a prompt); a code typed there is the code. *code gets it (malloc'd) or NULL. */
static int before_push(ctx_t *ctx, const split_data_t *data, char **code)
{
	char msg[FTM_MSG_MAX + FTM_SERIAL_MAX];
	char *answer = NULL;

	*code = NULL;
	if (ctx->args.push_wait == WAIT_PROMPT) {
		ftm_msg_push_prompt(msg, sizeof(msg), data->push_serial);
		if (ask(ctx, PAM_PROMPT_ECHO_ON, msg, &answer) != PAM_SUCCESS)
			return -1;
		/* PAM_AUTHTOK: the password the first factor just proved (requisite before us) */
		if (!ctx->data->core->push_prompt_asks_push(item_str(ctx->pamh, PAM_AUTHTOK), answer)) {
			*code = answer;
			return 0;
		}
		drop_answer(&answer);
	}
	ftm_msg_push_sending(msg, sizeof(msg), data->push_serial, ctx->cfg.push.number_matching);
	tell(ctx, PAM_TEXT_INFO, msg);
	return 0;
}

static int do_second(ctx_t *ctx)
{
	const void *d = NULL;
	const split_data_t *data = NULL;
	split_data_t local;
	ftm_outcome_t out;
	char *typed = NULL;

	memset(&out, 0, sizeof(out));
	if (pam_get_data(ctx->pamh, SPLIT_DATA, &d) == PAM_SUCCESS && d != NULL) {
		data = d;
		if (strcmp(data->user, ctx->login.user) != 0) {
			ftm_outcome_set(&out, FTM_RES_ERROR, NULL, NULL, "user changed between the split and the check");
			return finish(ctx, &out);
		}
	} else {
		/* No split instance in the stack: nothing was typed for us, so no code. */
		ftm_split_t sp;
		bool by_daemon;

		if (split_input(ctx, "", &sp, &by_daemon) != 0) {
			ftm_outcome_set(&out, FTM_RES_ERROR, NULL, NULL, "store unavailable");
			return finish(ctx, &out);
		}
		memset(&local, 0, sizeof(local));
		local.has_token = sp.has_token;
		local.push_available = sp.push_available;
		memcpy(local.push_serial, sp.push_serial, sizeof(local.push_serial));
		data = &local;
	}

	/* A code: its verdict is ftmpushd's when it runs. A push, a challenge: decided in process (the push
	 * itself goes through ftmpushd's socket there, push_client.c). */
	if (data->has_code && daemon_verify(ctx, data, &out)) {
		pam_set_data(ctx->pamh, SPLIT_DATA, NULL, NULL);	/* the code is spent either way */
		return finish(ctx, &out);
	}
	if (core_auth(ctx) != PAM_SUCCESS) {
		ftm_outcome_set(&out, FTM_RES_ERROR, NULL, FTM_MSG_UNAVAILABLE, "no core object and no ftmpushd");
		return finish(ctx, &out);
	}
	if (!data->has_code && data->push_available && before_push(ctx, data, &typed) != 0) {
		ftm_outcome_set(&out, FTM_RES_FAIL, NULL, NULL, "no answer to the push prompt (conversation failed)");
		return finish(ctx, &out);
	}
	ctx->data->core->after_password(ctx->data->auth, &ctx->login, data->has_code ? data->code : typed, time(NULL),
					&out);
	drop_answer(&typed);
	if (data->has_code)	/* the code is spent either way: a later instance must not reuse it */
		pam_set_data(ctx->pamh, SPLIT_DATA, NULL, NULL);
	answer_challenges(ctx, &out);
	return finish(ctx, &out);
}

PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	ctx_t ctx;
	int rc;

	rc = ctx_init(&ctx, pamh, argc, argv);
	ctx.silent = (flags & PAM_SILENT) != 0;
	if (rc == PAM_SUCCESS)
		rc = ctx.args.split ? do_split(&ctx) : ctx.args.retry ? do_retry(&ctx) : do_second(&ctx);
	ctx_free(&ctx);
	return rc;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}

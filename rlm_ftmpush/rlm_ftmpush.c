/* rlm_ftmpush: FreeRADIUS 3.2 glue for ftmpush; config mapping and request handling here, every MFA
 * decision (split, verify, replay, lock, push, challenge) in the core (common/ftm_auth.h). */
#include <freeradius/build.h>
#include <freeradius/radiusd.h>
#include <freeradius/modules.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftm_audit.h"
#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_message.h"
#include "ftm_metrics.h"
#include "ftm_otp.h"
#include "ftm_protect.h"
#include "ftm_push.h"
#include "ftm_util.h"
#include "shutdown.h"

/* Our States start with this, so a State of another module (EAP, smsotp...) is left alone. */
#define STATE_PREFIX		"FTM1"
#define STATE_PREFIX_LEN	(sizeof(STATE_PREFIX) - 1)

/* Every option of the core, as text: the core parses, defaults and validates it (ftm_config_set),
 * so one set of names, defaults and error messages serves FreeRADIUS, PAM and the tools. */
typedef struct {
	char const	*token_db;
	char const	*key_file;
	char const	*window;
	char const	*lockout_threshold;
	char const	*lockout_duration;
	char const	*activation_expire;
	char const	*no_token;
	char const	*challenge;
	char const	*challenge_timeout;
	char const	*debug;
	char const	*issuer;
	char const	*node_name;
	char const	*audit_retention;
	char const	*metrics_listen;
	char const	*metrics_allow_remote;
	char const	*log_accepts;
	struct {
		char const	*status;
		char const	*server;
		char const	*server_ip;	/* FortiOS's old name of server (deprecated) */
		char const	*interface;
		char const	*server_port;
		char const	*server_cert;
		char const	*server_key;
		char const	*timeout;
		char const	*gateway_url;
		char const	*proxy;
		char const	*ca_file;
		char const	*ntfy_token;
		char const	*number_matching;
	} push;
} ftmpush_options_t;

typedef struct {
	ftmpush_options_t	opt;		/* filled by the CONF_PARSER tables below */
	char const		*name;		/* instance name: also the Auth-Type it sets */
	int			auth_type;	/* dictionary value of Auth-Type <name>, 0 if none */
	ftm_config_t		cfg;
	ftm_log_t		log;
	ftm_auth_t		*auth;
	ftm_metrics_listener_t	*metrics;	/* this process's metrics listener, shared by its instances */
	ftm_push_t		*push;		/* the push engine auth owns (NULL: push disabled) */
	char			hostname[256];
	bool			log_debug_as_info;	/* debug = 1|2: core debug lines go to the normal log */
} rlm_ftmpush_t;

#define OPT(_f) FR_CONF_OFFSET(PW_TYPE_STRING, rlm_ftmpush_t, opt._f)

static const CONF_PARSER push_config[] = {
	{ "status", OPT(push.status), NULL },
	{ "server", OPT(push.server), NULL },
	{ "server-ip", OPT(push.server_ip), NULL },
	{ "interface", OPT(push.interface), NULL },
	{ "server_port", OPT(push.server_port), NULL },
	{ "server_cert", OPT(push.server_cert), NULL },
	{ "server_key", OPT(push.server_key), NULL },
	{ "timeout", OPT(push.timeout), NULL },
	{ "gateway_url", OPT(push.gateway_url), NULL },
	{ "proxy", OPT(push.proxy), NULL },
	{ "ca_file", OPT(push.ca_file), NULL },
	{ "ntfy_token", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_SECRET, rlm_ftmpush_t, opt.push.ntfy_token), NULL },
	{ "number_matching", OPT(push.number_matching), NULL },
	CONF_PARSER_TERMINATOR
};

static const CONF_PARSER module_config[] = {
	{ "token_db", FR_CONF_OFFSET(PW_TYPE_STRING | PW_TYPE_REQUIRED | PW_TYPE_NOT_EMPTY, rlm_ftmpush_t, opt.token_db), NULL },
	{ "key_file", OPT(key_file), NULL },
	{ "window", OPT(window), NULL },
	{ "lockout_threshold", OPT(lockout_threshold), NULL },
	{ "lockout_duration", OPT(lockout_duration), NULL },
	{ "activation_expire", OPT(activation_expire), NULL },
	{ "no_token", OPT(no_token), NULL },
	{ "challenge", OPT(challenge), NULL },
	{ "challenge_timeout", OPT(challenge_timeout), NULL },
	{ "debug", OPT(debug), NULL },
	{ "issuer", OPT(issuer), NULL },
	{ "node_name", OPT(node_name), NULL },
	{ "audit_retention", OPT(audit_retention), NULL },
	{ "metrics_listen", OPT(metrics_listen), NULL },
	{ "metrics_allow_remote", OPT(metrics_allow_remote), NULL },
	{ "log_accepts", OPT(log_accepts), NULL },
	{ "push", FR_CONF_POINTER(PW_TYPE_SUBSECTION, NULL), (void const *) push_config },
	CONF_PARSER_TERMINATOR
};

/* What authorize hands to authenticate within one request; zeroed when the request is freed. */
typedef struct {
	bool	split;				/* authorize split this request's User-Password */
	bool	has_token;
	bool	push_available;
	bool	has_code;
	char	code[FTM_PASSCODE_CODE_MAX + 1];
	ftm_code_proof_t proof;			/* what the split's peek proved of code (serial "": none) */
	bool	has_alt;			/* the whole input, for a password that ends in digits */
	bool	alt_swapped;			/* User-Password is alt_password again (the site's retry) */
	char	alt_password[FTM_INPUT_MAX + 1];
	bool	eap;				/* an EAP request of a user with a token */
	bool	verified;			/* this module's second factor accepted in this request */
} ftmpush_request_t;

/* The request whose module call is running in this thread: the core's log lines go to its trace. */
static __thread REQUEST *current_request;

/* ---- logging ---- */

static void sink_radlog(void *sink_ctx, ftm_log_level_t level, const char *line)
{
	rlm_ftmpush_t const *inst = sink_ctx;
	REQUEST *request = current_request;
	log_type_t type;

	switch (level) {
	case FTM_LOG_ERR:
		type = L_ERR;
		break;
	case FTM_LOG_WARN:
		type = L_WARN;
		break;
	case FTM_LOG_INFO:
		type = L_INFO;
		break;
	default:
		if (inst->log_debug_as_info) {
			type = L_INFO;
			break;
		}
		if (request != NULL) {
			radlog_request(L_DBG, level == FTM_LOG_DEBUG ? L_DBG_LVL_1 : L_DBG_LVL_2, request,
				       "%s", line);
		} else if (rad_debug_lvl >= (level == FTM_LOG_DEBUG ? 1 : 2)) {
			radlog(L_DBG, "rlm_ftmpush (%s): %s", inst->name, line);
		}
		return;
	}
	if (request != NULL)
		radlog_request(type, L_DBG_LVL_OFF, request, "%s", line);
	else
		radlog(type, "rlm_ftmpush (%s): %s", inst->name, line);
}

/* ---- configuration ---- */

typedef struct {
	char const	*name;		/* core option name */
	char const	*value;
} opt_value_t;

static void config_report(void *ctx, unsigned line, const char *message)
{
	CONF_SECTION *conf = ctx;

	(void)line;
	cf_log_err_cs(conf, "%s", message);
}

/* Refuse options we do not know: a typo (tokendb, push { sever }) must not silently fall back to a
 * default. */
static int check_unknown(CONF_SECTION *cs, CONF_PARSER const *table, char const *where)
{
	CONF_ITEM *ci = NULL;
	int bad = 0;

	while ((ci = cf_item_find_next(cs, ci)) != NULL) {
		char const *name;
		bool known = false;

		if (cf_item_is_pair(ci))
			name = cf_pair_attr(cf_item_to_pair(ci));
		else if (cf_item_is_section(ci))
			name = cf_section_name1(cf_item_to_section(ci));
		else
			continue;
		for (CONF_PARSER const *p = table; p->name != NULL; p++) {
			if (strcmp(p->name, name) == 0) {
				known = true;
				break;
			}
		}
		if (!known) {
			cf_log_err_cs(cs, "Unknown option \"%s\" in %s (see mods-available/ftmpush)", name, where);
			bad++;
		}
	}
	return bad;
}

static int map_config(rlm_ftmpush_t *inst, CONF_SECTION *conf)
{
	ftmpush_options_t const *o = &inst->opt;
	opt_value_t const values[] = {
		{ "token_db", o->token_db },
		{ "key_file", o->key_file },
		{ "window", o->window },
		{ "lockout_threshold", o->lockout_threshold },
		{ "lockout_duration", o->lockout_duration },
		{ "activation_expire", o->activation_expire },
		{ "no_token", o->no_token },
		{ "challenge", o->challenge },
		{ "challenge_timeout", o->challenge_timeout },
		{ "debug", o->debug },
		{ "issuer", o->issuer },
		{ "node_name", o->node_name },
		{ "audit_retention", o->audit_retention },
		{ "metrics_listen", o->metrics_listen },
		{ "metrics_allow_remote", o->metrics_allow_remote },
		/* unset: as FreeRADIUS logs its own accepts (log { auth }, default no) */
		{ "log_accepts", o->log_accepts != NULL ? o->log_accepts : main_config.log_auth ? "yes" : "no" },
		{ "push.status", o->push.status },
		{ "push.server", o->push.server },
		{ "push.server-ip", o->push.server_ip },
		{ "push.interface", o->push.interface },
		{ "push.server_port", o->push.server_port },
		{ "push.server_cert", o->push.server_cert },
		{ "push.server_key", o->push.server_key },
		{ "push.timeout", o->push.timeout },
		{ "push.gateway_url", o->push.gateway_url },
		{ "push.proxy", o->push.proxy },
		{ "push.ca_file", o->push.ca_file },
		{ "push.ntfy_token", o->push.ntfy_token },
		{ "push.number_matching", o->push.number_matching },
	};
	char err[FTM_ERR_MAX];
	int bad = 0;
	CONF_SECTION *push_cs;

	bad += check_unknown(conf, module_config, inst->name);
	push_cs = cf_section_sub_find(conf, "push");
	if (push_cs != NULL)
		bad += check_unknown(push_cs, push_config, "push { }");

	if (o->push.server_ip != NULL) {
		WARN("rlm_ftmpush (%s): push { server-ip }: %s", inst->name, ftm_config_deprecated("push.server-ip"));
		if (o->push.server != NULL) {
			cf_log_err_cs(conf, "push { }: set either server or server-ip (its deprecated name), not both");
			bad++;
		}
	}
	ftm_config_defaults(&inst->cfg);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		if (values[i].value == NULL)
			continue;
		err[0] = '\0';
		if (ftm_config_set(&inst->cfg, values[i].name, values[i].value, err, sizeof(err)) != 0) {
			if (err[0] != '\0')
				cf_log_err_cs(conf, "%s", err);
			else
				cf_log_err_cs(conf, "Invalid %s", values[i].name);
			bad++;
		}
	}
	if (bad)
		return -1;
	err[0] = '\0';
	if (ftm_config_validate(&inst->cfg, config_report, conf, err, sizeof(err)) != 0) {
		cf_log_err_cs(conf, "Configuration of %s refused (see above)", inst->name);
		return -1;
	}
	return 0;
}

/* Pending pushes each hold a worker for up to push.timeout: below this many workers (or started at once,
 * since FreeRADIUS adds one only when requests queue) a burst of push logins waits behind the first ones. */
#define PUSH_POOL_MIN	64

static unsigned thread_pool_value(const char *name, unsigned dflt)
{
	CONF_SECTION *pool = main_config.config ? cf_section_sub_find_name2(main_config.config, "thread", "pool") : NULL;
	CONF_PAIR *cp = pool ? cf_pair_find(pool, name) : NULL;
	const char *v = cp ? cf_pair_value(cp) : NULL;

	return v != NULL ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

static void warn_thread_pool(const rlm_ftmpush_t *inst)
{
	unsigned max_servers = thread_pool_value("max_servers", 32), start_servers = thread_pool_value("start_servers", 5);

	if (max_servers < PUSH_POOL_MIN || start_servers < PUSH_POOL_MIN)
		WARN("rlm_ftmpush (%s): thread pool { start_servers = %u, max_servers = %u }: every pending push holds "
		     "a worker thread for up to push.timeout (%u s), so at most %u logins can wait for their phones at "
		     "once and a burst gets %u pushes out before new threads start; raise both to at least %u "
		     "(docs/freeradius.md)", inst->name, start_servers, max_servers, inst->cfg.push.timeout,
		     max_servers, start_servers < max_servers ? start_servers : max_servers, PUSH_POOL_MIN);
}

static int mod_instantiate(CONF_SECTION *conf, void *instance)
{
	rlm_ftmpush_t *inst = instance;
	DICT_VALUE *dval;
	char err[FTM_ERR_MAX] = "";

	inst->name = cf_section_name2(conf);
	if (inst->name == NULL)
		inst->name = cf_section_name1(conf);
	ftm_auth_process_init();	/* FreeRADIUS instantiates its modules before it starts threads */

	if (map_config(inst, conf) != 0)
		return -1;

	inst->log.sink = sink_radlog;
	inst->log.sink_ctx = inst;
	inst->log.max_level = inst->cfg.debug >= 2 ? FTM_LOG_DEBUG2 :
			      inst->cfg.debug == 1 || rad_debug_lvl >= 1 ? FTM_LOG_DEBUG : FTM_LOG_INFO;
	if (rad_debug_lvl >= 2)
		inst->log.max_level = FTM_LOG_DEBUG2;
	inst->log_debug_as_info = inst->cfg.debug >= 1;

	if (gethostname(inst->hostname, sizeof(inst->hostname) - 1) != 0)
		inst->hostname[0] = '\0';

	dval = dict_valbyname(PW_AUTH_TYPE, 0, inst->name);
	inst->auth_type = dval != NULL ? dval->value : 0;
	if (inst->auth_type == 0)
		cf_log_err_cs(conf, "Warning: no \"Auth-Type %s { ... }\" in an authenticate section: users with a "
			      "token will be rejected (see sites-available/ftmpush)", inst->name);

	/* freeradius -C (also Debian's ExecStartPre, as root): check the configuration only. Opening the
	 * store here would create tokens.db and its key file owned by root, unusable by freerad. */
	if (check_config) {
		INFO("rlm_ftmpush (%s): configuration ok (token_db %s not opened in check mode)", inst->name,
		     inst->cfg.token_db);
		return 0;
	}

	/* The store's seed key, the ntfy token and the TLS key live in this process from here on: no
	 * core file and no same-user ptrace, unless the admin asked the server for core dumps. */
	if (main_config.allow_core_dumps)
		WARN("rlm_ftmpush (%s): security { allow_core_dumps = yes }: a core dump of this server holds the "
		     "token seed key and the push secrets", inst->name);
	else if (ftm_protect_nodump(err, sizeof(err)) != 0)
		WARN("rlm_ftmpush (%s): cannot disable core dumps: %s", inst->name, err);

	inst->auth = ftm_auth_new(&inst->cfg, &inst->log, err, sizeof(err));
	if (inst->auth != NULL) {
		ftm_auth_set_frontend(inst->auth, FTM_AUDIT_FE_RADIUS);
		ftm_auth_set_proof_carried(inst->auth, true);	/* authorize hands it to authenticate */
	}
	if (inst->auth == NULL) {
		cf_log_err_cs(conf, "Cannot start ftmpush (token_db %s): %s", inst->cfg.token_db, err);
		return -1;
	}
	if (ftm_metrics_listener_start(&inst->cfg, "radius", &inst->log, &inst->metrics, err, sizeof(err)) != 0) {
		cf_log_err_cs(conf, "Cannot serve the metrics: %s", err);
		ftm_auth_free(inst->auth);
		inst->auth = NULL;
		return -1;
	}

	/* The callback listener runs in this instance (a thread of libmicrohttpd) until SIGTERM
	 * (shutdown.c) or mod_detach (ftm_auth_free stops it). A v3 module cannot yield: each pending push holds a worker thread
	 * for up to push.timeout, so the request must be allowed to live longer than that. */
	if (inst->cfg.push.status) {
		if (ftm_push_auth_attach(inst->auth, ftm_auth_log(inst->auth), &inst->push, err,
					 sizeof(err)) != 0) {
			cf_log_err_cs(conf, "Cannot start the push engine: %s", err);
			ftm_metrics_listener_stop(inst->metrics);
			inst->metrics = NULL;
			ftm_auth_free(inst->auth);
			inst->auth = NULL;
			return -1;
		}
		if (main_config.max_request_time != 0 && main_config.max_request_time <= inst->cfg.push.timeout)
			WARN("rlm_ftmpush (%s): max_request_time (%u s) is not above push.timeout (%u s): the server "
			     "will give up on logins still waiting for the phone; raise max_request_time in "
			     "radiusd.conf (and the NAS's RADIUS timeout) above push.timeout",
			     inst->name, main_config.max_request_time, inst->cfg.push.timeout);
		warn_thread_pool(inst);
		if (rlm_shutdown_register(inst->push) != 0)
			WARN("rlm_ftmpush (%s): cannot watch for SIGTERM: a stop waits for the pending pushes",
			     inst->name);
	}

	INFO("rlm_ftmpush (%s): token_db %s (verdict policy: the store's, ftmpushctl policy show), no_token %s, "
	     "challenge %s, push %s", inst->name, inst->cfg.token_db,
	     inst->cfg.no_token == FTM_NO_TOKEN_PASS ? "pass" : "reject", inst->cfg.challenge ? "yes" : "no",
	     inst->cfg.push.status ? "enable" : "disable");
	return 0;
}

static int mod_detach(void *instance)
{
	rlm_ftmpush_t *inst = instance;

	ftm_metrics_listener_stop(inst->metrics);
	inst->metrics = NULL;
	if (inst->push != NULL)
		rlm_shutdown_unregister(inst->push);
	inst->push = NULL;
	if (inst->auth != NULL)
		ftm_auth_free(inst->auth);
	inst->auth = NULL;
	return 0;
}

/* ---- per request ---- */

static int request_data_free(ftmpush_request_t *data)
{
	ftm_memzero(data, sizeof(*data));
	return 0;
}

/* The user name tokens are looked up by: Stripped-User-Name when a realm module set it. */
static char const *login_user(REQUEST *request, bool *bad)
{
	VALUE_PAIR *vp = fr_pair_find_by_num(request->packet->vps, PW_STRIPPED_USER_NAME, 0, TAG_ANY);

	*bad = false;
	if (vp == NULL)
		vp = fr_pair_find_by_num(request->packet->vps, PW_USER_NAME, 0, TAG_ANY);
	if (vp == NULL || vp->vp_length == 0)
		return NULL;
	/* A NUL or control byte would make the name we look tokens up by ("alice" of "alice\0bob") differ
	 * from the one the NAS and the first factor see: refuse it outright. */
	for (size_t i = 0; i < vp->vp_length; i++) {
		unsigned char c = (unsigned char)vp->vp_strvalue[i];

		if (c < 0x20 || c == 0x7f) {
			*bad = true;
			return NULL;
		}
	}
	return vp->vp_strvalue;
}

typedef struct {
	ftm_login_t	login;
	char		client[INET6_ADDRSTRLEN + 64];
} login_buf_t;

/* Who logs in from where: the end user's address (Calling-Station-Id) when the NAS sends it, else the
 * NAS's own address. The challenge State is bound to this. */
static int login_fill(rlm_ftmpush_t const *inst, REQUEST *request, login_buf_t *lb)
{
	VALUE_PAIR *vp;

	bool bad;

	memset(lb, 0, sizeof(*lb));
	lb->login.user = login_user(request, &bad);
	if (lb->login.user == NULL)
		return bad ? -2 : -1;
	vp = fr_pair_find_by_num(request->packet->vps, PW_CALLING_STATION_ID, 0, TAG_ANY);
	if (vp != NULL && vp->vp_length > 0) {
		/* The whole value, not a copy cut to a buffer: the State and a push join bind to it. */
		lb->login.client = vp->vp_strvalue;
	} else {
		char ip[INET6_ADDRSTRLEN] = "";

		inet_ntop(request->packet->src_ipaddr.af, &request->packet->src_ipaddr.ipaddr, ip, sizeof(ip));
		ftm_copy(lb->client, sizeof(lb->client), ip);
		lb->login.client = lb->client;
	}
	vp = fr_pair_find_by_num(request->packet->vps, PW_NAS_IDENTIFIER, 0, TAG_ANY);
	if (vp != NULL && vp->vp_length > 0)
		lb->login.nas = vp->vp_strvalue;
	else if (request->client != NULL && request->client->shortname != NULL)
		lb->login.nas = request->client->shortname;
	lb->login.host = inst->hostname;
	return 0;
}

static void set_reply_message(REQUEST *request, char const *msg)
{
	fr_pair_delete_by_num(&request->reply->vps, PW_REPLY_MESSAGE, 0, TAG_ANY);
	if (msg != NULL && *msg != '\0')
		pair_make_reply("Reply-Message", msg, T_OP_SET);
}

/* On success only the message authorize left for a refused password goes: a Reply-Message the site
 * set (users file, sql) stays. */
static void clear_preset_message(REQUEST *request)
{
	VALUE_PAIR *vp = fr_pair_find_by_num(request->reply->vps, PW_REPLY_MESSAGE, 0, TAG_ANY);

	if (vp != NULL && vp->vp_length == sizeof(FTM_MSG_BAD_PASSWORD) - 1 &&
	    memcmp(vp->vp_strvalue, FTM_MSG_BAD_PASSWORD, vp->vp_length) == 0)
		fr_pair_delete_by_num(&request->reply->vps, PW_REPLY_MESSAGE, 0, TAG_ANY);
}

/* What the user reads: the core's text (a failure it left without one is "unavailable"). */
static char const *outcome_message(ftm_outcome_t const *out)
{
	if (out->result == FTM_RES_OK)
		return NULL;
	return out->message[0] != '\0' ? out->message : FTM_MSG_UNAVAILABLE;
}

#define OR_DASH(s) ftm_or((s), "-")

/* The one place an ftm_outcome_t becomes a RADIUS answer, a Reply-Message and a log line. */
static rlm_rcode_t finish(rlm_ftmpush_t const *inst, REQUEST *request, ftm_login_t const *login,
			  ftm_outcome_t const *out, char const *step)
{
	char const *msg = outcome_message(out);
	rlm_rcode_t rcode;

	switch (out->result) {
	case FTM_RES_OK:
		clear_preset_message(request);
		if (out->message[0] != '\0')	/* what the user should know, e.g. recovery codes left */
			set_reply_message(request, out->message);
		rcode = RLM_MODULE_OK;
		break;

	case FTM_RES_CHALLENGE: {
		char state[STATE_PREFIX_LEN + sizeof(out->state)];
		VALUE_PAIR *vp;

		if (out->state[0] == '\0') {
			radlog_request(L_ERR, L_DBG_LVL_OFF, request,
				       "challenge without a State from the core: rejecting");
			set_reply_message(request, FTM_MSG_UNAVAILABLE);
			return RLM_MODULE_FAIL;
		}
		snprintf(state, sizeof(state), "%s%s", STATE_PREFIX, out->state);
		set_reply_message(request, msg);
		fr_pair_delete_by_num(&request->reply->vps, PW_STATE, 0, TAG_ANY);
		vp = fr_pair_afrom_num(request->reply, PW_STATE, 0);
		if (vp == NULL) {
			set_reply_message(request, FTM_MSG_UNAVAILABLE);
			return RLM_MODULE_FAIL;
		}
		fr_pair_value_memcpy(vp, (uint8_t const *)state, strlen(state));
		fr_pair_add(&request->reply->vps, vp);
		request->reply->code = PW_CODE_ACCESS_CHALLENGE;
		rcode = RLM_MODULE_HANDLED;
		break;
	}

	case FTM_RES_NO_TOKEN:
		if (inst->cfg.no_token == FTM_NO_TOKEN_PASS) {
			clear_preset_message(request);
			rcode = RLM_MODULE_OK;
			break;
		}
		set_reply_message(request, msg);
		rcode = RLM_MODULE_REJECT;
		break;

	case FTM_RES_LOCKED:
		set_reply_message(request, msg);
		rcode = RLM_MODULE_USERLOCK;
		break;

	case FTM_RES_ERROR:
		set_reply_message(request, msg);
		rcode = RLM_MODULE_FAIL;
		break;

	default:
		set_reply_message(request, msg);
		rcode = RLM_MODULE_REJECT;
		break;
	}

	/* The core logged the decision and its why; this line adds the RADIUS answer it became. In the
	 * normal log only when it says more than the core's line: an error, no token (ok or reject by
	 * no_token), or an outcome the core did not log (or logged with another result); otherwise a debug
	 * line (-x): the answer follows from the result, and a second line per login cost the server a
	 * write and its formatting on every login. */
	if (out->result == FTM_RES_ERROR || out->result == FTM_RES_NO_TOKEN || !out->logged ||
	    out->logged_result != out->result)
		radlog_request(out->result == FTM_RES_ERROR ? L_ERR : L_INFO, L_DBG_LVL_OFF, request,
			       "%s for '%s' from %s: %s (serial %s) -> %s", step, OR_DASH(login->user),
			       OR_DASH(login->client), ftm_result_name(out->result), OR_DASH(out->serial),
			       fr_int2str(mod_rcode_table, rcode, "?"));
	else
		RDEBUG("%s for '%s' from %s: %s (serial %s) -> %s", step, OR_DASH(login->user),
		       OR_DASH(login->client), ftm_result_name(out->result), OR_DASH(out->serial),
		       fr_int2str(mod_rcode_table, rcode, "?"));
	return rcode;
}

/* Copy a RADIUS string value into a NUL-terminated buffer; -1 when it does not fit. */
static int vp_string(VALUE_PAIR const *vp, char *buf, size_t len)
{
	if (vp->vp_length >= len)
		return -1;
	memcpy(buf, vp->vp_strvalue, vp->vp_length);
	buf[vp->vp_length] = '\0';
	return 0;
}

/* The reply to one of our Access-Challenges: decided here, in authorize, because the User-Password
 * now holds the answer (a code), which no first-factor module could check. The password was proven
 * in the round that issued the challenge. */
static rlm_rcode_t challenge_reply(rlm_ftmpush_t const *inst, REQUEST *request, ftm_login_t const *login,
				   VALUE_PAIR const *state_vp)
{
	char state[sizeof(((ftm_outcome_t *)0)->state) + 1];
	char answer[FTM_INPUT_MAX + 1];
	ftm_outcome_t out;
	VALUE_PAIR *pw;
	size_t slen = state_vp->vp_length - STATE_PREFIX_LEN;
	rlm_rcode_t rcode;

	memset(&out, 0, sizeof(out));
	pw = fr_pair_find_by_num(request->packet->vps, PW_USER_PASSWORD, 0, TAG_ANY);
	if (slen >= sizeof(state)) {
		ftm_outcome_set(&out, FTM_RES_FAIL, NULL, FTM_MSG_CHALLENGE_UNKNOWN, "challenge State too long");
		return finish(inst, request, login, &out, "challenge answer");
	}
	memcpy(state, state_vp->vp_octets + STATE_PREFIX_LEN, slen);
	state[slen] = '\0';
	if (pw == NULL || vp_string(pw, answer, sizeof(answer)) != 0) {
		ftm_outcome_set(&out, FTM_RES_FAIL, NULL, FTM_MSG_BAD_CODE,
				pw == NULL ? "challenge answered without User-Password" : "challenge answer too long");
		return finish(inst, request, login, &out, "challenge answer");
	}

	current_request = request;
	ftm_auth_challenge_answer(inst->auth, login, state, answer, time(NULL), &out);
	current_request = NULL;
	ftm_memzero(answer, sizeof(answer));

	rcode = finish(inst, request, login, &out, "challenge answer");
	if (rcode == RLM_MODULE_OK) {
		/* Nothing left to check: the first factor passed in the challenge's first round. */
		fr_pair_delete_by_num(&request->config, PW_AUTH_TYPE, 0, TAG_ANY);
		if (pair_make_config("Auth-Type", "Accept", T_OP_SET) == NULL) {
			set_reply_message(request, FTM_MSG_UNAVAILABLE);
			return RLM_MODULE_FAIL;
		}
	}
	return rcode;
}

/* The site's retry of the first factor (`ftmpush.authorize` inside Auth-Type ftmpush, after the first
 * factor refused the split password): put the whole typed input back into User-Password, in place, so
 * the next first-factor module checks it as the password (one that ends in digits). Nothing is
 * expanded or printed: only the fact is logged. updated: swapped; noop: nothing to retry with. */
static rlm_rcode_t alt_retry(rlm_ftmpush_t *inst, REQUEST *request)
{
	ftmpush_request_t *data = request_data_reference(request, inst, 0);
	VALUE_PAIR *pw = fr_pair_find_by_num(request->packet->vps, PW_USER_PASSWORD, 0, TAG_ANY);

	if (data == NULL || !data->split || !data->has_alt || pw == NULL) {
		RDEBUG2("No alternative reading of the input kept: nothing to retry the first factor with");
		return RLM_MODULE_NOOP;
	}
	if (data->alt_swapped) {
		RDEBUG2("The first factor was already retried with the whole input: not again");
		return RLM_MODULE_NOOP;
	}
	fr_pair_value_strcpy(pw, data->alt_password);
	data->alt_swapped = true;
	RDEBUG2("User-Password is the whole typed input again (a password that ends in digits): "
		"retry the first factor with it; the login is then password only");
	return RLM_MODULE_UPDATED;
}

/* An EAP round of a user with a token: the typed input comes only with the EAP-GTC response, which the
 * eap module hands to Auth-Type ftmpush-gtc (mods-available/eap_ftmpush), where `ftmpush.authorize`
 * splits it (gtc_split). Any other EAP method would carry no code and skip the second factor: EAP-GTC
 * is the only one this user may use (the eap module refuses a NAK to another), and post-auth refuses
 * an accept this module did not verify. */
static rlm_rcode_t authorize_eap(rlm_ftmpush_t *inst, REQUEST *request, ftm_login_t const *login)
{
	ftmpush_request_t *data = talloc_zero(request, ftmpush_request_t);

	if (data == NULL)
		return RLM_MODULE_FAIL;
	talloc_set_destructor(data, request_data_free);
	data->eap = true;
	data->has_token = true;
	if (request_data_add(request, inst, 0, data, true) < 0) {
		talloc_free(data);
		return RLM_MODULE_FAIL;
	}
	if (pair_make_config("EAP-Type", "GTC", T_OP_SET) == NULL)
		return RLM_MODULE_FAIL;
	RDEBUG2("user %s has a token: EAP-GTC only (the typed input is split in Auth-Type %s-gtc)",
		login->user, inst->name);
	return RLM_MODULE_UPDATED;
}

/* CHAP, MS-CHAP, EAP: no typed password to split. A user with a token must not get around the second
 * factor this way. */
static rlm_rcode_t authorize_without_password(rlm_ftmpush_t *inst, REQUEST *request, ftm_login_t const *login)
{
	ftm_split_t sp;
	int rc;

	memset(&sp, 0, sizeof(sp));
	current_request = request;
	rc = ftm_auth_split(inst->auth, login, "", time(NULL), &sp);
	current_request = NULL;
	if (rc != 0) {
		set_reply_message(request, FTM_MSG_UNAVAILABLE);
		radlog_request(L_ERR, L_DBG_LVL_OFF, request, "user=%s: token store unavailable: failing",
			       login->user);
		return RLM_MODULE_FAIL;
	}
	if (!sp.has_token) {
		RDEBUG2("No User-Password and no token for this user: nothing to do");
		return RLM_MODULE_NOOP;
	}
	if (fr_pair_find_by_num(request->packet->vps, PW_EAP_MESSAGE, 0, TAG_ANY) != NULL)
		return authorize_eap(inst, request, login);
	set_reply_message(request, FTM_MSG_NO_PAP);
	radlog_request(L_INFO, L_DBG_LVL_OFF, request,
		       "user=%s client=%s: has a token but sent no User-Password: rejecting",
		       login->user, login->client);
	return RLM_MODULE_REJECT;
}

/* Keep what the split found for authenticate, put the password part into User-Password (in place:
 * request->password points at this pair and first-factor modules read it) and route the request to
 * Auth-Type <name>; gtc: already inside Auth-Type <name>-gtc, where the first factor and then this
 * module follow. Zeroes sp. */
static rlm_rcode_t keep_split(rlm_ftmpush_t *inst, REQUEST *request, ftm_login_t const *login, VALUE_PAIR *pw,
			      ftm_split_t *sp, bool gtc)
{
	ftmpush_request_t *data = talloc_zero(request, ftmpush_request_t);
	VALUE_PAIR *vp;

	if (data == NULL) {
		ftm_memzero(sp, sizeof(*sp));
		return RLM_MODULE_FAIL;
	}
	talloc_set_destructor(data, request_data_free);
	data->split = true;
	data->eap = gtc;
	data->has_token = sp->has_token;
	data->push_available = sp->push_available;
	data->has_code = sp->primary.has_code;
	if (sp->primary.has_code) {
		memcpy(data->code, sp->primary.code, sizeof(data->code));
		data->proof = sp->proof;
	}
	data->has_alt = sp->has_alt;
	if (sp->has_alt)
		memcpy(data->alt_password, sp->alt_password, sizeof(data->alt_password));
	fr_pair_value_strcpy(pw, sp->primary.password);
	ftm_memzero(sp, sizeof(*sp));

	if (request_data_add(request, inst, 0, data, true) < 0) {
		talloc_free(data);
		return RLM_MODULE_FAIL;
	}
	if (gtc) {
		RDEBUG2("user %s: EAP-GTC input split: code %s", login->user, data->has_code ? "appended" : "none");
		return RLM_MODULE_UPDATED;
	}

	/* Users without a token (no_token = reject) go through Auth-Type ftmpush too: the password is
	 * checked before they are told they have no token. */
	if (inst->auth_type == 0) {
		set_reply_message(request, FTM_MSG_UNAVAILABLE);
		radlog_request(L_ERR, L_DBG_LVL_OFF, request, "no \"Auth-Type %s\" section in authenticate: "
			       "rejecting user=%s", inst->name, login->user);
		return RLM_MODULE_FAIL;
	}
	fr_pair_delete_by_num(&request->config, PW_AUTH_TYPE, 0, TAG_ANY);
	vp = radius_pair_create(request, &request->config, PW_AUTH_TYPE, 0);
	if (vp == NULL)
		return RLM_MODULE_FAIL;
	vp->vp_integer = inst->auth_type;

	/* Stays if the first factor refuses the password; authenticate replaces it with its verdict. */
	set_reply_message(request, FTM_MSG_BAD_PASSWORD);
	RDEBUG2("user %s: token %s, code %s, alt %s, push %s: Auth-Type := %s", login->user,
		data->has_token ? "yes" : "no", data->has_code ? "appended" : "none",
		data->has_alt ? "kept" : "none", data->push_available ? "available" : "no", inst->name);
	return RLM_MODULE_UPDATED;
}

static rlm_rcode_t CC_HINT(nonnull) mod_authorize(void *instance, REQUEST *request)
{
	rlm_ftmpush_t *inst = instance;
	login_buf_t lb;
	VALUE_PAIR *vp, *pw;
	ftm_split_t sp;
	char typed[FTM_INPUT_MAX + 1];
	bool gtc = false;
	int rc;

	if (request->packet->code != PW_CODE_ACCESS_REQUEST)
		return RLM_MODULE_NOOP;
	if (inst->auth == NULL)
		return RLM_MODULE_FAIL;
	rlm_shutdown_hook();
	/* Called by name from authenticate: the retry of a split already made, or (EAP-GTC, where the
	 * eap module has just put the typed input into User-Password) the split itself. */
	if (request->component != NULL && strcmp(request->component, "authenticate") == 0) {
		ftmpush_request_t const *data = request_data_reference(request, inst, 0);

		if (data == NULL || !data->eap || data->split)
			return alt_retry(inst, request);
		gtc = true;
	}
	rc = login_fill(inst, request, &lb);
	if (rc == -2) {
		RERROR("User-Name holds a NUL or control character: rejected");
		set_reply_message(request, FTM_MSG_BAD_USER);
		return RLM_MODULE_REJECT;
	}
	if (rc != 0) {
		RDEBUG2("No User-Name: nothing to do");
		return RLM_MODULE_NOOP;
	}

	vp = fr_pair_find_by_num(request->packet->vps, PW_STATE, 0, TAG_ANY);
	if (!gtc && vp != NULL && vp->vp_length > STATE_PREFIX_LEN &&
	    memcmp(vp->vp_octets, STATE_PREFIX, STATE_PREFIX_LEN) == 0)
		return challenge_reply(inst, request, &lb.login, vp);

	pw = fr_pair_find_by_num(request->packet->vps, PW_USER_PASSWORD, 0, TAG_ANY);
	if (pw == NULL)
		return authorize_without_password(inst, request, &lb.login);
	if (vp_string(pw, typed, sizeof(typed)) != 0) {
		set_reply_message(request, FTM_MSG_BAD_PASSWORD);
		radlog_request(L_INFO, L_DBG_LVL_OFF, request, "user=%s: User-Password too long: rejecting",
			       lb.login.user);
		return RLM_MODULE_REJECT;
	}
	memset(&sp, 0, sizeof(sp));
	current_request = request;
	rc = ftm_auth_split(inst->auth, &lb.login, typed, time(NULL), &sp);
	current_request = NULL;
	ftm_memzero(typed, sizeof(typed));
	if (rc != 0) {
		ftm_memzero(&sp, sizeof(sp));
		set_reply_message(request, FTM_MSG_UNAVAILABLE);
		radlog_request(L_ERR, L_DBG_LVL_OFF, request, "user=%s: split failed (store unavailable): failing",
			       lb.login.user);
		return RLM_MODULE_FAIL;
	}
	if (sp.pass_without_token) {	/* the core logged it */
		ftm_memzero(&sp, sizeof(sp));
		return RLM_MODULE_NOOP;
	}
	return keep_split(inst, request, &lb.login, pw, &sp, gtc);
}

/* Did the site retry the first factor with the whole input (`ftmpush.authorize`, alt_retry) and is
 * User-Password still that input? */
static bool alt_in_use(REQUEST *request, ftmpush_request_t const *data)
{
	VALUE_PAIR *pw = fr_pair_find_by_num(request->packet->vps, PW_USER_PASSWORD, 0, TAG_ANY);
	size_t n;

	if (!data->has_alt || !data->alt_swapped || pw == NULL)
		return false;
	n = strlen(data->alt_password);
	return pw->vp_length == n && ftm_ct_equal(pw->vp_strvalue, data->alt_password, n);
}

/* Runs after the first factor succeeded (Auth-Type ftmpush { pap  ftmpush }). */
static rlm_rcode_t CC_HINT(nonnull) mod_authenticate(void *instance, REQUEST *request)
{
	rlm_ftmpush_t *inst = instance;
	ftmpush_request_t *data;
	login_buf_t lb;
	ftm_outcome_t out;
	char const *step;
	time_t now = time(NULL);
	bool has_code;
	int rc;

	memset(&out, 0, sizeof(out));
	if (inst->auth == NULL)
		return RLM_MODULE_FAIL;
	rlm_shutdown_hook();
	rc = login_fill(inst, request, &lb);
	if (rc != 0) {
		ftm_outcome_set(&out, FTM_RES_FAIL, NULL, rc == -2 ? FTM_MSG_BAD_USER : FTM_MSG_NO_USER,
				rc == -2 ? "User-Name with a NUL or control character" : "no User-Name");
		lb.login.user = NULL;
		return finish(inst, request, &lb.login, &out, "authenticate");
	}

	data = request_data_reference(request, inst, 0);
	has_code = data != NULL && data->has_code && !alt_in_use(request, data);
	/* Password only: typed without a code, the whole input was the password (alt), or Auth-Type
	 * ftmpush was set by the site without our authorize. */
	step = has_code ? "code" : data != NULL && data->has_alt ? "password only (whole input)" : "password only";
	current_request = request;
	rlm_shutdown_enter();	/* a SIGTERM waits for this login's failure reply (shutdown.c) */
	ftm_auth_after_password_proved(inst->auth, &lb.login, has_code ? data->code : NULL,
				       has_code ? &data->proof : NULL, now, &out);
	rlm_shutdown_leave();
	current_request = NULL;
	if (data != NULL) {
		/* The code is spent either way: nothing later in this request may reuse it. */
		ftm_memzero(data->code, sizeof(data->code));
		ftm_memzero(&data->proof, sizeof(data->proof));
		data->has_code = false;
		data->verified = out.result == FTM_RES_OK;
	}
	return finish(inst, request, &lb.login, &out, step);
}

/* The last word on an EAP login of a user with a token: an accept that this module's second factor did
 * not give (another EAP method, or gtc { auth_type } pointing elsewhere) is turned into a reject. */
static rlm_rcode_t CC_HINT(nonnull) mod_post_auth(void *instance, REQUEST *request)
{
	rlm_ftmpush_t *inst = instance;
	ftmpush_request_t *data = request_data_reference(request, inst, 0);

	if (data == NULL || !data->eap || request->reply->code != PW_CODE_ACCESS_ACCEPT)
		return RLM_MODULE_NOOP;
	if (data->verified)
		return RLM_MODULE_OK;
	set_reply_message(request, FTM_MSG_UNAVAILABLE);
	radlog_request(L_ERR, L_DBG_LVL_OFF, request, "EAP login of a token user accepted without the token "
		       "(not EAP-GTC through Auth-Type %s-gtc?): rejecting", inst->name);
	return RLM_MODULE_REJECT;
}

static int mod_bootstrap(CONF_SECTION *conf, void *instance)
{
	rlm_ftmpush_t *inst = instance;

	inst->name = cf_section_name2(conf);
	if (inst->name == NULL)
		inst->name = cf_section_name1(conf);
	/* No xlat: the retry of the first factor (alt_retry) never expands the typed input, which -xx
	 * debug would print whatever suppress_secrets says. */
	return 0;
}

extern module_t rlm_ftmpush;
module_t rlm_ftmpush = {
	.magic		= RLM_MODULE_INIT,
	.name		= "ftmpush",
	.type		= RLM_TYPE_THREAD_SAFE,
	.inst_size	= sizeof(rlm_ftmpush_t),
	.config		= module_config,
	.bootstrap	= mod_bootstrap,
	.instantiate	= mod_instantiate,
	.detach		= mod_detach,
	.methods = {
		[MOD_AUTHENTICATE]	= mod_authenticate,
		[MOD_AUTHORIZE]		= mod_authorize,
		[MOD_POST_AUTH]		= mod_post_auth,
	},
};

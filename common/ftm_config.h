/* ftm_config: one set of option names for every front end, with FortiOS-style validation. */
#ifndef FTM_CONFIG_H
#define FTM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define FTM_DEFAULT_CONFIG	"/etc/ftmpush/ftmpush.conf"
#define FTM_DEFAULT_TOKEN_DB	"/var/lib/ftmpush/tokens.db"
#define FTM_DEFAULT_SOCKET	"/run/ftmpush/ftmpushd.sock"
#define FTM_DEFAULT_PUSH_TIMEOUT 60	/* push.timeout, seconds */
#define FTM_DEFAULT_SERVER_PORT	4433	/* push.server_port */
#define FTM_PATH_MAX		1024
#define FTM_ERR_MAX		512

typedef enum { FTM_NO_TOKEN_REJECT = 0, FTM_NO_TOKEN_PASS } ftm_no_token_t;

typedef struct ftm_push_config {
	bool		status;			/* push.status = enable | disable (default disable) */
	char		server[256];		/* push.server: IP or FQDN put into callback URLs */
	char		interface[64];		/* push.interface: bind to this interface's address */
	unsigned	server_port;		/* push.server_port, 1-65535, default 4433 */
	char		server_cert[FTM_PATH_MAX];	/* PEM certificate (chain) of the listener */
	char		server_key[FTM_PATH_MAX];	/* PEM private key of the listener */
	unsigned	timeout;		/* push.timeout seconds, default 60 */
	char		gateway_url[FTM_PATH_MAX];	/* push.gateway_url for gateway: targets */
	char		proxy[FTM_PATH_MAX];	/* push.proxy: outbound HTTP(S) proxy URL */
	char		ca_file[FTM_PATH_MAX];	/* push.ca_file: CA bundle for outbound TLS (default system) */
	char		ntfy_token[512];	/* push.ntfy_token: Bearer token for the ntfy server */
	bool		number_matching;	/* push.number_matching = yes | no */
	char		socket[FTM_PATH_MAX];	/* push.socket: ftmpushd's Unix socket (PAM hosts) */
} ftm_push_config_t;

/* Outgoing mail (activation links): libcurl's SMTP. */
typedef struct ftm_smtp_config {
	char		server[FTM_PATH_MAX];	/* smtp.server: smtp://HOST[:PORT] (STARTTLS) or smtps://HOST[:PORT] */
	char		from[256];		/* smtp.from: the sender address */
	bool		starttls;		/* smtp.starttls: yes (default) requires TLS on smtp://; no allows plain */
	char		credentials[FTM_PATH_MAX];	/* smtp.credentials: 0600 file, line 1 user, line 2 password */
	char		ca_file[FTM_PATH_MAX];	/* smtp.ca_file: CA bundle for the server (default system) */
	unsigned	timeout;		/* smtp.timeout: seconds for the whole send, default 30 */
} ftm_smtp_config_t;

typedef struct ftm_config {
	char		token_db[FTM_PATH_MAX];	/* required by rlm_ftmpush; default FTM_DEFAULT_TOKEN_DB */
	char		key_file[FTM_PATH_MAX];	/* seed encryption key; default token_db + ".key" */
	/* The verdict policy (window, lockout_threshold, lockout_duration, activation_expire,
	 * challenge_timeout) lives in the store (ftm_policy.h): these are only the built-in defaults a new
	 * store is seeded with, or what a configuration still sets (policy_given), checked against the
	 * store at start. */
	unsigned	window;			/* drift window in steps, default 1 */
	unsigned	lockout_threshold;	/* consecutive failures that lock, default 5; 0 = never */
	unsigned	activation_expire;	/* minutes a never-used token stays valid, default 4320; 0 = never */
	ftm_no_token_t	no_token;		/* users without a token: reject (default) | pass */
	bool		challenge;		/* fall back to asking for the code, default yes */
	unsigned	challenge_timeout;	/* seconds a challenge State lives, default 300 */
	int		debug;			/* 0 quiet, 1 debug, 2 more */
	ftm_push_config_t push;
	char		issuer[128];		/* the organisation in otpauth URIs, e-mails and pages; default "ftmpush" */
	ftm_smtp_config_t smtp;
	char		node_name[128];		/* this server in the audit trail; default "": the host name */
	unsigned	audit_retention;	/* days an audit row is kept, default 90; 0 = for ever */
	unsigned	lockout_duration;	/* minutes a lock by failures lasts, default 0 = until an admin unlocks */
	unsigned	policy_given;		/* ftm_policy_bit()s of the policy options this config set */
	char		metrics_listen[80];	/* "127.0.0.1:9464": serve Prometheus metrics there ("": off) */
	bool		metrics_allow_remote;	/* a non-loopback metrics_listen is refused unless yes */
	bool		log_accepts;		/* a line in the normal log per accepted login, default yes (the audit
					 * row is written either way); rlm_ftmpush's default is FreeRADIUS's log { auth } */
} ftm_config_t;

void ftm_config_defaults(ftm_config_t *cfg);

/* Set one option by name. Names: the field names above; push (smtp) options as "push.X", "push_X" or,
 * inside a [push] ([smtp]) section, "X". Values: yes/no/true/false/on/off/enable/disable for booleans.
 * Returns 0, or -1 with a one-line explanation in err (unknown option, bad value, out of range). */
int ftm_config_set(ftm_config_t *cfg, const char *name, const char *value, char *err, size_t err_len);

/* Parse a "key = value" file (# and ; comments, [push] and [smtp] sections). Refuses a file that is group- or
 * world-writable, or world-readable when it holds a secret (ntfy_token). Returns the number of errors
 * (0 = ok); each error is reported through report(ctx, line, message) when report is non-NULL, and the
 * first one is also copied into err. */
typedef void (*ftm_config_report_fn)(void *ctx, unsigned line, const char *message);
int ftm_config_load(ftm_config_t *cfg, const char *path, ftm_config_report_fn report, void *ctx,
		    char *err, size_t err_len);

/* Cross-option checks: server and interface exclusive ("set either interface or server but not both"),
 * port range, push enabled without a readable server_cert/server_key, push enabled with neither server
 * nor interface, ... Returns the number of problems; each goes to report() and the first to err. */
int ftm_config_validate(const ftm_config_t *cfg, ftm_config_report_fn report, void *ctx,
			char *err, size_t err_len);

/* A bare e-mail address (local@domain) safe to put into a header and an SMTP command. */
bool ftm_config_valid_email(const char *address);

/* A deprecated spelling still accepted by ftm_config_set (FortiOS's push "server-ip" for "server"):
 * the one warning text to log for NAME, or NULL when NAME is not deprecated. ftm_config_load reports
 * it itself, prefixed "warning: ", without counting it as an error. */
const char *ftm_config_deprecated(const char *name);

/* Names of every option, NULL-terminated (for docs, `config check`, and front-end mapping). */
extern const char *const ftm_config_option_names[];

#endif

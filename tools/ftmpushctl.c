/* ftmpushctl: the admin CLI over libftmpush: tokens, codes, the verdict and config checks. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_QRENCODE
#include <qrencode.h>
#endif

#include "ftm_audit.h"
#include "ftm_config.h"
#include "ftm_diagnose.h"
#include "ftm_enrol.h"
#include "ftm_log.h"
#include "ftm_otp.h"
#include "ftm_protect.h"
#include "ftm_store.h"
#include "ftm_trace.h"

#define EXIT_REFUSED	1	/* verify: the code was refused; other commands: the operation failed */
#define EXIT_USAGE	2
#define EXIT_STORE	3	/* verify: the store failed (fail closed) */

static const char *prog = "ftmpushctl";

/* Global options: apply to every command, before or after it. */
static struct {
	const char	*db;
	const char	*config;
	const char	*key_file;
	bool		verbose;
} g;

static ftm_config_t cfg;
static ftm_policy_t policy;	/* the store's, read by store_policy() */
static ftm_log_t logger = { ftm_log_sink_stderr, NULL, FTM_LOG_WARN };

static void die(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
static void die(int status, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: %s [--db PATH] [--config FILE] [--key-file FILE] COMMAND ...\n"
"  token add USER [--serial S] [--seed HEX] [--algorithm sha1|sha256|sha512] [--digits 6|8]\n"
"                 [--period S] [--push CHANNEL:TARGET] [--issuer NAME] [--qr | --no-qr] [--email ADDR]\n"
"  token list [--user USER] [--time UNIX]\n"
"  token show SERIAL [--time UNIX]\n"
"  token lock|unlock|delete SERIAL\n"
"  token reissue SERIAL [--seed HEX] [--algorithm A] [--digits N] [--period S] [--qr | --no-qr] [--email ADDR]\n"
"  token send SERIAL [--email ADDR]   (a new activation link by e-mail; the old one dies)\n"
"  token push SERIAL CHANNEL:TARGET|none\n"
"  token assign SERIAL USER\n"
"  token recovery USER [--count N]   (N single-use recovery codes, default 10, printed once; the old set dies)\n"
"  token import FILE [--algorithm A] [--digits N] [--period S]   (CSV: serial,seed[,user[,email]])\n"
"  otp --seed HEX [--algorithm A] [--digits N] [--period S] [--time UNIX]   (defaults: sha1, 6, 30 s)\n"
"  otp --serial SERIAL [--time UNIX]\n"
"  verify USER CODE [--time UNIX]\n"
"  config check [--config FILE]\n"
"  policy show [NAME]             the verdict policy of the store (the same on every node and front end)\n"
"  policy set NAME VALUE          window, lockout_threshold, lockout_duration, activation_expire, challenge_timeout\n"
"  diagnose [USER] [--time UNIX]   the troubleshooting checklist: \u2714 fine, ! warning, \u2718 problem + fix\n"
"  diagnose --push USER   a test push to USER: published, callback, answer and total, each with its time\n"
"  audit [--user USER] [--since 1h|7d|UNIX|YYYY-MM-DD] [--result R] [--limit N] [--json]   the audit trail\n"
"  audit prune [--days N]   drop the rows older than N days (default audit_retention)\n"
"  debug enable [--user USER] [--minutes N]   raise the decision trace on every front end (default 30 min)\n"
"  debug disable [--user USER] | debug show\n"
"  backup FILE   a consistent copy of the SQLite store, taken while servers use it (a new file, 0600;\n"
"                the key file is not in it: keep it apart)\n"
"--email ADDR mails the user an activation link (smtp.*); with push.server set, a link is printed otherwise.\n"
"--seed - reads the hex seed from the first line of stdin (keeps it out of ps and shell history).\n"
"Exit status: 0 success; 1 refused or failed (diagnose: a \u2718); 2 usage error; 3 store failure during verify.\n", prog);
}

/* ---- option parsing shared by the commands ---- */

enum {
	O_DB = 1000, O_CONFIG, O_KEYFILE, O_SERIAL, O_SEED, O_ALG, O_DIGITS, O_PERIOD, O_PUSH, O_ISSUER,
	O_QR, O_NOQR, O_TIME, O_EMAIL, O_COUNT, O_SINCE, O_RESULT, O_JSON, O_LIMIT, O_DAYS, O_MINUTES, O_USER,
	O_VERBOSE, O_HELP
};

static const struct option long_opts[] = {
	{ "db",		required_argument,	NULL, O_DB },
	{ "config",	required_argument,	NULL, O_CONFIG },
	{ "key-file",	required_argument,	NULL, O_KEYFILE },
	{ "serial",	required_argument,	NULL, O_SERIAL },
	{ "seed",	required_argument,	NULL, O_SEED },
	{ "algorithm",	required_argument,	NULL, O_ALG },
	{ "digits",	required_argument,	NULL, O_DIGITS },
	{ "period",	required_argument,	NULL, O_PERIOD },
	{ "push",	required_argument,	NULL, O_PUSH },
	{ "issuer",	required_argument,	NULL, O_ISSUER },
	{ "qr",		no_argument,		NULL, O_QR },
	{ "no-qr",	no_argument,		NULL, O_NOQR },
	{ "time",	required_argument,	NULL, O_TIME },
	{ "email",	required_argument,	NULL, O_EMAIL },
	{ "count",	required_argument,	NULL, O_COUNT },
	{ "user",	required_argument,	NULL, O_USER },
	{ "since",	required_argument,	NULL, O_SINCE },
	{ "result",	required_argument,	NULL, O_RESULT },
	{ "json",	no_argument,		NULL, O_JSON },
	{ "limit",	required_argument,	NULL, O_LIMIT },
	{ "days",	required_argument,	NULL, O_DAYS },
	{ "minutes",	required_argument,	NULL, O_MINUTES },
	{ "verbose",	no_argument,		NULL, O_VERBOSE },
	{ "help",	no_argument,		NULL, O_HELP },
	{ NULL, 0, NULL, 0 }
};

typedef struct opts {
	const char	*serial, *seed, *alg, *digits, *period, *push, *issuer, *time, *user, *email, *count;
	const char	*since, *result, *limit, *days, *minutes;
	bool		json;
	int		qr;	/* -1 auto (a tty), 0 no, 1 yes */
	int		argc;
	char		**argv;	/* the positional arguments */
} opts_t;

/* --seed -: the hex seed from the first line of stdin, so it never shows in the process list
 * (/proc/PID/cmdline is readable by every local user) or in shell history. */
static char seed_line[4 * FTM_SEED_MAX + 4];

static void seed_line_clear(void)
{
	ftm_memzero(seed_line, sizeof(seed_line));
}

static const char *seed_from_stdin(void)
{
	size_t n;

	if (fgets(seed_line, sizeof(seed_line), stdin) == NULL)
		die(EXIT_USAGE, "--seed -: no seed on stdin");
	atexit(seed_line_clear);
	n = strcspn(seed_line, "\r\n");
	if (seed_line[n] == '\0' && !feof(stdin))
		die(EXIT_USAGE, "--seed -: line too long");
	seed_line[n] = '\0';
	while (n > 0 && (seed_line[n - 1] == ' ' || seed_line[n - 1] == '\t'))
		seed_line[--n] = '\0';
	if (n == 0)
		die(EXIT_USAGE, "--seed -: empty seed on stdin");
	return seed_line;
}

/* Parse argv (options anywhere); `allowed` lists the command's own options. */
static void parse_opts(int argc, char **argv, const char *allowed, opts_t *o)
{
	int c;

	memset(o, 0, sizeof(*o));
	o->qr = -1;
	optind = 0;	/* glibc: a full restart, forgetting main()'s '+' ordering */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "d:c:k:vh", long_opts, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *lo = long_opts; lo->name; lo++)
			if (lo->val == c)
				name = lo->name;
		if (c >= O_SERIAL && c <= O_USER && (name == NULL || strstr(allowed, name) == NULL))
			die(EXIT_USAGE, "option --%s does not apply to this command", name ? name : "?");
		switch (c) {
		case 'd': case O_DB:		g.db = optarg; break;
		case 'c': case O_CONFIG:	g.config = optarg; break;
		case 'k': case O_KEYFILE:	g.key_file = optarg; break;
		case 'v': case O_VERBOSE:	g.verbose = true; break;
		case 'h': case O_HELP:		usage(stdout); exit(0);
		case O_SERIAL:	o->serial = optarg; break;
		case O_SEED:	o->seed = strcmp(optarg, "-") == 0 ? seed_from_stdin() : optarg; break;
		case O_ALG:	o->alg = optarg; break;
		case O_DIGITS:	o->digits = optarg; break;
		case O_PERIOD:	o->period = optarg; break;
		case O_PUSH:	o->push = optarg; break;
		case O_ISSUER:	o->issuer = optarg; break;
		case O_QR:	o->qr = 1; break;
		case O_NOQR:	o->qr = 0; break;
		case O_TIME:	o->time = optarg; break;
		case O_USER:	o->user = optarg; break;
		case O_EMAIL:	o->email = optarg; break;
		case O_COUNT:	o->count = optarg; break;
		case O_SINCE:	o->since = optarg; break;
		case O_RESULT:	o->result = optarg; break;
		case O_JSON:	o->json = true; break;
		case O_LIMIT:	o->limit = optarg; break;
		case O_DAYS:	o->days = optarg; break;
		case O_MINUTES:	o->minutes = optarg; break;
		default:
			if (optopt >= O_DB)
				die(EXIT_USAGE, "option %s needs a value (see --help)", argv[optind - 1]);
			die(EXIT_USAGE, "unknown option %s (see --help)", argv[optind - 1]);
		}
	}
	o->argc = argc - optind;
	o->argv = argv + optind;
}

static void want_args(const opts_t *o, int n, const char *what)
{
	if (o->argc != n)
		die(EXIT_USAGE, "usage: %s %s", prog, what);
}

static unsigned parse_uint(const char *s, const char *what, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v < lo || v > hi)
		die(EXIT_USAGE, "bad %s \"%s\": expected %u to %u", what, s, lo, hi);
	return (unsigned)v;
}

static time_t parse_time(const char *s)
{
	char *end;
	long long v;

	if (s == NULL)
		return time(NULL);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (s[0] == '\0' || *end != '\0' || errno != 0 || v < 0)
		die(EXIT_USAGE, "bad --time \"%s\": expected seconds since the epoch", s);
	return (time_t)v;
}

static unsigned parse_digits(const char *s)
{
	unsigned d = parse_uint(s, "--digits", 6, 8);

	if (d == 7)
		die(EXIT_USAGE, "bad --digits 7: expected 6 or 8");
	return d;
}

/* Apply --algorithm/--digits/--period to a token. */
static void apply_params(ftm_token_t *t, const opts_t *o)
{
	if (o->alg && ftm_alg_parse(o->alg, &t->alg) != 0)
		die(EXIT_USAGE, "bad --algorithm \"%s\": expected sha1, sha256 or sha512", o->alg);
	if (o->digits)
		t->digits = parse_digits(o->digits);
	if (o->period)
		t->period = parse_uint(o->period, "--period", 1, 3600);
}

static bool valid_push(const char *p)
{
	const char *colon = strchr(p, ':');

	return colon != NULL && colon != p && colon[1] != '\0';
}

/* ---- config and store ---- */

static void config_report(void *ctx, unsigned line, const char *message)
{
	const char *file = ctx;

	if (line > 0)
		fprintf(stderr, "%s: %s:%u: %s\n", prog, file, line, message);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, file, message);
}

/* --config FILE, else (without --db) the default config file when it exists, else the built-in
 * defaults; then --db and --key-file. --db names the store itself: the default config is not read then,
 * so the store's owner (freerad, ftmpush) can manage it without access to root's 0600
 * /etc/ftmpush/ftmpush.conf. The file used in *path (NULL: none). 0, or -1 with err when it does not load. */
static int read_config(const char **path, char *err, size_t err_len)
{
	*path = g.config;
	ftm_config_defaults(&cfg);
	if (*path == NULL && g.db == NULL && access(FTM_DEFAULT_CONFIG, F_OK) == 0)
		*path = FTM_DEFAULT_CONFIG;
	if (*path != NULL) {
		err[0] = '\0';
		if (ftm_config_load(&cfg, *path, NULL, NULL, err, err_len) != 0)
			return -1;
	}
	if (g.db != NULL) {
		snprintf(cfg.token_db, sizeof(cfg.token_db), "%s", g.db);
		if (g.key_file == NULL)
			cfg.key_file[0] = '\0';	/* another store: its key sits next to it */
	}
	if (g.key_file != NULL)
		snprintf(cfg.key_file, sizeof(cfg.key_file), "%s", g.key_file);
	if (cfg.debug > 0 || g.verbose)
		logger.max_level = FTM_LOG_DEBUG;
	return 0;
}

static void load_config(void)
{
	char err[FTM_ERR_MAX];
	const char *path;

	if (read_config(&path, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s: %s (run: %s config check --config %s)", path, err, prog, path);
}

static void policy_warning(void *ctx, bool error, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s: warning: %s%s\n", prog, message,
		error ? " (freeradius, PAM and ftmpushd refuse to start with it)" : "");
}

static ftm_store_t *open_store(void)
{
	char err[FTM_ERR_MAX];
	ftm_store_t *st;

	load_config();
	st = ftm_store_open(cfg.token_db, cfg.key_file[0] ? cfg.key_file : NULL, g.verbose ? &logger : NULL,
			    err, sizeof(err));
	if (st == NULL)
		die(EXIT_REFUSED, "%s", err);
	/* the front ends refuse a config that sets a policy otherwise; the admin tool says so and goes on,
	 * since `policy set` is how it is mended */
	if (cfg.policy_given != 0 && ftm_store_policy(st, &policy, err, sizeof(err)) == 0)
		ftm_policy_check_config(&cfg, &policy, policy_warning, NULL, err, sizeof(err));
	return st;
}

/* An admin change in the audit trail: done ("ok") or refused, after the store said so. user NULL: the
 * token's own user. */
static void audit_cmd(ftm_store_t *st, const char *command, const char *serial, const char *user, const char *result,
		      const char *reason)
{
	ftm_audit_admin(st, &cfg, &logger, command, serial, user, result, reason);
}

/* The store's verdict policy (every state shown is the one a login would see). */
static const ftm_policy_t *store_policy(ftm_store_t *st)
{
	char err[FTM_ERR_MAX];

	if (ftm_store_policy(st, &policy, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	return &policy;
}

/* ---- QR code in the terminal ---- */

static void print_qr(const char *text, int want)
{
#ifdef HAVE_QRENCODE
	QRcode *qr;
	int w, quiet = 2;

	if (want == 0 || (want < 0 && !isatty(STDOUT_FILENO)))
		return;
	qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	if (qr == NULL) {
		fprintf(stderr, "%s: cannot draw the QR code: %s\n", prog, strerror(errno));
		return;
	}
	w = qr->width;
	/* two modules per character; light modules are drawn (for dark terminals), dark ones are blank */
	for (int y = -quiet; y < w + quiet; y += 2) {
		for (int x = -quiet; x < w + quiet; x++) {
			bool top = y >= 0 && y < w && x >= 0 && x < w && (qr->data[y * w + x] & 1);
			bool bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w && (qr->data[(y + 1) * w + x] & 1);
			fputs(!top && !bot ? "\u2588" : !top ? "\u2580" : !bot ? "\u2584" : " ", stdout);
		}
		fputc('\n', stdout);
	}
	ftm_memzero(qr->data, (size_t)w * (size_t)w);
	QRcode_free(qr);
#else
	if (want == 1)
		fprintf(stderr, "%s: built without libqrencode: no QR code\n", prog);
#endif
}

static void print_enrolment(const ftm_token_t *t, const char *issuer, int qr)
{
	char uri[1024];

	if (issuer == NULL && cfg.issuer[0] != '\0')
		issuer = cfg.issuer;
	if (ftm_token_otpauth_uri(t, issuer, uri, sizeof(uri)) != 0)
		die(EXIT_REFUSED, "cannot build the otpauth URI");
	printf("serial: %s\n", t->serial);
	printf("user: %s\n", t->user);
	printf("uri: %s\n", uri);
	fflush(stdout);
	print_qr(uri, qr);
	ftm_memzero(uri, sizeof(uri));
}

static char *fmt_time(int64_t t, char *buf, size_t len);

/* ---- activation links ---- */

/* The push target as given, an ntfy server without a topic completed with a topic of its own. */
static void push_target(const char *given, char *out, size_t len)
{
	char err[FTM_ERR_MAX];

	if (!valid_push(given))
		die(EXIT_USAGE, "bad --push \"%s\": expected CHANNEL:TARGET (ntfy:https://SERVER/[TOPIC], gateway:REGISTRATION_ID)", given);
	if (ftm_enrol_push_target(given, out, len, err, sizeof(err)) != 0)
		die(EXIT_USAGE, "%s", err);
}

/* Before a token is created or re-issued for an e-mail address: can the link be mailed at all? */
static void want_mail(const char *email)
{
	char err[FTM_ERR_MAX];

	if (!ftm_config_valid_email(email))
		die(EXIT_USAGE, "bad --email \"%s\": expected an address such as alice@example.org", email);
	if (ftm_enrol_mail_ready(&cfg, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "cannot mail activation links: %s", err);
}

/* Mail a new link (email: NULL or "" = the last address), or print one when the listener has an
 * address; prints what happened. 0, or -1 after printing why (the token stays pending). */
static int send_or_print_link(ftm_store_t *st, const char *serial, bool mail, const char *email)
{
	char err[FTM_ERR_MAX], link[512], to[FTM_EMAIL_MAX], until[64];
	int64_t expires = 0;

	if (!mail && ftm_enrol_link(&cfg, "x", link, sizeof(link), NULL, 0) != 0)
		return 0;	/* no listener address: the URI above is the enrolment */
	if (ftm_enrol_send_link(st, &cfg, serial, mail, email, time(NULL), link, sizeof(link), to, sizeof(to),
				&expires, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		if (mail)
			fprintf(stderr, "%s: token %s stays pending; send a new link with: %s token send %s\n",
				prog, serial, prog, serial);
		return -1;
	}
	if (mail)
		printf("link sent to: %s\n", to);
	else
		printf("link: %s\n", link);
	printf("link_expires: %s\n", expires > 0 ? fmt_time(expires, until, sizeof(until)) : "never");
	ftm_memzero(link, sizeof(link));
	return 0;
}

/* ---- token commands ---- */

static int cmd_token_add(int argc, char **argv)
{
	opts_t o;
	ftm_token_t t;
	ftm_store_t *st;
	char err[FTM_ERR_MAX], t_serial[FTM_SERIAL_MAX];
	int rc;

	parse_opts(argc, argv, "serial seed algorithm digits period push issuer qr no-qr email", &o);
	want_args(&o, 1, "token add USER [--serial S] [--seed HEX] [--algorithm A] [--digits N] [--period S] [--push CHANNEL:TARGET] [--email ADDR]");
	if (o.argv[0][0] == '\0')
		die(EXIT_USAGE, "empty user name");
	if (ftm_token_init(&t, o.argv[0], o.serial, o.seed, err, sizeof(err)) != 0)
		die(EXIT_USAGE, "%s", err);
	apply_params(&t, &o);
	if (o.push)
		push_target(o.push, t.push, sizeof(t.push));
	st = open_store();
	if (o.email)
		want_mail(o.email);
	if (ftm_store_token_add(st, &t, err, sizeof(err)) != 0) {
		ftm_memzero(&t, sizeof(t));
		die(EXIT_REFUSED, "%s", err);
	}
	if (o.email) {
		/* the seed goes to the user's page only, not to this terminal */
		printf("serial: %s\nuser: %s\n", t.serial, t.user);
		if (t.push[0])
			printf("push: %s\n", t.push);
	} else {
		print_enrolment(&t, o.issuer, o.qr);
		if (o.push && strcmp(o.push, t.push) != 0)
			printf("push: %s\n", t.push);
	}
	snprintf(t_serial, sizeof(t_serial), "%s", t.serial);
	audit_cmd(st, "token add", t.serial, t.user, FTM_AUDIT_OK, t.push[0] ? "token added with a push target" : "token added");
	ftm_memzero(&t, sizeof(t));
	fflush(stdout);
	rc = send_or_print_link(st, t_serial, o.email != NULL, o.email);
	ftm_store_close(st);
	return rc == 0 ? 0 : EXIT_REFUSED;
}

static char *fmt_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL || strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		snprintf(buf, len, "%" PRId64, t);
	return buf;
}

/* A listing is handed on by the store as it reads it: an error after some rows were printed fails the
 * command, saying the listing is incomplete (what was printed is not the whole). */
static void __attribute__((noreturn)) listing_failed(const char *what, size_t n, const char *rows, const char *err)
{
	fflush(stdout);
	if (n > 0)
		die(EXIT_REFUSED, "%s incomplete: %zu %s listed, then: %s", what, n, rows, err);
	die(EXIT_REFUSED, "%s", err);
}

/* A listing that could not be written whole (a full disk, a closed pipe) fails the command too. */
static void listing_written(const char *what)
{
	int flushed = fflush(stdout), e = errno;

	if (flushed != 0)
		die(EXIT_REFUSED, "%s: writing the listing: %s", what, strerror(e));
	if (ferror(stdout))	/* an earlier write failed; its errno is gone */
		die(EXIT_REFUSED, "%s: writing the listing failed", what);
}

struct list_ctx {
	time_t			now;
	size_t			n;
	const ftm_policy_t	*policy;
};

static int list_one(void *c, const ftm_token_t *t)
{
	struct list_ctx *lc = c;

	if (lc->n++ == 0)
		printf("%-20s %-20s %-8s %-8s %-6s %-6s %-6s %s\n",
		       "SERIAL", "USER", "STATE", "FAILURES", "ALG", "DIGITS", "PERIOD", "PUSH");
	printf("%-20s %-20s %-8s %-8u %-6s %-6u %-6u %s\n", t->serial, t->user[0] ? t->user : "-",
	       ftm_token_state_name(t, lc->now, lc->policy), t->failures, ftm_alg_name(t->alg),
	       t->digits, t->period, t->push[0] ? t->push : "-");
	return 0;
}

static int cmd_token_list(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX];
	struct list_ctx lc = { 0, 0, NULL };

	parse_opts(argc, argv, "user time", &o);
	want_args(&o, 0, "token list [--user USER]");
	lc.now = parse_time(o.time);
	st = open_store();
	lc.policy = store_policy(st);
	if (ftm_store_token_list_info(st, o.user, list_one, &lc, err, sizeof(err)) != 0)
		listing_failed("token list", lc.n, "tokens", err);
	if (lc.n == 0)
		printf("no tokens\n");
	ftm_store_close(st);
	listing_written("token list");
	return 0;
}

static int cmd_token_show(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	ftm_token_t t;
	ftm_activation_t act;
	char err[FTM_ERR_MAX], buf[64];
	const ftm_policy_t *pol;
	int64_t unlock_at;
	unsigned left = 0, total = 0;
	time_t now;
	int rc;

	parse_opts(argc, argv, "time", &o);
	want_args(&o, 1, "token show SERIAL");
	now = parse_time(o.time);
	st = open_store();
	pol = store_policy(st);
	rc = ftm_store_token_get(st, o.argv[0], &t, err, sizeof(err));
	if (rc != 0)
		die(EXIT_REFUSED, "%s", err);
	ftm_memzero(t.seed, sizeof(t.seed));	/* never shown */
	printf("serial: %s\n", t.serial);
	printf("user: %s\n", t.user[0] ? t.user : "(unassigned)");
	printf("state: %s\n", ftm_token_state_name(&t, now, pol));
	printf("status: %s\n", t.status == FTM_TOKEN_ACTIVE ? "active" : "lock");
	if (t.status != FTM_TOKEN_ACTIVE) {
		/* why and until when: a lock by failures ends with the policy's lockout_duration */
		unlock_at = ftm_token_unlock_at(&t, pol);
		printf("lock_reason: %s\n", t.lock_reason == FTM_LOCK_FAILURES ? "failures" :
		       t.locked_at > 0 ? "admin" : "admin (locked before lock reasons were kept)");
		printf("locked_at: %s\n", t.locked_at > 0 ? fmt_time(t.locked_at, buf, sizeof(buf)) : "unknown");
		printf("locked_until: %s\n", unlock_at == 0 ? "unlocked by an admin (token unlock)" :
		       unlock_at <= (int64_t)now ? "ended (the next login unlocks it)" : fmt_time(unlock_at, buf, sizeof(buf)));
	}
	printf("algorithm: %s\n", ftm_alg_name(t.alg));
	printf("digits: %u\n", t.digits);
	printf("period: %u\n", t.period);
	printf("failures: %u\n", t.failures);
	if (t.last_step >= 0) {
		printf("last_step: %" PRId64 "\n", t.last_step);
		printf("last_use: %s\n", fmt_time(t.last_step * (int64_t)t.period, buf, sizeof(buf)));
	} else {
		printf("last_step: -1\n");
		printf("last_use: never\n");
		if (pol->activation_expire > 0)
			printf("activation_expires: %s\n",
			       fmt_time(t.created + (int64_t)pol->activation_expire * 60, buf, sizeof(buf)));
	}
	printf("push: %s\n", t.push[0] ? t.push : "none");
	printf("created: %s\n", fmt_time(t.created, buf, sizeof(buf)));
	if (t.user[0] != '\0' && ftm_store_recovery_count(st, t.user, &left, &total, err, sizeof(err)) == 0)
		printf("recovery_codes: %u left of %u (the user's, for every token)\n", left, total);
	if (t.last_step < 0 && ftm_store_activation_get(st, t.serial, &act, NULL, 0) == 0) {
		printf("activation_link: %s%s%s, %u wrong code%s left, expires %s\n",
		       act.code == FTM_ACT_USED ? "used" : "issued", act.email[0] ? " to " : " (printed)",
		       act.email, act.tries_left, act.tries_left == 1 ? "" : "s",
		       act.expires > 0 ? fmt_time(act.expires, buf, sizeof(buf)) : "never");
	}
	ftm_memzero(&t, sizeof(t));
	ftm_store_close(st);
	return 0;
}

/* The codes are shown here once and never again: the store keeps only their salted hashes. */
static int cmd_token_recovery(int argc, char **argv)
{
	char (*codes)[FTM_RECOVERY_LEN + 1];
	char err[FTM_ERR_MAX];
	ftm_store_t *st;
	unsigned count = FTM_RECOVERY_COUNT;
	opts_t o;

	parse_opts(argc, argv, "count", &o);
	want_args(&o, 1, "token recovery USER [--count N]");
	if (o.count != NULL)
		count = parse_uint(o.count, "--count", 1, FTM_RECOVERY_COUNT_MAX);
	codes = calloc(count, sizeof(*codes));
	if (codes == NULL)
		die(EXIT_REFUSED, "out of memory");
	st = open_store();
	if (ftm_store_recovery_issue(st, o.argv[0], count, time(NULL), codes, err, sizeof(err)) != 0) {
		free(codes);
		audit_cmd(st, "token recovery", "", o.argv[0], FTM_AUDIT_REFUSED, err);
		die(EXIT_REFUSED, "%s", err);
	}
	{
		char what[64];

		snprintf(what, sizeof(what), "%u recovery codes issued; the old set revoked", count);
		audit_cmd(st, "token recovery", "", o.argv[0], FTM_AUDIT_OK, what);
	}
	ftm_store_close(st);
	printf("%u recovery codes for '%s'; each works once, typed where a token code goes (after the "
	       "password, or at the code prompt). Any earlier codes no longer work. They are not shown again:\n",
	       count, o.argv[0]);
	for (unsigned i = 0; i < count; i++)
		printf("  %s\n", codes[i]);
	fflush(stdout);
	ftm_memzero(codes, count * sizeof(*codes));
	free(codes);
	return 0;
}

static int cmd_token_simple(const char *what, int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	ftm_token_t t;
	char err[FTM_ERR_MAX], usage_line[64], command[32], user[FTM_USER_MAX] = "";
	int rc;

	snprintf(usage_line, sizeof(usage_line), "token %s SERIAL", what);
	parse_opts(argc, argv, "", &o);
	want_args(&o, 1, usage_line);
	st = open_store();
	/* the user, for the trail, before a delete takes the token away */
	if (ftm_store_token_get(st, o.argv[0], &t, NULL, 0) == 0)
		snprintf(user, sizeof(user), "%s", t.user);
	ftm_memzero(&t, sizeof(t));
	if (strcmp(what, "lock") == 0)
		rc = ftm_store_token_set_status(st, o.argv[0], FTM_TOKEN_LOCKED, err, sizeof(err));
	else if (strcmp(what, "unlock") == 0)
		rc = ftm_store_token_set_status(st, o.argv[0], FTM_TOKEN_ACTIVE, err, sizeof(err));
	else
		rc = ftm_store_token_delete(st, o.argv[0], err, sizeof(err));
	snprintf(command, sizeof(command), "token %s", what);
	audit_cmd(st, command, o.argv[0], user, rc == 0 ? FTM_AUDIT_OK : FTM_AUDIT_REFUSED, rc == 0 ? "done" : err);
	if (rc != 0)
		die(EXIT_REFUSED, "%s", err);
	printf("token %s %s\n", o.argv[0], strcmp(what, "lock") == 0 ? "locked" :
	       strcmp(what, "unlock") == 0 ? "unlocked" : "deleted");
	ftm_store_close(st);
	return 0;
}

static int cmd_token_reissue(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	ftm_token_t old, t;
	char err[FTM_ERR_MAX];
	int rc;

	parse_opts(argc, argv, "seed algorithm digits period issuer qr no-qr email", &o);
	want_args(&o, 1, "token reissue SERIAL [--seed HEX] [--algorithm A] [--digits N] [--period S] [--email ADDR]");
	st = open_store();
	if (o.email)
		want_mail(o.email);
	if (ftm_store_token_get(st, o.argv[0], &old, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	if (ftm_token_init(&t, old.user, old.serial, o.seed, err, sizeof(err)) != 0)
		die(EXIT_USAGE, "%s", err);
	t.alg = old.alg;
	t.digits = old.digits;
	t.period = old.period;
	ftm_memzero(&old, sizeof(old));
	apply_params(&t, &o);
	/* the old seed and every old link die here, in the store; a new link follows */
	if (ftm_store_token_reissue(st, &t, err, sizeof(err)) != 0) {
		ftm_memzero(&t, sizeof(t));
		die(EXIT_REFUSED, "%s", err);
	}
	audit_cmd(st, "token reissue", t.serial, t.user, FTM_AUDIT_OK, "new seed; state reset; old links revoked");
	if (o.email)
		printf("serial: %s\nuser: %s\n", t.serial, t.user);
	else
		print_enrolment(&t, o.issuer, o.qr);
	ftm_memzero(t.seed, sizeof(t.seed));
	fflush(stdout);
	rc = send_or_print_link(st, t.serial, o.email != NULL, o.email);
	ftm_memzero(&t, sizeof(t));
	ftm_store_close(st);
	return rc == 0 ? 0 : EXIT_REFUSED;
}

static int cmd_token_send(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	int rc;

	parse_opts(argc, argv, "email", &o);
	want_args(&o, 1, "token send SERIAL [--email ADDR]");
	st = open_store();
	if (o.email)
		want_mail(o.email);
	rc = send_or_print_link(st, o.argv[0], true, o.email);
	audit_cmd(st, "token send", o.argv[0], NULL, rc == 0 ? FTM_AUDIT_OK : FTM_AUDIT_REFUSED,
		  rc == 0 ? "a new activation link sent" : "the activation link could not be sent");
	ftm_store_close(st);
	return rc == 0 ? 0 : EXIT_REFUSED;
}

static int cmd_token_push(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX];
	char push[FTM_PUSH_MAX] = "";

	parse_opts(argc, argv, "", &o);
	want_args(&o, 2, "token push SERIAL CHANNEL:TARGET|none");
	if (strcmp(o.argv[1], "none") != 0 && o.argv[1][0] != '\0') {
		if (!valid_push(o.argv[1]))
			die(EXIT_USAGE, "bad push target \"%s\": expected CHANNEL:TARGET or none", o.argv[1]);
		push_target(o.argv[1], push, sizeof(push));
	}
	st = open_store();
	if (ftm_store_token_set_push(st, o.argv[0], push, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	audit_cmd(st, "token push", o.argv[0], NULL, FTM_AUDIT_OK, push[0] ? "push target set" : "push target removed");
	printf("token %s push %s\n", o.argv[0], push[0] ? push : "none");
	ftm_store_close(st);
	return 0;
}

static int cmd_token_assign(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX];

	parse_opts(argc, argv, "", &o);
	want_args(&o, 2, "token assign SERIAL USER");
	st = open_store();
	if (ftm_store_token_set_user(st, o.argv[0], o.argv[1], err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	audit_cmd(st, "token assign", o.argv[0], o.argv[1], FTM_AUDIT_OK, o.argv[1][0] ? "assigned" : "unassigned");
	printf("token %s assigned to %s\n", o.argv[0], o.argv[1][0] ? o.argv[1] : "nobody");
	ftm_store_close(st);
	return 0;
}

/* ---- import ---- */

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	if (e - s >= 2 && s[0] == '"' && e[-1] == '"') {
		e[-1] = '\0';
		s++;
	}
	return s;
}

/* The good rows of an import file: their tokens and the line each came from. */
typedef struct import_rows {
	ftm_token_t	*toks;
	unsigned	*lines;
	char		(*emails)[FTM_EMAIL_MAX];	/* the optional 4th column, per row ("" none) */
	bool		any_email;
	size_t		n, cap;
	unsigned	bad;	/* rows refused, each reported on stderr with its line */
} import_rows_t;

static void import_rows_free(import_rows_t *r)
{
	/* rows past n were zeroed when refused, or never written: zeroing them would only fault them in */
	if (r->toks != NULL) {
		ftm_memzero(r->toks, r->n * sizeof(*r->toks));
		free(r->toks);
	}
	free(r->lines);
	free(r->emails);
	memset(r, 0, sizeof(*r));
}

/* Room for one more token. Grown by copying, not realloc, so the old block's seeds can be zeroed; the
 * e-mail column stays zeroed (calloc) past n, so a row without one writes nothing there (a write per
 * row faulted in every page of it). */
static ftm_token_t *import_slot(import_rows_t *r)
{
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 64;
		ftm_token_t *nt = calloc(ncap, sizeof(*nt));
		unsigned *nl = realloc(r->lines, ncap * sizeof(*nl));
		char (*ne)[FTM_EMAIL_MAX] = calloc(ncap, sizeof(*ne));

		if (nt == NULL || nl == NULL || ne == NULL)
			die(EXIT_REFUSED, "out of memory");
		if (r->emails != NULL)
			memcpy(ne, r->emails, r->n * sizeof(*ne));
		free(r->emails);
		r->emails = ne;
		if (r->toks != NULL) {
			memcpy(nt, r->toks, r->n * sizeof(*nt));
			ftm_memzero(r->toks, r->n * sizeof(*r->toks));
			free(r->toks);
		}
		r->toks = nt;
		r->lines = nl;
		r->cap = ncap;
	}
	return &r->toks[r->n];
}

/* Split a CSV line at commas into at most 4 trimmed fields; returns how many. */
static int split_fields(char *line, char *fields[4])
{
	char *p = line;
	int nf = 0;

	while (nf < 4) {
		char *comma = strchr(p, ',');

		if (comma)
			*comma = '\0';
		fields[nf++] = trim(p);
		if (!comma)
			break;
		p = comma + 1;
	}
	return nf;
}

/* One line of the file: skipped (blank, comment, header), a token, or a bad row reported by line. */
static void import_line(import_rows_t *r, char *line, unsigned lineno, const char *file, const opts_t *o)
{
	char *fields[4] = { NULL, NULL, NULL, NULL }, err[FTM_ERR_MAX];
	ftm_token_t *t;
	char *s = trim(line);
	int nf;

	if (s[0] == '\0' || s[0] == '#')
		return;
	nf = split_fields(line, fields);
	if (lineno == 1 && strcasecmp(fields[0], "serial") == 0)
		return;	/* a header row */
	if (nf < 2 || nf > 4 || (nf == 4 && strchr(fields[3], ',') != NULL)) {
		fprintf(stderr, "%s: %s:%u: expected serial,seed[,user][,email], found %d field%s\n",
			prog, file, lineno, nf, nf == 1 ? "" : "s");
		r->bad++;
		return;
	}
	t = import_slot(r);
	if (nf == 4 && fields[3][0] != '\0') {
		/* a link goes to a user: a row with an address needs one */
		if (!ftm_config_valid_email(fields[3]) || fields[2][0] == '\0') {
			fprintf(stderr, "%s: %s:%u: bad e-mail address (or no user for it)\n", prog, file, lineno);
			r->bad++;
			return;
		}
		snprintf(r->emails[r->n], sizeof(r->emails[r->n]), "%s", fields[3]);
		r->any_email = true;
	}
	if (ftm_token_init(t, nf >= 3 ? fields[2] : "", fields[0], fields[1], err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s:%u: %s\n", prog, file, lineno, err);
		ftm_memzero(t, sizeof(*t));
		r->emails[r->n][0] = '\0';	/* the slot is the next row's */
		r->bad++;
		return;
	}
	apply_params(t, o);
	r->lines[r->n++] = lineno;
}

/* The shortest row is 22 bytes (a 1-character serial, a comma, a 10-byte seed in hex): sized from the
 * file, the array is allocated once, where doubling it copied every token log n times. */
#define IMPORT_ROW_MIN	22

static void import_read(FILE *f, const char *file, const opts_t *o, import_rows_t *r)
{
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	struct stat sb;

	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0) {
		r->cap = (size_t)sb.st_size / IMPORT_ROW_MIN + 1;
		r->toks = calloc(r->cap, sizeof(*r->toks));	/* pages no row touches are never faulted in */
		r->lines = calloc(r->cap, sizeof(*r->lines));
		r->emails = calloc(r->cap, sizeof(*r->emails));	/* untouched pages cost nothing either */
		if (r->toks == NULL || r->lines == NULL || r->emails == NULL)
			die(EXIT_REFUSED, "out of memory");
	}

	while (getline(&line, &cap, f) != -1)
		import_line(r, line, ++lineno, file, o);
	if (line) {
		ftm_memzero(line, cap);
		free(line);
	}
}

/* File order among rows of the same serial: the rows are one array, so their addresses are their order. */
static int serial_then_line(const void *a, const void *b)
{
	const ftm_token_t *x = *(const ftm_token_t *const *)a, *y = *(const ftm_token_t *const *)b;
	int c = strcmp(x->serial, y->serial);

	return c != 0 ? c : (x > y) - (x < y);
}

/* first_line[i]: the line where row i's serial first appears, 0 when row i is that first row. The rows
 * are sorted by serial once (n log n, where comparing each row with every earlier one was quadratic). */
static unsigned *import_first_lines(const import_rows_t *r)
{
	const ftm_token_t **order = malloc((r->n ? r->n : 1) * sizeof(*order));
	unsigned *first_line = calloc(r->n ? r->n : 1, sizeof(*first_line));

	if (order == NULL || first_line == NULL)
		die(EXIT_REFUSED, "out of memory");
	for (size_t i = 0; i < r->n; i++)
		order[i] = &r->toks[i];
	qsort(order, r->n, sizeof(*order), serial_then_line);
	for (size_t i = 1, first = 0; i < r->n; i++) {
		if (strcmp(order[first]->serial, order[i]->serial) != 0)
			first = i;
		else
			first_line[order[i] - r->toks] = r->lines[order[first] - r->toks];
	}
	free(order);
	return first_line;
}

/* Each serial once in the file and not yet in the store; every row that breaks it is reported by line.
 * The store is asked about all the serials at once (a round trip per token was most of a PostgreSQL
 * import's time). */
static void import_check_serials(ftm_store_t *st, import_rows_t *r, const char *file)
{
	unsigned *first_line = import_first_lines(r);
	const char **serials = malloc((r->n ? r->n : 1) * sizeof(*serials));
	bool *in_store = calloc(r->n ? r->n : 1, sizeof(*in_store));
	char err[FTM_ERR_MAX] = "";

	if (serials == NULL || in_store == NULL)
		die(EXIT_REFUSED, "out of memory");
	for (size_t i = 0; i < r->n; i++)
		serials[i] = r->toks[i].serial;
	if (ftm_store_tokens_present(st, serials, r->n, in_store, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s: nothing imported: %s", file, err);	/* the store, not a row */
	for (size_t i = 0; i < r->n; i++) {
		if (first_line[i] != 0) {
			fprintf(stderr, "%s: %s:%u: serial %s already on line %u\n",
				prog, file, r->lines[i], r->toks[i].serial, first_line[i]);
			r->bad++;
		} else if (in_store[i]) {
			fprintf(stderr, "%s: %s:%u: serial already in the store\n", prog, file, r->lines[i]);
			r->bad++;
		}
	}
	free(in_store);
	free(serials);
	free(first_line);
}

static int cmd_token_import(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	FILE *f;
	import_rows_t rows = { 0 };
	char err[FTM_ERR_MAX];
	size_t n;
	unsigned bad, mailed = 0, unsent = 0;

	parse_opts(argc, argv, "algorithm digits period", &o);
	want_args(&o, 1, "token import FILE   (CSV lines: serial,seed[,user[,email]])");
	f = strcmp(o.argv[0], "-") == 0 ? stdin : fopen(o.argv[0], "r");
	if (f == NULL)
		die(EXIT_REFUSED, "%s: %s", o.argv[0], strerror(errno));
	st = open_store();
	import_read(f, o.argv[0], &o, &rows);
	if (f != stdin)
		fclose(f);
	import_check_serials(st, &rows, o.argv[0]);
	if (rows.bad == 0 && rows.any_email && ftm_enrol_mail_ready(&cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s: e-mail column given but links cannot be mailed: %s\n", prog, o.argv[0], err);
		rows.bad++;
	}
	if (rows.bad == 0 && rows.n > 0 && ftm_store_token_import(st, rows.toks, rows.n, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, o.argv[0], err);
		rows.bad++;
	}
	/* the tokens are in; a link that cannot be mailed leaves its token pending, to re-send */
	for (size_t i = 0; rows.bad == 0 && rows.any_email && i < rows.n; i++) {
		if (rows.emails[i][0] == '\0')
			continue;
		if (ftm_enrol_send_link(st, &cfg, rows.toks[i].serial, true, rows.emails[i], time(NULL), NULL, 0,
					NULL, 0, NULL, err, sizeof(err)) == 0) {
			mailed++;
		} else {
			fprintf(stderr, "%s: %s:%u: token %s: %s\n", prog, o.argv[0], rows.lines[i],
				rows.toks[i].serial, err);
			unsent++;
		}
	}
	n = rows.n;
	bad = rows.bad;
	if (bad == 0) {
		char what[64];

		snprintf(what, sizeof(what), "%zu tokens imported", n);
		audit_cmd(st, "token import", "", "", FTM_AUDIT_OK, what);
	}
	import_rows_free(&rows);
	ftm_store_close(st);
	if (bad > 0)
		die(EXIT_REFUSED, "%s: nothing imported (%u bad row%s)", o.argv[0], bad, bad == 1 ? "" : "s");
	printf("imported %zu token%s\n", n, n == 1 ? "" : "s");
	if (mailed > 0 || unsent > 0)
		printf("activation links mailed: %u\n", mailed);
	if (unsent > 0)
		die(EXIT_REFUSED, "%u activation link%s not sent: those tokens stay pending; re-send with: %s token send SERIAL",
		    unsent, unsent == 1 ? "" : "s", prog);
	return 0;
}

/* ---- otp, verify, config ---- */

static int cmd_otp(int argc, char **argv)
{
	opts_t o;
	ftm_token_t t;
	char code[FTM_CODE_MAX + 1], err[FTM_ERR_MAX];
	time_t now;

	parse_opts(argc, argv, "seed serial algorithm digits period time", &o);
	want_args(&o, 0, "otp --seed HEX [--algorithm A] [--digits N] [--period S] [--time UNIX]");
	now = parse_time(o.time);
	memset(&t, 0, sizeof(t));
	if (o.serial && o.seed)
		die(EXIT_USAGE, "give --seed or --serial, not both");
	if (o.serial) {
		ftm_store_t *st = open_store();
		if (ftm_store_token_get(st, o.serial, &t, err, sizeof(err)) != 0)
			die(EXIT_REFUSED, "%s", err);
		ftm_store_close(st);
	} else if (o.seed) {
		/* like oathtool --totp: sha1, 6 digits, 30 s unless told */
		t.alg = FTM_ALG_SHA1;
		t.digits = 6;
		t.period = 30;
		if (ftm_hex_decode(o.seed, t.seed, sizeof(t.seed), &t.seed_len) != 0 || t.seed_len == 0)
			die(EXIT_USAGE, "bad --seed: hex, 1 to %d bytes", FTM_SEED_MAX);
	} else {
		die(EXIT_USAGE, "otp needs --seed HEX or --serial SERIAL");
	}
	apply_params(&t, &o);
	if (ftm_hotp(t.seed, t.seed_len, t.alg, ftm_totp_step(now, t.period), t.digits, code) != 0) {
		ftm_memzero(&t, sizeof(t));
		die(EXIT_REFUSED, "cannot compute the code");
	}
	ftm_memzero(&t, sizeof(t));
	printf("%s\n", code);
	ftm_memzero(code, sizeof(code));
	return 0;
}

static int cmd_verify(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	ftm_verdict_t v;
	ftm_verify_params_t p;
	ftm_audit_row_t audit;
	ftm_policy_t pol;
	char err[FTM_ERR_MAX];
	const char *code;
	size_t len;

	parse_opts(argc, argv, "time", &o);
	want_args(&o, 2, "verify USER CODE [--time UNIX]");
	code = o.argv[1];
	len = strlen(code);
	if (len < 6 || len > 8 || strspn(code, "0123456789") != len)
		die(EXIT_USAGE, "the code must be 6 to 8 digits");
	st = open_store();
	/* the store's policy, like every login; no proof: every token is tried */
	if (ftm_store_policy(st, &pol, err, sizeof(err)) != 0)
		die(EXIT_STORE, "the token store's policy could not be read: %s", err);
	memset(&p, 0, sizeof(p));
	p.window = pol.window;
	p.lockout_threshold = pol.lockout_threshold;
	p.lockout_duration = pol.lockout_duration;
	p.activation_expire = pol.activation_expire;
	p.consume = true;
	ftm_audit_ctl_row(&cfg, &audit, FTM_AUDIT_EV_CODE, "verify");
	snprintf(audit.user, sizeof(audit.user), "%s", o.argv[0]);
	p.audit = &audit;	/* an admin's test of a code is a verdict like a login's */
	ftm_store_verify_code(st, o.argv[0], code, parse_time(o.time), &p, &v);
	ftm_store_close(st);
	if (g.verbose)
		fprintf(stderr, "%s: %s\n", prog, v.reason);
	switch (v.code) {
	case FTM_VERDICT_OK:
		printf("accepted: token %s\n", v.serial);
		return 0;
	case FTM_VERDICT_ERROR:
		die(EXIT_STORE, "%s: %s", v.message, v.reason);
	case FTM_VERDICT_NO_TOKEN:
		die(EXIT_REFUSED, "refused: user %s holds no token", o.argv[0]);
	case FTM_VERDICT_BAD_CODE:
		die(EXIT_REFUSED, "refused: %s (%u consecutive failure%s)", v.message, v.failures,
		    v.failures == 1 ? "" : "s");
	default:
		die(EXIT_REFUSED, "refused: %s", v.message);
	}
}

/* policy show [NAME] | policy set NAME VALUE: the verdict policy every node and front end of the store uses. */
static int cmd_policy(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX], value[32], old[32];

	parse_opts(argc, argv, "", &o);
	if (o.argc < 1 || !((strcmp(o.argv[0], "show") == 0 && o.argc <= 2) ||
			    (strcmp(o.argv[0], "set") == 0 && o.argc == 3)))
		die(EXIT_USAGE, "usage: %s policy show [NAME] | policy set NAME VALUE", prog);
	st = open_store();
	if (strcmp(o.argv[0], "set") == 0) {
		if (ftm_store_policy_set(st, o.argv[1], o.argv[2], old, sizeof(old), err, sizeof(err)) != 0) {
			audit_cmd(st, "policy set", "", "", FTM_AUDIT_REFUSED, err);
			die(EXIT_REFUSED, "%s", err);
		}
		ftm_policy_format(store_policy(st), o.argv[1], value, sizeof(value));
		{
			char what[FTM_MSG_MAX];

			snprintf(what, sizeof(what), "%.40s set to %.40s (was %.40s)", o.argv[1], value, old[0] ? old : "unreadable");
			audit_cmd(st, "policy set", "", "", FTM_AUDIT_OK, what);
		}
		printf("policy %s: %s (was %s); every node and front end of the store uses it within %d s\n",
		       o.argv[1], value, old[0] ? old : "unreadable", FTM_POLICY_REFRESH_SECONDS);
		ftm_store_close(st);
		return 0;
	}
	if (o.argc == 2) {
		if (ftm_policy_format(store_policy(st), o.argv[1], value, sizeof(value)) != 0)
			die(EXIT_USAGE, "unknown policy '%s' (%s policy show lists them)", o.argv[1], prog);
		printf("%s\n", value);
	} else {
		const ftm_policy_t *pol = store_policy(st);

		for (size_t i = 0; ftm_policy_names[i] != NULL; i++) {
			ftm_policy_format(pol, ftm_policy_names[i], value, sizeof(value));
			printf("%-18s %-8s %s\n", ftm_policy_names[i], value, ftm_policy_help(ftm_policy_names[i]));
		}
	}
	ftm_store_close(st);
	return 0;
}

struct check_ctx {
	const char	*file;
	unsigned	n;
};

static void check_report(void *c, unsigned line, const char *message)
{
	struct check_ctx *cc = c;

	cc->n++;
	config_report((void *)cc->file, line, message);
}

static void check_policy_report(void *c, bool error, const char *message)
{
	char line[FTM_ERR_MAX + 16];

	snprintf(line, sizeof(line), "%s%s", error ? "" : "warning: ", message);
	if (error)
		check_report(c, 0, line);
	else
		config_report((void *)((struct check_ctx *)c)->file, 0, line);
}

/* Policy options the file still sets, against the store's values when the store can be opened (one that
 * does not exist yet is not created for this). Returns the number of problems. */
static int check_policy_options(struct check_ctx *cc)
{
	char err[FTM_ERR_MAX] = "";
	ftm_store_t *st;
	int problems;

	if (cfg.policy_given == 0)
		return 0;
	if (strncmp(cfg.token_db, "postgresql:", 11) != 0 && access(cfg.token_db, F_OK) != 0) {
		config_report((void *)cc->file, 0, "warning: the file sets verdict policy options, which live in the "
			      "token store now (ftmpushctl policy set); the store does not exist yet to compare them");
		return 0;
	}
	st = ftm_store_open(cfg.token_db, cfg.key_file[0] ? cfg.key_file : NULL, NULL, err, sizeof(err));
	if (st == NULL || ftm_store_policy(st, &policy, err, sizeof(err)) != 0) {
		config_report((void *)cc->file, 0, err);
		ftm_store_close(st);
		return 1;
	}
	problems = ftm_policy_check_config(&cfg, &policy, check_policy_report, cc, err, sizeof(err));
	ftm_store_close(st);
	return problems;
}

static int cmd_config(int argc, char **argv)
{
	opts_t o;
	struct check_ctx cc = { NULL, 0 };
	char err[FTM_ERR_MAX];
	int problems;

	parse_opts(argc, argv, "", &o);
	if (o.argc != 1 || strcmp(o.argv[0], "check") != 0)
		die(EXIT_USAGE, "usage: %s config check [--config FILE]", prog);
	cc.file = g.config ? g.config : FTM_DEFAULT_CONFIG;
	ftm_config_defaults(&cfg);
	problems = ftm_config_load(&cfg, cc.file, check_report, &cc, err, sizeof(err));
	/* cross-option checks too, so one run lists every problem (a bad line keeps its default) */
	if (access(cc.file, R_OK) == 0)
		problems += ftm_config_validate(&cfg, check_report, &cc, err, sizeof(err));
	problems += check_policy_options(&cc);
	if (problems > 0) {
		if (cc.n == 0)	/* a problem the parser did not report line by line */
			config_report((void *)cc.file, 0, err);
		die(EXIT_REFUSED, "%s: %d problem%s", cc.file, problems, problems == 1 ? "" : "s");
	}
	printf("%s: ok\n", cc.file);
	return 0;
}

static void diag_print(void *ctx, ftm_diag_mark_t mark, const char *check, const char *detail, const char *fix)
{
	(void)ctx;
	printf("%s %s: %s\n", mark == FTM_DIAG_OK ? "\u2714" : mark == FTM_DIAG_WARN ? "!" : "\u2718", check, detail);
	if (fix && fix[0])
		printf("    fix: %s\n", fix);
	fflush(stdout);
}

static int cmd_diagnose(int argc, char **argv)
{
	opts_t o;
	char err[FTM_ERR_MAX] = "";
	const char *path;
	unsigned failures;

	parse_opts(argc, argv, "time push", &o);
	if (o.argc > 1 || (o.push != NULL && (o.argc > 0 || o.time != NULL)))
		die(EXIT_USAGE, "usage: %s diagnose [USER] [--time UNIX] | diagnose --push USER", prog);
	/* A file that does not load is the first \u2718, not the end of the checklist's usefulness. */
	if (read_config(&path, err, sizeof(err)) != 0) {
		diag_print(NULL, FTM_DIAG_FAIL, "config", err, "ftmpushctl config check lists every problem");
		return EXIT_REFUSED;
	}
	if (path)
		printf("configuration: %s\n", path);
	if (o.push != NULL)
		failures = ftm_diagnose_push(&cfg, o.push, diag_print, NULL);
	else
		failures = ftm_diagnose(&cfg, o.argc == 1 ? o.argv[0] : NULL, parse_time(o.time), diag_print, NULL);
	if (failures > 0) {
		printf("%u problem%s found\n", failures, failures == 1 ? "" : "s");
		return EXIT_REFUSED;
	}
	printf("no problem found\n");
	return 0;
}

/* ---- the audit trail and debug on demand ---- */

struct audit_print {
	bool		json;
	size_t		n;
};

static int audit_one(void *c, const ftm_audit_row_t *row)
{
	struct audit_print *ap = c;

	if (ap->json) {
		fputs(ap->n == 0 ? "[\n" : ",\n", stdout);
		ftm_audit_print_json(stdout, row);
	} else {
		ftm_audit_print(stdout, row);
	}
	ap->n++;
	return 0;
}

static int cmd_audit_prune(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX], what[96];
	unsigned long removed = 0;
	unsigned days;

	parse_opts(argc, argv, "days", &o);
	want_args(&o, 0, "audit prune [--days N]");
	st = open_store();
	days = o.days ? parse_uint(o.days, "--days", 1, 36500) : cfg.audit_retention;
	if (days == 0) {
		printf("audit_retention is 0 (keep every row): nothing pruned\n");
		ftm_store_close(st);
		return 0;
	}
	if (ftm_audit_prune(st, days, time(NULL), &removed, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	snprintf(what, sizeof(what), "%lu rows older than %u days removed", removed, days);
	audit_cmd(st, "audit prune", "", "", FTM_AUDIT_OK, what);
	printf("%s\n", what);
	ftm_store_close(st);
	return 0;
}

static int cmd_backup(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX], what[FTM_ERR_MAX + 64];
	unsigned long tokens = 0;

	parse_opts(argc, argv, "", &o);
	want_args(&o, 1, "backup FILE");
	st = open_store();
	if (ftm_store_backup(st, o.argv[0], &tokens, err, sizeof(err)) != 0) {
		audit_cmd(st, "backup", "", "", FTM_AUDIT_REFUSED, err);
		die(EXIT_REFUSED, "%s", err);
	}
	snprintf(what, sizeof(what), "backup of %lu token%s written to %s (integrity check ok)", tokens,
		 tokens == 1 ? "" : "s", o.argv[0]);
	audit_cmd(st, "backup", "", "", FTM_AUDIT_OK, what);
	printf("%s\n", what);
	printf("the seeds in it are sealed: keep the key file %s too, stored apart from the backup\n",
	       ftm_store_key_file(st));
	ftm_store_close(st);
	return 0;
}

static int cmd_audit(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	ftm_audit_filter_t f = { 0 };
	struct audit_print ap = { 0 };
	char err[FTM_ERR_MAX];

	if (argc >= 2 && strcmp(argv[1], "prune") == 0)
		return cmd_audit_prune(argc - 1, argv + 1);
	parse_opts(argc, argv, "user since result limit json", &o);
	want_args(&o, 0, "audit [--user USER] [--since 1h|7d|UNIX|YYYY-MM-DD] [--result R] [--limit N] [--json]");
	if (o.since && ftm_audit_parse_since(o.since, time(NULL), &f.since) != 0)
		die(EXIT_USAGE, "bad --since \"%s\": expected 90s, 30m, 1h, 7d, a unix time or YYYY-MM-DD[ HH:MM[:SS]]",
		    o.since);
	if (o.result && !ftm_audit_known_result(o.result))
		die(EXIT_USAGE, "bad --result \"%s\": see docs/audit.md for the result names", o.result);
	f.user = o.user;
	f.result = o.result;
	f.limit = o.limit ? parse_uint(o.limit, "--limit", 1, 10000000) : 0;
	ap.json = o.json;
	st = open_store();
	if (ftm_store_audit_list(st, &f, audit_one, &ap, err, sizeof(err)) != 0)
		listing_failed("audit", ap.n, "rows", err);	/* --json: an array never closed */
	if (ap.json)
		fputs(ap.n == 0 ? "[]\n" : "\n]\n", stdout);
	else if (ap.n == 0)
		printf("no audit rows\n");
	ftm_store_close(st);
	listing_written("audit");
	return 0;
}

static int debug_one(void *c, const char *user, int64_t expires)
{
	unsigned *n = c;
	char buf[64];

	printf("debug on for %s%s until %s\n", user[0] ? "user " : "everyone", user, fmt_time(expires, buf, sizeof(buf)));
	(*n)++;
	return 0;
}

static int cmd_debug(int argc, char **argv)
{
	opts_t o;
	ftm_store_t *st;
	char err[FTM_ERR_MAX], what[128];
	const char *sub = argc >= 2 ? argv[1] : "";
	const char *who;
	time_t now = time(NULL);
	unsigned n = 0, minutes;
	int rc;

	if (strcmp(sub, "enable") != 0 && strcmp(sub, "disable") != 0 && strcmp(sub, "show") != 0)
		die(EXIT_USAGE, "usage: %s debug enable [--user USER] [--minutes N] | debug disable [--user USER] | debug show",
		    prog);
	parse_opts(argc - 1, argv + 1, strcmp(sub, "enable") == 0 ? "user minutes" : strcmp(sub, "disable") == 0 ? "user" : "",
		   &o);
	want_args(&o, 0, "debug enable|disable|show");
	who = o.user != NULL ? o.user : "";
	st = open_store();
	if (strcmp(sub, "show") == 0) {
		if (ftm_store_debug_list(st, now, debug_one, &n, err, sizeof(err)) != 0)
			die(EXIT_REFUSED, "%s", err);
		if (n == 0)
			printf("debug off\n");
		ftm_store_close(st);
		return 0;
	}
	if (strcmp(sub, "disable") == 0) {
		rc = ftm_store_debug_clear(st, o.user, err, sizeof(err));
		if (rc < 0)
			die(EXIT_REFUSED, "%s", err);
		snprintf(what, sizeof(what), "debug messages off%s%s", o.user ? " for user " : "", o.user ? o.user : "");
		audit_cmd(st, "debug disable", "", who, FTM_AUDIT_OK, what);
		printf("%s%s\n", what, rc == 1 ? " (it was not on)" : "");
		ftm_store_close(st);
		return 0;
	}
	minutes = o.minutes ? parse_uint(o.minutes, "--minutes", 1, 10080) : FTM_TRACE_DEFAULT_MINUTES;
	if (ftm_store_debug_set(st, who, (int64_t)now + (int64_t)minutes * 60, now, err, sizeof(err)) != 0)
		die(EXIT_REFUSED, "%s", err);
	snprintf(what, sizeof(what), "Debug messages will be on for %u minute%s%s%s", minutes, minutes == 1 ? "" : "s",
		 o.user ? " for user " : "", o.user ? o.user : "");
	audit_cmd(st, "debug enable", "", who, FTM_AUDIT_OK, what);
	printf("%s\n", what);
	ftm_store_close(st);
	return 0;
}

int main(int argc, char **argv)
{
	int c;
	char nodump_err[128];

	/* Seeds pass through this process (token add, import, show): no core file, no same-user ptrace. */
	(void)ftm_protect_nodump(nodump_err, sizeof(nodump_err));
	ftm_store_process_init();
	opterr = 0;
	/* global options before the command; '+' stops at the command word */
	while ((c = getopt_long(argc, argv, "+d:c:k:vh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'd': case O_DB:		g.db = optarg; break;
		case 'c': case O_CONFIG:	g.config = optarg; break;
		case 'k': case O_KEYFILE:	g.key_file = optarg; break;
		case 'v': case O_VERBOSE:	g.verbose = true; break;
		case 'h': case O_HELP:		usage(stdout); return 0;
		default:
			die(EXIT_USAGE, "unknown or incomplete option %s before the command (see --help)", argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* each command parses argv[0..] itself: argv[0] plays the program name for getopt */
	if (strcmp(argv[0], "token") == 0) {
		if (argc < 2)
			die(EXIT_USAGE, "usage: %s token add|list|show|lock|unlock|delete|reissue|send|push|assign|import|recovery ...", prog);
		argc--;
		argv++;
		if (strcmp(argv[0], "add") == 0)
			return cmd_token_add(argc, argv);
		if (strcmp(argv[0], "list") == 0)
			return cmd_token_list(argc, argv);
		if (strcmp(argv[0], "show") == 0)
			return cmd_token_show(argc, argv);
		if (strcmp(argv[0], "lock") == 0 || strcmp(argv[0], "unlock") == 0 || strcmp(argv[0], "delete") == 0)
			return cmd_token_simple(argv[0], argc, argv);
		if (strcmp(argv[0], "reissue") == 0)
			return cmd_token_reissue(argc, argv);
		if (strcmp(argv[0], "push") == 0)
			return cmd_token_push(argc, argv);
		if (strcmp(argv[0], "send") == 0)
			return cmd_token_send(argc, argv);
		if (strcmp(argv[0], "assign") == 0)
			return cmd_token_assign(argc, argv);
		if (strcmp(argv[0], "import") == 0)
			return cmd_token_import(argc, argv);
		if (strcmp(argv[0], "recovery") == 0)
			return cmd_token_recovery(argc, argv);
		die(EXIT_USAGE, "unknown command: token %s (see --help)", argv[0]);
	}
	if (strcmp(argv[0], "otp") == 0)
		return cmd_otp(argc, argv);
	if (strcmp(argv[0], "verify") == 0)
		return cmd_verify(argc, argv);
	if (strcmp(argv[0], "config") == 0)
		return cmd_config(argc, argv);
	if (strcmp(argv[0], "policy") == 0)
		return cmd_policy(argc, argv);
	if (strcmp(argv[0], "diagnose") == 0)
		return cmd_diagnose(argc, argv);
	if (strcmp(argv[0], "audit") == 0)
		return cmd_audit(argc, argv);
	if (strcmp(argv[0], "debug") == 0)
		return cmd_debug(argc, argv);
	if (strcmp(argv[0], "backup") == 0)
		return cmd_backup(argc, argv);
	die(EXIT_USAGE, "unknown command: %s (see --help)", argv[0]);
}

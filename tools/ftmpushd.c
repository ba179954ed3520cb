/* ftmpushd: the push callback listener for PAM hosts; serves PAM logins on a Unix socket (docs/pam.md). */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include <openssl/crypto.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "ftm_auth.h"
#include "ftm_config.h"
#include "ftm_log.h"
#include "ftm_push.h"
#include "ftm_rendezvous.h"
#include "ftm_store.h"

typedef struct daemon_ctx {
	ftm_auth_t	*auth;
	ftm_push_t	*push;
	const ftm_log_t	*log;
} daemon_ctx_t;

static void usage(FILE *f)
{
	fprintf(f, "usage: ftmpushd [-f] [-d] [-c FILE] [-g GROUP] [-m N] [-t]\n"
		"  -f        foreground, log to stderr\n"
		"  -d        more logging (twice: most)\n"
		"  -c FILE   configuration (default " FTM_DEFAULT_CONFIG ")\n"
		"  -g GROUP  allow GROUP on the socket (mode 0660)\n"
		"  -m N      at most N pending pushes (default 64)\n"
		"  -t        check the configuration and exit\n");
}

static void sink_syslog(void *ctx, ftm_log_level_t level, const char *line)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG, LOG_DEBUG };

	(void)ctx;
	syslog(prio[level <= FTM_LOG_DEBUG2 ? level : FTM_LOG_DEBUG2], "%s", line);
}

static void report(void *ctx, unsigned line, const char *message)
{
	const char *path = ctx;

	if (line)
		fprintf(stderr, "ftmpushd: %s:%u: %s\n", path, line, message);
	else
		fprintf(stderr, "ftmpushd: %s: %s\n", path, message);
}

/* ---- the socket handler: one PAM login ---- */

typedef struct pick {
	const char	*want_serial;
	time_t		now;
	unsigned	activation_expire;
	bool		found;
	ftm_token_t	tok;
} pick_t;

static int pick_cb(void *c, const ftm_token_t *tok)
{
	pick_t *p = c;
	const char *state = ftm_token_state_name(tok, p->now, p->activation_expire);

	if (p->found || tok->push[0] == '\0' || strcmp(state, "locked") == 0 || strcmp(state, "expired") == 0)
		return 0;
	if (p->want_serial && p->want_serial[0] && strcmp(p->want_serial, tok->serial) != 0)
		return 0;
	p->tok = *tok;
	p->found = true;
	return 0;
}

static void reply_set(ftm_rdv_reply_t *out, ftm_rdv_verdict_t v, const char *message, const char *reason)
{
	out->verdict = v;
	snprintf(out->message, sizeof(out->message), "%s", message);
	snprintf(out->reason, sizeof(out->reason), "%s", reason);
}

/* Number matching: the login asks its user for the number while the phone may still answer. Whichever
 * comes first decides: a tap (the engine's callback), or the typed number that the login sends on this
 * connection, which the engine checks itself (ftm_push_challenge_answer with the transaction's State). */
static ftm_push_verdict_t wait_number(daemon_ctx_t *d, ftm_rdv_conn_t *conn, const ftm_login_t *login,
				      ftm_push_tx_t *tx)
{
	ftm_push_verdict_t v;
	char typed[FTM_RDV_NUMBER_MAX];
	ftm_outcome_t o;
	int rc;

	while ((v = ftm_push_wait(d->push, tx, 1)) == FTM_PUSH_PENDING) {
		rc = ftm_rdv_conn_wait_answer(conn, 200, typed, sizeof(typed));
		if (rc < 0)
			return FTM_PUSH_PENDING;	/* the login went away */
		if (rc == 0)
			continue;
		ftm_push_challenge_answer(d->push, login, ftm_push_tx_state(tx), typed, time(NULL), &o);
		OPENSSL_cleanse(typed, sizeof(typed));
		ftm_log(d->log, FTM_LOG_DEBUG, "socket push for '%s': number answer: %s (%s)", login->user,
			ftm_result_name(o.result), o.reason);
		/* The engine decided the transaction (or it was decided already): its verdict is the reply. */
		v = ftm_push_wait(d->push, tx, 1);
		if (v == FTM_PUSH_PENDING)
			v = o.result == FTM_RES_OK ? FTM_PUSH_APPROVED : FTM_PUSH_DENIED;
		return v;
	}
	return v;
}

static void handler(void *ctx, ftm_rdv_conn_t *conn, const ftm_rdv_request_t *req, ftm_rdv_reply_t *out)
{
	daemon_ctx_t *d = ctx;
	const ftm_config_t *cfg = ftm_auth_config(d->auth);
	ftm_login_t login = { req->user, req->client ? req->client : "", req->nas ? req->nas : "",
			      req->host ? req->host : "" };
	pick_t pk = { .want_serial = req->serial, .now = time(NULL), .activation_expire = cfg->activation_expire };
	char err[FTM_ERR_MAX] = "", reason[FTM_MSG_MAX] = "", why[FTM_MSG_MAX];
	ftm_push_tx_t *tx;
	ftm_push_verdict_t v;
	bool joined;

	if (ftm_store_token_list(ftm_auth_store(d->auth), req->user, pick_cb, &pk, err, sizeof(err)) < 0) {
		snprintf(why, sizeof(why), "token store unavailable: %.200s", err);
		reply_set(out, FTM_RDV_ERROR, "Push unavailable", why);
		goto done;
	}
	if (!pk.found) {
		reply_set(out, FTM_RDV_FAILED, "Push unavailable",
			  "no active token with a push target for this user");
		goto done;
	}
	snprintf(out->serial, sizeof(out->serial), "%s", pk.tok.serial);
	tx = ftm_push_start(d->push, &login, &pk.tok, pk.now, &joined, reason, sizeof(reason));
	OPENSSL_cleanse(pk.tok.seed, sizeof(pk.tok.seed));
	if (tx == NULL) {
		reply_set(out, FTM_RDV_ERROR, "Push unavailable", reason);
		goto done;
	}
	v = ftm_push_wait(d->push, tx, 1);
	if (v != FTM_PUSH_FAILED) {
		snprintf(out->number, sizeof(out->number), "%s", ftm_push_tx_number(tx));
		ftm_rdv_conn_sent(conn, pk.tok.serial, ftm_push_tx_number(tx));
	}
	if (ftm_push_tx_number(tx)[0] != '\0' && v == FTM_PUSH_PENDING) {
		v = wait_number(d, conn, &login, tx);
	} else {
		/* Wait in short slices so a login that gives up (ssh disconnect) frees its thread. */
		while ((v = ftm_push_wait(d->push, tx, 500)) == FTM_PUSH_PENDING && ftm_rdv_conn_alive(conn))
			;
	}
	ftm_push_tx_reason(d->push, tx, reason, sizeof(reason));
	ftm_push_release(d->push, tx);
	switch (v) {
	case FTM_PUSH_APPROVED:
		reply_set(out, FTM_RDV_APPROVED, "", reason);
		break;
	case FTM_PUSH_DENIED:
		reply_set(out, FTM_RDV_DENIED, "Token denied or timeout", reason);
		break;
	case FTM_PUSH_TIMEOUT:
		reply_set(out, FTM_RDV_TIMEOUT, "Token denied or timeout", reason);
		break;
	case FTM_PUSH_PENDING:
		reply_set(out, FTM_RDV_ERROR, "Push cancelled", "the login went away");
		break;
	case FTM_PUSH_FAILED:
	default:
		reply_set(out, FTM_RDV_FAILED, "Push unavailable", reason[0] ? reason : "push could not be sent");
		break;
	}
done:
	ftm_log(d->log, out->verdict == FTM_RDV_APPROVED ? FTM_LOG_INFO : FTM_LOG_WARN,
		"socket push for '%s' from %s (%s): %s%s%s", req->user, login.client[0] ? login.client : "-",
		out->serial[0] ? out->serial : "-", ftm_rdv_verdict_name(out->verdict), out->reason[0] ? ": " : "",
		out->reason);
}

int main(int argc, char **argv)
{
	const char *conf = FTM_DEFAULT_CONFIG, *group = NULL;
	bool foreground = false, check_only = false;
	int debug = 0, opt, rc = 1, sig;
	unsigned max_conns = 64;
	gid_t gid = (gid_t)-1;
	ftm_config_t cfg;
	ftm_log_t log = { ftm_log_sink_stderr, NULL, FTM_LOG_INFO };
	char err[FTM_ERR_MAX] = "";
	daemon_ctx_t d = { 0 };
	ftm_rdv_server_t *srv = NULL;
	sigset_t set;

	while ((opt = getopt(argc, argv, "fdc:g:m:th")) != -1) {
		switch (opt) {
		case 'f': foreground = true; break;
		case 'd': debug++; break;
		case 'c': conf = optarg; break;
		case 'g': group = optarg; break;
		case 'm': {
			char *end;
			unsigned long n = strtoul(optarg, &end, 10);

			if (*end || n == 0 || n > 4096) {
				fprintf(stderr, "ftmpushd: -m wants 1..4096\n");
				return 2;
			}
			max_conns = (unsigned)n;
			break;
		}
		case 't': check_only = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	ftm_config_defaults(&cfg);
	if (ftm_config_load(&cfg, conf, report, (void *)conf, err, sizeof(err)) != 0 ||
	    ftm_config_validate(&cfg, report, (void *)conf, err, sizeof(err)) != 0) {
		fprintf(stderr, "ftmpushd: configuration %s refused\n", conf);
		return 1;
	}
	if (!cfg.push.status) {
		fprintf(stderr, "ftmpushd: push.status is disabled in %s: nothing to serve\n", conf);
		return 1;
	}
	if (check_only) {
		printf("ftmpushd: %s ok\n", conf);
		return 0;
	}
	if (group) {
		struct group *gr = getgrnam(group);

		if (gr == NULL) {
			fprintf(stderr, "ftmpushd: unknown group %s\n", group);
			return 1;
		}
		gid = gr->gr_gid;
	}
	if (debug || cfg.debug)
		log.max_level = (debug >= 2 || cfg.debug >= 2) ? FTM_LOG_DEBUG2 : FTM_LOG_DEBUG;
	if (!foreground) {
		if (daemon(0, 0) != 0) {
			fprintf(stderr, "ftmpushd: daemon: %s\n", strerror(errno));
			return 1;
		}
		openlog("ftmpushd", LOG_PID, LOG_AUTHPRIV);
		log.sink = sink_syslog;
	}
	/* Signals go to the main thread only: block them before any thread starts. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	d.log = &log;
	d.auth = ftm_auth_new(&cfg, &log, err, sizeof(err));
	if (d.auth == NULL) {
		ftm_log(&log, FTM_LOG_ERR, "ftmpushd: %s", err);
		goto out;
	}
	if (ftm_push_auth_attach(d.auth, &log, &d.push, err, sizeof(err)) != 0) {
		ftm_log(&log, FTM_LOG_ERR, "ftmpushd: push engine: %s", err);
		goto out;
	}
	{
		char dir[FTM_PATH_MAX];
		char *slash;

		snprintf(dir, sizeof(dir), "%s", cfg.push.socket[0] ? cfg.push.socket : FTM_DEFAULT_SOCKET);
		slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) != 0 && errno != EEXIST)
				ftm_log(&log, FTM_LOG_WARN, "ftmpushd: mkdir %s: %s", dir, strerror(errno));
		}
	}
	srv = ftm_rdv_server_start(cfg.push.socket[0] ? cfg.push.socket : FTM_DEFAULT_SOCKET, gid, max_conns,
				   handler, &d, &log, err, sizeof(err));
	if (srv == NULL) {
		ftm_log(&log, FTM_LOG_ERR, "ftmpushd: socket: %s", err);
		goto out;
	}
	ftm_log(&log, FTM_LOG_INFO, "ftmpushd: ready (socket %s, callbacks at %s)",
		cfg.push.socket[0] ? cfg.push.socket : FTM_DEFAULT_SOCKET, ftm_push_base_url(d.push));
#ifdef HAVE_SYSTEMD
	/* Type=notify: systemd starts PAM-dependent units only once the socket and listener exist. */
	sd_notify(0, "READY=1");
#endif
	do {
		if (sigwait(&set, &sig) != 0)
			break;
	} while (sig != SIGTERM && sig != SIGINT);
	ftm_log(&log, FTM_LOG_INFO, "ftmpushd: signal %d: stopping", sig);
#ifdef HAVE_SYSTEMD
	sd_notify(0, "STOPPING=1");
#endif
	rc = 0;
out:
	if (srv)
		ftm_rdv_server_stop(srv);
	ftm_auth_free(d.auth);	/* stops the push engine (ops.stop) */
	OPENSSL_cleanse(&cfg, sizeof(cfg));
	if (!foreground)
		closelog();
	return rc;
}

/* ftmpushd: main() of the push daemon for PAM hosts: options, configuration, start, serve, stop; the
 * request handling is the core's (common/push_daemon.c). */
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
#include "ftm_metrics.h"
#include "ftm_peer.h"
#include "ftm_protect.h"
#include "ftm_push_daemon.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: ftmpushd [-f] [-d] [-c FILE] [-g GROUP] [-G GROUP]... [-m N] [-t]\n"
		"  -f        foreground, log to stderr\n"
		"  -d        more logging (twice: most)\n"
		"  -c FILE   configuration (default " FTM_DEFAULT_CONFIG ")\n"
		"  -g GROUP  allow GROUP on the socket (mode 0660); a member that is not root may push\n"
		"            only for its own user\n"
		"  -G GROUP  trust members of GROUP to push for any user (repeatable)\n"
		"  -m N      at most N connections at once: pending pushes, logins between\n"
		"            their split and their verify (default 64); at N the login that\n"
		"            waited longest for its verify gives way to a new connection\n"
		"  -t        check the configuration and exit\n");
}

static void report(void *ctx, unsigned line, const char *message)
{
	const char *path = ctx;

	if (line)
		fprintf(stderr, "ftmpushd: %s:%u: %s\n", path, line, message);
	else
		fprintf(stderr, "ftmpushd: %s: %s\n", path, message);
}

int main(int argc, char **argv)
{
	const char *conf = FTM_DEFAULT_CONFIG, *group = NULL;
	bool foreground = false, check_only = false;
	int debug = 0, opt, rc = 1, sig;
	unsigned max_conns = 64;
	gid_t gid = (gid_t)-1, trusted[FTM_PEER_TRUSTED_MAX];
	const char *trusted_names[FTM_PEER_TRUSTED_MAX];
	unsigned ntrusted = 0;
	ftm_config_t cfg;
	ftm_log_t log = { ftm_log_sink_stderr, NULL, FTM_LOG_INFO };
	char err[FTM_ERR_MAX] = "";
	ftm_push_daemon_t *d = NULL;
	ftm_metrics_listener_t *metrics = NULL;
	sigset_t set;
	bool nodump;

	/* First of all: the configuration holds the ntfy token, and the store's seed key and the TLS key
	 * follow; none of them may end up in a core file or be read by a debugger of the same user. */
	nodump = ftm_protect_nodump(err, sizeof(err)) == 0;
	ftm_auth_process_init();	/* before any thread */
	if (!nodump)
		fprintf(stderr, "ftmpushd: warning: cannot disable core dumps (%s): a core could hold secrets\n", err);

	while ((opt = getopt(argc, argv, "fdc:g:G:m:th")) != -1) {
		switch (opt) {
		case 'f': foreground = true; break;
		case 'd': debug++; break;
		case 'c': conf = optarg; break;
		case 'g': group = optarg; break;
		case 'G':
			if (ntrusted == FTM_PEER_TRUSTED_MAX) {
				fprintf(stderr, "ftmpushd: at most %d -G groups\n", FTM_PEER_TRUSTED_MAX);
				return 2;
			}
			trusted_names[ntrusted++] = optarg;
			break;
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
	for (unsigned i = 0; i < ntrusted; i++) {
		struct group *gr = getgrnam(trusted_names[i]);

		if (gr == NULL) {
			fprintf(stderr, "ftmpushd: unknown group %s (-G)\n", trusted_names[i]);
			return 1;
		}
		trusted[i] = gr->gr_gid;
	}
	if (debug || cfg.debug)
		log.max_level = (debug >= 2 || cfg.debug >= 2) ? FTM_LOG_DEBUG2 : FTM_LOG_DEBUG;
	if (!foreground) {
		if (daemon(0, 0) != 0) {
			fprintf(stderr, "ftmpushd: daemon: %s\n", strerror(errno));
			return 1;
		}
		openlog("ftmpushd", LOG_PID, LOG_AUTHPRIV);
		log.sink = ftm_log_sink_syslog;
	}
	/* Signals go to the main thread only: block them before any thread starts. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);

	d = ftm_push_daemon_start(&cfg, &log, gid, trusted, ntrusted, max_conns, err, sizeof(err));
	if (d == NULL) {
		ftm_log(&log, FTM_LOG_ERR, "ftmpushd: %s", err);
		goto out;
	}
	/* the PAM logins that reach this daemon (pushes) are counted here, as front end "pam" */
	if (ftm_metrics_listener_start(&cfg, "pam", &log, &metrics, err, sizeof(err)) != 0) {
		ftm_log(&log, FTM_LOG_ERR, "ftmpushd: %s", err);
		goto out;
	}
	ftm_log(&log, nodump && !ftm_protect_dumpable() ? FTM_LOG_INFO : FTM_LOG_WARN, "ftmpushd: core dumps %s",
		nodump && !ftm_protect_dumpable() ? "disabled" : "POSSIBLE (a core could hold the secrets)");
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
	ftm_metrics_listener_stop(metrics);
	ftm_push_daemon_stop(d);
	OPENSSL_cleanse(&cfg, sizeof(cfg));
	if (!foreground)
		closelog();
	return rc;
}

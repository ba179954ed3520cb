/* shutdown: SIGTERM of the FreeRADIUS process ends the pending pushes while the server can still send
 * their replies.
 *
 * FreeRADIUS 3.2, on SIGTERM, leaves its main loop, marks every request "stop processing" (a reply not
 * sent by then is never sent) and joins its workers; modules are detached only after that. A worker
 * waiting for a phone held the exit for push.timeout, its NAS got no reply, and the callback listener
 * kept taking approvals nobody delivered. So the module takes SIGTERM first: its handler only wakes a
 * watcher thread, which shuts the engines down (ftm_push_shutdown: listener first, every pending push
 * failed), waits, bounded, for the waiting logins to return and their replies to go out, and then hands
 * the signal to FreeRADIUS's own handler, whose shutdown finds nothing left to wait for. */
#include <freeradius/build.h>
#include <freeradius/radiusd.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ftm_util.h"
#include "shutdown.h"

#define ENGINES_MAX	16	/* module instances with push in one server */
#define DRAIN_MS	800	/* at most this long for the logins in the module to return */
#define REPLY_MS	100	/* then this long for FreeRADIUS to send their replies */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static ftm_push_t *engines[ENGINES_MAX];
static unsigned nengines;
static bool watching;			/* the watcher thread runs */
static pthread_t watcher;
static int wake[2] = { -1, -1 };	/* the handler's byte to the watcher */
static atomic_bool hook_done;		/* SIGTERM taken over (or found not to be FreeRADIUS's) */
static struct sigaction server_action;	/* FreeRADIUS's SIGTERM handler, given the signal afterwards */
static atomic_uint inflight;

static void on_sigterm(int sig)
{
	int saved = errno;
	char c = 'T';
	ssize_t n;

	(void)sig;
	n = write(wake[1], &c, 1);	/* non-blocking: a full pipe already holds a wake-up */
	(void)n;
	errno = saved;
}

static void sleep_ms(unsigned ms)
{
	struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&d, &d) != 0 && errno == EINTR)
		;
}

/* FreeRADIUS's handler gets the signal as if it had just come (unless someone replaced ours since). */
static void forward_sigterm(void)
{
	struct sigaction cur;

	if (sigaction(SIGTERM, NULL, &cur) != 0 || cur.sa_handler != on_sigterm)
		return;
	sigaction(SIGTERM, &server_action, NULL);
	kill(getpid(), SIGTERM);
}

static void stop_pushes(void)
{
	unsigned left;
	int64_t end;

	pthread_mutex_lock(&lock);
	if (!watching) {	/* detach is under way: the server is stopping already */
		pthread_mutex_unlock(&lock);
		return;
	}
	INFO("rlm_ftmpush: SIGTERM: closing the push callback listener and failing the pending pushes "
	     "before the server stops");
	for (unsigned i = 0; i < nengines; i++)
		ftm_push_shutdown(engines[i]);
	pthread_mutex_unlock(&lock);
	end = ftm_mono_ms() + DRAIN_MS;
	while ((left = atomic_load(&inflight)) > 0 && ftm_mono_ms() < end)
		sleep_ms(10);
	if (left > 0)
		WARN("rlm_ftmpush: %u login(s) still in the module after %d ms: stopping anyway", left, DRAIN_MS);
	sleep_ms(REPLY_MS);
	forward_sigterm();
}

static void *watch(void *arg)
{
	(void)arg;
	for (;;) {
		char c;
		ssize_t n = read(wake[0], &c, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || c == 'q')
			break;
		stop_pushes();	/* once: FreeRADIUS's own handler takes any later SIGTERM */
		break;
	}
	return NULL;
}

int rlm_shutdown_register(ftm_push_t *engine)
{
	int rc = 0;

	pthread_mutex_lock(&lock);
	if (nengines >= ENGINES_MAX) {
		rc = -1;
		goto out;
	}
	if (!watching) {
		sigset_t all, old;

		if (pipe2(wake, O_CLOEXEC) != 0 || fcntl(wake[1], F_SETFL, O_NONBLOCK) != 0) {
			rc = -1;
			goto out;
		}
		/* The watcher takes no signal itself: it starts with all of them blocked. */
		sigfillset(&all);
		pthread_sigmask(SIG_BLOCK, &all, &old);
		rc = pthread_create(&watcher, NULL, watch, NULL) == 0 ? 0 : -1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc != 0)
			goto out;
		watching = true;
		atomic_store(&hook_done, false);
	}
	engines[nengines++] = engine;
out:
	if (rc != 0 && !watching && wake[0] >= 0) {
		close(wake[0]);
		close(wake[1]);
		wake[0] = wake[1] = -1;
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

void rlm_shutdown_unregister(ftm_push_t *engine)
{
	struct sigaction cur;
	char c = 'q';
	ssize_t n;

	pthread_mutex_lock(&lock);
	for (unsigned i = 0; i < nengines; i++) {
		if (engines[i] == engine) {
			engines[i] = engines[--nengines];
			break;
		}
	}
	if (nengines > 0 || !watching) {
		pthread_mutex_unlock(&lock);
		return;
	}
	/* The last instance goes: SIGTERM back to FreeRADIUS before the module's code is unloaded. */
	if (sigaction(SIGTERM, NULL, &cur) == 0 && cur.sa_handler == on_sigterm)
		sigaction(SIGTERM, &server_action, NULL);
	watching = false;
	pthread_mutex_unlock(&lock);
	n = write(wake[1], &c, 1);
	(void)n;
	pthread_join(watcher, NULL);
	close(wake[0]);
	close(wake[1]);
	wake[0] = wake[1] = -1;
}

void rlm_shutdown_hook(void)
{
	struct sigaction cur, ours;

	if (atomic_load(&hook_done))
		return;
	pthread_mutex_lock(&lock);
	if (watching && !atomic_load(&hook_done)) {
		atomic_store(&hook_done, true);
		if (sigaction(SIGTERM, NULL, &cur) == 0 && cur.sa_handler != SIG_DFL && cur.sa_handler != SIG_IGN &&
		    !(cur.sa_flags & SA_SIGINFO)) {
			ours = cur;	/* FreeRADIUS's mask and flags */
			ours.sa_handler = on_sigterm;
			ours.sa_flags &= ~SA_RESETHAND;
			server_action = cur;
			if (sigaction(SIGTERM, &ours, NULL) == 0)
				DEBUG("rlm_ftmpush: SIGTERM ends the pending pushes before the server stops");
		} else {
			WARN("rlm_ftmpush: SIGTERM has no handler of the server's: a stop will not end pending pushes "
			     "first");
		}
	}
	pthread_mutex_unlock(&lock);
}

void rlm_shutdown_enter(void)
{
	atomic_fetch_add(&inflight, 1);
}

void rlm_shutdown_leave(void)
{
	atomic_fetch_sub(&inflight, 1);
}

/* pq_lazy: libpq mapped on the first PostgreSQL store open (see pq_lazy.h). */
#include "config.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>

#define FTM_PQ_LAZY_IMPL
#include "pq_lazy.h"

/* libpq's soname has been libpq.so.5 since PostgreSQL 8.2. */
#define PQ_SONAME	"libpq.so.5"

ftm_pq_t ftm_pq;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static bool loaded;
static char load_error[256];	/* why not, when not loaded */

/* libpq and its TLS, Kerberos and LDAP libraries were most of a PAM login's start-up cost: loaded only
 * for a PostgreSQL store, and then kept for the life of the process (never dlclose'd). */
static void load(void)
{
	void *lib = dlopen(PQ_SONAME, RTLD_NOW | RTLD_LOCAL);
	ftm_pq_t pq;

	if (lib == NULL) {
		snprintf(load_error, sizeof(load_error), "cannot load %s for the PostgreSQL store (install libpq5): %s",
			 PQ_SONAME, dlerror());
		return;
	}
#define FTM_PQ_RESOLVE(f) \
	if ((*(void **)&pq.f = dlsym(lib, #f)) == NULL) { \
		snprintf(load_error, sizeof(load_error), "%s has no %s: libpq 10 or newer is needed", PQ_SONAME, #f); \
		return; \
	}
	FTM_PQ_FUNCTIONS(FTM_PQ_RESOLVE)
#undef FTM_PQ_RESOLVE
	ftm_pq = pq;
	loaded = true;	/* read by other threads only after pthread_once returns */
}

int ftm_pq_load(char *err, size_t err_len)
{
	pthread_once(&load_once, load);
	if (!loaded) {
		if (err != NULL && err_len > 0)
			snprintf(err, err_len, "token store: %s", load_error);
		return -1;
	}
	return 0;
}

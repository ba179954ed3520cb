/* protect: the process and its long-lived secrets kept out of core dumps and swap (ftm_protect.h). */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "ftm_protect.h"

int ftm_protect_nodump(char *err, size_t err_len)
{
	struct rlimit none = { 0, 0 };

	/* RLIMIT_CORE alone is not enough: a core_pattern pipe (systemd-coredump) may ignore it. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		snprintf(err, err_len, "prctl(PR_SET_DUMPABLE, 0): %s", strerror(errno));
		return -1;
	}
	if (setrlimit(RLIMIT_CORE, &none) != 0) {
		snprintf(err, err_len, "setrlimit(RLIMIT_CORE, 0): %s", strerror(errno));
		return -1;
	}
	return 0;
}

bool ftm_protect_dumpable(void)
{
	return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 1;
}

/* The whole pages that hold [p, p+len). */
static void page_span(void *p, size_t len, void **start, size_t *span)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)p;
	uintptr_t first = a & ~(page - 1), end = (a + len + page - 1) & ~(page - 1);

	*start = (void *)first;
	*span = end - first;
}

bool ftm_protect_lock(void *p, size_t len)
{
	void *start;
	size_t span;

	if (p == NULL || len == 0)
		return false;
	page_span(p, len, &start, &span);
	if (mlock(p, len) != 0)
		return false;
	/* Excludes the neighbours on those pages from a core too: a smaller core, nothing worse. */
	(void)madvise(start, span, MADV_DONTDUMP);
	return true;
}

void ftm_protect_unlock(void *p, size_t len)
{
	if (p != NULL && len != 0)
		(void)munlock(p, len);
}

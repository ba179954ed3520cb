/* store_fixture: what the store's unit tests (test_store.c, test_store_pg.c, test_activation.c,
 * test_enrol.c) set up alike: the RFC 6238 appendix B token (SHA1 seed "12345678901234567890", 30 s,
 * 8 digits) and its codes, never computed by ftmpush, and a private directory for a store's files. */
#ifndef STORE_FIXTURE_H
#define STORE_FIXTURE_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ftm_store.h"

#define SEED_ASCII	"12345678901234567890"
#define SEED_HEX	"3132333435363738393031323334353637383930"
/* two adjacent steps, and a code that is none of them */
#define T1		1111111109LL	/* step 37037036 */
#define C1		"07081804"
#define T2		1111111111LL	/* step 37037037 */
#define C2		"14050471"
#define BAD		"00000000"

/* The RFC token of user as serial: sha1, 8 digits, 30 s, created a minute before T1. 0, or -1 with the
 * reason on stderr (for a setup, which cannot assert). */
static inline int fixture_rfc_token(ftm_token_t *t, const char *user, const char *serial)
{
	char err[256];

	if (ftm_token_init(t, user, serial, SEED_HEX, err, sizeof(err)) != 0) {
		fprintf(stderr, "token %s: %s\n", serial, err);
		return -1;
	}
	t->digits = 8;
	t->period = 30;
	t->created = T1 - 60;
	return 0;
}

/* A new private directory /tmp/ftm-test-NAME.XXXXXX in dir (64 bytes). 0, or -1. */
static inline int fixture_dir(char dir[64], const char *name)
{
	snprintf(dir, 64, "/tmp/ftm-test-%s.XXXXXX", name);
	return mkdtemp(dir) != NULL ? 0 : -1;
}

/* The directory and the files in it (a store's database, WAL, key). */
static inline void fixture_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[512];

	while (d != NULL && (e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

/* A cmocka case `name` running spec_NAME(store, other) on the fixture's store and a second handle on it
 * (a second process on one file, a second node on one database): the including file defines fixture_t
 * with its store in st, and fixture_other(f, err, err_len) that opens the second handle. */
#define FIXTURE_TWO_HANDLES(name)								\
static void name(void **state)									\
{												\
	fixture_t *f = *state;									\
	char err[256];										\
	ftm_store_t *other = fixture_other(f, err, sizeof(err));				\
												\
	if (other == NULL)									\
		fail_msg("second handle: %s", err);						\
	spec_##name(f->st, other);								\
	ftm_store_close(other);									\
}

#endif

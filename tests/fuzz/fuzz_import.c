/* fuzz_import: `ftmpushctl token import FILE` (the CSV rows serial,seed[,user]) run in-process on a
 * fresh store per input: the tool's own code, included with its main() renamed and exit() caught.
 * Checks the all-or-nothing promise: when the tool refuses, the store holds no token; when it
 * imports, every stored serial comes from the input, once, with a seed.
 *
 * Input: the CSV file's bytes. Stores live under /dev/shm when it exists (SQLite's fsync stays
 * cheap there); the tool's messages go to stderr. */
#include "config.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static jmp_buf fuzz_exit_to;
static void fuzz_exit(int status) __attribute__((noreturn));
static void fuzz_exit(int status)
{
	longjmp(fuzz_exit_to, 256 + status);
}

/* After the system headers (their exit() stays as it is): the tool's die() and exit() land here. */
#define main ftmpushctl_main
#define exit(status) fuzz_exit(status)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wunused-parameter"	/* the gcc build is the tool's -Werror gate */
#include "../../tools/ftmpushctl.c"
#pragma clang diagnostic pop
#undef exit
#undef main

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
	const char	*input;
	size_t		input_len;
	unsigned	n;
	char		serials[64][FTM_SERIAL_MAX];
} seen_t;

static int check_token(void *ctx, const ftm_token_t *tok)
{
	seen_t *s = ctx;

	if (memmem(s->input, s->input_len, tok->serial, strlen(tok->serial)) == NULL)
		abort();	/* a serial that is not in the file */
	if (tok->seed_len == 0)
		abort();
	for (unsigned i = 0; i < s->n && i < 64; i++)
		if (strcmp(s->serials[i], tok->serial) == 0)
			abort();	/* imported twice */
	if (s->n < 64)
		snprintf(s->serials[s->n], sizeof(s->serials[0]), "%s", tok->serial);
	s->n++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[64], db[96], key[112], wal[112], shm[112], csv[96];
	char *argv[] = { "ftmpushctl", "--db", db, "token", "import", csv, NULL };
	volatile int rc;
	ftm_store_t *st;
	char err[256];
	seen_t seen = { (const char *)data, size, 0, { { 0 } } };
	FILE *f;

	if (size > 8192)
		return 0;
	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "%s/ftm-fuzz-import-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
		if (mkdtemp(dir) == NULL)
			abort();
		snprintf(db, sizeof(db), "%s/tokens.db", dir);
		snprintf(key, sizeof(key), "%s.key", db);
		snprintf(wal, sizeof(wal), "%s-wal", db);
		snprintf(shm, sizeof(shm), "%s-shm", db);
		snprintf(csv, sizeof(csv), "%s/in.csv", dir);
	}
	unlink(db);
	unlink(key);
	unlink(wal);
	unlink(shm);
	if ((f = fopen(csv, "wb")) == NULL)
		abort();
	fwrite(data, 1, size, f);
	fclose(f);

	memset(&g, 0, sizeof(g));
	optind = 0;		/* glibc: a full getopt reset */
	rc = setjmp(fuzz_exit_to);
	if (rc == 0)
		rc = 256 + ftmpushctl_main(6, argv);
	rc -= 256;

	st = ftm_store_open(db, NULL, NULL, err, sizeof(err));
	if (st == NULL)
		return 0;	/* the tool refused before it made a store */
	if (ftm_store_token_list(st, NULL, check_token, &seen, err, sizeof(err)) != 0)
		abort();
	if (rc != 0 && seen.n != 0)
		abort();	/* refused, yet something was imported */
	ftm_store_close(st);
	return 0;
}

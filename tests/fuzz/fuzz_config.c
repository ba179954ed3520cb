/* fuzz_config: libFuzzer harness for ftm_config_load + ftm_config_validate (the key = value file). */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ftm_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

static void report(void *ctx, unsigned line, const char *message)
{
	(void)line;
	if (message == NULL || strlen(message) >= FTM_ERR_MAX)
		abort();
	/* a deprecated spelling is reported as a "warning: " and not counted as a problem */
	if (strncmp(message, "warning: ", 9) != 0)
		(*(unsigned *)ctx)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[FTM_ERR_MAX];
	unsigned reported = 0;
	ftm_config_t cfg;
	FILE *f;
	int n;

	if (path[0] == '\0') {
		const char *tmp = getenv("TMPDIR");

		snprintf(path, sizeof(path), "%s/ftm-fuzz-config.%ld", tmp != NULL ? tmp : "/tmp", (long)getpid());
	}
	f = fopen(path, "w");
	if (f == NULL)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	chmod(path, 0600);

	ftm_config_defaults(&cfg);
	err[0] = '\0';
	n = ftm_config_load(&cfg, path, report, &reported, err, sizeof(err));
	if (n < 0 || (unsigned)n != reported || (n > 0 && err[0] == '\0'))
		abort();
	/* whatever loaded, the numbers stay in their documented ranges */
	if (cfg.push.server_port < 1 || cfg.push.server_port > 65535 || cfg.push.timeout == 0 ||
	    cfg.challenge_timeout == 0 || cfg.window > 10 || cfg.debug < 0 || cfg.debug > 2)
		abort();
	if (memchr(cfg.token_db, '\0', sizeof(cfg.token_db)) == NULL)
		abort();
	reported = 0;
	n = ftm_config_validate(&cfg, report, &reported, err, sizeof(err));
	if (n < 0 || (unsigned)n != reported)
		abort();
	unlink(path);
	return 0;
}

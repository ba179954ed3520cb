/* policy: the verdict settings kept in the store: names, ranges, defaults, and the configuration's old copies. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ftm_config.h"
#include "ftm_policy.h"
#include "ftm_util.h"

/* The ranges are the ones these options had in the configuration (config.c), so a value an old config
 * held is a value the store takes. */
static const struct {
	const char	*name;
	size_t		off;
	unsigned	min, max;
	size_t		config_off;	/* the same option in ftm_config_t */
	const char	*help;
} policies[] = {
	{ "window", offsetof(ftm_policy_t, window), 0, 10, offsetof(ftm_config_t, window),
	  "drift window: time steps accepted either side of now" },
	{ "lockout_threshold", offsetof(ftm_policy_t, lockout_threshold), 0, 1000,
	  offsetof(ftm_config_t, lockout_threshold), "consecutive failures that lock a token (0: never)" },
	{ "lockout_duration", offsetof(ftm_policy_t, lockout_duration), 0, 525600,
	  offsetof(ftm_config_t, lockout_duration),
	  "minutes a lock by failures lasts, then the token is active again (0: until an admin unlocks)" },
	{ "activation_expire", offsetof(ftm_policy_t, activation_expire), 0, 5256000,
	  offsetof(ftm_config_t, activation_expire), "minutes a never-used token stays valid (0: never expires)" },
	{ "challenge_timeout", offsetof(ftm_policy_t, challenge_timeout), 1, 86400,
	  offsetof(ftm_config_t, challenge_timeout), "seconds a code challenge lives" },
};
#define N_POLICIES (sizeof(policies) / sizeof(policies[0]))

const char *const ftm_policy_names[] = {
	"window", "lockout_threshold", "lockout_duration", "activation_expire", "challenge_timeout", NULL
};

static int find(const char *name)
{
	for (size_t i = 0; name != NULL && i < N_POLICIES; i++)
		if (strcmp(policies[i].name, name) == 0)
			return (int)i;
	return -1;
}

static unsigned *field(ftm_policy_t *p, size_t i)
{
	return (unsigned *)(void *)((char *)p + policies[i].off);
}

static unsigned value_of(const ftm_policy_t *p, size_t i)
{
	return *(const unsigned *)(const void *)((const char *)p + policies[i].off);
}

void ftm_policy_defaults(ftm_policy_t *p)
{
	ftm_config_t cfg;

	ftm_config_defaults(&cfg);
	for (size_t i = 0; i < N_POLICIES; i++)
		*field(p, i) = *(const unsigned *)(const void *)((const char *)&cfg + policies[i].config_off);
}

unsigned ftm_policy_bit(const char *name)
{
	int i = find(name);

	return i < 0 ? 0 : 1u << i;
}

int ftm_policy_parse(ftm_policy_t *p, const char *name, const char *value, char *err, size_t err_len)
{
	int i = find(name);
	char *end = NULL;
	unsigned long n;

	if (i < 0) {
		ftm_set_err(err, err_len, "unknown policy '%.64s' (known: window, lockout_threshold, "
			    "lockout_duration, activation_expire, challenge_timeout)", name ? name : "");
		return -1;
	}
	if (value == NULL || *value < '0' || *value > '9') {
		ftm_set_err(err, err_len, "%s: '%.32s' is not a number in %u-%u", policies[i].name,
			    value ? value : "", policies[i].min, policies[i].max);
		return -1;
	}
	errno = 0;
	n = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0' || n < policies[i].min || n > policies[i].max) {
		ftm_set_err(err, err_len, "%s: '%.32s' is not a number in %u-%u", policies[i].name, value,
			    policies[i].min, policies[i].max);
		return -1;
	}
	*field(p, (size_t)i) = (unsigned)n;
	return 0;
}

int ftm_policy_format(const ftm_policy_t *p, const char *name, char *buf, size_t len)
{
	int i = find(name);

	if (i < 0)
		return -1;
	snprintf(buf, len, "%u", value_of(p, (size_t)i));
	return 0;
}

const char *ftm_policy_help(const char *name)
{
	int i = find(name);

	return i < 0 ? "" : policies[i].help;
}

int ftm_policy_check_config(const ftm_config_t *cfg, const ftm_policy_t *store, ftm_policy_report_fn report,
			    void *ctx, char *err, size_t err_len)
{
	char msg[FTM_ERR_MAX];
	int errors = 0;

	for (size_t i = 0; i < N_POLICIES; i++) {
		unsigned given, held = value_of(store, i);
		bool differs;

		if (!(cfg->policy_given & (1u << i)))
			continue;
		given = *(const unsigned *)(const void *)((const char *)cfg + policies[i].config_off);
		differs = given != held;
		if (differs)
			snprintf(msg, sizeof(msg), "%s = %u in the configuration: %s is a store policy now, the same "
				 "for every node and front end of the token store, which holds %u: remove the line "
				 "and use `ftmpushctl policy set %s %u` (docs/configuration.md)", policies[i].name,
				 given, policies[i].name, held, policies[i].name, given);
		else
			snprintf(msg, sizeof(msg), "%s = %u in the configuration is ignored: %s is a store policy "
				 "now (the store holds the same value); remove the line, `ftmpushctl policy set %s N` "
				 "changes it for every node", policies[i].name, given, policies[i].name,
				 policies[i].name);
		if (report != NULL)
			report(ctx, differs, msg);
		if (differs && errors++ == 0)
			ftm_set_err(err, err_len, "%s", msg);
	}
	return errors;
}

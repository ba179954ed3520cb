/* ftm_policy: the settings that decide verdicts, kept in the store so every node and front end uses the same. */
#ifndef FTM_POLICY_H
#define FTM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include "ftm_config.h"

/* Seconds a front end keeps the store's policy before reading it again: a `ftmpushctl policy set`
 * reaches every running node within this time (a PAM login reads it afresh). */
#define FTM_POLICY_REFRESH_SECONDS	2

typedef struct ftm_policy {
	unsigned	window;			/* drift window in steps either side of now, 0-10 */
	unsigned	lockout_threshold;	/* consecutive failures that lock a token; 0 = never */
	unsigned	lockout_duration;	/* minutes a lock by failures lasts; 0 = until an admin unlocks */
	unsigned	activation_expire;	/* minutes a never-used token stays valid; 0 = never expires */
	unsigned	challenge_timeout;	/* seconds a code challenge State lives */
} ftm_policy_t;

/* The built-in defaults: what a new store is seeded with (from ftm_config_defaults, the one place). */
void ftm_policy_defaults(ftm_policy_t *p);

/* The policy's names, in `policy show` order, NULL-terminated. */
extern const char *const ftm_policy_names[];

/* The bit of policy `name` (a canonical config option name) in ftm_config_t.policy_given; 0 when it
 * is no policy. */
unsigned ftm_policy_bit(const char *name);

/* Set one policy value by name from text, with the ranges the configuration had. 0, or -1 with a
 * one-line reason in err (unknown name, not a number, out of range). */
int ftm_policy_parse(ftm_policy_t *p, const char *name, const char *value, char *err, size_t err_len);

/* One value as text into buf; -1 for an unknown name. */
int ftm_policy_format(const ftm_policy_t *p, const char *name, char *buf, size_t len);

/* What the value means, for `policy show` (the unit, and what 0 does). */
const char *ftm_policy_help(const char *name);

/* A configuration (ftmpush.conf or the rlm module section) that sets a policy option: differing from the
 * store is an error (the message says where the setting lives now), equal is a warning (old configs
 * keep working). Each goes to report(ctx, message) with its level; returns the number of errors, the
 * first copied into err. */
typedef void (*ftm_policy_report_fn)(void *ctx, bool error, const char *message);
int ftm_policy_check_config(const ftm_config_t *cfg, const ftm_policy_t *store, ftm_policy_report_fn report,
			    void *ctx, char *err, size_t err_len);

#endif

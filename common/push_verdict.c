/* push_verdict: the push verdict's names and the number check, one copy for engine and client. */
#include "config.h"

#include <string.h>

#include "ftm_otp.h"
#include "ftm_push_verdict.h"

static const char *const verdict_names[] = {
	[FTM_PUSH_PENDING] = "pending",
	[FTM_PUSH_APPROVED] = "approved",
	[FTM_PUSH_DENIED] = "denied",
	[FTM_PUSH_TIMEOUT] = "timeout",
	[FTM_PUSH_FAILED] = "failed",
	[FTM_PUSH_ERROR] = "error",
};

const char *ftm_push_verdict_name(ftm_push_verdict_t v)
{
	if ((unsigned)v < sizeof(verdict_names) / sizeof(verdict_names[0]))
		return verdict_names[v];
	return "unknown";
}

int ftm_push_verdict_parse(const char *s, ftm_push_verdict_t *out)
{
	for (unsigned i = FTM_PUSH_APPROVED; i < sizeof(verdict_names) / sizeof(verdict_names[0]); i++) {
		if (s != NULL && strcmp(s, verdict_names[i]) == 0) {
			*out = (ftm_push_verdict_t)i;
			return 0;
		}
	}
	return -1;
}

bool ftm_number_matches(const char *shown, const char *typed)
{
	size_t n = shown != NULL ? strnlen(shown, FTM_NUMBER_MAX) : 0;
	size_t t = typed != NULL ? strnlen(typed, FTM_NUMBER_MAX) : 0;

	return n > 0 && n < FTM_NUMBER_MAX && t == n && ftm_ct_equal(shown, typed, n);
}

bool ftm_number_is_guess(bool matched, bool push_was_live)
{
	return !matched && push_was_live;
}

/* result: ftm_outcome_set and the names of ftm_result_t, one table for the logs and the socket protocol (ftmpushd's answers). */
#include "config.h"

#include <string.h>

#include "ftm_auth.h"
#include "ftm_util.h"

void ftm_outcome_set(ftm_outcome_t *out, ftm_result_t r, const char *serial, const char *message,
		     const char *reason)
{
	memset(out, 0, sizeof(*out));
	out->result = r;
	ftm_copy(out->serial, sizeof(out->serial), serial);
	ftm_copy(out->message, sizeof(out->message), message);
	ftm_copy(out->reason, sizeof(out->reason), reason);
	out->store_down = message != NULL && strcmp(message, FTM_MSG_STORE_DOWN) == 0;
}

const char *ftm_result_name(ftm_result_t r)
{
	switch (r) {
	case FTM_RES_OK:		return "ok";
	case FTM_RES_FAIL:		return "fail";
	case FTM_RES_REPLAY:		return "replay";
	case FTM_RES_LOCKED:		return "locked";
	case FTM_RES_EXPIRED:		return "expired";
	case FTM_RES_NO_TOKEN:		return "no_token";
	case FTM_RES_CHALLENGE:		return "challenge";
	case FTM_RES_DENIED:		return "denied";
	case FTM_RES_PUSH_FAILED:	return "push_failed";
	case FTM_RES_ERROR:		return "error";
	}
	return "unknown";
}

int ftm_result_parse(const char *s, ftm_result_t *out)
{
	for (int r = FTM_RES_OK; r <= FTM_RES_ERROR; r++)
		if (s != NULL && strcmp(s, ftm_result_name((ftm_result_t)r)) == 0) {
			*out = (ftm_result_t)r;
			return 0;
		}
	return -1;
}
